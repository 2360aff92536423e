#!/usr/bin/env bats
# MPI data-parallel training (lib/core/dist, libl2mpi.so): collectives under
# mpirun -np 2 over shared memory and TCP loopback, and the refusals of a
# process that a launcher started as one of several ranks but cannot join.
# Skipped (with the reason) only where mpirun or libl2mpi.so is missing.
load test_helper
load gan_fixture

# mpirun for CI: as root, loopback only, no binding (threaded ranks), no
# CMA single copy (containers without ptrace), a hard time limit
mpi() {
	OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
		OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo \
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

@test "data-parallel CLIP = one process (double build: 1e-10 of every tensor; float: losses 1e-5)" {
	need_mpi
	for t in test_dist_train test_dist_train_f32; do
		run mpi -np 2 "$L2_BUILD/tests/$t"
		assert_success
		assert_line "ok 1 - test_data_parallel_equals_single"
		refute_line --partial "not ok"
		echo "$output" | grep -m1 '^# .*ranks x' >&3
	done
}

TINY_CLIP="--synthetic 40 --width 32 --layers 1 --resolution 16 --patch 8 --context 8 --embed-dim 16 --vocab-size 530 --batch 8 --threads 1 --quiet"

@test "l2-train-clip -np 2: reruns are bit-identical; stop + resume = straight; states move between rank counts" {
	need_mpi
	mkdir a b r s1 s2
	mpi -np 2 l2-train-clip $TINY_CLIP --steps 4 --seed 3 -o a/m.safetensors
	mpi -np 2 l2-train-clip $TINY_CLIP --steps 4 --seed 3 -o b/m.safetensors
	for f in m.safetensors m.state m.vocab.txt.gz; do cmp a/$f b/$f; done
	mpi -np 2 l2-train-clip $TINY_CLIP --steps 4 --seed 3 -o r/m.safetensors --stop-after 2
	mpi -np 2 l2-train-clip $TINY_CLIP --steps 4 --seed 3 -o r/m.safetensors --resume
	for f in m.safetensors m.state; do cmp a/$f r/$f; done
	# a 2-rank state resumes in one process, and a 1-rank state under 2 ranks
	mpi -np 2 l2-train-clip $TINY_CLIP --steps 4 --seed 3 -o s1/m.safetensors --stop-after 2
	run l2-train-clip $TINY_CLIP --steps 4 --seed 3 -o s1/m.safetensors --resume
	assert_success
	l2-train-clip $TINY_CLIP --steps 4 --seed 3 -o s2/m.safetensors --stop-after 2
	run mpi -np 2 l2-train-clip $TINY_CLIP --steps 4 --seed 3 -o s2/m.safetensors --resume
	assert_success
	# both end at step 4, near the straight run (Adam turns the rounding noise
	# of gradients that are zero in theory into steps of up to lr/100)
	for d in s1 s2; do
		grep -q '"l2.step":"4"' $d/m.safetensors
		run python3 "$L2_ROOT/tests/st_gap.py" $d/m.safetensors a/m.safetensors
		assert_success
		awk -v g="${output%% *}" 'BEGIN { exit !(g < 1e-2) }'
	done
}

@test "l2-train-clip -np 2: a batch the ranks cannot split is a usage error naming the rule" {
	need_mpi
	run mpi -np 2 l2-train-clip $TINY_CLIP --batch 7 --steps 2 -o m.safetensors
	assert_failure 2
	assert_output --partial "--batch 7 does not split over 2 ranks: the global batch must be a multiple of the number of ranks"
	assert [ ! -e m.safetensors ]
}

@test "l2-train-clip: a rank that cannot join (no libl2mpi.so) refuses before writing anything" {
	OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_RANK=1 L2_MPI_LIB=/nonexistent/libl2mpi.so \
		run l2-train-clip $TINY_CLIP --steps 1 -o m.safetensors
	assert_failure 1
	assert_output --regexp "^l2-train-clip: started (as rank 1 of 2 )?by an MPI launcher \(OMPI_COMM_WORLD_SIZE"
	run ls
	assert_output ""
}

@test "l2-train-clip -np 2: rank 1 killed -> the run fails promptly and the last checkpoint resumes" {
	need_mpi
	mkdir k
	kill_rank1 k/m.state l2-train-clip $TINY_CLIP --steps 100000 --seed 2 -o k/m.safetensors --save-every 1
	# the checkpoint the killed run left resumes (the state is ahead of step 1)
	run mpi -np 2 l2-train-clip ${TINY_CLIP% --quiet} --steps 100000 --stop-after 1 --seed 2 -o k/m.safetensors --resume
	assert_success
	assert_output --partial "already at step"
}

@test "data-parallel GAN step = one process (double build: 1e-10 of every tensor, with R1; float: losses 1e-5)" {
	need_mpi
	for t in test_dist_gan test_dist_gan_f32; do
		run mpi -np 2 "$L2_BUILD/tests/$t"
		assert_success
		assert_line "ok 1 - test_gan_data_parallel_equals_single"
		assert_line "ok 2 - test_gan_data_parallel_augment"
		refute_line --partial "not ok"
		echo "$output" | grep -m2 '^# GAN' >&3
	done
}

@test "data-parallel diffusion step = one process (double build: 1e-10 of every tensor; float: 1e-4; statistics identical)" {
	need_mpi
	for t in test_dist_diffusion test_dist_diffusion_f32; do
		run mpi -np 2 "$L2_BUILD/tests/$t"
		assert_success
		assert_line "ok 1 - test_diffusion_data_parallel_equals_single"
		refute_line --partial "not ok"
		echo "$output" | grep -m1 '^# diffusion' >&3
	done
}

# the tick's loss columns of log.tsv (not images_per_s, a time)
losses() { cut -f1-6 "$1"; }

@test "l2-train-gan -np 2: reruns bit-identical, stop + resume = straight, states across rank counts, losses = one process" {
	need_mpi
	make_gan_fixture fx 48
	G="-d fx/ds.lmdb ${GAN_TINY/--batch 4/--batch 8} --quiet --steps 4 --tick 1 --r1-every 2"
	mpi -np 2 l2-train-gan $G -o a
	mpi -np 2 l2-train-gan $G -o b
	for f in G.safetensors G_ema.safetensors D.safetensors state.safetensors; do cmp a/$f b/$f; done
	cmp <(losses a/log.tsv) <(losses b/log.tsv)
	mpi -np 2 l2-train-gan $G -o r --stop-after 2
	mpi -np 2 l2-train-gan $G -o r --resume
	for f in G.safetensors G_ema.safetensors D.safetensors state.safetensors; do cmp a/$f r/$f; done
	cmp <(losses a/log.tsv) <(losses r/log.tsv)
	# one process at the same global batch: the same losses to the log's 6 decimals (float gap ~2e-7)
	l2-train-gan $G -o one
	paste <(losses a/log.tsv) <(losses one/log.tsv) | awk -F'\t' 'NR > 1 { for (i = 2; i <= 6; i++) { d = $i - $(i + 6); if (d < 0) d = -d; if (d > 1e-5) { print "row " NR " col " i ": " $i " vs " $(i + 6); bad = 1 } } } END { exit bad }'
	# a 2-rank state resumes in one process
	mpi -np 2 l2-train-gan $G -o s --stop-after 2
	run l2-train-gan $G -o s --resume
	assert_success
	# rank 0 alone wrote the run
	run ls a
	assert_output "$(printf 'D.safetensors\nG.safetensors\nG_ema.safetensors\ngrid-000001.png\ngrid-000002.png\ngrid-000003.png\ngrid-000004.png\ngrid.png\nlog.tsv\nloss.png\nstate.safetensors')"
}

@test "l2-train-gan -np 2: a batch that splits minibatch-std groups is a usage error naming the rule" {
	need_mpi
	make_gan_fixture fx 48
	run mpi -np 2 l2-train-gan -d fx/ds.lmdb ${GAN_TINY/--batch 4/--batch 12} --steps 2 -o run
	assert_failure 2
	assert_output --partial "--batch 12 does not split over 2 ranks: minibatch-std groups of 4 stay on one rank, so the global batch must be a multiple of 4 x 2 = 8"
	assert [ ! -e run ]
}

# kill_rank1 READY TOOL ARGS...: start TOOL ARGS under 2 ranks, kill -9 rank 1 once the file
# READY exists (its first checkpoint); the job must fail promptly and every rank end (rank 0 may
# outlive mpirun by a moment, holding the run's lock)
kill_rank1() {
	local ready=$1 tool=$2; shift 2
	mpi -np 2 "$tool" "$@" &
	local job=$!
	for i in $(seq 150); do [ -e "$ready" ] && break; sleep 0.2; done
	[ -e "$ready" ]
	# this job's ranks (started here), rank 1 the one whose environment says so
	local r1= ranks= p
	for p in $(pgrep -x "${tool:0:15}"); do # the kernel keeps 15 bytes of a process name
		[ "$(readlink /proc/$p/cwd)" = "$PWD" ] || continue
		ranks="$ranks $p"
		tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1' && r1=$p
	done
	[ -n "$r1" ]
	SECONDS=0
	kill -9 "$r1"
	run wait "$job"
	[ "$status" -ne 0 ]
	local alive
	for i in $(seq 300); do
		alive=0
		for p in $ranks; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ $alive = 0 ] && break
		sleep 0.2
	done
	[ $alive = 0 ]
	[ "$SECONDS" -lt 60 ]
}

