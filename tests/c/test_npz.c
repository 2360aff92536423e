/* test_npz.c — lib/npz.c: reading what np.savez / np.savez_compressed
 * write (tests/ref/make_fid.py), and our own archives read back. */
#include "check.h"
#include "fid.h"
#include "npy.h"
#include "util.h"

#include <unistd.h>

#define REF "tests/ref/fid/"

/* the statistics make_fid.py saved are mean / np.cov of sets/pos_a.npy */
static void reference_stats(double **mu, double **sigma, int *d)
{
	L2Npy a;
	l2_npy_read(REF "sets/pos_a.npy", &a);
	*d = (int)a.shape[1];
	L2FidStats s;
	l2_fid_stats_init(&s, *d);
	l2_fid_stats_add(&s, a.data, a.shape[0]);
	*mu = l2_malloc(*d * sizeof(double));
	*sigma = l2_malloc((size_t)*d * *d * sizeof(double));
	l2_fid_stats_finish(&s, *mu, *sigma);
	l2_fid_stats_free(&s);
	l2_npy_free(&a);
}

static void check_member(const char *path, const char *name, int ndim, const double *want, size_t n, int f64)
{
	L2Npy a;
	CHECK_MSG(l2_npz_read(path, name, &a), "%s: no %s", path, name);
	CHECK(a.ndim == ndim && a.is_f64 == f64 && l2_npy_count(&a) == n);
	for (size_t i = 0; i < n; i++) {
		double v = f64 ? ((double *)a.data)[i] : ((float *)a.data)[i];
		double tol = f64 ? 1e-12 : 1e-6;
		if (!(fabs(v - want[i]) <= tol * (fabs(want[i]) + 1e-3))) {
			CHECK_MSG(0, "%s: %s[%zu] = %.17g, expected %.17g", path, name, i, v, want[i]);
			break;
		}
	}
	l2_npy_free(&a);
}

static void test_numpy_archives(void)
{
	double *mu, *sigma;
	int d;
	reference_stats(&mu, &sigma, &d);
	static const char *files[] = {REF "stats_compressed.npz", REF "stats_stored.npz", REF "stats_f32.npz"};
	for (int f = 0; f < 3; f++) {
		check_member(files[f], "mu", 1, mu, (size_t)d, f < 2);
		check_member(files[f], "sigma", 2, sigma, (size_t)d * d, f < 2);
		L2Npy a;
		CHECK(!l2_npz_read(files[f], "nothere", &a));
		CHECK(!l2_npz_read(files[f], "m", &a)); /* prefix of a name is no match */
	}
	free(mu), free(sigma);
}

static void test_roundtrip(void)
{
	double mu[5], sigma[15];
	float f[6];
	for (int i = 0; i < 5; i++) mu[i] = check_normal();
	for (int i = 0; i < 15; i++) sigma[i] = check_normal();
	for (int i = 0; i < 6; i++) f[i] = (float)check_normal();
	char path[] = "/tmp/l2-test-npz-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	close(fd);
	for (int compress = 0; compress < 2; compress++) {
		L2NpzMember m[3] = {{"mu", mu, 1, 1, {5}}, {"sigma", sigma, 1, 2, {3, 5}}, {"feat", f, 0, 3, {1, 2, 3}}};
		l2_npz_write(path, m, 3, compress);
		L2Npy a;
		CHECK(l2_npz_read(path, "sigma", &a));
		CHECK(a.ndim == 2 && a.shape[0] == 3 && a.shape[1] == 5 && a.is_f64);
		CHECK(!memcmp(a.data, sigma, sizeof sigma));
		l2_npy_free(&a);
		CHECK(l2_npz_read(path, "mu", &a));
		CHECK(!memcmp(a.data, mu, sizeof mu));
		l2_npy_free(&a);
		CHECK(l2_npz_read(path, "feat", &a));
		CHECK(a.ndim == 3 && !a.is_f64 && !memcmp(a.data, f, sizeof f));
		l2_npy_free(&a);
	}
	unlink(path);
}

int main(void)
{
	RUN(test_numpy_archives);
	RUN(test_roundtrip);
	return check_done();
}
