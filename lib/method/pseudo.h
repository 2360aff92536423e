/* pseudo.h — Lafite2 pseudo text features (METHOD.md §2–3).
 *
 * Turns image features into stand-ins for caption features in CLIP space:
 *   retrieve  h0 = normalize( sum_j softmax(s/T_r)_j t_j )   over the first k neighbours
 *   optimize  start at h0, minimise over the batch (B images, raw variables h)
 *               L = -(1/B) sum_i log softmax_j( cos(h_i, f_j)/tau )[i]
 *                   + lambda (1/B) sum_i ||h_i - h0_i||^2
 *             with Adam for `steps` steps, then normalise
 *   gaussian  Lafite's baseline normalize( f + xi * eps * ||f|| / ||eps|| ), eps ~ N(0, I)
 *
 * Dimension letters: B = images in a batch, D = feature dimension,
 * K = neighbours kept per image.  Matrices are row-major.
 *
 * The objective and its gradient exist in float (used by the tool, GEMMs on
 * OpenBLAS) and in double (the same source, instantiated twice) so the
 * gradient can be checked against finite differences in float64.
 */
#ifndef L2_PSEUDO_H
#define L2_PSEUDO_H

#include <stdint.h>
#include <stdio.h>
#include "io/stream.h"

typedef enum { L2_PSEUDO_OPTIMIZE = 0, L2_PSEUDO_RETRIEVE, L2_PSEUDO_GAUSSIAN } L2PseudoMode;

/* Defaults, chosen by measurement on synthetic features with a modality gap
 * (bench/results/pseudo.md). */
#define L2_PSEUDO_DEF_K 16
#define L2_PSEUDO_DEF_TR 0.1
#define L2_PSEUDO_DEF_TAU 0.05
#define L2_PSEUDO_DEF_LAMBDA 4.0
#define L2_PSEUDO_DEF_STEPS 10
#define L2_PSEUDO_DEF_LR 0.005
#define L2_PSEUDO_DEF_BATCH 256
#define L2_PSEUDO_DEF_XI 3.0

typedef struct {
	L2PseudoMode mode;
	int k;                 /* neighbours combined (1..stream k) */
	double retrieval_temp; /* T_r > 0 */
	double tau;            /* contrastive temperature > 0 */
	double lambda;         /* proximity weight >= 0 */
	int steps;             /* Adam steps >= 0 */
	double lr;             /* Adam learning rate > 0 */
	int batch;             /* images per batch >= 1 */
	double xi;             /* gaussian noise level >= 0 */
	uint64_t seed;
} L2PseudoOptions;

void l2_pseudo_defaults(L2PseudoOptions *o);
const char *l2_pseudo_mode_name(L2PseudoMode m);
/* "optimize", "retrieve", "gaussian" -> mode; -1 if unknown. */
int l2_pseudo_mode_parse(const char *s);

/* ---- kernels ------------------------------------------------------------ */

/* h0 (D) = normalize( sum_j softmax(score/temp)_j normalize(t_j) ), t (K, D). */
void l2_pseudo_combine(const float *score, const float *t, int K, int D, double temp, float *h0);

/* Contrastive objective of the batch and, if grad != NULL, its exact
 * gradient with respect to the raw h (B, D).  fn (B, D): unit-norm image
 * features; h0 (B, D): the proximity anchors.  work: at least
 * l2_pseudo_work_size(B, D) elements.  Returns L. */
size_t l2_pseudo_work_size(int B, int D);
double l2_pseudo_loss_f(const float *h, const float *fn, const float *h0, int B, int D, double tau,
			double lambda, float *grad, float *work);
double l2_pseudo_loss_d(const double *h, const double *fn, const double *h0, int B, int D, double tau,
			double lambda, double *grad, double *work);

/* Run `steps` Adam steps (beta1 0.9, beta2 0.999, eps 1e-8, as torch.optim.Adam)
 * from h = h0 and normalise the result into h (B, D).  fn, h0 as above.
 * work: l2_pseudo_opt_work_size(B, D) elements.  *loss0 / *loss1 (if not NULL)
 * get the objective before the first and after the last step. */
size_t l2_pseudo_opt_work_size(int B, int D);
void l2_pseudo_optimize_f(float *h, const float *fn, const float *h0, int B, int D, const L2PseudoOptions *o,
			  float *work, double *loss0, double *loss1);
void l2_pseudo_optimize_d(double *h, const double *fn, const double *h0, int B, int D, const L2PseudoOptions *o,
			  double *work, double *loss0, double *loss1);

