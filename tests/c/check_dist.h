/* check_dist.h — the two ends of a data-parallel test (dist_*_check.h: under mpirun by
 * tests/mpi.bats, alone by make test), so that each starts and reports the same way. */
#ifndef L2_CHECK_DIST_H
#define L2_CHECK_DIST_H

#include "check.h"
#include "core/dist.h"

#include <unistd.h>

/* 1 when no launcher started this process: the test runs its one-rank checks. */
static inline int check_dist_alone(void)
{
	int rank, size;
	const char *var;
	return l2_dist_env(&rank, &size, &var) == 1;
}

/* Join the ranks; rank 0 speaks TAP, the others only their failures (on stderr). */
static inline void check_dist_init(L2Dist *d)
{
	l2_dist_init(d);
	if (d->rank != 0) dup2(2, 1);
}

/* check_done over the ranks: one rank's failure fails them all. */
static inline int check_dist_done(L2Dist *d)
{
	int failed = l2_dist_any(d, check_total_failed != 0), rc = check_done();
	l2_dist_finish(d);
	return failed ? 1 : rc;
}

#endif
