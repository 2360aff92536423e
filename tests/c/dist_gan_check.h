/* dist_gan_check.h — the GAN step data parallel equals one process: the
 * body of test_dist_gan (double build) and test_dist_gan_f32 (the library's
 * float build), run under `mpirun -np 2` by tests/mpi.bats.
 *
 * Every rank trains two tiny G/D pairs (8x8, with L_ConD, L_ConG through a
 * tiny frozen CLIP, lazy R1 every 2 steps, Adam and the EMA) from the same
 * initialisation for 3 steps of a global batch of 8: one alone on the whole
 * batch (l2_gan_train_step), one on its rank's samples in minibatch-std
 * order (l2_gan_rank_positions, l2_gan_train_step_dist).  The five losses
 * of every step and every tensor of G, D and G_ema after 3 steps must agree
 * within TOL_LOSS and TOL_W (relative to each tensor's largest entry); the
 * gaps are printed.  Once more with DiffAugment (all three) on.  Then the replicas must be bit-identical.  Alone (make
 * test) the one-rank path is checked against the plain step, bit for bit. */
#include "check_dist.h"
#include "core/util.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const L2GanConfig DCFG = {.res = 8, .cdim = 5, .zdim = 4, .wdim = 4, .map_layers = 2, .cbase = 32, .cmax = 6, .chid = 3};
static const L2ClipTrainConfig DCLIP = {.res = 8, .patch = 4, .width = 16, .layers = 1, .heads = 1, .context = 4,
					.vocab = 10, .twidth = 16, .tlayers = 1, .theads = 1, .embed = 5};
enum { GB = 8, STEPS = 3 };

/* step s's reals in [-1, 1] and conditions */
static void batch(int s, adr *x, adr *h)
{
	uint64_t st = 777 + (uint64_t)s;
	for (int i = 0; i < GB * 3 * DCFG.res * DCFG.res; i++) x[i] = (adr)(2 * check_unit(&st) - 1);
	for (int i = 0; i < GB * DCFG.cdim; i++) h[i] = (adr)(2 * check_unit(&st) - 1);
}

static double gap_tensors(AdTensor **a, AdTensor **b, int n)
{
	double worst = 0;
	for (int i = 0; i < n; i++) {
		double m = 0, d = 0;
		for (size_t k = 0; k < a[i]->n; k++) {
			m = fmax(m, fabs((double)b[i]->v[k]));
			d = fmax(d, fabs((double)a[i]->v[k] - b[i]->v[k]));
		}
		worst = fmax(worst, m > 0 ? d / m : d);
	}
	return worst;
}

static double gap_ema(const L2Ema *a, const L2Ema *b)
{
	double worst = 0;
	for (int i = 0; i < a->n; i++) {
		double m = 0, d = 0;
		for (size_t k = 0; k < a->p[i]->n; k++) {
			m = fmax(m, fabs((double)b->w[i][k]));
			d = fmax(d, fabs((double)a->w[i][k] - b->w[i][k]));
		}
		worst = fmax(worst, m > 0 ? d / m : d);
	}
	return worst;
}

static int AUG; /* the DiffAugment policy of both trainers */

static L2GanTrainer *trainer(L2ClipTrain *clip)
{
	L2GanTrainOptions o;
	l2_gan_train_defaults(&o);
	o.seed = 11;
	o.r1_every = 2;
	o.r1_eps = R1_EPS;
	o.ema_images = 16;
	o.augment = AUG;
	return l2_gan_trainer_new(&DCFG, &o, clip);
}

static L2Dist D;

