/* test_vae.c — lib/models/vae.c in float32 against tests/ref/make_vae.py's
 * float64 PyTorch transcription of SD's KL autoencoder and TAESD.
 *
 * The reference weights are rebuilt here by l2_vae_write_random in every
 * key layout and dtype (vae_cases.h); each file must give the golden
 * encoder and decoder outputs to relative error 1e-5 (max |error| / max
 * |reference|).  The files' key names, shapes and values are checked
 * against make_vae.py's own enumeration of the diffusers, LDM and taesd.py
 * module structures (value checksums per key), and the full-size KL-f8
 * and TAESD key sets load (sparse files of the real shapes).  Wrong files
 * — a U-Net, a CLIP model, another latent size, truncated, a missing or
 * misshapen key, two encoders — are refused with a message naming the
 * problem (forked children).  (test_vae_double.c repeats the parity in
 * double, to 1e-10.)
 *
 *   test_vae                     run the tests
 *   test_vae --write-models DIR  write small random-weight VAEs for the BATS tests */
#include "check.h"
#include "check_child.h"
#include "models/vae.h"
#include "models/clip.h"
#include "core/rng.h"

#include "vae_cases.h"

#include <fcntl.h>
#include <sys/wait.h>

/* ---- parity ------------------------------------------------------------------ */

static void test_kl_diffusers_f32(void) { vae_parity("kl", "kl_diffusers_f32.safetensors", 1e-5); }
static void test_kl_ldm_bf16(void) { vae_parity("kl", "kl_ldm_bf16.safetensors", 1e-5); }
static void test_kl_ldm_f16_sd_prefix(void) { vae_parity("kl", "kl_ldm_f16_sd.safetensors", 1e-5); }
static void test_kl_diffusers_old_names(void) { vae_parity("kl", "kl_diffusers_f16_old.safetensors", 1e-5); }
static void test_kl_tiny_config(void)
{
	vae_parity("kl_tiny", "kl_tiny_diffusers_f32.safetensors", 1e-5);
	vae_parity("kl_tiny", "kl_tiny_ldm_f16.safetensors", 1e-5);
}
static void test_taesd_diffusers_f32(void) { vae_parity("taesd", "taesd_diffusers_f32.safetensors", 1e-5); }
static void test_taesd_split_files(void)
{
	vae_parity("taesd", "taesd_encoder_f16.safetensors,taesd_decoder_f16.safetensors", 1e-5);
	vae_parity("taesd", "taesd_decoder_bf16.safetensors,taesd_encoder_bf16.safetensors", 1e-5);
}

/* one thread and two give the same latents and decoded images, bit for bit,
 * and an image alone the same as in a batch (each image on one thread, one
 * BLAS thread) */
static void test_threads_agree(void)
{
	L2Vae *v = l2_vae_load(vae_tmp_path("kl_diffusers_f32.safetensors"), NULL);
	size_t nx, sx[4];
	double *xd = vae_golden("kl_x.npy", &nx, sx);
	float *x = l2_malloc(nx * sizeof(float));
	for (size_t i = 0; i < nx; i++) x[i] = (float)xd[i];
	int B = (int)sx[0], H = (int)sx[2], W = (int)sx[3];
	size_t nz = (size_t)B * 4 * (H / 8) * (W / 8);
	float *z1 = l2_malloc(nz * sizeof(float)), *z2 = l2_malloc(nz * sizeof(float)), *z3 = l2_malloc(nz * sizeof(float));
	int th = l2_threads;
	l2_threads = 1;
	l2_vae_encode(v, x, B, H, W, NULL, z1);
	l2_threads = 2;
	l2_vae_encode(v, x, B, H, W, NULL, z2);
	/* image 1 alone equals image 1 of the batch */
	l2_vae_encode(v, x + nx / B, 1, H, W, NULL, z3);
	l2_threads = th;
	CHECK(!memcmp(z1, z2, nz * sizeof(float)));
	CHECK(!memcmp(z3, z2 + nz / B, nz / B * sizeof(float)));
	/* the decoder (Winograd convolutions) likewise */
	float *x1 = l2_malloc(nx * sizeof(float)), *x2 = l2_malloc(nx * sizeof(float)), *x3 = l2_malloc(nx / B * sizeof(float));
	l2_threads = 1;
	l2_vae_decode(v, z2, B, H / 8, W / 8, x1);
	l2_threads = 2;
	l2_vae_decode(v, z2, B, H / 8, W / 8, x2);
	l2_vae_decode(v, z2 + nz / B, 1, H / 8, W / 8, x3);
	l2_threads = th;
	CHECK(!memcmp(x1, x2, nx * sizeof(float)));
	CHECK(!memcmp(x3, x2 + nx / B, nx / B * sizeof(float)));
	free(xd), free(x), free(z1), free(z2), free(z3), free(x1), free(x2), free(x3);
	l2_vae_free(v);
}

