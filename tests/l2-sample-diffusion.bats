#!/usr/bin/env bats
# l2-sample with diffusion models (random-weight tiny ones that test_generate
# writes): every sampler, schedule and guidance option, --x0-grid, the
# statistics line, determinism (same seed: same bytes; other --batch /
# --threads: the same bytes), and refusals (options of the other model kind or
# of another sampler, bad values, a guide model of another kind or size,
# corrupt or truncated weights: one line, exit status, no output).
load test_helper
load gan_fixture

setup_file() {
	make_gan_fixture "$BATS_FILE_TMPDIR/fx" 48
	# random-weight tiny models (the network matters: output gain 0.5)
	local W="$L2_BUILD/tests/test_generate --write-diffusion"
	$W "$BATS_FILE_TMPDIR/d16.safetensors" 16 48 1
	$W "$BATS_FILE_TMPDIR/g16.safetensors" 16 48 2
	$W "$BATS_FILE_TMPDIR/d8.safetensors" 8 48 3
	l2-train-gan --quiet -d "$BATS_FILE_TMPDIR/fx/ds.lmdb" -o "$BATS_FILE_TMPDIR/gan" $GAN_TINY --steps 2 --tick 2
	export FX=$BATS_FILE_TMPDIR/fx M=$BATS_FILE_TMPDIR/d16.safetensors GUIDE=$BATS_FILE_TMPDIR/g16.safetensors
	export M8=$BATS_FILE_TMPDIR/d8.safetensors G=$BATS_FILE_TMPDIR/gan/G_ema.safetensors
	export D=$BATS_FILE_TMPDIR/gan/D.safetensors
}

# sample a few images to FILE with extra options
s() { local out=$1; shift; l2-sample --quiet -m "$M" -n 2 --steps 6 --grid "$out" "$@" "$FX/caption.l2f"; }

@test "diffusion: grid and folder output, deterministic, seed matters, statistics line" {
	run l2-sample -m "$M" -n 3 --grid a.png "$FX/caption.l2f"
	assert_success
	assert_output --partial "24 images for 8 conditions -> a.png (dpmpp-2m, 16 steps, 32.0 network evaluations per image"
	[ "$(png_size a.png)" = "$((2 + 3 * 18))x$((2 + 8 * 18))" ]
	l2-sample --quiet -m "$M" -n 3 --grid b.png < "$FX/caption.l2f"
	cmp a.png b.png
	l2-sample --quiet -m "$M" -n 3 --grid c.png --seed 1 "$FX/caption.l2f"
	! cmp -s a.png c.png
	l2-sample --quiet -m "$M" -n 2 -o d "$FX/caption.l2f"
	[ "$(ls d | wc -l)" = 17 ]
	head -1 d/prompts.txt | grep -q "^0000	a blue circle$"
	[ "$(png_size d/0007-01.png)" = 16x16 ]
	run l2-sample -m "$M" -n 1 --guidance 1 --sampler heun --steps 5 --grid e.png "$FX/caption.l2f"
	assert_output --partial "(heun, 5 steps, 9.0 network evaluations per image"
}

@test "every sampler and schedule option runs and changes what it should" {
	for smp in euler heun dpmpp-2m euler-a dpmpp-2m-sde; do
		s $smp.png --sampler $smp
		[ "$(png_size $smp.png)" = "$((2 + 2 * 18))x$((2 + 8 * 18))" ]
	done
	! cmp -s euler.png heun.png
	! cmp -s dpmpp-2m.png euler-a.png
	s exp.png --schedule exponential
	! cmp -s dpmpp-2m.png exp.png
	s rho.png --rho 3
	s sig.png --sigma-min 0.01 --sigma-max 40
	! cmp -s dpmpp-2m.png rho.png
	! cmp -s dpmpp-2m.png sig.png
	s churn.png --sampler heun --churn 5 --s-min 0.05 --s-max 20 --s-noise 1.005
	! cmp -s heun.png churn.png
	s eta.png --sampler euler-a --eta 0.5
	s eta0.png --sampler euler-a --eta 0
	s sde.png --sampler dpmpp-2m-sde --eta 0.7 --s-noise 0.9
	! cmp -s euler-a.png eta.png
	! cmp -s dpmpp-2m-sde.png sde.png
	# eta 0 is plain Euler
	cmp eta0.png euler.png
}

