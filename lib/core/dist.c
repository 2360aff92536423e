/* dist.c — ranks and ordered collectives (see dist.h). */
#include "core/dist.h"
#include "core/parallel.h"
#include "core/util.h"

#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- what the launcher says ------------------------------------------------------ */

static int env_int(const char *name, int *v)
{
	const char *s = getenv(name);
	if (!s || !*s) return 0;
	char *end;
	long x = strtol(s, &end, 10);
	if (*end || x < 0 || x > INT_MAX) return 0;
	*v = (int)x;
	return 1;
}

int l2_dist_env(int *rank, int *size, const char **var)
{
	*rank = 0;
	*size = 1;
	*var = "";
	int r = 0, s = 0;
	if (env_int("OMPI_COMM_WORLD_SIZE", &s)) {
		env_int("OMPI_COMM_WORLD_RANK", &r);
		*var = "OMPI_COMM_WORLD_SIZE";
	} else if (env_int("PMI_SIZE", &s)) {
		env_int("PMI_RANK", &r);
		*var = "PMI_SIZE";
	} else if (env_int("PMIX_RANK", &r)) {
		/* PMIx gives the rank only: Slurm's task count, else MPI_Init tells */
		if (!env_int("SLURM_NTASKS", &s)) s = 0;
		*var = "PMIX_RANK";
	} else {
		return 1;
	}
	*rank = r;
	*size = s;
	return s;
}

/* ---- libl2mpi.so ------------------------------------------------------------------ */

#ifdef L2_MPI
#include <dlfcn.h>

static struct {
	int (*init)(int *, int *, int *, int *, char *, int);
	void (*alltoallv)(const void *, const int *, const int *, void *, const int *, const int *);
	void (*allgatherv)(const void *, int, void *, const int *, const int *);
	void (*bcast)(void *, int);
	int (*any)(int);
	void (*barrier)(void);
	void (*abort)(int);
	void (*finalize)(void);
} mpi;

/* $L2_MPI_LIB when set, else libl2mpi.so beside the program, else
 * ../lib/l2/ (as lib/core/device.c finds libl2cuda.so).  0 and *why on
 * failure. */
static int load_mpi(char *why, size_t n)
{
	void *h = NULL;
	const char *env = getenv("L2_MPI_LIB");
	char tried[600] = "";
	int only_env = env && *env; /* $L2_MPI_LIB alone when set */
	for (int i = only_env ? -1 : 0; !h && i < (only_env ? 0 : 2); i++) {
		char *p = i < 0 ? l2_strdup(env) : l2_exe_path(i ? "../lib/l2/libl2mpi.so" : "libl2mpi.so");
		if (!p) continue;
		h = dlopen(p, RTLD_NOW | RTLD_GLOBAL);
		if (!h && (i < 0 || !tried[0])) snprintf(tried, sizeof tried, "%.200s: %.300s", p, dlerror());
		free(p);
	}
	if (!h) {
		snprintf(why, n, "cannot load libl2mpi.so (%s)", tried);
		return 0;
	}
#define SYM(f) (*(void **)&mpi.f = dlsym(h, "l2mpi_" #f))
	if (!SYM(init) || !SYM(alltoallv) || !SYM(allgatherv) || !SYM(bcast) || !SYM(any) || !SYM(barrier) ||
	    !SYM(abort) || !SYM(finalize)) {
		snprintf(why, n, "libl2mpi.so lacks the l2mpi_* entry points (a mismatched build?)");
		return 0;
	}
#undef SYM
	return 1;
}

static void abort_all(int code) { mpi.abort(code); }
#endif

/* max(1, min(CPUs this process may run on, online CPUs / ranks here)). */
static int threads_per_rank(int local_size)
{
	long online = sysconf(_SC_NPROCESSORS_ONLN);
	int t = (int)(online > 0 ? online : 1) / (local_size > 0 ? local_size : 1);
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) < t) t = CPU_COUNT(&set);
	return t < 1 ? 1 : t;
}

