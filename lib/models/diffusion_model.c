/* diffusion_model.c — the loaded diffusion model for sampling (see diffusion.h):
 * the U-Net of diffusion_net.h without a tape, in the (C, B, H, W) layout of
 * lib/nn/conv.h, so every convolution is one GEMM (or conv.c's direct 3x3 kernel)
 * over the batch and concatenation needs no copy.
 *
 * What it does differently from the autodiff forward, for speed (the values agree to
 * float rounding; tests/c/test_diffusion_float.c):
 *   - weights normalised once (W = wn(v)); sqrt(1/2) folded into conv1, the skip
 *     convolution and the attention projection;
 *   - group norm, the (1 + WN(e)) modulation and SiLU in one pass (vectorised exp);
 *   - a decoder Block reads the concatenation [h, skip] from its two parts: its group
 *     norm and 1x1 skip convolution take the channels where they lie;
 *   - the 1x1 skip and projection convolutions accumulate into the Block's output
 *     (GEMM beta = 1);
 *   - a batch is split over l2_threads persistent threads, each with single-threaded
 *     BLAS and its own activation buffers, kept from call to call (a sampler calls the
 *     model 16-40 times per image); a thread evaluates its images one at a time, so an
 *     image's output does not depend on the call or thread it lands in (OpenBLAS's
 *     per-column results change with a GEMM's N = B HW by ~1e-6, which the samplers
 *     amplified to 3e-5 between --batch/--threads settings) at no measured cost.
 * Dimension letters: B images, C channels, HW pixels of a plane, E embedding width. */
#include "models/diffusion.h"
#include "models/diffusion_net.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/parallel.h"
#include "core/util.h"
#include "io/safetensors.h"
#include "nn/ckpt.h"
#include "nn/conv.h"
#include "nn/simd.h"

#define SQRT_HALF 0.70710678118654752440f

typedef struct {
	int cin, cout, resample, attn, skip_in, rin, rout;
	L2Conv conv0, conv1; /* conv1 carries sqrt(1/2) */
	float *skip;         /* [cout, cin] 1x1 skip convolution (x sqrt(1/2)), or NULL */
	float *qkv, *proj;   /* [3 cout, cout], [cout, cout] (x sqrt(1/2)), or NULL */
	float *emb;          /* [cout, E] */
	float *cond_kv;      /* [2 cout, E]: the condition tokens' keys and values, or NULL */
} MBlock;

typedef struct Worker {
	struct L2DiffusionModel *m;
	/* activation arena: a stack of floats; requests past the capacity get their own
	 * blocks this call, and the next call's arena holds the whole peak */
	float *buf;
	size_t cap, used, peak;
	float **extra;
	int nextra, capextra;
	/* this call's part */
	const float *x, *cond;
	const double *sigma;
	float *out;
	int b0, b1;
} Worker;

struct L2DiffusionModel {
	L2DiffusionConfig c;
	char feature[256];
	char *latent;             /* "l2.latent", or NULL */
	int C, E, c0;             /* channels, embedding width, input conv's width */
	float *w_cond;            /* [C, cdim] or NULL */
	float *w_tok;             /* [K E, cdim + 1] (cond_tokens K > 0) or NULL */
	float *w_lin0, *w_lin1;   /* [E, C], [E, E] */
	float *freqs, *phases;    /* [C] */
	L2Conv conv_in, out_conv;
	float gain;
	MBlock *blk;              /* encoder then decoder Blocks */
	int nenc, ndec;
	float *zero;              /* a zero bias for l2_conv2d */
	/* workers (0 is the caller) on a pool of threads kept between calls */
	int nw;
	Worker *wk;
	L2Pool *pool;
};

const L2DiffusionConfig *l2_diffusion_model_config(const L2DiffusionModel *m) { return &m->c; }
const char *l2_diffusion_model_cond_feature(const L2DiffusionModel *m) { return m->feature; }
const char *l2_diffusion_model_latent(const L2DiffusionModel *m) { return m->latent; }

/* ---- building from the training network --------------------------------------------- */

/* W = wn(v) * scale as float, rows of v's first dimension. */
static float *wn_copy(const AdTensor *t, double scale)
{
	size_t O = (size_t)t->shape[0], F = t->n / O;
	float *w = l2_malloc_aligned(t->n * sizeof(float));
	double rf = 1 / sqrt((double)F);
	for (size_t o = 0; o < O; o++) {
		const adr *v = t->v + o * F;
		double s = 0;
		for (size_t k = 0; k < F; k++) s += (double)v[k] * v[k];
		double f = scale / (L2_DIFF_WN_EPS + sqrt(s) * rf) * rf;
		for (size_t k = 0; k < F; k++) w[o * F + k] = (float)(v[k] * f);
	}
	return w;
}

