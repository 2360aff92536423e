/* gan.c — Lafite's conditional StyleGAN2 over lib/nn/ad.h (see gan.h). */
#include "models/gan.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/image.h"
#include "core/util.h"

#define SQRT2 1.4142135623730951
#define LRELU 0.2

/* ---- config ------------------------------------------------------------------ */

const char *l2_gan_check(const L2GanConfig *c)
{
	if (c->res < 4 || c->res > 1024 || (c->res & (c->res - 1))) return "resolution must be a power of two in 4..1024";
	if (c->cdim < 1 || c->zdim < 1 || c->wdim < 1 || c->chid < 1) return "condition, z, w and hidden sizes must be >= 1";
	if (c->map_layers < 1 || c->map_layers > 64) return "mapping depth must be in 1..64";
	if (c->cbase < 4 || c->cmax < 1) return "channel base must be >= 4 and channel max >= 1";
	if (c->cbase / c->res < 1) return "channel base must be at least the resolution";
	return NULL;
}

int l2_gan_channels(const L2GanConfig *c, int r)
{
	int ch = c->cbase / r;
	return ch < c->cmax ? ch : c->cmax;
}

void l2_gan_config_str(const L2GanConfig *c, char *buf, size_t len)
{
	snprintf(buf, len, "res=%d cdim=%d zdim=%d wdim=%d map_layers=%d cbase=%d cmax=%d chid=%d", c->res, c->cdim,
		 c->zdim, c->wdim, c->map_layers, c->cbase, c->cmax, c->chid);
}

int l2_gan_config_parse(const char *s, L2GanConfig *c)
{
	memset(c, 0, sizeof *c);
	if (sscanf(s, "res=%d cdim=%d zdim=%d wdim=%d map_layers=%d cbase=%d cmax=%d chid=%d", &c->res, &c->cdim, &c->zdim,
		   &c->wdim, &c->map_layers, &c->cbase, &c->cmax, &c->chid) != 8)
		return -1;
	return l2_gan_check(c) ? -1 : 0;
}

/* ---- parameters -------------------------------------------------------------- */

typedef struct {
	int n, cap;
	AdTensor **p;
	L2Rng rng;
} Plist;

static AdTensor *pnew(Plist *l, const char *name, int ndim, const int *shape, double mean, double std)
{
	AdTensor *t = ad_param_new(name, ndim, shape);
	for (size_t i = 0; i < t->n; i++) t->v[i] = (adr)(mean + (std ? std * l2_rng_normal(&l->rng) : 0));
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 64;
		l->p = l2_realloc(l->p, l->cap * sizeof *l->p);
	}
	l->p[l->n++] = t;
	return t;
}

/* Fully connected, equalised lr. */
typedef struct {
	AdTensor *w, *b;
	double wg, bg;
} Fc;

static void fc_new(Plist *l, Fc *f, const char *name, int in, int out, double lr_mul, double bias_init)
{
	char nm[256];
	snprintf(nm, sizeof nm, "%s.weight", name);
	f->w = pnew(l, nm, 2, (int[]){out, in}, 0, 1.0 / lr_mul);
	snprintf(nm, sizeof nm, "%s.bias", name);
	f->b = pnew(l, nm, 1, (int[]){out}, bias_init / lr_mul, 0);
	f->wg = lr_mul / sqrt((double)in);
	f->bg = lr_mul;
}

static AdTensor *act(AdGraph *g, AdTensor *x) { return ad_leaky_relu_gain(g, x, LRELU, SQRT2); }

static AdTensor *fc_fwd(AdGraph *g, const Fc *f, AdTensor *x, int lrelu)
{
	AdTensor *b = f->bg == 1 ? f->b : ad_scale(g, f->b, f->bg);
	AdTensor *y = ad_linear(g, x, ad_scale(g, f->w, f->wg), b);
	return lrelu ? act(g, y) : y;
}

/* A modulated layer with its own condition MLP and affine. */
typedef struct {
	Fc cm0, cm1, aff;
	AdTensor *w, *b, *noise;  /* weight [O, C, k, k], bias [O], noise strength [1] or NULL */
	int cin, cout, k, up, demod, res;
} Styled;

