/* diffusion.c — the EDM2-style denoiser over lib/nn/ad.h, its loss and schedules
 * (see diffusion.h).  The loaded model for sampling is lib/models/diffusion_model.c. */
#include "models/diffusion.h"
#include "models/diffusion_net.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

#define SQRT_HALF 0.70710678118654752440

/* ---- config --------------------------------------------------------------------- */

int l2_diffusion_preset(const char *name, int res, int cdim, L2DiffusionConfig *c)
{
	memset(c, 0, sizeof *c);
	c->res = res, c->cimg = 3, c->patch = 1, c->cdim = cdim;
	c->sigma_data = 0.5, c->p_mean = -1.2, c->p_std = 1.2;
	c->nattn = 1, c->attn_res[0] = 8;
	c->nlevels = 3;
	if (!strcmp(name, "tiny")) {
		c->channels = 16, c->blocks = 1;
		c->mult[0] = 1, c->mult[1] = 2, c->mult[2] = 4;
	} else if (!strcmp(name, "small")) {
		c->channels = 32, c->blocks = 2;
		c->mult[0] = 1, c->mult[1] = 2, c->mult[2] = 2;
	} else if (!strcmp(name, "base")) {
		c->channels = 64, c->blocks = 2;
		c->mult[0] = 1, c->mult[1] = 2, c->mult[2] = 2;
	} else
		return -1;
	return 0;
}

const char *l2_diffusion_check(const L2DiffusionConfig *c)
{
	if (c->res < 4 || c->res > 1024 || (c->res & (c->res - 1))) return "resolution must be a power of two in 4..1024";
	if (c->cimg < 1 || c->cimg > 64) return "image channels must be in 1..64";
	if (c->patch != 1 && c->patch != 2 && c->patch != 4) return "patch must be 1, 2 or 4";
	if (c->res / c->patch < 4) return "the patched image (resolution / patch) must be at least 4 pixels wide";
	if (c->cdim < 0 || c->cdim > 65536) return "condition size must be in 0..65536";
	if (c->cond_tokens < 0 || c->cond_tokens > 64) return "condition tokens must be in 0..64";
	if (c->cond_tokens && !c->cdim) return "condition tokens need a condition";
	if (c->channels < 4 || c->channels > 4096) return "channels must be in 4..4096";
	if (c->nlevels < 1 || c->nlevels > L2_DIFF_MAXLEV) return "between 1 and 6 levels (--mult)";
	int R = c->res / c->patch;
	if ((R >> (c->nlevels - 1)) < 1 || R % (1 << (c->nlevels - 1)))
		return "too many levels for the resolution (--mult)";
	for (int l = 0; l < c->nlevels; l++)
		if (c->mult[l] < 1 || c->mult[l] > 64 || (c->channels * c->mult[l]) % 4)
			return "every level's channels (channels x mult) must be a multiple of 4, mult in 1..64";
	if (c->blocks < 1 || c->blocks > 16) return "blocks per level must be in 1..16";
	if (c->nattn < 0 || c->nattn > L2_DIFF_MAXLEV) return "at most 6 attention resolutions";
	for (int i = 0; i < c->nattn; i++)
		if (c->attn_res[i] < 1) return "attention resolutions must be >= 1";
	if (!(c->dropout >= 0 && c->dropout < 1)) return "dropout must be in [0, 1)";
	if (!(c->sigma_data > 0) || !isfinite(c->p_mean) || !(c->p_std > 0) || !isfinite(c->p_std))
		return "sigma_data and P_std must be > 0";
	return NULL;
}

void l2_diffusion_config_json(const L2DiffusionConfig *c, char *buf, size_t len)
{
	char mult[128] = "", attn[128] = "";
	for (int l = 0; l < c->nlevels; l++)
		snprintf(mult + strlen(mult), sizeof mult - strlen(mult), "%s%d", l ? "," : "", c->mult[l]);
	for (int i = 0; i < c->nattn; i++)
		snprintf(attn + strlen(attn), sizeof attn - strlen(attn), "%s%d", i ? "," : "", c->attn_res[i]);
	snprintf(buf, len,
		 "{\"res\":%d,\"cimg\":%d,\"patch\":%d,\"cdim\":%d,\"channels\":%d,\"mult\":[%s],\"blocks\":%d,"
		 "\"attn_res\":[%s],\"dropout\":%.17g,\"sigma_data\":%.17g,\"P_mean\":%.17g,\"P_std\":%.17g}",
		 c->res, c->cimg, c->patch, c->cdim, c->channels, mult, c->blocks, attn, c->dropout, c->sigma_data,
		 c->p_mean, c->p_std);
	/* written only when used, so that the JSON of a modulation model stays what it was */
	if (c->cond_tokens) {
		size_t n = strlen(buf);
		if (n > 1 && n + 24 < len) snprintf(buf + n - 1, len - n + 1, ",\"cond_tokens\":%d}", c->cond_tokens);
	}
}

/* A tiny reader for exactly the JSON l2_diffusion_config_json writes (keys in any
 * order, whitespace allowed), so the double build needs no JSON library. */
static const char *json_key(const char *s, const char *key)
{
	char pat[64];
	snprintf(pat, sizeof pat, "\"%s\"", key);
	const char *p = strstr(s, pat);
	if (!p) return NULL;
	p += strlen(pat);
	while (*p == ' ' || *p == '\t' || *p == '\n') p++;
	if (*p != ':') return NULL;
	p++;
	while (*p == ' ' || *p == '\t' || *p == '\n') p++;
	return p;
}