/* a sampled latent is mean + exp(logvar / 2) * eps, eps from (seed, stream) */
static void test_sample(void)
{
	L2Vae *v = l2_vae_load(vae_tmp_path("kl_tiny_diffusers_f32.safetensors"), NULL);
	const L2VaeConfig *c = l2_vae_config(v);
	size_t nx, sx[4];
	double *xd = vae_golden("kl_tiny_x.npy", &nx, sx);
	float *x = l2_malloc(nx * sizeof(float));
	for (size_t i = 0; i < nx; i++) x[i] = (float)xd[i];
	int B = (int)sx[0], H = (int)sx[2], W = (int)sx[3], f = l2_vae_factor(v);
	size_t per = (size_t)c->latent * (H / f) * (W / f), n = per * B;
	float *m = l2_malloc(n * sizeof(float)), *lv = l2_malloc(n * sizeof(float)), *z = l2_malloc(n * sizeof(float));
	float *z2 = l2_malloc(n * sizeof(float));
	l2_vae_encode_moments(v, x, B, H, W, m, lv);
	uint64_t streams[8] = {7, 100, 3};
	L2VaeSample s = {42, streams};
	l2_vae_encode(v, x, B, H, W, &s, z);
	l2_vae_encode(v, x, B, H, W, &s, z2);
	CHECK(!memcmp(z, z2, n * sizeof(float)));
	double dev = 0;
	for (int b = 0; b < B; b++) {
		L2Rng r;
		l2_rng_init(&r, 42, streams[b]);
		for (size_t i = 0; i < per; i++) {
			size_t k = b * per + i;
			double want = (m[k] + exp(0.5 * lv[k]) * l2_rng_normal(&r) - c->shift) * c->scale;
			CHECK_CLOSE(z[k], want, 1e-6, 1e-5);
			dev += fabs(z[k] - (m[k] - c->shift) * c->scale);
		}
	}
	CHECK(dev > 0.1 * (double)n * c->scale); /* the noise is there */
	free(xd), free(x), free(m), free(lv), free(z), free(z2);
	l2_vae_free(v);
}

