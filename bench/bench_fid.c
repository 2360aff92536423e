/* bench_fid.c — steady-state rate of the FID Inception-v3 forward pass
 * (lib/models/inception.c), without weight loading or image decoding: T threads,
 * each running batches of B random images (BLAS single-threaded inside, as
 * l2-fid does), one warm-up batch per thread, then R timed batches each.
 * Prints wall and CPU (user+sys) rates:
 *
 *   cc -O2 -Ilib bench/bench_fid.c -o bench_fid BUILD/libl2.a -lopenblas ... -lm -pthread
 *   bench_fid [threads=2] [batch=4] [reps=3]
 *   -> "images_per_s <wall rate> images_per_cpu_s <cpu rate> gflop_per_cpu_s <g>"
 *   bench_fid peak [n=1024]   one-thread SGEMM n^3 -> "sgemm_gflop_per_cpu_s <g>" */
#include "models/inception.h"
#include "core/parallel.h"
#include "core/util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <cblas.h>


static const L2Inception *net;
static int B, R;

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static double cpu(void)
{
	struct rusage u;
	getrusage(RUSAGE_SELF, &u);
	return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

static pthread_barrier_t bar;

static void *run(void *arg)
{
	size_t per = (size_t)3 * L2_INCEPTION_SIZE * L2_INCEPTION_SIZE;
	float *x = l2_malloc_aligned((size_t)B * per * sizeof(float)), feat[64 * 2048];
	uint64_t s = 0x9e3779b97f4a7c15ull * (uintptr_t)arg + 1;
	for (size_t i = 0; i < (size_t)B * per; i++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		x[i] = (float)(s >> 40) * 0x1p-24f;
	}
	l2_inception_forward(net, x, B, 2048, feat); /* warm-up: buffers, page faults */
	pthread_barrier_wait(&bar);
	for (int r = 0; r < R; r++) l2_inception_forward(net, x, B, 2048, feat);
	l2_free_aligned(x);
	l2_inception_thread_cleanup();
	return NULL;
}

/* SGEMM n^3 on one thread in GFLOP per CPU-second (best of 5): the yardstick
 * measured the same way as the network, so load on a shared machine cancels. */
static double sgemm_cpu_rate(int n)
{
	float *a = l2_malloc_aligned((size_t)n * n * sizeof(float)), *b = l2_malloc_aligned((size_t)n * n * sizeof(float)),
	      *c = l2_malloc_aligned((size_t)n * n * sizeof(float));
	for (size_t i = 0; i < (size_t)n * n; i++) a[i] = b[i] = (float)(i % 7) * 0.1f;
	double best = 0;
	for (int r = 0; r < 6; r++) {
		double c0 = cpu();
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
		double g = 2.0 * n * n * n * 1e-9 / (cpu() - c0);
		if (r && g > best) best = g;
	}
	l2_free_aligned(a), l2_free_aligned(b), l2_free_aligned(c);
	return best;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "peak")) {
		l2_blas_threads(1);
		printf("sgemm_gflop_per_cpu_s %.2f\n", sgemm_cpu_rate(argc > 2 ? atoi(argv[2]) : 1024));
		return 0;
	}
	int T = argc > 1 ? atoi(argv[1]) : 2;
	B = argc > 2 ? atoi(argv[2]) : 4;
	R = argc > 3 ? atoi(argv[3]) : 3;
	if (T < 1 || T > 64 || B < 1 || B > 64 || R < 1) {
		fprintf(stderr, "usage: bench_fid [threads] [batch<=64] [reps]\n");
		return 2;
	}
	l2_blas_threads(1);
	net = l2_inception_random(1);
	pthread_barrier_init(&bar, NULL, (unsigned)T + 1);
	pthread_t th[64];
	for (int t = 0; t < T; t++) pthread_create(&th[t], NULL, run, (void *)(uintptr_t)t);
	pthread_barrier_wait(&bar);
	struct rusage u0, u1;
	getrusage(RUSAGE_SELF, &u0);
	double w0 = now(), c0 = cpu();
	for (int t = 0; t < T; t++) pthread_join(th[t], NULL);
	double w = now() - w0, c = cpu() - c0, n = (double)T * B * R;
	getrusage(RUSAGE_SELF, &u1);
	printf("images_per_s %.3f images_per_cpu_s %.3f gflop_per_cpu_s %.2f page_faults_per_image %.0f\n", n / w, n / c,
	       n * l2_inception_flops(2048) * 1e-9 / c, (double)(u1.ru_minflt - u0.ru_minflt) / n);
	l2_inception_free((L2Inception *)net);
	return 0;
}
