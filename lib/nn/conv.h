/* conv.h — inference-only 2-D convolution and pooling for CNNs on CPU.
 *
 * Activations use the layout (C, B, H, W): channel-major over a batch of B
 * images.  A convolution is then one GEMM, out (Cout, B*Ho*Wo) =
 * W (Cout, Cin*kh*kw) x im2col(x) (Cin*kh*kw, B*Ho*Wo), and concatenating
 * branches along channels is free: a branch writes rows [c0, c0+Cout) of
 * its block's output.  1x1 stride-1 convolutions skip im2col entirely.
 * Semantics follow PyTorch (nn.Conv2d, F.max_pool2d, F.avg_pool2d with
 * count_include_pad, adaptive average pooling to 1x1).
 *
 * Element type: `cnnr` is float; a test that defines L2_CNN_DOUBLE and
 * #includes conv.c (and lib/nn/cnn_layers.c, lib/models/vae.c) compiles
 * the convolutions in double, with DGEMM, so a whole network can be
 * checked against a float64 reference to rounding (tests/c/test_vae_double.c).
 * The pooling functions exist in the float build only. */
#ifndef L2_CONV_H
#define L2_CONV_H

#include <stddef.h>

#ifdef L2_CNN_DOUBLE
typedef double cnnr;
#else
typedef float cnnr;
#endif

typedef struct {
	int cin, cout, kh, kw, sh, sw, ph, pw;
	cnnr *w; /* (cout, cin, kh, kw) — PyTorch's weight layout */
	cnnr *b; /* (cout), or NULL for a convolution without bias */
} L2Conv;

/* Output size along one axis (PyTorch, floor mode). */
static inline int l2_conv_out_size(int in, int k, int s, int p) { return (in + 2 * p - k) / s + 1; }

/* Fold an inference batch norm that follows the convolution into its
 * weights and bias: s = gamma / sqrt(var + eps), w *= s, b = beta - mean*s
 * (plus s * the old bias). */
void l2_conv_fold_bn(L2Conv *c, const cnnr *gamma, const cnnr *beta, const cnnr *mean, const cnnr *var,
		     float eps);

/* y (cout, B, Ho, Wo) = conv(x (cin, B, H, W)) + bias, then ReLU if relu.
 * Uses a scratch buffer it manages itself (grown as needed, per thread). */
void l2_conv2d(const L2Conv *c, const cnnr *x, int B, int H, int W, cnnr *y, int relu);
/* The same with ReLU on output channels [relu_from, cout) only: several
 * convolutions of one input stacked into one (bigger, faster) GEMM, some of
 * whose outputs are pooled before their ReLU. */
void l2_conv2d_rows(const L2Conv *c, const cnnr *x, int B, int H, int W, cnnr *y, int relu_from);
/* y += conv(x) + bias: the convolution added onto what y holds (a residual
 * branch's last convolution adds into the shortcut without another pass). */
void l2_conv2d_add(const L2Conv *c, const cnnr *x, int B, int H, int W, cnnr *y);

/* Winograd F(2x2, 3x3) for 3x3 convolutions of stride 1 and padding 1:
 * each 2x2 output tile is Aᵀ [U ⊙ V] A with V = Bᵀ d B the transform of
 * its 4x4 input tile d and U = G g Gᵀ the transform of the 3x3 kernel g,
 * so the multiplies are 16 GEMMs (Cout x Cin) x (Cin x tiles) holding
 * 4/9 of the direct convolution's multiply-adds, and the tile transforms
 * (additions only: every coefficient of Bᵀ and Aᵀ is 0 or ±1) replace
 * im2col's nine copies of the input with four.  Rounding: within a few
 * units of the im2col GEMM's (tested against a float64 convolution).
 * l2_conv_wino_ok: the shapes it computes; l2_conv_wino_weights fills u
 * (16 Cout Cin values, l2_conv_wino_size) from c->w, in double, once per
 * weight set.  l2_conv2d_wino: y (=, or += when add) conv(x) + bias, like
 * l2_conv2d / l2_conv2d_add (any H, W; one-thread or threaded BLAS as the
 * caller set it).  The sums of an output tile depend only on H, W and the
 * weights, never on B: the tiles are cut into blocks of whole tile rows
 * of one image. */
int l2_conv_wino_ok(const L2Conv *c);
size_t l2_conv_wino_size(const L2Conv *c);
void l2_conv_wino_weights(const L2Conv *c, cnnr *u);
void l2_conv2d_wino(const L2Conv *c, const cnnr *u, const cnnr *x, int B, int H, int W, cnnr *y, int add);

#ifndef L2_CNN_DOUBLE
/* Max pooling on `planes` independent H x W planes; padding counts as -inf. */
void l2_maxpool2d(const float *x, size_t planes, int H, int W, int k, int s, int p, float *y);
/* Average pooling; count_include_pad = 0 divides by the number of window
 * cells inside the image (TensorFlow's and pytorch-fid's convention). */
void l2_avgpool2d(const float *x, size_t planes, int H, int W, int k, int s, int p, int count_include_pad, float *y);
/* Adaptive average pooling to 1x1 of (C, B, H, W): y (B, C). */
void l2_global_avgpool(const float *x, int C, int B, int H, int W, float *y);
#endif

/* n bytes, 64-byte aligned; from 4 MiB on, 2 MiB aligned and marked for
 * transparent huge pages (one page fault per 2 MiB instead of per 4 KiB on
 * first touch: that was a third of a short run's time).  Release with free(). */
void *l2_conv_alloc(size_t n);

/* Free the calling thread's im2col scratch buffer. */
void l2_conv_scratch_free(void);

#endif
