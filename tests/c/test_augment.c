/* test_augment.c — lib/method/augment.c (DiffAugment) in float64: this file
 * compiles the autodiff and the augmentation with -DL2_AD_DOUBLE.
 *   - each policy and all three against a PyTorch float64 transcription with
 *     fixed parameters (tests/ref/make_augment.py): images and dL/dx;
 *   - dL/dx of each policy by central finite differences on random images
 *     with drawn parameters (ad_translate alone is checked in test_ad.c);
 *   - the draws: ranges, every translation and cutout place reached, the
 *     same stream giving the same parameters;
 *   - the policy's parsing and spelling. */
#define L2_AD_DOUBLE 1
#include "../../lib/nn/ad.c"
#include "../../lib/method/augment.c"

#include "check.h"
#include "core/rng.h"
#include "io/safetensors.h"

#include <unistd.h>

static const L2Tensor *need(L2Safetensors *st, const char *name, int dtype)
{
	const L2Tensor *t = l2_st_find(st, name);
	if (!t || t->dtype != dtype) l2_die("augment golden lacks %s", name);
	return t;
}

static double max_abs_diff(const double *a, const double *b, size_t n)
{
	double w = 0;
	for (size_t i = 0; i < n; i++) w = fmax(w, fabs(a[i] - b[i]));
	return w;
}

static void test_vs_torch(void)
{
	L2Safetensors *st = l2_st_open("tests/ref/augment/augment.safetensors");
	const L2Tensor *x = need(st, "x", L2_ST_F64), *R = need(st, "R", L2_ST_F64);
	const double *pc = need(st, "color_params", L2_ST_F64)->data;
	const int32_t *pi = need(st, "int_params", L2_ST_I32)->data;
	int shape[4];
	for (int i = 0; i < 4; i++) shape[i] = (int)x->shape[i];
	int N = shape[0];
	L2AugParams p[8];
	for (int n = 0; n < N; n++)
		p[n] = (L2AugParams){.brightness = pc[3 * n], .saturation = pc[3 * n + 1], .contrast = pc[3 * n + 2],
				     .ty = pi[4 * n], .tx = pi[4 * n + 1], .cy = pi[4 * n + 2], .cx = pi[4 * n + 3]};
	static const struct {
		const char *name;
		int policy;
	} cases[] = {{"color", L2_AUG_COLOR}, {"translation", L2_AUG_TRANSLATION}, {"cutout", L2_AUG_CUTOUT},
		     {"all", L2_AUG_COLOR | L2_AUG_TRANSLATION | L2_AUG_CUTOUT}};
	AdGraph *g = ad_graph_new();
	for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
		char yn[32], dn[32];
		snprintf(yn, sizeof yn, "%s_y", cases[c].name), snprintf(dn, sizeof dn, "%s_dx", cases[c].name);
		const double *y_want = need(st, yn, L2_ST_F64)->data, *dx_want = need(st, dn, L2_ST_F64)->data;
		ad_graph_reset(g);
		AdTensor *xi = ad_input_rg(g, 4, shape, x->data);
		AdTensor *y = l2_augment_apply(g, xi, cases[c].policy, p);
		ad_backward(g, ad_sum_all(g, ad_mul(g, y, ad_input(g, 4, shape, R->data))));
		double ey = max_abs_diff(y->v, y_want, y->n), ed = max_abs_diff(xi->g, dx_want, xi->n);
		printf("# %s vs PyTorch float64: images %.2e, dL/dx %.2e\n", cases[c].name, ey, ed);
		CHECK_MSG(ey < 1e-14 && ed < 1e-14, "%s: images %.3g, dL/dx %.3g from PyTorch", cases[c].name, ey, ed);
	}
	ad_graph_free(g);
	l2_st_close(st);
}

/* L = sum(T(x) * Rw): analytic dL/dx against central differences. */
static double loss(AdGraph *g, const int *shape, const double *x, const double *Rw, int policy, const L2AugParams *p,
		   double *dx)
{
	ad_graph_reset(g);
	AdTensor *xi = dx ? ad_input_rg(g, 4, shape, x) : ad_input(g, 4, shape, x);
	AdTensor *y = l2_augment_apply(g, xi, policy, p);
	AdTensor *l = ad_sum_all(g, ad_mul(g, y, ad_input(g, 4, shape, Rw)));
	if (dx) {
		ad_backward(g, l);
		memcpy(dx, xi->g, xi->n * sizeof(double));
	}
	return l->v[0];
}