static void styled_new(Plist *l, Styled *s, const L2GanConfig *c, const char *name, int cin, int cout, int k, int up,
		       int demod, int res)
{
	char nm[256];
	s->cin = cin, s->cout = cout, s->k = k, s->up = up, s->demod = demod, s->res = res;
	snprintf(nm, sizeof nm, "%s.cmlp0", name);
	fc_new(l, &s->cm0, nm, c->cdim, c->chid, 1, 0);
	snprintf(nm, sizeof nm, "%s.cmlp1", name);
	fc_new(l, &s->cm1, nm, c->chid, c->chid, 1, 0);
	snprintf(nm, sizeof nm, "%s.affine", name);
	fc_new(l, &s->aff, nm, c->chid + c->wdim, cin, 1, 1);
	snprintf(nm, sizeof nm, "%s.weight", name);
	s->w = pnew(l, nm, 4, (int[]){cout, cin, k, k}, 0, 1);
	snprintf(nm, sizeof nm, "%s.bias", name);
	s->b = pnew(l, nm, 1, (int[]){cout}, 0, 0);
	s->noise = NULL;
	if (demod) {
		snprintf(nm, sizeof nm, "%s.noise_strength", name);
		s->noise = pnew(l, nm, 1, (int[]){1}, 0, 0);
	}
}

static AdTensor *bias4(AdGraph *g, AdTensor *x, AdTensor *b)
{
	return ad_add(g, x, ad_reshape(g, b, 4, (int[]){1, b->shape[0], 1, 1}));
}

static AdTensor *styled_fwd(AdGraph *g, const Styled *s, AdTensor *x, AdTensor *h, AdTensor *w, L2Rng *noise)
{
	AdTensor *mh = fc_fwd(g, &s->cm1, fc_fwd(g, &s->cm0, h, 1), 1);
	AdTensor *u = fc_fwd(g, &s->aff, ad_concat(g, (AdTensor *[]){mh, w}, 2, 1), 0);
	if (!s->demod) u = ad_scale(g, u, 1.0 / sqrt((double)s->cin * s->k * s->k)); /* toRGB weight gain */
	if (s->up) x = l2_gan_up2(g, x);
	AdTensor *y = ad_modconv(g, x, s->w, u, s->demod, s->k / 2);
	if (s->noise && noise) {
		int N = y->shape[0], H = y->shape[2], W = y->shape[3];
		adr *nz = ad_scratch(g, (size_t)N * H * W * sizeof(adr));
		for (int n = 0; n < N; n++) /* sample n's noise from its own stream */
			for (size_t i = 0; i < (size_t)H * W; i++) nz[(size_t)n * H * W + i] = (adr)l2_rng_normal(&noise[n]);
		y = l2_gan_noise(g, y, nz, s->noise);
	}
	y = bias4(g, y, s->b);
	return s->demod ? act(g, y) : y;
}

/* ---- generator ------------------------------------------------------------------ */

struct L2GanG {
	L2GanConfig c;
	Plist pl;
	Fc *map;          /* [map_layers] */
	AdTensor *cst, *wavg;
	AdTensor *last_w; /* the last forward's w (on its graph) */
	int nres;         /* resolutions 4 .. R */
	Styled *conv0;    /* [nres] (conv0[0] unused: 4x4 has no upsampling conv) */
	Styled *conv1, *torgb;
};

L2GanG *l2_gan_g_new(const L2GanConfig *c, uint64_t seed)
{
	const char *bad = l2_gan_check(c);
	if (bad) l2_die("generator: %s", bad);
	L2GanG *G = l2_calloc(1, sizeof *G);
	G->c = *c;
	l2_rng_init(&G->pl.rng, seed, 0x47656e);
	G->map = l2_calloc(c->map_layers, sizeof *G->map);
	char nm[256];
	for (int i = 0; i < c->map_layers; i++) {
		snprintf(nm, sizeof nm, "G.mapping.fc%d", i);
		fc_new(&G->pl, &G->map[i], nm, i ? c->wdim : c->zdim, c->wdim, 0.01, 0);
	}
	G->wavg = pnew(&G->pl, "G.mapping.w_avg", 1, (int[]){c->wdim}, 0, 0);
	int c4 = l2_gan_channels(c, 4);
	G->cst = pnew(&G->pl, "G.b4.const", 3, (int[]){c4, 4, 4}, 0, 1);
	for (int r = 4; r <= c->res; r *= 2) G->nres++;
	G->conv0 = l2_calloc(G->nres, sizeof(Styled));
	G->conv1 = l2_calloc(G->nres, sizeof(Styled));
	G->torgb = l2_calloc(G->nres, sizeof(Styled));
	for (int i = 0, r = 4; i < G->nres; i++, r *= 2) {
		int co = l2_gan_channels(c, r), ci = i ? l2_gan_channels(c, r / 2) : c4;
		if (i) {
			snprintf(nm, sizeof nm, "G.b%d.conv0", r);
			styled_new(&G->pl, &G->conv0[i], c, nm, ci, co, 3, 1, 1, r);
		}
		snprintf(nm, sizeof nm, "G.b%d.conv1", r);
		styled_new(&G->pl, &G->conv1[i], c, nm, co, co, 3, 0, 1, r);
		snprintf(nm, sizeof nm, "G.b%d.torgb", r);
		styled_new(&G->pl, &G->torgb[i], c, nm, co, 3, 1, 0, 0, r);
	}
	return G;
}