static float *copy_buf(const AdTensor *t)
{
	float *w = l2_malloc_aligned(t->n * sizeof(float));
	for (size_t i = 0; i < t->n; i++) w[i] = (float)t->v[i];
	return w;
}

static L2Conv conv_of(const AdTensor *t, double scale, float *zero)
{
	int k = t->shape[2];
	L2Conv c = {.cin = t->shape[1], .cout = t->shape[0], .kh = k, .kw = k, .sh = 1, .sw = 1, .ph = k / 2, .pw = k / 2};
	c.w = wn_copy(t, scale);
	c.b = zero;
	return c;
}

L2DiffusionModel *l2_diffusion_model_from(L2Diffusion *src)
{
	L2DiffusionModel *m = l2_calloc(1, sizeof *m);
	m->c = src->c;
	m->latent = src->latent ? l2_strdup(src->latent) : NULL;
	m->C = src->c.channels, m->E = 4 * src->c.channels;
	int maxc = 16;
	AdTensor **p = src->p;
	for (int i = 0; i < src->np; i++)
		if (p[i]->ndim >= 1 && p[i]->shape[0] > maxc) maxc = p[i]->shape[0];
	m->zero = l2_calloc((size_t)maxc, sizeof(float));
	m->w_cond = src->emb_cond >= 0 ? wn_copy(p[src->emb_cond], 1) : NULL;
	m->w_tok = src->emb_tok >= 0 ? wn_copy(p[src->emb_tok], 1) : NULL;
	m->w_lin0 = wn_copy(p[src->emb_lin0], 1);
	m->w_lin1 = wn_copy(p[src->emb_lin1], 1);
	m->freqs = copy_buf(p[src->emb_freqs]);
	m->phases = copy_buf(p[src->emb_phases]);
	m->conv_in = conv_of(p[src->conv_in], 1, m->zero);
	m->c0 = m->conv_in.cout;
	m->out_conv = conv_of(p[src->out_conv], 1, m->zero);
	m->gain = (float)p[src->out_gain]->v[0];
	m->nenc = src->nenc, m->ndec = src->ndec;
	m->blk = l2_calloc((size_t)(m->nenc + m->ndec), sizeof(MBlock));
	for (int i = 0; i < m->nenc + m->ndec; i++) {
		const Block *b = i < m->nenc ? &src->enc[i] : &src->dec[i - m->nenc];
		MBlock *k = &m->blk[i];
		k->cin = b->cin, k->cout = b->cout, k->resample = b->resample, k->attn = b->attn, k->skip_in = b->skip_in;
		k->rout = b->res;
		k->rin = b->resample == RS_DOWN ? 2 * b->res : b->resample == RS_UP ? b->res / 2 : b->res;
		k->conv0 = conv_of(p[b->conv0], 1, m->zero);
		k->conv1 = conv_of(p[b->conv1], SQRT_HALF, m->zero);
		k->emb = wn_copy(p[b->emb], 1);
		k->skip = b->skip >= 0 ? wn_copy(p[b->skip], SQRT_HALF) : NULL;
		k->qkv = b->qkv >= 0 ? wn_copy(p[b->qkv], 1) : NULL;
		k->proj = b->proj >= 0 ? wn_copy(p[b->proj], SQRT_HALF) : NULL;
		k->cond_kv = b->cond_kv >= 0 ? wn_copy(p[b->cond_kv], 1) : NULL;
	}
	return m;
}

L2DiffusionModel *l2_diffusion_load(const char *path)
{
	L2DiffusionConfig c;
	char feat[256];
	l2_diffusion_read_config(path, &c, feat, sizeof feat);
	/* the copies of the config's values in the metadata must agree with it */
	L2Safetensors *st = l2_st_open(path);
	const char *keys[4] = {"l2.sigma_data", "l2.P_mean", "l2.P_std", "l2.patch"};
	double want[4] = {c.sigma_data, c.p_mean, c.p_std, c.patch};
	for (int k = 0; k < 4; k++) {
		const char *v = l2_st_metadata(st, keys[k]);
		char *end;
		char q[128];
		if (v && (strtod(v, &end) != want[k] || *end))
			l2_die("%s: metadata %s = %s disagrees with the config", path, keys[k], l2_escape(q, sizeof q, v, strlen(v)));
	}
	const char *lat = l2_st_metadata(st, "l2.latent");
	L2Diffusion *net = l2_diffusion_new(&c, 0);
	if (lat && *lat) l2_diffusion_set_latent(net, lat);
	l2_st_close(st);
	l2_ckpt_load_weights(path, net->p, net->np);
	L2DiffusionModel *m = l2_diffusion_model_from(net);
	snprintf(m->feature, sizeof m->feature, "%s", feat);
	l2_diffusion_free(net);
	return m;
}

