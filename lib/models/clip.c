/* clip.c — CLIP ViT image and text encoders (see clip.h): weight loading in
 * the OpenAI and Hugging Face layouts, the forward passes, and the
 * random-weight model writer the tests and benchmarks use. */
#include "models/clip.h"

#include "core/device.h"
#include "core/parallel.h"
#include "nn/ckpt.h"
#include "nn/nn.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "core/hash.h"
#include "core/util.h"
#include "core/vec.h"

#include <math.h>
#ifdef __F16C__
#include <immintrin.h>
#endif
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define LN_EPS 1e-5f


typedef struct {
	float *ln1_w, *ln1_b; /* (W) */
	float *qkv_w, *qkv_b; /* (3W, W), (3W): q | k | v */
	float *out_w, *out_b; /* (W, W), (W) */
	float *ln2_w, *ln2_b; /* (W) */
	float *fc_w, *fc_b;   /* (4W, W), (4W) */
	float *pr_w, *pr_b;   /* (W, 4W), (W) */
} Block;

typedef struct {
	int w, layers, heads, hidden;
	Block *blk;
	float *lnf_w, *lnf_b; /* ln_post / ln_final (W) */
	float *proj;          /* (E, W): Linear-weight form of proj / text_projection */
	float *pos;           /* (S or context, W) */
	/* vision */
	float *conv;          /* (W, 3*P*P) */
	float *cls;           /* (W) */
	float *lnp_w, *lnp_b; /* ln_pre (W) */
	/* text */
	float *tok;           /* (V, W) */
} Tower;

/* Activation buffers, kept between calls (a fresh 50-100 MB every batch
 * costs page faults): one per caller running at the same time. */
typedef struct Workspace {
	struct Workspace *next;
	float *buf;
	size_t cap; /* floats */
} Workspace;

typedef struct {
	pthread_mutex_t lock;
	Workspace *free; /* not in use */
} WsPool;

struct L2Clip {
	L2ClipConfig cfg;
	int layout;
	Tower vis, txt;
	WsPool *pool; /* mutable through const L2Clip * */
};

/* ---- loading ------------------------------------------------------------------- */

/* Conversions to float32 are queued while the tensors are found and
 * checked, then run in slices over l2_threads threads at the end of
 * l2_clip_load: loading is mostly page faults and f16 conversion. */
typedef struct {
	const L2Safetensors *st;
	const L2Tensor *t;
	size_t i0, n; /* elements [i0, i0 + n) of t */
	float *out;   /* for element i0 */
} Conv;

typedef struct {
	const L2Safetensors *st;
	int hf;
	char name[256];
	Conv *q;
	size_t nq, cap;
} Loader;

static const char *key(Loader *ld, const char *fmt, ...) L2_PRINTF(2, 3);
static const char *key(Loader *ld, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ld->name, sizeof ld->name, fmt, ap);
	va_end(ap);
	return ld->name;
}

/* l2_st_to_f32 for a slice; f16 with F16C's conversion instructions where
 * the compiler targets them (the same values as l2_half_to_float,
 * signalling NaNs aside) */
static void conv_slice(const Conv *c)
{
	if (c->t->dtype == L2_ST_F16) {
		const unsigned char *p = (const unsigned char *)c->t->data + 2 * c->i0;
		size_t i = 0;
#ifdef __F16C__
		for (; i + 8 <= c->n; i += 8)
			_mm256_storeu_ps(c->out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 2 * i))));
#endif
		for (; i < c->n; i++) c->out[i] = l2_half_to_float(l2_le16(p + 2 * i));
		return;
	}
	l2_st_to_f32(c->st, c->t, c->out); /* whole (only f16 is sliced) */
}

static void conv_range(void *p, size_t i0, size_t i1)
{
	const Conv *q = p;
	for (size_t i = i0; i < i1; i++) conv_slice(&q[i]);
}

/* the checked tensor NAME (as l2_st_load_f32 checks it: dies naming the
 * key) converted into out now or, with defer, at the end of loading */
static void load_into(Loader *ld, const char *name, int ndim, const int64_t *shape, float *out, int defer)
{
	const L2Tensor *t = l2_st_find(ld->st, name);
	int ok = t && t->ndim == ndim;
	for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
	if (!ok) { /* let the reader say what is wrong */
		l2_st_load_f32_into(ld->st, name, ndim, shape, out);
		return;
	}
	/* f16 in slices of 256k elements; other dtypes whole */
	size_t slice = t->dtype == L2_ST_F16 ? (size_t)1 << 18 : t->nelem;
	for (size_t i0 = 0; i0 < t->nelem || i0 == 0; i0 += slice) {
		size_t n = t->nelem - i0 < slice ? t->nelem - i0 : slice;
		Conv c = {ld->st, t, i0, n, out + i0};
		if (!defer) {
			conv_slice(&c);
		} else {
			if (ld->nq == ld->cap) ld->q = l2_realloc(ld->q, (ld->cap = ld->cap ? 2 * ld->cap : 256) * sizeof *ld->q);
			ld->q[ld->nq++] = c;
		}
		if (!slice) break;
	}
}

/* Weights of 4 MB and more go on 2 MB-aligned blocks the kernel may back
 * with huge pages: a tenth of the page faults when loading, fewer TLB misses
 * in the GEMMs.  free() releases either kind. */
static void *weight_alloc(size_t bytes)
{
	const size_t huge = (size_t)2 << 20;
	if (bytes < 2 * huge) return l2_malloc(bytes);
	void *p = NULL;
	size_t n = (bytes + huge - 1) / huge * huge;
	if (posix_memalign(&p, huge, n)) l2_die("out of memory (asked for %zu bytes)", n);
#ifdef MADV_HUGEPAGE
	madvise(p, n, MADV_HUGEPAGE);
#endif
	return p;
}

