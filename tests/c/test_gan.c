/* test_gan.c — lib/models/gan.c checked in float64: this file compiles the autodiff
 * core and the GAN with -DL2_AD_DOUBLE.  Every new operation (modulated
 * conv + demodulation inside the styled layers, the upfirdn2d up/down
 * paths, minibatch std, noise injection, the contrastive loss, the crop +
 * bilinear resize + CLIP normalisation view) and whole tiny G and D are
 * checked against central finite differences; the R1 parameter gradient
 * (a finite-difference Hessian-vector product) is checked against central
 * differences of the exact penalty.  Inputs random, never zero. */
#define L2_AD_DOUBLE 1
#include "../../lib/nn/ad.c"
#include "../../lib/models/gan.c"

#include "gradcheck.h"

static void gradcheck(const char *name, Fwd f, int np, AdTensor **p, double rtol)
{
	gradcheck_fd(name, f, np, p, 1e-6, rtol, 1);
}

static void randomize(AdTensor **p, int n, double scale)
{
	for (int k = 0; k < n; k++)
		for (size_t i = 0; i < p[k]->n; i++) p[k]->v[i] += check_normal() * scale;
}


/* ---- building blocks ---- */

static AdTensor *f_mbstd4(AdGraph *g, AdTensor **p) { return l2_gan_mbstd(g, p[0], 4); }
static AdTensor *f_mbstd2(AdGraph *g, AdTensor **p) { return l2_gan_mbstd(g, p[0], 2); }
static void test_mbstd(void)
{
	AdTensor *p[1] = {P("x", 4, SH(8, 3, 2, 2), 1, 0)};
	gradcheck("mbstd N=8 G=4", f_mbstd4, 1, p, 1e-5);
	gradcheck("mbstd N=8 G=2", f_mbstd2, 1, p, 1e-5);
	/* value: against a direct float64 computation for N=8, G=4 (M=2) */
	ad_graph_reset(G0);
	AdTensor *y = l2_gan_mbstd(G0, p[0], 4);
	CHECK(y->shape[1] == 4);
	for (int m = 0; m < 2; m++) {
		double acc = 0;
		for (int c = 0; c < 12; c++) {
			double mu = 0, var = 0;
			for (int gi = 0; gi < 4; gi++) mu += p[0]->v[(size_t)(gi * 2 + m) * 12 + c];
			mu /= 4;
			for (int gi = 0; gi < 4; gi++) {
				double d = p[0]->v[(size_t)(gi * 2 + m) * 12 + c] - mu;
				var += d * d;
			}
			acc += sqrt(var / 4 + 1e-8);
		}
		acc /= 12;
		for (int gi = 0; gi < 4; gi++) CHECK_CLOSE(y->v[(size_t)(gi * 2 + m) * 16 + 12], acc, 1e-12, 1e-12);
	}
	free_params(p, 1);
}

static adr NZ[2 * 3 * 3];
static AdTensor *f_noise(AdGraph *g, AdTensor **p) { return l2_gan_noise(g, p[0], NZ, p[1]); }
static void test_noise(void)
{
	for (int i = 0; i < 18; i++) NZ[i] = check_normal();
	AdTensor *p[2] = {P("x", 4, SH(2, 2, 3, 3), 1, 0), P("s", 1, SH(1), 1, 0)};
	gradcheck("noise", f_noise, 2, p, 1e-6);
	free_params(p, 2);
}

static AdTensor *f_up(AdGraph *g, AdTensor **p) { return l2_gan_up2(g, p[0]); }
static AdTensor *f_down(AdGraph *g, AdTensor **p) { return l2_gan_down2(g, p[0]); }
static void test_updown(void)
{
	AdTensor *p[1] = {P("x", 4, SH(2, 2, 4, 4), 1, 0)};
	gradcheck("up2", f_up, 1, p, 1e-6);
	gradcheck("down2", f_down, 1, p, 1e-6);
	ad_graph_reset(G0);
	AdTensor *u = l2_gan_up2(G0, p[0]), *d = l2_gan_down2(G0, p[0]);
	CHECK(u->shape[2] == 8 && u->shape[3] == 8 && d->shape[2] == 2 && d->shape[3] == 2);
	/* a constant image stays constant inside (gain: FIR sums to 1 per output phase) */
	AdTensor *c = ad_param_new("c", 4, SH(1, 1, 8, 8));
	for (size_t i = 0; i < c->n; i++) c->v[i] = 1.5;
	AdTensor *cu = l2_gan_up2(G0, c), *cd = l2_gan_down2(G0, c);
	CHECK_CLOSE(cu->v[(size_t)5 * 16 + 6], 1.5, 1e-12, 0);
	CHECK_CLOSE(cd->v[(size_t)1 * 4 + 2], 1.5, 1e-12, 0);
	ad_param_free(c);
	free_params(p, 1);
}

