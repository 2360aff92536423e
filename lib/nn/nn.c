/* nn.c — inference kernels for l2's transformers (see nn.h).
 *
 * Numerics follow PyTorch's float32 forward: layer-norm statistics are
 * accumulated in double (two passes) so that they are at least as exact as
 * torch's Welford; softmax subtracts the row maximum. */
#include "nn/nn.h"

#include "core/device.h"
#include "core/parallel.h"
#include "core/util.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- linear ------------------------------------------------------------------ */

void l2_nn_linear(const float *x, size_t ldx, int n, int in, const float *w, const float *b, int out, float *y,
		  size_t ldy)
{
	if (n <= 0 || out <= 0) return;
	for (int i = 0; i < n; i++) {
		if (b) memcpy(y + (size_t)i * ldy, b, (size_t)out * sizeof(float));
		else memset(y + (size_t)i * ldy, 0, (size_t)out * sizeof(float));
	}
	if (l2_device == L2_DEVICE_CUDA &&
	    l2_cuda_sgemm(0, 1, n, out, in, 1.0f, x, (int)ldx, w, in, 1.0f, y, (int)ldy) == 0)
		return;
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, x, (int)ldx, w, in, 1.0f, y, (int)ldy);
}

void l2_nn_linear_add(const float *x, int n, int in, const float *w, const float *b, int out, float *y)
{
	if (n <= 0 || out <= 0) return;
	if (b)
		for (int i = 0; i < n; i++) {
			float *r = y + (size_t)i * out;
			for (int j = 0; j < out; j++) r[j] += b[j];
		}
	if (l2_device == L2_DEVICE_CUDA && l2_cuda_sgemm(0, 1, n, out, in, 1.0f, x, in, w, in, 1.0f, y, out) == 0) return;
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, x, in, w, in, 1.0f, y, out);
}

/* ---- layer norm ------------------------------------------------------------------ */

typedef struct {
	const float *x, *g, *b;
	float *y;
	int d;
	float eps;
} LnCtx;

static void ln_rows(void *p, size_t i0, size_t i1)
{
	const LnCtx *c = p;
	int d = c->d;
	for (size_t i = i0; i < i1; i++) {
		const float *x = c->x + i * d;
		float *y = c->y + i * d;
		double s = 0;
		for (int j = 0; j < d; j++) s += x[j];
		double mean = s / d, v = 0;
		for (int j = 0; j < d; j++) {
			double t = x[j] - mean;
			v += t * t;
		}
		float m = (float)mean, r = (float)(1.0 / sqrt(v / d + c->eps));
		for (int j = 0; j < d; j++) y[j] = (x[j] - m) * r * c->g[j] + c->b[j];
	}
}

void l2_nn_layer_norm(const float *x, int n, int d, const float *g, const float *b, float eps, float *y)
{
	LnCtx c = {x, g, b, y, d, eps};
	l2_parallel_for((size_t)n, 16, ln_rows, &c);
}

/* ---- QuickGELU ---------------------------------------------------------------------- */

static void gelu_range(void *p, size_t i0, size_t i1)
{
	float *x = p;
	for (size_t i = i0; i < i1; i++) x[i] = x[i] / (1.0f + expf(-1.702f * x[i]));
}

void l2_nn_quick_gelu(float *x, size_t n) { l2_parallel_for(n, 16384, gelu_range, x); }

/* ---- attention ------------------------------------------------------------------------- */

typedef struct {
	const float *qkv;
	float *out;
	int s, d, heads, causal;
} AttCtx;

/* items are (sequence, head) pairs */
static void att_items(void *p, size_t i0, size_t i1)
{
	const AttCtx *c = p;
	int s = c->s, d = c->d, dh = d / c->heads;
	size_t ld = (size_t)3 * d;
	float scale = 1.0f / sqrtf((float)dh);
	float *sc = l2_malloc((size_t)s * sizeof(float));
	float *acc = l2_malloc((size_t)dh * sizeof(float));
	for (size_t it = i0; it < i1; it++) {
		size_t b = it / c->heads, h = it % c->heads;
		const float *base = c->qkv + b * s * ld + h * dh;
		for (int i = 0; i < s; i++) {
			const float *q = base + i * ld;
			int nj = c->causal ? i + 1 : s;
			float mx = -INFINITY;
			for (int j = 0; j < nj; j++) {
				const float *k = base + j * ld + d;
				float t = 0;
				for (int e = 0; e < dh; e++) t += q[e] * k[e];
				t *= scale;
				sc[j] = t;
				if (t > mx) mx = t;
			}
			float sum = 0;
			for (int j = 0; j < nj; j++) {
				sc[j] = expf(sc[j] - mx);
				sum += sc[j];
			}
			memset(acc, 0, (size_t)dh * sizeof(float));
			for (int j = 0; j < nj; j++) {
				const float *v = base + j * ld + 2 * d;
				float w = sc[j];
				for (int e = 0; e < dh; e++) acc[e] += w * v[e];
			}
			float inv = 1.0f / sum;
			float *o = c->out + (b * s + i) * (size_t)d + h * dh;
			for (int e = 0; e < dh; e++) o[e] = acc[e] * inv;
		}
	}
	free(acc);
	free(sc);
}

