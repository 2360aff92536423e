#!/usr/bin/env bats
# l2-encode-images: CLIP image features against tests/ref/make_clip.py (a
# float64 PyTorch replica of OpenAI's model on the tiny random-weight model
# that test_clip --write-models rebuilds in both key layouts).
load test_helper
load clip_fixture

REF=$L2_ROOT/tests/ref/clip

setup_file() { clip_models; }

# golden features as a stream keyed by image name
golden() { l2-cat --from-npy "$REF/image_features.npy" --keys "$REF/image_keys.txt" --normalized > gold.l2f; }

images() { mkdir -p imgs && cp "$REF"/img_*.png imgs/; }

@test "l2-encode-images -h prints usage and exits 0" {
	run l2-encode-images -h
	assert_success
	assert_output --partial "usage: l2-encode-images"
}

@test "l2-encode-images --version" {
	run l2-encode-images --version
	assert_success
	assert_output --regexp "^l2-encode-images \(l2\) [0-9]+\.[0-9]+"
}

@test "usage errors: unknown option, no -m, no PATH, bad --batch, bad --background" {
	run l2-encode-images --bogus; assert_failure 2
	run l2-encode-images imgs; assert_failure 2; assert_output --partial "missing -m"
	run l2-encode-images -m "$OPENAI"; assert_failure 2
	run l2-encode-images -m "$OPENAI" -b 0 x.png; assert_failure; assert_output --partial -- "--batch"
	run l2-encode-images -m "$OPENAI" --background 1,2 x.png; assert_failure 2
	run l2-encode-images -m "$OPENAI" --background 1,2,256 x.png; assert_failure 2
}

@test "a directory matches the PyTorch reference (OpenAI layout, f16 weights)" {
	images; golden
	l2-encode-images -m "$OPENAI" imgs > out.l2f
	run streams_close out.l2f gold.l2f 1e-4
	assert_success
}

@test "a directory matches the PyTorch reference (Hugging Face layout), batch 1 and 3" {
	images; golden
	l2-encode-images -m "$HF" -b 1 imgs/ > a.l2f
	l2-encode-images -m "$HF" -b 3 --threads 1 imgs > b.l2f
	run streams_close a.l2f gold.l2f 1e-4; assert_success
	run streams_close b.l2f gold.l2f 1e-4; assert_success
}

@test "directories are walked recursively, sorted, keys relative; files keep their path" {
	mkdir -p d/sub d/a
	cp "$REF/img_rgb.png" d/sub/x.png
	cp "$REF/img_grey.png" d/a/y.PNG
	echo "not an image" > d/notes.txt
	l2-encode-images -m "$OPENAI" d | l2-cat -f tsv | cut -f1 > keys
	printf 'a/y.PNG\nsub/x.png\n' | diff - keys
	l2-encode-images -m "$OPENAI" d/sub/x.png | l2-cat -f tsv | cut -f1 | grep -qx 'd/sub/x.png'
}

@test "- reads image paths from standard input" {
	images
	printf 'imgs/img_rgb.png\n\nimgs/img_grey.png\n' | l2-encode-images -m "$OPENAI" - > s.l2f
	run l2-cat -f tsv s.l2f
	assert_line --index 0 --regexp '^imgs/img_rgb.png'
	assert_line --index 1 --regexp '^imgs/img_grey.png'
	[ "$(l2-cat --count s.l2f)" = 2 ]
}

@test "normalised by default; --raw keeps the norm and clears the flag" {
	images
	l2-encode-images -m "$OPENAI" imgs > n.l2f
	l2-encode-images -m "$OPENAI" --raw imgs > r.l2f
	l2-cat --header n.l2f | grep -qx $'flags\tnormalized'
	l2-cat --header r.l2f | grep -qx $'flags\tnone'
	l2-cat --header r.l2f | grep -qx $'kind\timage-feature'
	l2-cat --header r.l2f | grep -qx $'dim\t48'
	l2-cat -f tsv r.l2f | awk -F'\t' '{ n = split($2, v, " "); s = 0; for (i = 1; i <= n; i++) s += v[i] * v[i]; if (s < 1.01 && s > 0.99) exit 1 }'
}

@test "a bad image stops the run with its name and no output file; --keep-going skips it" {
	images
	echo "garbage" > imgs/bad.png
	head -c 60 "$REF/img_rgb.png" > imgs/trunc.png
	run l2-encode-images -m "$OPENAI" -o out.l2f imgs
	assert_failure 1
	assert_output --partial "imgs/bad.png"
	assert_not_exist out.l2f
	run l2-encode-images -m "$OPENAI" -k -o out.l2f imgs
	assert_failure 1
	assert_output --partial "bad.png"
	assert_output --partial "trunc.png"
	[ "$(l2-cat --count out.l2f)" = 4 ]
}

