/* vae_cases.h — what test_vae.c (float) and test_vae_double.c (the VAE
 * compiled in double) share: the configurations of tests/ref/vae/model.json,
 * the random-weight files written in every layout and dtype, and the parity
 * check of encoder and decoder against tests/ref/make_vae.py's float64
 * outputs.  Include after check.h and the VAE's header or sources. */
#ifndef L2_VAE_CASES_H
#define L2_VAE_CASES_H

#include "io/npy.h"
#include "io/safetensors.h"
#include "core/util.h"

#include <jansson.h>
#include <unistd.h>

#define VAE_REF "tests/ref/vae/"

static char vae_tmp[256];

typedef struct {
	const char *name;
	L2VaeConfig cfg;
	uint64_t seed;
} VaeCase;

/* the configuration NAME of model.json */
static VaeCase vae_case(const char *name)
{
	json_error_t err;
	json_t *root = json_load_file(VAE_REF "model.json", 0, &err), *c = root ? json_object_get(root, name) : NULL;
	if (!c) l2_die("%smodel.json: no configuration %s", VAE_REF, name);
	VaeCase k = {name, {0}, 0};
	int taesd = !strcmp(json_string_value(json_object_get(c, "kind")), "taesd");
	k.cfg = l2_vae_default_config(taesd ? L2_VAE_TAESD : L2_VAE_KL);
	k.cfg.latent = (int)json_integer_value(json_object_get(c, "latent"));
	k.cfg.scale = json_number_value(json_object_get(c, "scale"));
	k.seed = (uint64_t)json_integer_value(json_object_get(c, "seed"));
	if (taesd) {
		k.cfg.ch[0] = (int)json_integer_value(json_object_get(c, "width"));
		json_t *eb = json_object_get(c, "enc_blocks"), *db = json_object_get(c, "dec_blocks");
		k.cfg.levels = (int)json_array_size(eb);
		for (int i = 0; i < k.cfg.levels; i++) {
			k.cfg.enc_blocks[i] = (int)json_integer_value(json_array_get(eb, i));
			k.cfg.dec_blocks[i] = (int)json_integer_value(json_array_get(db, i));
		}
	} else {
		json_t *ch = json_object_get(c, "ch");
		k.cfg.levels = (int)json_array_size(ch);
		for (int i = 0; i < k.cfg.levels; i++) k.cfg.ch[i] = (int)json_integer_value(json_array_get(ch, i));
		k.cfg.layers = (int)json_integer_value(json_object_get(c, "layers"));
		k.cfg.groups = (int)json_integer_value(json_object_get(c, "groups"));
		k.cfg.shift = json_number_value(json_object_get(c, "shift"));
	}
	json_decref(root);
	return k;
}

static const char *vae_tmp_path(const char *file)
{
	static char p[8][512];
	static int i;
	i = (i + 1) % 8;
	snprintf(p[i], sizeof p[i], "%s/%s", vae_tmp, file);
	return p[i];
}

/* Copy SRC to DST with each tensor renamed by fn (NULL: dropped). */
typedef const char *(*VaeRenameFn)(const char *name, char *buf, size_t n);
static void vae_copy_renamed(const char *src, const char *dst, VaeRenameFn fn)
{
	L2Safetensors *st = l2_st_open(src);
	L2StWriter *w = l2_st_writer_new();
	char **names = l2_calloc((size_t)l2_st_count(st) + 1, sizeof *names);
	for (int i = 0; i < l2_st_count(st); i++) {
		const L2Tensor *t = l2_st_tensor(st, i);
		char buf[512];
		const char *n = fn(t->name, buf, sizeof buf);
		if (!n) continue;
		names[i] = l2_strdup(n);
		l2_st_writer_add(w, names[i], t->dtype, t->ndim, t->shape, t->data);
	}
	const char *cfg = l2_st_metadata(st, "config");
	if (cfg) l2_st_writer_meta(w, "config", cfg);
	l2_st_writer_write(w, dst);
	l2_st_writer_free(w);
	for (int i = 0; i < l2_st_count(st); i++) free(names[i]);
	free(names);
	l2_st_close(st);
}

static const char *add_sd_prefix(const char *name, char *buf, size_t n)
{
	snprintf(buf, n, "first_stage_model.%s", name);
	return buf;
}

/* diffusers before 0.15: query / key / value / proj_attn */
static const char *old_attention_names(const char *name, char *buf, size_t n)
{
	static const char *const from[4] = {".to_q.", ".to_k.", ".to_v.", ".to_out.0."};
	static const char *const to[4] = {".query.", ".key.", ".value.", ".proj_attn."};
	for (int i = 0; i < 4; i++) {
		const char *p = strstr(name, from[i]);
		if (p) {
			snprintf(buf, n, "%.*s%s%s", (int)(p - name), name, to[i], p + strlen(from[i]));
			return buf;
		}
	}
	return name;
}

