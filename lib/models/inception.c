/* inception.c — pytorch-fid's FID Inception-v3 on CPU (see inception.h).
 *
 * Every BasicConv2d (conv without bias, batch norm eps 0.001, ReLU) becomes
 * one folded L2Conv.  Activations are (C, B, H, W) so each convolution is a
 * single GEMM over the whole batch and branch outputs land directly in
 * their slice of the block output (conv.h). */
#include "models/inception.h"
#include "nn/conv.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "core/hash.h"
#include "core/util.h"

#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- architecture ---------------------------------------------------------- */

typedef struct {
	char name[48]; /* "Mixed_5b.branch1x1" */
	int cin, cout, kh, kw, sh, sw, ph, pw;
} ConvSpec;

enum { MAX_CONVS = 96 };
static ConvSpec specs[MAX_CONVS];
static int nspecs;
/* 'A', 'C', 'E' (avg pool), 'e' (max pool) or 'D' at a block's first conv;
 * those blocks stack their 1x1 convolutions of the block input (below) */
static char block_kind[MAX_CONVS];
static pthread_once_t specs_once = PTHREAD_ONCE_INIT;

static void add(const char *block, const char *branch, int cin, int cout, int kh, int kw, int s, int ph, int pw)
{
	ConvSpec *c = &specs[nspecs++];
	if (branch) snprintf(c->name, sizeof c->name, "%s.%s", block, branch);
	else snprintf(c->name, sizeof c->name, "%s", block);
	c->cin = cin, c->cout = cout, c->kh = kh, c->kw = kw, c->sh = c->sw = s, c->ph = ph, c->pw = pw;
}

static void add_a(const char *b, int cin, int pool_features)
{
	block_kind[nspecs] = 'A';
	add(b, "branch1x1", cin, 64, 1, 1, 1, 0, 0);
	add(b, "branch5x5_1", cin, 48, 1, 1, 1, 0, 0);
	add(b, "branch5x5_2", 48, 64, 5, 5, 1, 2, 2);
	add(b, "branch3x3dbl_1", cin, 64, 1, 1, 1, 0, 0);
	add(b, "branch3x3dbl_2", 64, 96, 3, 3, 1, 1, 1);
	add(b, "branch3x3dbl_3", 96, 96, 3, 3, 1, 1, 1);
	add(b, "branch_pool", cin, pool_features, 1, 1, 1, 0, 0);
}

static void add_c(const char *b, int c7)
{
	block_kind[nspecs] = 'C';
	add(b, "branch1x1", 768, 192, 1, 1, 1, 0, 0);
	add(b, "branch7x7_1", 768, c7, 1, 1, 1, 0, 0);
	add(b, "branch7x7_2", c7, c7, 1, 7, 1, 0, 3);
	add(b, "branch7x7_3", c7, 192, 7, 1, 1, 3, 0);
	add(b, "branch7x7dbl_1", 768, c7, 1, 1, 1, 0, 0);
	add(b, "branch7x7dbl_2", c7, c7, 7, 1, 1, 3, 0);
	add(b, "branch7x7dbl_3", c7, c7, 1, 7, 1, 0, 3);
	add(b, "branch7x7dbl_4", c7, c7, 7, 1, 1, 3, 0);
	add(b, "branch7x7dbl_5", c7, 192, 1, 7, 1, 0, 3);
	add(b, "branch_pool", 768, 192, 1, 1, 1, 0, 0);
}

static void add_e(const char *b, int cin)
{
	block_kind[nspecs] = cin == 2048 ? 'e' : 'E';
	add(b, "branch1x1", cin, 320, 1, 1, 1, 0, 0);
	add(b, "branch3x3_1", cin, 384, 1, 1, 1, 0, 0);
	add(b, "branch3x3_2a", 384, 384, 1, 3, 1, 0, 1);
	add(b, "branch3x3_2b", 384, 384, 3, 1, 1, 1, 0);
	add(b, "branch3x3dbl_1", cin, 448, 1, 1, 1, 0, 0);
	add(b, "branch3x3dbl_2", 448, 384, 3, 3, 1, 1, 1);
	add(b, "branch3x3dbl_3a", 384, 384, 1, 3, 1, 0, 1);
	add(b, "branch3x3dbl_3b", 384, 384, 3, 1, 1, 1, 0);
	add(b, "branch_pool", cin, 192, 1, 1, 1, 0, 0);
}