static AdTensor *f_con(AdGraph *g, AdTensor **p) { return l2_gan_contrastive(g, p[0], p[1], 0.5); }
static void test_contrastive(void)
{
	AdTensor *p[2] = {P("f", 2, SH(5, 6), 1, 0), P("h", 2, SH(5, 6), 1, 0)};
	gradcheck("contrastive", f_con, 2, p, 1e-6);
	/* value against a direct float64 formula */
	ad_graph_reset(G0);
	double got = l2_gan_contrastive(G0, p[0], p[1], 0.5)->v[0], ref = 0;
	for (int i = 0; i < 5; i++) {
		double s[5], mx = -1e300, z = 0;
		for (int j = 0; j < 5; j++) {
			double ff = 0, hh = 0, fh = 0;
			for (int d = 0; d < 6; d++) {
				double a = p[0]->v[j * 6 + d], b = p[1]->v[i * 6 + d];
				ff += a * a, hh += b * b, fh += a * b;
			}
			s[j] = fh / sqrt(ff) / sqrt(hh) / 0.5;
			if (s[j] > mx) mx = s[j];
		}
		for (int j = 0; j < 5; j++) z += exp(s[j] - mx);
		ref += -0.5 * (s[i] - mx - log(z));
	}
	CHECK_CLOSE(got, ref / 5, 1e-12, 1e-12);
	free_params(p, 2);
}

static int BOX[6] = {1, 2, 5, 0, 0, 8};
static AdTensor *f_view(AdGraph *g, AdTensor **p) { return l2_gan_clip_view(g, p[0], BOX, 6); }
static void test_clip_view(void)
{
	AdTensor *p[1] = {P("x", 4, SH(2, 3, 8, 8), 0.6, 0)};
	gradcheck("crop+resize+normalise", f_view, 1, p, 1e-6);
	ad_graph_reset(G0);
	AdTensor *y = l2_gan_clip_view(G0, p[0], BOX, 6);
	CHECK(y->shape[0] == 2 && y->shape[2] == 6);
	/* sample 1 is the whole image: compare with lib/image's bilinear resize + normalisation */
	float in[3 * 64], out[3 * 36];
	for (int i = 0; i < 3 * 64; i++) in[i] = (float)((p[0]->v[3 * 64 + i] + 1) / 2);
	l2_image_resize_bilinear_f32(in, 3, 8, 8, out, 6, 6);
	for (int c = 0; c < 3; c++)
		for (int i = 0; i < 36; i++)
			CHECK_CLOSE(y->v[3 * 36 + c * 36 + i], (out[c * 36 + i] - L2_CLIP_MEAN[c]) / L2_CLIP_STD[c], 1e-5, 1e-5);
	free_params(p, 1);
}

/* ---- whole networks ---- */

static L2GanConfig CFG = {.res = 8, .cdim = 3, .zdim = 4, .wdim = 4, .map_layers = 2, .cbase = 24, .cmax = 3, .chid = 3};
static L2GanG *GG;
static L2GanD *DD;
static AdTensor *ZIN, *HIN, *XIN;

static AdTensor *f_gen(AdGraph *g, AdTensor **p)
{
	L2Rng r[2];
	l2_rng_init(&r[0], 7, 1), l2_rng_init(&r[1], 7, 2);
	return l2_gan_g_forward(g, GG, ZIN, HIN, 0.7, r, 0);
}

static void test_generator(void)
{
	GG = l2_gan_g_new(&CFG, 1);
	int np;
	AdTensor **gp = l2_gan_g_params(GG, &np);
	randomize(gp, np, 0.3); /* noise strengths, biases and w_avg away from 0 */
	ZIN = P("z", 2, SH(2, 4), 1, 0);
	HIN = P("h", 2, SH(2, 3), 1, 0);
	/* every tensor but w_avg, a buffer the truncation uses as a constant */
	AdTensor **all = l2_malloc((np + 2) * sizeof *all);
	int na = 0;
	for (int k = 0; k < np; k++)
		if (gp[k] != l2_gan_g_wavg(GG)) all[na++] = gp[k];
	CHECK(na == np - 1);
	all[na++] = ZIN, all[na++] = HIN;
	gradcheck("generator (mapping, cond MLPs, modconv+demod, noise, up FIR, toRGB skip, truncation)", f_gen,
		  na, all, 1e-5);
	ad_graph_reset(G0);
	AdTensor *img = f_gen(G0, NULL);
	CHECK(img->ndim == 4 && img->shape[0] == 2 && img->shape[1] == 3 && img->shape[2] == 8 && img->shape[3] == 8);
	free(all);
	ad_param_free(ZIN);
	ad_param_free(HIN);
	l2_gan_g_free(GG);
}

