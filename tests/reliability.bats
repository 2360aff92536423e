#!/usr/bin/env bats
# Reliability: damaged stores, concurrent writers, full disks, hostile sizes —
# one test (or more) per problem of the reliability audit, each named after
# what a user would see.  Fault injection (kill -9, full filesystems) is in
# faults.bats.
load test_helper
bats_require_minimum_version 1.5.0

PY3=$(command -v /usr/bin/python3 || command -v python3)

# feats NAME ROWS DIM [SEED] [KIND] — NAME.l2f: random unit rows keyed k0000..
feats() {
	local name=$1 n=$2 d=$3 seed=${4:-1} kind=${5:-pseudo-text-feature}
	make_npy "$name.npy" "$n" "$d" "$seed"
	seq -f 'k%04g' 0 $((n - 1)) > "$name.keys"
	l2-cat --from-npy "$name.npy" --keys "$name.keys" --kind "$kind" --normalize > "$name.l2f"
}

# make_dataset_pngs DIR N — N small distinct RGBA PNGs DIR/iNNN.png (pure Python)
make_dataset_pngs() {
	"$PY3" - "$@" <<'PY'
import os, struct, sys, zlib
d, n = sys.argv[1], int(sys.argv[2])
def chunk(t, b):
    return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b) & 0xffffffff)
os.makedirs(d, exist_ok=True)
for i in range(n):
    w = h = 4
    raw = b"".join(b"\0" + b"".join(bytes([(i * 37 + x * 11) % 256, (y * 60 + i) % 256, 90, 255 if x else 0])
                                     for x in range(w)) for y in range(h))
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    open(os.path.join(d, "i%03d.png" % i), "wb").write(png)
PY
}

# ---- P2: truncated and damaged stores ---------------------------------------------

@test "a truncated store is refused with a message before the first read" {
	feats a 300 64
	l2-store put-features --quiet st feat.x a.l2f
	mkdir cut
	head -c $(( $(stat -c %s st/data.mdb) - 4096 )) st/data.mdb > cut/data.mdb
	for cmd in "l2-store info cut" "l2-store get-features cut feat.x" "l2-dataset stats cut" \
		   "l2-store put-features cut feat.x a.l2f"; do
		run --separate-stderr $cmd
		assert_failure 1
		[[ $stderr == *"cut: corrupt or truncated store: data.mdb is "*" bytes, its pages reach "* ]] || {
			echo "$cmd: $stderr"; false; }
	done
	mkdir zero
	: > zero/data.mdb
	run l2-store info zero
	assert_failure 1
	assert_output --partial "zero: corrupt or truncated store: data.mdb is 0 bytes"
}

@test "a damaged page that sends a read past the file's end names the store instead of a Bus error" {
	feats a 50 16
	l2-store put-features --quiet st feat.x a.l2f
	# make the value size of meta "format" 16 MiB larger in every copy of its page
	"$PY3" - <<'PY'
b = bytearray(open("st/data.mdb", "rb").read())
i = n = 0
while (i := b.find(b"formatl2-store", i)) >= 0:
    b[i - 6:i - 4] = (256).to_bytes(2, "little"); n += 1; i += 1
assert n, "no meta format entry found"
open("st/data.mdb", "wb").write(b)
PY
	run l2-store info st
	assert_failure 1
	assert_output "l2-store: st: corrupt or truncated (reading its memory map failed: the file is shorter than its content says)"
}

# ---- P4, P7, P10: feature sub-databases: one writer, atomic description, completeness -----

# hold_writer FIFO CMD... — start CMD reading FIFO, feed it the first
# $HOLD_BYTES (default 3 KiB) of $STREAM and wait until it holds its writer
# lock ($LOCKFILE); finish_writer feeds the rest.  Sets WRITER (pid).
hold_writer() {
	local fifo=$1; shift
	mkfifo "$fifo"
	"$@" > writer.out 2>&1 3>&- &
	WRITER=$!
	exec 7> "$fifo"
	head -c "${HOLD_BYTES:-3072}" "$STREAM" >&7
	for _ in $(seq 200); do
		grep -q "^l2-lock pid $WRITER" "$LOCKFILE" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "the writer never took $LOCKFILE" >&2
	return 1
}
finish_writer() {
	tail -c +$(( ${HOLD_BYTES:-3072} + 1 )) "$STREAM" >&7
	exec 7>&-
	wait $WRITER
}

@test "a second put-features into the same sub-database is refused while the first runs, naming its pid" {
	feats a 400 64 1
	feats b 300 32 2
	STREAM=a.l2f LOCKFILE=st/feat.x.lock
	l2-store put-features --quiet st feat.y b.l2f   # the store exists
	hold_writer in.fifo l2-store put-features --batch 50 st feat.x in.fifo
	for s in b.l2f a.l2f; do
		run l2-store put-features st feat.x $s
		assert_failure 1
		assert_output "l2-store: st: a write into feat.x is running (pid $WRITER); wait for it to end, or stop it"
	done
	finish_writer
	l2-store get-features st feat.x | l2-cat -f tsv > got.tsv
	l2-cat -f tsv a.l2f | LC_ALL=C sort > want.tsv
	cmp want.tsv got.tsv
	run ls st
	assert_output "$(printf 'data.mdb\nlock.mdb')"
}

@test "a second import-features into the same feature set is refused while the first runs" {
	mkdir imgs
	make_dataset_pngs imgs 40
	l2-dataset build --quiet ds.lmdb imgs
	l2-dataset list ds.lmdb > keys
	make_npy a.npy 40 16 1
	l2-cat --from-npy a.npy --keys keys --kind image-feature --normalize > a.l2f
	STREAM=a.l2f LOCKFILE=ds.lmdb/feat.img.lock
	hold_writer in.fifo l2-dataset import-features -n img ds.lmdb in.fifo
	run l2-dataset import-features -n img ds.lmdb a.l2f
	assert_failure 1
	assert_output "l2-dataset: ds.lmdb: a write into feature set 'img' is running (pid $WRITER); wait for it to end, or stop it"
	finish_writer
	run l2-dataset stats ds.lmdb
	assert_line "feature	img	image-feature	16	f32,normalized	40"
}