void l2_gan_g_free(L2GanG *G)
{
	if (!G) return;
	for (int i = 0; i < G->pl.n; i++) ad_param_free(G->pl.p[i]);
	free(G->pl.p);
	free(G->map);
	free(G->conv0);
	free(G->conv1);
	free(G->torgb);
	free(G);
}

AdTensor **l2_gan_g_params(L2GanG *G, int *n)
{
	*n = G->pl.n;
	return G->pl.p;
}
AdTensor *l2_gan_g_wavg(L2GanG *G) { return G->wavg; }
AdTensor *l2_gan_g_last_w(L2GanG *G) { return G->last_w; }
const L2GanConfig *l2_gan_g_config(const L2GanG *G) { return &G->c; }

AdTensor *l2_gan_g_forward(AdGraph *g, L2GanG *G, AdTensor *z, AdTensor *h, double psi, L2Rng *noise,
			   double wavg_beta)
{
	const L2GanConfig *c = &G->c;
	int N = z->shape[0];
	char s1[64], s2[64];
	if (z->ndim != 2 || z->shape[1] != c->zdim || h->ndim != 2 || h->shape[0] != N || h->shape[1] != c->cdim)
		l2_die("generator: z %s / condition %s do not match zdim %d, cdim %d", ad_shape_str(z, s1, 64),
		       ad_shape_str(h, s2, 64), c->zdim, c->cdim);
	/* normalize_2nd_moment */
	AdTensor *ms = ad_mean(g, ad_square(g, z), 1, 1);
	AdTensor *x = ad_mul(g, z, ad_pow(g, ad_affine(g, ms, 1, 1e-8), -0.5));
	for (int i = 0; i < c->map_layers; i++) x = fc_fwd(g, &G->map[i], x, 1);
	AdTensor *w = x; /* [N, wdim] */
	G->last_w = w;
	if (wavg_beta > 0)
		for (int d = 0; d < c->wdim; d++) {
			double m = 0;
			for (int n = 0; n < N; n++) m += w->v[(size_t)n * c->wdim + d];
			m /= N;
			G->wavg->v[d] = (adr)(m + (G->wavg->v[d] - m) * wavg_beta);
		}
	if (psi != 1) {
		/* w_avg + psi (w - w_avg); w_avg is a constant here */
		AdTensor *avg = ad_input(g, 2, (int[]){1, c->wdim}, G->wavg->v);
		w = ad_add(g, ad_scale(g, ad_sub(g, w, avg), psi), avg);
	}
	int c4 = l2_gan_channels(c, 4);
	AdTensor *y = ad_expand(g, ad_reshape(g, G->cst, 4, (int[]){1, c4, 4, 4}), 4, (int[]){N, c4, 4, 4});
	AdTensor *img = NULL;
	for (int i = 0; i < G->nres; i++) {
		if (i) y = styled_fwd(g, &G->conv0[i], y, h, w, noise);
		y = styled_fwd(g, &G->conv1[i], y, h, w, noise);
		AdTensor *rgb = styled_fwd(g, &G->torgb[i], y, h, w, noise);
		img = img ? ad_add(g, l2_gan_up2(g, img), rgb) : rgb;
	}
	return img;
}

/* ---- discriminator ---------------------------------------------------------------- */

