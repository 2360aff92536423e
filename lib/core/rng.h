/* rng.h — seeded, counter-based random numbers for training.
 *
 * A generator is (key, counter): the n-th draw is a SplitMix64 finaliser of
 * key + n * golden-ratio, so the whole state is two integers that a
 * checkpoint saves and a resumed run restores exactly, and independent
 * streams come from different keys (l2_rng_init(seed, stream)).  Normal
 * draws use Box-Muller on two uniforms without caching the second value,
 * so the state stays the counter alone. */
#ifndef L2_RNG_H
#define L2_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
	uint64_t key, ctr;
} L2Rng;

void l2_rng_init(L2Rng *r, uint64_t seed, uint64_t stream);
/* A generator keyed directly (no mixing of seed and stream): its draws are
 * SplitMix64's sequence from state `key`.  For streams that were defined that
 * way before l2_rng_init existed (the IVF index's sampling and k-means). */
void l2_rng_init_key(L2Rng *r, uint64_t key);
uint64_t l2_rng_u64(L2Rng *r);
double l2_rng_uniform(L2Rng *r);            /* [0, 1), 53 bits */
double l2_rng_normal(L2Rng *r);             /* N(0, 1) */
uint64_t l2_rng_below(L2Rng *r, uint64_t n); /* uniform in [0, n), unbiased */
void l2_rng_shuffle(L2Rng *r, int *v, size_t n);
/* The training data order of epoch `epoch` under `seed`: perm = a shuffle
 * of 0..n-1 that depends on nothing else, so a resumed run (which knows only
 * seed, epoch and position) sees the same order as an uninterrupted one. */
void l2_rng_epoch_perm(int *perm, int n, uint64_t seed, uint64_t epoch);
void l2_rng_fill_normal(L2Rng *r, float *x, size_t n, double mean, double std);
void l2_rng_fill_uniform(L2Rng *r, float *x, size_t n, double lo, double hi);

#endif