@test "a stream that fails on its first record leaves no store and no description behind" {
	feats good 20 128
	# a header promising dim 1048576, then a record cut short
	"$PY3" -c "
import struct, sys
sys.stdout.buffer.write(b'L2FS' + struct.pack('<HHIIQ', 1, 1, 1048576, 1, 2**64 - 1) + b'image-feature'.ljust(24, b'\0') + bytes(16) + struct.pack('<I', 1) + b'a' + bytes(40))" > dimmax.l2f
	run l2-store put-features st feat.x dimmax.l2f
	assert_failure 1
	assert_output --partial "truncated input"
	assert_not_exist st
	l2-store put-features --quiet st feat.y good.l2f
	run l2-store put-features st feat.x dimmax.l2f
	assert_failure 1
	run l2-store info st
	refute_output --partial "feat.x"
	run l2-store put-features st feat.x good.l2f
	assert_success
}

@test "an interrupted put-features is visible as incomplete; a rerun with --resume completes it" {
	feats a 950 8
	STREAM=a.l2f LOCKFILE=st/feat.x.lock
	l2-store put-features --quiet st feat.y a.l2f
	hold_writer in.fifo l2-store put-features --batch 10 st feat.x in.fifo
	# wait for a committed batch, then kill it
	for _ in $(seq 100); do
		[ "$(l2-store info st | grep -c '^db	feat.x	')" = 1 ] && break
		sleep 0.05
	done
	kill -9 $WRITER
	exec 7>&-
	wait $WRITER || true
	run l2-store info st
	assert_line "meta	feat.x.complete	0"
	run l2-store get-features st feat.x
	assert_failure 1
	assert_output --partial "st: feat.x is incomplete ("
	assert_output --partial "the write that filled it was interrupted"
	run l2-store put-features --resume st feat.x a.l2f
	assert_success
	run l2-store info st
	assert_line "meta	feat.x.complete	1"
	l2-store get-features st feat.x | l2-cat -f tsv > got.tsv
	l2-cat -f tsv a.l2f | LC_ALL=C sort > want.tsv
	cmp want.tsv got.tsv
}

@test "an interrupted import-features is visible as incomplete and refused by readers unless asked" {
	make_dataset_pngs imgs 1300
	l2-dataset build --quiet ds.lmdb imgs
	l2-dataset list ds.lmdb > keys
	make_npy a.npy 1300 16 1
	l2-cat --from-npy a.npy --keys keys --kind pseudo-text-feature --normalize > a.l2f
	# a dataset commits every 1000 vectors: hold the writer after 1100
	STREAM=a.l2f LOCKFILE=ds.lmdb/feat.pk.lock HOLD_BYTES=$((64 + 1100 * (4 + 8 + 64)))
	hold_writer in.fifo l2-dataset import-features -n pk ds.lmdb in.fifo
	for _ in $(seq 100); do
		l2-dataset stats ds.lmdb | grep -q "^feature	pk" && break
		sleep 0.05
	done
	# while it runs: readers are told a writer is at work, not to resume
	run l2-dataset export-features -n pk ds.lmdb
	assert_failure 1
	assert_output --partial "ds.lmdb: feature set 'pk' is being written (pid $WRITER;"
	refute_output --partial "rerun"
	kill -9 $WRITER
	exec 7>&-
	wait $WRITER || true
	run l2-dataset stats ds.lmdb
	assert_line "feature	pk	pseudo-text-feature	16	f32,normalized,incomplete	1000"
	run l2-dataset export-features -n pk ds.lmdb
	assert_failure 1
	assert_output --partial "ds.lmdb: feature set 'pk' is incomplete ("
	assert_output --partial "the write that filled it was interrupted; rerun it to complete it, or pass --incomplete"
	l2-dataset export-features --incomplete -n pk ds.lmdb > part.l2f
	l2-dataset import-features -n pk ds.lmdb a.l2f
	run l2-dataset stats ds.lmdb
	assert_line "feature	pk	pseudo-text-feature	16	f32,normalized	1300"
	l2-dataset export-features -n pk ds.lmdb | l2-cat -f tsv > got.tsv
	l2-cat -f tsv a.l2f | LC_ALL=C sort > want.tsv
	cmp want.tsv got.tsv
}

# ---- P6: model files are verified; outputs are finite --------------------------------------

