/* sampler.c — σ schedules, samplers and guidance (see sampler.h).
 *
 * The samplers follow the published update rules (EDM Algorithm 2 for Heun
 * and churn; DPM-Solver++(2M) of Lu et al. 2022 in the σ / data-prediction
 * form; Euler ancestral and the midpoint DPM-Solver++(2M) SDE as in
 * k-diffusion and stable-diffusion.cpp), with h = ln(σ_i / σ_{i+1}).  Every
 * step that lands on σ = 0 returns the denoiser's output itself: that is
 * what each rule gives in the limit, written so no rounding is left behind.
 *
 * The state is double and elementwise; what costs is the denoiser.  The
 * stats time both, so the sampler's own share can be measured. */
#include "models/sampler.h"

#include "core/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- schedules ----------------------------------------------------------- */

static const char *const schedule_names[] = {"karras", "exponential"};

void l2_schedule_defaults(L2Schedule *s)
{
	s->kind = L2_SCHEDULE_KARRAS;
	s->sigma_min = 0.002;
	s->sigma_max = 80;
	s->rho = 7;
}

int l2_schedule_parse(const char *name)
{
	for (int i = 0; i < 2; i++)
		if (!strcmp(name, schedule_names[i])) return i;
	return -1;
}

const char *l2_schedule_name(L2ScheduleKind k) { return (unsigned)k < 2 ? schedule_names[k] : "?"; }

const char *l2_schedule_check(const L2Schedule *s)
{
	if (!(s->sigma_min > 0 && isfinite(s->sigma_min))) return "sigma-min must be a positive number";
	if (!(s->sigma_max > s->sigma_min && isfinite(s->sigma_max))) return "sigma-max must be finite and above sigma-min";
	if (s->kind == L2_SCHEDULE_KARRAS && !(s->rho > 0 && isfinite(s->rho))) return "rho must be a positive number";
	if ((unsigned)s->kind >= 2) return "unknown schedule";
	return NULL;
}

void l2_schedule_sigmas(const L2Schedule *s, int steps, double *sigmas)
{
	for (int i = 0; i < steps; i++) {
		double t = steps > 1 ? (double)i / (steps - 1) : 0; /* 0 at σ_max, 1 at σ_min */
		if (s->kind == L2_SCHEDULE_KARRAS) {
			double a = pow(s->sigma_max, 1 / s->rho), b = pow(s->sigma_min, 1 / s->rho);
			sigmas[i] = pow(a + t * (b - a), s->rho);
		} else {
			double a = log(s->sigma_max), b = log(s->sigma_min);
			sigmas[i] = exp(a + t * (b - a));
		}
	}
	/* the ends exactly, whatever pow/exp rounding did */
	sigmas[0] = s->sigma_max;
	if (steps > 1) sigmas[steps - 1] = s->sigma_min;
	sigmas[steps] = 0;
}

/* ---- samplers ------------------------------------------------------------ */

static const char *const sampler_names[L2_SAMPLER_COUNT] = {"euler", "heun", "dpmpp-2m", "euler-a", "dpmpp-2m-sde"};

void l2_sampler_defaults(L2SamplerOpts *o)
{
	o->kind = L2_SAMPLER_DPMPP_2M;
	o->eta = 1;
	o->churn = 0;
	o->s_min = 0;
	o->s_max = INFINITY;
	o->s_noise = 1;
}

int l2_sampler_parse(const char *name)
{
	for (int i = 0; i < L2_SAMPLER_COUNT; i++)
		if (!strcmp(name, sampler_names[i])) return i;
	return -1;
}

const char *l2_sampler_name(L2SamplerKind k) { return (unsigned)k < L2_SAMPLER_COUNT ? sampler_names[k] : "?"; }

