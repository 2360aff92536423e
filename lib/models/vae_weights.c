/* vae_weights.c — the VAE's weight files (see vae.h): the key converter
 * table between the diffusers layout and the original ones, recognising a
 * file (kind, layout, halves, key prefix), reading the configuration from
 * tensor shapes and the metadata config, loading every tensor with its key
 * checked, the file identity (SHA-256), and the seeded random-weight writer
 * the tests and benchmarks use.
 *
 * Canonical names are diffusers' (vae_build in vae.c walks them); a file in
 * another layout is read through KEY_RULES, the one table of renamings,
 * after the spirit of stable-diffusion.cpp's name_conversion. */
#include "models/vae_priv.h"

#include "io/safetensors.h"
#include "core/sha256.h"
#include "core/util.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the key converter table ----------------------------------------------------------- */

/* A piece of a canonical (diffusers) name and what the original layout calls
 * it.  In the patterns %d stands for a number; in `original` %d repeats the
 * captured number, %r gives levels - 1 - it (LDM numbers decoder levels by
 * resolution, 0 = full size, diffusers in running order) and %n gives it + 1
 * (taesd.py's decoder starts with a Clamp() that has no parameters).  Rules
 * apply in order, each at most once. */
typedef struct {
	L2VaeKind kind;
	const char *diffusers;
	const char *original;
	const char *old_diffusers; /* the name diffusers used before 0.15, or NULL */
	int conv1x1;               /* original stores this linear (C, C) as a 1x1 conv (C, C, 1, 1) */
} KeyRule;

static const KeyRule KEY_RULES[] = {
	{L2_VAE_KL, "down_blocks.%d.resnets.%d.", "down.%d.block.%d.", NULL, 0},
	{L2_VAE_KL, "down_blocks.%d.downsamplers.0.", "down.%d.downsample.", NULL, 0},
	{L2_VAE_KL, "up_blocks.%d.resnets.%d.", "up.%r.block.%d.", NULL, 0},
	{L2_VAE_KL, "up_blocks.%d.upsamplers.0.", "up.%r.upsample.", NULL, 0},
	{L2_VAE_KL, "mid_block.resnets.0.", "mid.block_1.", NULL, 0},
	{L2_VAE_KL, "mid_block.resnets.1.", "mid.block_2.", NULL, 0},
	{L2_VAE_KL, "mid_block.attentions.0.group_norm.", "mid.attn_1.norm.", NULL, 0},
	{L2_VAE_KL, "mid_block.attentions.0.to_q.", "mid.attn_1.q.", "mid_block.attentions.0.query.", 1},
	{L2_VAE_KL, "mid_block.attentions.0.to_k.", "mid.attn_1.k.", "mid_block.attentions.0.key.", 1},
	{L2_VAE_KL, "mid_block.attentions.0.to_v.", "mid.attn_1.v.", "mid_block.attentions.0.value.", 1},
	{L2_VAE_KL, "mid_block.attentions.0.to_out.0.", "mid.attn_1.proj_out.", "mid_block.attentions.0.proj_attn.", 1},
	{L2_VAE_KL, "conv_shortcut.", "nin_shortcut.", NULL, 0},
	{L2_VAE_KL, "conv_norm_out.", "norm_out.", NULL, 0},
	{L2_VAE_TAESD, "encoder.layers.%d.", "%d.", NULL, 0},
	{L2_VAE_TAESD, "decoder.layers.%d.", "%n.", NULL, 0},
};

/* Replace the first match of pattern `from` in s (at most n bytes) by `to`;
 * returns 1 when it matched. */
static int rewrite(char *s, size_t n, const char *from, const char *to, int levels)
{
	for (size_t i = 0; s[i]; i++) {
		long cap[4];
		int nc = 0, ok = 1;
		size_t j = i;
		for (const char *p = from; *p && ok;) {
			if (p[0] == '%' && p[1] == 'd') {
				if (!isdigit((unsigned char)s[j]) || nc == 4) {
					ok = 0;
					break;
				}
				long v = 0;
				while (isdigit((unsigned char)s[j]) && v < 100000) v = v * 10 + (s[j++] - '0');
				cap[nc++] = v;
				p += 2;
			} else if (s[j] == *p) {
				j++, p++;
			} else {
				ok = 0;
			}
		}
		if (!ok) continue;
		char rep[160], out[512];
		size_t k = 0;
		int ci = 0;
		for (const char *q = to; *q && k + 24 < sizeof rep; q++) {
			if (q[0] == '%' && (q[1] == 'd' || q[1] == 'r' || q[1] == 'n') && ci < nc) {
				long v = cap[ci++];
				if (q[1] == 'r' && levels > 0) v = levels - 1 - v;
				if (q[1] == 'n') v++;
				k += (size_t)snprintf(rep + k, sizeof rep - k, "%ld", v);
				q++;
			} else {
				rep[k++] = *q;
			}
		}
		rep[k] = 0;
		int len = snprintf(out, sizeof out, "%.*s%s%s", (int)i, s, rep, s + j);
		if (len < 0 || (size_t)len >= n) l2_die("VAE: tensor name %s: too long", s);
		memcpy(s, out, (size_t)len + 1);
		return 1;
	}
	return 0;
}