static void build_specs(void)
{
	add("Conv2d_1a_3x3", NULL, 3, 32, 3, 3, 2, 0, 0);
	add("Conv2d_2a_3x3", NULL, 32, 32, 3, 3, 1, 0, 0);
	add("Conv2d_2b_3x3", NULL, 32, 64, 3, 3, 1, 1, 1);
	add("Conv2d_3b_1x1", NULL, 64, 80, 1, 1, 1, 0, 0);
	add("Conv2d_4a_3x3", NULL, 80, 192, 3, 3, 1, 0, 0);
	add_a("Mixed_5b", 192, 32);
	add_a("Mixed_5c", 256, 64);
	add_a("Mixed_5d", 288, 64);
	add("Mixed_6a", "branch3x3", 288, 384, 3, 3, 2, 0, 0);
	add("Mixed_6a", "branch3x3dbl_1", 288, 64, 1, 1, 1, 0, 0);
	add("Mixed_6a", "branch3x3dbl_2", 64, 96, 3, 3, 1, 1, 1);
	add("Mixed_6a", "branch3x3dbl_3", 96, 96, 3, 3, 2, 0, 0);
	add_c("Mixed_6b", 128);
	add_c("Mixed_6c", 160);
	add_c("Mixed_6d", 160);
	add_c("Mixed_6e", 192);
	block_kind[nspecs] = 'D';
	add("Mixed_7a", "branch3x3_1", 768, 192, 1, 1, 1, 0, 0);
	add("Mixed_7a", "branch3x3_2", 192, 320, 3, 3, 2, 0, 0);
	add("Mixed_7a", "branch7x7x3_1", 768, 192, 1, 1, 1, 0, 0);
	add("Mixed_7a", "branch7x7x3_2", 192, 192, 1, 7, 1, 0, 3);
	add("Mixed_7a", "branch7x7x3_3", 192, 192, 7, 1, 1, 3, 0);
	add("Mixed_7a", "branch7x7x3_4", 192, 192, 3, 3, 2, 0, 0);
	add_e("Mixed_7b", 1280);
	add_e("Mixed_7c", 2048);
}

static void init_specs(void) { pthread_once(&specs_once, build_specs); }

/* Parameters: 5 per conv (conv.weight, bn.weight, bn.bias, bn.running_mean,
 * bn.running_var), then fc.weight, fc.bias. */
static const char *const bn_suffix[5] = {"conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"};

int l2_inception_param_count(void)
{
	init_specs();
	return nspecs * 5 + 2;
}

const char *l2_inception_param_name(int i, int *ndim, int64_t shape[4])
{
	static __thread char name[96];
	init_specs();
	if (i < 0 || i >= nspecs * 5 + 2) return NULL;
	if (i >= nspecs * 5) {
		int w = i == nspecs * 5;
		snprintf(name, sizeof name, w ? "fc.weight" : "fc.bias");
		*ndim = w ? 2 : 1;
		shape[0] = 1008;
		shape[1] = 2048;
		return name;
	}
	const ConvSpec *c = &specs[i / 5];
	snprintf(name, sizeof name, "%.47s.%s", c->name, bn_suffix[i % 5]);
	if (i % 5 == 0) {
		*ndim = 4;
		shape[0] = c->cout, shape[1] = c->cin, shape[2] = c->kh, shape[3] = c->kw;
	} else {
		*ndim = 1;
		shape[0] = c->cout;
	}
	return name;
}

/* ---- seeded random parameters ---------------------------------------------------- */

