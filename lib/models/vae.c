/* vae.c — SD's KL autoencoder and TAESD on CPU (see vae.h): the parameter
 * walk that defines each architecture (vae_build, shared with the loader and
 * the random-weight writer in vae_weights.c), the forward passes, and their
 * FLOP counts.
 *
 * Activations are conv.h's (C, B, H, W); each image runs alone on one
 * thread with one-thread BLAS (run(), below).  The KL autoencoder's 3x3
 * convolutions are Winograd F(2x2, 3x3) (vae_prepare), the others im2col +
 * SGEMM; the group norms, adds and upsampling are nn/cnn_layers.h's.  Letters:
 * B images, C channels, L latent channels, H x W image size, h x w latent
 * size, N = h w pixels (attention). */
#include "models/vae_priv.h"

#include "nn/cnn_layers.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "core/util.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GN_EPS 1e-6
#define LOGVAR_MIN -30.0
#define LOGVAR_MAX 20.0

const char *l2_vae_kind_name(L2VaeKind kind) { return kind == L2_VAE_TAESD ? "taesd" : "kl"; }

L2VaeConfig l2_vae_default_config(L2VaeKind kind)
{
	L2VaeConfig c = {0};
	c.kind = kind;
	c.latent = 4;
	if (kind == L2_VAE_KL) {
		static const int ch[4] = {128, 256, 512, 512};
		c.levels = 4;
		memcpy(c.ch, ch, sizeof ch);
		c.layers = 2;
		c.groups = 32;
		c.scale = L2_VAE_KL_SCALE;
	} else {
		static const int eb[4] = {1, 3, 3, 3}, db[4] = {3, 3, 3, 1};
		c.levels = 4;
		c.ch[0] = 64;
		memcpy(c.enc_blocks, eb, sizeof eb);
		memcpy(c.dec_blocks, db, sizeof db);
		c.scale = 1.0;
	}
	return c;
}

const L2VaeConfig *l2_vae_config(const L2Vae *v) { return &v->cfg; }
int l2_vae_halves(const L2Vae *v) { return v->halves; }
int l2_vae_layout(const L2Vae *v) { return v->layout; }
const char *l2_vae_file(const L2Vae *v, int i) { return i >= 0 && i < v->nfiles ? v->path[i] : NULL; }
int l2_vae_factor(const L2Vae *v) { return 1 << (v->cfg.levels - 1); }

static void ws_free_all(L2Vae *v);

void vae_keep(L2Vae *v, void *p)
{
	if (v->nbufs == v->capbufs) v->bufs = l2_realloc(v->bufs, (v->capbufs = v->capbufs ? 2 * v->capbufs : 256) * sizeof *v->bufs);
	v->bufs[v->nbufs++] = p;
}

void l2_vae_free(L2Vae *v)
{
	if (!v) return;
	for (size_t i = 0; i < v->nbufs; i++) free(v->bufs[i]);
	free(v->bufs);
	free(v->enc.res), free(v->enc.resample), free(v->dec.res), free(v->dec.resample);
	free(v->tenc.l), free(v->tdec.l);
	for (int i = 0; i < v->nfiles; i++) free(v->path[i]);
	free(v->wino); /* the weights themselves are among bufs */
	ws_free_all(v);
	pthread_mutex_destroy(&v->ws_lock);
	pthread_mutex_destroy(&v->id_lock);
	free(v->identity);
	free(v);
	l2_vae_thread_cleanup();
}

/* ---- the parameter walk ------------------------------------------------------------ */

typedef struct {
	VaeVisitor *vv;
	char name[256];
} Walk;

static const char *nm(Walk *w, const char *fmt, ...) L2_PRINTF(2, 3);
static const char *nm(Walk *w, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(w->name, sizeof w->name, fmt, ap);
	va_end(ap);
	return w->name;
}

static cnnr *tensor(Walk *w, const char *name, int ndim, int64_t a, int64_t b, int64_t c, int64_t d, cnnr *dst)
{
	int64_t s[4] = {a, b, c, d};
	return w->vv->tensor(w->vv, name, ndim, s, dst);
}

/* conv PREFIX.weight (cout, cin, k, k) [+ PREFIX.bias (cout)] */
static void conv(Walk *w, L2Conv *c, int cin, int cout, int k, int stride, int pad, int bias, const char *prefix)
{
	char p[200];
	snprintf(p, sizeof p, "%s", prefix);
	*c = (L2Conv){cin, cout, k, k, stride, stride, pad, pad, NULL, NULL};
	c->w = tensor(w, nm(w, "%s.weight", p), 4, cout, cin, k, k, NULL);
	if (bias) c->b = tensor(w, nm(w, "%s.bias", p), 1, cout, 0, 0, 0, NULL);
}

static void norm(Walk *w, Norm *n, int c, const char *prefix)
{
	char p[200];
	snprintf(p, sizeof p, "%s", prefix);
	n->g = tensor(w, nm(w, "%s.weight", p), 1, c, 0, 0, 0, NULL);
	n->b = tensor(w, nm(w, "%s.bias", p), 1, c, 0, 0, 0, NULL);
}