typedef struct {
	AdTensor *w, *b;
	double wg;
} Conv;

static void conv_new(Plist *l, Conv *cv, const char *name, int cin, int cout, int k, int bias)
{
	char nm[256];
	snprintf(nm, sizeof nm, "%s.weight", name);
	cv->w = pnew(l, nm, 4, (int[]){cout, cin, k, k}, 0, 1);
	cv->b = NULL;
	if (bias) {
		snprintf(nm, sizeof nm, "%s.bias", name);
		cv->b = pnew(l, nm, 1, (int[]){cout}, 0, 0);
	}
	cv->wg = 1.0 / sqrt((double)cin * k * k);
}

static AdTensor *conv_fwd(AdGraph *g, const Conv *cv, AdTensor *x, int lrelu)
{
	AdTensor *y = ad_conv2d(g, x, ad_scale(g, cv->w, cv->wg), cv->b, 1, cv->w->shape[2] / 2, 1);
	return lrelu ? act(g, y) : y;
}

typedef struct {
	Conv conv0, conv1, skip;
} DBlock;

struct L2GanD {
	L2GanConfig c;
	Plist pl;
	Conv fromrgb, econv;
	int nblk;         /* blocks at R, R/2, ..., 8 */
	DBlock *blk;
	Fc efc, fd, fs;
};

L2GanD *l2_gan_d_new(const L2GanConfig *c, uint64_t seed)
{
	const char *bad = l2_gan_check(c);
	if (bad) l2_die("discriminator: %s", bad);
	L2GanD *D = l2_calloc(1, sizeof *D);
	D->c = *c;
	l2_rng_init(&D->pl.rng, seed, 0x446973);
	char nm[256];
	snprintf(nm, sizeof nm, "D.b%d.fromrgb", c->res);
	conv_new(&D->pl, &D->fromrgb, nm, 3, l2_gan_channels(c, c->res), 1, 1);
	for (int r = c->res; r > 4; r /= 2) D->nblk++;
	D->blk = l2_calloc(D->nblk ? D->nblk : 1, sizeof *D->blk);
	for (int i = 0, r = c->res; i < D->nblk; i++, r /= 2) {
		int ci = l2_gan_channels(c, r), co = l2_gan_channels(c, r / 2);
		snprintf(nm, sizeof nm, "D.b%d.conv0", r);
		conv_new(&D->pl, &D->blk[i].conv0, nm, ci, ci, 3, 1);
		snprintf(nm, sizeof nm, "D.b%d.conv1", r);
		conv_new(&D->pl, &D->blk[i].conv1, nm, ci, co, 3, 1);
		snprintf(nm, sizeof nm, "D.b%d.skip", r);
		conv_new(&D->pl, &D->blk[i].skip, nm, ci, co, 1, 0);
	}
	int c4 = l2_gan_channels(c, 4);
	conv_new(&D->pl, &D->econv, "D.b4.conv", c4 + 1, c4, 3, 1);
	fc_new(&D->pl, &D->efc, "D.b4.fc", c4 * 16, c4, 1, 0);
	fc_new(&D->pl, &D->fd, "D.b4.out", c4, 1, 1, 0);
	fc_new(&D->pl, &D->fs, "D.b4.fs", c4, c->cdim, 1, 0);
	return D;
}

void l2_gan_d_free(L2GanD *D)
{
	if (!D) return;
	for (int i = 0; i < D->pl.n; i++) ad_param_free(D->pl.p[i]);
	free(D->pl.p);
	free(D->blk);
	free(D);
}

AdTensor **l2_gan_d_params(L2GanD *D, int *n)
{
	*n = D->pl.n;
	return D->pl.p;
}

