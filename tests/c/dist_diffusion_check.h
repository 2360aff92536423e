/* dist_diffusion_check.h — the diffusion step data parallel equals one process:
 * the body of test_dist_diffusion (double build) and test_dist_diffusion_f32 (the
 * library's float build), run under `mpirun -np 2` by tests/mpi.bats.
 *
 * Every rank trains two tiny denoisers (8x8, 3 levels, attention at 8, dropout,
 * condition drop, gradient clipping at a norm it reaches, two EMAs) from the same
 * initialisation for 3 steps of a global batch of 8 in shards of 2: one alone on the
 * whole batch (l2_diffusion_trainer_new), one on its rank's samples
 * (l2_diffusion_trainer_new_dist).  The statistics of every step must be the single
 * process's bit for bit (the shards are the same); the gradient norm within TOL_LOSS;
 * every tensor, Adam moment and EMA after 3 steps within TOL_W of each tensor's
 * largest entry (the gaps are printed); then the replicas must be bit-identical.
 * Alone (make test): the one-rank trainer is the plain one, bit for bit. */
#include "check_dist.h"
#include "core/util.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { GB = 8, STEPS = 3, CDIM = 5, RES = 8 };

/* step s's images in [-1, 1] and unit conditions */
static void batch(int s, adr *x, adr *h)
{
	uint64_t st = 555 + (uint64_t)s;
	for (int i = 0; i < GB * 3 * RES * RES; i++) x[i] = (adr)(2 * check_unit(&st) - 1);
	for (int b = 0; b < GB; b++) {
		double n = 0;
		for (int k = 0; k < CDIM; k++) h[b * CDIM + k] = (adr)(2 * check_unit(&st) - 1), n += (double)h[b * CDIM + k] * h[b * CDIM + k];
		for (int k = 0; k < CDIM; k++) h[b * CDIM + k] = (adr)(h[b * CDIM + k] / sqrt(n));
	}
}

static double gap(const adr *a, const adr *b, size_t n)
{
	double m = 0, d = 0;
	for (size_t k = 0; k < n; k++) m = fmax(m, fabs((double)b[k])), d = fmax(d, fabs((double)a[k] - b[k]));
	return m > 0 ? d / m : d;
}

static L2Diffusion *net_new(void)
{
	L2DiffusionConfig c;
	l2_diffusion_preset("tiny", RES, CDIM, &c);
	c.dropout = 0.1;
	return l2_diffusion_new(&c, 4);
}

static L2DiffusionTrainConfig train_config(void)
{
	return (L2DiffusionTrainConfig){.lr = 0.01, .lr_warmup = 2, .batch = GB, .seed = 8, .ema_std = {0.05, 0.1}, .nema = 2,
					.cond_drop = 0.25, .weighting = {L2_DIFF_W_UNCERTAINTY, 0}, .grad_clip = GRAD_CLIP,
					.shard = 2};
}

static L2Dist D;

static int same_stats(const L2DiffusionStepStats *a, const L2DiffusionStepStats *b)
{
	int ok = a->loss == b->loss && a->mse == b->mse && a->lr == b->lr && a->nonfinite == b->nonfinite;
	for (int k = 0; k < L2_DIFF_BANDS; k++)
		ok &= a->band_mse[k] == b->band_mse[k] && a->band_u[k] == b->band_u[k] && a->band_n[k] == b->band_n[k];
	return ok;
}