void l2_dist_init(L2Dist *d)
{
	memset(d, 0, sizeof *d);
	d->size = d->local_size = 1;
	int rank, size;
	const char *var;
	l2_dist_env(&rank, &size, &var);
	if (size == 1) return;
#ifdef L2_MPI
	char why[700];
	if (!load_mpi(why, sizeof why))
		l2_die("started by an MPI launcher (%s=%s), but %s; run it without mpirun, or rebuild (make MPI=1)", var,
		       getenv(var), why);
	if (mpi.init(&d->rank, &d->size, &d->local_rank, &d->local_size, why, (int)sizeof why)) l2_die("%s", why);
	d->mpi = 1;
	if (d->size == 1) return;
	char name[96];
	snprintf(name, sizeof name, "%s (rank %d of %d)", l2_progname(), d->rank, d->size);
	l2_set_progname(name);
	l2_set_abort_hook(abort_all);
	if (d->rank != 0) l2_quiet = 1;
	if (!l2_threads_given && !getenv("L2_THREADS")) {
		l2_threads = threads_per_rank(d->local_size);
		l2_blas_threads(l2_threads);
	}
#else
	if (size > 1)
		l2_die("started as rank %d of %d by an MPI launcher (%s), but this l2 has no MPI (make MPI=1); "
		       "refusing to run %d copies that would write one output",
		       rank, size, var, size);
	l2_die("started by an MPI launcher (%s), but this l2 has no MPI (make MPI=1)", var);
#endif
}

void l2_dist_finish(L2Dist *d)
{
#ifdef L2_MPI
	if (d->mpi) {
		if (d->size > 1) mpi.barrier();
		l2_set_abort_hook(NULL);
		mpi.finalize();
		d->mpi = 0;
	}
#else
	(void)d;
#endif
}

/* ---- the ordered sum -------------------------------------------------------------- */

void l2_dist_chunk(size_t n, int P, int c, size_t *lo, size_t *hi)
{
	/* the first n % P chunks one longer */
	size_t q = n / (size_t)P, r = n % (size_t)P, k = (size_t)c;
	*lo = k * q + (k < r ? k : r);
	*hi = *lo + q + (k < r);
}

void l2_dist_fold_f32(const float *const *x, int P, size_t n, float *out)
{
	for (size_t i = 0; i < n; i++) {
		double s = x[0][i];
		for (int r = 1; r < P; r++) s += x[r][i];
		out[i] = (float)s;
	}
}

void l2_dist_fold_f64(const double *const *x, int P, size_t n, double *out)
{
	for (size_t i = 0; i < n; i++) {
		double s = x[0][i];
		for (int r = 1; r < P; r++) s += x[r][i];
		out[i] = s;
	}
}

void l2_dist_sum_simulated_f32(float **x, int P, size_t n)
{
	/* what each rank c holds after the all-to-all: chunk c of every rank, then
	 * folded; the all-gather hands every rank every chunk */
	float *sum = l2_malloc((n ? n : 1) * sizeof *sum);
	const float **piece = l2_malloc((size_t)P * sizeof *piece);
	for (int c = 0; c < P; c++) {
		size_t lo, hi;
		l2_dist_chunk(n, P, c, &lo, &hi);
		float *recv = l2_malloc((size_t)P * (hi - lo + 1) * sizeof *recv);
		for (int r = 0; r < P; r++) {
			memcpy(recv + (size_t)r * (hi - lo), x[r] + lo, (hi - lo) * sizeof *recv);
			piece[r] = recv + (size_t)r * (hi - lo);
		}
		l2_dist_fold_f32(piece, P, hi - lo, sum + lo);
		free(recv);
	}
	for (int r = 0; r < P; r++) memcpy(x[r], sum, n * sizeof *sum);
	free(piece);
	free(sum);
}

#ifdef L2_MPI
/* Elements per collective call: byte counts and displacements stay ints. */
#define SEG ((size_t)1 << 26)

static void sum_seg(const L2Dist *d, void *x, size_t n, size_t es, int f64)
{
	int P = d->size;
	int *sc = l2_malloc(4 * (size_t)P * sizeof(int)), *sd = sc + P, *rc = sd + P, *rd = rc + P;
	size_t mlo, mhi;
	l2_dist_chunk(n, P, d->rank, &mlo, &mhi);
	size_t m = mhi - mlo;
	for (int c = 0; c < P; c++) {
		size_t lo, hi;
		l2_dist_chunk(n, P, c, &lo, &hi);
		sc[c] = (int)((hi - lo) * es);
		sd[c] = (int)(lo * es);
		rc[c] = (int)(m * es);
		rd[c] = (int)((size_t)c * m * es);
	}
	char *recv = l2_malloc((size_t)P * m * es + 1);
	mpi.alltoallv(x, sc, sd, recv, rc, rd);
	const void **piece = l2_malloc((size_t)P * sizeof *piece);
	for (int r = 0; r < P; r++) piece[r] = recv + (size_t)r * m * es;
	char *mine = (char *)x + mlo * es;
	if (f64) l2_dist_fold_f64((const double *const *)piece, P, m, (double *)mine);
	else l2_dist_fold_f32((const float *const *)piece, P, m, (float *)mine);
	for (int c = 0; c < P; c++) {
		rc[c] = sc[c];
		rd[c] = sd[c];
	}
	mpi.allgatherv(NULL, (int)(m * es), x, rc, rd);
	free(piece);
	free(recv);
	free(sc);
}
#endif

