/* test_ad.c — every differentiable op of lib/nn/ad.c checked against central
 * finite differences, in float64: this file compiles the autodiff core
 * itself with -DL2_AD_DOUBLE (the library's float build is not linked in
 * for these symbols).  Loss = sum(y * R) with a fixed random R, so every
 * output element's gradient is exercised.  Inputs are random, never zero. */
#define L2_AD_DOUBLE 1
#include "../../lib/nn/ad.c"

#include "gradcheck.h"
#include "io/safetensors.h"

#include <unistd.h>

static void gradcheck(const char *name, Fwd f, int np, AdTensor **p) { gradcheck_fd(name, f, np, p, 1e-5, 1e-5, 0); }

#define NDIM(...) (int)(sizeof((int[]){__VA_ARGS__}) / sizeof(int))
#define MKP(name, s, off, ...) P(name, NDIM(__VA_ARGS__), SH(__VA_ARGS__), s, off)

/* ---- linear algebra ---- */

static AdTensor *f_linear(AdGraph *g, AdTensor **p) { return ad_linear(g, p[0], p[1], p[2]); }
static AdTensor *f_linear_nob(AdGraph *g, AdTensor **p) { return ad_linear(g, p[0], p[1], NULL); }
static void test_linear(void)
{
	AdTensor *p[3] = {MKP("x", 1, 0, 2, 3, 4), MKP("W", 1, 0, 5, 4), MKP("b", 1, 0, 5)};
	gradcheck("linear", f_linear, 3, p);
	gradcheck("linear-nobias", f_linear_nob, 2, p);
	/* forward against a direct sum */
	ad_graph_reset(G0);
	AdTensor *y = ad_linear(G0, p[0], p[1], p[2]);
	double want = p[2]->v[3];
	for (int k = 0; k < 4; k++) want += p[0]->v[1 * 4 + k] * p[1]->v[3 * 4 + k];
	CHECK_CLOSE(y->v[1 * 5 + 3], want, 1e-12, 1e-12);
	free_params(p, 3);
}

static int mm_ta, mm_tb;
static AdTensor *f_matmul(AdGraph *g, AdTensor **p) { return ad_matmul(g, p[0], p[1], mm_ta, mm_tb); }
static void test_matmul(void)
{
	for (mm_ta = 0; mm_ta < 2; mm_ta++)
		for (mm_tb = 0; mm_tb < 2; mm_tb++) {
			int m = 3, k = 4, n = 2;
			AdTensor *p[2] = {mm_ta ? MKP("a", 1, 0, 2, k, m) : MKP("a", 1, 0, 2, m, k),
					  mm_tb ? MKP("b", 1, 0, 2, n, k) : MKP("b", 1, 0, 2, k, n)};
			gradcheck("matmul", f_matmul, 2, p);
			ad_graph_reset(G0);
			AdTensor *c = ad_matmul(G0, p[0], p[1], mm_ta, mm_tb);
			/* element [1][2][1] by a direct sum */
			double s = 0;
			for (int t = 0; t < k; t++) {
				double a = mm_ta ? p[0]->v[(1 * k + t) * m + 2] : p[0]->v[(1 * m + 2) * k + t];
				double b = mm_tb ? p[1]->v[(1 * n + 1) * k + t] : p[1]->v[(1 * k + t) * n + 1];
				s += a * b;
			}
			CHECK_CLOSE(c->v[(1 * m + 2) * n + 1], s, 1e-12, 1e-12);
			free_params(p, 2);
		}
	/* shared 2-D right operand */
	mm_ta = 0;
	for (mm_tb = 0; mm_tb < 2; mm_tb++) {
		AdTensor *p[2] = {MKP("a", 1, 0, 2, 3, 4), mm_tb ? MKP("b", 1, 0, 5, 4) : MKP("b", 1, 0, 4, 5)};
		gradcheck("matmul-shared", f_matmul, 2, p);
		free_params(p, 2);
	}
}

static const int emb_idx[5] = {2, 0, 2, 3, 1};
static AdTensor *f_emb(AdGraph *g, AdTensor **p) { return ad_embedding(g, p[0], emb_idx, 5); }
static void test_embedding(void)
{
	AdTensor *p[1] = {MKP("W", 1, 0, 4, 3)};
	gradcheck("embedding", f_emb, 1, p);
	free_params(p, 1);
}

/* ---- normalisation ---- */

static AdTensor *f_ln(AdGraph *g, AdTensor **p) { return ad_layernorm(g, p[0], p[1], p[2], 1e-5); }
static void test_layernorm(void)
{
	AdTensor *p[3] = {MKP("x", 1, 0.5, 3, 2, 6), MKP("w", 0.3, 1, 6), MKP("b", 0.3, 0, 6)};
	gradcheck("layernorm", f_ln, 3, p);
	ad_graph_reset(G0);
	AdTensor *y = ad_layernorm(G0, p[0], NULL, NULL, 1e-5);
	double m = 0, v = 0;
	for (int j = 0; j < 6; j++) m += p[0]->v[j] / 6;
	for (int j = 0; j < 6; j++) v += (p[0]->v[j] - m) * (p[0]->v[j] - m) / 6;
	CHECK_CLOSE(y->v[2], (p[0]->v[2] - m) / sqrt(v + 1e-5), 1e-12, 1e-10);
	free_params(p, 3);
}

static AdTensor *f_gn(AdGraph *g, AdTensor **p) { return ad_groupnorm(g, p[0], 2, p[1], p[2], 1e-5); }
static void test_groupnorm(void)
{
	AdTensor *p[3] = {MKP("x", 1, 0.2, 2, 4, 3, 2), MKP("w", 0.3, 1, 4), MKP("b", 0.3, 0, 4)};
	gradcheck("groupnorm", f_gn, 3, p);
	free_params(p, 3);
}

