/* test_diffusion.c — lib/models/diffusion.c in float64: this file compiles the autodiff
 * core and the denoiser with -DL2_AD_DOUBLE.
 *   - against the PyTorch float64 transcription (tests/ref/make_diffusion.py, tiny
 *     config): D, u, the loss under each weighting, the gradient of every parameter
 *     and of the input, one Adam step + forced renormalisation, the EMA's gamma and
 *     beta — all to 1e-10 relative;
 *   - central finite differences of the whole net: the loss over 24 random parameter
 *     entries and the denoiser over the input;
 *   - shards: the gradient of a batch split into shards on replicas equals the
 *     whole batch's; dropout masks follow the sample, not its shard.
 * The float build (what the tools run) is checked by test_diffusion_float.c. */
#define L2_AD_DOUBLE 1
#include "../../lib/nn/ad.c"
#include "../../lib/models/diffusion.c"

#include "check.h"
#include "diffusion_golden.h"
#include "io/safetensors.h"

#include <unistd.h>

/* A float64 golden as a malloc'd double array (n elements expected). */
static double *ref(const char *name, size_t n)
{
	const L2Tensor *t = l2_st_find(IO, name);
	if (!t) {
		printf("# golden %s missing\n", name);
		exit(1);
	}
	if (t->nelem != n || t->dtype != L2_ST_F64) {
		printf("# golden %s: %zu elements (dtype %d), expected %zu\n", name, t->nelem, t->dtype, n);
		exit(1);
	}
	double *d = l2_malloc(n * sizeof *d);
	memcpy(d, t->data, n * sizeof *d);
	return d;
}

static L2Diffusion *load_tiny(void)
{
	L2Safetensors *st = l2_st_open(REF_W);
	L2DiffusionConfig c;
	if (l2_diffusion_config_parse(l2_st_metadata(st, "l2.diffusion.config"), &c)) {
		printf("# bad config in %s\n", REF_W);
		exit(1);
	}
	L2Diffusion *m = l2_diffusion_new(&c, 1);
	int np;
	AdTensor **p = l2_diffusion_params(m, &np, NULL);
	CHECK_MSG(np == l2_st_count(st), "%d tensors, the golden has %d", np, l2_st_count(st));
	for (int k = 0; k < np; k++) {
		const L2Tensor *t = l2_st_find(st, p[k]->name);
		if (!t || t->nelem != p[k]->n) {
			printf("# %s: missing or misshapen in %s\n", p[k]->name, REF_W);
			exit(1);
		}
		float *buf = l2_malloc(t->nelem * sizeof(float));
		l2_st_to_f32(st, t, buf);
		for (size_t i = 0; i < t->nelem; i++) p[k]->v[i] = buf[i];
		free(buf);
	}
	l2_st_close(st);
	return m;
}

/* max |got - want| <= tol * max |want| (per tensor) */
static double rel_err(const adr *got, const double *want, size_t n)
{
	double mx = 0, e = 0;
	for (size_t i = 0; i < n; i++) {
		mx = fmax(mx, fabs(want[i]));
		e = fmax(e, fabs(got[i] - want[i]));
		if (got[i] != got[i]) return INFINITY;
	}
	return e / (mx > 0 ? mx : 1);
}

#define N 3
static double *Y, *EPS, *SIG, *COND;
static int CHW;

static void load_inputs(const L2DiffusionConfig *c)
{
	free(Y), free(EPS), free(SIG), free(COND);
	CHW = c->cimg * c->res * c->res;
	Y = ref("y", (size_t)N * CHW), EPS = ref("eps", (size_t)N * CHW), SIG = ref("sigma", N);
	COND = ref("cond", (size_t)N * c->cdim);
}