static void sum_any(const L2Dist *d, void *x, size_t n, size_t es, int f64)
{
#ifdef L2_MPI
	if (d->size < 2) return;
	for (size_t at = 0; at < n; at += SEG) sum_seg(d, (char *)x + at * es, n - at < SEG ? n - at : SEG, es, f64);
#else
	(void)d; (void)x; (void)n; (void)es; (void)f64;
#endif
}

void l2_dist_sum_f32(const L2Dist *d, float *x, size_t n) { sum_any(d, x, n, sizeof *x, 0); }
void l2_dist_sum_f64(const L2Dist *d, double *x, size_t n) { sum_any(d, x, n, sizeof *x, 1); }

/* ---- the other collectives ------------------------------------------------------ */

void l2_dist_allgather(const L2Dist *d, const void *mine, size_t bytes, void *all)
{
	if (d->size < 2) {
		if (all != mine) memmove(all, mine, bytes);
		return;
	}
#ifdef L2_MPI
	if (bytes > INT_MAX / (size_t)d->size) l2_die("internal error: all-gather of %zu bytes per rank", bytes);
	int *cnt = l2_malloc(2 * (size_t)d->size * sizeof(int)), *dsp = cnt + d->size;
	for (int r = 0; r < d->size; r++) {
		cnt[r] = (int)bytes;
		dsp[r] = (int)(r * bytes);
	}
	mpi.allgatherv(mine, (int)bytes, all, cnt, dsp);
	free(cnt);
#endif
}

void l2_dist_bcast(const L2Dist *d, void *buf, size_t bytes)
{
#ifdef L2_MPI
	if (d->size < 2) return;
	for (size_t at = 0; at < bytes; at += (size_t)1 << 30) {
		size_t k = bytes - at < ((size_t)1 << 30) ? bytes - at : (size_t)1 << 30;
		mpi.bcast((char *)buf + at, (int)k);
	}
#else
	(void)d; (void)buf; (void)bytes;
#endif
}

int l2_dist_any(const L2Dist *d, int flag)
{
#ifdef L2_MPI
	if (d->size > 1) return mpi.any(flag);
#else
	(void)d;
#endif
	return flag != 0;
}

void l2_dist_barrier(const L2Dist *d)
{
#ifdef L2_MPI
	if (d->size > 1) mpi.barrier();
#else
	(void)d;
#endif
}

/* 64-bit FNV-1a over 8-byte words (and the tail): a replica check, not a
 * cryptographic one. */
static uint64_t hash_bytes(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t h = 1469598103934665603ULL;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, b + i, 8);
		h = (h ^ w) * 1099511628211ULL;
	}
	for (; i < n; i++) h = (h ^ b[i]) * 1099511628211ULL;
	return h;
}

void l2_dist_check(const L2Dist *d, const void *bytes, size_t n, const char *what)
{
	if (d->size < 2) return;
	uint64_t h = hash_bytes(bytes, n) ^ (uint64_t)n;
	uint64_t *all = l2_malloc((size_t)d->size * sizeof *all);
	l2_dist_allgather(d, &h, sizeof h, all);
	for (int r = 1; r < d->size; r++)
		if (all[r] != all[0]) {
			free(all);
			/* every rank sees the same table, so every rank says the same
			 * thing; rank 0 aborts the job */
			if (d->rank == 0)
				l2_die("%s: the parameters of rank %d differ from rank 0's (replicas drifted apart)", what, r);
			l2_dist_barrier(d); /* rank 0's abort ends us */
			l2_die("%s: the parameters of rank %d differ from rank 0's", what, r);
		}
	free(all);
}
