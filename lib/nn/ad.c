/* ad.c — the tape, the arena and every differentiable op (see ad.h).
 *
 * Each op computes its output and, when an input requires a gradient,
 * records a node {backward fn, output, inputs, small int/double params,
 * aux pointer into the arena}.  Backward functions add into input
 * gradients (allocated zeroed on first use), so a tensor used twice gets
 * both contributions. */
#include "nn/ad.h"
#include "core/device.h"
#include "core/parallel.h"
#include "core/util.h"

#include <cblas.h>
#include <math.h>
#ifndef L2_AD_DOUBLE
#include "nn/simd.h"
#endif
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena and tape ------------------------------------------------------- */

typedef struct AdNode AdNode;
typedef void (*AdBackward)(AdGraph *g, AdNode *nd);
struct AdNode {
	AdBackward bw;
	AdTensor *out;
	AdTensor *in[4];
	int ip[12];
	double fp[2];
	void *aux;
};

typedef struct {
	char *base;
	size_t cap, used;
} Chunk;

struct AdGraph {
	Chunk *ch;
	int nch, cch;
	AdNode *tape;
	size_t ntape, ctape;
	int grad;
	/* ad_graph_kinks: the leaky-ReLU sign pattern recorded / replayed */
	int kmode;
	uint8_t *kink;
	size_t kn, kcap, kpos;
};

#define ARENA_MIN (1u << 20)

AdGraph *ad_graph_new(void)
{
	AdGraph *g = l2_calloc(1, sizeof *g);
	g->grad = 1;
	return g;
}

void ad_graph_free(AdGraph *g)
{
	if (!g) return;
	for (int i = 0; i < g->nch; i++) l2_free_aligned(g->ch[i].base);
	free(g->ch);
	free(g->tape);
	free(g->kink);
	free(g);
}

static void add_chunk(AdGraph *g, size_t cap)
{
	if (g->nch == g->cch) {
		g->cch = g->cch ? 2 * g->cch : 4;
		g->ch = l2_realloc(g->ch, g->cch * sizeof *g->ch);
	}
	g->ch[g->nch].base = l2_malloc_aligned(cap);
	g->ch[g->nch].cap = cap;
	g->ch[g->nch].used = 0;
	g->nch++;
}

/* After a step that needed several chunks, replace them with one big
 * enough for all, so the next steps allocate nothing. */
void ad_graph_reset(AdGraph *g)
{
	if (g->nch > 1) {
		size_t total = 0;
		for (int i = 0; i < g->nch; i++) {
			total += g->ch[i].cap;
			l2_free_aligned(g->ch[i].base);
		}
		g->nch = 0;
		add_chunk(g, total);
	}
	if (g->nch) g->ch[0].used = 0;
	g->ntape = 0;
	g->kpos = 0;
	if (g->kmode == AD_KINKS_RECORD) g->kn = 0;
}

void ad_graph_kinks(AdGraph *g, int mode)
{
	g->kmode = mode;
	g->kpos = 0;
	if (mode == AD_KINKS_RECORD) g->kn = 0;
}

/* The sign mask a piecewise-linear op uses for x[n] under the kink mode
 * (arena; NULL when off: the op tests x itself). */
static uint8_t *kink_mask(AdGraph *g, const adr *x, size_t n)
{
	if (g->kmode == AD_KINKS_OFF) return NULL;
	uint8_t *m = ad_scratch(g, n);
	if (g->kmode == AD_KINKS_RECORD) {
		for (size_t i = 0; i < n; i++) m[i] = x[i] > 0;
		if (g->kn + n > g->kcap) {
			g->kcap = 2 * (g->kn + n);
			g->kink = l2_realloc(g->kink, g->kcap);
		}
		memcpy(g->kink + g->kn, m, n);
		g->kn += n;
	} else {
		if (g->kpos + n > g->kn) l2_die("ad: kink replay runs past the recorded pattern (a different graph?)");
		memcpy(m, g->kink + g->kpos, n);
	}
	g->kpos += n;
	return m;
}

void ad_graph_set_grad(AdGraph *g, int enabled) { g->grad = enabled; }

size_t ad_graph_arena_bytes(const AdGraph *g)
{
	size_t t = 0;
	for (int i = 0; i < g->nch; i++) t += g->ch[i].cap;
	return t;
}
size_t ad_graph_arena_chunks(const AdGraph *g) { return (size_t)g->nch; }

void *ad_scratch(AdGraph *g, size_t bytes)
{
	bytes = (bytes + 63) & ~(size_t)63;
	if (!g->nch || g->ch[g->nch - 1].used + bytes > g->ch[g->nch - 1].cap) {
		size_t cap = g->nch ? 2 * g->ch[g->nch - 1].cap : ARENA_MIN;
		if (cap < bytes) cap = bytes;
		add_chunk(g, cap);
	}
	Chunk *c = &g->ch[g->nch - 1];
	void *p = c->base + c->used;
	c->used += bytes;
	return p;
}

static adr *scratch_zero(AdGraph *g, size_t n)
{
	adr *p = ad_scratch(g, n * sizeof(adr));
	memset(p, 0, n * sizeof(adr));
	return p;
}

static AdNode *record(AdGraph *g, AdBackward bw, AdTensor *out, AdTensor *a, AdTensor *b, AdTensor *c)
{
	if (g->ntape == g->ctape) {
		g->ctape = g->ctape ? 2 * g->ctape : 256;
		g->tape = l2_realloc(g->tape, g->ctape * sizeof *g->tape);
	}
	AdNode *nd = &g->tape[g->ntape++];
	memset(nd, 0, sizeof *nd);
	nd->bw = bw;
	nd->out = out;
	nd->in[0] = a;
	nd->in[1] = b;
	nd->in[2] = c;
	return nd;
}

/* Does an op with these inputs need a node? Sets out->rg. */
static int needs(AdGraph *g, AdTensor *out, AdTensor *a, AdTensor *b, AdTensor *c)
{
	int r = g->grad && ((a && a->rg) || (b && b->rg) || (c && c->rg));
	out->rg = r;
	return r;
}

/* The gradient buffer of t, allocated zeroed on first use; NULL when t
 * needs none. */
static adr *G(AdGraph *g, AdTensor *t)
{
	if (!t || !t->rg) return NULL;
	if (!t->g) t->g = scratch_zero(g, t->n);
	return t->g;
}

/* The gradient buffer of t for an op that writes all of it: *fresh = 1 when
 * it was just allocated (uninitialised: write, do not add), else 0. */
static adr *Gf(AdGraph *g, AdTensor *t, int *fresh)
{
	*fresh = 0;
	if (!t || !t->rg) return NULL;
	if (!t->g) {
		t->g = ad_scratch(g, t->n * sizeof(adr));
		*fresh = 1;
	}
	return t->g;
}

/* For ops whose local Jacobian is the identity: the input's gradient can be
 * the output's buffer itself when nothing has flowed into it yet (every
 * consumer of the output ran earlier in the backward pass, so that buffer
 * is final and no longer read).  Returns 1 when aliased. */
static int alias_grad(AdTensor *x, AdTensor *y)
{
	if (!x->rg || x->g || x->n != y->n) return 0;
	x->g = y->g;
	return 1;
}

void ad_backward_seed(AdGraph *g, AdTensor *out, const adr *seed)
{
	if (!out->rg) l2_die("ad_backward: the output does not depend on any parameter");
	adr *d = G(g, out);
	for (size_t i = 0; i < out->n; i++) d[i] += seed ? seed[i] : 1;
	for (size_t i = g->ntape; i-- > 0;) {
		AdNode *nd = &g->tape[i];
		if (nd->out->g) nd->bw(g, nd);
	}
}

void ad_backward(AdGraph *g, AdTensor *loss)
{
	if (loss->n != 1) l2_die("ad_backward: loss has %zu elements, expected 1", loss->n);
	ad_backward_seed(g, loss, NULL);
}

/* ---- tensors --------------------------------------------------------------- */

static size_t shape_n(int ndim, const int *shape)
{
	if (ndim < 1 || ndim > AD_MAXDIM) l2_die("ad: %d dimensions (1..%d supported)", ndim, AD_MAXDIM);
	size_t n = 1;
	for (int i = 0; i < ndim; i++) {
		if (shape[i] < 1) l2_die("ad: dimension %d has size %d", i, shape[i]);
		n = l2_mul_size(n, (size_t)shape[i]);
	}
	return n;
}

AdTensor *ad_param_new(const char *name, int ndim, const int *shape)
{
	AdTensor *t = l2_calloc(1, sizeof *t);
	t->ndim = ndim;
	memcpy(t->shape, shape, ndim * sizeof(int));
	t->n = shape_n(ndim, shape);
	t->v = l2_malloc_aligned(t->n * sizeof(adr));
	t->g = l2_malloc_aligned(t->n * sizeof(adr));
	memset(t->v, 0, t->n * sizeof(adr));
	memset(t->g, 0, t->n * sizeof(adr));
	t->rg = 1;
	t->param = 1;
	t->name = name ? l2_strdup(name) : NULL;
	return t;
}

void ad_param_free(AdTensor *p)
{
	if (!p) return;
	l2_free_aligned(p->v);
	l2_free_aligned(p->g);
	free((char *)p->name);
	free(p);
}

void ad_zero_grads(AdTensor **p, int n)
{
	for (int i = 0; i < n; i++) memset(p[i]->g, 0, p[i]->n * sizeof(adr));
}

AdTensor *ad_tensor(AdGraph *g, int ndim, const int *shape)
{
	AdTensor *t = ad_scratch(g, sizeof *t);
	memset(t, 0, sizeof *t);
	t->ndim = ndim;
	memcpy(t->shape, shape, ndim * sizeof(int));
	t->n = shape_n(ndim, shape);
	t->v = ad_scratch(g, t->n * sizeof(adr));
	return t;
}

AdTensor *ad_zeros(AdGraph *g, int ndim, const int *shape)
{
	AdTensor *t = ad_tensor(g, ndim, shape);
	memset(t->v, 0, t->n * sizeof(adr));
	return t;
}

AdTensor *ad_input(AdGraph *g, int ndim, const int *shape, const adr *data)
{
	AdTensor *t = ad_tensor(g, ndim, shape);
	if (data) memcpy(t->v, data, t->n * sizeof(adr));
	else memset(t->v, 0, t->n * sizeof(adr));
	return t;
}

AdTensor *ad_input_rg(AdGraph *g, int ndim, const int *shape, const adr *data)
{
	AdTensor *t = ad_input(g, ndim, shape, data);
	t->rg = 1;
	return t;
}

int ad_same_shape(const AdTensor *a, const AdTensor *b)
{
	if (a->ndim != b->ndim) return 0;
	for (int i = 0; i < a->ndim; i++)
		if (a->shape[i] != b->shape[i]) return 0;
	return 1;
}

const char *ad_shape_str(const AdTensor *t, char *buf, size_t len)
{
	size_t o = 0;
	o += snprintf(buf + o, len - o, "(");
	for (int i = 0; i < t->ndim && o < len; i++) o += snprintf(buf + o, len - o, i ? ", %d" : "%d", t->shape[i]);
	if (o < len) snprintf(buf + o, len - o, ")");
	return buf;
}

L2_NORETURN L2_PRINTF(2, 3) static void shape_die(const char *op, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	l2_die("ad_%s: %s", op, msg);
}

/* ---- GEMM seam --------------------------------------------------------------- */

static __thread int gemm_serial;
void ad_gemm_serial(int on) { gemm_serial = on; }

void ad_gemm(int ta, int tb, int m, int n, int k, adr alpha, const adr *A, int lda, const adr *B, int ldb,
	     adr beta, adr *C, int ldc)
{
	if (m <= 0 || n <= 0) return;
	if (k <= 0) {
		for (int i = 0; i < m; i++)
			for (int j = 0; j < n; j++) C[(size_t)i * ldc + j] *= beta;
		return;
	}
#ifdef L2_AD_DOUBLE
	cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, alpha, A,
		    lda, B, ldb, beta, C, ldc);
#else
	/* Large products go to the GPU when one was asked for and answers. */
	if (l2_device == L2_DEVICE_CUDA && (double)m * n * k >= (1 << 22) &&
	    l2_cuda_sgemm(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc) == 0)
		return;
	/* Products below 1e8 multiply-adds on one thread: waking OpenBLAS's other threads (which
	 * then spin in sched_yield through the non-GEMM work between them) costs more than they
	 * save there (l2-train-gan at 32x32 and 64x64 on 2 threads: +20-40% images/s). */
	int one = !gemm_serial && l2_threads > 1 && (double)m * n * k < 1e8;
	int blas_was = one ? l2_blas_threads(1) : 0;
	cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, alpha, A,
		    lda, B, ldb, beta, C, ldc);
	if (one) l2_blas_threads(blas_was);
#endif
}

/* ---- linear -------------------------------------------------------------------- */

static void linear_bw(AdGraph *g, AdNode *nd)
{
	AdTensor *x = nd->in[0], *W = nd->in[1], *b = nd->in[2], *y = nd->out;
	int in = W->shape[1], out = W->shape[0];
	int rows = (int)(x->n / in);
	int fr;
	adr *dy = y->g, *dx = Gf(g, x, &fr), *dW = G(g, W), *db = G(g, b);
	if (dx) ad_gemm(0, 0, rows, in, out, 1, dy, out, W->v, in, fr ? 0 : 1, dx, in);
	if (dW) ad_gemm(1, 0, out, in, rows, 1, dy, out, x->v, in, 1, dW, in);
	if (db)
		for (int r = 0; r < rows; r++)
			for (int j = 0; j < out; j++) db[j] += dy[(size_t)r * out + j];
}

AdTensor *ad_linear(AdGraph *g, AdTensor *x, AdTensor *W, AdTensor *b)
{
	char s1[64], s2[64];
	if (W->ndim != 2 || x->shape[x->ndim - 1] != W->shape[1])
		shape_die("linear", "x %s does not match W %s", ad_shape_str(x, s1, 64), ad_shape_str(W, s2, 64));
	if (b && (b->n != (size_t)W->shape[0])) shape_die("linear", "bias has %zu elements, expected %d", b->n, W->shape[0]);
	int in = W->shape[1], out = W->shape[0];
	int shape[AD_MAXDIM];
	memcpy(shape, x->shape, x->ndim * sizeof(int));
	shape[x->ndim - 1] = out;
	AdTensor *y = ad_tensor(g, x->ndim, shape);
	int rows = (int)(x->n / in);
	if (b)
		for (int r = 0; r < rows; r++) memcpy(y->v + (size_t)r * out, b->v, out * sizeof(adr));
	ad_gemm(0, 1, rows, out, in, 1, x->v, in, W->v, in, b ? 1 : 0, y->v, out);
	if (needs(g, y, x, W, b)) record(g, linear_bw, y, x, W, b);
	return y;
}

