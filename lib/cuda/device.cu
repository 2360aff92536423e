/* device.cu — CUDA side of the device seam (see lib/core/device.h): device
 * discovery and an SGEMM offload (cuBLAS on row-major host arrays).  Compiled only when
 * nvcc is present (CUDA=1), into libl2cuda.so, which lib/core/device.c loads on
 * first use so that tools start fast and run on machines without CUDA. */
#include <cstdio>
#include <cuda_runtime.h>
#include <cublas_v2.h>


static char status_line[256];

extern "C" int l2cu_available(void)
{
	int n = 0;
	cudaError_t e = cudaGetDeviceCount(&n);
	if (e != cudaSuccess || n == 0) {
		snprintf(status_line, sizeof status_line, "%s",
			 e != cudaSuccess ? cudaGetErrorString(e) : "no CUDA device");
		return 0;
	}
	cudaDeviceProp p;
	cudaGetDeviceProperties(&p, 0);
	snprintf(status_line, sizeof status_line, "%s, %d SMs, %.1f GiB", p.name, p.multiProcessorCount,
		 p.totalGlobalMem / 1073741824.0);
	return 1;
}

extern "C" const char *l2cu_status(void)
{
	if (!status_line[0]) l2cu_available();
	return status_line;
}

/* Row-major C = A B is column-major C^T = B^T A^T: swap the operands.
 * An SGEMM offload, no more: the operands are copied to freshly allocated
 * device buffers and the result back, on every call.  Any failure frees what
 * was allocated and returns -1 with C untouched, so the caller can fall back
 * to OpenBLAS on the same arguments. */
extern "C" int l2cu_sgemm(int transa, int transb, int m, int n, int k, float alpha, const float *a,
			     int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
	static cublasHandle_t h;
	if (m <= 0 || n <= 0) return 0;
	if (!h && cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) return -1;
	/* elements spanned by each row-major operand: (rows - 1) * ld + cols, not
	 * rows * ld, which could read past the caller's last row */
	int ra = transa ? k : m, ca = transa ? m : k, rb = transb ? n : k, cb = transb ? k : n;
	size_t sa = k > 0 ? (size_t)(ra - 1) * lda + ca : 0, sb = k > 0 ? (size_t)(rb - 1) * ldb + cb : 0;
	size_t sc = (size_t)(m - 1) * ldc + n;
	float *da = NULL, *db = NULL, *dc = NULL;
	int ok = cudaMalloc(&dc, sc * 4) == cudaSuccess;
	if (ok && sa) ok = cudaMalloc(&da, sa * 4) == cudaSuccess;
	if (ok && sb) ok = cudaMalloc(&db, sb * 4) == cudaSuccess;
	if (ok && sa) ok = cudaMemcpy(da, a, sa * 4, cudaMemcpyHostToDevice) == cudaSuccess;
	if (ok && sb) ok = cudaMemcpy(db, b, sb * 4, cudaMemcpyHostToDevice) == cudaSuccess;
	/* C goes in also when beta is 0 if rows are padded (ldc > n): what is copied
	 * back must hold the caller's values between the rows */
	if (ok && (beta != 0.0f || ldc != n)) ok = cudaMemcpy(dc, c, sc * 4, cudaMemcpyHostToDevice) == cudaSuccess;
	if (ok)
		ok = cublasSgemm(h, transb ? CUBLAS_OP_T : CUBLAS_OP_N, transa ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k,
				 &alpha, db, ldb, da, lda, &beta, dc, ldc) == CUBLAS_STATUS_SUCCESS;
	/* the product lands in a device buffer: C changes only once it has succeeded */
	if (ok) ok = cudaDeviceSynchronize() == cudaSuccess && cudaGetLastError() == cudaSuccess;
	if (ok) ok = cudaMemcpy(c, dc, sc * 4, cudaMemcpyDeviceToHost) == cudaSuccess;
	cudaFree(da);
	cudaFree(db);
	cudaFree(dc);
	return ok ? 0 : -1;
}
