#!/usr/bin/env bats
# Latent diffusion end to end with random-weight autoencoders: the fixture's
# images encoded once (l2-encode-latents), l2-train-diffusion --vae trains on
# the latents and records their VAE, l2-sample --vae decodes its samples; the
# wrong VAE, missing or incomplete latents and pixel-only options are refused.
load test_helper
load gan_fixture

TINY="--preset tiny --cond text --batch 4 --tick 4 --grid 2x2 --sample-steps 3 --threads 1 --quiet"

setup_file() {
	gan_fixture_with_vae
	(cd "$BATS_FILE_TMPDIR/fx" && l2-encode-latents --quiet --vae ../vae/kl.safetensors -r 64 ds.lmdb &&
		l2-encode-latents --quiet --vae ../vae/taesd_encoder.safetensors,../vae/taesd_decoder.safetensors -r 32 \
			-n tae ds.lmdb)
}

setup() {
	cd "$BATS_TEST_TMPDIR" || return 1
}

meta() { python3 -c 'import json, struct, sys; f = open(sys.argv[1], "rb"); n = struct.unpack("<Q", f.read(8))[0]; print(json.loads(f.read(n))["__metadata__"].get(sys.argv[2], ""))' "$1" "$2"; }

@test "KL latents: trains on 4x8x8 latents, records the VAE, samples decode to 64x64; --resume continues bit-identically" {
	run l2-train-diffusion -d "$FX/ds.lmdb" -o run --vae "$V/kl.safetensors" --steps 8 $TINY
	assert_success
	sha=$(sha256sum "$V/kl.safetensors" | cut -d' ' -f1)
	[[ "$(meta run/model_ema-0.050.safetensors l2.latent)" == *"\"vae_sha256\":\"$sha\""* ]]
	[[ "$(meta run/model.safetensors l2.diffusion.config)" == *'"res":8,"cimg":4'* ]]
	# the tick grid: real 64x64 images beside decoded samples
	[ "$(png_size run/grid.png)" = "200x134" ]
	run l2-sample -m run/model_ema-0.050.safetensors --vae "$V/kl.safetensors" -n 2 --steps 3 --grid s.png "$FX/caption.l2f"
	assert_success
	[ "$(png_size s.png)" = "134x530" ]
	run l2-sample -m run/model_ema-0.050.safetensors --vae "$V/kl_ldm.safetensors" -n 2 --steps 3 --grid t.png "$FX/caption.l2f"
	assert_failure 1
	assert_output --partial "not the VAE the latents were made with"
	assert_file_not_exists t.png
	# 4 steps, then 4 more: the same state as 8 straight
	l2-train-diffusion -d "$FX/ds.lmdb" -o half --vae "$V/kl.safetensors" --steps 8 --stop-after 4 $TINY
	l2-train-diffusion -d "$FX/ds.lmdb" -o half --vae "$V/kl.safetensors" --steps 8 --resume $TINY
	cmp run/state.safetensors half/state.safetensors
	# resuming with another VAE is refused
	run l2-train-diffusion -d "$FX/ds.lmdb" -o half --vae "$V/kl_ldm.safetensors" --steps 9 --resume $TINY
	assert_failure 1
}

@test "TAESD's two files: latents of 32x32 images (4x4x4), patch 1, sampled and decoded to 32x32" {
	run l2-train-diffusion -d "$FX/ds.lmdb" -o tr --vae "$V/taesd_encoder.safetensors,$V/taesd_decoder.safetensors" \
		--latents tae --mult 1,2 --attn-res 2 --steps 4 $TINY
	assert_success
	run l2-sample -m tr/model.safetensors --vae "$V/taesd_encoder.safetensors,$V/taesd_decoder.safetensors" -n 1 \
		--steps 2 --grid s.png "$FX/caption.l2f"
	assert_success
	[ "$(png_size s.png)" = "36x274" ]
}

@test "refusals: another VAE than the latents', no latents, pixel-only options" {
	run l2-train-diffusion -d "$FX/ds.lmdb" -o r1 --vae "$V/kl_ldm.safetensors" --steps 2 $TINY
	assert_failure 1
	assert_output --partial "not the VAE the latents were made with"
	assert_file_not_exists r1/model.safetensors
	run l2-train-diffusion -d "$FX/ds.lmdb" -o r2 --vae "$V/kl.safetensors" --latents nothing --steps 2 $TINY
	assert_failure 1
	assert_output --partial "no feature set 'nothing' of VAE latents"
	run l2-train-diffusion -d "$FX/ds.lmdb" -o r3 --vae "$V/kl16.safetensors" --steps 2 $TINY
	assert_failure 1
	run l2-train-diffusion -d "$FX/ds.lmdb" -o r4 --vae "$V/kl.safetensors" --resolution 64 --steps 2 $TINY
	assert_failure 2
	run l2-train-diffusion -d "$FX/ds.lmdb" -o r4 --vae "$V/kl.safetensors" --xflip --steps 2 $TINY
	assert_failure 2
	run l2-train-diffusion -d "$FX/ds.lmdb" -o r4 --latents latent --steps 2 $TINY
	assert_failure 2
	assert_file_not_exists r4
}

@test "pixel models: --patch 2 at 32x32 and --cond-tokens train and sample" {
	run l2-train-diffusion -d "$FX/ds.lmdb" -o p2 --resolution 32 --patch 2 --steps 4 $TINY
	assert_success
	[[ "$(meta p2/model.safetensors l2.patch)" == 2 ]]
	run l2-sample -m p2/model.safetensors -n 1 --steps 2 --grid s.png "$FX/caption.l2f"
	assert_success
	[ "$(png_size s.png)" = "36x274" ]
	run l2-train-diffusion -d "$FX/ds.lmdb" -o ct --resolution 16 --cond-tokens 3 --steps 4 $TINY
	assert_success
	[[ "$(meta ct/model.safetensors l2.diffusion.config)" == *'"cond_tokens":3'* ]]
	run l2-sample -m ct/model.safetensors -n 1 --steps 2 --grid s.png "$FX/caption.l2f"
	assert_success
	run l2-train-diffusion -d "$FX/ds.lmdb" -o bad --resolution 16 --patch 3 --steps 2 $TINY
	assert_failure 2
}