/* --scale style override: latents scale with it, decoding divides by it */
static void test_scale_override(void)
{
	L2VaeOptions o = {.scale = 0.5};
	L2Vae *a = l2_vae_load(vae_tmp_path("kl_diffusers_f32.safetensors"), NULL), *b = l2_vae_load(vae_tmp_path("kl_diffusers_f32.safetensors"), &o);
	CHECK(l2_vae_config(a)->scale == 0.18215 && l2_vae_config(b)->scale == 0.5);
	size_t nx, sx[4];
	double *xd = vae_golden("kl_x.npy", &nx, sx);
	float *x = l2_malloc(nx * sizeof(float));
	for (size_t i = 0; i < nx; i++) x[i] = (float)xd[i];
	int B = (int)sx[0], H = (int)sx[2], W = (int)sx[3];
	size_t nz = (size_t)B * 4 * (H / 8) * (W / 8);
	float *za = l2_malloc(nz * sizeof(float)), *zb = l2_malloc(nz * sizeof(float));
	l2_vae_encode(a, x, B, H, W, NULL, za);
	l2_vae_encode(b, x, B, H, W, NULL, zb);
	for (size_t i = 0; i < nz; i++) CHECK_CLOSE(zb[i], za[i] / 0.18215 * 0.5, 1e-6, 1e-5);
	float *ya = l2_malloc(nx * sizeof(float)), *yb = l2_malloc(nx * sizeof(float));
	l2_vae_decode(a, za, B, H / 8, W / 8, ya);
	l2_vae_decode(b, zb, B, H / 8, W / 8, yb);
	for (size_t i = 0; i < nx; i++) CHECK_CLOSE(yb[i], ya[i], 1e-5, 1e-4);
	free(xd), free(x), free(za), free(zb), free(ya), free(yb);
	l2_vae_free(a), l2_vae_free(b);
}

/* ---- key layouts --------------------------------------------------------------- */

/* FILE's tensors against a make_vae.py key list: the same names, shapes and
 * (with checksums) value sums */
static void check_keys(const char *file, const char *keys, int with_sums)
{
	L2Safetensors *st = l2_st_open(file);
	char p[256];
	snprintf(p, sizeof p, VAE_REF "%s", keys);
	size_t len;
	char *txt = l2_read_file(p, &len);
	int n = 0, bad = 0;
	for (char *line = strtok(txt, "\n"); line; line = strtok(NULL, "\n"), n++) {
		char name[256], shape[64];
		double sum = 0, wsum = 0;
		int got = sscanf(line, "%255[^\t]\t%63[^\t]\t%lf\t%lf", name, shape, &sum, &wsum);
		const L2Tensor *t = l2_st_find(st, name);
		if (!t) {
			if (bad++ < 5) printf("# %s: %s missing\n", file, name);
			continue;
		}
		char have[64] = "";
		for (int d = 0; d < t->ndim; d++)
			snprintf(have + strlen(have), sizeof have - strlen(have), "%s%lld", d ? "," : "", (long long)t->shape[d]);
		if (strcmp(have, shape)) {
			if (bad++ < 5) printf("# %s: %s has shape %s, expected %s\n", file, name, have, shape);
			continue;
		}
		if (!with_sums || got < 4) continue;
		float *v = l2_malloc(t->nelem * sizeof(float));
		l2_st_to_f32(st, t, v);
		double s = 0, ws = 0;
		for (size_t i = 0; i < t->nelem; i++) s += v[i], ws += v[i] * (double)(i % 7 + 1);
		free(v);
		if (fabs(s - sum) > 1e-9 * (1 + fabs(sum)) || fabs(ws - wsum) > 1e-9 * (1 + fabs(wsum)))
			if (bad++ < 5) printf("# %s: %s sums %.17g %.17g, expected %.17g %.17g\n", file, name, s, ws, sum, wsum);
	}
	CHECK_MSG(bad == 0 && n == l2_st_count(st), "%s vs %s: %d of %d keys wrong, %d tensors in the file", file, keys, bad,
		  n, l2_st_count(st));
	free(txt);
	l2_st_close(st);
}

static void test_keys_small(void)
{
	check_keys(vae_tmp_path("kl_diffusers_f32.safetensors"), "keys_kl_diffusers.txt", 1);
	check_keys(vae_tmp_path("kl_ldm_bf16.safetensors"), "keys_kl_ldm.txt", 1);
	check_keys(vae_tmp_path("kl_tiny_ldm_f16.safetensors"), "keys_kl_tiny_ldm.txt", 1);
	check_keys(vae_tmp_path("kl_tiny_diffusers_f32.safetensors"), "keys_kl_tiny_diffusers.txt", 1);
	check_keys(vae_tmp_path("taesd_diffusers_f32.safetensors"), "keys_taesd_diffusers.txt", 1);
	check_keys(vae_tmp_path("taesd_encoder_f16.safetensors"), "keys_taesd_orig_encoder.txt", 1);
	check_keys(vae_tmp_path("taesd_decoder_bf16.safetensors"), "keys_taesd_orig_decoder.txt", 1);
}

