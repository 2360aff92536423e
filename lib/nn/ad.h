/* ad.h — reverse-mode automatic differentiation for training in l2.
 *
 * Models are written as forward code over AdTensor values; every op that
 * has an input needing a gradient records a node on the graph's tape, and
 * ad_backward() walks the tape in reverse, accumulating into .g.
 *
 *     AdGraph *g = ad_graph_new();
 *     for (step...) {
 *         ad_graph_reset(g);                      // rewinds arena + tape, keeps memory
 *         AdTensor *x = ad_input(g, 2, (int[]){B, D}, data);
 *         AdTensor *h = ad_gelu(g, ad_linear(g, x, W, b));
 *         AdTensor *loss = ad_cross_entropy(g, h, labels);
 *         ad_zero_grads(params, np); ad_backward(g, loss);  // W->g, b->g hold dL/dW
 *     }
 *
 * Memory: parameters own malloc'd value and gradient buffers; everything a
 * step makes (activations, their gradients, saved statistics) comes from a
 * per-graph arena that is reset, not freed, so a steady training loop does
 * no malloc.  Shapes are row-major, at most AD_MAXDIM dimensions, images
 * are NCHW.
 *
 * Element type: `adr` is float; compiling lib/nn/ad.c with -DL2_AD_DOUBLE makes
 * it double (the gradient checks in tests/c/test_ad.c build it that way).
 * GEMMs go through OpenBLAS; ad_gemm() is the seam where a CUDA GEMM
 * (lib/core/device.h) takes over for large products with --device cuda.
 *
 * Not supported: double backward (gradients of gradients); R1-style
 * penalties need an input gradient (ad_input_rg + ad_backward) and a
 * separate difference or explicit formula. */
#ifndef L2_AD_H
#define L2_AD_H

#include <stddef.h>
#include <stdint.h>

#ifdef L2_AD_DOUBLE
typedef double adr;
#else
typedef float adr;
#endif

#define AD_MAXDIM 6

typedef struct AdTensor {
	int ndim;
	int shape[AD_MAXDIM];
	size_t n;        /* number of elements */
	adr *v;          /* [n] values */
	adr *g;          /* [n] gradient; NULL until one flows (parameters: always set) */
	int rg;          /* requires grad: a parameter, or computed from one */
	int param;       /* owns v and g (ad_param_new) */
	const char *name;/* parameters: state-dict name (owned) */
} AdTensor;

typedef struct AdGraph AdGraph;

AdGraph *ad_graph_new(void);
void ad_graph_free(AdGraph *g);
/* Forget the tape and every arena tensor; keeps the memory for the next step. */
void ad_graph_reset(AdGraph *g);
/* With 0, ops record nothing (evaluation); default 1. */
void ad_graph_set_grad(AdGraph *g, int enabled);
/* Kinks of the piecewise-linear activations (leaky_relu, leaky_relu_gain):
 * RECORD stores the sign pattern of their inputs during the passes that
 * follow (in op order, from each ad_graph_reset), REPLAY uses the recorded
 * pattern instead of the inputs' own signs, forward and backward, so a
 * perturbed input is run through the same linear piece (finite differences
 * of gradients then give the almost-everywhere derivative autograd gives,
 * with no jumps where a unit crosses zero; lib/models/gan.h's R1).  OFF: default. */
enum { AD_KINKS_OFF, AD_KINKS_RECORD, AD_KINKS_REPLAY };
void ad_graph_kinks(AdGraph *g, int mode);
/* Bytes the arena holds (for tests of memory reuse). */
size_t ad_graph_arena_bytes(const AdGraph *g);
size_t ad_graph_arena_chunks(const AdGraph *g);
/* Seed dL = 1 on a scalar (n == 1) loss, or with `seed` (n values) when
 * given, and accumulate gradients into every tensor with rg. */
void ad_backward(AdGraph *g, AdTensor *loss);
void ad_backward_seed(AdGraph *g, AdTensor *out, const adr *seed);

/* ---- tensors -------------------------------------------------------------- */

/* A parameter: malloc'd, zero value and gradient; free with ad_param_free. */
AdTensor *ad_param_new(const char *name, int ndim, const int *shape);
void ad_param_free(AdTensor *p);
void ad_zero_grads(AdTensor **p, int n);
/* Arena tensors: uninitialised, zeroed, or a copy of data (NULL = zeros). */
AdTensor *ad_tensor(AdGraph *g, int ndim, const int *shape);
AdTensor *ad_zeros(AdGraph *g, int ndim, const int *shape);
AdTensor *ad_input(AdGraph *g, int ndim, const int *shape, const adr *data);
/* An input whose gradient is wanted (e.g. dD/dx for R1). */
AdTensor *ad_input_rg(AdGraph *g, int ndim, const int *shape, const adr *data);
/* Scratch memory from the arena (valid until the next reset). */
void *ad_scratch(AdGraph *g, size_t bytes);
/* Shape helpers. */
int ad_same_shape(const AdTensor *a, const AdTensor *b);
const char *ad_shape_str(const AdTensor *t, char *buf, size_t len);

