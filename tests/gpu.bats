#!/usr/bin/env bats
# bats file_tags=gpu
# --device cuda (the SGEMM offload, lib/core/device.h) against the CPU on the tools that take
# it: CLIP features of the tiny random-weight model within float32 rounding.  Run by
# make check-gpu; make test leaves the gpu tag out.
load test_helper

REF=$L2_ROOT/tests/ref/clip

setup_file() {
	"$L2_BUILD/tests/test_clip" --write-models "$BATS_FILE_TMPDIR" > /dev/null
	export OPENAI=$BATS_FILE_TMPDIR/openai.safetensors
}

setup() {
	cd "$BATS_TEST_TMPDIR" || return 1
	l2-encode-images --device cuda -m "$OPENAI" -o /dev/null "$REF"/img_*.png 2> probe.txt ||
		skip "no CUDA device: $(cat probe.txt)"
}

# max |x - y| over two streams with the same keys in the same order
max_diff() {
	paste <(l2-cat -f tsv "$1") <(l2-cat -f tsv "$2") | awk -F'\t' '
	{ if ($1 != $3) { print "keys differ"; exit 1 }
	  n = split($2, x, " "); split($4, y, " ")
	  for (i = 1; i <= n; i++) { d = x[i] - y[i]; if (d < 0) d = -d; if (d > w) w = d } }
	END { print w + 0 }'
}

@test "l2-encode-images --device cuda: the CPU's features to float32 rounding" {
	mkdir imgs && cp "$REF"/img_*.png imgs/
	l2-encode-images -m "$OPENAI" -o cpu.l2f imgs
	l2-encode-images --device cuda -m "$OPENAI" -o gpu.l2f imgs
	d=$(max_diff cpu.l2f gpu.l2f)
	awk -v d="$d" 'BEGIN { exit !(d <= 1e-5) }' || { echo "max abs difference $d"; false; }
}

@test "l2-encode-text --device cuda: the CPU's features to float32 rounding" {
	printf 'a photo of a cat\na red circle\nsmiling face with open mouth\n' > t.txt
	l2-encode-text -m "$OPENAI" --vocab "$L2_TEST_VOCAB" -o cpu.l2f t.txt
	l2-encode-text --device cuda -m "$OPENAI" --vocab "$L2_TEST_VOCAB" -o gpu.l2f t.txt
	d=$(max_diff cpu.l2f gpu.l2f)
	awk -v d="$d" 'BEGIN { exit !(d <= 1e-5) }' || { echo "max abs difference $d"; false; }
}
