/* test_optim.c — AdamW against a float64 transcription of
 * torch.optim.AdamW's update, clipping, the LR schedule, EMA, and the RNG. */
#include "check.h"
#include "nn/optim.h"
#include "core/rng.h"

static AdTensor *rand_param(const char *name, int ndim, const int *shape)
{
	AdTensor *p = ad_param_new(name, ndim, shape);
	for (size_t i = 0; i < p->n; i++) p->v[i] = (float)check_normal();
	return p;
}

static void test_adamw_matches_reference(void)
{
	AdTensor *p[2] = {rand_param("w", 2, (int[]){3, 4}), rand_param("b", 1, (int[]){4})};
	double ref[2][12], m[2][12] = {{0}}, v[2][12] = {{0}};
	for (int k = 0; k < 2; k++)
		for (size_t i = 0; i < p[k]->n; i++) ref[k][i] = p[k]->v[i];
	double lr = 1e-2, b1 = 0.9, b2 = 0.98, eps = 1e-6, wd = 0.1;
	L2Adam *a = l2_adam_new(p, 2, b1, b2, eps, wd);
	CHECK(a->decay[0] == 1 && a->decay[1] == 0);
	for (int t = 1; t <= 20; t++) {
		for (int k = 0; k < 2; k++)
			for (size_t i = 0; i < p[k]->n; i++) p[k]->g[i] = (float)check_normal();
		for (int k = 0; k < 2; k++)
			for (size_t i = 0; i < p[k]->n; i++) {
				double g = p[k]->g[i];
				if (k == 0) ref[k][i] *= 1 - lr * wd;
				m[k][i] = b1 * m[k][i] + (1 - b1) * g;
				v[k][i] = b2 * v[k][i] + (1 - b2) * g * g;
				double mh = m[k][i] / (1 - pow(b1, t)), den = sqrt(v[k][i]) / sqrt(1 - pow(b2, t)) + eps;
				ref[k][i] -= lr * mh / den;
			}
		l2_adam_step(a, lr);
	}
	for (int k = 0; k < 2; k++)
		for (size_t i = 0; i < p[k]->n; i++) CHECK_CLOSE(p[k]->v[i], ref[k][i], 1e-5, 1e-5);
	CHECK(a->t == 20);
	l2_adam_free(a);
	ad_param_free(p[0]);
	ad_param_free(p[1]);
}

static void test_clip(void)
{
	AdTensor *p = rand_param("w", 1, (int[]){10});
	double s = 0;
	for (int i = 0; i < 10; i++) {
		p->g[i] = (float)(i + 1);
		s += (i + 1.0) * (i + 1);
	}
	double n = l2_grad_clip(&p, 1, 1.0);
	CHECK_CLOSE(n, sqrt(s), 1e-9, 1e-6);
	double s2 = 0;
	for (int i = 0; i < 10; i++) s2 += (double)p->g[i] * p->g[i];
	CHECK_CLOSE(sqrt(s2), 1.0, 1e-5, 1e-5);
	/* below the limit: untouched */
	CHECK_CLOSE(l2_grad_clip(&p, 1, 5.0), 1.0, 1e-5, 1e-5);
	CHECK_CLOSE(p->g[9], 10 / sqrt(s), 1e-6, 1e-5);
	ad_param_free(p);
}

static void test_schedule(void)
{
	CHECK_CLOSE(l2_lr_schedule(0, 10, 110, 1.0, 0.0), 0.1, 1e-12, 0);
	CHECK_CLOSE(l2_lr_schedule(9, 10, 110, 1.0, 0.0), 1.0, 1e-12, 0);
	CHECK_CLOSE(l2_lr_schedule(10, 10, 110, 1.0, 0.0), 1.0, 1e-12, 0);
	CHECK_CLOSE(l2_lr_schedule(60, 10, 110, 1.0, 0.0), 0.5, 1e-12, 0);
	CHECK_CLOSE(l2_lr_schedule(110, 10, 110, 1.0, 0.1), 0.1, 1e-12, 0);
	CHECK_CLOSE(l2_lr_schedule(500, 10, 110, 1.0, 0.1), 0.1, 1e-12, 0);
}

static void test_ema(void)
{
	AdTensor *p = rand_param("w", 1, (int[]){5});
	float w0 = p->v[2];
	L2Ema *e = l2_ema_new(&p, 1);
	p->v[2] = w0 + 1;
	l2_ema_update(e, 0.9);
	CHECK_CLOSE(e->w[0][2], w0 + 0.1, 1e-6, 1e-6);
	l2_ema_swap(e);
	CHECK_CLOSE(p->v[2], w0 + 0.1, 1e-6, 1e-6);
	l2_ema_swap(e);
	CHECK_CLOSE(p->v[2], w0 + 1, 1e-6, 1e-6);
	l2_ema_free(e);
	ad_param_free(p);
}

static void test_rng(void)
{
	L2Rng a, b;
	l2_rng_init(&a, 42, 0);
	l2_rng_init(&b, 42, 0);
	for (int i = 0; i < 5; i++) CHECK(l2_rng_u64(&a) == l2_rng_u64(&b));
	/* restore from (key, counter) */
	L2Rng c = a;
	uint64_t x = l2_rng_u64(&a);
	CHECK(l2_rng_u64(&c) == x);
	l2_rng_init(&b, 42, 1);
	CHECK(l2_rng_u64(&b) != l2_rng_u64(&a));
	/* moments of the normal draws */
	double s = 0, s2 = 0;
	int n = 200000;
	for (int i = 0; i < n; i++) {
		double z = l2_rng_normal(&a);
		s += z;
		s2 += z * z;
	}
	CHECK_CLOSE(s / n, 0, 0.01, 0);
	CHECK_CLOSE(s2 / n, 1, 0.02, 0);
	int v[10], seen[10] = {0};
	for (int i = 0; i < 10; i++) v[i] = i;
	l2_rng_shuffle(&a, v, 10);
	for (int i = 0; i < 10; i++) seen[v[i]]++;
	for (int i = 0; i < 10; i++) CHECK(seen[i] == 1);
	for (int i = 0; i < 1000; i++) CHECK(l2_rng_below(&a, 7) < 7);
}

int main(void)
{
	RUN(test_adamw_matches_reference);
	RUN(test_clip);
	RUN(test_schedule);
	RUN(test_ema);
	RUN(test_rng);
	return check_done();
}
