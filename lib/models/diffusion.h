/* diffusion.h — the conditional diffusion denoiser of l2 (DIFFUSION.md §5.3–5.6):
 * EDM preconditioning around an EDM2 "config E"-style U-Net, the training loss
 * with per-noise-level weighting, forced weight normalisation and the
 * power-function EMA — as forward code over lib/nn/ad.h (training) — and the
 * loaded model for sampling (a tape-free forward with reused buffers).
 *
 * Denoiser (Karras et al. 2022, "EDM"):
 *     D(x; sigma, c) = c_skip x + c_out F(c_in x, c_noise, c),
 *     c_skip = sd^2 / (sigma^2 + sd^2), c_out = sigma sd / sqrt(sigma^2 + sd^2),
 *     c_in = 1 / sqrt(sigma^2 + sd^2), c_noise = ln(sigma) / 4   (sd = sigma_data).
 * Network F (every weight "WN": no bias, forced weight normalisation):
 *   - embedding: f = sqrt2 cos(2 pi (phi c_noise + psi)) (phi ~ N(0,1), psi ~ U(0,1),
 *     C fixed channels); e0 = f + WN(sqrt(d) c) [d -> C] with c the unit condition
 *     (the zero vector = the null condition of classifier-free guidance);
 *     e = SiLU(WN(e0)) [C -> E]; e = SiLU(WN(e)) [E -> E]; E = 4C;
 *   - Block(cin -> cout, keep|down|up, attn):
 *       r = conv3(rs(SiLU(GN(x)))); r = GN(r) (1 + WN(e))[:, :, None, None];
 *       r = conv3(dropout(SiLU(r))); y = (rs(x) [1x1 WN conv if cin != cout] + r) sqrt(1/2);
 *       attn: qkv = 1x1 conv(y) -> [q | k | v], heads max(1, cout / 64) of width Dh,
 *       each normalised per pixel and head (ad_normalize_axis), a = softmax(q k^T / sqrt Dh) v,
 *       y = (y + 1x1 conv(a)) sqrt(1/2);  y = clamp(y, +-256).
 *     GN: group norm without affine, min(32, ch / 4) groups, eps 1e-5; rs: 2x2 average
 *     pool (down), nearest x2 (up), identity;
 *   - U-Net: conv3([c_in x, 1]) -> C m_0; per level l a down Block (l > 0) and `blocks`
 *     Blocks (attention where the resolution is in attn_res); every encoder output is a
 *     skip; middle Block(attn), Block; decoder levels in reverse: an up Block (unless
 *     lowest), blocks + 1 Blocks on concat(x, skip); out = gain conv3(SiLU(GN(h))),
 *     gain initialised to 0.
 *   - u(sigma) = WN(sqrt2 cos(2 pi (phi' c_noise + psi'))) [128 -> 1], the learned
 *     log-variance of the uncertainty weighting (EDM2).
 *   - cross-attention conditioning (cond_tokens K > 0, instead of adding the condition to
 *     the embedding): tokens T = WN([sqrt(d) c, 1]) [d + 1 -> K E] as K tokens of width E
 *     (the constant 1 gives the null condition tokens of its own); every attention
 *     layer maps them to keys and values, kv = WN(T) [E -> 2 cout], normalised per
 *     token and head as the pixels' are, which join the pixels' keys and values: each
 *     pixel attends over HW + K keys (GLIDE's and unCLIP's form of text conditioning,
 *     the form of the closest public Lafite2-family code).
 * Tensor names are the state-dict keys of the PyTorch transcription
 * (tests/ref/make_diffusion.py): "emb.fourier.freqs", "enc.32x32_block0.conv0.weight",
 * "dec.8x8_in0.qkv.weight", "out.gain", "logvar.linear.weight", ...
 *
 * Patch p (1, 2 or 4): the U-Net works on res / p pixels of cimg p^2 channels — the
 * input c_in x goes through space-to-depth (pixel (y p + dy, x p + dx) of channel c to
 * channel (c p + dy) p + dx, PyTorch's pixel_unshuffle) before the ones channel is
 * added, and F through depth-to-space (pixel_shuffle) after the output convolution —
 * so 64x64 with patch 2 costs what 32x32 costs (the "patch" of U-ViT / DiT and of
 * Hoogeboom et al.'s simple diffusion).  The attention resolutions and the tensor
 * names are those of the patched grid ("enc.32x32_conv" at 64x64, patch 2).
 *
 * Builds in float (training, sampling) and, by including diffusion.c after ad.c with
 * -DL2_AD_DOUBLE, in double (tests/c/test_diffusion.c's gradient checks). */