static void worker_free(Worker *w)
{
	l2_free_aligned(w->buf);
	for (int i = 0; i < w->nextra; i++) l2_free_aligned(w->extra[i]);
	free(w->extra);
}

void l2_diffusion_model_free(L2DiffusionModel *m)
{
	if (!m) return;
	l2_pool_free(m->pool);
	for (int t = 0; t < m->nw; t++) worker_free(&m->wk[t]);
	free(m->wk);
	for (int i = 0; i < m->nenc + m->ndec; i++) {
		MBlock *k = &m->blk[i];
		l2_free_aligned(k->conv0.w), l2_free_aligned(k->conv1.w), l2_free_aligned(k->emb);
		l2_free_aligned(k->skip), l2_free_aligned(k->qkv), l2_free_aligned(k->proj), l2_free_aligned(k->cond_kv);
	}
	free(m->blk);
	l2_free_aligned(m->w_cond), l2_free_aligned(m->w_tok), l2_free_aligned(m->w_lin0), l2_free_aligned(m->w_lin1);
	l2_free_aligned(m->freqs), l2_free_aligned(m->phases);
	l2_free_aligned(m->conv_in.w), l2_free_aligned(m->out_conv.w);
	free(m->zero), free(m->latent);
	free(m);
}

/* ---- arena ---------------------------------------------------------------------------- */

static float *A(Worker *w, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	size_t at = w->used;
	w->used += n;
	if (w->used > w->peak) w->peak = w->used;
	if (w->used <= w->cap) return w->buf + at;
	if (w->nextra == w->capextra) {
		w->capextra = w->capextra ? 2 * w->capextra : 16;
		w->extra = l2_realloc(w->extra, (size_t)w->capextra * sizeof *w->extra);
	}
	return w->extra[w->nextra++] = l2_malloc_aligned(n * sizeof(float));
}

static void arena_begin(Worker *w)
{
	if (w->peak > w->cap) {
		l2_free_aligned(w->buf);
		w->buf = l2_conv_alloc(w->peak * sizeof(float));
		w->cap = w->peak;
	}
	w->used = 0;
}

static void arena_end(Worker *w)
{
	for (int i = 0; i < w->nextra; i++) l2_free_aligned(w->extra[i]);
	w->nextra = 0;
}

/* ---- kernels (single thread) ------------------------------------------------------------ */

static inline float silu1(float v) { return v / (1.0f + expf(-v)); }

/* x / (1 + e^-x) over n floats, in place */
static void silu_rows(float *x, size_t n)
{
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		V16 v = vld(x + i);
		vst(x + i, v / (1.0f + vexp(-v)));
	}
	for (; i < n; i++) x[i] = silu1(x[i]);
}

/* The channel planes of the (virtual) concatenation [x1 (c1 channels), x2]: channel
 * c of image b starts at chan(c) + b HW. */
typedef struct {
	const float *x1, *x2;
	int c1;
	size_t cs; /* B HW: one channel over the batch */
} Cat;

static inline const float *chan(const Cat *x, int c)
{
	return c < x->c1 ? x->x1 + (size_t)c * x->cs : x->x2 + (size_t)(c - x->c1) * x->cs;
}

/* y = SiLU(GN(x) (mod ? mod[b, c] : 1)), group norm without affine over C channels in
 * G groups, per image; y is (C, B, HW). */