/* ip: batch, m, n, k, ta, tb, bshared */
static void matmul_bw(AdGraph *g, AdNode *nd)
{
	AdTensor *a = nd->in[0], *b = nd->in[1], *c = nd->out;
	int B = nd->ip[0], m = nd->ip[1], n = nd->ip[2], k = nd->ip[3], ta = nd->ip[4], tb = nd->ip[5], sh = nd->ip[6];
	int fa, fb;
	adr *da = Gf(g, a, &fa), *db = Gf(g, b, &fb);
	int lda = ta ? m : k, ldb = tb ? k : n;
	for (int i = 0; i < B; i++) {
		adr ba = fa ? 0 : 1, bb = fb && (!sh || i == 0) ? 0 : 1;
		const adr *A = a->v + (size_t)i * m * k, *Bm = b->v + (sh ? 0 : (size_t)i * k * n);
		const adr *dC = c->g + (size_t)i * m * n;
		if (da) {
			adr *dA = da + (size_t)i * m * k;
			if (!ta) ad_gemm(0, !tb, m, k, n, 1, dC, n, Bm, ldb, ba, dA, lda);   /* dA = dC B^T */
			else ad_gemm(tb, 1, k, m, n, 1, Bm, ldb, dC, n, ba, dA, lda);       /* dA^T... = B dC^T */
		}
		if (db) {
			adr *dB = db + (sh ? 0 : (size_t)i * k * n);
			if (!tb) ad_gemm(!ta, 0, k, n, m, 1, A, lda, dC, n, bb, dB, ldb);   /* dB = A^T dC */
			else ad_gemm(1, ta, n, k, m, 1, dC, n, A, lda, bb, dB, ldb);        /* dB = dC^T A */
		}
	}
}

AdTensor *ad_matmul(AdGraph *g, AdTensor *a, AdTensor *b, int ta, int tb)
{
	char s1[64], s2[64];
	if (a->ndim < 2 || b->ndim < 2) shape_die("matmul", "operands need 2 or more dimensions");
	int am = a->shape[a->ndim - 2], ak = a->shape[a->ndim - 1];
	int bk = b->shape[b->ndim - 2], bn = b->shape[b->ndim - 1];
	int m = ta ? ak : am, k = ta ? am : ak, kb = tb ? bn : bk, n = tb ? bk : bn;
	int batch = (int)(a->n / ((size_t)am * ak));
	int sh = b->ndim == 2 && a->ndim > 2;
	if (k != kb || (!sh && (a->ndim != b->ndim || b->n / ((size_t)bk * bn) != (size_t)batch)))
		shape_die("matmul", "%s and %s do not multiply", ad_shape_str(a, s1, 64), ad_shape_str(b, s2, 64));
	if (!sh)
		for (int i = 0; i < a->ndim - 2; i++)
			if (a->shape[i] != b->shape[i])
				shape_die("matmul", "batch dims of %s and %s differ", ad_shape_str(a, s1, 64), ad_shape_str(b, s2, 64));
	int shape[AD_MAXDIM];
	memcpy(shape, a->shape, a->ndim * sizeof(int));
	shape[a->ndim - 2] = m;
	shape[a->ndim - 1] = n;
	AdTensor *c = ad_tensor(g, a->ndim, shape);
	if (sh && !ta) {
		/* one GEMM over all rows */
		ad_gemm(0, tb, batch * m, n, k, 1, a->v, k, b->v, tb ? k : n, 0, c->v, n);
	} else {
		for (int i = 0; i < batch; i++)
			ad_gemm(ta, tb, m, n, k, 1, a->v + (size_t)i * m * k, ta ? m : k, b->v + (sh ? 0 : (size_t)i * k * n),
				tb ? k : n, 0, c->v + (size_t)i * m * n, n);
	}
	if (needs(g, c, a, b, NULL)) {
		AdNode *nd = record(g, matmul_bw, c, a, b, NULL);
		int ip[7] = {batch, m, n, k, ta, tb, sh};
		memcpy(nd->ip, ip, sizeof ip);
	}
	return c;
}

static void embedding_bw(AdGraph *g, AdNode *nd)
{
	AdTensor *W = nd->in[0], *y = nd->out;
	const int *idx = nd->aux;
	int D = W->shape[1], n = nd->ip[0];
	adr *dW = G(g, W);
	for (int i = 0; i < n; i++) {
		adr *d = dW + (size_t)idx[i] * D;
		const adr *s = y->g + (size_t)i * D;
		for (int j = 0; j < D; j++) d[j] += s[j];
	}
}

AdTensor *ad_embedding(AdGraph *g, AdTensor *W, const int *idx, int nidx)
{
	if (W->ndim != 2) shape_die("embedding", "table must be 2-D");
	int V = W->shape[0], D = W->shape[1];
	AdTensor *y = ad_tensor(g, 2, (int[]){nidx, D});
	for (int i = 0; i < nidx; i++) {
		if (idx[i] < 0 || idx[i] >= V) shape_die("embedding", "index %d outside 0..%d", idx[i], V - 1);
		memcpy(y->v + (size_t)i * D, W->v + (size_t)idx[i] * D, D * sizeof(adr));
	}
	if (needs(g, y, W, NULL, NULL)) {
		AdNode *nd = record(g, embedding_bw, y, W, NULL, NULL);
		int *cp = ad_scratch(g, nidx * sizeof(int));
		memcpy(cp, idx, nidx * sizeof(int));
		nd->aux = cp;
		nd->ip[0] = nidx;
	}
	return y;
}

/* ---- normalisation ---------------------------------------------------------------- */

/* aux: [rows] mean, [rows] rstd; ip: rows, D */
static void layernorm_bw(AdGraph *g, AdNode *nd)
{
	AdTensor *x = nd->in[0], *w = nd->in[1], *b = nd->in[2], *y = nd->out;
	int rows = nd->ip[0], D = nd->ip[1];
	const adr *mean = nd->aux, *rstd = mean + rows;
	int fr;
	adr *dx = Gf(g, x, &fr), *dw = G(g, w), *db = G(g, b);
	for (int r = 0; r < rows; r++) {
		const adr *xr = x->v + (size_t)r * D, *dy = y->g + (size_t)r * D;
		adr mu = mean[r], rs = rstd[r];
		double s1 = 0, s2 = 0; /* sum dxhat, sum dxhat*xhat */
		for (int j = 0; j < D; j++) {
			adr xh = (xr[j] - mu) * rs;
			adr dxh = dy[j] * (w ? w->v[j] : 1);
			s1 += dxh;
			s2 += dxh * xh;
			if (dw) dw[j] += dy[j] * xh;
			if (db) db[j] += dy[j];
		}
		if (dx) {
			adr *d = dx + (size_t)r * D;
			adr m1 = (adr)(s1 / D), m2 = (adr)(s2 / D);
			for (int j = 0; j < D; j++) {
				adr xh = (xr[j] - mu) * rs;
				adr dxh = dy[j] * (w ? w->v[j] : 1);
				adr v = rs * (dxh - m1 - xh * m2);
				d[j] = fr ? v : d[j] + v;
			}
		}
	}
}

AdTensor *ad_layernorm(AdGraph *g, AdTensor *x, AdTensor *w, AdTensor *b, double eps)
{
	int D = x->shape[x->ndim - 1];
	if ((w && w->n != (size_t)D) || (b && b->n != (size_t)D)) shape_die("layernorm", "weight/bias size != %d", D);
	int rows = (int)(x->n / D);
	AdTensor *y = ad_tensor(g, x->ndim, x->shape);
	adr *stat = ad_scratch(g, 2 * (size_t)rows * sizeof(adr));
	for (int r = 0; r < rows; r++) {
		const adr *xr = x->v + (size_t)r * D;
		adr *yr = y->v + (size_t)r * D;
		double s = 0;
		for (int j = 0; j < D; j++) s += xr[j];
		adr mu = (adr)(s / D);
		double v = 0;
		for (int j = 0; j < D; j++) v += (double)(xr[j] - mu) * (xr[j] - mu);
		adr rs = (adr)(1 / sqrt(v / D + eps));
		stat[r] = mu;
		stat[rows + r] = rs;
		for (int j = 0; j < D; j++) {
			adr t = (xr[j] - mu) * rs;
			if (w) t = t * w->v[j];
			if (b) t = t + b->v[j];
			yr[j] = t;
		}
	}
	if (needs(g, y, x, w, b)) {
		AdNode *nd = record(g, layernorm_bw, y, x, w, b);
		nd->aux = stat;
		nd->ip[0] = rows;
		nd->ip[1] = D;
	}
	return y;
}

/* ip: N, C, S (spatial), G; aux: mean[N*G], rstd[N*G] */
static void groupnorm_bw(AdGraph *g, AdNode *nd)
{
	AdTensor *x = nd->in[0], *w = nd->in[1], *b = nd->in[2], *y = nd->out;
	int N = nd->ip[0], C = nd->ip[1], S = nd->ip[2], Gn = nd->ip[3], cg = C / Gn;
	const adr *mean = nd->aux, *rstd = mean + N * Gn;
	adr *dx = G(g, x), *dw = G(g, w), *db = G(g, b);
	size_t M = (size_t)cg * S;
	for (int n = 0; n < N; n++)
		for (int gi = 0; gi < Gn; gi++) {
			adr mu = mean[n * Gn + gi], rs = rstd[n * Gn + gi];
			double s1 = 0, s2 = 0;
			for (int c = gi * cg; c < (gi + 1) * cg; c++) {
				const adr *xr = x->v + ((size_t)n * C + c) * S, *dy = y->g + ((size_t)n * C + c) * S;
				adr wc = w ? w->v[c] : 1;
				double dwc = 0, dbc = 0;
				for (int i = 0; i < S; i++) {
					adr xh = (xr[i] - mu) * rs;
					s1 += dy[i] * wc;
					s2 += dy[i] * wc * xh;
					dwc += dy[i] * xh;
					dbc += dy[i];
				}
				if (dw) dw[c] += (adr)dwc;
				if (db) db[c] += (adr)dbc;
			}
			if (!dx) continue;
			adr m1 = (adr)(s1 / M), m2 = (adr)(s2 / M);
			for (int c = gi * cg; c < (gi + 1) * cg; c++) {
				const adr *xr = x->v + ((size_t)n * C + c) * S, *dy = y->g + ((size_t)n * C + c) * S;
				adr *d = dx + ((size_t)n * C + c) * S;
				adr wc = w ? w->v[c] : 1;
				for (int i = 0; i < S; i++) {
					adr xh = (xr[i] - mu) * rs;
					d[i] += rs * (dy[i] * wc - m1 - xh * m2);
				}
			}
		}
}

AdTensor *ad_groupnorm(AdGraph *g, AdTensor *x, int groups, AdTensor *w, AdTensor *b, double eps)
{
	if (x->ndim < 2) shape_die("groupnorm", "x needs [N, C, ...]");
	int N = x->shape[0], C = x->shape[1], S = (int)(x->n / ((size_t)N * C));
	if (groups < 1 || C % groups) shape_die("groupnorm", "%d channels do not split into %d groups", C, groups);
	if ((w && w->n != (size_t)C) || (b && b->n != (size_t)C)) shape_die("groupnorm", "weight/bias size != %d", C);
	int cg = C / groups;
	AdTensor *y = ad_tensor(g, x->ndim, x->shape);
	adr *stat = ad_scratch(g, 2 * (size_t)N * groups * sizeof(adr));
	size_t M = (size_t)cg * S;
	for (int n = 0; n < N; n++)
		for (int gi = 0; gi < groups; gi++) {
			const adr *xs = x->v + ((size_t)n * C + (size_t)gi * cg) * S;
			double s = 0, v = 0;
			for (size_t i = 0; i < M; i++) s += xs[i];
			adr mu = (adr)(s / M);
			for (size_t i = 0; i < M; i++) v += (double)(xs[i] - mu) * (xs[i] - mu);
			adr rs = (adr)(1 / sqrt(v / M + eps));
			stat[n * groups + gi] = mu;
			stat[N * groups + n * groups + gi] = rs;
			for (int c = gi * cg; c < (gi + 1) * cg; c++) {
				const adr *xr = x->v + ((size_t)n * C + c) * S;
				adr *yr = y->v + ((size_t)n * C + c) * S;
				adr wc = w ? w->v[c] : 1, bc = b ? b->v[c] : 0;
				for (int i = 0; i < S; i++) yr[i] = (xr[i] - mu) * rs * wc + bc;
			}
		}
	if (needs(g, y, x, w, b)) {
		AdNode *nd = record(g, groupnorm_bw, y, x, w, b);
		nd->aux = stat;
		int ip[4] = {N, C, S, groups};
		memcpy(nd->ip, ip, sizeof ip);
	}
	return y;
}

/* aux: [rows] 1/max(norm, eps) */
static void normalize_bw(AdGraph *g, AdNode *nd)
{
	AdTensor *x = nd->in[0], *y = nd->out;
	int D = x->shape[x->ndim - 1], rows = (int)(x->n / D);
	const adr *inv = nd->aux;
	adr *dx = G(g, x);
	for (int r = 0; r < rows; r++) {
		const adr *yr = y->v + (size_t)r * D, *dy = y->g + (size_t)r * D;
		adr *d = dx + (size_t)r * D;
		double dot = 0;
		for (int j = 0; j < D; j++) dot += (double)yr[j] * dy[j];
		/* when the norm was clamped at eps, y = x/eps is linear in x */
		int clamped = ((const char *)(inv + rows))[r];
		for (int j = 0; j < D; j++) d[j] += inv[r] * (dy[j] - (clamped ? 0 : yr[j] * (adr)dot));
	}
}

AdTensor *ad_normalize(AdGraph *g, AdTensor *x, double eps)
{
	int D = x->shape[x->ndim - 1], rows = (int)(x->n / D);
	AdTensor *y = ad_tensor(g, x->ndim, x->shape);
	adr *inv = ad_scratch(g, rows * sizeof(adr) + rows);
	char *cl = (char *)(inv + rows);
	for (int r = 0; r < rows; r++) {
		const adr *xr = x->v + (size_t)r * D;
		double s = 0;
		for (int j = 0; j < D; j++) s += (double)xr[j] * xr[j];
		double nrm = sqrt(s);
		cl[r] = nrm < eps;
		inv[r] = (adr)(1 / (nrm < eps ? eps : nrm));
		for (int j = 0; j < D; j++) y->v[(size_t)r * D + j] = xr[j] * inv[r];
	}
	if (needs(g, y, x, NULL, NULL)) record(g, normalize_bw, y, x, NULL, NULL)->aux = inv;
	return y;
}

