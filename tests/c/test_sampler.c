/* test_sampler.c — lib/models/sampler against closed forms and references:
 *
 *   - schedules and all five samplers against float64 NumPy runs
 *     (tests/ref/make_sampler.py) with the same injected noise, to 1e-12;
 *   - convergence orders on Gaussian data, where the exact denoiser is
 *     D = mu + s²(x - mu)/(s² + σ²) and the ODE's end point is
 *     mu + (x_T - mu) s / sqrt(s² + σ_max²): euler 1, heun and dpmpp-2m 2;
 *   - sample distributions from the exact denoiser of a 2-D mixture of three
 *     anisotropic Gaussians (masses, means, covariances within 4 standard
 *     errors), for every sampler;
 *   - guidance on a class-conditional mixture: CFG with w = 1 gives the
 *     conditional masses, w > 1 raises the class's favoured component
 *     monotonically, an interval at low σ limits the effect and skips the
 *     unconditional rows; autoguidance, clamping, the x̂0 callback, counters;
 *   - that images do not depend on the batch they are sampled in. */
#include "check.h"
#include "core/util.h"
#include "io/npz.h"
#include "models/sampler.h"

/* ---- Gaussian data ------------------------------------------------------- */

typedef struct {
	size_t e;
	const double *mu, *s;
} Gauss;

static void gauss_denoise(void *ctx, int n, size_t e, const double *x, double sigma, double *x0)
{
	const Gauss *g = ctx;
	for (int k = 0; k < n; k++)
		for (size_t j = 0; j < e; j++) {
			double s2 = g->s[j] * g->s[j], xi = x[(size_t)k * e + j];
			x0[(size_t)k * e + j] = g->mu[j] + s2 * (xi - g->mu[j]) / (s2 + sigma * sigma);
		}
}

/* noise[step] (S, N, E) of the reference, handed to the sampler */
typedef struct {
	const double *noise;
	int n;
	size_t e;
	int calls;
} Injected;

static void injected_noise(void *ctx, int k, int step, size_t e, double *eps)
{
	Injected *in = ctx;
	memcpy(eps, in->noise + ((size_t)step * in->n + k) * in->e, e * sizeof(double));
	in->calls++;
}

typedef struct {
	double *log; /* (steps, N, E) */
	double *sig; /* (steps) */
	int calls;
} X0Log;

static void log_x0(void *ctx, int step, double sigma, int first, int n, size_t e, const double *x0)
{
	X0Log *l = ctx;
	memcpy(l->log + ((size_t)step * n + first) * e, x0, (size_t)n * e * sizeof(double));
	l->sig[step] = sigma;
	l->calls++;
}

static void load(const char *name, L2Npy *a)
{
	if (!l2_npz_read("tests/ref/sampler/goldens.npz", name, a))
		l2_die("tests/ref/sampler/goldens.npz: no member %s (make goldens)", name);
}

static double max_abs_diff(const double *a, const double *b, size_t n)
{
	double m = 0;
	for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i] - b[i]));
	return m;
}

static void test_schedule_goldens(void)
{
	static const struct { const char *name; int kind, steps; double smin, smax, rho; } c[] = {
		{"karras7", L2_SCHEDULE_KARRAS, 7, 0.002, 80, 7},
		{"karras3", L2_SCHEDULE_KARRAS, 5, 0.01, 10, 3},
		{"karras1", L2_SCHEDULE_KARRAS, 1, 0.002, 80, 7},
		{"exp6", L2_SCHEDULE_EXPONENTIAL, 6, 0.02, 40, 7},
	};
	for (int i = 0; i < 4; i++) {
		char name[64];
		snprintf(name, sizeof name, "sched_%s", c[i].name);
		L2Npy a;
		load(name, &a);
		CHECK((int)l2_npy_count(&a) == c[i].steps + 1);
		L2Schedule s = {.kind = c[i].kind, .sigma_min = c[i].smin, .sigma_max = c[i].smax, .rho = c[i].rho};
		CHECK(l2_schedule_check(&s) == NULL);
		double sig[16];
		l2_schedule_sigmas(&s, c[i].steps, sig);
		const double *want = a.data;
		for (int j = 0; j <= c[i].steps; j++) CHECK_CLOSE(sig[j], want[j], 0, 1e-13);
		CHECK(sig[0] == c[i].smax && sig[c[i].steps] == 0);
		if (c[i].steps > 1) CHECK(sig[c[i].steps - 1] == c[i].smin);
		for (int j = 0; j < c[i].steps; j++) CHECK(sig[j] > sig[j + 1]);
		l2_npy_free(&a);
	}
}