#ifndef L2_DIFFUSION_H
#define L2_DIFFUSION_H

#include <stddef.h>
#include <stdint.h>

#include "nn/ad.h"
#include "core/rng.h"
#include "models/sampler.h"

#define L2_DIFF_MAXLEV 6
#define L2_DIFF_LOGVAR_CH 128   /* Fourier channels of u(sigma) */
#define L2_DIFF_WN_EPS 1e-4     /* forced weight normalisation and the attention norms */
#define L2_DIFF_GN_EPS 1e-5
#define L2_DIFF_CLAMP 256.0     /* block outputs */

typedef struct {
	int res;                    /* image side in pixels (power of two) */
	int cimg;                   /* image channels (3) */
	int patch;                  /* 1, 2 or 4: space-to-depth of the input, depth-to-space of F */
	int cdim;                   /* condition size d (0: unconditional) */
	int cond_tokens;            /* K > 0: cross-attention conditioning by K tokens, not modulation */
	int channels;               /* C */
	int nlevels;
	int mult[L2_DIFF_MAXLEV];   /* channels C mult[l] at level l (resolution res >> l) */
	int blocks;                 /* Blocks per encoder level (decoder: blocks + 1) */
	int nattn;
	int attn_res[L2_DIFF_MAXLEV]; /* resolutions with self-attention */
	double dropout;
	double sigma_data, p_mean, p_std; /* preconditioning; training ln sigma ~ N(p_mean, p_std^2) */
} L2DiffusionConfig;

/* "tiny" (16 x [1,2,4], 1 block), "small" (32 x [1,2,2], 2 blocks), "base"
 * (64 x [1,2,2], 2 blocks), attention at 8x8, at resolution res with cimg 3,
 * sigma_data 0.5, (P_mean, P_std) = (-1.2, 1.2).  Returns -1 for another name. */
int l2_diffusion_preset(const char *name, int res, int cdim, L2DiffusionConfig *c);
/* NULL when valid, else a message naming the problem. */
const char *l2_diffusion_check(const L2DiffusionConfig *c);
/* Canonical JSON of the config (for metadata, resume and --init comparison), and back
 * (returns 0, or -1 with a malformed or invalid config). */
void l2_diffusion_config_json(const L2DiffusionConfig *c, char *buf, size_t len);
int l2_diffusion_config_parse(const char *json, L2DiffusionConfig *c);
/* Multiply-adds of one forward pass of F on one image. */
double l2_diffusion_flops(const L2DiffusionConfig *c);

/* EDM scalings of one noise level. */
typedef struct {
	double skip, out, in, noise;
} L2DiffusionScalings;
L2DiffusionScalings l2_diffusion_scalings(double sigma, double sigma_data);

/* ---- the network for training (lib/nn/ad.h) --------------------------------------- */

typedef struct L2Diffusion L2Diffusion;

/* Random initialisation from seed (weights N(0,1) then forced-normalised; out.gain 0). */
L2Diffusion *l2_diffusion_new(const L2DiffusionConfig *c, uint64_t seed);
void l2_diffusion_free(L2Diffusion *m);
const L2DiffusionConfig *l2_diffusion_config(const L2Diffusion *m);
/* All tensors in a fixed order: the ntrain trainable ones first, then the Fourier
 * frequencies and phases (buffers: saved with the weights, never updated). */