/* ---- EDM2 normalisation ------------------------------------------------------------
 * y = s x / d along an axis of length L (strided by `inner`), d = eps + |x| / sqrt(L):
 * s = 1 for ad_normalize_axis, 1 / sqrt(L) for ad_wn_weight (rows, inner = 1).
 * Backward: dx_i = s (gy_i / d - x_i (sum_j gy_j x_j) / (|x| sqrt(L) d^2)).
 * ip: outer, len, inner; fp[0]: s; aux: [outer * inner] 1/d, then [outer * inner] |x|. */
static void norm_axis_bw(AdGraph *g, AdNode *nd)
{
	AdTensor *x = nd->in[0], *y = nd->out;
	int outer = nd->ip[0], L = nd->ip[1], inner = nd->ip[2];
	size_t ni = (size_t)outer * inner;
	const adr *inv = nd->aux, *nrm = inv + ni;
	adr s = (adr)nd->fp[0], rl = (adr)(1 / sqrt((double)L));
	int fr;
	adr *dx = Gf(g, x, &fr);
	for (int o = 0; o < outer; o++)
		for (int i = 0; i < inner; i++) {
			size_t base = (size_t)o * L * inner + i, k = (size_t)o * inner + i;
			const adr *xv = x->v + base, *gy = y->g + base;
			adr *d = dx + base;
			double dot = 0;
			for (int j = 0; j < L; j++) dot += (double)gy[(size_t)j * inner] * xv[(size_t)j * inner];
			adr a = s * inv[k];
			adr b = nrm[k] > 0 ? (adr)(s * dot * inv[k] * inv[k] * rl / nrm[k]) : 0;
			for (int j = 0; j < L; j++) {
				adr v = a * gy[(size_t)j * inner] - b * xv[(size_t)j * inner];
				d[(size_t)j * inner] = fr ? v : d[(size_t)j * inner] + v;
			}
		}
}

static AdTensor *norm_axis(AdGraph *g, AdTensor *x, int outer, int L, int inner, double eps, double s)
{
	AdTensor *y = ad_tensor(g, x->ndim, x->shape);
	size_t ni = (size_t)outer * inner;
	adr *inv = ad_scratch(g, 2 * ni * sizeof(adr)), *nrm = inv + ni;
	double rl = 1 / sqrt((double)L);
	for (int o = 0; o < outer; o++)
		for (int i = 0; i < inner; i++) {
			size_t base = (size_t)o * L * inner + i, k = (size_t)o * inner + i;
			const adr *xv = x->v + base;
			double ss = 0;
			for (int j = 0; j < L; j++) ss += (double)xv[(size_t)j * inner] * xv[(size_t)j * inner];
			double n = sqrt(ss);
			nrm[k] = (adr)n;
			inv[k] = (adr)(1 / (eps + n * rl));
			adr f = (adr)(s * inv[k]);
			adr *yv = y->v + base;
			for (int j = 0; j < L; j++) yv[(size_t)j * inner] = xv[(size_t)j * inner] * f;
		}
	if (needs(g, y, x, NULL, NULL)) {
		AdNode *nd = record(g, norm_axis_bw, y, x, NULL, NULL);
		nd->ip[0] = outer, nd->ip[1] = L, nd->ip[2] = inner;
		nd->fp[0] = s;
		nd->aux = inv;
	}
	return y;
}

AdTensor *ad_normalize_axis(AdGraph *g, AdTensor *x, int axis, double eps)
{
	if (axis < 0) axis += x->ndim;
	if (axis < 0 || axis >= x->ndim) shape_die("normalize_axis", "axis %d outside 0..%d", axis, x->ndim - 1);
	int outer = 1, inner = 1;
	for (int i = 0; i < axis; i++) outer *= x->shape[i];
	for (int i = axis + 1; i < x->ndim; i++) inner *= x->shape[i];
	return norm_axis(g, x, outer, x->shape[axis], inner, eps, 1);
}

AdTensor *ad_wn_weight(AdGraph *g, AdTensor *v, double eps)
{
	int O = v->shape[0], F = (int)(v->n / (size_t)O);
	return norm_axis(g, v, O, F, 1, eps, 1 / sqrt((double)F));
}

static void softmax_rows(adr *p, const adr *x, int cols)
{
	adr mx = x[0];
	for (int j = 1; j < cols; j++)
		if (x[j] > mx) mx = x[j];
	double s = 0;
	for (int j = 0; j < cols; j++) {
		p[j] = (adr)exp((double)(x[j] - mx));
		s += p[j];
	}
	adr inv = (adr)(1 / s);
	for (int j = 0; j < cols; j++) p[j] *= inv;
}

/* dx = y * (dy - sum(dy y)) per row */
static void softmax_back_rows(adr *dx, const adr *y, const adr *dy, int cols)
{
	double dot = 0;
	for (int j = 0; j < cols; j++) dot += (double)dy[j] * y[j];
	for (int j = 0; j < cols; j++) dx[j] += y[j] * (dy[j] - (adr)dot);
}

static void softmax_bw(AdGraph *g, AdNode *nd)
{
	AdTensor *x = nd->in[0], *y = nd->out;
	int D = x->shape[x->ndim - 1], rows = (int)(x->n / D);
	adr *dx = G(g, x);
	for (int r = 0; r < rows; r++)
		softmax_back_rows(dx + (size_t)r * D, y->v + (size_t)r * D, y->g + (size_t)r * D, D);
}

AdTensor *ad_softmax(AdGraph *g, AdTensor *x)
{
	int D = x->shape[x->ndim - 1], rows = (int)(x->n / D);
	AdTensor *y = ad_tensor(g, x->ndim, x->shape);
	for (int r = 0; r < rows; r++) softmax_rows(y->v + (size_t)r * D, x->v + (size_t)r * D, D);
	if (needs(g, y, x, NULL, NULL)) record(g, softmax_bw, y, x, NULL, NULL);
	return y;
}

/* ip: BH, Tq, Tk, D, causal; fp[0] scale; aux: P[BH, Tq, Tk] */
static void attention_bw(AdGraph *g, AdNode *nd)
{
	AdTensor *q = nd->in[0], *k = nd->in[1], *v = nd->in[2], *o = nd->out;
	int BH = nd->ip[0], Tq = nd->ip[1], Tk = nd->ip[2], D = nd->ip[3];
	adr scale = (adr)nd->fp[0];
	const adr *P = nd->aux;
	int fq, fk, fv;
	adr *dq = Gf(g, q, &fq), *dk = Gf(g, k, &fk), *dv = Gf(g, v, &fv);
	adr *dP = ad_scratch(g, (size_t)Tq * Tk * sizeof(adr));
	adr *dS = ad_scratch(g, (size_t)Tq * Tk * sizeof(adr));
	for (int h = 0; h < BH; h++) {
		const adr *Ph = P + (size_t)h * Tq * Tk, *dO = o->g + (size_t)h * Tq * D;
		const adr *qh = q->v + (size_t)h * Tq * D, *kh = k->v + (size_t)h * Tk * D, *vh = v->v + (size_t)h * Tk * D;
		if (dv) ad_gemm(1, 0, Tk, D, Tq, 1, Ph, Tk, dO, D, fv ? 0 : 1, dv + (size_t)h * Tk * D, D);
		if (!dq && !dk) continue;
		if (fq) memset(dq + (size_t)h * Tq * D, 0, (size_t)Tq * D * sizeof(adr));
		if (fk) memset(dk + (size_t)h * Tk * D, 0, (size_t)Tk * D * sizeof(adr));
		if (!dq && !dk) continue;
		ad_gemm(0, 1, Tq, Tk, D, 1, dO, D, vh, D, 0, dP, Tk);
		memset(dS, 0, (size_t)Tq * Tk * sizeof(adr));
		for (int i = 0; i < Tq; i++)
			softmax_back_rows(dS + (size_t)i * Tk, Ph + (size_t)i * Tk, dP + (size_t)i * Tk, Tk);
		if (dq) ad_gemm(0, 0, Tq, D, Tk, scale, dS, Tk, kh, D, 1, dq + (size_t)h * Tq * D, D);
		if (dk) ad_gemm(1, 0, Tk, D, Tq, scale, dS, Tk, qh, D, 1, dk + (size_t)h * Tk * D, D);
	}
}

AdTensor *ad_attention(AdGraph *g, AdTensor *q, AdTensor *k, AdTensor *v, int causal)
{
	char s1[64], s2[64];
	if (q->ndim != 4 || k->ndim != 4 || v->ndim != 4 || !ad_same_shape(k, v) || q->shape[0] != k->shape[0] ||
	    q->shape[1] != k->shape[1] || q->shape[3] != k->shape[3])
		shape_die("attention", "q %s and k/v %s do not match ([B, H, T, D])", ad_shape_str(q, s1, 64),
			  ad_shape_str(k, s2, 64));
	int BH = q->shape[0] * q->shape[1], Tq = q->shape[2], Tk = k->shape[2], D = q->shape[3];
	adr scale = (adr)(1 / sqrt((double)D));
	AdTensor *o = ad_tensor(g, 4, q->shape);
	adr *P = ad_scratch(g, (size_t)BH * Tq * Tk * sizeof(adr));
	int off = Tk - Tq;
	for (int h = 0; h < BH; h++) {
		adr *Ph = P + (size_t)h * Tq * Tk;
		ad_gemm(0, 1, Tq, Tk, D, scale, q->v + (size_t)h * Tq * D, D, k->v + (size_t)h * Tk * D, D, 0, Ph, Tk);
		for (int i = 0; i < Tq; i++) {
			adr *row = Ph + (size_t)i * Tk;
			int lim = causal ? i + off + 1 : Tk;
			if (lim < 1) lim = 1;
			if (lim > Tk) lim = Tk;
			softmax_rows(row, row, lim);
			for (int j = lim; j < Tk; j++) row[j] = 0;
		}
		ad_gemm(0, 0, Tq, D, Tk, 1, Ph, Tk, v->v + (size_t)h * Tk * D, D, 0, o->v + (size_t)h * Tq * D, D);
	}
	if (needs(g, o, q, k, v)) {
		AdNode *nd = record(g, attention_bw, o, q, k, v);
		int ip[5] = {BH, Tq, Tk, D, causal};
		memcpy(nd->ip, ip, sizeof ip);
		nd->fp[0] = scale;
		nd->aux = P;
	}
	return o;
}

/* aux: softmax probabilities [N, C]; labels copied after them */
static void xent_bw(AdGraph *g, AdNode *nd)
{
	AdTensor *x = nd->in[0], *y = nd->out;
	int N = x->shape[0], C = x->shape[1];
	const adr *P = nd->aux;
	const int *lab = (const int *)(P + (size_t)N * C);
	adr *dx = G(g, x), s = y->g[0] / N;
	for (int i = 0; i < N; i++)
		for (int j = 0; j < C; j++)
			dx[(size_t)i * C + j] += s * (P[(size_t)i * C + j] - (j == lab[i]));
}

AdTensor *ad_cross_entropy(AdGraph *g, AdTensor *x, const int *labels)
{
	if (x->ndim != 2) shape_die("cross_entropy", "logits must be [N, C]");
	int N = x->shape[0], C = x->shape[1];
	adr *P = ad_scratch(g, (size_t)N * C * sizeof(adr) + N * sizeof(int));
	int *lab = (int *)(P + (size_t)N * C);
	double loss = 0;
	for (int i = 0; i < N; i++) {
		if (labels[i] < 0 || labels[i] >= C) shape_die("cross_entropy", "label %d outside 0..%d", labels[i], C - 1);
		lab[i] = labels[i];
		adr *p = P + (size_t)i * C;
		softmax_rows(p, x->v + (size_t)i * C, C);
		/* log-sum-exp form for the loss itself */
		const adr *xr = x->v + (size_t)i * C;
		adr mx = xr[0];
		for (int j = 1; j < C; j++)
			if (xr[j] > mx) mx = xr[j];
		double s = 0;
		for (int j = 0; j < C; j++) s += exp((double)(xr[j] - mx));
		loss += log(s) + mx - xr[labels[i]];
	}
	AdTensor *y = ad_tensor(g, 1, (int[]){1});
	y->v[0] = (adr)(loss / N);
	if (needs(g, y, x, NULL, NULL)) record(g, xent_bw, y, x, NULL, NULL)->aux = P;
	return y;
}

/* ---- broadcasting binary ops ------------------------------------------------------- */

enum { BIN_ADD, BIN_SUB, BIN_MUL, BIN_DIV };

typedef struct {
	int nd;
	int shape[AD_MAXDIM];
	size_t sa[AD_MAXDIM], sb[AD_MAXDIM];
} Bcast;

static int bcast_setup(Bcast *bc, const AdTensor *a, const AdTensor *b)
{
	int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
	bc->nd = nd;
	size_t ra = 1, rb = 1;
	for (int i = nd - 1; i >= 0; i--) {
		int ia = i - (nd - a->ndim), ib = i - (nd - b->ndim);
		int da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
		if (da != db && da != 1 && db != 1) return -1;
		bc->shape[i] = da > db ? da : db;
		bc->sa[i] = da == 1 ? 0 : ra;
		bc->sb[i] = db == 1 ? 0 : rb;
		ra *= da;
		rb *= db;
	}
	return 0;
}

/* Iterate the output in order, calling the kernel on the innermost row. */
#define BCAST_LOOP(bc, BODY)                                                                            \
	do {                                                                                            \
		int nd_ = (bc)->nd, last_ = (bc)->shape[nd_ - 1];                                       \
		size_t sal_ = (bc)->sa[nd_ - 1], sbl_ = (bc)->sb[nd_ - 1];                              \
		int idx_[AD_MAXDIM] = {0};                                                              \
		size_t ia_ = 0, ib_ = 0, io_ = 0, rows_ = 1;                                            \
		for (int d_ = 0; d_ < nd_ - 1; d_++) rows_ *= (bc)->shape[d_];                         \
		for (size_t r_ = 0; r_ < rows_; r_++) {                                                 \
			for (int j = 0; j < last_; j++) {                                               \
				size_t io = io_ + j, ia = ia_ + j * sal_, ib = ib_ + j * sbl_;          \
				(void)io; (void)ia; (void)ib;                                           \
				BODY;                                                                   \
			}                                                                               \
			io_ += last_;                                                                   \
			for (int d_ = nd_ - 2; d_ >= 0; d_--) {                                        \
				idx_[d_]++;                                                             \
				ia_ += (bc)->sa[d_];                                                    \
				ib_ += (bc)->sb[d_];                                                    \
				if (idx_[d_] < (bc)->shape[d_]) break;                                  \
				ia_ -= (bc)->sa[d_] * (bc)->shape[d_];                                  \
				ib_ -= (bc)->sb[d_] * (bc)->shape[d_];                                  \
				idx_[d_] = 0;                                                           \
			}                                                                               \
		}                                                                                       \
	} while (0)

