/* retrieval_eval.h — how well image -> caption retrieval finds an image's own captions:
 * l2-dataset eval-retrieval, the demo's held-out accuracy table.
 *
 * A query counts as a hit at m when one of its m best neighbours is one of the image's
 * captions in the dataset; chance is the same probability for m candidates drawn at random
 * from N (1 - C(N - c, m) / C(N, m), c = the image's caption count), averaged like the hits. */
#ifndef L2_RETRIEVAL_EVAL_H
#define L2_RETRIEVAL_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "io/stream.h"
#include "method/dataset.h"

#define L2_EVAL_NM 3
extern const int L2_EVAL_M[L2_EVAL_NM]; /* 1, 5, 10 */

typedef struct {
	uint64_t queries;              /* captioned queries of the split */
	uint64_t uncaptioned;          /* queries skipped: the image has no caption */
	size_t candidates;             /* N */
	uint32_t k;                    /* neighbours per query in the stream */
	double top[L2_EVAL_NM];        /* share of queries with a hit at m (meaningful for m <= k) */
	double chance[L2_EVAL_NM];     /* the same for random candidates */
	double mrr;                    /* mean reciprocal rank of the first hit within k (0 if none) */
} L2RetrievalScore;

/* Score the neighbors stream r (from l2-retrieve) whose queries are images of ds, counting
 * only those of `split`; candidates = N, 0 for the distinct captions of the split.  Dies on
 * a query that is not an image of ds. */
void l2_retrieval_eval(L2Dataset *ds, L2StreamReader *r, L2Split split, size_t candidates, L2RetrievalScore *s);

#endif