AdTensor **l2_diffusion_params(L2Diffusion *m, int *n, int *ntrain);
/* A network sharing m's values (parameter .v) with gradient buffers of its own:
 * one per thread, so the batch splits into shards whose gradients add up in a
 * fixed order (a run gives the same bytes for any thread count). */
L2Diffusion *l2_diffusion_replica(L2Diffusion *m);
/* Forced weight normalisation of the stored weights, v <- v / (eps + |v_o| / sqrt F)
 * per output row: after every optimizer step (EDM2 does it before each training
 * forward; the same values). */
void l2_diffusion_renormalize(L2Diffusion *m);

/* D(x; sigma, c): x[N, cimg, R, R], sigma[N] (> 0), cond[N, cdim] unit rows or zero
 * rows (the null condition), or NULL (all null) -> [N, cimg, R, R].
 * dropkey: NULL (no dropout), else the dropout masks of sample n come from
 * l2_rng_init(dropkey[n], layer), so a sample's masks do not depend on its shard.
 * u (may be NULL): receives u(sigma) [N, 1]. */
AdTensor *l2_diffusion_denoise(AdGraph *g, L2Diffusion *m, AdTensor *x, const double *sigma, AdTensor *cond,
			       const uint64_t *dropkey, AdTensor **u);

/* u(sigma) of the current weights (for the loss log), in double. */
double l2_diffusion_u(const L2Diffusion *m, double sigma);

/* Loss weighting per noise level (§5.3). */
enum { L2_DIFF_W_UNCERTAINTY, L2_DIFF_W_EDM, L2_DIFF_W_MINSNR };
typedef struct {
	int kind;
	double gamma;   /* min-snr */
} L2DiffusionWeighting;
/* "uncertainty" | "edm" | "min-snr:G" -> 0, or -1. */
int l2_diffusion_weighting_parse(const char *s, L2DiffusionWeighting *w);
/* lambda(sigma): EDM's (sigma^2 + sd^2) / (sigma sd)^2, or min(sigma^-2, gamma). */
double l2_diffusion_lambda(const L2DiffusionWeighting *w, double sigma, double sigma_data);

/* The training loss of a batch (or a shard of it, scaled by 1 / batch):
 *     L = (1 / batch) sum_n sum_elements [ lambda(sigma_n) e^{-u_n} (D(y_n + sigma_n eps_n) - y_n)^2 + u_n ]
 * (u = 0 unless uncertainty weighting).  y, eps: [N, cimg, R, R]; cond as for
 * denoise ([N, cdim], zero rows = dropped); mse (may be NULL): [N] plain mean of
 * (D - y)^2 per sample; u_out (may be NULL): [N] u(sigma_n). */
AdTensor *l2_diffusion_loss(AdGraph *g, L2Diffusion *m, const adr *y, const adr *eps, const double *sigma,
			    const adr *cond, const uint64_t *dropkey, int N, int batch, const L2DiffusionWeighting *w,
			    double *mse, double *u_out);

/* ---- training schedule helpers -------------------------------------------------------- */

/* Power-function EMA (EDM2): gamma for a relative standard deviation std, the largest
 * real root of g^3 + 7 g^2 + (16 - std^-2) g + (12 - std^-2); beta after t steps,
 * (1 - 1/t)^(gamma + 1) (t >= 1: beta(1) = 0, the average starts at the weights). */
double l2_diffusion_ema_gamma(double std);
double l2_diffusion_ema_beta(double gamma, int64_t t);
/* Learning rate at step t (0-based): lr (t + 1) / warmup during warm-up, then
 * lr / sqrt(max(t / ref, 1)) (EDM2's inverse square root decay; 0 disables either). */
double l2_diffusion_lr(double lr, int64_t t, int64_t warmup, int64_t ref);

/* A latent model (trained on VAE latents, lib/method/latents.h): the latents'
 * description as JSON (l2_latents_info_json: the VAE's SHA-256, scaling, shape, mean and
 * std), saved with the weights as "l2.latent" so that sampling can refuse another VAE.
 * NULL: a pixel model. */
