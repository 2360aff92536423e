#!/usr/bin/env bats
# l2-fid: FID/KID on feature streams, .npz statistics and image directories,
# against tests/ref/make_fid.py (pytorch-fid's formula with scipy, and the
# FID Inception in PyTorch with the same seeded weights).
load test_helper

REF=$L2_ROOT/tests/ref/fid

setup_file() {
	export WEIGHTS=$BATS_FILE_TMPDIR/w.safetensors
	l2-fid --random-weights "$WEIGHTS" --seed 1
}

# set NAME -> NAME.l2f from the reference set
stream() { l2-cat --from-npy "$REF/sets/$1.npy" > "$1.l2f"; }

# close A B RTOL — |A - B| <= RTOL * |B|
close() { awk -v a="$1" -v b="$2" -v r="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; m = b < 0 ? -b : b; exit !(d <= r * m) }'; }

# streams_close X.l2f Y.l2f RTOL FLOOR — same keys, |x - y| <= RTOL * (|y| + FLOOR)
streams_close() {
	l2-cat -f tsv "$1" > x.tsv
	l2-cat -f tsv "$2" > y.tsv
	paste x.tsv y.tsv | awk -F'\t' -v r="$3" -v fl="$4" '
	{ if ($1 != $3) { print "key " $1 " vs " $3; bad = 1; exit 1 }
	  n = split($2, x, " "); m = split($4, y, " ")
	  if (n != m) { print "dims differ"; bad = 1; exit 1 }
	  for (i = 1; i <= n; i++) { d = x[i] - y[i]; if (d < 0) d = -d; a = y[i] < 0 ? -y[i] : y[i]
	    e = d / (a + fl); if (e > worst) worst = e } }
	END { print "worst relative error " worst; exit bad || !(worst <= r) }'
}

# a python3 with numpy (the tests use one only to check numpy can read our files)
np_python() {
	for p in python3 /usr/bin/python3; do
		if command -v "$p" >/dev/null && "$p" -c "import numpy" 2>/dev/null; then echo "$p"; return; fi
	done
}

@test "l2-fid -h prints usage and exits 0" {
	run l2-fid -h
	assert_success
	assert_output --partial "usage: l2-fid"
}

@test "l2-fid --version" {
	run l2-fid --version
	assert_success
	assert_output --regexp "^l2-fid \(l2\) [0-9]+\.[0-9]+"
}

@test "bad options and argument counts are usage errors (exit 2)" {
	run l2-fid --bogus a b
	assert_failure 2
	run l2-fid onlyone
	assert_failure 2
	assert_output --partial "expected two inputs"
	run l2-fid --dims 100 a b
	assert_failure 2
	run l2-fid --save-stats x.npz a b
	assert_failure 2
	run l2-fid --batch 0 a b
	assert_failure
	assert_output --partial "invalid value for --batch"
}

@test "FID of feature streams matches pytorch-fid's formula (scipy sqrtm) to 1e-6, N < dims included" {
	while read -r a b want; do
		stream "$a"
		stream "$b"
		run l2-fid --quiet "$a.l2f" "$b.l2f"
		assert_success
		[[ ${lines[0]} == "FID: "* ]]
		got=${lines[0]#FID: }
		close "$got" "$want" 1e-6 || { echo "$a $b: $got vs $want"; false; }
	done < "$REF/fid_cases.txt"
}

@test "output lines: FID, N of each side, mode, weights" {
	stream full_a
	stream full_b
	run l2-fid full_a.l2f full_b.l2f
	assert_success
	assert_line --index 0 --regexp "^FID: [0-9]+\.[0-9]{6}$"
	assert_line --index 1 "N_A: 200"
	assert_line --index 2 "N_B: 300"
	assert_line --index 3 "mode: A=image-feature B=image-feature dims=64"
	assert_line --index 4 "weights: none"
}

@test "small N warns that the covariance is singular; --quiet silences it" {
	stream low_a
	stream low_b
	run l2-fid low_a.l2f low_b.l2f
	assert_success
	assert_output --partial "warning: low_a.l2f: N = 10 <= 64 dimensions"
	run l2-fid --quiet low_a.l2f low_b.l2f
	refute_output --partial "warning"
}

@test "N = 1 is an error, not NaN" {
	python3 - <<'PY'
import struct
hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 4), }"
hdr += " " * ((64 - (10 + len(hdr) + 1) % 64) % 64) + "\n"
open("one.npy", "wb").write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode() + struct.pack("<4f", 1, 2, 3, 4))
PY
	l2-cat --from-npy one.npy > one.l2f
	make_npy two.npy 5 4
	l2-cat --from-npy two.npy > two.l2f
	run l2-fid one.l2f two.l2f
	assert_failure 1
	assert_output --partial "one.l2f: FID needs at least 2 samples"
	refute_output --partial "nan"
}