void l2_nn_attention(const float *qkv, int nb, int s, int d, int heads, int causal, float *out)
{
	if (heads < 1 || d % heads) l2_die("attention: width %d is not a multiple of %d heads", d, heads);
	AttCtx c = {qkv, out, s, d, heads, causal};
	l2_parallel_for((size_t)nb * heads, 1, att_items, &c);
}

/* ---- vectorised single-thread kernels ---------------------------------------------------
 *
 * GCC/clang vector extensions, 16 floats wide (one AVX-512 register, two AVX
 * ones; the compiler splits them for narrower targets).  The sums over
 * features keep the scalar kernels' order where it is cheap to (attention
 * dot products over the head width and the weighted sum of values run
 * sequentially per output lane), so only exp and the softmax and
 * layer-norm sums round differently. */

#include "nn/simd.h"

static inline float hsum16(V16 v)
{
	float s = 0;
	for (int i = 0; i < 16; i++) s += v[i];
	return s;
}

void l2_nn_layer_norm_serial(const float *x, int n, int d, const float *g, const float *b, float eps, float *y)
{
	for (int i = 0; i < n; i++, x += d, y += d) {
		/* two passes in double, as ln_rows, with 16 partial sums */
		V8d s0 = {0}, s1 = {0};
		int j = 0;
		for (; j + 16 <= d; j += 16) {
			V16 v = vld(x + j);
			s0 += __builtin_convertvector(__builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7), V8d);
			s1 += __builtin_convertvector(__builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15), V8d);
		}
		double s = 0;
		for (int k = 0; k < 8; k++) s += s0[k] + s1[k];
		for (; j < d; j++) s += x[j];
		double mean = s / d;
		V8d v0 = {0}, v1 = {0};
		j = 0;
		for (; j + 16 <= d; j += 16) {
			V16 v = vld(x + j);
			V8d t0 = __builtin_convertvector(__builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7), V8d) - mean;
			V8d t1 = __builtin_convertvector(__builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15), V8d) - mean;
			v0 += t0 * t0;
			v1 += t1 * t1;
		}
		double var = 0;
		for (int k = 0; k < 8; k++) var += v0[k] + v1[k];
		for (; j < d; j++) var += (x[j] - mean) * (x[j] - mean);
		float m = (float)mean, r = (float)(1.0 / sqrt(var / d + eps));
		j = 0;
		for (; j + 16 <= d; j += 16) vst(y + j, (vld(x + j) - m) * r * vld(g + j) + vld(b + j));
		for (; j < d; j++) y[j] = (x[j] - m) * r * g[j] + b[j];
	}
}

void l2_nn_quick_gelu_serial(float *x, size_t n)
{
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		V16 v = vld(x + i);
		vst(x + i, v / (1.0f + vexp(v * -1.702f)));
	}
	if (i < n) {
		float t[16] = {0};
		memcpy(t, x + i, (n - i) * sizeof(float));
		V16 v = vld(t);
		vst(t, v / (1.0f + vexp(v * -1.702f)));
		memcpy(x + i, t, (n - i) * sizeof(float));
	}
}

/* One (sequence, head): base points at q of token 0 of this head (k at +d,
 * v at +2d, rows ld apart); out at token 0 of this head (rows d apart).
 * kt (dh, sp) and sc (4, sp) are scratch, sp = s rounded up to 16. */