# rank1_killed TOOL ARGS...: kill_rank1 on a run into the directory k (ARGS with --tick 1 and a
# long --steps); the checkpoint left behind resumes under 2 ranks one step further (its step
# from the state's metadata)
rank1_killed() {
	local tool=$1; shift
	kill_rank1 k/state.safetensors "$tool" "$@" -o k
	local s
	s=$(grep -ao '"step":"[0-9]*"' k/state.safetensors | head -n 1 | tr -dc 0-9)
	[ "$s" -ge 1 ]
	run mpi -np 2 "$tool" "$@" -o k --resume --stop-after $((s + 1))
	assert_success
	grep -aq "\"step\":\"$((s + 1))\"" k/state.safetensors
	[ "$(tail -n 1 k/log.tsv | cut -f1)" = $((s + 1)) ]
}

@test "l2-train-gan -np 2: rank 1 killed -> the run fails promptly and the last checkpoint resumes" {
	need_mpi
	make_gan_fixture fx 48
	rank1_killed l2-train-gan -d fx/ds.lmdb ${GAN_TINY/--batch 4/--batch 8} --quiet --steps 100000 --tick 1 --seed 2
}

# the tiny denoiser of the diffusion runs (16x16, dropout on)
DTINY="--preset tiny --channels 8 --mult 1,2 --attn-res 8 --resolution 16 --dropout 0.1 --threads 1 --grid 2x2 --quiet"
DFILES="model.safetensors model_ema-0.050.safetensors model_ema-0.100.safetensors state.safetensors"