/* A sparse BF16 file with the key list's names and shapes (zero values):
 * the real key set without 170 MB of data written. */
static void sparse_file(const char *keys, const char *path)
{
	char p[256];
	snprintf(p, sizeof p, VAE_REF "%s", keys);
	size_t len;
	char *txt = l2_read_file(p, &len);
	json_t *h = json_object(), *meta = json_object();
	json_object_set_new(meta, "format", json_string("pt"));
	json_object_set_new(h, "__metadata__", meta);
	uint64_t off = 0;
	for (char *line = strtok(txt, "\n"); line; line = strtok(NULL, "\n")) {
		char name[256], shape[64];
		if (sscanf(line, "%255[^\t]\t%63[^\t\n]", name, shape) != 2) continue;
		json_t *t = json_object(), *s = json_array();
		uint64_t n = 1;
		for (char *q = shape; *q;) {
			long long d = strtoll(q, &q, 10);
			json_array_append_new(s, json_integer(d));
			n *= (uint64_t)d;
			if (*q == ',') q++;
		}
		json_object_set_new(t, "dtype", json_string("BF16"));
		json_object_set_new(t, "shape", s);
		json_t *o = json_array();
		json_array_append_new(o, json_integer((json_int_t)off));
		json_array_append_new(o, json_integer((json_int_t)(off + 2 * n)));
		json_object_set_new(t, "data_offsets", o);
		json_object_set_new(h, name, t);
		off += 2 * n;
	}
	char *hs = json_dumps(h, JSON_COMPACT);
	size_t hl = strlen(hs);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	unsigned char le[8];
	l2_put_le64(le, hl);
	CHECK(fd >= 0 && write(fd, le, 8) == 8 && write(fd, hs, hl) == (ssize_t)hl && ftruncate(fd, (off_t)(8 + hl + off)) == 0);
	close(fd);
	free(hs), free(txt);
	json_decref(h);
}

static void load_full(const char *spec, L2VaeKind kind, int halves)
{
	L2VaeOptions o = {.shapes_only = 1};
	L2Vae *v = l2_vae_load(spec, &o);
	const L2VaeConfig *c = l2_vae_config(v);
	L2VaeConfig d = l2_vae_default_config(kind);
	int ok = c->kind == kind && c->levels == d.levels && c->latent == 4 && c->layers == d.layers && l2_vae_halves(v) == halves &&
		 l2_vae_factor(v) == 8 && c->scale == d.scale;
	for (int i = 0; i < d.levels; i++) ok = ok && c->ch[i] == d.ch[i] && c->enc_blocks[i] == d.enc_blocks[i] && c->dec_blocks[i] == d.dec_blocks[i];
	CHECK_MSG(ok, "%s: not read as the default %s configuration", spec, l2_vae_kind_name(kind));
	l2_vae_free(v);
}

/* The full-size key sets of make_vae.py load (keys and shapes: the values
 * are zeros of a sparse file), and the C enumeration of the
 * canonical (diffusers) names is make_vae.py's. */
