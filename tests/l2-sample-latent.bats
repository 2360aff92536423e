#!/usr/bin/env bats
# l2-sample with a latent diffusion model: the fixture's images encoded by a
# random-weight VAE (l2-encode-latents), a random-weight latent model that
# carries their description (test_diffusion_float --write-latent-model);
# --vae decodes its samples, and a VAE whose SHA-256 differs, a missing
# --vae and --vae with a pixel model are refused.
load test_helper
load gan_fixture

setup_file() {
	gan_fixture_with_vae
	(
		cd "$BATS_FILE_TMPDIR/fx" &&
			l2-encode-latents --quiet --vae ../vae/kl.safetensors -r 64 ds.lmdb &&
			"$L2_BUILD/tests/test_diffusion_float" --write-latent-model latent.safetensors \
				"$(l2-store get ds.lmdb meta feat.latent.latent)" 48
	)
}

@test "a latent model's samples are decoded to 64x64 images by its VAE; the same bytes for any batch or thread count" {
	run l2-sample -m "$FX/latent.safetensors" --vae "$V/kl.safetensors" -n 2 --steps 4 --grid a.png "$FX/caption.l2f"
	assert_success
	assert_output --partial "16 images for 8 conditions"
	# 2 columns and 8 rows of 64x64 tiles with 2-pixel gaps
	[ "$(png_size a.png)" = "134x530" ]
	run l2-sample -m "$FX/latent.safetensors" --vae "$V/kl.safetensors" -n 2 --steps 4 --batch 3 --threads 2 \
		-o dir "$FX/caption.l2f"
	assert_success
	[ "$(png_size dir/0003-01.png)" = "64x64" ]
	l2-sample -m "$FX/latent.safetensors" --vae "$V/kl.safetensors" -n 2 --steps 4 --batch 5 --grid b.png "$FX/caption.l2f"
	cmp a.png b.png
	# the denoised estimates per step, decoded
	run l2-sample -m "$FX/latent.safetensors" --vae "$V/kl.safetensors" -n 1 --steps 3 --x0-grid x0.png --grid c.png \
		"$FX/caption.l2f"
	assert_success
	[ "$(png_size x0.png)" = "266x530" ]
}

@test "a VAE other than the latents' is refused before anything is written; so are a missing --vae and --vae with a pixel model" {
	# the same weights in the other key layout: another file, another SHA-256
	run l2-sample -m "$FX/latent.safetensors" --vae "$V/kl_ldm.safetensors" --steps 2 --grid out.png "$FX/caption.l2f"
	assert_failure 1
	assert_output --partial "not the VAE the latents were made with"
	[ "${#lines[@]}" -eq 1 ]
	run l2-sample -m "$FX/latent.safetensors" --vae "$V/taesd_decoder.safetensors" --steps 2 --grid out.png "$FX/caption.l2f"
	assert_failure 1
	run l2-sample -m "$FX/latent.safetensors" --steps 2 --grid out.png "$FX/caption.l2f"
	assert_failure 1
	assert_output --partial "a latent diffusion model"
	assert_output --partial "--vae FILE"
	run l2-sample -m "$L2_ROOT/tests/ref/diffusion/tiny.safetensors" --vae "$V/kl.safetensors" --steps 2 --grid out.png \
		"$FX/caption.l2f"
	assert_failure 1
	assert_output --partial "a pixel diffusion model"
	run l2-sample -m "$FX/latent.safetensors" --vae "$V/nothing.safetensors" --steps 2 --grid out.png "$FX/caption.l2f"
	assert_failure 1
	assert_file_not_exists out.png
	# --vae is a diffusion option
	run l2-sample -m "$FX/latent.safetensors" --vae "$V/kl.safetensors" --truncation 0.7 --grid out.png "$FX/caption.l2f"
	assert_failure 2
}
