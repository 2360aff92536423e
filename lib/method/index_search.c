/* index_search.c — exact and IVF search kernels (see index_search.h; the index format is
 * index.c). */
#include "method/index_search.h"
#include "method/index.h"
#include "core/parallel.h"
#include "core/util.h"
#include "core/vec.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

typedef L2IndexRows Rows;

#define TILE 1024u     /* stored rows per GEMM */
#define QTILE 512u     /* queries per GEMM */

/* ---- candidate pools: per query a min-heap of the best P (score, id) ------------
 * "Worse" = lower score, or the same score and a higher id; the root is the
 * worst kept, so a newcomer enters when it beats the root. */

typedef struct {
	uint32_t P;
	float *v;    /* (nq, P) */
	uint64_t *id; /* (nq, P) */
	uint32_t *n; /* (nq) */
} Pools;

/* Per-thread scratch kept from one search to the next: fresh pages cost a
 * fault each (dear in a VM), and a tool searches batch after batch.  So a
 * search is not reentrant: one at a time per process. */
typedef struct {
	void *p;
	size_t cap;
} Buf;
static void *buf_get(Buf *b, size_t n)
{
	if (n > b->cap) {
		l2_free_aligned(b->p);
		b->p = l2_malloc_aligned(n);
		b->cap = n;
	}
	return b->p;
}
typedef struct {
	Buf C, X, Q, pv, pid, pn;
} Scratch;
#define MAX_THREADS 1024
static Scratch scratch[MAX_THREADS], probe_scratch;

static void buf_free(Buf *b)
{
	l2_free_aligned(b->p);
	b->p = NULL;
	b->cap = 0;
}
static void scratch_free(Scratch *s)
{
	buf_free(&s->C), buf_free(&s->X), buf_free(&s->Q);
	buf_free(&s->pv), buf_free(&s->pid), buf_free(&s->pn);
}
void l2_index_search_free_scratch(void)
{
	for (int t = 0; t < MAX_THREADS; t++) scratch_free(&scratch[t]);
	scratch_free(&probe_scratch);
}

/* Pools in scratch s (not to be freed). */
static void pools_scratch(Pools *p, Scratch *s, size_t nq, uint32_t P)
{
	p->P = P;
	p->v = buf_get(&s->pv, l2_mul_size(l2_mul_size(nq, P), sizeof(float)));
	p->id = buf_get(&s->pid, l2_mul_size(l2_mul_size(nq, P), sizeof(uint64_t)));
	p->n = buf_get(&s->pn, (nq ? nq : 1) * sizeof(uint32_t));
	memset(p->n, 0, (nq ? nq : 1) * sizeof(uint32_t));
}

static inline int worse(float a, uint64_t ia, float b, uint64_t ib) { return a < b || (a == b && ia > ib); }

/* Insert into pool i; returns the new admission threshold. */
static float pool_push(Pools *p, size_t i, float s, uint64_t id)
{
	uint32_t P = p->P, n = p->n[i];
	float *v = p->v + i * P;
	uint64_t *ids = p->id + i * P;
	if (n < P) { /* sift up */
		uint32_t c = n++;
		while (c > 0) {
			uint32_t par = (c - 1) / 2;
			if (!worse(s, id, v[par], ids[par])) break;
			v[c] = v[par], ids[c] = ids[par];
			c = par;
		}
		v[c] = s, ids[c] = id;
		p->n[i] = n;
		return n < P ? -INFINITY : v[0];
	}
	if (worse(s, id, v[0], ids[0]) || (s == v[0] && id == ids[0])) return v[0];
	uint32_t c = 0; /* replace the root, sift down */
	for (;;) {
		uint32_t l = 2 * c + 1, r = l + 1, m = c;
		float mv = s;
		uint64_t mi = id;
		if (l < P && worse(v[l], ids[l], mv, mi)) m = l, mv = v[l], mi = ids[l];
		if (r < P && worse(v[r], ids[r], mv, mi)) m = r;
		if (m == c) break;
		v[c] = v[m], ids[c] = ids[m];
		c = m;
	}
	v[c] = s, ids[c] = id;
	return v[0];
}