const char *l2_sampler_check(const L2SamplerOpts *o)
{
	if ((unsigned)o->kind >= L2_SAMPLER_COUNT) return "unknown sampler";
	if (!(o->eta >= 0 && isfinite(o->eta))) return "eta must be a number >= 0";
	if (!(o->churn >= 0 && isfinite(o->churn))) return "churn must be a number >= 0";
	if (!(o->s_min >= 0) || isnan(o->s_max) || o->s_max < o->s_min) return "s-min and s-max must satisfy 0 <= s-min <= s-max";
	if (!(o->s_noise >= 0 && isfinite(o->s_noise))) return "s-noise must be a number >= 0";
	return NULL;
}

int l2_sampler_stochastic(const L2SamplerOpts *o)
{
	if (o->s_noise == 0) return 0;
	switch (o->kind) {
	case L2_SAMPLER_HEUN: return o->churn > 0;
	case L2_SAMPLER_EULER_A:
	case L2_SAMPLER_DPMPP_2M_SDE: return o->eta > 0;
	default: return 0;
	}
}

int l2_sampler_nfe(const L2SamplerOpts *o, int steps)
{
	return o->kind == L2_SAMPLER_HEUN ? 2 * steps - 1 : steps;
}

/* One sampler run: the buffers and the bookkeeping around each denoiser call. */
typedef struct {
	const L2SampleIO *io;
	int n, nfe;
	size_t e, ne;
	double *d;   /* (N, E) denoiser output */
	double *eps; /* (N, E) injected noise */
} Run;

static void run_denoise(Run *r, const double *x, double sigma, double *x0)
{
	double t = l2_now();
	r->io->denoise(r->io->denoise_ctx, r->n, r->e, x, sigma, x0);
	r->nfe++;
	if (r->io->stats) r->io->stats->denoise_seconds += l2_now() - t;
}

static void run_report_x0(Run *r, int step, double sigma, const double *x0)
{
	if (r->io->on_x0) r->io->on_x0(r->io->x0_ctx, step, sigma, r->io->first, r->n, r->e, x0);
}

/* n standard normals from r: Box-Muller keeping both values of each pair
 * (a sampler draws E per image and step; the pair halves the logarithms and
 * square roots, which are most of the sampler's own time). */
static void normals(L2Rng *r, double *out, size_t n)
{
	size_t i = 0;
	for (; i + 1 < n; i += 2) {
		double u = 1 - l2_rng_uniform(r), v = l2_rng_uniform(r); /* u in (0, 1] */
		double rad = sqrt(-2 * log(u)), a = 6.283185307179586 * v;
		out[i] = rad * cos(a);
		out[i + 1] = rad * sin(a);
	}
	if (i < n) out[i] = l2_rng_normal(r);
}

/* eps (N, E) = fresh standard normals for step i: each image's own stream. */
static void run_noise(Run *r, int step)
{
	const L2SampleIO *io = r->io;
	for (int k = 0; k < r->n; k++) {
		double *p = r->eps + (size_t)k * r->e;
		if (io->noise) io->noise(io->noise_ctx, k, step, r->e, p);
		else if (io->rng) normals(&io->rng[k], p, r->e);
		else l2_die("sampler: a stochastic sampler needs noise streams");
	}
}

static void sample_euler(Run *r, const double *sig, int steps, double *x)
{
	for (int i = 0; i < steps; i++) {
		double t = l2_now();
		run_denoise(r, x, sig[i], r->d);
		run_report_x0(r, i, sig[i], r->d);
		if (sig[i + 1] == 0) memcpy(x, r->d, r->ne * sizeof(double));
		else {
			double c = (sig[i + 1] - sig[i]) / sig[i];
			for (size_t j = 0; j < r->ne; j++) x[j] += c * (x[j] - r->d[j]);
		}
		if (r->io->stats && r->io->stats->step_seconds) r->io->stats->step_seconds[i] += l2_now() - t;
	}
}

