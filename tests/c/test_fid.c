/* test_fid.c — lib/method/fid.c (statistics, Fréchet distance, KID) against
 * float64 loops and tests/ref/make_fid.py's scipy/numpy references, and
 * lib/core/sha256.c against FIPS 180-4 test vectors. */
#include "check.h"
#include "method/fid.h"
#include "io/npy.h"
#include "core/sha256.h"
#include "core/rng.h"
#include "core/util.h"

#define REF "tests/ref/fid/"

static void load_set(const char *name, L2Npy *a)
{
	char path[256];
	snprintf(path, sizeof path, REF "sets/%s.npy", name);
	l2_npy_read(path, a);
	CHECK(a->ndim == 2 && !a->is_f64);
}

static void stats_of(const L2Npy *a, double *mu, double *sigma, size_t chunk)
{
	L2FidStats s;
	int d = (int)a->shape[1];
	l2_fid_stats_init(&s, d);
	const float *x = a->data;
	for (size_t i = 0; i < a->shape[0]; i += chunk) {
		size_t n = a->shape[0] - i < chunk ? a->shape[0] - i : chunk;
		l2_fid_stats_add(&s, x + i * d, n);
	}
	CHECK(l2_fid_stats_count(&s) == a->shape[0]);
	l2_fid_stats_finish(&s, mu, sigma);
	l2_fid_stats_free(&s);
}

/* streaming statistics == two-pass mean and np.cov in float64 */
static void test_stats_two_pass(void)
{
	size_t n = 1000;
	int d = 37;
	float *x = l2_malloc(n * d * sizeof(float));
	for (size_t i = 0; i < n * d; i++) x[i] = (float)(check_normal() * (1 + i % 5) + 100); /* large offset */
	double *mu = l2_malloc(d * sizeof(double)), *sg = l2_malloc((size_t)d * d * sizeof(double));
	double rm[37] = {0};
	for (size_t i = 0; i < n; i++)
		for (int j = 0; j < d; j++) rm[j] += x[i * d + j];
	for (int j = 0; j < d; j++) rm[j] /= (double)n;
	static const size_t chunks[] = {1, 7, 256, 1000};
	for (int c = 0; c < 4; c++) {
		L2Npy a = {2, {n, (size_t)d}, 0, x};
		stats_of(&a, mu, sg, chunks[c]);
		for (int j = 0; j < d; j++) CHECK_CLOSE(mu[j], rm[j], 0, 1e-13);
		for (int j = 0; j < d; j++)
			for (int k = 0; k < d; k++) {
				double s = 0;
				for (size_t i = 0; i < n; i++) s += (x[i * d + j] - rm[j]) * (x[i * d + k] - rm[k]);
				CHECK_CLOSE(sg[j * d + k], s / (double)(n - 1), 1e-12, 1e-10);
			}
	}
	free(x), free(mu), free(sg);
}

