/* kmeans.h — spherical k-means: the inverted lists of an IVF index (method/index.h).
 *
 * Rows and centroids are unit vectors and "nearest" is the largest inner product, so an
 * iteration is one blocked SGEMM (rows x centroids) and a normalised mean per list.
 * Initialisation is k-means++ on a subsample (squared distance of unit vectors = 2 - 2 cos)
 * or k distinct random rows; a list left empty takes half of the biggest one, split along a
 * random direction.  Deterministic in seed (core/rng.h), whatever the thread count. */
#ifndef L2_KMEANS_H
#define L2_KMEANS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { L2_KMEANS_PLUSPLUS = 0, L2_KMEANS_RANDOM = 1 } L2KmeansInit;

/* Rows x (n, d), k <= n centroids out (k, d) of unit norm after `iters` iterations.
 * Returns the final objective (mean inner product to the assigned centroid); assign (n)
 * may be NULL. */
double l2_kmeans(const float *x, size_t n, size_t d, uint32_t k, int iters, L2KmeansInit init, uint64_t seed,
		 float *centroids, uint32_t *assign);

/* Each row of x (n, d) to its best centroid of cent (k, d) (lowest index on ties): assign
 * (n).  S is scratch of 4096 x k floats.  Returns the sum of the best inner products. */
double l2_kmeans_assign(const float *x, size_t n, size_t d, const float *cent, uint32_t k, uint32_t *assign,
			float *S);

#endif
