/* dist_train_check.h — data-parallel training equals the single process:
 * the body of test_dist_train (double: the autodiff and CLIP built with
 * adr = double) and test_dist_train_f32 (the library's float build).
 *
 * Under `mpirun -np P` (tests/mpi.bats) every rank trains two tiny CLIPs
 * from the same initialisation for 3 steps of a global batch of 8 pairs:
 * one alone on the whole batch (a one-rank L2Dist), one data parallel on its
 * 8/P pairs (l2_cliptr_grads: InfoNCE over the gathered batch, gradients
 * summed in dist.h's order).  The losses of every step, the first step's
 * gradients and the weights after 3 steps must agree within TOL_LOSS,
 * TOL_GRAD and TOL_W (relative to each tensor's largest entry); the gaps
 * measured are printed.  The update is plain SGD: what is compared is the
 * gradient, and Adam's division by sqrt(v) would turn the rounding noise of
 * a gradient that is exactly zero in theory (the key bias's) into a full
 * step.  Every rank's weights are then checked bit-identical (l2_dist_check).
 * Alone (make test), the one-rank path must give the plain step's bits. */
#include "check_dist.h"
#include "core/util.h"
#include "models/clip_train.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define GB 8 /* global batch */
#define STEPS 3

static const L2ClipTrainConfig CFG = {.res = 16, .patch = 8, .width = 32, .layers = 1, .heads = 1, .context = 8,
				      .vocab = 40, .twidth = 32, .tlayers = 1, .theads = 1, .embed = 16};

/* step s's global batch: images N(0, 1), texts sot, 1..5 random ids, eot */
static void batch(int s, adr *px, int32_t *tok)
{
	uint64_t st = 1234 + (uint64_t)s;
	int n = GB * 3 * CFG.res * CFG.res;
	for (int i = 0; i < n; i += 2) {
		double u1 = ((l2_splitmix64(&st) >> 11) + 1.0) / 9007199254740993.0, u2 = (l2_splitmix64(&st) >> 11) / 9007199254740992.0;
		double r = sqrt(-2 * log(u1));
		px[i] = (adr)(r * cos(2 * M_PI * u2));
		if (i + 1 < n) px[i + 1] = (adr)(r * sin(2 * M_PI * u2));
	}
	memset(tok, 0, (size_t)GB * CFG.context * sizeof *tok);
	for (int b = 0; b < GB; b++) {
		int32_t *t = tok + (size_t)b * CFG.context;
		int len = 1 + (int)(l2_splitmix64(&st) % 5);
		t[0] = CFG.vocab - 2;
		for (int k = 1; k <= len; k++) t[k] = 1 + (int32_t)(l2_splitmix64(&st) % (uint64_t)(CFG.vocab - 3));
		t[len + 1] = CFG.vocab - 1;
	}
}

/* max over tensors of max|a - b| / max|b|, on values or gradients */
static double gap(const L2ClipTrain *a, const L2ClipTrain *b, int grads)
{
	double worst = 0;
	for (int i = 0; i < a->np; i++) {
		const adr *x = grads ? a->p[i]->g : a->p[i]->v, *y = grads ? b->p[i]->g : b->p[i]->v;
		double m = 0, d = 0;
		for (size_t k = 0; k < a->p[i]->n; k++) {
			if (fabs((double)y[k]) > m) m = fabs((double)y[k]);
			if (fabs((double)x[k] - y[k]) > d) d = fabs((double)x[k] - y[k]);
		}
		if (m > 0 && d / m > worst) worst = d / m;
		if (m == 0 && d > worst) worst = d;
	}
	return worst;
}

static void sgd(L2ClipTrain *m, double lr)
{
	for (int i = 0; i < m->np; i++)
		for (size_t k = 0; k < m->p[i]->n; k++) m->p[i]->v[k] -= (adr)(lr * m->p[i]->g[k]);
	l2_cliptr_clamp(m);
}

static L2Dist D, SOLO = {.rank = 0, .size = 1, .local_rank = 0, .local_size = 1};