static void test_sampler_goldens(void)
{
	FILE *cf = fopen("tests/ref/sampler/cases.txt", "r");
	CHECK_MSG(cf != NULL, "tests/ref/sampler/cases.txt missing (run from the repository root)");
	if (!cf) return;
	L2Npy mu, s, xT, noise;
	load("mu", &mu), load("s", &s), load("xT", &xT), load("noise", &noise);
	int N = (int)xT.shape[0];
	size_t E = xT.shape[1];
	Gauss g = {E, mu.data, s.data};
	char name[64], sampler[32], sched[32], smax_s[32];
	int steps, ncase = 0;
	double smin, smax, rho, eta, churn, s_min, s_noise;
	while (fscanf(cf, "%63s %31s %31s %d %lf %lf %lf %lf %lf %lf %31s %lf", name, sampler, sched, &steps, &smin,
		      &smax, &rho, &eta, &churn, &s_min, smax_s, &s_noise) == 12) {
		ncase++;
		L2Schedule sc = {.kind = l2_schedule_parse(sched), .sigma_min = smin, .sigma_max = smax, .rho = rho};
		L2SamplerOpts o;
		l2_sampler_defaults(&o);
		o.kind = l2_sampler_parse(sampler);
		o.eta = eta, o.churn = churn, o.s_min = s_min, o.s_max = strtod(smax_s, NULL), o.s_noise = s_noise;
		CHECK((int)sc.kind >= 0 && (int)o.kind >= 0 && l2_sampler_check(&o) == NULL);
		double *sig = malloc((steps + 1) * sizeof *sig), *x = malloc(N * E * sizeof *x);
		l2_schedule_sigmas(&sc, steps, sig);
		const double *x_T = xT.data;
		for (size_t j = 0; j < N * E; j++) x[j] = x_T[j] * (sig[0] / 80.0);
		Injected in = {noise.data, N, E, 0};
		X0Log xl = {calloc((size_t)steps * N * E, sizeof(double)), calloc(steps, sizeof(double)), 0};
		L2SampleStats st = {0};
		L2SampleIO io = {.denoise = gauss_denoise, .denoise_ctx = &g, .noise = injected_noise, .noise_ctx = &in,
				 .on_x0 = log_x0, .x0_ctx = &xl, .stats = &st};
		l2_sample(&o, sig, steps, N, E, x, &io);
		L2Npy want, want_x0;
		char key[80];
		load(name, &want);
		snprintf(key, sizeof key, "%s_x0", name);
		load(key, &want_x0);
		double d = max_abs_diff(x, want.data, N * E), dx0 = max_abs_diff(xl.log, want_x0.data, (size_t)steps * N * E);
		CHECK_MSG(d <= 1e-12, "%s: sample differs from NumPy by %g", name, d);
		CHECK_MSG(dx0 <= 1e-12, "%s: per-step x0 differs from NumPy by %g", name, dx0);
		CHECK(xl.calls == steps && st.nfe == l2_sampler_nfe(&o, steps) && st.images == N);
		CHECK((in.calls > 0) == l2_sampler_stochastic(&o));
		l2_npy_free(&want), l2_npy_free(&want_x0);
		free(sig), free(x), free(xl.log), free(xl.sig);
	}
	CHECK(ncase == 11);
	fclose(cf);
	l2_npy_free(&mu), l2_npy_free(&s), l2_npy_free(&xT), l2_npy_free(&noise);
}

/* Error of each sample against the exact ODE end point, at `steps`. */
static void ode_errors(L2SamplerKind kind, L2ScheduleKind sk, int steps, const Gauss *g, const double *xT, int n,
		       double *err)
{
	L2Schedule sc;
	l2_schedule_defaults(&sc);
	sc.kind = sk;
	L2SamplerOpts o;
	l2_sampler_defaults(&o);
	o.kind = kind;
	double *sig = malloc((steps + 1) * sizeof *sig), *x = malloc(n * g->e * sizeof *x);
	l2_schedule_sigmas(&sc, steps, sig);
	memcpy(x, xT, n * g->e * sizeof *x);
	L2SampleIO io = {.denoise = gauss_denoise, .denoise_ctx = (void *)g};
	l2_sample(&o, sig, steps, n, g->e, x, &io);
	for (int k = 0; k < n; k++) {
		double s2 = 0;
		for (size_t j = 0; j < g->e; j++) {
			double m = g->mu[j], s = g->s[j];
			double exact = m + (xT[k * g->e + j] - m) * s / sqrt(s * s + sc.sigma_max * sc.sigma_max);
			s2 += (x[k * g->e + j] - exact) * (x[k * g->e + j] - exact);
		}
		err[k] = sqrt(s2);
	}
	free(sig), free(x);
}

