/* test_dist.c — lib/core/dist: the ordered gradient sum and the collectives.
 *
 * Run alone (make test, also under SAN, no MPI): P simulated ranks in one
 * process go through the collective's own steps (chunks, pieces, fold,
 * gather) and must equal a left fold in double written out here, bit for
 * bit, for n = 0, 1, P - 1 and 10^6 + 3; the chunks tile [0, n) in order and
 * differ in length by at most one; without launcher variables l2_dist_init
 * is rank 0 of 1 and every collective is the identity.
 *
 * Run under `mpirun -np P` (tests/mpi.bats, L2_MPI_LIB naming libl2mpi.so):
 * every rank makes every rank's data from the seed, so each can compute the
 * reference locally; the sums (float and double, lengths 0 .. 10^6 + 3),
 * all-gather, broadcast, any and the replica check must equal it bit for
 * bit on every rank.  Only rank 0 prints TAP; a failing rank exits 1. */
#include "check.h"
#include "core/dist.h"
#include "core/util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* rank r's vector: values of mixed signs over 2^-60 .. 2^60, so that the
 * order of a sum shows after rounding (floats within 2^29 of each other
 * add exactly in double, in any order) */
static void fill(float *x, size_t n, int r, uint64_t salt)
{
	uint64_t s = salt * 1000003u + (uint64_t)r * 7919u + 1;
	for (size_t i = 0; i < n; i++) {
		double u = (double)(l2_splitmix64(&s) >> 11) / 9007199254740992.0;
		double e = (double)(l2_splitmix64(&s) % 41) - 20.0;
		x[i] = (float)((u - 0.5) * pow(2.0, e * 3));
		if (x[i] == 0) x[i] = 1e-3f;
	}
}

static void fill_d(double *x, size_t n, int r, uint64_t salt)
{
	uint64_t s = salt * 1000033u + (uint64_t)r * 104729u + 3;
	for (size_t i = 0; i < n; i++) {
		double u = (double)(l2_splitmix64(&s) >> 11) / 9007199254740992.0;
		x[i] = (u - 0.5) * pow(2.0, (double)(l2_splitmix64(&s) % 61) - 30.0);
	}
}

/* the reference: ((x0 + x1) + x2) + ... in double, rounded once */
static float ref_f32(float **x, int P, size_t i)
{
	double s = 0;
	for (int r = 0; r < P; r++) s = r ? s + (double)x[r][i] : (double)x[r][i];
	return (float)s;
}

static const size_t LENS[] = {0, 1, 2, 4, 7, 1000003};

static void test_chunks(void)
{
	for (int P = 1; P <= 7; P++)
		for (size_t k = 0; k < sizeof LENS / sizeof *LENS; k++) {
			size_t n = LENS[k], at = 0, mn = (size_t)-1, mx = 0;
			for (int c = 0; c < P; c++) {
				size_t lo, hi;
				l2_dist_chunk(n, P, c, &lo, &hi);
				CHECK(lo == at && hi >= lo);
				at = hi;
				if (hi - lo < mn) mn = hi - lo;
				if (hi - lo > mx) mx = hi - lo;
			}
			CHECK(at == n && mx - mn <= 1);
		}
}

static void test_simulated_sum(void)
{
	const int Ps[] = {1, 2, 3, 5};
	for (size_t pi = 0; pi < sizeof Ps / sizeof *Ps; pi++) {
		int P = Ps[pi];
		size_t lens[] = {0, 1, (size_t)(P - 1), 1000003};
		for (int k = 0; k < 4; k++) {
			size_t n = lens[k];
			float **x = malloc((size_t)P * sizeof *x), **orig = malloc((size_t)P * sizeof *orig);
			for (int r = 0; r < P; r++) {
				x[r] = malloc((n + 1) * sizeof(float));
				orig[r] = malloc((n + 1) * sizeof(float));
				fill(orig[r], n, r, (uint64_t)k);
				memcpy(x[r], orig[r], n * sizeof(float));
			}
			l2_dist_sum_simulated_f32(x, P, n);
			size_t bad = 0, reassoc = 0;
			for (size_t i = 0; i < n; i++) {
				float want = ref_f32(orig, P, i);
				for (int r = 0; r < P; r++)
					if (memcmp(&x[r][i], &want, sizeof want)) bad++;
				/* the order matters: a right fold differs somewhere */
				if (P >= 3) {
					double s = orig[P - 1][i];
					for (int r = P - 2; r >= 0; r--) s += orig[r][i];
					if ((float)s != want) reassoc++;
				}
			}
			CHECK_MSG(bad == 0, "P=%d n=%zu: %zu elements differ from the left fold", P, n, bad);
			if (P >= 3 && n > 1000) CHECK_MSG(reassoc > 0, "P=%d: test data does not show the order", P);
			for (int r = 0; r < P; r++) {
				free(x[r]);
				free(orig[r]);
			}
			free(x);
			free(orig);
		}
	}
}

