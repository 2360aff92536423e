/* index.h — nearest-neighbour index over CLIP-space feature vectors.
 *
 * An index is an LMDB store (layout, byte by byte: schemas/index.md) that
 * holds every key (a caption), its vector (f32 or f16) and metadata.
 * Vectors live in blocks of L2_INDEX_BLOCK rows, so a search is a handful of
 * large GEMMs straight over the memory map:
 *
 *   exact (default): blocked SGEMM of query batch × stored vectors, a
 *     per-query top-k (threshold scan + heap), multi-threaded over blocks;
 *     the best k + margin candidates are rescored in float64, so results
 *     equal a float64 brute force except for exact ties.
 *   IVF (--ivf NLIST at build): spherical k-means centroids; a query scans
 *     the rows of its nprobe nearest lists (same kernels, then the same
 *     float64 rescoring).
 *
 * Scores are inner products.  An index of metric "cos" holds unit-norm
 * vectors only (so the inner product is the cosine); metric "ip" holds
 * whatever it was given.
 *
 * The index is an LMDB environment of its own, opened here rather than through
 * io/store.h, for two reasons that store.h's model does not serve: a search runs
 * SGEMM straight over the mapped vector blocks (store.h's reads copy values out,
 * and a 1M x 512 index is 2 GiB), holding one read transaction from open to
 * close; and an append is one write transaction with MDB_APPEND puts, so a
 * failed append leaves the index as it was (store.h commits in batches and
 * grows the map by replaying them).  Its identity is its own meta keys
 * (schemas/index.md), not store.h's "format/kind/version".
 *
 *   L2IndexWriter *w = l2_index_writer_open("captions.idx", &opt, "text-feature", 512, 1);
 *   l2_index_writer_add(w, key, key_len, vec);   // 1 if the key was a duplicate
 *   l2_index_writer_close(w);                    // trains IVF, commits, renames
 *
 *   L2Index *ix = l2_index_open("captions.idx");
 *   l2_index_search(ix, q, nq, k, 0, ids, scores);   // nprobe 0: exact
 */
#ifndef L2_INDEX_H
#define L2_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "method/kmeans.h"

#define L2_INDEX_BLOCK 4096u      /* rows per stored vector block */
#define L2_INDEX_VERSION 1

typedef enum { L2_METRIC_COS = 0, L2_METRIC_IP = 1 } L2Metric;

typedef struct {
	int f16;             /* store vectors as IEEE half (new index only) */
	int normalize;       /* scale incoming rows to unit norm */
	int metric;          /* L2Metric for a new index (default cos); -1: unset */
	uint32_t ivf_nlist;  /* 0: none; else (re)train this many lists at close */
	int ivf_iters;       /* k-means iterations (default 10) */
	uint64_t ivf_sample; /* rows k-means trains on (0: min(count, 256 * nlist)) */
	L2KmeansInit ivf_init;
	uint64_t seed;
	int progress;        /* show progress lines */
} L2IndexBuildOptions;

void l2_index_build_options_init(L2IndexBuildOptions *o);

typedef struct L2IndexWriter L2IndexWriter;

/* Create PATH (written in a temporary sibling directory, renamed at close)
 * or open an existing index for appending (one LMDB transaction: a failed
 * append leaves the index as it was).  kind/dim describe the incoming
 * stream; input_normalized says its rows are flagged unit norm.  Dies with
 * "PATH: problem" on a mismatch (kind, dimension, metric, dtype). */
L2IndexWriter *l2_index_writer_open(const char *path, const L2IndexBuildOptions *o, const char *kind,
				    uint32_t dim, int input_normalized);
/* Add one row; returns 0 if added, 1 if the key was already there (skipped).
 * vec (dim) is copied (and normalised when asked).  Dies on NaN/Inf, and on
 * a row that is not unit norm in a "cos" index. */
int l2_index_writer_add(L2IndexWriter *w, const char *key, uint32_t key_len, const float *vec);
uint64_t l2_index_writer_added(const L2IndexWriter *w);
uint64_t l2_index_writer_duplicates(const L2IndexWriter *w);
uint64_t l2_index_writer_count(const L2IndexWriter *w); /* rows in the index now */
/* Flush the last block, (re)train or extend IVF lists, commit, rename. */
void l2_index_writer_close(L2IndexWriter *w);

typedef struct L2Index L2Index;

/* Open read-only; dies with "PATH: problem" when it is not an l2 index, is
 * corrupt or truncated, or is empty. */
L2Index *l2_index_open(const char *path);
void l2_index_close(L2Index *ix);
const char *l2_index_path(const L2Index *ix);
uint32_t l2_index_dim(const L2Index *ix);
uint64_t l2_index_count(const L2Index *ix);
const char *l2_index_kind(const L2Index *ix);
L2Metric l2_index_metric(const L2Index *ix);
int l2_index_is_f16(const L2Index *ix);
uint32_t l2_index_nlist(const L2Index *ix); /* 0: no IVF */

/* Search nq queries q (nq, dim) for their k best rows.  nprobe 0 = exact;
 * else scan the nprobe nearest IVF lists (dies when the index has none).
 * ids (nq, k) and scores (nq, k), best first; equal scores by lower id.
 * Threads: l2_threads.  k must be 1 … count. */
void l2_index_search(L2Index *ix, const float *q, size_t nq, uint32_t k, uint32_t nprobe, uint64_t *ids,
		     float *scores);
/* Key of row id (NUL-terminated, points into the map; valid until close). */
const char *l2_index_key(L2Index *ix, uint64_t id, uint32_t *len);
/* Vector of row id as f32 into out (dim). */
void l2_index_vector(L2Index *ix, uint64_t id, float *out);
/* Metadata pairs for display: calls fn(name, value) for each. */
void l2_index_each_meta(L2Index *ix, void (*fn)(void *ctx, const char *name, const char *value), void *ctx);

/* Exact top-k of in-memory rows x (n, d) for queries q (nq, d) with the index's kernel
 * (index_search.c): float32 GEMM, candidate pool, float64 rescoring.  Threads: l2_threads. */
void l2_topk_exact(const float *x, size_t n, size_t d, const float *q, size_t nq, uint32_t k, uint64_t *ids,
		   float *scores);

#endif