static void test_convergence_orders(void)
{
	enum { n = 6, E = 4 };
	const double mu[E] = {0.3, -0.5, 0.1, 0.8}, s[E] = {0.5, 0.25, 0.9, 0.4};
	Gauss g = {E, mu, s};
	double xT[n * E];
	for (int j = 0; j < n * E; j++) xT[j] = 80 * check_normal();
	static const struct { L2SamplerKind kind; L2ScheduleKind sched; int steps; double lo, hi; } c[] = {
		{L2_SAMPLER_EULER, L2_SCHEDULE_KARRAS, 64, 1.7, 2.3},
		{L2_SAMPLER_HEUN, L2_SCHEDULE_KARRAS, 64, 3.4, 4.6},
		{L2_SAMPLER_DPMPP_2M, L2_SCHEDULE_KARRAS, 64, 3.4, 4.6},
		{L2_SAMPLER_EULER, L2_SCHEDULE_EXPONENTIAL, 64, 1.7, 2.3},
		{L2_SAMPLER_HEUN, L2_SCHEDULE_EXPONENTIAL, 64, 3.4, 4.6},
		{L2_SAMPLER_DPMPP_2M, L2_SCHEDULE_EXPONENTIAL, 64, 3.4, 4.6},
	};
	for (int i = 0; i < 6; i++) {
		double e1[n], e2[n];
		ode_errors(c[i].kind, c[i].sched, c[i].steps, &g, xT, n, e1);
		ode_errors(c[i].kind, c[i].sched, 2 * c[i].steps, &g, xT, n, e2);
		for (int k = 0; k < n; k++) {
			double ratio = e1[k] / e2[k];
			CHECK_MSG(ratio >= c[i].lo && ratio <= c[i].hi, "%s/%s sample %d: error %g at %d steps, %g at %d: ratio %.3f",
				  l2_sampler_name(c[i].kind), l2_schedule_name(c[i].sched), k, e1[k], c[i].steps, e2[k],
				  2 * c[i].steps, ratio);
		}
	}
}

/* ---- Gaussian mixtures --------------------------------------------------- */

enum { K = 3 };
typedef struct {
	double phi[K];
	double mu[K][2];
	double S[K][2][2];
} Mix;

/* the three components every mixture here uses; weights per mixture */
static const double MU[K][2] = {{-1.2, 0.6}, {2.0, 1.5}, {0.0, -3.75}};
static const double SIG[K][2][2] = {
	{{0.09, 0.04}, {0.04, 0.05}},
	{{0.04, -0.03}, {-0.03, 0.10}},
	{{0.16, 0.05}, {0.05, 0.04}},
};

static Mix mix_make(double p0, double p1, double p2, double inflate)
{
	Mix m;
	double p[K] = {p0, p1, p2};
	for (int k = 0; k < K; k++) {
		m.phi[k] = p[k];
		for (int a = 0; a < 2; a++) {
			m.mu[k][a] = MU[k][a];
			for (int b = 0; b < 2; b++) m.S[k][a][b] = SIG[k][a][b] * inflate;
		}
	}
	return m;
}

/* D(x, σ) = Σ_k w_k [mu_k + S_k (S_k + σ²I)⁻¹ (x - mu_k)], w_k ∝ phi_k N(x; mu_k, S_k + σ²I) */
static void mix_denoise1(const Mix *m, const double *x, double sigma, double *out)
{
	double lw[K], y[K][2], mx = -1e300;
	for (int k = 0; k < K; k++) {
		double a = m->S[k][0][0] + sigma * sigma, b = m->S[k][0][1], d = m->S[k][1][1] + sigma * sigma;
		double det = a * d - b * b, u0 = x[0] - m->mu[k][0], u1 = x[1] - m->mu[k][1];
		double v0 = (d * u0 - b * u1) / det, v1 = (a * u1 - b * u0) / det; /* C⁻¹ u */
		lw[k] = log(m->phi[k]) - 0.5 * (u0 * v0 + u1 * v1) - 0.5 * log(det);
		y[k][0] = m->mu[k][0] + m->S[k][0][0] * v0 + m->S[k][0][1] * v1;
		y[k][1] = m->mu[k][1] + m->S[k][1][0] * v0 + m->S[k][1][1] * v1;
		mx = fmax(mx, lw[k]);
	}
	double z = 0;
	for (int k = 0; k < K; k++) z += lw[k] = exp(lw[k] - mx);
	out[0] = out[1] = 0;
	for (int k = 0; k < K; k++) out[0] += lw[k] / z * y[k][0], out[1] += lw[k] / z * y[k][1];
}

static void mix_denoise(void *ctx, int n, size_t e, const double *x, double sigma, double *x0)
{
	for (int k = 0; k < n; k++) mix_denoise1(ctx, x + 2 * k, sigma, x0 + 2 * k);
}

/* The component a sample belongs to: largest posterior at σ = 0.  The
 * components are > 10 standard deviations apart, so misassignment is
 * negligible against the standard errors tested. */
static int mix_assign(const Mix *m, const double *x)
{
	int best = 0;
	double bl = -1e300;
	for (int k = 0; k < K; k++) {
		double a = m->S[k][0][0], b = m->S[k][0][1], d = m->S[k][1][1], det = a * d - b * b;
		double u0 = x[0] - m->mu[k][0], u1 = x[1] - m->mu[k][1];
		double l = -0.5 * (u0 * (d * u0 - b * u1) + u1 * (a * u1 - b * u0)) / det - 0.5 * log(det);
		if (l > bl) bl = l, best = k;
	}
	return best;
}

typedef struct {
	int count[K];
	double mean[K][2], cov[K][2][2];
} MixStats;

