/* device.h — the seam between CPU and CUDA code paths.
 *
 * Every l2 build links: a CPU-only build (no nvcc, or CUDA=0) answers
 * l2_cuda_built() == 0 and tools refuse --device cuda with a clear message.
 * A CUDA build compiles the sources in lib/cuda and answers from the runtime. */
#ifndef L2_DEVICE_H
#define L2_DEVICE_H

#include <stddef.h>

int l2_cuda_built(void);       /* compiled with CUDA support */
int l2_cuda_available(void);   /* built, and a device answers */
const char *l2_cuda_status(void); /* one line: device name, or why not */

/* C = alpha * op(A) op(B) + beta * C, row-major, on the GPU (copies in and
 * out).  Only in CUDA builds with a device; returns 0 on success. */
int l2_cuda_sgemm(int transa, int transb, int m, int n, int k, float alpha,
		  const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);

#endif
