#!/usr/bin/env bash
# experiment-fewshot-report.sh DIR — the few-shot table of pipelines/experiment-fewshot.sh from
# DIR/cells.tsv (generator, row, pairs, seed, metrics file relative to DIR/..: one workflow
# evaluation each):
#   DIR/table.tsv    generator row pairs n, then mean and sd of fd_clip, clip_score,
#                    r_precision_top1, r_precision_top5 over the seeds (sd: the sample standard
#                    deviation, n - 1; "-" with one seed)
#   DIR/table.md     the three measures as Markdown tables, "mean ± sd" (bench/RESULTS.md)
#   DIR/fd.svg       FD against the pairs fraction, a line per row, bars of one standard
#                    deviation, a panel per generator; DIR/fd.png from it when chromium is
#                    installed (headless screenshot)
#   DIR/index.html   the tables, the plot, the real images' figures, a link to every cell's
#                    evaluation report of each seed, the first seed's sample grids,
#                    DIR/settings.txt
set -euo pipefail
me=experiment-fewshot-report.sh
[ $# = 1 ] && [ "$1" != -h ] && [ "$1" != --help ] || { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
d=$1
[ -f "$d/cells.tsv" ] || { echo "$me: $d/cells.tsv: no such file" >&2; exit 1; }

# one line per cell and seed: generator row pairs seed fd cs rp1 rp5 (and the real figures)
get() { awk -F'\t' -v k="$2" '$1 == k { v = $2 } END { print (v == "" ? "nan" : v) }' "$1"; }
long=$(tail -n +2 "$d/cells.tsv" | while IFS=$'\t' read -r g r p s m; do
	m=$d/../$m
	[ -f "$m" ] || { echo "$me: $m: no such file (cell $g $r $p seed $s)" >&2; exit 1; }
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$g" "$r" "$p" "$s" \
		"$(get "$m" fd_clip)" "$(get "$m" clip_score)" "$(get "$m" r_precision_top1)" "$(get "$m" r_precision_top5)" \
		"$(get "$m" real_fd_clip)" "$(get "$m" real_r_precision_top1)" "$(get "$m" r_precision_chance_top1)" "$m" "$(dirname "$m")"
done)
[ -n "$long" ] || { echo "$me: $d/cells.tsv has no cells" >&2; exit 1; }

# mean and sample sd per (generator, row, pairs), in the order of cells.tsv
printf '%s\n' "$long" | awk -F'\t' '
	{ k = $1 "\t" $2 "\t" $3; if (!(k in n)) order[++K] = k; n[k]++
	  for (i = 5; i <= 8; i++) { s[k, i] += $i; q[k, i] += $i * $i } }
	END { print "generator\trow\tpairs\tn\tfd_mean\tfd_sd\tclip_score_mean\tclip_score_sd\trp_top1_mean\trp_top1_sd\trp_top5_mean\trp_top5_sd"
	  for (j = 1; j <= K; j++) { k = order[j]; line = k "\t" n[k]
	    for (i = 5; i <= 8; i++) { m = s[k, i] / n[k]
	      if (n[k] > 1) { v = (q[k, i] - n[k] * m * m) / (n[k] - 1); sd = sprintf("%.4f", sqrt(v > 0 ? v : 0)) } else sd = "-"
	      line = line sprintf("\t%.4f\t%s", m, sd) }
	    print line } }' > "$d/table.tsv.tmp"
mv "$d/table.tsv.tmp" "$d/table.tsv"

gens=$(tail -n +2 "$d/table.tsv" | cut -f1 | awk '!seen[$0]++')
rows=$(tail -n +2 "$d/table.tsv" | cut -f2 | awk '!seen[$0]++')
cols=$(tail -n +2 "$d/table.tsv" | cut -f3 | sort -g -u)
label() { case $1 in none) echo "no pre-training" ;; gaussian) echo "Gaussian (Lafite)" ;; retrieve) echo "retrieval only" ;;
	optimize) echo "retrieval + optimisation (Lafite2)" ;; mix) echo "Lafite2 + retrieval mixing at sampling" ;; *) echo "$1" ;; esac; }