static void mix_stats(const Mix *ref, const double *x, int n, MixStats *st)
{
	memset(st, 0, sizeof *st);
	for (int i = 0; i < n; i++) {
		int k = mix_assign(ref, x + 2 * i);
		st->count[k]++;
		st->mean[k][0] += x[2 * i], st->mean[k][1] += x[2 * i + 1];
	}
	for (int k = 0; k < K; k++)
		for (int a = 0; a < 2; a++) st->mean[k][a] /= st->count[k] ? st->count[k] : 1;
	for (int i = 0; i < n; i++) {
		int k = mix_assign(ref, x + 2 * i);
		for (int a = 0; a < 2; a++)
			for (int b = 0; b < 2; b++)
				st->cov[k][a][b] += (x[2 * i + a] - st->mean[k][a]) * (x[2 * i + b] - st->mean[k][b]);
	}
	for (int k = 0; k < K; k++)
		for (int a = 0; a < 2; a++)
			for (int b = 0; b < 2; b++) st->cov[k][a][b] /= st->count[k] > 1 ? st->count[k] - 1 : 1;
}

/* Masses within 4 binomial standard errors, per-component means and
 * covariances within 4 standard errors of the mixture's. */
static int check_mixture(const char *what, const Mix *m, const double *x, int n)
{
	MixStats st;
	mix_stats(m, x, n, &st);
	int ok = 1;
	for (int k = 0; k < K; k++) {
		double p = m->phi[k], f = (double)st.count[k] / n, se = sqrt(p * (1 - p) / n);
		CHECK_MSG(fabs(f - p) <= 4 * se, "%s: component %d mass %.4f, expected %.4f (4 SE %.4f)", what, k, f, p, 4 * se);
		ok &= fabs(f - p) <= 4 * se;
		int nk = st.count[k];
		if (nk < 10) continue;
		for (int a = 0; a < 2; a++) {
			double se_m = sqrt(m->S[k][a][a] / nk), dm = st.mean[k][a] - m->mu[k][a];
			CHECK_MSG(fabs(dm) <= 4 * se_m, "%s: component %d mean[%d] %.4f, expected %.4f (4 SE %.4f)", what, k, a,
				  st.mean[k][a], m->mu[k][a], 4 * se_m);
			ok &= fabs(dm) <= 4 * se_m;
			for (int b = a; b < 2; b++) {
				/* Var(sample covariance) = (S_aa S_bb + S_ab²) / n for Gaussian data */
				double sab = m->S[k][a][b], se_c = sqrt((m->S[k][a][a] * m->S[k][b][b] + sab * sab) / nk);
				double dc = st.cov[k][a][b] - sab;
				CHECK_MSG(fabs(dc) <= 4 * se_c, "%s: component %d cov[%d][%d] %.5f, expected %.5f (4 SE %.5f)", what,
					  k, a, b, st.cov[k][a][b], sab, 4 * se_c);
				ok &= fabs(dc) <= 4 * se_c;
			}
		}
	}
	return ok;
}

enum { NS = 8192 };

static void mix_sample(const L2SamplerOpts *o, int steps, void *den_ctx, L2DenoiseFn den, uint64_t seed, double *x)
{
	L2Schedule sc;
	l2_schedule_defaults(&sc);
	double *sig = malloc((steps + 1) * sizeof *sig);
	l2_schedule_sigmas(&sc, steps, sig);
	L2Rng *rng = malloc(NS * sizeof *rng);
	for (int k = 0; k < NS; k++) l2_rng_init(&rng[k], seed, k);
	l2_sample_init_noise(rng, NS, 2, sig[0], x);
	L2SampleIO io = {.denoise = den, .denoise_ctx = den_ctx, .rng = rng};
	l2_sample(o, sig, steps, NS, 2, x, &io);
	free(sig), free(rng);
}

static void test_mixture_distributions(void)
{
	Mix m = mix_make(0.5, 0.3, 0.2, 1);
	/* steps: enough that the discretisation error is well below the standard
	 * errors.  The stochastic samplers converge slowly in distribution
	 * (Euler ancestral is first order: on Gaussian data of std 0.3 its final
	 * variance is 18% low at 64 steps, 5% at 256, 1.3% at 1024). */
	static const struct { L2SamplerKind kind; int steps; double eta, churn; } c[] = {
		{L2_SAMPLER_EULER, 256, 0, 0},     {L2_SAMPLER_HEUN, 64, 0, 0},
		{L2_SAMPLER_HEUN, 128, 0, 10},     {L2_SAMPLER_DPMPP_2M, 64, 0, 0},
		{L2_SAMPLER_EULER_A, 1024, 1, 0},  {L2_SAMPLER_DPMPP_2M_SDE, 128, 1, 0},
		{L2_SAMPLER_DPMPP_2M_SDE, 128, 0.5, 0},
	};
	double *x = malloc(NS * 2 * sizeof *x);
	for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
		L2SamplerOpts o;
		l2_sampler_defaults(&o);
		o.kind = c[i].kind, o.eta = c[i].eta, o.churn = c[i].churn;
		mix_sample(&o, c[i].steps, &m, mix_denoise, 7 + i, x);
		char what[96];
		snprintf(what, sizeof what, "%s-%d eta %g churn %g", l2_sampler_name(o.kind), c[i].steps, o.eta, o.churn);
		check_mixture(what, &m, x, NS);
	}
	free(x);
}

