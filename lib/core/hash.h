/* hash.h — the two hash primitives l2 builds on, as static inline functions.
 *
 *   l2_mix64(z)         SplitMix64's finaliser (Steele, Lea & Flood 2014; the
 *                       constants of Stafford's "Mix13"): a bijection of 64-bit
 *                       words whose every output bit depends on every input bit.
 *   l2_splitmix64(&s)   one SplitMix64 draw: s += L2_GOLDEN, then l2_mix64(s).
 *   l2_fnv1a64(h, p, n) FNV-1a 64 of n bytes, chained from h (start with
 *                       L2_FNV_INIT); l2_fnv1a64_str for a NUL-terminated string.
 *
 * Many things are defined in terms of these: the counter-based generator of
 * core/rng.h, the random weights of CLIP and Inception that Python writes
 * identically (tests/ref/make_clip.py, make_fid.py), the checkpoint checksum
 * (nn/ckpt.h), the index's key hash (schemas/index.md), the dataset split
 * (method/dataset.h).  Each keeps its own composition of the primitives (seed
 * mixing, counter stride, which bits become a float), pinned by goldens and
 * stored files; only the primitives live here, so they cannot drift apart. */
#ifndef L2_HASH_H
#define L2_HASH_H

#include <stddef.h>
#include <stdint.h>

/* 2^64 / golden ratio: SplitMix64's increment (Weyl sequence step). */
#define L2_GOLDEN 0x9e3779b97f4a7c15ull

static inline uint64_t l2_mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline uint64_t l2_splitmix64(uint64_t *state) { return l2_mix64(*state += L2_GOLDEN); }

#define L2_FNV_INIT 0xcbf29ce484222325ull
#define L2_FNV_PRIME 0x100000001b3ull

static inline uint64_t l2_fnv1a64(uint64_t h, const void *buf, size_t n)
{
	const unsigned char *p = (const unsigned char *)buf;
	for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * L2_FNV_PRIME;
	return h;
}

static inline uint64_t l2_fnv1a64_str(uint64_t h, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) h = (h ^ *p) * L2_FNV_PRIME;
	return h;
}

#endif