void l2_inception_random_param(uint64_t seed, int i, float *out)
{
	int ndim;
	int64_t shape[4];
	const char *name = l2_inception_param_name(i, &ndim, shape);
	if (!name) l2_die("l2_inception_random_param: no parameter %d", i);
	size_t n = 1;
	for (int d = 0; d < ndim; d++) n *= (size_t)shape[d];
	uint64_t key = l2_fnv1a64_str(L2_FNV_INIT, name) ^ seed * L2_GOLDEN;
	int kind = i >= nspecs * 5 ? 5 + (i - nspecs * 5) : i % 5;
	float scale = 1;
	if (kind == 0) scale = (float)sqrt(6.0 / (double)(shape[1] * shape[2] * shape[3]));
	if (kind == 5) scale = (float)sqrt(3.0 / 2048.0);
	for (size_t j = 0; j < n; j++) {
		uint64_t z = l2_mix64(key + (uint64_t)(j + 1) * L2_GOLDEN);
		float v = (float)(z >> 40) * 0x1p-23f - 1.0f; /* exact: 24 bits */
		switch (kind) {
		case 0: case 5: out[j] = v * scale; break;
		case 1: case 4: out[j] = 1.0f + v * 0.25f; break;
		default: out[j] = v * 0.0625f; break; /* bn.bias, running_mean, fc.bias */
		}
	}
}

/* ---- the network ------------------------------------------------------------------ */

/* The 1x1 convolutions of a block that read the block input are stacked
 * into one GEMM ("head", at the block's first conv index): the input is
 * packed once instead of up to four times and the GEMM is taller.  Row
 * order: the average-pool branch's conv first (pooled after the conv: avg
 * pooling and a 1x1 conv commute, and the pool then runs on 32-192 instead
 * of 192-2048 channels; ReLU after the pool), then the branches' first
 * convs, then branch1x1, whose rows land directly in the block output
 * (the block output buffer has the other rows as a prefix, see head()). */
typedef struct {
	int n, idx[4]; /* conv indices relative to the block start */
	int pool_rows;  /* rows [0, pool_rows): the avg-pool branch, no ReLU */
	int into;       /* last rows that are branch1x1 (block output channels [0, into)) */
} HeadSpec;

struct L2Inception {
	L2Conv conv[MAX_CONVS];
	L2Conv head[MAX_CONVS];
	int head_pool[MAX_CONVS], head_into[MAX_CONVS];
	float *w, *b; /* every weight and bias, in one block each; a head's
		       * member convs are adjacent in head order, so the head's
		       * matrix is simply their rows one after the other */
};

static HeadSpec head_spec(char kind)
{
	switch (kind) {
	case 'A': return (HeadSpec){4, {6, 1, 3, 0}, 1, 1};
	case 'C': return (HeadSpec){4, {9, 1, 4, 0}, 1, 1};
	case 'E': return (HeadSpec){4, {8, 1, 4, 0}, 1, 1};
	case 'e': return (HeadSpec){3, {1, 4, 0}, 0, 1};
	default: return (HeadSpec){2, {0, 2}, 0, 0}; /* 'D': output at a smaller size */
	}
}

/* Where each conv's weights and bias go (in floats): head members first,
 * adjacent in head order, then the other convs at 64-byte boundaries. */
static void layout(size_t *woff, size_t *boff, size_t *wtotal, size_t *btotal)
{
	size_t w = 0, b = 0;
	int placed[MAX_CONVS] = {0};
	for (int i0 = 0; i0 < nspecs; i0++) {
		if (!block_kind[i0]) continue;
		HeadSpec hs = head_spec(block_kind[i0]);
		w = (w + 15) & ~(size_t)15;
		for (int k = 0; k < hs.n; k++) {
			const ConvSpec *c = &specs[i0 + hs.idx[k]];
			woff[i0 + hs.idx[k]] = w, boff[i0 + hs.idx[k]] = b;
			w += (size_t)c->cout * c->cin * c->kh * c->kw;
			b += (size_t)c->cout;
			placed[i0 + hs.idx[k]] = 1;
		}
	}
	for (int i = 0; i < nspecs; i++) {
		if (placed[i]) continue;
		w = (w + 15) & ~(size_t)15;
		woff[i] = w, boff[i] = b;
		w += (size_t)specs[i].cout * specs[i].cin * specs[i].kh * specs[i].kw;
		b += (size_t)specs[i].cout;
	}
	*wtotal = w, *btotal = b;
}