static AdTensor *f_norm(AdGraph *g, AdTensor **p) { return ad_normalize(g, p[0], 1e-12); }
static AdTensor *f_softmax(AdGraph *g, AdTensor **p) { return ad_softmax(g, p[0]); }
static void test_normalize_softmax(void)
{
	AdTensor *p[1] = {MKP("x", 1, 0, 3, 5)};
	gradcheck("normalize", f_norm, 1, p);
	gradcheck("softmax", f_softmax, 1, p);
	free_params(p, 1);
}

/* EDM2's normalisations: per-axis magnitude-preserving norm, forced weight norm */
static int na_axis;
static AdTensor *f_normaxis(AdGraph *g, AdTensor **p) { return ad_normalize_axis(g, p[0], na_axis, 1e-4); }
static AdTensor *f_wn(AdGraph *g, AdTensor **p) { return ad_wn_weight(g, p[0], 1e-4); }
static void test_edm2_norms(void)
{
	AdTensor *p[1] = {MKP("x", 1, 0, 2, 3, 4, 5)};
	for (na_axis = 0; na_axis < 4; na_axis++) gradcheck("normalize_axis", f_normaxis, 1, p);
	/* forward: element [1][2][3][4] over axis 1 by a direct sum */
	ad_graph_reset(G0);
	AdTensor *y = ad_normalize_axis(G0, p[0], 1, 1e-4);
	double ss = 0;
	for (int c = 0; c < 3; c++) ss += p[0]->v[((1 * 3 + c) * 4 + 3) * 5 + 4] * p[0]->v[((1 * 3 + c) * 4 + 3) * 5 + 4];
	CHECK_CLOSE(y->v[((1 * 3 + 2) * 4 + 3) * 5 + 4], p[0]->v[((1 * 3 + 2) * 4 + 3) * 5 + 4] / (1e-4 + sqrt(ss / 3)),
		    1e-14, 1e-13);
	gradcheck("wn_weight 4-D", f_wn, 1, p);
	ad_graph_reset(G0);
	y = ad_wn_weight(G0, p[0], 1e-4);
	for (int o = 0; o < 2; o++) {
		double n2 = 0, m2 = 0;
		for (int i = 0; i < 60; i++) n2 += y->v[o * 60 + i] * y->v[o * 60 + i], m2 += p[0]->v[o * 60 + i] * p[0]->v[o * 60 + i];
		/* unit rows up to eps: |W_o| = |v_o| / (sqrt F eps + |v_o|) */
		CHECK_CLOSE(sqrt(n2), sqrt(m2) / (sqrt(60.0) * 1e-4 + sqrt(m2)), 1e-14, 1e-13);
	}
	free_params(p, 1);
	AdTensor *q[1] = {MKP("v", 1, 0, 5, 7)};
	gradcheck("wn_weight 2-D", f_wn, 1, q);
	free_params(q, 1);
}

static int att_causal;
static AdTensor *f_att(AdGraph *g, AdTensor **p) { return ad_attention(g, p[0], p[1], p[2], att_causal); }
static void test_attention(void)
{
	for (att_causal = 0; att_causal < 2; att_causal++) {
		AdTensor *p[3] = {MKP("q", 1, 0, 2, 2, 4, 3), MKP("k", 1, 0, 2, 2, 4, 3), MKP("v", 1, 0, 2, 2, 4, 3)};
		gradcheck(att_causal ? "attention-causal" : "attention", f_att, 3, p);
		if (att_causal) {
			/* the first query sees only the first key: output = v[0] */
			ad_graph_reset(G0);
			AdTensor *o = ad_attention(G0, p[0], p[1], p[2], 1);
			for (int d = 0; d < 3; d++) CHECK_CLOSE(o->v[d], p[2]->v[d], 1e-14, 1e-12);
		}
		free_params(p, 3);
	}
	/* cross attention: 3 queries over 5 keys */
	att_causal = 0;
	AdTensor *p[3] = {MKP("q", 1, 0, 1, 2, 3, 4), MKP("k", 1, 0, 1, 2, 5, 4), MKP("v", 1, 0, 1, 2, 5, 4)};
	gradcheck("attention-cross", f_att, 3, p);
	free_params(p, 3);
}

static const int xent_lab[4] = {2, 0, 4, 1};
static AdTensor *f_xent(AdGraph *g, AdTensor **p) { return ad_cross_entropy(g, p[0], xent_lab); }
static void test_cross_entropy(void)
{
	AdTensor *p[1] = {MKP("x", 2, 0, 4, 5)};
	gradcheck("cross_entropy", f_xent, 1, p);
	ad_graph_reset(G0);
	AdTensor *l = ad_cross_entropy(G0, p[0], xent_lab);
	double want = 0;
	for (int i = 0; i < 4; i++) {
		double s = 0;
		for (int j = 0; j < 5; j++) s += exp(p[0]->v[i * 5 + j]);
		want += log(s) - p[0]->v[i * 5 + xent_lab[i]];
	}
	CHECK_CLOSE(l->v[0], want / 4, 1e-12, 1e-12);
	free_params(p, 1);
}

/* ---- elementwise ---- */