/* The files of each case (written once into vae_tmp):
 *   kl:      diffusers f32, LDM bf16, LDM f16 under first_stage_model.,
 *            diffusers f16 with the older attention names
 *   kl_tiny: diffusers f32 and LDM f16 (scale, shift, groups in the config)
 *   taesd:   diffusers f32; taesd.py's encoder + decoder files, f16 and bf16 */
static void vae_write_files(void)
{
	char p[512];
	snprintf(vae_tmp, sizeof vae_tmp, "%s/l2-test-vae-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(vae_tmp)) l2_die_errno("%s", vae_tmp);
	VaeCase k = vae_case("kl");
	l2_vae_write_random(vae_tmp_path("kl_diffusers_f32.safetensors"), &k.cfg, L2_VAE_LAYOUT_DIFFUSERS, L2_VAE_BOTH, L2_ST_F32, k.seed);
	l2_vae_write_random(vae_tmp_path("kl_ldm_bf16.safetensors"), &k.cfg, L2_VAE_LAYOUT_ORIGINAL, L2_VAE_BOTH, L2_ST_BF16, k.seed);
	l2_vae_write_random(vae_tmp_path("kl_ldm_f16_plain.safetensors"), &k.cfg, L2_VAE_LAYOUT_ORIGINAL, L2_VAE_BOTH, L2_ST_F16, k.seed);
	vae_copy_renamed(vae_tmp_path("kl_ldm_f16_plain.safetensors"), vae_tmp_path("kl_ldm_f16_sd.safetensors"), add_sd_prefix);
	l2_vae_write_random(vae_tmp_path("kl_diffusers_f16_new.safetensors"), &k.cfg, L2_VAE_LAYOUT_DIFFUSERS, L2_VAE_BOTH, L2_ST_F16, k.seed);
	vae_copy_renamed(vae_tmp_path("kl_diffusers_f16_new.safetensors"), vae_tmp_path("kl_diffusers_f16_old.safetensors"),
			 old_attention_names);
	k = vae_case("kl_tiny");
	l2_vae_write_random(vae_tmp_path("kl_tiny_diffusers_f32.safetensors"), &k.cfg, L2_VAE_LAYOUT_DIFFUSERS, L2_VAE_BOTH, L2_ST_F32, k.seed);
	l2_vae_write_random(vae_tmp_path("kl_tiny_ldm_f16.safetensors"), &k.cfg, L2_VAE_LAYOUT_ORIGINAL, L2_VAE_BOTH, L2_ST_F16, k.seed);
	k = vae_case("taesd");
	l2_vae_write_random(vae_tmp_path("taesd_diffusers_f32.safetensors"), &k.cfg, L2_VAE_LAYOUT_DIFFUSERS, L2_VAE_BOTH, L2_ST_F32, k.seed);
	l2_vae_write_random(vae_tmp_path("taesd_encoder_f16.safetensors"), &k.cfg, L2_VAE_LAYOUT_ORIGINAL, L2_VAE_ENCODER, L2_ST_F16, k.seed);
	l2_vae_write_random(vae_tmp_path("taesd_decoder_f16.safetensors"), &k.cfg, L2_VAE_LAYOUT_ORIGINAL, L2_VAE_DECODER, L2_ST_F16, k.seed);
	l2_vae_write_random(vae_tmp_path("taesd_encoder_bf16.safetensors"), &k.cfg, L2_VAE_LAYOUT_ORIGINAL, L2_VAE_ENCODER, L2_ST_BF16, k.seed);
	l2_vae_write_random(vae_tmp_path("taesd_decoder_bf16.safetensors"), &k.cfg, L2_VAE_LAYOUT_ORIGINAL, L2_VAE_DECODER, L2_ST_BF16, k.seed);
	(void)p;
}

static void vae_remove_files(void)
{
	static const char *const files[] = {"kl_diffusers_f32", "kl_ldm_bf16", "kl_ldm_f16_plain", "kl_ldm_f16_sd",
					    "kl_diffusers_f16_new", "kl_diffusers_f16_old", "kl_tiny_diffusers_f32",
					    "kl_tiny_ldm_f16", "taesd_diffusers_f32", "taesd_encoder_f16", "taesd_decoder_f16",
					    "taesd_encoder_bf16", "taesd_decoder_bf16"};
	char f[128];
	for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
		snprintf(f, sizeof f, "%s.safetensors", files[i]);
		unlink(vae_tmp_path(f));
	}
	rmdir(vae_tmp);
}

/* a golden .npy as doubles; *n elements, shape[] */
static double *vae_golden(const char *file, size_t *n, size_t shape[4])
{
	char p[256];
	snprintf(p, sizeof p, VAE_REF "%s", file);
	L2Npy a;
	l2_npy_read(p, &a);
	*n = l2_npy_count(&a);
	for (int i = 0; i < 4; i++) shape[i] = i < a.ndim ? a.shape[i] : 1;
	double *d = l2_malloc(*n * sizeof(double));
	for (size_t i = 0; i < *n; i++) d[i] = a.is_f64 ? ((double *)a.data)[i] : ((float *)a.data)[i];
	l2_npy_free(&a);
	return d;
}

