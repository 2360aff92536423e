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
	echo
	bash "$b" || { echo "($b failed)"; status=1; }
done
exit $status
