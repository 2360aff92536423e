/* test_npz.c — lib/io/npz.c: reading what np.savez / np.savez_compressed
 * write (tests/ref/make_fid.py), and our own archives read back. */
#include "check.h"
#include "method/fid.h"
#include "io/npz.h"
#include "core/util.h"

#include <unistd.h>
#include <zlib.h>

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

/* A member described only by zip64 records: central directory sizes and
 * offset 0xffffffff with the values in a zip64 extra field, and a zip64 end
 * record (what zipfile writes for huge archives). */
static void test_zip64_records(void)
{
	double v[7];
	for (int i = 0; i < 7; i++) v[i] = check_normal();
	size_t shape[1] = {7}, nlen;
	unsigned char *npy = l2_npy_serialize(v, 1, 1, shape, &nlen);
	uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), npy, (uInt)nlen);
	unsigned char *z = l2_calloc(1, 4096), *p = z;
	const char *name = "mu.npy";
	/* local header with a zip64 extra (sizes) */
	l2_put_le32(p, 0x04034b50), l2_put_le16(p + 4, 45), l2_put_le32(p + 14, crc);
	l2_put_le32(p + 18, 0xffffffffu), l2_put_le32(p + 22, 0xffffffffu);
	l2_put_le16(p + 26, 6), l2_put_le16(p + 28, 20);
	memcpy(p + 30, name, 6);
	l2_put_le16(p + 36, 1), l2_put_le16(p + 38, 16), l2_put_le64(p + 40, nlen), l2_put_le64(p + 48, nlen);
	memcpy(p + 56, npy, nlen);
	p += 56 + nlen;
	size_t cd = (size_t)(p - z);
	l2_put_le32(p, 0x02014b50), l2_put_le16(p + 4, 45), l2_put_le16(p + 6, 45), l2_put_le32(p + 16, crc);
	l2_put_le32(p + 20, 0xffffffffu), l2_put_le32(p + 24, 0xffffffffu);
	l2_put_le16(p + 28, 6), l2_put_le16(p + 30, 28), l2_put_le32(p + 42, 0xffffffffu);
	memcpy(p + 46, name, 6);
	l2_put_le16(p + 52, 1), l2_put_le16(p + 54, 24);
	l2_put_le64(p + 56, nlen), l2_put_le64(p + 64, nlen), l2_put_le64(p + 72, 0);
	p += 80;
	size_t cdsize = (size_t)(p - z) - cd, e64 = (size_t)(p - z);
	l2_put_le32(p, 0x06064b50), l2_put_le64(p + 4, 44), l2_put_le64(p + 24, 1), l2_put_le64(p + 32, 1);
	l2_put_le64(p + 40, cdsize), l2_put_le64(p + 48, cd);
	p += 56;
	l2_put_le32(p, 0x07064b50), l2_put_le64(p + 8, e64), l2_put_le32(p + 16, 1);
	p += 20;
	l2_put_le32(p, 0x06054b50), l2_put_le16(p + 8, 0xffff), l2_put_le16(p + 10, 0xffff);
	l2_put_le32(p + 12, 0xffffffffu), l2_put_le32(p + 16, 0xffffffffu);
	p += 22;
	char path[] = "/tmp/l2-test-zip64-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0 && write(fd, z, (size_t)(p - z)) == p - z);
	close(fd);
	L2Npy a;
	CHECK(l2_npz_read(path, "mu", &a));
	CHECK(a.ndim == 1 && a.shape[0] == 7 && a.is_f64 && !memcmp(a.data, v, sizeof v));
	l2_npy_free(&a);
	unlink(path);
	free(z);
	free(npy);
}

int main(void)
{
	RUN(test_zip64_records);
	RUN(test_numpy_archives);
	RUN(test_roundtrip);
	return check_done();
}
