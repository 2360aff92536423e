/* test_device.c — the CUDA SGEMM offload (lib/core/device.h, lib/cuda/device.cu) against
 * OpenBLAS on the same arguments: every transpose combination, padded leading dimensions,
 * alpha and beta, shapes that are not multiples of anything, and C's padding left alone.
 * Tag: gpu.  Without a CUDA build or a device the comparisons skip with the reason
 * (l2_cuda_status), and what is checked is the CPU-only contract: -1 and C untouched.
 * make check-gpu runs this with L2_REQUIRE_GPU=1, where a missing device is a failure. */
#include "check.h"
#include "core/device.h"
#include "core/util.h"

#include <cblas.h>

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

int main(void)
{
	if (getenv("L2_REQUIRE_GPU") && !have_gpu()) {
		printf("not ok 1 - a CUDA device is required (L2_REQUIRE_GPU): %s\n1..1\n", l2_cuda_status());
		return 1;
	}
	RUN(test_sgemm_against_openblas);
	if (!have_gpu()) {
		/* TAP: the GPU half did not run */
		printf("ok %d - test_sgemm_on_gpu # SKIP %s\n", ++check_test_no, l2_cuda_status());
	}
	return check_done();
}
