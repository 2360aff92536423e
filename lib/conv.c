/* conv.c — im2col + SGEMM convolution and PyTorch-compatible pooling
 * (see conv.h for the (C, B, H, W) layout). */
#include "conv.h"
#include "util.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <string.h>

/* im2col scratch: at most this many floats per column block (16 MiB), so
 * memory stays bounded whatever the batch; blocks of >= 1000 columns keep
 * the GEMMs efficient even for K = 448*9. */
#define COL_BUDGET (4u << 20)

static __thread float *scratch;
static __thread size_t scratch_len;

static float *scratch_get(size_t n)
{
	if (n > scratch_len) {
		l2_free_aligned(scratch);
		scratch = l2_malloc_aligned(n * sizeof(float));
		scratch_len = n;
	}
	return scratch;
}

void l2_conv_scratch_free(void)
{
	l2_free_aligned(scratch);
	scratch = NULL;
	scratch_len = 0;
}

void l2_conv_fold_bn(L2Conv *c, const float *gamma, const float *beta, const float *mean, const float *var,
		     float eps)
{
	size_t k = (size_t)c->cin * c->kh * c->kw;
	for (int o = 0; o < c->cout; o++) {
		/* float64 for the fold itself: the folded weights are then the
		 * correctly rounded values of the exact products */
		double s = gamma[o] / sqrt((double)var[o] + eps);
		float *w = c->w + (size_t)o * k;
		for (size_t i = 0; i < k; i++) w[i] = (float)(w[i] * s);
		c->b[o] = (float)(beta[o] + ((double)c->b[o] - mean[o]) * s);
	}
}

/* Columns [n0, n0 + nc) of im2col(x): row r = (ci, ky, kx), column
 * n = (b, oy, ox).  col is (K, nc). */
static void im2col(const L2Conv *c, const float *x, int B, int H, int W, int Ho, int Wo, size_t n0, size_t nc,
		   float *col)
{
	size_t howo = (size_t)Ho * Wo;
	for (int ci = 0; ci < c->cin; ci++)
		for (int ky = 0; ky < c->kh; ky++)
			for (int kx = 0; kx < c->kw; kx++) {
				float *dst = col + (((size_t)ci * c->kh + ky) * c->kw + kx) * nc;
				size_t n = n0, end = n0 + nc;
				while (n < end) {
					size_t b = n / howo, rem = n % howo;
					int oy = (int)(rem / Wo), ox0 = (int)(rem % Wo);
					int len = Wo - ox0;
					if ((size_t)len > end - n) len = (int)(end - n);
					int iy = oy * c->sh - c->ph + ky;
					if (iy < 0 || iy >= H) {
						memset(dst, 0, (size_t)len * sizeof(float));
					} else {
						const float *src = x + (((size_t)ci * B + b) * H + iy) * W;
						if (c->sw == 1) {
							/* ix = ox - pw + kx: zeros, a run, zeros */
							int ix0 = ox0 - c->pw + kx, i = 0;
							for (; i < len && ix0 + i < 0; i++) dst[i] = 0;
							int run = len - i;
							if (ix0 + i + run > W) run = W - (ix0 + i);
							if (run > 0) {
								memcpy(dst + i, src + ix0 + i, (size_t)run * sizeof(float));
								i += run;
							}
							for (; i < len; i++) dst[i] = 0;
						} else {
							for (int i = 0; i < len; i++) {
								int ix = (ox0 + i) * c->sw - c->pw + kx;
								dst[i] = ix >= 0 && ix < W ? src[ix] : 0.0f;
							}
						}
					}
					dst += len;
					n += (size_t)len;
				}
			}
}

static void bias_relu(float *y, int rows, size_t ld, size_t n0, size_t nc, const float *b, int relu)
{
	for (int m = 0; m < rows; m++) {
		float *r = y + (size_t)m * ld + n0, bm = b[m];
		if (relu)
			for (size_t i = 0; i < nc; i++) {
				float v = r[i] + bm;
				r[i] = v > 0 ? v : 0;
			}
		else
			for (size_t i = 0; i < nc; i++) r[i] += bm;
	}
}

void l2_conv2d(const L2Conv *c, const float *x, int B, int H, int W, float *y, int relu)
{
	int Ho = l2_conv_out_size(H, c->kh, c->sh, c->ph), Wo = l2_conv_out_size(W, c->kw, c->sw, c->pw);
	size_t N = (size_t)B * Ho * Wo, K = (size_t)c->cin * c->kh * c->kw;
	if (c->kh == 1 && c->kw == 1 && c->sh == 1 && c->sw == 1 && c->ph == 0 && c->pw == 0) {
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, c->cout, (int)N, (int)K, 1.0f, c->w, (int)K, x,
			    (int)N, 0.0f, y, (int)N);
		bias_relu(y, c->cout, N, 0, N, c->b, relu);
		return;
	}
	size_t nb = COL_BUDGET / K;
	if (nb < 256) nb = 256;
	if (nb > N) nb = N;
	float *col = scratch_get(K * nb);
	for (size_t n0 = 0; n0 < N; n0 += nb) {
		size_t nc = N - n0 < nb ? N - n0 : nb;
		im2col(c, x, B, H, W, Ho, Wo, n0, nc, col);
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, c->cout, (int)nc, (int)K, 1.0f, c->w, (int)K, col,
			    (int)nc, 0.0f, y + n0, (int)N);
		bias_relu(y, c->cout, N, n0, nc, c->b, relu);
	}
}