static void test_against_torch(void)
{
	L2Diffusion *m = load_tiny();
	const L2DiffusionConfig *c = l2_diffusion_config(m);
	load_inputs(c);
	int np, nt;
	AdTensor **p = l2_diffusion_params(m, &np, &nt);
	AdGraph *g = ad_graph_new();
	L2DiffusionWeighting w = {L2_DIFF_W_UNCERTAINTY, 0};
	double mse[N], u[N];
	ad_zero_grads(p, nt);
	AdTensor *L = l2_diffusion_loss(g, m, Y, EPS, SIG, COND, NULL, N, N, &w, mse, u);
	ad_backward(g, L);
	double *want = ref("loss", 1);
	CHECK_CLOSE(L->v[0], want[0], 0, 1e-10);
	printf("# loss %.12g (torch %.12g)\n", L->v[0], want[0]);
	free(want);
	want = ref("u", N);
	CHECK(rel_err(u, want, N) < 1e-10);
	free(want);
	double worst = 0;
	const char *wname = "";
	for (int k = 0; k < nt; k++) {
		char nm[256];
		snprintf(nm, sizeof nm, "grad.%s", p[k]->name);
		want = ref(nm, p[k]->n);
		double e = rel_err(p[k]->g, want, p[k]->n);
		if (e > worst) worst = e, wname = p[k]->name;
		CHECK_MSG(e < 1e-10, "%s: relative error %.3g", nm, e);
		free(want);
	}
	printf("# %d parameter gradients, worst relative error %.2g (%s)\n", nt, worst, wname);
	/* D and the input gradient of sum(D * R) */
	ad_graph_reset(g);
	AdTensor *X = ad_input_rg(g, 4, (int[]){N, c->cimg, c->res, c->res}, NULL);
	for (int n = 0; n < N; n++)
		for (int i = 0; i < CHW; i++) X->v[n * CHW + i] = Y[n * CHW + i] + SIG[n] * EPS[n * CHW + i];
	AdTensor *Cd = ad_input(g, 2, (int[]){N, c->cdim}, COND);
	AdTensor *D = l2_diffusion_denoise(g, m, X, SIG, Cd, NULL, NULL);
	want = ref("D", D->n);
	double eD = rel_err(D->v, want, D->n);
	CHECK_MSG(eD < 1e-10, "D: relative error %.3g", eD);
	free(want);
	AdTensor *R = ad_tensor(g, D->ndim, D->shape);
	for (size_t i = 0; i < D->n; i++) R->v[i] = sin(0.7 + 1.37 * (double)i) + 0.1;
	ad_zero_grads(p, nt);
	ad_backward(g, ad_sum_all(g, ad_mul(g, D, R)));
	want = ref("grad_x", X->n);
	double ex = rel_err(X->g, want, X->n);
	CHECK_MSG(ex < 1e-10, "grad_x: relative error %.3g", ex);
	printf("# D relative error %.2g, input gradient %.2g\n", eD, ex);
	free(want);
	/* the other weightings */
	const char *wn[2] = {"loss_edm", "loss_minsnr"};
	L2DiffusionWeighting ws[2] = {{L2_DIFF_W_EDM, 0}, {L2_DIFF_W_MINSNR, 5}};
	for (int k = 0; k < 2; k++) {
		ad_graph_reset(g);
		L = l2_diffusion_loss(g, m, Y, EPS, SIG, COND, NULL, N, N, &ws[k], NULL, NULL);
		want = ref(wn[k], 1);
		CHECK_CLOSE(L->v[0], want[0], 0, 1e-10);
		free(want);
	}
	ad_graph_free(g);
	l2_diffusion_free(m);
}