static void res(Walk *w, Res *r, int cin, int cout, const char *prefix)
{
	char p[200], q[240];
	snprintf(p, sizeof p, "%s", prefix);
	snprintf(q, sizeof q, "%s.norm1", p), norm(w, &r->n1, cin, q);
	snprintf(q, sizeof q, "%s.conv1", p), conv(w, &r->c1, cin, cout, 3, 1, 1, 1, q);
	snprintf(q, sizeof q, "%s.norm2", p), norm(w, &r->n2, cout, q);
	snprintf(q, sizeof q, "%s.conv2", p), conv(w, &r->c2, cout, cout, 3, 1, 1, 1, q);
	r->has_sc = cin != cout;
	if (r->has_sc) snprintf(q, sizeof q, "%s.conv_shortcut", p), conv(w, &r->sc, cin, cout, 1, 1, 0, 1, q);
}

/* ENC_OR_DEC.mid_block.{resnets.0, attentions.0, resnets.1} */
static void mid(Walk *w, KlHalf *k, int c, const char *half)
{
	char p[200];
	snprintf(p, sizeof p, "%s.mid_block.resnets.0", half), res(w, &k->mid1, c, c, p);
	snprintf(p, sizeof p, "%s.mid_block.attentions.0.group_norm", half), norm(w, &k->attn.n, c, p);
	/* q, k, v stacked into one (3C, C) matrix: one GEMM for all three */
	size_t cc = (size_t)c * c;
	cnnr *wq = w->vv->alloc(w->vv, 3 * cc), *bq = w->vv->alloc(w->vv, 3 * (size_t)c);
	static const char *const qkv[3] = {"to_q", "to_k", "to_v"};
	for (int i = 0; i < 3; i++) {
		tensor(w, nm(w, "%s.mid_block.attentions.0.%s.weight", half, qkv[i]), 2, c, c, 0, 0, wq ? wq + i * cc : NULL);
		tensor(w, nm(w, "%s.mid_block.attentions.0.%s.bias", half, qkv[i]), 1, c, 0, 0, 0, bq ? bq + (size_t)i * c : NULL);
	}
	k->attn.qkv = (L2Conv){c, 3 * c, 1, 1, 1, 1, 0, 0, wq, bq};
	k->attn.proj = (L2Conv){c, c, 1, 1, 1, 1, 0, 0, NULL, NULL};
	k->attn.proj.w = tensor(w, nm(w, "%s.mid_block.attentions.0.to_out.0.weight", half), 2, c, c, 0, 0, NULL);
	k->attn.proj.b = tensor(w, nm(w, "%s.mid_block.attentions.0.to_out.0.bias", half), 1, c, 0, 0, 0, NULL);
	snprintf(p, sizeof p, "%s.mid_block.resnets.1", half), res(w, &k->mid2, c, c, p);
}

static void build_kl(L2Vae *v, int halves, Walk *w)
{
	const L2VaeConfig *c = &v->cfg;
	int n = c->levels, L = c->layers, lat = c->latent;
	char p[200];
	if (halves & L2_VAE_ENCODER) {
		KlHalf *k = &v->enc;
		w->vv->half = L2_VAE_ENCODER;
		free(k->res), free(k->resample);
		k->res = l2_calloc((size_t)n * L, sizeof(Res));
		k->resample = l2_calloc((size_t)n, sizeof(L2Conv));
		conv(w, &k->conv_in, 3, c->ch[0], 3, 1, 1, 1, "encoder.conv_in");
		int cin = c->ch[0];
		for (int i = 0; i < n; i++) {
			for (int j = 0; j < L; j++) {
				snprintf(p, sizeof p, "encoder.down_blocks.%d.resnets.%d", i, j);
				res(w, &k->res[i * L + j], j ? c->ch[i] : cin, c->ch[i], p);
			}
			cin = c->ch[i];
			if (i < n - 1) {
				snprintf(p, sizeof p, "encoder.down_blocks.%d.downsamplers.0.conv", i);
				conv(w, &k->resample[i], c->ch[i], c->ch[i], 3, 2, 0, 1, p); /* input padded (0, 1, 0, 1) */
			}
		}
		mid(w, k, c->ch[n - 1], "encoder");
		norm(w, &k->norm_out, c->ch[n - 1], "encoder.conv_norm_out");
		conv(w, &k->conv_out, c->ch[n - 1], 2 * lat, 3, 1, 1, 1, "encoder.conv_out");
		conv(w, &k->quant, 2 * lat, 2 * lat, 1, 1, 0, 1, "quant_conv");
	}
	if (halves & L2_VAE_DECODER) {
		KlHalf *k = &v->dec;
		w->vv->half = L2_VAE_DECODER;
		free(k->res), free(k->resample);
		k->res = l2_calloc((size_t)n * (L + 1), sizeof(Res));
		k->resample = l2_calloc((size_t)n, sizeof(L2Conv));
		conv(w, &k->quant, lat, lat, 1, 1, 0, 1, "post_quant_conv");
		conv(w, &k->conv_in, lat, c->ch[n - 1], 3, 1, 1, 1, "decoder.conv_in");
		mid(w, k, c->ch[n - 1], "decoder");
		int cin = c->ch[n - 1];
		for (int i = 0; i < n; i++) {
			int co = c->ch[n - 1 - i];
			for (int j = 0; j <= L; j++) {
				snprintf(p, sizeof p, "decoder.up_blocks.%d.resnets.%d", i, j);
				res(w, &k->res[i * (L + 1) + j], j ? co : cin, co, p);
			}
			cin = co;
			if (i < n - 1) {
				snprintf(p, sizeof p, "decoder.up_blocks.%d.upsamplers.0.conv", i);
				conv(w, &k->resample[i], co, co, 3, 1, 1, 1, p);
			}
		}
		norm(w, &k->norm_out, c->ch[0], "decoder.conv_norm_out");
		conv(w, &k->conv_out, c->ch[0], 3, 3, 1, 1, 1, "decoder.conv_out");
	}
}

