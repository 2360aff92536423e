#!/usr/bin/env bash
# run.sh — run l2's C unit tests and BATS tests, print TAP and a summary line
# "N passed, N failed, N skipped".  Used by `make check` (and so `make test`);
# BUILD selects the build directory (build, or build-san for SAN=1).
#   run.sh [--unit-only | --bats-only]   everything but the gpu-tagged tests
#   run.sh --gpu                         only those, with a device required
#                                        (make check-gpu): test_device, BATS tag gpu
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
mode=${1:-all}
export L2_BUILD=$PWD/$BUILD
export PATH=$PWD/$BUILD/bin:$PWD/tools:$PATH
if [ "${SAN:-0}" = 1 ]; then
	export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=99}
	export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:exitcode=99}
fi
# test_device lives in $BUILD/tests, where lib/core/device.c's search beside the
# program does not reach $BUILD/bin/libl2cuda.so
if [ -z "${L2_CUDA_LIB:-}" ] && [ -e "$BUILD/bin/libl2cuda.so" ]; then export L2_CUDA_LIB=$PWD/$BUILD/bin/libl2cuda.so; fi
pass=0 fail=0 skip=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

count() { # reads TAP on stdin, echoes it, tallies
	while IFS= read -r line; do
		printf '%s\n' "$line"
		case $line in
		"not ok "*"# skip"* | "not ok "*"# SKIP"*) skip=$((skip + 1)) ;;
		"ok "*"# skip"* | "ok "*"# SKIP"*) skip=$((skip + 1)) ;;
		"not ok "*) fail=$((fail + 1)) ;;
		"ok "*) pass=$((pass + 1)) ;;
		esac
	done
}

if [ "$mode" = --gpu ]; then
	echo "# GPU tests: $BUILD/tests/test_device, BATS tag gpu"
	L2_REQUIRE_GPU=1 "$BUILD/tests/test_device" >"$log" 2>&1
	rc=$?
	count <"$log"
	[ $rc -ne 0 ] && ! grep -q '^not ok' "$log" && { echo "not ok - test_device exited with status $rc"; fail=$((fail + 1)); }
	bats --tap --filter-tags gpu tests/*.bats >"$log" 2>&1
	rc=$?
	count <"$log"
	[ $rc -ne 0 ] && ! grep -q '^not ok' "$log" && { echo "not ok - bats exited with status $rc"; fail=$((fail + 1)); }
	echo
	echo "l2 GPU tests: $pass passed, $fail failed, $skip skipped"
	[ $fail -eq 0 ] && [ $skip -eq 0 ]
	exit
fi

if [ "$mode" != --bats-only ]; then
	echo "# C unit tests ($BUILD/tests)"
	for t in "$BUILD"/tests/test_*; do
		[ -x "$t" ] || continue
		case $t in *.d) continue ;; esac
		echo "# $(basename "$t")"
		"$t" >"$log" 2>&1
		rc=$?
		count <"$log"
		if [ $rc -ne 0 ] && ! grep -q '^not ok' "$log"; then
			echo "not ok - $(basename "$t") exited with status $rc"
			fail=$((fail + 1))
		fi
	done
fi

if [ "$mode" != --bats-only ]; then
	# every fuzz harness over its committed corpus and regression inputs
	# (tests/fuzz/README.md): no libFuzzer needed, seconds in all
	echo "# fuzz corpus replay ($BUILD/fuzz)"
	for r in "$BUILD"/fuzz/replay-*; do
		[ -x "$r" ] || continue
		case $r in *.d) continue ;; esac
		name=${r##*/replay-}
		dirs=()
		for d in tests/fuzz/corpus/$name tests/fuzz/regress/$name; do [ -d "$d" ] && dirs+=("$d"); done
		if [ ${#dirs[@]} -eq 0 ]; then
			echo "ok - fuzz replay $name # skip no corpus"; skip=$((skip + 1)); continue
		fi
		if "$r" "${dirs[@]}" >"$log" 2>&1; then
			echo "ok - fuzz replay $name: $(tail -1 "$log" | sed 's/^[^:]*: //')"; pass=$((pass + 1))
		else
			echo "not ok - fuzz replay $name (exit $?)"; fail=$((fail + 1))
			tail -40 "$log" | sed 's/^/# /'
		fi
	done
fi

if [ "$mode" != --unit-only ]; then
	echo "# BATS tests (tests/*.bats)"
	if ! command -v bats >/dev/null; then
		echo "not ok - bats is not installed (make deps)"; fail=$((fail + 1))
	else
		bats --tap --filter-tags '!gpu' tests/*.bats >"$log" 2>&1
		rc=$?
		count <"$log"
		if [ $rc -ne 0 ] && ! grep -q '^not ok' "$log"; then
			echo "not ok - bats exited with status $rc"; fail=$((fail + 1))
		fi
	fi
fi

echo
echo "l2 tests: $pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