@test "mismatched dimensions are refused" {
	stream full_a
	stream pos_a
	run l2-fid full_a.l2f pos_a.l2f
	assert_failure 1
	assert_output --partial "full_a.l2f has dimension 64 but pos_a.l2f has 96"
}

@test "--save-stats writes an .npz numpy reads, and FID from statistics equals FID from features" {
	stream pos_a
	stream pos_b
	l2-fid --quiet --save-stats a.npz pos_a.l2f
	py=$(np_python)
	[ -z "$py" ] || "$py" - "$REF/sets/pos_a.npy" <<'PY'
import sys, numpy as np
x = np.load(sys.argv[1]).astype(np.float64)
with np.load("a.npz") as f:
    assert f["mu"].dtype == np.float64 and f["sigma"].shape == (96, 96)
    assert np.allclose(f["mu"], x.mean(0), rtol=1e-12, atol=1e-14)
    assert np.allclose(f["sigma"], np.cov(x, rowvar=False), rtol=1e-10, atol=1e-14)
PY
	run l2-fid --quiet pos_a.l2f pos_b.l2f
	f1=${lines[0]}
	run l2-fid --quiet a.npz pos_b.l2f
	assert_success
	assert_line --index 0 "$f1"
	assert_line --index 1 "N_A: 70"
	assert_line --index 3 "mode: A=statistics B=image-feature dims=96"
}

