/* conv.c — im2col + SGEMM convolution and PyTorch-compatible pooling
 * (see conv.h for the (C, B, H, W) layout; with L2_CNN_DOUBLE defined, the
 * convolutions alone in double, through DGEMM). */
#include "nn/conv.h"
#include "core/util.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* im2col scratch: at most this many floats per column block (4 MiB), so
 * memory stays bounded whatever the batch and a block is still in cache
 * when the GEMM packs it (16 MiB blocks made the stem's im2col 4x slower);
 * blocks of >= 256 columns keep the GEMMs efficient. */
#ifndef COL_BUDGET
#define COL_BUDGET (1u << 20)
#endif

#ifdef L2_CNN_DOUBLE
#define GEMM cblas_dgemm
#else
#define GEMM cblas_sgemm
#endif

static __thread cnnr *scratch;
static __thread size_t scratch_len;

void *l2_conv_alloc(size_t n)
{
	const size_t huge = (size_t)2 << 20;
	if (n < 2 * huge) return l2_malloc_aligned(n);
	n = (n + huge - 1) / huge * huge;
	void *p = NULL;
	if (posix_memalign(&p, huge, n) != 0) l2_die("out of memory (asked for %zu aligned bytes)", n);
#ifdef MADV_HUGEPAGE
	madvise(p, n, MADV_HUGEPAGE); /* only a hint: no error if unsupported */
#endif
	return p;
}

static cnnr *scratch_get(size_t n)
{
	if (n > scratch_len) {
		free(scratch);
		scratch = l2_conv_alloc(n * sizeof(cnnr));
		scratch_len = n;
	}
	return scratch;
}

void l2_conv_scratch_free(void)
{
	free(scratch);
	scratch = NULL;
	scratch_len = 0;
}

void l2_conv_fold_bn(L2Conv *c, const cnnr *gamma, const cnnr *beta, const cnnr *mean, const cnnr *var,
		     float eps)
{
	size_t k = (size_t)c->cin * c->kh * c->kw;
	for (int o = 0; o < c->cout; o++) {
		/* float64 for the fold itself: the folded weights are then the
		 * correctly rounded values of the exact products */
		double s = gamma[o] / sqrt((double)var[o] + eps);
		cnnr *w = c->w + (size_t)o * k;
		for (size_t i = 0; i < k; i++) w[i] = (cnnr)(w[i] * s);
		c->b[o] = (cnnr)(beta[o] + ((double)c->b[o] - mean[o]) * s);
	}
}

#ifndef L2_CNN_DOUBLE
/* 8-float vectors with GCC/Clang vector extensions: no intrinsics, any target
 * (the helpers are static, so GCC's note about the vector-passing ABI on
 * targets without AVX does not apply) */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
typedef float V8 __attribute__((vector_size(32)));
typedef int I8 __attribute__((vector_size(32)));

static inline V8 v8_load(const float *p)
{
	V8 v;
	memcpy(&v, p, sizeof v);
	return v;
}

static inline void v8_store(float *p, V8 v) { memcpy(p, &v, sizeof v); }

/* short copies (im2col runs of 8..35 floats) without a call */
static inline void copy_floats(float *dst, const float *src, int n)
{
	int i = 0;
	for (; i + 8 <= n; i += 8) v8_store(dst + i, v8_load(src + i));
	for (; i < n; i++) dst[i] = src[i];
}
#else
static inline void copy_floats(cnnr *dst, const cnnr *src, int n)
{
	for (int i = 0; i < n; i++) dst[i] = src[i];
}
#endif

/* Columns [n0, n0 + nc) of im2col(x): row r = (ci, ky, kx), column
 * n = (b, oy, ox).  col is (K, nc). */
static void im2col(const L2Conv *c, const cnnr *x, int B, int H, int W, int Ho, int Wo, size_t n0, size_t nc,
		   cnnr *col)
{
	size_t howo = (size_t)Ho * Wo, end = n0 + nc;
	size_t b_start = n0 / howo, rem = n0 % howo;
	int oy_start = (int)(rem / Wo), ox_start = (int)(rem % Wo);
	/* kh x 1 stride-1 convs: an output row is an input row, and the rows of
	 * one image inside it are one copy */
	int whole_rows = c->kw == 1 && c->sw == 1 && c->pw == 0 && c->sh == 1;
	for (int ci = 0; ci < c->cin; ci++)
		for (int ky = 0; ky < c->kh; ky++)
			for (int kx = 0; kx < c->kw; kx++) {
				cnnr *dst = col + (((size_t)ci * c->kh + ky) * c->kw + kx) * nc;
				size_t n = n0, b = b_start;
				int oy = oy_start, ox0 = ox_start;
				while (n < end) {
					int iy = oy * c->sh - c->ph + ky;
					const cnnr *src = x + ((size_t)ci * B + b) * H * W; /* + iy * W when inside */
					if (iy >= 0 && iy < H) src += (size_t)iy * W;
					if (whole_rows && ox0 == 0 && iy >= 0 && iy < H) {
						size_t rows = (size_t)(H - iy < Ho - oy ? H - iy : Ho - oy);
						if (rows > (end - n) / (size_t)Wo) rows = (end - n) / (size_t)Wo;
						if (rows) {
							memcpy(dst, src, rows * Wo * sizeof(cnnr));
							dst += rows * Wo;
							n += rows * Wo;
							oy += (int)rows;
							if (oy == Ho) oy = 0, b++;
							continue;
						}
					}
					int len = Wo - ox0;
					if ((size_t)len > end - n) len = (int)(end - n);
					if (iy < 0 || iy >= H) {
						memset(dst, 0, (size_t)len * sizeof(cnnr));
					} else if (c->sw == 1) {
						/* ix = ox - pw + kx: zeros, a run, zeros */
						int ix0 = ox0 - c->pw + kx, i = 0;
						for (; i < len && ix0 + i < 0; i++) dst[i] = 0;
						int run = len - i;
						if (ix0 + i + run > W) run = W - (ix0 + i);
						if (run > 0) {
							copy_floats(dst + i, src + ix0 + i, run);
							i += run;
						}
						for (; i < len; i++) dst[i] = 0;
					} else if (c->pw == 0) { /* strided, every ix inside */
						const cnnr *p = src + (size_t)ox0 * c->sw + kx;
						for (int i = 0; i < len; i++) dst[i] = p[(size_t)i * c->sw];
					} else {
						for (int i = 0; i < len; i++) {
							int ix = (ox0 + i) * c->sw - c->pw + kx;
							dst[i] = ix >= 0 && ix < W ? src[ix] : 0;
						}
					}
					dst += len;
					n += (size_t)len;
					ox0 += len;
					if (ox0 == Wo) {
						ox0 = 0;
						if (++oy == Ho) oy = 0, b++;
					}
				}
			}
}

/* y[m] += b[m] on columns [n0, n0 + nc), then ReLU on rows m >= relu_from */
static void bias_relu(cnnr *y, int rows, size_t ld, size_t n0, size_t nc, const cnnr *b, int relu_from)
{
	if (!b && relu_from >= rows) return;
	for (int m = 0; m < rows; m++) {
		cnnr *r = y + (size_t)m * ld + n0, bm = b ? b[m] : 0;
		if (m >= relu_from)
			for (size_t i = 0; i < nc; i++) {
				cnnr v = r[i] + bm;
				r[i] = v > 0 ? v : 0;
			}
		else
			for (size_t i = 0; i < nc; i++) r[i] += bm;
	}
}

void l2_conv2d(const L2Conv *c, const cnnr *x, int B, int H, int W, cnnr *y, int relu)
{
	l2_conv2d_rows(c, x, B, H, W, y, relu ? 0 : c->cout);
}

#if defined(__AVX2__) && defined(__FMA__) && !defined(L2_CNN_DOUBLE)
#include <immintrin.h>
/* Direct 3x3 stride-1 convolution for few input channels (the stem's
 * Conv2d_2a/2b: 32 in, 32/64 out, K = 288).  As a GEMM every im2col element
 * would be packed by OpenBLAS for only 32-64 multiply-adds, and those GEMMs
 * ran at ~60 % of the rate of the others; here the padded input is read
 * straight into registers: tiles of 8 output channels x 2 vectors of output
 * columns, 16 FMA accumulators, bias and ReLU applied on the way out. */
#ifdef __AVX512F__
typedef __m512 Vec;
enum { VW = 16 };
#define V_ZERO() _mm512_setzero_ps()
#define V_LOADU(p) _mm512_loadu_ps(p)
#define V_STOREU(p, v) _mm512_storeu_ps(p, v)
#define V_BCAST(p) _mm512_set1_ps(*(p))
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define V_ADD(a, b) _mm512_add_ps(a, b)
#define V_MAX(a, b) _mm512_max_ps(a, b)
#define V_SET1(x) _mm512_set1_ps(x)
#else
typedef __m256 Vec;
enum { VW = 8 };
#define V_ZERO() _mm256_setzero_ps()
#define V_LOADU(p) _mm256_loadu_ps(p)
#define V_STOREU(p, v) _mm256_storeu_ps(p, v)
#define V_BCAST(p) _mm256_broadcast_ss(p)
#define V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define V_ADD(a, b) _mm256_add_ps(a, b)
#define V_MAX(a, b) _mm256_max_ps(a, b)
#define V_SET1(x) _mm256_set1_ps(x)
#endif

#ifndef DIRECT_MAX_CIN
#define DIRECT_MAX_CIN 32
#endif
static int direct_ok(const L2Conv *c)
{
	return c->kh == 3 && c->kw == 3 && c->sh == 1 && c->sw == 1 && c->ph == c->pw && c->ph <= 1 &&
	       c->cout % 8 == 0 && c->cin <= DIRECT_MAX_CIN;
}

static void conv3x3_direct(const L2Conv *c, const float *x, int B, int H, int W, float *y, int relu_from)
{
	enum { TW = 2 * VW }; /* output columns per tile */
	const int p = c->ph, cin = c->cin, Ho = H + 2 * p - 2, Wo = W + 2 * p - 2;
	const int Hp = H + 2 * p, Wp = (Wo + TW - 1) / TW * TW + 2; /* every tile's loads inside the row */
	size_t plane = (size_t)Hp * Wp;
	/* the input, zero-padded, and the weights as [co/8][ci][ky][kx][8] */
	size_t nx = (size_t)cin * B * plane, nw = (size_t)c->cout * cin * 9;
	float *xp = scratch_get(nx + nw), *wp = xp + nx;
	memset(xp, 0, nx * sizeof(float));
	for (size_t cb = 0; cb < (size_t)cin * B; cb++)
		for (int iy = 0; iy < H; iy++)
			memcpy(xp + cb * plane + (size_t)(iy + p) * Wp + p, x + (cb * H + iy) * W, (size_t)W * sizeof(float));
	for (int co = 0; co < c->cout; co++)
		for (int k = 0; k < cin * 9; k++) wp[((size_t)(co / 8) * cin * 9 + k) * 8 + co % 8] = c->w[(size_t)co * cin * 9 + k];
	for (int b = 0; b < B; b++)
		for (int oy = 0; oy < Ho; oy++)
			for (int cb = 0; cb < c->cout / 8; cb++)
				for (int ox = 0; ox < Wo; ox += TW) {
					/* 16 named accumulators: an array of them would live on the stack */
#define ACC_ZERO(j) Vec a##j##0 = V_ZERO(), a##j##1 = V_ZERO();
#define ACC_STEP(j) { Vec w_ = V_BCAST(wv + j); a##j##0 = V_FMA(w_, i0, a##j##0); a##j##1 = V_FMA(w_, i1, a##j##1); }
#define ACC_SAVE(j) { acc[j][0] = a##j##0; acc[j][1] = a##j##1; }
					ACC_ZERO(0) ACC_ZERO(1) ACC_ZERO(2) ACC_ZERO(3) ACC_ZERO(4) ACC_ZERO(5) ACC_ZERO(6) ACC_ZERO(7)
					for (int ci = 0; ci < cin; ci++) {
						const float *wv = wp + ((size_t)cb * cin + ci) * 72;
						for (int ky = 0; ky < 3; ky++) {
							const float *row = xp + ((size_t)ci * B + b) * plane + (size_t)(oy + ky) * Wp + ox;
							for (int kx = 0; kx < 3; kx++, wv += 8) {
								Vec i0 = V_LOADU(row + kx), i1 = V_LOADU(row + kx + VW);
								ACC_STEP(0) ACC_STEP(1) ACC_STEP(2) ACC_STEP(3)
								ACC_STEP(4) ACC_STEP(5) ACC_STEP(6) ACC_STEP(7)
							}
						}
					}
					Vec acc[8][2];
					ACC_SAVE(0) ACC_SAVE(1) ACC_SAVE(2) ACC_SAVE(3) ACC_SAVE(4) ACC_SAVE(5) ACC_SAVE(6) ACC_SAVE(7)
#undef ACC_ZERO
#undef ACC_STEP
#undef ACC_SAVE
					int n = Wo - ox < TW ? Wo - ox : TW;
					for (int j = 0; j < 8; j++) {
						int co = cb * 8 + j;
						Vec bj = V_SET1(c->b ? c->b[co] : 0.0f), v0 = V_ADD(acc[j][0], bj), v1 = V_ADD(acc[j][1], bj);
						if (co >= relu_from) {
							v0 = V_MAX(v0, V_ZERO());
							v1 = V_MAX(v1, V_ZERO());
						}
						float *dst = y + (((size_t)co * B + b) * Ho + oy) * Wo + ox;
						if (n == TW) {
							V_STOREU(dst, v0);
							V_STOREU(dst + VW, v1);
						} else {
							float t[TW];
							V_STOREU(t, v0);
							V_STOREU(t + VW, v1);
							memcpy(dst, t, (size_t)n * sizeof(float));
						}
					}
				}
}
#endif

/* y (+)= conv(x) + bias; beta is 0 (overwrite) or 1 (add onto y) */
static void conv_gemm(const L2Conv *c, const cnnr *x, int B, int H, int W, cnnr *y, int relu_from, cnnr beta)
{
	int Ho = l2_conv_out_size(H, c->kh, c->sh, c->ph), Wo = l2_conv_out_size(W, c->kw, c->sw, c->pw);
	size_t N = (size_t)B * Ho * Wo, K = (size_t)c->cin * c->kh * c->kw;
	if (c->kh == 1 && c->kw == 1 && c->sh == 1 && c->sw == 1 && c->ph == 0 && c->pw == 0) {
		GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, c->cout, (int)N, (int)K, 1, c->w, (int)K, x, (int)N, beta, y,
		     (int)N);
		bias_relu(y, c->cout, N, 0, N, c->b, relu_from);
		return;
	}
	size_t nb = COL_BUDGET / K;
	if (nb < 256) nb = 256;
	if (nb > N) nb = N;
	cnnr *col = scratch_get(K * nb);
	for (size_t n0 = 0; n0 < N; n0 += nb) {
		size_t nc = N - n0 < nb ? N - n0 : nb;
		im2col(c, x, B, H, W, Ho, Wo, n0, nc, col);
		GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, c->cout, (int)nc, (int)K, 1, c->w, (int)K, col, (int)nc, beta,
		     y + n0, (int)N);
		bias_relu(y, c->cout, N, n0, nc, c->b, relu_from);
	}
}