static void binary_bw(AdGraph *g, AdNode *nd)
{
	AdTensor *a = nd->in[0], *b = nd->in[1], *y = nd->out;
	Bcast bc;
	bcast_setup(&bc, a, b);
	int op = nd->ip[0];
	const adr *dy = y->g, *av = a->v, *bv = b->v;
	/* residual connections: a's gradient is the output's buffer itself
	 * (when b is the same tensor, G(b) then returns that buffer and the
	 * in-place db[i] += dy[i] doubles it, as it should) */
	int a_done = (op == BIN_ADD || op == BIN_SUB) && a->n == y->n && alias_grad(a, y);
	adr *da = a_done ? NULL : G(g, a), *db = G(g, b);
	switch (op) {
	case BIN_ADD:
		if (da) BCAST_LOOP(&bc, da[ia] += dy[io]);
		if (db) BCAST_LOOP(&bc, db[ib] += dy[io]);
		break;
	case BIN_SUB:
		if (da) BCAST_LOOP(&bc, da[ia] += dy[io]);
		if (db) BCAST_LOOP(&bc, db[ib] -= dy[io]);
		break;
	case BIN_MUL:
		if (da) BCAST_LOOP(&bc, da[ia] += dy[io] * bv[ib]);
		if (db) BCAST_LOOP(&bc, db[ib] += dy[io] * av[ia]);
		break;
	case BIN_DIV:
		if (da) BCAST_LOOP(&bc, da[ia] += dy[io] / bv[ib]);
		if (db) BCAST_LOOP(&bc, db[ib] -= dy[io] * av[ia] / (bv[ib] * bv[ib]));
		break;
	}
}

static AdTensor *binary(AdGraph *g, AdTensor *a, AdTensor *b, int op)
{
	static const char *names[] = {"add", "sub", "mul", "div"};
	Bcast bc;
	char s1[64], s2[64];
	if (bcast_setup(&bc, a, b))
		shape_die(names[op], "shapes %s and %s do not broadcast", ad_shape_str(a, s1, 64), ad_shape_str(b, s2, 64));
	AdTensor *y = ad_tensor(g, bc.nd, bc.shape);
	adr *o = y->v;
	const adr *av = a->v, *bv = b->v;
	if (ad_same_shape(a, b)) {
		size_t n = a->n;
		switch (op) {
		case BIN_ADD: for (size_t i = 0; i < n; i++) o[i] = av[i] + bv[i]; break;
		case BIN_SUB: for (size_t i = 0; i < n; i++) o[i] = av[i] - bv[i]; break;
		case BIN_MUL: for (size_t i = 0; i < n; i++) o[i] = av[i] * bv[i]; break;
		case BIN_DIV: for (size_t i = 0; i < n; i++) o[i] = av[i] / bv[i]; break;
		}
	} else {
		switch (op) {
		case BIN_ADD: BCAST_LOOP(&bc, o[io] = av[ia] + bv[ib]); break;
		case BIN_SUB: BCAST_LOOP(&bc, o[io] = av[ia] - bv[ib]); break;
		case BIN_MUL: BCAST_LOOP(&bc, o[io] = av[ia] * bv[ib]); break;
		case BIN_DIV: BCAST_LOOP(&bc, o[io] = av[ia] / bv[ib]); break;
		}
	}
	if (needs(g, y, a, b, NULL)) record(g, binary_bw, y, a, b, NULL)->ip[0] = op;
	return y;
}

AdTensor *ad_add(AdGraph *g, AdTensor *a, AdTensor *b) { return binary(g, a, b, BIN_ADD); }
AdTensor *ad_sub(AdGraph *g, AdTensor *a, AdTensor *b) { return binary(g, a, b, BIN_SUB); }
AdTensor *ad_mul(AdGraph *g, AdTensor *a, AdTensor *b) { return binary(g, a, b, BIN_MUL); }
AdTensor *ad_div(AdGraph *g, AdTensor *a, AdTensor *b) { return binary(g, a, b, BIN_DIV); }

/* ---- unary ------------------------------------------------------------------------ */

enum { U_AFFINE, U_GELU, U_QGELU, U_SILU, U_SIGMOID, U_TANH, U_RELU, U_LEAKY, U_EXP, U_LOG, U_SQRT, U_SQUARE,
       U_SOFTPLUS, U_POW, U_LRELUG, U_COS, U_CLAMP };

#ifdef L2_AD_DOUBLE
#define AD_EXP exp
#else
#define AD_EXP expf
#endif

static inline double sigm(double x) { return 1 / (1 + exp(-x)); }

static double unary_f(int op, double x, double p0, double p1)
{
	switch (op) {
	case U_AFFINE: return p0 * x + p1;
	case U_GELU: return 0.5 * x * (1 + erf(x * M_SQRT1_2));
	case U_QGELU: return x * sigm(1.702 * x);
	case U_SILU: return x * sigm(x);
	case U_SIGMOID: return sigm(x);
	case U_TANH: return tanh(x);
	case U_RELU: return x > 0 ? x : 0;
	case U_LEAKY: return x > 0 ? x : p0 * x;
	case U_EXP: return exp(x);
	case U_LOG: return log(x);
	case U_SQRT: return sqrt(x);
	case U_SQUARE: return x * x;
	case U_SOFTPLUS: return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
	case U_POW: return pow(x, p0);
	case U_LRELUG: return (x > 0 ? x : p0 * x) * p1;
	case U_COS: return cos(x);
	case U_CLAMP: return x < p0 ? p0 : x > p1 ? p1 : x;
	}
	return 0;
}

/* d f / d x at x (y = f(x) where cheaper) */
static double unary_df(int op, double x, double y, double p0, double p1)
{
	switch (op) {
	case U_AFFINE: return p0;
	case U_GELU: return 0.5 * (1 + erf(x * M_SQRT1_2)) + x * exp(-0.5 * x * x) * 0.3989422804014327;
	case U_QGELU: { double s = sigm(1.702 * x); return s + 1.702 * x * s * (1 - s); }
	case U_SILU: { double s = sigm(x); return s + x * s * (1 - s); }
	case U_SIGMOID: return y * (1 - y);
	case U_TANH: return 1 - y * y;
	case U_RELU: return x > 0;
	case U_LEAKY: return x > 0 ? 1 : p0;
	case U_EXP: return y;
	case U_LOG: return 1 / x;
	case U_SQRT: return 0.5 / y;
	case U_SQUARE: return 2 * x;
	case U_SOFTPLUS: return sigm(x);
	case U_POW: return p0 * pow(x, p0 - 1);
	case U_LRELUG: return 0; /* hot path in unary_bw */
	case U_COS: return -sin(x);
	case U_CLAMP: return x >= p0 && x <= p1;
	}
	return 0;
}

static void unary_bw(AdGraph *g, AdNode *nd)
{
	AdTensor *x = nd->in[0], *y = nd->out;
	int fr, op = nd->ip[0];
	adr *dx = Gf(g, x, &fr);
	const adr *xv = x->v, *dy = y->g;
	double p0 = nd->fp[0];
	size_t n = x->n;
	if (op == U_QGELU) {
		for (size_t i = 0; i < n; i++) {
			adr sg = 1 / (1 + AD_EXP((adr)-1.702 * xv[i]));
			adr d = dy[i] * (sg + (adr)1.702 * xv[i] * sg * (1 - sg));
			dx[i] = fr ? d : dx[i] + d;
		}
	} else if (op == U_SILU) {
		/* d/dx x s(x) = s (1 + x (1 - s)), s = 1 / (1 + e^-x) */
		size_t i = 0;
#ifndef L2_AD_DOUBLE
		for (; i + 16 <= n; i += 16) {
			V16 v = vld(xv + i), sg = 1.0f / (1.0f + vexp(-v));
			V16 d = vld(dy + i) * (sg * (1.0f + v * (1.0f - sg)));
			vst(dx + i, fr ? d : vld(dx + i) + d);
		}
#endif
		for (; i < n; i++) {
			adr sg = 1 / (1 + AD_EXP(-xv[i]));
			adr d = dy[i] * (sg * (1 + xv[i] * (1 - sg)));
			dx[i] = fr ? d : dx[i] + d;
		}
	} else if (op == U_AFFINE) {
		adr a = (adr)p0;
		if (fr)
			for (size_t i = 0; i < n; i++) dx[i] = a * dy[i];
		else
			for (size_t i = 0; i < n; i++) dx[i] += a * dy[i];
	} else if (op == U_LRELUG || op == U_LEAKY) {
		double gain = op == U_LRELUG ? nd->fp[1] : 1;
		adr a = (adr)gain, b = (adr)(p0 * gain);
		const uint8_t *m = nd->aux;
		if (m) {
			for (size_t i = 0; i < n; i++) {
				adr d = dy[i] * (m[i] ? a : b);
				dx[i] = fr ? d : dx[i] + d;
			}
		} else if (fr)
			for (size_t i = 0; i < n; i++) dx[i] = dy[i] * (xv[i] > 0 ? a : b);
		else
			for (size_t i = 0; i < n; i++) dx[i] += dy[i] * (xv[i] > 0 ? a : b);
	} else {
		for (size_t i = 0; i < n; i++) {
			adr d = (adr)(dy[i] * unary_df(op, xv[i], y->v[i], p0, nd->fp[1]));
			dx[i] = fr ? d : dx[i] + d;
		}
	}
}

static AdTensor *unary(AdGraph *g, AdTensor *x, int op, double p0, double p1)
{
	AdTensor *y = ad_tensor(g, x->ndim, x->shape);
	const adr *xv = x->v;
	adr *yv = y->v;
	size_t n = x->n;
	uint8_t *mask = NULL;
	/* hot paths in the element type, the rest through double */
	if (op == U_AFFINE) {
		adr s = (adr)p0, c = (adr)p1;
		for (size_t i = 0; i < n; i++) yv[i] = s * xv[i] + c;
	} else if (op == U_QGELU) {
		for (size_t i = 0; i < n; i++) yv[i] = xv[i] / (1 + AD_EXP((adr)-1.702 * xv[i]));
	} else if ((op == U_LRELUG || op == U_LEAKY) && (mask = kink_mask(g, xv, n))) {
		adr a = op == U_LRELUG ? (adr)p1 : 1, b = (adr)(op == U_LRELUG ? p0 * p1 : p0);
		for (size_t i = 0; i < n; i++) yv[i] = mask[i] ? a * xv[i] : b * xv[i];
	} else if (op == U_LRELUG) {
		adr a = (adr)p1, b = (adr)(p0 * p1);
		for (size_t i = 0; i < n; i++) yv[i] = xv[i] * (xv[i] > 0 ? a : b);
	} else if (op == U_LEAKY) {
		adr b = (adr)p0;
		for (size_t i = 0; i < n; i++) yv[i] = xv[i] > 0 ? xv[i] : b * xv[i];
	} else if (op == U_SILU) {
		size_t i = 0;
#ifndef L2_AD_DOUBLE
		/* vectorised exp (lib/nn/simd.h, within 2 ulp of expf) */
		for (; i + 16 <= n; i += 16) {
			V16 v = vld(xv + i);
			vst(yv + i, v / (1.0f + vexp(-v)));
		}
#endif
		for (; i < n; i++) yv[i] = xv[i] / (1 + AD_EXP(-xv[i]));
	} else if (op == U_CLAMP) {
		adr lo = (adr)p0, hi = (adr)p1;
		for (size_t i = 0; i < n; i++) yv[i] = xv[i] < lo ? lo : xv[i] > hi ? hi : xv[i];
	} else {
		for (size_t i = 0; i < n; i++) yv[i] = (adr)unary_f(op, xv[i], p0, p1);
	}
	if (needs(g, y, x, NULL, NULL)) {
		AdNode *nd = record(g, unary_bw, y, x, NULL, NULL);
		nd->ip[0] = op;
		nd->fp[0] = p0;
		nd->fp[1] = p1;
		nd->aux = mask;
	}
	return y;
}

AdTensor *ad_affine(AdGraph *g, AdTensor *x, double s, double c) { return unary(g, x, U_AFFINE, s, c); }
AdTensor *ad_scale(AdGraph *g, AdTensor *x, double s) { return unary(g, x, U_AFFINE, s, 0); }
AdTensor *ad_gelu(AdGraph *g, AdTensor *x) { return unary(g, x, U_GELU, 0, 0); }
AdTensor *ad_quick_gelu(AdGraph *g, AdTensor *x) { return unary(g, x, U_QGELU, 0, 0); }
AdTensor *ad_silu(AdGraph *g, AdTensor *x) { return unary(g, x, U_SILU, 0, 0); }
AdTensor *ad_sigmoid(AdGraph *g, AdTensor *x) { return unary(g, x, U_SIGMOID, 0, 0); }
AdTensor *ad_tanh(AdGraph *g, AdTensor *x) { return unary(g, x, U_TANH, 0, 0); }
AdTensor *ad_relu(AdGraph *g, AdTensor *x) { return unary(g, x, U_RELU, 0, 0); }
AdTensor *ad_leaky_relu(AdGraph *g, AdTensor *x, double slope) { return unary(g, x, U_LEAKY, slope, 0); }
AdTensor *ad_leaky_relu_gain(AdGraph *g, AdTensor *x, double slope, double gain)
{
	return unary(g, x, U_LRELUG, slope, gain);
}
AdTensor *ad_exp(AdGraph *g, AdTensor *x) { return unary(g, x, U_EXP, 0, 0); }
AdTensor *ad_log(AdGraph *g, AdTensor *x) { return unary(g, x, U_LOG, 0, 0); }
AdTensor *ad_sqrt(AdGraph *g, AdTensor *x) { return unary(g, x, U_SQRT, 0, 0); }
AdTensor *ad_square(AdGraph *g, AdTensor *x) { return unary(g, x, U_SQUARE, 0, 0); }
AdTensor *ad_softplus(AdGraph *g, AdTensor *x) { return unary(g, x, U_SOFTPLUS, 0, 0); }
AdTensor *ad_pow(AdGraph *g, AdTensor *x, double p) { return unary(g, x, U_POW, p, 0); }
AdTensor *ad_cos(AdGraph *g, AdTensor *x) { return unary(g, x, U_COS, 0, 0); }
AdTensor *ad_clamp(AdGraph *g, AdTensor *x, double lo, double hi)
{
	if (!(lo <= hi)) shape_die("clamp", "lo %g > hi %g", lo, hi);
	return unary(g, x, U_CLAMP, lo, hi);
}

/* ---- reductions -------------------------------------------------------------------- */

