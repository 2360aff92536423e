/* rng.c — counter-based SplitMix64 generator (see rng.h). */
#include "core/rng.h"
#include "core/hash.h"

#include <math.h>

void l2_rng_init(L2Rng *r, uint64_t seed, uint64_t stream)
{
	r->key = l2_mix64(seed * L2_GOLDEN + l2_mix64(stream + 0x632be59bd9b4e019ull));
	r->ctr = 0;
}

void l2_rng_init_key(L2Rng *r, uint64_t key)
{
	r->key = key;
	r->ctr = 0;
}

uint64_t l2_rng_u64(L2Rng *r) { return l2_mix64(r->key + ++r->ctr * L2_GOLDEN); }

double l2_rng_uniform(L2Rng *r) { return (l2_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }

double l2_rng_normal(L2Rng *r)
{
	double u = 1 - l2_rng_uniform(r), v = l2_rng_uniform(r); /* u in (0, 1] */
	return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

uint64_t l2_rng_below(L2Rng *r, uint64_t n)
{
	if (n <= 1) return 0;
	uint64_t lim = UINT64_MAX - UINT64_MAX % n, x;
	do x = l2_rng_u64(r);
	while (x >= lim);
	return x % n;
}

void l2_rng_shuffle(L2Rng *r, int *v, size_t n)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = l2_rng_below(r, i);
		int t = v[i - 1];
		v[i - 1] = v[j];
		v[j] = t;
	}
}

void l2_rng_fill_normal(L2Rng *r, float *x, size_t n, double mean, double std)
{
	for (size_t i = 0; i < n; i++) x[i] = (float)(mean + std * l2_rng_normal(r));
}

void l2_rng_fill_uniform(L2Rng *r, float *x, size_t n, double lo, double hi)
{
	for (size_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * l2_rng_uniform(r));
}

void l2_rng_epoch_perm(int *perm, int n, uint64_t seed, uint64_t epoch)
{
	L2Rng pr;
	l2_rng_init(&pr, seed, 0x65706f00 + epoch);
	for (int i = 0; i < n; i++) perm[i] = i;
	l2_rng_shuffle(&pr, perm, (size_t)n);
}