static float *loadn(Loader *ld, const char *name, int ndim, const int64_t *shape, int defer)
{
	size_t n = 1;
	for (int i = 0; i < ndim; i++) n = l2_mul_size(n, (size_t)shape[i]);
	float *out = weight_alloc(l2_mul_size(n ? n : 1, sizeof(float)));
	load_into(ld, name, ndim, shape, out, defer);
	return out;
}

static float *load1(Loader *ld, const char *name, int64_t a) { return loadn(ld, name, 1, (int64_t[1]){a}, 1); }

static float *load2(Loader *ld, const char *name, int64_t a, int64_t b)
{
	return loadn(ld, name, 2, (int64_t[2]){a, b}, 1);
}

static const L2Tensor *need(Loader *ld, const char *name, int ndim)
{
	const L2Tensor *t = l2_st_find(ld->st, name);
	if (!t) l2_die("%s: tensor %s: missing", l2_st_path(ld->st), name);
	if (t->ndim != ndim) l2_die("%s: tensor %s: expected %d dimensions, got %d", l2_st_path(ld->st), name, ndim, t->ndim);
	return t;
}

/* (a, b) -> (b, a) */
static float *transpose(float *m, int64_t a, int64_t b)
{
	float *t = l2_malloc(l2_mul_size((size_t)a * b, sizeof(float)));
	for (int64_t i = 0; i < a; i++)
		for (int64_t j = 0; j < b; j++) t[j * a + i] = m[i * b + j];
	free(m);
	return t;
}

static int count_layers(Loader *ld, const char *prefix)
{
	int n = 0;
	for (;; n++) {
		if (ld->hf) key(ld, "%s.encoder.layers.%d.layer_norm1.weight", prefix, n);
		else key(ld, "%stransformer.resblocks.%d.ln_1.weight", prefix, n);
		if (!l2_st_find(ld->st, ld->name)) break;
	}
	if (n == 0) l2_die("%s: tensor %s: missing (no transformer layers)", l2_st_path(ld->st), ld->name);
	return n;
}

/* prefix: "visual." / "" (OpenAI) or "vision_model" / "text_model" (HF) */
static void load_blocks(Loader *ld, Tower *t, const char *prefix)
{
	int64_t W = t->w, H = t->hidden;
	t->blk = l2_calloc((size_t)t->layers, sizeof(Block));
	for (int l = 0; l < t->layers; l++) {
		Block *b = &t->blk[l];
		if (!ld->hf) {
#define K(s) key(ld, "%stransformer.resblocks.%d." s, prefix, l)
			b->ln1_w = load1(ld, K("ln_1.weight"), W);
			b->ln1_b = load1(ld, K("ln_1.bias"), W);
			b->qkv_w = load2(ld, K("attn.in_proj_weight"), 3 * W, W);
			b->qkv_b = load1(ld, K("attn.in_proj_bias"), 3 * W);
			b->out_w = load2(ld, K("attn.out_proj.weight"), W, W);
			b->out_b = load1(ld, K("attn.out_proj.bias"), W);
			b->ln2_w = load1(ld, K("ln_2.weight"), W);
			b->ln2_b = load1(ld, K("ln_2.bias"), W);
			b->fc_w = load2(ld, K("mlp.c_fc.weight"), H, W);
			b->fc_b = load1(ld, K("mlp.c_fc.bias"), H);
			b->pr_w = load2(ld, K("mlp.c_proj.weight"), W, H);
			b->pr_b = load1(ld, K("mlp.c_proj.bias"), W);
#undef K
		} else {
#define K(s) key(ld, "%s.encoder.layers.%d." s, prefix, l)
			b->ln1_w = load1(ld, K("layer_norm1.weight"), W);
			b->ln1_b = load1(ld, K("layer_norm1.bias"), W);
			b->qkv_w = weight_alloc(l2_mul_size((size_t)(3 * W * W), sizeof(float)));
			b->qkv_b = l2_malloc((size_t)(3 * W) * sizeof(float));
			int64_t s2[2] = {W, W}, s1[1] = {W};
			const char *qkv[3] = {"q", "k", "v"};
			for (int i = 0; i < 3; i++) {
				key(ld, "%s.encoder.layers.%d.self_attn.%s_proj.weight", prefix, l, qkv[i]);
				load_into(ld, ld->name, 2, s2, b->qkv_w + i * W * W, 1);
				key(ld, "%s.encoder.layers.%d.self_attn.%s_proj.bias", prefix, l, qkv[i]);
				load_into(ld, ld->name, 1, s1, b->qkv_b + i * W, 1);
			}
			b->out_w = load2(ld, K("self_attn.out_proj.weight"), W, W);
			b->out_b = load1(ld, K("self_attn.out_proj.bias"), W);
			b->ln2_w = load1(ld, K("layer_norm2.weight"), W);
			b->ln2_b = load1(ld, K("layer_norm2.bias"), W);
			b->fc_w = load2(ld, K("mlp.fc1.weight"), H, W);
			b->fc_b = load1(ld, K("mlp.fc1.bias"), H);
			b->pr_w = load2(ld, K("mlp.fc2.weight"), W, H);
			b->pr_b = load1(ld, K("mlp.fc2.bias"), W);
#undef K
		}
	}
}

static int heads_for(int w) { return w / 64 > 0 ? w / 64 : 1; }