void l2_diffusion_set_latent(L2Diffusion *m, const char *json);
const char *l2_diffusion_latent(const L2Diffusion *m);

/* ---- files (float build only) ------------------------------------------------------------
 * A weights file holds the tensors under their names with __metadata__
 * "l2.kind" = "diffusion", "l2.arch" = "l2-edm2e-unet", "l2.diffusion.config" = the JSON,
 * "l2.cond.feature" = the condition's feature-set name, "l2.sigma_data", "l2.P_mean",
 * "l2.P_std", "l2.patch" (copies of the JSON's, for readers), "l2.ema" (the EMA's std,
 * or "none"), "l2.step", and for a latent model "l2.latent". */
#ifndef L2_AD_DOUBLE
void l2_diffusion_save(const char *path, L2Diffusion *m, const char *cond_feature, const char *ema, int64_t step);
/* The config of a diffusion weights file ("PATH: not an l2 diffusion model" otherwise);
 * cond_feature (may be NULL) gets the stored feature-set name. */
void l2_diffusion_read_config(const char *path, L2DiffusionConfig *c, char *cond_feature, size_t len);
/* Weights of a file made with the same config into m (fine-tuning with --init). */
void l2_diffusion_load_weights(const char *path, L2Diffusion *m);

/* ---- the loaded model, for sampling ---------------------------------------------------------
 * Weights normalised once at load (W = wn(v)); the forward is tape-free, with
 * activation buffers kept from call to call, and splits a batch over l2_threads
 * threads (single-threaded BLAS in each). */
typedef struct L2DiffusionModel L2DiffusionModel;
L2DiffusionModel *l2_diffusion_load(const char *path);
/* The same from a training network's current weights (tick grids, tests). */
L2DiffusionModel *l2_diffusion_model_from(L2Diffusion *m);
void l2_diffusion_model_free(L2DiffusionModel *m);
const L2DiffusionConfig *l2_diffusion_model_config(const L2DiffusionModel *m);
/* The feature-set name the model was trained on ("" when unknown). */
const char *l2_diffusion_model_cond_feature(const L2DiffusionModel *m);
/* The "l2.latent" description of a latent model, or NULL for a pixel model. */
const char *l2_diffusion_model_latent(const L2DiffusionModel *m);
/* out[N, cimg, R, R] = D(x; sigma, cond): x float, sigma[N], cond[N, cdim] unit or zero
 * rows (NULL: all null).  Not reentrant for one model (the buffers are its own). */
void l2_diffusion_model_denoise(L2DiffusionModel *m, const float *x, const double *sigma, const float *cond, int N,
				float *out);

/* The network callback of lib/models/sampler.h (L2NetFn) over loaded models:
 *     L2DiffusionNet dn;
 *     l2_diffusion_net_init(&dn, model, guide, conds, ncond);
 *     l2_sample_images(&cfg, l2_diffusion_net, &dn, n, e, cond_index, streams, out, ...);
 * L2_ROW_COND rows use conds[row.cond], L2_ROW_UNCOND rows the null condition (both in
 * one batch through `model`: a CFG pair is one forward), L2_ROW_GUIDE rows conds[row.cond]
 * through `guide` (autoguidance; NULL when unused).  conds: [ncond, cdim] unit rows. */
typedef struct {
	L2DiffusionModel *model, *guide;
	const float *conds;
	int ncond;
	double *sigma;   /* scratch, grown on demand */
	float *c;
	int cap;
} L2DiffusionNet;
void l2_diffusion_net_init(L2DiffusionNet *n, L2DiffusionModel *model, L2DiffusionModel *guide, const float *conds,
			   int ncond);
void l2_diffusion_net_free(L2DiffusionNet *n);
void l2_diffusion_net(void *ctx, int rows, size_t e, const L2NetRow *row, const float *x, float *x0);
#endif

#endif
