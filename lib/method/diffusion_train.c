/* diffusion_train.c — the diffusion training step (see diffusion_train.h). */
#include "method/diffusion_train.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/parallel.h"
#include "core/rng.h"
#include "core/util.h"
#include "nn/ad_dist.h"
#include "nn/train.h"

struct L2DiffusionTrainer {
	L2DiffusionTrainConfig tc;
	L2Dist d;                 /* this rank (0 of 1 alone) */
	int nb, b0;               /* this rank's samples: global positions [b0, b0 + nb) */
	L2Diffusion *net;
	AdTensor **p;
	int np, ntrain;
	int nshard, shard;
	L2Diffusion **rep;        /* [nshard] replicas: shard gradients */
	int nthread;
	AdGraph **g;              /* [nthread] */
	L2Adam *adam;
	L2Ema *ema[L2_DIFF_MAXEMA];
	double gamma[L2_DIFF_MAXEMA];
	int64_t step;
	/* this step's inputs, per local sample */
	const adr *x;
	adr *eps, *cnd;           /* [nb, CHW], [nb, cdim] (dropped rows zero) */
	float *epsf;              /* [CHW] the noise as drawn, when adr is not float */
	double *sigma, *mse, *u;
	uint64_t *dropkey;
	double *shard_loss;       /* [nshard] */
	double *mine, *all;       /* under P ranks: the statistics gathered, [P * (3 nb + nshard)] */
};

int l2_diffusion_band(double sigma)
{
	double t = log(sigma / 0.002) / log(80 / 0.002) * L2_DIFF_BANDS;
	int k = (int)floor(t);
	return k < 0 ? 0 : k >= L2_DIFF_BANDS ? L2_DIFF_BANDS - 1 : k;
}

double l2_diffusion_band_edge(int k) { return 0.002 * pow(80 / 0.002, (double)k / L2_DIFF_BANDS); }

L2DiffusionTrainer *l2_diffusion_trainer_new(L2Diffusion *net, const L2DiffusionTrainConfig *tc)
{
	return l2_diffusion_trainer_new_dist(net, tc, NULL);
}

L2DiffusionTrainer *l2_diffusion_trainer_new_dist(L2Diffusion *net, const L2DiffusionTrainConfig *tc, const L2Dist *d)
{
	if (tc->batch < 1) l2_die("diffusion training: batch %d", tc->batch);
	if (tc->nema < 0 || tc->nema > L2_DIFF_MAXEMA) l2_die("diffusion training: %d EMAs (at most %d)", tc->nema, L2_DIFF_MAXEMA);
	L2DiffusionTrainer *t = l2_calloc(1, sizeof *t);
	t->tc = *tc;
	t->d = d ? *d : (L2Dist){.rank = 0, .size = 1, .local_rank = 0, .local_size = 1};
	if (tc->batch % t->d.size)
		l2_die("diffusion training: a batch of %d does not split over %d ranks", tc->batch, t->d.size);
	t->nb = tc->batch / t->d.size, t->b0 = t->d.rank * t->nb;
	t->net = net;
	t->p = l2_diffusion_params(net, &t->np, &t->ntrain);
	t->shard = tc->shard > 0 ? tc->shard : L2_DIFF_SHARD;
	if (t->shard > t->nb) t->shard = t->nb;
	t->nshard = (t->nb + t->shard - 1) / t->shard;
	t->rep = l2_calloc((size_t)t->nshard, sizeof *t->rep);
	for (int s = 0; s < t->nshard; s++) t->rep[s] = l2_diffusion_replica(net);
	t->nthread = l2_threads < t->nshard ? l2_threads : t->nshard;
	if (t->nthread < 1) t->nthread = 1;
	if (t->nthread > 64) t->nthread = 64;
	t->g = l2_calloc((size_t)t->nthread, sizeof *t->g);
	for (int i = 0; i < t->nthread; i++) t->g[i] = ad_graph_new();
	t->adam = l2_adam_new(t->p, t->ntrain, L2_DIFF_BETA1, L2_DIFF_BETA2, L2_DIFF_ADAM_EPS, 0);
	for (int i = 0; i < tc->nema; i++) {
		t->ema[i] = l2_ema_new(t->p, t->ntrain);
		t->gamma[i] = l2_diffusion_ema_gamma(tc->ema_std[i]);
	}
	const L2DiffusionConfig *c = l2_diffusion_config(net);
	size_t chw = (size_t)c->cimg * c->res * c->res, B = (size_t)t->nb;
	t->eps = l2_malloc(l2_mul_size(B, chw * sizeof(adr)));
	t->cnd = l2_calloc(B * (c->cdim ? c->cdim : 1), sizeof(adr));
	if (sizeof(adr) != sizeof(float)) t->epsf = l2_malloc(chw * sizeof(float));
	t->sigma = l2_malloc(B * sizeof(double));
	t->mse = l2_malloc(B * sizeof(double));
	t->u = l2_malloc(B * sizeof(double));
	t->dropkey = l2_malloc(B * sizeof(uint64_t));
	t->shard_loss = l2_malloc((size_t)t->nshard * sizeof(double));
	if (t->d.size > 1) {
		size_t per = 3 * B + (size_t)t->nshard;
		t->mine = l2_malloc(per * sizeof(double));
		t->all = l2_malloc((size_t)t->d.size * per * sizeof(double));
	}
	return t;
}