/* Offer scores s (n) of rows base + j (or idmap[j]) to pool i. */
static void scan_row(Pools *p, size_t i, const float *s, size_t n, uint64_t base, const uint64_t *idmap)
{
	float thr = p->n[i] < p->P ? -INFINITY : p->v[i * p->P];
	size_t j = 0;
#define OFFER(jj) do { if (s[jj] >= thr) thr = pool_push(p, i, s[jj], idmap ? idmap[jj] : base + (jj)); } while (0)
#if defined(__AVX512F__)
	for (; j + 16 <= n; j += 16) {
		__mmask16 m = _mm512_cmp_ps_mask(_mm512_loadu_ps(s + j), _mm512_set1_ps(thr), _CMP_GE_OQ);
		while (m) {
			unsigned b = (unsigned)__builtin_ctz(m);
			m &= (__mmask16)(m - 1);
			OFFER(j + b);
		}
	}
#elif defined(__AVX2__)
	for (; j + 8 <= n; j += 8) {
		unsigned m = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(s + j), _mm256_set1_ps(thr), _CMP_GE_OQ));
		while (m) {
			unsigned b = (unsigned)__builtin_ctz(m);
			m &= m - 1;
			OFFER(j + b);
		}
	}
#endif
	for (; j < n; j++) OFFER(j);
#undef OFFER
}

/* ---- rows: where the vectors are ------------------------------------------------ */

static inline const void *row_ptr(const Rows *R, uint64_t id)
{
	uint64_t b = id / R->stride, r = id % R->stride;
	return (const char *)R->blk[b] + r * R->d * (R->f16 ? 2 : 4);
}
void l2_index_row_to_float(const Rows *R, uint64_t id, float *out)
{
	if (R->f16) l2_half_to_float_row(row_ptr(R, id), out, R->d);
	else memcpy(out, row_ptr(R, id), R->d * sizeof(float));
}
static double dot_row_double(const Rows *R, uint64_t id, const float *q)
{
	size_t d = R->d;
	double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
	size_t j = 0;
	if (R->f16) {
		const uint16_t *x = row_ptr(R, id);
		float buf[256];
		for (size_t j0 = 0; j0 < d; j0 += 256) {
			size_t m = d - j0 < 256 ? d - j0 : 256;
			l2_half_to_float_row(x + j0, buf, m);
			for (j = 0; j < m; j++) a0 += (double)buf[j] * q[j0 + j];
		}
		return a0;
	}
	const float *x = row_ptr(R, id);
	for (; j + 4 <= d; j += 4) {
		a0 += (double)x[j] * q[j];
		a1 += (double)x[j + 1] * q[j + 1];
		a2 += (double)x[j + 2] * q[j + 2];
		a3 += (double)x[j + 3] * q[j + 3];
	}
	for (; j < d; j++) a0 += (double)x[j] * q[j];
	return (a0 + a1) + (a2 + a3);
}

/* ---- merging pools: float64 rescoring --------------------------------------------- */

typedef struct {
	double s;
	float f;
	uint64_t id;
} Cand;
static int cand_by_f32(const void *a, const void *b)
{
	const Cand *x = a, *y = b;
	if (x->f != y->f) return x->f > y->f ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}
