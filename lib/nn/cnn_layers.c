/* cnn_layers.c — group norm (+ SiLU), residual add, nearest upsampling,
 * padding and pixel self-attention on (C, B, H, W) activations (see
 * cnn_layers.h).  In the float build the element-wise passes run on
 * 16-float vectors with nn/simd.h's expf; with L2_CNN_DOUBLE they are plain
 * loops over doubles with libm's exp. */
#include "nn/cnn_layers.h"

#include "nn/nn.h"
#include "core/parallel.h"
#include "core/util.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef L2_CNN_DOUBLE
#include "nn/simd.h"
#define GEMM cblas_sgemm
#else
#define GEMM cblas_dgemm
#endif

static __thread int serial;

void l2_cnn_set_serial(int on) { serial = on; }

/* l2_parallel_for unless this thread runs serially */
static void par(size_t n, size_t min_chunk, L2ParallelFn fn, void *ctx)
{
	if (serial) {
		if (n) fn(ctx, 0, n);
	} else {
		l2_parallel_for(n, min_chunk, fn, ctx);
	}
}

/* ---- group norm ---------------------------------------------------------------- */

typedef struct {
	const cnnr *x;
	cnnr *y;
	int C, B, groups, silu;
	size_t HW;
	const cnnr *gamma, *beta;
	double eps;
} GnCtx;

/* sum of p[0..n) and of (p[i] - m)^2, in double */
static double plane_sum(const cnnr *p, size_t n)
{
	size_t i = 0;
	double s = 0;
#ifndef L2_CNN_DOUBLE
	V8d s0 = {0}, s1 = {0};
	for (; i + 16 <= n; i += 16) {
		V16 v = vld(p + i);
		s0 += __builtin_convertvector(__builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7), V8d);
		s1 += __builtin_convertvector(__builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15), V8d);
	}
	for (int j = 0; j < 8; j++) s += s0[j] + s1[j];
#endif
	for (; i < n; i++) s += p[i];
	return s;
}

static double plane_sqdev(const cnnr *p, size_t n, double m)
{
	size_t i = 0;
	double s = 0;
#ifndef L2_CNN_DOUBLE
	V8d s0 = {0}, s1 = {0};
	for (; i + 16 <= n; i += 16) {
		V16 v = vld(p + i);
		V8d a = __builtin_convertvector(__builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7), V8d) - m;
		V8d b = __builtin_convertvector(__builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15), V8d) - m;
		s0 += a * a;
		s1 += b * b;
	}
	for (int j = 0; j < 8; j++) s += s0[j] + s1[j];
#endif
	for (; i < n; i++) {
		double d = p[i] - m;
		s += d * d;
	}
	return s;
}

/* y = x * a + b, then SiLU */
static void plane_affine(const cnnr *x, size_t n, cnnr a, cnnr b, int silu, cnnr *y)
{
	size_t i = 0;
#ifndef L2_CNN_DOUBLE
	for (; i + 16 <= n; i += 16) {
		V16 v = vld(x + i) * a + b;
		if (silu) v = v / (1.0f + vexp(-v));
		vst(y + i, v);
	}
	for (; i < n; i++) {
		float v = x[i] * a + b;
		y[i] = silu ? v / (1.0f + expf(-v)) : v;
	}
#else
	for (; i < n; i++) {
		double v = x[i] * a + b;
		y[i] = silu ? v / (1.0 + exp(-v)) : v;
	}
#endif
}

static void gn_items(void *p, size_t i0, size_t i1)
{
	const GnCtx *c = p;
	int cg = c->C / c->groups;
	for (size_t it = i0; it < i1; it++) {
		int b = (int)(it / (size_t)c->groups), g = (int)(it % (size_t)c->groups);
		double n = (double)cg * (double)c->HW, s = 0, v = 0;
		for (int ch = g * cg; ch < (g + 1) * cg; ch++) s += plane_sum(c->x + ((size_t)ch * c->B + b) * c->HW, c->HW);
		double mean = s / n;
		for (int ch = g * cg; ch < (g + 1) * cg; ch++)
			v += plane_sqdev(c->x + ((size_t)ch * c->B + b) * c->HW, c->HW, mean);
		double rstd = 1.0 / sqrt(v / n + c->eps);
		for (int ch = g * cg; ch < (g + 1) * cg; ch++) {
			/* (x - mean) * rstd * gamma + beta as one multiply-add per element */
			double a = rstd * c->gamma[ch];
			size_t off = ((size_t)ch * c->B + b) * c->HW;
			plane_affine(c->x + off, c->HW, (cnnr)a, (cnnr)(c->beta[ch] - mean * a), c->silu, c->y + off);
		}
	}
}

void l2_cnn_group_norm(const cnnr *x, int C, int B, size_t HW, int groups, const cnnr *gamma, const cnnr *beta,
		       double eps, int silu, cnnr *y)
{
	if (groups < 1 || C % groups) l2_die("group norm: %d channels are not a multiple of %d groups", C, groups);
	GnCtx c = {x, y, C, B, groups, silu, HW, gamma, beta, eps};
	size_t per = (size_t)(C / groups) * HW; /* elements per item */
	par((size_t)B * groups, per >= 16384 ? 1 : 16384 / per, gn_items, &c);
}