/* ---- Winograd F(2x2, 3x3) ------------------------------------------------------------ */

int l2_conv_wino_ok(const L2Conv *c)
{
	return c->kh == 3 && c->kw == 3 && c->sh == 1 && c->sw == 1 && c->ph == 1 && c->pw == 1;
}

size_t l2_conv_wino_size(const L2Conv *c) { return (size_t)16 * c->cout * c->cin; }

/* u[e = 4i + j][co][ci] = (G g Gᵀ)[i][j], G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1],
 * in double; a block of kernels at a time, so that the 16 outputs are
 * written as 16 runs rather than 16 scattered stores per kernel (this
 * runs once per load, over every 3x3 weight of the model) */
void l2_conv_wino_weights(const L2Conv *c, cnnr *u)
{
	enum { KB = 256 };
	size_t cc = (size_t)c->cout * c->cin;
	cnnr blk[16][KB];
	for (size_t k0 = 0; k0 < cc; k0 += KB) {
		size_t nk = cc - k0 < KB ? cc - k0 : KB;
		for (size_t k = 0; k < nk; k++) {
			const cnnr *g = c->w + (k0 + k) * 9;
			double t[4][3];
			for (int j = 0; j < 3; j++) { /* G g: rows */
				t[0][j] = g[j];
				t[1][j] = 0.5 * ((double)g[j] + g[3 + j] + g[6 + j]);
				t[2][j] = 0.5 * ((double)g[j] - g[3 + j] + g[6 + j]);
				t[3][j] = g[6 + j];
			}
			for (int i = 0; i < 4; i++) { /* (G g) Gᵀ: columns */
				blk[4 * i][k] = (cnnr)t[i][0];
				blk[4 * i + 1][k] = (cnnr)(0.5 * (t[i][0] + t[i][1] + t[i][2]));
				blk[4 * i + 2][k] = (cnnr)(0.5 * (t[i][0] - t[i][1] + t[i][2]));
				blk[4 * i + 3][k] = (cnnr)t[i][2];
			}
		}
		for (int e = 0; e < 16; e++) memcpy(u + e * cc + k0, blk[e], nk * sizeof(cnnr));
	}
}

