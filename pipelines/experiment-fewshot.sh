#!/usr/bin/env bash
# experiment-fewshot.sh — Lafite2's few-shot table with error bars, one pipelines/workflow.mk
# invocation per cell (the runs are keyed by their settings, so a rerun redoes nothing).
#
#   pipelines/experiment-fewshot.sh OUT=runs DATASET=ds.lmdb CLIP=clip.safetensors [VAR=value...]
#
# The arguments are workflow.mk variables (OUT= is required; IMAGES=/CAPTIONS= or DATASET=,
# CLIP=, CORPUS=, PRE_STEPS=, FT_STEPS=, GAN_SIZE=, ... as in l2-workflows(7)).  The table's
# shape comes from the environment:
#   GENERATORS  "gan diffusion"                        one table each
#   ROWS        "none gaussian retrieve optimize mix"  none: no pre-training (trained from
#               scratch for FT_STEPS); gaussian: Lafite's Gaussian pseudo features; retrieve:
#               retrieval only; optimize: retrieval + contrastive optimisation (Lafite2); mix:
#               the optimize runs sampled with l2-sample --retrieve (MIX=1)
#   COLUMNS     "0 0.01 0.1 1"                         pairs fraction: 0 = zero-shot (the
#               pre-trained model), 1 = fully supervised (every pair, --cond text); none has
#               no zero-shot cell
#   SEEDS       "0 1 2"                                workflow.mk's SEED: the generator's
#               initialisation, data order and training noise, which images are the paired
#               subset (hash of key and seed), and the evaluation's sampling noise.  The split,
#               the CLIP, the corpus and the pseudo features (PSEUDO_FLAGS, seed 0) stay fixed.
#   JOBS        2                                      (generator, seed, row) chains run at once
#   GAN_VARS, DIFFUSION_VARS                           more workflow.mk VAR=value words for
#               one generator only (e.g. GAN_VARS="PRE_STEPS=1500 FT_STEPS=400"; no spaces in values)
# Writes OUT/fewshot/ (pipelines/experiment-fewshot-report.sh): cells.tsv (a line per cell and
# seed, its metrics file under OUT), table.tsv (mean and sample standard deviation over the seeds),
# table.md, fd.svg and fd.png (FD against the pairs fraction per row, bars of one standard
# deviation), index.html; logs/ has each chain's make output.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
me=experiment-fewshot.sh
usage() { sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
die() { printf '%s: %s\n' "$me" "$*" >&2; exit 1; }
[ $# -ge 1 ] || usage
case $1 in -h | --help) usage ;; esac
out=
for a in "$@"; do
	case $a in
	OUT=*) out=${a#OUT=} ;;
	SEED=* | PSEUDO=* | PAIRS=* | GENERATOR=* | MIX=* | SETTING=*)
		die "$a: the experiment sets ${a%%=*} itself (see GENERATORS, ROWS, COLUMNS, SEEDS)" ;;
	*=*) ;;
	*) die "$a: arguments are workflow.mk's VAR=value" ;;
	esac
done
[ -n "$out" ] || die "set OUT=DIR (where the runs and the table go)"
generators=${GENERATORS:-gan diffusion}
rows=${ROWS:-none gaussian retrieve optimize mix}
columns=${COLUMNS:-0 0.01 0.1 1}
seeds=${SEEDS:-0 1 2}
jobs=${JOBS:-2}
for g in $generators; do case $g in gan | diffusion) ;; *) die "GENERATORS: $g is not gan or diffusion" ;; esac; done
for r in $rows; do case $r in none | gaussian | retrieve | optimize | mix) ;; *) die "ROWS: unknown row $r" ;; esac; done
for c in $columns; do awk -v c="$c" 'BEGIN { exit !(c ~ /^[0-9.]+$/ && c + 0 >= 0 && c + 0 <= 1) }' || die "COLUMNS: $c is not a fraction in [0, 1]"; done
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || die "JOBS=$jobs: a positive count"
exp=$out/fewshot
mkdir -p "$exp/logs"
{
	printf 'started %s on %s (%s cores, load %s)\n' "$(date -u '+%Y-%m-%d %H:%M UTC')" "$(hostname)" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
	printf 'l2 tree %s\n' "${L2_TREE:-$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)}"
	printf 'GENERATORS=%s ROWS=%s COLUMNS=%s SEEDS=%s JOBS=%s\n' "$generators" "$rows" "$columns" "$seeds" "$jobs"
	printf 'GAN_VARS=%s DIFFUSION_VARS=%s\n' "${GAN_VARS:-}" "${DIFFUSION_VARS:-}"
	printf 'workflow.mk'; printf " %q" "$@"; printf '\n'
} > "$exp/settings.txt"
# the pseudo features stay the same for every seed
wf() { make --no-print-directory -f "$root/pipelines/workflow.mk" PSEUDO_FLAGS='--seed 0' "$@"; }
args=("$@")