static void tae_block(Walk *w, TaeLayer *t, int cin, int cout, const char *prefix)
{
	char p[240];
	t->type = T_BLOCK;
	for (int k = 0; k < 3; k++) {
		snprintf(p, sizeof p, "%s.conv.%d", prefix, 2 * k);
		conv(w, &t->bc[k], k ? cout : cin, cout, 3, 1, 1, 1, p);
	}
	t->has_skip = cin != cout;
	if (t->has_skip) snprintf(p, sizeof p, "%s.skip", prefix), conv(w, &t->skip, cin, cout, 1, 1, 0, 0, p);
}

static void build_taesd(L2Vae *v, int halves, Walk *w)
{
	const L2VaeConfig *c = &v->cfg;
	int W = c->ch[0], S = c->levels, lat = c->latent;
	char p[200];
	if (halves & L2_VAE_ENCODER) {
		TaeHalf *t = &v->tenc;
		w->vv->half = L2_VAE_ENCODER;
		int n = 2;
		for (int s = 0; s < S; s++) n += c->enc_blocks[s] + (s > 0);
		free(t->l);
		t->l = l2_calloc((size_t)n, sizeof(TaeLayer));
		t->n = 0;
		conv(w, &t->l[t->n].c, 3, W, 3, 1, 1, 1, "encoder.layers.0");
		t->l[t->n++].type = T_CONV;
		for (int s = 0; s < S; s++) {
			if (s > 0) {
				snprintf(p, sizeof p, "encoder.layers.%d", t->n);
				conv(w, &t->l[t->n].c, W, W, 3, 2, 1, 0, p);
				t->l[t->n++].type = T_CONV;
			}
			for (int b = 0; b < c->enc_blocks[s]; b++, t->n++) {
				snprintf(p, sizeof p, "encoder.layers.%d", t->n);
				tae_block(w, &t->l[t->n], W, W, p);
			}
		}
		snprintf(p, sizeof p, "encoder.layers.%d", t->n);
		conv(w, &t->l[t->n].c, W, lat, 3, 1, 1, 1, p);
		t->l[t->n++].type = T_CONV;
	}
	if (halves & L2_VAE_DECODER) {
		TaeHalf *t = &v->tdec;
		w->vv->half = L2_VAE_DECODER;
		int n = 3;
		for (int s = 0; s < S; s++) n += c->dec_blocks[s] + (s < S - 1 ? 2 : 0);
		free(t->l);
		t->l = l2_calloc((size_t)n, sizeof(TaeLayer));
		t->n = 0;
		conv(w, &t->l[t->n].c, lat, W, 3, 1, 1, 1, "decoder.layers.0");
		t->l[t->n++].type = T_CONV;
		t->l[t->n++].type = T_RELU;
		for (int s = 0; s < S; s++) {
			for (int b = 0; b < c->dec_blocks[s]; b++, t->n++) {
				snprintf(p, sizeof p, "decoder.layers.%d", t->n);
				tae_block(w, &t->l[t->n], W, W, p);
			}
			if (s < S - 1) {
				t->l[t->n++].type = T_UP;
				snprintf(p, sizeof p, "decoder.layers.%d", t->n);
				conv(w, &t->l[t->n].c, W, W, 3, 1, 1, 0, p);
				t->l[t->n++].type = T_CONV;
			}
		}
		snprintf(p, sizeof p, "decoder.layers.%d", t->n);
		conv(w, &t->l[t->n].c, W, 3, 3, 1, 1, 1, p);
		t->l[t->n++].type = T_CONV;
	}
}

void vae_build(L2Vae *v, int halves, VaeVisitor *vv)
{
	Walk w = {vv, {0}};
	if (v->cfg.kind == L2_VAE_KL) build_kl(v, halves, &w);
	else build_taesd(v, halves, &w);
}