/* Tiles per block: the block's 16 transformed inputs and 16 GEMM outputs
 * stay within 2M values (8 MiB in float), and at least one tile row.  Each
 * of the 16 GEMMs packs all of its Cout x Cin weights for the block's
 * tiles, so narrow blocks spend their time packing: with 2M, a 64x64
 * image of 128 channels, or a 32x32 one of 512, is one block. */
#ifndef WINO_BUDGET
#define WINO_BUDGET (1u << 21)
#endif

/* V[e][ci][t] for the tiles of tile rows [ty0, ty0 + rows) of one image:
 * Bᵀ d B with Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], on xp, the
 * image's zero-padded planes (Hp x Wp each, the image at (1, 1)).  The
 * vertical pass runs along whole padded rows and the horizontal one on
 * their even and odd columns, so both are unit-stride loops. */
static void wino_in(const cnnr *xp, int cin, int Hp, int Wp, int tw, int ty0, int rows, size_t nt, cnnr *V, cnnr *tmp)
{
	cnnr *a[4], *ev[4], *od[4];
	for (int i = 0; i < 4; i++) a[i] = tmp + (size_t)i * Wp, ev[i] = tmp + (size_t)(4 + i) * Wp, od[i] = ev[i] + Wp / 2;
	size_t cs = (size_t)cin * nt;
	for (int ci = 0; ci < cin; ci++)
		for (int r = 0; r < rows; r++) {
			const cnnr *d0 = xp + ((size_t)ci * Hp + 2 * (ty0 + r)) * Wp, *d1 = d0 + Wp, *d2 = d1 + Wp, *d3 = d2 + Wp;
			for (int k = 0; k < Wp; k++) {
				a[0][k] = d0[k] - d2[k];
				a[1][k] = d1[k] + d2[k];
				a[2][k] = d2[k] - d1[k];
				a[3][k] = d1[k] - d3[k];
			}
			for (int i = 0; i < 4; i++) {
				cnnr *e = ev[i], *o = od[i];
				const cnnr *s = a[i];
				for (int k = 0; k < Wp / 2; k++) e[k] = s[2 * k], o[k] = s[2 * k + 1];
				cnnr *v0 = V + (size_t)(4 * i) * cs + (size_t)ci * nt + (size_t)r * tw;
				cnnr *v1 = v0 + cs, *v2 = v1 + cs, *v3 = v2 + cs;
				for (int t = 0; t < tw; t++) {
					v0[t] = e[t] - e[t + 1];
					v1[t] = o[t] + e[t + 1];
					v2[t] = e[t + 1] - o[t];
					v3[t] = o[t] - o[t + 1];
				}
			}
		}
}

