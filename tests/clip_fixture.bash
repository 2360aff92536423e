# clip_fixture.bash — what the CLIP encoders' tests share (tests/l2-encode-images.bats,
# tests/l2-encode-text.bats): the tiny random-weight model test_clip --write-models rebuilds
# in both key layouts, and feature streams compared against tests/ref/make_clip.py's.

# clip_models: setup_file's models in $BATS_FILE_TMPDIR; exports OPENAI and HF
clip_models() {
	"$L2_BUILD/tests/test_clip" --write-models "$BATS_FILE_TMPDIR"
	export OPENAI=$BATS_FILE_TMPDIR/openai.safetensors HF=$BATS_FILE_TMPDIR/hf.safetensors
}

# streams_close X Y ATOL — same keys in the same order, max |x - y| <= ATOL
streams_close() {
	l2-cat -f tsv "$1" > x.tsv
	l2-cat -f tsv "$2" > y.tsv
	[ "$(wc -l < x.tsv)" = "$(wc -l < y.tsv)" ] || { echo "record counts differ"; return 1; }
	paste x.tsv y.tsv | awk -F'\t' -v tol="$3" '
	{ if ($1 != $3) { print "key " $1 " vs " $3; exit 1 }
	  n = split($2, x, " "); m = split($4, y, " "); if (n != m) { print "dims differ"; exit 1 }
	  for (i = 1; i <= n; i++) { d = x[i] - y[i]; if (d < 0) d = -d; if (d > w) w = d } }
	END { print "max abs error " w; exit !(w <= tol) }'
}
