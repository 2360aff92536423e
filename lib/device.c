/* device.c — CPU-build answers for the device seam (see device.h).  In a
 * CUDA build, lib/cuda/device.cu defines these instead. */
#include "device.h"

#ifndef L2_CUDA
int l2_cuda_built(void) { return 0; }
int l2_cuda_available(void) { return 0; }
const char *l2_cuda_status(void) { return "built without CUDA"; }
int l2_cuda_sgemm(int transa, int transb, int m, int n, int k, float alpha, const float *a, int lda,
		  const float *b, int ldb, float beta, float *c, int ldc)
{
	(void)transa; (void)transb; (void)m; (void)n; (void)k; (void)alpha; (void)a; (void)lda;
	(void)b; (void)ldb; (void)beta; (void)c; (void)ldc;
	return -1;
}
#endif
