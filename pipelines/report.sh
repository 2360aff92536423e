#!/bin/bash
# report.sh — write the demo's report, $OUT/report.html: held-out image→caption
# retrieval against chance, sample images beside their true caption and the
# captions retrieved for them, the diagnostics of each pseudo-feature mode,
# the CLIP training log and the time each step took.  Self-contained HTML
# (images are files under $OUT/img/), viewable in any browser.
#
# Run by pipelines/demo.mk; reads (W = $OUT/work):
#   $W/eval-test-captions.tsv, $W/eval-corpus.tsv   l2-dataset eval-retrieval
#   $W/test-vs-test-captions.nb.tsv, $W/test-vs-corpus.nb.tsv   l2-cat -f tsv of neighbours
#   $P/report-MODE.tsv                              l2-optimize-pseudo --report-file
#                                                   (P = $W/pseudo, pipelines/pseudo.mk's outputs)
#   $W/images-test/KEY                              exported test images
#   $W/timings.tsv, $W/dataset-stats.tsv, $OUT/extra/*.html (the image halves)
# Environment: OUT W P BIN DATASET MODEL CLIP_FLAGS MODES SAMPLES K PSEUDO_K.
set -euo pipefail

OUT=${OUT:-demo/out}
W=${W:-$OUT/work}
P=${P:-$W/pseudo}
BIN=${BIN:-build/bin}
DATASET=${DATASET:-demo/cache/emoji.lmdb}
MODES=${MODES:-optimize retrieve gaussian}
SAMPLES=${SAMPLES:-24}
K=${K:-10}

