/* cnn_layers.h — the layers of CNN inference other than convolution and
 * pooling, on conv.h's (C, B, H, W) activations: group normalisation (with
 * SiLU fused on request), residual adds, nearest x2 upsampling, zero
 * padding, and single-head self-attention over the pixels of each image.
 * Semantics follow PyTorch (nn.GroupNorm, F.silu, F.interpolate(mode=
 * "nearest"), F.pad); element type cnnr as in conv.h (double when a test
 * compiles this file with L2_CNN_DOUBLE).  The element-wise kernels split
 * their work over l2_threads threads; the attention's products are OpenBLAS
 * GEMMs on its threads. */
#ifndef L2_CNN_LAYERS_H
#define L2_CNN_LAYERS_H

#include <stddef.h>

#include "nn/conv.h"

/* on != 0: the calling thread runs these kernels alone, without helper
 * threads (for callers that give each thread its own images). */
void l2_cnn_set_serial(int on);

/* y = GroupNorm(groups, eps)(x) * gamma + beta, per image, then x * sigmoid(x)
 * when silu.  x, y: (C, B, HW); C a multiple of groups; gamma, beta (C).
 * Statistics in double, two passes (mean, then the biased variance of the
 * deviations).  y may be x. */
void l2_cnn_group_norm(const cnnr *x, int C, int B, size_t HW, int groups, const cnnr *gamma, const cnnr *beta,
		       double eps, int silu, cnnr *y);

/* y += x over n elements, then ReLU when relu. */
void l2_cnn_add(cnnr *y, const cnnr *x, size_t n, int relu);

/* Nearest-neighbour x2 upsampling of `planes` H x W planes into 2H x 2W. */
void l2_cnn_upsample2x(const cnnr *x, size_t planes, int H, int W, cnnr *y);

/* Zero padding of `planes` H x W planes by top, bottom, left, right:
 * y is (H + top + bottom) x (W + left + right) per plane. */
void l2_cnn_pad(const cnnr *x, size_t planes, int H, int W, int top, int bottom, int left, int right, cnnr *y);

/* Single-head self-attention over the N pixels of each of B images:
 * q, k, v, out are (C, B, N); out[:, b] = v_b softmax(q_bᵀ k_b / sqrt(C))ᵀ,
 * i.e. pixel i of the output is the softmax-weighted sum over pixels j of
 * v[:, j] with weights exp(q_i·k_j / sqrt(C)).  Scratch: N x N per image. */
void l2_cnn_attention(const cnnr *q, const cnnr *k, const cnnr *v, int C, int B, int N, cnnr *out);

#endif
