#!/usr/bin/env bats
# MPI data-parallel training (lib/core/dist, libl2mpi.so): collectives under
# mpirun -np 2 over shared memory and TCP loopback, and the refusals of a
# process that a launcher started as one of several ranks but cannot join.
# Skipped (with the reason) only where mpirun or libl2mpi.so is missing.
load test_helper

# mpirun for CI: as root, loopback only, no binding (threaded ranks), no
# CMA single copy (containers without ptrace), a hard time limit
mpi() {
	OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
		OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_btl_tcp_if_include=lo \
		OMPI_MCA_rmaps_base_oversubscribe=1 \
		L2_MPI_LIB="$L2_BUILD/bin/libl2mpi.so" timeout 300 mpirun --bind-to none "$@"
}

need_mpi() {
	command -v mpirun >/dev/null || skip "mpirun not installed (tools/install-deps.sh test)"
	[ -f "$L2_BUILD/bin/libl2mpi.so" ] || skip "built without MPI (no mpicc, MPI=0 or SAN=1)"
}

@test "test_dist under mpirun -np 2 (shared memory): sums, all-gather, bcast equal local references" {
	need_mpi
	run mpi -np 2 "$L2_BUILD/tests/test_dist"
	assert_success
	assert_line --regexp '^ok 2 - test_mpi_sum$'
	refute_line --partial "not ok"
}

@test "test_dist under mpirun -np 2 over TCP loopback (the multi-node transport)" {
	need_mpi
	run mpi -np 2 --mca btl self,tcp "$L2_BUILD/tests/test_dist"
	assert_success
	assert_line --regexp '^ok 2 - test_mpi_sum$'
	refute_line --partial "not ok"
}

@test "test_dist under mpirun -np 3 (a rank count that does not divide the vectors)" {
	need_mpi
	run mpi -np 3 "$L2_BUILD/tests/test_dist"
	assert_success
	refute_line --partial "not ok"
}

@test "a process a launcher started as one of several, without a loadable libl2mpi.so, refuses" {
	OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_RANK=1 L2_MPI_LIB=/nonexistent/libl2mpi.so \
		run "$L2_BUILD/tests/test_dist"
	assert_failure 1
	assert_output --regexp "^test_dist: started (as rank 1 of 2 )?by an MPI launcher \(OMPI_COMM_WORLD_SIZE"
}

@test "one rank's error ends every rank through MPI_Abort, the rank named" {
	need_mpi
	SECONDS=0
	L2_TEST_DIST_DIE=1 run mpi -x L2_TEST_DIST_DIE -np 2 "$L2_BUILD/tests/test_dist"
	assert_failure
	assert_output --partial "test_dist (rank 1 of 2): dying on purpose"
	[ "$status" -ne 3 ] # rank 0 did not get past its barrier
	[ "$SECONDS" -lt 60 ]
}