static int cand_by_f64(const void *a, const void *b)
{
	const Cand *x = a, *y = b;
	if (x->s != y->s) return x->s > y->s ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

typedef struct {
	const Rows *R;
	const float *q;
	size_t nq;
	uint32_t k;
	Pools *pools;
	int npools;
	uint64_t *ids;
	float *scores;
	unsigned char *short_; /* (nq) set when fewer than k candidates came */
	size_t next;
} MergeCtx;

static void merge_worker(void *vctx, int tid)
{
	MergeCtx *c = vctx;
	uint32_t P = c->pools[0].P;
	Cand *cand = l2_malloc(l2_mul_size((size_t)c->npools * P, sizeof(Cand)));
	for (;;) {
		size_t i0 = __atomic_fetch_add(&c->next, 64, __ATOMIC_RELAXED);
		if (i0 >= c->nq) break;
		size_t i1 = i0 + 64 < c->nq ? i0 + 64 : c->nq;
		for (size_t i = i0; i < i1; i++) {
			size_t m = 0;
			for (int t = 0; t < c->npools; t++) {
				Pools *p = &c->pools[t];
				for (uint32_t j = 0; j < p->n[i]; j++)
					cand[m++] = (Cand){0, p->v[i * P + j], p->id[i * P + j]};
			}
			if (m < c->k) {
				c->short_[i] = 1;
				continue;
			}
			qsort(cand, m, sizeof *cand, cand_by_f32);
			if (m > P) m = P;
			const float *qi = c->q + i * c->R->d;
			if (c->R->max_norm > 0) {
				/* |float32 score - exact| <= d 2^-24 |q| |x| (sums of d products);
				 * a candidate more than twice that below the k-th float32 score
				 * is provably outside the top k: leave it out of the rescoring. */
				double qn = 0;
				for (size_t j = 0; j < c->R->d; j++) qn += (double)qi[j] * qi[j];
				double err = (double)c->R->d * 0x1p-23 * sqrt(qn) * c->R->max_norm;
				double cut = cand[c->k - 1].f - 2 * err;
				while (m > c->k && cand[m - 1].f < cut) m--;
			}
			for (size_t j = 0; j < m; j++) cand[j].s = dot_row_double(c->R, cand[j].id, qi);
			qsort(cand, m, sizeof *cand, cand_by_f64);
			for (uint32_t j = 0; j < c->k; j++) {
				c->ids[i * c->k + j] = cand[j].id;
				c->scores[i * c->k + j] = (float)cand[j].s;
			}
		}
	}
	free(cand);
}

/* Returns the number of queries that got fewer than k candidates (flagged). */
static size_t merge_pools(const Rows *R, const float *q, size_t nq, uint32_t k, Pools *pools, int npools,
			  uint64_t *ids, float *scores, unsigned char *short_)
{
	MergeCtx c = {R, q, nq, k, pools, npools, ids, scores, short_, 0};
	memset(short_, 0, nq);
	int nt = l2_threads < (int)((nq + 63) / 64) ? l2_threads : (int)((nq + 63) / 64);
	l2_parallel_workers(nt, merge_worker, &c);
	size_t n = 0;
	for (size_t i = 0; i < nq; i++) n += short_[i];
	return n;
}

static uint32_t pool_size(uint32_t k, uint64_t count)
{
	/* The float32 scores decide which candidates reach float64 rescoring;
	 * the margin absorbs their rounding (about 1e-7 relative). */
	uint64_t P = (uint64_t)k + 16 + k / 8;
	return (uint32_t)(P < count ? P : count);
}

/* ---- exact search ---------------------------------------------------------------- */

typedef struct {
	const Rows *R;
	const float *q;
	size_t nq;
	size_t ntasks;
	uint64_t *task_id;   /* (ntasks) first row id of each tile */
	uint32_t *task_rows; /* (ntasks) */
	Pools *pools;        /* (threads) */
	size_t next;
} ExactCtx;

static void exact_worker(void *vctx, int tid)
{
	ExactCtx *c = vctx;
	const Rows *R = c->R;
	size_t d = R->d;
	Pools *pool = &c->pools[tid];
	float *C = buf_get(&scratch[tid].C, (size_t)QTILE * TILE * sizeof(float));
	float *conv = R->f16 ? buf_get(&scratch[tid].X, (size_t)TILE * d * sizeof(float)) : NULL;
	for (;;) {
		size_t t = __atomic_fetch_add(&c->next, 1, __ATOMIC_RELAXED);
		if (t >= c->ntasks) break;
		uint64_t id0 = c->task_id[t];
		size_t nr = c->task_rows[t];
		const float *X;
		if (R->f16) {
			const uint16_t *h = row_ptr(R, id0);
			for (size_t r = 0; r < nr; r++) l2_half_to_float_row(h + r * d, conv + r * d, d);
			X = conv;
		} else X = row_ptr(R, id0);
		for (size_t q0 = 0; q0 < c->nq; q0 += QTILE) {
			size_t nqt = c->nq - q0 < QTILE ? c->nq - q0 : QTILE;
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nqt, (int)nr, (int)d, 1.0f, c->q + q0 * d,
				    (int)d, X, (int)d, 0.0f, C, (int)nr);
			for (size_t i = 0; i < nqt; i++) scan_row(pool, q0 + i, C + i * nr, nr, id0, NULL);
		}
	}
}

void l2_index_search_exact(const Rows *R, const float *q, size_t nq, uint32_t k, uint64_t *ids, float *scores)
{
	if (!nq) return;
	size_t ntasks = 0;
	for (size_t b = 0; b < R->nblocks; b++) ntasks += (R->blk_rows[b] + TILE - 1) / TILE;
	ExactCtx c = {R, q, nq, 0, l2_malloc(ntasks * sizeof(uint64_t)), l2_malloc(ntasks * sizeof(uint32_t)), NULL, 0};
	for (size_t b = 0; b < R->nblocks; b++)
		for (uint32_t r = 0; r < R->blk_rows[b]; r += TILE) {
			c.task_id[c.ntasks] = b * R->stride + r;
			c.task_rows[c.ntasks++] = R->blk_rows[b] - r < TILE ? R->blk_rows[b] - r : TILE;
		}
	int nt = l2_threads < (int)ntasks ? l2_threads : (int)ntasks;
	if (nt < 1) nt = 1;
	uint32_t P = pool_size(k, R->count);
	Pools *pools = l2_malloc(nt * sizeof *pools);
	for (int t = 0; t < nt; t++) pools_scratch(&pools[t], &scratch[t], nq, P);
	c.pools = pools;
	l2_parallel_workers(nt, exact_worker, &c);
	unsigned char *short_ = l2_malloc(nq);
	size_t nshort = merge_pools(R, q, nq, k, pools, nt, ids, scores, short_);
	if (nshort) l2_die("internal error: exact search found fewer than %u rows", k);
	free(short_);
	free(pools);
	free(c.task_id);
	free(c.task_rows);
}