/* The MLP width comes from the first layer's fc weight: 4W in every CLIP. */
static int hidden_width(Loader *ld, const char *prefix)
{
	if (ld->hf) key(ld, "%s.encoder.layers.0.mlp.fc1.weight", prefix);
	else key(ld, "%stransformer.resblocks.0.mlp.c_fc.weight", prefix);
	return (int)need(ld, ld->name, 2)->shape[0];
}

static void load_vision(Loader *ld, L2Clip *m)
{
	Tower *t = &m->vis;
	const char *path = l2_st_path(ld->st);
	const char *pfx = ld->hf ? "vision_model" : "visual.";
	const L2Tensor *conv = need(ld, ld->hf ? "vision_model.embeddings.patch_embedding.weight" : "visual.conv1.weight", 4);
	int64_t W = conv->shape[0], P = conv->shape[2];
	if (conv->shape[1] != 3 || conv->shape[3] != P || P < 1 || W < 1)
		l2_die("%s: tensor %s: expected shape (width, 3, patch, patch), got (%lld, %lld, %lld, %lld)", path, conv->name,
		       (long long)conv->shape[0], (long long)conv->shape[1], (long long)conv->shape[2], (long long)conv->shape[3]);
	const L2Tensor *pos = need(ld, ld->hf ? "vision_model.embeddings.position_embedding.weight" : "visual.positional_embedding", 2);
	int64_t S = pos->shape[0];
	int64_t G = (int64_t)llround(sqrt((double)(S - 1)));
	if (S < 2 || G * G != S - 1)
		l2_die("%s: tensor %s: %lld positions is not 1 + a square number of patches", path, pos->name, (long long)S);
	t->w = (int)W;
	t->heads = heads_for(t->w);
	t->layers = count_layers(ld, pfx);
	t->hidden = hidden_width(ld, pfx);
	const L2Tensor *proj = need(ld, ld->hf ? "visual_projection.weight" : "visual.proj", 2);
	int64_t E = ld->hf ? proj->shape[0] : proj->shape[1];
	t->conv = loadn(ld, conv->name, 4, (int64_t[4]){W, 3, P, P}, 1);
	t->pos = load2(ld, pos->name, S, W);
	if (ld->hf) {
		t->cls = load1(ld, "vision_model.embeddings.class_embedding", W);
		t->lnp_w = load1(ld, "vision_model.pre_layrnorm.weight", W);
		t->lnp_b = load1(ld, "vision_model.pre_layrnorm.bias", W);
		t->lnf_w = load1(ld, "vision_model.post_layernorm.weight", W);
		t->lnf_b = load1(ld, "vision_model.post_layernorm.bias", W);
		t->proj = load2(ld, "visual_projection.weight", E, W);
	} else {
		t->cls = load1(ld, "visual.class_embedding", W);
		t->lnp_w = load1(ld, "visual.ln_pre.weight", W);
		t->lnp_b = load1(ld, "visual.ln_pre.bias", W);
		t->lnf_w = load1(ld, "visual.ln_post.weight", W);
		t->lnf_b = load1(ld, "visual.ln_post.bias", W);
		t->proj = transpose(loadn(ld, "visual.proj", 2, (int64_t[2]){W, E}, 0), W, E);
	}
	load_blocks(ld, t, pfx);
	m->cfg.width = t->w;
	m->cfg.layers = t->layers;
	m->cfg.heads = t->heads;
	m->cfg.patch = (int)P;
	m->cfg.res = (int)(G * P);
	m->cfg.embed = (int)E;
}

static void load_text(Loader *ld, L2Clip *m)
{
	Tower *t = &m->txt;
	const char *pfx = ld->hf ? "text_model" : "";
	const L2Tensor *tok = need(ld, ld->hf ? "text_model.embeddings.token_embedding.weight" : "token_embedding.weight", 2);
	/* the width from the final layer norm, whose one dimension cannot be
	 * confused: a token embedding of the wrong shape is then named as such */
	const L2Tensor *lnf = need(ld, ld->hf ? "text_model.final_layer_norm.weight" : "ln_final.weight", 1);
	int64_t V = tok->shape[0], W = lnf->shape[0];
	if (tok->shape[1] != W)
		l2_die("%s: tensor %s has shape (%lld, %lld); expected (vocabulary, %lld) for the text width %lld of %s%s",
		       l2_st_path(ld->st), tok->name, (long long)tok->shape[0], (long long)tok->shape[1], (long long)W,
		       (long long)W, lnf->name, tok->shape[0] == W ? " (transposed?)" : "");
	const L2Tensor *pos = need(ld, ld->hf ? "text_model.embeddings.position_embedding.weight" : "positional_embedding", 2);
	int64_t C = pos->shape[0];
	if (V < 3 || W < 1 || C < 2)
		l2_die("%s: tensor %s: implausible shape (%lld, %lld)", l2_st_path(ld->st), tok->name, (long long)V, (long long)W);
	t->w = (int)W;
	t->heads = heads_for(t->w);
	t->layers = count_layers(ld, pfx);
	t->hidden = hidden_width(ld, pfx);
	const L2Tensor *proj = need(ld, ld->hf ? "text_projection.weight" : "text_projection", 2);
	int64_t E = ld->hf ? proj->shape[0] : proj->shape[1];
	t->tok = load2(ld, tok->name, V, W);
	t->pos = load2(ld, pos->name, C, W);
	if (ld->hf) {
		t->lnf_w = load1(ld, "text_model.final_layer_norm.weight", W);
		t->lnf_b = load1(ld, "text_model.final_layer_norm.bias", W);
		t->proj = load2(ld, "text_projection.weight", E, W);
	} else {
		t->lnf_w = load1(ld, "ln_final.weight", W);
		t->lnf_b = load1(ld, "ln_final.bias", W);
		t->proj = transpose(loadn(ld, "text_projection", 2, (int64_t[2]){W, E}, 0), W, E);
	}
	load_blocks(ld, t, pfx);
	m->cfg.twidth = t->w;
	m->cfg.tlayers = t->layers;
	m->cfg.theads = t->heads;
	m->cfg.context = (int)C;
	m->cfg.vocab = (int)V;
	m->cfg.tembed = (int)E;
}