/* ---- activations ---------------------------------------------------------------------- */

/* A (C, B, H, W) activation. */
typedef struct {
	cnnr *d;
	size_t n; /* allocation, bytes */
	int c, b, h, w;
} Act;

static size_t plane(const Act *a) { return (size_t)a->b * a->h * a->w; }
static size_t count(const Act *a) { return (size_t)a->c * plane(a); }

/* Activation buffers are reused by exact size: every image asks for the
 * same sizes again, and fresh memory costs a page fault per 4 KiB.  A
 * workspace belongs to one running thread at a time (cur_ws); the VAE keeps
 * them between calls. */
enum { CACHE_SLOTS = 24 };
typedef struct VaeWs {
	struct VaeWs *next;
	const L2Vae *v; /* whose workspace: conv_new finds its Winograd weights */
	struct {
		cnnr *p;
		size_t n;
	} slot[CACHE_SLOTS];
} VaeWs;

static __thread VaeWs *cur_ws;

static VaeWs *ws_take(const L2Vae *cv)
{
	L2Vae *v = (L2Vae *)cv; /* the pool is mutable behind a const VAE */
	pthread_mutex_lock(&v->ws_lock);
	VaeWs *w = v->ws_free;
	if (w) v->ws_free = w->next;
	pthread_mutex_unlock(&v->ws_lock);
	if (!w) w = l2_calloc(1, sizeof *w), w->v = v;
	return w;
}

static void ws_give(const L2Vae *cv, VaeWs *w)
{
	L2Vae *v = (L2Vae *)cv;
	pthread_mutex_lock(&v->ws_lock);
	w->next = v->ws_free;
	v->ws_free = w;
	pthread_mutex_unlock(&v->ws_lock);
}

static void ws_free_all(L2Vae *v)
{
	for (VaeWs *w = v->ws_free, *nx; w; w = nx) {
		nx = w->next;
		for (int i = 0; i < CACHE_SLOTS; i++) free(w->slot[i].p);
		free(w);
	}
	v->ws_free = NULL;
}

static Act act_new(int c, int b, int h, int w)
{
	size_t n = l2_mul_size(l2_mul_size((size_t)c * b, (size_t)h * w), sizeof(cnnr));
	Act a = {NULL, n, c, b, h, w};
	for (int i = 0; cur_ws && i < CACHE_SLOTS && !a.d; i++)
		if (cur_ws->slot[i].p && cur_ws->slot[i].n == n) {
			a.d = cur_ws->slot[i].p;
			cur_ws->slot[i].p = NULL;
		}
	if (!a.d) a.d = l2_conv_alloc(n);
	return a;
}

static void act_free(Act *a)
{
	for (int i = 0; cur_ws && i < CACHE_SLOTS && a->d; i++)
		if (!cur_ws->slot[i].p) {
			cur_ws->slot[i].p = a->d;
			cur_ws->slot[i].n = a->n;
			a->d = NULL;
		}
	free(a->d);
	a->d = NULL;
}

void l2_vae_thread_cleanup(void) { l2_conv_scratch_free(); }

/* ---- Winograd -------------------------------------------------------------------------------- */

/* Every 3x3 stride-1 convolution with padding 1 and at least WINO_MIN_CIN
 * inputs runs as Winograd F(2x2, 3x3) (conv.h): 4/9 of the multiply-adds,
 * at every image size (at 8x8 and 512 channels too: im2col + SGEMM there
 * is no faster).  The decoder's conv_in from the few latent channels
 * stays with im2col, where the transforms would cost more than the
 * multiplies they save.  The weights are transformed once here and the
 * original 3x3 kernels freed: 16/9 of their memory (the KL-f8 decoder
 * holds 313 MB instead of 176). */
enum { WINO_MIN_CIN = 16 };

static void wino_add(L2Vae *v, L2Conv *c)
{
	if (!l2_conv_wino_ok(c) || c->cin < WINO_MIN_CIN) return;
	v->wino = l2_realloc(v->wino, (size_t)(v->nwino + 1) * sizeof *v->wino);
	cnnr *u = l2_conv_alloc(l2_conv_wino_size(c) * sizeof(cnnr)); /* huge pages from 4 MiB */
	l2_conv_wino_weights(c, u);
	v->wino[v->nwino++] = (struct VaeWino){c, u};
	/* u takes the kernels' place among the buffers l2_vae_free frees */
	for (size_t i = 0; i < v->nbufs; i++)
		if (v->bufs[i] == c->w) {
			free(c->w);
			c->w = NULL;
			v->bufs[i] = u;
			return;
		}
	vae_keep(v, u);
}

static void wino_res(L2Vae *v, Res *r) { wino_add(v, &r->c1), wino_add(v, &r->c2); }

