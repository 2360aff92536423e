/* sampler.h — sampling diffusion models in EDM's σ parameterisation:
 * noise-level schedules, ODE/SDE samplers and guidance, as three pieces that
 * know nothing of each other (stable-diffusion.cpp's split; DIFFUSION.md §4, §5.8).
 *
 *   schedule   steps noise levels σ_0 = σ_max > ... > σ_{steps-1} = σ_min, then 0
 *   sampler    integrates from x = σ_0·ε to σ = 0 against a denoiser
 *              D(x, σ) -> x̂0 (L2DenoiseFn); written once for every model
 *   guidance   turns a network (L2NetFn: batched rows, each with its own σ,
 *              condition and mode) into a denoiser: classifier-free guidance
 *              D = D_ref + w (D_cond - D_ref) with D_ref unconditional (or, for
 *              autoguidance, another model's conditional output), a guidance
 *              interval, static x̂0 clamping
 *
 * l2_sample_images() composes the three for the common case (tick grids,
 * l2-sample).  Sampler state is double; the network sees float.  Each image
 * draws its initial and injected noise from its own stream
 * l2_rng_init(seed, stream[k]) in a fixed order, so an image does not depend on
 * which other images share its batch or on the thread count.
 *
 * Dimension letters: N images in a call, E values per image (C·H·W).
 * Arrays of images are row-major (N, E). */
#ifndef L2_SAMPLER_H
#define L2_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"

/* ---- schedules ----------------------------------------------------------- */

typedef enum { L2_SCHEDULE_KARRAS = 0, L2_SCHEDULE_EXPONENTIAL } L2ScheduleKind;

typedef struct {
	L2ScheduleKind kind;
	double sigma_min, sigma_max; /* 0 < sigma_min <= sigma_max (EDM: 0.002, 80) */
	double rho;                  /* karras: σ_i = (σ_max^(1/ρ) + i/(steps-1) (σ_min^(1/ρ) - σ_max^(1/ρ)))^ρ, ρ > 0 (7) */
} L2Schedule;

void l2_schedule_defaults(L2Schedule *s);
/* "karras", "exponential" -> kind; -1 if unknown. */
int l2_schedule_parse(const char *name);
const char *l2_schedule_name(L2ScheduleKind k);
/* NULL when valid, else a message naming the problem. */
const char *l2_schedule_check(const L2Schedule *s);
/* sigmas (steps + 1): steps levels from σ_max down to σ_min (log-linear for
 * exponential), then 0.  steps >= 1 (one step: σ_max, 0). */
void l2_schedule_sigmas(const L2Schedule *s, int steps, double *sigmas);

/* ---- samplers ------------------------------------------------------------ */

typedef enum {
	L2_SAMPLER_EULER = 0,  /* x += (σ_{i+1} - σ_i)(x - D)/σ_i  (= DDIM); NFE steps */
	L2_SAMPLER_HEUN,       /* EDM's 2nd-order Heun, optional churn; NFE 2·steps - 1 */
	L2_SAMPLER_DPMPP_2M,   /* DPM-Solver++(2M), data prediction, multistep; NFE steps */
	L2_SAMPLER_EULER_A,    /* Euler ancestral (eta) */
	L2_SAMPLER_DPMPP_2M_SDE, /* DPM-Solver++(2M) SDE, midpoint variant (eta) */
	L2_SAMPLER_COUNT
} L2SamplerKind;

#define L2_SAMPLER_NAMES "euler, heun, dpmpp-2m, euler-a, dpmpp-2m-sde"

typedef struct {
	L2SamplerKind kind;
	double eta;     /* euler-a, dpmpp-2m-sde: share of each step's noise
			 * that is fresh (0 = the deterministic limit; default 1) */
	double churn;   /* heun: S_churn; γ = min(S_churn/steps, √2 - 1) for σ_i in [s_min, s_max] (default 0) */
	double s_min, s_max; /* heun: the σ range that churns (default 0, inf) */
	double s_noise; /* scale of every injected noise (default 1) */
} L2SamplerOpts;

void l2_sampler_defaults(L2SamplerOpts *o);
/* "euler", "heun", "dpmpp-2m", "euler-a", "dpmpp-2m-sde" -> kind; -1 if unknown. */
int l2_sampler_parse(const char *name);
const char *l2_sampler_name(L2SamplerKind k);
const char *l2_sampler_check(const L2SamplerOpts *o);
/* Whether the sampler draws noise after the initial x_T with these options. */
int l2_sampler_stochastic(const L2SamplerOpts *o);
/* Denoiser evaluations per image over `steps` steps ending at σ = 0. */
int l2_sampler_nfe(const L2SamplerOpts *o, int steps);

/* x0 (N, E) = D(x, σ) for N images at noise level sigma > 0. */
typedef void (*L2DenoiseFn)(void *ctx, int n, size_t e, const double *x, double sigma, double *x0);
/* E standard normal values for image k (0..n-1) at step i: replaces the
 * per-image streams (tests inject the noise of a reference this way). */
typedef void (*L2NoiseFn)(void *ctx, int k, int step, size_t e, double *eps);
/* The denoiser's first output of step i (at σ, after guidance and clamping)
 * for images first..first+n-1 of the call: x0 (n, E). */
typedef void (*L2X0Fn)(void *ctx, int step, double sigma, int first, int n, size_t e, const double *x0);