/* One Adam step as torch.optim.Adam (float64 moments), then the renormalisation. */
static void test_adam_renorm(void)
{
	L2Diffusion *m = load_tiny();
	int np, nt;
	AdTensor **p = l2_diffusion_params(m, &np, &nt);
	AdGraph *g = ad_graph_new();
	L2DiffusionWeighting w = {L2_DIFF_W_UNCERTAINTY, 0};
	ad_zero_grads(p, nt);
	ad_backward(g, l2_diffusion_loss(g, m, Y, EPS, SIG, COND, NULL, N, N, &w, NULL, NULL));
	double lr = 0.01, b1 = 0.9, b2 = 0.99, eps = 1e-8;
	for (int k = 0; k < nt; k++)
		for (size_t i = 0; i < p[k]->n; i++) {
			double gr = p[k]->g[i], mm = (1 - b1) * gr, vv = (1 - b2) * gr * gr;
			double mh = mm / (1 - b1), den = sqrt(vv) / sqrt(1 - b2) + eps;
			p[k]->v[i] -= lr * mh / den;
		}
	l2_diffusion_renormalize(m);
	double worst = 0;
	for (int k = 0; k < np; k++) {
		char nm[256];
		snprintf(nm, sizeof nm, "adam.%s", p[k]->name);
		double *want = ref(nm, p[k]->n);
		double e = rel_err(p[k]->v, want, p[k]->n);
		worst = fmax(worst, e);
		CHECK_MSG(e < 1e-10, "%s: relative error %.3g", nm, e);
		free(want);
	}
	printf("# after Adam + renormalisation: worst relative error %.2g\n", worst);
	ad_graph_free(g);
	l2_diffusion_free(m);
}

static void test_ema_schedule(void)
{
	double *gam = ref("ema_gamma", 2), *beta = ref("ema_beta", 10);
	double stds[2] = {0.05, 0.10};
	for (int k = 0; k < 2; k++) {
		double gm = l2_diffusion_ema_gamma(stds[k]);
		CHECK_CLOSE(gm, gam[k], 0, 1e-12);
		for (int t = 1; t <= 5; t++) CHECK_CLOSE(l2_diffusion_ema_beta(gm, t), beta[k * 5 + t - 1], 1e-15, 1e-11);
	}
	CHECK_CLOSE(l2_diffusion_ema_gamma(0.10), 6.937204, 1e-6, 0);
	CHECK_CLOSE(l2_diffusion_ema_gamma(0.05), 16.972199, 1e-6, 0);
	CHECK(l2_diffusion_ema_beta(6.9, 1) == 0);
	/* learning rate: warm-up, constant, inverse square root decay */
	CHECK_CLOSE(l2_diffusion_lr(0.01, 0, 10, 100), 0.001, 0, 1e-15);
	CHECK_CLOSE(l2_diffusion_lr(0.01, 50, 10, 100), 0.01, 0, 1e-15);
	CHECK_CLOSE(l2_diffusion_lr(0.01, 400, 10, 100), 0.005, 0, 1e-15);
	free(gam), free(beta);
}

/* ---- finite differences -------------------------------------------------------------------- */

static double loss_value(L2Diffusion *m, AdGraph *g)
{
	L2DiffusionWeighting w = {L2_DIFF_W_UNCERTAINTY, 0};
	ad_graph_reset(g);
	ad_graph_set_grad(g, 0);
	double v = l2_diffusion_loss(g, m, Y, EPS, SIG, COND, NULL, N, N, &w, NULL, NULL)->v[0];
	ad_graph_set_grad(g, 1);
	return v;
}

