/* parallel.h — l2's threads: a parallel-for, a pool of numbered workers, one
 * background task, and OpenBLAS's thread count.
 *
 *     static void rows(void *ctx, size_t i0, size_t i1) { ... rows i0 .. i1-1 ... }
 *     l2_parallel_for(n, 16, rows, &ctx);            // on l2_threads threads
 *
 *     static void work(void *ctx, int w) { ... claim work, scratch[w] ... }
 *     l2_parallel_workers(nw, work, &ctx);            // work(ctx, 0 .. nw-1), BLAS on 1 thread
 *
 *     L2Pool *p = l2_pool_new(nw, NULL);              // the same with threads kept between
 *     for (...) l2_pool_run(p, work, &ctx);           // calls (many small calls: a sampler)
 *     l2_pool_free(p);
 *
 * The calling thread always does a share (range 0, worker 0), so one thread
 * means no thread is created.
 *
 * Failure policy, the same everywhere: a thread that cannot be created is not
 * an error.  Its share runs on the calling thread once the others are
 * started (l2_parallel_for, l2_parallel_workers, every l2_pool_run of a pool
 * that could not start it), or at once (l2_task_start).  Results do not depend on which thread ran what, so they
 * stay the same; only time changes.  Work functions must therefore not wait
 * for each other (no barriers between workers).
 *
 * BLAS: a worker that calls SGEMM while OpenBLAS runs its own threads
 * oversubscribes the cores, so l2_parallel_workers runs OpenBLAS on one
 * thread while more than one worker runs and restores the count after.
 * l2_parallel_for leaves it alone: its range functions are element-wise
 * kernels.  OpenBLAS 0.3.21's SGEMM results do depend on its thread count
 * (1 and 2 threads differ in the last bits for most shapes), so a count is
 * always restored to exactly what it was: same settings, same bytes. */
#ifndef L2_PARALLEL_H
#define L2_PARALLEL_H

#include <stddef.h>

/* fn(ctx, i0, i1) over [0, n) in contiguous ranges of at least min_chunk
 * items, one per thread, on at most l2_threads (and 64) threads; serially
 * when n < 2 min_chunk or l2_threads is 1. */
typedef void (*L2ParallelFn)(void *ctx, size_t i0, size_t i1);
void l2_parallel_for(size_t n, size_t min_chunk, L2ParallelFn fn, void *ctx);

/* fn(ctx, w) once for each w in 0 .. nworkers-1, worker 0 on the calling
 * thread, each of the others on a thread of its own; returns when all have.
 * OpenBLAS runs on one thread meanwhile (when nworkers > 1). */
typedef void (*L2WorkerFn)(void *ctx, int worker);
void l2_parallel_workers(int nworkers, L2WorkerFn fn, void *ctx);

/* A pool of nworkers - 1 threads kept waiting between runs (worker 0 is the
 * caller): l2_parallel_workers without a thread creation per call.
 * thread_exit (may be NULL) runs on each pool thread as it ends, for
 * per-thread buffers.  One run at a time; fn must not call l2_pool_run. */
typedef struct L2Pool L2Pool;
L2Pool *l2_pool_new(int nworkers, void (*thread_exit)(void));
int l2_pool_workers(const L2Pool *p);
/* fn(ctx, w) once for each w in 0 .. nworkers-1; returns when all have.
 * OpenBLAS runs on one thread meanwhile (when nworkers > 1). */
void l2_pool_run(L2Pool *p, L2WorkerFn fn, void *ctx);
/* Ends the threads (after running thread_exit on each) and frees p; NULL is fine. */
void l2_pool_free(L2Pool *p);

/* fn(arg) on a thread of its own beside the caller's work; l2_task_join
 * waits for it.  Runs fn at once, on the caller, if no thread can start. */
typedef struct L2Task L2Task;
L2Task *l2_task_start(void (*fn)(void *arg), void *arg);
void l2_task_join(L2Task *t);

/* Set OpenBLAS's thread count (at least 1); returns the count it had.
 *     int was = l2_blas_threads(1); ... single-threaded GEMMs ...; l2_blas_threads(was); */
int l2_blas_threads(int n);

#endif