/* The head of the block starting at i0, over its members' adjacent weights. */
static void make_head(L2Inception *net, int i0)
{
	HeadSpec hs = head_spec(block_kind[i0]);
	const L2Conv *first = &net->conv[i0 + hs.idx[0]];
	int m = 0;
	for (int k = 0; k < hs.n; k++) m += net->conv[i0 + hs.idx[k]].cout;
	net->head[i0] = (L2Conv){first->cin, m, 1, 1, 1, 1, 0, 0, first->w, first->b};
	net->head_pool[i0] = hs.pool_rows ? first->cout : 0;
	net->head_into[i0] = hs.into ? net->conv[i0 + hs.idx[hs.n - 1]].cout : 0;
}

static void random_get(void *ctx, const char *name, int ndim, const int64_t *shape, float *out)
{
	uint64_t seed = *(const uint64_t *)ctx;
	int n = l2_inception_param_count();
	for (int i = 0; i < n; i++) {
		int nd;
		int64_t sh[4];
		if (!strcmp(l2_inception_param_name(i, &nd, sh), name)) {
			l2_inception_random_param(seed, i, out);
			return;
		}
	}
	l2_die("no parameter %s", name);
}

void l2_inception_st_get(void *ctx, const char *name, int ndim, const int64_t *shape, float *out)
{
	L2Safetensors *st = ctx;
	if (!l2_st_find(st, name))
		l2_die("%s: tensor %s missing: not FID Inception-v3 weights with pytorch-fid's key names "
		       "(convert pt_inception-2015-12-05's state dict; see l2-fid(1))", l2_st_path(st), name);
	l2_st_load_f32_into(st, name, ndim, shape, out);
}

L2Inception *l2_inception_load(L2InceptionGetFn get, void *ctx)
{
	init_specs();
	/* Activations are freed and reallocated per layer; keep that memory in
	 * the heap instead of returning it to the system each time. */
	mallopt(M_MMAP_THRESHOLD, 1 << 30);
	mallopt(M_TRIM_THRESHOLD, 1 << 30);
	L2Inception *net = l2_calloc(1, sizeof *net);
	size_t woff[MAX_CONVS], boff[MAX_CONVS], wtotal, btotal;
	layout(woff, boff, &wtotal, &btotal);
	net->w = l2_conv_alloc(wtotal * sizeof(float)); /* 95 MB on huge pages */
	net->b = l2_calloc(btotal, sizeof(float));
	for (int i = 0; i < nspecs; i++) {
		const ConvSpec *s = &specs[i];
		L2Conv *c = &net->conv[i];
		c->cin = s->cin, c->cout = s->cout, c->kh = s->kh, c->kw = s->kw;
		c->sh = s->sh, c->sw = s->sw, c->ph = s->ph, c->pw = s->pw;
		c->w = net->w + woff[i];
		c->b = net->b + boff[i];
		float *bn = l2_malloc(4 * (size_t)s->cout * sizeof(float));
		char name[96];
		int64_t wshape[4] = {s->cout, s->cin, s->kh, s->kw}, vshape[1] = {s->cout};
		snprintf(name, sizeof name, "%.47s.conv.weight", s->name);
		get(ctx, name, 4, wshape, c->w);
		for (int k = 0; k < 4; k++) {
			snprintf(name, sizeof name, "%.47s.%s", s->name, bn_suffix[k + 1]);
			get(ctx, name, 1, vshape, bn + (size_t)k * s->cout);
		}
		l2_conv_fold_bn(c, bn, bn + s->cout, bn + 2 * s->cout, bn + 3 * s->cout, L2_INCEPTION_BN_EPS);
		free(bn);
	}
	for (int i = 0; i < nspecs; i++)
		if (block_kind[i]) make_head(net, i);
	return net;
}