/* Counters a caller zeroes and the runs add to (nfe is set, not added). */
typedef struct {
	int nfe;               /* denoiser evaluations per image (of the last run) */
	long images;           /* images sampled */
	double seconds;        /* wall time inside l2_sample */
	double denoise_seconds;/* of which inside the denoiser (guidance and network) */
	long net_rows;         /* network rows evaluated (l2_sample_images only) */
	double net_seconds;    /* of which inside the network (l2_sample_images only) */
	double *step_seconds;  /* (steps) wall time per step, summed over runs; NULL: not kept */
} L2SampleStats;

typedef struct {
	L2DenoiseFn denoise;
	void *denoise_ctx;
	L2Rng *rng;            /* (N) one stream per image, for the stochastic samplers */
	L2NoiseFn noise;       /* instead of rng when not NULL */
	void *noise_ctx;
	L2X0Fn on_x0;          /* optional */
	void *x0_ctx;
	int first;             /* index of image 0 of this call, passed to on_x0 */
	L2SampleStats *stats;  /* optional: added to */
} L2SampleIO;

/* x (N, E) = σ_0·ε with ε the first E normals of each image's stream
 * (normals in Box-Muller pairs: cos and sin of one pair of uniforms). */
void l2_sample_init_noise(L2Rng *rng, int n, size_t e, double sigma0, double *x);
/* Integrate x (N, E) from sigmas[0] to sigmas[steps] = 0 in place: in x_T,
 * out the sample.  sigmas strictly decreasing, sigmas[steps] == 0. */
void l2_sample(const L2SamplerOpts *o, const double *sigmas, int steps, int n, size_t e, double *x,
	       const L2SampleIO *io);

/* ---- guidance ------------------------------------------------------------ */

/* What a network row asks for: the main model with the row's condition, the
 * main model with the null condition, or the guide model (autoguidance) with
 * the row's condition. */
typedef enum { L2_ROW_COND = 0, L2_ROW_UNCOND, L2_ROW_GUIDE } L2RowMode;

typedef struct {
	double sigma;   /* noise level of the row (> 0) */
	int cond;       /* condition index (the caller's numbering; unused for L2_ROW_UNCOND) */
	int image;      /* image index in the caller's numbering */
	L2RowMode mode;
} L2NetRow;

/* x0 (rows, E) = the network's denoised output for x (rows, E).  One call per
 * denoiser evaluation; rows come grouped by mode (all L2_ROW_COND rows first,
 * in image order, then the reference rows in the same order).  A row's result
 * must not depend on the other rows of the call (batch independence). */
typedef void (*L2NetFn)(void *ctx, int rows, size_t e, const L2NetRow *row, const float *x, float *x0);

typedef struct {
	double w;        /* guidance weight: 1 = conditional only, 0 = reference only (default 1) */
	double lo, hi;   /* guide only for lo < σ <= hi; elsewhere w = 1 and no
			  * reference rows are evaluated (default 0, inf) */
	int autoguide;   /* reference = L2_ROW_GUIDE rows (another model), not L2_ROW_UNCOND */
	int clamp_x0;    /* clip the guided x̂0 to [-1, 1] (static thresholding) */
} L2GuidanceOpts;

void l2_guidance_defaults(L2GuidanceOpts *o);
const char *l2_guidance_check(const L2GuidanceOpts *o);
/* "LO,HI" -> lo, hi (0 <= LO < HI, HI may be "inf"); 0 ok, -1 malformed. */
int l2_guidance_parse_interval(const char *s, double *lo, double *hi);
/* The weight applied at noise level sigma (1 outside the interval). */
double l2_guidance_weight(const L2GuidanceOpts *o, double sigma);

/* A denoiser made of a network and guidance options: pass l2_guidance_denoise
 * with the L2Guidance as L2SampleIO.denoise / denoise_ctx.  cond[k] and
 * image[k] label image k of the current call (set before each l2_sample). */
typedef struct {
	L2GuidanceOpts opts;
	L2NetFn net;
	void *net_ctx;
	const int *cond;       /* (N) condition of each image */
	const int *image;      /* (N) caller's image index of each image; NULL: 0..N-1 */
	/* counters, added to */
	long net_calls, net_rows;
	double net_seconds;
	/* scratch, grown on demand */
	float *xf, *yf;
	L2NetRow *rows;
	size_t cap_rows, cap_e;
} L2Guidance;

void l2_guidance_init(L2Guidance *g, const L2GuidanceOpts *o, L2NetFn net, void *net_ctx);
void l2_guidance_free(L2Guidance *g);
void l2_guidance_denoise(void *g, int n, size_t e, const double *x, double sigma, double *x0);

/* ---- the whole pipeline -------------------------------------------------- */

typedef struct {
	L2Schedule schedule;
	int steps;           /* >= 1 (default 16) */
	L2SamplerOpts sampler;
	L2GuidanceOpts guidance;
	uint64_t seed;
	int batch;           /* images per sampler run (>= 1, default 32); results do not depend on it */
} L2SampleConfig;

void l2_sample_config_defaults(L2SampleConfig *c);
const char *l2_sample_config_check(const L2SampleConfig *c);

/* N images: image k has condition cond[k] and noise stream
 * l2_rng_init(seed, stream[k]) (stream NULL: k).  out (N, E) float, the
 * samples.  on_x0 (optional) sees every step of every batch, with first =
 * the batch's first k.  stats optional (step_seconds needs c->steps). */
void l2_sample_images(const L2SampleConfig *c, L2NetFn net, void *net_ctx, int n, size_t e, const int *cond,
		      const uint64_t *stream, float *out, L2X0Fn on_x0, void *x0_ctx, L2SampleStats *stats);

#endif
