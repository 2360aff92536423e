#!/usr/bin/env bash
# clip-score.sh IMAGES.l2f TEXTS.l2f — the mean cosine of row i of IMAGES with row i of TEXTS
# (both unit-norm CLIP feature streams of the same length, e.g. l2-sample's images encoded in
# prompt order and the prompts' text features): the "CLIP score" of the few-shot table.
set -euo pipefail
[ $# = 2 ] || { echo "usage: clip-score.sh IMAGES.l2f TEXTS.l2f" >&2; exit 2; }
bin=${L2_BIN:-$(dirname "$0")/../build/bin}
a=$("$bin/l2-cat" --count "$1") b=$("$bin/l2-cat" --count "$2")
[ "$a" = "$b" ] || { echo "clip-score.sh: $1 has $a rows, $2 has $b" >&2; exit 1; }
paste <("$bin/l2-cat" -f tsv "$1" | cut -f2) <("$bin/l2-cat" -f tsv "$2" | cut -f2) |
	awk -F'\t' '{ n = split($1, x, " "); split($2, y, " "); s = 0; for (i = 1; i <= n; i++) s += x[i] * y[i]; t += s }
		END { if (NR == 0) exit 1; printf "%.4f\n", t / NR }'