L2Inception *l2_inception_random(uint64_t seed) { return l2_inception_load(random_get, &seed); }

void l2_inception_free(L2Inception *net)
{
	if (!net) return;
	free(net->w);
	free(net->b);
	free(net);
	l2_inception_thread_cleanup();
}

int l2_inception_dims_ok(int dims) { return dims == 64 || dims == 192 || dims == 768 || dims == 2048; }

/* ---- forward ------------------------------------------------------------------------ */

/* A (C, B, H, W) activation; base is its allocation (NULL for a view into
 * another activation), n the allocation's size in bytes. */
typedef struct {
	float *d, *base;
	size_t n;
	int c, b, h, w;
} Act;

static size_t plane(const Act *a) { return (size_t)a->b * a->h * a->w; }

/* Activation buffers are kept per thread and reused by exact size: every
 * forward pass of a batch asks for the same sizes again, and fresh memory
 * would cost a page fault per 4 KiB each time. */
enum { CACHE_SLOTS = 48 };
static __thread struct { float *p; size_t n; } cache[CACHE_SLOTS];

/* c channels, after `prefix` channels of room for a block's head rows */
static Act act_new_prefixed(int prefix, int c, int b, int h, int w)
{
	size_t n = l2_mul_size(l2_mul_size((size_t)(prefix + c) * b, (size_t)h * w), sizeof(float));
	Act a = {NULL, NULL, n, c, b, h, w};
	for (int i = 0; i < CACHE_SLOTS && !a.base; i++)
		if (cache[i].p && cache[i].n == n) {
			a.base = cache[i].p;
			cache[i].p = NULL;
		}
	if (!a.base) a.base = l2_conv_alloc(n);
	a.d = a.base + (size_t)prefix * b * h * w;
	return a;
}

static Act act_new(int c, int b, int h, int w) { return act_new_prefixed(0, c, b, h, w); }

/* channels [c0, c0 + c) of a */
static Act view(const Act *a, int c0, int c)
{
	return (Act){a->d + (size_t)c0 * plane(a), NULL, 0, c, a->b, a->h, a->w};
}

static void act_free(Act *a)
{
	for (int i = 0; i < CACHE_SLOTS && a->base; i++)
		if (!cache[i].p) {
			cache[i].p = a->base;
			cache[i].n = a->n;
			a->base = NULL;
		}
	free(a->base);
	a->base = a->d = NULL;
}

void l2_inception_thread_cleanup(void)
{
	for (int i = 0; i < CACHE_SLOTS; i++) {
		free(cache[i].p);
		cache[i].p = NULL;
	}
	l2_conv_scratch_free();
}

/* conv i on x into a fresh activation */
static Act conv(const L2Inception *net, int i, const Act *x)
{
	const L2Conv *c = &net->conv[i];
	Act y = act_new(c->cout, x->b, l2_conv_out_size(x->h, c->kh, c->sh, c->ph), l2_conv_out_size(x->w, c->kw, c->sw, c->pw));
	l2_conv2d(c, x->d, x->b, x->h, x->w, y.d, 1);
	return y;
}

/* conv i on x into channels [c0, ...) of out */
static void conv_into(const L2Inception *net, int i, const Act *x, Act *out, int c0)
{
	l2_conv2d(&net->conv[i], x->d, x->b, x->h, x->w, out->d + (size_t)c0 * plane(out), 1);
}

/* conv i, then free the input */
static Act conv_consume(const L2Inception *net, int i, Act *x)
{
	Act y = conv(net, i, x);
	act_free(x);
	return y;
}

static Act maxpool(Act *x, int k, int s, int p)
{
	Act y = act_new(x->c, x->b, l2_conv_out_size(x->h, k, s, p), l2_conv_out_size(x->w, k, s, p));
	l2_maxpool2d(x->d, (size_t)x->c * x->b, x->h, x->w, k, s, p, y.d);
	return y;
}