static void test_single_process(void)
{
	/* no launcher: rank 0 of 1, nothing loaded, identities */
	unsetenv("OMPI_COMM_WORLD_SIZE");
	unsetenv("PMI_SIZE");
	unsetenv("PMIX_RANK");
	L2Dist d;
	l2_dist_init(&d);
	CHECK(d.rank == 0 && d.size == 1 && d.local_size == 1 && !d.mpi);
	float x[3] = {1.5f, -2, 3};
	l2_dist_sum_f32(&d, x, 3);
	CHECK(x[0] == 1.5f && x[1] == -2 && x[2] == 3);
	int all[1], mine = 42;
	l2_dist_allgather(&d, &mine, sizeof mine, all);
	CHECK(all[0] == 42);
	CHECK(l2_dist_any(&d, 0) == 0 && l2_dist_any(&d, 5) == 1);
	l2_dist_check(&d, x, sizeof x, "test");
	l2_dist_finish(&d);
	/* a launcher of one process is no launcher */
	setenv("OMPI_COMM_WORLD_SIZE", "1", 1);
	setenv("OMPI_COMM_WORLD_RANK", "0", 1);
	l2_dist_init(&d);
	CHECK(d.size == 1 && !d.mpi);
	unsetenv("OMPI_COMM_WORLD_SIZE");
	unsetenv("OMPI_COMM_WORLD_RANK");
	int rank, size;
	const char *var;
	setenv("PMI_SIZE", "4", 1);
	setenv("PMI_RANK", "3", 1);
	CHECK(l2_dist_env(&rank, &size, &var) == 4 && rank == 3 && !strcmp(var, "PMI_SIZE"));
	unsetenv("PMI_SIZE");
	unsetenv("PMI_RANK");
}

/* ---- under mpirun ---------------------------------------------------------------- */

static L2Dist D;

static void test_mpi_sum(void)
{
	int P = D.size;
	for (size_t k = 0; k < sizeof LENS / sizeof *LENS; k++) {
		size_t n = LENS[k];
		float **all = malloc((size_t)P * sizeof *all);
		for (int r = 0; r < P; r++) {
			all[r] = malloc((n + 1) * sizeof(float));
			fill(all[r], n, r, 100 + k);
		}
		float *x = malloc((n + 1) * sizeof(float));
		memcpy(x, all[D.rank], n * sizeof(float));
		l2_dist_sum_f32(&D, x, n);
		size_t bad = 0;
		for (size_t i = 0; i < n; i++) {
			float want = ref_f32(all, P, i);
			if (memcmp(&x[i], &want, sizeof want)) bad++;
		}
		CHECK_MSG(bad == 0, "rank %d, n=%zu: %zu sums differ from the left fold", D.rank, n, bad);
		l2_dist_check(&D, x, n * sizeof(float), "sum");
		for (int r = 0; r < P; r++) free(all[r]);
		free(all);
		free(x);
	}
	/* double */
	size_t n = 100003;
	double **all = malloc((size_t)P * sizeof *all), *x = malloc(n * sizeof *x);
	for (int r = 0; r < P; r++) {
		all[r] = malloc(n * sizeof(double));
		fill_d(all[r], n, r, 7);
	}
	memcpy(x, all[D.rank], n * sizeof *x);
	l2_dist_sum_f64(&D, x, n);
	size_t bad = 0;
	for (size_t i = 0; i < n; i++) {
		double s = all[0][i];
		for (int r = 1; r < P; r++) s += all[r][i];
		if (memcmp(&s, &x[i], sizeof s)) bad++;
	}
	CHECK_MSG(bad == 0, "rank %d: %zu double sums differ", D.rank, bad);
	for (int r = 0; r < P; r++) free(all[r]);
	free(all);
	free(x);
}

static void test_mpi_collectives(void)
{
	int P = D.size;
	CHECK(P > 1 && D.rank >= 0 && D.rank < P && D.mpi);
	CHECK(D.local_size >= 1 && D.local_rank < D.local_size);
	/* all-gather of rank-distinct rows, in rank order */
	double mine[3] = {D.rank + 0.25, -D.rank * 1e-7, 1.0 / (D.rank + 3)}, *all = malloc((size_t)P * sizeof mine);
	l2_dist_allgather(&D, mine, sizeof mine, all);
	for (int r = 0; r < P; r++) CHECK(all[3 * r] == r + 0.25 && all[3 * r + 1] == -r * 1e-7 && all[3 * r + 2] == 1.0 / (r + 3));
	free(all);
	/* broadcast from rank 0 */
	char buf[32];
	snprintf(buf, sizeof buf, "rank %d", D.rank);
	l2_dist_bcast(&D, buf, sizeof buf);
	CHECK(!strcmp(buf, "rank 0"));
	/* any */
	CHECK(l2_dist_any(&D, 0) == 0);
	CHECK(l2_dist_any(&D, D.rank == P - 1) == 1);
	CHECK(l2_dist_any(&D, 1) == 1);
	l2_dist_barrier(&D);
}

int main(int argc, char **argv)
{
	l2_init(argc, argv);
	int rank, size;
	const char *var;
	if (l2_dist_env(&rank, &size, &var) == 1) {
		RUN(test_chunks);
		RUN(test_simulated_sum);
		RUN(test_single_process);
		return check_done();
	}
	l2_dist_init(&D);
	/* tests/mpi.bats: one rank's error ends the job, naming the rank */
	const char *die_on = getenv("L2_TEST_DIST_DIE");
	if (die_on && atoi(die_on) == D.rank) l2_die("dying on purpose");
	if (die_on) {
		l2_dist_barrier(&D); /* the others wait here until the abort */
		return 3;
	}
	if (D.rank != 0) dup2(2, 1); /* rank 0 speaks TAP; the others only their failures, on stderr */
	RUN(test_mpi_collectives);
	RUN(test_mpi_sum);
	/* a rank that failed fails the job */
	int failed = l2_dist_any(&D, check_total_failed != 0);
	int rc = check_done();
	l2_dist_finish(&D);
	return failed ? 1 : rc;
}
