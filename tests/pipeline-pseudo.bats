#!/usr/bin/env bats
# pipelines/pseudo.sh and pipelines/pseudo.mk: image folder + caption corpus ->
# pseudo text features in a dataset.  Steps whose tools are not built yet skip.
load test_helper

PSEUDO_SH="$L2_ROOT/pipelines/pseudo.sh"

need() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null || skip "$t not built yet"
	done
}

# synthetic modality-gap features: N images keyed imgNN.png, M captions
# (plain python3: no numpy needed)
make_features() {
	python3 - "$@" <<'PY'
import math, random, struct, sys
n, m, d = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(3)
def unit(v):
    s = math.sqrt(sum(x * x for x in v)); return [x / s for x in v]
g = lambda: unit([rng.gauss(0, 1) for _ in range(d)])
cent, gi, gt = [g() for _ in range(4)], g(), g()
def item(gap):
    s = unit([a + b for a, b in zip(rng.choice(cent), g())])
    return unit([a + 1.15 * b + c for a, b, c in zip(s, g(), gap)])
def stream(path, kind, keys, vecs):
    with open(path, "wb") as f:
        f.write(b"L2FS" + struct.pack("<HHIIQ", 1, 1, d, 1, len(keys)) + kind.encode().ljust(24, b"\0") + b"\0" * 16)
        for k, v in zip(keys, vecs):
            kb = k.encode(); f.write(struct.pack("<I", len(kb)) + kb + struct.pack("<%df" % d, *v))
stream("img.l2f", "image-feature", ["img%02d.png" % i for i in range(n)], [item(gi) for _ in range(n)])
caps = ["caption number %d" % i for i in range(m)]
stream("txt.l2f", "text-feature", caps, [item(gt) for _ in range(m)])
open("captions.txt", "w").write("\n".join(caps) + "\n")
PY
}

# tiny RGB PNGs imgNN.png in DIR (zlib + struct, no PIL)
make_pngs() {
	python3 - "$@" <<'PY'
import os, struct, sys, zlib
d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(d, exist_ok=True)
def chunk(t, b): return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b))
for i in range(n):
    raw = b"".join(b"\0" + bytes((i * 40 + x * 30 + y * 20) % 256 for x in range(8) for _ in range(3)) for y in range(8))
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0)) \
        + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    open(os.path.join(d, "img%02d.png" % i), "wb").write(png)
PY
}

@test "pseudo.sh -h prints usage" {
	run "$PSEUDO_SH" -h
	assert_success
	assert_output --partial "usage: pipelines/pseudo.sh IMAGE_DIR CAPTIONS.txt -m CLIP_WEIGHTS"
}

@test "pseudo.sh: usage errors exit 2, bad paths exit 1" {
	run "$PSEUDO_SH"
	assert_failure 2
	run "$PSEUDO_SH" --bogus
	assert_failure 2
	run "$PSEUDO_SH" --mode sideways --image-features x
	assert_failure 2
	assert_output --partial "unknown mode 'sideways'"
	run "$PSEUDO_SH" nodir caps.txt -m w.safetensors
	assert_failure 1
	assert_output --partial "pseudo.sh: nodir: not a directory"
	mkdir imgs
	run "$PSEUDO_SH" imgs --no-store
	assert_failure 1
	assert_output --partial "caption corpus is needed"
	touch caps.txt
	run "$PSEUDO_SH" imgs caps.txt
	assert_failure 1
	assert_output --partial "CLIP weights are needed"
}

@test "pseudo.sh: all three modes from feature streams, with diagnostics" {
	need l2-build-index l2-retrieve l2-optimize-pseudo
	make_features 40 200 16
	run "$PSEUDO_SH" --image-features img.l2f --text-features txt.l2f --mode all -k 8 -o out
	assert_success
	assert_output --partial "pseudo.sh: out/pseudo-optimize.l2f (40 images"
	for m in optimize retrieve gaussian; do
		run l2-cat --count out/pseudo-$m.l2f
		assert_output "40"
		run l2-cat --header out/pseudo-$m.l2f
		assert_line "kind	pseudo-text-feature"
		assert_line "flags	normalized"
		run tail -n 1 out/report-$m.tsv
		assert_output --regexp "^all	40	"
	done
	# optimisation raises in-batch accuracy over retrieval alone
	python3 - <<'PY'
r = open("out/report-optimize.tsv").read().splitlines()[-1].split("\t")
assert float(r[7]) > float(r[6]), r
PY
	# the keys are the images'
	diff <(l2-cat -f tsv out/pseudo-optimize.l2f | cut -f1) <(l2-cat -f tsv img.l2f | cut -f1)
}