/* y rows [2 ty0, ...) of one image (its planes at y0, channel stride ys)
 * from M[e][co][t]: Aᵀ m A + bias, Aᵀ = [1 1 1 0; 0 1 -1 -1] */
static void wino_out(const cnnr *M, int cout, size_t nt, int tw, int ty0, int rows, const cnnr *bias, int Ho, int Wo,
		     cnnr *y0, size_t ys, int add, cnnr *tmp)
{
	size_t cs = (size_t)cout * nt;
	cnnr *p[2][4], *q[2][2];
	for (int i = 0; i < 2; i++) {
		for (int j = 0; j < 4; j++) p[i][j] = tmp + (size_t)(4 * i + j) * tw;
		for (int j = 0; j < 2; j++) q[i][j] = tmp + (size_t)(8 + 2 * i + j) * tw;
	}
	for (int co = 0; co < cout; co++) {
		cnnr b = bias ? bias[co] : 0;
		for (int r = 0; r < rows; r++) {
			const cnnr *m = M + (size_t)co * nt + (size_t)r * tw;
			for (int j = 0; j < 4; j++) { /* vertical: p0 = m0 + m1 + m2, p1 = m1 - m2 - m3 */
				const cnnr *m0 = m + (size_t)j * cs, *m1 = m0 + 4 * cs, *m2 = m1 + 4 * cs, *m3 = m2 + 4 * cs;
				cnnr *p0 = p[0][j], *p1 = p[1][j];
				for (int t = 0; t < tw; t++) {
					p0[t] = m0[t] + m1[t] + m2[t];
					p1[t] = m1[t] - m2[t] - m3[t];
				}
			}
			for (int i = 0; i < 2; i++) { /* horizontal, + bias */
				const cnnr *s0 = p[i][0], *s1 = p[i][1], *s2 = p[i][2], *s3 = p[i][3];
				cnnr *e = q[i][0], *o = q[i][1];
				for (int t = 0; t < tw; t++) {
					e[t] = s0[t] + s1[t] + s2[t] + b;
					o[t] = s1[t] - s2[t] - s3[t] + b;
				}
			}
			for (int i = 0; i < 2; i++) {
				int oy = 2 * (ty0 + r) + i;
				if (oy >= Ho) break;
				cnnr *d = y0 + (size_t)co * ys + (size_t)oy * Wo;
				const cnnr *e = q[i][0], *o = q[i][1];
				int full = Wo / 2;
				if (add)
					for (int t = 0; t < full; t++) d[2 * t] += e[t], d[2 * t + 1] += o[t];
				else
					for (int t = 0; t < full; t++) d[2 * t] = e[t], d[2 * t + 1] = o[t];
				if (Wo & 1) d[Wo - 1] = add ? d[Wo - 1] + e[full] : e[full];
			}
		}
	}
}