AdTensor *l2_gan_d_forward(AdGraph *g, L2GanD *D, AdTensor *x, AdTensor *h, AdTensor **fs)
{
	const L2GanConfig *c = &D->c;
	int N = x->shape[0];
	char s1[64], s2[64];
	if (x->ndim != 4 || x->shape[1] != 3 || x->shape[2] != c->res || x->shape[3] != c->res || h->ndim != 2 ||
	    h->shape[0] != N || h->shape[1] != c->cdim)
		l2_die("discriminator: images %s / condition %s do not match res %d, cdim %d", ad_shape_str(x, s1, 64),
		       ad_shape_str(h, s2, 64), c->res, c->cdim);
	AdTensor *y = conv_fwd(g, &D->fromrgb, x, 1);
	for (int i = 0; i < D->nblk; i++) {
		const DBlock *b = &D->blk[i];
		AdTensor *sk = conv_fwd(g, &b->skip, l2_gan_down2(g, y), 0);
		y = conv_fwd(g, &b->conv0, y, 1);
		y = conv_fwd(g, &b->conv1, l2_gan_down2(g, y), 1);
		y = ad_scale(g, ad_add(g, sk, y), sqrt(0.5));
	}
	y = l2_gan_mbstd(g, y, 4);
	y = conv_fwd(g, &D->econv, y, 1);
	int c4 = l2_gan_channels(c, 4);
	y = fc_fwd(g, &D->efc, ad_reshape(g, y, 2, (int[]){N, c4 * 16}), 1);
	AdTensor *fd = fc_fwd(g, &D->fd, y, 0);   /* [N, 1] */
	AdTensor *f = fc_fwd(g, &D->fs, y, 0);    /* [N, cdim] */
	if (fs) *fs = f;
	AdTensor *proj = ad_sum(g, ad_mul(g, f, h), 1, 0);  /* [N] */
	return ad_add(g, ad_reshape(g, fd, 1, (int[]){N}), proj);
}

/* ---- building blocks ---------------------------------------------------------------- */

AdTensor *l2_gan_mbstd(AdGraph *g, AdTensor *x, int group)
{
	int N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
	int G = group < N ? group : N;
	if (N % G) l2_die("minibatch std: batch %d is not a multiple of the group %d", N, G);
	int M = N / G;
	AdTensor *y = ad_reshape(g, x, 5, (int[]){G, M, C, H, W});
	y = ad_sub(g, y, ad_mean(g, y, 0, 1));
	y = ad_mean(g, ad_square(g, y), 0, 0);               /* [M, C, H, W] variance */
	y = ad_sqrt(g, ad_affine(g, y, 1, 1e-8));
	y = ad_mean(g, ad_reshape(g, y, 2, (int[]){M, C * H * W}), 1, 0); /* [M] */
	y = ad_expand(g, ad_reshape(g, y, 5, (int[]){1, M, 1, 1, 1}), 5, (int[]){G, M, 1, H, W});
	y = ad_reshape(g, y, 4, (int[]){N, 1, H, W});
	return ad_concat(g, (AdTensor *[]){x, y}, 2, 1);
}

AdTensor *l2_gan_noise(AdGraph *g, AdTensor *x, const adr *noise, AdTensor *strength)
{
	int N = x->shape[0], H = x->shape[2], W = x->shape[3];
	AdTensor *nz = ad_input(g, 4, (int[]){N, 1, H, W}, noise);
	return ad_add(g, x, ad_mul(g, nz, ad_reshape(g, strength, 4, (int[]){1, 1, 1, 1})));
}

static const adr *fir(int gain4)
{
	static adr f1[16], f4[16];
	static int done;
	if (!done) {
		const double a[4] = {1, 3, 3, 1};
		for (int i = 0; i < 4; i++)
			for (int j = 0; j < 4; j++) {
				f1[i * 4 + j] = (adr)(a[i] * a[j] / 64);
				f4[i * 4 + j] = (adr)(a[i] * a[j] / 16);
			}
		done = 1;
	}
	return gain4 ? f4 : f1;
}

AdTensor *l2_gan_up2(AdGraph *g, AdTensor *x) { return ad_upfirdn2d(g, x, fir(1), 4, 4, 2, 1, 2, 1, 2, 1); }
AdTensor *l2_gan_down2(AdGraph *g, AdTensor *x) { return ad_upfirdn2d(g, x, fir(0), 4, 4, 1, 2, 1, 1, 1, 1); }

AdTensor *l2_gan_contrastive(AdGraph *g, AdTensor *f, AdTensor *h, double tau)
{
	int N = f->shape[0];
	if (f->ndim != 2 || h->ndim != 2 || h->shape[0] != N || h->shape[1] != f->shape[1])
		l2_die("contrastive loss: features and conditions differ in shape");
	AdTensor *fn = ad_normalize(g, f, 1e-8), *hn = ad_normalize(g, h, 1e-8);
	AdTensor *logits = ad_scale(g, ad_matmul(g, hn, fn, 0, 1), 1.0 / tau); /* [i, j] = Sim(f_j, h_i) / tau */
	int *lab = ad_scratch(g, N * sizeof(int));
	for (int i = 0; i < N; i++) lab[i] = i;
	return ad_scale(g, ad_cross_entropy(g, logits, lab), tau);
}