@test "pseudo.sh: options after -- reach l2-optimize-pseudo; reruns redo nothing" {
	need l2-build-index l2-retrieve l2-optimize-pseudo
	make_features 20 100 8
	"$PSEUDO_SH" --image-features img.l2f --text-features txt.l2f -o out -- --steps 0
	l2-optimize-pseudo --mode retrieve -k 16 <(l2-retrieve -i out/captions.idx -k 16 img.l2f) > r.l2f
	python3 - <<'PY'
import struct
def vecs(p):
    b = open(p, "rb").read(); d = struct.unpack_from("<I", b, 8)[0]; p, out = 64, []
    while p < len(b):
        n = struct.unpack_from("<I", b, p)[0]; p += 4 + n
        out.append(struct.unpack_from("<%df" % d, b, p)); p += 4 * d
    return out
a, b = vecs("out/pseudo-optimize.l2f"), vecs("r.l2f")
assert len(a) == len(b) == 20
assert max(abs(x - y) for u, v in zip(a, b) for x, y in zip(u, v)) < 1e-6
PY
	before=$(stat -c %Y.%s out/pseudo-optimize.l2f)
	sleep 1
	run "$PSEUDO_SH" --image-features img.l2f --text-features txt.l2f -o out -- --steps 0
	assert_success
	[ "$(stat -c %Y.%s out/pseudo-optimize.l2f)" = "$before" ]
}

@test "pseudo.sh: stores images and features in an LMDB dataset" {
	need l2-build-index l2-retrieve l2-optimize-pseudo l2-dataset
	make_features 6 60 8
	make_pngs imgs 6
	run "$PSEUDO_SH" imgs captions.txt --image-features img.l2f --text-features txt.l2f --mode all -k 4 -o out
	assert_success
	assert_output --partial "stored in out/dataset.lmdb"
	run l2-dataset list out/dataset.lmdb
	assert_success
	assert_line "img00.png"
	for name in image pseudo pseudo-retrieve pseudo-gaussian; do
		l2-dataset export-features -n $name out/dataset.lmdb > f-$name.l2f
		run l2-cat --count f-$name.l2f
		assert_output "6"
	done
	l2-cat -f tsv f-pseudo.l2f > a.tsv
	l2-cat -f tsv out/pseudo-optimize.l2f | sort > b.tsv
	sort a.tsv | diff - b.tsv
}

@test "pseudo.mk: missing inputs are clear errors" {
	run make --no-print-directory -f "$L2_ROOT/pipelines/pseudo.mk" OUT=out
	assert_failure
	assert_output --partial "pseudo.mk: set IMAGES=DIR"
	make_features 4 10 8
	run make --no-print-directory -f "$L2_ROOT/pipelines/pseudo.mk" OUT=out IMAGE_FEATURES=img.l2f MODES=bogus
	assert_failure
	assert_output --partial "unknown mode(s) bogus"
}

@test "pseudo.sh end to end with the CLIP encoders (tiny random-weight model, or L2_TEST_CLIP)" {
	need l2-encode-images l2-encode-text l2-build-index l2-retrieve l2-optimize-pseudo l2-dataset
	model=${L2_TEST_CLIP:-}
	if [ -z "$model" ]; then
		[ -x "$L2_BUILD/tests/test_clip" ] || skip "no CLIP weights (set L2_TEST_CLIP) and no test_clip to make tiny ones"
		"$L2_BUILD/tests/test_clip" --write-models "$PWD" >/dev/null
		model=$PWD/openai.safetensors
	fi
	cp "$L2_ROOT"/tests/ref/clip/img_*.png . 2>/dev/null && mkdir -p imgs && mv img_*.png imgs/ || make_pngs imgs 5
	printf 'a red square\na blue circle\na green triangle\na photo of a dog\na grey cat\n' > caps.txt
	run "$PSEUDO_SH" imgs caps.txt -m "$model" -k 3 --mode all -o out
	assert_success
	n=$(ls imgs | wc -l)
	for name in image pseudo pseudo-retrieve pseudo-gaussian; do
		l2-dataset export-features -n $name out/dataset.lmdb > f.l2f
		run l2-cat --count f.l2f
		assert_output "$n"
	done
	run l2-cat --count out/captions.l2f
	assert_output "5"
	run l2-cat --header out/pseudo-optimize.l2f
	assert_line "kind	pseudo-text-feature"
}
