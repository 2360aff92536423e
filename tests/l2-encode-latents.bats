#!/usr/bin/env bats
# l2-encode-latents: a dataset's images into a feature set of VAE latents
# with random-weight autoencoders in both key layouts (test_vae
# --write-models), their description, --resume, sampling, the
# reconstruction grid, and refusals (wrong files, another VAE on resume,
# a decoder whose hash differs).
load test_helper
load gan_fixture

setup_file() { gan_fixture_with_vae; }

setup() {
	cd "$BATS_TEST_TMPDIR" || return 1
	cp -r "$FX/ds.lmdb" ds.lmdb
}

describe() { l2-store get "$1" meta "feat.${2:-latent}.latent"; }
export_npy() { l2-dataset export-features -n "${3:-latent}" "$1" | l2-cat -f npy -o "$2"; }

@test "help, version, usage errors" {
	run l2-encode-latents --help
	assert_success; assert_output --partial "usage: l2-encode-latents"
	run l2-encode-latents --version
	assert_success
	run l2-encode-latents ds.lmdb
	assert_failure 2; assert_output --partial "--vae"
	run l2-encode-latents --vae "$V/kl.safetensors"
	assert_failure 2; assert_output --partial "no DATASET"
	run l2-encode-latents --vae "$V/kl.safetensors" --split some ds.lmdb
	assert_failure 2
	run l2-encode-latents --vae "$V/kl.safetensors" --decode-only ds.lmdb
	assert_failure 2; assert_output --partial "--grid"
	run l2-encode-latents --vae "$V/kl.safetensors" --bogus ds.lmdb
	assert_failure 2
}

