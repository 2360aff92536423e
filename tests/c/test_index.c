/* test_index.c — exact top-k against a float64 brute force (random and
 * clustered data, ties, thread counts), the LMDB index (build, append,
 * duplicates, f16, reopen), IVF (full probe = exact, recall on clustered
 * data, append) and spherical k-means. */
#include "check.h"
#include "method/index.h"
#include "io/stream.h"
#include "core/util.h"
#include "core/vec.h"

#include <stdint.h>
#include <unistd.h>

/* ---- data ------------------------------------------------------------------------ */

static float *random_rows(size_t n, size_t d, int unit)
{
	float *x = l2_malloc(n * d * sizeof(float));
	for (size_t i = 0; i < n * d; i++) x[i] = (float)check_normal();
	if (unit) l2_normalize_rows(x, n, d);
	return x;
}

/* mixture of nc Gaussians on the unit sphere, spread sigma per coordinate */
static float *clustered_rows(size_t n, size_t d, size_t nc, double sigma, uint32_t *label)
{
	static float *cent;
	static size_t cent_n, cent_d;
	if (!cent || cent_n != nc || cent_d != d) {
		free(cent);
		cent = random_rows(nc, d, 1);
		cent_n = nc, cent_d = d;
	}
	float *x = l2_malloc(n * d * sizeof(float));
	for (size_t i = 0; i < n; i++) {
		size_t c = check_rand_u64() % nc;
		if (label) label[i] = (uint32_t)c;
		for (size_t j = 0; j < d; j++) x[i * d + j] = cent[c * d + j] + (float)(sigma * check_normal());
	}
	l2_normalize_rows(x, n, d);
	return x;
}

/* float64 brute force: scores of all rows for query qi, then the order */
static double *ref_scores;
static int by_ref(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	if (ref_scores[x] != ref_scores[y]) return ref_scores[x] > ref_scores[y] ? -1 : 1;
	return x < y ? -1 : x > y;
}
static void brute_force(const float *x, size_t n, size_t d, const float *q, uint32_t k, uint64_t *ids, double *sc)
{
	double *s = l2_malloc(n * sizeof(double));
	uint64_t *ord = l2_malloc(n * sizeof(uint64_t));
	for (size_t i = 0; i < n; i++) {
		double a = 0;
		for (size_t j = 0; j < d; j++) a += (double)x[i * d + j] * (double)q[j];
		s[i] = a;
		ord[i] = i;
	}
	ref_scores = s;
	qsort(ord, n, sizeof *ord, by_ref);
	for (uint32_t j = 0; j < k; j++) ids[j] = ord[j], sc[j] = s[ord[j]];
	free(s);
	free(ord);
}

/* Results equal the brute force: every score to float rounding, and every
 * id unless the reference itself has a near-tie at that rank. */
static int check_against_brute(const float *x, size_t n, size_t d, const float *q, size_t nq, uint32_t k,
			       const uint64_t *ids, const float *scores)
{
	uint64_t *rid = l2_malloc(k * sizeof(uint64_t));
	double *rs = l2_malloc(k * sizeof(double));
	int bad = 0;
	for (size_t i = 0; i < nq && bad < 5; i++) {
		brute_force(x, n, d, q + i * d, k, rid, rs);
		for (uint32_t j = 0; j < k; j++) {
			double got = scores[i * k + j];
			if (fabs(got - rs[j]) > 1e-7 * fabs(rs[j]) + 1e-12) {
				bad++;
				printf("# query %zu rank %u: score %.9g, float64 %.17g\n", i, j, got, rs[j]);
			}
			if (ids[i * k + j] != rid[j]) {
				double gap = 1;
				if (j > 0) gap = fmin(gap, rs[j - 1] - rs[j]);
				if (j + 1 < k) gap = fmin(gap, rs[j] - rs[j + 1]);
				if (gap > 1e-12) {
					bad++;
					printf("# query %zu rank %u: id %llu, float64 says %llu (gap %.3g)\n", i, j,
					       (unsigned long long)ids[i * k + j], (unsigned long long)rid[j], gap);
				}
			}
		}
	}
	free(rid);
	free(rs);
	return bad == 0;
}

/* ---- exact kernel -------------------------------------------------------------------- */