/* max with PyTorch's NaN rule: a NaN wins */
#define MAXNAN(m, v) do { float v_ = (v); if (v_ > (m) || v_ != v_) (m) = v_; } while (0)

/* 3x3 window at (y0, x0), all inside */
static inline float max9(const float *in, int W, int y0, int x0)
{
	const float *r = in + (size_t)y0 * W + x0;
	float m = r[0];
	MAXNAN(m, r[1]); MAXNAN(m, r[2]);
	MAXNAN(m, r[W]); MAXNAN(m, r[W + 1]); MAXNAN(m, r[W + 2]);
	MAXNAN(m, r[2 * W]); MAXNAN(m, r[2 * W + 1]); MAXNAN(m, r[2 * W + 2]);
	return m;
}

void l2_maxpool2d(const float *x, size_t planes, int H, int W, int k, int s, int p, float *y)
{
	int Ho = l2_conv_out_size(H, k, s, p), Wo = l2_conv_out_size(W, k, s, p);
	if (k == 3 && p == 0) { /* every window inside: no bounds to check */
		for (size_t pl = 0; pl < planes; pl++) {
			const float *in = x + pl * H * W;
			float *out = y + pl * Ho * Wo;
			for (int oy = 0; oy < Ho; oy++)
				for (int ox = 0; ox < Wo; ox++) out[oy * Wo + ox] = max9(in, W, oy * s, ox * s);
		}
		return;
	}
	for (size_t pl = 0; pl < planes; pl++) {
		const float *in = x + pl * H * W;
		float *out = y + pl * Ho * Wo;
		for (int oy = 0; oy < Ho; oy++) {
			int y0 = oy * s - p, y1 = y0 + k;
			if (y0 < 0) y0 = 0;
			if (y1 > H) y1 = H;
			for (int ox = 0; ox < Wo; ox++) {
				int x0 = ox * s - p, x1 = x0 + k;
				if (x0 < 0) x0 = 0;
				if (x1 > W) x1 = W;
				float m = -INFINITY;
				for (int iy = y0; iy < y1; iy++)
					for (int ix = x0; ix < x1; ix++) {
						float v = in[iy * W + ix];
						if (v > m || v != v) m = v;
					}
				out[oy * Wo + ox] = m;
			}
		}
	}
}

void l2_avgpool2d(const float *x, size_t planes, int H, int W, int k, int s, int p, int count_include_pad, float *y)
{
	int Ho = l2_conv_out_size(H, k, s, p), Wo = l2_conv_out_size(W, k, s, p);
	/* 3x3 stride 1 pad 1 (every Inception block): interior cells without
	 * bounds checks, summed in the same row-major order as PyTorch */
	int fast = k == 3 && s == 1 && p == 1 && H >= 3 && W >= 3;
	for (size_t pl = 0; pl < planes; pl++) {
		const float *in = x + pl * H * W;
		float *out = y + pl * Ho * Wo;
		for (int oy = 0; oy < Ho; oy++) {
			if (fast && oy > 0 && oy < Ho - 1) {
				const float *r0 = in + (size_t)(oy - 1) * W, *r1 = r0 + W, *r2 = r1 + W;
				float *o = out + (size_t)oy * Wo;
				for (int ox = 1; ox < Wo - 1; ox++) {
					float sum = r0[ox - 1];
					sum += r0[ox];
					sum += r0[ox + 1];
					sum += r1[ox - 1];
					sum += r1[ox];
					sum += r1[ox + 1];
					sum += r2[ox - 1];
					sum += r2[ox];
					sum += r2[ox + 1];
					o[ox] = sum / 9.0f;
				}
				/* the two border columns below */
				for (int e = 0; e < 2; e++) {
					int ox = e ? Wo - 1 : 0, x0 = ox - 1, x1 = ox + 2;
					if (x0 < 0) x0 = 0;
					if (x1 > W) x1 = W;
					float sum = 0;
					for (int iy = oy - 1; iy <= oy + 1; iy++)
						for (int ix = x0; ix < x1; ix++) sum += in[iy * W + ix];
					o[ox] = sum / (float)(count_include_pad ? 9 : 3 * (x1 - x0));
				}
				continue;
			}
			/* PyTorch: the padded window size, then clipped to the image */
			int y0 = oy * s - p, y1 = y0 + k;
			if (y1 > H + p) y1 = H + p;
			int ph = y1 - y0;
			if (y0 < 0) y0 = 0;
			if (y1 > H) y1 = H;
			for (int ox = 0; ox < Wo; ox++) {
				int x0 = ox * s - p, x1 = x0 + k;
				if (x1 > W + p) x1 = W + p;
				int pool = ph * (x1 - x0);
				if (x0 < 0) x0 = 0;
				if (x1 > W) x1 = W;
				float sum = 0;
				for (int iy = y0; iy < y1; iy++)
					for (int ix = x0; ix < x1; ix++) sum += in[iy * W + ix];
				int div = count_include_pad ? pool : (y1 - y0) * (x1 - x0);
				out[oy * Wo + ox] = sum / (float)div;
			}
		}
	}
}

void l2_global_avgpool(const float *x, int C, int B, int H, int W, float *y)
{
	size_t hw = (size_t)H * W;
	for (int c = 0; c < C; c++)
		for (int b = 0; b < B; b++) {
			const float *in = x + ((size_t)c * B + b) * hw;
			double s = 0;
			for (size_t i = 0; i < hw; i++) s += in[i];
			y[(size_t)b * C + c] = (float)(s / (double)hw);
		}
}
