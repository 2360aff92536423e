/* gradcheck.h — finite-difference gradient checks for the float64 builds of the autodiff
 * (test_ad, test_gan: each #defines L2_AD_DOUBLE and #includes nn/ad.c before this).  The loss
 * is sum(y * R) with a fixed R, so every output element's gradient counts; parameters are
 * random, never zero. */
#ifndef L2_GRADCHECK_H
#define L2_GRADCHECK_H

#include "check.h"

static double R_at(size_t i) { return sin(0.7 + 1.37 * (double)i) + 0.1; }

typedef AdTensor *(*Fwd)(AdGraph *g, AdTensor **p);

static AdGraph *G0; /* made by the test's main */

static double loss_of(Fwd f, AdTensor **p, int want_grad)
{
	ad_graph_reset(G0);
	ad_graph_set_grad(G0, want_grad);
	AdTensor *y = f(G0, p);
	AdTensor *R = ad_tensor(G0, y->ndim, y->shape);
	for (size_t i = 0; i < y->n; i++) R->v[i] = R_at(i);
	AdTensor *l = ad_sum_all(G0, ad_mul(G0, y, R));
	if (want_grad) ad_backward(G0, l);
	ad_graph_set_grad(G0, 1);
	return l->v[0];
}

/* Every entry of p: the central difference with step h_rel * max(1, |v|) against the analytic
 * gradient, |num - ana| <= 1e-6 + rtol |num|.  The first three misses, and with summary the
 * worst relative error, are printed as TAP comments. */
static void gradcheck_fd(const char *name, Fwd f, int np, AdTensor **p, double h_rel, double rtol, int summary)
{
	ad_zero_grads(p, np);
	loss_of(f, p, 1);
	double worst = 0;
	int bad = 0;
	size_t checked = 0;
	for (int k = 0; k < np; k++)
		for (size_t i = 0; i < p[k]->n; i++) {
			double v = p[k]->v[i], h = h_rel * (fabs(v) > 1 ? fabs(v) : 1);
			p[k]->v[i] = v + h;
			double lp = loss_of(f, p, 0);
			p[k]->v[i] = v - h;
			double lm = loss_of(f, p, 0);
			p[k]->v[i] = v;
			double num = (lp - lm) / (2 * h), ana = p[k]->g[i];
			double err = fabs(num - ana) / (1e-6 + fabs(num));
			if (err > worst) worst = err;
			checked++;
			if (!(fabs(num - ana) <= 1e-6 + rtol * fabs(num)))
				if (bad++ < 3) printf("# %s: %s [%zu]: analytic %.10g numeric %.10g\n", name, p[k]->name, i, ana, num);
		}
	if (summary) printf("# %s: %zu entries, worst relative error %.2g\n", name, checked, worst);
	CHECK_MSG(bad == 0, "%s: %d gradient entries off (worst rel %.3g)", name, bad, worst);
}

/* A parameter of N(0, scale) + offset, entries near 0 replaced by 0.37. */
static AdTensor *P(const char *name, int ndim, const int *shape, double scale, double offset)
{
	AdTensor *t = ad_param_new(name, ndim, shape);
	for (size_t i = 0; i < t->n; i++) {
		double r = check_normal() * scale + offset;
		if (fabs(r) < 1e-3) r = 0.37;
		t->v[i] = r;
	}
	return t;
}

static void free_params(AdTensor **p, int n)
{
	for (int i = 0; i < n; i++) ad_param_free(p[i]);
}

#define SH(...) (int[]){__VA_ARGS__}

#endif