static void run_exact_case(const float *x, size_t n, size_t d, const float *q, size_t nq, uint32_t k)
{
	uint64_t *ids = l2_malloc(nq * k * sizeof(uint64_t)), *ids2 = l2_malloc(nq * k * sizeof(uint64_t));
	float *s = l2_malloc(nq * k * sizeof(float)), *s2 = l2_malloc(nq * k * sizeof(float));
	int saved = l2_threads;
	l2_threads = 1;
	l2_topk_exact(x, n, d, q, nq, k, ids, s);
	CHECK(check_against_brute(x, n, d, q, nq, k, ids, s));
	l2_threads = 3; /* more threads: the same answer, bit for bit */
	l2_topk_exact(x, n, d, q, nq, k, ids2, s2);
	CHECK(!memcmp(ids, ids2, nq * k * sizeof(uint64_t)));
	CHECK(!memcmp(s, s2, nq * k * sizeof(float)));
	l2_threads = saved;
	free(ids);
	free(ids2);
	free(s);
	free(s2);
}

static void test_exact_random(void)
{
	size_t n = 5000, d = 37, nq = 40; /* odd sizes: partial tiles and SIMD tails */
	float *x = random_rows(n, d, 1), *q = random_rows(nq, d, 1);
	run_exact_case(x, n, d, q, nq, 7);
	run_exact_case(x, n, d, q, nq, 1);
	free(x);
	free(q);
}

static void test_exact_clustered(void)
{
	/* tight clusters: many scores within 1e-3 of each other */
	size_t n = 6000, d = 64, nq = 30;
	float *x = clustered_rows(n, d, 20, 0.01, NULL), *q = clustered_rows(nq, d, 20, 0.01, NULL);
	run_exact_case(x, n, d, q, nq, 10);
	run_exact_case(x, n, d, q, nq, 50);
	free(x);
	free(q);
}

static void test_exact_unnormalised(void)
{
	size_t n = 2100, d = 16, nq = 9;
	float *x = random_rows(n, d, 0), *q = random_rows(nq, d, 0);
	for (size_t i = 0; i < n * d; i++) x[i] *= 3.5f;
	run_exact_case(x, n, d, q, nq, 5);
	free(x);
	free(q);
}

static void test_exact_ties_by_id(void)
{
	/* every vector repeated 4 times: equal scores come out by ascending id */
	size_t n = 400, d = 8, nq = 5;
	float *x = random_rows(n, d, 1), *q = random_rows(nq, d, 1);
	for (size_t i = 0; i < n; i++) memcpy(x + i * d, x + (i / 4 * 4) * d, d * sizeof(float));
	uint64_t ids[5 * 12];
	float s[5 * 12];
	l2_topk_exact(x, n, d, q, nq, 12, ids, s);
	for (size_t i = 0; i < nq; i++)
		for (int j = 1; j < 12; j++) {
			CHECK(s[i * 12 + j] <= s[i * 12 + j - 1]);
			if (s[i * 12 + j] == s[i * 12 + j - 1]) CHECK(ids[i * 12 + j] > ids[i * 12 + j - 1]);
		}
	CHECK(ids[0] % 4 == 0 && ids[1] == ids[0] + 1 && ids[3] == ids[0] + 3);
	free(x);
	free(q);
}

static void test_exact_k_is_n(void)
{
	size_t n = 33, d = 5, nq = 3;
	float *x = random_rows(n, d, 1), *q = random_rows(nq, d, 1);
	run_exact_case(x, n, d, q, nq, (uint32_t)n);
	free(x);
	free(q);
}

/* ---- the store ------------------------------------------------------------------------- */

static char tmpdir[64];

static char *index_path(const char *name)
{
	static char buf[128];
	snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
	return buf;
}

static void build(const char *path, const L2IndexBuildOptions *o, const float *x, size_t i0, size_t n, size_t d)
{
	L2IndexWriter *w = l2_index_writer_open(path, o, "text-feature", (uint32_t)d, 1);
	char key[32];
	for (size_t i = i0; i < i0 + n; i++) {
		snprintf(key, sizeof key, "caption %zu", i);
		l2_index_writer_add(w, key, (uint32_t)strlen(key), x + i * d);
	}
	l2_index_writer_close(w);
}

static void check_index_search(L2Index *ix, const float *x, size_t n, size_t d, const float *q, size_t nq, uint32_t k,
			       uint32_t nprobe)
{
	uint64_t *ids = l2_malloc(nq * k * sizeof(uint64_t));
	float *s = l2_malloc(nq * k * sizeof(float));
	l2_index_search(ix, q, nq, k, nprobe, ids, s);
	CHECK(check_against_brute(x, n, d, q, nq, k, ids, s));
	free(ids);
	free(s);
}