/* C = alpha op(A) op(B) + beta C, row-major (the BLAS/CUDA seam). */
void ad_gemm(int ta, int tb, int m, int n, int k, adr alpha, const adr *A, int lda, const adr *B, int ldb,
	     adr beta, adr *C, int ldc);

/* For threads that split work themselves (a shard of a batch each, lib/method/
 * diffusion_train.c): with on = 1, ad_gemm in the calling thread leaves OpenBLAS's
 * thread count alone (the caller has set it to 1 for the duration). */
void ad_gemm_serial(int on);

/* ---- linear algebra --------------------------------------------------------- */

/* x[..., in] W[out, in]^T + b[out] -> [..., out]  (b may be NULL). */
AdTensor *ad_linear(AdGraph *g, AdTensor *x, AdTensor *W, AdTensor *b);
/* Batched: a[..., m, k] (or [..., k, m] with ta) times b[..., k, n] (or
 * [..., n, k] with tb).  b may also be 2-D and is then shared by the batch. */
AdTensor *ad_matmul(AdGraph *g, AdTensor *a, AdTensor *b, int ta, int tb);
/* Rows of W[V, D] at idx[0..nidx) -> [nidx, D] (token embedding, gather). */
AdTensor *ad_embedding(AdGraph *g, AdTensor *W, const int *idx, int nidx);

/* ---- normalisation and attention ---------------------------------------------- */

/* Over the last dimension; w, b: [D] or NULL. */
AdTensor *ad_layernorm(AdGraph *g, AdTensor *x, AdTensor *w, AdTensor *b, double eps);
/* x[N, C, ...] in `groups` groups of channels; w, b: [C] or NULL. */
AdTensor *ad_groupnorm(AdGraph *g, AdTensor *x, int groups, AdTensor *w, AdTensor *b, double eps);
/* x / max(||x||, eps) along the last dimension (cosine similarity). */
AdTensor *ad_normalize(AdGraph *g, AdTensor *x, double eps);
/* x / (eps + ||x|| / sqrt(L)) along `axis` (L = its length; any axis, strided):
 * EDM2's magnitude-preserving normalisation (an RMS norm without gain), used
 * per pixel and head on the queries, keys and values of cosine attention. */
AdTensor *ad_normalize_axis(AdGraph *g, AdTensor *x, int axis, double eps);
/* Forced weight normalisation (EDM2): row o of v[O, ...] with F = n / O
 * elements (the fan-in) becomes  W_o = v_o / (eps + ||v_o|| / sqrt(F)) / sqrt(F),
 * a unit-norm row up to eps; conv2d / linear then use W. */
AdTensor *ad_wn_weight(AdGraph *g, AdTensor *v, double eps);
/* Softmax over the last dimension. */
AdTensor *ad_softmax(AdGraph *g, AdTensor *x);
/* softmax(q k^T / sqrt(D) [+ causal mask]) v.  q[B, H, Tq, D], k and v
 * [B, H, Tk, D] (cross attention when Tk != Tq); causal masks key j > query i
 * (+ Tk - Tq). */
AdTensor *ad_attention(AdGraph *g, AdTensor *q, AdTensor *k, AdTensor *v, int causal);
/* Mean softmax cross-entropy of logits[N, C] against labels[N]. */
AdTensor *ad_cross_entropy(AdGraph *g, AdTensor *logits, const int *labels);

/* ---- elementwise ----------------------------------------------------------------- */