/* A class-conditional "network": rows in float, the exact denoiser of the
 * row's class mixture (COND), of the marginal (UNCOND), or of a broader copy
 * of the class mixture (GUIDE, a weaker model for autoguidance). */
typedef struct {
	Mix cls[2], uncond, guide[2];
	long rows[3];
	int calls, last_rows;
	L2RowMode order_ok;
} MixNet;

static void mix_net(void *ctx, int rows, size_t e, const L2NetRow *row, const float *x, float *x0)
{
	MixNet *m = ctx;
	m->calls++, m->last_rows = rows;
	for (int r = 0; r < rows; r++) {
		if (r && row[r].mode < row[r - 1].mode) m->order_ok = 0;
		const Mix *mx = row[r].mode == L2_ROW_COND ? &m->cls[row[r].cond]
			       : row[r].mode == L2_ROW_GUIDE ? &m->guide[row[r].cond] : &m->uncond;
		double xi[2] = {x[2 * r], x[2 * r + 1]}, y[2];
		mix_denoise1(mx, xi, row[r].sigma, y);
		x0[2 * r] = (float)y[0], x0[2 * r + 1] = (float)y[1];
		m->rows[row[r].mode]++;
	}
}

static MixNet mixnet_make(void)
{
	MixNet m;
	memset(&m, 0, sizeof m);
	m.order_ok = 1;
	/* class 0 favours component 0, class 1 component 2; equal class priors */
	m.cls[0] = mix_make(0.5, 0.3, 0.2, 1);
	m.cls[1] = mix_make(0.1, 0.3, 0.6, 1);
	m.uncond = mix_make(0.3, 0.3, 0.4, 1);
	m.guide[0] = mix_make(0.5, 0.3, 0.2, 2.5);
	m.guide[1] = mix_make(0.1, 0.3, 0.6, 2.5);
	return m;
}

static void guided_sample(MixNet *net, const L2GuidanceOpts *go, L2SamplerKind kind, int steps, int cls, double *x,
			  L2SampleStats *st)
{
	L2SampleConfig c;
	l2_sample_config_defaults(&c);
	c.sampler.kind = kind;
	c.steps = steps;
	c.guidance = *go;
	c.seed = 99;
	c.batch = 4096;
	int *cond = malloc(NS * sizeof *cond);
	float *out = malloc(NS * 2 * sizeof *out);
	for (int k = 0; k < NS; k++) cond[k] = cls;
	l2_sample_images(&c, mix_net, net, NS, 2, cond, NULL, out, NULL, NULL, st);
	for (int j = 0; j < NS * 2; j++) x[j] = out[j];
	free(cond), free(out);
}

static double mass(const Mix *m, const double *x, int k)
{
	int c = 0;
	for (int i = 0; i < NS; i++) c += mix_assign(m, x + 2 * i) == k;
	return (double)c / NS;
}

