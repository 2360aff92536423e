/* gan.h — Lafite's conditional StyleGAN2 (METHOD §4) as forward code over
 * lib/nn/ad.h: generator, discriminator, losses and the R1 penalty.
 *
 * Generator: z -> 2nd-moment normalisation -> mapping MLP (map_layers FC,
 * lrelu, lr multiplier 0.01) -> w; the condition h does NOT enter the
 * mapping.  Every modulated conv and toRGB layer l gets its own style
 * u_l = A_l([MLP_l(h); w]) with MLP_l two FC+lrelu layers (cdim -> hidden ->
 * hidden) and A_l an FC (bias 1).  Synthesis: a learned 4x4 constant, per
 * resolution an upsampling modulated 3x3 conv (upfirdn2d x2 with the
 * [1,3,3,1] FIR, then the conv — StyleGAN2 fuses the two as a transposed
 * conv, the same operator up to where the FIR sits), a second modulated
 * conv, noise inputs (learned strength, init 0), bias, lrelu * sqrt 2, and a
 * toRGB (1x1, no demodulation) added to the upsampled image (skip
 * architecture).  Output: [N, 3, R, R] in about [-1, 1].
 *
 * Discriminator (residual): fromRGB 1x1, per resolution conv 3x3 and a
 * downsampling conv 3x3 (FIR blur + /2 then the conv) with a 1x1 blurred
 * skip, summed * sqrt(1/2); at 4x4 minibatch standard deviation (group 4,
 * one channel), conv 3x3, FC; logit D(x, h) = f_d(x) + <h, f_s(x)> with f_d
 * an FC to 1 and f_s an FC to cdim.
 *
 * All layers use equalised learning rate (weights stored N(0, 1) / lr_mul,
 * scaled by lr_mul / sqrt(fan_in) in the forward pass), as StyleGAN2.
 * Channels at resolution r: min(cbase / r, cmax).
 *
 * Parameters carry state-dict-like names ("G.mapping.fc0.weight",
 * "G.b16.conv0.affine.weight", "D.b16.skip.weight", ...), so the weights
 * file of lib/nn/ckpt.h loads by name.  Builds in float (training) and, by
 * including gan.c after ad.c with -DL2_AD_DOUBLE, in double (the gradient
 * checks in tests/c/test_gan.c). */
#ifndef L2_GAN_H
#define L2_GAN_H

#include <stdint.h>

#include "nn/ad.h"
#include "core/dist.h"
#include "core/rng.h"

typedef struct {
	int res;        /* output resolution, power of two, 4..1024 */
	int cdim;       /* condition (CLIP feature) size */
	int zdim, wdim; /* latent and intermediate latent sizes */
	int map_layers; /* mapping network depth (>= 1) */
	int cbase, cmax;/* channels min(cbase / r, cmax) */
	int chid;       /* hidden size of each MLP_l(h) */
} L2GanConfig;

/* NULL when valid, else a message naming the problem. */
const char *l2_gan_check(const L2GanConfig *c);
int l2_gan_channels(const L2GanConfig *c, int r);
/* "res=.. cdim=.. ..." (for metadata and config comparison); and back. */
void l2_gan_config_str(const L2GanConfig *c, char *buf, size_t len);
int l2_gan_config_parse(const char *s, L2GanConfig *c);

typedef struct L2GanG L2GanG;
typedef struct L2GanD L2GanD;

L2GanG *l2_gan_g_new(const L2GanConfig *c, uint64_t seed);
void l2_gan_g_free(L2GanG *G);
/* Every tensor of G (trained parameters, and mapping.w_avg, a buffer that
 * gets no gradient), in a fixed order. */
AdTensor **l2_gan_g_params(L2GanG *G, int *n);
AdTensor *l2_gan_g_wavg(L2GanG *G);
/* w [N, wdim], the mapping's output in the last l2_gan_g_forward (on that
 * graph, valid until it resets): for a w_avg over a batch split across
 * processes (lib/method/gan_train.c). */
AdTensor *l2_gan_g_last_w(L2GanG *G);
const L2GanConfig *l2_gan_g_config(const L2GanG *G);

L2GanD *l2_gan_d_new(const L2GanConfig *c, uint64_t seed);
void l2_gan_d_free(L2GanD *D);
AdTensor **l2_gan_d_params(L2GanD *D, int *n);

/* Generator.  z[N, zdim], h[N, cdim] -> images [N, 3, R, R].
 * psi: truncation (1 = none) towards mapping.w_avg.  noise: NULL (no noise,
 * StyleGAN2's noise_mode const 0) or N generators, noise[n] drawing sample
 * n's noise inputs layer by layer (so a sample's images do not depend on the
 * rest of the batch).
 * wavg_beta > 0: update w_avg = lerp(mean w, w_avg, beta) (training). */
AdTensor *l2_gan_g_forward(AdGraph *g, L2GanG *G, AdTensor *z, AdTensor *h, double psi, L2Rng *noise,
			   double wavg_beta);
/* Discriminator: x[N, 3, R, R], h[N, cdim] -> logits [N]; *fs (may be
 * NULL) receives f_s(x) [N, cdim]. */
AdTensor *l2_gan_d_forward(AdGraph *g, L2GanD *D, AdTensor *x, AdTensor *h, AdTensor **fs);

/* ---- building blocks (exported for the gradient checks) --------------------- */

/* Minibatch standard deviation (StyleGAN2, num_channels 1): x[N, C, H, W] ->
 * [N, C + 1, H, W]; groups of min(group, N) samples n = g * (N/G) + m. */