L2Clip *l2_clip_load(const char *path, int towers)
{
	L2Safetensors *st = l2_st_open(path);
	/* l2-train-clip's files carry a checksum: one flipped bit in a
	 * projection would otherwise give plausible-looking wrong features */
	l2_ckpt_verify(st, path);
	Loader ld = {.st = st};
	if (l2_st_find(st, "visual.conv1.weight") || l2_st_find(st, "token_embedding.weight")) ld.hf = 0;
	else if (l2_st_find(st, "vision_model.embeddings.patch_embedding.weight") ||
		 l2_st_find(st, "text_model.embeddings.token_embedding.weight"))
		ld.hf = 1;
	else
		l2_die("%s: not a CLIP checkpoint (neither visual.conv1.weight nor "
		       "vision_model.embeddings.patch_embedding.weight is there)", path);
	L2Clip *m = l2_calloc(1, sizeof *m);
	m->pool = l2_calloc(1, sizeof *m->pool);
	pthread_mutex_init(&m->pool->lock, NULL);
	m->layout = ld.hf ? L2_CLIP_LAYOUT_HF : L2_CLIP_LAYOUT_OPENAI;
	if (towers & L2_CLIP_VISION) load_vision(&ld, m);
	if (towers & L2_CLIP_TEXT) load_text(&ld, m);
	l2_parallel_for(ld.nq, 4, conv_range, ld.q);
	free(ld.q);
	l2_st_close(st);
	return m;
}

static void free_tower(Tower *t)
{
	for (int l = 0; t->blk && l < t->layers; l++) {
		Block *b = &t->blk[l];
		float *p[] = {b->ln1_w, b->ln1_b, b->qkv_w, b->qkv_b, b->out_w, b->out_b,
			      b->ln2_w, b->ln2_b, b->fc_w, b->fc_b, b->pr_w, b->pr_b};
		for (size_t i = 0; i < sizeof p / sizeof *p; i++) free(p[i]);
	}
	free(t->blk);
	float *p[] = {t->lnf_w, t->lnf_b, t->proj, t->pos, t->conv, t->cls, t->lnp_w, t->lnp_b, t->tok};
	for (size_t i = 0; i < sizeof p / sizeof *p; i++) free(p[i]);
}

void l2_clip_free(L2Clip *m)
{
	if (!m) return;
	free_tower(&m->vis);
	free_tower(&m->txt);
	for (Workspace *w = m->pool->free, *nx; w; w = nx) {
		nx = w->next;
		l2_free_aligned(w->buf);
		free(w);
	}
	pthread_mutex_destroy(&m->pool->lock);
	free(m->pool);
	free(m);
}

const L2ClipConfig *l2_clip_config(const L2Clip *m) { return &m->cfg; }
int l2_clip_layout(const L2Clip *m) { return m->layout; }

/* ---- forward ------------------------------------------------------------------- */

/* Two ways to run a forward pass: `par` splits the element-wise kernels over
 * l2_threads threads and lets OpenBLAS use its threads (one batch, all
 * cores: texts, single images); otherwise everything runs on the calling
 * thread, for callers that give each thread its own images with OpenBLAS on
 * one thread (no spinning BLAS threads, no serial gaps between GEMMs). */
static void run(int par, size_t n, size_t min_chunk, L2ParallelFn fn, void *ctx)
{
	if (par) l2_parallel_for(n, min_chunk, fn, ctx);
	else if (n) fn(ctx, 0, n);
}

typedef struct {
	const float *x, *g, *b;
	float *y;
	int d;
} LnCtx;

static void ln_range(void *p, size_t i0, size_t i1)
{
	const LnCtx *c = p;
	l2_nn_layer_norm_serial(c->x + i0 * c->d, (int)(i1 - i0), c->d, c->g, c->b, LN_EPS, c->y + i0 * c->d);
}

static void layer_norm(int par, const float *x, int n, int d, const float *g, const float *b, float *y)
{
	LnCtx c = {x, g, b, y, d};
	run(par, (size_t)n, 16, ln_range, &c);
}

static void gelu_range(void *p, size_t i0, size_t i1) { l2_nn_quick_gelu_serial((float *)p + i0, i1 - i0); }

typedef struct {
	const float *qkv;
	float *out;
	int s, d, heads, causal;
} AttCtx;

static void att_range(void *p, size_t i0, size_t i1)
{
	const AttCtx *c = p;
	l2_nn_attention_range(c->qkv, c->s, c->d, c->heads, c->causal, c->out, i0, i1);
}

/* a workspace of at least n floats from the pool (or a new one) */
static Workspace *ws_get(const L2Clip *m, size_t n)
{
	pthread_mutex_lock(&m->pool->lock);
	Workspace *w = m->pool->free;
	if (w) m->pool->free = w->next;
	pthread_mutex_unlock(&m->pool->lock);
	if (!w) w = l2_calloc(1, sizeof *w);
	if (w->cap < n) {
		l2_free_aligned(w->buf);
		w->buf = l2_malloc_aligned(l2_mul_size(n, sizeof(float)));
		w->cap = n;
	}
	return w;
}