@test "a CLIP file whose l2.checksum does not match is refused by the encoders" {
	mkdir imgs
	make_dataset_pngs imgs 16
	for f in imgs/*.png; do printf '%s\tcaption %s\n' "${f#imgs/}" "$(basename "$f" .png)"; done > caps.tsv
	l2-dataset build --quiet --captions caps.tsv ds.lmdb imgs
	mkdir run
	l2-train-clip --quiet -d ds.lmdb -o run/clip.safetensors --width 32 --layers 1 --resolution 16 --patch 8 --context 8 \
		--embed-dim 16 --vocab-size 530 --batch 8 --threads 1 --steps 2
	echo "caption i001" | l2-encode-text -m run/clip.safetensors > ok.l2f   # the sound file encodes
	# one bit of text_projection
	"$PY3" - run/clip.safetensors bad.safetensors <<'PY'
import json, struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
b[8 + n + h["text_projection"]["data_offsets"][0] + 3] ^= 0x40
open(sys.argv[2], "wb").write(b)
PY
	cp run/clip.vocab.txt.gz bad.vocab.txt.gz
	run l2-encode-text -m bad.safetensors -o x.l2f <<< "caption i001"
	assert_failure 1
	assert_output "l2-encode-text: bad.safetensors: checksum mismatch: the checkpoint is corrupt"
	run l2-encode-images -m bad.safetensors -o x.l2f imgs
	assert_failure 1
	assert_output "l2-encode-images: bad.safetensors: checksum mismatch: the checkpoint is corrupt"
}

@test "NaN weights without a checksum: the encoders refuse the non-finite features they give" {
	"$L2_BUILD/tests/test_clip" --write-models . > /dev/null
	# every value of text_projection / visual.proj becomes NaN (f32 or f16)
	"$PY3" - openai.safetensors nan.safetensors <<'PY'
import json, struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
for k in ("text_projection", "visual.proj"):
    t = h[k]; a, e = t["data_offsets"]; size = {"F32": 4, "F16": 2, "BF16": 2}[t["dtype"]]
    nan = {4: struct.pack("<f", float("nan")), 2: b"\x00\x7e" if t["dtype"] == "F16" else b"\xc0\x7f"}[size]
    b[8 + n + a:8 + n + e] = nan * ((e - a) // size)
open(sys.argv[2], "wb").write(b)
PY
	cp "$L2_ROOT/tests/ref/clip/img_rgb.png" img_0.png
	run l2-encode-images -m nan.safetensors -o x.l2f img_0.png
	assert_failure 1
	assert_output --partial "nan.safetensors: the model gave a feature with NaN or infinity for img_0.png"
	[ -n "$L2_TEST_VOCAB" ] || skip "no CLIP vocabulary beside the checkout (text half not checked)"
	run l2-encode-text -m nan.safetensors --vocab "$L2_TEST_VOCAB" -o x.l2f <<< "a red heart"
	assert_failure 1
	assert_failure 1
	assert_output --partial "nan.safetensors: the model gave a feature with NaN or infinity for line 'a red heart'"
}

# ---- P11: non-finite values and zero vectors ---------------------------------------------------

# one_record FILE DIM FLAGS VALUES... — a text-feature stream of one record "q"
one_record() {
	"$PY3" - "$@" <<'PY'
import struct, sys
path, d, flags, vals = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), [float(v) for v in sys.argv[4:]]
with open(path, "wb") as f:
    f.write(b"L2FS" + struct.pack("<HHIIQ", 1, 1, d, flags, 1) + b"text-feature".ljust(24, b"\0") + bytes(16))
    f.write(struct.pack("<I", 1) + b"q" + struct.pack("<%df" % d, *vals))
PY
}

@test "NaN, infinity and flagged-normalized vectors that are not are refused by every reader, naming the record" {
	one_record nan.l2f 3 0 0.5 nan 0.1
	one_record inf.l2f 3 1 1 inf 0
	one_record big.l2f 3 1 30 10 5           # flagged normalized, norm 32.0
	for cmd in "l2-cat -f tsv" "l2-store put-features st db" "l2-fid nan.l2f" "l2-build-index --metric ip -o x.idx"; do
		run $cmd nan.l2f
		assert_failure 1
		assert_output --partial "nan.l2f: record 1 ('q'): vector: value 1 is NaN"
	done
	assert_not_exist st
	run l2-cat -f tsv inf.l2f
	assert_output --partial "inf.l2f: record 1 ('q'): vector: value 1 is infinite"
	feats idx 20 3 1 text-feature
	l2-build-index --quiet -o t.idx idx.l2f
	run l2-retrieve -i t.idx -o x.l2f big.l2f
	assert_failure 1
	assert_output "l2-retrieve: big.l2f: record 1 ('q'): vector: flagged normalized, but its norm is 32.0156"
}

@test "zero vectors are refused where they can only be errors" {
	feats idx 20 3 1 text-feature
	l2-build-index --quiet -o t.idx idx.l2f
	one_record zero.l2f 3 0 0 0 0
	run l2-retrieve --normalize -i t.idx -o x.l2f zero.l2f
	assert_failure 1
	assert_output "l2-retrieve: zero.l2f: the vector of \"q\" is a zero vector: --normalize cannot give it a direction"
	# l2-cat: NaN rows and rows --normalize cannot scale
	"$PY3" -c "
import struct
hdr = \"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\"; hdr += ' ' * ((64 - (10 + len(hdr) + 1) % 64) % 64) + '\n'
for name, row in (('nan', [1, float('nan'), 0]), ('zero', [0, 0, 0])):
    open(name + '.npy', 'wb').write(b'\x93NUMPY\x01\x00' + struct.pack('<H', len(hdr)) + hdr.encode() + struct.pack('<6f', 1, 2, 3, *row))"
	run l2-cat --from-npy nan.npy --normalize
	assert_failure 1
	assert_output "l2-cat: nan.npy: row 1 holds NaN or infinity (column 1)"
	run l2-cat --from-npy zero.npy --normalize
	assert_failure 1
	assert_output "l2-cat: zero.npy: row 1 is a zero vector: --normalize cannot give it a direction"
	# l2-optimize-pseudo: a zero image feature (gaussian) has no direction
	"$PY3" -c "
import struct
with open('img.l2f', 'wb') as f:
    f.write(b'L2FS' + struct.pack('<HHIIQ', 1, 1, 3, 0, 1) + b'image-feature'.ljust(24, b'\0') + bytes(16))
    f.write(struct.pack('<I', 1) + b'q' + struct.pack('<3f', 0, 0, 0))"
	run l2-optimize-pseudo --mode gaussian -o x.l2f img.l2f
	assert_failure 1
	assert_output "l2-optimize-pseudo: img.l2f: q: the image feature is a zero vector (it has no direction)"
}

@test "l2-sample refuses NaN conditions instead of drawing black images" {
	load gan_fixture
	make_gan_fixture fx 48
	l2-train-gan --quiet -d fx/ds.lmdb -o run $GAN_TINY --steps 1 --tick 1
	"$PY3" -c "
import struct
with open('nan.l2f', 'wb') as f:
    f.write(b'L2FS' + struct.pack('<HHIIQ', 1, 1, 48, 0, 1) + b'text-feature'.ljust(24, b'\0') + bytes(16))
    f.write(struct.pack('<I', 1) + b'q' + struct.pack('<48f', *([float('nan')] + [0.1] * 47)))"
	run l2-sample -m run/G_ema.safetensors -n 1 -o s nan.l2f
	assert_failure 1
	assert_output --partial "nan.l2f: record 1 ('q'): vector: value 0 is NaN"
	assert_not_exist s/0000-00.png
}

# ---- P12: invalid covariances --------------------------------------------------------------------

@test "l2-fid refuses a covariance that is not one, as pytorch-fid does, instead of a negative FID" {
	"$PY3" - <<'PY'
import struct, zlib, random
def npy(a, shape):
    hdr = "{'descr': '<f8', 'fortran_order': False, 'shape': %s, }" % (str(tuple(shape)) if len(shape) > 1 else "(%d,)" % shape[0])
    hdr += " " * ((64 - (10 + len(hdr) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode() + struct.pack("<%dd" % len(a), *a)
def npz(path, members):
    out, cd = b"", b""
    for name, data in members:
        name = name.encode(); crc = zlib.crc32(data)
        lh = struct.pack("<IHHHHHIIIHH", 0x04034b50, 20, 0, 0, 0, 0, crc, len(data), len(data), len(name), 0)
        cd += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014b50, 20, 20, 0, 0, 0, 0, crc, len(data), len(data), len(name), 0, 0, 0, 0, 0, len(out)) + name
        out += lh + name + data
    out += cd + struct.pack("<IHHHHIIH", 0x06054b50, 0, 0, len(members), len(members), len(cd), len(out), 0)
    open(path, "wb").write(out)
d = 8; rng = random.Random(0)
X = [[rng.gauss(0, 1) for _ in range(d)] for _ in range(20)]
mu = [sum(r[j] for r in X) / 20 for j in range(d)]
cov = [sum((r[i] - mu[i]) * (r[j] - mu[j]) for r in X) / 19 for i in range(d) for j in range(d)]
eye = [1.0 if i == j else 0.0 for i in range(d) for j in range(d)]
npz("good.npz", [("mu.npy", npy(mu, [d])), ("sigma.npy", npy(cov, [d, d]))])
npz("neg.npz", [("mu.npy", npy(mu, [d])), ("sigma.npy", npy([-v for v in eye], [d, d]))])
ind = list(eye); ind[1] = ind[d] = 2.0   # symmetric, diagonal 1, eigenvalue -1
npz("indef.npz", [("mu.npy", npy(mu, [d])), ("sigma.npy", npy(ind, [d, d]))])
asym = list(cov); asym[1] += 1.0
npz("asym.npz", [("mu.npy", npy(mu, [d])), ("sigma.npy", npy(asym, [d, d]))])
PY
	run l2-fid good.npz good.npz
	assert_success
	run l2-fid neg.npz good.npz
	assert_failure 1
	assert_output "l2-fid: neg.npz: 'sigma' is not a covariance: diagonal element 0 is negative (-1)"
	run l2-fid asym.npz good.npz
	assert_failure 1
	assert_output --partial "asym.npz: 'sigma' is not a covariance: not symmetric (element 1,0 is"
	run l2-fid indef.npz good.npz
	assert_failure 1
	assert_output --partial "indef.npz: covariance is not a covariance: not positive semi-definite (eigenvalue -1)"
	run l2-fid good.npz indef.npz
	assert_failure 1
	assert_output --partial "indef.npz: covariance is not a covariance: the product with good.npz's has a negative eigenvalue"
}

# ---- P13: hostile sizes, special files -------------------------------------------------------------

# "ulimit -v KB;" for a bash -c line, or nothing under SAN=1 (ASan's shadow memory needs terabytes
# of address space, so under a limit every sanitized program aborts before main)
vlimit() { [ "${SAN:-0}" = 1 ] || echo "ulimit -v $1;"; }

@test "a GAN config that lies about its sizes is refused before anything is allocated" {
	load gan_fixture
	make_gan_fixture fx 48
	l2-train-gan --quiet -d fx/ds.lmdb -o run $GAN_TINY --steps 1 --tick 1
	"$PY3" - run/G_ema.safetensors G-wdim.safetensors <<'PY'
import json, struct, sys, re
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
h["__metadata__"]["l2.gan.config"] = re.sub(r"wdim=\d+", "wdim=100000", h["__metadata__"]["l2.gan.config"])
hb = json.dumps(h).encode(); hb += b" " * (-len(hb) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(hb)) + hb + b[8 + n:])
PY
	one_record c.l2f 48 0 $(seq 48 | sed 's/.*/0.1/')
	# the address-space limit makes a huge allocation fail rather than succeed slowly; ASan
	# reserves terabytes of shadow memory up front, so under SAN=1 the refusal runs unlimited
	run bash -c "$(vlimit 3000000) l2-sample -m G-wdim.safetensors -n 1 -o s c.l2f"
	assert_failure 1
	assert_output --partial "G-wdim.safetensors: GAN config 'res=16 cdim=48 zdim=16 wdim=100000"
	assert_output --partial "does not match the weights (G.mapping.fc0.weight is another shape)"
}