static void test_full_size_keys(void)
{
	const char *a = vae_tmp_path("full_a.safetensors"), *b = vae_tmp_path("full_b.safetensors");
	sparse_file("keys_full_kl_diffusers.txt", a);
	load_full(a, L2_VAE_KL, L2_VAE_BOTH);
	sparse_file("keys_full_kl_ldm.txt", a);
	load_full(a, L2_VAE_KL, L2_VAE_BOTH);
	sparse_file("keys_full_taesd_diffusers.txt", a);
	load_full(a, L2_VAE_TAESD, L2_VAE_BOTH);
	sparse_file("keys_full_taesd_orig_encoder.txt", a);
	sparse_file("keys_full_taesd_orig_decoder.txt", b);
	char spec[1100];
	snprintf(spec, sizeof spec, "%s,%s", a, b);
	load_full(spec, L2_VAE_TAESD, L2_VAE_BOTH);
	unlink(a), unlink(b);
	static const struct { L2VaeKind kind; const char *keys; } enums[2] = {{L2_VAE_KL, "keys_full_kl_diffusers.txt"},
									   {L2_VAE_TAESD, "keys_full_taesd_diffusers.txt"}};
	for (int e = 0; e < 2; e++) {
		L2VaeConfig c = l2_vae_default_config(enums[e].kind);
		char p[256];
		snprintf(p, sizeof p, VAE_REF "%s", enums[e].keys);
		size_t len;
		char *txt = l2_read_file(p, &len);
		int i = 0, n = l2_vae_param_count(&c, L2_VAE_BOTH), bad = 0;
		for (char *line = strtok(txt, "\n"); line; line = strtok(NULL, "\n"), i++) {
			int nd;
			int64_t s[4];
			const char *name = l2_vae_param_name(&c, L2_VAE_BOTH, i, &nd, s);
			char want[256], have[320];
			snprintf(want, sizeof want, "%s", line);
			if (!name) { bad++; continue; }
			int k = snprintf(have, sizeof have, "%s\t", name);
			for (int d = 0; d < nd; d++) k += snprintf(have + k, sizeof have - (size_t)k, "%s%lld", d ? "," : "", (long long)s[d]);
			if (strcmp(have, want) && bad++ < 3) printf("# parameter %d: %s, make_vae.py: %s\n", i, have, want);
		}
		CHECK_MSG(bad == 0 && i == n, "%s: %d of %d differ (C lists %d)", enums[e].keys, bad, i, n);
		free(txt);
	}
}

/* ---- refusals --------------------------------------------------------------------- */

static void load_spec(const void *spec) { l2_vae_free(l2_vae_load(spec, NULL)); }
static void load_latent4(const void *spec)
{
	L2VaeOptions o = {.latent_channels = 4};
	l2_vae_free(l2_vae_load(spec, &o));
}
static void load_decoder_only(const void *spec)
{
	L2VaeOptions o = {.halves = L2_VAE_ENCODER};
	l2_vae_free(l2_vae_load(spec, &o));
}

static void refuse(void (*fn)(const void *), const char *spec, const char *want)
{
	char err[1024];
	int rc = check_child(fn, spec, err, sizeof err);
	if (getenv("VAE_TEST_SHOW")) printf("# %s", err);
	const char *nl = strchr(err, '\n');
	CHECK_MSG(rc == 1 && strstr(err, want) && nl && nl[1] == 0,
		  "%s: exit %d, message \"%s\" (expected one line with \"%s\")", spec, rc, err, want);
}

static const char *drop_conv2(const char *name, char *buf, size_t n)
{
	return strcmp(name, "decoder.up_blocks.1.resnets.2.conv2.bias") ? name : NULL;
}

/* the same tensor in the LDM layout: decoder level 4 - 1 - 1 = 2 */
static const char *drop_conv2_ldm(const char *name, char *buf, size_t n)
{
	return strcmp(name, "decoder.up.2.block.2.conv2.bias") ? name : NULL;
}

static const char *unet_names(const char *name, char *buf, size_t n)
{
	/* a diffusers U-Net's kind of names: no encoder./decoder. halves */
	if (!strncmp(name, "encoder.", 8)) {
		snprintf(buf, n, "%s", name + 8);
		return buf;
	}
	if (!strncmp(name, "decoder.", 8)) return NULL;
	return name;
}