static void test_classifier_free_guidance(void)
{
	MixNet net = mixnet_make();
	double *x = malloc(NS * 2 * sizeof *x);
	L2GuidanceOpts go;
	l2_guidance_defaults(&go);
	/* w = 1: the conditional distribution of each class, and no unconditional rows */
	for (int cls = 0; cls < 2; cls++) {
		L2SampleStats st = {0};
		guided_sample(&net, &go, L2_SAMPLER_DPMPP_2M, 64, cls, x, &st);
		check_mixture(cls ? "cfg w=1 class 1" : "cfg w=1 class 0", &net.cls[cls], x, NS);
		CHECK(st.nfe == 64 && st.net_rows == 64L * NS && st.images == NS);
	}
	CHECK(net.rows[L2_ROW_UNCOND] == 0 && net.rows[L2_ROW_GUIDE] == 0);
	/* w = 0: the marginal, from unconditional rows alone */
	go.w = 0;
	guided_sample(&net, &go, L2_SAMPLER_DPMPP_2M, 64, 0, x, NULL);
	check_mixture("cfg w=0", &net.uncond, x, NS);
	CHECK(net.rows[L2_ROW_COND] == 2 * 64L * NS && net.rows[L2_ROW_UNCOND] == 64L * NS);
	/* w > 1: the favoured component's mass rises with w */
	const double ws[] = {1, 1.5, 2, 3};
	double m0[4];
	for (int i = 0; i < 4; i++) {
		go.w = ws[i];
		L2SampleStats st = {0};
		long before = net.rows[L2_ROW_UNCOND];
		guided_sample(&net, &go, L2_SAMPLER_DPMPP_2M, 64, 0, x, &st);
		m0[i] = mass(&net.cls[0], x, 0);
		CHECK(net.rows[L2_ROW_UNCOND] - before == (ws[i] != 1 ? 64L * NS : 0));
		CHECK(st.net_rows == (ws[i] != 1 ? 128L : 64L) * NS);
		if (i) {
			double se = sqrt(m0[i - 1] * (1 - m0[i - 1]) / NS);
			CHECK_MSG(m0[i] > m0[i - 1] + 2 * se, "cfg: mass of component 0 %.4f at w=%g, %.4f at w=%g", m0[i], ws[i],
				  m0[i - 1], ws[i - 1]);
		}
	}
	CHECK(net.order_ok);
	/* guidance only at low noise (σ <= 0.3, after the component is chosen):
	 * the masses stay near w = 1's; reference rows only inside the interval */
	go.w = 3, go.lo = 0, go.hi = 0.3;
	L2SampleStats st = {0};
	guided_sample(&net, &go, L2_SAMPLER_DPMPP_2M, 64, 0, x, &st);
	double mi = mass(&net.cls[0], x, 0), se = sqrt(m0[0] * (1 - m0[0]) / NS);
	CHECK_MSG(fabs(mi - m0[0]) <= 4 * se && mi < m0[3] - 8 * se, "cfg interval (0, 0.3]: mass %.4f (w=1 %.4f, w=3 %.4f)", mi,
		  m0[0], m0[3]);
	L2Schedule sc;
	l2_schedule_defaults(&sc);
	double sig[65];
	l2_schedule_sigmas(&sc, 64, sig);
	int inside = 0;
	for (int i = 0; i < 64; i++) inside += sig[i] > 0 && sig[i] <= 0.3;
	CHECK(inside > 0 && inside < 64 && st.net_rows == (64L + inside) * NS);
	/* an interval over the whole range is plain CFG, bit for bit */
	double *y = malloc(NS * 2 * sizeof *y);
	go.lo = 0.001, go.hi = 100;
	guided_sample(&net, &go, L2_SAMPLER_DPMPP_2M, 64, 0, y, NULL);
	go.lo = 0, go.hi = INFINITY;
	guided_sample(&net, &go, L2_SAMPLER_DPMPP_2M, 64, 0, x, NULL);
	CHECK(!memcmp(x, y, NS * 2 * sizeof *x));
	free(x), free(y);
}

static void test_autoguidance(void)
{
	MixNet net = mixnet_make();
	double *x = malloc(NS * 2 * sizeof *x);
	L2GuidanceOpts go;
	l2_guidance_defaults(&go);
	go.autoguide = 1;
	/* guiding away from a broader copy of the same model sharpens each
	 * component: the within-component variance falls as w rises */
	double v[3];
	const double ws[] = {1, 1.5, 2.5};
	for (int i = 0; i < 3; i++) {
		go.w = ws[i];
		long g0 = net.rows[L2_ROW_GUIDE];
		guided_sample(&net, &go, L2_SAMPLER_HEUN, 48, 0, x, NULL);
		CHECK(net.rows[L2_ROW_GUIDE] - g0 == (ws[i] != 1 ? 95L * NS : 0));
		MixStats st;
		mix_stats(&net.cls[0], x, NS, &st);
		v[i] = st.cov[0][0][0] + st.cov[0][1][1];
		if (i == 0) check_mixture("autoguidance w=1", &net.cls[0], x, NS);
		else CHECK_MSG(v[i] < v[i - 1] * 0.95, "autoguidance: component 0 variance %.5f at w=%g, %.5f at w=%g", v[i], ws[i],
			       v[i - 1], ws[i - 1]);
	}
	CHECK(net.rows[L2_ROW_UNCOND] == 0 && net.order_ok);
	free(x);
}

/* The guided combination itself, with a network of constant outputs. */
static void const_net(void *ctx, int rows, size_t e, const L2NetRow *row, const float *x, float *x0)
{
	int *modes = ctx;
	for (int r = 0; r < rows; r++) {
		modes[r] = row[r].mode;
		for (size_t j = 0; j < e; j++) x0[r * e + j] = row[r].mode == L2_ROW_COND ? 0.75f : row[r].mode == L2_ROW_UNCOND ? 0.25f : -0.5f;
	}
}

