/* test_gan_r1.c — R1 as training runs it (float32, l2_gan_r1 with the
 * trainer's eps_rel 1e-2) against PyTorch's exact gradient by double
 * backward in float64 (tests/ref/make_gan.py -> tests/ref/gan/).  The
 * float64 build of the same code is checked to ~1e-8 in test_gan.c; this
 * one measures what the float32 finite-difference Hessian-vector product
 * costs in accuracy. */
#include "check.h"
#include "nn/ckpt.h"
#include "models/gan.h"
#include "io/safetensors.h"
#include "core/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double *st_f64(const L2Safetensors *st, const char *name, size_t n)
{
	const L2Tensor *t = l2_st_find(st, name);
	if (!t || t->dtype != L2_ST_F64 || t->nelem != n) l2_die("gan golden: no f64 %s of %zu elements", name, n);
	return t->data;
}

/* max |ours - exact| / max |exact| over every D parameter */
static double r1_error(L2GanD *D, const L2Safetensors *io, const float *x, const float *h, int N, double gamma,
		       double eps, double *r1)
{
	AdGraph *g = ad_graph_new();
	int np;
	AdTensor **dp = l2_gan_d_params(D, &np);
	ad_zero_grads(dp, np);
	*r1 = l2_gan_r1(g, D, x, h, N, gamma, 1, eps);
	double num = 0, den = 0;
	for (int k = 0; k < np; k++) {
		char nm[256];
		snprintf(nm, sizeof nm, "grad.%s", dp[k]->name);
		const double *ge = st_f64(io, nm, dp[k]->n);
		for (size_t i = 0; i < dp[k]->n; i++) {
			num = fmax(num, fabs(dp[k]->g[i] - ge[i]));
			den = fmax(den, fabs(ge[i]));
		}
	}
	ad_graph_free(g);
	return num / den;
}

static void test_r1_float(void)
{
	L2GanConfig c;
	l2_gan_read_config("tests/ref/gan/d_tiny.safetensors", &c, NULL, 0);
	L2Safetensors *io = l2_st_open("tests/ref/gan/d_tiny_io.safetensors");
	const int N = 8;
	size_t nx = (size_t)N * 3 * c.res * c.res, nh = (size_t)N * c.cdim;
	const double *xd = st_f64(io, "x", nx), *hd = st_f64(io, "h", nh);
	double r1t = st_f64(io, "r1", 1)[0], gamma = st_f64(io, "gamma", 1)[0];
	float *x = l2_malloc(nx * sizeof(float)), *h = l2_malloc(nh * sizeof(float));
	for (size_t i = 0; i < nx; i++) x[i] = (float)xd[i];   /* float-representable by construction */
	for (size_t i = 0; i < nh; i++) h[i] = (float)hd[i];
	L2GanD *D = l2_gan_d_new(&c, 1);
	int np;
	AdTensor **dp = l2_gan_d_params(D, &np);
	l2_ckpt_load_weights("tests/ref/gan/d_tiny.safetensors", dp, np);
	double r1, e[4];
	const double eps[4] = {1e-2, 3e-3, 1e-3, 1e-4};
	for (int i = 0; i < 4; i++) e[i] = r1_error(D, io, x, h, N, gamma, eps[i], &r1);
	printf("# float32 FD-HVP R1 gradient vs torch double backward, max |diff| / max |grad|:"
	       " eps_rel 1e-2 %.2g, 3e-3 %.2g, 1e-3 %.2g (training), 1e-4 %.2g\n", e[0], e[1], e[2], e[3]);
	CHECK_CLOSE(r1, r1t, 0, 1e-5);
	/* the trainer's step: the O(e^2) truncation (the mbstd sqrt; the lrelu
	 * kinks are frozen, ad_graph_kinks) and float rounding amplified by
	 * 1 / (2 e) balance near eps_rel 1e-3 at about 1e-4 of the largest entry */
	CHECK_MSG(e[2] < 5e-4, "R1 gradient at eps_rel 1e-3: %.3g", e[2]);
	CHECK_MSG(e[2] < e[0], "a smaller step should be more accurate down to 1e-3");
	free(x);
	free(h);
	l2_gan_d_free(D);
	l2_st_close(io);
}

int main(void)
{
	RUN(test_r1_float);
	return check_done();
}
