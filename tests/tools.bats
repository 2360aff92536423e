#!/usr/bin/env bats
# tools.bats — what every l2 tool shares (README "Common tool behaviour"):
# -h/--help prints usage to standard output and exits 0, --version, an
# unknown option is a usage error (exit 2, nothing on standard output), and
# a man page man/TOOL.1 with the standard sections that renders.  Tools are
# found at run time ($L2_BUILD/bin/l2-*, built from tools/l2-*.c), so every tool added
# later is covered without editing this file.
load test_helper

# all_tools — names of the built tools, one per line
all_tools() {
	local t
	for t in "$L2_BUILD"/bin/l2-*; do
		[ -f "$t" ] && [ -x "$t" ] || continue
		case $t in *.d | *.o | *.tmp.*) continue ;; esac
		basename "$t"
	done
}

# report FAILURES... — fail the test listing what failed, one per line
report() {
	[ $# -eq 0 ] && return 0
	printf '%s\n' "$@" >&2
	return 1
}

@test "tools are found" {
	run all_tools
	assert_success
	assert_line "l2-cat"
	assert_line "l2-store"
}

@test "every tool: -h prints usage to standard output and exits 0" {
	local bad=() t out err
	for t in $(all_tools); do
		for opt in -h; do
			out=$("$t" $opt 2>err.txt) || { bad+=("$t $opt: exit status $?"); continue; }
			err=$(cat err.txt)
			[[ "$out" == *[Uu]sage:* ]] || bad+=("$t $opt: no 'usage:' on standard output")
			[[ "$out" == *"$t"* ]] || bad+=("$t $opt: usage does not name the tool")
			[ -z "$err" ] || bad+=("$t $opt: wrote to standard error: $err")
		done
	done
	report "${bad[@]}"
}

@test "every tool: --version prints 'TOOL (l2) VERSION' and exits 0" {
	local bad=() t out
	for t in $(all_tools); do
		out=$("$t" --version 2>/dev/null) || { bad+=("$t --version: exit status $?"); continue; }
		[[ "$out" =~ ^$t\ \(l2\)\ [0-9]+\.[0-9]+ ]] || bad+=("$t --version: printed '$out'")
	done
	report "${bad[@]}"
}

@test "every tool: an unknown option is a usage error (exit 2, message on standard error only)" {
	local bad=() t rc out
	for t in $(all_tools); do
		rc=0
		out=$("$t" --no-such-option-l2 2>err.txt) || rc=$?
		[ $rc -eq 2 ] || bad+=("$t --no-such-option-l2: exit status $rc, expected 2")
		[ -z "$out" ] || bad+=("$t --no-such-option-l2: wrote to standard output")
		grep -q -- "--no-such-option-l2" err.txt || bad+=("$t: the error does not name the option: $(head -1 err.txt)")
		grep -q "^$t: " err.txt || bad+=("$t: the error does not start with '$t: '")
	done
	report "${bad[@]}"
}

@test "every tool has a man page with the standard sections" {
	local bad=() t page s
	for t in $(all_tools); do
		page=$L2_ROOT/man/${t%.sh}.1
		[ -f "$page" ] || { bad+=("$t: man/${t%.sh}.1 is missing"); continue; }
		for s in NAME SYNOPSIS DESCRIPTION OPTIONS FORMAT "EXIT STATUS" EXAMPLES "SEE ALSO"; do
			grep -Eq "^\.SH \"?$s\"?\$" "$page" || bad+=("man/${t%.sh}.1: no $s section")
		done
		grep -q "schemas/" "$page" || bad+=("man/${t%.sh}.1: does not point to schemas/")
	done
	report "${bad[@]}"
}

@test "every man page renders with man -l" {
	command -v man >/dev/null || skip "man is not installed"
	local bad=() p out
	for p in "$L2_ROOT"/man/*.1 "$L2_ROOT"/man/*.7; do
		out=$(MANWIDTH=80 man -l "$p" 2>err.txt) || { bad+=("$(basename "$p"): man -l failed: $(head -1 err.txt)"); continue; }
		[[ "$out" == *NAME* && "$out" == *SYNOPSIS* ]] || bad+=("$(basename "$p"): rendered without NAME/SYNOPSIS")
		if grep -q "warning" err.txt; then bad+=("$(basename "$p"): $(grep warning err.txt | head -1)"); fi
	done
	report "${bad[@]}"
}

@test "section-7 pages (workflows, not tools) have NAME, DESCRIPTION, EXAMPLES and SEE ALSO" {
	local bad=() p s
	for p in "$L2_ROOT"/man/*.7; do
		[ -f "$p" ] || continue
		for s in NAME SYNOPSIS DESCRIPTION EXAMPLES "SEE ALSO"; do
			grep -Eq "^\.SH \"?$s\"?\$" "$p" || bad+=("man/$(basename "$p"): no $s section")
		done
		grep -q '^\.TH [^ ]* 7 ' "$p" || bad+=("man/$(basename "$p"): .TH does not say section 7")
	done
	report "${bad[@]}"
}

@test "every man page belongs to a tool" {
	local bad=() p name
	local have=" $(all_tools | sed 's/\.sh$//' | tr '\n' ' ') "
	for p in "$L2_ROOT"/man/*.1; do
		name=$(basename "$p" .1)
		[[ "$have" == *" $name "* ]] || bad+=("man/$name.1: no tool $name is built")
	done
	report "${bad[@]}"
}

# long_options — the distinct --name options in standard input, one per line
long_options() {
	grep -oE -- '--[A-Za-z0-9][A-Za-z0-9-]*' | sort -u
}

# documented_options PAGE — the long options a man page documents: those on
# the tag lines (the line after .TP or .TQ) of its sections titled ...OPTIONS,
# not the ones its prose mentions (often another tool's)
documented_options() {
	awk '/^\.SH/ { opt = ($0 ~ /OPTIONS/); tag = 0; next }
	     opt && tag { print }
	     { tag = (opt && /^\.T[PQ]/) }' "$1" | sed 's/\\-/-/g; s/\\f[BIRP]//g' | long_options
}

# accepts TOOL OPTION — whether TOOL's option parser knows OPTION: followed by
# -h, a known option prints the usage (or takes -h as its value: run in the
# test's own folder, as l2-fid --random-weights -h writes a file named -h),
# an unknown one is the usage error lib/core/util.c words as below
accepts() {
	! timeout 60 "$1" "$2" -h </dev/null 2>&1 >/dev/null | grep -qF -- "option '$2': unknown"
}

@test "every tool: the long options of -h are documented under OPTIONS in the man page, and the other way round" {
	local bad=() t page help tags o
	for t in $(all_tools); do
		page=$L2_ROOT/man/${t%.sh}.1
		[ -f "$page" ] || continue   # reported by the man page test above
		help=$("$t" -h)
		tags=$(documented_options "$page")
		for o in $(long_options <<<"$help"); do
			grep -qxF -- "$o" <<<"$tags" && continue
			# -h may name another tool's option in passing (l2-build-index --ivf
			# "for l2-retrieve --nprobe"): only the tool's own options count
			accepts "$t" "$o" || continue
			bad+=("$t: -h prints $o, man/${t%.sh}.1 has no OPTIONS entry for it")
		done
		for o in $tags; do
			grep -qE -- "$o([^A-Za-z0-9-]|\$)" <<<"$help" && continue
			# --threads, --progress and --quiet every tool takes (L2_COMMON_LONGOPTS
			# in lib/core/util.h): a page may document one its -h leaves out
			case $o in --threads | --progress | --quiet) accepts "$t" "$o" && continue ;; esac
			bad+=("man/${t%.sh}.1 documents $o under OPTIONS, $t -h does not print it")
		done
	done
	report "${bad[@]}"
}
