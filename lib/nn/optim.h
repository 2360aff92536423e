/* optim.h — optimisers and training-loop helpers over lib/nn/ad.h parameters.
 *
 * Adam/AdamW follow torch.optim.AdamW (decoupled weight decay applied as
 * p *= 1 - lr*wd before the Adam update; bias corrections; eps added to
 * sqrt(v_hat)), with a per-parameter decay switch (by default: decay
 * matrices and convolution kernels, not gains, biases, embeddings of
 * position or class, nor the logit scale — the caller decides).
 * Gradient clipping by global L2 norm; warmup + cosine learning-rate
 * schedule; an exponential moving average of the weights. */
#ifndef L2_OPTIM_H
#define L2_OPTIM_H

#include <stdint.h>

#include "nn/ad.h"

typedef struct {
	int n;
	AdTensor **p;       /* [n] parameters (not owned) */
	adr **m, **v;     /* [n][p->n] first and second moments */
	unsigned char *decay; /* [n] 1 = apply weight decay */
	double beta1, beta2, eps, wd;
	int64_t t;          /* steps taken */
} L2Adam;

L2Adam *l2_adam_new(AdTensor **p, int n, double beta1, double beta2, double eps, double weight_decay);
void l2_adam_free(L2Adam *a);
/* One step with learning rate lr (gradients in p[i]->g). */
void l2_adam_step(L2Adam *a, double lr);

/* Scale all gradients so their global L2 norm is at most max_norm (when
 * max_norm > 0); returns the norm before clipping. */
double l2_grad_clip(AdTensor **p, int n, double max_norm);

/* Linear warmup over `warmup` steps from 0, then cosine from lr to
 * min_lr at step `total`. */
double l2_lr_schedule(int64_t step, int64_t warmup, int64_t total, double lr, double min_lr);

typedef struct {
	int n;
	AdTensor **p;
	adr **w;          /* [n][p->n] averaged weights */
} L2Ema;

L2Ema *l2_ema_new(AdTensor **p, int n); /* starts equal to the parameters */
void l2_ema_free(L2Ema *e);
/* w = decay w + (1 - decay) p */
void l2_ema_update(L2Ema *e, double decay);
/* Swap parameters and averages (evaluate or save the EMA; swap back). */
void l2_ema_swap(L2Ema *e);

#endif