/* ip: outer, len, inner; fp[0]: scale (1 or 1/len) */
static void reduce_bw(AdGraph *g, AdNode *nd)
{
	AdTensor *x = nd->in[0], *y = nd->out;
	int outer = nd->ip[0], len = nd->ip[1], inner = nd->ip[2];
	adr s = (adr)nd->fp[0], *dx = G(g, x);
	for (int o = 0; o < outer; o++)
		for (int l = 0; l < len; l++) {
			adr *d = dx + ((size_t)o * len + l) * inner;
			const adr *dy = y->g + (size_t)o * inner;
			for (int i = 0; i < inner; i++) d[i] += s * dy[i];
		}
}

static AdTensor *reduce(AdGraph *g, AdTensor *x, int axis, int keepdim, int mean)
{
	if (axis < 0) axis += x->ndim;
	if (axis < 0 || axis >= x->ndim) shape_die("sum", "axis %d outside 0..%d", axis, x->ndim - 1);
	int outer = 1, inner = 1, len = x->shape[axis];
	for (int i = 0; i < axis; i++) outer *= x->shape[i];
	for (int i = axis + 1; i < x->ndim; i++) inner *= x->shape[i];
	int shape[AD_MAXDIM], nd = 0;
	for (int i = 0; i < x->ndim; i++) {
		if (i == axis) {
			if (keepdim || x->ndim == 1) shape[nd++] = 1;
		} else shape[nd++] = x->shape[i];
	}
	AdTensor *y = ad_zeros(g, nd, shape);
	adr s = mean ? (adr)(1.0 / len) : 1;
	for (int o = 0; o < outer; o++) {
		adr *yo = y->v + (size_t)o * inner;
		for (int l = 0; l < len; l++) {
			const adr *xr = x->v + ((size_t)o * len + l) * inner;
			for (int i = 0; i < inner; i++) yo[i] += xr[i];
		}
		if (mean)
			for (int i = 0; i < inner; i++) yo[i] *= s;
	}
	if (needs(g, y, x, NULL, NULL)) {
		AdNode *nd2 = record(g, reduce_bw, y, x, NULL, NULL);
		nd2->ip[0] = outer;
		nd2->ip[1] = len;
		nd2->ip[2] = inner;
		nd2->fp[0] = s;
	}
	return y;
}

AdTensor *ad_sum(AdGraph *g, AdTensor *x, int axis, int keepdim) { return reduce(g, x, axis, keepdim, 0); }
AdTensor *ad_mean(AdGraph *g, AdTensor *x, int axis, int keepdim) { return reduce(g, x, axis, keepdim, 1); }

static AdTensor *flat(AdGraph *g, AdTensor *x) { return ad_reshape(g, x, 1, (int[]){(int)x->n}); }
AdTensor *ad_sum_all(AdGraph *g, AdTensor *x) { return reduce(g, flat(g, x), 0, 0, 0); }
AdTensor *ad_mean_all(AdGraph *g, AdTensor *x) { return reduce(g, flat(g, x), 0, 0, 1); }

/* ---- shape ops ----------------------------------------------------------------------- */

static void reshape_bw(AdGraph *g, AdNode *nd)
{
	if (alias_grad(nd->in[0], nd->out)) return;
	adr *dx = G(g, nd->in[0]);
	const adr *dy = nd->out->g;
	for (size_t i = 0; i < nd->out->n; i++) dx[i] += dy[i];
}

AdTensor *ad_reshape(AdGraph *g, AdTensor *x, int ndim, const int *shape)
{
	int s[AD_MAXDIM], neg = -1;
	size_t n = 1;
	if (ndim < 1 || ndim > AD_MAXDIM) shape_die("reshape", "%d dimensions", ndim);
	for (int i = 0; i < ndim; i++) {
		s[i] = shape[i];
		if (s[i] == -1) {
			if (neg >= 0) shape_die("reshape", "two -1 entries");
			neg = i;
		} else n *= s[i];
	}
	if (neg >= 0) s[neg] = n ? (int)(x->n / n) : 0, n *= s[neg];
	char s1[64];
	if (n != x->n) shape_die("reshape", "%s has %zu elements, the new shape %zu", ad_shape_str(x, s1, 64), x->n, n);
	/* a view of the values; the gradient is its own buffer */
	AdTensor *y = ad_scratch(g, sizeof *y);
	memset(y, 0, sizeof *y);
	y->ndim = ndim;
	memcpy(y->shape, s, ndim * sizeof(int));
	y->n = n;
	y->v = x->v;
	if (needs(g, y, x, NULL, NULL)) record(g, reshape_bw, y, x, NULL, NULL);
	return y;
}

/* ip[0..5] perm; strides computed again */
static void permute_index(const AdTensor *x, const int *perm, size_t *st_out)
{
	size_t st[AD_MAXDIM];
	st[x->ndim - 1] = 1;
	for (int i = x->ndim - 2; i >= 0; i--) st[i] = st[i + 1] * x->shape[i + 1];
	for (int i = 0; i < x->ndim; i++) st_out[i] = st[perm[i]];
}

/* Copy between x and a permuted y (dir 0: y = P x; dir 1: dx += P^T dy). */
static void permute_run(const AdTensor *x, const AdTensor *y, const int *perm, const adr *src, adr *dst, int back)
{
	size_t sx[AD_MAXDIM];
	permute_index(x, perm, sx);
	int nd = y->ndim, idx[AD_MAXDIM] = {0}, last = y->shape[nd - 1];
	size_t sl = sx[nd - 1], ix = 0, io = 0, rows = y->n / last;
	for (size_t r = 0; r < rows; r++) {
		if (!back)
			for (int j = 0; j < last; j++) dst[io + j] = src[ix + j * sl];
		else
			for (int j = 0; j < last; j++) dst[ix + j * sl] += src[io + j];
		io += last;
		for (int d = nd - 2; d >= 0; d--) {
			idx[d]++;
			ix += sx[d];
			if (idx[d] < y->shape[d]) break;
			ix -= sx[d] * y->shape[d];
			idx[d] = 0;
		}
	}
}

static void permute_bw(AdGraph *g, AdNode *nd)
{
	AdTensor *x = nd->in[0];
	int fr;
	adr *dx = Gf(g, x, &fr);
	if (fr) memset(dx, 0, x->n * sizeof(adr));
	permute_run(x, nd->out, nd->ip, nd->out->g, dx, 1);
}

AdTensor *ad_permute(AdGraph *g, AdTensor *x, const int *perm)
{
	int shape[AD_MAXDIM], seen[AD_MAXDIM] = {0};
	for (int i = 0; i < x->ndim; i++) {
		if (perm[i] < 0 || perm[i] >= x->ndim || seen[perm[i]]++) shape_die("permute", "not a permutation");
		shape[i] = x->shape[perm[i]];
	}
	AdTensor *y = ad_tensor(g, x->ndim, shape);
	permute_run(x, y, perm, x->v, y->v, 0);
	if (needs(g, y, x, NULL, NULL)) memcpy(record(g, permute_bw, y, x, NULL, NULL)->ip, perm, x->ndim * sizeof(int));
	return y;
}

AdTensor *ad_transpose(AdGraph *g, AdTensor *x, int a, int b)
{
	int perm[AD_MAXDIM];
	for (int i = 0; i < x->ndim; i++) perm[i] = i;
	if (a < 0) a += x->ndim;
	if (b < 0) b += x->ndim;
	perm[a] = b;
	perm[b] = a;
	return ad_permute(g, x, perm);
}

/* ip: outer, len(x axis), inner, start, ylen */
static void slice_bw(AdGraph *g, AdNode *nd)
{
	int outer = nd->ip[0], xl = nd->ip[1], inner = nd->ip[2], st = nd->ip[3], yl = nd->ip[4];
	adr *dx = G(g, nd->in[0]);
	const adr *dy = nd->out->g;
	for (int o = 0; o < outer; o++)
		for (size_t i = 0; i < (size_t)yl * inner; i++)
			dx[((size_t)o * xl + st) * inner + i] += dy[(size_t)o * yl * inner + i];
}

AdTensor *ad_slice(AdGraph *g, AdTensor *x, int axis, int start, int len)
{
	if (axis < 0) axis += x->ndim;
	if (axis < 0 || axis >= x->ndim || start < 0 || len < 1 || start + len > x->shape[axis])
		shape_die("slice", "axis %d [%d, %d) outside the tensor", axis, start, start + len);
	int outer = 1, inner = 1, xl = x->shape[axis];
	for (int i = 0; i < axis; i++) outer *= x->shape[i];
	for (int i = axis + 1; i < x->ndim; i++) inner *= x->shape[i];
	int shape[AD_MAXDIM];
	memcpy(shape, x->shape, x->ndim * sizeof(int));
	shape[axis] = len;
	AdTensor *y = ad_tensor(g, x->ndim, shape);
	for (int o = 0; o < outer; o++)
		memcpy(y->v + (size_t)o * len * inner, x->v + ((size_t)o * xl + start) * inner, (size_t)len * inner * sizeof(adr));
	if (needs(g, y, x, NULL, NULL)) {
		int ip[5] = {outer, xl, inner, start, len};
		memcpy(record(g, slice_bw, y, x, NULL, NULL)->ip, ip, sizeof ip);
	}
	return y;
}

/* aux: AdTensor *xs[n]; ip: n, outer, inner, ylen */
static void concat_bw(AdGraph *g, AdNode *nd)
{
	AdTensor **xs = nd->aux;
	int n = nd->ip[0], outer = nd->ip[1], inner = nd->ip[2], yl = nd->ip[3], axis = nd->ip[4];
	int off = 0;
	for (int k = 0; k < n; k++) {
		int l = xs[k]->shape[axis];
		adr *dx = G(g, xs[k]);
		if (dx)
			for (int o = 0; o < outer; o++)
				for (size_t i = 0; i < (size_t)l * inner; i++)
					dx[(size_t)o * l * inner + i] += nd->out->g[((size_t)o * yl + off) * inner + i];
		off += l;
	}
}

AdTensor *ad_concat(AdGraph *g, AdTensor **xs, int n, int axis)
{
	AdTensor *x0 = xs[0];
	if (axis < 0) axis += x0->ndim;
	int shape[AD_MAXDIM];
	memcpy(shape, x0->shape, x0->ndim * sizeof(int));
	shape[axis] = 0;
	int rg = 0;
	for (int k = 0; k < n; k++) {
		if (xs[k]->ndim != x0->ndim) shape_die("concat", "tensors differ in rank");
		for (int i = 0; i < x0->ndim; i++)
			if (i != axis && xs[k]->shape[i] != x0->shape[i]) shape_die("concat", "shapes differ off axis %d", axis);
		shape[axis] += xs[k]->shape[axis];
		rg |= xs[k]->rg;
	}
	int outer = 1, inner = 1;
	for (int i = 0; i < axis; i++) outer *= shape[i];
	for (int i = axis + 1; i < x0->ndim; i++) inner *= shape[i];
	AdTensor *y = ad_tensor(g, x0->ndim, shape);
	int off = 0, yl = shape[axis];
	for (int k = 0; k < n; k++) {
		int l = xs[k]->shape[axis];
		for (int o = 0; o < outer; o++)
			memcpy(y->v + ((size_t)o * yl + off) * inner, xs[k]->v + (size_t)o * l * inner, (size_t)l * inner * sizeof(adr));
		off += l;
	}
	y->rg = rg && g->grad;
	if (y->rg) {
		AdNode *nd = record(g, concat_bw, y, NULL, NULL, NULL);
		AdTensor **cp = ad_scratch(g, n * sizeof *cp);
		memcpy(cp, xs, n * sizeof *cp);
		nd->aux = cp;
		int ip[5] = {n, outer, inner, yl, axis};
		memcpy(nd->ip, ip, sizeof ip);
	}
	return y;
}

AdTensor *ad_expand(AdGraph *g, AdTensor *x, int ndim, const int *shape)
{
	/* x + zeros(shape) under broadcasting, without the zeros' cost in the
	 * backward: the add's gradient sums back to x. */
	AdTensor *z = ad_zeros(g, ndim, shape);
	return binary(g, x, z, BIN_ADD);
}

/* ---- images --------------------------------------------------------------------------- */

/* The output columns [lo, hi) whose input column ox * st - pad + j lies in [0, W). */
static void col_range(int W, int OW, int st, int pad, int j, int *lo, int *hi)
{
	int a = pad - j > 0 ? (pad - j + st - 1) / st : 0;
	int b = W - 1 + pad - j >= 0 ? (W - 1 + pad - j) / st + 1 : 0;
	*lo = a < OW ? a : OW;
	*hi = b < OW ? b : OW;
	if (*hi < *lo) *hi = *lo;
}

/* im2col for one image, one group: col[(c*kh + i)*kw + j][oy*OW + ox], rows
 * ld apart (ld = OH*OW for one image; N*OH*OW when a batch shares one GEMM
 * and this image's columns start at col + n*OH*OW); input channel c at
 * x + c*cs (cs = H*W for an NCHW image). */
#if defined(__GNUC__) && !defined(__clang__)
/* the zero fills at the borders are a few elements: loops, not memset calls */
__attribute__((optimize("no-tree-loop-distribute-patterns")))
#endif
static void im2col_cs(const adr *x, size_t cs, int C, int H, int W, int kh, int kw, int st, int pad, int OH, int OW,
		      adr *col, size_t ld)
{
	for (int j = 0; j < kw; j++) {
		int lo, hi;
		col_range(W, OW, st, pad, j, &lo, &hi);
		for (int c = 0; c < C; c++)
			for (int i = 0; i < kh; i++) {
				adr *row = col + (((size_t)c * kh + i) * kw + j) * ld;
				const adr *xc = x + (size_t)c * cs;
				for (int oy = 0; oy < OH; oy++) {
					int iy = oy * st - pad + i;
					adr *r = row + (size_t)oy * OW;
					if (iy < 0 || iy >= H) {
						memset(r, 0, OW * sizeof(adr));
						continue;
					}
					const adr *xr = xc + (size_t)iy * W - pad + j;
					for (int ox = 0; ox < lo; ox++) r[ox] = 0;
					if (st == 1) memcpy(r + lo, xr + lo, (size_t)(hi - lo) * sizeof(adr));
					else
						for (int ox = lo; ox < hi; ox++) r[ox] = xr[(size_t)ox * st];
					for (int ox = hi; ox < OW; ox++) r[ox] = 0;
				}
			}
	}
}

static void im2col(const adr *x, int C, int H, int W, int kh, int kw, int st, int pad, int OH, int OW, adr *col,
		   size_t ld)
{
	im2col_cs(x, (size_t)H * W, C, H, W, kh, kw, st, pad, OH, OW, col, ld);
}