static void test_refusals(void)
{
	/* a U-Net: its own names, and time_embedding */
	const char *unet = vae_tmp_path("unet.safetensors");
	vae_copy_renamed(vae_tmp_path("kl_tiny_diffusers_f32.safetensors"), unet, unet_names);
	{
		L2Safetensors *st = l2_st_open(unet);
		L2StWriter *w = l2_st_writer_new();
		for (int i = 0; i < l2_st_count(st); i++) {
			const L2Tensor *t = l2_st_tensor(st, i);
			l2_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data);
		}
		static const float te[4] = {1, 2, 3, 4};
		l2_st_writer_add_f32(w, "time_embedding.linear_1.weight", 2, (int64_t[2]){2, 2}, te);
		l2_st_writer_write(w, vae_tmp_path("unet2.safetensors"));
		l2_st_writer_free(w);
		l2_st_close(st);
	}
	refuse(load_spec, vae_tmp_path("unet2.safetensors"), "not a VAE but a diffusers U-Net");
	refuse(load_spec, unet, "not a VAE: none of encoder.conv_in.weight");
	/* CLIP */
	L2ClipConfig cc = {.width = 64, .layers = 1, .patch = 8, .res = 16, .embed = 16};
	l2_clip_write_random(vae_tmp_path("clip.safetensors"), &cc, L2_CLIP_LAYOUT_OPENAI, 1, 1);
	refuse(load_spec, vae_tmp_path("clip.safetensors"), "not a VAE but a CLIP model");
	/* another latent size */
	VaeCase k = vae_case("kl_tiny");
	k.cfg.latent = 16;
	l2_vae_write_random(vae_tmp_path("kl16.safetensors"), &k.cfg, L2_VAE_LAYOUT_DIFFUSERS, L2_VAE_BOTH, L2_ST_F16, 1);
	refuse(load_latent4, vae_tmp_path("kl16.safetensors"), "a VAE with 16 latent channels, not the 4 expected");
	load_spec(vae_tmp_path("kl16.safetensors")); /* loads when no size is asked for */
	/* truncated: the data cut short, then the header itself */
	size_t len;
	char *bytes = l2_read_file(vae_tmp_path("kl_tiny_ldm_f16.safetensors"), &len);
	FILE *f = fopen(vae_tmp_path("cut.safetensors"), "wb");
	CHECK(f && fwrite(bytes, 1, len - 1000, f) == len - 1000);
	fclose(f);
	refuse(load_spec, vae_tmp_path("cut.safetensors"), "cut.safetensors: tensor ");
	f = fopen(vae_tmp_path("cut.safetensors"), "wb");
	CHECK(f && fwrite(bytes, 1, 500, f) == 500);
	fclose(f);
	refuse(load_spec, vae_tmp_path("cut.safetensors"), "runs past the end of the file");
	free(bytes);
	/* a missing tensor, named */
	vae_copy_renamed(vae_tmp_path("kl_diffusers_f32.safetensors"), vae_tmp_path("drop.safetensors"), drop_conv2);
	refuse(load_spec, vae_tmp_path("drop.safetensors"), "tensor decoder.up_blocks.1.resnets.2.conv2.bias: missing");
	vae_copy_renamed(vae_tmp_path("kl_ldm_f16_plain.safetensors"), vae_tmp_path("ldm_drop.safetensors"), drop_conv2_ldm);
	refuse(load_spec, vae_tmp_path("ldm_drop.safetensors"),
	       "tensor decoder.up.2.block.2.conv2.bias: missing (a KL autoencoder decoder in the LDM layout has it)");
	/* misshapen: a taesd decoder whose first conv is of another latent size than the encoder */
	k = vae_case("taesd");
	k.cfg.latent = 3;
	l2_vae_write_random(vae_tmp_path("taesd_dec3.safetensors"), &k.cfg, L2_VAE_LAYOUT_ORIGINAL, L2_VAE_DECODER, L2_ST_F16, 1);
	char spec[1100];
	snprintf(spec, sizeof spec, "%s,%s", vae_tmp_path("taesd_encoder_f16.safetensors"), vae_tmp_path("taesd_dec3.safetensors"));
	refuse(load_spec, spec, "the encoder and the decoder disagree");
	snprintf(spec, sizeof spec, "%s,%s", vae_tmp_path("taesd_encoder_f16.safetensors"), vae_tmp_path("taesd_encoder_bf16.safetensors"));
	refuse(load_spec, spec, "both hold the encoder");
	refuse(load_decoder_only, vae_tmp_path("taesd_decoder_f16.safetensors"),
	       "holds no encoder (taesd.py keeps the halves in two files: give ENCODER_FILE,DECODER_FILE)");
	refuse(load_spec, vae_tmp_path("missing.safetensors"), "missing.safetensors");
	static const char *const junk[] = {"unet.safetensors", "unet2.safetensors", "clip.safetensors", "kl16.safetensors",
					   "cut.safetensors", "drop.safetensors", "ldm_drop.safetensors", "taesd_dec3.safetensors"};
	for (size_t i = 0; i < sizeof junk / sizeof *junk; i++) unlink(vae_tmp_path(junk[i]));
}

