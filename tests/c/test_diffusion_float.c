/* test_diffusion_float.c — lib/models/diffusion.c as the tools run it, in float32:
 *   - the PyTorch transcription's goldens (tests/ref/make_diffusion.py): D, u, loss,
 *     every parameter gradient, one step of lib/nn/optim.h's Adam + the forced
 *     renormalisation, to 1e-5 relative (of each tensor's largest entry);
 *   - weights files: save, read back, metadata, refusal of wrong and damaged files;
 *   - the loaded model (diffusion_model.c, the tape-free forward): equal to the
 *     goldens and to the autodiff forward at the small preset, for any batch split
 *     and thread count. */
#include "models/diffusion.h"
#include "nn/optim.h"
#include "method/diffusion_train.h"
#include "method/latents.h"
#include "io/safetensors.h"
#include "core/util.h"

#include "check.h"
#include "diffusion_golden.h"
#include "check_child.h"

#include <sys/wait.h>
#include <unistd.h>

#define N 3

static char dir[256];

static float *ref(const char *name, size_t n)
{
	const L2Tensor *t = l2_st_find(IO, name);
	if (!t || t->nelem != n) {
		printf("# golden %s missing or misshapen\n", name);
		exit(1);
	}
	float *d = l2_malloc(n * sizeof *d);
	l2_st_to_f32(IO, t, d);
	return d;
}

static double rel_err(const float *got, const float *want, size_t n)
{
	double mx = 0, e = 0;
	for (size_t i = 0; i < n; i++) {
		if (got[i] != got[i]) return INFINITY;
		mx = fmax(mx, fabs(want[i]));
		e = fmax(e, fabs((double)got[i] - want[i]));
	}
	return e / (mx > 0 ? mx : 1);
}

static L2Diffusion *load_tiny(void)
{
	L2DiffusionConfig c;
	char feat[64];
	l2_diffusion_read_config(REF_W, &c, feat, sizeof feat);
	CHECK(!strcmp(feat, "caption"));
	L2Diffusion *m = l2_diffusion_new(&c, 5);
	l2_diffusion_load_weights(REF_W, m);
	return m;
}

static float *Y, *EPS, *COND, *SIGF;
static double SIG[N];
static int CHW;

