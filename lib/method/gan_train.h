/* gan_train.h — the training step of Lafite's conditional StyleGAN2
 * (METHOD §4; the networks are lib/models/gan.h): G, D, lazy R1 and the EMA.
 *
 *   L2GanTrainOptions o;
 *   l2_gan_train_defaults(&o);  o.seed = seed;  ...
 *   L2GanTrainer *t = l2_gan_trainer_new(&config, &o, clip_or_NULL);
 *   for (step ...) {
 *       (x, h: the batch, e.g. l2_train_data_batch(..., L2_GAN_PHASE_DATA, ...))
 *       L2GanLosses l;
 *       l2_gan_train_step(t, step, x, h, B, &l);
 *   }
 *   L2CkptGroup grp[2];  l2_gan_trainer_groups(t, grp);    the checkpoint's G and D
 *
 * One step, as StyleGAN2's phases Gmain, Dmain, Dreg:
 *   G: L_G + gamma_con L_ConD(fakes) + lambda_con L_ConG, one Adam step of G
 *      (and w_avg = lerp(mean w, w_avg, wavg_beta));
 *   D: L_D + gamma_con L_ConD(reals), one Adam step of D;
 *   R1 every r1_every steps (step % r1_every == 0): (r1 / 2) mean ||dD/dx||^2 on
 *      the reals, weighted by r1_every, its own Adam step of D; D's Adam uses
 *      StyleGAN2's lazy-regularisation correction (betas^mb, lr mb, mb =
 *      r1_every / (r1_every + 1));
 *   EMA of G with half-life ema_images images, ramped up to ema_rampup * images
 *      seen; w_avg copied into the EMA as is.
 * L_G, L_D are non-saturating logistic losses, (sum over samples) / B;
 * L_ConD, L_ConG the contrastive loss of l2_gan_contrastive between the
 * condition h and D's f_s(x) or the frozen CLIP image tower's features of a
 * random crop (side uniform in [crop_lo, crop_hi] R) of the fake.
 *
 * Augmentation (o.augment, lib/method/augment.h): every image D sees, fake or
 * real, goes through DiffAugment's T first, with its own draws per pass and
 * sample (the phases below); L_ConD is then taken on D's features of the
 * augmented images, L_ConG on the un-augmented fake (CLIP is not D).  R1 is
 * D's gradient at the augmented reals of the D phase, T(x), with respect to
 * T(x): D is kept smooth where it actually sees data.  (DiffAugment's
 * StyleGAN2 code differentiates D(T(x)) with respect to x instead, which
 * carries T's Jacobian: the cutout square and the shifted-out border get no
 * penalty.  Ours keeps l2_gan_r1's difference of D-only gradients.)
 *
 * Randomness: sample b's latent z, G's noise inputs and its crop box come
 * from l2_train_rng(seed, step, L2_GAN_PHASE_G or _D, b) in that order (the
 * crop in the G phase only); the data draws (x-flip, gaussian conditions)
 * belong to L2_GAN_PHASE_DATA.  No generator state crosses a step.  When
 * a batch is split across processes (../DISTRIBUTED §3.3), each computes its
 * samples' draws exactly; what still needs the whole batch is the in-batch
 * contrastive terms (all-gather f and h), minibatch std (groups stay in a
 * process), and two means over the batch: w_avg's mean w and R1's mean
 * gradient norm (sums, then / B).
 *
 * Compiles in float (training) and, included after lib/nn/ad.c, optim.c,
 * models/gan.c and clip_train.c with -DL2_AD_DOUBLE, in double: the step test
 * tests/c/test_gan_train.c against a PyTorch float64 transcription. */
#ifndef L2_GAN_TRAIN_H
#define L2_GAN_TRAIN_H

#include <stdint.h>

#include "method/augment.h"
#include "models/clip_train.h"
#include "models/gan.h"
#include "nn/ckpt.h"
#include "nn/optim.h"

/* The method's constants and defaults (StyleGAN2's and Lafite's values). */
#define L2_GAN_LR          0.0025  /* Adam learning rate of G and D */
#define L2_GAN_BETA1       0.0     /* Adam betas */
#define L2_GAN_BETA2       0.99
#define L2_GAN_ADAM_EPS    1e-8
#define L2_GAN_GAMMA_CON   10.0    /* weight of L_ConD */
#define L2_GAN_LAMBDA_CON  10.0    /* weight of L_ConG */
#define L2_GAN_TAU         0.5     /* contrastive temperature */
#define L2_GAN_R1_GAMMA    10.0    /* R1 weight (0: off) */
#define L2_GAN_R1_EVERY    16      /* lazy R1 interval */
#define L2_GAN_EMA_IMAGES  10000.0 /* G EMA half-life in images */
#define L2_GAN_EMA_RAMPUP  0.05    /* half-life at most this fraction of the images seen (0: no ramp) */
#define L2_GAN_WAVG_BETA   0.995   /* w_avg tracking of mean w */
#define L2_GAN_CROP_LO     0.5     /* L_ConG crop side, a fraction of R */
#define L2_GAN_CROP_HI     1.0