static void att_head(const float *base, size_t ld, int s, int d, int dh, int causal, float *out, float *kt,
		     float *sc, float *acc)
{
	int sp = (s + 15) & ~15;
	float scale = 1.0f / sqrtf((float)dh);
	for (int e = 0; e < dh; e++) {
		float *r = kt + (size_t)e * sp;
		for (int j = 0; j < s; j++) r[j] = base[(size_t)j * ld + d + e];
		for (int j = s; j < sp; j++) r[j] = 0;
	}
	for (int i0 = 0; i0 < s; i0 += 4) {
		int ni = s - i0 < 4 ? s - i0 : 4;
		const float *q[4];
		for (int r = 0; r < 4; r++) q[r] = base + (size_t)(i0 + (r < ni ? r : ni - 1)) * ld;
		int nj = causal ? i0 + ni : s; /* columns this block needs */
		/* scores: dot products summed in order over e, as the scalar kernel */
		for (int jv = 0; jv < nj; jv += 16) {
			V16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
			const float *k = kt + jv;
			for (int e = 0; e < dh; e++) {
				V16 kv = vld(k + (size_t)e * sp);
				a0 += kv * q[0][e];
				a1 += kv * q[1][e];
				a2 += kv * q[2][e];
				a3 += kv * q[3][e];
			}
			vst(sc + jv, a0 * scale);
			vst(sc + sp + jv, a1 * scale);
			vst(sc + 2 * (size_t)sp + jv, a2 * scale);
			vst(sc + 3 * (size_t)sp + jv, a3 * scale);
		}
		float inv[4];
		for (int r = 0; r < 4; r++) {
			float *p = sc + (size_t)r * sp;
			int n = causal ? (i0 + r < s ? i0 + r + 1 : 1) : s;
			float mx = -INFINITY;
			for (int j = 0; j < n; j++) mx = p[j] > mx ? p[j] : mx;
			V16 sum = {0};
			int j = 0;
			for (; j + 16 <= n; j += 16) {
				V16 t = vexp(vld(p + j) - mx);
				vst(p + j, t);
				sum += t;
			}
			if (j < n) {
				V16 t = vexp(vld(p + j) - mx);
				for (int k = n - j; k < 16; k++) t[k] = 0;
				vst(p + j, t);
				sum += t;
				j += 16;
			}
			for (; j < nj; j++) p[j] = 0; /* masked (causal) */
			inv[r] = 1.0f / hsum16(sum);
		}
		/* out = p v, summed in order over j per lane, then scaled by 1/sum */
		for (int e0 = 0; e0 < dh; e0 += 16) {
			int ne = dh - e0 < 16 ? dh - e0 : 16;
			V16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
			if (ne == 16) {
				for (int j = 0; j < nj; j++) {
					V16 vv = vld(base + (size_t)j * ld + 2 * d + e0);
					a0 += vv * sc[j];
					a1 += vv * sc[sp + j];
					a2 += vv * sc[2 * sp + j];
					a3 += vv * sc[3 * sp + j];
				}
			} else {
				for (int j = 0; j < nj; j++) {
					float t[16] = {0};
					memcpy(t, base + (size_t)j * ld + 2 * d + e0, (size_t)ne * sizeof(float));
					V16 vv = vld(t);
					a0 += vv * sc[j];
					a1 += vv * sc[sp + j];
					a2 += vv * sc[2 * sp + j];
					a3 += vv * sc[3 * sp + j];
				}
			}
			V16 a[4] = {a0 * inv[0], a1 * inv[1], a2 * inv[2], a3 * inv[3]};
			for (int r = 0; r < ni; r++) {
				vst(acc, a[r]);
				memcpy(out + (size_t)(i0 + r) * d + e0, acc, (size_t)ne * sizeof(float));
			}
		}
	}
}

void l2_nn_attention_range(const float *qkv, int s, int d, int heads, int causal, float *out, size_t i0, size_t i1)
{
	if (heads < 1 || d % heads) l2_die("attention: width %d is not a multiple of %d heads", d, heads);
	int dh = d / heads, sp = (s + 15) & ~15;
	size_t ld = (size_t)3 * d;
	float *kt = l2_malloc_aligned(l2_mul_size((size_t)dh + 4, (size_t)sp * sizeof(float)));
	float *sc = kt + (size_t)dh * sp, acc[16];
	for (size_t it = i0; it < i1; it++) {
		size_t b = it / heads, h = it % heads;
		att_head(qkv + b * s * ld + h * dh, ld, s, d, dh, causal, out + b * s * d + h * dh, kt, sc, acc);
	}
	l2_free_aligned(kt);
}