static void test_goldens_float(void)
{
	L2Diffusion *m = load_tiny();
	const L2DiffusionConfig *c = l2_diffusion_config(m);
	CHW = c->cimg * c->res * c->res;
	free(Y), free(EPS), free(COND), free(SIGF);
	Y = ref("y", (size_t)N * CHW), EPS = ref("eps", (size_t)N * CHW), COND = ref("cond", (size_t)N * c->cdim);
	SIGF = ref("sigma", N);
	for (int n = 0; n < N; n++) SIG[n] = SIGF[n]; /* 0.01, 0.7, 40 */
	SIG[0] = 0.01, SIG[1] = 0.7, SIG[2] = 40;
	int np, nt;
	AdTensor **p = l2_diffusion_params(m, &np, &nt);
	AdGraph *g = ad_graph_new();
	L2DiffusionWeighting w = {L2_DIFF_W_UNCERTAINTY, 0};
	double mse[N], u[N];
	ad_zero_grads(p, nt);
	AdTensor *L = l2_diffusion_loss(g, m, Y, EPS, SIG, COND, NULL, N, N, &w, mse, u);
	ad_backward(g, L);
	float *want = ref("loss", 1);
	CHECK_CLOSE(L->v[0], want[0], 0, 1e-5);
	free(want);
	want = ref("u", N);
	for (int n = 0; n < N; n++) CHECK_CLOSE(u[n], want[n], 1e-6, 1e-5);
	free(want);
	double worst = 0;
	for (int k = 0; k < nt; k++) {
		char nm[256];
		snprintf(nm, sizeof nm, "grad.%s", p[k]->name);
		want = ref(nm, p[k]->n);
		double e = rel_err(p[k]->g, want, p[k]->n);
		worst = fmax(worst, e);
		CHECK_MSG(e < 1e-5, "%s: relative error %.3g", nm, e);
		free(want);
	}
	printf("# float32: %d gradients, worst relative error %.2g\n", nt, worst);
	/* lib/nn/optim.h's Adam (torch's), then the renormalisation */
	L2Adam *opt = l2_adam_new(p, nt, 0.9, 0.99, 1e-8, 0);
	l2_adam_step(opt, 0.01);
	l2_diffusion_renormalize(m);
	/* A first Adam step moves an entry by lr g / (|g| + 1e-8): where |g| is near 1e-8 it
	 * turns the gradient's float rounding into a visible difference, so entries whose
	 * golden gradient is below 1e-6 take the golden's value before the comparison (the
	 * renormalisation mixes a row's entries; the gradients themselves are checked above). */
	worst = 0;
	int nsmall = 0;
	for (int k = 0; k < np; k++) {
		char nm[256];
		snprintf(nm, sizeof nm, "adam.%s", p[k]->name);
		want = ref(nm, p[k]->n);
		if (k < nt) {
			snprintf(nm, sizeof nm, "grad.%s", p[k]->name);
			float *gw = ref(nm, p[k]->n);
			for (size_t i = 0; i < p[k]->n; i++)
				if (fabsf(gw[i]) < 1e-6f && p[k]->v[i] != want[i]) p[k]->v[i] = want[i], nsmall++;
			free(gw);
			snprintf(nm, sizeof nm, "adam.%s", p[k]->name);
		}
		double e = rel_err(p[k]->v, want, p[k]->n);
		worst = fmax(worst, e);
		CHECK_MSG(e < 1e-5, "%s: relative error %.3g", nm, e);
		free(want);
	}
	printf("# float32: after Adam + renormalisation, worst relative error %.2g (%d entries of |g| < 1e-6 set)\n", worst,
	       nsmall);
	l2_adam_free(opt);
	ad_graph_free(g);
	l2_diffusion_free(m);
}

static void test_model_goldens(void)
{
	L2Diffusion *net = load_tiny();
	const L2DiffusionConfig *c = l2_diffusion_config(net);
	L2DiffusionModel *m = l2_diffusion_model_from(net);
	float *x = l2_malloc((size_t)N * CHW * sizeof(float)), *out = l2_malloc((size_t)N * CHW * sizeof(float));
	for (int n = 0; n < N; n++)
		for (int i = 0; i < CHW; i++) x[n * CHW + i] = (float)(Y[n * CHW + i] + SIG[n] * EPS[n * CHW + i]);
	float *want = ref("D", (size_t)N * CHW);
	l2_threads = 1;
	l2_diffusion_model_denoise(m, x, SIG, COND, N, out);
	double e = rel_err(out, want, (size_t)N * CHW);
	printf("# loaded model: D relative error %.2g\n", e);
	CHECK(e < 1e-5);
	(void)c;
	free(want), free(x), free(out);
	l2_diffusion_model_free(m);
	l2_diffusion_free(net);
}

/* The small preset with random weights (gain made non-zero): the tape-free forward
 * against the autodiff forward, for batch splits over 1 and 3 threads; at 16x16, and
 * at 32x32 with patch 2 (VS_PATCH), with condition tokens (VS_TOKENS). */
