/* index_search.h — the search kernels behind method/index.h, over vectors wherever they
 * are: the memory map of an index (index.c), or one block in memory (l2_topk_exact).
 * Not for tools; index.h is the API.
 *
 * Exact: query tiles x row tiles through single-threaded SGEMM on each worker; every score
 * row is scanned against the worker's pool threshold with SIMD compares, so its heap is
 * touched only by the few scores that can enter; pools are merged at the end and the best
 * k + margin candidates rescored in float64.  IVF: the same over the rows of each query's
 * nprobe best lists, the lists scanned biggest first, each by one worker for all the
 * queries probing it.  Not reentrant: workers keep their scratch from one search to the
 * next (one search at a time per process). */
#ifndef L2_INDEX_SEARCH_H
#define L2_INDEX_SEARCH_H

#include <stddef.h>
#include <stdint.h>

/* Where the vectors are: row id = block * stride + row within the block. */
typedef struct {
	size_t d;
	int f16;
	size_t nblocks;
	const void **blk;   /* (nblocks) block data: rows x d of f32 or f16 */
	uint32_t *blk_rows; /* (nblocks) */
	uint64_t stride;
	uint64_t count;
	double max_norm;    /* bound on row norms (cos index), 0 if unknown */
} L2IndexRows;

/* The k best rows of R for each of the nq queries q (nq, d): ids and scores (nq, k), best
 * first, equal scores by lower id.  Threads: l2_threads. */
void l2_index_search_exact(const L2IndexRows *R, const float *q, size_t nq, uint32_t k, uint64_t *ids,
			   float *scores);
/* The same over the rows of the nprobe lists (CSR: list_off (nlist + 1), list_ids) whose
 * centroids cent (nlist, d) score best; queries whose lists hold fewer than k rows are
 * searched exactly. */
void l2_index_search_ivf(const L2IndexRows *R, const float *cent, uint32_t nlist, const uint64_t *list_off,
			 const uint64_t *list_ids, const float *q, size_t nq, uint32_t k, uint32_t nprobe,
			 uint64_t *ids, float *scores);
/* Row id as f32 (d). */
void l2_index_row_to_float(const L2IndexRows *R, uint64_t id, float *out);

/* Free the scratch the searches keep between calls.  Tools never need it (the scratch
 * lives until exit); a fuzz harness that catches l2_die calls it after a refused input,
 * before it frees what the input allocated, which would otherwise free the scratch
 * behind the searches' back. */
void l2_index_search_free_scratch(void);

#endif
