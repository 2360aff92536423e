/* kmeans.c — spherical k-means (see kmeans.h). */
#include "method/kmeans.h"
#include "core/rng.h"
#include "core/util.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The draws IVF indexes have been built with, kept so that rebuilding one gives the same
 * lists: a generator keyed directly by seed ^ "kmeans" (l2_rng_init_key); an index in
 * [0, n) by scaling a uniform (not l2_rng_below's rejection), and normals by Box-Muller on
 * (u, v) (not l2_rng_normal's 1 - u). */
static uint64_t below(L2Rng *r, uint64_t n) { return (uint64_t)(l2_rng_uniform(r) * (double)n) % n; }
static double normal(L2Rng *r)
{
	double u = l2_rng_uniform(r), v = l2_rng_uniform(r);
	return sqrt(-2 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}

double l2_kmeans_assign(const float *x, size_t n, size_t d, const float *cent, uint32_t k, uint32_t *assign,
			float *S /* (4096, k) */)
{
	double obj = 0;
	for (size_t r0 = 0; r0 < n; r0 += 4096) {
		size_t nr = n - r0 < 4096 ? n - r0 : 4096;
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nr, (int)k, (int)d, 1.0f, x + r0 * d, (int)d, cent,
			    (int)d, 0.0f, S, (int)k);
		for (size_t r = 0; r < nr; r++) {
			const float *s = S + r * k;
			uint32_t best = 0;
			for (uint32_t c = 1; c < k; c++)
				if (s[c] > s[best]) best = c;
			assign[r0 + r] = best;
			obj += s[best];
		}
	}
	return obj;
}

/* unit norm through a double reciprocal: the centroids' own rounding (core/vec.h has the
 * other two), kept for the same reason */
static void normalize_or_zero(float *v, size_t d)
{
	double s = 0;
	for (size_t j = 0; j < d; j++) s += (double)v[j] * v[j];
	if (s > 0) {
		double inv = 1 / sqrt(s);
		for (size_t j = 0; j < d; j++) v[j] = (float)(v[j] * inv);
	}
}

double l2_kmeans(const float *x, size_t n, size_t d, uint32_t k, int iters, L2KmeansInit init, uint64_t seed,
		 float *cent, uint32_t *assign_out)
{
	if (k < 1 || k > n) l2_die("internal error: k-means with %u centroids for %zu rows", k, n);
	L2Rng rng;
	l2_rng_init_key(&rng, seed ^ 0x6b6d65616e73ull); /* "kmeans" */
	if (init == L2_KMEANS_RANDOM || k == 1) {
		/* k distinct rows: a partial Fisher-Yates shuffle of the row numbers */
		uint32_t *perm = l2_malloc(n * sizeof(uint32_t));
		for (size_t i = 0; i < n; i++) perm[i] = (uint32_t)i;
		for (uint32_t c = 0; c < k; c++) {
			size_t j = c + below(&rng, n - c);
			uint32_t t = perm[c];
			perm[c] = perm[j], perm[j] = t;
			memcpy(cent + (size_t)c * d, x + (size_t)perm[c] * d, d * sizeof(float));
		}
		free(perm);
	} else {
		/* k-means++ (squared distance of unit vectors = 2 - 2 cos) on a
		 * subsample: each pick costs a pass over it. */
		size_t m = (size_t)k * 16 > 2048 ? (size_t)k * 16 : 2048;
		if (m > n) m = n;
		uint32_t *pick = l2_malloc(n * sizeof(uint32_t));
		for (size_t i = 0; i < n; i++) pick[i] = (uint32_t)i;
		for (size_t i = 0; i < m; i++) {
			size_t j = i + below(&rng, n - i);
			uint32_t t = pick[i];
			pick[i] = pick[j], pick[j] = t;
		}
		float *sub = l2_malloc_aligned(l2_mul_size(l2_mul_size(m, d), sizeof(float)));
		for (size_t i = 0; i < m; i++) memcpy(sub + i * d, x + (size_t)pick[i] * d, d * sizeof(float));
		free(pick);
		double *D = l2_malloc(m * sizeof(double));
		float *ip = l2_malloc(m * sizeof(float));
		size_t first = below(&rng, m);
		memcpy(cent, sub + first * d, d * sizeof(float));
		for (size_t i = 0; i < m; i++) D[i] = INFINITY;
		for (uint32_t c = 0;; c++) {
			cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)m, (int)d, 1.0f, sub, (int)d, cent + (size_t)c * d, 1, 0.0f,
				    ip, 1);
			double tot = 0;
			for (size_t i = 0; i < m; i++) {
				double di = 2 - 2 * (double)ip[i];
				if (di < 0) di = 0;
				if (di < D[i]) D[i] = di;
				tot += D[i];
			}
			if (c + 1 == k) break;
			size_t next = below(&rng, m);
			if (tot > 0) {
				double u = l2_rng_uniform(&rng) * tot, acc = 0;
				for (size_t i = 0; i < m; i++) {
					acc += D[i];
					if (acc > u && D[i] > 0) { next = i; break; }
				}
			}
			memcpy(cent + (size_t)(c + 1) * d, sub + next * d, d * sizeof(float));
		}
		free(D);
		free(ip);
		l2_free_aligned(sub);
	}
	for (uint32_t c = 0; c < k; c++) normalize_or_zero(cent + (size_t)c * d, d);

	uint32_t *assign = l2_malloc(n * sizeof(uint32_t));
	float *S = l2_malloc(l2_mul_size((size_t)4096 * k, sizeof(float)));
	double *sum = l2_malloc(l2_mul_size((size_t)k * d, sizeof(double)));
	uint64_t *cnt = l2_malloc(k * sizeof(uint64_t));
	double obj = 0;
	for (int it = 0; it < iters; it++) {
		l2_kmeans_assign(x, n, d, cent, k, assign, S);
		memset(sum, 0, (size_t)k * d * sizeof(double));
		memset(cnt, 0, k * sizeof(uint64_t));
		for (size_t i = 0; i < n; i++) {
			double *s = sum + (size_t)assign[i] * d;
			const float *xi = x + i * d;
			for (size_t j = 0; j < d; j++) s[j] += xi[j];
			cnt[assign[i]]++;
		}
		for (uint32_t c = 0; c < k; c++) {
			if (!cnt[c]) continue;
			double nrm = 0;
			for (size_t j = 0; j < d; j++) nrm += sum[(size_t)c * d + j] * sum[(size_t)c * d + j];
			if (nrm == 0) { cnt[c] = 0; continue; }
			nrm = 1 / sqrt(nrm);
			for (size_t j = 0; j < d; j++) cent[(size_t)c * d + j] = (float)(sum[(size_t)c * d + j] * nrm);
		}
		/* an empty list takes half of the biggest one: split its centroid
		 * along a random direction */
		for (uint32_t c = 0; c < k; c++) {
			if (cnt[c]) continue;
			uint32_t big = 0;
			for (uint32_t b = 1; b < k; b++)
				if (cnt[b] > cnt[big]) big = b;
			float *cb = cent + (size_t)big * d, *cc = cent + (size_t)c * d;
			for (size_t j = 0; j < d; j++) {
				float e = (float)(1e-3 * normal(&rng));
				cc[j] = cb[j] + e;
				cb[j] -= e;
			}
			normalize_or_zero(cc, d);
			normalize_or_zero(cb, d);
			cnt[c] = cnt[big] / 2;
			cnt[big] -= cnt[c];
		}
	}
	obj = l2_kmeans_assign(x, n, d, cent, k, assign, S) / (double)n;
	if (assign_out) memcpy(assign_out, assign, n * sizeof(uint32_t));
	free(assign);
	free(S);
	free(sum);
	free(cnt);
	return obj;
}
