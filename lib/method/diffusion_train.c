/* diffusion_train.c — the diffusion training step (see diffusion_train.h). */
#include "method/diffusion_train.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/parallel.h"
#include "core/rng.h"
#include "core/util.h"
#include "nn/train.h"

struct L2DiffusionTrainer {
	L2DiffusionTrainConfig tc;
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
	/* this step's inputs, per sample */
	const float *x, *cond;
	float *eps, *cnd;         /* [batch, CHW], [batch, cdim] (dropped rows zero) */
	double *sigma, *mse, *u;
	uint64_t *dropkey;
	double *shard_loss;       /* [nshard] */
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
	if (tc->batch < 1) l2_die("diffusion training: batch %d", tc->batch);
	if (tc->nema < 0 || tc->nema > L2_DIFF_MAXEMA) l2_die("diffusion training: %d EMAs (at most %d)", tc->nema, L2_DIFF_MAXEMA);
	L2DiffusionTrainer *t = l2_calloc(1, sizeof *t);
	t->tc = *tc;
	t->net = net;
	t->p = l2_diffusion_params(net, &t->np, &t->ntrain);
	t->shard = tc->shard > 0 ? tc->shard : L2_DIFF_SHARD;
	if (t->shard > tc->batch) t->shard = tc->batch;
	t->nshard = (tc->batch + t->shard - 1) / t->shard;
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
	size_t chw = (size_t)c->cimg * c->res * c->res, B = (size_t)tc->batch;
	t->eps = l2_malloc(l2_mul_size(B, chw * sizeof(float)));
	t->cnd = l2_calloc(B * (c->cdim ? c->cdim : 1), sizeof(float));
	t->sigma = l2_malloc(B * sizeof(double));
	t->mse = l2_malloc(B * sizeof(double));
	t->u = l2_malloc(B * sizeof(double));
	t->dropkey = l2_malloc(B * sizeof(uint64_t));
	t->shard_loss = l2_malloc((size_t)t->nshard * sizeof(double));
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
	free(t->shard_loss);
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
	int b0 = s * t->shard, n = t->tc.batch - b0 < t->shard ? t->tc.batch - b0 : t->shard;
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

void l2_diffusion_train_step(L2DiffusionTrainer *t, const float *x, const float *cond, L2DiffusionStepStats *st)
{
	const L2DiffusionConfig *c = l2_diffusion_config(t->net);
	int B = t->tc.batch, d = c->cdim;
	size_t chw = (size_t)c->cimg * c->res * c->res;
	/* noise levels, condition drop, noise, dropout keys: per (step, sample) */
	for (int b = 0; b < B; b++) {
		L2Rng r;
		l2_train_rng(&r, t->tc.seed, t->step, L2_DIFF_PHASE, (uint64_t)b);
		t->sigma[b] = exp(c->p_mean + c->p_std * l2_rng_normal(&r));
		int drop = l2_rng_uniform(&r) < t->tc.cond_drop;
		if (d) {
			if (drop || !cond) memset(t->cnd + (size_t)b * d, 0, (size_t)d * sizeof(float));
			else memcpy(t->cnd + (size_t)b * d, cond + (size_t)b * d, (size_t)d * sizeof(float));
		}
		l2_rng_fill_normal(&r, t->eps + (size_t)b * chw, chw, 0, 1);
		t->dropkey[b] = l2_rng_u64(&r);
	}
	t->x = x;
	/* shard gradients: threads with single-threaded BLAS (also with one thread: a GEMM
	 * split over OpenBLAS threads need not round as the single-threaded one does) */
	int blas_was = l2_blas_threads(1);
	l2_parallel_workers(t->nthread, shard_worker, t);
	/* the batch gradient, in shard order (parameters split over the threads) */
	l2_parallel_workers(t->nthread, reduce_worker, t);
	l2_blas_threads(blas_was);
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
	if (st) {
		memset(st, 0, sizeof *st);
		for (int s = 0; s < t->nshard; s++) st->loss += t->shard_loss[s];
		for (int b = 0; b < B; b++) {
			int k = l2_diffusion_band(t->sigma[b]);
			st->mse += t->mse[b] / B;
			st->band_mse[k] += t->mse[b];
			st->band_u[k] += t->u[b];
			st->band_n[k]++;
		}
		st->lr = lr, st->grad_norm = gn, st->nonfinite = bad;
	}
}