static int VS_PATCH = 1, VS_TOKENS = 0;
static void test_model_vs_autodiff(void)
{
	L2DiffusionConfig c;
	int P = VS_PATCH, res = 16 * P;
	l2_diffusion_preset("small", res, 7, &c);
	c.patch = P, c.cond_tokens = VS_TOKENS;
	c.attn_res[0] = 4, c.attn_res[1] = 8, c.nattn = 2;
	L2Diffusion *net = l2_diffusion_new(&c, 3);
	int np;
	AdTensor **p = l2_diffusion_params(net, &np, NULL);
	for (int i = 0; i < np; i++)
		if (!strcmp(p[i]->name, "out.gain")) p[i]->v[0] = 0.8f;
	int B = 5, chw = 3 * res * res;
	float *x = l2_malloc((size_t)B * chw * sizeof(float)), *cond = l2_malloc((size_t)B * 7 * sizeof(float));
	double sig[5] = {0.002, 0.3, 1.1, 9, 80};
	for (int i = 0; i < B * chw; i++) x[i] = (float)(check_normal() * 0.8);
	for (int n = 0; n < B; n++) {
		double s = 0;
		for (int k = 0; k < 7; k++) cond[n * 7 + k] = (float)check_normal(), s += cond[n * 7 + k] * cond[n * 7 + k];
		for (int k = 0; k < 7; k++) cond[n * 7 + k] = n == 2 ? 0 : (float)(cond[n * 7 + k] / sqrt(s));
	}
	AdGraph *g = ad_graph_new();
	ad_graph_set_grad(g, 0);
	AdTensor *D = l2_diffusion_denoise(g, net, ad_input(g, 4, (int[]){B, 3, res, res}, x), sig,
					   ad_input(g, 2, (int[]){B, 7}, cond), NULL, NULL);
	L2DiffusionModel *m = l2_diffusion_model_from(net);
	float *o1 = l2_malloc((size_t)B * chw * sizeof(float)), *o3 = l2_malloc((size_t)B * chw * sizeof(float));
	l2_threads = 1;
	l2_diffusion_model_denoise(m, x, sig, cond, B, o1);
	/* per image, against the autodiff forward */
	for (int n = 0; n < B; n++) {
		double e = rel_err(o1 + n * chw, D->v + n * chw, chw);
		printf("# sigma %g: model vs autodiff relative error %.2g\n", sig[n], e);
		CHECK(e < 2e-5);
	}
	/* a fresh model on 3 threads (persistent workers, called twice) */
	L2DiffusionModel *m3 = l2_diffusion_model_from(net);
	l2_threads = 3;
	l2_diffusion_model_denoise(m3, x, sig, cond, B, o3);
	l2_diffusion_model_denoise(m3, x, sig, cond, B, o3);
	CHECK(rel_err(o3, o1, (size_t)B * chw) < 1e-6);
	/* one image at a time */
	for (int n = 0; n < B; n++) l2_diffusion_model_denoise(m3, x + n * chw, sig + n, cond + n * 7, 1, o3 + n * chw);
	CHECK(rel_err(o3, o1, (size_t)B * chw) < 1e-6);
	/* NULL condition = every row null */
	float *zc = l2_calloc((size_t)B * 7, sizeof(float));
	l2_diffusion_model_denoise(m3, x, sig, zc, B, o1);
	l2_diffusion_model_denoise(m3, x, sig, NULL, B, o3);
	CHECK(!memcmp(o1, o3, (size_t)B * chw * sizeof(float)));
	l2_threads = 1;
	free(zc), free(x), free(cond), free(o1), free(o3);
	l2_diffusion_model_free(m), l2_diffusion_model_free(m3);
	ad_graph_free(g);
	l2_diffusion_free(net);
}

/* The sampler's network callback: CFG pairs and autoguidance rows, results
 * independent of the sampler's batch and of the thread count. */
