#!/usr/bin/env bash
# workflow-report.sh — the HTML pages of pipelines/workflow.mk's evaluations.
#
#   workflow-report.sh run EVALDIR RUNDIR   one run's page (EVALDIR/metrics.tsv, grid.png,
#                                           RUNDIR's loss.png) on standard output
#   workflow-report.sh index OUT            every OUT/*/eval/metrics.tsv in one table
set -euo pipefail
usage() { sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
esc() { sed 's/&/\&amp;/g; s/</\&lt;/g; s/>/\&gt;/g'; }
# value of NAME in a metrics file, or "-"
get() { awk -F'\t' -v k="$2" '$1 == k { v = $2 } END { print (v == "" ? "-" : v) }' "$1"; }
head_html() {
	printf '<!doctype html><html><head><meta charset="utf-8"><title>%s</title>\n' "$1"
	printf '<style>body{font-family:sans-serif;margin:2em;max-width:70em} table{border-collapse:collapse} td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right} td:first-child,th:first-child{text-align:left}</style></head><body>\n'
}
[ $# -ge 2 ] || usage
case $1 in
run)
	[ $# = 3 ] || usage
	e=$2 run=$3 m=$2/metrics.tsv
	head_html "$(basename "$run")"
	printf '<h1>%s</h1>\n' "$(basename "$run" | esc)"
	printf '<p>%s, setting %s, %s of the pairs; %s held-out captions, one sample each.</p>\n' \
		"$(get "$m" generator)" "$(get "$m" setting)" "$(get "$m" pairs)" "$(get "$m" held_out_captions)"
	printf '<table><tr><th>measure</th><th>this run</th><th>real images</th></tr>\n'
	printf '<tr><td>FD of CLIP features to the held-out images</td><td>%s</td><td>%s (train images)</td></tr>\n' "$(get "$m" fd_clip)" "$(get "$m" real_fd_clip)"
	printf '<tr><td>CLIP score (sample vs its caption)</td><td>%s</td><td>-</td></tr>\n' "$(get "$m" clip_score)"
	for r in top1 top5; do
		grep -q "^r_precision_$r	" "$m" || continue
		printf '<tr><td>R-precision %s (chance %s)</td><td>%s</td><td>%s</td></tr>\n' "$r" \
			"$(get "$m" r_precision_chance_$r)" "$(get "$m" r_precision_$r)" "$(get "$m" real_r_precision_$r)"
	done
	if grep -q '^fid_inception' "$m"; then
		printf '<tr><td>Inception FID</td><td>%s</td><td>-</td></tr><tr><td>KID</td><td>%s</td><td>-</td></tr>\n' \
			"$(get "$m" fid_inception)" "$(get "$m" kid)"
	fi
	printf '</table>\n<h2>Samples</h2><p>A row per held-out caption (the first ones), columns are seeds:</p>\n<ol>'
	esc < "$e/grid-prompts.txt" | sed 's/^/<li>/; s/$/<\/li>/'
	printf '</ol><img src="grid.png" style="image-rendering:pixelated;width:32em">\n'
	[ -f "$run/loss.png" ] && printf '<h2>Training</h2><img src="../loss.png" width="480">\n'
	printf '</body></html>\n'
	;;
index)
	[ $# = 2 ] || usage
	head_html "l2 workflow runs"
	printf '<h1>Workflow runs in %s</h1>\n' "$(printf '%s' "$2" | esc)"
	printf '<p>One sample per distinct held-out caption; FD over CLIP features (lower is better); R-precision: each held-out image'"'"'s primary caption sampled and retrieving among the held-out captions.</p>\n'
	printf '<table><tr><th>run</th><th>generator</th><th>setting</th><th>pairs</th><th>FD (CLIP)</th><th>CLIP score</th><th>R-prec. top-1</th><th>chance</th><th>Inception FID</th></tr>\n'
	real=
	for m in "$2"/*/eval/metrics.tsv "$2"/*/eval-mix/metrics.tsv; do
		[ -f "$m" ] || continue
		d=$(dirname "$m")
		printf '<tr><td><a href="%s/report.html">%s</a></td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n' \
			"$(basename "$(dirname "$d")")/$(basename "$d")" "$(basename "$(dirname "$d")")$([ "$(get "$m" mixing)" = 1 ] && echo ' (mixing)')" "$(get "$m" generator)" "$(get "$m" setting)" \
			"$(get "$m" pairs)" "$(get "$m" fd_clip)" "$(get "$m" clip_score)" "$(get "$m" r_precision_top1)" \
			"$(get "$m" r_precision_chance_top1)" "$(get "$m" fid_inception)"
		real=$m
	done
	[ -n "$real" ] && printf '<tr><td>real images</td><td></td><td></td><td></td><td>%s</td><td>-</td><td>%s</td><td>%s</td><td>-</td></tr>\n' \
		"$(get "$real" real_fd_clip)" "$(get "$real" real_r_precision_top1)" "$(get "$real" real_r_precision_chance_top1)"
	printf '</table></body></html>\n'
	;;
*) usage ;;
esac
