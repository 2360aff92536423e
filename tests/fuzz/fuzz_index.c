/* fuzz_index.c — the caption-index reader (lib/method/index.h): l2_index_open's
 * checks of metadata, vector blocks, keys and IVF lists, then a search.
 *
 * The input is a list of records that l2_fuzz_lmdb writes into a fresh,
 * valid LMDB environment with the index's six sub-databases
 * (schemas/index.md): meta, vectors, keys, hash (MDB_DUPSORT),
 * ivf_centroids, ivf_lists.  An index that opens is searched as
 * l2-retrieve does — exactly, and through its IVF lists when it has them —
 * and every row found must give its key and vector. */
#include "fuzz.h"
#include "method/index.h"
#include "method/index_search.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static const char *const DBS[] = {"meta", "vectors", "keys", "hash", "ivf_centroids", "ivf_lists"};

static void fuzz_one(const uint8_t *data, size_t size)
{
	char dir[512];
	snprintf(dir, sizeof dir, "%s/index", l2_fuzz_scratch());
	L2FuzzInput in = {data, size};
	l2_fuzz_lmdb(dir, DBS, 6, 1u << 3, &in);
	L2Index *ix = l2_index_open(dir);
	uint32_t d = l2_index_dim(ix);
	uint64_t n = l2_index_count(ix);
	float *q = malloc(sizeof(float) * d), *v = malloc(sizeof(float) * d);
	for (uint32_t i = 0; i < d; i++) q[i] = (float)(1.0 / sqrt((double)d)) * (i % 2 ? -1 : 1);
	uint32_t k = n < 4 ? (uint32_t)n : 4;
	uint64_t ids[4];
	float scores[4];
	for (int pass = 0; pass < (l2_index_nlist(ix) ? 2 : 1); pass++) {
		l2_index_search(ix, q, 1, k, pass ? l2_index_nlist(ix) : 0, ids, scores);
		for (uint32_t j = 0; j < k; j++) {
			if (ids[j] >= n) {
				fprintf(stderr, "fuzz_index: search returned row %llu of %llu\n", (unsigned long long)ids[j],
					(unsigned long long)n);
				abort();
			}
			uint32_t len;
			l2_index_key(ix, ids[j], &len);
			l2_index_vector(ix, ids[j], v);
		}
	}
	free(q);
	free(v);
	l2_index_close(ix);
}

/* the searches' scratch, kept between calls, may have grown during a
 * refused input */
static void init(void)
{
	l2_fuzz_lmdb_init(DBS, 6, 1u << 3);
	l2_fuzz_on_refusal(l2_index_search_free_scratch);
}

L2_FUZZ_TARGET_INIT(fuzz_one, init)
