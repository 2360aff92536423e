/* test_parallel.c — lib/core/parallel.c: every index and every worker exactly once, for
 * any thread count, in one-shot regions and in a pool kept across runs; the same when
 * threads cannot be created (the failure policy: their share runs on the caller);
 * OpenBLAS's thread count restored exactly. */
#include "check.h"
#include "core/parallel.h"
#include "core/util.h"

#include <cblas.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>

/* pthread_create that fails while fail_creates > 0 (counting down), so the
 * library's calls can be made to fail; otherwise the real one. */
static atomic_int fail_creates;
int pthread_create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
	if (atomic_fetch_sub(&fail_creates, 1) > 0) return 11; /* EAGAIN */
	atomic_store(&fail_creates, 0);
	static int (*real)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
	if (!real) *(void **)&real = dlsym(RTLD_NEXT, "pthread_create");
	return real(th, attr, fn, arg);
}

static atomic_int hits[1000];

static void count_range(void *ctx, size_t i0, size_t i1)
{
	CHECK(i0 < i1);
	for (size_t i = i0; i < i1; i++) atomic_fetch_add(&hits[i], 1);
}

static int each_once(size_t n)
{
	int ok = 1;
	for (size_t i = 0; i < n; i++) ok &= atomic_exchange(&hits[i], 0) == 1;
	for (size_t i = n; i < 1000; i++) ok &= atomic_load(&hits[i]) == 0;
	return ok;
}

static void test_for_covers_every_index_once(void)
{
	size_t ns[] = {0, 1, 2, 7, 64, 999, 1000};
	size_t chunks[] = {0, 1, 3, 100};
	int threads[] = {1, 2, 3, 8, 100};
	for (int a = 0; a < 7; a++)
		for (int b = 0; b < 4; b++)
			for (int c = 0; c < 5; c++) {
				l2_threads = threads[c];
				l2_parallel_for(ns[a], chunks[b], count_range, NULL);
				CHECK_MSG(each_once(ns[a]), "n %zu chunk %zu threads %d", ns[a], chunks[b], threads[c]);
			}
	l2_threads = 1;
}

static int blas_inside[64];

static void count_worker(void *ctx, int w)
{
	atomic_fetch_add(&hits[w], 1);
	blas_inside[w] = openblas_get_num_threads();
}

static void test_workers_each_once_with_blas_on_one_thread(void)
{
	for (int n = 0; n <= 40; n += n < 4 ? 1 : 9) {
		l2_blas_threads(2);
		l2_parallel_workers(n, count_worker, NULL);
		CHECK_MSG(each_once((size_t)n), "%d workers", n);
		for (int w = 0; w < n && n > 1; w++) CHECK(blas_inside[w] == 1);
		CHECK(openblas_get_num_threads() == 2);
	}
	CHECK(l2_blas_threads(1) == 2);
	CHECK(l2_blas_threads(0) == 1); /* at least one */
	CHECK(openblas_get_num_threads() == 1);
}

static void test_threads_that_cannot_start_run_on_the_caller(void)
{
	l2_threads = 4;
	atomic_store(&fail_creates, 2); /* the first two of three creations fail */
	l2_parallel_for(100, 1, count_range, NULL);
	CHECK(each_once(100));
	CHECK(atomic_load(&fail_creates) == 0); /* both failures happened, then one real thread */
	atomic_store(&fail_creates, 1000);
	l2_parallel_for(100, 1, count_range, NULL);
	CHECK(each_once(100));
	CHECK(atomic_load(&fail_creates) == 997); /* no thread at all */
	atomic_store(&fail_creates, 3);
	l2_parallel_workers(7, count_worker, NULL);
	CHECK(each_once(7));
	atomic_store(&fail_creates, 0);
	l2_threads = 1;
}

static atomic_int exits;
static void count_exit(void) { atomic_fetch_add(&exits, 1); }

static void test_pool_runs_each_worker_once_per_run(void)
{
	for (int n = 1; n <= 9; n += 4) {
		atomic_store(&exits, 0);
		atomic_store(&fail_creates, n == 9 ? 3 : 0); /* 9 workers: 3 threads fail to start */
		L2Pool *p = l2_pool_new(n, count_exit);
		atomic_store(&fail_creates, 0);
		CHECK(l2_pool_workers(p) == n);
		for (int run = 0; run < 50; run++) {
			l2_blas_threads(2);
			l2_pool_run(p, count_worker, NULL);
			CHECK_MSG(each_once((size_t)n), "%d workers, run %d", n, run);
			CHECK(openblas_get_num_threads() == 2);
			for (int w = 0; w < n && n > 1; w++) CHECK(blas_inside[w] == 1);
		}
		l2_pool_free(p);
		CHECK_MSG(atomic_load(&exits) == (n == 9 ? 5 : n - 1), "%d thread exits for %d workers", atomic_load(&exits), n);
	}
	l2_pool_free(NULL);
}

static void set_flag(void *arg) { *(int *)arg = 42; }

static void test_task_runs_once_started_or_not(void)
{
	int v = 0;
	L2Task *t = l2_task_start(set_flag, &v);
	l2_task_join(t);
	CHECK(v == 42);
	v = 0;
	atomic_store(&fail_creates, 1);
	t = l2_task_start(set_flag, &v);
	CHECK(v == 42); /* ran at once, on the caller */
	l2_task_join(t);
	CHECK(v == 42);
	l2_task_join(NULL);
}

int main(void)
{
	RUN(test_for_covers_every_index_once);
	RUN(test_workers_each_once_with_blas_on_one_thread);
	RUN(test_threads_that_cannot_start_run_on_the_caller);
	RUN(test_pool_runs_each_worker_once_per_run);
	RUN(test_task_runs_once_started_or_not);
	return check_done();
}