static int json_num(const char *s, const char *key, double *v)
{
	const char *p = json_key(s, key);
	char *end;
	if (!p) return -1;
	*v = strtod(p, &end);
	return end == p ? -1 : 0;
}

static int json_int(const char *s, const char *key, int *v)
{
	double d;
	if (json_num(s, key, &d) || d != floor(d) || fabs(d) > 1e9) return -1;
	*v = (int)d;
	return 0;
}

static int json_ints(const char *s, const char *key, int *v, int max, int *n)
{
	const char *p = json_key(s, key);
	if (!p || *p != '[') return -1;
	p++;
	*n = 0;
	for (;;) {
		while (*p == ' ') p++;
		if (*p == ']') return 0;
		if (*n == max) return -1;
		char *end;
		long x = strtol(p, &end, 10);
		if (end == p || x < -1000000 || x > 1000000) return -1;
		v[(*n)++] = (int)x;
		p = end;
		while (*p == ' ') p++;
		if (*p == ',') p++;
		else if (*p != ']') return -1;
	}
}

int l2_diffusion_config_parse(const char *s, L2DiffusionConfig *c)
{
	memset(c, 0, sizeof *c);
	if (json_int(s, "res", &c->res) || json_int(s, "cimg", &c->cimg) || json_int(s, "patch", &c->patch) ||
	    json_int(s, "cdim", &c->cdim) || json_int(s, "channels", &c->channels) ||
	    json_ints(s, "mult", c->mult, L2_DIFF_MAXLEV, &c->nlevels) || json_int(s, "blocks", &c->blocks) ||
	    json_ints(s, "attn_res", c->attn_res, L2_DIFF_MAXLEV, &c->nattn) || json_num(s, "dropout", &c->dropout) ||
	    json_num(s, "sigma_data", &c->sigma_data) || json_num(s, "P_mean", &c->p_mean) ||
	    json_num(s, "P_std", &c->p_std))
		return -1;
	if (json_key(s, "cond_tokens") && json_int(s, "cond_tokens", &c->cond_tokens)) return -1;
	return l2_diffusion_check(c) ? -1 : 0;
}

L2DiffusionScalings l2_diffusion_scalings(double sigma, double sd)
{
	L2DiffusionScalings s;
	double q = sigma * sigma + sd * sd;
	s.skip = sd * sd / q;
	s.out = sigma * sd / sqrt(q);
	s.in = 1 / sqrt(q);
	s.noise = log(sigma) / 4;
	return s;
}

/* ---- structure ---------------------------------------------------------------------- */

const L2DiffusionConfig *l2_diffusion_config(const L2Diffusion *m) { return &m->c; }

AdTensor **l2_diffusion_params(L2Diffusion *m, int *n, int *ntrain)
{
	if (n) *n = m->np;
	if (ntrain) *ntrain = m->ntrain;
	return m->p;
}

/* Parameters are created in two passes: trainable ones in forward order, then the
 * buffers; `buffer` selects the pass. */
typedef struct {
	L2Diffusion *m;
	L2Rng rng;
	int buffers; /* 0: trainables pass, 1: buffers pass */
} Builder;

static int padd(Builder *b, const char *name, int ndim, const int *shape, int wn)
{
	L2Diffusion *m = b->m;
	AdTensor *t = ad_param_new(name, ndim, shape);
	for (size_t i = 0; i < t->n; i++) t->v[i] = wn ? (adr)l2_rng_normal(&b->rng) : 0;
	if (m->np == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 64;
		m->p = l2_realloc(m->p, m->cap * sizeof *m->p);
		m->wn = l2_realloc(m->wn, m->cap);
	}
	m->wn[m->np] = (unsigned char)wn;
	m->p[m->np] = t;
	return m->np++;
}

static int wn_param(Builder *b, const char *pre, const char *name, int ndim, const int *shape)
{
	char nm[160];
	snprintf(nm, sizeof nm, "%s%s", pre, name);
	return padd(b, nm, ndim, shape, 1);
}

static int conv_param(Builder *b, const char *pre, const char *name, int cin, int cout, int k)
{
	return wn_param(b, pre, name, 4, (int[]){cout, cin, k, k});
}

static Block block_new(Builder *b, const char *pre, int cin, int cout, int resample, int attn, int res, int E, int tok)
{
	Block k;
	memset(&k, 0, sizeof k);
	k.cin = cin, k.cout = cout, k.resample = resample, k.attn = attn, k.res = res;
	k.conv0 = conv_param(b, pre, ".conv0.weight", cin, cout, 3);
	k.emb = wn_param(b, pre, ".emb.weight", 2, (int[]){cout, E});
	k.conv1 = conv_param(b, pre, ".conv1.weight", cout, cout, 3);
	k.skip = cin != cout ? conv_param(b, pre, ".skip.weight", cin, cout, 1) : -1;
	k.qkv = attn ? conv_param(b, pre, ".qkv.weight", cout, 3 * cout, 1) : -1;
	k.proj = attn ? conv_param(b, pre, ".proj.weight", cout, cout, 1) : -1;
	k.cond_kv = attn && tok ? wn_param(b, pre, ".cond_kv.weight", 2, (int[]){2 * cout, E}) : -1;
	return k;
}