AdTensor *l2_gan_mbstd(AdGraph *g, AdTensor *x, int group);
/* x + strength * noise, noise[N, 1, H, W] a constant; strength [1]. */
AdTensor *l2_gan_noise(AdGraph *g, AdTensor *x, const adr *noise, AdTensor *strength);
/* 2x up / down with the [1,3,3,1] FIR (upfirdn2d, StyleGAN2 padding and gain). */
AdTensor *l2_gan_up2(AdGraph *g, AdTensor *x);
AdTensor *l2_gan_down2(AdGraph *g, AdTensor *x);
/* Contrastive loss of METHOD §4 with cosine similarity:
 *   -tau * mean_i log( exp(Sim(f_i, h_i)/tau) / sum_j exp(Sim(f_j, h_i)/tau) )
 * f, h: [N, E] -> [1].  (mean over i: the batch-size-free form Lafite uses.) */
AdTensor *l2_gan_contrastive(AdGraph *g, AdTensor *f, AdTensor *h, double tau);
/* The view the CLIP image encoder gets of a generated image:
 * x[N, 3, R, R] in [-1, 1] -> crop box (x0, y0, size) per sample
 * (box[3 * n ...]), bilinear resize to out x out, (v + 1) / 2, CLIP
 * normalisation -> [N, 3, out, out]. */
AdTensor *l2_gan_clip_view(AdGraph *g, AdTensor *x, const int *box, int out);
/* Random crop boxes of side uniform in [lo, hi] * R at uniform offsets. */
void l2_gan_random_boxes(L2Rng *r, int n, int R, double lo, double hi, int *box);

/* Non-saturating logistic losses: (sum of softplus(-l)) / B (G, and D on
 * reals; sign < 0) and (sum of softplus(l)) / B (D on fakes).  B is the
 * whole batch's size, so the losses of parts of a batch add up. */
AdTensor *l2_gan_softplus_loss(AdGraph *g, AdTensor *logits, int sign, int B);

/* ---- R1 ------------------------------------------------------------------------
 * R1 = (gamma / 2) * mean_n ||d S / d x_n||^2 with S = sum_n D(x_n, h_n), on
 * the real images x.  Its parameter gradient is
 *     dR1/dtheta = (gamma / N) * H_{theta x} v,  v = dS/dx,
 * a Hessian-vector product, which lib/nn/ad.h cannot give (no double backward).
 * It is computed as the directional derivative of the parameter gradient:
 *     H_{theta x} v = (grad_theta S(x + e v) - grad_theta S(x - e v)) / (2 e) + O(e^2),
 * e = eps_rel / rms(v): one backward for v, two for the difference.  The two
 * perturbed passes replay the leaky-ReLU sign pattern of the pass at x
 * (ad_graph_kinks), so they stay on x's linear piece: the difference then
 * has no jump where a unit would cross zero and gives the almost-everywhere
 * derivative that double backward gives; what remains is the O(e^2) term of
 * the mbstd sqrt and, in float, rounding / e.
 * Verified against the exact gradient: tests/ref/make_gan.py builds the same
 * D in PyTorch float64 and takes R1's gradient by double backward
 * (torch.autograd.grad, create_graph=True); tests/c/test_gan.c matches the
 * logits to 1e-11 and the float64 gradient to ~1e-8 of its largest entry,
 * tests/c/test_gan_r1.c the float32 one at eps_rel L2_GAN_R1_EPS (the
 * trainer's) to ~1e-4 (limit 5e-4); test_gan.c also checks it against
 * central differences of the penalty over every parameter.
 * Adds scale * dR1/dtheta to the D parameters' .g (after whatever is there)
 * and returns the penalty R1 (its value is exact).  Resets the graph. */
#define L2_GAN_R1_EPS 1e-3
double l2_gan_r1(AdGraph *g, L2GanD *D, const adr *x, const adr *h, int N, double gamma, double scale,
		 double eps_rel);
/* The same for this rank's N of a batch of Ntot split over the ranks of d
 * (lib/core/dist.h): the penalty and its gradient are the whole batch's
 * mean (the ranks' gradients still to be summed), the difference step e
 * from the whole batch's rms.  Returns the whole batch's penalty. */
double l2_gan_r1_dist(AdGraph *g, L2GanD *D, const L2Dist *d, const adr *x, const adr *h, int N, int Ntot,
		      double gamma, double scale, double eps_rel);

/* Multiply-adds of one G and one D forward pass on one image. */
double l2_gan_g_flops(const L2GanConfig *c);
double l2_gan_d_flops(const L2GanConfig *c);

#endif

/* ---- files (float build only) ----------------------------------------------------
 * A weights file holds one network's tensors under their names with
 * __metadata__ "l2.model" = "lafite-gan", "l2.gan.net" = "G" | "G_ema" | "D",
 * "l2.gan.config" = l2_gan_config_str, "l2.step". */
#ifndef L2_AD_DOUBLE
void l2_gan_save(const char *path, AdTensor **p, int n, const L2GanConfig *c, const char *net, int64_t step);
/* Reads the config of a weights file ("PATH: not an l2 GAN weights file"
 * otherwise); *net (may be NULL) gets the stored net name (static). */
void l2_gan_read_config(const char *path, L2GanConfig *c, char *net, size_t netlen);
/* A generator from G.safetensors or G_ema.safetensors. */
L2GanG *l2_gan_g_load(const char *path);
#endif