void l2_topk_exact(const float *x, size_t n, size_t d, const float *q, size_t nq, uint32_t k, uint64_t *ids,
		   float *scores)
{
	if (k < 1 || k > n) l2_die("internal error: k = %u for %zu rows", k, n);
	const void *blk[1] = {x};
	uint32_t rows[1] = {(uint32_t)n};
	if (n > UINT32_MAX) l2_die("internal error: too many rows for one block");
	Rows R = {d, 0, 1, blk, rows, n, n, 0};
	l2_index_search_exact(&R, q, nq, k, ids, scores);
}

/* ---- IVF search ------------------------------------------------------------------- */

typedef struct {
	const Rows *R;
	const float *q;
	size_t nq;
	const uint64_t *list_off, *list_ids; /* CSR: rows of each list */
	const size_t *ql_off;                /* CSR: queries probing each list */
	const uint32_t *ql;
	const uint32_t *tasks; /* lists to scan, biggest first */
	size_t ntasks;
	Pools *pools;
	size_t next;
} IvfCtx;

static void ivf_worker(void *vctx, int tid)
{
	IvfCtx *c = vctx;
	const Rows *R = c->R;
	size_t d = R->d;
	Pools *pool = &c->pools[tid];
	float *C = buf_get(&scratch[tid].C, (size_t)QTILE * TILE * sizeof(float));
	float *X = buf_get(&scratch[tid].X, (size_t)TILE * d * sizeof(float));
	float *Q = buf_get(&scratch[tid].Q, (size_t)QTILE * d * sizeof(float));
	for (;;) {
		size_t t = __atomic_fetch_add(&c->next, 1, __ATOMIC_RELAXED);
		if (t >= c->ntasks) break;
		uint32_t l = c->tasks[t];
		const uint64_t *lid = c->list_ids + c->list_off[l];
		size_t nl = c->list_off[l + 1] - c->list_off[l];
		const uint32_t *qs = c->ql + c->ql_off[l];
		size_t nql = c->ql_off[l + 1] - c->ql_off[l];
		for (size_t q0 = 0; q0 < nql; q0 += QTILE) {
			size_t nqt = nql - q0 < QTILE ? nql - q0 : QTILE;
			for (size_t i = 0; i < nqt; i++) memcpy(Q + i * d, c->q + (size_t)qs[q0 + i] * d, d * sizeof(float));
			for (size_t r0 = 0; r0 < nl; r0 += TILE) {
				size_t nr = nl - r0 < TILE ? nl - r0 : TILE;
				for (size_t r = 0; r < nr; r++) l2_index_row_to_float(R, lid[r0 + r], X + r * d);
				cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nqt, (int)nr, (int)d, 1.0f, Q, (int)d, X,
					    (int)d, 0.0f, C, (int)nr);
				for (size_t i = 0; i < nqt; i++) scan_row(pool, qs[q0 + i], C + i * nr, nr, 0, lid + r0);
			}
		}
	}
}

typedef struct {
	const float *q;
	size_t nq, d;
	const float *cent;
	uint32_t nlist;
	Pools *probe;
	size_t next;
} ProbeCtx;

/* Query-centroid scores a tile of queries at a time, into the probe pools. */
static void probe_worker(void *vctx, int tid)
{
	ProbeCtx *c = vctx;
	float *S = buf_get(&scratch[tid].C, (size_t)QTILE * c->nlist * sizeof(float));
	for (;;) {
		size_t q0 = __atomic_fetch_add(&c->next, QTILE, __ATOMIC_RELAXED);
		if (q0 >= c->nq) break;
		size_t nqt = c->nq - q0 < QTILE ? c->nq - q0 : QTILE;
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nqt, (int)c->nlist, (int)c->d, 1.0f,
			    c->q + q0 * c->d, (int)c->d, c->cent, (int)c->d, 0.0f, S, (int)c->nlist);
		for (size_t i = 0; i < nqt; i++) scan_row(c->probe, q0 + i, S + i * c->nlist, c->nlist, 0, NULL);
	}
}