/* The output of the block at i0 (cout channels, x's size) and, in *hd, the
 * rows of its head GEMM: the last head_into of them are the output's first
 * channels, the others sit in the room before them. */
static Act head(const L2Inception *net, int i0, const Act *x, int cout, Act *hd)
{
	const L2Conv *h = &net->head[i0];
	int pre = h->cout - net->head_into[i0];
	Act out = act_new_prefixed(pre, cout, x->b, x->h, x->w);
	*hd = (Act){out.d - (size_t)pre * plane(&out), NULL, 0, h->cout, x->b, x->h, x->w};
	l2_conv2d_rows(h, x->d, x->b, x->h, x->w, hd->d, net->head_pool[i0]);
	return out;
}

/* The avg-pool branch: 3x3 stride-1 average (padding not counted) of its
 * conv's output t, then ReLU, into channels [c0, ...) of out. */
static void pool_relu_into(const Act *t, Act *out, int c0)
{
	float *y = out->d + (size_t)c0 * plane(out);
	size_t n = (size_t)t->c * plane(t);
	l2_avgpool2d(t->d, (size_t)t->c * t->b, t->h, t->w, 3, 1, 1, 0, y);
	for (size_t i = 0; i < n; i++) y[i] = y[i] > 0 ? y[i] : 0;
}

/* Mixed_5b-d: convs 1x1 | 5x5_1 5x5_2 | 3x3dbl_1 _2 _3 | pool */
static Act block_a(const L2Inception *net, int *ci, Act *x, int pf)
{
	int i0 = *ci;
	*ci += 7;
	Act hd, out = head(net, i0, x, 224 + pf, &hd); /* rows: pool pf | 5x5_1 48 | 3x3dbl_1 64 | 1x1 64 */
	Act t = view(&hd, pf, 48);
	conv_into(net, i0 + 2, &t, &out, 64);
	t = view(&hd, pf + 48, 64);
	Act u = conv(net, i0 + 4, &t);
	conv_into(net, i0 + 5, &u, &out, 128);
	act_free(&u);
	t = view(&hd, 0, pf);
	pool_relu_into(&t, &out, 224);
	act_free(x);
	return out;
}

/* Mixed_6a: 3x3 stride 2 | 3x3dbl_1 _2 _3 (stride 2) | max pool */
static Act block_b(const L2Inception *net, int *ci, Act *x)
{
	int i0 = *ci;
	*ci += 4;
	int h = l2_conv_out_size(x->h, 3, 2, 0), w = l2_conv_out_size(x->w, 3, 2, 0);
	Act out = act_new(384 + 96 + x->c, x->b, h, w);
	conv_into(net, i0, x, &out, 0);
	Act t = conv(net, i0 + 1, x);
	t = conv_consume(net, i0 + 2, &t);
	conv_into(net, i0 + 3, &t, &out, 384);
	act_free(&t);
	l2_maxpool2d(x->d, (size_t)x->c * x->b, x->h, x->w, 3, 2, 0, out.d + (size_t)480 * plane(&out));
	act_free(x);
	return out;
}

/* Mixed_6b-e: 1x1 | 7x7_1 _2 _3 | 7x7dbl_1 .. _5 | pool */
static Act block_c(const L2Inception *net, int *ci, Act *x)
{
	int i0 = *ci;
	*ci += 10;
	int c7 = net->conv[i0 + 1].cout;
	Act hd, out = head(net, i0, x, 768, &hd); /* rows: pool 192 | 7x7_1 c7 | 7x7dbl_1 c7 | 1x1 192 */
	Act t = view(&hd, 192, c7);
	Act u = conv(net, i0 + 2, &t);
	conv_into(net, i0 + 3, &u, &out, 192);
	act_free(&u);
	t = view(&hd, 192 + c7, c7);
	u = conv(net, i0 + 5, &t);
	for (int k = 6; k < 8; k++) u = conv_consume(net, i0 + k, &u);
	conv_into(net, i0 + 8, &u, &out, 384);
	act_free(&u);
	t = view(&hd, 0, 192);
	pool_relu_into(&t, &out, 576);
	act_free(x);
	return out;
}