static int bin_op;
static AdTensor *f_bin(AdGraph *g, AdTensor **p)
{
	switch (bin_op) {
	case 0: return ad_add(g, p[0], p[1]);
	case 1: return ad_sub(g, p[0], p[1]);
	case 2: return ad_mul(g, p[0], p[1]);
	default: return ad_div(g, p[0], p[1]);
	}
}
static void test_broadcast(void)
{
	static const char *nm[] = {"add", "sub", "mul", "div"};
	int shapes[][4] = {{2, 3, 4, 0}, {3, 1, 0, 0}, {1, 0, 0, 0}, {2, 1, 4, 0}, {4, 0, 0, 0}};
	int nds[] = {3, 2, 1, 3, 1};
	for (bin_op = 0; bin_op < 4; bin_op++)
		for (int s = 0; s < 5; s++) {
			AdTensor *p[2] = {MKP("a", 1, 0, 2, 3, 4), P("b", nds[s], shapes[s], 0.3, bin_op == 3 ? 2 : 0)};
			char name[32];
			snprintf(name, sizeof name, "%s-%d", nm[bin_op], s);
			gradcheck(name, f_bin, 2, p);
			/* and with the broadcast operand first */
			AdTensor *q[2] = {p[1], p[0]};
			if (bin_op != 3) gradcheck(name, f_bin, 2, q);
			free_params(p, 2);
		}
	/* [N, C, 1, 1] on [N, C, H, W] (per-channel style scaling) */
	bin_op = 2;
	AdTensor *p[2] = {MKP("a", 1, 0, 2, 3, 2, 2), MKP("b", 1, 0, 2, 3, 1, 1)};
	gradcheck("mul-nc11", f_bin, 2, p);
	free_params(p, 2);
}

static int un_op;
static AdTensor *f_un(AdGraph *g, AdTensor **p)
{
	AdTensor *x = p[0];
	switch (un_op) {
	case 0: return ad_affine(g, x, 1.7, -0.3);
	case 1: return ad_gelu(g, x);
	case 2: return ad_quick_gelu(g, x);
	case 3: return ad_silu(g, x);
	case 4: return ad_sigmoid(g, x);
	case 5: return ad_tanh(g, x);
	case 6: return ad_relu(g, x);
	case 7: return ad_leaky_relu(g, x, 0.2);
	case 8: return ad_exp(g, x);
	case 9: return ad_log(g, ad_square(g, x));
	case 10: return ad_sqrt(g, ad_affine(g, ad_square(g, x), 1, 0.1));
	case 11: return ad_square(g, x);
	case 12: return ad_softplus(g, x);
	case 13: return ad_pow(g, ad_affine(g, ad_square(g, x), 1, 0.5), -0.5);
	case 15: return ad_cos(g, x);
	case 16: return ad_clamp(g, x, -0.8, 1.1);
	default: return ad_leaky_relu_gain(g, x, 0.2, 1.4142135623730951);
	}
}
static void test_unary(void)
{
	static const char *nm[] = {"affine", "gelu", "quick_gelu", "silu", "sigmoid", "tanh", "relu", "leaky_relu",
				   "exp", "log", "sqrt", "square", "softplus", "pow", "leaky_relu_gain", "cos", "clamp"};
	for (un_op = 0; un_op < 17; un_op++) {
		AdTensor *p[1] = {MKP("x", 1.5, 0, 3, 7)};
		/* keep kinks (relu, leaky, clamp's bounds) away from the difference step */
		for (size_t i = 0; i < p[0]->n; i++)
			if (fabs(p[0]->v[i]) < 0.05 || fabs(p[0]->v[i] + 0.8) < 0.05 || fabs(p[0]->v[i] - 1.1) < 0.05)
				p[0]->v[i] = 0.5;
		gradcheck(nm[un_op], f_un, 1, p);
		free_params(p, 1);
	}
	/* forward values against closed forms */
	AdTensor *x = ad_param_new("x", 1, (int[]){1});
	x->v[0] = 0.7;
	ad_graph_reset(G0);
	CHECK_CLOSE(ad_gelu(G0, x)->v[0], 0.7 * 0.5 * (1 + erf(0.7 / sqrt(2))), 1e-15, 1e-14);
	CHECK_CLOSE(ad_quick_gelu(G0, x)->v[0], 0.7 / (1 + exp(-1.702 * 0.7)), 1e-15, 1e-14);
	CHECK_CLOSE(ad_silu(G0, x)->v[0], 0.7 / (1 + exp(-0.7)), 1e-15, 1e-14);
	x->v[0] = -0.7;
	CHECK_CLOSE(ad_leaky_relu(G0, x, 0.2)->v[0], -0.14, 1e-15, 1e-14);
	CHECK_CLOSE(ad_leaky_relu_gain(G0, x, 0.2, 3)->v[0], -0.42, 1e-15, 1e-14);
	x->v[0] = 0.7;
	CHECK_CLOSE(ad_leaky_relu_gain(G0, x, 0.2, 3)->v[0], 2.1, 1e-15, 1e-14);
	CHECK_CLOSE(ad_cos(G0, x)->v[0], cos(0.7), 1e-15, 1e-14);
	CHECK(ad_clamp(G0, x, -0.5, 0.5)->v[0] == 0.5);
	CHECK(ad_clamp(G0, x, 0.8, 0.9)->v[0] == 0.8);
	CHECK(ad_clamp(G0, x, -1, 1)->v[0] == 0.7);
	ad_param_free(x);
}

/* ---- reductions and shapes ---- */

