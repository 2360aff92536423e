/* parallel.c — parallel-for, numbered workers, a pool, a background task, BLAS threads (see parallel.h). */
#include "core/parallel.h"
#include "core/util.h"

#include <cblas.h> /* OpenBLAS's: declares openblas_set_num_threads / _get_ */
#include <pthread.h>
#include <stdlib.h>

int l2_blas_threads(int n)
{
	int was = openblas_get_num_threads();
	openblas_set_num_threads(n > 0 ? n : 1);
	return was;
}

/* ---- parallel-for ------------------------------------------------------------- */

#define MAX_RANGES 64

typedef struct {
	L2ParallelFn fn;
	void *ctx;
	size_t i0, i1;
} Range;

static void *range_main(void *p)
{
	Range *r = p;
	r->fn(r->ctx, r->i0, r->i1);
	return NULL;
}

void l2_parallel_for(size_t n, size_t min_chunk, L2ParallelFn fn, void *ctx)
{
	int nt = l2_threads > 0 ? l2_threads : 1;
	if (min_chunk < 1) min_chunk = 1;
	if ((size_t)nt > n / min_chunk) nt = (int)(n / min_chunk);
	if (nt > MAX_RANGES) nt = MAX_RANGES;
	if (nt <= 1) {
		if (n) fn(ctx, 0, n);
		return;
	}
	Range r[MAX_RANGES];
	pthread_t th[MAX_RANGES];
	int started[MAX_RANGES] = {0};
	for (int t = 0; t < nt; t++) r[t] = (Range){fn, ctx, n * t / nt, n * (t + 1) / nt};
	for (int t = 1; t < nt; t++) started[t] = pthread_create(&th[t], NULL, range_main, &r[t]) == 0;
	fn(ctx, r[0].i0, r[0].i1);
	for (int t = 1; t < nt; t++)
		if (!started[t]) fn(ctx, r[t].i0, r[t].i1); /* its thread could not start */
	for (int t = 1; t < nt; t++)
		if (started[t]) pthread_join(th[t], NULL);
}

/* ---- numbered workers --------------------------------------------------------- */

typedef struct {
	L2WorkerFn fn;
	void *ctx;
	int w;
	int started;
	pthread_t th;
} Worker;

static void *worker_main(void *p)
{
	Worker *k = p;
	k->fn(k->ctx, k->w);
	return NULL;
}

void l2_parallel_workers(int nworkers, L2WorkerFn fn, void *ctx)
{
	if (nworkers <= 1) {
		if (nworkers == 1) fn(ctx, 0);
		return;
	}
	int blas_was = l2_blas_threads(1);
	Worker *k = l2_calloc((size_t)nworkers, sizeof *k);
	for (int w = 0; w < nworkers; w++) {
		k[w].fn = fn;
		k[w].ctx = ctx;
		k[w].w = w;
	}
	for (int w = 1; w < nworkers; w++) k[w].started = pthread_create(&k[w].th, NULL, worker_main, &k[w]) == 0;
	fn(ctx, 0);
	for (int w = 1; w < nworkers; w++)
		if (!k[w].started) fn(ctx, w); /* its thread could not start */
	for (int w = 1; w < nworkers; w++)
		if (k[w].started) pthread_join(k[w].th, NULL);
	free(k);
	l2_blas_threads(blas_was);
}

/* ---- a pool of waiting workers -------------------------------------------------------- */

struct L2Pool {
	int n;                    /* workers, the caller included */
	Worker *k;                /* (n): fn/ctx of the current run; started */
	void (*thread_exit)(void);
	pthread_mutex_t mu;
	pthread_cond_t go, done;
	unsigned long gen;        /* runs handed out so far */
	int ndone, quit;
};

typedef struct {
	L2Pool *p;
	int w;
} PoolArg;

static void *pool_main(void *arg)
{
	L2Pool *p = ((PoolArg *)arg)->p;
	int w = ((PoolArg *)arg)->w;
	free(arg);
	unsigned long seen = 0;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->gen == seen && !p->quit) pthread_cond_wait(&p->go, &p->mu);
		if (p->quit) break;
		seen = p->gen;
		pthread_mutex_unlock(&p->mu);
		p->k[w].fn(p->k[w].ctx, w);
		pthread_mutex_lock(&p->mu);
		p->ndone++;
		pthread_cond_signal(&p->done);
	}
	pthread_mutex_unlock(&p->mu);
	if (p->thread_exit) p->thread_exit();
	return NULL;
}

L2Pool *l2_pool_new(int nworkers, void (*thread_exit)(void))
{
	L2Pool *p = l2_calloc(1, sizeof *p);
	p->n = nworkers > 1 ? nworkers : 1;
	p->k = l2_calloc((size_t)p->n, sizeof *p->k);
	p->thread_exit = thread_exit;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->go, NULL);
	pthread_cond_init(&p->done, NULL);
	for (int w = 1; w < p->n; w++) {
		PoolArg *a = l2_malloc(sizeof *a);
		*a = (PoolArg){p, w};
		p->k[w].started = pthread_create(&p->k[w].th, NULL, pool_main, a) == 0;
		if (!p->k[w].started) free(a);
	}
	return p;
}

int l2_pool_workers(const L2Pool *p) { return p->n; }

void l2_pool_run(L2Pool *p, L2WorkerFn fn, void *ctx)
{
	if (p->n == 1) {
		fn(ctx, 0);
		return;
	}
	int blas_was = l2_blas_threads(1), nstarted = 0;
	pthread_mutex_lock(&p->mu);
	for (int w = 0; w < p->n; w++) {
		p->k[w].fn = fn;
		p->k[w].ctx = ctx;
		nstarted += w > 0 && p->k[w].started;
	}
	p->ndone = 0;
	p->gen++;
	pthread_cond_broadcast(&p->go);
	pthread_mutex_unlock(&p->mu);
	fn(ctx, 0);
	for (int w = 1; w < p->n; w++)
		if (!p->k[w].started) fn(ctx, w); /* its thread could not start */
	pthread_mutex_lock(&p->mu);
	while (p->ndone < nstarted) pthread_cond_wait(&p->done, &p->mu);
	pthread_mutex_unlock(&p->mu);
	l2_blas_threads(blas_was);
}

void l2_pool_free(L2Pool *p)
{
	if (!p) return;
	pthread_mutex_lock(&p->mu);
	p->quit = 1;
	pthread_cond_broadcast(&p->go);
	pthread_mutex_unlock(&p->mu);
	for (int w = 1; w < p->n; w++)
		if (p->k[w].started) pthread_join(p->k[w].th, NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->go);
	pthread_cond_destroy(&p->done);
	free(p->k);
	free(p);
}

/* ---- a background task ---------------------------------------------------------- */

struct L2Task {
	void (*fn)(void *);
	void *arg;
	int started;
	pthread_t th;
};

static void *task_main(void *p)
{
	L2Task *t = p;
	t->fn(t->arg);
	return NULL;
}

L2Task *l2_task_start(void (*fn)(void *arg), void *arg)
{
	L2Task *t = l2_calloc(1, sizeof *t);
	t->fn = fn;
	t->arg = arg;
	t->started = pthread_create(&t->th, NULL, task_main, t) == 0;
	if (!t->started) fn(arg);
	return t;
}

void l2_task_join(L2Task *t)
{
	if (!t) return;
	if (t->started) pthread_join(t->th, NULL);
	free(t);
}