void l2_conv2d_wino(const L2Conv *c, const cnnr *u, const cnnr *x, int B, int H, int W, cnnr *y, int add)
{
	if (!l2_conv_wino_ok(c)) l2_die("l2_conv2d_wino: not a 3x3 convolution of stride 1 and padding 1");
	const int cin = c->cin, cout = c->cout, th = (H + 1) / 2, tw = (W + 1) / 2;
	const int Hp = 2 * th + 2, Wp = 2 * tw + 2;
	int rows = (int)(WINO_BUDGET / ((size_t)16 * (cin + cout) * tw));
	if (rows < 1) rows = 1;
	if (rows > th) rows = th;
	size_t nmax = (size_t)rows * tw, np = (size_t)cin * Hp * Wp;
	size_t nV = (size_t)16 * cin * nmax, nM = (size_t)16 * cout * nmax, ntmp = (size_t)8 * Wp + 12 * (size_t)tw;
	cnnr *xp = scratch_get(np + nV + nM + ntmp), *V = xp + np, *M = V + nV, *tmp = M + nM;
	size_t cc = (size_t)cout * cin;
	for (int b = 0; b < B; b++) {
		/* the image's planes, zero-padded to Hp x Wp */
		for (int ci = 0; ci < cin; ci++) {
			cnnr *d = xp + (size_t)ci * Hp * Wp;
			const cnnr *s = x + ((size_t)ci * B + b) * H * W;
			memset(d, 0, (size_t)Wp * sizeof(cnnr));
			for (int iy = 0; iy < H; iy++) {
				cnnr *r = d + (size_t)(iy + 1) * Wp;
				r[0] = 0;
				memcpy(r + 1, s + (size_t)iy * W, (size_t)W * sizeof(cnnr));
				for (int k = W + 1; k < Wp; k++) r[k] = 0;
			}
			memset(d + (size_t)(H + 1) * Wp, 0, (size_t)(Hp - H - 1) * Wp * sizeof(cnnr));
		}
		for (int ty0 = 0; ty0 < th; ty0 += rows) {
			int nr = th - ty0 < rows ? th - ty0 : rows;
			size_t nt = (size_t)nr * tw;
			wino_in(xp, cin, Hp, Wp, tw, ty0, nr, nt, V, tmp);
			for (int e = 0; e < 16; e++)
				GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, cout, (int)nt, cin, 1, u + e * cc, cin,
				     V + (size_t)e * cin * nt, (int)nt, 0, M + (size_t)e * cout * nt, (int)nt);
			wino_out(M, cout, nt, tw, ty0, nr, c->b, H, W, y + (size_t)b * H * W, (size_t)B * H * W, add, tmp);
		}
	}
}