static int red_axis, red_keep, red_mean;
static AdTensor *f_red(AdGraph *g, AdTensor **p)
{
	return red_mean ? ad_mean(g, p[0], red_axis, red_keep) : ad_sum(g, p[0], red_axis, red_keep);
}
static AdTensor *f_sumall(AdGraph *g, AdTensor **p) { return ad_mean_all(g, ad_square(g, p[0])); }
static void test_reductions(void)
{
	AdTensor *p[1] = {MKP("x", 1, 0, 2, 3, 4)};
	for (red_axis = -1; red_axis < 3; red_axis++)
		for (red_keep = 0; red_keep < 2; red_keep++)
			for (red_mean = 0; red_mean < 2; red_mean++) gradcheck("reduce", f_red, 1, p);
	gradcheck("mean_all", f_sumall, 1, p);
	ad_graph_reset(G0);
	AdTensor *s = ad_sum(G0, p[0], 1, 0);
	CHECK(s->ndim == 2 && s->shape[0] == 2 && s->shape[1] == 4);
	CHECK_CLOSE(s->v[1 * 4 + 2], p[0]->v[(1 * 3 + 0) * 4 + 2] + p[0]->v[(1 * 3 + 1) * 4 + 2] + p[0]->v[(1 * 3 + 2) * 4 + 2],
		    1e-14, 1e-13);
	free_params(p, 1);
}

static AdTensor *f_shapes(AdGraph *g, AdTensor **p)
{
	/* x[2,3,4] -> permute(2,0,1) [4,2,3] -> slice axis 2 [1..3) -> concat
	 * with reshape(y) -> transpose; expand a [3] vector; used twice */
	AdTensor *a = ad_permute(g, p[0], (int[]){2, 0, 1});
	AdTensor *b = ad_slice(g, a, 2, 1, 2);
	AdTensor *c = ad_reshape(g, p[1], 3, (int[]){4, 2, -1});
	AdTensor *xs[3] = {b, c, b};
	AdTensor *d = ad_concat(g, xs, 3, 2);               /* [4, 2, 2+3+2] */
	AdTensor *e = ad_transpose(g, d, 0, 2);              /* [7, 2, 4] */
	AdTensor *f = ad_expand(g, ad_reshape(g, p[2], 3, (int[]){1, 1, 4}), 3, (int[]){7, 2, 4});
	return ad_mul(g, e, f);
}
static void test_shapes(void)
{
	AdTensor *p[3] = {MKP("x", 1, 0, 2, 3, 4), MKP("y", 1, 0, 4, 6), MKP("z", 1, 0, 4)};
	gradcheck("shapes", f_shapes, 3, p);
	ad_graph_reset(G0);
	AdTensor *t = ad_permute(G0, p[0], (int[]){2, 0, 1});
	CHECK(t->shape[0] == 4 && t->shape[1] == 2 && t->shape[2] == 3);
	CHECK(t->v[(3 * 2 + 1) * 3 + 2] == p[0]->v[(1 * 3 + 2) * 4 + 3]);
	AdTensor *xs[2] = {p[0], p[0]};
	AdTensor *c = ad_concat(G0, xs, 2, 1);
	CHECK(c->shape[1] == 6 && c->v[(1 * 6 + 4) * 4 + 2] == p[0]->v[(1 * 3 + 1) * 4 + 2]);
	free_params(p, 3);
}

/* ---- images ---- */

static int cv_stride, cv_pad, cv_groups;
static AdTensor *f_conv(AdGraph *g, AdTensor **p) { return ad_conv2d(g, p[0], p[1], p[2], cv_stride, cv_pad, cv_groups); }
static void test_conv2d(void)
{
	/* stride, pad, groups, kh, kw: groups 1 runs the batched GEMM, its dx by
	 * the flipped-weight correlation (stride 1, pad <= k - 1) or col2im */
	int cfg[][5] = {{1, 1, 1, 3, 3}, {2, 1, 2, 3, 3}, {2, 0, 1, 2, 2}, {1, 0, 1, 1, 1}, {1, 2, 4, 3, 3}, {3, 0, 1, 3, 3},
			{1, 1, 1, 1, 1}, {1, 0, 1, 3, 3}, {1, 2, 1, 3, 3}, {1, 1, 1, 2, 3}};
	for (int c = 0; c < 10; c++) {
		cv_stride = cfg[c][0];
		cv_pad = cfg[c][1];
		cv_groups = cfg[c][2];
		int C = 4, O = 4, kh = cfg[c][3], kw = cfg[c][4];
		AdTensor *p[3] = {MKP("x", 1, 0, 2, C, 5, 6), P("w", 4, SH(O, C / cv_groups, kh, kw), 0.5, 0), MKP("b", 1, 0, O)};
		char name[40];
		snprintf(name, sizeof name, "conv2d s%d p%d g%d k%d", cv_stride, cv_pad, cv_groups, kh);
		gradcheck(name, f_conv, 3, p);
		/* forward: one output element by a direct sum */
		ad_graph_reset(G0);
		AdTensor *y = ad_conv2d(G0, p[0], p[1], p[2], cv_stride, cv_pad, cv_groups);
		int n = 1, o = O - 1, oy = y->shape[2] - 1, ox = 0, cg = C / cv_groups, gi = o / (O / cv_groups);
		double s = p[2]->v[o];
		for (int ci = 0; ci < cg; ci++)
			for (int i = 0; i < kh; i++)
				for (int j = 0; j < kw; j++) {
					int iy = oy * cv_stride - cv_pad + i, ix = ox * cv_stride - cv_pad + j;
					if (iy < 0 || iy >= 5 || ix < 0 || ix >= 6) continue;
					s += p[1]->v[((o * cg + ci) * kh + i) * kw + j] * p[0]->v[((n * C + gi * cg + ci) * 5 + iy) * 6 + ix];
				}
		CHECK_CLOSE(y->v[((n * O + o) * y->shape[2] + oy) * y->shape[3] + ox], s, 1e-12, 1e-12);
		free_params(p, 3);
	}
	/* planes of >= 256 outputs take one GEMM per image (conv_pi_bw): 3x3 stride 1 (dx by
	 * the flipped weight), 1x1 (x itself as the columns), 3x3 stride 2 (col2im) */
	int big[][4] = {{1, 1, 3, 16}, {1, 0, 1, 16}, {2, 1, 3, 32}};
	for (int c = 0; c < 3; c++) {
		cv_stride = big[c][0], cv_pad = big[c][1], cv_groups = 1;
		int k = big[c][2], R = big[c][3];
		AdTensor *p[3] = {MKP("x", 1, 0, 2, 2, R, R), P("w", 4, SH(3, 2, k, k), 0.5, 0), MKP("b", 1, 0, 3)};
		char name[48];
		snprintf(name, sizeof name, "conv2d per image s%d k%d %dx%d", cv_stride, k, R, R);
		gradcheck(name, f_conv, 3, p);
		ad_graph_reset(G0);
		AdTensor *y = ad_conv2d(G0, p[0], p[1], p[2], cv_stride, cv_pad, 1);
		int OH = y->shape[2];
		/* one element by a direct sum */
		double s = p[2]->v[2];
		for (int ci = 0; ci < 2; ci++)
			for (int i = 0; i < k; i++)
				for (int j = 0; j < k; j++) {
					int iy = (OH - 1) * cv_stride - cv_pad + i, ix = 3 * cv_stride - cv_pad + j;
					if (iy < 0 || iy >= R || ix < 0 || ix >= R) continue;
					s += p[1]->v[((2 * 2 + ci) * k + i) * k + j] * p[0]->v[((1 * 2 + ci) * R + iy) * R + ix];
				}
		CHECK_CLOSE(y->v[((1 * 3 + 2) * OH + OH - 1) * OH + 3], s, 1e-12, 1e-12);
		free_params(p, 3);
	}
}