static int has_attn(const L2DiffusionConfig *c, int res)
{
	for (int i = 0; i < c->nattn; i++)
		if (c->attn_res[i] == res) return 1;
	return 0;
}

static void build(L2Diffusion *m, uint64_t seed)
{
	const L2DiffusionConfig *c = &m->c;
	Builder b = {m, {0, 0}, 0};
	l2_rng_init(&b.rng, seed, 0x646966); /* "dif" */
	int C = c->channels, E = 4 * C, cin_img = c->cimg * c->patch * c->patch;
	char pre[96];
	m->emb_cond = c->cdim && !c->cond_tokens ? wn_param(&b, "emb.cond", ".weight", 2, (int[]){C, c->cdim}) : -1;
	m->emb_tok = c->cond_tokens ? wn_param(&b, "emb.tokens", ".weight", 2, (int[]){c->cond_tokens * E, c->cdim + 1}) : -1;
	m->emb_lin0 = wn_param(&b, "emb.linear0", ".weight", 2, (int[]){E, C});
	m->emb_lin1 = wn_param(&b, "emb.linear1", ".weight", 2, (int[]){E, E});
	int maxb = c->nlevels * (c->blocks + 2) + 4;
	m->enc = l2_calloc(maxb, sizeof(Block));
	m->dec = l2_calloc(maxb, sizeof(Block));
	int R = c->res / c->patch, cout = C * c->mult[0];
	snprintf(pre, sizeof pre, "enc.%dx%d_conv", R, R);
	m->conv_in = conv_param(&b, pre, ".weight", cin_img + 1, cout, 3);
	m->skip_ch[m->nskip++] = cout;
	for (int l = 0; l < c->nlevels; l++) {
		int r = R >> l;
		if (l > 0) {
			snprintf(pre, sizeof pre, "enc.%dx%d_down", r, r);
			m->enc[m->nenc++] = block_new(&b, pre, cout, cout, RS_DOWN, 0, r, E, c->cond_tokens);
			m->skip_ch[m->nskip++] = cout;
		}
		for (int k = 0; k < c->blocks; k++) {
			int ci = cout;
			cout = C * c->mult[l];
			snprintf(pre, sizeof pre, "enc.%dx%d_block%d", r, r, k);
			m->enc[m->nenc++] = block_new(&b, pre, ci, cout, RS_KEEP, has_attn(c, r), r, E, c->cond_tokens);
			m->skip_ch[m->nskip++] = cout;
		}
	}
	int sk = m->nskip;
	for (int l = c->nlevels - 1; l >= 0; l--) {
		int r = R >> l;
		if (l == c->nlevels - 1) {
			snprintf(pre, sizeof pre, "dec.%dx%d_in0", r, r);
			m->dec[m->ndec++] = block_new(&b, pre, cout, cout, RS_KEEP, 1, r, E, c->cond_tokens);
			snprintf(pre, sizeof pre, "dec.%dx%d_in1", r, r);
			m->dec[m->ndec++] = block_new(&b, pre, cout, cout, RS_KEEP, 0, r, E, c->cond_tokens);
		} else {
			snprintf(pre, sizeof pre, "dec.%dx%d_up", r, r);
			m->dec[m->ndec++] = block_new(&b, pre, cout, cout, RS_UP, 0, r, E, c->cond_tokens);
		}
		for (int k = 0; k <= c->blocks; k++) {
			int s = m->skip_ch[--sk], ci = cout + s;
			cout = C * c->mult[l];
			snprintf(pre, sizeof pre, "dec.%dx%d_block%d", r, r, k);
			Block bl = block_new(&b, pre, ci, cout, RS_KEEP, has_attn(c, r), r, E, c->cond_tokens);
			bl.skip_in = s;
			m->dec[m->ndec++] = bl;
		}
	}
	m->out_conv = conv_param(&b, "out.conv", ".weight", cout, cin_img, 3);
	m->out_gain = padd(&b, "out.gain", 1, (int[]){1}, 0);
	m->lv_lin = wn_param(&b, "logvar.linear", ".weight", 2, (int[]){1, L2_DIFF_LOGVAR_CH});
	m->ntrain = m->np;
	/* buffers: Fourier frequencies N(0, 1) and phases U(0, 1) */
	m->emb_freqs = padd(&b, "emb.fourier.freqs", 1, (int[]){C}, 0);
	m->emb_phases = padd(&b, "emb.fourier.phases", 1, (int[]){C}, 0);
	m->lv_freqs = padd(&b, "logvar.fourier.freqs", 1, (int[]){L2_DIFF_LOGVAR_CH}, 0);
	m->lv_phases = padd(&b, "logvar.fourier.phases", 1, (int[]){L2_DIFF_LOGVAR_CH}, 0);
	for (int i = m->ntrain; i < m->np; i++) {
		AdTensor *t = m->p[i];
		int phase = i == m->emb_phases || i == m->lv_phases;
		for (size_t k = 0; k < t->n; k++) t->v[k] = (adr)(phase ? l2_rng_uniform(&b.rng) : l2_rng_normal(&b.rng));
		t->rg = 0;
	}
}