void l2_conv2d_rows(const L2Conv *c, const cnnr *x, int B, int H, int W, cnnr *y, int relu_from)
{
#if defined(__AVX2__) && defined(__FMA__) && !defined(L2_CNN_DOUBLE)
	if (direct_ok(c)) {
		conv3x3_direct(c, x, B, H, W, y, relu_from);
		return;
	}
#endif
	conv_gemm(c, x, B, H, W, y, relu_from, 0);
}

void l2_conv2d_add(const L2Conv *c, const cnnr *x, int B, int H, int W, cnnr *y)
{
	conv_gemm(c, x, B, H, W, y, c->cout, 1);
}

#ifndef L2_CNN_DOUBLE

/* Pooling is separable: a window's max (sum) is the max (sum) over its
 * columns of the max (sum) over its rows.  The row pass runs over whole
 * input rows in 8-float vectors, the column pass over the short window of
 * that row. */
/* max with PyTorch's NaN rule (a NaN wins), without a branch: pooled
 * activations make "v > m" a coin toss for the branch predictor */
static inline float maxnan(float m, float v)
{
	uint32_t a, b;
	memcpy(&a, &m, sizeof a);
	memcpy(&b, &v, sizeof b);
	uint32_t k = -(uint32_t)((v > m) | (v != v));
	a = (b & k) | (a & ~k);
	memcpy(&m, &a, sizeof m);
	return m;
}
#define MAXNAN(m, v) ((m) = maxnan((m), (v)))

