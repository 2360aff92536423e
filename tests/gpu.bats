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

# the loss column of l2-train-clip's step lines
losses() { sed -n 's/.* step \([0-9]*\)\/[0-9]*  loss \([0-9.]*\) .*/\1 \2/p' "$1"; }

@test "l2-train-clip --device cuda: the CPU's losses to float32 rounding; the same seed, the same bytes" {
	# 32 images of 65 tokens: the image tower's products (2080 rows) pass the offload threshold
	cfg="--synthetic 64 --width 64 --layers 1 --resolution 32 --patch 4 --context 8 --embed-dim 32 --vocab-size 530"
	cfg="$cfg --batch 32 --steps 4 --log-every 1 --eval-every 0 --seed 3"
	mkdir cpu g1 g2 # one file name: the weights' metadata names the vocabulary file
	l2-train-clip $cfg -o cpu/m.safetensors 2> cpu.log
	l2-train-clip $cfg --device cuda -o g1/m.safetensors 2> g1.log
	l2-train-clip $cfg --device cuda -o g2/m.safetensors 2> g2.log
	cmp g1/m.safetensors g2/m.safetensors
	cmp g1/m.state g2/m.state
	[ "$(losses cpu.log | wc -l)" = 4 ]
	paste -d' ' <(losses cpu.log) <(losses g1.log) | awk '
	{ if ($1 != $3) { print "steps differ"; exit 1 }
	  d = $2 - $4; if (d < 0) d = -d
	  if (d > 2e-3) { print "step " $1 ": loss " $2 " on the CPU, " $4 " on the GPU"; bad = 1 } }
	END { exit bad }'
}