static void test_index_build_append(void)
{
	size_t n1 = 5000, n2 = 4000, d = 24, nq = 20; /* 5000 + 4000 crosses two block boundaries */
	float *x = random_rows(n1 + n2, d, 1), *q = random_rows(nq, d, 1);
	L2IndexBuildOptions o;
	l2_index_build_options_init(&o);
	const char *p = index_path("a.idx");
	build(p, &o, x, 0, n1, d);
	L2Index *ix = l2_index_open(p);
	CHECK(l2_index_count(ix) == n1);
	CHECK(l2_index_dim(ix) == d);
	CHECK(!strcmp(l2_index_kind(ix), "text-feature"));
	CHECK(l2_index_metric(ix) == L2_METRIC_COS);
	check_index_search(ix, x, n1, d, q, nq, 5, 0);
	l2_index_close(ix);

	/* append the rest plus duplicates of old and new keys */
	L2IndexWriter *w = l2_index_writer_open(p, &o, "text-feature", (uint32_t)d, 1);
	char key[32];
	for (size_t i = n1; i < n1 + n2; i++) {
		snprintf(key, sizeof key, "caption %zu", i);
		CHECK(l2_index_writer_add(w, key, (uint32_t)strlen(key), x + i * d) == 0);
	}
	CHECK(l2_index_writer_add(w, "caption 17", 10, x) == 1);
	CHECK(l2_index_writer_add(w, "caption 8999", 12, x) == 1);
	CHECK(l2_index_writer_duplicates(w) == 2 && l2_index_writer_added(w) == n2);
	l2_index_writer_close(w);

	ix = l2_index_open(p);
	CHECK(l2_index_count(ix) == n1 + n2);
	uint32_t len;
	CHECK(!strcmp(l2_index_key(ix, 6543, &len), "caption 6543") && len == 12);
	float *v = l2_malloc(d * sizeof(float));
	l2_index_vector(ix, 4097, v);
	CHECK(!memcmp(v, x + 4097 * d, d * sizeof(float)));
	check_index_search(ix, x, n1 + n2, d, q, nq, 9, 0);
	free(v);
	l2_index_close(ix);
	free(x);
	free(q);
}

static void test_index_f16(void)
{
	size_t n = 3000, d = 40, nq = 12;
	float *x = random_rows(n, d, 1), *q = random_rows(nq, d, 1);
	L2IndexBuildOptions o;
	l2_index_build_options_init(&o);
	o.f16 = 1;
	const char *p = index_path("h.idx");
	build(p, &o, x, 0, n, d);
	for (size_t i = 0; i < n * d; i++) x[i] = l2_half_to_float(l2_float_to_half(x[i]));
	L2Index *ix = l2_index_open(p);
	CHECK(l2_index_is_f16(ix));
	float *v = l2_malloc(d * sizeof(float));
	l2_index_vector(ix, 2999, v);
	CHECK(!memcmp(v, x + 2999 * d, d * sizeof(float)));
	check_index_search(ix, x, n, d, q, nq, 6, 0); /* float64 over the stored halves */
	free(v);
	l2_index_close(ix);
	free(x);
	free(q);
}

static double recall(const uint64_t *a, const uint64_t *b, size_t nq, uint32_t k)
{
	size_t hit = 0;
	for (size_t i = 0; i < nq; i++)
		for (uint32_t j = 0; j < k; j++)
			for (uint32_t m = 0; m < k; m++)
				if (a[i * k + j] == b[i * k + m]) { hit++; break; }
	return (double)hit / (double)(nq * k);
}

static void test_ivf(void)
{
	size_t n = 8000, d = 32, nq = 100;
	uint32_t k = 10, nlist = 40;
	float *x = clustered_rows(n, d, 60, 0.18, NULL), *q = clustered_rows(nq, d, 60, 0.18, NULL);
	L2IndexBuildOptions o;
	l2_index_build_options_init(&o);
	o.ivf_nlist = nlist;
	const char *p = index_path("ivf.idx");
	build(p, &o, x, 0, 6000, d);
	/* append: new rows go to their nearest lists */
	o.ivf_nlist = 0;
	build(p, &o, x, 6000, n - 6000, d);
	L2Index *ix = l2_index_open(p);
	CHECK(l2_index_nlist(ix) == nlist && l2_index_count(ix) == n);
	check_index_search(ix, x, n, d, q, nq, k, nlist); /* every list: exact */
	uint64_t *e = l2_malloc(nq * k * sizeof(uint64_t)), *a = l2_malloc(nq * k * sizeof(uint64_t));
	float *s = l2_malloc(nq * k * sizeof(float));
	l2_index_search(ix, q, nq, k, 0, e, s);
	l2_index_search(ix, q, nq, k, 1, a, s);
	double r1 = recall(a, e, nq, k);
	l2_index_search(ix, q, nq, k, 8, a, s);
	double r8 = recall(a, e, nq, k);
	printf("# IVF recall@10: nprobe 1 %.3f, nprobe 8 %.3f\n", r1, r8);
	CHECK(r8 >= 0.95 && r8 >= r1);
	/* probed lists too small for k: those queries fall back to exact */
	uint64_t *big = l2_malloc(nq * 500 * sizeof(uint64_t));
	float *bs = l2_malloc(nq * 500 * sizeof(float));
	l2_index_search(ix, q, 3, 500, 1, big, bs);
	CHECK(check_against_brute(x, n, d, q, 3, 500, big, bs));
	l2_index_close(ix);

	/* retrain with another list count on the existing rows */
	o.ivf_nlist = 25;
	o.ivf_init = L2_KMEANS_RANDOM;
	L2IndexWriter *w = l2_index_writer_open(p, &o, "text-feature", (uint32_t)d, 1);
	l2_index_writer_close(w);
	ix = l2_index_open(p);
	CHECK(l2_index_nlist(ix) == 25);
	check_index_search(ix, x, n, d, q, 10, k, 25);
	l2_index_close(ix);
	free(big);
	free(bs);
	free(e);
	free(a);
	free(s);
	free(x);
	free(q);
}