static void test_data_parallel_equals_single(void)
{
	int P = D.size, Bl = GB / P, b0 = D.rank * Bl;
	size_t img = (size_t)3 * CFG.res * CFG.res;
	L2ClipTrain *one = l2_cliptr_new(&CFG, 7), *dp = l2_cliptr_new(&CFG, 7);
	AdGraph *g1 = ad_graph_new(), *g2 = ad_graph_new();
	adr *px = l2_malloc(GB * img * sizeof *px);
	int32_t *tok = l2_malloc((size_t)GB * CFG.context * sizeof *tok);
	double wl = 0, wg = 0;
	for (int s = 0; s < STEPS; s++) {
		batch(s, px, tok);
		double l1 = l2_cliptr_grads(g1, one, &SOLO, px, tok, GB);
		double l2 = l2_cliptr_grads(g2, dp, &D, px + b0 * img, tok + (size_t)b0 * CFG.context, Bl);
		double rl = fabs(l2 - l1) / fabs(l1);
		if (rl > wl) wl = rl;
		CHECK_MSG(rl <= TOL_LOSS, "step %d: loss %.17g alone, %.17g over %d ranks (%.2e relative)", s, l1, l2, P, rl);
		if (s == 0) {
			wg = gap(dp, one, 1);
			CHECK_MSG(wg <= TOL_GRAD, "step 0: gradients %.2e apart (limit %.0e)", wg, TOL_GRAD);
		}
		sgd(one, 0.05);
		sgd(dp, 0.05);
	}
	double ww = gap(dp, one, 0);
	CHECK_MSG(ww <= TOL_W, "after %d steps: weights %.2e apart (limit %.0e)", STEPS, ww, TOL_W);
	if (D.rank == 0)
		printf("# %s, %d ranks x %d pairs vs one process x %d: losses %.2e, step-0 gradients %.2e, weights after %d "
		       "steps %.2e (relative to each tensor's largest entry)\n",
		       sizeof(adr) == 8 ? "double" : "float", P, Bl, GB, wl, wg, STEPS, ww);
	/* and the replicas are bit-identical */
	size_t tot = 0;
	for (int i = 0; i < dp->np; i++) tot += dp->p[i]->n;
	adr *all = l2_malloc(tot * sizeof *all);
	for (int i = 0, at = 0; i < dp->np; at += (int)dp->p[i]->n, i++) memcpy(all + at, dp->p[i]->v, dp->p[i]->n * sizeof *all);
	l2_dist_check(&D, all, tot * sizeof *all, "after the steps");
	free(all);
	free(px);
	free(tok);
	ad_graph_free(g1);
	ad_graph_free(g2);
	l2_cliptr_free(one);
	l2_cliptr_free(dp);
}

/* Alone: the one-rank path is the plain step, bit for bit. */
static void test_one_rank_is_plain(void)
{
	L2ClipTrain *a = l2_cliptr_new(&CFG, 3), *b = l2_cliptr_new(&CFG, 3);
	AdGraph *g = ad_graph_new();
	adr *px = l2_malloc(GB * (size_t)3 * CFG.res * CFG.res * sizeof *px);
	int32_t *tok = l2_malloc((size_t)GB * CFG.context * sizeof *tok);
	batch(0, px, tok);
	double l1 = l2_cliptr_grads(g, a, &SOLO, px, tok, GB);
	ad_graph_reset(g);
	AdTensor *fi = l2_cliptr_encode_image(g, b, ad_input(g, 4, (int[]){GB, 3, CFG.res, CFG.res}, px));
	AdTensor *ft = l2_cliptr_encode_text(g, b, tok, GB);
	AdTensor *loss = l2_cliptr_loss(g, b, fi, ft);
	ad_zero_grads(b->p, b->np);
	ad_backward(g, loss);
	CHECK(l1 == loss->v[0]);
	CHECK(gap(a, b, 1) == 0);
	free(px);
	free(tok);
	ad_graph_free(g);
	l2_cliptr_free(a);
	l2_cliptr_free(b);
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
	if (GB % D.size) l2_die("run with a rank count dividing %d", GB);
	RUN(test_data_parallel_equals_single);
	return check_dist_done(&D);
}