L2Diffusion *l2_diffusion_new(const L2DiffusionConfig *c, uint64_t seed)
{
	const char *bad = l2_diffusion_check(c);
	if (bad) l2_die("diffusion: %s", bad);
	L2Diffusion *m = l2_calloc(1, sizeof *m);
	m->c = *c;
	build(m, seed);
	l2_diffusion_renormalize(m);
	return m;
}

void l2_diffusion_set_latent(L2Diffusion *m, const char *json)
{
	free(m->latent);
	m->latent = json ? l2_strdup(json) : NULL;
}

const char *l2_diffusion_latent(const L2Diffusion *m) { return m->latent; }

void l2_diffusion_free(L2Diffusion *m)
{
	if (!m) return;
	if (!m->replica) free(m->latent);
	for (int i = 0; i < m->np; i++) {
		if (m->replica) {
			l2_free_aligned(m->p[i]->g);
			free(m->p[i]);
		} else
			ad_param_free(m->p[i]);
	}
	free(m->p), free(m->wn), free(m->enc), free(m->dec);
	free(m);
}

L2Diffusion *l2_diffusion_replica(L2Diffusion *src)
{
	L2Diffusion *m = l2_malloc(sizeof *m);
	*m = *src;
	m->replica = 1;
	m->latent = NULL;
	m->cap = m->np;
	m->p = l2_malloc(m->np * sizeof *m->p);
	m->wn = l2_malloc(m->np);
	memcpy(m->wn, src->wn, m->np);
	m->enc = l2_malloc((m->nenc + 1) * sizeof(Block));
	m->dec = l2_malloc((m->ndec + 1) * sizeof(Block));
	memcpy(m->enc, src->enc, m->nenc * sizeof(Block));
	memcpy(m->dec, src->dec, m->ndec * sizeof(Block));
	for (int i = 0; i < m->np; i++) {
		AdTensor *t = l2_malloc(sizeof *t);
		*t = *src->p[i];
		t->g = l2_malloc_aligned(t->n * sizeof(adr));
		memset(t->g, 0, t->n * sizeof(adr));
		t->name = src->p[i]->name; /* borrowed */
		t->param = 1;
		m->p[i] = t;
	}
	return m;
}

void l2_diffusion_renormalize(L2Diffusion *m)
{
	for (int i = 0; i < m->np; i++) {
		if (!m->wn[i]) continue;
		AdTensor *t = m->p[i];
		size_t O = (size_t)t->shape[0], F = t->n / O;
		double rf = 1 / sqrt((double)F);
		for (size_t o = 0; o < O; o++) {
			adr *v = t->v + o * F;
			double s = 0;
			for (size_t k = 0; k < F; k++) s += (double)v[k] * v[k];
			adr f = (adr)(1 / (L2_DIFF_WN_EPS + sqrt(s) * rf));
			for (size_t k = 0; k < F; k++) v[k] *= f;
		}
	}
}

/* ---- forward --------------------------------------------------------------------------- */

typedef struct {
	AdGraph *g;
	L2Diffusion *m;
	AdTensor *emb;           /* [N, E] */
	AdTensor *tok;           /* condition tokens [N K, E], or NULL */
	const uint64_t *dropkey;
	int N, layer;
} Fwd;

static AdTensor *W(Fwd *f, int idx) { return ad_wn_weight(f->g, f->m->p[idx], L2_DIFF_WN_EPS); }

static AdTensor *conv(Fwd *f, int idx, AdTensor *x)
{
	int k = f->m->p[idx]->shape[2];
	return ad_conv2d(f->g, x, W(f, idx), NULL, 1, k / 2, 1);
}

static AdTensor *resample(AdGraph *g, AdTensor *x, int mode)
{
	if (mode == RS_DOWN) return ad_avgpool(g, x, 2);
	if (mode == RS_UP) return ad_upsample_nearest(g, x, 2);
	return x;
}

/* sqrt2 cos(2 pi (freqs c_noise + phases)) -> [N, K].  No gradient flows here (the
 * frequencies and phases are fixed, c_noise a constant), so the argument is formed in
 * double and reduced to one period before it is rounded to adr. */
static AdTensor *fourier(Fwd *f, int freqs, int phases, const double *cnoise)
{
	const AdTensor *fr = f->m->p[freqs], *ph = f->m->p[phases];
	int K = (int)fr->n;
	AdTensor *t = ad_tensor(f->g, 2, (int[]){f->N, K});
	for (int n = 0; n < f->N; n++)
		for (int k = 0; k < K; k++) {
			double a = (double)fr->v[k] * cnoise[n] + (double)ph->v[k];
			t->v[(size_t)n * K + k] = (adr)(2 * M_PI * (a - floor(a)));
		}
	return ad_scale(f->g, ad_cos(f->g, t), M_SQRT2);
}

static AdTensor *dropout(Fwd *f, AdTensor *x)
{
	double p = f->m->c.dropout;
	int layer = f->layer++;
	if (!(p > 0) || !f->dropkey) return x;
	AdTensor *mask = ad_tensor(f->g, x->ndim, x->shape);
	size_t per = x->n / (size_t)f->N;
	adr keep = (adr)(1 / (1 - p));
	for (int n = 0; n < f->N; n++) {
		L2Rng r;
		l2_rng_init(&r, f->dropkey[n], (uint64_t)layer);
		for (size_t i = 0; i < per; i++) mask->v[(size_t)n * per + i] = l2_rng_uniform(&r) < p ? 0 : keep;
	}
	return ad_mul(f->g, x, mask);
}