static void wino_kl(L2Vae *v, KlHalf *k, int nres, int levels)
{
	wino_add(v, &k->conv_in);
	for (int i = 0; i < nres; i++) wino_res(v, &k->res[i]);
	for (int i = 0; i < levels - 1; i++) wino_add(v, &k->resample[i]); /* the encoder's are stride 2: skipped */
	wino_res(v, &k->mid1), wino_res(v, &k->mid2);
	wino_add(v, &k->conv_out);
}

void vae_prepare(L2Vae *v)
{
	const L2VaeConfig *c = &v->cfg;
	if (c->kind != L2_VAE_KL) return;
	if (v->halves & L2_VAE_ENCODER) wino_kl(v, &v->enc, c->levels * c->layers, c->levels);
	if (v->halves & L2_VAE_DECODER) wino_kl(v, &v->dec, c->levels * (c->layers + 1), c->levels);
}

/* the Winograd weights of c, or NULL for im2col + SGEMM */
static const cnnr *wino_of(const L2Conv *c)
{
	const L2Vae *v = cur_ws ? cur_ws->v : NULL;
	for (int i = 0; v && i < v->nwino; i++)
		if (v->wino[i].c == c) return v->wino[i].u;
	return NULL;
}

/* y = conv(x) (+= when add), by Winograd when c has its weights */
static void conv_run(const L2Conv *c, const Act *x, cnnr *y, int relu, int add)
{
	const cnnr *u = wino_of(c);
	if (u) {
		l2_conv2d_wino(c, u, x->d, x->b, x->h, x->w, y, add);
		if (relu) {
			size_t n = (size_t)c->cout * plane(x);
			for (size_t i = 0; i < n; i++) y[i] = y[i] > 0 ? y[i] : 0;
		}
	} else if (add) {
		l2_conv2d_add(c, x->d, x->b, x->h, x->w, y);
	} else {
		l2_conv2d(c, x->d, x->b, x->h, x->w, y, relu);
	}
}

static Act conv_new(const L2Conv *c, const Act *x, int relu)
{
	Act y = act_new(c->cout, x->b, l2_conv_out_size(x->h, c->kh, c->sh, c->ph), l2_conv_out_size(x->w, c->kw, c->sw, c->pw));
	conv_run(c, x, y.d, relu, 0);
	return y;
}

/* conv, then free the input */
static Act conv_consume(const L2Conv *c, Act *x, int relu)
{
	Act y = conv_new(c, x, relu);
	act_free(x);
	return y;
}

static void gn(const Norm *n, const Act *x, int groups, int silu, Act *y)
{
	l2_cnn_group_norm(x->d, x->c, x->b, (size_t)x->h * x->w, groups, n->g, n->b, GN_EPS, silu, y->d);
}

/* (B, C, H, W) -> (C, B, H, W) as a*x + b */
static Act from_nchw(const cnnr *x, int B, int C, int H, int W, cnnr a, cnnr b)
{
	Act t = act_new(C, B, H, W);
	size_t hw = (size_t)H * W;
	for (int i = 0; i < B; i++)
		for (int c = 0; c < C; c++) {
			const cnnr *s = x + ((size_t)i * C + c) * hw;
			cnnr *d = t.d + ((size_t)c * B + i) * hw;
			for (size_t k = 0; k < hw; k++) d[k] = s[k] * a + b;
		}
	return t;
}

/* channels [c0, c0 + C) of (., B, H, W) -> (B, C, H, W) as a*x + b */
static void to_nchw(const Act *t, int c0, int C, cnnr a, cnnr b, cnnr *out)
{
	size_t hw = (size_t)t->h * t->w;
	for (int i = 0; i < t->b; i++)
		for (int c = 0; c < C; c++) {
			const cnnr *s = t->d + ((size_t)(c0 + c) * t->b + i) * hw;
			cnnr *d = out + ((size_t)i * C + c) * hw;
			for (size_t k = 0; k < hw; k++) d[k] = s[k] * a + b;
		}
}

/* ---- KL forward ---------------------------------------------------------------------------- */

/* one ResNet block; consumes x */
static Act res_fwd(const Res *r, Act *x, int groups)
{
	Act t = act_new(x->c, x->b, x->h, x->w);
	gn(&r->n1, x, groups, 1, &t);
	Act h = conv_consume(&r->c1, &t, 0);
	gn(&r->n2, &h, groups, 1, &h);
	Act s = *x;
	if (r->has_sc) {
		s = conv_new(&r->sc, x, 0);
		act_free(x);
	}
	conv_run(&r->c2, &h, s.d, 0, 1); /* s += conv2(h) */
	act_free(&h);
	return s;
}

/* the mid block's attention, in place on x */
static void attn_fwd(const Attn *a, Act *x, int groups)
{
	int C = x->c, N = x->h * x->w;
	Act t = act_new(C, x->b, x->h, x->w);
	gn(&a->n, x, groups, 0, &t);
	Act qkv = conv_consume(&a->qkv, &t, 0);
	Act o = act_new(C, x->b, x->h, x->w);
	size_t p = plane(x);
	l2_cnn_attention(qkv.d, qkv.d + (size_t)C * p, qkv.d + (size_t)2 * C * p, C, x->b, N, o.d);
	act_free(&qkv);
	l2_conv2d_add(&a->proj, o.d, o.b, o.h, o.w, x->d);
	act_free(&o);
}