static int rs_mode;
static const double fir[4] = {1, 3, 3, 1};
static double fir2[16];
static const double firns[12] = {0.1, 0.3, -0.2, 0.05, 0.4, 0.9, 0.3, -0.1, 0.2, 0.1, 0.6, 0.25};
static AdTensor *f_resample(AdGraph *g, AdTensor **p)
{
	switch (rs_mode) {
	case 0: return ad_upsample_nearest(g, p[0], 2);
	case 1: return ad_avgpool(g, p[0], 2);
	case 2: return ad_resize_bilinear(g, p[0], 7, 5);
	case 3: return ad_resize_bilinear(g, p[0], 3, 2);
	case 4: return ad_upfirdn2d(g, p[0], fir2, 4, 4, 2, 1, 2, 1, 2, 1);   /* StyleGAN2 upsample2d */
	case 5: return ad_upfirdn2d(g, p[0], fir2, 4, 4, 1, 2, 1, 1, 1, 1);   /* downsample2d */
	case 6: return ad_upfirdn2d(g, p[0], fir, 1, 4, 1, 1, 2, -1, 0, 0);   /* negative pad crops */
	case 7: return ad_upfirdn2d(g, p[0], fir2, 4, 4, 1, 1, 1, 2, 2, 1);  /* blur */
	default: return ad_upfirdn2d(g, p[0], firns, 3, 4, 2, 1, 2, 1, 1, 2); /* not separable: the 2-D path */
	}
}

/* ad_translate: per-sample shifts inside, at and past the border (3 samples
 * of 2 x 5 x 4), the gradient by finite differences, the forward by its
 * definition. */
static const int tshift[6] = {1, -2, -5, 0, 3, 4};
static AdTensor *f_translate(AdGraph *g, AdTensor **p) { return ad_translate(g, p[0], tshift); }
static void test_translate(void)
{
	AdTensor *p[1] = {MKP("x", 1, 0.2, 3, 2, 5, 4)};
	gradcheck("translate", f_translate, 1, p);
	ad_graph_reset(G0);
	AdTensor *y = ad_translate(G0, p[0], tshift);
	int bad = 0;
	for (int n = 0; n < 3; n++)
		for (int c = 0; c < 2; c++)
			for (int i = 0; i < 5; i++)
				for (int j = 0; j < 4; j++) {
					int si = i + tshift[2 * n], sj = j + tshift[2 * n + 1];
					double want = si >= 0 && si < 5 && sj >= 0 && sj < 4 ? p[0]->v[((n * 2 + c) * 5 + si) * 4 + sj] : 0;
					bad += y->v[((n * 2 + c) * 5 + i) * 4 + j] != want;
				}
	CHECK_MSG(bad == 0, "translate: %d values differ from the definition", bad);
	free_params(p, 1);
}