static AdTensor *attention(Fwd *f, const Block *b, AdTensor *x)
{
	AdGraph *g = f->g;
	int N = x->shape[0], C = x->shape[1], H = x->shape[2], Wd = x->shape[3], HW = H * Wd;
	int heads = C / 64 > 1 ? C / 64 : 1, Dh = C / heads;
	AdTensor *qkv = conv(f, b->qkv, x);                                   /* [N, 3C, H, W] */
	qkv = ad_reshape(g, qkv, 5, (int[]){N, 3, heads, Dh, HW});
	qkv = ad_normalize_axis(g, qkv, 3, L2_DIFF_WN_EPS);
	qkv = ad_permute(g, qkv, (int[]){1, 0, 2, 4, 3});                      /* [3, N, heads, HW, Dh] */
	AdTensor *q = ad_reshape(g, ad_slice(g, qkv, 0, 0, 1), 4, (int[]){N, heads, HW, Dh});
	AdTensor *k = ad_reshape(g, ad_slice(g, qkv, 0, 1, 1), 4, (int[]){N, heads, HW, Dh});
	AdTensor *v = ad_reshape(g, ad_slice(g, qkv, 0, 2, 1), 4, (int[]){N, heads, HW, Dh});
	if (f->tok) {
		/* the condition tokens' keys and values join the pixels' */
		int K = f->m->c.cond_tokens;
		AdTensor *kv = ad_linear(g, f->tok, W(f, b->cond_kv), NULL);           /* [N K, 2C] */
		kv = ad_normalize_axis(g, ad_reshape(g, kv, 5, (int[]){N, K, 2, heads, Dh}), 4, L2_DIFF_WN_EPS);
		kv = ad_permute(g, kv, (int[]){2, 0, 3, 1, 4});                        /* [2, N, heads, K, Dh] */
		AdTensor *kt = ad_reshape(g, ad_slice(g, kv, 0, 0, 1), 4, (int[]){N, heads, K, Dh});
		AdTensor *vt = ad_reshape(g, ad_slice(g, kv, 0, 1, 1), 4, (int[]){N, heads, K, Dh});
		k = ad_concat(g, (AdTensor *[]){k, kt}, 2, 2);
		v = ad_concat(g, (AdTensor *[]){v, vt}, 2, 2);
	}
	AdTensor *a = ad_attention(g, q, k, v, 0);                             /* [N, heads, HW, Dh] */
	a = ad_reshape(g, ad_permute(g, a, (int[]){0, 1, 3, 2}), 4, (int[]){N, C, H, Wd});
	a = conv(f, b->proj, a);
	return ad_scale(g, ad_add(g, x, a), SQRT_HALF);
}

static AdTensor *block(Fwd *f, const Block *b, AdTensor *x)
{
	AdGraph *g = f->g;
	int N = x->shape[0];
	AdTensor *r = ad_silu(g, ad_groupnorm(g, x, l2_diffusion_groups(b->cin), NULL, NULL, L2_DIFF_GN_EPS));
	r = conv(f, b->conv0, resample(g, r, b->resample));
	AdTensor *c = ad_affine(g, ad_linear(g, f->emb, W(f, b->emb), NULL), 1, 1);
	c = ad_reshape(g, c, 4, (int[]){N, b->cout, 1, 1});
	r = ad_mul(g, ad_groupnorm(g, r, l2_diffusion_groups(b->cout), NULL, NULL, L2_DIFF_GN_EPS), c);
	r = conv(f, b->conv1, dropout(f, ad_silu(g, r)));
	AdTensor *s = resample(g, x, b->resample);
	if (b->skip >= 0) s = conv(f, b->skip, s);
	x = ad_scale(g, ad_add(g, s, r), SQRT_HALF);
	if (b->attn) x = attention(f, b, x);
	return ad_clamp(g, x, -L2_DIFF_CLAMP, L2_DIFF_CLAMP);
}

/* Space-to-depth by p: [N, C, R p, R p] -> [N, C p^2, R, R], pixel (y p + dy, x p + dx)
 * of channel c to channel (c p + dy) p + dx (PyTorch's pixel_unshuffle), and back
 * (pixel_shuffle).  Reshapes and one permutation, so the gradient comes with them. */
static AdTensor *space_to_depth(AdGraph *g, AdTensor *x, int p)
{
	int N = x->shape[0], C = x->shape[1], R = x->shape[2] / p;
	x = ad_reshape(g, x, 6, (int[]){N, C, R, p, R, p});
	x = ad_permute(g, x, (int[]){0, 1, 3, 5, 2, 4});
	return ad_reshape(g, x, 4, (int[]){N, C * p * p, R, R});
}

static AdTensor *depth_to_space(AdGraph *g, AdTensor *x, int p)
{
	int N = x->shape[0], C = x->shape[1] / (p * p), R = x->shape[2];
	x = ad_reshape(g, x, 6, (int[]){N, C, p, p, R, R});
	x = ad_permute(g, x, (int[]){0, 1, 4, 2, 5, 3});
	return ad_reshape(g, x, 4, (int[]){N, C, R * p, R * p});
}

/* A per-sample scalar s[n] as an [N, 1, 1, 1] constant. */
static AdTensor *per_sample(AdGraph *g, int N, const double *s, int ndim)
{
	int shape[4] = {N, 1, 1, 1};
	AdTensor *t = ad_tensor(g, ndim, shape);
	for (int n = 0; n < N; n++) t->v[n] = (adr)s[n];
	return t;
}

