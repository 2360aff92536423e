# gan_fixture.bash — the small dataset tests/l2-train-gan.bats and
# tests/l2-sample.bats train on: 16 coloured circles/squares (32x32 PNGs
# written by plain python3), captions "a COLOUR SHAPE", a 0.3 test split,
# and feature sets image, pseudo (keyed by image) and caption (keyed by
# caption) of dimension D whose first six entries encode colour and shape.
# make_gan_fixture DIR [D [N]]  ->  DIR/ds.lmdb (+ DIR/caption.l2f, DIR/pseudo.l2f);
# N images (default 16; more repeat the 8 shapes, for benchmarks)
make_gan_fixture() {
	local out=$1 D=${2:-48} N=${3:-16}
	mkdir -p "$out" && ( cd "$out" && python3 - "$D" "$N" <<'PY'
import struct, sys, zlib, random, os
D = int(sys.argv[1]); N = int(sys.argv[2]); os.makedirs("img", exist_ok=True)
cols = {"red": (230, 30, 30), "green": (30, 200, 40), "blue": (30, 60, 230), "yellow": (240, 220, 30)}
def png(path, w, h, px):
    raw = b"".join(b"\0" + bytes(px[y * w * 3:(y + 1) * w * 3]) for y in range(h))
    def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
def npy(path, rows):
    hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (len(rows), D)
    hdr += " " * ((64 - (10 + len(hdr) + 1) % 64) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode())
        for r in rows: f.write(struct.pack("<%df" % D, *r))
rng = random.Random(1); names = list(cols); caps, keys, feats, capfeat = [], [], [], {}
for i in range(N):
    c = names[i % 4]; sq = (i // 4) % 2 == 1; px = []
    for y in range(32):
        for x in range(32):
            dx, dy = x - 15.5, y - 15.5
            inside = (abs(dx) < 9 and abs(dy) < 9) if sq else dx * dx + dy * dy < 100
            px += list(cols[c]) if inside else [255, 255, 255]
    k = "img/%02d.png" % i; png(k, 32, 32, px)
    cap = "a %s %s" % (c, "square" if sq else "circle")
    caps.append("%s\t%s" % (k, cap)); keys.append(k)
    base = [0.02 * rng.gauss(0, 1) for _ in range(D)]; base[i % 4] += 1; base[4 + int(sq)] += 1
    capfeat[cap] = base; feats.append([b + 0.1 * rng.gauss(0, 1) for b in base])
open("captions.tsv", "w").write("\n".join(caps) + "\n")
npy("pseudo.npy", feats); open("pseudo.keys", "w").write("\n".join(keys) + "\n")
npy("image.npy", [[b + 0.05 * rng.gauss(0, 1) for b in f] for f in feats])
ck = sorted(capfeat); npy("caption.npy", [capfeat[c] for c in ck]); open("caption.keys", "w").write("\n".join(ck) + "\n")
PY
	l2-dataset build --quiet --captions captions.tsv --test-fraction 0.3 --seed 1 ds.lmdb . &&
	l2-cat --from-npy pseudo.npy --keys pseudo.keys --kind pseudo-text-feature --normalize -o pseudo.l2f &&
	l2-cat --from-npy image.npy --keys pseudo.keys --kind image-feature --normalize -o image.l2f &&
	l2-cat --from-npy caption.npy --keys caption.keys --kind text-feature --normalize -o caption.l2f &&
	l2-dataset import-features --quiet -n pseudo ds.lmdb pseudo.l2f &&
	l2-dataset import-features --quiet -n image ds.lmdb image.l2f &&
	l2-dataset import-features --quiet -n caption ds.lmdb caption.l2f )
}

# gan_fixture_with_clip: setup_file of the tests that train on the fixture: it in
# $BATS_FILE_TMPDIR/fx, test_clip's random-weight CLIP beside it; exports DS, FX and CLIP
gan_fixture_with_clip() {
	make_gan_fixture "$BATS_FILE_TMPDIR/fx" 48
	mkdir -p "$BATS_FILE_TMPDIR/clip"
	"$L2_BUILD/tests/test_clip" --write-models "$BATS_FILE_TMPDIR/clip" > /dev/null
	export DS=$BATS_FILE_TMPDIR/fx/ds.lmdb FX=$BATS_FILE_TMPDIR/fx CLIP=$BATS_FILE_TMPDIR/clip/openai.safetensors
}

# gan_fixture_with_vae: setup_file of the latent tests: the fixture in $BATS_FILE_TMPDIR/fx,
# test_vae's random-weight autoencoders in $BATS_FILE_TMPDIR/vae; exports FX and V
gan_fixture_with_vae() {
	make_gan_fixture "$BATS_FILE_TMPDIR/fx" 48
	mkdir -p "$BATS_FILE_TMPDIR/vae"
	"$L2_BUILD/tests/test_vae" --write-models "$BATS_FILE_TMPDIR/vae"
	export FX=$BATS_FILE_TMPDIR/fx V=$BATS_FILE_TMPDIR/vae
}

# the small generator/discriminator every test trains (16x16), and a CLIP that small
GAN_SIZE_TINY="--resolution 16 --channel-base 256 --channel-max 16 --z-dim 16 --w-dim 16 --cond-hidden 16 --map-layers 2"
GAN_TINY="$GAN_SIZE_TINY --batch 4 --threads 1"
CLIP_TINY="--width 32 --layers 1 --resolution 16 --patch 8 --context 8 --embed-dim 16 --vocab-size 530 --batch 8 --threads 1"

# workflow_folder: the pipelines' tests' setup, in $BATS_FILE_TMPDIR (made the current
# directory, the built tools first on PATH): fx/ as a user has it (12 images and
# captions.tsv, no dataset) and clip/clip.safetensors, a CLIP trained for 3 steps
workflow_folder() {
	cd "$BATS_FILE_TMPDIR" || return 1
	PATH="$L2_BUILD/bin:$PATH"
	make_gan_fixture fx 48 12 >/dev/null
	rm -rf fx/ds.lmdb fx/*.npy fx/*.keys fx/*.l2f
	mkdir -p clip && l2-train-clip --synthetic 40 $CLIP_TINY --steps 3 --quiet -o clip/clip.safetensors
}