/* EDM Algorithm 2: optional churn raises σ_i to σ̂ = σ_i (1 + γ) with fresh
 * noise, an Euler step to σ_{i+1}, then the trapezoidal correction unless
 * σ_{i+1} = 0. */
static void sample_heun(Run *r, const L2SamplerOpts *o, const double *sig, int steps, double *x)
{
	double *xn = l2_malloc(r->ne * sizeof(double)), *d2 = l2_malloc(r->ne * sizeof(double));
	double gmax = fmin(o->churn / steps, sqrt(2.0) - 1);
	for (int i = 0; i < steps; i++) {
		double t = l2_now(), s = sig[i], sn = sig[i + 1];
		double gamma = o->churn > 0 && s >= o->s_min && s <= o->s_max ? gmax : 0;
		double sh = s * (1 + gamma);
		if (gamma > 0 && o->s_noise > 0) {
			run_noise(r, i);
			double a = sqrt(sh * sh - s * s) * o->s_noise;
			for (size_t j = 0; j < r->ne; j++) x[j] += a * r->eps[j];
		}
		run_denoise(r, x, sh, r->d);
		run_report_x0(r, i, sh, r->d);
		if (sn == 0) memcpy(x, r->d, r->ne * sizeof(double));
		else {
			double c = (sn - sh) / sh;
			for (size_t j = 0; j < r->ne; j++) xn[j] = x[j] + c * (x[j] - r->d[j]);
			run_denoise(r, xn, sn, d2);
			double h = sn - sh;
			for (size_t j = 0; j < r->ne; j++)
				x[j] += h * 0.5 * ((x[j] - r->d[j]) / sh + (xn[j] - d2[j]) / sn);
		}
		if (r->io->stats && r->io->stats->step_seconds) r->io->stats->step_seconds[i] += l2_now() - t;
	}
	free(xn), free(d2);
}

/* DPM-Solver++(2M): x_{i+1} = (σ_{i+1}/σ_i) x_i - (e^{-h} - 1) D̃ with
 * D̃ = (1 + 1/2r) D_i - (1/2r) D_{i-1}, r = h_{i-1}/h_i; plain D_i on the
 * first step (no history). */
static void sample_dpmpp_2m(Run *r, const double *sig, int steps, double *x)
{
	double *old = l2_malloc(r->ne * sizeof(double));
	for (int i = 0; i < steps; i++) {
		double t = l2_now(), s = sig[i], sn = sig[i + 1];
		run_denoise(r, x, s, r->d);
		run_report_x0(r, i, s, r->d);
		if (sn == 0) memcpy(x, r->d, r->ne * sizeof(double));
		else {
			double h = log(s / sn), a = sn / s, b = -expm1(-h);
			if (i == 0)
				for (size_t j = 0; j < r->ne; j++) x[j] = a * x[j] + b * r->d[j];
			else {
				double rr = log(sig[i - 1] / s) / h, c1 = 1 + 1 / (2 * rr), c0 = 1 / (2 * rr);
				for (size_t j = 0; j < r->ne; j++) x[j] = a * x[j] + b * (c1 * r->d[j] - c0 * old[j]);
			}
		}
		memcpy(old, r->d, r->ne * sizeof(double));
		if (r->io->stats && r->io->stats->step_seconds) r->io->stats->step_seconds[i] += l2_now() - t;
	}
	free(old);
}

/* Euler ancestral: step deterministically down to σ_down, then add noise of
 * σ_up, with σ_up² + σ_down² = σ_{i+1}²; eta scales σ_up (0: plain Euler). */