static void test_finite_differences(void)
{
	L2Diffusion *m = load_tiny();
	const L2DiffusionConfig *c = l2_diffusion_config(m);
	int np, nt;
	AdTensor **p = l2_diffusion_params(m, &np, &nt);
	AdGraph *g = ad_graph_new();
	L2DiffusionWeighting w = {L2_DIFF_W_UNCERTAINTY, 0};
	ad_zero_grads(p, nt);
	ad_graph_reset(g);
	ad_backward(g, l2_diffusion_loss(g, m, Y, EPS, SIG, COND, NULL, N, N, &w, NULL, NULL));
	/* 24 entries: the small tensors (gain, embedding) and random ones elsewhere */
	double worst = 0;
	int bad = 0;
	for (int t = 0; t < 24; t++) {
		/* (with condition tokens: their projection and the middle attention's keys and values) */
		int k = t < 4 ? (t == 0 ? m->out_gain : t == 1 ? (m->emb_cond >= 0 ? m->emb_cond : m->emb_tok) : t == 2 ? m->lv_lin
				 : m->dec[0].cond_kv >= 0 ? m->dec[0].cond_kv : m->emb_lin0)
			      : (int)(check_rand_u64() % (uint64_t)nt);
		size_t i = (size_t)(check_rand_u64() % p[k]->n);
		/* central differences at h and h/2, Richardson-extrapolated (the O(h^2) term
		 * cancels: the sigma = 0.01 sample's lambda ~ 1e4 makes it large) */
		double v = p[k]->v[i], h = 1e-3 * fmax(1, fabs(v)), d[2], lp = 0;
		for (int s = 0; s < 2; s++) {
			double hs = s ? h / 2 : h;
			p[k]->v[i] = v + hs;
			lp = loss_value(m, g);
			p[k]->v[i] = v - hs;
			double lm = loss_value(m, g);
			d[s] = (lp - lm) / (2 * hs);
		}
		p[k]->v[i] = v;
		double num = (4 * d[1] - d[0]) / 3, ana = p[k]->g[i];
		double e = fabs(num - ana) / (1e-9 * fabs(lp) + fabs(num));
		worst = fmax(worst, e);
		if (e > 1e-6 && bad++ < 3) printf("# %s[%zu]: analytic %.10g numeric %.10g\n", p[k]->name, i, ana, num);
	}
	printf("# loss over 24 parameter entries: worst relative error %.2g\n", worst);
	CHECK(bad == 0);
	/* the denoiser over its input, sum(D * R) */
	int n = N * CHW;
	double *x = l2_malloc(n * sizeof *x);
	for (int b = 0; b < N; b++)
		for (int i = 0; i < CHW; i++) x[b * CHW + i] = Y[b * CHW + i] + SIG[b] * EPS[b * CHW + i];
	ad_graph_reset(g);
	AdTensor *X = ad_input_rg(g, 4, (int[]){N, c->cimg, c->res, c->res}, x);
	AdTensor *D = l2_diffusion_denoise(g, m, X, SIG, ad_input(g, 2, (int[]){N, c->cdim}, COND), NULL, NULL);
	double *R = l2_malloc(D->n * sizeof *R);
	for (size_t i = 0; i < D->n; i++) R[i] = sin(0.7 + 1.37 * (double)i) + 0.1;
	AdTensor *Rt = ad_input(g, D->ndim, D->shape, R);
	ad_backward(g, ad_sum_all(g, ad_mul(g, D, Rt)));
	double *gx = l2_malloc(n * sizeof *gx);
	memcpy(gx, X->g, n * sizeof *gx);
	worst = 0, bad = 0;
	ad_graph_set_grad(g, 0);
	for (int t = 0; t < 16; t++) {
		int i = (int)(check_rand_u64() % (uint64_t)n);
		double v = x[i], h = 1e-5 * fmax(1, fabs(v)), f[2];
		for (int s = 0; s < 2; s++) {
			x[i] = v + (s ? -h : h);
			ad_graph_reset(g);
			AdTensor *Xs = ad_input(g, 4, (int[]){N, c->cimg, c->res, c->res}, x);
			AdTensor *Ds = l2_diffusion_denoise(g, m, Xs, SIG, ad_input(g, 2, (int[]){N, c->cdim}, COND), NULL, NULL);
			double acc = 0;
			for (size_t k = 0; k < Ds->n; k++) acc += Ds->v[k] * R[k];
			f[s] = acc;
		}
		x[i] = v;
		double num = (f[0] - f[1]) / (2 * h);
		double e = fabs(num - gx[i]) / (1e-7 + fabs(num));
		worst = fmax(worst, e);
		if (e > 1e-6 && bad++ < 3) printf("# x[%d]: analytic %.10g numeric %.10g\n", i, gx[i], num);
	}
	ad_graph_set_grad(g, 1);
	printf("# denoiser over 16 input entries: worst relative error %.2g\n", worst);
	CHECK(bad == 0);
	free(x), free(R), free(gx);
	ad_graph_free(g);
	l2_diffusion_free(m);
}