static inline V8 v8_maxnan(V8 m, V8 v)
{
	I8 k = (v > m) | (v != v);
	return (V8)(((I8)v & k) | ((I8)m & ~k));
}

/* r[x] = max (or sum) over rows[0..n) of row[x], x < W */
static void rows_reduce(const float *in, int W, int y0, int n, int is_max, float *r)
{
	const float *a = in + (size_t)y0 * W;
	int x = 0;
	for (; x + 8 <= W; x += 8) {
		V8 m = v8_load(a + x);
		for (int i = 1; i < n; i++) {
			V8 v = v8_load(a + (size_t)i * W + x);
			m = is_max ? v8_maxnan(m, v) : m + v;
		}
		v8_store(r + x, m);
	}
	for (; x < W; x++) {
		float m = a[x];
		for (int i = 1; i < n; i++) {
			if (is_max) MAXNAN(m, a[(size_t)i * W + x]);
			else m += a[(size_t)i * W + x];
		}
		r[x] = m;
	}
}

void l2_maxpool2d(const float *x, size_t planes, int H, int W, int k, int s, int p, float *y)
{
	int Ho = l2_conv_out_size(H, k, s, p), Wo = l2_conv_out_size(W, k, s, p);
	float *r = l2_malloc((size_t)W * sizeof(float));
	for (size_t pl = 0; pl < planes; pl++) {
		const float *in = x + pl * H * W;
		float *out = y + pl * Ho * Wo;
		for (int oy = 0; oy < Ho; oy++) {
			int y0 = oy * s - p, y1 = y0 + k;
			if (y0 < 0) y0 = 0;
			if (y1 > H) y1 = H;
			rows_reduce(in, W, y0, y1 - y0, 1, r);
			float *o = out + (size_t)oy * Wo;
			if (k == 3 && s == 2 && p == 0) { /* the stem's and the reduction blocks' pool */
				for (int ox = 0; ox < Wo; ox++) {
					const float *c = r + 2 * ox;
					float m = c[0];
					MAXNAN(m, c[1]);
					MAXNAN(m, c[2]);
					o[ox] = m;
				}
				continue;
			}
			for (int ox = 0; ox < Wo; ox++) {
				int x0 = ox * s - p, x1 = x0 + k;
				if (x0 < 0) x0 = 0;
				if (x1 > W) x1 = W;
				float m = -INFINITY;
				for (int ix = x0; ix < x1; ix++) MAXNAN(m, r[ix]);
				o[ox] = m;
			}
		}
	}
	free(r);
}