colname() { awk -v c="$1" 'BEGIN { if (c + 0 == 0) print "zero-shot"; else if (c + 0 == 1) print "100% (supervised)"; else printf "%g%%\n", 100 * c }'; }
# "mean ± sd" of measure column F (5 fd, 7 clip score, 9 top-1) for generator, row, pairs
# (a cell with fewer seeds than the others, as when a run is cut short, says how many)
cell() { awk -F'\t' -v g="$1" -v r="$2" -v p="$3" -v f="$4" -v pm="$5" -v seeds="$seeds" \
	'$1 == g && $2 == r && $3 == p { printf "%.3f", $f; if ($(f + 1) != "-") printf "%s%.3f", pm, $(f + 1); if ($4 < seeds) printf " (%d seed%s)", $4, ($4 > 1 ? "s" : ""); found = 1 }
	 END { if (!found) printf "—" }' "$d/table.tsv"; }
real() { printf '%s\n' "$long" | awk -F'\t' -v g="$1" -v f="$2" '$1 == g { print $f; exit }'; }
seeds=$(printf '%s\n' "$long" | cut -f4 | sort -u | wc -l)

# ---- Markdown ----
{
	for g in $gens; do
		for m in "5 FD of CLIP features to the held-out images ↓" "7 CLIP score ↑" "9 R-precision top-1 ↑"; do
			f=${m%% *}
			printf '\n**%s — %s** (mean ± sd over %s seeds)\n\n| pre-training |' "$g" "${m#* }" "$seeds"
			for c in $cols; do printf ' %s |' "$(colname "$c")"; done
			printf '\n|---|'; for c in $cols; do printf -- '---:|'; done; printf '\n'
			for r in $rows; do
				printf '| %s |' "$(label "$r")"
				for c in $cols; do printf ' %s |' "$(cell "$g" "$r" "$c" "$f" ' ± ')"; done
				printf '\n'
			done
			case $f in
			5) printf '| *real train images* | %s |\n' "$(real "$g" 9)" ;;
			9) printf '| *real held-out images* | %s (chance %s) |\n' "$(real "$g" 10)" "$(real "$g" 11)" ;;
			esac
		done
	done
} > "$d/table.md.tmp"
mv "$d/table.md.tmp" "$d/table.md"

