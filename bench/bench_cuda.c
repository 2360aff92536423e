/* bench_cuda.c — the C side of bench/bench_cuda.sh: l2's SGEMM offload
 * (l2_cuda_sgemm, lib/core/device.h: operands copied in, the product copied
 * out, on every call) against OpenBLAS on THREADS threads, on the same
 * random operands, at square sizes and at the products of CLIP ViT-B/32's
 * image tower for a batch of 8 images (400 rows).  One line per shape:
 *
 *   m n k  cpu_gflops  offload_gflops  max_rel_diff
 *
 * GFLOP/s are 2mnk over the median of REPS timed calls after one warm-up
 * (which also pays for loading cuBLAS); max_rel_diff is the largest
 * |offload - OpenBLAS| over the largest |OpenBLAS|.  Exits 1 when no device.
 *
 *   bench_cuda THREADS REPS */
#include "core/device.h"
#include "core/parallel.h"
#include "core/util.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static float *random_floats(size_t n, uint64_t seed)
{
	float *x = l2_malloc(n * sizeof(float));
	for (size_t i = 0; i < n; i++) {
		seed += 0x9e3779b97f4a7c15ULL;
		uint64_t z = seed;
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
		z ^= z >> 31;
		x[i] = (float)((z >> 40) * (1.0 / 16777216.0) - 0.5);
	}
	return x;
}

/* median seconds of reps calls; which 0: OpenBLAS, 1: the offload */
static double time_gemm(int which, int reps, int m, int n, int k, const float *a, const float *b, float *c)
{
	double t[64];
	for (int r = -1; r < reps; r++) {
		double t0 = l2_now();
		if (which) {
			if (l2_cuda_sgemm(0, 0, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n) != 0) {
				fprintf(stderr, "bench_cuda: the offload failed: %s\n", l2_cuda_status());
				exit(1);
			}
		} else
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
		if (r >= 0) t[r] = l2_now() - t0;
	}
	qsort(t, reps, sizeof t[0], cmp);
	return t[reps / 2];
}

int main(int argc, char **argv)
{
	int th = argc > 1 ? atoi(argv[1]) : 2, reps = argc > 2 ? atoi(argv[2]) : 5;
	if (argc != 3 || th < 1 || reps < 1 || reps > 64) {
		fprintf(stderr, "usage: bench_cuda THREADS REPS\n");
		return 2;
	}
	if (!l2_cuda_available()) {
		fprintf(stderr, "bench_cuda: no CUDA device: %s\n", l2_cuda_status());
		return 1;
	}
	l2_blas_threads(th);
	static const int shapes[][3] = {
		{256, 256, 256}, {512, 512, 512}, {1024, 1024, 1024}, {2048, 2048, 2048}, {4096, 4096, 4096},
		/* ViT-B/32, 8 images: attention in-projection, MLP up, MLP down */
		{400, 2304, 768}, {400, 3072, 768}, {400, 768, 3072},
	};
	for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
		int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
		float *a = random_floats((size_t)m * k, 1 + s), *b = random_floats((size_t)k * n, 100 + s);
		float *c0 = l2_malloc((size_t)m * n * sizeof(float)), *c1 = l2_malloc((size_t)m * n * sizeof(float));
		int r = m * (double)n * k > 1e10 ? (reps + 1) / 2 : reps;
		double tc = time_gemm(0, r, m, n, k, a, b, c0), tg = time_gemm(1, r, m, n, k, a, b, c1);
		double dmax = 0, ref = 0;
		for (size_t i = 0; i < (size_t)m * n; i++) {
			double d = fabs((double)c1[i] - c0[i]);
			if (d > dmax || d != d) dmax = d;
			if (fabs(c0[i]) > ref) ref = fabs(c0[i]);
		}
		double f = 2.0 * m * n * (double)k * 1e-9;
		printf("%d %d %d %.1f %.1f %.3g\n", m, n, k, f / tc, f / tg, dmax / ref);
		fflush(stdout);
		free(a), free(b), free(c0), free(c1);
	}
	return 0;
}