static void test_gan_data_parallel_equals_single(void)
{
	int P = D.size, Bl = GB / P;
	size_t img = (size_t)3 * DCFG.res * DCFG.res;
	L2ClipTrain *clip = l2_cliptr_new(&DCLIP, 5);
	L2GanTrainer *one = trainer(clip), *dp = trainer(clip);
	adr *x = l2_malloc(GB * img * sizeof *x), *h = l2_malloc(GB * DCFG.cdim * sizeof *h);
	adr *xl = l2_malloc(Bl * img * sizeof *xl), *hl = l2_malloc(Bl * DCFG.cdim * sizeof *hl);
	int *pos = l2_malloc(Bl * sizeof *pos);
	l2_gan_rank_positions(GB, P, D.rank, pos);
	double wl = 0;
	for (int s = 0; s < STEPS; s++) {
		batch(s, x, h);
		for (int b = 0; b < Bl; b++) {
			memcpy(xl + b * img, x + pos[b] * img, img * sizeof *x);
			memcpy(hl + b * DCFG.cdim, h + pos[b] * DCFG.cdim, DCFG.cdim * sizeof *h);
		}
		L2GanLosses a, b;
		l2_gan_train_step(one, s, x, h, GB, &a);
		l2_gan_train_step_dist(dp, &D, s, xl, hl, Bl, GB, pos, &b);
		double r[5] = {check_rel(b.g, a.g), check_rel(b.d, a.d), check_rel(b.con_d, a.con_d), check_rel(b.con_g, a.con_g),
			       a.r1_done ? check_rel(b.r1, a.r1) : 0};
		CHECK(a.r1_done == b.r1_done);
		for (int k = 0; k < 5; k++) {
			wl = fmax(wl, r[k]);
			CHECK_MSG(r[k] <= TOL_LOSS, "step %d: loss %d %.2e apart (limit %.0e)", s, k, r[k], TOL_LOSS);
		}
	}
	double wg = gap_tensors(dp->gp, one->gp, one->ng), wd = gap_tensors(dp->dp, one->dp, one->nd);
	double we = gap_ema(dp->ema, one->ema);
	CHECK_MSG(wg <= TOL_W && wd <= TOL_W && we <= TOL_W, "after %d steps: G %.2e, D %.2e, G_ema %.2e apart (limit %.0e)",
		  STEPS, wg, wd, we, TOL_W);
	if (D.rank == 0)
		printf("# GAN %s%s, %d ranks x %d images vs one process x %d, 3 steps with R1 at 0 and 2: losses %.2e, G %.2e, "
		       "D %.2e, G_ema %.2e (relative to each tensor's largest entry)\n",
		       sizeof(adr) == 8 ? "double" : "float", AUG ? " with --augment color,translation,cutout" : "", P, Bl, GB,
		       wl, wg, wd, we);
	ad_dist_check_params(&D, dp->gp, dp->ng, "G after the steps");
	ad_dist_check_params(&D, dp->dp, dp->nd, "D after the steps");
	free(x), free(h), free(xl), free(hl), free(pos);
	l2_gan_trainer_free(one);
	l2_gan_trainer_free(dp);
	l2_cliptr_free(clip);
}

/* The same with DiffAugment on: its draws are keyed by global position too. */
static void test_gan_data_parallel_augment(void)
{
	AUG = L2_AUG_COLOR | L2_AUG_TRANSLATION | L2_AUG_CUTOUT;
	test_gan_data_parallel_equals_single();
	AUG = 0;
}

/* Alone: one rank's positions are the batch's, and the step is the plain one. */
static void test_one_rank_positions(void)
{
	int pos[GB];
	l2_gan_rank_positions(GB, 1, 0, pos);
	for (int b = 0; b < GB; b++) CHECK(pos[b] == b);
	/* 2 ranks of 8: M = 2, rank 1 holds 1, 3, 5, 7 (one of each mbstd group {m, m+2, m+4, m+6}) */
	l2_gan_rank_positions(GB, 2, 1, pos);
	CHECK(pos[0] == 1 && pos[1] == 3 && pos[2] == 5 && pos[3] == 7);
	l2_gan_rank_positions(16, 2, 0, pos);
	CHECK(pos[0] == 0 && pos[1] == 1 && pos[2] == 4 && pos[3] == 5 && pos[7] == 13);
}

int main(int argc, char **argv)
{
	l2_init(argc, argv);
	l2_threads = 1;
	if (check_dist_alone()) {
		RUN(test_one_rank_positions);
		return check_done();
	}
	check_dist_init(&D);
	if (GB % (4 * D.size)) l2_die("run with 1 or 2 ranks");
	RUN(test_gan_data_parallel_equals_single);
	RUN(test_gan_data_parallel_augment);
	return check_dist_done(&D);
}