/* Mixed_7a: 3x3_1 3x3_2 (stride 2) | 7x7x3_1 .. _4 (stride 2) | max pool */
static Act block_d(const L2Inception *net, int *ci, Act *x)
{
	int i0 = *ci;
	*ci += 6;
	int h = l2_conv_out_size(x->h, 3, 2, 0), w = l2_conv_out_size(x->w, 3, 2, 0);
	Act out = act_new(320 + 192 + x->c, x->b, h, w);
	/* the head's rows (3x3_1 192 | 7x7x3_1 192) are at the input's size */
	const L2Conv *hc = &net->head[i0];
	Act hd = act_new(hc->cout, x->b, x->h, x->w);
	l2_conv2d(hc, x->d, x->b, x->h, x->w, hd.d, 1);
	Act t = view(&hd, 0, 192);
	conv_into(net, i0 + 1, &t, &out, 0);
	t = view(&hd, 192, 192);
	Act u = conv(net, i0 + 3, &t);
	u = conv_consume(net, i0 + 4, &u);
	conv_into(net, i0 + 5, &u, &out, 320);
	act_free(&u);
	act_free(&hd);
	l2_maxpool2d(x->d, (size_t)x->c * x->b, x->h, x->w, 3, 2, 0, out.d + (size_t)512 * plane(&out));
	act_free(x);
	return out;
}

/* Mixed_7b, 7c: 1x1 | 3x3_1 (2a, 2b) | 3x3dbl_1 _2 (3a, 3b) | pool (avg in
 * 7b, max in 7c: max pooling does not commute with the conv, so 7c pools
 * its input first and its pool conv is not in the head) */
static Act block_e(const L2Inception *net, int *ci, Act *x, int max_pool)
{
	int i0 = *ci;
	*ci += 9;
	int p = max_pool ? 0 : 192;
	Act hd, out = head(net, i0, x, 2048, &hd); /* rows: [pool 192] | 3x3_1 384 | 3x3dbl_1 448 | 1x1 320 */
	Act t = view(&hd, p, 384);
	conv_into(net, i0 + 2, &t, &out, 320);
	conv_into(net, i0 + 3, &t, &out, 704);
	t = view(&hd, p + 384, 448);
	Act u = conv(net, i0 + 5, &t);
	conv_into(net, i0 + 6, &u, &out, 1088);
	conv_into(net, i0 + 7, &u, &out, 1472);
	act_free(&u);
	if (max_pool) {
		u = act_new(x->c, x->b, x->h, x->w);
		l2_maxpool2d(x->d, (size_t)x->c * x->b, x->h, x->w, 3, 1, 1, u.d);
		conv_into(net, i0 + 8, &u, &out, 1856);
		act_free(&u);
	} else {
		t = view(&hd, 0, 192);
		pool_relu_into(&t, &out, 1856);
	}
	act_free(x);
	return out;
}

static void finish(Act *x, float *feat)
{
	l2_global_avgpool(x->d, x->c, x->b, x->h, x->w, feat);
	act_free(x);
}