/* Phases of the per-sample streams (lib/nn/train.h l2_train_rng); the
 * augmentation's draws (--augment) for the fakes of G's step, the fakes of
 * D's step and the reals of D's step (and their R1) have phases of their own,
 * so turning it on changes no other draw. */
enum {
	L2_GAN_PHASE_DATA = 0, L2_GAN_PHASE_G = 1, L2_GAN_PHASE_D = 2,
	L2_GAN_PHASE_AUG_G = 3, L2_GAN_PHASE_AUG_FAKE = 4, L2_GAN_PHASE_AUG_REAL = 5
};

typedef struct {
	double lr_g, lr_d, beta1, beta2;
	double gamma_con, lambda_con, tau;
	double r1;
	long r1_every;
	double r1_eps;       /* the R1 Hessian-vector product's relative step (l2_gan_r1) */
	double ema_images, ema_rampup;
	double wavg_beta, crop_lo, crop_hi;
	uint64_t seed;       /* the per-sample streams */
	int augment;         /* DiffAugment policy, L2_AUG_* of lib/method/augment.h (0: off) */
} L2GanTrainOptions;

void l2_gan_train_defaults(L2GanTrainOptions *o);

typedef struct {
	L2GanConfig c;
	L2GanTrainOptions o;
	L2GanG *G;
	L2GanD *D;
	AdTensor **gp, **dp; /* G's and D's tensors (lib/models/gan.h order) */
	int ng, nd;
	L2Adam *adam_g, *adam_d;
	L2Ema *ema;          /* G_ema */
	L2ClipTrain *clip;   /* frozen CLIP (image tower) for L_ConG; NULL: no L_ConG */
	AdGraph *g;
	double mb;           /* lazy-R1 correction of D's Adam */
	/* scratch */
	int cap;
	adr *z, *fake;
	int *box;
	L2Rng *rs;
	L2AugParams *aug;    /* [B] this pass's augmentation draws */
	adr *real_aug;       /* the augmented reals, for R1 */
} L2GanTrainer;

/* G from (seed, ...) and D from seed + 1 as lib/models/gan.h initialises
 * them, their Adam states and G's EMA.  clip (not owned) is used when
 * lambda_con > 0. */
L2GanTrainer *l2_gan_trainer_new(const L2GanConfig *c, const L2GanTrainOptions *o, L2ClipTrain *clip);
void l2_gan_trainer_free(L2GanTrainer *t);
/* After G's tensors were replaced (fine-tuning from a run): the EMA starts
 * from them. */
void l2_gan_trainer_reset_ema(L2GanTrainer *t);

typedef struct {
	double g;      /* L_G */
	double d;      /* L_D (fakes + reals) */
	double con_d;  /* L_ConD on the reals (D phase) */
	double con_g;  /* L_ConG (0 without CLIP) */
	double r1;     /* the R1 penalty, when r1_done */
	int r1_done;
} L2GanLosses;

/* One step (number `step`, from 0) on reals x[B, 3, R, R] in [-1, 1] with
 * conditions h[B, cdim]; B < 4 or a multiple of 4 (minibatch std groups).
 * Dies "step N: a loss is not finite (lower --lr?)" on NaN or infinity. */
void l2_gan_train_step(L2GanTrainer *t, int64_t step, const adr *x, const adr *h, int B, L2GanLosses *out);
/* The same step on this rank's B samples of a global batch of Btot split
 * over the ranks of d (lib/core/dist.h; ../DISTRIBUTED §3.3): pos[b] is
 * sample b's place in the global batch (its random streams; NULL: b).  The
 * samples of a minibatch-std group must be on one rank, in the group's
 * order: with M = Btot / 4, rank r holds positions g M + r M/P + m for
 * g = 0..3, m < M/P, g-major (l2_gan_rank_positions).  L_ConD and L_ConG
 * are taken over the gathered batch with its exact gradient; L_G, L_D are
 * (sum over the batch) / Btot, R1 the batch's mean, w_avg the batch's mean
 * w; the gradients are summed over the ranks in dist.h's fixed order, so
 * every rank applies the same bits, equal to one process on the whole
 * batch up to rounding.  The losses in *out are the whole batch's. */
void l2_gan_train_step_dist(L2GanTrainer *t, const L2Dist *d, int64_t step, const adr *x, const adr *h, int B,
			    int Btot, const int *pos, L2GanLosses *out);
/* pos[Btot / P]: the global positions rank r of P holds (above); Btot a
 * multiple of 4 P. */
void l2_gan_rank_positions(int Btot, int P, int r, int *pos);
/* The EMA's decay after `step` steps of B images. */
double l2_gan_ema_beta(const L2GanTrainOptions *o, int64_t step, int B);

/* G_ema's images out[n, 3, R, R] for conditions h[n, cdim], image i from
 * the stream (seed, i): its z, then its noise inputs (the tick's grids and
 * FD samples). */
void l2_gan_trainer_sample(L2GanTrainer *t, const adr *h, int n, uint64_t seed, adr *out);

/* G ("G": parameters, Adam, the EMA "ema") and D ("D": parameters, Adam)
 * for lib/nn/ckpt.h's training state.  Returns 2. */
int l2_gan_trainer_groups(L2GanTrainer *t, L2CkptGroup g[2]);

#endif