static void test_diffusion_data_parallel_equals_single(void)
{
	int P = D.size, Bl = GB / P;
	size_t img = (size_t)3 * RES * RES;
	L2Diffusion *n1 = net_new(), *nd = net_new();
	L2DiffusionTrainConfig tc = train_config();
	L2DiffusionTrainer *one = l2_diffusion_trainer_new(n1, &tc), *dp = l2_diffusion_trainer_new_dist(nd, &tc, &D);
	adr *x = l2_malloc(GB * img * sizeof *x), *h = l2_malloc(GB * CDIM * sizeof *h);
	double wl = 0;
	int clipped = 0;
	for (int s = 0; s < STEPS; s++) {
		batch(s, x, h);
		L2DiffusionStepStats a, b;
		l2_diffusion_train_step(one, x, h, &a);
		l2_diffusion_train_step(dp, x + (size_t)D.rank * Bl * img, h + (size_t)D.rank * Bl * CDIM, &b);
		CHECK_MSG(same_stats(&a, &b), "step %d: statistics differ (loss %.17g vs %.17g)", s, b.loss, a.loss);
		wl = fmax(wl, check_rel(b.grad_norm, a.grad_norm));
		CHECK_MSG(check_rel(b.grad_norm, a.grad_norm) <= TOL_LOSS, "step %d: gradient norm %.17g vs %.17g", s, b.grad_norm,
			  a.grad_norm);
		clipped |= a.grad_norm > GRAD_CLIP;
	}
	CHECK(clipped); /* the clip acted: the norm is the whole batch's */
	int np, nt;
	AdTensor **p1 = l2_diffusion_params(n1, &np, &nt), **pd = l2_diffusion_params(nd, NULL, NULL);
	L2Adam *a1 = l2_diffusion_trainer_adam(one), *ad = l2_diffusion_trainer_adam(dp);
	double ww = 0, wm = 0, we = 0;
	for (int i = 0; i < np; i++) ww = fmax(ww, gap(pd[i]->v, p1[i]->v, p1[i]->n));
	for (int i = 0; i < nt; i++) {
		wm = fmax(wm, fmax(gap(ad->m[i], a1->m[i], p1[i]->n), gap(ad->v[i], a1->v[i], p1[i]->n)));
		for (int e = 0; e < 2; e++)
			we = fmax(we, gap(l2_diffusion_trainer_ema(dp, e)->w[i], l2_diffusion_trainer_ema(one, e)->w[i], p1[i]->n));
	}
	CHECK(a1->t == STEPS && ad->t == STEPS && l2_diffusion_trainer_step(dp) == STEPS);
	CHECK_MSG(ww <= TOL_W && wm <= TOL_W && we <= TOL_W, "after %d steps: weights %.2e, Adam %.2e, EMAs %.2e apart (limit %.0e)",
		  STEPS, ww, wm, we, TOL_W);
	if (D.rank == 0)
		printf("# diffusion %s, %d ranks x %d images vs one process x %d, 3 steps: statistics identical, gradient norm "
		       "%.2e, weights %.2e, Adam moments %.2e, EMAs %.2e (relative to each tensor's largest entry)\n",
		       sizeof(adr) == 8 ? "double" : "float", P, Bl, GB, wl, ww, wm, we);
	ad_dist_check_params(&D, pd, np, "the denoiser after the steps");
	free(x), free(h);
	l2_diffusion_trainer_free(one), l2_diffusion_trainer_free(dp);
	l2_diffusion_free(n1), l2_diffusion_free(nd);
}

/* Alone: a trainer of one rank is the plain one, bit for bit. */
static void test_one_rank_is_plain(void)
{
	L2Dist one = {.rank = 0, .size = 1, .local_rank = 0, .local_size = 1};
	size_t img = (size_t)3 * RES * RES;
	L2Diffusion *n1 = net_new(), *n2 = net_new();
	L2DiffusionTrainConfig tc = train_config();
	L2DiffusionTrainer *a = l2_diffusion_trainer_new(n1, &tc), *b = l2_diffusion_trainer_new_dist(n2, &tc, &one);
	adr *x = l2_malloc(GB * img * sizeof *x), *h = l2_malloc(GB * CDIM * sizeof *h);
	for (int s = 0; s < 2; s++) {
		batch(s, x, h);
		L2DiffusionStepStats sa, sb;
		l2_diffusion_train_step(a, x, h, &sa);
		l2_diffusion_train_step(b, x, h, &sb);
		CHECK(same_stats(&sa, &sb) && sa.grad_norm == sb.grad_norm && isfinite(sa.loss));
	}
	int np;
	AdTensor **p1 = l2_diffusion_params(n1, &np, NULL), **p2 = l2_diffusion_params(n2, NULL, NULL);
	for (int i = 0; i < np; i++) CHECK(!memcmp(p1[i]->v, p2[i]->v, p1[i]->n * sizeof(adr)));
	free(x), free(h);
	l2_diffusion_trainer_free(a), l2_diffusion_trainer_free(b);
	l2_diffusion_free(n1), l2_diffusion_free(n2);
}

int main(int argc, char **argv)
{
	l2_init(argc, argv);
	l2_threads = 1;
	if (check_dist_alone()) {
		RUN(test_one_rank_is_plain);
		return check_done();
	}
	check_dist_init(&D);
	if (GB % D.size || (GB / D.size) % 2) l2_die("run with 1, 2 or 4 ranks");
	RUN(test_diffusion_data_parallel_equals_single);
	return check_dist_done(&D);
}