@test "pytorch-fid statistics (np.savez_compressed, np.savez, float32) are read" {
	stream pos_a
	stream pos_b
	run l2-fid --quiet pos_a.l2f pos_b.l2f
	want=${lines[0]#FID: }
	for s in stats_compressed stats_stored stats_f32; do
		run l2-fid --quiet "$REF/$s.npz" pos_b.l2f
		assert_success
		assert_line --index 1 "N_A: unknown"
		# float64 statistics agree to printing precision; float32 ones are
		# rounded (and this covariance is singular, N = 70 < 96)
		close "${lines[0]#FID: }" "$want" "$([ $s = stats_f32 ] && echo 1e-4 || echo 1e-7)"
	done
	run l2-fid "$REF/stats_compressed.npz" "$REF/stats_stored.npz"
	assert_success
	assert_line --index 0 "FID: 0.000000"
}

@test "corrupt, truncated and incomplete .npz files are clean errors" {
	head -c 3000 "$REF/stats_compressed.npz" > trunc.npz
	run l2-fid trunc.npz trunc.npz
	assert_failure 1
	assert_output --regexp "l2-fid: trunc.npz: (truncated|corrupt|not a)"
	echo "hello" > junk.npz
	run l2-fid junk.npz junk.npz
	assert_failure 1
	assert_output --partial "junk.npz: not a .npz archive"
	# flip a byte inside the deflated sigma: CRC or inflate error
	cp "$REF/stats_compressed.npz" flip.npz
	size=$(stat -c %s flip.npz)
	printf '\x55\xaa\x55\xaa' | dd of=flip.npz bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
	run l2-fid flip.npz flip.npz
	assert_failure 1
	assert_output --partial "flip.npz: corrupt .npz archive"
	run l2-fid "$REF/bad_nosigma.npz" "$REF/bad_nosigma.npz"
	assert_failure 1
	assert_output --partial "bad_nosigma.npz: no 'sigma' array"
	run l2-fid "$REF/bad_shape.npz" "$REF/bad_shape.npz"
	assert_failure 1
	assert_output --partial "'sigma' must be 4 x 4"
	run l2-fid "$REF/bad_nan.npz" "$REF/bad_nan.npz"
	assert_failure 1
	assert_output --partial "bad_nan.npz: 'sigma' holds NaN or infinity"
}

@test "KID: unbiased polynomial MMD, whole sets equal the reference" {
	read -r a b want < "$REF/kid_cases.txt" # kid_a kid_b: 60 rows each
	stream "$a"
	stream "$b"
	run l2-fid --quiet --kid "$a.l2f" "$b.l2f"
	assert_success
	assert_line --index 5 --regexp "^KID: .* \+- 0 \(1 subset of 60\)$"
	kid=$(echo "${lines[5]}" | awk '{print $2}')
	close "$kid" "$want" 1e-7
	# subsets: reproducible with --seed
	stream full_a
	stream full_b
	run l2-fid --quiet --kid --kid-subset-size 50 --kid-subsets 10 --seed 3 full_a.l2f full_b.l2f
	k1=${lines[5]}
	assert_output --regexp "KID: .* \(10 subsets of 50\)"
	run l2-fid --quiet --kid --kid-subset-size 50 --kid-subsets 10 --seed 3 full_a.l2f full_b.l2f
	assert_line --index 5 "$k1"
}

@test "KID needs features: statistics are refused" {
	stream pos_a
	run l2-fid --kid "$REF/stats_stored.npz" pos_a.l2f
	assert_failure 1
	assert_output --partial "KID needs features"
}

@test "one side may come from standard input" {
	stream full_a
	stream full_b
	run l2-fid full_a.l2f full_b.l2f
	f1=${lines[0]}
	run bash -c "l2-fid - full_b.l2f < full_a.l2f"
	assert_success
	assert_line --index 0 "$f1"
}

@test "Inception features of images match PyTorch (pytorch-fid's input path) to 1e-4" {
	l2-fid -m "$WEIGHTS" --features f.l2f --threads 2 "$REF/img"
	l2-cat -f npy -o f.npy --keys-out keys.txt f.l2f
	run cat keys.txt
	assert_output "$(printf 'a_rgb.png\nb_grey.png\nc_rgba.png\nd_big.png')"
	run l2-cat --header f.l2f
	assert_line "kind	inception-feature"
	assert_line "dim	2048"
	l2-cat --from-npy "$REF/img_feat.npy" --keys keys.txt > ref.l2f
	# relative 1e-4 (features near 0: relative to 0.01)
	streams_close f.l2f ref.l2f 1e-4 1e-2
}

@test "FID between image directories, threads and batch sizes agree; weights hash reported" {
	run l2-fid -m "$WEIGHTS" --quiet --dims 64 "$REF/img" "$REF/img"
	assert_success
	assert_line --index 0 "FID: 0.000000"
	assert_line --index 1 "N_A: 4"
	assert_line --index 3 "mode: A=images B=images dims=64"
	assert_line --index 4 "weights: sha256:$(sha256sum "$WEIGHTS" | cut -d' ' -f1)"
	l2-fid -m "$WEIGHTS" --dims 64 --threads 2 --batch 3 --features f2.l2f "$REF/img"
	l2-fid -m "$WEIGHTS" --dims 64 --threads 1 --batch 1 --features f1.l2f "$REF/img"
	streams_close f1.l2f f2.l2f 1e-5 1e-2
	l2-fid -m "$WEIGHTS" --quiet --dims 64 --save-stats s.npz "$REF/img"
	run l2-fid --quiet s.npz f1.l2f
	assert_line --index 0 "FID: 0.000000"
}

@test "images: missing weights, wrong weights, wrong dims, empty dir, bad image" {
	stream full_a
	run l2-fid "$REF/img" full_a.l2f
	assert_failure 1
	assert_output --partial "need the FID Inception weights (-m WEIGHTS)"
	run l2-fid -m nothere.safetensors "$REF/img" full_a.l2f
	assert_failure 1
	assert_output --partial "nothere.safetensors"
	# a valid safetensors file with other keys
	python3 - <<'PY'
import json, struct
hdr = json.dumps({"conv.weight": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
hdr += b" " * (-len(hdr) % 8)
open("other.safetensors", "wb").write(struct.pack("<Q", len(hdr)) + hdr + struct.pack("<2f", 1, 2))
PY
	run l2-fid -m other.safetensors "$REF/img" full_a.l2f
	assert_failure 1
	assert_output --partial "tensor Conv2d_1a_3x3.conv.weight missing"
	run l2-fid -m "$WEIGHTS" "$REF/img" "$REF/stats_stored.npz"
	assert_failure 1
	assert_output --partial "statistics of dimension 96, but Inception features have 2048"
	mkdir empty
	run l2-fid -m "$WEIGHTS" empty full_a.l2f
	assert_failure 1
	assert_output --partial "empty: no PNG or JPEG images"
	mkdir bad
	cp "$REF/img/a_rgb.png" bad/
	head -c 100 "$REF/img/b_grey.png" > bad/b.png
	run l2-fid -m "$WEIGHTS" bad bad
	assert_failure 1
	assert_output --partial "bad/b.png"
}

@test "unwritable outputs fail cleanly and leave nothing behind" {
	stream full_a
	run l2-fid --save-stats /nonexistent/dir/s.npz full_a.l2f
	assert_failure 1
	assert_output --partial "/nonexistent/dir/s.npz"
	run l2-fid -m "$WEIGHTS" --features /nonexistent/f.l2f "$REF/img"
	assert_failure 1
	mkdir out
	run l2-fid -m "$WEIGHTS" --features out/f.l2f empty_missing_dir
	assert_failure 1
	run ls -A out
	assert_output ""
}

@test "--random-weights is deterministic in the seed" {
	l2-fid --random-weights w1.safetensors --seed 1
	cmp w1.safetensors "$WEIGHTS"
	rm w1.safetensors
}