# the shared stages first (dataset, features, corpus index, reference figures), one writer at a
# time: every chain below then only reads them
printf '%s: features and reference figures -> %s\n' "$me" "$out" >&2
for r in $rows; do
	p=$r; [ "$r" = mix ] && p=optimize
	wf "${args[@]}" PSEUDO="$p" features eval-inputs > "$exp/logs/features-$p.log" 2>&1 ||
		die "the shared stages failed (PSEUDO=$p): see $exp/logs/features-$p.log"
done

# one chain: every column of a (generator, seed, row), in order (the pre-training first);
# appends "generator row pairs seed metrics" lines to its own cells file
chain() {
	local g=$1 s=$2 r=$3 p=$3 mix=0 c setting run gen_vars=()
	if [ "$g" = gan ]; then read -ra gen_vars <<< "${GAN_VARS:-}"; else read -ra gen_vars <<< "${DIFFUSION_VARS:-}"; fi
	[ "$r" = mix ] && p=optimize mix=1
	for c in $columns; do
		case $c in
		0) [ "$r" = none ] && continue; setting=zeroshot ;;
		1 | 1.0 | 1.00) setting=supervised ;;
		*) setting=fewshot ;;
		esac
		local v=("${args[@]}" "${gen_vars[@]}" GENERATOR="$g" SEED="$s" PSEUDO="$p" SETTING="$setting" MIX="$mix")
		[ "$setting" = fewshot ] && v+=(PAIRS="$c")
		[ "$setting" = supervised ] && v+=(PAIRS=1)
		run=$(wf "${v[@]}" run-dir) || return 1
		local eval=eval; [ "$mix" = 1 ] && eval=eval-mix
		wf "${v[@]}" "$run/$eval/metrics.tsv" || return 1
		printf '%s\t%s\t%s\t%s\t%s\n' "$g" "$r" "$c" "$s" "$(basename "$run")/$eval/metrics.tsv"
	done
}

# mix reads the optimize runs: it goes after optimize in the same chain, never beside it
chains=()
for g in $generators; do
	for s in $seeds; do
		for r in $rows; do
			[ "$r" = mix ] && [[ " $rows " == *" optimize "* ]] && continue
			if [ "$r" = optimize ] && [[ " $rows " == *" mix "* ]]; then chains+=("$g $s optimize+mix"); else chains+=("$g $s $r"); fi
		done
	done
done
n=${#chains[@]} started=0 failed=0
t0=$(date +%s)
# a chain's cells file appears only when all of it succeeded: that, not wait's status (a job
# that ended before wait -n was called may be reported by jobs and no longer be waited for),
# says what failed
rm -f "$exp"/cells-*.tsv "$exp"/cells-*.tsv.tmp
progress() { printf '%s: %d/%d chains done (%d min)\n' "$me" $((started - $(jobs -rp | wc -l))) "$n" $((($(date +%s) - t0) / 60)) >&2; }
run_chain() {
	local g=$1 s=$2 rr=$3 name=$1-seed$2-$3 r
	{
		for r in ${rr/+/ }; do chain "$g" "$s" "$r" > "$exp/cells-$g-$s-$r.tsv.tmp" && mv "$exp/cells-$g-$s-$r.tsv.tmp" "$exp/cells-$g-$s-$r.tsv" || exit 1; done
	} > "$exp/logs/$name.log" 2>&1
}
for c in "${chains[@]}"; do
	while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; progress; done
	started=$((started + 1))
	printf '%s: [%d/%d] %s\n' "$me" "$started" "$n" "$c" >&2
	# shellcheck disable=SC2086
	run_chain $c &
done
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n || true; progress; done
wait
for c in "${chains[@]}"; do
	# shellcheck disable=SC2086
	set -- $c
	for r in ${3/+/ }; do
		[ -f "$exp/cells-$1-$2-$r.tsv" ] && continue
		printf '%s: failed: %s seed %s %s (see %s)\n' "$me" "$1" "$2" "$r" "$exp/logs/$1-seed$2-$3.log" >&2
		failed=$((failed + 1))
	done
done
[ "$failed" = 0 ] || exit 1

# the cells in table order
{
	printf 'generator\trow\tpairs\tseed\tmetrics\n'
	for g in $generators; do for r in $rows; do for s in $seeds; do cat "$exp/cells-$g-$s-$r.tsv"; done; done; done
} > "$exp/cells.tsv.tmp"
mv "$exp/cells.tsv.tmp" "$exp/cells.tsv"
"$root/pipelines/experiment-fewshot-report.sh" "$exp"
printf '%s: %d chains in %d min -> %s\n' "$me" "$n" $((($(date +%s) - t0) / 60)) "$exp/index.html" >&2