@test "l2-encode-images refuses a FIFO or a device named as an image instead of blocking or filling memory" {
	"$L2_BUILD/tests/test_clip" --write-models . > /dev/null
	mkfifo pipe.png
	run timeout 20 l2-encode-images -m openai.safetensors pipe.png
	assert_failure 1
	assert_output --partial "pipe.png: not a regular file (a FIFO, device or socket)"
	run bash -c "echo /dev/zero | ($(vlimit 3000000) timeout 60 l2-encode-images -m openai.safetensors -)"
	assert_failure 1
	assert_output --partial "/dev/zero: not a regular file (a FIFO, device or socket)"
	# and the magic is read first: a large file that is not an image is not read whole
	head -c 5000000 /dev/urandom > big.png
	run l2-encode-images -m openai.safetensors big.png
	assert_failure 1
	assert_output --partial "big.png: not a PNG or JPEG file"
}

@test "l2-fid refuses features too large for its cubic cost unless told otherwise" {
	"$PY3" -c "
import struct
with open('wide.l2f', 'wb') as f:
    f.write(b'L2FS' + struct.pack('<HHIIQ', 1, 2, 16384, 0, 3) + b'image-feature'.ljust(24, b'\0') + bytes(16))
    for i in range(3): f.write(struct.pack('<I', 1) + bytes([97 + i]) + b'\x00\x3c' * 16384)"
	run l2-fid wide.l2f wide.l2f
	assert_failure 1
	assert_output "l2-fid: wide.l2f: features of dimension 16384: FID's memory grows with its square (2.0 GiB per covariance) and its time with its cube; at most 8192 unless --max-dim says more"
}

