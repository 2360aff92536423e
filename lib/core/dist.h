/* dist.h — a process's place among the ranks of a data-parallel run, and the
 * few collectives the trainers need (../shared DISTRIBUTED §3.2).
 *
 *   L2Dist d;
 *   l2_dist_init(&d);                  after option parsing
 *   ... each rank computes its share of the batch, then
 *   l2_dist_sum_f32(&d, grads, n);     the same bits on every rank
 *   l2_dist_check(&d, params, bytes, "step 7");
 *   l2_dist_finish(&d);
 *
 * MPI lives in libl2mpi.so (lib/mpi/, built when mpicc is found), loaded with
 * dlopen only when a launcher started this process as one of several:
 * OMPI_COMM_WORLD_SIZE (Open MPI), PMI_SIZE (MPICH's Hydra, Slurm's PMI) or
 * PMIX_RANK (srun --mpi=pmix).  Without those variables, or with a size of
 * 1, nothing is loaded and every collective is the identity: a single process
 * never pays for MPI, and a build without MPI still runs.  Started as one of
 * several ranks by a build without MPI (or when libl2mpi.so cannot be
 * loaded), l2_dist_init dies instead of letting P copies write one output.
 *
 * Once running as P > 1 ranks: the program name in messages becomes
 * "PROGRAM (rank R of P)"; ranks other than 0 are --quiet (rank 0 alone
 * prints information and progress); and any rank's l2_die or usage error
 * ends the whole job through MPI_Abort, with that rank named, instead of
 * leaving the others waiting in a collective.
 *
 * Order.  MPI promises only that all ranks get the same reduction result;
 * the order of a floating-point sum is the algorithm's, which the library
 * picks by P and message size.  l2_dist_sum fixes it: reduce-scatter by
 * all-to-all (rank c receives chunk c of every rank's vector), the P pieces
 * summed in rank order in double and rounded once, then all-gather.  Every
 * element is therefore (((x_0 + x_1) + x_2) + ...) in double, rounded to
 * the element type: bit-identical on every rank and every rerun, whatever
 * the MPI library, and independent of how the vector is cut into chunks.
 * The traffic is a ring all-reduce's, 2 (P - 1) / P of the vector per rank.
 * l2_dist_fold_f32/_f64 are that per-element sum, for tests and callers
 * that simulate ranks in one process. */
#ifndef L2_DIST_H
#define L2_DIST_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
	int rank, size;             /* this process is rank `rank` of `size` (0 of 1 alone) */
	int local_rank, local_size; /* among the ranks on this machine */
	int mpi;                    /* MPI initialised (size > 1) */
} L2Dist;

/* Detect the launcher, load libl2mpi.so and initialise MPI when started as
 * one of several ranks (see above); otherwise rank 0 of 1.  Call it after
 * option parsing: under P ranks it also sets the threads per rank to
 * max(1, min(CPUs in this process's affinity mask, online CPUs / ranks on
 * this machine)) unless --threads or L2_THREADS chose.  Dies as described
 * above. */
void l2_dist_init(L2Dist *d);
/* Leave MPI (a barrier first, so no rank exits while another still reads a
 * file rank 0 is writing); a no-op for one process. */
void l2_dist_finish(L2Dist *d);

/* What the environment says before any MPI call: the launcher's size (1
 * when none, 0 when a PMIx launcher gives no size) and rank, and the
 * variable that said so ("" when none). */
int l2_dist_env(int *rank, int *size, const char **var);

/* x[n] <- the sum over ranks of every rank's x[n], in rank order (above). */
void l2_dist_sum_f32(const L2Dist *d, float *x, size_t n);
void l2_dist_sum_f64(const L2Dist *d, double *x, size_t n);
/* all[P * bytes] <- every rank's `mine[bytes]`, in rank order. */
void l2_dist_allgather(const L2Dist *d, const void *mine, size_t bytes, void *all);
/* buf[bytes] <- rank 0's buf[bytes]. */
void l2_dist_bcast(const L2Dist *d, void *buf, size_t bytes);
/* Is flag nonzero on any rank? */
int l2_dist_any(const L2Dist *d, int flag);
void l2_dist_barrier(const L2Dist *d);
/* Hash bytes[n] (the parameters, the optimizer state) and compare across
 * ranks: dies naming `what` and the first rank that differs from rank 0.
 * Data parallelism keeps replicas equal only if every rank applied the same
 * bits; this catches a rank that drifted (another binary, a bad node). */
void l2_dist_check(const L2Dist *d, const void *bytes, size_t n, const char *what);

/* [lo, hi) of chunk c of n elements cut into P chunks (the reduce-scatter's). */
void l2_dist_chunk(size_t n, int P, int c, size_t *lo, size_t *hi);
/* out[i] = ((x[0][i] + x[1][i]) + ... + x[P-1][i]) in double, rounded once:
 * the sum l2_dist_sum gives.  out may be one of the x. */
void l2_dist_fold_f32(const float *const *x, int P, size_t n, float *out);
void l2_dist_fold_f64(const double *const *x, int P, size_t n, double *out);

/* The ordered sum over P simulated ranks in one process, by the collective's
 * own steps (chunks, pieces, fold, gather): x[r] is rank r's vector on entry
 * and the sum on return, for every r.  For tests (no MPI needed). */
void l2_dist_sum_simulated_f32(float **x, int P, size_t n);

#endif