static void sample_euler_a(Run *r, const L2SamplerOpts *o, const double *sig, int steps, double *x)
{
	for (int i = 0; i < steps; i++) {
		double t = l2_now(), s = sig[i], sn = sig[i + 1];
		run_denoise(r, x, s, r->d);
		run_report_x0(r, i, s, r->d);
		if (sn == 0) memcpy(x, r->d, r->ne * sizeof(double));
		else {
			double up = fmin(sn, o->eta * sqrt(sn * sn * (s * s - sn * sn) / (s * s)));
			double down = sqrt(sn * sn - up * up), c = (down - s) / s;
			for (size_t j = 0; j < r->ne; j++) x[j] += c * (x[j] - r->d[j]);
			if (up > 0 && o->s_noise > 0) {
				run_noise(r, i);
				double a = up * o->s_noise;
				for (size_t j = 0; j < r->ne; j++) x[j] += a * r->eps[j];
			}
		}
		if (r->io->stats && r->io->stats->step_seconds) r->io->stats->step_seconds[i] += l2_now() - t;
	}
}

/* DPM-Solver++(2M) SDE, midpoint form: with η_h = η h,
 *   x = (σ_{i+1}/σ_i) e^{-η_h} x + (1 - e^{-h-η_h}) D_i
 *       + ½ (1 - e^{-h-η_h}) (h/h_{i-1}) (D_i - D_{i-1})      (when a D_{i-1} exists)
 *       + σ_{i+1} √(1 - e^{-2η_h}) s_noise ε. */
static void sample_dpmpp_2m_sde(Run *r, const L2SamplerOpts *o, const double *sig, int steps, double *x)
{
	double *old = l2_malloc(r->ne * sizeof(double)), h_last = 0;
	for (int i = 0; i < steps; i++) {
		double t = l2_now(), s = sig[i], sn = sig[i + 1];
		run_denoise(r, x, s, r->d);
		run_report_x0(r, i, s, r->d);
		if (sn == 0) memcpy(x, r->d, r->ne * sizeof(double));
		else {
			double h = log(s / sn), eh = o->eta * h;
			double a = sn / s * exp(-eh), b = -expm1(-h - eh);
			if (i == 0)
				for (size_t j = 0; j < r->ne; j++) x[j] = a * x[j] + b * r->d[j];
			else {
				double c = 0.5 * b * h / h_last;
				for (size_t j = 0; j < r->ne; j++) x[j] = a * x[j] + b * r->d[j] + c * (r->d[j] - old[j]);
			}
			if (eh > 0 && o->s_noise > 0) {
				run_noise(r, i);
				double q = sn * sqrt(-expm1(-2 * eh)) * o->s_noise;
				for (size_t j = 0; j < r->ne; j++) x[j] += q * r->eps[j];
			}
			h_last = h;
		}
		memcpy(old, r->d, r->ne * sizeof(double));
		if (r->io->stats && r->io->stats->step_seconds) r->io->stats->step_seconds[i] += l2_now() - t;
	}
	free(old);
}

void l2_sample_init_noise(L2Rng *rng, int n, size_t e, double sigma0, double *x)
{
	for (int k = 0; k < n; k++) {
		double *xk = x + (size_t)k * e;
		normals(&rng[k], xk, e);
		for (size_t j = 0; j < e; j++) xk[j] *= sigma0;
	}
}

void l2_sample(const L2SamplerOpts *o, const double *sigmas, int steps, int n, size_t e, double *x,
	       const L2SampleIO *io)
{
	const char *bad = l2_sampler_check(o);
	if (bad) l2_die("sampler: %s", bad);
	if (steps < 1 || sigmas[steps] != 0) l2_die("sampler: the noise levels must end at 0");
	for (int i = 0; i < steps; i++)
		if (!(sigmas[i] > sigmas[i + 1])) l2_die("sampler: the noise levels must decrease");
	double t0 = l2_now();
	Run r = {.io = io, .n = n, .e = e, .ne = l2_mul_size((size_t)n, e)};
	r.d = l2_malloc(r.ne * sizeof(double));
	r.eps = l2_sampler_stochastic(o) ? l2_malloc(r.ne * sizeof(double)) : NULL;
	switch (o->kind) {
	case L2_SAMPLER_EULER: sample_euler(&r, sigmas, steps, x); break;
	case L2_SAMPLER_HEUN: sample_heun(&r, o, sigmas, steps, x); break;
	case L2_SAMPLER_DPMPP_2M: sample_dpmpp_2m(&r, sigmas, steps, x); break;
	case L2_SAMPLER_EULER_A: sample_euler_a(&r, o, sigmas, steps, x); break;
	case L2_SAMPLER_DPMPP_2M_SDE: sample_dpmpp_2m_sde(&r, o, sigmas, steps, x); break;
	default: break;
	}
	free(r.d), free(r.eps);
	if (io->stats) {
		io->stats->nfe = r.nfe;
		io->stats->images += n;
		io->stats->seconds += l2_now() - t0;
	}
}