AdTensor *l2_diffusion_denoise(AdGraph *g, L2Diffusion *m, AdTensor *x, const double *sigma, AdTensor *cond,
			       const uint64_t *dropkey, AdTensor **u)
{
	const L2DiffusionConfig *c = &m->c;
	char s1[64];
	if (x->ndim != 4 || x->shape[1] != c->cimg || x->shape[2] != c->res || x->shape[3] != c->res)
		l2_die("diffusion: input %s, expected (N, %d, %d, %d)", ad_shape_str(x, s1, sizeof s1), c->cimg, c->res,
		       c->res);
	int N = x->shape[0];
	if (cond && (cond->ndim != 2 || cond->shape[0] != N || cond->shape[1] != c->cdim))
		l2_die("diffusion: condition %s, expected (%d, %d)", ad_shape_str(cond, s1, sizeof s1), N, c->cdim);
	Fwd f = {g, m, NULL, NULL, dropkey, N, 0};
	double *cs = l2_malloc(4 * (size_t)N * sizeof(double));
	double *cskip = cs, *cout = cs + N, *cin = cs + 2 * N, *cnoise = cs + 3 * N;
	for (int n = 0; n < N; n++) {
		if (!(sigma[n] > 0)) l2_die("diffusion: noise level %g is not > 0", sigma[n]);
		L2DiffusionScalings sc = l2_diffusion_scalings(sigma[n], c->sigma_data);
		cskip[n] = sc.skip, cout[n] = sc.out, cin[n] = sc.in, cnoise[n] = sc.noise;
	}
	/* embedding */
	AdTensor *e = fourier(&f, m->emb_freqs, m->emb_phases, cnoise);
	if (c->cond_tokens) {
		/* [sqrt(d) c, 1] -> K tokens of width E (a null condition: zeros, then the 1) */
		int d = c->cdim, K = c->cond_tokens, E = 4 * c->channels;
		AdTensor *one = ad_tensor(g, 2, (int[]){N, 1});
		for (int n = 0; n < N; n++) one->v[n] = 1;
		AdTensor *cz = cond;
		if (!cz) {
			cz = ad_tensor(g, 2, (int[]){N, d});
			memset(cz->v, 0, cz->n * sizeof(adr));
		}
		AdTensor *in = ad_concat(g, (AdTensor *[]){ad_scale(g, cz, sqrt((double)d)), one}, 2, 1);
		f.tok = ad_reshape(g, ad_linear(g, in, W(&f, m->emb_tok), NULL), 2, (int[]){N * K, E});
	} else if (c->cdim && cond)
		e = ad_add(g, e, ad_linear(g, ad_scale(g, cond, sqrt((double)c->cdim)), W(&f, m->emb_cond), NULL));
	e = ad_silu(g, ad_linear(g, e, W(&f, m->emb_lin0), NULL));
	f.emb = ad_silu(g, ad_linear(g, e, W(&f, m->emb_lin1), NULL));
	/* encoder */
	int R = c->res / c->patch;
	AdTensor *ones = ad_tensor(g, 4, (int[]){N, 1, R, R});
	for (size_t i = 0; i < ones->n; i++) ones->v[i] = 1;
	AdTensor *h = ad_mul(g, x, per_sample(g, N, cin, 4));
	if (c->patch > 1) h = space_to_depth(g, h, c->patch);
	h = ad_concat(g, (AdTensor *[]){h, ones}, 2, 1);
	AdTensor *skips[128];
	int ns = 0;
	h = conv(&f, m->conv_in, h);
	skips[ns++] = h;
	for (int i = 0; i < m->nenc; i++) {
		h = block(&f, &m->enc[i], h);
		skips[ns++] = h;
	}
	for (int i = 0; i < m->ndec; i++) {
		const Block *b = &m->dec[i];
		if (b->skip_in) h = ad_concat(g, (AdTensor *[]){h, skips[--ns]}, 2, 1);
		h = block(&f, b, h);
	}
	h = ad_silu(g, ad_groupnorm(g, h, l2_diffusion_groups(h->shape[1]), NULL, NULL, L2_DIFF_GN_EPS));
	AdTensor *F = conv(&f, m->out_conv, h);
	if (c->patch > 1) F = depth_to_space(g, F, c->patch);
	F = ad_mul(g, F, m->p[m->out_gain]);
	AdTensor *D = ad_add(g, ad_mul(g, x, per_sample(g, N, cskip, 4)), ad_mul(g, F, per_sample(g, N, cout, 4)));
	if (u) *u = ad_linear(g, fourier(&f, m->lv_freqs, m->lv_phases, cnoise), W(&f, m->lv_lin), NULL);
	free(cs);
	return D;
}

double l2_diffusion_u(const L2Diffusion *m, double sigma)
{
	const AdTensor *fr = m->p[m->lv_freqs], *ph = m->p[m->lv_phases], *w = m->p[m->lv_lin];
	double cn = log(sigma) / 4, u = 0, nrm = 0;
	for (size_t k = 0; k < w->n; k++) nrm += (double)w->v[k] * w->v[k];
	for (size_t k = 0; k < w->n; k++) {
		double a = (double)fr->v[k] * cn + (double)ph->v[k];
		u += w->v[k] * M_SQRT2 * cos(2 * M_PI * (a - floor(a)));
	}
	/* the forced weight normalisation of a single row of fan-in F */
	double F = (double)w->n;
	return u / (L2_DIFF_WN_EPS + sqrt(nrm / F)) / sqrt(F);
}

