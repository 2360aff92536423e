/* nn.c — inference kernels for l2's transformers (see nn.h).
 *
 * Numerics follow PyTorch's float32 forward: layer-norm statistics are
 * accumulated in double (two passes) so that they are at least as exact as
 * torch's Welford; softmax subtracts the row maximum. */
#include "nn.h"

#include "device.h"
#include "util.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- a tiny parallel-for ---------------------------------------------------- */

typedef struct {
	L2ParallelFn fn;
	void *ctx;
	size_t i0, i1;
} Chunk;

static void *chunk_main(void *p)
{
	Chunk *c = p;
	c->fn(c->ctx, c->i0, c->i1);
	return NULL;
}

void l2_nn_parallel(size_t n, size_t min_chunk, L2ParallelFn fn, void *ctx)
{
	int nt = l2_threads > 0 ? l2_threads : 1;
	if (min_chunk < 1) min_chunk = 1;
	if ((size_t)nt > n / min_chunk) nt = (int)(n / min_chunk);
	if (nt > 64) nt = 64;
	if (nt <= 1) {
		if (n) fn(ctx, 0, n);
		return;
	}
	Chunk c[64];
	pthread_t th[64];
	for (int t = 0; t < nt; t++) {
		c[t].fn = fn;
		c[t].ctx = ctx;
		c[t].i0 = n * t / nt;
		c[t].i1 = n * (t + 1) / nt;
	}
	int started = 0;
	for (int t = 1; t < nt; t++) {
		if (pthread_create(&th[t], NULL, chunk_main, &c[t])) break;
		started = t;
	}
	fn(ctx, c[0].i0, c[0].i1);
	for (int t = 1; t <= started; t++) pthread_join(th[t], NULL);
	/* chunks whose thread could not start run here */
	for (int t = started + 1; t < nt; t++) fn(ctx, c[t].i0, c[t].i1);
}

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
	l2_nn_parallel((size_t)n, 16, ln_rows, &c);
}

/* ---- QuickGELU ---------------------------------------------------------------------- */

static void gelu_range(void *p, size_t i0, size_t i1)
{
	float *x = p;
	for (size_t i = i0; i < i1; i++) x[i] = x[i] / (1.0f + expf(-1.702f * x[i]));
}

void l2_nn_quick_gelu(float *x, size_t n) { l2_nn_parallel(n, 16384, gelu_range, x); }

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
	l2_nn_parallel((size_t)nb * heads, 1, att_items, &c);
}