# log.tsv's statistics: loss, mse and the six bands' mse (not u, lr, the time or FD)
dstats() { cut -f1-9 "$1"; }

@test "l2-train-diffusion -np 2: reruns bit-identical, stop + resume = straight, states across rank counts, statistics = one process" {
	need_mpi
	make_gan_fixture fx 48
	D="-d fx/ds.lmdb $DTINY --batch 8 --steps 4 --tick 1"
	mpi -np 2 l2-train-diffusion $D -o a
	mpi -np 2 l2-train-diffusion $D -o b
	for f in $DFILES; do cmp a/$f b/$f; done
	cmp <(dstats a/log.tsv) <(dstats b/log.tsv)
	mpi -np 2 l2-train-diffusion $D -o r --stop-after 2
	mpi -np 2 l2-train-diffusion $D -o r --resume
	for f in $DFILES; do cmp a/$f r/$f; done
	cmp <(dstats a/log.tsv) <(dstats r/log.tsv)
	# one process at the same global batch: the same statistics to 1e-5 (float rounding)
	l2-train-diffusion $D -o one
	paste <(dstats a/log.tsv) <(dstats one/log.tsv) | awk -F'\t' 'NR > 1 { for (i = 2; i <= 9; i++) { x = $i; y = $(i + 9); if (x == y) continue; d = x - y; if (d < 0) d = -d; m = y < 0 ? -y : y; if (d > 1e-5 * m) { print "row " NR " col " i ": " x " vs " y; bad = 1 } } } END { exit bad }'
	# a 2-rank state resumes in one process, a 1-rank state under 2 ranks
	mpi -np 2 l2-train-diffusion $D -o s1 --stop-after 2
	run l2-train-diffusion $D -o s1 --resume
	assert_success
	l2-train-diffusion $D -o s2 --stop-after 2
	run mpi -np 2 l2-train-diffusion $D -o s2 --resume
	assert_success
	for d in s1 s2; do grep -aq '"step":"4"' $d/state.safetensors; done
	# rank 0 alone wrote the run
	run ls a
	assert_output "$(printf 'grid-000001.png\ngrid-000002.png\ngrid-000003.png\ngrid-000004.png\ngrid.png\nlog.tsv\nloss.png\nmodel.safetensors\nmodel_ema-0.050.safetensors\nmodel_ema-0.100.safetensors\nstate.safetensors')"
}

@test "l2-train-diffusion -np 2: a batch the ranks cannot split is a usage error naming the rule" {
	need_mpi
	make_gan_fixture fx 48
	run mpi -np 2 l2-train-diffusion -d fx/ds.lmdb $DTINY --batch 7 --steps 2 -o run
	assert_failure 2
	assert_output --partial "--batch 7 does not split over 2 ranks: the global batch must be a multiple of the number of ranks"
	assert [ ! -e run ]
}

@test "l2-train-diffusion -np 2: rank 1 killed -> the run fails promptly and the last checkpoint resumes" {
	need_mpi
	make_gan_fixture fx 48
	rank1_killed l2-train-diffusion -d fx/ds.lmdb $DTINY --batch 8 --steps 100000 --tick 1 --seed 2
}
