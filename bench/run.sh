#!/usr/bin/env bash
# run.sh — make bench: run every bench/bench_*.sh in turn; each prints a
# side-by-side table (ours vs PyTorch / faiss on this machine) in Markdown.
# BENCH_QUICK=1 shrinks sizes for a smoke run.
set -uo pipefail
cd "$(dirname "$0")/.."
export BUILD=${BUILD:-build}
export PATH=$PWD/$BUILD/bin:$PATH
mkdir -p bench/out
echo "# l2 benchmarks — $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
status=0
for b in bench/bench_*.sh; do
	[ -e "$b" ] || continue
	# the 100M-image rehearsal takes ~30 min and ~9 GB: only when asked
	case $b in *bench_scale.sh) [ "${BENCH_SCALE:-0}" = 1 ] || { echo; echo "($b: BENCH_SCALE=1 to run it, ~30 min)"; continue; } ;; esac
	echo
	bash "$b" || { echo "($b failed)"; status=1; }
done
exit $status