/* ---- loss ----------------------------------------------------------------------------------- */

int l2_diffusion_weighting_parse(const char *s, L2DiffusionWeighting *w)
{
	memset(w, 0, sizeof *w);
	if (!strcmp(s, "uncertainty")) w->kind = L2_DIFF_W_UNCERTAINTY;
	else if (!strcmp(s, "edm")) w->kind = L2_DIFF_W_EDM;
	else if (!strncmp(s, "min-snr:", 8)) {
		char *end;
		w->kind = L2_DIFF_W_MINSNR;
		w->gamma = strtod(s + 8, &end);
		if (end == s + 8 || *end || !(w->gamma > 0) || !isfinite(w->gamma)) return -1;
	} else
		return -1;
	return 0;
}

double l2_diffusion_lambda(const L2DiffusionWeighting *w, double sigma, double sd)
{
	if (w->kind == L2_DIFF_W_MINSNR) {
		double snr = 1 / (sigma * sigma);
		return snr < w->gamma ? snr : w->gamma;
	}
	return (sigma * sigma + sd * sd) / (sigma * sd * sigma * sd);
}

AdTensor *l2_diffusion_loss(AdGraph *g, L2Diffusion *m, const adr *y, const adr *eps, const double *sigma,
			    const adr *cond, const uint64_t *dropkey, int N, int batch, const L2DiffusionWeighting *w,
			    double *mse, double *u_out)
{
	const L2DiffusionConfig *c = &m->c;
	int R = c->res, CHW = c->cimg * R * R;
	AdTensor *Y = ad_input(g, 4, (int[]){N, c->cimg, R, R}, y);
	AdTensor *X = ad_tensor(g, 4, (int[]){N, c->cimg, R, R});
	for (int n = 0; n < N; n++)
		for (int i = 0; i < CHW; i++) {
			size_t k = (size_t)n * CHW + i;
			X->v[k] = (adr)(y[k] + sigma[n] * eps[k]);
		}
	AdTensor *Cd = c->cdim && cond ? ad_input(g, 2, (int[]){N, c->cdim}, cond) : NULL;
	AdTensor *u = NULL;
	int unc = w->kind == L2_DIFF_W_UNCERTAINTY;
	AdTensor *D = l2_diffusion_denoise(g, m, X, sigma, Cd, dropkey, unc ? &u : NULL);
	AdTensor *sq = ad_sum(g, ad_reshape(g, ad_square(g, ad_sub(g, D, Y)), 2, (int[]){N, CHW}), 1, 0); /* [N] */
	double *lam = l2_malloc(N * sizeof(double));
	for (int n = 0; n < N; n++) {
		lam[n] = l2_diffusion_lambda(w, sigma[n], c->sigma_data) / batch;
		if (mse) mse[n] = sq->v[n] / CHW;
	}
	AdTensor *L = ad_mul(g, sq, per_sample(g, N, lam, 1));
	if (unc) {
		AdTensor *u1 = ad_reshape(g, u, 1, (int[]){N});
		if (u_out)
			for (int n = 0; n < N; n++) u_out[n] = u1->v[n];
		/* lambda e^-u sq + CHW u, summed, over the batch */
		L = ad_add(g, ad_mul(g, L, ad_exp(g, ad_scale(g, u1, -1))), ad_scale(g, u1, (double)CHW / batch));
	} else if (u_out)
		for (int n = 0; n < N; n++) u_out[n] = 0;
	free(lam);
	return ad_sum_all(g, L);
}

/* ---- schedules ---------------------------------------------------------------------------------- */

double l2_diffusion_ema_gamma(double std)
{
	/* p(g) = g^3 + 7 g^2 + (16 - s) g + (12 - s), s = std^-2: p(-1) = 2 > 0 ... its largest
	 * real root lies where p turns positive for good; p is increasing beyond the larger
	 * critical point, so bisect between that point and a value where p > 0. */
	double s = 1 / (std * std);
	double a = 1, b = 7, cc = 16 - s, d = 12 - s;
	double disc = b * b - 3 * a * cc;
	double lo = disc > 0 ? (-b + sqrt(disc)) / (3 * a) : -10;
	double hi = fabs(lo) + 10;
	while (((hi + 7) * hi + cc) * hi + d <= 0) hi *= 2;
	for (int i = 0; i < 200; i++) {
		double mid = (lo + hi) / 2;
		if (((mid + 7) * mid + cc) * mid + d > 0) hi = mid;
		else lo = mid;
	}
	return (lo + hi) / 2;
}

double l2_diffusion_ema_beta(double gamma, int64_t t)
{
	if (t < 1) return 0;
	return pow(1 - 1.0 / (double)t, gamma + 1);
}

double l2_diffusion_lr(double lr, int64_t t, int64_t warmup, int64_t ref)
{
	double r = lr;
	if (ref > 0 && t > ref) r /= sqrt((double)t / (double)ref);
	if (warmup > 0 && t < warmup) r *= (double)(t + 1) / (double)warmup;
	return r;
}