@test "KL latents: a vae-latent feature set of 4 x 8 x 8 at 64 x 64, described by the VAE's SHA-256 and statistics" {
	run l2-encode-latents --vae "$V/kl.safetensors" -r 64 ds.lmdb
	assert_success
	assert_output --partial "16 images encoded"
	run l2-dataset stats ds.lmdb
	assert_output --partial "$(printf 'feature\tlatent\tvae-latent\t256\tf32\t16')"
	refute_output --partial incomplete
	run l2-store get ds.lmdb meta feat.latent.complete
	assert_output 1
	sha=$(sha256sum "$V/kl.safetensors" | cut -d' ' -f1)
	run describe ds.lmdb
	assert_output --partial "\"vae_sha256\":\"$sha\""
	assert_output --partial '"vae_kind":"kl","scale":0.5,"shift":0.0,"resolution":64,"shape":[4,8,8],"posterior":"mean"'
	assert_output --partial '"complete":true,"count":16,"mean":'
	assert_output --partial '"channel_std":['
	# the statistics are those of the stored values
	export_npy ds.lmdb all.npy
	describe ds.lmdb > desc.json
	python3 - <<'PY'
import json, math, struct
b = open("all.npy", "rb").read(); n = struct.unpack("<H", b[8:10])[0]
v = struct.unpack("<%df" % ((len(b) - 10 - n) // 4), b[10 + n:])
d = json.load(open("desc.json"))
m = sum(v) / len(v); s = math.sqrt(sum((x - m) ** 2 for x in v) / len(v))
assert abs(m - d["mean"]) < 1e-9 and abs(s - d["std"]) < 1e-9, (m, s, d["mean"], d["std"])
c0 = [x for i, x in enumerate(v) if (i % 256) // 64 == 0]  # channel 0 of each [4, 8, 8] latent
assert abs(sum(c0) / len(c0) - d["channel_mean"][0]) < 1e-9
PY
	# the diffusers and the LDM file of the same weights give the same latents
	l2-encode-latents --quiet --vae "$V/kl_ldm.safetensors" -r 64 -n ldm ds.lmdb
	export_npy ds.lmdb a.npy latent
	export_npy ds.lmdb b.npy ldm
	python3 - <<'PY'
import struct
def load(p):
    b = open(p, "rb").read(); n = struct.unpack("<H", b[8:10])[0]
    return struct.unpack("<%df" % ((len(b) - 10 - n) // 4), b[10 + n:])
a, b = load("a.npy"), load("b.npy")
assert len(a) == 16 * 256 and max(abs(x - y) for x, y in zip(a, b)) < 1e-6 * max(abs(x) for x in a) + 1e-7
PY
}

@test "--resume: refused without it, a no-op when complete; a split then the rest, other threads or batches: the same bytes" {
	l2-encode-latents --quiet --vae "$V/kl.safetensors" -r 32 ds.lmdb
	run l2-encode-latents --vae "$V/kl.safetensors" -r 32 ds.lmdb
	assert_failure 1; assert_output --partial "feature set 'latent' exists (--resume continues it"
	run l2-encode-latents --vae "$V/kl.safetensors" -r 32 --resume ds.lmdb
	assert_success; assert_output --partial " 0 images encoded"
	cp -r "$FX/ds.lmdb" two.lmdb
	l2-encode-latents --quiet --vae "$V/kl.safetensors" -r 32 --split test two.lmdb
	run describe two.lmdb
	assert_output --partial '"count":'
	l2-encode-latents --quiet --vae "$V/kl.safetensors" -r 32 --resume two.lmdb
	export_npy ds.lmdb a.npy
	export_npy two.lmdb b.npy
	cmp a.npy b.npy
	[ "$(describe ds.lmdb)" = "$(describe two.lmdb)" ]
	# and neither threads nor batches change a bit
	cp -r "$FX/ds.lmdb" three.lmdb
	l2-encode-latents --quiet --vae "$V/kl.safetensors" -r 32 --threads 1 --batch 3 three.lmdb
	export_npy three.lmdb c.npy
	cmp a.npy c.npy
}

@test "--resume with another VAE, resolution or posterior is refused" {
	l2-encode-latents --quiet --vae "$V/kl.safetensors" -r 32 --split test ds.lmdb
	run l2-encode-latents --vae "$V/kl_ldm.safetensors" -r 32 --resume ds.lmdb
	assert_failure 1; assert_output --partial "was made with another VAE"
	run l2-encode-latents --vae "$V/kl.safetensors" -r 64 --resume ds.lmdb
	assert_failure 1; assert_output --partial "holds 32x32 images as [4, 4, 4] latents, not 64x64"
	run l2-encode-latents --vae "$V/kl.safetensors" -r 32 --sample --resume ds.lmdb
	assert_failure 1; assert_output --partial "posterior mean"
}

@test "--sample: seeded posterior draws, reproducible, unlike the mean; TAESD has none" {
	l2-encode-latents --quiet --vae "$V/kl.safetensors" -r 32 --sample --seed 3 -n s1 ds.lmdb
	l2-encode-latents --quiet --vae "$V/kl.safetensors" -r 32 --sample --seed 3 --batch 5 -n s2 ds.lmdb
	l2-encode-latents --quiet --vae "$V/kl.safetensors" -r 32 -n m ds.lmdb
	export_npy ds.lmdb s1.npy s1
	export_npy ds.lmdb s2.npy s2
	export_npy ds.lmdb m.npy m
	cmp s1.npy s2.npy
	! cmp -s s1.npy m.npy
	run describe ds.lmdb s1
	assert_output --partial '"posterior":"sample","seed":3'
	run l2-encode-latents --vae "$V/taesd.safetensors" -r 32 --sample ds.lmdb
	assert_failure 1; assert_output --partial "TAESD has no posterior"
}

@test "TAESD from taesd.py's two files, with the reconstruction grid; the diffusers file gives the same latents" {
	run l2-encode-latents --vae "$V/taesd_encoder.safetensors,$V/taesd_decoder.safetensors" -r 32 --grid g.png ds.lmdb
	assert_success
	assert_output --partial "g.png: 16 images over their reconstructions"
	# 8 columns; two rows of images, each over a row of reconstructions; 32 px, 2 px gaps
	[ "$(png_size g.png)" = "$((2 + 8 * 34))x$((2 + 4 * 34))" ]
	run describe ds.lmdb
	assert_output --partial '"vae_kind":"taesd","scale":1.0'
	assert_output --partial "\"vae_files\":\"taesd_encoder.safetensors,taesd_decoder.safetensors\""
	l2-encode-latents --quiet --vae "$V/taesd.safetensors" -r 32 -n diff ds.lmdb
	export_npy ds.lmdb a.npy latent
	export_npy ds.lmdb b.npy diff
	cmp a.npy b.npy
	# the grid again from what is stored: the decoder file alone is covered by the recorded pair
	run l2-encode-latents --vae "$V/taesd_decoder.safetensors" --grid g2.png --grid-n 5 --decode-only ds.lmdb
	assert_success
	[ "$(png_size g2.png)" = "$((2 + 5 * 34))x$((2 + 2 * 34))" ]
}

@test "a decoder whose hash differs from the latents' VAE is refused; so is another latent size" {
	l2-encode-latents --quiet --vae "$V/kl.safetensors" -r 32 ds.lmdb
	run l2-encode-latents --vae "$V/kl_ldm.safetensors" --grid g.png --decode-only ds.lmdb
	assert_failure 1
	assert_output --partial "kl_ldm.safetensors has SHA-256"
	assert_output --partial "not the VAE the latents were made with"
	assert_file_not_exist g.png
	run l2-encode-latents --vae "$V/kl16.safetensors" --grid g.png --decode-only ds.lmdb
	assert_failure 1
	assert_file_not_exist g.png
}

@test "wrong files and sizes: one-line errors, exit 1, the dataset unchanged" {
	run l2-encode-latents --vae "$FX/pseudo.npy" ds.lmdb
	assert_failure 1; [ "${#lines[@]}" = 1 ]
	head -c 300 "$V/kl.safetensors" > cut.safetensors
	run l2-encode-latents --vae cut.safetensors ds.lmdb
	assert_failure 1; assert_output --partial "runs past the end of the file"
	run l2-encode-latents --vae "$V/kl.safetensors" -r 36 ds.lmdb
	assert_failure 1; assert_output --partial "resolution 36 is not a positive multiple of the VAE's factor 8"
	run l2-encode-latents --vae "$V/taesd_decoder.safetensors" ds.lmdb
	assert_failure 1; assert_output --partial "holds no encoder"
	run l2-encode-latents --vae "$V/kl.safetensors" -n image ds.lmdb
	assert_failure 1; assert_output --partial "feature set 'image' holds image-feature, not VAE latents"
	run l2-encode-latents --vae "$V/kl.safetensors" nowhere.lmdb
	assert_failure 1
	run l2-dataset stats ds.lmdb
	refute_output --partial "vae-latent"
}