static void ws_put(const L2Clip *m, Workspace *w)
{
	pthread_mutex_lock(&m->pool->lock);
	w->next = m->pool->free;
	m->pool->free = w;
	pthread_mutex_unlock(&m->pool->lock);
}

typedef struct {
	float *h, *qkv, *att, *mlp; /* (T, W), (T, 3W), (T, W), (T, hidden) */
} Work;

/* floats Work needs for T tokens; each buffer starts on a 64-byte line */
static size_t work_size(size_t T, const Tower *t)
{
	size_t r = 16;
	return (T * t->w + r) * 5 + T * (size_t)t->hidden + r;
}

/* carve Work out of p; returns the first float after it */
static float *work_carve(Work *k, float *p, size_t T, const Tower *t)
{
	float **b[4] = {&k->h, &k->qkv, &k->att, &k->mlp};
	size_t n[4] = {T * t->w, T * 3 * t->w, T * t->w, T * (size_t)t->hidden};
	for (int i = 0; i < 4; i++) {
		*b[i] = p;
		p += (n[i] + 15) & ~(size_t)15;
	}
	return p;
}

/* x (nb*s, W) through every residual block. */
static void transformer(const Tower *t, float *x, int nb, int s, int causal, Work *k, int par)
{
	int W = t->w, H = t->hidden, T = nb * s;
	AttCtx ac = {k->qkv, k->att, s, W, t->heads, causal};
	for (int l = 0; l < t->layers; l++) {
		const Block *b = &t->blk[l];
		layer_norm(par, x, T, W, b->ln1_w, b->ln1_b, k->h);
		l2_nn_linear(k->h, W, T, W, b->qkv_w, b->qkv_b, 3 * W, k->qkv, 3 * (size_t)W);
		run(par, (size_t)nb * t->heads, 1, att_range, &ac);
		l2_nn_linear_add(k->att, T, W, b->out_w, b->out_b, W, x);
		layer_norm(par, x, T, W, b->ln2_w, b->ln2_b, k->h);
		l2_nn_linear(k->h, W, T, W, b->fc_w, b->fc_b, H, k->mlp, H);
		run(par, (size_t)T * H, 16384, gelu_range, k->mlp);
		l2_nn_linear_add(k->mlp, T, H, b->pr_w, b->pr_b, W, x);
	}
}

/* final layer norm on the pooled rows, then the projection */
static void pool_project(const Tower *t, const float *x, const int *rows, int n, int embed, float *out, int par)
{
	int W = t->w;
	float *p = l2_malloc(l2_mul_size((size_t)n * W, sizeof(float)));
	for (int i = 0; i < n; i++) memcpy(p + (size_t)i * W, x + (size_t)rows[i] * W, (size_t)W * sizeof(float));
	layer_norm(par, p, n, W, t->lnf_w, t->lnf_b, p);
	l2_nn_linear(p, W, n, W, t->proj, NULL, embed, out, embed);
	free(p);
}

static void encode_images(const L2Clip *m, const float *px, int n, float *out, int par)
{
	const Tower *t = &m->vis;
	if (n <= 0) return;
	int W = t->w, P = m->cfg.patch, R = m->cfg.res, G = R / P, S = G * G + 1, K = 3 * P * P;
	size_t T = (size_t)n * S, np = (size_t)n * G * G;
	size_t need = l2_mul_size(T + 16, (size_t)W) + work_size(T, t) + l2_mul_size(np + 16, (size_t)K + W);
	Workspace *ws = ws_get(m, need);
	Work k;
	float *x = ws->buf, *col = work_carve(&k, x + (((size_t)T * W + 15) & ~(size_t)15), T, t);
	float *pe = col + ((np * K + 15) & ~(size_t)15);
	/* patch embedding: im2col (n*G*G, 3*P*P) in conv1's (c, ky, kx) order */
	for (int b = 0; b < n; b++)
		for (int gy = 0; gy < G; gy++)
			for (int gx = 0; gx < G; gx++) {
				float *r = col + ((size_t)b * G * G + (size_t)gy * G + gx) * K;
				for (int c = 0; c < 3; c++)
					for (int ky = 0; ky < P; ky++)
						memcpy(r + (c * P + ky) * P,
						       px + (((size_t)b * 3 + c) * R + (size_t)gy * P + ky) * R + (size_t)gx * P,
						       (size_t)P * sizeof(float));
			}
	l2_nn_linear(col, K, (int)np, K, t->conv, NULL, W, pe, W);
	for (int b = 0; b < n; b++) {
		float *xb = x + (size_t)b * S * W;
		for (int j = 0; j < W; j++) xb[j] = t->cls[j] + t->pos[j];
		for (int s = 1; s < S; s++) {
			const float *e = pe + ((size_t)b * G * G + s - 1) * W;
			for (int j = 0; j < W; j++) xb[(size_t)s * W + j] = e[j] + t->pos[(size_t)s * W + j];
		}
	}
	layer_norm(par, x, (int)T, W, t->lnp_w, t->lnp_b, x);
	transformer(t, x, n, S, 0, &k, par);
	int *rows = l2_malloc((size_t)n * sizeof(int));
	for (int b = 0; b < n; b++) rows[b] = b * S;
	pool_project(t, x, rows, n, m->cfg.embed, out, par);
	free(rows);
	ws_put(m, ws);
}

