#!/usr/bin/env bats
# pipelines/r-precision.sh: the real held-out images score as l2-dataset eval-retrieval
# scores them; a model's samples are named by image key and scored the same way; usage.
load test_helper
load gan_fixture

setup_file() { gan_fixture_with_clip; }

@test "usage" {
	run "$L2_ROOT/pipelines/r-precision.sh"
	assert_failure 2; assert_output --partial "r-precision.sh"
	run "$L2_ROOT/pipelines/r-precision.sh" "$DS" --real
	assert_failure 2
}

@test "real held-out images: the same numbers as encode, retrieve, eval-retrieval by hand" {
	run "$L2_ROOT/pipelines/r-precision.sh" -m "$CLIP" --vocab "$L2_TEST_VOCAB" -o w "$DS" --real
	assert_success
	assert_line --partial "queries	4"
	l2-dataset captions --unique --split test "$DS" > caps.txt
	l2-encode-text --quiet -m "$CLIP" --vocab "$L2_TEST_VOCAB" caps.txt | l2-build-index --quiet -o caps.idx
	l2-dataset export-images --quiet --rgb --split test -o real "$DS"
	l2-encode-images --quiet -m "$CLIP" real | l2-retrieve -i caps.idx -k 3 | l2-dataset eval-retrieval --split test "$DS" > want.txt
	[ "$output" = "$(cat want.txt)" ]
}

@test "a model's samples, one per held-out image, named by key" {
	l2-train-gan --quiet -d "$DS" -o run $GAN_TINY --steps 2 --tick 2
	run "$L2_ROOT/pipelines/r-precision.sh" -m "$CLIP" --vocab "$L2_TEST_VOCAB" -o w "$DS" run/G_ema.safetensors --seed 3
	assert_success
	assert_line --partial "queries	4"
	assert_line --regexp "^top1	[01]\.[0-9]{4}$"
	# the samples are there under the held-out images' keys
	[ "$(find w/samples -name '*.png' | wc -l)" = 4 ]
	l2-dataset list --split test "$DS" | while read -r k; do [ -f "w/samples/$k" ]; done
	# scoring the same files again gives the same numbers
	run2=$("$L2_ROOT/pipelines/r-precision.sh" -m "$CLIP" --vocab "$L2_TEST_VOCAB" "$DS" --samples w/samples)
	[ "$output" = "$run2" ]
}