esc() { sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' -e 's/"/\&quot;/g'; }
# value of a "name<TAB>value" line
val() { awk -F'\t' -v k="$2" '$1 == k { print $2; exit }' "$1" 2>/dev/null; }
pct() { awk -v x="$1" 'BEGIN { if (x == "") print "–"; else if (100 * x < 1) printf "%.2f%%", 100 * x; else printf "%.1f%%", 100 * x }'; }

mkdir -p "$OUT/img"
tmp=$(mktemp "$OUT/.report.XXXXXX")
trap 'rm -f "$tmp"' EXIT

# ---- sample images: SAMPLES test images spread evenly over the split ----
"$BIN/l2-dataset" list -l --split test "$DATASET" > "$W/test-list.tsv"
ntest=$(wc -l < "$W/test-list.tsv")
samples_html() { # $1: neighbours TSV, $2: how many to show — one awk pass, however many samples
	local nb=$1 show=$2
	awk -F'\t' -v n="$ntest" -v s="$SAMPLES" 'BEGIN { step = n > s ? n / s : 1 }
		{ if (NR - 1 >= next_pick && picked < s) { print ++picked "\t" $0; next_pick = picked * step } }' \
		"$W/test-list.tsv" > "$W/samples.tsv"
	while IFS=$'\t' read -r i key _; do cp "$W/images-test/$key" "$OUT/img/sample-$i.png"; done < "$W/samples.tsv"
	awk -F'\t' -v show="$show" '
		function esc(x) { gsub(/&/, "\\&amp;", x); gsub(/</, "\\&lt;", x); gsub(/>/, "\\&gt;", x); gsub(/"/, "\\&quot;", x); return x }
		FILENAME == ARGV[1] { order[++ns] = $2; idx[$2] = $1; primary[$2] = $4; next }
		FILENAME == ARGV[2] { if ($1 in idx) truth[$1 SUBSEP $2] = 1; next }
		($1 in idx) && $2 <= show { li[$1] = li[$1] sprintf("<li%s>%s <small>%.3f</small></li>",
			(($1 SUBSEP $3) in truth) ? " class=\"hit\"" : "", esc($3), $4) }
		END { for (j = 1; j <= ns; j++) { k = order[j]
			printf "<figure><img src=\"img/sample-%d.png\" width=\"64\" height=\"64\" alt=\"\"><figcaption><b>%s</b><ol>%s</ol></figcaption></figure>\n",
				idx[k], esc(primary[k]), li[k] } }' "$W/samples.tsv" "$W/test-captions-keyed.tsv" "$nb"
}
"$BIN/l2-dataset" captions --keys --split test "$DATASET" > "$W/test-captions-keyed.tsv"

eval_row() { # $1 label, $2 eval tsv
	local f=$2
	[ -f "$f" ] || return 0
	printf '<tr><td>%s</td><td>%s</td><td>%s</td><td><b>%s</b></td><td>%s</td><td><b>%s</b></td><td>%s</td></tr>\n' \
		"$1" "$(val "$f" queries)" "$(val "$f" candidates)" "$(pct "$(val "$f" top1)")" \
		"$(pct "$(val "$f" chance_top1)")" "$(pct "$(val "$f" top5)")" "$(pct "$(val "$f" chance_top5)")"
}

pseudo_rows() {
	for m in $MODES; do
		local f=$P/report-$m.tsv
		[ -f "$f" ] || continue
		awk -F'\t' -v m="$m" '$1 == "all" {
			f = "%.4f"
			printf "<tr><td>%s</td><td>%d</td>", m, $2
			for (i = 3; i <= 10; i += 2) {
				b = ($i == "nan" || $i == "-nan") ? "–" : sprintf(f, $i)
				a = ($(i+1) == "nan" || $(i+1) == "-nan") ? "–" : sprintf(f, $(i+1))
				printf "<td>%s → %s</td>", b, a
			}
			print "</tr>" }' "$f"
	done
}

timings_rows() {
	[ -f "$W/timings.tsv" ] || return 0
	awk -F'\t' '{ t[$1] = $2; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
		END { for (i = 1; i <= n; i++) { printf "<tr><td>%s</td><td>%.1f s</td></tr>\n", order[i], t[order[i]]; s += t[order[i]] }
		      printf "<tr><th>timed steps together</th><th>%.1f s</th></tr>\n", s }' "$W/timings.tsv"
}

{
	cat <<EOF
<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>l2 demo: emoji, small CLIP, retrieval and pseudo text features</title>
<style>
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; color: #222 }
h1 { font-size: 1.5em } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd }
table { border-collapse: collapse; margin: .5em 0 } td, th { border: 1px solid #ccc; padding: .25em .6em; text-align: right }
td:first-child, th:first-child { text-align: left }
.grid { display: flex; flex-wrap: wrap; gap: .8em; align-items: flex-start }
figure { margin: 0; width: 16em; border: 1px solid #ddd; padding: .5em; display: flex; gap: .5em; background: #fafafa }
figure img { image-rendering: pixelated; flex: none; background: #fff }
figcaption { font-size: .82em } figcaption ol { margin: .2em 0; padding-left: 1.3em }
li.hit { color: #060; font-weight: bold } small { color: #888 }
pre { background: #f4f4f4; padding: .6em; overflow-x: auto; font-size: .8em }
.note { color: #555; font-size: .9em }
</style></head><body>
<h1>l2 demo — emoji, a small CLIP trained in C, retrieval and pseudo text features</h1>
<p class="note">Generated $(date -u '+%Y-%m-%d %H:%M UTC') by <code>make demo</code>.
Dataset <code>$(printf '%s' "$DATASET" | esc)</code>: $(val "$W/dataset-stats.tsv" images) images of
<code>$(val "$W/dataset-stats.tsv" source | esc)</code> ($(val "$W/dataset-stats.tsv" train) train,
$(val "$W/dataset-stats.tsv" test) held out, split by emoji), corpus of $(val "$W/dataset-stats.tsv" corpus) lines
($(val "$W/dataset-stats.tsv" corpus.caption) captions, $(val "$W/dataset-stats.tsv" corpus.wordnet) WordNet glosses as distractors).
CLIP: <code>$(printf '%s' "${MODEL:-}" | esc)</code> trained with <code>l2-train-clip $(printf '%s' "${CLIP_FLAGS:-}" | esc)</code>.</p>

<h2>Held-out image → caption retrieval</h2>
<p class="note">Each held-out image's CLIP feature is matched against the text features of the candidates;
a hit is any of the image's own captions (its name or a short name). Chance is the expected
accuracy of a random ranking for the same images.</p>
<table><tr><th>candidates searched</th><th>queries</th><th>candidates</th><th>top-1</th><th>chance</th><th>top-5</th><th>chance</th></tr>
$(eval_row "held-out captions" "$W/eval-test-captions.tsv")
$(eval_row "whole corpus (all captions + distractors)" "$W/eval-corpus.tsv")
</table>

<h2>Samples: held-out images, their name, and the captions retrieved for them</h2>
<p class="note">Top 5 among the held-out captions, with cosine similarity; the image's own captions are in green.</p>
<div class="grid">
EOF
	samples_html "$W/test-vs-test-captions.nb.tsv" 5
	cat <<EOF
</div>

<h2>Pseudo text features of the training images (l2-optimize-pseudo)</h2>
<p class="note">Train images retrieved against the whole corpus (k = ${PSEUDO_K:-8} neighbours), then
turned into pseudo text features h. Columns: before → after the mode's step (for <i>optimize</i>, the
retrieved start → the optimised feature). cos(h, image): agreement with the image feature; cos(h, text):
with the nearest retrieved caption; in-batch top-1: how often h picks its own image in its batch.</p>
<table><tr><th>mode</th><th>images</th><th>cos(h, image)</th><th>cos(h, nearest text)</th><th>in-batch top-1</th><th>loss</th></tr>
$(pseudo_rows)
</table>
EOF
	if [ -n "${MODEL:-}" ] && [ -f "$(dirname "$MODEL")/train.log" ]; then
		printf '<h2>CLIP training (last lines of the log)</h2>\n<pre>'
		tr '\r' '\n' < "$(dirname "$MODEL")/train.log" | grep -v '^\s*$' | tail -n 15 | esc
		printf '</pre>\n'
	fi
	if compgen -G "$OUT/extra/*.html" >/dev/null; then
		for f in "$OUT"/extra/*.html; do cat "$f"; done
	fi
	cat <<EOF
<h2>Time per step</h2>
<table><tr><th>step</th><th>wall time</th></tr>
$(timings_rows)
</table>
<p class="note">Rerun: <code>make demo</code> (a trained CLIP with the same settings is reused from demo/cache).</p>
</body></html>
EOF
} > "$tmp"
chmod 644 "$tmp"
mv "$tmp" "$OUT/report.html"
trap - EXIT
echo "report.sh: $OUT/report.html" >&2