/* NumPy broadcasting (shapes aligned on the right). */
AdTensor *ad_add(AdGraph *g, AdTensor *a, AdTensor *b);
AdTensor *ad_sub(AdGraph *g, AdTensor *a, AdTensor *b);
AdTensor *ad_mul(AdGraph *g, AdTensor *a, AdTensor *b);
AdTensor *ad_div(AdGraph *g, AdTensor *a, AdTensor *b);
/* s x + c */
AdTensor *ad_affine(AdGraph *g, AdTensor *x, double s, double c);
AdTensor *ad_scale(AdGraph *g, AdTensor *x, double s);
AdTensor *ad_gelu(AdGraph *g, AdTensor *x);        /* exact (erf) */
AdTensor *ad_quick_gelu(AdGraph *g, AdTensor *x);  /* x sigmoid(1.702 x) */
AdTensor *ad_silu(AdGraph *g, AdTensor *x);
AdTensor *ad_sigmoid(AdGraph *g, AdTensor *x);
AdTensor *ad_tanh(AdGraph *g, AdTensor *x);
AdTensor *ad_relu(AdGraph *g, AdTensor *x);
AdTensor *ad_leaky_relu(AdGraph *g, AdTensor *x, double slope);
/* gain * leaky_relu(x, slope) in one pass (StyleGAN2's lrelu with gain sqrt 2). */
AdTensor *ad_leaky_relu_gain(AdGraph *g, AdTensor *x, double slope, double gain);
AdTensor *ad_exp(AdGraph *g, AdTensor *x);
AdTensor *ad_log(AdGraph *g, AdTensor *x);
AdTensor *ad_sqrt(AdGraph *g, AdTensor *x);
AdTensor *ad_square(AdGraph *g, AdTensor *x);
AdTensor *ad_softplus(AdGraph *g, AdTensor *x);    /* log(1 + e^x), stable */
AdTensor *ad_pow(AdGraph *g, AdTensor *x, double p); /* x^p (x > 0 unless p is an integer) */
AdTensor *ad_cos(AdGraph *g, AdTensor *x);
/* min(max(x, lo), hi); the gradient passes where lo <= x <= hi (torch.clamp). */
AdTensor *ad_clamp(AdGraph *g, AdTensor *x, double lo, double hi);

/* ---- reductions ------------------------------------------------------------------- */

AdTensor *ad_sum(AdGraph *g, AdTensor *x, int axis, int keepdim);
AdTensor *ad_mean(AdGraph *g, AdTensor *x, int axis, int keepdim);
AdTensor *ad_sum_all(AdGraph *g, AdTensor *x);   /* -> [1] */
AdTensor *ad_mean_all(AdGraph *g, AdTensor *x);  /* -> [1] */

/* ---- shape ------------------------------------------------------------------------ */

/* Same elements, new shape (one entry may be -1). */
AdTensor *ad_reshape(AdGraph *g, AdTensor *x, int ndim, const int *shape);
/* out.shape[i] = x.shape[perm[i]]. */
AdTensor *ad_permute(AdGraph *g, AdTensor *x, const int *perm);
AdTensor *ad_transpose(AdGraph *g, AdTensor *x, int a, int b);
/* Elements start..start+len-1 along axis. */
AdTensor *ad_slice(AdGraph *g, AdTensor *x, int axis, int start, int len);
AdTensor *ad_concat(AdGraph *g, AdTensor **xs, int n, int axis);
/* Broadcast to a larger shape (the gradient sums back). */
AdTensor *ad_expand(AdGraph *g, AdTensor *x, int ndim, const int *shape);

/* ---- images (NCHW) ---------------------------------------------------------------- */

/* w[O, C/groups, kh, kw], b[O] or NULL. */
AdTensor *ad_conv2d(AdGraph *g, AdTensor *x, AdTensor *w, AdTensor *b, int stride, int pad, int groups);
AdTensor *ad_upsample_nearest(AdGraph *g, AdTensor *x, int factor);
AdTensor *ad_avgpool(AdGraph *g, AdTensor *x, int factor);
/* Each sample n shifted by whole pixels with zero fill (DiffAugment's
 * translation): y[n, c, i, j] = x[n, c, i + shift[2n], j + shift[2n + 1]]
 * where that lies inside the image, else 0.  shift is copied. */
AdTensor *ad_translate(AdGraph *g, AdTensor *x, const int *shift);
/* F.interpolate(mode="bilinear", align_corners=False, antialias=False). */
AdTensor *ad_resize_bilinear(AdGraph *g, AdTensor *x, int oh, int ow);
/* StyleGAN2's upfirdn2d: zero-insert upsample by up, pad (x0, x1, y0, y1;
 * negative crops), convolve with the FIR f[fh, fw] (a true convolution, as
 * upfirdn2d_ref flips before conv2d), keep every down-th sample.  f is a
 * constant (copied); gains are the caller's (e.g. f * up^2). */
AdTensor *ad_upfirdn2d(AdGraph *g, AdTensor *x, const adr *f, int fh, int fw, int up, int down, int px0, int px1,
		       int py0, int py1);
/* StyleGAN2 modulated convolution x[N, C, H, W], w[O, C, k, k], styles
 * s[N, C] -> [N, O, H', W'] (stride 1, zero padding pad): the same values as
 * the per-sample weight w' = w * s demodulated by rsqrt(sum w'^2 + 1e-8)
 * (when demod) in a grouped convolution, computed in StyleGAN2's training
 * form  y[n] = d[n] * conv(x[n] * s[n], w)  as one GEMM over the batch, with
 * its own backward (tests/c/test_ad.c checks it against the composed form). */
AdTensor *ad_modconv(AdGraph *g, AdTensor *x, AdTensor *w, AdTensor *s, int demod, int pad);

#endif
