/* optim.c — AdamW, clipping, schedule, EMA (see optim.h). */
#include "nn/optim.h"
#include "core/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Element type adr (lib/nn/ad.h): float, or double when a test compiles this
 * file with -DL2_AD_DOUBLE (tests/c/test_gan_train.c). */
#ifdef L2_AD_DOUBLE
#define ADR_SQRT sqrt
#else
#define ADR_SQRT sqrtf
#endif

L2Adam *l2_adam_new(AdTensor **p, int n, double beta1, double beta2, double eps, double weight_decay)
{
	L2Adam *a = l2_calloc(1, sizeof *a);
	a->n = n;
	a->p = l2_malloc(n * sizeof *a->p);
	memcpy(a->p, p, n * sizeof *a->p);
	a->m = l2_calloc(n, sizeof *a->m);
	a->v = l2_calloc(n, sizeof *a->v);
	a->decay = l2_calloc(n, 1);
	for (int i = 0; i < n; i++) {
		a->m[i] = l2_calloc(p[i]->n, sizeof(adr));
		a->v[i] = l2_calloc(p[i]->n, sizeof(adr));
		a->decay[i] = p[i]->ndim >= 2;
	}
	a->beta1 = beta1;
	a->beta2 = beta2;
	a->eps = eps;
	a->wd = weight_decay;
	return a;
}

void l2_adam_free(L2Adam *a)
{
	if (!a) return;
	for (int i = 0; i < a->n; i++) {
		free(a->m[i]);
		free(a->v[i]);
	}
	free(a->m);
	free(a->v);
	free(a->decay);
	free(a->p);
	free(a);
}

void l2_adam_step(L2Adam *a, double lr)
{
	a->t++;
	double bc1 = 1 - pow(a->beta1, (double)a->t), bc2 = 1 - pow(a->beta2, (double)a->t);
	adr b1 = (adr)a->beta1, b2 = (adr)a->beta2, ob1 = (adr)(1 - a->beta1), ob2 = (adr)(1 - a->beta2);
	adr step = (adr)(lr / bc1), sbc2 = (adr)sqrt(bc2), eps = (adr)a->eps;
	for (int i = 0; i < a->n; i++) {
		AdTensor *p = a->p[i];
		adr *m = a->m[i], *v = a->v[i], *w = p->v;
		const adr *g = p->g;
		if (a->decay[i] && a->wd > 0) {
			adr keep = (adr)(1 - lr * a->wd);
			for (size_t j = 0; j < p->n; j++) w[j] *= keep;
		}
		for (size_t j = 0; j < p->n; j++) {
			m[j] = b1 * m[j] + ob1 * g[j];
			v[j] = b2 * v[j] + ob2 * g[j] * g[j];
			w[j] -= step * (m[j] / (ADR_SQRT(v[j]) / sbc2 + eps));
		}
	}
}

double l2_grad_clip(AdTensor **p, int n, double max_norm)
{
	double s = 0;
	for (int i = 0; i < n; i++)
		for (size_t j = 0; j < p[i]->n; j++) s += (double)p[i]->g[j] * p[i]->g[j];
	double norm = sqrt(s);
	if (max_norm > 0 && norm > max_norm) {
		adr c = (adr)(max_norm / (norm + 1e-6));
		for (int i = 0; i < n; i++)
			for (size_t j = 0; j < p[i]->n; j++) p[i]->g[j] *= c;
	}
	return norm;
}

double l2_lr_schedule(int64_t step, int64_t warmup, int64_t total, double lr, double min_lr)
{
	if (warmup > 0 && step < warmup) return lr * (double)(step + 1) / (double)warmup;
	if (total <= warmup) return lr;
	double t = (double)(step - warmup) / (double)(total - warmup);
	if (t > 1) t = 1;
	return min_lr + 0.5 * (lr - min_lr) * (1 + cos(M_PI * t));
}

L2Ema *l2_ema_new(AdTensor **p, int n)
{
	L2Ema *e = l2_calloc(1, sizeof *e);
	e->n = n;
	e->p = l2_malloc(n * sizeof *e->p);
	memcpy(e->p, p, n * sizeof *e->p);
	e->w = l2_calloc(n, sizeof *e->w);
	for (int i = 0; i < n; i++) {
		e->w[i] = l2_malloc_aligned(p[i]->n * sizeof(adr)); /* swappable with p->v */
		memcpy(e->w[i], p[i]->v, p[i]->n * sizeof(adr));
	}
	return e;
}

void l2_ema_free(L2Ema *e)
{
	if (!e) return;
	for (int i = 0; i < e->n; i++) l2_free_aligned(e->w[i]);
	free(e->w);
	free(e->p);
	free(e);
}

void l2_ema_update(L2Ema *e, double decay)
{
	adr d = (adr)decay, od = (adr)(1 - decay);
	for (int i = 0; i < e->n; i++)
		for (size_t j = 0; j < e->p[i]->n; j++) e->w[i][j] = d * e->w[i][j] + od * e->p[i]->v[j];
}

void l2_ema_swap(L2Ema *e)
{
	for (int i = 0; i < e->n; i++) {
		adr *t = e->p[i]->v;
		e->p[i]->v = e->w[i];
		e->w[i] = t;
	}
}