/* The name of canonical tensor CANON in a layout (alt: diffusers' older
 * names; returns 0 when no older name exists).  levels 0 leaves %r numbers
 * as they are (for counting levels before their number is known).
 * *conv1x1 tells whether the original layout stores it as a 1x1 conv. */
static int layout_name(L2VaeKind kind, int layout, int levels, const char *canon, int alt, char *out, size_t n,
		       int *conv1x1)
{
	snprintf(out, n, "%s", canon);
	*conv1x1 = 0;
	int any = 0;
	for (size_t r = 0; r < sizeof KEY_RULES / sizeof *KEY_RULES; r++) {
		const KeyRule *k = &KEY_RULES[r];
		if (k->kind != kind) continue;
		if (layout == L2_VAE_LAYOUT_ORIGINAL) {
			if (rewrite(out, n, k->diffusers, k->original, levels) && k->conv1x1) *conv1x1 = 1;
		} else if (alt && k->old_diffusers && rewrite(out, n, k->diffusers, k->old_diffusers, levels)) {
			any = 1;
		}
	}
	return layout == L2_VAE_LAYOUT_ORIGINAL || !alt || any;
}

/* ---- recognising a file --------------------------------------------------------------- */

typedef struct {
	L2Safetensors *st;
	L2VaeKind kind;
	int layout, halves;
	char prefix[128]; /* "" or e.g. "first_stage_model." */
} VaeFile;

static int has(const VaeFile *f, const char *name)
{
	char k[400];
	snprintf(k, sizeof k, "%s%s", f->prefix, name);
	return l2_st_find(f->st, k) != NULL;
}

/* A prefix P such that P + suffix is a tensor (P empty or ending in '.'). */
static int find_prefix(L2Safetensors *st, const char *suffix, char *prefix, size_t n)
{
	size_t ls = strlen(suffix);
	for (int i = 0; i < l2_st_count(st); i++) {
		const char *name = l2_st_tensor(st, i)->name;
		size_t ln = strlen(name);
		if (ln < ls || strcmp(name + ln - ls, suffix)) continue;
		if (ln > ls && name[ln - ls - 1] != '.') continue;
		if (ln - ls >= n) continue;
		snprintf(prefix, n, "%.*s", (int)(ln - ls), name);
		return 1;
	}
	return 0;
}

/* What else a file that is not a VAE might be, for the error message. */
static const char *what_else(L2Safetensors *st)
{
	const char *kind = l2_st_metadata(st, "l2.kind");
	static __thread char buf[128];
	if (kind) {
		char q[48];
		l2_escape(q, sizeof q, kind, strlen(kind));
		snprintf(buf, sizeof buf, "an l2 %s model (metadata l2.kind=%s)", q, q);
		return buf;
	}
	if (l2_st_find(st, "time_embedding.linear_1.weight") || l2_st_find(st, "time_embedding.linear_1.bias"))
		return "a diffusers U-Net (time_embedding.*, down_blocks.* without encoder.)";
	char p[128];
	if (find_prefix(st, "input_blocks.0.0.weight", p, sizeof p)) return "an LDM U-Net (input_blocks.*) without first_stage_model.* weights";
	if (l2_st_find(st, "visual.conv1.weight") || l2_st_find(st, "token_embedding.weight") ||
	    l2_st_find(st, "vision_model.embeddings.patch_embedding.weight") ||
	    l2_st_find(st, "text_model.embeddings.token_embedding.weight"))
		return "a CLIP model";
	if (l2_st_find(st, "Conv2d_1a_3x3.conv.weight")) return "an Inception-v3";
	return NULL;
}