static void test_metric_ip(void)
{
	size_t n = 1500, d = 12, nq = 7;
	float *x = random_rows(n, d, 0), *q = random_rows(nq, d, 0);
	L2IndexBuildOptions o;
	l2_index_build_options_init(&o);
	o.metric = L2_METRIC_IP;
	const char *p = index_path("ip.idx");
	L2IndexWriter *w = l2_index_writer_open(p, &o, "text-feature", (uint32_t)d, 0);
	char key[32];
	for (size_t i = 0; i < n; i++) {
		snprintf(key, sizeof key, "%zu", i);
		l2_index_writer_add(w, key, (uint32_t)strlen(key), x + i * d);
	}
	l2_index_writer_close(w);
	L2Index *ix = l2_index_open(p);
	CHECK(l2_index_metric(ix) == L2_METRIC_IP);
	check_index_search(ix, x, n, d, q, nq, 4, 0);
	l2_index_close(ix);
	free(x);
	free(q);
}

/* ---- k-means ------------------------------------------------------------------------------ */

static void test_kmeans(void)
{
	size_t n = 3000, d = 20;
	uint32_t k = 8;
	uint32_t *label = l2_malloc(n * sizeof(uint32_t)), *as = l2_malloc(n * sizeof(uint32_t));
	float *x = clustered_rows(n, d, k, 0.05, label);
	float *c = l2_malloc(k * d * sizeof(float));
	/* well-separated clusters are recovered exactly (up to renumbering) */
	double obj = l2_kmeans(x, n, d, k, 10, L2_KMEANS_PLUSPLUS, 7, c, as);
	uint32_t map[8];
	for (uint32_t i = 0; i < k; i++) map[i] = UINT32_MAX;
	int pure = 1;
	for (size_t i = 0; i < n; i++) {
		if (map[label[i]] == UINT32_MAX) map[label[i]] = as[i];
		else if (map[label[i]] != as[i]) pure = 0;
	}
	CHECK(pure);
	CHECK(obj > 0.9);
	for (uint32_t j = 0; j < k; j++) {
		double s = 0;
		for (size_t m = 0; m < d; m++) s += (double)c[j * d + m] * c[j * d + m];
		CHECK_CLOSE(s, 1.0, 1e-5, 0);
	}
	/* the objective never decreases with more iterations (same seed) */
	double prev = -2;
	for (int it = 0; it <= 6; it++) {
		double o = l2_kmeans(x, n, d, 20, it, L2_KMEANS_RANDOM, 3, c = l2_realloc(c, 20 * d * sizeof(float)), NULL);
		CHECK_MSG(o >= prev - 1e-6, "iteration %d: objective %.9g after %.9g", it, o, prev);
		prev = o;
	}
	/* deterministic for a seed */
	float *c2 = l2_malloc(20 * d * sizeof(float));
	l2_kmeans(x, n, d, 20, 4, L2_KMEANS_PLUSPLUS, 11, c, NULL);
	l2_kmeans(x, n, d, 20, 4, L2_KMEANS_PLUSPLUS, 11, c2, NULL);
	CHECK(!memcmp(c, c2, 20 * d * sizeof(float)));
	free(c2);
	free(c);
	free(x);
	free(label);
	free(as);
}

int main(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/l2-test-index-XXXXXX");
	if (!mkdtemp(tmpdir)) return 1;
	l2_quiet = 1;
	RUN(test_exact_random);
	RUN(test_exact_clustered);
	RUN(test_exact_unnormalised);
	RUN(test_exact_ties_by_id);
	RUN(test_exact_k_is_n);
	RUN(test_index_build_append);
	RUN(test_index_f16);
	RUN(test_ivf);
	RUN(test_metric_ip);
	RUN(test_kmeans);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
	if (system(cmd)) return 1;
	return check_done();
}