/* ---- guidance ------------------------------------------------------------ */

void l2_guidance_defaults(L2GuidanceOpts *o)
{
	o->w = 1;
	o->lo = 0;
	o->hi = INFINITY;
	o->autoguide = 0;
	o->clamp_x0 = 0;
}

const char *l2_guidance_check(const L2GuidanceOpts *o)
{
	if (!isfinite(o->w)) return "the guidance weight must be a finite number";
	if (!(o->lo >= 0 && o->hi > o->lo) || isinf(o->lo)) return "the guidance interval must satisfy 0 <= LO < HI";
	return NULL;
}

int l2_guidance_parse_interval(const char *s, double *lo, double *hi)
{
	const char *comma = strchr(s, ',');
	if (!comma || strchr(comma + 1, ',')) return -1;
	char *end;
	double a = strtod(s, &end);
	if (end == s || end != comma) return -1;
	double b = strtod(comma + 1, &end);
	if (end == comma + 1 || *end) return -1;
	if (!(a >= 0) || isinf(a) || !(b > a)) return -1;
	*lo = a, *hi = b;
	return 0;
}

double l2_guidance_weight(const L2GuidanceOpts *o, double sigma)
{
	return sigma > o->lo && sigma <= o->hi ? o->w : 1;
}

void l2_guidance_init(L2Guidance *g, const L2GuidanceOpts *o, L2NetFn net, void *net_ctx)
{
	memset(g, 0, sizeof *g);
	g->opts = *o;
	g->net = net;
	g->net_ctx = net_ctx;
}

void l2_guidance_free(L2Guidance *g)
{
	free(g->xf), free(g->yf), free(g->rows);
	g->xf = g->yf = NULL, g->rows = NULL;
	g->cap_rows = g->cap_e = 0;
}

void l2_guidance_denoise(void *gv, int n, size_t e, const double *x, double sigma, double *x0)
{
	L2Guidance *g = gv;
	double w = l2_guidance_weight(&g->opts, sigma);
	/* w = 1 needs the conditional rows only, w = 0 the reference only */
	int want_cond = w != 0, want_ref = w != 1;
	int rows = n * (want_cond + want_ref);
	if ((size_t)rows > g->cap_rows || e > g->cap_e) {
		size_t cr = (size_t)rows > g->cap_rows ? (size_t)rows : g->cap_rows, ce = e > g->cap_e ? e : g->cap_e;
		free(g->xf), free(g->yf), free(g->rows);
		g->xf = l2_malloc(l2_mul_size(cr, ce) * sizeof(float));
		g->yf = l2_malloc(l2_mul_size(cr, ce) * sizeof(float));
		g->rows = l2_malloc(cr * sizeof(L2NetRow));
		g->cap_rows = cr, g->cap_e = ce;
	}
	size_t ne = (size_t)n * e;
	int r = 0;
	for (int part = 0; part < 2; part++) {
		if (part == 0 ? !want_cond : !want_ref) continue;
		L2RowMode mode = part == 0 ? L2_ROW_COND : g->opts.autoguide ? L2_ROW_GUIDE : L2_ROW_UNCOND;
		for (int k = 0; k < n; k++, r++) {
			g->rows[r] = (L2NetRow){.sigma = sigma, .cond = g->cond ? g->cond[k] : 0,
						.image = g->image ? g->image[k] : k, .mode = mode};
			const double *xs = x + (size_t)k * e;
			float *xd = g->xf + (size_t)r * e;
			for (size_t j = 0; j < e; j++) xd[j] = (float)xs[j];
		}
	}
	double t = l2_now();
	g->net(g->net_ctx, rows, e, g->rows, g->xf, g->yf);
	g->net_seconds += l2_now() - t;
	g->net_calls++;
	g->net_rows += rows;
	if (want_cond && want_ref) {
		const float *c = g->yf, *u = g->yf + ne;
		for (size_t j = 0; j < ne; j++) x0[j] = (double)u[j] + w * ((double)c[j] - (double)u[j]);
	} else
		for (size_t j = 0; j < ne; j++) x0[j] = g->yf[j];
	if (g->opts.clamp_x0)
		for (size_t j = 0; j < ne; j++) x0[j] = x0[j] < -1 ? -1 : x0[j] > 1 ? 1 : x0[j];
}