double l2_diffusion_flops(const L2DiffusionConfig *c)
{
	/* convolutions and attention products (the GEMMs), per image */
	int R = c->res / c->patch, C = c->channels, E = 4 * C, K = c->cond_tokens;
	double f = 0;
	int cout = C * c->mult[0];
	f += (double)R * R * cout * (c->cimg * c->patch * c->patch + 1) * 9;
	int skip[128], ns = 0;
	skip[ns++] = cout;
#define BLOCKF(ci, co, r_out, r_in0, attn)                                                          \
	do {                                                                                        \
		double P = (double)(r_out) * (r_out);                                               \
		f += P * (co) * (ci) * 9 + P * (co) * (co) * 9 + (double)(co) * E;                  \
		if ((ci) != (co)) f += P * (co) * (ci);                                             \
		if (attn) {                                                                         \
			f += P * 3 * (co) * (co) + P * (co) * (co) + 2 * P * (P + K) * (co);        \
			f += (double)K * 2 * (co) * E;                                              \
		}                                                                                   \
	} while (0)
	for (int l = 0; l < c->nlevels; l++) {
		int r = R >> l;
		if (l > 0) {
			BLOCKF(cout, cout, r, 2 * r, 0);
			skip[ns++] = cout;
		}
		for (int k = 0; k < c->blocks; k++) {
			int ci = cout;
			cout = C * c->mult[l];
			BLOCKF(ci, cout, r, r, has_attn(c, r));
			skip[ns++] = cout;
		}
	}
	for (int l = c->nlevels - 1; l >= 0; l--) {
		int r = R >> l;
		if (l == c->nlevels - 1) {
			BLOCKF(cout, cout, r, r, 1);
			BLOCKF(cout, cout, r, r, 0);
		} else
			BLOCKF(cout, cout, r, r / 2, 0);
		for (int k = 0; k <= c->blocks; k++) {
			int ci = cout + skip[--ns];
			cout = C * c->mult[l];
			BLOCKF(ci, cout, r, r, has_attn(c, r));
		}
	}
#undef BLOCKF
	f += (double)R * R * cout * c->cimg * c->patch * c->patch * 9;
	f += K ? (double)K * E * (c->cdim + 1) : (double)C * c->cdim;
	f += (double)E * C + (double)E * E;
	return f;
}

/* ---- files ------------------------------------------------------------------------------------------ */

#ifndef L2_AD_DOUBLE
#include "io/safetensors.h"
#include "nn/ckpt.h"

void l2_diffusion_save(const char *path, L2Diffusion *m, const char *cond_feature, const char *ema, int64_t step)
{
	char cfg[1024], st[32], sd[32], pm[32], ps[32], pa[16];
	l2_diffusion_config_json(&m->c, cfg, sizeof cfg);
	snprintf(st, sizeof st, "%lld", (long long)step);
	snprintf(sd, sizeof sd, "%.17g", m->c.sigma_data);
	snprintf(pm, sizeof pm, "%.17g", m->c.p_mean);
	snprintf(ps, sizeof ps, "%.17g", m->c.p_std);
	snprintf(pa, sizeof pa, "%d", m->c.patch);
	const char *meta[] = {"l2.kind", "diffusion", "l2.arch", "l2-edm2e-unet", "l2.diffusion.config", cfg,
			      "l2.cond.feature", cond_feature ? cond_feature : "", "l2.sigma_data", sd, "l2.P_mean", pm,
			      "l2.P_std", ps, "l2.patch", pa, "l2.ema", ema ? ema : "none", "l2.step", st,
			      m->latent ? "l2.latent" : NULL, m->latent, NULL};
	l2_ckpt_save_weights(path, m->p, m->np, meta);
}

void l2_diffusion_read_config(const char *path, L2DiffusionConfig *c, char *cond_feature, size_t len)
{
	L2Safetensors *st = l2_st_open(path);
	const char *kind = l2_st_metadata(st, "l2.kind"), *arch = l2_st_metadata(st, "l2.arch");
	const char *cf = l2_st_metadata(st, "l2.diffusion.config");
	if (!kind || strcmp(kind, "diffusion") || !cf)
		l2_die("%s: not an l2 diffusion model (no l2.kind=diffusion metadata)", path);
	char q[256];
	if (!arch || strcmp(arch, "l2-edm2e-unet"))
		l2_die("%s: unknown diffusion architecture '%s'", path, arch ? l2_escape(q, sizeof q, arch, strlen(arch)) : "");
	if (l2_diffusion_config_parse(cf, c)) l2_die("%s: bad diffusion config '%s'", path, l2_escape(q, sizeof q, cf, strlen(cf)));
	if (cond_feature) {
		const char *f = l2_st_metadata(st, "l2.cond.feature");
		snprintf(cond_feature, len, "%s", f ? f : "");
	}
	l2_st_close(st);
}

void l2_diffusion_load_weights(const char *path, L2Diffusion *m)
{
	L2DiffusionConfig c;
	l2_diffusion_read_config(path, &c, NULL, 0);
	char a[1024], b[1024];
	l2_diffusion_config_json(&c, a, sizeof a);
	l2_diffusion_config_json(&m->c, b, sizeof b);
	if (strcmp(a, b)) l2_die("%s: made with %s; this model is %s", path, a, b);
	l2_ckpt_load_weights(path, m->p, m->np);
}
#endif
