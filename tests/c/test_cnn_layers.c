/* test_cnn_layers.c — lib/nn/cnn_layers.c (group norm + SiLU, residual add,
 * nearest upsampling, padding, pixel self-attention) and conv.c's
 * accumulating, bias-free and Winograd convolutions, each against direct
 * float64 loops on random (C, B, H, W) inputs, on 1 and 2 threads. */
#include "check.h"
#include "nn/cnn_layers.h"
#include "nn/conv.h"
#include "core/util.h"

static float *rand_array(size_t n, double scale, double shift)
{
	float *a = l2_malloc(n * sizeof(float));
	for (size_t i = 0; i < n; i++) a[i] = (float)(check_normal() * scale + shift);
	return a;
}

static void gn_case(int C, int B, int H, int W, int groups, int silu, int in_place)
{
	size_t HW = (size_t)H * W, n = (size_t)C * B * HW;
	/* an offset well above the spread: the two-pass statistics must hold it */
	float *x = rand_array(n, 1.5, 3.0), *g = rand_array((size_t)C, 0.3, 1.0), *be = rand_array((size_t)C, 0.5, 0);
	float *y = in_place ? x : l2_malloc(n * sizeof(float));
	double *r = l2_malloc(n * sizeof(double));
	int cg = C / groups;
	for (int b = 0; b < B; b++)
		for (int gr = 0; gr < groups; gr++) {
			double s = 0, v = 0, m;
			for (int c = gr * cg; c < (gr + 1) * cg; c++)
				for (size_t i = 0; i < HW; i++) s += x[((size_t)c * B + b) * HW + i];
			m = s / (cg * (double)HW);
			for (int c = gr * cg; c < (gr + 1) * cg; c++)
				for (size_t i = 0; i < HW; i++) {
					double d = x[((size_t)c * B + b) * HW + i] - m;
					v += d * d;
				}
			v /= cg * (double)HW;
			for (int c = gr * cg; c < (gr + 1) * cg; c++)
				for (size_t i = 0; i < HW; i++) {
					size_t k = ((size_t)c * B + b) * HW + i;
					double t = (x[k] - m) / sqrt(v + 1e-6) * g[c] + be[c];
					r[k] = silu ? t / (1 + exp(-t)) : t;
				}
		}
	l2_cnn_group_norm(x, C, B, HW, groups, g, be, 1e-6, silu, y);
	CHECK_MSG(CHECK_ARRAY_CLOSE_D(y, r, n, 2e-6, 2e-6), "C %d B %d %dx%d groups %d silu %d in place %d", C, B, H, W,
		  groups, silu, in_place);
	if (!in_place) free(y);
	free(x), free(g), free(be), free(r);
}

static void test_group_norm(void)
{
	for (int th = 1; th <= 2; th++) {
		l2_threads = th;
		gn_case(32, 2, 5, 7, 32, 0, 0);
		gn_case(64, 3, 9, 11, 32, 1, 0);
		gn_case(12, 1, 1, 1, 3, 1, 1); /* one pixel, 4 channels per group */
		gn_case(16, 2, 33, 17, 8, 1, 1);
		gn_case(8, 5, 64, 64, 4, 1, 0); /* large planes: vector bodies and tails */
	}
	l2_threads = 2;
}

static void test_add_upsample_pad(void)
{
	size_t n = 100003;
	float *y = rand_array(n, 1, 0), *x = rand_array(n, 1, 0), *y0 = l2_malloc(n * sizeof(float));
	memcpy(y0, y, n * sizeof(float));
	for (int relu = 0; relu < 2; relu++) {
		memcpy(y, y0, n * sizeof(float));
		l2_cnn_add(y, x, n, relu);
		int bad = 0;
		for (size_t i = 0; i < n; i++) {
			float w = y0[i] + x[i];
			if (relu && w < 0) w = 0;
			bad += y[i] != w;
		}
		CHECK_MSG(bad == 0, "add relu %d: %d wrong", relu, bad);
	}
	free(y), free(x), free(y0);

	int P = 6, H = 5, W = 7;
	float *a = rand_array((size_t)P * H * W, 1, 0), *u = l2_malloc((size_t)P * 4 * H * W * sizeof(float));
	l2_cnn_upsample2x(a, (size_t)P, H, W, u);
	int bad = 0;
	for (int p = 0; p < P; p++)
		for (int i = 0; i < 2 * H; i++)
			for (int j = 0; j < 2 * W; j++)
				bad += u[((size_t)p * 2 * H + i) * 2 * W + j] != a[((size_t)p * H + i / 2) * W + j / 2];
	CHECK_MSG(bad == 0, "upsample: %d wrong", bad);
	int t = 0, bo = 1, l = 2, r = 1, Ho = H + t + bo, Wo = W + l + r;
	float *pd = l2_malloc((size_t)P * Ho * Wo * sizeof(float));
	l2_cnn_pad(a, (size_t)P, H, W, t, bo, l, r, pd);
	bad = 0;
	for (int p = 0; p < P; p++)
		for (int i = 0; i < Ho; i++)
			for (int j = 0; j < Wo; j++) {
				int si = i - t, sj = j - l;
				float want = si >= 0 && si < H && sj >= 0 && sj < W ? a[((size_t)p * H + si) * W + sj] : 0.0f;
				bad += pd[((size_t)p * Ho + i) * Wo + j] != want;
			}
	CHECK_MSG(bad == 0, "pad: %d wrong", bad);
	free(a), free(u), free(pd);
}

