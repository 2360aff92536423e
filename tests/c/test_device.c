/* test_device.c — the CUDA SGEMM offload (lib/core/device.h, lib/cuda/device.cu) against
 * OpenBLAS on the same arguments: every transpose combination, padded leading dimensions,
 * alpha and beta, shapes that are not multiples of anything, and C's padding left alone;
 * several threads offloading at once (one cuBLAS handle, buffers kept between calls).
 * Tag: gpu.  Without a CUDA build or a device the comparisons skip with the reason
 * (l2_cuda_status), and what is checked is the CPU-only contract: -1 and C untouched.
 * make check-gpu runs this with L2_REQUIRE_GPU=1, where a missing device is a failure. */
#include "check.h"
#include "core/device.h"
#include "core/util.h"

#include <cblas.h>
#include <pthread.h>

static int have_gpu(void) { return l2_cuda_available(); }

static float *filled(size_t n, double scale)
{
	float *x = l2_malloc((n ? n : 1) * sizeof(float));
	for (size_t i = 0; i < n; i++) x[i] = (float)(scale * check_normal());
	return x;
}

/* One case: op(A) (m, k), op(B) (k, n), row-major with the given leading dimensions. */
static int one_case(int ta, int tb, int m, int n, int k, int lda, int ldb, int ldc, float alpha, float beta)
{
	int ra = ta ? k : m, rb = tb ? n : k;
	size_t sa = (size_t)ra * lda, sb = (size_t)rb * ldb, sc = (size_t)m * ldc;
	float *a = filled(sa, 1), *b = filled(sb, 1), *c0 = filled(sc, 1);
	float *got = l2_malloc(sc * sizeof(float)), *want = l2_malloc(sc * sizeof(float));
	memcpy(got, c0, sc * sizeof(float));
	memcpy(want, c0, sc * sizeof(float));
	int rc = l2_cuda_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, got, ldc);
	int ok = 1;
	if (!have_gpu()) {
		/* the contract the callers' fallback relies on */
		CHECK_MSG(rc == -1, "l2_cuda_sgemm without a device returned %d", rc);
		ok = rc == -1 && !memcmp(got, c0, sc * sizeof(float));
		CHECK_MSG(ok, "C changed although the offload failed");
	} else {
		CHECK_MSG(rc == 0, "l2_cuda_sgemm failed (%s)", l2_cuda_status());
		cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, alpha, a,
			    lda, b, ldb, beta, want, ldc);
		/* float32 sums of k products in another order: errors grow like sqrt(k) eps */
		double tol = 5e-6 * sqrt(k + 1.0);
		size_t bad = 0, worst = 0;
		double wd = 0;
		for (int i = 0; i < m; i++)
			for (int j = 0; j < ldc; j++) {
				size_t e = (size_t)i * ldc + j;
				double d = fabs((double)got[e] - want[e]);
				if (j >= n ? got[e] != c0[e] : !(d <= tol * (1 + fabs(want[e])))) bad++;
				if (d > wd) wd = d, worst = e;
			}
		ok = rc == 0 && bad == 0;
		CHECK_MSG(ok, "ta %d tb %d m %d n %d k %d ld %d %d %d: %zu bad, worst [%zu] %.9g vs %.9g", ta, tb, m, n, k,
			  lda, ldb, ldc, bad, worst, got[worst], want[worst]);
	}
	free(a), free(b), free(c0), free(got), free(want);
	return ok;
}

static void test_sgemm_against_openblas(void)
{
	if (!have_gpu()) printf("# no GPU comparison: %s\n", l2_cuda_status());
	static const int shapes[][3] = {{1, 1, 1}, {7, 5, 3}, {33, 17, 65}, {128, 96, 257}, {300, 2, 1000}, {2, 513, 40}};
	int cases = 0, good = 0;
	for (int s = 0; s < 6; s++)
		for (int ta = 0; ta < 2; ta++)
			for (int tb = 0; tb < 2; tb++)
				for (int pad = 0; pad < 2; pad++) {
					int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
					int lda = (ta ? m : k) + 3 * pad, ldb = (tb ? k : n) + 5 * pad, ldc = n + 2 * pad;
					float alpha = pad ? 0.75f : 1.0f, beta = (s + ta + tb) % 3 == 0 ? 0.0f : (s % 2 ? 1.0f : -0.5f);
					good += one_case(ta, tb, m, n, k, lda, ldb, ldc, alpha, beta);
					cases++;
				}
	printf("# %d of %d cases %s\n", good, cases, have_gpu() ? "match OpenBLAS" : "keep C untouched without a device");
}

