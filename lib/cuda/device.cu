/* device.cu — CUDA side of the device seam (see lib/core/device.h): device
 * discovery and an SGEMM offload (cuBLAS on row-major host arrays).  Compiled only when
 * nvcc is present (CUDA=1), into libl2cuda.so, which lib/core/device.c loads on
 * first use so that tools start fast and run on machines without CUDA. */
#include <cstdio>
#include <pthread.h>
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
	if (cudaGetDeviceProperties(&p, 0) != cudaSuccess) {
		snprintf(status_line, sizeof status_line, "device 0 does not answer");
		return 0;
	}
	snprintf(status_line, sizeof status_line, "%s, %d SMs, %.1f GiB", p.name, p.multiProcessorCount,
		 p.totalGlobalMem / 1073741824.0);
	return 1;
}

extern "C" const char *l2cu_status(void)
{
	if (!status_line[0]) l2cu_available();
	return status_line;
}

/* One cuBLAS handle and three device buffers for the process, used under one
 * lock: a cuBLAS handle must not be used by two threads at once, and ad_gemm
 * can be called from worker threads (the trainers' shards).  The buffers
 * only grow, so the products of a forward pass, which repeat the same shapes,
 * stop allocating after the first; cudaMalloc and cudaFree each synchronise the
 * device and cost more than a small product. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static cublasHandle_t handle;
static float *buf[3];
static size_t cap[3]; /* elements */

/* buffer i holding at least n elements, or NULL */
static float *device_buffer(int i, size_t n)
{
	if (n <= cap[i]) return buf[i];
	cudaFree(buf[i]);
	buf[i] = NULL;
	cap[i] = 0;
	/* a little headroom, so that shapes growing by a row do not reallocate each time */
	size_t want = n + n / 8;
	if (cudaMalloc(&buf[i], want * sizeof(float)) != cudaSuccess) {
		cudaGetLastError(); /* not sticky: clear it for the next call */
		buf[i] = NULL;
		return NULL;
	}
	cap[i] = want;
	return buf[i];
}

/* Row-major C = A B is column-major C^T = B^T A^T: swap the operands.
 * An SGEMM offload, no more: the operands are copied to device buffers and the
 * result back, on every call.  Any failure returns -1 with C untouched, so the
 * caller can fall back to OpenBLAS on the same arguments. */
static int sgemm_locked(int transa, int transb, int m, int n, int k, float alpha, const float *a, int lda,
			const float *b, int ldb, float beta, float *c, int ldc)
{
	if (!handle && cublasCreate(&handle) != CUBLAS_STATUS_SUCCESS) {
		handle = 0;
		return -1;
	}
	/* elements spanned by each row-major operand: (rows - 1) * ld + cols, not
	 * rows * ld, which could read past the caller's last row */
	int ra = transa ? k : m, ca = transa ? m : k, rb = transb ? n : k, cb = transb ? k : n;
	size_t sa = k > 0 ? (size_t)(ra - 1) * lda + ca : 0, sb = k > 0 ? (size_t)(rb - 1) * ldb + cb : 0;
	size_t sc = (size_t)(m - 1) * ldc + n;
	float *dc = device_buffer(2, sc), *da = sa ? device_buffer(0, sa) : NULL, *db = sb ? device_buffer(1, sb) : NULL;
	int ok = dc && (!sa || da) && (!sb || db);
	if (ok && sa) ok = cudaMemcpy(da, a, sa * 4, cudaMemcpyHostToDevice) == cudaSuccess;
	if (ok && sb) ok = cudaMemcpy(db, b, sb * 4, cudaMemcpyHostToDevice) == cudaSuccess;
	/* C goes in also when beta is 0 if rows are padded (ldc > n): what is copied
	 * back must hold the caller's values between the rows */
	if (ok && (beta != 0.0f || ldc != n)) ok = cudaMemcpy(dc, c, sc * 4, cudaMemcpyHostToDevice) == cudaSuccess;
	if (ok)
		ok = cublasSgemm(handle, transb ? CUBLAS_OP_T : CUBLAS_OP_N, transa ? CUBLAS_OP_T : CUBLAS_OP_N, n, m,
				 k, &alpha, db, ldb, da, lda, &beta, dc, ldc) == CUBLAS_STATUS_SUCCESS;
	/* the product lands in a device buffer: C changes only once it has succeeded */
	if (ok) ok = cudaDeviceSynchronize() == cudaSuccess && cudaGetLastError() == cudaSuccess;
	if (ok) ok = cudaMemcpy(c, dc, sc * 4, cudaMemcpyDeviceToHost) == cudaSuccess;
	if (!ok) cudaGetLastError();
	return ok ? 0 : -1;
}

extern "C" int l2cu_sgemm(int transa, int transb, int m, int n, int k, float alpha, const float *a, int lda,
			  const float *b, int ldb, float beta, float *c, int ldc)
{
	if (m <= 0 || n <= 0) return 0;
	pthread_mutex_lock(&lock);
	int rc = sgemm_locked(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
	pthread_mutex_unlock(&lock);
	return rc;
}