/* FID of the reference sets == pytorch-fid's formula with scipy's sqrtm */
static void test_fid_cases(void)
{
	size_t len;
	char *txt = l2_read_file(REF "fid_cases.txt", &len), *save = NULL;
	int cases = 0;
	for (char *line = strtok_r(txt, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char an[64], bn[64];
		double want;
		if (sscanf(line, "%63s %63s %lf", an, bn, &want) != 3) continue;
		L2Npy a, b;
		load_set(an, &a);
		load_set(bn, &b);
		int d = (int)a.shape[1];
		double *m1 = l2_malloc(d * sizeof(double)), *s1 = l2_malloc((size_t)d * d * sizeof(double));
		double *m2 = l2_malloc(d * sizeof(double)), *s2 = l2_malloc((size_t)d * d * sizeof(double));
		stats_of(&a, m1, s1, 13);
		stats_of(&b, m2, s2, 300);
		L2FidResult r = l2_fid_frechet(m1, s1, m2, s2, d);
		CHECK_MSG(fabs(r.fid - want) <= 1e-6 * fabs(want), "%s vs %s: FID %.12g, scipy route %.12g (rel %.2g)", an, bn,
			  r.fid, want, fabs(r.fid - want) / want);
		printf("# %s/%s (N %zu/%zu, d %d): FID %.10g, reference %.10g, rel err %.2g%s\n", an, bn, a.shape[0],
		       b.shape[0], d, r.fid, want, fabs(r.fid - want) / want, r.singular ? ", singular" : "");
		CHECK(!r.offset);
		CHECK(r.singular == ((int)a.shape[0] <= d || (int)b.shape[0] <= d));
		/* symmetric in its arguments */
		L2FidResult q = l2_fid_frechet(m2, s2, m1, s1, d);
		CHECK_CLOSE(q.fid, r.fid, 0, 1e-8);
		/* a set against itself: 0 up to rounding */
		L2FidResult z = l2_fid_frechet(m1, s1, m1, s1, d);
		CHECK_MSG(fabs(z.fid) < 1e-8 * (r.fid + 1) * d, "self-FID %g", z.fid);
		free(m1), free(s1), free(m2), free(s2);
		l2_npy_free(&a), l2_npy_free(&b);
		cases++;
	}
	CHECK(cases >= 5);
	free(txt);
}

/* diagonal covariances: Tr sqrt(S1 S2) = sum sqrt(a_i b_i), zeros included */
static void test_trace_diagonal(void)
{
	int d = 6;
	double s1[36] = {0}, s2[36] = {0}, want = 0;
	double a[6] = {1, 4, 0, 2.5, 0, 9}, b[6] = {9, 1, 3, 0.4, 0, 16};
	for (int i = 0; i < d; i++) s1[i * d + i] = a[i], s2[i * d + i] = b[i], want += sqrt(a[i] * b[i]);
	int sing = 0;
	CHECK_CLOSE(l2_fid_trace_sqrt_product(s1, s2, d, &sing), want, 1e-12, 1e-12);
	CHECK(sing);
}

static void test_kid_cases(void)
{
	size_t len;
	char *txt = l2_read_file(REF "kid_cases.txt", &len), *save = NULL;
	int cases = 0;
	for (char *line = strtok_r(txt, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char an[64], bn[64];
		double want, mean, sd;
		if (sscanf(line, "%63s %63s %lf", an, bn, &want) != 3) continue;
		L2Npy a, b;
		load_set(an, &a);
		load_set(bn, &b);
		size_t m = a.shape[0] < b.shape[0] ? a.shape[0] : b.shape[0];
		/* the reference uses the first m rows of each: give exactly those */
		l2_kid(a.data, m, b.data, m, (int)a.shape[1], 1000, 100, 1, &mean, &sd);
		CHECK_CLOSE(mean, want, 1e-12, 1e-9);
		CHECK(sd == 0);
		/* subsets: reproducible, spread around the full-set value */
		double m1, s1, m2, s2;
		l2_kid(a.data, a.shape[0], b.data, b.shape[0], (int)a.shape[1], m / 2, 20, 7, &m1, &s1);
		l2_kid(a.data, a.shape[0], b.data, b.shape[0], (int)a.shape[1], m / 2, 20, 7, &m2, &s2);
		CHECK(m1 == m2 && s1 == s2);
		CHECK(s1 > 0);
		CHECK_MSG(fabs(m1 - want) < 4 * s1 + 0.2 * fabs(want), "subset KID %g +- %g vs %g", m1, s1, want);
		printf("# KID %s/%s: %.8g (reference %.8g); 20 subsets of %zu: %.6g +- %.3g\n", an, bn, mean, want, m / 2, m1, s1);
		l2_npy_free(&a), l2_npy_free(&b);
		cases++;
	}
	CHECK(cases >= 2);
	free(txt);
}

static void test_sha256(void)
{
	char hex[65];
	l2_sha256_hex("", 0, hex);
	CHECK(!strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
	l2_sha256_hex("abc", 3, hex);
	CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
	const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	l2_sha256_hex(two, strlen(two), hex);
	CHECK(!strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"));
	/* one million 'a', fed in uneven pieces */
	L2Sha256 s;
	unsigned char d[32], buf[1000];
	memset(buf, 'a', sizeof buf);
	l2_sha256_init(&s);
	size_t left = 1000000, k = 1;
	while (left) {
		size_t n = k < left ? k : left;
		if (n > sizeof buf) n = sizeof buf;
		l2_sha256_update(&s, buf, n);
		left -= n;
		k = k * 3 % 997 + 1;
	}
	l2_sha256_final(&s, d);
	for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
	CHECK(!strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"));
}

/* l2_fid_frechet_features on sets with a known distance. */
static void test_frechet_known(void)
{
	/* equal covariances: FD = |mu1 - mu2|^2 exactly */
	enum { N = 300, D = 6 };
	float *a = l2_malloc(N * D * sizeof(float)), *b = l2_malloc(N * D * sizeof(float));
	L2Rng r;
	l2_rng_init(&r, 9, 0);
	l2_rng_fill_normal(&r, a, N * D, 0, 1);
	double shift2 = 0;
	for (int j = 0; j < D; j++) shift2 += (0.25 * (j + 1)) * (0.25 * (j + 1));
	for (int i = 0; i < N; i++)
		for (int j = 0; j < D; j++) b[i * D + j] = a[i * D + j] + 0.25f * (j + 1);
	CHECK_CLOSE(l2_fid_frechet_features(a, N, b, N, D), shift2, 1e-9, 1e-6);
	CHECK_CLOSE(l2_fid_frechet_features(a, N, a, N, D), 0, 1e-9, 0);
	free(a), free(b);
}

int main(void)
{
	RUN(test_stats_two_pass);
	RUN(test_fid_cases);
	RUN(test_trace_diagonal);
	RUN(test_kid_cases);
	RUN(test_sha256);
	RUN(test_frechet_known);
	return check_done();
}