void l2_gan_random_boxes(L2Rng *r, int n, int R, double lo, double hi, int *box)
{
	for (int i = 0; i < n; i++) {
		int s = (int)floor(R * (lo + (hi - lo) * l2_rng_uniform(r)) + 0.5);
		if (s < 1) s = 1;
		if (s > R) s = R;
		box[3 * i] = (int)l2_rng_below(r, (uint64_t)(R - s + 1));
		box[3 * i + 1] = (int)l2_rng_below(r, (uint64_t)(R - s + 1));
		box[3 * i + 2] = s;
	}
}

AdTensor *l2_gan_clip_view(AdGraph *g, AdTensor *x, const int *box, int out)
{
	int N = x->shape[0];
	AdTensor **v = ad_scratch(g, N * sizeof *v);
	for (int n = 0; n < N; n++) {
		AdTensor *t = ad_slice(g, x, 0, n, 1);
		t = ad_slice(g, ad_slice(g, t, 2, box[3 * n + 1], box[3 * n + 2]), 3, box[3 * n], box[3 * n + 2]);
		v[n] = ad_resize_bilinear(g, t, out, out);
	}
	AdTensor *y = N > 1 ? ad_concat(g, v, N, 0) : v[0];
	adr mean[3], istd[3];
	for (int c = 0; c < 3; c++) {
		/* ((v + 1) / 2 - m) / s = v / (2 s) + (1 / 2 - m) / s */
		istd[c] = (adr)(0.5 / (double)L2_CLIP_STD[c]);
		mean[c] = (adr)((0.5 - (double)L2_CLIP_MEAN[c]) / (double)L2_CLIP_STD[c]);
	}
	AdTensor *a = ad_input(g, 4, (int[]){1, 3, 1, 1}, istd), *b = ad_input(g, 4, (int[]){1, 3, 1, 1}, mean);
	return ad_add(g, ad_mul(g, y, a), b);
}

AdTensor *l2_gan_softplus_loss(AdGraph *g, AdTensor *logits, int sign, int B)
{
	return ad_scale(g, ad_sum_all(g, ad_softplus(g, sign < 0 ? ad_scale(g, logits, -1) : logits)), 1.0 / B);
}

/* ---- R1 ----------------------------------------------------------------------------- */

static void d_grad_at(AdGraph *g, L2GanD *D, const adr *x, const adr *h, int N, adr *xg)
{
	const L2GanConfig *c = &D->c;
	ad_graph_reset(g);
	AdTensor *X = xg ? ad_input_rg(g, 4, (int[]){N, 3, c->res, c->res}, x) : ad_input(g, 4, (int[]){N, 3, c->res, c->res}, x);
	AdTensor *H = ad_input(g, 2, (int[]){N, c->cdim}, h);
	AdTensor *l = ad_sum_all(g, l2_gan_d_forward(g, D, X, H, NULL));
	ad_backward(g, l);
	if (xg) memcpy(xg, X->g, X->n * sizeof(adr));
}

double l2_gan_r1(AdGraph *g, L2GanD *D, const adr *x, const adr *h, int N, double gamma, double scale,
		 double eps_rel)
{
	L2Dist one = {.rank = 0, .size = 1, .local_rank = 0, .local_size = 1};
	return l2_gan_r1_dist(g, D, &one, x, h, N, N, gamma, scale, eps_rel);
}