# ---- P15: messages that say what is wrong ------------------------------------------------------------

@test "stream and npy errors give the real reason and the right byte counts" {
	run l2-cat -f tsv < /
	assert_failure 1
	assert_output "l2-cat: standard input: Is a directory"
	run bash -c 'l2-cat -f tsv <&-'
	assert_failure 1
	assert_output "l2-cat: standard input: Bad file descriptor"
	feats a 3 4
	head -c 40 a.l2f > cut.l2f
	run l2-cat -f tsv cut.l2f
	assert_failure 1
	assert_output "l2-cat: cut.l2f: truncated input: stream header needs 64 bytes, only 40 left"
	"$PY3" -c "
import struct
hdr = \"{'descr': '<f4', 'fortran_order': False, 'shape': (-5, 128), }\"; hdr += ' ' * ((64 - (10 + len(hdr) + 1) % 64) % 64) + '\n'
open('neg.npy', 'wb').write(b'\x93NUMPY\x01\x00' + struct.pack('<H', len(hdr)) + hdr.encode())"
	run l2-cat --from-npy neg.npy
	assert_failure 1
	assert_output "l2-cat: neg.npy: malformed .npy shape: a negative dimension"
	run l2-cat --from-npy a.npy --kind "BAD KIND" -o x.l2f
	assert_failure 1
	assert_output --partial "l2-cat: x.l2f: cannot write a stream of kind 'BAD KIND' dim 4:"
	refute_output --partial "internal error"
	run bash -c 'l2-cat a.l2f > /dev/full'
	assert_failure 1
	assert_output "l2-cat: standard output: write failed: No space left on device"
}

@test "concatenated neighbors segments of different k name both k" {
	"$PY3" - <<'PY'
import struct
def seg(k):
    b = b"L2FS" + struct.pack("<HHIIQ", 1, 1, 2, 0, 1) + b"neighbors".ljust(24, b"\0") + struct.pack("<I", k) + bytes(12)
    b += struct.pack("<I", 1) + b"q" + struct.pack("<2f", 0.6, 0.8)
    for j in range(k):
        b += struct.pack("<I", 1) + bytes([97 + j]) + struct.pack("<f", 0.5) + struct.pack("<2f", 0.6, 0.8)
    return b
open("nb.l2f", "wb").write(seg(2) + seg(3))
PY
	run l2-cat -f tsv nb.l2f
	assert_failure 1
	assert_output --partial "concatenated segment 2 does not match the first: expected neighbors dim 2 k 2, got neighbors dim 2 k 3"
}

@test "an index and a dataset given for each other are named for what they are" {
	feats a 20 8 1 text-feature
	l2-build-index --quiet -o t.idx a.l2f
	mkdir imgs
	make_dataset_pngs imgs 2
	l2-dataset build --quiet ds.lmdb imgs
	run l2-build-index -o ds.lmdb a.l2f
	assert_failure 1
	assert_output "l2-build-index: ds.lmdb: not an l2 index: it is an l2 dataset store (format 'l2-store')"
	run l2-dataset stats t.idx
	assert_failure 1
	assert_output "l2-dataset: t.idx: expected a dataset store, got an index (l2-build-index)"
}

@test "l2-encode-images gives the real reason a named file cannot be opened" {
	"$L2_BUILD/tests/test_clip" --write-models . > /dev/null
	ln -s loop.png loop.png
	run l2-encode-images -m openai.safetensors -o x.l2f loop.png
	assert_failure 1
	assert_output "l2-encode-images: loop.png: Too many levels of symbolic links"
}

@test "l2-dataset build says why image names were left out" {
	mkdir imgs
	make_dataset_pngs imgs 2
	mkfifo imgs/fifo.png
	ln -s nowhere.png imgs/dangling.png
	echo notes > imgs/notes.txt
	run l2-dataset build ds.lmdb imgs
	assert_success
	assert_output --partial "left out: 1 file that is not .png/.jpg/.jpeg, 2 image names that are not a regular file (FIFO, device or dangling link)"
}

# ---- P17: counts in summaries --------------------------------------------------------------------------