/* A batch split over replicas gives the whole batch's gradient (sum of shard
 * gradients, each shard's loss scaled by 1 / batch); dropout follows the sample. */
static void test_shards_dropout(void)
{
	L2Diffusion *m = load_tiny();
	m->c.dropout = 0.3;
	const L2DiffusionConfig *c = l2_diffusion_config(m);
	int np, nt;
	AdTensor **p = l2_diffusion_params(m, &np, &nt);
	AdGraph *g = ad_graph_new();
	L2DiffusionWeighting w = {L2_DIFF_W_UNCERTAINTY, 0};
	uint64_t keys[N] = {11, 22, 33};
	ad_zero_grads(p, nt);
	AdTensor *L = l2_diffusion_loss(g, m, Y, EPS, SIG, COND, keys, N, N, &w, NULL, NULL);
	double whole = L->v[0];
	ad_backward(g, L);
	L2Diffusion *r0 = l2_diffusion_replica(m), *r1 = l2_diffusion_replica(m);
	AdTensor **p0 = l2_diffusion_params(r0, NULL, NULL), **p1 = l2_diffusion_params(r1, NULL, NULL);
	ad_graph_reset(g);
	AdTensor *L0 = l2_diffusion_loss(g, r0, Y, EPS, SIG, COND, keys, 2, N, &w, NULL, NULL);
	double l0 = L0->v[0];
	ad_backward(g, L0);
	ad_graph_reset(g);
	AdTensor *L1 = l2_diffusion_loss(g, r1, Y + 2 * CHW, EPS + 2 * CHW, SIG + 2, COND + 2 * c->cdim, keys + 2, 1, N, &w,
					 NULL, NULL);
	double l1 = L1->v[0];
	ad_backward(g, L1);
	CHECK_CLOSE(l0 + l1, whole, 0, 1e-12);
	double worst = 0;
	for (int k = 0; k < nt; k++)
		for (size_t i = 0; i < p[k]->n; i++) {
			double s = p0[k]->g[i] + p1[k]->g[i];
			worst = fmax(worst, fabs(s - p[k]->g[i]) / (1e-12 + fabs(p[k]->g[i])));
		}
	printf("# shards vs whole batch (dropout 0.3): worst relative gradient difference %.2g\n", worst);
	CHECK(worst < 1e-9);
	/* and the values are shared, not copied */
	CHECK(p0[3]->v == p[3]->v && p0[3]->g != p[3]->g);
	/* dropout does something */
	m->c.dropout = 0;
	ad_graph_reset(g);
	double nodrop = l2_diffusion_loss(g, m, Y, EPS, SIG, COND, keys, N, N, &w, NULL, NULL)->v[0];
	CHECK(fabs(nodrop - whole) > 1e-6 * fabs(whole));
	l2_diffusion_free(r0), l2_diffusion_free(r1);
	ad_graph_free(g);
	l2_diffusion_free(m);
}