static void attention_case(int C, int B, int N)
{
	size_t n = (size_t)C * B * N;
	float *q = rand_array(n, 1, 0), *k = rand_array(n, 1, 0), *v = rand_array(n, 1, 0);
	float *o = l2_malloc(n * sizeof(float));
	double *r = l2_malloc(n * sizeof(double)), *w = l2_malloc((size_t)N * sizeof(double));
	l2_cnn_attention(q, k, v, C, B, N, o);
	for (int b = 0; b < B; b++)
		for (int i = 0; i < N; i++) {
			double mx = -1e300, s = 0;
			for (int j = 0; j < N; j++) {
				double d = 0;
				for (int c = 0; c < C; c++) d += (double)q[((size_t)c * B + b) * N + i] * k[((size_t)c * B + b) * N + j];
				w[j] = d / sqrt((double)C);
				mx = w[j] > mx ? w[j] : mx;
			}
			for (int j = 0; j < N; j++) s += w[j] = exp(w[j] - mx);
			for (int c = 0; c < C; c++) {
				double a = 0;
				for (int j = 0; j < N; j++) a += w[j] / s * v[((size_t)c * B + b) * N + j];
				r[((size_t)c * B + b) * N + i] = a;
			}
		}
	CHECK_MSG(CHECK_ARRAY_CLOSE_D(o, r, n, 1e-5, 1e-5), "attention C %d B %d N %d", C, B, N);
	free(q), free(k), free(v), free(o), free(r), free(w);
}

static void test_attention(void)
{
	attention_case(8, 1, 1);
	attention_case(16, 2, 12);
	attention_case(40, 3, 37);
	attention_case(64, 2, 64);
}

/* conv2d_add and convolutions without bias, against float64 loops */
static void test_conv_add_nobias(void)
{
	static const int cfg[][8] = {/* cin cout k s p B H W */
				     {5, 6, 3, 1, 1, 2, 7, 9}, {16, 8, 3, 1, 1, 2, 9, 17}, {4, 7, 1, 1, 0, 3, 5, 5},
				     {6, 6, 3, 2, 0, 2, 9, 8}};
	for (size_t t = 0; t < sizeof cfg / sizeof cfg[0]; t++) {
		const int *g = cfg[t];
		L2Conv c = {g[0], g[1], g[2], g[2], g[3], g[3], g[4], g[4], NULL, NULL};
		c.w = rand_array((size_t)c.cout * c.cin * g[2] * g[2], 1.0 / sqrt(c.cin * g[2] * g[2]), 0);
		float *bias = rand_array((size_t)c.cout, 0.3, 0);
		int B = g[5], H = g[6], W = g[7], Ho = l2_conv_out_size(H, g[2], g[3], g[4]), Wo = l2_conv_out_size(W, g[2], g[3], g[4]);
		size_t n = (size_t)c.cout * B * Ho * Wo;
		float *x = rand_array((size_t)c.cin * B * H * W, 1, 0), *y0 = rand_array(n, 1, 0), *y = l2_malloc(n * sizeof(float));
		for (int mode = 0; mode < 3; mode++) { /* 0: no bias, 1: add with bias, 2: add without bias */
			c.b = mode == 1 ? bias : NULL;
			memcpy(y, y0, n * sizeof(float));
			if (mode == 0) l2_conv2d(&c, x, B, H, W, y, 0);
			else l2_conv2d_add(&c, x, B, H, W, y);
			double worst = 0;
			for (int o = 0; o < c.cout; o++)
				for (int b = 0; b < B; b++)
					for (int oy = 0; oy < Ho; oy++)
						for (int ox = 0; ox < Wo; ox++) {
							size_t k = (((size_t)o * B + b) * Ho + oy) * Wo + ox;
							double s = (mode ? y0[k] : 0) + (c.b ? c.b[o] : 0);
							for (int i = 0; i < c.cin; i++)
								for (int ky = 0; ky < g[2]; ky++)
									for (int kx = 0; kx < g[2]; kx++) {
										int iy = oy * g[3] - g[4] + ky, ix = ox * g[3] - g[4] + kx;
										if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
										s += (double)c.w[((o * c.cin + i) * g[2] + ky) * g[2] + kx] *
										     x[(((size_t)i * B + b) * H + iy) * W + ix];
									}
							double d = fabs(y[k] - s) / (1 + fabs(s));
							worst = d > worst ? d : worst;
						}
			CHECK_MSG(worst < 1e-5, "config %zu mode %d: worst %g", t, mode, worst);
		}
		free(c.w), free(bias), free(x), free(y0), free(y);
	}
}

