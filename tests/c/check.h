/* check.h — a tiny TAP-producing unit-test harness for lib/.
 *
 *     static void test_roundtrip(void) { CHECK(x == 1); CHECK_CLOSE(a, b, 1e-6, 1e-5); }
 *     int main(void) { RUN(test_roundtrip); return check_done(); }
 *
 * Each RUN prints "ok N - name" or "not ok N - name" (TAP), with the failing
 * checks as "# file:line: ..." comments.  tests/run.sh collects the counts. */
#ifndef L2_CHECK_H
#define L2_CHECK_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h" /* check_rand_u64: SplitMix64 */

static int check_test_no, check_test_failed, check_total_failed, check_fail_lines;

#define CHECK(cond) do { if (!(cond)) { check_test_failed = 1; \
	if (check_fail_lines++ < 20) printf("# %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); } } while (0)

#define CHECK_MSG(cond, ...) do { if (!(cond)) { check_test_failed = 1; \
	if (check_fail_lines++ < 20) { printf("# %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } } while (0)

/* |a - b| <= atol + rtol * |b|   (b is the reference) */
#define CHECK_CLOSE(a, b, atol, rtol) do { double a_ = (a), b_ = (b); \
	if (!(fabs(a_ - b_) <= (atol) + (rtol) * fabs(b_))) { check_test_failed = 1; \
	if (check_fail_lines++ < 20) printf("# %s:%d: %s = %.10g, expected %s = %.10g\n", __FILE__, __LINE__, #a, a_, #b, b_); } } while (0)

/* Compare arrays; reports the worst element. */
static inline int check_arrays_close(const float *got, const double *ref_d, const float *ref_f, size_t n,
				     double atol, double rtol, const char *what, const char *file, int line)
{
	size_t worst = 0, bad = 0;
	double wd = -1;
	for (size_t i = 0; i < n; i++) {
		double r = ref_d ? ref_d[i] : ref_f[i], d = fabs(got[i] - r);
		if (!(d <= atol + rtol * fabs(r))) bad++;
		if (d > wd || d != d) { wd = d; worst = i; }
	}
	if (bad) {
		check_test_failed = 1;
		printf("# %s:%d: %s: %zu of %zu elements off; worst [%zu] got %.9g expected %.9g\n", file, line, what,
		       bad, n, worst, got[worst], ref_d ? ref_d[worst] : ref_f[worst]);
	}
	return bad == 0;
}
#define CHECK_ARRAY_CLOSE_F(got, ref, n, atol, rtol) check_arrays_close(got, NULL, ref, n, atol, rtol, #got, __FILE__, __LINE__)
#define CHECK_ARRAY_CLOSE_D(got, ref, n, atol, rtol) check_arrays_close(got, ref, NULL, n, atol, rtol, #got, __FILE__, __LINE__)

#define RUN(fn) do { check_test_failed = 0; check_fail_lines = 0; fn(); check_test_no++; \
	printf("%sok %d - %s\n", check_test_failed ? "not " : "", check_test_no, #fn); \
	check_total_failed += check_test_failed; fflush(stdout); } while (0)

static inline int check_done(void)
{
	printf("1..%d\n", check_test_no);
	return check_total_failed ? 1 : 0;
}

/* Deterministic test randomness (splitmix64), never zeros. */
/* uniform in [0, 1) from a caller's SplitMix64 state (53 bits) */
static inline double check_unit(uint64_t *s) { return (double)(l2_splitmix64(s) >> 11) / 9007199254740992.0; }
/* |a - b| / |b|, b the reference (no floor: an exact 0 must match exactly) */
static inline double check_rel(double a, double b) { return fabs(a - b) / fmax(fabs(b), 1e-300); }

static uint64_t check_rng_state = L2_GOLDEN;
static inline uint64_t check_rand_u64(void) { return l2_splitmix64(&check_rng_state); }
static inline double check_uniform(void) { return (check_rand_u64() >> 11) * (1.0 / 9007199254740992.0); }
static inline double check_normal(void)
{
	double u = check_uniform(), v = check_uniform();
	return sqrt(-2 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}

#endif