static void gn_mod_silu(const Cat *x, int C, int B, int HW, int G, const float *mod, float *y)
{
	int cg = C / G;
	size_t n = (size_t)cg * HW;
	for (int b = 0; b < B; b++)
		for (int g = 0; g < G; g++) {
			double s = 0;
			for (int c = g * cg; c < (g + 1) * cg; c++) {
				const float *p = chan(x, c) + (size_t)b * HW;
				int i = 0;
				V16 acc = {0};
				for (; i + 16 <= HW; i += 16) acc += vld(p + i);
				for (int j = 0; j < 16; j++) s += acc[j];
				for (; i < HW; i++) s += p[i];
			}
			float mu = (float)(s / n);
			double v = 0;
			for (int c = g * cg; c < (g + 1) * cg; c++) {
				const float *p = chan(x, c) + (size_t)b * HW;
				int i = 0;
				V16 acc = {0};
				for (; i + 16 <= HW; i += 16) {
					V16 d = vld(p + i) - mu;
					acc += d * d;
				}
				for (int j = 0; j < 16; j++) v += acc[j];
				for (; i < HW; i++) v += (double)(p[i] - mu) * (p[i] - mu);
			}
			float rs = (float)(1 / sqrt(v / n + L2_DIFF_GN_EPS));
			for (int c = g * cg; c < (g + 1) * cg; c++) {
				const float *p = chan(x, c) + (size_t)b * HW;
				float *q = y + ((size_t)c * B + b) * HW;
				float a = rs * (mod ? mod[(size_t)b * C + c] : 1.0f), o = -mu * a;
				int i = 0;
				for (; i + 16 <= HW; i += 16) {
					V16 t = vld(p + i) * a + o;
					vst(q + i, t / (1.0f + vexp(-t)));
				}
				for (; i < HW; i++) q[i] = silu1(p[i] * a + o);
			}
		}
}

/* planes of R x R -> R/2 x R/2 (2x2 mean), or 2R x 2R (nearest) */
static void downsample(const float *x, size_t planes, int R, float *y)
{
	int r = R / 2;
	for (size_t p = 0; p < planes; p++) {
		const float *s = x + p * R * R;
		float *d = y + p * r * r;
		for (int oy = 0; oy < r; oy++)
			for (int ox = 0; ox < r; ox++) {
				const float *a = s + (size_t)(2 * oy) * R + 2 * ox;
				d[oy * r + ox] = (a[0] + a[1] + a[R] + a[R + 1]) * 0.25f;
			}
	}
}

static void upsample(const float *x, size_t planes, int R, float *y)
{
	int r = 2 * R;
	for (size_t p = 0; p < planes; p++) {
		const float *s = x + p * R * R;
		float *d = y + p * r * r;
		for (int oy = 0; oy < r; oy++) {
			const float *sr = s + (size_t)(oy / 2) * R;
			float *dr = d + (size_t)oy * r;
			for (int ox = 0; ox < R; ox++) dr[2 * ox] = dr[2 * ox + 1] = sr[ox];
		}
	}
}

/* y += sqrt(1/2) rs(x), x (C, B, Rin^2) -> y (C, B, Rout^2) */
static void add_skip(const float *x, size_t planes, int rin, int rout, float *y)
{
	if (rin == rout) {
		size_t n = planes * rin * rin;
		for (size_t i = 0; i < n; i++) y[i] += SQRT_HALF * x[i];
	} else if (rout < rin) {
		for (size_t p = 0; p < planes; p++) {
			const float *s = x + p * rin * rin;
			float *d = y + p * rout * rout;
			for (int oy = 0; oy < rout; oy++)
				for (int ox = 0; ox < rout; ox++) {
					const float *a = s + (size_t)(2 * oy) * rin + 2 * ox;
					d[oy * rout + ox] += (a[0] + a[1] + a[rin] + a[rin + 1]) * (0.25f * SQRT_HALF);
				}
		}
	} else {
		for (size_t p = 0; p < planes; p++) {
			const float *s = x + p * rin * rin;
			float *d = y + p * rout * rout;
			for (int oy = 0; oy < rout; oy++)
				for (int ox = 0; ox < rout; ox++) d[oy * rout + ox] += SQRT_HALF * s[(oy / 2) * rin + ox / 2];
		}
	}
}

/* q, k, v of (3C, B, HW) each to x / (1e-4 + |x| / sqrt Dh) per pixel and head */
static void qkv_normalize(float *qkv, int C, int B, int HW, int heads)
{
	int Dh = C / heads;
	size_t cs = (size_t)B * HW;
	float rd = 1.0f / sqrtf((float)Dh);
	float *ss = l2_malloc((size_t)HW * sizeof(float));
	for (int part = 0; part < 3 * heads; part++)
		for (int b = 0; b < B; b++) {
			float *base = qkv + (size_t)part * Dh * cs + (size_t)b * HW;
			memset(ss, 0, (size_t)HW * sizeof(float));
			for (int j = 0; j < Dh; j++) {
				const float *p = base + j * cs;
				for (int i = 0; i < HW; i++) ss[i] += p[i] * p[i];
			}
			for (int i = 0; i < HW; i++) ss[i] = 1.0f / (L2_DIFF_WN_EPS + sqrtf(ss[i]) * rd);
			for (int j = 0; j < Dh; j++) {
				float *p = base + j * cs;
				for (int i = 0; i < HW; i++) p[i] *= ss[i];
			}
		}
	free(ss);
}