double l2_gan_r1_dist(AdGraph *g, L2GanD *D, const L2Dist *d, const adr *x, const adr *h, int N, int Ntot,
		      double gamma, double scale, double eps_rel)
{
	const L2GanConfig *c = &D->c;
	size_t nx = (size_t)N * 3 * c->res * c->res;
	int np = D->pl.n;
	AdTensor **p = D->pl.p;
	size_t tot = 0;
	for (int i = 0; i < np; i++) tot += p[i]->n;
	adr *save = l2_malloc(tot * sizeof(adr)), *gp = l2_malloc(tot * sizeof(adr));
	adr *v = l2_malloc(nx * sizeof(adr)), *xe = l2_malloc(nx * sizeof(adr));
	for (int i = 0, o = 0; i < np; o += (int)p[i]->n, i++) memcpy(save + o, p[i]->g, p[i]->n * sizeof(adr));
	/* v = dS/dx (parameter gradients of this pass are discarded); the two
	 * perturbed passes run through the activation pattern at x */
	ad_zero_grads(p, np);
	ad_graph_kinks(g, AD_KINKS_RECORD);
	d_grad_at(g, D, x, h, N, v);
	ad_graph_kinks(g, AD_KINKS_REPLAY);
	double ss = 0;
	for (size_t i = 0; i < nx; i++) ss += (double)v[i] * v[i];
	/* the batch's sum of squares: every rank takes the same step e */
	l2_dist_sum_f64(d, &ss, 1);
	size_t nx_all = (size_t)Ntot * 3 * c->res * c->res;
	double penalty = gamma / 2 * ss / Ntot;
	double rms = sqrt(ss / nx_all), e = rms > 0 ? eps_rel / rms : 0;
	if (e > 0) {
		for (size_t i = 0; i < nx; i++) xe[i] = (adr)(x[i] + e * v[i]);
		ad_zero_grads(p, np);
		d_grad_at(g, D, xe, h, N, NULL);
		for (int i = 0, o = 0; i < np; o += (int)p[i]->n, i++) memcpy(gp + o, p[i]->g, p[i]->n * sizeof(adr));
		for (size_t i = 0; i < nx; i++) xe[i] = (adr)(x[i] - e * v[i]);
		ad_zero_grads(p, np);
		d_grad_at(g, D, xe, h, N, NULL);
		double k = scale * gamma / Ntot / (2 * e);
		for (int i = 0, o = 0; i < np; o += (int)p[i]->n, i++)
			for (size_t j = 0; j < p[i]->n; j++)
				p[i]->g[j] = (adr)(save[o + j] + k * ((double)gp[o + j] - p[i]->g[j]));
	} else {
		for (int i = 0, o = 0; i < np; o += (int)p[i]->n, i++) memcpy(p[i]->g, save + o, p[i]->n * sizeof(adr));
	}
	ad_graph_kinks(g, AD_KINKS_OFF);
	ad_graph_reset(g);
	free(save);
	free(gp);
	free(v);
	free(xe);
	return penalty * scale;
}

/* ---- cost ------------------------------------------------------------------------------ */

double l2_gan_g_flops(const L2GanConfig *c)
{
	double f = (double)c->zdim * c->wdim + (double)(c->map_layers - 1) * c->wdim * c->wdim;
	for (int r = 4; r <= c->res; r *= 2) {
		int co = l2_gan_channels(c, r), ci = r > 4 ? l2_gan_channels(c, r / 2) : co;
		int nl = r > 4 ? 3 : 2;
		f += nl * ((double)c->cdim * c->chid + (double)c->chid * c->chid);
		if (r > 4) f += ((double)c->chid + c->wdim) * ci + 9.0 * ci * co * r * r;
		f += ((double)c->chid + c->wdim) * co * 2 + 9.0 * co * co * r * r + 3.0 * co * r * r;
	}
	return f;
}

double l2_gan_d_flops(const L2GanConfig *c)
{
	double f = 3.0 * l2_gan_channels(c, c->res) * c->res * c->res;
	for (int r = c->res; r > 4; r /= 2) {
		int ci = l2_gan_channels(c, r), co = l2_gan_channels(c, r / 2);
		f += 9.0 * ci * ci * r * r + 9.0 * ci * co * r * r / 4 + (double)ci * co * r * r / 4;
	}
	int c4 = l2_gan_channels(c, 4);
	f += 9.0 * (c4 + 1) * c4 * 16 + 16.0 * c4 * c4 + (double)c4 * (1 + c->cdim);
	return f;
}

/* ---- files ----------------------------------------------------------------------------- */
#ifndef L2_AD_DOUBLE
#include "nn/ckpt.h"
#include "io/safetensors.h"

void l2_gan_save(const char *path, AdTensor **p, int n, const L2GanConfig *c, const char *net, int64_t step)
{
	char cfg[256], st[32];
	l2_gan_config_str(c, cfg, sizeof cfg);
	snprintf(st, sizeof st, "%lld", (long long)step);
	const char *meta[] = {"l2.model", "lafite-gan", "l2.gan.net", net, "l2.gan.config", cfg, "l2.step", st, NULL};
	l2_ckpt_save_weights(path, p, n, meta);
}