static void recognise(VaeFile *f)
{
	const char *path = l2_st_path(f->st);
	char p[128];
	f->prefix[0] = 0;
	f->halves = 0;
	if (find_prefix(f->st, "encoder.conv_in.weight", p, sizeof p) || find_prefix(f->st, "decoder.conv_in.weight", p, sizeof p)) {
		f->kind = L2_VAE_KL;
		snprintf(f->prefix, sizeof f->prefix, "%s", p);
		if (has(f, "encoder.conv_in.weight")) f->halves |= L2_VAE_ENCODER;
		if (has(f, "decoder.conv_in.weight")) f->halves |= L2_VAE_DECODER;
		if (has(f, "encoder.down.0.block.0.conv1.weight") || has(f, "decoder.up.0.block.0.conv1.weight"))
			f->layout = L2_VAE_LAYOUT_ORIGINAL;
		else if (has(f, "encoder.down_blocks.0.resnets.0.conv1.weight") || has(f, "decoder.up_blocks.0.resnets.0.conv1.weight"))
			f->layout = L2_VAE_LAYOUT_DIFFUSERS;
		else
			l2_die("%s: tensor %sencoder.down_blocks.0.resnets.0.conv1.weight (diffusers) or %sencoder.down.0.block.0.conv1.weight "
			       "(LDM) missing: a KL autoencoder's conv_in without its blocks", path, f->prefix, f->prefix);
		return;
	}
	if (find_prefix(f->st, "encoder.layers.0.weight", p, sizeof p) || find_prefix(f->st, "decoder.layers.0.weight", p, sizeof p)) {
		f->kind = L2_VAE_TAESD;
		f->layout = L2_VAE_LAYOUT_DIFFUSERS;
		snprintf(f->prefix, sizeof f->prefix, "%s", p);
		if (has(f, "encoder.layers.0.weight")) f->halves |= L2_VAE_ENCODER;
		if (has(f, "decoder.layers.0.weight")) f->halves |= L2_VAE_DECODER;
		return;
	}
	const L2Tensor *t0 = l2_st_find(f->st, "0.weight"), *t1 = l2_st_find(f->st, "1.weight");
	f->kind = L2_VAE_TAESD;
	f->layout = L2_VAE_LAYOUT_ORIGINAL;
	if (t0 && t0->ndim == 4 && t0->shape[1] == 3 && l2_st_find(f->st, "1.conv.0.weight")) {
		f->halves = L2_VAE_ENCODER; /* taesd_encoder: conv(3, W) first */
		return;
	}
	if (!t0 && t1 && t1->ndim == 4 && l2_st_find(f->st, "3.conv.0.weight")) {
		f->halves = L2_VAE_DECODER; /* taesd_decoder: Clamp(), conv(L, W), ReLU, blocks */
		return;
	}
	const char *other = what_else(f->st);
	if (other) l2_die("%s: not a VAE but %s", path, other);
	l2_die("%s: not a VAE: none of encoder.conv_in.weight / decoder.conv_in.weight (KL, diffusers or LDM), "
	       "encoder.layers.0.weight / decoder.layers.0.weight (diffusers TAESD), 0.weight / 1.weight (taesd.py files)",
	       path);
}

/* ---- the loader --------------------------------------------------------------------------- */

typedef struct {
	VaeVisitor vv; /* first: the visitor callbacks get this struct */
	L2Vae *v;
	VaeFile f[2];
	int nf;
	int file_of[3]; /* [half]: index into f of the file holding that half */
	int levels;     /* for %r; 0 while counting */
#ifdef L2_CNN_DOUBLE
	float *tmp;
	size_t tmpn;
#endif
} Loader;

static const VaeFile *file_for(const Loader *ld, int half) { return &ld->f[ld->file_of[half]]; }

/* The tensor holding canonical NAME of `half`, or NULL; *fname gets the
 * name tried (the current one when an older alternative is absent too). */
static const L2Tensor *lookup(const Loader *ld, int half, const char *canon, char *fname, size_t n, int *conv1x1)
{
	const VaeFile *f = file_for(ld, half);
	char nm[400];
	layout_name(f->kind, f->layout, ld->levels, canon, 0, nm, sizeof nm, conv1x1);
	snprintf(fname, n, "%s%s", f->prefix, nm);
	const L2Tensor *t = l2_st_find(f->st, fname);
	if (t || f->layout != L2_VAE_LAYOUT_DIFFUSERS) return t;
	int c1;
	if (!layout_name(f->kind, f->layout, ld->levels, canon, 1, nm, sizeof nm, &c1)) return NULL;
	char alt[400];
	snprintf(alt, sizeof alt, "%s%s", f->prefix, nm);
	t = l2_st_find(f->st, alt);
	if (t) snprintf(fname, n, "%s", alt);
	return t;
}