void l2_clip_encode_images_serial(const L2Clip *m, const float *px, int n, float *out)
{
	if (!m->vis.w) l2_die("CLIP: the vision tower is not loaded");
	encode_images(m, px, n, out, 0);
}

typedef struct {
	const L2Clip *m;
	const float *px;
	float *out;
	int n, nt;
} Parts;

/* images [n * part / nt, n * (part + 1) / nt) on this thread */
static void part_main(void *p, int part)
{
	const Parts *c = p;
	int i0 = (int)((long)c->n * part / c->nt), i1 = (int)((long)c->n * (part + 1) / c->nt);
	size_t sz = (size_t)3 * c->m->cfg.res * c->m->cfg.res;
	encode_images(c->m, c->px + (size_t)i0 * sz, i1 - i0, c->out + (size_t)i0 * c->m->cfg.embed, 0);
}

void l2_clip_encode_images(const L2Clip *m, const float *px, int n, float *out)
{
	if (!m->vis.w) l2_die("CLIP: the vision tower is not loaded");
	if (n <= 0) return;
	int nt = l2_threads < n ? l2_threads : n;
	if (nt > 64) nt = 64;
	if (nt <= 1 || l2_device == L2_DEVICE_CUDA) {
		encode_images(m, px, n, out, 1);
		return;
	}
	/* images split over the threads, each with single-threaded BLAS */
	Parts parts = {.m = m, .px = px, .out = out, .n = n, .nt = nt};
	l2_parallel_workers(nt, part_main, &parts);
}

void l2_clip_encode_generated(const L2Clip *m, const float *img, int n, int R, float *out)
{
	int cr = m->cfg.res, E = m->cfg.embed, chunk = 8 * (l2_threads > 0 ? l2_threads : 1);
	size_t pl = (size_t)cr * cr, isz = (size_t)3 * R * R;
	float *px = l2_malloc(l2_mul_size((size_t)chunk, 3 * pl * sizeof(float))), *t = l2_malloc(isz * sizeof(float));
	for (int i0 = 0; i0 < n; i0 += chunk) {
		int nb = n - i0 < chunk ? n - i0 : chunk;
		for (int b = 0; b < nb; b++) {
			const float *src = img + (size_t)(i0 + b) * isz;
			for (size_t k = 0; k < isz; k++) t[k] = (src[k] + 1) / 2;
			float *p = px + (size_t)b * 3 * pl;
			l2_image_resize_bilinear_f32(t, 3, R, R, p, cr, cr);
			for (int ch = 0; ch < 3; ch++)
				for (size_t k = 0; k < pl; k++) p[ch * pl + k] = (p[ch * pl + k] - L2_CLIP_MEAN[ch]) / L2_CLIP_STD[ch];
		}
		l2_clip_encode_images(m, px, nb, out + (size_t)i0 * E);
		l2_normalize_rows_exact(out + (size_t)i0 * E, (size_t)nb, (size_t)E);
	}
	free(px), free(t);
}

void l2_clip_encode_text(const L2Clip *m, const int32_t *tokens, int n, float *out)
{
	const Tower *t = &m->txt;
	if (!t->w) l2_die("CLIP: the text tower is not loaded");
	if (n <= 0) return;
	int W = t->w, C = m->cfg.context, V = m->cfg.vocab;
	int *eot = l2_malloc((size_t)n * sizeof(int));
	int L = 1;
	for (int b = 0; b < n; b++) {
		const int32_t *r = tokens + (size_t)b * C;
		int am = 0;
		for (int i = 0; i < C; i++) {
			if (r[i] < 0 || r[i] >= V) l2_die("CLIP: token id %d out of range for a vocabulary of %d", (int)r[i], V);
			if (r[i] > r[am]) am = i;
		}
		eot[b] = am;
		if (am + 1 > L) L = am + 1;
	}
	size_t T = (size_t)n * L;
	Workspace *ws = ws_get(m, l2_mul_size(T + 16, (size_t)W) + work_size(T, t));
	Work k;
	float *x = ws->buf;
	work_carve(&k, x + ((T * W + 15) & ~(size_t)15), T, t);
	for (int b = 0; b < n; b++)
		for (int i = 0; i < L; i++) {
			const float *e = t->tok + (size_t)tokens[(size_t)b * C + i] * W, *p = t->pos + (size_t)i * W;
			float *xr = x + ((size_t)b * L + i) * W;
			for (int j = 0; j < W; j++) xr[j] = e[j] + p[j];
		}
	transformer(t, x, n, L, 1, &k, 1);
	for (int b = 0; b < n; b++) eot[b] += b * L;
	pool_project(t, x, eot, n, m->cfg.tembed, out, 1);
	ws_put(m, ws);
	free(eot);
}

/* ---- random weights ---------------------------------------------------------------- */

void l2_clip_random_values(const char *name, uint64_t seed, int e, float *out, size_t n)
{
	uint64_t h = l2_fnv1a64_str(L2_FNV_INIT, name) ^ seed;
	double scale = ldexp(1.0, -e);
	for (size_t i = 0; i < n; i++) {
		uint64_t x = l2_mix64(h + (uint64_t)(i + 1) * L2_GOLDEN);
		if (e < 0) out[i] = (float)((768.0 + (double)(x >> 55)) / 1024.0);
		else out[i] = (float)(((double)(x >> 53) * 2.0 - 2047.0) / 2048.0 * scale);
	}
}

/* 2^-e with e = round(log2(sqrt(fan_in / 3))): uniform values of standard
 * deviation about 1/sqrt(fan_in), as PyTorch's default init. */
static int fan_exp(int fan_in) { return (int)floor(0.5 * log2(fan_in / 3.0) + 0.5); }