/* upfirdn2d by its definition: zero-insert, pad, true convolution, keep every down-th */
static double upfirdn_naive(const double *x, int H, int W, const double *f, int fh, int fw, int up, int down, int px0,
			    int py0, int oy, int ox)
{
	double s = 0;
	for (int i = 0; i < fh; i++)
		for (int j = 0; j < fw; j++) {
			int u = oy * down + i - py0, v = ox * down + j - px0; /* padded-upsampled coordinates */
			if (u < 0 || v < 0 || u >= H * up || v >= W * up || u % up || v % up) continue;
			s += x[(u / up) * W + v / up] * f[(fh - 1 - i) * fw + (fw - 1 - j)];
		}
	return s;
}
static void test_resample(void)
{
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 4; j++) fir2[i * 4 + j] = fir[i] * fir[j] / 64;
	static const char *nm[] = {"nearest", "avgpool", "bilinear-up", "bilinear-down", "upfirdn-up", "upfirdn-down",
				   "upfirdn-crop", "upfirdn-blur", "upfirdn-2d"};
	for (rs_mode = 0; rs_mode < 9; rs_mode++) {
		AdTensor *p[1] = {MKP("x", 1, 0, 2, 2, 4, 4)};
		gradcheck(nm[rs_mode], f_resample, 1, p);
		free_params(p, 1);
	}
	/* upfirdn2d forward: downsample2d of a constant image is the constant
	 * inside (filter sums to 1); bilinear of a constant is the constant */
	/* every upfirdn2d output (separable passes and the 2-D path) against the definition */
	{
		AdTensor *r = MKP("r", 1, 0, 1, 1, 5, 6);
		struct { const double *f; int fh, fw, up, down, px0, px1, py0, py1; } uc[] = {
			{fir2, 4, 4, 2, 1, 2, 1, 2, 1}, {fir2, 4, 4, 1, 2, 1, 1, 1, 1}, {fir, 1, 4, 1, 1, 2, -1, 0, 0},
			{firns, 3, 4, 2, 1, 2, 1, 1, 2}, {firns, 3, 4, 1, 2, 0, 3, 2, 0}, {fir2, 4, 4, 3, 2, 1, 2, 0, 1}};
		double worst = 0;
		for (int c = 0; c < 6; c++) {
			ad_graph_reset(G0);
			AdTensor *y = ad_upfirdn2d(G0, r, uc[c].f, uc[c].fh, uc[c].fw, uc[c].up, uc[c].down, uc[c].px0, uc[c].px1,
						   uc[c].py0, uc[c].py1);
			for (int oy = 0; oy < y->shape[2]; oy++)
				for (int ox = 0; ox < y->shape[3]; ox++) {
					double e = upfirdn_naive(r->v, 5, 6, uc[c].f, uc[c].fh, uc[c].fw, uc[c].up, uc[c].down, uc[c].px0,
								 uc[c].py0, oy, ox);
					worst = fmax(worst, fabs(y->v[oy * y->shape[3] + ox] - e));
				}
		}
		CHECK_MSG(worst < 1e-14, "upfirdn2d vs its definition: worst %.3g", worst);
		ad_param_free(r);
	}
	AdTensor *x = ad_param_new("x", 4, (int[]){1, 1, 8, 8});
	for (size_t i = 0; i < x->n; i++) x->v[i] = 2.5;
	ad_graph_reset(G0);
	AdTensor *d = ad_upfirdn2d(G0, x, fir2, 4, 4, 1, 2, 1, 1, 1, 1);
	CHECK(d->shape[2] == 4 && d->shape[3] == 4);
	CHECK_CLOSE(d->v[1 * 4 + 1], 2.5, 1e-14, 1e-14);
	AdTensor *b = ad_resize_bilinear(G0, x, 5, 11);
	CHECK_CLOSE(b->v[17], 2.5, 1e-14, 1e-14);
	ad_param_free(x);
}

/* The modulated convolution composed from generic ops (per-sample weights
 * w' = w s, demodulated, as a grouped convolution over the batch): the
 * independent reference for the fused ad_modconv. */
static AdTensor *modconv_composed(AdGraph *g, AdTensor *x, AdTensor *w, AdTensor *s, int demod, int pad)
{
	int N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
	int O = w->shape[0], kh = w->shape[2], kw = w->shape[3];
	AdTensor *wn = ad_mul(g, ad_reshape(g, w, 5, (int[]){1, O, C, kh, kw}), ad_reshape(g, s, 5, (int[]){N, 1, C, 1, 1}));
	if (demod) {
		AdTensor *ss = ad_sum(g, ad_reshape(g, ad_square(g, wn), 3, (int[]){N, O, C * kh * kw}), 2, 1);
		AdTensor *d = ad_pow(g, ad_affine(g, ss, 1, 1e-8), -0.5);
		wn = ad_mul(g, wn, ad_reshape(g, d, 5, (int[]){N, O, 1, 1, 1}));
	}
	AdTensor *xw = ad_reshape(g, x, 4, (int[]){1, N * C, H, W});
	AdTensor *y = ad_conv2d(g, xw, ad_reshape(g, wn, 4, (int[]){N * O, C, kh, kw}), NULL, 1, pad, N);
	return ad_reshape(g, y, 4, (int[]){N, O, y->shape[2], y->shape[3]});
}

static int mc_demod, mc_pad, mc_ref;
static AdTensor *f_modconv(AdGraph *g, AdTensor **p)
{
	return (mc_ref ? modconv_composed : ad_modconv)(g, p[0], p[1], p[2], mc_demod, mc_pad);
}
static void test_modconv(void)
{
	/* N, C, H, W, O, k, pad, demod */
	int cfg[][8] = {{2, 3, 4, 4, 2, 3, 1, 1}, {2, 3, 4, 4, 2, 3, 1, 0}, {3, 2, 5, 3, 4, 3, 1, 1},
			{3, 4, 3, 5, 3, 1, 0, 0}, {1, 2, 4, 4, 3, 3, 0, 1}, {2, 2, 3, 3, 2, 3, 2, 1}, {2, 2, 3, 3, 2, 1, 1, 1}};
	for (int t = 0; t < 7; t++) {
		int *c = cfg[t];
		mc_pad = c[6], mc_demod = c[7];
		AdTensor *p[3] = {MKP("x", 1, 0, c[0], c[1], c[2], c[3]), MKP("w", 1, 0, c[4], c[1], c[5], c[5]),
				  MKP("s", 0.3, 1, c[0], c[1])};
		char name[64];
		snprintf(name, sizeof name, "modconv N%d C%d O%d k%d p%d demod%d", c[0], c[1], c[4], c[5], c[6], c[7]);
		mc_ref = 0;
		gradcheck(name, f_modconv, 3, p);
		/* outputs and every gradient equal the composed form's (float64) */
		double gf[3][256];
		ad_zero_grads(p, 3);
		double lf = loss_of(f_modconv, p, 1);
		for (int k = 0; k < 3; k++) memcpy(gf[k], p[k]->g, p[k]->n * sizeof(double));
		ad_graph_reset(G0);
		AdTensor *yf = ad_modconv(G0, p[0], p[1], p[2], mc_demod, mc_pad);
		AdTensor *yr = modconv_composed(G0, p[0], p[1], p[2], mc_demod, mc_pad);
		CHECK(ad_same_shape(yf, yr));
		double worst = 0;
		for (size_t i = 0; i < yf->n; i++) worst = fmax(worst, fabs(yf->v[i] - yr->v[i]) / (1e-12 + fabs(yr->v[i])));
		mc_ref = 1;
		ad_zero_grads(p, 3);
		double lr = loss_of(f_modconv, p, 1);
		CHECK_CLOSE(lf, lr, 1e-12, 1e-12);
		for (int k = 0; k < 3; k++)
			for (size_t i = 0; i < p[k]->n; i++)
				worst = fmax(worst, fabs(gf[k][i] - p[k]->g[i]) / (1e-12 + fabs(p[k]->g[i])));
		CHECK_MSG(worst < 1e-12, "%s: fused vs composed worst relative difference %.3g", name, worst);
		free_params(p, 3);
	}
}

