/* inception.h — the FID Inception-v3 of pytorch-fid (pt_inception-2015-12-05),
 * inference on CPU.
 *
 * Architecture: torchvision's Inception-v3 with pytorch-fid's patches —
 * Mixed_5b-d, 6b-e and 7b average-pool without counting padding, Mixed_7c
 * max-pools, batch norm eps 0.001, a 1008-way fc (not used for features).
 * Features as pytorch-fid's InceptionV3([block]) gives them:
 *   dims 64:   after the first max pool  (64 x 73 x 73, averaged)
 *   dims 192:  after the second max pool (192 x 35 x 35, averaged)
 *   dims 768:  after Mixed_6e, the aux-classifier input (768 x 17 x 17, averaged)
 *   dims 2048: pool3, after Mixed_7c and the final average pool.
 * Weights use the key names of pytorch-fid's state dict
 * ("Conv2d_1a_3x3.conv.weight", "Mixed_5b.branch1x1.bn.running_var", ...);
 * batch norms are folded into the convolutions at load time. */
#ifndef L2_INCEPTION_H
#define L2_INCEPTION_H

#include <stdint.h>

#define L2_INCEPTION_SIZE 299
#define L2_INCEPTION_BN_EPS 0.001f

typedef struct L2Inception L2Inception;

/* The parameters of the state dict, in a fixed order (fc last). */
int l2_inception_param_count(void);
/* Name and shape (ndim 1, 2 or 4) of parameter i. */
const char *l2_inception_param_name(int i, int *ndim, int64_t shape[4]);

/* Deterministic random parameter i for `seed` (testing and benchmarks):
 * element j is a 24-bit value of splitmix64(fnv1a64(name) ^ seed * phi +
 * (j + 1) * phi), mapped to v in [-1, 1) exactly in float32, then
 *   conv weights  v * (float)sqrt(6 / fan_in)
 *   bn.weight     1 + v / 4        bn.bias         v / 16
 *   bn.running_mean v / 16         bn.running_var  1 + v / 4
 *   fc.weight     v * (float)sqrt(3 / 2048), fc.bias v / 16
 * (all float32 arithmetic; tests/ref/make_fid.py computes the same bits). */
void l2_inception_random_param(uint64_t seed, int i, float *out);

/* Fetch one tensor of the given name and shape into out (float32), or die
 * with a message naming the source and the problem. */
typedef void (*L2InceptionGetFn)(void *ctx, const char *name, int ndim, const int64_t *shape, float *out);

/* The tensor source of a safetensors file: ctx is an open L2Safetensors (lib/io/safetensors.h);
 * a missing tensor is a one-line error naming the file and the key. */
void l2_inception_st_get(void *ctx, const char *name, int ndim, const int64_t *shape, float *out);

/* Build the network from a tensor source (fc is not read). */
L2Inception *l2_inception_load(L2InceptionGetFn get, void *ctx);
/* Build it from a safetensors file with pytorch-fid's key names; dies with a one-line
 * error naming the file and the missing or misshapen tensor. */
L2Inception *l2_inception_open(const char *path);
/* Build it from l2_inception_random_param(seed, ...). */
L2Inception *l2_inception_random(uint64_t seed);
/* Also releases the calling thread's buffers (see below). */
void l2_inception_free(L2Inception *net);
/* Free the calling thread's cached activation and im2col buffers; call it
 * at the end of every thread that ran l2_inception_forward(). */
void l2_inception_thread_cleanup(void);

/* 1 if dims is 64, 192, 768 or 2048. */
int l2_inception_dims_ok(int dims);

/* Features of B images.  x: (B, 3, 299, 299) RGB in [0, 1] (already resized
 * as pytorch-fid does: bilinear, align_corners=False); the network scales
 * to [-1, 1] itself.  feat: (B, dims).  Multi-threaded through OpenBLAS. */
void l2_inception_forward(const L2Inception *net, const float *x, int B, int dims, float *feat);

/* 2048-d pool3 features of n images img (n, 3, R, R) in [-1, 1] held in memory (a
 * generator's samples), computed as l2-fid computes them on the same images saved as PNG
 * files: each image is quantised to 8 bits as l2_image_from_chw() writes it, taken to [0, 1]
 * and resized bilinearly to 299x299 (align_corners=False).  feat: (n, 2048).  Batches of 8
 * through OpenBLAS's threads, so bit for bit equal to l2-fid's features at one thread and
 * to rounding at more (OpenBLAS's sums depend on its thread count).  Frees the calling
 * thread's buffers before returning. */
void l2_inception_features_chw(const L2Inception *net, const float *img, int n, int R, float *feat);

/* Multiply-adds x 2 per image up to the feature of `dims` (for reports). */
double l2_inception_flops(int dims);

#endif