void l2_diffusion_trainer_free(L2DiffusionTrainer *t)
{
	if (!t) return;
	for (int s = 0; s < t->nshard; s++) l2_diffusion_free(t->rep[s]);
	for (int i = 0; i < t->nthread; i++) ad_graph_free(t->g[i]);
	for (int i = 0; i < t->tc.nema; i++) l2_ema_free(t->ema[i]);
	l2_adam_free(t->adam);
	free(t->rep), free(t->g), free(t->eps), free(t->cnd), free(t->sigma), free(t->mse), free(t->u), free(t->dropkey);
	free(t->shard_loss), free(t->epsf), free(t->mine), free(t->all);
	free(t);
}

int64_t l2_diffusion_trainer_step(const L2DiffusionTrainer *t) { return t->step; }
void l2_diffusion_trainer_set_step(L2DiffusionTrainer *t, int64_t step) { t->step = step; }
L2Adam *l2_diffusion_trainer_adam(L2DiffusionTrainer *t) { return t->adam; }
L2Ema *l2_diffusion_trainer_ema(L2DiffusionTrainer *t, int i) { return i >= 0 && i < t->tc.nema ? t->ema[i] : NULL; }
const L2DiffusionTrainConfig *l2_diffusion_trainer_config(const L2DiffusionTrainer *t) { return &t->tc; }

/* ---- shards ----------------------------------------------------------------------------- */

static void run_shard(L2DiffusionTrainer *t, AdGraph *g, int s)
{
	const L2DiffusionConfig *c = l2_diffusion_config(t->net);
	size_t chw = (size_t)c->cimg * c->res * c->res;
	int b0 = s * t->shard, n = t->nb - b0 < t->shard ? t->nb - b0 : t->shard;
	L2Diffusion *r = t->rep[s];
	int np, nt;
	AdTensor **p = l2_diffusion_params(r, &np, &nt);
	ad_zero_grads(p, nt);
	ad_graph_reset(g);
	AdTensor *L = l2_diffusion_loss(g, r, t->x + (size_t)b0 * chw, t->eps + (size_t)b0 * chw, t->sigma + b0,
					c->cdim ? t->cnd + (size_t)b0 * c->cdim : NULL,
					c->dropout > 0 ? t->dropkey + b0 : NULL, n, t->tc.batch, &t->tc.weighting,
					t->mse + b0, t->u + b0);
	t->shard_loss[s] = L->v[0];
	ad_backward(g, L);
}

/* worker w: shards w, w + nthread, ... on its own graph */
static void shard_worker(void *ctx, int w)
{
	L2DiffusionTrainer *t = ctx;
	ad_gemm_serial(1);
	for (int s = w; s < t->nshard; s += t->nthread) run_shard(t, t->g[w], s);
	ad_gemm_serial(0);
}

/* g = sum over shards of the replicas' gradients, in shard order; worker w takes the
 * trainable tensors [ntrain w / nthread, ntrain (w + 1) / nthread). */
static void reduce_worker(void *ctx, int w)
{
	L2DiffusionTrainer *t = ctx;
	int k0 = (int)((long)t->ntrain * w / t->nthread), k1 = (int)((long)t->ntrain * (w + 1) / t->nthread);
	for (int k = k0; k < k1; k++) {
		adr *g = t->p[k]->g;
		size_t n = t->p[k]->n;
		memcpy(g, l2_diffusion_params(t->rep[0], NULL, NULL)[k]->g, n * sizeof(adr));
		for (int s = 1; s < t->nshard; s++) {
			const adr *gs = l2_diffusion_params(t->rep[s], NULL, NULL)[k]->g;
			for (size_t i = 0; i < n; i++) g[i] += gs[i];
		}
	}
}

/* The whole batch's statistics in the single process's order: alone from this
 * process's arrays, under P ranks from every rank's, all-gathered in rank order. */
