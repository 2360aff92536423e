#!/usr/bin/env bats
# l2-sample: conditions from streams (file or standard input) and prompts,
# grid and folder outputs, determinism, truncation, retrieval mixing, and
# refusals (wrong dimension, corrupt or non-generator weights).
load test_helper
load gan_fixture

setup_file() {
	gan_fixture_with_clip
	l2-train-gan --quiet -d "$DS" -o "$BATS_FILE_TMPDIR/run" $GAN_TINY --steps 3 --tick 3
	export G=$BATS_FILE_TMPDIR/run/G_ema.safetensors
	export RUN=$BATS_FILE_TMPDIR/run
}

@test "help, version, bad options" {
	run l2-sample --help
	assert_success; assert_output --partial "usage: l2-sample"
	run l2-sample --version
	assert_success
	run l2-sample --bogus
	assert_failure 2
	run l2-sample --grid x.png "$FX/caption.l2f"
	assert_failure 2; assert_output --partial "-m FILE"
	run l2-sample -m "$G" "$FX/caption.l2f"
	assert_failure 2; assert_output --partial "--grid"
	run l2-sample -m "$G" --prompt "a red circle" --grid x.png
	assert_failure 2; assert_output --partial "--clip"
	run l2-sample -m "$G" --retrieve-weight 2 --grid x.png "$FX/caption.l2f"
	assert_failure 2
}

@test "a grid from a stream: file and standard input give the same bytes; size follows -n" {
	l2-sample --quiet -m "$G" -n 3 --grid a.png "$FX/caption.l2f"
	l2-sample --quiet -m "$G" -n 3 --grid b.png < "$FX/caption.l2f"
	cmp a.png b.png
	# 8 conditions x 3 images of 16 px, 2 px borders
	[ "$(png_size a.png)" = "$((2 + 3 * 18))x$((2 + 8 * 18))" ]
}

@test "folder output: predictable names, prompts.txt; deterministic, seed and truncation matter" {
	l2-sample --quiet -m "$G" -n 2 -o d1 "$FX/caption.l2f"
	l2-sample --quiet -m "$G" -n 2 -o d2 "$FX/caption.l2f"
	l2-sample --quiet -m "$G" -n 2 -o d3 --seed 5 "$FX/caption.l2f"
	l2-sample --quiet -m "$G" -n 2 -o d4 --truncation 0.5 "$FX/caption.l2f"
	[ "$(ls d1 | wc -l)" = 17 ]
	assert_file_exist d1/0000-00.png d1/0000-01.png d1/0007-01.png
	head -1 d1/prompts.txt | grep -q "^0000	a blue circle$"
	diff -r d1 d2
	! cmp -s d1/0003-01.png d3/0003-01.png
	! cmp -s d1/0003-01.png d4/0003-01.png
	[ "$(png_size d1/0000-00.png)" = 16x16 ]
}

@test "prompts encoded with --clip (the vocabulary named, or l2's own by default)" {
	printf 'a red circle\n\na blue square\n' > prompts.txt
	run l2-sample -m "$G" --clip "$CLIP" --vocab "$L2_TEST_VOCAB" --prompts prompts.txt -n 2 -o p
	assert_success
	[ "$(cat p/prompts.txt | wc -l)" = 2 ]
	env -u L2_CLIP_VOCAB l2-sample --quiet -m "$G" --clip "$CLIP" --prompt "a red circle" --prompt "a blue square" -n 2 -o q
	diff -r p q
}

@test "--retrieve mixes with caption features; weight 0 is the plain condition" {
	l2-build-index --quiet -o idx "$FX/caption.l2f"
	l2-sample --quiet -m "$G" -n 2 --grid plain.png "$FX/pseudo.l2f"
	l2-sample --quiet -m "$G" -n 2 --grid r0.png --retrieve idx --retrieve-weight 0 "$FX/pseudo.l2f"
	l2-sample --quiet -m "$G" -n 2 --grid r5.png --retrieve idx --retrieve-k 3 "$FX/pseudo.l2f"
	cmp plain.png r0.png
	! cmp -s plain.png r5.png
}

@test "refusals: wrong dimension, wrong kind, corrupt or non-generator weights, missing files" {
	make_npy p8.npy 3 8
	l2-cat --from-npy p8.npy --kind text-feature -o p8.l2f
	run l2-sample -m "$G" --grid x.png p8.l2f
	assert_failure 1; assert_output --partial "8-dimensional"
	[ ! -e x.png ]
	run l2-sample -m "$RUN/D.safetensors" --grid x.png "$FX/caption.l2f"
	assert_failure 1; assert_output --partial "not a generator"
	run l2-sample -m "$CLIP" --grid x.png "$FX/caption.l2f"
	assert_failure 1; assert_output --partial "not an l2 generator"
	head -c 2000 "$G" > trunc.safetensors
	run l2-sample -m trunc.safetensors --grid x.png "$FX/caption.l2f"
	assert_failure 1; assert_output --partial "trunc.safetensors"
	cp "$G" flip.safetensors
	# complement one byte of tensor data (a fixed byte value could already be there)
	at=$(( $(stat -c %s "$G") - 7 )) b=$(od -An -tu1 -j "$at" -N1 "$G" | tr -d ' ')
	printf "\\$(printf %o $(( 255 - b )))" | dd of=flip.safetensors bs=1 seek=$at conv=notrunc 2> /dev/null
	run l2-sample -m flip.safetensors --grid x.png "$FX/caption.l2f"
	assert_failure 1; assert_output --partial "flip.safetensors"
	run l2-sample -m nothere.safetensors --grid x.png "$FX/caption.l2f"
	assert_failure 1; assert_output --partial "nothere.safetensors"
	run l2-sample -m "$G" --grid x.png nothere.l2f
	assert_failure 1; assert_output --partial "nothere.l2f"
	[ ! -e x.png ]
}