/* rows of n values in groups of Dh, each group to x / (1e-4 + |x| / sqrt Dh) (the
 * condition tokens' keys and values: [B K, 2 C], groups = part x head) */
static void group_normalize(float *x, size_t n, int Dh)
{
	float rd = 1.0f / sqrtf((float)Dh);
	for (size_t i = 0; i < n; i += (size_t)Dh) {
		float s = 0;
		for (int j = 0; j < Dh; j++) s += x[i + j] * x[i + j];
		float f = 1.0f / (L2_DIFF_WN_EPS + sqrtf(s) * rd);
		for (int j = 0; j < Dh; j++) x[i + j] *= f;
	}
}

/* a (C, B, HW) = softmax(q^T [k | kt] / sqrt Dh) applied to [v | vt], per image and
 * head: the keys are the HW pixels' and, with condition tokens, K more (kvt [B K, 2 C],
 * keys then values, NULL when K = 0) */
static void attend(Worker *w, const float *qkv, int C, int B, int HW, int heads, const float *kvt, int K, float *a)
{
	int Dh = C / heads, L = HW + K;
	size_t cs = (size_t)B * HW, mark = w->used;
	float *S = A(w, (size_t)HW * L), sc = 1.0f / sqrtf((float)Dh);
	for (int b = 0; b < B; b++)
		for (int h = 0; h < heads; h++) {
			const float *q = qkv + (size_t)h * Dh * cs + (size_t)b * HW;
			const float *k = q + (size_t)C * cs, *v = q + (size_t)2 * C * cs;
			const float *kt = K ? kvt + (size_t)b * K * 2 * C + (size_t)h * Dh : NULL, *vt = K ? kt + C : NULL;
			cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, HW, HW, Dh, sc, q, (int)cs, k, (int)cs, 0.0f, S, L);
			if (K)
				cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, HW, K, Dh, sc, q, (int)cs, kt, 2 * C, 0.0f, S + HW, L);
			for (int i = 0; i < HW; i++) {
				float *row = S + (size_t)i * L, mx = row[0];
				for (int j = 1; j < L; j++) mx = row[j] > mx ? row[j] : mx;
				double s = 0;
				int j = 0;
				for (; j + 16 <= L; j += 16) {
					V16 t = vexp(vld(row + j) - mx);
					vst(row + j, t);
					for (int l = 0; l < 16; l++) s += t[l];
				}
				for (; j < L; j++) s += row[j] = expf(row[j] - mx);
				float inv = (float)(1 / s);
				for (j = 0; j < L; j++) row[j] *= inv;
			}
			float *ah = a + (size_t)h * Dh * cs + (size_t)b * HW;
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Dh, HW, HW, 1.0f, v, (int)cs, S, L, 0.0f, ah, (int)cs);
			if (K)
				cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, Dh, HW, K, 1.0f, vt, 2 * C, S + HW, L, 1.0f, ah, (int)cs);
		}
	w->used = mark;
}

/* One Block on the concatenation x = [x1 (c1 ch), x2], (cin, B, rin^2) -> (cout, B, rout^2),
 * the output in the arena below the Block's temporaries. */