/* x += the transpose of im2col (same layout and ld as im2col). */
static void col2im(const adr *col, int C, int H, int W, int kh, int kw, int st, int pad, int OH, int OW, adr *x,
		   size_t ld)
{
	for (int c = 0; c < C; c++)
		for (int i = 0; i < kh; i++)
			for (int j = 0; j < kw; j++) {
				int lo, hi;
				col_range(W, OW, st, pad, j, &lo, &hi);
				const adr *row = col + (((size_t)c * kh + i) * kw + j) * ld;
				adr *xc = x + (size_t)c * H * W;
				for (int oy = 0; oy < OH; oy++) {
					int iy = oy * st - pad + i;
					if (iy < 0 || iy >= H) continue;
					adr *xr = xc + (size_t)iy * W - pad + j;
					const adr *r = row + (size_t)oy * OW;
					if (st == 1)
						for (int ox = lo; ox < hi; ox++) xr[ox] += r[ox];
					else
						for (int ox = lo; ox < hi; ox++) xr[(size_t)ox * st] += r[ox];
				}
			}
}

/* ---- batched convolution core ----------------------------------------------------------
 * One GEMM for the whole batch with a shared weight: col[K, N*P] (K = C*kh*kw,
 * P = OH*OW, image n's columns at n*P), Z[O, N*P] = w[O, K] col.  Callers
 * copy Z into [N, O, OH, OW]; the backward takes gZ in Z's layout. */
typedef struct {
	int N, C, H, W, O, kh, kw, st, pad, OH, OW;
} ConvGeom;

static size_t cg_K(const ConvGeom *c) { return (size_t)c->C * c->kh * c->kw; }
static size_t cg_P(const ConvGeom *c) { return (size_t)c->OH * c->OW; }

/* col = im2col over the batch (from the arena); Z = w col. */
static adr *conv_core_fwd(AdGraph *g, const ConvGeom *c, const adr *x, const adr *w, adr *Z)
{
	size_t K = cg_K(c), P = cg_P(c), NP = (size_t)c->N * P;
	adr *col = ad_scratch(g, K * NP * sizeof(adr));
	for (int n = 0; n < c->N; n++)
		im2col(x + (size_t)n * c->C * c->H * c->W, c->C, c->H, c->W, c->kh, c->kw, c->st, c->pad, c->OH, c->OW,
		       col + (size_t)n * P, NP);
	ad_gemm(0, 0, c->O, (int)NP, (int)K, 1, w, (int)K, col, (int)NP, 0, Z, (int)NP);
	return col;
}

/* dw += gZ col^T; dx += col2im(w^T gZ) (either may be NULL; dx_fresh: dx is
 * uninitialised, write it).  With stride 1 and pad <= k - 1, dx is instead
 * the correlation of gZ with the flipped, transposed weight (padding
 * k - 1 - pad): an im2col of gZ per image and a GEMM straight into dx, with
 * no K x N*P column gradient to clear, fill and scatter back. */
static void conv_core_bw(AdGraph *g, const ConvGeom *c, const adr *col, const adr *w, const adr *gZ, adr *dw, adr *dx,
			 int dx_fresh)
{
	size_t K = cg_K(c), P = cg_P(c), NP = (size_t)c->N * P;
	if (dw) ad_gemm(0, 1, c->O, (int)K, (int)NP, 1, gZ, (int)NP, col, (int)NP, 1, dw, (int)K);
	if (dx && c->st == 1 && c->kh == c->kw && c->pad <= c->kh - 1) {
		int k = c->kh, k2 = k * k, Kt = c->O * k2, HW = c->H * c->W;
		adr *wt = ad_scratch(g, (size_t)c->C * Kt * sizeof(adr));   /* [C, O, k, k] flipped */
		for (int o = 0; o < c->O; o++)
			for (int ci = 0; ci < c->C; ci++)
				for (int t = 0; t < k2; t++)
					wt[(size_t)ci * Kt + (size_t)o * k2 + t] = w[((size_t)o * c->C + ci) * k2 + (k2 - 1 - t)];
		adr *colg = ad_scratch(g, (size_t)Kt * HW * sizeof(adr));
		for (int n = 0; n < c->N; n++) {
			im2col_cs(gZ + (size_t)n * P, NP, c->O, c->OH, c->OW, k, k, 1, k - 1 - c->pad, c->H, c->W, colg,
				  (size_t)HW);
			ad_gemm(0, 0, c->C, HW, Kt, 1, wt, Kt, colg, HW, dx_fresh ? 0 : 1, dx + (size_t)n * c->C * HW, HW);
		}
		return;
	}
	if (dx) {
		if (dx_fresh) memset(dx, 0, (size_t)c->N * c->C * c->H * c->W * sizeof(adr));
		adr *dcol = ad_scratch(g, K * NP * sizeof(adr));
		ad_gemm(1, 0, (int)K, (int)NP, c->O, 1, w, (int)K, gZ, (int)NP, 0, dcol, (int)NP);
		for (int n = 0; n < c->N; n++)
			col2im(dcol + (size_t)n * P, c->C, c->H, c->W, c->kh, c->kw, c->st, c->pad, c->OH, c->OW,
			       dx + (size_t)n * c->C * c->H * c->W, NP);
	}
}

/* Z[O, N*P] -> y[N, O, P] (+ b[o]). */
static void conv_scatter(const ConvGeom *c, const adr *Z, const adr *b, adr *y)
{
	size_t P = cg_P(c), NP = (size_t)c->N * P;
	for (int n = 0; n < c->N; n++)
		for (int o = 0; o < c->O; o++) {
			const adr *z = Z + (size_t)o * NP + (size_t)n * P;
			adr *yo = y + ((size_t)n * c->O + o) * P;
			if (b) {
				adr bo = b[o];
				for (size_t p = 0; p < P; p++) yo[p] = z[p] + bo;
			} else
				memcpy(yo, z, P * sizeof(adr));
		}
}

/* y[N, O, P] -> gZ[O, N*P] (the gradient in Z's layout), and db[o] += sum. */
static adr *conv_gather(AdGraph *g, const ConvGeom *c, const adr *gy, adr *db)
{
	size_t P = cg_P(c), NP = (size_t)c->N * P;
	adr *gZ = ad_scratch(g, (size_t)c->O * NP * sizeof(adr));
	for (int n = 0; n < c->N; n++)
		for (int o = 0; o < c->O; o++) {
			const adr *s = gy + ((size_t)n * c->O + o) * P;
			memcpy(gZ + (size_t)o * NP + (size_t)n * P, s, P * sizeof(adr));
			if (db) {
				double a = 0;
				for (size_t p = 0; p < P; p++) a += s[p];
				db[o] += (adr)a;
			}
		}
	return gZ;
}

/* groups == 1: ip as conv_bw; aux: col (NULL when w needs no gradient). */
static void conv1_bw(AdGraph *g, AdNode *nd)
{
	AdTensor *x = nd->in[0], *w = nd->in[1], *b = nd->in[2], *y = nd->out;
	const int *ip = nd->ip;
	ConvGeom c = {ip[0], ip[1], ip[2], ip[3], ip[4], ip[5], ip[6], ip[7], ip[8], ip[10], ip[11]};
	adr *dx = G(g, x), *dw = G(g, w), *db = G(g, b);
	adr *gZ = conv_gather(g, &c, y->g, db);
	conv_core_bw(g, &c, nd->aux, w->v, gZ, dw, dx, 0);
}

/* groups == 1, large planes (P >= CONV_PI_MIN): one GEMM per image straight between the
 * NCHW tensors, so neither the output nor its gradient is copied to or from a [O, N*P]
 * buffer (that copy cost more than the GEMMs' gain from a wider N at these sizes).  aux:
 * the per-image columns col[N][K][P] (NULL for 1x1 stride-1 convolutions: x itself); ip as
 * conv_bw. */
#define CONV_PI_MIN 256
static void conv_pi_bw(AdGraph *g, AdNode *nd)
{
	AdTensor *x = nd->in[0], *w = nd->in[1], *b = nd->in[2], *y = nd->out;
	const int *ip = nd->ip;
	ConvGeom c = {ip[0], ip[1], ip[2], ip[3], ip[4], ip[5], ip[6], ip[7], ip[8], ip[10], ip[11]};
	size_t K = cg_K(&c), P = cg_P(&c), HW = (size_t)c.H * c.W;
	const adr *col = nd->aux;
	int fr;
	adr *dx = Gf(g, x, &fr), *dw = G(g, w), *db = G(g, b);
	for (int n = 0; n < c.N; n++) {
		const adr *gy = y->g + (size_t)n * c.O * P;
		if (db)
			for (int o = 0; o < c.O; o++) {
				double a = 0;
				for (size_t p = 0; p < P; p++) a += gy[(size_t)o * P + p];
				db[o] += (adr)a;
			}
		if (dw) ad_gemm(0, 1, c.O, (int)K, (int)P, 1, gy, (int)P, col ? col + (size_t)n * K * P : x->v + (size_t)n * c.C * HW,
				(int)P, 1, dw, (int)K);
	}
	if (!dx) return;
	if (!col) { /* 1x1: dx = w^T gy */
		for (int n = 0; n < c.N; n++)
			ad_gemm(1, 0, c.C, (int)P, c.O, 1, w->v, c.C, y->g + (size_t)n * c.O * P, (int)P, fr ? 0 : 1,
				dx + (size_t)n * c.C * HW, (int)P);
		return;
	}
	if (c.st == 1 && c.kh == c.kw && c.pad <= c.kh - 1) {
		/* the correlation of gy with the flipped, transposed weight (conv_core_bw) */
		int k = c.kh, k2 = k * k, Kt = c.O * k2;
		adr *wt = ad_scratch(g, (size_t)c.C * Kt * sizeof(adr));
		for (int o = 0; o < c.O; o++)
			for (int ci = 0; ci < c.C; ci++)
				for (int t = 0; t < k2; t++)
					wt[(size_t)ci * Kt + (size_t)o * k2 + t] = w->v[((size_t)o * c.C + ci) * k2 + (k2 - 1 - t)];
		adr *colg = ad_scratch(g, (size_t)Kt * HW * sizeof(adr));
		for (int n = 0; n < c.N; n++) {
			im2col_cs(y->g + (size_t)n * c.O * P, P, c.O, c.OH, c.OW, k, k, 1, k - 1 - c.pad, c.H, c.W, colg, HW);
			ad_gemm(0, 0, c.C, (int)HW, Kt, 1, wt, Kt, colg, (int)HW, fr ? 0 : 1, dx + (size_t)n * c.C * HW, (int)HW);
		}
		return;
	}
	if (fr) memset(dx, 0, x->n * sizeof(adr));
	adr *dcol = ad_scratch(g, K * P * sizeof(adr));
	for (int n = 0; n < c.N; n++) {
		ad_gemm(1, 0, (int)K, (int)P, c.O, 1, w->v, (int)K, y->g + (size_t)n * c.O * P, (int)P, 0, dcol, (int)P);
		col2im(dcol, c.C, c.H, c.W, c.kh, c.kw, c.st, c.pad, c.OH, c.OW, dx + (size_t)n * c.C * HW, P);
	}
}

/* ip: N, C, H, W, O, kh, kw, stride, pad, groups, OH, OW */
static void conv_bw(AdGraph *g, AdNode *nd)
{
	AdTensor *x = nd->in[0], *w = nd->in[1], *b = nd->in[2], *y = nd->out;
	int N = nd->ip[0], C = nd->ip[1], H = nd->ip[2], W = nd->ip[3], O = nd->ip[4], kh = nd->ip[5], kw = nd->ip[6];
	int st = nd->ip[7], pad = nd->ip[8], Gp = nd->ip[9], OH = nd->ip[10], OW = nd->ip[11];
	int cg = C / Gp, og = O / Gp, K = cg * kh * kw, P = OH * OW;
	int direct = kh == 1 && kw == 1 && st == 1 && pad == 0;
	adr *dx = G(g, x), *dw = G(g, w), *db = G(g, b);
	adr *col = direct ? NULL : ad_scratch(g, (size_t)K * P * sizeof(adr));
	adr *dcol = direct || !dx ? NULL : ad_scratch(g, (size_t)K * P * sizeof(adr));
	for (int n = 0; n < N; n++)
		for (int gi = 0; gi < Gp; gi++) {
			const adr *xs = x->v + ((size_t)n * C + (size_t)gi * cg) * H * W;
			const adr *dy = y->g + ((size_t)n * O + (size_t)gi * og) * P;
			const adr *wg = w->v + (size_t)gi * og * K;
			if (db)
				for (int o = 0; o < og; o++) {
					double s = 0;
					for (int p = 0; p < P; p++) s += dy[(size_t)o * P + p];
					db[gi * og + o] += (adr)s;
				}
			if (dw) {
				const adr *c = xs;
				if (!direct) {
					im2col(xs, cg, H, W, kh, kw, st, pad, OH, OW, col, (size_t)P);
					c = col;
				}
				ad_gemm(0, 1, og, K, P, 1, dy, P, c, P, 1, dw + (size_t)gi * og * K, K);
			}
			if (dx) {
				adr *dxs = dx + ((size_t)n * C + (size_t)gi * cg) * H * W;
				if (direct) ad_gemm(1, 0, K, P, og, 1, wg, K, dy, P, 1, dxs, P);
				else {
					ad_gemm(1, 0, K, P, og, 1, wg, K, dy, P, 0, dcol, P);
					col2im(dcol, cg, H, W, kh, kw, st, pad, OH, OW, dxs, (size_t)P);
				}
			}
		}
}