/* Lafite's Gaussian pseudo feature of f (D) into out (D).  The noise comes
 * from a counter-based generator keyed by (seed, stream, element); the
 * batches give each record the stream l2_pseudo_key_stream(its key), so a
 * record's noise is the same whatever the batch, thread count, or its
 * position in the stream (a shard of it: core/shard.h). */
void l2_pseudo_gaussian(const float *f, int D, double xi, uint64_t seed, uint64_t stream, float *out);
/* The noise stream of a record: FNV-1a 64 of its key's bytes. */
uint64_t l2_pseudo_key_stream(const char *key, size_t len);
/* The generator itself: a standard normal number for (seed, stream, counter). */
double l2_pseudo_normal(uint64_t seed, uint64_t stream, uint64_t counter);

/* ---- diagnostics -------------------------------------------------------------- */

typedef struct {
	double n;        /* images */
	double cos_img;  /* sum of cos(h_i, f_i) */
	double cos_txt;  /* sum of max_j cos(h_i, t_ij): the nearest retrieved text feature */
	double correct;  /* images whose h picks its own image in the batch */
	int has_txt;
} L2PseudoStats;

/* Accumulate the statistics of one batch: h (B, D), fn (B, D) unit image
 * features, t (B, K, D) retrieved text features (K = 0: none). */
void l2_pseudo_stats_add(L2PseudoStats *s, const float *h, const float *fn, const float *t, int B, int K, int D);

/* ---- batches -------------------------------------------------------------------- */

/* A batch of up to o->batch images being collected from a stream, then
 * turned into pseudo features.  Memory: about batch * ((K + 10) * D + 2 * batch)
 * floats. */
typedef struct {
	L2PseudoOptions opt;
	int D, K;           /* K: neighbours kept (0 for plain image-feature input) */
	int n;              /* images in the batch now */
	char **key;         /* (batch) */
	float *f;           /* (batch, D) unit image features */
	float *score;       /* (batch, K) */
	float *t;           /* (batch, K, D) unit text features */
	float *h0;          /* (batch, D) */
	float *h;           /* (batch, D) the result */
	float *work;        /* optimisation workspace */
	float *scratch;     /* (batch, D) + (batch, batch): diagnostics */
	double *dscratch;   /* (D): combine, gaussian */
	L2PseudoStats before, after; /* of the last processed batch */
	double loss0, loss1;
} L2PseudoBatch;

/* K: neighbours to keep (o->k for neighbors input, 0 for image features). */
L2PseudoBatch *l2_pseudo_batch_new(const L2PseudoOptions *o, int D, int K);
/* Append one record (a neighbors record, or a plain feature when K == 0). */
void l2_pseudo_batch_add(L2PseudoBatch *b, const L2Record *rec);
/* Compute b->h for the images collected, fill before/after, and leave the
 * batch ready to be written; l2_pseudo_batch_clear() starts the next. */
void l2_pseudo_batch_process(L2PseudoBatch *b);
void l2_pseudo_batch_clear(L2PseudoBatch *b);
/* Process n batches on up to `threads` threads, one batch per thread at a
 * time.  Call with OpenBLAS set to one thread: each batch is then computed
 * by the same single-threaded code whatever `threads` is, so the result is
 * bit-identical for every thread count (OpenBLAS's own threading is not). */
void l2_pseudo_batches_process(L2PseudoBatch **b, int n, int threads);
void l2_pseudo_batch_free(L2PseudoBatch *b);

/* ---- synthetic data (tests, tuning, benchmarks) ------------------------------------- */

/* Features with a modality gap: per item a semantic vector s (clustered
 * around one of `concepts` centres), image f = normalize(s + image noise +
 * image gap), caption t = normalize(s + text noise + text gap); cos(f, t) of
 * a pair is about 0.3 as with real CLIP.  Writes n image features f (n, D),
 * their own captions' features tstar (n, D), and a caption corpus of m
 * other items of the same concepts (m, D).  Deterministic in seed. */
void l2_pseudo_synthetic(int n, int m, int D, int concepts, uint64_t seed, float *f, float *tstar, float *corpus);
/* Exact top-K by cosine of each row of q (n, D) among c (m, D) (unit rows):
 * idx (n, K), score (n, K), best first. */
void l2_pseudo_topk(const float *q, int n, const float *c, int m, int D, int K, int *idx, float *score);

#endif