void l2_avgpool2d(const float *x, size_t planes, int H, int W, int k, int s, int p, int count_include_pad, float *y)
{
	int Ho = l2_conv_out_size(H, k, s, p), Wo = l2_conv_out_size(W, k, s, p);
	float *r = l2_malloc((size_t)W * sizeof(float));
	for (size_t pl = 0; pl < planes; pl++) {
		const float *in = x + pl * H * W;
		float *out = y + pl * Ho * Wo;
		for (int oy = 0; oy < Ho; oy++) {
			/* PyTorch: the padded window size, then clipped to the image */
			int y0 = oy * s - p, y1 = y0 + k;
			if (y1 > H + p) y1 = H + p;
			int ph = y1 - y0;
			if (y0 < 0) y0 = 0;
			if (y1 > H) y1 = H;
			rows_reduce(in, W, y0, y1 - y0, 0, r);
			float *o = out + (size_t)oy * Wo;
			if (k == 3 && s == 1 && p == 1 && W >= 2) { /* every Inception block's pool */
				int rows = count_include_pad ? 3 : y1 - y0;
				float d_edge = (float)(rows * (count_include_pad ? 3 : 2)), d_in = (float)(rows * 3);
				o[0] = (r[0] + r[1]) / d_edge;
				for (int ox = 1; ox < Wo - 1; ox++) o[ox] = (r[ox - 1] + r[ox] + r[ox + 1]) / d_in;
				o[Wo - 1] = (r[W - 2] + r[W - 1]) / d_edge;
				continue;
			}
			for (int ox = 0; ox < Wo; ox++) {
				int x0 = ox * s - p, x1 = x0 + k;
				if (x1 > W + p) x1 = W + p;
				int pool = ph * (x1 - x0);
				if (x0 < 0) x0 = 0;
				if (x1 > W) x1 = W;
				float sum = 0;
				for (int ix = x0; ix < x1; ix++) sum += r[ix];
				int div = count_include_pad ? pool : (y1 - y0) * (x1 - x0);
				o[ox] = sum / (float)div;
			}
		}
	}
	free(r);
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
#endif /* !L2_CNN_DOUBLE */