static void test_guidance_combine(void)
{
	int modes[8];
	L2GuidanceOpts go;
	l2_guidance_defaults(&go);
	L2Guidance g;
	double x[6] = {1, 2, 3, 4, 5, 6}, y[6];
	const int cond[3] = {2, 0, 1};
	struct { double w; int autoguide, clamp; double want; int rows; } c[] = {
		{1, 0, 0, 0.75, 3},
		{0, 0, 0, 0.25, 3},
		{3, 0, 0, 0.25 + 3 * 0.5, 6},
		{3, 0, 1, 1, 6},
		{-2, 0, 1, 0.25 - 2 * 0.5, 6},
		{2, 1, 0, -0.5 + 2 * 1.25, 6},
		{2, 1, 1, 1, 6},
		{0, 1, 0, -0.5, 3},
	};
	for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
		go.w = c[i].w, go.autoguide = c[i].autoguide, go.clamp_x0 = c[i].clamp;
		l2_guidance_init(&g, &go, const_net, modes);
		g.cond = cond;
		l2_guidance_denoise(&g, 3, 2, x, 1.5, y);
		for (int j = 0; j < 6; j++) CHECK_CLOSE(y[j], c[i].want, 1e-15, 0);
		CHECK(g.net_rows == c[i].rows && g.net_calls == 1);
		int want_ref = c[i].autoguide ? L2_ROW_GUIDE : L2_ROW_UNCOND;
		if (c[i].rows == 6) CHECK(modes[0] == L2_ROW_COND && modes[2] == L2_ROW_COND && modes[3] == want_ref && modes[5] == want_ref);
		else CHECK(modes[0] == (c[i].w == 0 ? want_ref : L2_ROW_COND));
		l2_guidance_free(&g);
	}
	/* the weight outside an interval is 1 */
	go.w = 4, go.lo = 0.5, go.hi = 2;
	CHECK(l2_guidance_weight(&go, 0.5) == 1 && l2_guidance_weight(&go, 0.5000001) == 4 && l2_guidance_weight(&go, 2) == 4 &&
	      l2_guidance_weight(&go, 2.0000001) == 1);
}

/* Images are independent of the batch they share and of its order. */
static void test_batch_independence(void)
{
	MixNet net = mixnet_make();
	enum { n = 37 };
	int cond[n];
	uint64_t stream[n], rstream[n];
	for (int k = 0; k < n; k++) cond[k] = k % 2, stream[k] = 1000 + 3 * k;
	for (int s = 0; s < L2_SAMPLER_COUNT; s++) {
		L2SampleConfig c;
		l2_sample_config_defaults(&c);
		c.sampler.kind = s;
		c.sampler.churn = 5;
		c.steps = 12;
		c.guidance.w = 2;
		c.seed = 5;
		float a[n * 2], b[n * 2], r[n * 2];
		c.batch = n;
		l2_sample_images(&c, mix_net, &net, n, 2, cond, stream, a, NULL, NULL, NULL);
		c.batch = 5;
		l2_sample_images(&c, mix_net, &net, n, 2, cond, stream, b, NULL, NULL, NULL);
		CHECK_MSG(!memcmp(a, b, sizeof a), "%s: batch 5 differs from batch %d", l2_sampler_name(s), n);
		/* reversed order, batch 1: the same images */
		int rcond[n];
		for (int k = 0; k < n; k++) rcond[k] = cond[n - 1 - k], rstream[k] = stream[n - 1 - k];
		c.batch = 1;
		l2_sample_images(&c, mix_net, &net, n, 2, rcond, rstream, r, NULL, NULL, NULL);
		int same = 1;
		for (int k = 0; k < n; k++) same &= !memcmp(a + 2 * k, r + 2 * (n - 1 - k), 2 * sizeof(float));
		CHECK_MSG(same, "%s: reversed batch-1 images differ", l2_sampler_name(s));
		/* another seed: other images */
		c.seed = 6;
		l2_sample_images(&c, mix_net, &net, n, 2, cond, stream, b, NULL, NULL, NULL);
		CHECK(memcmp(a, b, sizeof a) != 0);
	}
}

/* x̂0 reports: one per step, at the σ of the step's first evaluation, for
 * every batch; per-step timing and counters. */
typedef struct {
	int calls, images[64];
	double sig[64];
} X0Count;

static void count_x0(void *ctx, int step, double sigma, int first, int n, size_t e, const double *x0)
{
	X0Count *c = ctx;
	c->calls++;
	c->sig[step] = sigma;
	for (int k = 0; k < n; k++) c->images[first + k]++;
}