# ---- the plot: a panel per generator, x = the columns at even spacing ----
ng=$(printf '%s\n' $gens | wc -l)
{
	W=600 H=360
	printf '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">\n' $((W * ng)) $H
	printf '<rect width="100%%" height="100%%" fill="white"/>\n'
	i=0
	for g in $gens; do
		tail -n +2 "$d/table.tsv" | awk -F'\t' -v g="$g" -v x0=$((i * W)) -v W=$W -v H=$H -v cols="$cols" -v rows="$rows" -v realfd="$(real "$g" 9)" '
			function esc(s) { gsub(/&/, "\\&amp;", s); gsub(/</, "\\&lt;", s); return s }
			function X(j) { return x0 + 70 + (j - 1) * (W - 300) / (nc > 1 ? nc - 1 : 1) }
			function Y(v) { return 40 + (H - 100) * (hi - v) / (hi - lo) }
			BEGIN { nc = split(cols, C, " "); nr = split(rows, R, " ")
			  split("#1f77b4 #ff7f0e #2ca02c #d62728 #9467bd #8c564b", P, " ")
			  lab["none"] = "no pre-training"; lab["gaussian"] = "Gaussian (Lafite)"; lab["retrieve"] = "retrieval only"
			  lab["optimize"] = "retrieval + optimisation"; lab["mix"] = "+ mixing at sampling"
			  lo = realfd + 0; hi = realfd + 0 }
			$1 == g { m[$2, $3] = $5; sd[$2, $3] = ($6 == "-" ? 0 : $6); have[$2, $3] = 1
			  if ($5 - sd[$2, $3] < lo) lo = $5 - sd[$2, $3]; if ($5 + sd[$2, $3] > hi) hi = $5 + sd[$2, $3] }
			END {
			  pad = (hi - lo) * 0.08 + 1e-9; lo -= pad; hi += pad; if (lo < 0) lo = 0
			  printf "<text x=\"%g\" y=\"20\" font-size=\"14\">%s: FD of CLIP features (held-out) vs pairs</text>\n", x0 + 70, esc(g)
			  printf "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"black\"/>\n", x0 + 60, H - 60, X(nc) + 10, H - 60
			  printf "<line x1=\"%g\" y1=\"40\" x2=\"%g\" y2=\"%g\" stroke=\"black\"/>\n", x0 + 60, x0 + 60, H - 60
			  for (t = 0; t <= 4; t++) { v = lo + t * (hi - lo) / 4
			    printf "<text x=\"%g\" y=\"%g\" text-anchor=\"end\">%.3f</text><line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"#ddd\"/>\n", x0 + 55, Y(v) + 4, v, x0 + 61, Y(v), X(nc) + 10, Y(v) }
			  for (j = 1; j <= nc; j++) { c = C[j] + 0; n = (c == 0 ? "zero-shot" : c == 1 ? "100%" : sprintf("%g%%", 100 * c))
			    printf "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">%s</text>\n", X(j), H - 42, n }
			  printf "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">pairs (fraction of the training images with their caption)</text>\n", X(1) + (X(nc) - X(1)) / 2, H - 22
			  printf "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"gray\" stroke-dasharray=\"5,4\"/>\n", x0 + 61, Y(realfd), X(nc) + 10, Y(realfd)
			  ly = 50; printf "<text x=\"%g\" y=\"%g\" fill=\"gray\">- - real train images</text>\n", X(nc) + 22, ly + nr * 18
			  for (k = 1; k <= nr; k++) { r = R[k]; col = P[(k - 1) % 6 + 1]; path = ""; dx = (k - (nr + 1) / 2) * 3
			    for (j = 1; j <= nc; j++) if (have[r, C[j]]) {
			      x = X(j) + dx; path = path (path == "" ? "M" : " L") sprintf("%.1f %.1f", x, Y(m[r, C[j]]))
			      printf "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>", x, Y(m[r, C[j]] - sd[r, C[j]]), x, Y(m[r, C[j]] + sd[r, C[j]]), col
			      printf "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>", x - 3, Y(m[r, C[j]] - sd[r, C[j]]), x + 3, Y(m[r, C[j]] - sd[r, C[j]]), col
			      printf "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>", x - 3, Y(m[r, C[j]] + sd[r, C[j]]), x + 3, Y(m[r, C[j]] + sd[r, C[j]]), col
			      printf "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", x, Y(m[r, C[j]]), col }
			    if (path != "") printf "<path d=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\"/>\n", path, col
			    printf "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"%s\" stroke-width=\"2\"/><text x=\"%g\" y=\"%g\">%s</text>\n", X(nc) + 22, ly + (k - 1) * 18 - 4, X(nc) + 36, ly + (k - 1) * 18 - 4, col, X(nc) + 40, ly + (k - 1) * 18, esc(lab[r] == "" ? r : lab[r]) } }'
		i=$((i + 1))
	done
	printf '</svg>\n'
} > "$d/fd.svg.tmp"
mv "$d/fd.svg.tmp" "$d/fd.svg"
rm -f "$d/fd.png"
chrome=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -n "$chrome" ]; then
	w=$((600 * ng))
	# a profile of its own: a user's running chromium is left alone
	prof=$(mktemp -d)
	timeout 120 "$chrome" --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$prof" \
		--window-size=$w,360 --screenshot="$(cd "$d" && pwd)/fd.png.tmp.png" "file://$(cd "$d" && pwd)/fd.svg" >/dev/null 2>&1 &&
		[ -s "$d/fd.png.tmp.png" ] && mv "$d/fd.png.tmp.png" "$d/fd.png" ||
		echo "$me: chromium could not draw $d/fd.png (the SVG is there)" >&2
	rm -rf "$prof" "$d/fd.png.tmp.png"
fi

# ---- HTML ----
esc() { sed 's/&/\&amp;/g; s/</\&lt;/g; s/>/\&gt;/g'; }
{
	printf '<!doctype html><html><head><meta charset="utf-8"><title>Few-shot text to image</title>\n'
	printf '<style>body{font-family:sans-serif;margin:2em;max-width:80em} table{border-collapse:collapse;margin:.5em 0 1.5em} td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right} td:first-child,th:first-child{text-align:left}</style></head><body>\n'
	printf '<h1>Few-shot text to image: mean &plusmn; standard deviation over %s seeds</h1>\n' "$seeds"
	printf '<p>Each cell: one sample per distinct held-out caption. FD: Fr&eacute;chet distance of the samples'"'"' CLIP features to the held-out images'"'"' (lower is better); CLIP score: mean cosine of a sample with its caption; R-precision: each held-out image'"'"'s primary caption sampled, retrieving its caption among the held-out captions.</p>\n'
	if [ -f "$d/fd.png" ]; then printf '<img src="fd.png" alt="FD against pairs">\n'; else printf '<img src="fd.svg" alt="FD against pairs">\n'; fi
	for g in $gens; do
		for m in "5 FD (CLIP features) &darr;" "7 CLIP score &uarr;" "9 R-precision top-1 &uarr;"; do
			f=${m%% *}
			printf '<h2>%s: %s</h2><table><tr><th>pre-training</th>' "$g" "${m#* }"
			for c in $cols; do printf '<th>%s</th>' "$(colname "$c")"; done
			printf '</tr>\n'
			for r in $rows; do
				printf '<tr><td>%s</td>' "$(label "$r")"
				for c in $cols; do
					printf '<td>%s' "$(cell "$g" "$r" "$c" "$f" ' &plusmn; ')"
					# OUT/RUN/eval/metrics.tsv, seen from OUT/fewshot/
					printf '%s\n' "$long" | awk -F'\t' -v g="$g" -v r="$r" -v c="$c" '
						$1 == g && $2 == r && $3 == c { n = split($13, a, "/"); printf " <a href=\"../%s/%s/report.html\" title=\"seed %s\">s%s</a>", a[n - 1], a[n], $4, $4 }'
					printf '</td>'
				done
				printf '</tr>\n'
			done
			case $f in
			5) printf '<tr><td><i>real train images</i></td><td>%s</td></tr>\n' "$(real "$g" 9)" ;;
			9) printf '<tr><td><i>real held-out images</i></td><td>%s (chance %s)</td></tr>\n' "$(real "$g" 10)" "$(real "$g" 11)" ;;
			esac
			printf '</table>\n'
		done
	done
	# the sample grids of the first seed, a table per generator like the ones above
	s0=$(printf '%s\n' "$long" | cut -f4 | sort -n | head -1)
	for g in $gens; do
		printf '<h2>%s: samples (seed %s)</h2><table><tr><th>pre-training</th>' "$g" "$s0"
		for c in $cols; do printf '<th>%s</th>' "$(colname "$c")"; done
		printf '</tr>\n'
		for r in $rows; do
			printf '<tr><td>%s</td>' "$(label "$r")"
			for c in $cols; do
				printf '%s\n' "$long" | awk -F'\t' -v g="$g" -v r="$r" -v c="$c" -v s="$s0" '
					$1 == g && $2 == r && $3 == c && $4 == s { n = split($13, a, "/"); printf "<img src=\"../%s/%s/grid.png\" style=\"image-rendering:pixelated;width:8em\">", a[n - 1], a[n]; found = 1 }
					END { if (!found) printf "—" }' | sed 's/^/<td>/; s/$/<\/td>/'
			done
			printf '</tr>\n'
		done
		printf '</table>\n'
		first=$(printf '%s\n' "$long" | awk -F'\t' -v g="$g" '$1 == g { print $13; exit }')
		if [ -f "$first/grid-prompts.txt" ]; then
			printf '<p>Rows of each grid: the held-out captions</p><ol>'; esc < "$first/grid-prompts.txt" | sed 's/^/<li>/; s/$/<\/li>/'; printf '</ol>\n'
		fi
	done
	if [ -f "$d/settings.txt" ]; then printf '<h2>Settings</h2><pre>'; esc < "$d/settings.txt"; printf '</pre>\n'; fi
	printf '</body></html>\n'
} > "$d/index.html.tmp"
mv "$d/index.html.tmp" "$d/index.html"