@test "missing image file and unreadable directory are errors" {
	run l2-encode-images -m "$OPENAI" nothere.png
	assert_failure 1
	assert_output --partial "nothere.png"
}

@test "bad weights: missing file, not safetensors, not CLIP, a missing tensor named" {
	images
	run l2-encode-images -m nothere.safetensors imgs
	assert_failure 1; assert_output --partial "nothere.safetensors"
	echo "hello" > junk.safetensors
	run l2-encode-images -m junk.safetensors imgs
	assert_failure 1; assert_output --partial "junk.safetensors"
	python3 - <<'PY'
import json, struct
h = json.dumps({"foo": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
open("other.safetensors", "wb").write(struct.pack("<Q", len(h)) + h + b"\0" * 8)
PY
	run l2-encode-images -m other.safetensors imgs
	assert_failure 1; assert_output --partial "not a CLIP checkpoint"
	# rename one key in the header (same length): the loader names it
	python3 - "$OPENAI" <<'PY'
import sys
b = open(sys.argv[1], "rb").read()
b = b.replace(b'"visual.ln_post.bias"', b'"visual.ln_post.biaX"', 1)
open("missing.safetensors", "wb").write(b)
PY
	run l2-encode-images -m missing.safetensors imgs
	assert_failure 1; assert_output --partial "visual.ln_post.bias"
	head -c 5000 "$OPENAI" > trunc.safetensors
	run l2-encode-images -m trunc.safetensors imgs
	assert_failure 1; assert_output --partial "trunc.safetensors"
}

@test "a text-only model has no vision tower" {
	python3 - "$OPENAI" <<'PY'
import sys
b = open(sys.argv[1], "rb").read()
b = b.replace(b'"visual.conv1.weight"', b'"visual.convX.weight"', 1)
open("novis.safetensors", "wb").write(b)
PY
	images
	run l2-encode-images -m novis.safetensors imgs
	assert_failure 1
	assert_output --partial "visual.conv1.weight"
}

@test "unwritable output is an error" {
	images
	run l2-encode-images -m "$OPENAI" -o /nonexistent/dir/x.l2f imgs
	assert_failure 1
}

@test "--store puts the same features into a dataset store" {
	images
	l2-encode-images -m "$OPENAI" --store ds.lmdb imgs > s.l2f
	l2-dataset export-features -n image ds.lmdb > e.l2f
	run streams_close e.l2f s.l2f 0
	assert_success
	l2-encode-images -m "$OPENAI" --store ds.lmdb --name other --raw imgs > /dev/null
	run l2-encode-images -m "$OPENAI" --store ds.lmdb --name 'Bad Name' imgs
	assert_failure 2
}

@test "--background composites transparent images (differs from dropping alpha)" {
	mkdir -p t && cp "$REF/img_rgba.png" t/
	l2-encode-images -m "$OPENAI" t | l2-cat -f tsv > a.tsv
	l2-encode-images -m "$OPENAI" --background 255,255,255 t | l2-cat -f tsv > b.tsv
	! cmp -s a.tsv b.tsv
	l2-encode-images -m "$OPENAI" --background 0,0,0 t > /dev/null
}

@test "threads and batch sizes: same features, input order kept, bad images skipped in place" {
	images; golden
	# 12 images (each golden three times), two of them bad, in the middle of batches
	mkdir -p many
	for i in 0 1 2; do for f in imgs/*.png; do cp "$f" "many/$i-$(basename "$f")"; done; done
	echo "garbage" > many/1-bad.png
	head -c 60 "$REF/img_rgb.png" > many/2-bad.png
	for tb in "1 32" "2 1" "3 2" "4 5" "2 64"; do
		set -- $tb
		run l2-encode-images -m "$OPENAI" --threads "$1" -b "$2" -k many
		assert_failure 1
		l2-encode-images -m "$OPENAI" --threads "$1" -b "$2" -k many 2> /dev/null > "t$1-b$2.l2f" || true
		[ "$(l2-cat --count "t$1-b$2.l2f")" = 12 ]
		l2-cat -f tsv "t$1-b$2.l2f" | cut -f1 > keys
		ls many | grep -v bad | diff - keys
	done
	# every copy matches the reference (by key without its "i-" prefix)
	l2-cat -f tsv gold.l2f > g.tsv
	l2-cat -f tsv t3-b2.l2f | sed 's/^[0-9]-//' | awk -F'\t' 'NR == FNR { g[$1] = $2; next }
		{ n = split($2, x, " "); split(g[$1], y, " "); if (!($1 in g)) exit 1
		  for (i = 1; i <= n; i++) { d = x[i] - y[i]; if (d < 0) d = -d; if (d > 1e-4) exit 1 } k++ }
		END { exit k != 12 }' g.tsv -
	# and every split agrees with one thread
	for f in t2-b1 t3-b2 t4-b5 t2-b64; do
		run streams_close "$f.l2f" t1-b32.l2f 1e-6
		assert_success
	done
}