static void step_stats(L2DiffusionTrainer *t, L2DiffusionStepStats *st)
{
	int B = t->tc.batch, nb = t->nb, ns = t->nshard, P = t->d.size;
	const double *sigma = t->sigma, *mse = t->mse, *u = t->u, *sl = t->shard_loss;
	size_t per = 3 * (size_t)nb + ns;
	if (P > 1) {
		for (int b = 0; b < nb; b++) t->mine[3 * b] = t->sigma[b], t->mine[3 * b + 1] = t->mse[b], t->mine[3 * b + 2] = t->u[b];
		memcpy(t->mine + 3 * nb, t->shard_loss, ns * sizeof(double));
		l2_dist_allgather(&t->d, t->mine, per * sizeof(double), t->all);
	}
	memset(st, 0, sizeof *st);
	for (int r = 0; r < P; r++) {
		if (P > 1) sl = t->all + r * per + 3 * nb;
		for (int s = 0; s < ns; s++) st->loss += sl[s];
	}
	for (int b = 0; b < B; b++) {
		double sg = sigma[b], m = mse[b], uu = u[b];
		if (P > 1) {
			const double *q = t->all + (b / nb) * per + 3 * (b % nb);
			sg = q[0], m = q[1], uu = q[2];
		}
		int k = l2_diffusion_band(sg);
		st->mse += m / B;
		st->band_mse[k] += m;
		st->band_u[k] += uu;
		st->band_n[k]++;
	}
}

void l2_diffusion_train_step(L2DiffusionTrainer *t, const adr *x, const adr *cond, L2DiffusionStepStats *st)
{
	const L2DiffusionConfig *c = l2_diffusion_config(t->net);
	int d = c->cdim;
	size_t chw = (size_t)c->cimg * c->res * c->res;
	/* noise levels, condition drop, noise, dropout keys: per (step, global position) */
	for (int b = 0; b < t->nb; b++) {
		L2Rng r;
		l2_train_rng(&r, t->tc.seed, t->step, L2_DIFF_PHASE, (uint64_t)(t->b0 + b));
		t->sigma[b] = exp(c->p_mean + c->p_std * l2_rng_normal(&r));
		int drop = l2_rng_uniform(&r) < t->tc.cond_drop;
		if (d) {
			if (drop || !cond) memset(t->cnd + (size_t)b * d, 0, (size_t)d * sizeof(adr));
			else memcpy(t->cnd + (size_t)b * d, cond + (size_t)b * d, (size_t)d * sizeof(adr));
		}
		adr *e = t->eps + (size_t)b * chw;
		if (!t->epsf) l2_rng_fill_normal(&r, (float *)(void *)e, chw, 0, 1);
		else {
			l2_rng_fill_normal(&r, t->epsf, chw, 0, 1);
			for (size_t i = 0; i < chw; i++) e[i] = t->epsf[i];
		}
		t->dropkey[b] = l2_rng_u64(&r);
	}
	t->x = x;
	/* shard gradients: threads with single-threaded BLAS (also with one thread: a GEMM
	 * split over OpenBLAS threads need not round as the single-threaded one does) */
	int blas_was = l2_blas_threads(1);
	l2_parallel_workers(t->nthread, shard_worker, t);
	/* this rank's gradient, in shard order (parameters split over the threads) */
	l2_parallel_workers(t->nthread, reduce_worker, t);
	l2_blas_threads(blas_was);
	/* the batch's: summed over the ranks in the fixed order (a no-op alone) */
	ad_dist_sum_grads(&t->d, t->p, t->ntrain, NULL);
	/* non-finite entries zeroed and counted (EDM2's force_finite), optional clipping */
	int bad = 0;
	for (int k = 0; k < t->ntrain; k++)
		for (size_t i = 0; i < t->p[k]->n; i++)
			if (!isfinite(t->p[k]->g[i])) t->p[k]->g[i] = 0, bad++;
	double gn = l2_grad_clip(t->p, t->ntrain, t->tc.grad_clip);
	double lr = l2_diffusion_lr(t->tc.lr, t->step, t->tc.lr_warmup, t->tc.lr_ref);
	l2_adam_step(t->adam, lr);
	l2_diffusion_renormalize(t->net);
	for (int i = 0; i < t->tc.nema; i++) l2_ema_update(t->ema[i], l2_diffusion_ema_beta(t->gamma[i], t->step + 1));
	t->step++;
	L2DiffusionStepStats tmp;
	step_stats(t, st ? st : &tmp); /* a collective under P ranks: always */
	if (st) st->lr = lr, st->grad_norm = gn, st->nonfinite = bad;
}