/* ad_graph_kinks: a replayed pass runs through the recorded sign pattern */
static void test_kinks(void)
{
	AdTensor *x = MKP("x", 1, 0, 2, 5);
	double xv[10], y0[10];
	memcpy(xv, x->v, sizeof xv);
	ad_graph_kinks(G0, AD_KINKS_RECORD);
	ad_graph_reset(G0);
	AdTensor *y = ad_leaky_relu_gain(G0, x, 0.2, 2);
	memcpy(y0, y->v, sizeof y0);
	ad_graph_kinks(G0, AD_KINKS_REPLAY);
	for (int i = 0; i < 10; i++) x->v[i] = -xv[i]; /* every sign flipped */
	ad_graph_reset(G0);
	ad_zero_grads(&x, 1);
	y = ad_leaky_relu_gain(G0, x, 0.2, 2);
	ad_backward(G0, ad_sum_all(G0, y));
	for (int i = 0; i < 10; i++) {
		double k = xv[i] > 0 ? 2 : 0.4; /* the slope at the recorded point */
		CHECK_CLOSE(y->v[i], -y0[i], 1e-15, 1e-15);
		CHECK_CLOSE(x->g[i], k, 1e-15, 1e-15);
	}
	ad_graph_reset(G0);
	ad_leaky_relu_gain(G0, x, 0.2, 2);
	ad_graph_kinks(G0, AD_KINKS_OFF);
	ad_graph_reset(G0);
	y = ad_leaky_relu_gain(G0, x, 0.2, 2);
	for (int i = 0; i < 10; i++) CHECK_CLOSE(y->v[i], x->v[i] > 0 ? 2 * x->v[i] : 0.4 * x->v[i], 1e-15, 1e-15);
	ad_param_free(x);
}

/* A transformer block as the CLIP code writes it: checks accumulation
 * through residual branches and reshapes. */
static AdTensor *f_block(AdGraph *g, AdTensor **p)
{
	AdTensor *x = p[0];
	int B = 2, T = 3, W = 4, H = 2, D = 2;
	AdTensor *h = ad_layernorm(g, x, p[1], p[2], 1e-5);
	AdTensor *qkv = ad_linear(g, h, p[3], p[4]);
	AdTensor *q5 = ad_permute(g, ad_reshape(g, qkv, 5, (int[]){B, T, 3, H, D}), (int[]){2, 0, 3, 1, 4});
	AdTensor *q = ad_reshape(g, ad_slice(g, q5, 0, 0, 1), 4, (int[]){B, H, T, D});
	AdTensor *k = ad_reshape(g, ad_slice(g, q5, 0, 1, 1), 4, (int[]){B, H, T, D});
	AdTensor *v = ad_reshape(g, ad_slice(g, q5, 0, 2, 1), 4, (int[]){B, H, T, D});
	AdTensor *a = ad_attention(g, q, k, v, 1);
	a = ad_reshape(g, ad_permute(g, a, (int[]){0, 2, 1, 3}), 3, (int[]){B, T, W});
	x = ad_add(g, x, ad_linear(g, a, p[5], NULL));
	return ad_normalize(g, ad_quick_gelu(g, x), 1e-12);
}
static void test_block(void)
{
	AdTensor *p[6] = {MKP("x", 1, 0, 2, 3, 4), MKP("lw", 0.2, 1, 4), MKP("lb", 0.2, 0, 4), MKP("wi", 0.5, 0, 12, 4),
			  MKP("bi", 0.2, 0, 12), MKP("wo", 0.5, 0, 4, 4)};
	gradcheck("block", f_block, 6, p);
	free_params(p, 6);
}

/* Gradient buffers passed through (residual adds, reshapes) when the
 * operands are intermediates: a + a, a - a, chains, reuse after a reshape. */
static AdTensor *f_alias(AdGraph *g, AdTensor **p)
{
	AdTensor *h = ad_tanh(g, p[0]);                       /* [2, 3] */
	AdTensor *y = ad_add(g, h, h);                        /* 2h */
	AdTensor *z = ad_sub(g, ad_mul(g, y, p[1]), h);       /* 2h*b - h */
	AdTensor *r = ad_reshape(g, z, 1, (int[]){6});
	AdTensor *w = ad_add(g, r, ad_reshape(g, h, 1, (int[]){6}));
	AdTensor *u = ad_sub(g, w, w);                        /* zero, gradient 0 */
	return ad_add(g, ad_add(g, w, u), ad_reshape(g, ad_square(g, y), 1, (int[]){6}));
}
static void test_alias(void)
{
	AdTensor *p[2] = {MKP("x", 1, 0, 2, 3), MKP("b", 1, 0, 2, 3)};
	gradcheck("alias", f_alias, 2, p);
	free_params(p, 2);
}

