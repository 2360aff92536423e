/* conv.h — inference-only 2-D convolution and pooling for CNNs on CPU.
 *
 * Activations use the layout (C, B, H, W): channel-major over a batch of B
 * images.  A convolution is then one GEMM, out (Cout, B*Ho*Wo) =
 * W (Cout, Cin*kh*kw) x im2col(x) (Cin*kh*kw, B*Ho*Wo), and concatenating
 * branches along channels is free: a branch writes rows [c0, c0+Cout) of
 * its block's output.  1x1 stride-1 convolutions skip im2col entirely.
 * Semantics follow PyTorch (nn.Conv2d, F.max_pool2d, F.avg_pool2d with
 * count_include_pad, adaptive average pooling to 1x1). */
#ifndef L2_CONV_H
#define L2_CONV_H

#include <stddef.h>

typedef struct {
	int cin, cout, kh, kw, sh, sw, ph, pw;
	float *w; /* (cout, cin, kh, kw) — PyTorch's weight layout */
	float *b; /* (cout) */
} L2Conv;

/* Output size along one axis (PyTorch, floor mode). */
static inline int l2_conv_out_size(int in, int k, int s, int p) { return (in + 2 * p - k) / s + 1; }

/* Fold an inference batch norm that follows the convolution into its
 * weights and bias: s = gamma / sqrt(var + eps), w *= s, b = beta - mean*s
 * (plus s * the old bias). */
void l2_conv_fold_bn(L2Conv *c, const float *gamma, const float *beta, const float *mean, const float *var,
		     float eps);

/* y (cout, B, Ho, Wo) = conv(x (cin, B, H, W)) + bias, then ReLU if relu.
 * Uses a scratch buffer it manages itself (grown as needed, per thread). */
void l2_conv2d(const L2Conv *c, const float *x, int B, int H, int W, float *y, int relu);
/* The same with ReLU on output channels [relu_from, cout) only: several
 * convolutions of one input stacked into one (bigger, faster) GEMM, some of
 * whose outputs are pooled before their ReLU. */
void l2_conv2d_rows(const L2Conv *c, const float *x, int B, int H, int W, float *y, int relu_from);

/* Max pooling on `planes` independent H x W planes; padding counts as -inf. */
void l2_maxpool2d(const float *x, size_t planes, int H, int W, int k, int s, int p, float *y);
/* Average pooling; count_include_pad = 0 divides by the number of window
 * cells inside the image (TensorFlow's and pytorch-fid's convention). */
void l2_avgpool2d(const float *x, size_t planes, int H, int W, int k, int s, int p, int count_include_pad, float *y);
/* Adaptive average pooling to 1x1 of (C, B, H, W): y (B, C). */
void l2_global_avgpool(const float *x, int C, int B, int H, int W, float *y);

/* n bytes, 64-byte aligned; from 4 MiB on, 2 MiB aligned and marked for
 * transparent huge pages (one page fault per 2 MiB instead of per 4 KiB on
 * first touch: that was a third of a short run's time).  Release with free(). */
void *l2_conv_alloc(size_t n);

/* Free the calling thread's im2col scratch buffer. */
void l2_conv_scratch_free(void);

#endif