/* Threads offloading at once, each its own products of another shape, one after another
 * (the buffers the offload keeps grow and shrink under them): every result as OpenBLAS's. */
enum { NTHREAD = 4, NCALL = 6 };
typedef struct {
	int m, n, k;
	float *a[NCALL], *b[NCALL], *c[NCALL];
	int rc[NCALL];
} Job;

static void *job_run(void *p)
{
	Job *j = p;
	for (int i = 0; i < NCALL; i++) {
		/* odd calls a third of the size: the kept buffers are larger than needed */
		int m = i % 2 ? j->m / 3 + 1 : j->m;
		j->rc[i] = l2_cuda_sgemm(0, 1, m, j->n, j->k, 1.0f, j->a[i], j->k, j->b[i], j->k, 0.0f, j->c[i], j->n);
	}
	return NULL;
}

static void test_sgemm_from_threads(void)
{
	Job jobs[NTHREAD];
	pthread_t t[NTHREAD];
	for (int w = 0; w < NTHREAD; w++) {
		Job *j = &jobs[w];
		j->m = 40 + 67 * w, j->n = 33 + 29 * w, j->k = 300 - 50 * w;
		for (int i = 0; i < NCALL; i++) {
			j->a[i] = filled((size_t)j->m * j->k, 1), j->b[i] = filled((size_t)j->n * j->k, 1);
			j->c[i] = filled((size_t)j->m * j->n, 1);
		}
	}
	for (int w = 0; w < NTHREAD; w++) pthread_create(&t[w], NULL, job_run, &jobs[w]);
	for (int w = 0; w < NTHREAD; w++) pthread_join(t[w], NULL);
	size_t bad = 0;
	for (int w = 0; w < NTHREAD; w++) {
		Job *j = &jobs[w];
		for (int i = 0; i < NCALL; i++) {
			int m = i % 2 ? j->m / 3 + 1 : j->m;
			size_t sc = (size_t)m * j->n;
			float *want = l2_malloc(sc * sizeof(float));
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, j->n, j->k, 1.0f, j->a[i], j->k, j->b[i], j->k,
				    0.0f, want, j->n);
			if (!have_gpu()) {
				CHECK_MSG(j->rc[i] == -1, "thread %d call %d: %d without a device", w, i, j->rc[i]);
			} else {
				CHECK_MSG(j->rc[i] == 0, "thread %d call %d failed (%s)", w, i, l2_cuda_status());
				double tol = 5e-6 * sqrt(j->k + 1.0);
				for (size_t e = 0; e < sc; e++)
					if (!(fabs((double)j->c[i][e] - want[e]) <= tol * (1 + fabs(want[e])))) bad++;
			}
			free(want);
			free(j->a[i]), free(j->b[i]), free(j->c[i]);
		}
	}
	CHECK_MSG(bad == 0, "%zu elements differ from OpenBLAS", bad);
}

int main(void)
{
	if (getenv("L2_REQUIRE_GPU") && !have_gpu()) {
		printf("not ok 1 - a CUDA device is required (L2_REQUIRE_GPU): %s\n1..1\n", l2_cuda_status());
		return 1;
	}
	RUN(test_sgemm_against_openblas);
	RUN(test_sgemm_from_threads);
	if (!have_gpu()) {
		/* TAP: the GPU half did not run */
		printf("ok %d - test_sgemm_on_gpu # SKIP %s\n", ++check_test_no, l2_cuda_status());
	}
	return check_done();
}