/* Forward values against PyTorch / StyleGAN2 reference code in float64
 * (tests/ref/make_train.py -> tests/ref/train/ops.safetensors). */
static L2Safetensors *OPS;
static AdTensor *golden(AdGraph *g, const char *name)
{
	const L2Tensor *t = l2_st_find(OPS, name);
	if (!t || t->dtype != L2_ST_F64) l2_die("ops golden lacks f64 %s", name);
	int shape[AD_MAXDIM];
	for (int i = 0; i < t->ndim; i++) shape[i] = (int)t->shape[i];
	return ad_input(g, t->ndim, shape, t->data);
}
static void same(AdTensor *got, AdTensor *want, const char *what)
{
	char s1[64], s2[64];
	CHECK_MSG(ad_same_shape(got, want), "%s: shape %s, expected %s", what, ad_shape_str(got, s1, 64), ad_shape_str(want, s2, 64));
	if (!ad_same_shape(got, want)) return;
	double worst = 0;
	for (size_t i = 0; i < got->n; i++) worst = fmax(worst, fabs(got->v[i] - want->v[i]));
	CHECK_MSG(worst < 1e-12, "%s: max |difference| %.3g", what, worst);
}
static void test_ops_vs_torch(void)
{
	OPS = l2_st_open("tests/ref/train/ops.safetensors");
	AdGraph *g = ad_graph_new();
	AdTensor *x = golden(g, "x");
	same(ad_resize_bilinear(g, x, 9, 7), golden(g, "bilinear_9x7"), "bilinear up");
	same(ad_resize_bilinear(g, x, 4, 3), golden(g, "bilinear_4x3"), "bilinear down");
	double f[16], f4[16];
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 4; j++) f[i * 4 + j] = fir[i] * fir[j] / 64, f4[i * 4 + j] = 4 * f[i * 4 + j];
	same(ad_upfirdn2d(g, x, f4, 4, 4, 2, 1, 2, 1, 2, 1), golden(g, "up2"), "upfirdn2d up");
	same(ad_upfirdn2d(g, x, f, 4, 4, 1, 2, 1, 1, 1, 1), golden(g, "down2"), "upfirdn2d down");
	same(ad_upfirdn2d(g, x, f, 4, 4, 1, 1, -1, 2, 1, -1), golden(g, "crop"), "upfirdn2d crop");
	same(ad_groupnorm(g, golden(g, "xg"), 3, golden(g, "gw"), golden(g, "gb"), 1e-5), golden(g, "groupnorm"), "groupnorm");
	same(ad_modconv(g, x, golden(g, "mw"), golden(g, "ms"), 1, 1), golden(g, "modconv_demod"), "modconv demod");
	same(ad_modconv(g, x, golden(g, "mw"), golden(g, "ms"), 0, 0), golden(g, "modconv"), "modconv");
	AdTensor *xs[2] = {x, x};
	same(ad_conv2d(g, ad_concat(g, xs, 2, 1), golden(g, "cw"), NULL, 2, 1, 3), golden(g, "conv_s2_g3"), "conv2d s2 g3");
	same(ad_gelu(g, x), golden(g, "gelu"), "gelu");
	same(ad_silu(g, x), golden(g, "silu"), "silu");
	same(ad_leaky_relu(g, x, 0.2), golden(g, "leaky"), "leaky_relu");
	ad_graph_free(g);
	l2_st_close(OPS);
}

/* Steady steps reuse one arena chunk: no allocation after the first. */
static void test_arena_reuse(void)
{
	AdTensor *p[6] = {MKP("x", 1, 0, 2, 3, 4), MKP("lw", 0.2, 1, 4), MKP("lb", 0.2, 0, 4), MKP("wi", 0.5, 0, 12, 4),
			  MKP("bi", 0.2, 0, 12), MKP("wo", 0.5, 0, 4, 4)};
	AdGraph *g = ad_graph_new();
	size_t bytes[4];
	for (int s = 0; s < 4; s++) {
		ad_graph_reset(g);
		/* enough work to overflow the first chunk on the first step */
		AdTensor *big = ad_zeros(g, 2, (int[]){512, 512});
		(void)big;
		AdTensor *y = f_block(g, p);
		ad_backward(g, ad_sum_all(g, y));
		bytes[s] = ad_graph_arena_bytes(g);
	}
	CHECK(bytes[1] == bytes[2] && bytes[2] == bytes[3]);
	ad_graph_reset(g);
	CHECK(ad_graph_arena_chunks(g) == 1);
	ad_graph_free(g);
	free_params(p, 6);
}

int main(void)
{
	if (access("tests/ref/train/ops.safetensors", R_OK) && chdir("../..")) {}
	G0 = ad_graph_new();
	RUN(test_linear);
	RUN(test_matmul);
	RUN(test_embedding);
	RUN(test_layernorm);
	RUN(test_groupnorm);
	RUN(test_normalize_softmax);
	RUN(test_edm2_norms);
	RUN(test_attention);
	RUN(test_cross_entropy);
	RUN(test_broadcast);
	RUN(test_unary);
	RUN(test_reductions);
	RUN(test_shapes);
	RUN(test_conv2d);
	RUN(test_resample);
	RUN(test_translate);
	RUN(test_modconv);
	RUN(test_kinks);
	RUN(test_block);
	RUN(test_alias);
	RUN(test_arena_reuse);
	RUN(test_ops_vs_torch);
	ad_graph_free(G0);
	return check_done();
}