static void test_sampler_net(void)
{
	L2DiffusionConfig c;
	l2_diffusion_preset("tiny", 16, 6, &c);
	L2Diffusion *net = l2_diffusion_new(&c, 9), *gnet = l2_diffusion_new(&c, 10);
	int np;
	AdTensor **p = l2_diffusion_params(net, &np, NULL);
	for (int i = 0; i < np; i++)
		if (!strcmp(p[i]->name, "out.gain")) p[i]->v[0] = 0.6f;
	p = l2_diffusion_params(gnet, &np, NULL);
	for (int i = 0; i < np; i++)
		if (!strcmp(p[i]->name, "out.gain")) p[i]->v[0] = 0.4f;
	L2DiffusionModel *m = l2_diffusion_model_from(net), *gm = l2_diffusion_model_from(gnet);
	float conds[2 * 6];
	for (int i = 0; i < 12; i++) conds[i] = (float)(i % 6 == i / 6 ? 1 : 0);
	int n = 5, cond[5] = {0, 1, 0, 1, 1};
	size_t e = (size_t)3 * 16 * 16;
	float *a = l2_malloc(n * e * sizeof(float)), *b = l2_malloc(n * e * sizeof(float));
	L2SampleConfig sc;
	l2_sample_config_defaults(&sc);
	sc.steps = 6, sc.guidance.w = 2.5, sc.seed = 3, sc.batch = 5;
	for (int autog = 0; autog < 2; autog++) {
		L2DiffusionNet dn;
		l2_diffusion_net_init(&dn, m, autog ? gm : NULL, conds, 2);
		sc.guidance.autoguide = autog;
		l2_threads = 1, sc.batch = 5;
		l2_sample_images(&sc, l2_diffusion_net, &dn, n, e, cond, NULL, a, NULL, NULL, NULL);
		l2_threads = 2, sc.batch = 2;
		l2_sample_images(&sc, l2_diffusion_net, &dn, n, e, cond, NULL, b, NULL, NULL, NULL);
		double mx = 0, md = 0;
		for (size_t i = 0; i < n * e; i++) mx = fmax(mx, fabs(a[i])), md = fmax(md, fabs(a[i] - b[i]));
		printf("# %s: samples within |x| <= %.3g, batch 5 / 1 thread vs batch 2 / 2 threads: max difference %.2g\n",
		       autog ? "autoguidance" : "CFG", mx, md);
		CHECK(md <= 1e-5);
		CHECK(mx > 0.01 && isfinite(mx));
		l2_diffusion_net_free(&dn);
	}
	l2_threads = 1;
	free(a), free(b);
	l2_diffusion_model_free(m), l2_diffusion_model_free(gm);
	l2_diffusion_free(net), l2_diffusion_free(gnet);
}

/* Training steps give the same bytes for any thread count (fixed shards, streams per
 * sample), and the EMAs and statistics are what they say. */
static void test_train_threads(void)
{
	L2DiffusionConfig c;
	l2_diffusion_preset("tiny", 16, 6, &c);
	c.dropout = 0.1;
	int B = 10;
	size_t chw = (size_t)3 * 16 * 16;
	float *x = l2_malloc(B * chw * sizeof(float)), *h = l2_malloc((size_t)B * 6 * sizeof(float));
	for (size_t i = 0; i < B * chw; i++) x[i] = (float)(check_uniform() * 2 - 1);
	for (int i = 0; i < B * 6; i++) h[i] = (float)(i % 6 == (i / 6) % 6 ? 1 : 0);
	L2Diffusion *net[2];
	L2DiffusionTrainer *tr[2];
	L2DiffusionStepStats st[2];
	int threads[2] = {1, 3};
	for (int k = 0; k < 2; k++) {
		net[k] = l2_diffusion_new(&c, 4);
		l2_threads = threads[k];
		tr[k] = l2_diffusion_trainer_new(net[k], &(L2DiffusionTrainConfig){
			.lr = 0.01, .lr_warmup = 2, .batch = B, .seed = 8, .ema_std = {0.05, 0.1}, .nema = 2, .cond_drop = 0.2,
			.weighting = {L2_DIFF_W_UNCERTAINTY, 0}, .shard = 3});
		for (int s = 0; s < 3; s++) l2_diffusion_train_step(tr[k], x, h, &st[k]);
	}
	l2_threads = 1;
	int np, nt;
	AdTensor **p0 = l2_diffusion_params(net[0], &np, &nt), **p1 = l2_diffusion_params(net[1], NULL, NULL);
	int same = 1, moved = 0;
	L2Adam *a0 = l2_diffusion_trainer_adam(tr[0]), *a1 = l2_diffusion_trainer_adam(tr[1]);
	L2Ema *e0 = l2_diffusion_trainer_ema(tr[0], 1), *e1 = l2_diffusion_trainer_ema(tr[1], 1);
	for (int i = 0; i < nt; i++) {
		same &= !memcmp(p0[i]->v, p1[i]->v, p0[i]->n * sizeof(float));
		same &= !memcmp(a0->m[i], a1->m[i], p0[i]->n * sizeof(float)) && !memcmp(a0->v[i], a1->v[i], p0[i]->n * sizeof(float));
		same &= !memcmp(e0->w[i], e1->w[i], p0[i]->n * sizeof(float));
		moved |= memcmp(e0->w[i], p0[i]->v, p0[i]->n * sizeof(float)) != 0;
	}
	CHECK(same);
	CHECK(moved); /* the EMA lags the weights */
	CHECK(st[0].loss == st[1].loss && isfinite(st[0].loss));
	CHECK(l2_diffusion_trainer_step(tr[0]) == 3 && a0->t == 3);
	int n = 0;
	for (int k = 0; k < L2_DIFF_BANDS; k++) n += st[0].band_n[k];
	CHECK(n == B);
	CHECK_CLOSE(st[0].lr, 0.01, 0, 1e-12);
	printf("# 3 steps on 1 and 3 threads: identical bytes; loss %.4f, mse %.4f\n", st[0].loss, st[0].mse);
	CHECK(l2_diffusion_band(0.001) == 0 && l2_diffusion_band(100) == L2_DIFF_BANDS - 1);
	CHECK(l2_diffusion_band(l2_diffusion_band_edge(3) * 1.0001) == 3);
	for (int k = 0; k < 2; k++) l2_diffusion_trainer_free(tr[k]), l2_diffusion_free(net[k]);
	free(x), free(h);
}