static AdTensor *f_disc(AdGraph *g, AdTensor **p)
{
	AdTensor *fs;
	AdTensor *l = l2_gan_d_forward(g, DD, XIN, HIN, &fs);
	return ad_concat(g, (AdTensor *[]){ad_reshape(g, l, 2, (int[]){l->shape[0], 1}), fs}, 2, 1);
}

static void test_discriminator(void)
{
	DD = l2_gan_d_new(&CFG, 2);
	int np;
	AdTensor **dp = l2_gan_d_params(DD, &np);
	randomize(dp, np, 0.2);
	XIN = P("x", 4, SH(4, 3, 8, 8), 0.7, 0);
	HIN = P("h", 2, SH(4, 3), 1, 0);
	AdTensor **all = l2_malloc((np + 2) * sizeof *all);
	memcpy(all, dp, np * sizeof *all);
	all[np] = XIN, all[np + 1] = HIN;
	gradcheck("discriminator (residual, down FIR, mbstd, f_d + <h, f_s>)", f_disc, np + 2, all, 1e-5);
	free(all);

	/* R1: the finite-difference HVP against central differences of the exact penalty */
	int nx = (int)XIN->n;
	ad_zero_grads(dp, np);
	double pen = l2_gan_r1(G0, DD, XIN->v, HIN->v, 4, 10, 1, 1e-5);
	CHECK(pen > 0 && isfinite(pen));
	size_t tot = 0;
	for (int k = 0; k < np; k++) tot += dp[k]->n;
	double *ana = l2_malloc(tot * sizeof(double));
	for (int k = 0, o = 0; k < np; o += (int)dp[k]->n, k++) memcpy(ana + o, dp[k]->g, dp[k]->n * sizeof(double));
	int bad = 0;
	double worst = 0;
	for (int k = 0, o = 0; k < np; o += (int)dp[k]->n, k++)
		for (size_t i = 0; i < dp[k]->n; i++) {
			double v = dp[k]->v[i], h = 1e-5 * (fabs(v) > 1 ? fabs(v) : 1);
			dp[k]->v[i] = v + h;
			double lp = l2_gan_r1(G0, DD, XIN->v, HIN->v, 4, 10, 1, 1e-5);
			dp[k]->v[i] = v - h;
			double lm = l2_gan_r1(G0, DD, XIN->v, HIN->v, 4, 10, 1, 1e-5);
			dp[k]->v[i] = v;
			double num = (lp - lm) / (2 * h), a = ana[o + i];
			double err = fabs(num - a) / (1e-6 + fabs(num));
			if (err > worst) worst = err;
			if (!(fabs(num - a) <= 1e-5 + 1e-4 * fabs(num)))
				if (bad++ < 3) printf("# R1: %s [%zu]: fd-hvp %.10g numeric %.10g\n", dp[k]->name, i, a, num);
		}
	printf("# R1 parameter gradient: %zu entries, worst relative error %.2g (penalty %.6g)\n", tot, worst, pen);
	CHECK_MSG(bad == 0, "R1: %d entries off", bad);
	/* scale multiplies, and what was in .g stays added */
	ad_zero_grads(dp, np);
	for (size_t i = 0; i < dp[0]->n; i++) dp[0]->g[i] = 1;
	double pen2 = l2_gan_r1(G0, DD, XIN->v, HIN->v, 4, 10, 16, 1e-5);
	CHECK_CLOSE(pen2, 16 * pen, 1e-9, 1e-9);
	CHECK_CLOSE(dp[0]->g[0], 1 + 16 * ana[0], 1e-6, 1e-5);
	(void)nx;
	free(ana);
	ad_param_free(XIN);
	ad_param_free(HIN);
	l2_gan_d_free(DD);
}

/* ---- against PyTorch (tests/ref/make_gan.py): D's logits and R1's exact parameter gradient ---- */

#include "io/safetensors.h"

static const double *st_f64(const L2Safetensors *st, const char *name, size_t n)
{
	const L2Tensor *t = l2_st_find(st, name);
	if (!t || t->dtype != L2_ST_F64 || t->nelem != n) l2_die("gan golden: no f64 %s of %zu elements", name, n);
	return t->data;
}