static float *block(Worker *w, const MBlock *k, const float *x1, const float *x2, const float *e, const float *tok, int B)
{
	const L2DiffusionModel *m = w->m;
	int HWi = k->rin * k->rin, HWo = k->rout * k->rout, cin = k->cin, cout = k->cout;
	size_t csi = (size_t)B * HWi, cso = (size_t)B * HWo;
	float *y = A(w, (size_t)cout * cso);
	size_t mark = w->used;
	Cat x = {x1, x2, cin - k->skip_in, csi};
	float *t = A(w, (size_t)cin * csi);
	gn_mod_silu(&x, cin, B, HWi, l2_diffusion_groups(cin), NULL, t);
	if (k->resample != RS_KEEP) {
		float *t2 = A(w, (size_t)cin * cso);
		if (k->resample == RS_DOWN) downsample(t, (size_t)cin * B, k->rin, t2);
		else upsample(t, (size_t)cin * B, k->rin, t2);
		t = t2;
	}
	float *r = A(w, (size_t)cout * cso);
	l2_conv2d(&k->conv0, t, B, k->rout, k->rout, r, 0);
	/* modulation 1 + WN(e): (B, cout) */
	float *mod = A(w, (size_t)B * cout);
	for (size_t i = 0; i < (size_t)B * cout; i++) mod[i] = 1;
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, cout, m->E, 1.0f, e, m->E, k->emb, m->E, 1.0f, mod, cout);
	Cat rc = {r, NULL, cout, cso};
	gn_mod_silu(&rc, cout, B, HWo, l2_diffusion_groups(cout), mod, r);
	l2_conv2d(&k->conv1, r, B, k->rout, k->rout, y, 0);
	if (k->skip) {
		/* cin != cout happens in keep Blocks only: the 1x1 convolution of x's two parts */
		int c1 = cin - k->skip_in;
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cout, (int)cso, c1, 1.0f, k->skip, cin, x1, (int)cso,
			    1.0f, y, (int)cso);
		if (k->skip_in)
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cout, (int)cso, k->skip_in, 1.0f, k->skip + c1,
				    cin, x2, (int)cso, 1.0f, y, (int)cso);
	} else
		add_skip(x1, (size_t)cin * B, k->rin, k->rout, y);
	if (k->attn) {
		int heads = cout / 64 > 1 ? cout / 64 : 1;
		float *qkv = A(w, (size_t)3 * cout * cso), *a = A(w, (size_t)cout * cso);
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 3 * cout, (int)cso, cout, 1.0f, k->qkv, cout, y,
			    (int)cso, 0.0f, qkv, (int)cso);
		qkv_normalize(qkv, cout, B, HWo, heads);
		int K = m->c.cond_tokens;
		float *kvt = NULL;
		if (K) {
			/* the tokens' keys and values: [B K, E] x [2 cout, E]^T, normalised per part and head */
			kvt = A(w, (size_t)B * K * 2 * cout);
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B * K, 2 * cout, m->E, 1.0f, tok, m->E, k->cond_kv, m->E,
				    0.0f, kvt, 2 * cout);
			group_normalize(kvt, (size_t)B * K * 2 * cout, cout / heads);
		}
		attend(w, qkv, cout, B, HWo, heads, kvt, K, a);
		for (size_t i = 0; i < (size_t)cout * cso; i++) y[i] *= SQRT_HALF;
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cout, (int)cso, cout, 1.0f, k->proj, cout, a, (int)cso,
			    1.0f, y, (int)cso);
	}
	for (size_t i = 0; i < (size_t)cout * cso; i++) {
		float v = y[i];
		y[i] = v < -(float)L2_DIFF_CLAMP ? -(float)L2_DIFF_CLAMP : v > (float)L2_DIFF_CLAMP ? (float)L2_DIFF_CLAMP : v;
	}
	w->used = mark;
	return y;
}

