#!/usr/bin/env bats
# pipelines/experiment-diffusion.sh end to end at toy size: every table of its report is
# filled (presets, samplers, guidance, the long run stopped and resumed, GAN, the image-space and conditioning forms), and a rerun reuses what exists.
load test_helper
load gan_fixture

setup_file() { gan_fixture_with_clip; }

@test "a toy run fills every table; a rerun reuses trainings and scores" {
	mkdir -p w
	l2-dataset export-images --quiet --rgb --split test -o real "$DS"
	l2-encode-images --quiet -m "$CLIP" real > w/test-images.l2f
	export BIN=$L2_BUILD/bin DATASET=$DS MODEL=$CLIP VOCAB=$L2_TEST_VOCAB W=$PWD/w EXP=$PWD/exp RESULTS=$PWD/diffusion.md
	export BUDGET=0.01 PRESETS=tiny EXP_MODEL_PRESET=tiny SAMPLERS="euler heun" STEPS=2 GUIDANCE="1 2" THREADS=1 LONG_STEPS=8 LONG_AT=4
	export DIFF_FLAGS="--resolution 16 --channels 8 --mult 1,2 --attn-res none --batch 4 --grid 1x1" GAN_FLAGS="$GAN_TINY"
	run "$L2_ROOT/pipelines/experiment-diffusion.sh"
	assert_success
	assert_output --partial "## (e) GAN against diffusion"
	grep -q '^| tiny | 10 | ' diffusion.md
	grep -q '^| heun | 2 | 6 | ' diffusion.md
	grep -q '^| 2 | 0.2,5 | ' diffusion.md
	grep -q '^| stopped at step 4, EMA 0.05 | 4 | ' diffusion.md
	grep -q '^| end, EMA 0.10 | 8 | ' diffusion.md
	# the stopped point is a copy of the run at step 4; the run itself went on to 8
	[ "$(tail -1 exp/long-tiny-at/log.tsv | cut -f1)" = 4 ] && [ "$(tail -1 exp/long-tiny/log.tsv | cut -f1)" = 8 ]
	! cmp -s exp/long-tiny-at/model_ema-0.050.safetensors exp/long-tiny/model_ema-0.050.safetensors
	[ -s exp/long-tiny-at-grid.png ] && [ -s exp/long-tiny-grid.png ]
	grep -q '^| GAN (demo network, G_ema) | 10 | ' diffusion.md
	grep -q '^| pixels 64x64, patch 2 | 10 | ' diffusion.md
	grep -q '^| pixels 32x32, 4 cross-attention tokens | 10 | ' diffusion.md
	grep -q '^Latent diffusion: not run' diffusion.md
	! grep -q 'nan' diffusion.md
	cp diffusion.md first.md
	run "$L2_ROOT/pipelines/experiment-diffusion.sh"
	assert_success
	refute_output --partial "experiment-diffusion: training"
	refute_output --partial "experiment-diffusion: scoring"
	refute_output --partial "experiment-diffusion: long run"
	diff <(sed 1,3d first.md) <(sed 1,3d diffusion.md)
	# (f) alone, from what exists: only its table
	PRESETS= SAMPLERS= GUIDANCE= EXP_GAN=0 LONG=0 RESULTS=$PWD/forms.md run "$L2_ROOT/pipelines/experiment-diffusion.sh"
	assert_success
	refute_output --partial "experiment-diffusion: training"
	assert_output --partial "## (f) image space"
	refute_output --partial "## (a)"
	refute_output --partial "## (e)"
	refute_output --partial "## (d)"
	grep -q '^| pixels 32x32, modulation | 10 | ' forms.md
}
