/* nn.h — the inference kernels of l2's transformers (CLIP): SGEMM with
 * bias, layer norm, QuickGELU, multi-head softmax attention (optionally
 * causal), all over row-major float32 and multi-threaded.
 *
 * GEMMs go to OpenBLAS (cblas_sgemm, its own threads, l2_threads of them);
 * the element-wise and attention kernels split rows over l2_threads
 * pthreads.  l2_nn_linear is the seam for a CUDA path (lib/core/device.h): when
 * l2_device is L2_DEVICE_CUDA it asks l2_cuda_sgemm first. */
#ifndef L2_NN_H
#define L2_NN_H

#include <stddef.h>

/* y (n, out) = x (n, in) · wᵀ + b, with w (out, in) as PyTorch stores a
 * Linear weight; b may be NULL.  ldx/ldy are the row strides of x and y. */
void l2_nn_linear(const float *x, size_t ldx, int n, int in, const float *w, const float *b, int out, float *y,
		  size_t ldy);
/* y (n, out) += x (n, in) · wᵀ (+ b): the residual form of l2_nn_linear. */
void l2_nn_linear_add(const float *x, int n, int in, const float *w, const float *b, int out, float *y);

/* y = (x - mean) / sqrt(var + eps) * g + b per row of d (biased variance,
 * as torch.nn.LayerNorm); x and y may be the same buffer. */
void l2_nn_layer_norm(const float *x, int n, int d, const float *g, const float *b, float eps, float *y);
/* x *= sigmoid(1.702 x), in place (CLIP's QuickGELU). */
void l2_nn_quick_gelu(float *x, size_t n);

/* Multi-head self-attention core for `nb` sequences of length `s`:
 * qkv (nb*s, 3*d) holds q | k | v for each token (heads are consecutive
 * slices of width d/heads), out (nb*s, d) gets softmax(q kᵀ/√dh [+ mask]) v
 * per head.  causal: token i sees tokens 0..i only. */
void l2_nn_attention(const float *qkv, int nb, int s, int d, int heads, int causal, float *out);

/* Single-thread, vectorised forms of the three kernels above, for callers
 * that split the work themselves (e.g. one batch of images per thread with
 * OpenBLAS on one thread).  They agree with the forms above to rounding
 * (exp is a polynomial within 2 ulp of expf; the attention dot products and
 * value sums keep the scalar order). */
void l2_nn_layer_norm_serial(const float *x, int n, int d, const float *g, const float *b, float eps, float *y);
void l2_nn_quick_gelu_serial(float *x, size_t n);
/* the attention core of l2_nn_attention for the (sequence, head) pairs
 * i0 <= sequence * heads + head < i1 */
void l2_nn_attention_range(const float *qkv, int s, int d, int heads, int causal, float *out, size_t i0, size_t i1);

#endif
