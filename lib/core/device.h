/* device.h — the seam between CPU and CUDA code paths: today one SGEMM offload.
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

/* C = alpha * op(A) op(B) + beta * C, row-major as cblas_sgemm takes it, on the
 * GPU: an SGEMM offload that copies the operands in and the result out on every
 * call (ad.c offloads from 2^22 multiply-adds, nn.c every linear layer).  The
 * copies are most of its time: on an H200 it ran 1.1x (256^3) to 3.6x (4096^3)
 * the rate of OpenBLAS on 16 Xeon cores but 4-8% of cuBLAS's on operands already
 * on the device, and the CLIP encoders ran slower with it than on the CPU
 * (bench/RESULTS.md, CUDA).  Safe from several threads
 * (they take turns).  Returns 0 on success; -1 with C untouched when there is no
 * CUDA build, no device, or any CUDA call fails, so the caller runs OpenBLAS
 * instead.  Checked against OpenBLAS by tests/c/test_device.c (make check-gpu). */
int l2_cuda_sgemm(int transa, int transb, int m, int n, int k, float alpha,
		  const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);

#endif
