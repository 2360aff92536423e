#!/usr/bin/env bash
# run.sh [BUILD] — run every libFuzzer harness of BUILD/fuzz (default
# build-fuzz; `make fuzz` builds them), one after another, and print a table.
#
#   FUZZ_SECONDS=N   time per harness (default 60)
#   FUZZ_RUNS=N      stop a harness after N executions instead, if sooner
#   FUZZ_JOBS=N      harnesses at once (default 1; the machine is shared)
#   FUZZ_NICE=N      niceness (default 15)
#   FUZZ_ONLY="a b"  only these harnesses
#
# Each harness starts from tests/fuzz/corpus/NAME (committed, read only
# here) and BUILD/fuzz/corpus/NAME (what earlier runs discovered: kept, so
# runs build on each other; libFuzzer writes new inputs there), with
# tests/fuzz/NAME.dict when there is one.  A crash, leak or hang is saved
# as BUILD/fuzz/crashes/NAME/crash-* (or leak-*, timeout-*, oom-*): to keep
# it as a regression input, fix the parser and copy the file to
# tests/fuzz/regress/NAME/ with a name that says what it was.  Logs:
# BUILD/fuzz/logs/NAME.log.  Exit status 1 when any harness found something.
set -u
cd "$(dirname "$0")/../.."
BUILD=${1:-build-fuzz}
seconds=${FUZZ_SECONDS:-60}
runs=${FUZZ_RUNS:--1}
jobs=${FUZZ_JOBS:-1}
niceness=${FUZZ_NICE:-15}
names=${FUZZ_ONLY:-$(for f in "$BUILD"/fuzz/fuzz-*; do [ -x "$f" ] && echo "${f##*/fuzz-}"; done)}
[ -n "$names" ] || { echo "run.sh: no harnesses in $BUILD/fuzz (make FUZZ=1 fuzzers)" >&2; exit 2; }

# ASan's quarantine (freed memory kept unusable, so that a use after free
# is caught) at 64 MiB instead of 256: the harnesses free a few KiB to a
# few MiB per input, so a use after free within an input, or in the next
# ones, is caught as before, while freed memory is reused while it is still
# mapped instead of faulting in fresh pages (the store and index harnesses
# run 1.5-2x the executions per CPU-second; bench/results/fuzz.md).  Set
# ASAN_OPTIONS to override.
export ASAN_OPTIONS=${ASAN_OPTIONS:-quarantine_size_mb=64}

# Allocations above 2 GiB from inputs of a few KiB are findings (a size
# taken from the input without a bound); -timeout catches hangs (30 s: on
# a loaded machine ASan alone has stalled an input for 13 s).
run_one() {
	local name=$1 dict=()
	local work=$BUILD/fuzz/corpus/$name crashes=$BUILD/fuzz/crashes/$name log=$BUILD/fuzz/logs/$name.log
	mkdir -p "$work" "$crashes" "${log%/*}"
	[ -f tests/fuzz/$name.dict ] && dict=(-dict=tests/fuzz/$name.dict)
	nice -n "$niceness" "$BUILD/fuzz/fuzz-$name" -max_total_time="$seconds" -runs="$runs" -timeout=30 \
		-rss_limit_mb=2048 -malloc_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$crashes/" "${dict[@]}" \
		"$work" tests/fuzz/corpus/"$name" >"$log" 2>&1
}

running=0
for name in $names; do
	[ -x "$BUILD/fuzz/fuzz-$name" ] || { echo "run.sh: no harness $name" >&2; exit 2; }
	echo "fuzz: $name (${seconds}s${FUZZ_RUNS:+ or $runs runs}) -> $BUILD/fuzz/logs/$name.log" >&2
	run_one "$name" &
	running=$((running + 1))
	if [ "$running" -ge "$jobs" ]; then
		wait -n
		running=$((running - 1))
	fi
done
wait

# name, executions, exec/s, coverage (cov/ft) and corpus at the end, findings
found=0
printf '%-12s %12s %8s %7s %7s %8s %s\n' harness executions exec/s cov ft corpus findings
for name in $names; do
	log=$BUILD/fuzz/logs/$name.log
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
	last=$(grep -E '^#[0-9]+[[:space:]]' "$log" | tail -1)
	cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
	ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
	corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$last")
	# slow-unit-* are libFuzzer's reports of slow inputs (wall time, so a
	# starved process makes them), not findings
	n=$(find "$BUILD/fuzz/crashes/$name" -type f ! -name 'slow-unit-*' | wc -l)
	what=none
	if [ "$n" -gt 0 ] || grep -qE '^==[0-9]+==ERROR|^SUMMARY: |deadly signal|ERROR: libFuzzer' "$log"; then
		found=1
		what="$n saved in $BUILD/fuzz/crashes/$name: $(grep -m1 -E 'ERROR|SUMMARY|deadly' "$log" | cut -c1-100)"
	fi
	printf '%-12s %12s %8s %7s %7s %8s %s\n' "$name" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$what"
done
exit $found
