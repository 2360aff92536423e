/* dist_mpi.c — the MPI calls behind lib/core/dist.h, built into libl2mpi.so
 * (the only file that includes mpi.h; compiled by mpicc, so Open MPI and
 * MPICH alike).  lib/core/dist.c loads it with dlopen(RTLD_NOW |
 * RTLD_GLOBAL) only when a launcher started the process as one of several
 * ranks: libmpi's own plugins resolve libmpi symbols and need them global.
 *
 * Thin on purpose: byte buffers in, MPI_BYTE collectives out; the order of
 * the gradient sum and everything else that makes results reproducible is
 * in dist.c, which this library cannot change.  Every call is from the
 * thread that initialised MPI (MPI_THREAD_FUNNELED).  MPI's default error
 * handler (MPI_ERRORS_ARE_FATAL) ends the job on a communication error. */
#include <mpi.h>
#include <stdio.h>

static MPI_Comm local_comm = MPI_COMM_NULL;

int l2mpi_init(int *rank, int *size, int *local_rank, int *local_size, char *err, int errlen)
{
	int provided = 0, rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
	if (rc != MPI_SUCCESS) {
		char msg[MPI_MAX_ERROR_STRING];
		int len = 0;
		MPI_Error_string(rc, msg, &len);
		snprintf(err, (size_t)errlen, "MPI_Init_thread failed: %s", msg);
		return -1;
	}
	MPI_Comm_rank(MPI_COMM_WORLD, rank);
	MPI_Comm_size(MPI_COMM_WORLD, size);
	MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, *rank, MPI_INFO_NULL, &local_comm);
	MPI_Comm_rank(local_comm, local_rank);
	MPI_Comm_size(local_comm, local_size);
	return 0;
}

/* Chunk c of sendbuf (scounts[c] bytes at sdispls[c]) goes to rank c;
 * rank r's chunk for us lands at rdispls[r]. */
void l2mpi_alltoallv(const void *sendbuf, const int *scounts, const int *sdispls, void *recvbuf, const int *rcounts,
		     const int *rdispls)
{
	MPI_Alltoallv(sendbuf, scounts, sdispls, MPI_BYTE, recvbuf, rcounts, rdispls, MPI_BYTE, MPI_COMM_WORLD);
}

/* sendbuf NULL: in place (this rank's part is already at its displacement). */
void l2mpi_allgatherv(const void *sendbuf, int scount, void *recvbuf, const int *rcounts, const int *rdispls)
{
	MPI_Allgatherv(sendbuf ? sendbuf : MPI_IN_PLACE, scount, MPI_BYTE, recvbuf, rcounts, rdispls, MPI_BYTE,
		       MPI_COMM_WORLD);
}

void l2mpi_bcast(void *buf, int bytes) { MPI_Bcast(buf, bytes, MPI_BYTE, 0, MPI_COMM_WORLD); }

int l2mpi_any(int flag)
{
	int in = flag != 0, out = 0;
	MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
	return out;
}

void l2mpi_barrier(void) { MPI_Barrier(MPI_COMM_WORLD); }

void l2mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

void l2mpi_finalize(void)
{
	if (local_comm != MPI_COMM_NULL) MPI_Comm_free(&local_comm);
	MPI_Finalize();
}