/* Does tensor NAME have exactly this shape? (-1: absent) */
static int has_shape(const L2Safetensors *st, const char *name, int ndim, const int64_t *shape)
{
	const L2Tensor *t = l2_st_find(st, name);
	if (!t) return -1;
	if (t->ndim != ndim) return 0;
	for (int i = 0; i < ndim; i++)
		if (t->shape[i] != shape[i]) return 0;
	return 1;
}

/* A generator is built (and its memory allocated) from the config before
 * its weights are read: check first that the tensors that fix each field
 * have the shapes the config implies, so that a config lying about its
 * sizes ("wdim=100000" in a 1 MB file) is refused instead of asking for
 * tens of GB. */
/* cf: the config as the messages quote it (escaped) */
static void check_g_config(const L2Safetensors *st, const char *path, const L2GanConfig *c, const char *cf)
{
	char nm[64];
	int c4 = l2_gan_channels(c, 4), cr = l2_gan_channels(c, c->res);
	struct {
		const char *name;
		int ndim;
		int64_t shape[4];
	} want[] = {
		{"G.mapping.fc0.weight", 2, {c->wdim, c->zdim}},
		{"G.mapping.w_avg", 1, {c->wdim}},
		{"G.b4.const", 3, {c4, 4, 4}},
		{"G.b4.conv1.cmlp0.weight", 2, {c->chid, c->cdim}},
		{NULL, 4, {cr, cr, 3, 3}}, /* the last block's conv1: resolution and channels */
	};
	for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
		const char *name = want[i].name;
		if (!name) {
			snprintf(nm, sizeof nm, "G.b%d.conv1.weight", c->res);
			name = nm;
		}
		if (has_shape(st, name, want[i].ndim, want[i].shape) != 1)
			l2_die("%s: GAN config '%s' does not match the weights (%s is %s); the file is damaged or not an l2 "
			       "generator", path, cf, name, l2_st_find(st, name) ? "another shape" : "missing");
	}
	snprintf(nm, sizeof nm, "G.mapping.fc%d.weight", c->map_layers - 1);
	int deep = l2_st_find(st, nm) != NULL;
	snprintf(nm, sizeof nm, "G.mapping.fc%d.weight", c->map_layers);
	if (!deep || l2_st_find(st, nm))
		l2_die("%s: GAN config '%s' does not match the weights (the mapping network has another depth)", path, cf);
	if (c->res < 1024) {
		snprintf(nm, sizeof nm, "G.b%d.conv1.weight", 2 * c->res);
		if (l2_st_find(st, nm))
			l2_die("%s: GAN config '%s' does not match the weights (they go beyond %dx%d)", path, cf, c->res, c->res);
	}
}

void l2_gan_read_config(const char *path, L2GanConfig *c, char *net, size_t netlen)
{
	L2Safetensors *st = l2_st_open(path);
	const char *m = l2_st_metadata(st, "l2.model"), *cf = l2_st_metadata(st, "l2.gan.config");
	const char *nt = l2_st_metadata(st, "l2.gan.net");
	if (!m || strcmp(m, "lafite-gan") || !cf || !nt) l2_die("%s: not an l2 GAN weights file (no lafite-gan metadata)", path);
	char q[256]; /* the config as messages quote it: a file's bytes, escaped to one line */
	l2_escape(q, sizeof q, cf, strlen(cf));
	if (l2_gan_config_parse(cf, c)) l2_die("%s: bad GAN config '%s'", path, q);
	if (nt[0] == 'G') check_g_config(st, path, c, q);
	if (net) snprintf(net, netlen, "%s", nt);
	l2_st_close(st);
}

L2GanG *l2_gan_g_load(const char *path)
{
	L2GanConfig c;
	char net[16];
	l2_gan_read_config(path, &c, net, sizeof net);
	if (net[0] != 'G') l2_die("%s: holds the %s network, not a generator", path, net);
	L2GanG *G = l2_gan_g_new(&c, 0);
	l2_ckpt_load_weights(path, G->pl.p, G->pl.n);
	return G;
}
#endif
