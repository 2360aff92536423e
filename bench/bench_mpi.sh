#!/usr/bin/env bash
# bench_mpi.sh — data-parallel training speed at one global batch, one
# process with T threads against mpirun -np 2 with T/2 threads per rank, each
# the median of REPS runs measured in turn in one session:
#   clip       l2-train-clip (the demo's small CLIP: 32x32 images, patch 8,
#              width 128, 2 layers; synthetic shapes), batch 128;
#   diffusion  l2-train-diffusion (the tiny preset at 32x32, 48-d conditions,
#              on tests/gan_fixture.bash's shapes, 96 images), batch 32 (16
#              per rank: two of the trainer's 8-image shards each).
# Prints markdown tables for bench/RESULTS.md.
#
#   nice -n 10 bench/bench_mpi.sh                     ~5 min on 2 cores
#   MPI_TOOLS=diffusion nice -n 10 bench/bench_mpi.sh  one of them
#
# Needs mpirun and an l2 built with MPI (libl2mpi.so beside the programs).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BIN=$PWD/$BUILD/bin
STEPS=${MPI_STEPS:-30} BATCH=${MPI_BATCH:-128} REPS=${MPI_REPS:-3} T=${MPI_THREADS:-2}
TOOLS=${MPI_TOOLS:-clip diffusion}
DSTEPS=${MPI_DIFF_STEPS:-20} DBATCH=${MPI_DIFF_BATCH:-32}
[ -f "$BIN/libl2mpi.so" ] || { echo "bench_mpi: $BIN/libl2mpi.so missing (build with mpicc, MPI=1)" >&2; exit 1; }
command -v mpirun >/dev/null || { echo "bench_mpi: mpirun not installed" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
ARGS="--synthetic 600 --resolution 32 --patch 8 --width 128 --layers 2 --batch $BATCH --steps $STEPS --seed 1 --quiet"

# run CMD... : "wall CPU" seconds of CMD (CPU: user + sys of it and the
# processes it waited for, which on a loaded machine says more than the wall)
run() {
	/usr/bin/time -f '%e %U %S' -o "$out/time" "$@" >/dev/null 2>&1
	awk '{ printf "%.3f %.3f\n", $1, $2 + $3 }' "$out/time"
}
# median of column K
median() { awk -v k="$1" '{ print $k }' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }


# table TITLE UNIT N: the rows of the runs in one=(), two=(), start=() (N samples each)
table() {
	local t1 c1 t2 c2 ts load
	t1=$(printf '%s\n' "${one[@]}" | median 1) c1=$(printf '%s\n' "${one[@]}" | median 2)
	t2=$(printf '%s\n' "${two[@]}" | median 1) c2=$(printf '%s\n' "${two[@]}" | median 2)
	ts=$(printf '%s\n' "${start[@]}" | median 1)
	load=$(cut -d' ' -f1 /proc/loadavg)
	echo "### Data-parallel training: $1 ($(nproc) cores, load $load at the end)"
	echo
	echo "| run | wall s (median of $REPS) | $2/s | speed vs one process | CPU s | $2 per CPU-s |"
	echo "|---|---:|---:|---:|---:|---:|"
	awk -v t1="$t1" -v t2="$t2" -v c1="$c1" -v c2="$c2" -v ts="$ts" -v n="$3" -v T="$T" 'BEGIN {
		printf "| one process, %d threads | %.2f | %.1f | 1.00x | %.2f | %.1f |\n", T, t1, n / t1, c1, n / c1
		printf "| mpirun -np 2, %d thread(s) each | %.2f | %.1f | %.2fx | %.2f | %.1f |\n", (T / 2 > 1 ? T / 2 : 1), t2, n / t2, t1 / t2, c2, n / c2
		printf "| (mpirun -np 2, one step: start-up) | %.2f | | | | |\n", ts
	}'
	echo
}
T2=$((T / 2 > 0 ? T / 2 : 1))

if [[ " $TOOLS " == *" clip "* ]]; then
	one=() two=() start=()
	for r in $(seq "$REPS"); do
		one+=("$(run "$BIN/l2-train-clip" $ARGS --threads "$T" -o "$out/one.safetensors")")
		two+=("$(run mpirun -np 2 --bind-to none "$BIN/l2-train-clip" $ARGS --threads $T2 -o "$out/two.safetensors")")
		# start-up alone: one step
		start+=("$(run mpirun -np 2 --bind-to none "$BIN/l2-train-clip" ${ARGS/--steps $STEPS/--steps 1} --threads 1 -o "$out/s.safetensors")")
	done
	table "l2-train-clip, batch $BATCH, $STEPS steps" pairs $((BATCH * STEPS))
fi

if [[ " $TOOLS " == *" diffusion "* ]]; then
	# the shapes of the GAN and diffusion tests, 96 of them (68 in the train split)
	source tests/gan_fixture.bash
	(PATH=$BIN:$PATH make_gan_fixture "$out/fx" 48 96)
	# one tick at the end, its grid one image of one sampler step: the steps dominate
	DARGS="-d $out/fx/ds.lmdb --preset tiny --resolution 32 --batch $DBATCH --steps $DSTEPS --tick $DSTEPS --grid 1x1 --sample-steps 1 --seed 1 --quiet"
	one=() two=() start=()
	for r in $(seq "$REPS"); do
		rm -rf "$out"/d1 "$out"/d2 "$out"/ds1
		one+=("$(run "$BIN/l2-train-diffusion" $DARGS --threads "$T" -o "$out/d1")")
		two+=("$(run mpirun -np 2 --bind-to none "$BIN/l2-train-diffusion" $DARGS --threads $T2 -o "$out/d2")")
		start+=("$(run mpirun -np 2 --bind-to none "$BIN/l2-train-diffusion" ${DARGS/--steps $DSTEPS --tick $DSTEPS/--steps 1 --tick 1} --threads 1 -o "$out/ds1")")
	done
	table "l2-train-diffusion, tiny preset at 32x32, batch $DBATCH, $DSTEPS steps" images $((DBATCH * DSTEPS))
fi
