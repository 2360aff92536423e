/* test_vec.c — lib/core/vec.c: both roundings of unit-length rows against float64, and
 * how often they differ (vec.h states it). */
#include "check.h"
#include "core/vec.h"

static void test_normalize_rows_against_float64(void)
{
	enum { N = 64, D = 512 };
	static float a[N * D], b[N * D], x[N * D];
	for (int i = 0; i < N * D; i++) x[i] = a[i] = b[i] = (float)(check_normal() * (1 + i / D));
	for (int j = 0; j < D; j++) a[5 * D + j] = b[5 * D + j] = x[5 * D + j] = 0; /* a zero row */
	l2_normalize_rows(a, N, D);
	l2_normalize_rows_exact(b, N, D);
	size_t differ = 0, exact_bad = 0, near_bad = 0;
	for (int i = 0; i < N; i++) {
		double s = 0;
		for (int j = 0; j < D; j++) s += (double)x[i * D + j] * x[i * D + j];
		for (int j = 0; j < D; j++) {
			size_t e = (size_t)i * D + j;
			float want = s > 0 ? (float)(x[e] / sqrt(s)) : 0.0f;
			exact_bad += b[e] != want;
			near_bad += fabsf(a[e] - want) > nextafterf(fabsf(want), 1) - fabsf(want);
			differ += a[e] != b[e];
		}
	}
	CHECK(exact_bad == 0);
	CHECK(near_bad == 0); /* within 1 ulp */
	printf("# the two roundings differ in %.1f%% of %d elements\n", 100.0 * differ / (N * D), N * D);
	CHECK(differ > 0);
	for (int j = 0; j < D; j++) CHECK(a[5 * D + j] == 0 && b[5 * D + j] == 0);
}

int main(void)
{
	RUN(test_normalize_rows_against_float64);
	return check_done();
}