static void load_child(const void *path) { l2_diffusion_model_free(l2_diffusion_load(path)); }

static void test_files(void)
{
	L2Diffusion *net = load_tiny();
	char path[320], bad[320], err[512];
	snprintf(path, sizeof path, "%s/m.safetensors", dir);
	l2_diffusion_save(path, net, "pseudo", "0.050", 42);
	L2Safetensors *st = l2_st_open(path);
	CHECK(!strcmp(l2_st_metadata(st, "l2.kind"), "diffusion"));
	CHECK(!strcmp(l2_st_metadata(st, "l2.arch"), "l2-edm2e-unet"));
	CHECK(!strcmp(l2_st_metadata(st, "l2.cond.feature"), "pseudo"));
	CHECK(!strcmp(l2_st_metadata(st, "l2.ema"), "0.050"));
	CHECK(!strcmp(l2_st_metadata(st, "l2.step"), "42"));
	CHECK(!strcmp(l2_st_metadata(st, "l2.sigma_data"), "0.5"));
	l2_st_close(st);
	L2DiffusionModel *a = l2_diffusion_load(path), *b = l2_diffusion_model_from(net);
	CHECK(!strcmp(l2_diffusion_model_cond_feature(a), "pseudo"));
	CHECK(l2_diffusion_model_latent(a) == NULL);
	/* a latent model carries its latents' description */
	{
		char lp[320];
		snprintf(lp, sizeof lp, "%s/lat.safetensors", dir);
		l2_diffusion_set_latent(net, "{\"vae_sha256\":\"ab\"}");
		l2_diffusion_save(lp, net, "pseudo", "none", 1);
		L2DiffusionModel *l = l2_diffusion_load(lp);
		CHECK(l2_diffusion_model_latent(l) && !strcmp(l2_diffusion_model_latent(l), "{\"vae_sha256\":\"ab\"}"));
		l2_diffusion_model_free(l);
		l2_diffusion_set_latent(net, NULL);
	}
	CHECK(l2_diffusion_model_config(a)->cdim == 5);
	float *o1 = l2_malloc((size_t)N * CHW * sizeof(float)), *o2 = l2_malloc((size_t)N * CHW * sizeof(float));
	l2_diffusion_model_denoise(a, Y, SIG, COND, N, o1);
	l2_diffusion_model_denoise(b, Y, SIG, COND, N, o2);
	CHECK(!memcmp(o1, o2, (size_t)N * CHW * sizeof(float)));
	free(o1), free(o2);
	l2_diffusion_model_free(a), l2_diffusion_model_free(b);
	/* damaged: one flipped byte in the data, a truncated file, a file of another kind */
	size_t len;
	char *buf = l2_read_file(path, &len);
	snprintf(bad, sizeof bad, "%s/flip.safetensors", dir);
	buf[len - 100] ^= 0x40;
	FILE *f = fopen(bad, "wb");
	fwrite(buf, 1, len, f);
	fclose(f);
	CHECK(check_child(load_child, bad, err, sizeof err) == 1);
	CHECK(strstr(err, "checksum") != NULL);
	snprintf(bad, sizeof bad, "%s/trunc.safetensors", dir);
	buf[len - 100] ^= 0x40;
	f = fopen(bad, "wb");
	fwrite(buf, 1, len / 2, f);
	fclose(f);
	CHECK(check_child(load_child, bad, err, sizeof err) == 1);
	CHECK(strchr(err, '\n') == err + strlen(err) - 1); /* one line */
	free(buf);
	CHECK(check_child(load_child, "tests/ref/gan/d_tiny.safetensors", err, sizeof err) == 1);
	CHECK(strstr(err, "not an l2 diffusion model") != NULL);
	l2_diffusion_free(net);
}

