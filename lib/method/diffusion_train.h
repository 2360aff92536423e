/* diffusion_train.h — one training step of the diffusion denoiser (DIFFUSION.md §5.5):
 * noise levels, noise and condition dropout drawn per (step, sample), the loss of
 * lib/models/diffusion.h over the batch, Adam (betas 0.9 / 0.99, no weight decay),
 * the forced weight renormalisation and the power-function EMAs.
 *
 * Threads: the batch is cut into shards of a fixed size (default 8 images) whatever the
 * thread count; each shard's gradient goes into a replica of its own
 * (l2_diffusion_replica) on one of l2_threads threads with single-threaded BLAS, and
 * the shard gradients are added in shard order.  All randomness of sample i at step t
 * comes from its stream l2_train_rng(seed, t, L2_DIFF_PHASE, i) (lib/nn/train.h), in
 * this order: ln sigma ~ N(P_mean, P_std^2), the condition drop, the noise eps, the
 * dropout key.  So a step's result depends on
 * (weights, step, batch) only: the same bytes for any --threads, and a resumed run
 * equals an uninterrupted one.
 *
 * Data parallel (l2_diffusion_trainer_new_dist; ../DISTRIBUTED §3.3): under P ranks
 * tc->batch stays the global batch B (a multiple of P) and rank r holds the samples at
 * global positions [r B/P, (r+1) B/P), whose draws are keyed by those positions, so
 * each rank draws exactly what one process would for them.  The loss is per sample,
 * written (sum over samples) / B, so summing the ranks' gradients in lib/core/dist.h's
 * fixed order gives the single process's gradient up to the rounding of the sums
 * (every rank and rerun bit-identical); clipping, Adam, the renormalisation and the
 * EMAs then run on every rank on identical bits.  The statistics are the single
 * process's: every sample's noise level, MSE and u and every shard's loss are
 * all-gathered and folded in the single process's order (bit-identical to it when
 * B/P is a multiple of the shard size, so the shards are the same).
 *
 * The caller supplies the batch (images and conditions from the shared data module)
 * and owns checkpoints: the trainer exposes its Adam state, EMAs and step. */
#ifndef L2_DIFFUSION_TRAIN_H
#define L2_DIFFUSION_TRAIN_H

#include <stdint.h>

#include "core/dist.h"
#include "models/diffusion.h"
#include "nn/optim.h"

#define L2_DIFF_MAXEMA 4
#define L2_DIFF_BANDS 6          /* sigma buckets of the loss log, log-spaced over [0.002, 80] */
#define L2_DIFF_SHARD 8          /* images per shard */
#define L2_DIFF_BETA1 0.9
#define L2_DIFF_BETA2 0.99
#define L2_DIFF_ADAM_EPS 1e-8
#define L2_DIFF_PHASE 0x64696666 /* l2_train_rng phase of the step's draws ("diff") */

typedef struct {
	double lr;                   /* peak learning rate */
	int64_t lr_warmup, lr_ref;   /* linear warm-up steps; 1/sqrt(t / ref) decay after ref (0: none) */
	int batch;
	uint64_t seed;
	double ema_std[L2_DIFF_MAXEMA]; /* power-function EMA lengths (relative std) */
	int nema;
	double cond_drop;            /* probability of the null condition */
	L2DiffusionWeighting weighting;
	double grad_clip;            /* global norm limit, 0: none */
	int shard;                   /* images per shard, 0: L2_DIFF_SHARD */
} L2DiffusionTrainConfig;

typedef struct {
	double loss;                 /* the objective (per image, summed over elements) */
	double mse;                  /* plain mean (D - y)^2 over the batch */
	double band_mse[L2_DIFF_BANDS], band_u[L2_DIFF_BANDS]; /* sums per sigma bucket */
	int band_n[L2_DIFF_BANDS];
	double lr, grad_norm;
	int nonfinite;               /* gradient entries that were not finite (zeroed) */
} L2DiffusionStepStats;

typedef struct L2DiffusionTrainer L2DiffusionTrainer;

/* Trains net in place (the trainer keeps a pointer; free the trainer first). */
L2DiffusionTrainer *l2_diffusion_trainer_new(L2Diffusion *net, const L2DiffusionTrainConfig *tc);
/* The same as rank d->rank of d->size (above); d NULL or of size 1: one process.  Dies
 * unless d->size divides tc->batch. */
L2DiffusionTrainer *l2_diffusion_trainer_new_dist(L2Diffusion *net, const L2DiffusionTrainConfig *tc, const L2Dist *d);
void l2_diffusion_trainer_free(L2DiffusionTrainer *t);
/* This rank's samples of the step (all of them alone): x[batch / P, cimg, R, R] in
 * [-1, 1]; cond[batch / P, cdim] unit rows (zero rows: null), NULL when cdim is 0.
 * Advances the step; under P ranks every rank must call it, and every rank gets the
 * whole batch's statistics. */
void l2_diffusion_train_step(L2DiffusionTrainer *t, const adr *x, const adr *cond, L2DiffusionStepStats *st);

/* Checkpoint access: steps done, the Adam state (over the trainable tensors), the EMAs. */
int64_t l2_diffusion_trainer_step(const L2DiffusionTrainer *t);
void l2_diffusion_trainer_set_step(L2DiffusionTrainer *t, int64_t step);
L2Adam *l2_diffusion_trainer_adam(L2DiffusionTrainer *t);
L2Ema *l2_diffusion_trainer_ema(L2DiffusionTrainer *t, int i);
const L2DiffusionTrainConfig *l2_diffusion_trainer_config(const L2DiffusionTrainer *t);

/* The sigma bucket of a noise level (0 .. L2_DIFF_BANDS-1) and bucket k's lower edge. */
int l2_diffusion_band(double sigma);
double l2_diffusion_band_edge(int k);

#endif