AdTensor *ad_conv2d(AdGraph *g, AdTensor *x, AdTensor *w, AdTensor *b, int stride, int pad, int groups)
{
	char s1[64], s2[64];
	if (x->ndim != 4 || w->ndim != 4) shape_die("conv2d", "x and w must be 4-D");
	int N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
	int O = w->shape[0], kh = w->shape[2], kw = w->shape[3];
	if (groups < 1 || C % groups || O % groups || w->shape[1] * groups != C)
		shape_die("conv2d", "x %s and w %s do not match with %d groups", ad_shape_str(x, s1, 64), ad_shape_str(w, s2, 64),
			  groups);
	if (b && b->n != (size_t)O) shape_die("conv2d", "bias has %zu elements, expected %d", b->n, O);
	if (stride < 1 || pad < 0) shape_die("conv2d", "stride %d, pad %d", stride, pad);
	int OH = (H + 2 * pad - kh) / stride + 1, OW = (W + 2 * pad - kw) / stride + 1;
	if (OH < 1 || OW < 1) shape_die("conv2d", "kernel larger than the padded input");
	int cg = C / groups, og = O / groups, K = cg * kh * kw, P = OH * OW;
	int direct = kh == 1 && kw == 1 && stride == 1 && pad == 0;
	AdTensor *y = ad_tensor(g, 4, (int[]){N, O, OH, OW});
	if (groups == 1 && P >= CONV_PI_MIN) {
		/* large planes: one GEMM per image (conv_pi_bw); the columns are kept for dw */
		adr *colp = direct ? NULL : ad_scratch(g, (size_t)N * K * P * sizeof(adr));
		for (int n = 0; n < N; n++) {
			const adr *xs = x->v + (size_t)n * C * H * W, *cn = xs;
			adr *ys = y->v + (size_t)n * O * P;
			if (!direct) {
				adr *cc = colp + (size_t)n * K * P;
				im2col(xs, C, H, W, kh, kw, stride, pad, OH, OW, cc, (size_t)P);
				cn = cc;
			}
			if (b)
				for (int o = 0; o < O; o++)
					for (int p = 0; p < P; p++) ys[(size_t)o * P + p] = b->v[o];
			ad_gemm(0, 0, O, P, K, 1, w->v, K, cn, P, b ? 1 : 0, ys, P);
		}
		if (needs(g, y, x, w, b)) {
			AdNode *nd = record(g, conv_pi_bw, y, x, w, b);
			int ip[12] = {N, C, H, W, O, kh, kw, stride, pad, groups, OH, OW};
			memcpy(nd->ip, ip, sizeof ip);
			nd->aux = colp;
		}
		return y;
	}
	if (groups == 1 && N > 1) {
		/* the whole batch in one GEMM; the columns are kept for dw */
		ConvGeom c = {N, C, H, W, O, kh, kw, stride, pad, OH, OW};
		adr *Z = ad_scratch(g, (size_t)O * N * P * sizeof(adr));
		adr *col = conv_core_fwd(g, &c, x->v, w->v, Z);
		conv_scatter(&c, Z, b ? b->v : NULL, y->v);
		if (needs(g, y, x, w, b)) {
			AdNode *nd = record(g, conv1_bw, y, x, w, b);
			int ip[12] = {N, C, H, W, O, kh, kw, stride, pad, groups, OH, OW};
			memcpy(nd->ip, ip, sizeof ip);
			nd->aux = col;
		}
		return y;
	}
	adr *col = direct ? NULL : ad_scratch(g, (size_t)K * P * sizeof(adr));
	for (int n = 0; n < N; n++)
		for (int gi = 0; gi < groups; gi++) {
			const adr *xs = x->v + ((size_t)n * C + (size_t)gi * cg) * H * W, *c = xs;
			adr *ys = y->v + ((size_t)n * O + (size_t)gi * og) * P;
			if (!direct) {
				im2col(xs, cg, H, W, kh, kw, stride, pad, OH, OW, col, (size_t)P);
				c = col;
			}
			if (b)
				for (int o = 0; o < og; o++)
					for (int p = 0; p < P; p++) ys[(size_t)o * P + p] = b->v[gi * og + o];
			ad_gemm(0, 0, og, P, K, 1, w->v + (size_t)gi * og * K, K, c, P, b ? 1 : 0, ys, P);
		}
	if (needs(g, y, x, w, b)) {
		int ip[12] = {N, C, H, W, O, kh, kw, stride, pad, groups, OH, OW};
		memcpy(record(g, conv_bw, y, x, w, b)->ip, ip, sizeof ip);
	}
	return y;
}

static void upnearest_bw(AdGraph *g, AdNode *nd)
{
	AdTensor *x = nd->in[0], *y = nd->out;
	int f = nd->ip[0], H = x->shape[2], W = x->shape[3], OW = W * f;
	size_t planes = x->n / ((size_t)H * W);
	adr *dx = G(g, x);
	for (size_t p = 0; p < planes; p++)
		for (int oy = 0; oy < H * f; oy++)
			for (int ox = 0; ox < OW; ox++)
				dx[(p * H + oy / f) * W + ox / f] += y->g[(p * H * f + oy) * OW + ox];
}

AdTensor *ad_upsample_nearest(AdGraph *g, AdTensor *x, int f)
{
	if (x->ndim != 4 || f < 1) shape_die("upsample_nearest", "x must be [N, C, H, W], factor >= 1");
	int H = x->shape[2], W = x->shape[3], OW = W * f;
	AdTensor *y = ad_tensor(g, 4, (int[]){x->shape[0], x->shape[1], H * f, W * f});
	size_t planes = x->n / ((size_t)H * W);
	for (size_t p = 0; p < planes; p++)
		for (int oy = 0; oy < H * f; oy++)
			for (int ox = 0; ox < OW; ox++) y->v[(p * H * f + oy) * OW + ox] = x->v[(p * H + oy / f) * W + ox / f];
	if (needs(g, y, x, NULL, NULL)) record(g, upnearest_bw, y, x, NULL, NULL)->ip[0] = f;
	return y;
}

/* y = shift(x): one pass over y for the forward, the same index map adding
 * into dx for the backward (each x element feeds at most one y element). */
static void translate_run(const AdTensor *x, const int *shift, adr *xs, adr *ys, int back)
{
	int N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
	for (int n = 0; n < N; n++) {
		int dy = shift[2 * n], dx = shift[2 * n + 1];
		for (int c = 0; c < C; c++) {
			size_t pl = ((size_t)n * C + c) * H * W;
			for (int i = 0; i < H; i++) {
				int si = i + dy;
				for (int j = 0; j < W; j++) {
					int sj = j + dx;
					int in = si >= 0 && si < H && sj >= 0 && sj < W;
					if (back) {
						if (in) xs[pl + (size_t)si * W + sj] += ys[pl + (size_t)i * W + j];
					} else
						ys[pl + (size_t)i * W + j] = in ? xs[pl + (size_t)si * W + sj] : 0;
				}
			}
		}
	}
}

static void translate_bw(AdGraph *g, AdNode *nd)
{
	AdTensor *x = nd->in[0], *y = nd->out;
	translate_run(x, nd->aux, G(g, x), y->g, 1);
}

AdTensor *ad_translate(AdGraph *g, AdTensor *x, const int *shift)
{
	if (x->ndim != 4) shape_die("translate", "x must be [N, C, H, W]");
	AdTensor *y = ad_tensor(g, 4, x->shape);
	translate_run(x, shift, x->v, y->v, 0);
	if (needs(g, y, x, NULL, NULL)) {
		int *s = ad_scratch(g, (size_t)2 * x->shape[0] * sizeof(int));
		memcpy(s, shift, (size_t)2 * x->shape[0] * sizeof(int));
		record(g, translate_bw, y, x, NULL, NULL)->aux = s;
	}
	return y;
}

static void avgpool_bw(AdGraph *g, AdNode *nd)
{
	AdTensor *x = nd->in[0], *y = nd->out;
	int f = nd->ip[0], H = x->shape[2], W = x->shape[3], OH = H / f, OW = W / f;
	size_t planes = x->n / ((size_t)H * W);
	adr s = (adr)(1.0 / (f * f)), *dx = G(g, x);
	for (size_t p = 0; p < planes; p++)
		for (int oy = 0; oy < OH; oy++)
			for (int ox = 0; ox < OW; ox++) {
				adr d = y->g[(p * OH + oy) * OW + ox] * s;
				for (int i = 0; i < f; i++)
					for (int j = 0; j < f; j++) dx[(p * H + oy * f + i) * W + ox * f + j] += d;
			}
}

AdTensor *ad_avgpool(AdGraph *g, AdTensor *x, int f)
{
	if (x->ndim != 4 || f < 1 || x->shape[2] % f || x->shape[3] % f)
		shape_die("avgpool", "x must be [N, C, H, W] with H, W multiples of %d", f);
	int H = x->shape[2], W = x->shape[3], OH = H / f, OW = W / f;
	AdTensor *y = ad_tensor(g, 4, (int[]){x->shape[0], x->shape[1], OH, OW});
	size_t planes = x->n / ((size_t)H * W);
	adr s = (adr)(1.0 / (f * f));
	for (size_t p = 0; p < planes; p++)
		for (int oy = 0; oy < OH; oy++)
			for (int ox = 0; ox < OW; ox++) {
				adr a = 0;
				for (int i = 0; i < f; i++)
					for (int j = 0; j < f; j++) a += x->v[(p * H + oy * f + i) * W + ox * f + j];
				y->v[(p * OH + oy) * OW + ox] = a * s;
			}
	if (needs(g, y, x, NULL, NULL)) record(g, avgpool_bw, y, x, NULL, NULL)->ip[0] = f;
	return y;
}

/* Source index and weight pairs of align_corners=False bilinear sampling. */
static void bilinear_coords(int in, int out, int *i0, int *i1, adr *w1)
{
	double sc = (double)in / out;
	for (int o = 0; o < out; o++) {
		double s = (o + 0.5) * sc - 0.5;
		if (s < 0) s = 0;
		int a = (int)s;
		if (a > in - 1) a = in - 1;
		int b = a + 1 < in ? a + 1 : in - 1;
		i0[o] = a;
		i1[o] = b;
		w1[o] = (adr)(s - a);
	}
}

/* aux: y0[OH], y1[OH], wy[OH], x0[OW], x1[OW], wx[OW] */
static void bilinear_bw(AdGraph *g, AdNode *nd)
{
	AdTensor *x = nd->in[0], *y = nd->out;
	int H = x->shape[2], W = x->shape[3], OH = y->shape[2], OW = y->shape[3];
	int *y0 = nd->aux, *y1 = y0 + OH, *x0 = y1 + OH, *x1 = x0 + OW;
	adr *wy = (adr *)(x1 + OW), *wx = wy + OH;
	size_t planes = x->n / ((size_t)H * W);
	adr *dx = G(g, x);
	for (size_t p = 0; p < planes; p++) {
		adr *d = dx + p * H * W;
		for (int oy = 0; oy < OH; oy++)
			for (int ox = 0; ox < OW; ox++) {
				adr gy = y->g[(p * OH + oy) * OW + ox];
				adr a = (1 - wy[oy]) * gy, b = wy[oy] * gy;
				d[(size_t)y0[oy] * W + x0[ox]] += a * (1 - wx[ox]);
				d[(size_t)y0[oy] * W + x1[ox]] += a * wx[ox];
				d[(size_t)y1[oy] * W + x0[ox]] += b * (1 - wx[ox]);
				d[(size_t)y1[oy] * W + x1[ox]] += b * wx[ox];
			}
	}
}

AdTensor *ad_resize_bilinear(AdGraph *g, AdTensor *x, int OH, int OW)
{
	if (x->ndim != 4 || OH < 1 || OW < 1) shape_die("resize_bilinear", "x must be [N, C, H, W]");
	int H = x->shape[2], W = x->shape[3];
	AdTensor *y = ad_tensor(g, 4, (int[]){x->shape[0], x->shape[1], OH, OW});
	int *y0 = ad_scratch(g, (2 * (size_t)OH + 2 * OW) * sizeof(int) + ((size_t)OH + OW) * sizeof(adr));
	int *y1 = y0 + OH, *x0 = y1 + OH, *x1 = x0 + OW;
	adr *wy = (adr *)(x1 + OW), *wx = wy + OH;
	bilinear_coords(H, OH, y0, y1, wy);
	bilinear_coords(W, OW, x0, x1, wx);
	size_t planes = x->n / ((size_t)H * W);
	for (size_t p = 0; p < planes; p++) {
		const adr *s = x->v + p * H * W;
		for (int oy = 0; oy < OH; oy++)
			for (int ox = 0; ox < OW; ox++) {
				adr t = s[(size_t)y0[oy] * W + x0[ox]] * (1 - wx[ox]) + s[(size_t)y0[oy] * W + x1[ox]] * wx[ox];
				adr u = s[(size_t)y1[oy] * W + x0[ox]] * (1 - wx[ox]) + s[(size_t)y1[oy] * W + x1[ox]] * wx[ox];
				y->v[(p * OH + oy) * OW + ox] = t * (1 - wy[oy]) + u * wy[oy];
			}
	}
	if (needs(g, y, x, NULL, NULL)) record(g, bilinear_bw, y, x, NULL, NULL)->aux = y0;
	return y;
}

/* The taps of upfirdn2d along one axis: output o reads input idx[o][t] with
 * filter index fi[o][t] (flipped: a true convolution), t < cnt[o] <= nf.
 * Precomputed so the inner loops have no division or bounds test. */
typedef struct {
	int *cnt, *idx, *fi;
} Taps;

static void taps_make(AdGraph *g, int in, int out, int nf, int up, int down, int p0, Taps *t)
{
	t->cnt = ad_scratch(g, (size_t)out * (1 + 2 * (size_t)nf) * sizeof(int));
	t->idx = t->cnt + out;
	t->fi = t->idx + (size_t)out * nf;
	for (int o = 0; o < out; o++) {
		int c = 0;
		for (int i = 0; i < nf; i++) {
			int u = o * down + i - p0; /* coordinate in the upsampled signal */
			if (u < 0 || u >= in * up || u % up) continue;
			t->idx[(size_t)o * nf + c] = u / up;
			t->fi[(size_t)o * nf + c] = nf - 1 - i;
			c++;
		}
		t->cnt[o] = c;
	}
}

typedef struct {
	adr *f;     /* [fh * fw] */
	int fh, fw;
	Taps ty, tx;
	adr *u, *v; /* f = u v^T exactly (u[fh], v[fw]), or NULL */
} Upfirdn;

/* A rank-one split f[i][j] == u[i] v[j] that holds exactly in adr, with
 * the pivot row/column chosen so the division is exact when it can be
 * (StyleGAN2's [1,3,3,1] x [1,3,3,1] / 64 splits exactly at a corner).
 * The separable passes then apply the same filter, summed in another order. */
static int fir_split(const adr *f, int fh, int fw, adr *u, adr *v)
{
	for (int i0 = 0; i0 < fh; i0++)
		for (int j0 = 0; j0 < fw; j0++) {
			adr p = f[(size_t)i0 * fw + j0];
			if (p == 0) continue;
			for (int i = 0; i < fh; i++) u[i] = f[(size_t)i * fw + j0];
			for (int j = 0; j < fw; j++) v[j] = f[(size_t)i0 * fw + j] / p;
			int ok = 1;
			for (int i = 0; i < fh && ok; i++)
				for (int j = 0; j < fw && ok; j++) ok = u[i] * v[j] == f[(size_t)i * fw + j];
			if (ok) return 1;
		}
	return 0;
}

/* Separable upfirdn2d: along x into t[planes, H, OW], then along y.
 * back: the transpose (src = dy, dst = dx accumulated; t is scratch). */