/* images [b0, b1) of the call */
static void run_batch(Worker *w)
{
	L2DiffusionModel *m = w->m;
	const L2DiffusionConfig *c = &m->c;
	int B = w->b1 - w->b0;
	if (B <= 0) return;
	/* the U-Net's grid: R x R pixels of cp = cimg patch^2 channels */
	int P = c->patch, R = c->res / P, HW = R * R, cimg = c->cimg, cp = cimg * P * P, C = m->C, E = m->E;
	size_t chw = (size_t)cimg * c->res * c->res;
	const float *x = w->x + (size_t)w->b0 * chw;
	const double *sigma = w->sigma + w->b0;
	arena_begin(w);
	double *sc = l2_malloc((size_t)4 * B * sizeof(double));
	for (int b = 0; b < B; b++) {
		L2DiffusionScalings s = l2_diffusion_scalings(sigma[b], c->sigma_data);
		sc[b] = s.skip, sc[B + b] = s.out, sc[2 * B + b] = s.in, sc[3 * B + b] = s.noise;
	}
	/* embedding: f + WN(sqrt(d) c), two SiLU layers */
	float *f = A(w, (size_t)B * C), *e1 = A(w, (size_t)B * E), *e = A(w, (size_t)B * E);
	for (int b = 0; b < B; b++)
		for (int k = 0; k < C; k++) {
			double a = (double)m->freqs[k] * sc[3 * B + b] + m->phases[k];
			f[(size_t)b * C + k] = (float)(M_SQRT2 * cos(2 * M_PI * (a - floor(a))));
		}
	float *tok = NULL;
	if (c->cond_tokens) {
		/* K tokens of width E from [sqrt(d) c, 1]: the last column of w_tok for every image,
		 * plus the condition's part (none for a null condition) */
		int d = c->cdim, KE = c->cond_tokens * E;
		tok = A(w, (size_t)B * KE);
		for (int b = 0; b < B; b++)
			for (int j = 0; j < KE; j++) tok[(size_t)b * KE + j] = m->w_tok[(size_t)j * (d + 1) + d];
		if (w->cond)
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, KE, d, sqrtf((float)d), w->cond + (size_t)w->b0 * d, d,
				    m->w_tok, d + 1, 1.0f, tok, KE);
	} else if (c->cdim && w->cond)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, C, c->cdim, sqrtf((float)c->cdim),
			    w->cond + (size_t)w->b0 * c->cdim, c->cdim, m->w_cond, c->cdim, 1.0f, f, C);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, E, C, 1.0f, f, C, m->w_lin0, C, 0.0f, e1, E);
	silu_rows(e1, (size_t)B * E);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, E, E, 1.0f, e1, E, m->w_lin1, E, 0.0f, e, E);
	silu_rows(e, (size_t)B * E);
	/* input [space_to_depth(c_in x), 1] in (C, B, HW): channel (ch P + dy) P + dx at
	 * pixel (y, x) is image channel ch at (y P + dy, x P + dx) */
	size_t cs = (size_t)B * HW;
	float *in = A(w, (size_t)(cp + 1) * cs);
	for (int ch = 0; ch < cimg; ch++)
		for (int dy = 0; dy < P; dy++)
			for (int dx = 0; dx < P; dx++)
				for (int b = 0; b < B; b++) {
					const float *s = x + (size_t)b * chw + (size_t)ch * c->res * c->res;
					float *d = in + (size_t)((ch * P + dy) * P + dx) * cs + (size_t)b * HW, ci = (float)sc[2 * B + b];
					for (int y = 0; y < R; y++)
						for (int xx = 0; xx < R; xx++) d[y * R + xx] = s[(size_t)(y * P + dy) * c->res + xx * P + dx] * ci;
				}
	for (size_t i = 0; i < cs; i++) in[(size_t)cp * cs + i] = 1;
	float *skips[128];
	int ns = 0;
	float *h = A(w, (size_t)m->c0 * cs);
	l2_conv2d(&m->conv_in, in, B, R, R, h, 0);
	skips[ns++] = h;
	for (int i = 0; i < m->nenc; i++) skips[ns++] = h = block(w, &m->blk[i], h, NULL, e, tok, B);
	for (int i = 0; i < m->ndec; i++) {
		const MBlock *k = &m->blk[m->nenc + i];
		h = block(w, k, h, k->skip_in ? skips[--ns] : NULL, e, tok, B);
	}
	/* out: gain conv3(SiLU(GN(h))), then c_skip x + c_out F back to (B, C, HW) */
	int ch = m->out_conv.cin;
	float *t = A(w, (size_t)ch * cs), *F = A(w, (size_t)cp * cs);
	Cat hc = {h, NULL, ch, cs};
	gn_mod_silu(&hc, ch, B, HW, l2_diffusion_groups(ch), NULL, t);
	l2_conv2d(&m->out_conv, t, B, R, R, F, 0);
	/* (depth-to-space of F for P > 1) */
	int S = c->res;
	for (int b = 0; b < B; b++)
		for (int k = 0; k < cimg; k++) {
			const float *s = x + (size_t)b * chw + (size_t)k * S * S;
			float *d = w->out + (size_t)(w->b0 + b) * chw + (size_t)k * S * S;
			float a = (float)sc[b], o = (float)sc[B + b] * m->gain;
			for (int y = 0; y < S; y++)
				for (int xx = 0; xx < S; xx++) {
					int q = (k * P + y % P) * P + xx % P;
					const float *fp = F + (size_t)q * cs + (size_t)b * HW;
					d[y * S + xx] = a * s[y * S + xx] + o * fp[(y / P) * R + xx / P];
				}
		}
	free(sc);
	arena_end(w);
}

/* ---- threads ------------------------------------------------------------------------------- */

/* One image at a time: every image then takes the same code path, whatever shares
 * its call (OpenBLAS's per-column results depend on the GEMM's N = B HW) */