/* a misshapen tensor: the error gives the key and both shapes */
static const char *rename_swap(const char *name, char *buf, size_t n)
{
	/* give conv_in.weight the name of the conv_out weight: wrong shape under that key */
	if (!strcmp(name, "encoder.conv_out.weight")) return NULL;
	if (!strcmp(name, "encoder.conv_in.weight")) return name;
	if (!strcmp(name, "decoder.conv_out.weight")) {
		snprintf(buf, n, "encoder.conv_out.weight");
		return buf;
	}
	return name;
}

/* conv_in.bias (16) and conv_norm_out.bias (32) of kl_tiny swapped */
static const char *swap_biases(const char *name, char *buf, size_t n)
{
	if (!strcmp(name, "encoder.conv_in.bias")) return "encoder.conv_norm_out.bias";
	if (!strcmp(name, "encoder.conv_norm_out.bias")) return "encoder.conv_in.bias";
	return name;
}

static void load_shapes_only(const void *spec)
{
	L2VaeOptions o = {.shapes_only = 1};
	l2_vae_free(l2_vae_load(spec, &o));
}

static void test_misshapen(void)
{
	vae_copy_renamed(vae_tmp_path("kl_tiny_diffusers_f32.safetensors"), vae_tmp_path("shape.safetensors"), rename_swap);
	refuse(load_spec, vae_tmp_path("shape.safetensors"), "encoder.conv_out has 3 outputs: not mean and log-variance");
	vae_copy_renamed(vae_tmp_path("kl_tiny_diffusers_f32.safetensors"), vae_tmp_path("shape.safetensors"), swap_biases);
	refuse(load_spec, vae_tmp_path("shape.safetensors"), "tensor encoder.conv_in.bias: expected shape (16,), got (32,)");
	refuse(load_shapes_only, vae_tmp_path("shape.safetensors"), "tensor encoder.conv_in.bias: expected shape (16,), got (32,)");
	unlink(vae_tmp_path("shape.safetensors"));
}

/* the identity: SHA-256 of the file(s); matching by half */
static void test_identity(void)
{
	char spec[1100], why[256];
	snprintf(spec, sizeof spec, "%s,%s", vae_tmp_path("taesd_encoder_f16.safetensors"), vae_tmp_path("taesd_decoder_f16.safetensors"));
	L2Vae *pair = l2_vae_load(spec, NULL);
	L2VaeOptions dec = {.halves = L2_VAE_DECODER};
	L2Vae *d = l2_vae_load(vae_tmp_path("taesd_decoder_f16.safetensors"), &dec);
	L2Vae *other = l2_vae_load(vae_tmp_path("taesd_decoder_bf16.safetensors"), &dec);
	const char *id = l2_vae_identity(pair);
	CHECK(strlen(id) == 129 && id[64] == ',');
	CHECK(strlen(l2_vae_identity(d)) == 64 && !strcmp(l2_vae_identity(d), id + 65));
	CHECK(l2_vae_identity_matches(pair, id, L2_VAE_ENCODER, why, sizeof why));
	CHECK(l2_vae_identity_matches(d, id, L2_VAE_DECODER, why, sizeof why));
	CHECK(!l2_vae_identity_matches(other, id, L2_VAE_DECODER, why, sizeof why));
	CHECK(strstr(why, "taesd_decoder_bf16.safetensors has SHA-256") != NULL);
	/* only the encoder recorded: the decoder file is not covered */
	char enc_only[65];
	snprintf(enc_only, sizeof enc_only, "%.64s", id);
	CHECK(!l2_vae_identity_matches(d, enc_only, L2_VAE_DECODER, why, sizeof why));
	l2_vae_free(pair), l2_vae_free(d), l2_vae_free(other);
}