/* test_diffusion_float --write-latent-model OUT JSON CDIM: a random-weight latent model
 * (tiny preset, out.gain non-zero) for the latents JSON describes (feat.NAME.latent of a
 * dataset), with that description in its metadata, for tests/l2-sample-latent.bats. */
static int write_latent_model(const char *out, const char *json, int cdim)
{
	L2LatentInfo li;
	char err[200];
	if (l2_latents_info_parse(json, &li, err, sizeof err)) l2_die("latents: %s", err);
	L2DiffusionConfig c;
	l2_diffusion_preset("tiny", li.h, cdim, &c);
	c.cimg = li.channels, c.attn_res[0] = li.h / 2;
	L2Diffusion *net = l2_diffusion_new(&c, 12);
	int np;
	AdTensor **p = l2_diffusion_params(net, &np, NULL);
	for (int i = 0; i < np; i++)
		if (!strcmp(p[i]->name, "out.gain")) p[i]->v[0] = 0.5f;
	l2_diffusion_set_latent(net, json);
	l2_diffusion_save(out, net, "caption", "none", 0);
	l2_diffusion_free(net);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "--write-latent-model")) {
		l2_init(1, (char *[]){"test_diffusion_float", NULL});
		return write_latent_model(argv[2], argv[3], atoi(argv[4]));
	}
	if (access("tests/ref/diffusion/tiny_io.safetensors", R_OK) && chdir("../..")) {}
	l2_init(1, (char *[]){"test_diffusion_float", NULL});
	snprintf(dir, sizeof dir, "/tmp/l2-test-diffusion-%d", (int)getpid());
	l2_mkdir_p(dir);
	use_golden("tiny");
	RUN(test_goldens_float);
	RUN(test_model_goldens);
	RUN(test_model_vs_autodiff);
	RUN(test_sampler_net);
	RUN(test_train_threads);
	RUN(test_files);
	/* patch 2 */
	use_golden("patch2");
	RUN(test_goldens_float);
	RUN(test_model_goldens);
	VS_PATCH = 2;
	RUN(test_model_vs_autodiff);
	/* condition tokens */
	use_golden("tokens");
	RUN(test_goldens_float);
	RUN(test_model_goldens);
	VS_PATCH = 1, VS_TOKENS = 4;
	RUN(test_model_vs_autodiff);
	l2_st_close(IO);
	free(Y), free(EPS), free(COND), free(SIGF);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd)) {}
	return check_done();
}