static void test_config(void)
{
	L2DiffusionConfig c, d;
	char js[1024];
	const char *names[3] = {"tiny", "small", "base"};
	double gmac[3] = {0.12, 0.42, 1.65}; /* DIFFUSION.md §3's table */
	for (int k = 0; k < 3; k++) {
		CHECK(l2_diffusion_preset(names[k], 32, 512, &c) == 0);
		CHECK(l2_diffusion_check(&c) == NULL);
		l2_diffusion_config_json(&c, js, sizeof js);
		CHECK(l2_diffusion_config_parse(js, &d) == 0);
		CHECK(memcmp(&c, &d, sizeof c) == 0);
		double f = l2_diffusion_flops(&c) * 1e-9;
		printf("# %s: %.3f GMAC per forward\n", names[k], f);
		CHECK(fabs(f - gmac[k]) < 0.25 * gmac[k]);
	}
	CHECK(l2_diffusion_preset("huge", 32, 512, &c) == -1);
	CHECK(l2_diffusion_config_parse("{\"res\":32}", &d) == -1);
	CHECK(l2_diffusion_config_parse("not json", &d) == -1);
	l2_diffusion_preset("small", 32, 512, &c);
	c.patch = 3;
	CHECK(l2_diffusion_check(&c) != NULL);
	/* patch 2 at 64x64 costs what 32x32 costs, but for the wider input and output convolutions */
	c.patch = 2, c.res = 64;
	CHECK(l2_diffusion_check(&c) == NULL);
	l2_diffusion_config_json(&c, js, sizeof js);
	CHECK(l2_diffusion_config_parse(js, &d) == 0 && d.patch == 2);
	double f2 = l2_diffusion_flops(&c);
	c.patch = 1, c.res = 32;
	double f1 = l2_diffusion_flops(&c);
	printf("# small: 64x64 patch 2 %.3f GMAC, 32x32 %.3f GMAC\n", f2 * 1e-9, f1 * 1e-9);
	CHECK(f2 > f1 && f2 < 1.02 * f1);
	c.patch = 4, c.res = 8;
	CHECK(l2_diffusion_check(&c) != NULL); /* a 2x2 grid */
	/* cross-attention conditioning: in the JSON only when used (old files read as 0) */
	l2_diffusion_preset("small", 32, 512, &c);
	CHECK(c.cond_tokens == 0);
	l2_diffusion_config_json(&c, js, sizeof js);
	CHECK(strstr(js, "cond_tokens") == NULL);
	c.cond_tokens = 4;
	CHECK(l2_diffusion_check(&c) == NULL);
	l2_diffusion_config_json(&c, js, sizeof js);
	CHECK(l2_diffusion_config_parse(js, &d) == 0 && d.cond_tokens == 4 && !memcmp(&c, &d, sizeof c));
	CHECK(l2_diffusion_flops(&c) > f1);
	c.cdim = 0;
	CHECK(l2_diffusion_check(&c) != NULL);
	c.cdim = 512, c.cond_tokens = 65;
	CHECK(l2_diffusion_check(&c) != NULL);
	L2DiffusionWeighting w;
	CHECK(l2_diffusion_weighting_parse("min-snr:5", &w) == 0 && w.kind == L2_DIFF_W_MINSNR && w.gamma == 5);
	CHECK(l2_diffusion_weighting_parse("min-snr:", &w) == -1);
	CHECK(l2_diffusion_weighting_parse("edm", &w) == 0 && w.kind == L2_DIFF_W_EDM);
	CHECK(l2_diffusion_weighting_parse("uniform", &w) == -1);
}

int main(void)
{
	if (access("tests/ref/diffusion/tiny_io.safetensors", R_OK) && chdir("../..")) {}
	RUN(test_config);
	use_golden("tiny");
	RUN(test_against_torch);
	RUN(test_adam_renorm);
	RUN(test_ema_schedule);
	RUN(test_finite_differences);
	RUN(test_shards_dropout);
	/* space-to-depth in, depth-to-space out: its own goldens and finite differences */
	use_golden("patch2");
	RUN(test_against_torch);
	RUN(test_adam_renorm);
	RUN(test_finite_differences);
	/* condition tokens attended by the attention layers */
	use_golden("tokens");
	RUN(test_against_torch);
	RUN(test_adam_renorm);
	RUN(test_finite_differences);
	l2_st_close(IO);
	free(Y), free(EPS), free(SIG), free(COND);
	return check_done();
}