typedef struct {
	L2StWriter *w;
	int f16;
	uint64_t seed;
	void **bufs;
	int nbufs, cap;
} Gen;

static void *gen_keep(Gen *g, void *p)
{
	if (g->nbufs == g->cap) {
		g->cap = g->cap ? 2 * g->cap : 64;
		g->bufs = l2_realloc(g->bufs, (size_t)g->cap * sizeof(void *));
	}
	return g->bufs[g->nbufs++] = p;
}

static void gen_put(Gen *g, const char *name, int ndim, const int64_t *shape, const float *v)
{
	size_t n = 1;
	for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
	if (g->f16) {
		uint16_t *h = gen_keep(g, l2_malloc(n * sizeof(uint16_t) + 1));
		for (size_t i = 0; i < n; i++) h[i] = l2_float_to_half(v[i]);
		l2_st_writer_add(g->w, name, L2_ST_F16, ndim, shape, h);
	} else {
		l2_st_writer_add(g->w, name, L2_ST_F32, ndim, shape, v);
	}
}

/* values of OpenAI tensor `oname` (kept alive until the write) */
static float *gen_vals(Gen *g, const char *oname, int e, size_t n)
{
	float *v = gen_keep(g, l2_malloc(n * sizeof(float) + 1));
	l2_clip_random_values(oname, g->seed, e, v, n);
	return v;
}

static float *transposed(Gen *g, const float *m, int64_t a, int64_t b)
{
	float *t = gen_keep(g, l2_malloc((size_t)(a * b) * sizeof(float) + 1));
	for (int64_t i = 0; i < a; i++)
		for (int64_t j = 0; j < b; j++) t[j * a + i] = m[i * b + j];
	return t;
}

static void gen_blocks(Gen *g, int hf, const char *opfx, const char *hpfx, int W, int layers)
{
	char on[256], hn[256];
	int64_t Wd = W, H = 4 * (int64_t)W;
	for (int l = 0; l < layers; l++) {
		struct { const char *o, *h; int rows, cols, e; } t[] = {
			{"ln_1.weight", "layer_norm1.weight", W, 0, -1},
			{"ln_1.bias", "layer_norm1.bias", W, 0, 4},
			{"attn.in_proj_weight", NULL, 3 * W, W, fan_exp(W)},
			{"attn.in_proj_bias", NULL, 3 * W, 0, 5},
			{"attn.out_proj.weight", "self_attn.out_proj.weight", W, W, fan_exp(W)},
			{"attn.out_proj.bias", "self_attn.out_proj.bias", W, 0, 5},
			{"ln_2.weight", "layer_norm2.weight", W, 0, -1},
			{"ln_2.bias", "layer_norm2.bias", W, 0, 4},
			{"mlp.c_fc.weight", "mlp.fc1.weight", (int)H, W, fan_exp(W)},
			{"mlp.c_fc.bias", "mlp.fc1.bias", (int)H, 0, 5},
			{"mlp.c_proj.weight", "mlp.fc2.weight", W, (int)H, fan_exp((int)H)},
			{"mlp.c_proj.bias", "mlp.fc2.bias", W, 0, 5},
		};
		for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
			snprintf(on, sizeof on, "%stransformer.resblocks.%d.%s", opfx, l, t[i].o);
			size_t n = (size_t)t[i].rows * (t[i].cols ? t[i].cols : 1);
			float *v = gen_vals(g, on, t[i].e, n);
			int64_t shape[2] = {t[i].rows, t[i].cols};
			int nd = t[i].cols ? 2 : 1;
			if (!hf) {
				gen_put(g, on, nd, shape, v);
			} else if (t[i].h) {
				snprintf(hn, sizeof hn, "%s.encoder.layers.%d.%s", hpfx, l, t[i].h);
				gen_put(g, hn, nd, shape, v);
			} else { /* in_proj split into q, k, v */
				const char *nm[3] = {"q", "k", "v"};
				for (int j = 0; j < 3; j++) {
					snprintf(hn, sizeof hn, "%s.encoder.layers.%d.self_attn.%s_proj.%s", hpfx, l, nm[j],
						 nd == 2 ? "weight" : "bias");
					int64_t s2[2] = {Wd, Wd};
					gen_put(g, hn, nd, s2, v + (size_t)j * Wd * (nd == 2 ? Wd : 1));
				}
			}
		}
	}
}