@test "summaries count what the store holds: repeated keys, empty corpus lines, one record" {
	mkdir imgs
	make_dataset_pngs imgs 3
	l2-dataset build --quiet ds.lmdb imgs
	feats f 3 8 1 image-feature
	l2-cat --from-npy f.npy --keys <(printf 'i000.png\ni001.png\ni002.png\n') --kind image-feature --normalize > f.l2f
	cat f.l2f f.l2f > twice.l2f
	run l2-dataset import-features -n clip ds.lmdb twice.l2f
	assert_success
	assert_output --partial "6 image-feature vectors written to 'clip', which now holds 3"
	printf '\n\n\n' > blank.txt
	run l2-dataset add-corpus ds.lmdb blank.txt
	assert_success
	assert_output --partial "0 corpus lines added (0 already there, 3 empty)"
	feats one 1 8
	run l2-store put-features st db one.l2f
	assert_success
	assert_output --partial "1 record stored, 0 kept (already present); it holds 1"
}

# ---- P16: what killed writers leave behind ---------------------------------------------------------------

@test "a temporary file left by a killed writer is removed by the next write of the same output; nothing else is" {
	feats a 3 4
	host=$(hostname | tr -c 'A-Za-z0-9-\n' '-')
	dead=$(( $(cat /proc/sys/kernel/pid_max) - 1 ))   # not running (checked below)
	kill -0 $dead 2>/dev/null && skip "pid $dead is running"
	echo half > "out.l2f.tmp.$host.$dead.AbC123"
	echo live > "out.l2f.tmp.$host.$$.XyZ789"            # this shell is alive
	echo other > "out.l2f.tmp.otherhost.$dead.QwE456"    # another host's (a shared filesystem)
	echo mine > "out.l2f.tmp.notes"
	l2-cat a.l2f -o out.l2f
	assert_file_not_exists "out.l2f.tmp.$host.$dead.AbC123"
	assert_file_exists "out.l2f.tmp.$host.$$.XyZ789"
	assert_file_exists "out.l2f.tmp.otherhost.$dead.QwE456"
	assert_file_exists "out.l2f.tmp.notes"
	run l2-cat -f tsv out.l2f
	assert_success
	assert_equal "${#lines[@]}" 3
}

@test "an index folder left by a killed build is removed by the next build of that index" {
	feats a 20 8 1 text-feature
	host=$(hostname | tr -c 'A-Za-z0-9-\n' '-')
	dead=$(( $(cat /proc/sys/kernel/pid_max) - 1 ))
	kill -0 $dead 2>/dev/null && skip "pid $dead is running"
	mkdir "x.idx.tmp.$host.$dead.AbC123" "x.idx.tmp.$host.$dead.DeF456"
	touch "x.idx.tmp.$host.$dead.AbC123/data.mdb" "x.idx.tmp.$host.$dead.AbC123/lock.mdb"
	echo mine > "x.idx.tmp.$host.$dead.DeF456/notes.txt"   # not only LMDB's files: kept
	l2-build-index --quiet -o x.idx a.l2f
	assert_not_exist "x.idx.tmp.$host.$dead.AbC123"
	assert_file_exists "x.idx.tmp.$host.$dead.DeF456/notes.txt"
	l2-retrieve -i x.idx --info > /dev/null
}

# ---- P19: --keep-going and unreadable subdirectories -----------------------------------------------------

@test "l2-encode-images -k skips an unreadable subdirectory with a warning and exits 1" {
	"$L2_BUILD/tests/test_clip" --write-models . > /dev/null
	as=() w=$PWD
	if [ "$(id -u)" = 0 ]; then # root reads any directory: run as nobody, in a folder nobody can reach
		command -v setpriv > /dev/null || skip "root, and no setpriv to drop privileges"
		w=$(mktemp -d /tmp/l2-keep-going.XXXXXX)
		as=(setpriv --reuid=65534 --regid=65534 --clear-groups)
	fi
	mkdir -p "$w/d/ok" "$w/d/locked"
	cp "$L2_ROOT/tests/ref/clip/img_rgb.png" "$w/d/ok/a.png"
	cp "$L2_ROOT/tests/ref/clip/img_rgb.png" "$w/d/locked/b.png"
	cp openai.safetensors "$w/"
	chmod -R a+rX "$w" && chmod 777 "$w" && chmod 000 "$w/d/locked"
	run "${as[@]}" "$(command -v l2-encode-images)" -k -m "$w/openai.safetensors" -o "$w/x.l2f" "$w/d"
	chmod 755 "$w/d/locked"
	cp "$w/x.l2f" x.l2f || true
	[ "$w" = "$PWD" ] || rm -r "$w"
	assert_failure 1
	assert_output --partial "d/locked: Permission denied (skipped)"
	assert_output --partial "1 unreadable directory skipped"
	run l2-cat -f tsv x.l2f
	assert_output --partial "ok/a.png"
}

# ---- P1, P3: builds replace only datasets, one at a time ------------------------------------------------