static void upfirdn_sep(const AdTensor *x, const AdTensor *y, const Upfirdn *u, const adr *src, adr *dst, adr *t,
			int back)
{
	int H = x->shape[2], W = x->shape[3], OH = y->shape[2], OW = y->shape[3], fh = u->fh, fw = u->fw;
	size_t planes = x->n / ((size_t)H * W);
	for (size_t p = 0; p < planes; p++) {
		adr *tp = t + p * H * OW;
		if (!back) {
			const adr *xs = src + p * H * W;
			for (int iy = 0; iy < H; iy++) {
				const adr *xr = xs + (size_t)iy * W;
				adr *tr = tp + (size_t)iy * OW;
				for (int ox = 0; ox < OW; ox++) {
					const int *ix = u->tx.idx + (size_t)ox * fw, *fx = u->tx.fi + (size_t)ox * fw;
					adr acc = 0;
					for (int b = 0; b < u->tx.cnt[ox]; b++) acc += xr[ix[b]] * u->v[fx[b]];
					tr[ox] = acc;
				}
			}
			adr *ys = dst + p * OH * OW;
			for (int oy = 0; oy < OH; oy++) {
				const int *iy = u->ty.idx + (size_t)oy * fh, *fy = u->ty.fi + (size_t)oy * fh;
				adr *yr = ys + (size_t)oy * OW;
				for (int ox = 0; ox < OW; ox++) yr[ox] = 0;
				for (int a = 0; a < u->ty.cnt[oy]; a++) {
					const adr *tr = tp + (size_t)iy[a] * OW;
					adr c = u->u[fy[a]];
					for (int ox = 0; ox < OW; ox++) yr[ox] += c * tr[ox];
				}
			}
		} else {
			memset(tp, 0, (size_t)H * OW * sizeof(adr));
			const adr *gs = src + p * OH * OW;
			for (int oy = 0; oy < OH; oy++) {
				const int *iy = u->ty.idx + (size_t)oy * fh, *fy = u->ty.fi + (size_t)oy * fh;
				const adr *gr = gs + (size_t)oy * OW;
				for (int a = 0; a < u->ty.cnt[oy]; a++) {
					adr *tr = tp + (size_t)iy[a] * OW;
					adr c = u->u[fy[a]];
					for (int ox = 0; ox < OW; ox++) tr[ox] += c * gr[ox];
				}
			}
			adr *ds = dst + p * H * W;
			for (int iy = 0; iy < H; iy++) {
				adr *dr = ds + (size_t)iy * W;
				const adr *tr = tp + (size_t)iy * OW;
				for (int ox = 0; ox < OW; ox++) {
					const int *ix = u->tx.idx + (size_t)ox * fw, *fx = u->tx.fi + (size_t)ox * fw;
					for (int b = 0; b < u->tx.cnt[ox]; b++) dr[ix[b]] += tr[ox] * u->v[fx[b]];
				}
			}
		}
	}
}

static void upfirdn_run(const AdTensor *x, const AdTensor *y, const Upfirdn *u, const adr *src, adr *dst, int back)
{
	int H = x->shape[2], W = x->shape[3], OH = y->shape[2], OW = y->shape[3];
	int fh = u->fh, fw = u->fw;
	size_t planes = x->n / ((size_t)H * W);
	for (size_t p = 0; p < planes; p++) {
		const adr *xs = back ? NULL : src + p * H * W;
		adr *dxs = back ? dst + p * H * W : NULL;
		for (int oy = 0; oy < OH; oy++) {
			int ny = u->ty.cnt[oy];
			const int *iy = u->ty.idx + (size_t)oy * fh, *fy = u->ty.fi + (size_t)oy * fh;
			for (int ox = 0; ox < OW; ox++) {
				int nx = u->tx.cnt[ox];
				const int *ix = u->tx.idx + (size_t)ox * fw, *fx = u->tx.fi + (size_t)ox * fw;
				if (back) {
					adr gy = src[(p * OH + oy) * OW + ox];
					for (int a = 0; a < ny; a++) {
						adr *dr = dxs + (size_t)iy[a] * W;
						const adr *fr = u->f + (size_t)fy[a] * fw;
						for (int b = 0; b < nx; b++) dr[ix[b]] += gy * fr[fx[b]];
					}
				} else {
					adr acc = 0;
					for (int a = 0; a < ny; a++) {
						const adr *xr = xs + (size_t)iy[a] * W;
						const adr *fr = u->f + (size_t)fy[a] * fw;
						for (int b = 0; b < nx; b++) acc += xr[ix[b]] * fr[fx[b]];
					}
					dst[(p * OH + oy) * OW + ox] = acc;
				}
			}
		}
	}
}

static void upfirdn_bw(AdGraph *g, AdNode *nd)
{
	AdTensor *x = nd->in[0], *y = nd->out;
	const Upfirdn *u = nd->aux;
	if (u->u) {
		size_t planes = x->n / ((size_t)x->shape[2] * x->shape[3]);
		adr *t = ad_scratch(g, planes * x->shape[2] * y->shape[3] * sizeof(adr));
		upfirdn_sep(x, y, u, y->g, G(g, x), t, 1);
	} else
		upfirdn_run(x, y, u, y->g, G(g, x), 1);
}

AdTensor *ad_upfirdn2d(AdGraph *g, AdTensor *x, const adr *f, int fh, int fw, int up, int down, int px0, int px1,
		       int py0, int py1)
{
	if (x->ndim != 4 || fh < 1 || fw < 1 || up < 1 || down < 1) shape_die("upfirdn2d", "bad arguments");
	int H = x->shape[2], W = x->shape[3];
	int OH = (H * up + py0 + py1 - fh) / down + 1, OW = (W * up + px0 + px1 - fw) / down + 1;
	if (H * up + py0 + py1 < fh || W * up + px0 + px1 < fw || OH < 1 || OW < 1)
		shape_die("upfirdn2d", "filter larger than the padded input");
	AdTensor *y = ad_tensor(g, 4, (int[]){x->shape[0], x->shape[1], OH, OW});
	Upfirdn *u = ad_scratch(g, sizeof *u);
	u->f = ad_scratch(g, (size_t)fh * fw * sizeof(adr));
	memcpy(u->f, f, (size_t)fh * fw * sizeof(adr));
	u->fh = fh, u->fw = fw;
	taps_make(g, H, OH, fh, up, down, py0, &u->ty);
	taps_make(g, W, OW, fw, up, down, px0, &u->tx);
	u->u = ad_scratch(g, (size_t)(fh + fw) * sizeof(adr));
	u->v = u->u + fh;
	if (fir_split(u->f, fh, fw, u->u, u->v)) {
		size_t planes = x->n / ((size_t)H * W);
		upfirdn_sep(x, y, u, x->v, y->v, ad_scratch(g, planes * H * OW * sizeof(adr)), 0);
	} else {
		u->u = u->v = NULL;
		upfirdn_run(x, y, u, x->v, y->v, 0);
	}
	if (needs(g, y, x, NULL, NULL)) record(g, upfirdn_bw, y, x, NULL, NULL)->aux = u;
	return y;
}

/* ---- modulated convolution ---------------------------------------------------------------
 * StyleGAN2's training form (fused_modconv=False):
 *     y[n, o] = d[n, o] * (w * (x[n] . s[n]))[o],
 *     d[n, o] = (sum_c s[n, c]^2 W2[o, c] + 1e-8)^-1/2,  W2[o, c] = sum_ij w[o, c, i, j]^2
 * (d = 1 without demodulation): one GEMM for the batch with the shared
 * weight instead of a grouped convolution with per-sample weights.
 * Backward, with gZ = d gy and q = sum_c s^2 W2 (dd/dq = -d^3 / 2):
 *     gd[n, o]  = sum_p gy[n, o, p] Z[n, o, p],   gq = -gd d^3 / 2
 *     gxs = conv^T(gZ),  dx = gxs s,  ds[n, c] = sum_p gxs x + 2 s[n, c] sum_o gq[n, o] W2[o, c]
 *     dw = gZ (x s)^T-conv + 2 w[o, c, i, j] sum_n gq[n, o] s[n, c]^2 */
typedef struct {
	adr *col, *Z;     /* im2col of x s [K, N*P]; w * (x s) [O, N*P] */
	adr *d, *W2;      /* [N, O], [O, C] (demod only) */
} ModconvAux;

/* ip: N, C, H, W, O, kh, kw, 1, pad, demod, OH, OW */
static void modconv_bw(AdGraph *g, AdNode *nd)
{
	AdTensor *x = nd->in[0], *w = nd->in[1], *s = nd->in[2], *y = nd->out;
	const int *ip = nd->ip;
	ConvGeom c = {ip[0], ip[1], ip[2], ip[3], ip[4], ip[5], ip[6], ip[7], ip[8], ip[10], ip[11]};
	int demod = ip[9], N = c.N, C = c.C, O = c.O;
	const ModconvAux *a = nd->aux;
	size_t P = cg_P(&c), NP = (size_t)N * P, HW = (size_t)c.H * c.W, K2 = (size_t)c.kh * c.kw;
	adr *dx = G(g, x), *dw = G(g, w), *ds = G(g, s);
	adr *gZ = ad_scratch(g, (size_t)O * NP * sizeof(adr));
	double *gq = demod ? ad_scratch(g, (size_t)N * O * sizeof(double)) : NULL;
	for (int n = 0; n < N; n++)
		for (int o = 0; o < O; o++) {
			const adr *gy = y->g + ((size_t)n * O + o) * P;
			const adr *z = a->Z + (size_t)o * NP + (size_t)n * P;
			adr *gz = gZ + (size_t)o * NP + (size_t)n * P;
			if (demod) {
				adr dv = a->d[(size_t)n * O + o];
				double gd = 0;
				for (size_t p = 0; p < P; p++) {
					gd += (double)gy[p] * z[p];
					gz[p] = gy[p] * dv;
				}
				gq[(size_t)n * O + o] = -0.5 * gd * (double)dv * dv * dv;
			} else
				memcpy(gz, gy, P * sizeof(adr));
		}
	adr *gxs = NULL;
	if (dx || ds) gxs = ad_scratch(g, (size_t)N * C * HW * sizeof(adr));
	conv_core_bw(g, &c, a->col, w->v, gZ, dw, gxs, 1);
	if (gxs)
		for (int n = 0; n < N; n++)
			for (int ci = 0; ci < C; ci++) {
				size_t off = ((size_t)n * C + ci) * HW;
				adr sv = s->v[(size_t)n * C + ci];
				if (dx)
					for (size_t p = 0; p < HW; p++) dx[off + p] += gxs[off + p] * sv;
				if (ds) {
					double acc = 0;
					for (size_t p = 0; p < HW; p++) acc += (double)gxs[off + p] * x->v[off + p];
					ds[(size_t)n * C + ci] += (adr)acc;
				}
			}
	if (!demod) return;
	if (ds)
		for (int n = 0; n < N; n++)
			for (int ci = 0; ci < C; ci++) {
				double acc = 0;
				for (int o = 0; o < O; o++) acc += gq[(size_t)n * O + o] * a->W2[(size_t)o * C + ci];
				ds[(size_t)n * C + ci] += (adr)(2 * s->v[(size_t)n * C + ci] * acc);
			}
	if (dw)
		for (int o = 0; o < O; o++)
			for (int ci = 0; ci < C; ci++) {
				double acc = 0;
				for (int n = 0; n < N; n++) {
					double sv = s->v[(size_t)n * C + ci];
					acc += gq[(size_t)n * O + o] * sv * sv;
				}
				adr f = (adr)(2 * acc);
				const adr *wr = w->v + ((size_t)o * C + ci) * K2;
				adr *dr = dw + ((size_t)o * C + ci) * K2;
				for (size_t k = 0; k < K2; k++) dr[k] += f * wr[k];
			}
}

AdTensor *ad_modconv(AdGraph *g, AdTensor *x, AdTensor *w, AdTensor *s, int demod, int pad)
{
	char s1[64], s2[64];
	if (x->ndim != 4 || w->ndim != 4 || s->ndim != 2 || w->shape[1] != x->shape[1] || s->shape[0] != x->shape[0] ||
	    s->shape[1] != x->shape[1])
		shape_die("modconv", "x %s, w %s and styles do not match", ad_shape_str(x, s1, 64), ad_shape_str(w, s2, 64));
	int N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
	int O = w->shape[0], kh = w->shape[2], kw = w->shape[3];
	if (pad < 0) shape_die("modconv", "pad %d", pad);
	int OH = H + 2 * pad - kh + 1, OW = W + 2 * pad - kw + 1;
	if (OH < 1 || OW < 1) shape_die("modconv", "kernel larger than the padded input");
	ConvGeom c = {N, C, H, W, O, kh, kw, 1, pad, OH, OW};
	size_t P = cg_P(&c), NP = (size_t)N * P, HW = (size_t)H * W, K2 = (size_t)kh * kw;
	ModconvAux *a = ad_scratch(g, sizeof *a);
	/* x s */
	adr *xs = ad_scratch(g, x->n * sizeof(adr));
	for (int n = 0; n < N; n++)
		for (int ci = 0; ci < C; ci++) {
			size_t off = ((size_t)n * C + ci) * HW;
			adr sv = s->v[(size_t)n * C + ci];
			for (size_t p = 0; p < HW; p++) xs[off + p] = x->v[off + p] * sv;
		}
	a->Z = ad_scratch(g, (size_t)O * NP * sizeof(adr));
	a->col = conv_core_fwd(g, &c, xs, w->v, a->Z);
	a->d = a->W2 = NULL;
	if (demod) {
		a->W2 = ad_scratch(g, (size_t)O * C * sizeof(adr));
		a->d = ad_scratch(g, (size_t)N * O * sizeof(adr));
		for (size_t oc = 0; oc < (size_t)O * C; oc++) {
			double acc = 0;
			for (size_t k = 0; k < K2; k++) acc += (double)w->v[oc * K2 + k] * w->v[oc * K2 + k];
			a->W2[oc] = (adr)acc;
		}
		for (int n = 0; n < N; n++)
			for (int o = 0; o < O; o++) {
				double q = 0;
				for (int ci = 0; ci < C; ci++) {
					double sv = s->v[(size_t)n * C + ci];
					q += sv * sv * a->W2[(size_t)o * C + ci];
				}
				a->d[(size_t)n * O + o] = (adr)(1 / sqrt(q + 1e-8));
			}
	}
	AdTensor *y = ad_tensor(g, 4, (int[]){N, O, OH, OW});
	for (int n = 0; n < N; n++)
		for (int o = 0; o < O; o++) {
			const adr *z = a->Z + (size_t)o * NP + (size_t)n * P;
			adr *yo = y->v + ((size_t)n * O + o) * P;
			if (demod) {
				adr dv = a->d[(size_t)n * O + o];
				for (size_t p = 0; p < P; p++) yo[p] = z[p] * dv;
			} else
				memcpy(yo, z, P * sizeof(adr));
		}
	if (needs(g, y, x, w, s)) {
		AdNode *nd = record(g, modconv_bw, y, x, w, s);
		int ip[12] = {N, C, H, W, O, kh, kw, 1, pad, demod, OH, OW};
		memcpy(nd->ip, ip, sizeof ip);
		nd->aux = a;
	}
	return y;
}
