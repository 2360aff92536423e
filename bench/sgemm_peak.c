/* sgemm_peak.c — the machine's OpenBLAS SGEMM rate, the yardstick every
 * benchmark reports against.  Prints GFLOP/s (median of repeats) for square
 * n x n x n SGEMM at the thread count of OPENBLAS_NUM_THREADS / argv[2].
 *
 *   cc -O2 bench/sgemm_peak.c -o build/sgemm_peak $(pkg-config --cflags --libs openblas)
 *   build/sgemm_peak [n=1024] [threads=2] [repeats=7]   ->   "sgemm_gflops 123.4"
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1024, th = argc > 2 ? atoi(argv[2]) : 2, rep = argc > 3 ? atoi(argv[3]) : 7;
	if (n < 16 || th < 1 || rep < 1 || rep > 99) { fprintf(stderr, "usage: sgemm_peak [n] [threads] [repeats]\n"); return 2; }
	openblas_set_num_threads(th);
	float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n), *c = malloc(sizeof(float) * n * n);
	if (!a || !b || !c) return 1;
	srand(1);
	for (long i = 0; i < (long)n * n; i++) { a[i] = rand() / (float)RAND_MAX - 0.5f; b[i] = rand() / (float)RAND_MAX - 0.5f; }
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n); /* warm up */
	double g[99];
	for (int r = 0; r < rep; r++) {
		double t = now();
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
		g[r] = 2.0 * n * n * (double)n / (now() - t) / 1e9;
	}
	qsort(g, rep, sizeof g[0], cmp);
	printf("sgemm_gflops %.1f\n", g[rep / 2]);
	free(a); free(b); free(c);
	return 0;
}
