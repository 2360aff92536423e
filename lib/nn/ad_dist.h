/* ad_dist.h — lib/nn/ad.h across the ranks of a data-parallel run
 * (lib/core/dist.h): the all-gather of rows for in-batch losses, and the
 * ordered sum of the parameters' gradients.
 *
 * Data parallelism here means: rank r of P holds its B/P rows of the global
 * batch of B, every per-sample term is written (sum over its rows) / B, and
 * the parameters' gradients are then summed over the ranks (not averaged),
 * which gives the single process's gradient up to the rounding of the local
 * GEMMs.  A loss that couples the rows of the batch (CLIP's InfoNCE, the
 * GAN's contrastive L_ConD and L_ConG) is computed by every rank on the
 * whole batch: ad_allgather_rows puts all ranks' rows together in rank
 * order, the local ones still attached to this rank's graph, the others
 * constants.  Each rank's backward then yields the global loss's gradient
 * with respect to its own rows, and the summed parameter gradients are
 * exactly the global loss's (Lafite's and DDP's gathers, averaged, give 1/P
 * of it).  A parameter used only after the gather (CLIP's logit scale) gets
 * the whole gradient on every rank: ad_dist_sum_grads counts it once, from
 * rank 0.
 *
 * Header-only, so it compiles with whatever `adr` the including file has
 * (float in the tools, double in tests built -DL2_AD_DOUBLE). */
#ifndef L2_AD_DIST_H
#define L2_AD_DIST_H

#include <stdlib.h>
#include <string.h>

#include "core/dist.h"
#include "core/util.h"
#include "nn/ad.h"
#include "nn/ckpt.h"

/* x[b, ...] of this rank (the same row count on every rank) -> [P b, ...],
 * rank r's rows at r b; gradients flow back to x only. */
static inline AdTensor *ad_allgather_rows(AdGraph *g, const L2Dist *d, AdTensor *x)
{
	if (d->size < 2) return x;
	int P = d->size;
	size_t bytes = x->n * sizeof(adr);
	adr *all = l2_malloc((size_t)P * bytes);
	l2_dist_allgather(d, x->v, bytes, all);
	AdTensor **parts = l2_malloc((size_t)P * sizeof *parts);
	for (int r = 0; r < P; r++)
		parts[r] = r == d->rank ? x : ad_input(g, x->ndim, x->shape, all + (size_t)r * x->n);
	AdTensor *y = ad_concat(g, parts, P, 0);
	free(parts);
	free(all);
	return y;
}

/* The sum over ranks of p[i]->g (i < n), in dist.h's fixed order, written
 * back to every rank; replicated[i] set: p[i]'s gradient is already the
 * whole batch's on every rank (used only after a gather): rank 0's counts,
 * the others' are zeroed first.  replicated may be NULL. */
static inline void ad_dist_sum_grads(const L2Dist *d, AdTensor **p, int n, const unsigned char *replicated)
{
	if (d->size < 2) return;
	size_t tot = 0;
	for (int i = 0; i < n; i++) tot += p[i]->n;
	adr *buf = l2_malloc((tot ? tot : 1) * sizeof(adr));
	size_t at = 0;
	for (int i = 0; i < n; i++) {
		if (replicated && replicated[i] && d->rank != 0) memset(buf + at, 0, p[i]->n * sizeof(adr));
		else memcpy(buf + at, p[i]->g, p[i]->n * sizeof(adr));
		at += p[i]->n;
	}
	if (sizeof(adr) == sizeof(double)) l2_dist_sum_f64(d, (double *)(void *)buf, tot);
	else l2_dist_sum_f32(d, (float *)(void *)buf, tot);
	at = 0;
	for (int i = 0; i < n; i++) {
		memcpy(p[i]->g, buf + at, p[i]->n * sizeof(adr));
		at += p[i]->n;
	}
	free(buf);
}

/* The replica check (l2_dist_check) over the parameters' values. */
static inline void ad_dist_check_params(const L2Dist *d, AdTensor **p, int n, const char *what)
{
	if (d->size < 2) return;
	size_t tot = 0;
	for (int i = 0; i < n; i++) tot += p[i]->n;
	adr *buf = l2_malloc((tot ? tot : 1) * sizeof(adr));
	size_t at = 0;
	for (int i = 0; i < n; i++) {
		memcpy(buf + at, p[i]->v, p[i]->n * sizeof(adr));
		at += p[i]->n;
	}
	l2_dist_check(d, buf, tot * sizeof(adr), what);
	free(buf);
}

/* Rank 0's training state to every rank: the state's step, data position
 * and settings, and every group's parameters, Adam moments and step count
 * and EMAs (a resume reads the files on rank 0 alone). */
static inline void ad_dist_bcast_state(const L2Dist *d, L2TrainState *st, const L2CkptGroup *g, int ng)
{
	if (d->size < 2) return;
	l2_dist_bcast(d, st, sizeof *st);
	for (int k = 0; k < ng; k++)
		for (int i = 0; i < g[k].n; i++) {
			size_t bytes = g[k].p[i]->n * sizeof(adr);
			l2_dist_bcast(d, g[k].p[i]->v, bytes);
			if (g[k].adam) {
				l2_dist_bcast(d, g[k].adam->m[i], bytes);
				l2_dist_bcast(d, g[k].adam->v[i], bytes);
			}
			for (int e = 0; e < g[k].nema; e++) l2_dist_bcast(d, g[k].ema[e]->w[i], bytes);
		}
	for (int k = 0; k < ng; k++)
		if (g[k].adam) l2_dist_bcast(d, &g[k].adam->t, sizeof g[k].adam->t);
}

#endif