static Act mid_fwd(const KlHalf *k, Act *x, int groups)
{
	Act h = res_fwd(&k->mid1, x, groups);
	attn_fwd(&k->attn, &h, groups);
	return res_fwd(&k->mid2, &h, groups);
}

/* images -> the quant_conv output (2L, B, h, w): mean | logvar */
static Act kl_encode_moments(const L2Vae *v, const cnnr *x, int B, int H, int W)
{
	const L2VaeConfig *c = &v->cfg;
	const KlHalf *k = &v->enc;
	Act in = from_nchw(x, B, 3, H, W, 1, 0);
	Act h = conv_consume(&k->conv_in, &in, 0);
	for (int i = 0; i < c->levels; i++) {
		for (int j = 0; j < c->layers; j++) h = res_fwd(&k->res[i * c->layers + j], &h, c->groups);
		if (i < c->levels - 1) {
			/* the original Downsample: F.pad(x, (0, 1, 0, 1)), then a 3x3 stride-2 conv without padding */
			Act p = act_new(h.c, h.b, h.h + 1, h.w + 1);
			l2_cnn_pad(h.d, (size_t)h.c * h.b, h.h, h.w, 0, 1, 0, 1, p.d);
			act_free(&h);
			h = conv_consume(&k->resample[i], &p, 0);
		}
	}
	h = mid_fwd(k, &h, c->groups);
	gn(&k->norm_out, &h, c->groups, 1, &h);
	h = conv_consume(&k->conv_out, &h, 0);
	return conv_consume(&k->quant, &h, 0);
}

static void kl_decode(const L2Vae *v, const cnnr *z, int B, int hh, int ww, cnnr *x)
{
	const L2VaeConfig *c = &v->cfg;
	const KlHalf *k = &v->dec;
	Act in = from_nchw(z, B, c->latent, hh, ww, (cnnr)(1.0 / c->scale), (cnnr)c->shift);
	Act h = conv_consume(&k->quant, &in, 0);
	h = conv_consume(&k->conv_in, &h, 0);
	h = mid_fwd(k, &h, c->groups);
	for (int i = 0; i < c->levels; i++) {
		for (int j = 0; j <= c->layers; j++) h = res_fwd(&k->res[i * (c->layers + 1) + j], &h, c->groups);
		if (i < c->levels - 1) {
			Act u = act_new(h.c, h.b, 2 * h.h, 2 * h.w);
			l2_cnn_upsample2x(h.d, (size_t)h.c * h.b, h.h, h.w, u.d);
			act_free(&h);
			h = conv_consume(&k->resample[i], &u, 0);
		}
	}
	gn(&k->norm_out, &h, c->groups, 1, &h);
	h = conv_consume(&k->conv_out, &h, 0);
	to_nchw(&h, 0, 3, 1, 0, x);
	act_free(&h);
}

/* ---- TAESD forward ----------------------------------------------------------------------------- */

static Act tae_run(const TaeHalf *t, Act *x)
{
	Act h = *x;
	for (int i = 0; i < t->n; i++) {
		const TaeLayer *l = &t->l[i];
		if (l->type == T_CONV) {
			h = conv_consume(&l->c, &h, 0);
		} else if (l->type == T_RELU) {
			size_t n = count(&h);
			for (size_t k = 0; k < n; k++) h.d[k] = h.d[k] > 0 ? h.d[k] : 0;
		} else if (l->type == T_UP) {
			Act u = act_new(h.c, h.b, 2 * h.h, 2 * h.w);
			l2_cnn_upsample2x(h.d, (size_t)h.c * h.b, h.h, h.w, u.d);
			act_free(&h);
			h = u;
		} else { /* relu(conv.4(relu(conv.2(relu(conv.0(x))))) + skip(x)) */
			Act a = conv_new(&l->bc[0], &h, 1);
			Act b = conv_consume(&l->bc[1], &a, 1);
			Act c = conv_consume(&l->bc[2], &b, 0);
			if (l->has_skip) {
				Act s = conv_new(&l->skip, &h, 0);
				l2_cnn_add(c.d, s.d, count(&c), 1);
				act_free(&s);
			} else {
				l2_cnn_add(c.d, h.d, count(&c), 1);
			}
			act_free(&h);
			h = c;
		}
	}
	return h;
}

/* ---- the API: one image per thread --------------------------------------------------------- */

static void check_size(const L2Vae *v, int half, int H, int W, const char *what)
{
	int f = l2_vae_factor(v);
	if (!(v->halves & half) || v->shapes_only)
		l2_die("VAE %s: the %s was not loaded%s", v->path[0], half == L2_VAE_ENCODER ? "encoder" : "decoder",
		       v->shapes_only ? " (shapes only)" : "");
	if (H < 1 || W < 1 || H % f || W % f)
		l2_die("VAE: %s of %dx%d: the size must be a positive multiple of %d", what, W, H, f);
}