void l2_inception_forward(const L2Inception *net, const float *in, int B, int dims, float *feat)
{
	if (!l2_inception_dims_ok(dims)) l2_die("Inception features: dims must be 64, 192, 768 or 2048, not %d", dims);
	const int S = L2_INCEPTION_SIZE;
	size_t hw = (size_t)S * S;
	/* (B, 3, H, W) in [0, 1] -> (3, B, H, W) in [-1, 1], as 2 * x - 1 */
	Act x = act_new(3, B, S, S);
	for (int b = 0; b < B; b++)
		for (int c = 0; c < 3; c++) {
			const float *src = in + ((size_t)b * 3 + c) * hw;
			float *dst = x.d + ((size_t)c * B + b) * hw;
			for (size_t i = 0; i < hw; i++) dst[i] = 2.0f * src[i] - 1.0f;
		}
	int ci = 5;
	x = conv_consume(net, 0, &x); /* Conv2d_1a_3x3 */
	x = conv_consume(net, 1, &x); /* Conv2d_2a_3x3 */
	x = conv_consume(net, 2, &x); /* Conv2d_2b_3x3 */
	Act p = maxpool(&x, 3, 2, 0);
	act_free(&x);
	if (dims == 64) { finish(&p, feat); return; }
	x = conv_consume(net, 3, &p); /* Conv2d_3b_1x1 */
	x = conv_consume(net, 4, &x); /* Conv2d_4a_3x3 */
	p = maxpool(&x, 3, 2, 0);
	act_free(&x);
	if (dims == 192) { finish(&p, feat); return; }
	x = block_a(net, &ci, &p, 32);
	x = block_a(net, &ci, &x, 64);
	x = block_a(net, &ci, &x, 64);
	x = block_b(net, &ci, &x);
	for (int k = 0; k < 4; k++) x = block_c(net, &ci, &x);
	if (dims == 768) { finish(&x, feat); return; }
	x = block_d(net, &ci, &x);
	x = block_e(net, &ci, &x, 0);
	x = block_e(net, &ci, &x, 1);
	finish(&x, feat);
}

double l2_inception_flops(int dims)
{
	init_specs();
	/* input size of each convolution: every conv of a block reads the
	 * block's input size (stride-2 ones included) */
	static const int stem_in[5] = {299, 149, 147, 73, 71};
	double f = 0;
	for (int i = 0; i < nspecs; i++) {
		const ConvSpec *s = &specs[i];
		if ((dims == 64 && i >= 3) || (dims == 192 && i >= 5) || (dims == 768 && !strncmp(s->name, "Mixed_7", 7)))
			break;
		int hin = i < 5 ? stem_in[i]
			: !strncmp(s->name, "Mixed_5", 7) || !strncmp(s->name, "Mixed_6a", 8) ? 35
			: !strncmp(s->name, "Mixed_6", 7) || !strncmp(s->name, "Mixed_7a", 8) ? 17 : 8;
		int ho = l2_conv_out_size(hin, s->kh, s->sh, s->ph), wo = l2_conv_out_size(hin, s->kw, s->sw, s->pw);
		f += 2.0 * s->cout * s->cin * s->kh * s->kw * (double)ho * wo;
	}
	return f;
}

/* ---- opening a file, and features of images in memory ---------------------------- */

L2Inception *l2_inception_open(const char *path)
{
	L2Safetensors *st = l2_st_open(path);
	L2Inception *net = l2_inception_load(l2_inception_st_get, st);
	l2_st_close(st);
	return net;
}

enum { CHW_BATCH = 8 };

void l2_inception_features_chw(const L2Inception *net, const float *img, int n, int R, float *feat)
{
	const int S = L2_INCEPTION_SIZE;
	const size_t per = (size_t)3 * S * S, isz = (size_t)3 * R * R;
	float *x = l2_malloc_aligned(CHW_BATCH * per * sizeof(float)), *chw = l2_malloc(isz * sizeof(float));
	for (int i0 = 0; i0 < n; i0 += CHW_BATCH) {
		int b = n - i0 < CHW_BATCH ? n - i0 : CHW_BATCH;
		for (int k = 0; k < b; k++) {
			/* the 8-bit image a PNG of it would hold, then l2-fid's decode path */
			L2Image rgb;
			l2_image_from_chw(img + (size_t)(i0 + k) * isz, R, R, -1, 1, &rgb);
			l2_image_rgb_to_chw(&rgb, chw);
			l2_image_free(&rgb);
			if (R == S) memcpy(x + k * per, chw, per * sizeof(float));
			else l2_image_resize_bilinear_f32(chw, 3, R, R, x + k * per, S, S);
		}
		l2_inception_forward(net, x, b, 2048, feat + (size_t)i0 * 2048);
	}
	l2_inception_thread_cleanup();
	l2_free_aligned(x);
	free(chw);
}