void l2_clip_write_random(const char *path, const L2ClipConfig *c, int layout, int f16, uint64_t seed)
{
	Gen g = {.w = l2_st_writer_new(), .f16 = f16, .seed = seed};
	int hf = layout == L2_CLIP_LAYOUT_HF;
	if (c->width > 0) {
		int W = c->width, P = c->patch, G = c->res / c->patch, S = G * G + 1, E = c->embed;
		if (c->res % c->patch) l2_die("random CLIP: resolution %d is not a multiple of patch %d", c->res, P);
		int64_t sc[4] = {W, 3, P, P}, sp[2] = {S, W}, sw[1] = {W}, spr[2] = {W, E}, sprh[2] = {E, W};
		float *conv = gen_vals(&g, "visual.conv1.weight", fan_exp(3 * P * P), (size_t)W * 3 * P * P);
		float *cls = gen_vals(&g, "visual.class_embedding", fan_exp(W), (size_t)W);
		float *pos = gen_vals(&g, "visual.positional_embedding", fan_exp(W), (size_t)S * W);
		float *lpw = gen_vals(&g, "visual.ln_pre.weight", -1, (size_t)W);
		float *lpb = gen_vals(&g, "visual.ln_pre.bias", 4, (size_t)W);
		float *lqw = gen_vals(&g, "visual.ln_post.weight", -1, (size_t)W);
		float *lqb = gen_vals(&g, "visual.ln_post.bias", 4, (size_t)W);
		float *proj = gen_vals(&g, "visual.proj", fan_exp(W), (size_t)W * E);
		if (!hf) {
			gen_put(&g, "visual.class_embedding", 1, sw, cls);
			gen_put(&g, "visual.positional_embedding", 2, sp, pos);
			gen_put(&g, "visual.proj", 2, spr, proj);
			gen_put(&g, "visual.conv1.weight", 4, sc, conv);
			gen_put(&g, "visual.ln_pre.weight", 1, sw, lpw);
			gen_put(&g, "visual.ln_pre.bias", 1, sw, lpb);
			gen_blocks(&g, 0, "visual.", NULL, W, c->layers);
			gen_put(&g, "visual.ln_post.weight", 1, sw, lqw);
			gen_put(&g, "visual.ln_post.bias", 1, sw, lqb);
		} else {
			gen_put(&g, "vision_model.embeddings.class_embedding", 1, sw, cls);
			gen_put(&g, "vision_model.embeddings.patch_embedding.weight", 4, sc, conv);
			gen_put(&g, "vision_model.embeddings.position_embedding.weight", 2, sp, pos);
			int64_t *ids = gen_keep(&g, l2_malloc((size_t)S * sizeof(int64_t)));
			for (int i = 0; i < S; i++) ids[i] = i;
			int64_t sids[2] = {1, S};
			l2_st_writer_add(g.w, "vision_model.embeddings.position_ids", L2_ST_I64, 2, sids, ids);
			gen_put(&g, "vision_model.pre_layrnorm.weight", 1, sw, lpw);
			gen_put(&g, "vision_model.pre_layrnorm.bias", 1, sw, lpb);
			gen_blocks(&g, 1, "visual.", "vision_model", W, c->layers);
			gen_put(&g, "vision_model.post_layernorm.weight", 1, sw, lqw);
			gen_put(&g, "vision_model.post_layernorm.bias", 1, sw, lqb);
			gen_put(&g, "visual_projection.weight", 2, sprh, transposed(&g, proj, W, E));
		}
	}
	if (c->twidth > 0) {
		int W = c->twidth, C = c->context, V = c->vocab, E = c->tembed;
		int64_t st[2] = {V, W}, sp[2] = {C, W}, sw[1] = {W}, spr[2] = {W, E}, sprh[2] = {E, W};
		float *tok = gen_vals(&g, "token_embedding.weight", 4, (size_t)V * W);
		float *pos = gen_vals(&g, "positional_embedding", 5, (size_t)C * W);
		float *lfw = gen_vals(&g, "ln_final.weight", -1, (size_t)W);
		float *lfb = gen_vals(&g, "ln_final.bias", 4, (size_t)W);
		float *proj = gen_vals(&g, "text_projection", fan_exp(W), (size_t)W * E);
		if (!hf) {
			gen_put(&g, "positional_embedding", 2, sp, pos);
			gen_put(&g, "text_projection", 2, spr, proj);
			gen_put(&g, "token_embedding.weight", 2, st, tok);
			gen_blocks(&g, 0, "", NULL, W, c->tlayers);
			gen_put(&g, "ln_final.weight", 1, sw, lfw);
			gen_put(&g, "ln_final.bias", 1, sw, lfb);
		} else {
			gen_put(&g, "text_model.embeddings.token_embedding.weight", 2, st, tok);
			gen_put(&g, "text_model.embeddings.position_embedding.weight", 2, sp, pos);
			gen_blocks(&g, 1, "", "text_model", W, c->tlayers);
			gen_put(&g, "text_model.final_layer_norm.weight", 1, sw, lfw);
			gen_put(&g, "text_model.final_layer_norm.bias", 1, sw, lfb);
			gen_put(&g, "text_projection.weight", 2, sprh, transposed(&g, proj, W, E));
		}
	}
	float *ls = gen_keep(&g, l2_malloc(sizeof(float)));
	*ls = 4.625f; /* ~ log(1 / 0.07), exact in f16 */
	gen_put(&g, "logit_scale", 0, NULL, ls);
	l2_st_writer_meta(g.w, "format", "pt");
	l2_st_writer_meta(g.w, "l2", "random-weight CLIP (l2_clip_write_random)");
	l2_st_writer_write(g.w, path);
	l2_st_writer_free(g.w);
	for (int i = 0; i < g.nbufs; i++) free(g.bufs[i]);
	free(g.bufs);
}

L2Tokenizer *l2_clip_tokenizer(const L2Clip *m, const char *weights, const char *vocab_opt, char **pathP)
{
	char *path = l2_tok_find_vocab(vocab_opt, weights);
	L2Tokenizer *tok = l2_tok_load(path);
	if (m && l2_tok_vocab_size(tok) != m->cfg.vocab) {
		/* a model trained with its own vocabulary, found without it: say so */
		char *shipped = l2_tok_shipped_vocab();
		int fallback = shipped && !strcmp(shipped, path);
		free(shipped);
		l2_die("%s: vocabulary of %d tokens, but %s has %d token embeddings (%s)", path, l2_tok_vocab_size(tok),
		       weights, m->cfg.vocab,
		       fallback ? "no vocabulary beside the weights, so l2's own OpenAI one was tried: give --vocab"
				: "wrong vocabulary file?");
	}
	if (pathP) *pathP = path;
	else free(path);
	return tok;
}