static void test_d_vs_torch(void)
{
	L2GanConfig c = {.res = 16, .cdim = 5, .zdim = 4, .wdim = 4, .map_layers = 1, .cbase = 64, .cmax = 6, .chid = 4};
	const int N = 8;
	L2Safetensors *w = l2_st_open("tests/ref/gan/d_tiny.safetensors"), *io = l2_st_open("tests/ref/gan/d_tiny_io.safetensors");
	L2GanD *D = l2_gan_d_new(&c, 1);
	int np;
	AdTensor **dp = l2_gan_d_params(D, &np);
	CHECK(np == l2_st_count(w));
	float *buf = l2_malloc(4096 * sizeof(float));
	for (int k = 0; k < np; k++) {
		const L2Tensor *t = l2_st_find(w, dp[k]->name);
		CHECK_MSG(t && t->nelem == dp[k]->n && t->nelem <= 4096, "%s missing or mis-shaped", dp[k]->name);
		l2_st_to_f32(w, t, buf);
		for (size_t i = 0; i < t->nelem; i++) dp[k]->v[i] = buf[i];
	}
	size_t nx = (size_t)N * 3 * c.res * c.res;
	const double *x = st_f64(io, "x", nx), *h = st_f64(io, "h", (size_t)N * c.cdim);
	const double *lt = st_f64(io, "logits", N), *r1t = st_f64(io, "r1", 1), *gamma = st_f64(io, "gamma", 1);
	/* logits: the same architecture, to rounding */
	ad_graph_reset(G0);
	AdTensor *X = ad_input(G0, 4, (int[]){N, 3, c.res, c.res}, x), *H = ad_input(G0, 2, (int[]){N, c.cdim}, h);
	AdTensor *l = l2_gan_d_forward(G0, D, X, H, NULL);
	for (int n = 0; n < N; n++) CHECK_CLOSE(l->v[n], lt[n], 1e-12, 1e-11);
	/* R1: value exact; the finite-difference HVP against torch's double backward */
	ad_zero_grads(dp, np);
	double r1 = l2_gan_r1(G0, D, x, h, N, *gamma, 1, 1e-5);
	CHECK_CLOSE(r1, *r1t, 1e-14, 1e-11);
	double num = 0, den = 0, worst = 0;
	for (int k = 0; k < np; k++) {
		char nm[256];
		snprintf(nm, sizeof nm, "grad.%s", dp[k]->name);
		const double *ge = st_f64(io, nm, dp[k]->n);
		for (size_t i = 0; i < dp[k]->n; i++) {
			double d = fabs(dp[k]->g[i] - ge[i]);
			num = fmax(num, d), den = fmax(den, fabs(ge[i]));
		}
	}
	worst = num / den;
	printf("# D vs PyTorch: logits to 1e-11; R1 %.10g (torch %.10g); FD-HVP R1 gradient vs double backward: "
	       "max |diff| / max |grad| = %.2g (float64, eps 1e-5)\n", r1, *r1t, worst);
	/* float64 central differences with e = 1e-5 / rms(v): truncation O(e^2) and rounding
	 * O(1e-16 / e) both far below 1e-7 */
	CHECK_MSG(worst < 1e-7, "R1 gradient off torch's exact one: %.3g", worst);
	free(buf);
	l2_gan_d_free(D);
	l2_st_close(w);
	l2_st_close(io);
}

static void test_config(void)
{
	char buf[256];
	L2GanConfig c2;
	l2_gan_config_str(&CFG, buf, sizeof buf);
	CHECK(l2_gan_config_parse(buf, &c2) == 0);
	CHECK(!memcmp(&c2, &CFG, sizeof c2));
	CHECK(l2_gan_config_parse("res=12 cdim=3 zdim=4 wdim=4 map_layers=2 cbase=24 cmax=3 chid=3", &c2) == -1);
	CHECK(l2_gan_check(&CFG) == NULL);
	CHECK(l2_gan_channels(&CFG, 4) == 3 && l2_gan_channels(&CFG, 8) == 3);
	L2GanConfig c3 = CFG;
	c3.res = 6;
	CHECK(l2_gan_check(&c3) != NULL);
}

int main(void)
{
	G0 = ad_graph_new();
	RUN(test_config);
	RUN(test_mbstd);
	RUN(test_noise);
	RUN(test_updown);
	RUN(test_contrastive);
	RUN(test_clip_view);
	RUN(test_generator);
	RUN(test_discriminator);
	RUN(test_d_vs_torch);
	ad_graph_free(G0);
	return check_done();
}