static const uint64_t *sort_key_off; /* for ordering tasks by work (single use, main thread) */
static const size_t *sort_ql_off;
static int task_by_work(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	double wx = (double)(sort_key_off[x + 1] - sort_key_off[x]) * (double)(sort_ql_off[x + 1] - sort_ql_off[x]);
	double wy = (double)(sort_key_off[y + 1] - sort_key_off[y]) * (double)(sort_ql_off[y + 1] - sort_ql_off[y]);
	if (wx != wy) return wx > wy ? -1 : 1;
	return x < y ? -1 : x > y;
}

void l2_index_search_ivf(const Rows *R, const float *cent, uint32_t nlist, const uint64_t *list_off,
			 const uint64_t *list_ids, const float *q, size_t nq, uint32_t k, uint32_t nprobe, uint64_t *ids,
			 float *scores)
{
	if (!nq) return;
	size_t d = R->d;
	if (nprobe > nlist) nprobe = nlist;
	/* the nprobe best lists of each query */
	Pools probe;
	pools_scratch(&probe, &probe_scratch, nq, nprobe);
	ProbeCtx pc = {q, nq, d, cent, nlist, &probe, 0};
	int npt = l2_threads < (int)((nq + QTILE - 1) / QTILE) ? l2_threads : (int)((nq + QTILE - 1) / QTILE);
	l2_parallel_workers(npt, probe_worker, &pc);
	size_t *ql_off = l2_calloc(nlist + 1, sizeof(size_t));
	for (size_t i = 0; i < nq; i++)
		for (uint32_t j = 0; j < probe.n[i]; j++) ql_off[probe.id[i * nprobe + j] + 1]++;
	for (uint32_t l = 0; l < nlist; l++) ql_off[l + 1] += ql_off[l];
	uint32_t *ql = l2_malloc(l2_mul_size(ql_off[nlist] ? ql_off[nlist] : 1, sizeof(uint32_t)));
	size_t *fill = l2_malloc((nlist + 1) * sizeof(size_t));
	memcpy(fill, ql_off, (nlist + 1) * sizeof(size_t));
	for (size_t i = 0; i < nq; i++) /* queries in increasing order within each list */
		for (uint32_t j = 0; j < probe.n[i]; j++) ql[fill[probe.id[i * nprobe + j]]++] = (uint32_t)i;
	free(fill);
	uint32_t *tasks = l2_malloc(nlist * sizeof(uint32_t));
	size_t ntasks = 0;
	for (uint32_t l = 0; l < nlist; l++)
		if (ql_off[l + 1] > ql_off[l] && list_off[l + 1] > list_off[l]) tasks[ntasks++] = l;
	sort_key_off = list_off, sort_ql_off = ql_off;
	qsort(tasks, ntasks, sizeof *tasks, task_by_work);

	int nt = l2_threads < (int)ntasks ? l2_threads : (int)ntasks;
	if (nt < 1) nt = 1;
	uint32_t P = pool_size(k, R->count);
	Pools *pools = l2_malloc(nt * sizeof *pools);
	for (int t = 0; t < nt; t++) pools_scratch(&pools[t], &scratch[t], nq, P);
	IvfCtx c = {R, q, nq, list_off, list_ids, ql_off, ql, tasks, ntasks, pools, 0};
	l2_parallel_workers(nt, ivf_worker, &c);
	unsigned char *short_ = l2_malloc(nq);
	size_t nshort = merge_pools(R, q, nq, k, pools, nt, ids, scores, short_);
	if (nshort) { /* the probed lists held fewer than k rows: search those queries exactly */
		float *q2 = l2_malloc(l2_mul_size(l2_mul_size(nshort, d), sizeof(float)));
		uint64_t *ids2 = l2_malloc(l2_mul_size(l2_mul_size(nshort, k), sizeof(uint64_t)));
		float *s2 = l2_malloc(l2_mul_size(l2_mul_size(nshort, k), sizeof(float)));
		size_t m = 0;
		for (size_t i = 0; i < nq; i++)
			if (short_[i]) memcpy(q2 + m++ * d, q + i * d, d * sizeof(float));
		l2_index_search_exact(R, q2, nshort, k, ids2, s2);
		m = 0;
		for (size_t i = 0; i < nq; i++)
			if (short_[i]) {
				memcpy(ids + i * k, ids2 + m * k, k * sizeof(uint64_t));
				memcpy(scores + i * k, s2 + m * k, k * sizeof(float));
				m++;
			}
		free(q2);
		free(ids2);
		free(s2);
	}
	free(short_);
	free(pools);
	free(tasks);
	free(ql);
	free(ql_off);
}