enum { JOB_MOMENTS, JOB_ENCODE, JOB_DECODE };

/* Each image is computed alone, on one thread with single-threaded BLAS:
 * OpenBLAS's sums depend on the matrix sizes and on its thread count, so
 * this is what makes an image's latents the same whatever else is in its
 * batch and however many threads run (a resumed encoding equals a straight
 * one).  The images of a call are shared out over min(l2_threads, B)
 * threads; a single image runs on one core. */
typedef struct {
	const L2Vae *v;
	int kind, B, H, W; /* H x W: the images' size */
	const cnnr *in;
	cnnr *out, *out2;
	const L2VaeSample *sample;
	pthread_mutex_t lock;
	int next;
} Job;

static void one_image(const Job *j, int b)
{
	const L2Vae *v = j->v;
	const L2VaeConfig *c = &v->cfg;
	int f = l2_vae_factor(v), L = c->latent, h = j->H / f, w = j->W / f;
	size_t img = (size_t)3 * j->H * j->W, lat = (size_t)L * h * w;
	if (j->kind == JOB_DECODE) {
		const cnnr *z = j->in + b * lat;
		cnnr *x = j->out + b * img;
		if (c->kind == L2_VAE_KL) {
			kl_decode(v, z, 1, h, w, x);
			return;
		}
		/* z / scale + shift, then taesd.py's Clamp: tanh(z / 3) * 3 */
		Act in = from_nchw(z, 1, L, h, w, (cnnr)(1.0 / c->scale), (cnnr)c->shift);
		size_t n = count(&in);
		for (size_t i = 0; i < n; i++) in.d[i] = (cnnr)(tanh(in.d[i] / 3.0) * 3.0);
		Act o = tae_run(&v->tdec, &in);
		to_nchw(&o, 0, 3, 2, -1, x); /* [0, 1] -> [-1, 1] */
		act_free(&o);
		return;
	}
	const cnnr *x = j->in + b * img;
	cnnr *z = j->out + b * lat;
	if (c->kind == L2_VAE_TAESD) {
		/* taesd.py's encoder takes [0, 1] images (diffusers maps (x + 1) / 2) */
		Act in = from_nchw(x, 1, 3, j->H, j->W, (cnnr)0.5, (cnnr)0.5);
		Act o = tae_run(&v->tenc, &in);
		to_nchw(&o, 0, L, (cnnr)c->scale, (cnnr)(-c->shift * c->scale), z);
		act_free(&o);
		return;
	}
	Act m = kl_encode_moments(v, x, 1, j->H, j->W);
	cnnr *lv = j->kind == JOB_MOMENTS ? j->out2 + b * lat : m.d + lat; /* the moments' second half */
	if (j->kind == JOB_MOMENTS) to_nchw(&m, 0, L, 1, 0, z), to_nchw(&m, L, L, 1, 0, lv);
	for (size_t i = 0; i < lat; i++) lv[i] = lv[i] < LOGVAR_MIN ? LOGVAR_MIN : lv[i] > LOGVAR_MAX ? LOGVAR_MAX : lv[i];
	if (j->kind == JOB_ENCODE) {
		/* (C, 1, h, w) is (C, h, w): the mean is the first L planes */
		L2Rng r;
		if (j->sample) l2_rng_init(&r, j->sample->seed, j->sample->streams[b]);
		for (size_t i = 0; i < lat; i++) {
			double mu = m.d[i];
			if (j->sample) mu += exp(0.5 * (double)lv[i]) * l2_rng_normal(&r);
			z[i] = (cnnr)((mu - c->shift) * c->scale);
		}
	}
	act_free(&m);
}

static void worker(void *p, int w)
{
	Job *j = p;
	l2_cnn_set_serial(1);
	cur_ws = ws_take(j->v);
	for (;;) {
		pthread_mutex_lock(&j->lock);
		int b = j->next++;
		pthread_mutex_unlock(&j->lock);
		if (b >= j->B) break;
		one_image(j, b);
	}
	ws_give(j->v, cur_ws);
	cur_ws = NULL;
	l2_cnn_set_serial(0);
	/* a worker other than the caller is a thread that ends now: its im2col buffer
	 * (thread-local in conv.c) would otherwise be lost with it (when its thread
	 * could not start, the caller ran it, and merely allocates again) */
	if (w > 0) l2_conv_scratch_free();
}

static void run(Job *j)
{
	int T = l2_threads < j->B ? l2_threads : j->B;
	if (T < 1) T = 1;
	pthread_mutex_init(&j->lock, NULL);
	/* one-thread BLAS even for one worker: an image's bytes must not depend on the
	 * thread count (l2_parallel_workers sets it only for more than one) */
	int was = l2_blas_threads(1);
	l2_parallel_workers(T, worker, j);
	l2_blas_threads(was);
	pthread_mutex_destroy(&j->lock);
}

