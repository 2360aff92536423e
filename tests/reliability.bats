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