/* Small random-weight VAEs of factor 8 for the BATS tests (l2-encode-latents,
 * latent diffusion): KL [8, 16, 16, 16] x 1 layer, 8 groups, scale 0.5 (in
 * the metadata config), diffusers f16 and LDM f32; the same with 16 latent
 * channels; TAESD 8 wide, diffusers and taesd.py's two files. */
static void write_models(const char *dir)
{
	char p[600];
	L2VaeConfig kl = l2_vae_default_config(L2_VAE_KL), tae = l2_vae_default_config(L2_VAE_TAESD);
	static const int ch[4] = {8, 16, 16, 16};
	memcpy(kl.ch, ch, sizeof ch);
	kl.layers = 1, kl.groups = 8, kl.scale = 0.5;
	tae.ch[0] = 8;
	snprintf(p, sizeof p, "%s/kl.safetensors", dir);
	l2_vae_write_random(p, &kl, L2_VAE_LAYOUT_DIFFUSERS, L2_VAE_BOTH, L2_ST_F16, 5);
	snprintf(p, sizeof p, "%s/kl_ldm.safetensors", dir);
	l2_vae_write_random(p, &kl, L2_VAE_LAYOUT_ORIGINAL, L2_VAE_BOTH, L2_ST_F32, 5);
	kl.latent = 16;
	snprintf(p, sizeof p, "%s/kl16.safetensors", dir);
	l2_vae_write_random(p, &kl, L2_VAE_LAYOUT_DIFFUSERS, L2_VAE_BOTH, L2_ST_F16, 5);
	snprintf(p, sizeof p, "%s/taesd.safetensors", dir);
	l2_vae_write_random(p, &tae, L2_VAE_LAYOUT_DIFFUSERS, L2_VAE_BOTH, L2_ST_F16, 6);
	snprintf(p, sizeof p, "%s/taesd_encoder.safetensors", dir);
	l2_vae_write_random(p, &tae, L2_VAE_LAYOUT_ORIGINAL, L2_VAE_ENCODER, L2_ST_F16, 6);
	snprintf(p, sizeof p, "%s/taesd_decoder.safetensors", dir);
	l2_vae_write_random(p, &tae, L2_VAE_LAYOUT_ORIGINAL, L2_VAE_DECODER, L2_ST_F16, 6);
}

int main(int argc, char **argv)
{
	l2_init(argc, argv);
	l2_quiet = 1;
	if (argc == 3 && !strcmp(argv[1], "--write-models")) {
		write_models(argv[2]);
		return 0;
	}
	vae_write_files();
	RUN(test_kl_diffusers_f32);
	RUN(test_kl_ldm_bf16);
	RUN(test_kl_ldm_f16_sd_prefix);
	RUN(test_kl_diffusers_old_names);
	RUN(test_kl_tiny_config);
	RUN(test_taesd_diffusers_f32);
	RUN(test_taesd_split_files);
	RUN(test_threads_agree);
	RUN(test_sample);
	RUN(test_scale_override);
	RUN(test_keys_small);
	RUN(test_full_size_keys);
	RUN(test_refusals);
	RUN(test_misshapen);
	RUN(test_identity);
	vae_remove_files();
	l2_vae_thread_cleanup();
	return check_done();
}