/* Winograd F(2x2, 3x3) against float64 direct loops: odd and even sizes,
 * single-pixel images, several tile blocks (W 130 with 64 + 64 channels),
 * with and without bias, overwriting and adding; and an image's outputs in a
 * batch are the bytes of the image alone */
static void test_conv_winograd(void)
{
	static const int cfg[][5] = {/* cin cout B H W */
				     {16, 8, 2, 7, 9}, {5, 6, 1, 1, 1}, {24, 16, 3, 2, 3}, {32, 40, 1, 8, 8},
				     {64, 64, 2, 40, 130}};
	for (size_t t = 0; t < sizeof cfg / sizeof cfg[0]; t++) {
		const int *g = cfg[t];
		L2Conv c = {g[0], g[1], 3, 3, 1, 1, 1, 1, NULL, NULL};
		CHECK(l2_conv_wino_ok(&c));
		c.w = rand_array((size_t)c.cout * c.cin * 9, 1.0 / sqrt(c.cin * 9.0), 0);
		float *u = l2_malloc(l2_conv_wino_size(&c) * sizeof(float)), *bias = rand_array((size_t)c.cout, 0.3, 0);
		l2_conv_wino_weights(&c, u);
		int B = g[2], H = g[3], W = g[4];
		size_t hw = (size_t)H * W, n = (size_t)c.cout * B * hw;
		float *x = rand_array((size_t)c.cin * B * hw, 1, 0), *y0 = rand_array(n, 1, 0), *y = l2_malloc(n * sizeof(float));
		float *x1 = l2_malloc((size_t)c.cin * hw * sizeof(float)), *y1 = l2_malloc((size_t)c.cout * hw * sizeof(float));
		for (int mode = 0; mode < 3; mode++) { /* 0: bias, overwrite, 1: add with bias, 2: add without bias */
			c.b = mode < 2 ? bias : NULL;
			memcpy(y, y0, n * sizeof(float));
			l2_conv2d_wino(&c, u, x, B, H, W, y, mode > 0);
			double worst = 0;
			for (int o = 0; o < c.cout; o++)
				for (int b = 0; b < B; b++)
					for (int oy = 0; oy < H; oy++)
						for (int ox = 0; ox < W; ox++) {
							size_t k = (((size_t)o * B + b) * H + oy) * W + ox;
							double s = (mode ? y0[k] : 0) + (c.b ? c.b[o] : 0);
							for (int i = 0; i < c.cin; i++)
								for (int ky = 0; ky < 3; ky++)
									for (int kx = 0; kx < 3; kx++) {
										int iy = oy - 1 + ky, ix = ox - 1 + kx;
										if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
										s += (double)c.w[((o * c.cin + i) * 3 + ky) * 3 + kx] *
										     x[(((size_t)i * B + b) * H + iy) * W + ix];
									}
							double d = fabs(y[k] - s) / (1 + fabs(s));
							worst = d > worst ? d : worst;
						}
			CHECK_MSG(worst < 1e-5, "config %zu mode %d: worst %g", t, mode, worst);
			if (mode) continue;
			/* batch independence: the last image alone */
			for (int i = 0; i < c.cin; i++) memcpy(x1 + i * hw, x + ((size_t)i * B + B - 1) * hw, hw * sizeof(float));
			l2_conv2d_wino(&c, u, x1, 1, H, W, y1, 0);
			int same = 1;
			for (int o = 0; o < c.cout; o++) same &= !memcmp(y1 + o * hw, y + ((size_t)o * B + B - 1) * hw, hw * sizeof(float));
			CHECK_MSG(same, "config %zu: image %d of the batch differs from the image alone", t, B - 1);
		}
		free(c.w), free(u), free(bias), free(x), free(y0), free(y), free(x1), free(y1);
	}
}

int main(void)
{
	l2_threads = 2;
	RUN(test_group_norm);
	RUN(test_add_upsample_pad);
	RUN(test_attention);
	RUN(test_conv_add_nobias);
	RUN(test_conv_winograd);
	l2_conv_scratch_free();
	return check_done();
}