void l2_vae_encode_moments(const L2Vae *v, const cnnr *x, int B, int H, int W, cnnr *mean, cnnr *logvar)
{
	if (v->cfg.kind != L2_VAE_KL) l2_die("VAE %s: TAESD has no posterior to sample from (no log-variance)", v->path[0]);
	check_size(v, L2_VAE_ENCODER, H, W, "images");
	if (B < 1) return;
	Job j = {.v = v, .kind = JOB_MOMENTS, .B = B, .H = H, .W = W, .in = x, .out = mean, .out2 = logvar};
	run(&j);
}

void l2_vae_encode(const L2Vae *v, const cnnr *x, int B, int H, int W, const L2VaeSample *sample, cnnr *z)
{
	check_size(v, L2_VAE_ENCODER, H, W, "images");
	if (sample && v->cfg.kind == L2_VAE_TAESD) l2_die("VAE %s: TAESD has no posterior to sample from; encode the mean", v->path[0]);
	if (B < 1) return;
	Job j = {.v = v, .kind = JOB_ENCODE, .B = B, .H = H, .W = W, .in = x, .out = z, .sample = sample};
	run(&j);
}

void l2_vae_decode(const L2Vae *v, const cnnr *z, int B, int h, int w, cnnr *x)
{
	int f = l2_vae_factor(v);
	check_size(v, L2_VAE_DECODER, h * f, w * f, "latents");
	if (B < 1) return;
	Job j = {.v = v, .kind = JOB_DECODE, .B = B, .H = h * f, .W = w * f, .in = z, .out = x};
	run(&j);
}

/* ---- FLOPs ---------------------------------------------------------------------------------------- */

static double conv_flops(int cin, int cout, int k, int ho, int wo) { return 2.0 * cin * cout * k * k * (double)ho * wo; }

static double res_flops(int cin, int cout, int h, int w)
{
	return conv_flops(cin, cout, 3, h, w) + conv_flops(cout, cout, 3, h, w) + (cin != cout ? conv_flops(cin, cout, 1, h, w) : 0);
}

static double mid_flops(int c, int h, int w)
{
	double n = (double)h * w;
	/* two ResNets, q k v and the projection, q kᵀ and the weighted sum */
	return 2 * res_flops(c, c, h, w) + 4 * conv_flops(c, c, 1, h, w) + 2 * 2.0 * n * n * c;
}

double l2_vae_flops(const L2Vae *v, int half, int H, int W)
{
	const L2VaeConfig *c = &v->cfg;
	double f = 0;
	int n = c->levels;
	if (c->kind == L2_VAE_KL) {
		if (half == L2_VAE_ENCODER) {
			int h = H, w = W, cin = c->ch[0];
			f += conv_flops(3, c->ch[0], 3, h, w);
			for (int i = 0; i < n; i++) {
				for (int j = 0; j < c->layers; j++) f += res_flops(j ? c->ch[i] : cin, c->ch[i], h, w);
				cin = c->ch[i];
				if (i < n - 1) h /= 2, w /= 2, f += conv_flops(cin, cin, 3, h, w);
			}
			f += mid_flops(cin, h, w) + conv_flops(cin, 2 * c->latent, 3, h, w) + conv_flops(2 * c->latent, 2 * c->latent, 1, h, w);
		} else {
			int s = 1 << (n - 1), h = H / s, w = W / s, cin = c->ch[n - 1];
			f += conv_flops(c->latent, c->latent, 1, h, w) + conv_flops(c->latent, cin, 3, h, w) + mid_flops(cin, h, w);
			for (int i = 0; i < n; i++) {
				int co = c->ch[n - 1 - i];
				for (int j = 0; j <= c->layers; j++) f += res_flops(j ? co : cin, co, h, w);
				cin = co;
				if (i < n - 1) h *= 2, w *= 2, f += conv_flops(co, co, 3, h, w);
			}
			f += conv_flops(c->ch[0], 3, 3, h, w);
		}
		return f;
	}
	int Wd = c->ch[0];
	if (half == L2_VAE_ENCODER) {
		int h = H, w = W;
		f += conv_flops(3, Wd, 3, h, w);
		for (int s = 0; s < n; s++) {
			if (s) h /= 2, w /= 2, f += conv_flops(Wd, Wd, 3, h, w);
			f += c->enc_blocks[s] * 3 * conv_flops(Wd, Wd, 3, h, w);
		}
		return f + conv_flops(Wd, c->latent, 3, h, w);
	}
	int h = H >> (n - 1), w = W >> (n - 1);
	f += conv_flops(c->latent, Wd, 3, h, w);
	for (int s = 0; s < n; s++) {
		f += c->dec_blocks[s] * 3 * conv_flops(Wd, Wd, 3, h, w);
		if (s < n - 1) h *= 2, w *= 2, f += conv_flops(Wd, Wd, 3, h, w);
	}
	return f + conv_flops(Wd, 3, 3, h, w);
}