static void test_callbacks_and_stats(void)
{
	MixNet net = mixnet_make();
	enum { n = 10, steps = 9 };
	int cond[n] = {0};
	float out[n * 2];
	for (int s = 0; s < L2_SAMPLER_COUNT; s++) {
		L2SampleConfig c;
		l2_sample_config_defaults(&c);
		c.sampler.kind = s;
		c.steps = steps;
		c.batch = 4;
		c.guidance.w = 1.5, c.guidance.lo = 1, c.guidance.hi = 20;
		X0Count xc = {0};
		double step_s[steps] = {0};
		L2SampleStats st = {.step_seconds = step_s};
		l2_sample_images(&c, mix_net, &net, n, 2, cond, NULL, out, count_x0, &xc, &st);
		CHECK(xc.calls == 3 * steps);
		for (int k = 0; k < n; k++) CHECK(xc.images[k] == steps);
		double sig[steps + 1], sum = 0;
		l2_schedule_sigmas(&c.schedule, steps, sig);
		for (int i = 0; i < steps; i++) {
			CHECK(xc.sig[i] == sig[i]);
			sum += step_s[i];
		}
		CHECK(st.nfe == l2_sampler_nfe(&c.sampler, steps) && st.images == n);
		CHECK(sum <= st.seconds * 1.0001 + 1e-6 && st.denoise_seconds <= st.seconds * 1.0001 + 1e-6);
		CHECK(st.net_seconds <= st.denoise_seconds * 1.0001 + 1e-6);
		/* rows: conditional at every evaluation, reference inside (1, 20] */
		long want = 0;
		for (int i = 0; i < steps; i++) {
			want += n * (1 + (sig[i] > 1 && sig[i] <= 20));
			if (s == L2_SAMPLER_HEUN && sig[i + 1] > 0) want += n * (1 + (sig[i + 1] > 1 && sig[i + 1] <= 20));
		}
		CHECK_MSG(st.net_rows == want, "%s: %ld network rows, expected %ld", l2_sampler_name(s), st.net_rows, want);
	}
	/* churn: the report is at the raised level σ̂ */
	L2SampleConfig c;
	l2_sample_config_defaults(&c);
	c.sampler.kind = L2_SAMPLER_HEUN, c.sampler.churn = 4, c.steps = steps;
	X0Count xc = {0};
	l2_sample_images(&c, mix_net, &net, n, 2, cond, NULL, out, count_x0, &xc, NULL);
	double sig[steps + 1];
	l2_schedule_sigmas(&c.schedule, steps, sig);
	CHECK_CLOSE(xc.sig[0], sig[0] * (1 + fmin(4.0 / steps, sqrt(2) - 1)), 1e-12, 1e-12);
}

static void test_names_and_checks(void)
{
	for (int s = 0; s < L2_SAMPLER_COUNT; s++) CHECK(l2_sampler_parse(l2_sampler_name(s)) == s);
	CHECK(l2_sampler_parse("dpm++2m") == -1 && l2_sampler_parse("") == -1 && l2_sampler_parse("EULER") == -1);
	CHECK(l2_schedule_parse("karras") == L2_SCHEDULE_KARRAS && l2_schedule_parse("exponential") == L2_SCHEDULE_EXPONENTIAL);
	CHECK(l2_schedule_parse("linear") == -1);
	L2SamplerOpts o;
	l2_sampler_defaults(&o);
	CHECK(o.kind == L2_SAMPLER_DPMPP_2M && l2_sampler_check(&o) == NULL && !l2_sampler_stochastic(&o));
	o.eta = -1;
	CHECK(l2_sampler_check(&o) != NULL);
	o.eta = 1, o.kind = L2_SAMPLER_EULER_A;
	CHECK(l2_sampler_stochastic(&o));
	o.eta = 0;
	CHECK(!l2_sampler_stochastic(&o));
	o.kind = L2_SAMPLER_HEUN, o.churn = 1, o.s_min = 2, o.s_max = 1;
	CHECK(l2_sampler_check(&o) != NULL && l2_sampler_nfe(&o, 10) == 19);
	L2Schedule s;
	l2_schedule_defaults(&s);
	s.sigma_min = 0;
	CHECK(l2_schedule_check(&s) != NULL);
	s.sigma_min = 100;
	CHECK(l2_schedule_check(&s) != NULL);
	s.sigma_min = 0.002, s.rho = 0;
	CHECK(l2_schedule_check(&s) != NULL);
	double lo, hi;
	CHECK(l2_guidance_parse_interval("0.3,5", &lo, &hi) == 0 && lo == 0.3 && hi == 5);
	CHECK(l2_guidance_parse_interval("0,inf", &lo, &hi) == 0 && lo == 0 && isinf(hi));
	const char *bad[] = {"", ",", "1", "1,", ",2", "2,1", "1,1", "-1,2", "a,b", "1,2,3", "1;2", "1,2x", "inf,inf", "nan,1"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		CHECK_MSG(l2_guidance_parse_interval(bad[i], &lo, &hi) == -1, "interval '%s' accepted", bad[i]);
	L2SampleConfig c;
	l2_sample_config_defaults(&c);
	CHECK(l2_sample_config_check(&c) == NULL && c.steps == 16 && c.sampler.kind == L2_SAMPLER_DPMPP_2M);
	c.steps = 0;
	CHECK(l2_sample_config_check(&c) != NULL);
	c.steps = 1;
	/* one step: σ_max then 0, a single denoiser call */
	MixNet net = mixnet_make();
	float out[2];
	int cond = 0;
	L2SampleStats st = {0};
	l2_sample_images(&c, mix_net, &net, 1, 2, &cond, NULL, out, NULL, NULL, &st);
	CHECK(st.nfe == 1 && isfinite(out[0]) && isfinite(out[1]));
}

int main(void)
{
	RUN(test_names_and_checks);
	RUN(test_schedule_goldens);
	RUN(test_sampler_goldens);
	RUN(test_convergence_orders);
	RUN(test_guidance_combine);
	RUN(test_callbacks_and_stats);
	RUN(test_batch_independence);
	RUN(test_mixture_distributions);
	RUN(test_classifier_free_guidance);
	RUN(test_autoguidance);
	return check_done();
}