static int exists(const Loader *ld, int half, const char *fmt, ...) L2_PRINTF(3, 4);
static int exists(const Loader *ld, int half, const char *fmt, ...)
{
	char canon[256], fname[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(canon, sizeof canon, fmt, ap);
	va_end(ap);
	int c1;
	return lookup(ld, half, canon, fname, sizeof fname, &c1) != NULL;
}

/* dimension d of the tensor (which must exist, with at least d + 1 dims) */
static int64_t dim_of(const Loader *ld, int half, int d, const char *fmt, ...) L2_PRINTF(4, 5);
static int64_t dim_of(const Loader *ld, int half, int d, const char *fmt, ...)
{
	char canon[256], fname[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(canon, sizeof canon, fmt, ap);
	va_end(ap);
	int c1;
	const L2Tensor *t = lookup(ld, half, canon, fname, sizeof fname, &c1);
	const char *path = l2_st_path(file_for(ld, half)->st);
	if (!t) l2_die("%s: tensor %s: missing", path, fname);
	if (t->ndim <= d || t->shape[d] < 1 || t->shape[d] > (1 << 20))
		l2_die("%s: tensor %s: %d dimensions, implausible for a VAE", path, fname, t->ndim);
	return t->shape[d];
}

static cnnr *ld_alloc(VaeVisitor *vv, size_t n)
{
	Loader *ld = (Loader *)vv;
	if (ld->v->shapes_only) return NULL;
	cnnr *p = l2_malloc(l2_mul_size(n ? n : 1, sizeof(cnnr)));
	vae_keep(ld->v, p);
	return p;
}

static cnnr *ld_tensor(VaeVisitor *vv, const char *canon, int ndim, const int64_t *shape, cnnr *dst)
{
	Loader *ld = (Loader *)vv;
	char fname[400];
	int c1 = 0;
	const L2Tensor *t = lookup(ld, vv->half, canon, fname, sizeof fname, &c1);
	const VaeFile *f = file_for(ld, vv->half);
	if (!t)
		l2_die("%s: tensor %s: missing (a %s %s in the %s layout has it)", l2_st_path(f->st), fname,
		       f->kind == L2_VAE_KL ? "KL autoencoder" : "TAESD", vv->half == L2_VAE_ENCODER ? "encoder" : "decoder",
		       f->layout == L2_VAE_LAYOUT_DIFFUSERS ? "diffusers" : f->kind == L2_VAE_KL ? "LDM" : "taesd.py");
	/* attention projections: a linear (C, C) or the LDM 1x1 conv (C, C, 1, 1) */
	int64_t s[4] = {shape[0], ndim > 1 ? shape[1] : 0, 1, 1};
	int nd = ndim;
	if (ndim == 2 && t->ndim == 4) nd = 4;
	size_t n = 1;
	for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
	if (ld->v->shapes_only) {
		const int64_t *want = nd == 4 && ndim == 2 ? s : shape;
		int ok = t->ndim == nd;
		for (int i = 0; ok && i < nd; i++) ok = t->shape[i] == want[i];
		if (!ok) {
			char a[96] = "(", b[96] = "(";
			for (int i = 0; i < nd; i++) snprintf(a + strlen(a), sizeof a - strlen(a), "%s%lld", i ? ", " : "", (long long)want[i]);
			for (int i = 0; i < t->ndim; i++) snprintf(b + strlen(b), sizeof b - strlen(b), "%s%lld", i ? ", " : "", (long long)t->shape[i]);
			/* as lib/io/safetensors.c says it */
			l2_die("%s: tensor %s: expected shape %s%s, got %s%s", l2_st_path(f->st), fname, a, nd == 1 ? ",)" : ")", b,
			       t->ndim == 1 ? ",)" : ")");
		}
		return NULL;
	}
	if (!dst) dst = ld_alloc(vv, n);
#ifdef L2_CNN_DOUBLE
	if (n > ld->tmpn) ld->tmp = l2_realloc(ld->tmp, (ld->tmpn = n) * sizeof(float));
	l2_st_load_f32_into(f->st, fname, nd, nd == 4 && ndim == 2 ? s : shape, ld->tmp);
	for (size_t i = 0; i < n; i++) dst[i] = ld->tmp[i];
#else
	l2_st_load_f32_into(f->st, fname, nd, nd == 4 && ndim == 2 ? s : shape, dst);
#endif
	return dst;
}

/* ---- the configuration from shapes -------------------------------------------------------------- */

static void kl_config_half(Loader *ld, int half, L2VaeConfig *c)
{
	const char *path = l2_st_path(file_for(ld, half)->st);
	int enc = half == L2_VAE_ENCODER;
	const char *blocks = enc ? "encoder.down_blocks" : "decoder.up_blocks";
	memset(c, 0, sizeof *c);
	c->kind = L2_VAE_KL;
	ld->levels = 0; /* count level indices as they are in the file */
	while (c->levels <= L2_VAE_MAX_LEVELS && exists(ld, half, "%s.%d.resnets.0.conv1.weight", blocks, c->levels)) c->levels++;
	if (c->levels > L2_VAE_MAX_LEVELS) l2_die("%s: more than %d levels: not an autoencoder l2 knows", path, L2_VAE_MAX_LEVELS);
	if (c->levels == 0) l2_die("%s: the %s has no blocks (%s.0.resnets.0.conv1.weight)", path, enc ? "encoder" : "decoder", blocks);
	ld->levels = c->levels;
	int n = 0;
	while (n < 64 && exists(ld, half, "%s.0.resnets.%d.conv1.weight", blocks, n)) n++;
	c->layers = enc ? n : n - 1;
	if (c->layers < 1) l2_die("%s: the decoder's levels need at least 2 ResNet blocks, found %d", path, n);
	for (int i = 0; i < c->levels; i++) {
		int64_t w = dim_of(ld, half, 0, "%s.%d.resnets.0.conv1.weight", blocks, i);
		c->ch[enc ? i : c->levels - 1 - i] = (int)w;
	}
	if (enc) {
		int64_t m = dim_of(ld, half, 0, "encoder.conv_out.weight");
		if (m % 2) l2_die("%s: encoder.conv_out has %lld outputs: not mean and log-variance", path, (long long)m);
		c->latent = (int)(m / 2);
	} else {
		c->latent = (int)dim_of(ld, half, 1, "decoder.conv_in.weight");
	}
}

static void taesd_config_half(Loader *ld, int half, L2VaeConfig *c)
{
	const VaeFile *f = file_for(ld, half);
	const char *path = l2_st_path(f->st), *h = half == L2_VAE_ENCODER ? "encoder" : "decoder";
	memset(c, 0, sizeof *c);
	c->kind = L2_VAE_TAESD;
	c->ch[0] = (int)dim_of(ld, half, 0, "%s.layers.0.weight", h);
	int *blocks = half == L2_VAE_ENCODER ? c->enc_blocks : c->dec_blocks;
	int i = half == L2_VAE_ENCODER ? 1 : 2, stage = 0, nb = 0;
	if (half == L2_VAE_DECODER) c->latent = (int)dim_of(ld, half, 1, "decoder.layers.0.weight");
	for (;;) {
		if (stage >= L2_VAE_MAX_LEVELS || i > 256) l2_die("%s: TAESD %s with more than %d stages", path, h, L2_VAE_MAX_LEVELS);
		if (exists(ld, half, "%s.layers.%d.conv.0.weight", h, i)) {
			nb++, i++;
			continue;
		}
		int conv_here = exists(ld, half, "%s.layers.%d.weight", h, i);
		if (conv_here && exists(ld, half, "%s.layers.%d.bias", h, i)) { /* the last conv */
			blocks[stage] = nb;
			c->levels = stage + 1;
			if (half == L2_VAE_ENCODER) c->latent = (int)dim_of(ld, half, 0, "encoder.layers.%d.weight", i);
			return;
		}
		if (half == L2_VAE_ENCODER && conv_here) { /* stride-2 conv: next stage */
			blocks[stage++] = nb, nb = 0, i++;
			continue;
		}
		if (half == L2_VAE_DECODER && !conv_here && exists(ld, half, "%s.layers.%d.weight", h, i + 1)) {
			blocks[stage++] = nb, nb = 0, i += 2; /* upsample, conv */
			continue;
		}
		char fname[400];
		int c1;
		char canon[64];
		snprintf(canon, sizeof canon, "%s.layers.%d.weight", h, i);
		lookup(ld, half, canon, fname, sizeof fname, &c1);
		l2_die("%s: TAESD %s: layer %d is neither a block nor a convolution (tensor %s missing)", path, h, i, fname);
	}
}

static void config_agree(const char *path, const L2VaeConfig *a, const L2VaeConfig *b)
{
	int ok = a->kind == b->kind && a->levels == b->levels && a->latent == b->latent && a->layers == b->layers;
	for (int i = 0; ok && i < a->levels; i++) ok = a->ch[i] == b->ch[i];
	if (a->kind == L2_VAE_TAESD) ok = ok && a->ch[0] == b->ch[0];
	if (!ok)
		l2_die("%s: the encoder and the decoder disagree (%d vs %d levels, widths %d.. vs %d.., %d vs %d latent channels)",
		       path, a->levels, b->levels, a->ch[0], b->ch[0], a->latent, b->latent);
}

/* scaling_factor, shift_factor, norm_num_groups from __metadata__["config"] */
static void metadata_config(L2Safetensors *st, L2VaeConfig *c)
{
	const char *js = l2_st_metadata(st, "config");
	if (!js) return;
	json_error_t err;
	json_t *root = json_loads(js, 0, &err);
	char q[256];
	if (!root || !json_is_object(root))
		l2_die("%s: __metadata__ config is not a JSON object: %s", l2_st_path(st),
		       root ? "" : l2_escape(q, sizeof q, err.text, strlen(err.text)));
	json_t *v;
	if ((v = json_object_get(root, "scaling_factor")) && json_is_number(v)) c->scale = json_number_value(v);
	if ((v = json_object_get(root, "shift_factor")) && json_is_number(v)) c->shift = json_number_value(v);
	if ((v = json_object_get(root, "norm_num_groups")) && json_is_integer(v)) c->groups = (int)json_integer_value(v);
	json_decref(root);
	if (!(c->scale > 0) || !isfinite(c->scale) || !isfinite(c->shift) || c->groups < 1)
		l2_die("%s: __metadata__ config: scaling_factor %g, shift_factor %g, norm_num_groups %d: implausible",
		       l2_st_path(st), c->scale, c->shift, c->groups);
}

/* SPEC: a file, or "A,B" */
static int split_spec(const char *spec, char *out[2])
{
	if (l2_file_exists(spec) || !strchr(spec, ',')) {
		out[0] = l2_strdup(spec);
		return 1;
	}
	const char *comma = strchr(spec, ',');
	if (strchr(comma + 1, ','))
		l2_die("%s: more than two files (a VAE is one file, or ENCODER_FILE,DECODER_FILE)", spec);
	out[0] = l2_malloc((size_t)(comma - spec) + 1);
	memcpy(out[0], spec, (size_t)(comma - spec));
	out[0][comma - spec] = 0;
	out[1] = l2_strdup(comma + 1);
	return 2;
}

L2Vae *l2_vae_load(const char *spec, const L2VaeOptions *opt)
{
	L2VaeOptions none = {0};
	if (!opt) opt = &none;
	L2Vae *v = l2_calloc(1, sizeof *v);
	pthread_mutex_init(&v->id_lock, NULL);
	pthread_mutex_init(&v->ws_lock, NULL);
	Loader ld = {.vv = {ld_tensor, ld_alloc, 0}, .v = v};
	v->nfiles = ld.nf = split_spec(spec, v->path);
	for (int i = 0; i < ld.nf; i++) {
		ld.f[i].st = l2_st_open(v->path[i]);
		recognise(&ld.f[i]);
	}
	const char *p0 = v->path[0];
	int have = ld.f[0].halves;
	if (ld.nf == 2) {
		if (ld.f[0].kind != ld.f[1].kind)
			l2_die("%s and %s: one is a KL autoencoder, the other TAESD", v->path[0], v->path[1]);
		if (ld.f[0].halves & ld.f[1].halves)
			l2_die("%s and %s: both hold the %s", v->path[0], v->path[1],
			       ld.f[0].halves & ld.f[1].halves & L2_VAE_ENCODER ? "encoder" : "decoder");
		have |= ld.f[1].halves;
	}
	for (int h = 1; h <= 2; h++)
		for (int i = 0; i < ld.nf; i++)
			if (ld.f[i].halves & h) ld.file_of[h] = i;
	int want = opt->halves ? opt->halves : have;
	for (int h = 1; h <= 2; h++)
		if ((want & h) && !(have & h))
			l2_die("%s: holds no %s%s", spec, h == L2_VAE_ENCODER ? "encoder" : "decoder",
			       ld.f[0].kind == L2_VAE_TAESD && ld.nf == 1
				       ? " (taesd.py keeps the halves in two files: give ENCODER_FILE,DECODER_FILE)" : "");
	v->halves = want;
	v->shapes_only = opt->shapes_only;
	v->layout = ld.f[ld.file_of[want & L2_VAE_ENCODER ? 1 : 2]].layout;
	for (int i = 0; i < ld.nf; i++) v->file_halves[i] = ld.f[i].halves & want;

	/* sizes from the shapes, each half on its own, then compared */
	L2VaeConfig ce, cd;
	int first = want & L2_VAE_ENCODER ? L2_VAE_ENCODER : L2_VAE_DECODER;
	if (ld.f[0].kind == L2_VAE_KL) {
		kl_config_half(&ld, first, &ce);
		if (want == L2_VAE_BOTH) kl_config_half(&ld, L2_VAE_DECODER, &cd), config_agree(spec, &ce, &cd);
	} else {
		L2VaeConfig a = {0}, b = {0};
		if (want & L2_VAE_ENCODER) taesd_config_half(&ld, L2_VAE_ENCODER, &a);
		if (want & L2_VAE_DECODER) taesd_config_half(&ld, L2_VAE_DECODER, &b);
		if (want == L2_VAE_BOTH) {
			L2VaeConfig a2 = a, b2 = b;
			memset(a2.enc_blocks, 0, sizeof a2.enc_blocks), memset(b2.dec_blocks, 0, sizeof b2.dec_blocks);
			memset(a2.dec_blocks, 0, sizeof a2.dec_blocks), memset(b2.enc_blocks, 0, sizeof b2.enc_blocks);
			config_agree(spec, &a2, &b2);
		}
		ce = want & L2_VAE_ENCODER ? a : b;
		memcpy(ce.dec_blocks, b.dec_blocks, sizeof ce.dec_blocks);
		memcpy(ce.enc_blocks, a.enc_blocks, sizeof ce.enc_blocks);
	}
	ld.levels = ce.levels;
	L2VaeConfig def = l2_vae_default_config(ce.kind);
	ce.groups = def.groups;
	ce.scale = def.scale;
	ce.shift = 0;
	for (int i = 0; i < ld.nf; i++) metadata_config(ld.f[i].st, &ce);
	if (opt->scale > 0) ce.scale = opt->scale;
	if (opt->latent_channels > 0 && ce.latent != opt->latent_channels)
		l2_die("%s: a VAE with %d latent channels, not the %d expected", spec, ce.latent, opt->latent_channels);
	if (ce.kind == L2_VAE_KL)
		for (int i = 0; i < ce.levels; i++)
			if (ce.ch[i] % ce.groups)
				l2_die("%s: %d channels at level %d are not a multiple of %d GroupNorm groups (norm_num_groups in the "
				       "metadata config)", p0, ce.ch[i], i, ce.groups);
	v->cfg = ce;

	vae_build(v, want, &ld.vv);
	for (int i = 0; i < ld.nf; i++) l2_st_close(ld.f[i].st);
	if (!v->shapes_only) vae_prepare(v);
#ifdef L2_CNN_DOUBLE
	free(ld.tmp);
#endif
	return v;
}

/* ---- identity ------------------------------------------------------------------------------------ */

const char *l2_vae_identity(const L2Vae *cv)
{
	L2Vae *v = (L2Vae *)cv; /* computed once, under a lock */
	pthread_mutex_lock(&v->id_lock);
	if (!v->identity) {
		for (int i = 0; i < v->nfiles; i++) l2_sha256_file(v->path[i], v->hex[i]);
		v->identity = l2_malloc(64 * 2 + 2);
		snprintf(v->identity, 64 * 2 + 2, "%s%s%s", v->hex[0], v->nfiles == 2 ? "," : "", v->nfiles == 2 ? v->hex[1] : "");
	}
	pthread_mutex_unlock(&v->id_lock);
	return v->identity;
}

int l2_vae_identity_matches(const L2Vae *v, const char *recorded, int half, char *why, size_t whylen)
{
	l2_vae_identity(v);
	for (int i = 0; i < v->nfiles; i++) {
		if (!(v->file_halves[i] & half)) continue;
		int found = 0;
		for (const char *p = recorded; p && *p;) {
			const char *e = strchr(p, ',');
			size_t n = e ? (size_t)(e - p) : strlen(p);
			if (n == 64 && !strncmp(p, v->hex[i], 64)) found = 1;
			p = e ? e + 1 : NULL;
		}
		if (!found) {
			snprintf(why, whylen, "%s has SHA-256 %.12s..., not the VAE the latents were made with (%.12s...%s)", v->path[i],
				 v->hex[i], recorded, strchr(recorded, ',') ? ", two files" : "");
			return 0;
		}
	}
	return 1;
}

/* ---- listing the parameters ------------------------------------------------------------------------ */

typedef struct {
	VaeVisitor vv;
	char **name;
	int (*shape)[5]; /* ndim, dims */
	int n, cap;
} Lister;

static cnnr *list_alloc(VaeVisitor *vv, size_t n) { return NULL; }

static cnnr *list_tensor(VaeVisitor *vv, const char *name, int ndim, const int64_t *shape, cnnr *dst)
{
	Lister *l = (Lister *)vv;
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 256;
		l->name = l2_realloc(l->name, (size_t)l->cap * sizeof *l->name);
		l->shape = l2_realloc(l->shape, (size_t)l->cap * sizeof *l->shape);
	}
	l->name[l->n] = l2_strdup(name);
	l->shape[l->n][0] = ndim;
	for (int i = 0; i < ndim; i++) l->shape[l->n][1 + i] = (int)shape[i];
	l->n++;
	return NULL;
}

static void list_params(const L2VaeConfig *cfg, int halves, Lister *l)
{
	memset(l, 0, sizeof *l);
	l->vv = (VaeVisitor){list_tensor, list_alloc, 0};
	L2Vae v = {0};
	v.cfg = *cfg;
	vae_build(&v, halves, &l->vv);
	free(v.enc.res), free(v.enc.resample), free(v.dec.res), free(v.dec.resample), free(v.tenc.l), free(v.tdec.l);
}

static void list_free(Lister *l)
{
	for (int i = 0; i < l->n; i++) free(l->name[i]);
	free(l->name);
	free(l->shape);
}

int l2_vae_param_count(const L2VaeConfig *cfg, int halves)
{
	Lister l;
	list_params(cfg, halves, &l);
	int n = l.n;
	list_free(&l);
	return n;
}

const char *l2_vae_param_name(const L2VaeConfig *cfg, int halves, int i, int *ndim, int64_t shape[4])
{
	static __thread char name[256];
	Lister l;
	list_params(cfg, halves, &l);
	const char *r = NULL;
	if (i >= 0 && i < l.n) {
		snprintf(name, sizeof name, "%s", l.name[i]);
		*ndim = l.shape[i][0];
		for (int d = 0; d < *ndim; d++) shape[d] = l.shape[i][1 + d];
		r = name;
	}
	list_free(&l);
	return r;
}

/* ---- random weights --------------------------------------------------------------------------------- */

#define PHI 0x9e3779b97f4a7c15ull

static uint64_t fnv1a64(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return h;
}

void l2_vae_random_values(const char *name, uint64_t seed, int ndim, const int64_t *shape, float *out)
{
	size_t n = 1, fan = 1;
	for (int d = 0; d < ndim; d++) n *= (size_t)shape[d];
	for (int d = 1; d < ndim; d++) fan *= (size_t)shape[d];
	uint64_t h = fnv1a64(name) ^ seed;
	size_t ln = strlen(name);
	int gain = ndim == 1 && ln >= 7 && !strcmp(name + ln - 7, ".weight");
	float scale = ndim >= 2 ? ldexpf(1.0f / 256, -(int)floor(0.5 * log2((double)fan / 3.0) + 0.5)) : 1.0f / 4096;
	for (size_t i = 0; i < n; i++) {
		uint64_t z = h + (uint64_t)(i + 1) * PHI;
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		z ^= z >> 31;
		if (gain) out[i] = (float)(96 + (z >> 58)) / 128.0f;
		else out[i] = (float)((int)(z >> 56) * 2 - 255) * scale; /* exact: 8 significant bits */
	}
}

typedef struct {
	VaeVisitor vv;
	L2StWriter *w;
	L2VaeKind kind;
	int layout, levels, dtype;
	uint64_t seed;
	void **bufs;
	int nbufs, capbufs;
} Writer;

static void *wkeep(Writer *w, void *p)
{
	if (w->nbufs == w->capbufs) w->bufs = l2_realloc(w->bufs, (size_t)(w->capbufs = w->capbufs ? 2 * w->capbufs : 256) * sizeof *w->bufs);
	return w->bufs[w->nbufs++] = p;
}

static cnnr *wr_tensor(VaeVisitor *vv, const char *canon, int ndim, const int64_t *shape, cnnr *dst)
{
	Writer *w = (Writer *)vv;
	size_t n = 1;
	for (int d = 0; d < ndim; d++) n *= (size_t)shape[d];
	float *v = wkeep(w, l2_malloc((n ? n : 1) * sizeof(float)));
	l2_vae_random_values(canon, w->seed, ndim, shape, v);
	char name[400];
	int c1;
	layout_name(w->kind, w->layout, w->levels, canon, 0, name, sizeof name, &c1);
	int64_t s4[4] = {shape[0], ndim > 1 ? shape[1] : 1, 1, 1};
	const int64_t *sh = c1 && ndim == 2 ? s4 : shape;
	int nd = c1 && ndim == 2 ? 4 : ndim;
	if (w->dtype == L2_ST_F32) {
		l2_st_writer_add(w->w, name, L2_ST_F32, nd, sh, v);
	} else {
		uint16_t *h = wkeep(w, l2_malloc((n ? n : 1) * sizeof(uint16_t)));
		for (size_t i = 0; i < n; i++) {
			uint32_t u;
			memcpy(&u, &v[i], 4);
			h[i] = w->dtype == L2_ST_F16 ? l2_float_to_half(v[i]) : (uint16_t)(u >> 16); /* exact: 8 bits */
		}
		l2_st_writer_add(w->w, name, w->dtype, nd, sh, h);
	}
	return NULL;
}

void l2_vae_write_random(const char *path, const L2VaeConfig *cfg, int layout, int halves, int dtype, uint64_t seed)
{
	if (dtype != L2_ST_F32 && dtype != L2_ST_F16 && dtype != L2_ST_BF16) l2_die("random VAE: dtype must be F32, F16 or BF16");
	if (cfg->kind == L2_VAE_TAESD && layout == L2_VAE_LAYOUT_ORIGINAL && halves == L2_VAE_BOTH)
		l2_die("random VAE: taesd.py's layout keeps the encoder and the decoder in separate files");
	if (cfg->levels < 1 || cfg->levels > L2_VAE_MAX_LEVELS || cfg->latent < 1) l2_die("random VAE: implausible configuration");
	Writer w = {.vv = {wr_tensor, list_alloc, 0}, .w = l2_st_writer_new(), .kind = cfg->kind, .layout = layout,
		    .levels = cfg->levels, .dtype = dtype, .seed = seed};
	L2Vae v = {0};
	v.cfg = *cfg;
	vae_build(&v, halves, &w.vv);
	free(v.enc.res), free(v.enc.resample), free(v.dec.res), free(v.dec.resample), free(v.tenc.l), free(v.tdec.l);
	l2_st_writer_meta(w.w, "format", "pt");
	L2VaeConfig def = l2_vae_default_config(cfg->kind);
	if (cfg->scale != def.scale || cfg->shift != 0 || (cfg->kind == L2_VAE_KL && cfg->groups != def.groups)) {
		json_t *j = json_object();
		json_object_set_new(j, "_class_name", json_string(cfg->kind == L2_VAE_KL ? "AutoencoderKL" : "AutoencoderTiny"));
		json_object_set_new(j, "latent_channels", json_integer(cfg->latent));
		if (cfg->kind == L2_VAE_KL) json_object_set_new(j, "norm_num_groups", json_integer(cfg->groups));
		json_object_set_new(j, "scaling_factor", json_real(cfg->scale));
		json_object_set_new(j, "shift_factor", json_real(cfg->shift));
		char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
		l2_st_writer_meta(w.w, "config", s);
		free(s);
		json_decref(j);
	}
	l2_st_writer_meta(w.w, "l2", "random-weight VAE (l2_vae_write_random)");
	l2_st_writer_write(w.w, path);
	l2_st_writer_free(w.w);
	for (int i = 0; i < w.nbufs; i++) free(w.bufs[i]);
	free(w.bufs);
}
