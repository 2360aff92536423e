/* unicode_lookup.h — binary searches over the sorted code-point tables of
 * unicode_tables.h and ftfy_tables.h, shared by the tokenizer (clip_tokenizer.c) and ftfy.c. */
#ifndef L2_UNICODE_LOOKUP_H
#define L2_UNICODE_LOOKUP_H

#include <stddef.h>
#include <stdint.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* 1 if c lies in one of the n sorted, disjoint ranges r[i] = {first, last}. */
static inline int in_ranges(const uint32_t (*r)[2], size_t n, uint32_t c)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t m = (lo + hi) / 2;
		if (c < r[m][0]) hi = m;
		else if (c > r[m][1]) lo = m + 1;
		else return 1;
	}
	return 0;
}
#define IN(tab, c) in_ranges(tab, NELEM(tab), c)

/* The value paired with key c in n pairs sorted by key: 1 and *out, or 0. */
static inline int pair_lookup(const uint32_t (*t)[2], size_t n, uint32_t c, uint32_t *out)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t m = (lo + hi) / 2;
		if (t[m][0] < c) lo = m + 1;
		else hi = m;
	}
	if (lo < n && t[lo][0] == c) { *out = t[lo][1]; return 1; }
	return 0;
}

#endif