/* max |got - ref| / max |ref| */
static double vae_rel_err(const cnnr *got, const double *ref, size_t n)
{
	double d = 0, m = 0;
	for (size_t i = 0; i < n; i++) {
		double e = fabs(got[i] - ref[i]);
		d = e > d || e != e ? e : d;
		m = fabs(ref[i]) > m ? fabs(ref[i]) : m;
	}
	return d / m;
}

/* Encoder and decoder of case NAME loaded from SPEC (files under vae_tmp)
 * against the goldens, to relative error tol. */
static void vae_parity(const char *name, const char *spec, double tol)
{
	VaeCase k = vae_case(name);
	char full[1024], f[128];
	const char *comma = strchr(spec, ',');
	if (comma) snprintf(full, sizeof full, "%s/%.*s,%s/%s", vae_tmp, (int)(comma - spec), spec, vae_tmp, comma + 1);
	else snprintf(full, sizeof full, "%s/%s", vae_tmp, spec);
	L2Vae *v = l2_vae_load(full, NULL);
	const L2VaeConfig *c = l2_vae_config(v);
	CHECK_MSG(c->kind == k.cfg.kind && c->levels == k.cfg.levels && c->latent == k.cfg.latent && c->ch[0] == k.cfg.ch[0] &&
			  c->layers == k.cfg.layers && c->groups == k.cfg.groups && c->scale == k.cfg.scale && c->shift == k.cfg.shift,
		  "%s: configuration read back differs (levels %d, latent %d, width %d, layers %d, groups %d, scale %g, shift %g)",
		  spec, c->levels, c->latent, c->ch[0], c->layers, c->groups, c->scale, c->shift);
	size_t nx, nz, sx[4], sz[4];
	snprintf(f, sizeof f, "%s_x.npy", name);
	double *xd = vae_golden(f, &nx, sx);
	snprintf(f, sizeof f, "%s_z.npy", name);
	double *zd = vae_golden(f, &nz, sz);
	cnnr *x = l2_malloc(nx * sizeof(cnnr)), *z = l2_malloc(nz * sizeof(cnnr));
	for (size_t i = 0; i < nx; i++) x[i] = (cnnr)xd[i];
	for (size_t i = 0; i < nz; i++) z[i] = (cnnr)zd[i];
	int B = (int)sx[0], H = (int)sx[2], W = (int)sx[3];
	cnnr *out = l2_malloc(nz * sizeof(cnnr)), *out2 = l2_malloc(nz * sizeof(cnnr));
	size_t nr, sr[4];
	if (k.cfg.kind == L2_VAE_KL) {
		snprintf(f, sizeof f, "%s_mean.npy", name);
		double *mean = vae_golden(f, &nr, sr);
		snprintf(f, sizeof f, "%s_logvar.npy", name);
		double *lv = vae_golden(f, &nr, sr);
		CHECK(nr == nz);
		l2_vae_encode_moments(v, x, B, H, W, out, out2);
		double e1 = vae_rel_err(out, mean, nr), e2 = vae_rel_err(out2, lv, nr);
		CHECK_MSG(e1 <= tol && e2 <= tol, "%s: encoder mean %.3g, logvar %.3g relative error (tolerance %g)", spec, e1, e2, tol);
		/* the latents are (mean - shift) * scale */
		l2_vae_encode(v, x, B, H, W, NULL, out);
		for (size_t i = 0; i < nr; i++) mean[i] = (mean[i] - k.cfg.shift) * k.cfg.scale;
		double e3 = vae_rel_err(out, mean, nr);
		CHECK_MSG(e3 <= tol, "%s: latents %.3g relative error", spec, e3);
		printf("# %s: encoder mean %.2e logvar %.2e latents %.2e", spec, e1, e2, e3);
		free(mean), free(lv);
	} else {
		snprintf(f, sizeof f, "%s_latent.npy", name);
		double *lat = vae_golden(f, &nr, sr);
		CHECK(nr == nz);
		l2_vae_encode(v, x, B, H, W, NULL, out);
		for (size_t i = 0; i < nr; i++) lat[i] = (lat[i] - k.cfg.shift) * k.cfg.scale;
		double e = vae_rel_err(out, lat, nr);
		CHECK_MSG(e <= tol, "%s: encoder %.3g relative error (tolerance %g)", spec, e, tol);
		printf("# %s: encoder %.2e", spec, e);
		free(lat);
	}
	size_t nd, sd[4];
	snprintf(f, sizeof f, "%s_dec.npy", name);
	double *dec = vae_golden(f, &nd, sd);
	CHECK(nd == nx);
	l2_vae_decode(v, z, (int)sz[0], (int)sz[2], (int)sz[3], x);
	double e = vae_rel_err(x, dec, nd);
	CHECK_MSG(e <= tol, "%s: decoder %.3g relative error (tolerance %g)", spec, e, tol);
	printf(", decoder %.2e\n", e);
	free(dec), free(xd), free(zd), free(x), free(z), free(out), free(out2);
	l2_vae_free(v);
}

#endif