@test "build --force never replaces a folder that is not a dataset, nor a .old it did not make" {
	mkdir imgs victim photos
	make_dataset_pngs imgs 2
	echo precious > victim/notes.txt
	echo other > victim.old
	run l2-dataset build --force victim imgs
	assert_failure 1
	assert_output "l2-dataset: victim: exists and is not an l2 dataset store: --force replaces only a dataset (move or remove it yourself)"
	assert_equal "$(cat victim/notes.txt)" precious
	assert_equal "$(cat victim.old)" other
	assert_not_exist victim.partial
	cp imgs/* photos/ && echo notes > photos/notes.txt
	run l2-dataset build --force photos photos
	assert_failure 1
	assert_equal "$(cat photos/notes.txt)" notes
	assert_not_exist photos/data.mdb
	# an index is an l2 store, but not a dataset
	feats a 20 8 1 text-feature
	l2-build-index --quiet -o t.idx a.l2f
	run l2-dataset build --force t.idx imgs
	assert_failure 1
	assert_output --partial "t.idx: expected a dataset store, got an index"
	l2-retrieve -i t.idx --info > /dev/null
}

@test "build --force replaces a dataset in one step and leaves a user's DATASET.old alone" {
	mkdir imgs more
	make_dataset_pngs imgs 2
	make_dataset_pngs more 3
	l2-dataset build --quiet ds.lmdb imgs
	echo mine > ds.lmdb.old
	run l2-dataset build ds.lmdb more
	assert_failure 1
	assert_output "l2-dataset: ds.lmdb: exists (use --force to replace it)"
	l2-dataset build --quiet --force ds.lmdb more
	assert_equal "$(l2-dataset list ds.lmdb | wc -l)" 3
	assert_equal "$(cat ds.lmdb.old)" mine
	assert_not_exist ds.lmdb.partial
	assert_not_exist ds.lmdb.lock
	run ls -A
	refute_output --partial "replaced"
}

@test "a second build of the same dataset is refused while the first runs, with or without --resume" {
	mkdir imgs
	make_dataset_pngs imgs 3
	mkfifo corpus.txt   # the first build waits, holding its lock, until the corpus arrives
	l2-dataset build --quiet --corpus corpus.txt ds.lmdb imgs 3>&- &
	first=$!
	for _ in $(seq 100); do [ -e ds.lmdb.partial ] && break; sleep 0.1; done
	run l2-dataset build ds.lmdb imgs
	assert_failure 1
	assert_output "l2-dataset: ds.lmdb: a build is running (pid $first); wait for it to end, or stop it"
	run l2-dataset build --resume ds.lmdb imgs
	assert_failure 1
	assert_output "l2-dataset: ds.lmdb: a build is running (pid $first); wait for it to end, or stop it"
	refute_output --partial "--resume"
	echo "a line of corpus" > corpus.txt
	wait $first
	assert_equal "$(l2-dataset list ds.lmdb | wc -l)" 3
	assert_not_exist ds.lmdb.old
	assert_not_exist ds.lmdb.partial
}

@test "a killed build leaves an interrupted .partial that --resume finishes; the lock is taken over" {
	mkdir imgs
	make_dataset_pngs imgs 3
	mkfifo corpus.txt
	l2-dataset build --quiet --corpus corpus.txt ds.lmdb imgs 3>&- &
	first=$!
	for _ in $(seq 100); do [ -e ds.lmdb.partial ] && break; sleep 0.1; done
	kill -9 $first
	wait $first || true
	run l2-dataset build ds.lmdb imgs
	assert_failure 1
	assert_output "l2-dataset: ds.lmdb.partial: an interrupted build is there (continue it with --resume, or remove it)"
	l2-dataset build --quiet --resume ds.lmdb imgs
	assert_equal "$(l2-dataset list ds.lmdb | wc -l)" 3
	assert_not_exist ds.lmdb.lock
}

# ---- P5: one training run per output ------------------------------------------------------------------

@test "a second training run into the same output is refused while the first runs" {
	load gan_fixture
	make_gan_fixture fx 48
	l2-train-gan --quiet -d fx/ds.lmdb -o run $GAN_TINY --steps 100000 --tick 100000 3>&- &
	first=$!
	for _ in $(seq 300); do [ -e run/train.lock ] && break; sleep 0.1; done
	run l2-train-gan --quiet -d fx/ds.lmdb -o run $GAN_TINY --steps 1 --seed 2
	kill -9 $first
	wait $first || true
	assert_failure 1
	assert_output "l2-train-gan: run: a training run is running (pid $first); wait for it to end, or stop it"
	# once it is gone, --resume continues it (the kernel dropped its lock)
	run l2-train-gan --quiet -d fx/ds.lmdb -o run $GAN_TINY --steps 1 --tick 1
	assert_success
	assert_not_exist run/train.lock
}

@test "a second l2-train-clip into the same file is refused while the first runs" {
	mkdir imgs
	make_dataset_pngs imgs 16
	for f in imgs/*.png; do printf '%s\tcaption %s\n' "${f#imgs/}" "$(basename "$f" .png)"; done > caps.tsv
	l2-dataset build --quiet --captions caps.tsv ds.lmdb imgs
	C="--width 32 --layers 1 --resolution 16 --patch 8 --context 8 --embed-dim 16 --vocab-size 530 --batch 8 --threads 1"
	l2-train-clip --quiet -d ds.lmdb -o clip.safetensors $C --steps 1000000 3>&- &
	first=$!
	for _ in $(seq 300); do [ -e clip.lock ] && break; sleep 0.1; done
	run l2-train-clip --quiet -d ds.lmdb -o clip.safetensors $C --steps 1
	kill -9 $first
	wait $first || true
	assert_failure 1
	assert_output "l2-train-clip: clip.safetensors: a training run is running (pid $first); wait for it to end, or stop it"
}

# ---- P8: indexes under an address-space limit ----------------------------------------------------------

@test "indexes are built, appended to and read under an address-space limit" {
	[ "${SAN:-0}" = 1 ] && skip "ASan reserves terabytes of address space: ulimit -v cannot apply"
	feats a 200 16 1 text-feature
	feats b 300 16 2 text-feature   # its first 200 keys are already in: 100 new rows
	l2-build-index --quiet -o big.idx a.l2f   # no limit: its writer may record a large map
	run bash -c "ulimit -v 2000000; l2-build-index --quiet -o t.idx a.l2f && l2-build-index --quiet -o t.idx b.l2f && l2-retrieve -i t.idx --info"
	assert_success
	assert_output --partial "300"
	run bash -c "ulimit -v 2000000; l2-retrieve -i big.idx -k 1 -f tsv a.l2f | head -1"
	assert_success
	assert_output --partial "k0000"
}

# ---- P14: invalid UTF-8 is refused when a dataset is built ---------------------------------------------

@test "captions and corpus lines that are not UTF-8 are refused at build time, naming file and line" {
	mkdir imgs
	make_dataset_pngs imgs 2
	printf 'i000.png\tgood caption\ni001.png\tbad \xff\xfe caption\n' > caps.tsv
	run l2-dataset build --captions caps.tsv bad.lmdb imgs
	assert_failure 1
	assert_output "l2-dataset: caps.tsv: line 2: not valid UTF-8"
	assert_not_exist bad.lmdb
	assert_not_exist bad.lmdb.partial
	printf 'fine line\n\xed\xa0\x80 a surrogate\n' > corpus.txt   # CESU-style surrogate: Python refuses it too
	run l2-dataset build --corpus corpus.txt bad.lmdb imgs
	assert_failure 1
	assert_output "l2-dataset: corpus.txt: line 2: not valid UTF-8"
	assert_not_exist bad.lmdb
	l2-dataset build --quiet ok.lmdb imgs
	run l2-dataset add-corpus ok.lmdb corpus.txt
	assert_failure 1
	assert_output "l2-dataset: corpus.txt: line 2: not valid UTF-8"
	printf 'caf\xc3\xa9 \xf0\x9f\x98\x80\n' | l2-dataset add-corpus --quiet ok.lmdb
	assert_equal "$(l2-dataset corpus ok.lmdb)" "café 😀"
}

# ---- P10: trainers refuse an incomplete feature set -----------------------------------------------------

@test "l2-train-gan refuses a feature set whose import was interrupted unless --allow-incomplete" {
	load gan_fixture
	make_gan_fixture fx 48
	# a stream cut in its middle: the committed batches stay, the set is marked incomplete
	size=$(stat -c %s fx/pseudo.l2f)
	head -c $((size / 2)) fx/pseudo.l2f > half.l2f
	run l2-store put-features --batch 1 fx/ds.lmdb feat.pk half.l2f
	assert_failure 1
	run l2-dataset stats fx/ds.lmdb
	assert_output --partial ",incomplete"
	run l2-train-gan --quiet -d fx/ds.lmdb -o run $GAN_TINY --pseudo-feature pk --steps 1 --tick 1
	assert_failure 1
	assert_output --partial "fx/ds.lmdb: feature set 'pk' is incomplete ("
	assert_output --partial "or pass --allow-incomplete to use what is there"
	assert_not_exist run/G.safetensors
	l2-train-gan --quiet -d fx/ds.lmdb -o run $GAN_TINY --pseudo-feature pk --allow-incomplete --steps 1 --tick 1
	assert_file_exists run/G.safetensors
}

@test "l2-train-diffusion: one run per directory, and an interrupted feature set refused unless --allow-incomplete" {
	load gan_fixture
	make_gan_fixture fx 48
	DTINY="--preset tiny --channels 8 --mult 1,2 --attn-res 8 --resolution 16 --batch 4 --threads 1 --grid 2x2"
	l2-train-diffusion --quiet -d fx/ds.lmdb -o run $DTINY --steps 100000 --tick 100000 3>&- &
	first=$!
	for _ in $(seq 300); do [ -e run/train.lock ] && break; sleep 0.1; done
	run l2-train-diffusion --quiet -d fx/ds.lmdb -o run $DTINY --steps 1 --seed 2
	kill -9 $first
	wait $first || true
	assert_failure 1
	assert_output "l2-train-diffusion: run: a training run is running (pid $first); wait for it to end, or stop it"
	size=$(stat -c %s fx/pseudo.l2f)
	head -c $((size / 2)) fx/pseudo.l2f > half.l2f
	run l2-store put-features --batch 1 fx/ds.lmdb feat.pk half.l2f
	assert_failure 1
	run l2-train-diffusion --quiet -d fx/ds.lmdb -o run2 $DTINY --pseudo-feature pk --steps 1 --tick 1
	assert_failure 1
	assert_output --partial "fx/ds.lmdb: feature set 'pk' is incomplete ("
	assert_not_exist run2/model.safetensors
	l2-train-diffusion --quiet -d fx/ds.lmdb -o run2 $DTINY --pseudo-feature pk --allow-incomplete --steps 1 --tick 1
	assert_file_exists run2/model.safetensors
	assert_not_exist run2/train.lock
}

# ---- P18: export-images does not write through links -------------------------------------------------

@test "export-images refuses to write through a folder link inside the output folder" {
	mkdir -p imgs/sub elsewhere out
	make_dataset_pngs imgs 1
	cp imgs/i000.png imgs/sub/b.png
	l2-dataset build --quiet ds.lmdb imgs
	ln -s "$PWD/elsewhere" out/sub
	run l2-dataset export-images -o out ds.lmdb
	assert_failure 1
	assert_output --partial "out/sub: a symbolic link inside the output folder: not written through"
	run ls -A elsewhere
	assert_output ""
	rm out/sub
	l2-dataset export-images --quiet -o out ds.lmdb
	assert_file_exists out/sub/b.png
}

# ---- P15 (continued): two new builds of one index -----------------------------------------------------

@test "of two new builds of one index, the one that finishes second says its rows are not in it" {
	feats a 20 8 1 text-feature
	feats b 20 8 2 text-feature
	mkfifo in.fifo
	l2-build-index -o x.idx in.fifo 3>&- 2> first.err &
	first=$!
	exec 7> in.fifo
	head -c 64 b.l2f >&7   # the header: the first build starts its index, then waits for records
	for _ in $(seq 100); do compgen -G "x.idx.tmp.*" > /dev/null && break; sleep 0.1; done
	l2-build-index --quiet -o x.idx a.l2f
	tail -c +65 b.l2f >&7
	exec 7>&-
	rc=0
	wait $first || rc=$?
	assert_equal "$rc" 1
	run cat first.err
	assert_output --partial "x.idx: another build created this index meanwhile; this build's rows are not in it (run it again to append them)"
	run l2-retrieve -i x.idx --info
	assert_line --regexp "^count	20$"
}