/* ---- the whole pipeline -------------------------------------------------- */

void l2_sample_config_defaults(L2SampleConfig *c)
{
	l2_schedule_defaults(&c->schedule);
	c->steps = 16;
	l2_sampler_defaults(&c->sampler);
	l2_guidance_defaults(&c->guidance);
	c->seed = 0;
	c->batch = 32;
}

const char *l2_sample_config_check(const L2SampleConfig *c)
{
	const char *bad;
	if (c->steps < 1) return "steps must be at least 1";
	if (c->batch < 1) return "batch must be at least 1";
	if ((bad = l2_schedule_check(&c->schedule)) || (bad = l2_sampler_check(&c->sampler)) ||
	    (bad = l2_guidance_check(&c->guidance)))
		return bad;
	return NULL;
}

void l2_sample_images(const L2SampleConfig *c, L2NetFn net, void *net_ctx, int n, size_t e, const int *cond,
		      const uint64_t *stream, float *out, L2X0Fn on_x0, void *x0_ctx, L2SampleStats *stats)
{
	const char *bad = l2_sample_config_check(c);
	if (bad) l2_die("sampler: %s", bad);
	double *sig = l2_malloc((size_t)(c->steps + 1) * sizeof(double));
	l2_schedule_sigmas(&c->schedule, c->steps, sig);
	int B = c->batch < n ? c->batch : n;
	double *x = l2_malloc(l2_mul_size((size_t)B, e) * sizeof(double));
	L2Rng *rng = l2_malloc((size_t)B * sizeof(L2Rng));
	int *image = l2_malloc((size_t)B * sizeof(int));
	L2Guidance g;
	l2_guidance_init(&g, &c->guidance, net, net_ctx);
	for (int b = 0; b < n; b += B) {
		int m = n - b < B ? n - b : B;
		for (int k = 0; k < m; k++) {
			l2_rng_init(&rng[k], c->seed, stream ? stream[b + k] : (uint64_t)(b + k));
			image[k] = b + k;
		}
		l2_sample_init_noise(rng, m, e, sig[0], x);
		g.cond = cond ? cond + b : NULL;
		g.image = image;
		L2SampleIO io = {.denoise = l2_guidance_denoise, .denoise_ctx = &g, .rng = rng,
				 .on_x0 = on_x0, .x0_ctx = x0_ctx, .first = b, .stats = stats};
		l2_sample(&c->sampler, sig, c->steps, m, e, x, &io);
		float *o = out + (size_t)b * e;
		for (size_t j = 0; j < (size_t)m * e; j++) o[j] = (float)x[j];
	}
	if (stats) stats->net_rows += g.net_rows, stats->net_seconds += g.net_seconds;
	l2_guidance_free(&g);
	free(sig), free(x), free(rng), free(image);
}