static void test_gradcheck(void)
{
	enum { N = 4, C = 3, H = 8, W = 9 };
	int shape[4] = {N, C, H, W};
	size_t n = (size_t)N * C * H * W;
	double *x = l2_malloc(n * sizeof *x), *Rw = l2_malloc(n * sizeof *Rw), *dx = l2_malloc(n * sizeof *dx);
	for (size_t i = 0; i < n; i++) x[i] = 2 * check_uniform() - 1, Rw[i] = check_uniform() - 0.3;
	L2AugParams p[N];
	for (int b = 0; b < N; b++) {
		L2Rng r;
		l2_rng_init(&r, 5, (uint64_t)b);
		l2_augment_draw(&r, H, W, &p[b]);
	}
	AdGraph *g = ad_graph_new();
	for (int policy = 1; policy <= 7; policy++) {
		loss(g, shape, x, Rw, policy, p, dx);
		double worst = 0, big = 0;
		for (size_t i = 0; i < n; i++) {
			double v = x[i], h = 1e-5;
			x[i] = v + h;
			double lp = loss(g, shape, x, Rw, policy, p, NULL);
			x[i] = v - h;
			double lm = loss(g, shape, x, Rw, policy, p, NULL);
			x[i] = v;
			double num = (lp - lm) / (2 * h);
			worst = fmax(worst, fabs(num - dx[i])), big = fmax(big, fabs(num));
			CHECK_MSG(fabs(num - dx[i]) <= 1e-7 + 1e-6 * fabs(num), "policy %d: dL/dx[%zu] %.10g, numeric %.10g", policy,
				  i, dx[i], num);
		}
		printf("# policy %d: dL/dx against central differences, worst %.2e of the largest entry\n", policy, worst / big);
	}
	ad_graph_free(g);
	free(x), free(Rw), free(dx);
}

static void test_draws(void)
{
	enum { H = 32, W = 16, M = 4000 };
	int ty_seen[9] = {0}, tx_seen[5] = {0}, cy_seen[H + 1] = {0}, cx_seen[W + 1] = {0};
	for (int i = 0; i < M; i++) {
		L2Rng r, r2;
		l2_rng_init(&r, 3, (uint64_t)i);
		L2AugParams p, q;
		l2_augment_draw(&r, H, W, &p);
		CHECK(p.brightness >= -0.5 && p.brightness < 0.5);
		CHECK(p.saturation >= 0 && p.saturation < 2);
		CHECK(p.contrast >= 0.5 && p.contrast < 1.5);
		/* translation: round(32 / 8) = 4 and round(16 / 8) = 2 */
		CHECK(p.ty >= -4 && p.ty <= 4 && p.tx >= -2 && p.tx <= 2);
		/* cutout sides 16 and 8 (even): the centre cy + 8 in [0, 32], cx + 4 in [0, 16] */
		CHECK(p.cy >= -8 && p.cy <= H - 8 && p.cx >= -4 && p.cx <= W - 4);
		if (p.ty >= -4 && p.ty <= 4) ty_seen[p.ty + 4] = 1;
		if (p.tx >= -2 && p.tx <= 2) tx_seen[p.tx + 2] = 1;
		if (p.cy >= -8 && p.cy <= H - 8) cy_seen[p.cy + 8] = 1;
		if (p.cx >= -4 && p.cx <= W - 4) cx_seen[p.cx + 4] = 1;
		l2_rng_init(&r2, 3, (uint64_t)i);
		l2_augment_draw(&r2, H, W, &q);
		CHECK(!memcmp(&p, &q, sizeof p));
	}
	int all = 1;
	for (int i = 0; i < 9; i++) all &= ty_seen[i];
	for (int i = 0; i < 5; i++) all &= tx_seen[i];
	for (int i = 0; i <= H; i++) all &= cy_seen[i];
	for (int i = 0; i <= W; i++) all &= cx_seen[i];
	CHECK_MSG(all, "some translation or cutout place never drawn in %d draws", M);
}

static void test_parse(void)
{
	char bad[32] = "", s[64];
	CHECK(l2_augment_parse("color,translation,cutout", bad, sizeof bad) == 7);
	CHECK(l2_augment_parse("cutout,color", bad, sizeof bad) == (L2_AUG_COLOR | L2_AUG_CUTOUT));
	CHECK(l2_augment_parse("none", bad, sizeof bad) == 0);
	CHECK(l2_augment_parse("translation", bad, sizeof bad) == L2_AUG_TRANSLATION);
	CHECK(l2_augment_parse("color,colr", bad, sizeof bad) == -1 && !strcmp(bad, "colr"));
	CHECK(l2_augment_parse("color,", bad, sizeof bad) == -1 && !strcmp(bad, ""));
	CHECK(l2_augment_parse("colors", bad, sizeof bad) == -1 && !strcmp(bad, "colors"));
	l2_augment_str(L2_AUG_CUTOUT | L2_AUG_COLOR, s, sizeof s);
	CHECK(!strcmp(s, "color,cutout"));
	l2_augment_str(0, s, sizeof s);
	CHECK(!strcmp(s, "none"));
	l2_augment_str(7, s, sizeof s);
	CHECK(!strcmp(s, "color,translation,cutout"));
}

int main(void)
{
	if (access("tests/ref/augment/augment.safetensors", R_OK) && chdir("../..")) {}
	RUN(test_vs_torch);
	RUN(test_gradcheck);
	RUN(test_draws);
	RUN(test_parse);
	return check_done();
}
