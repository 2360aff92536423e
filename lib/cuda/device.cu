/* device.cu — CUDA side of the device seam (see lib/core/device.h): device
 * discovery and a cuBLAS SGEMM on row-major host arrays.  Compiled only when
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

/* Row-major C = A B is column-major C^T = B^T A^T: swap the operands. */
extern "C" int l2cu_sgemm(int transa, int transb, int m, int n, int k, float alpha, const float *a,
			     int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
	static cublasHandle_t h;
	if (!h && cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) return -1;
	size_t sa = (size_t)(transa ? k : m) * lda, sb = (size_t)(transb ? n : k) * ldb, sc = (size_t)m * ldc;
	float *da, *db, *dc;
	if (cudaMalloc(&da, sa * 4) || cudaMalloc(&db, sb * 4) || cudaMalloc(&dc, sc * 4)) return -1;
	cudaMemcpy(da, a, sa * 4, cudaMemcpyHostToDevice);
	cudaMemcpy(db, b, sb * 4, cudaMemcpyHostToDevice);
	if (beta != 0.0f) cudaMemcpy(dc, c, sc * 4, cudaMemcpyHostToDevice);
	cublasStatus_t st = cublasSgemm(h, transb ? CUBLAS_OP_T : CUBLAS_OP_N, transa ? CUBLAS_OP_T : CUBLAS_OP_N,
					n, m, k, &alpha, db, ldb, da, lda, &beta, dc, ldc);
	cudaMemcpy(c, dc, sc * 4, cudaMemcpyDeviceToHost);
	cudaFree(da); cudaFree(db); cudaFree(dc);
	return st == CUBLAS_STATUS_SUCCESS && cudaGetLastError() == cudaSuccess ? 0 : -1;
}