/* ---- residual add ----------------------------------------------------------------- */

typedef struct {
	cnnr *y;
	const cnnr *x;
	int relu;
} AddCtx;

static void add_range(void *p, size_t i0, size_t i1)
{
	const AddCtx *c = p;
	cnnr *y = c->y;
	const cnnr *x = c->x;
	if (c->relu)
		for (size_t i = i0; i < i1; i++) {
			cnnr v = y[i] + x[i];
			y[i] = v > 0 ? v : 0;
		}
	else
		for (size_t i = i0; i < i1; i++) y[i] += x[i];
}

void l2_cnn_add(cnnr *y, const cnnr *x, size_t n, int relu)
{
	AddCtx c = {y, x, relu};
	par(n, 65536, add_range, &c);
}

/* ---- upsampling and padding ---------------------------------------------------------- */

typedef struct {
	const cnnr *x;
	cnnr *y;
	int H, W;
} UpCtx;

static void up_planes(void *p, size_t i0, size_t i1)
{
	const UpCtx *c = p;
	int H = c->H, W = c->W;
	for (size_t pl = i0; pl < i1; pl++) {
		const cnnr *in = c->x + pl * H * W;
		cnnr *out = c->y + pl * 4 * H * W;
		for (int y = 0; y < H; y++) {
			cnnr *r = out + (size_t)2 * y * 2 * W;
			for (int x = 0; x < W; x++) r[2 * x] = r[2 * x + 1] = in[(size_t)y * W + x];
			memcpy(r + 2 * W, r, (size_t)2 * W * sizeof(cnnr));
		}
	}
}

void l2_cnn_upsample2x(const cnnr *x, size_t planes, int H, int W, cnnr *y)
{
	UpCtx c = {x, y, H, W};
	size_t per = (size_t)H * W;
	par(planes, per >= 16384 ? 1 : 16384 / per, up_planes, &c);
}

void l2_cnn_pad(const cnnr *x, size_t planes, int H, int W, int top, int bottom, int left, int right, cnnr *y)
{
	int Ho = H + top + bottom, Wo = W + left + right;
	for (size_t pl = 0; pl < planes; pl++) {
		cnnr *out = y + pl * Ho * Wo;
		const cnnr *in = x + pl * H * W;
		memset(out, 0, (size_t)top * Wo * sizeof(cnnr));
		for (int r = 0; r < H; r++) {
			cnnr *o = out + (size_t)(r + top) * Wo;
			memset(o, 0, (size_t)left * sizeof(cnnr));
			memcpy(o + left, in + (size_t)r * W, (size_t)W * sizeof(cnnr));
			memset(o + left + W, 0, (size_t)right * sizeof(cnnr));
		}
		memset(out + (size_t)(top + H) * Wo, 0, (size_t)bottom * Wo * sizeof(cnnr));
	}
}

/* ---- pixel self-attention ----------------------------------------------------------- */

typedef struct {
	cnnr *s;
	int N;
} SoftmaxCtx;

/* softmax of each row of s (N x N), in place; sums in double */
static void softmax_rows(void *p, size_t i0, size_t i1)
{
	const SoftmaxCtx *c = p;
	int N = c->N;
	for (size_t r = i0; r < i1; r++) {
		cnnr *row = c->s + r * N, mx = row[0];
		for (int j = 1; j < N; j++) mx = row[j] > mx ? row[j] : mx;
		double sum = 0;
		int j = 0;
#ifndef L2_CNN_DOUBLE
		for (; j + 16 <= N; j += 16) {
			V16 e = vexp(vld(row + j) - mx);
			vst(row + j, e);
			for (int t = 0; t < 16; t++) sum += e[t];
		}
		for (; j < N; j++) sum += row[j] = expf(row[j] - mx);
#else
		for (; j < N; j++) sum += row[j] = exp(row[j] - mx);
#endif
		cnnr inv = (cnnr)(1.0 / sum);
		for (j = 0; j < N; j++) row[j] *= inv;
	}
}

void l2_cnn_attention(const cnnr *q, const cnnr *k, const cnnr *v, int C, int B, int N, cnnr *out)
{
	cnnr *s = l2_conv_alloc(l2_mul_size(l2_mul_size((size_t)N, (size_t)N), sizeof(cnnr)));
	int ld = B * N; /* the stride between channels of one image's (C, N) view */
	for (int b = 0; b < B; b++) {
		size_t o = (size_t)b * N;
		GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, N, N, C, (cnnr)(1.0 / sqrt((double)C)), q + o, ld, k + o, ld,
		     0, s, N);
		SoftmaxCtx c = {s, N};
		par((size_t)N, 16, softmax_rows, &c);
		GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, C, N, N, 1, v + o, ld, s, N, 0, out + o, ld);
	}
	free(s);
}