@test "guidance: weight, interval, autoguidance, clamping, x0 grid" {
	s g1.png --guidance 1
	s g15.png
	s g3.png --guidance 3
	! cmp -s g1.png g15.png
	! cmp -s g15.png g3.png
	# an interval holding every noise level is plain guidance; a narrow one is not
	s all.png --guidance 3 --guidance-interval 0,inf
	cmp g3.png all.png
	s mid.png --guidance 3 --guidance-interval 0.5,5
	! cmp -s g3.png mid.png
	run l2-sample -m "$M" -n 2 --steps 6 --guidance 3 --guidance-interval 100,200 --grid none.png "$FX/caption.l2f"
	assert_output --partial "6.0 network evaluations per image"
	cmp none.png g1.png
	s auto.png --guide-model "$GUIDE" --guidance 2
	! cmp -s auto.png g15.png
	s clamp.png --clamp-x0
	[ -s clamp.png ]
	s x.png --sampler heun --steps 4 --x0-grid steps.png
	# a row per image (16), a column per step (4) and the final sample
	[ "$(png_size steps.png)" = "$((2 + 5 * 18))x$((2 + 16 * 18))" ]
}

@test "other --batch and --threads give the same bytes, for every sampler and guidance" {
	for smp in euler heun dpmpp-2m euler-a dpmpp-2m-sde; do
		s a.png --sampler $smp --guidance 2 --guidance-interval 0.2,10 --batch 16 --threads 2
		s b.png --sampler $smp --guidance 2 --guidance-interval 0.2,10 --batch 3 --threads 1
		s c.png --sampler $smp --guidance 2 --guidance-interval 0.2,10 --batch 1 --threads 2
		cmp a.png b.png
		cmp a.png c.png
	done
	s a.png --guide-model "$GUIDE" --guidance 2 --batch 5
	s b.png --guide-model "$GUIDE" --guidance 2 --batch 16 --threads 1
	cmp a.png b.png
}

@test "prompts and --retrieve work for diffusion models" {
	l2-build-index --quiet -o idx "$FX/caption.l2f"
	s plain.png
	s r0.png --retrieve idx --retrieve-weight 0
	s r5.png --retrieve idx --retrieve-k 3
	cmp plain.png r0.png
	! cmp -s plain.png r5.png
}

# a refusal: exit status $1, one line naming $2, and no output file
refused() {
	local code=$1 what=$2; shift 2
	run l2-sample "$@" --grid out.png "$FX/caption.l2f"
	assert_failure "$code"
	assert_output --partial "$what"
	[ "${#lines[@]}" = 1 ]
	[ ! -e out.png ]
}

@test "refusals: options of the other kind or sampler, bad values, wrong guide models, damaged weights" {
	refused 2 "--truncation applies to GAN generators" -m "$M" --truncation 0.7
	refused 2 "--sampler applies to diffusion models" -m "$G" --sampler euler
	refused 2 "--guidance applies to diffusion models" -m "$G" --guidance 2
	refused 2 "--x0-grid applies to diffusion models" -m "$G" --x0-grid x.png
	refused 2 "--eta applies to euler-a and dpmpp-2m-sde" -m "$M" --sampler heun --eta 0.5
	refused 2 "--churn applies to heun" -m "$M" --churn 3
	refused 2 "give --churn" -m "$M" --sampler heun --s-max 3
	refused 2 "--s-noise applies" -m "$M" --s-noise 1.1
	refused 2 "give --churn" -m "$M" --sampler heun --s-noise 1.1
	refused 2 "--rho applies to the karras schedule" -m "$M" --schedule exponential --rho 3
	refused 2 "--guide-model has no effect at --guidance 1" -m "$M" --guidance 1 --guide-model "$GUIDE"
	refused 2 "--guidance-interval has no effect" -m "$M" --guidance 1 --guidance-interval 1,2
	refused 1 "--sampler: 'ddim'" -m "$M" --sampler ddim
	refused 1 "--schedule" -m "$M" --schedule linear
	refused 1 "--steps" -m "$M" --steps 0
	for iv in 1 2,1 -1,2 a,b 1,2,3 ,; do
		refused 1 "--guidance-interval: '$iv'" -m "$M" --guidance 2 --guidance-interval "$iv"
	done
	refused 1 "sigma-max" -m "$M" --sigma-min 10 --sigma-max 5
	refused 1 "eta" -m "$M" --sampler euler-a --eta -1
	refused 1 "needs a diffusion model" -m "$M" --guide-model "$G"
	refused 1 "the guide model draws" -m "$M" --guide-model "$M8"
	refused 1 "not a safetensors file" -m "$FX/caption.l2f"
	python3 -c 'import struct, sys; h = b"{}"; sys.stdout.buffer.write(struct.pack("<Q", len(h)) + h)' > empty.safetensors
	refused 1 "not an l2 generator" -m empty.safetensors
	refused 1 "not a generator" -m "$D"
	head -c 3000 "$M" > trunc.safetensors
	refused 1 "trunc.safetensors" -m trunc.safetensors
	cp "$M" flip.safetensors
	printf 'X' | dd of=flip.safetensors bs=1 seek=$(( $(stat -c %s "$M") - 9 )) conv=notrunc 2> /dev/null
	refused 1 "flip.safetensors" -m flip.safetensors
	refused 1 "flip.safetensors" -m "$M" --guidance 2 --guide-model flip.safetensors
}