static void run(Worker *w)
{
	int b0 = w->b0, b1 = w->b1;
	for (int b = b0; b < b1; b++) {
		w->b0 = b, w->b1 = b + 1;
		run_batch(w);
	}
	w->b0 = b0, w->b1 = b1;
}

static void run_worker(void *m, int t) { run(&((L2DiffusionModel *)m)->wk[t]); }

void l2_diffusion_model_denoise(L2DiffusionModel *m, const float *x, const double *sigma, const float *cond, int N,
				float *out)
{
	if (N <= 0) return;
	for (int n = 0; n < N; n++)
		if (!(sigma[n] > 0) || !isfinite(sigma[n])) l2_die("diffusion: noise level %g is not a positive number", sigma[n]);
	if (!m->wk) {
		m->nw = l2_threads > 1 ? (l2_threads < 64 ? l2_threads : 64) : 1;
		m->wk = l2_calloc((size_t)m->nw, sizeof(Worker));
		for (int t = 0; t < m->nw; t++) m->wk[t].m = m;
		m->pool = l2_pool_new(m->nw, l2_conv_scratch_free); /* a pool thread's conv buffers go with it */
	}
	int nt = m->nw < N ? m->nw : N;
	for (int t = 0; t < m->nw; t++) {
		Worker *w = &m->wk[t];
		w->x = x, w->sigma = sigma, w->cond = cond, w->out = out;
		w->b0 = t < nt ? (int)((long)N * t / nt) : N;
		w->b1 = t < nt ? (int)((long)N * (t + 1) / nt) : N;
	}
	l2_pool_run(m->pool, run_worker, m); /* OpenBLAS on one thread meanwhile */
}

/* ---- the sampler's network callback ------------------------------------------------------------- */

void l2_diffusion_net_init(L2DiffusionNet *n, L2DiffusionModel *model, L2DiffusionModel *guide, const float *conds,
			   int ncond)
{
	memset(n, 0, sizeof *n);
	n->model = model, n->guide = guide, n->conds = conds, n->ncond = ncond;
	if (guide) {
		const L2DiffusionConfig *a = &model->c, *b = &guide->c;
		if (a->res != b->res || a->cimg != b->cimg || a->cdim != b->cdim || a->patch != b->patch)
			l2_die("diffusion: the guide model's images or conditions differ from the model's");
	}
}

void l2_diffusion_net_free(L2DiffusionNet *n)
{
	free(n->sigma), free(n->c);
	memset(n, 0, sizeof *n);
}

void l2_diffusion_net(void *ctx, int rows, size_t e, const L2NetRow *row, const float *x, float *x0)
{
	L2DiffusionNet *n = ctx;
	const L2DiffusionConfig *c = &n->model->c;
	int d = c->cdim;
	if (e != (size_t)c->cimg * c->res * c->res)
		l2_die("diffusion: the sampler's images have %zu values, the model's %d", e, c->cimg * c->res * c->res);
	if (rows > n->cap) {
		n->cap = rows;
		n->sigma = l2_realloc(n->sigma, (size_t)rows * sizeof *n->sigma);
		n->c = l2_realloc(n->c, (size_t)rows * (d ? d : 1) * sizeof *n->c);
	}
	for (int i = 0; i < rows; i++) {
		n->sigma[i] = row[i].sigma;
		if (!d) continue;
		if (row[i].mode == L2_ROW_UNCOND) {
			memset(n->c + (size_t)i * d, 0, (size_t)d * sizeof(float));
			continue;
		}
		if (row[i].cond < 0 || row[i].cond >= n->ncond)
			l2_die("diffusion: condition %d of %d", row[i].cond, n->ncond);
		memcpy(n->c + (size_t)i * d, n->conds + (size_t)row[i].cond * d, (size_t)d * sizeof(float));
	}
	/* rows come grouped: the main model's (cond, uncond) first, then the guide's */
	int i = 0;
	while (i < rows) {
		int guide = row[i].mode == L2_ROW_GUIDE, j = i;
		while (j < rows && (row[j].mode == L2_ROW_GUIDE) == guide) j++;
		L2DiffusionModel *m = guide ? n->guide : n->model;
		if (!m) l2_die("diffusion: autoguidance rows without a guide model");
		l2_diffusion_model_denoise(m, x + (size_t)i * e, n->sigma + i, d ? n->c + (size_t)i * d : NULL, j - i,
					   x0 + (size_t)i * e);
		i = j;
	}
}
