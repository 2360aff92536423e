#!/usr/bin/env bats
# l2-store: store inspection, feature streams into and out of stores,
# resumability after a truncated input or kill -9, refusals.
load test_helper

# Python starts slowly on a busy machine: make every array the tests use in
# one run, once per file.
PY3=$(command -v /usr/bin/python3 || command -v python3)
setup_file() {
	mkdir -p "$BATS_FILE_TMPDIR/npy"
	"$PY3" - "$BATS_FILE_TMPDIR/npy" <<'PY'
import struct, sys, random
out = sys.argv[1]
for n, d, seed in [(300, 17, 1), (40, 5, 1), (30, 5, 2), (12, 4, 1), (4, 3, 1), (3, 4, 1), (5, 4, 1), (5, 4, 3),
                   (5, 6, 3), (2, 3, 1), (2500, 8, 1), (950, 8, 1), (20, 4, 1), (20, 4, 2), (3, 2, 1), (500, 8, 1), (30, 4, 1)]:
    rng = random.Random(seed)
    hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (n, d)
    hdr += " " * ((64 - (10 + len(hdr) + 1) % 64) % 64) + "\n"
    with open("%s/%d_%d_%d.npy" % (out, n, d, seed), "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode())
        f.write(struct.pack("<%df" % (n * d), *[rng.gauss(0, 1) for _ in range(n * d)]))
PY
}

# npy FILE ROWS DIM [SEED] — one of the arrays made above
npy() {
	cp "$BATS_FILE_TMPDIR/npy/$2_$3_${4:-1}.npy" "$1"
}

# feats NAME ROWS DIM [SEED] [KIND] — NAME.l2f from random rows, keys k0000..
feats() {
	local name=$1 n=$2 d=$3 seed=${4:-1} kind=${5:-pseudo-text-feature}
	npy "$name.npy" "$n" "$d" "$seed"
	seq -f 'k%04g' 0 $((n - 1)) > "$name.keys"
	l2-cat --from-npy "$name.npy" --keys "$name.keys" --kind "$kind" --normalize > "$name.l2f"
}

@test "l2-store -h, --version, bad options and commands" {
	run l2-store -h
	assert_success
	assert_output --partial "usage: l2-store"
	run l2-store --version
	assert_success
	assert_output --regexp "^l2-store \(l2\) [0-9]+\.[0-9]+"
	run l2-store --bogus info x
	assert_failure 2
	run l2-store frobnicate x
	assert_failure 2
	assert_output --partial "unknown command 'frobnicate'"
	run l2-store
	assert_failure 2
	assert_output --partial "missing command"
	run l2-store ls onlystore
	assert_failure 2
	assert_output --partial "wrong number of arguments"
	run l2-store --resume info x
	assert_failure 2
	run l2-store --batch 0 put-features s db x.l2f
	assert_failure
	assert_output --partial "--batch"
}

@test "put-features then get-features gives the records back bit-exactly, in key order" {
	feats x 300 17
	run l2-store --quiet put-features s.lmdb feat.pseudo x.l2f
	assert_success
	assert_output ""
	l2-store get-features s.lmdb feat.pseudo > y.l2f
	l2-cat -f tsv x.l2f | LC_ALL=C sort > want.tsv
	l2-cat -f tsv y.l2f > got.tsv
	cmp want.tsv got.tsv
	run l2-cat --header y.l2f
	assert_line "kind	pseudo-text-feature"
	assert_line "dim	17"
	assert_line "flags	normalized"
	# -o writes the same stream to a file
	l2-store get-features s.lmdb feat.pseudo -o z.l2f
	cmp y.l2f z.l2f
}

@test "standard input and concatenated streams" {
	feats a 40 5 1
	npy b.npy 30 5 2
	seq -f 'b%04g' 0 29 > b.keys
	l2-cat --from-npy b.npy --keys b.keys --kind pseudo-text-feature --normalize > b.l2f
	cat a.l2f b.l2f | l2-store put-features s.lmdb db
	run l2-store info s.lmdb
	assert_line "db	db	70"
	l2-store get-features s.lmdb db | l2-cat -f tsv > got.tsv
	cat a.l2f b.l2f | l2-cat -f tsv | LC_ALL=C sort > want.tsv
	cmp want.tsv got.tsv
}

@test "info lists meta and sub-databases with counts" {
	feats x 12 4
	l2-store put-features s.lmdb feat.image x.l2f 2>/dev/null
	run l2-store info s.lmdb
	assert_success
	assert_line "store	s.lmdb"
	assert_line "meta	format	l2-store"
	assert_line "meta	kind	features"
	assert_line "meta	version	1"
	assert_line "meta	feat.image.kind	pseudo-text-feature"
	assert_line "meta	feat.image.dim	4"
	assert_line "meta	feat.image.dtype	f32"
	assert_line "meta	feat.image.normalized	1"
	assert_line "db	feat.image	12"
	assert_line --regexp "^db	meta	[0-9]+$"
}

@test "ls prints keys escaped, --null raw" {
	npy x.npy 4 3
	printf 'b key\nwith\\tab\ta\n€\nA\n' > keys.txt
	l2-cat --from-npy x.npy --keys keys.txt > x.l2f
	l2-store put-features s.lmdb db x.l2f 2>/dev/null
	run l2-store ls s.lmdb db
	assert_success
	assert_equal "${lines[0]}" "A"
	assert_equal "${lines[1]}" "b key"
	assert_equal "${lines[2]}" 'with\\tab\ta'
	assert_equal "${lines[3]}" "€"
	l2-store ls -0 s.lmdb db | tr '\0' '\n' > raw.txt
	printf 'A\nb key\nwith\\tab\ta\n€\n' > want.txt
	cmp want.txt raw.txt
	run l2-store ls s.lmdb nosuch
	assert_failure 1
	assert_output --partial "s.lmdb: no sub-database \"nosuch\""
}

@test "get prints a value byte for byte; missing key is an error" {
	feats x 3 4
	l2-store put-features s.lmdb db x.l2f 2>/dev/null
	run l2-store get s.lmdb meta db.kind
	assert_success
	assert_output "pseudo-text-feature"
	l2-store get s.lmdb db k0001 > v.bin
	[ "$(stat -c %s v.bin)" -eq 16 ]
	l2-cat -f npy -o y.npy x.l2f
	"$PY3" - <<'PY'
import struct
b = open("y.npy", "rb").read()
off = 10 + struct.unpack("<H", b[8:10])[0]
assert open("v.bin", "rb").read() == b[off + 16:off + 32], "value differs from the stream's row 1"
PY
	run l2-store get s.lmdb db nokey
	assert_failure 1
	assert_output --partial "s.lmdb: db: no key \"nokey\""
}

@test "get refuses to write binary values to a terminal but prints text" {
	command -v script >/dev/null || skip "script(1) not installed"
	feats x 3 4
	l2-store put-features s.lmdb db x.l2f 2>/dev/null
	run script -qec "l2-store get s.lmdb db k0001" /dev/null
	assert_failure
	assert_output --partial "refusing to write binary output to a terminal"
	run script -qec "l2-store get s.lmdb meta db.kind" /dev/null
	assert_success
	assert_output --partial "pseudo-text-feature"
}

@test "a stream of another kind or dimension is refused, naming both" {
	feats x 5 4
	l2-store put-features s.lmdb db x.l2f 2>/dev/null
	feats t 5 4 3 text-feature
	run l2-store put-features s.lmdb db t.l2f
	assert_failure 1
	assert_output --partial "s.lmdb: db holds pseudo-text-feature vectors of dimension 4; t.l2f is text-feature of dimension 4"
	feats w 5 6 3
	run l2-store put-features s.lmdb db w.l2f
	assert_failure 1
	assert_output --partial "dimension 4; w.l2f is pseudo-text-feature of dimension 6"
	run l2-store info s.lmdb
	assert_line "db	db	5"
}

@test "neighbors streams and the meta sub-database are refused" {
	"$PY3" - <<'PY'
import struct
h = b"L2FS" + struct.pack("<HHIIQ", 1, 1, 2, 0, 1) + b"neighbors".ljust(24, b"\0") + struct.pack("<I", 1) + b"\0" * 12
r = struct.pack("<I", 1) + b"q" + struct.pack("<2f", 1, 2) + struct.pack("<I", 1) + b"n" + struct.pack("<f", .5) + struct.pack("<2f", 3, 4)
open("n.l2f", "wb").write(h + r)
PY
	run l2-store put-features s.lmdb db n.l2f
	assert_failure 1
	assert_output --partial "n.l2f: a neighbors stream"
	assert_not_exist s.lmdb
	feats x 2 3
	run l2-store put-features s.lmdb meta x.l2f
	assert_failure 2
}

@test "truncated input: every committed batch stays, --resume completes" {
	feats x 2500 8
	size=$(stat -c %s x.l2f)
	head -c $((size - 500)) x.l2f > cut.l2f
	run l2-store put-features --batch 1000 s.lmdb db cut.l2f
	assert_failure 1
	assert_output --partial "cut.l2f: truncated input"
	run l2-store info s.lmdb
	assert_line "db	db	2000"
	assert_line "meta	db.complete	0"
	# an interrupted write is refused by readers unless asked for
	run l2-store get-features s.lmdb db
	assert_failure 1
	assert_output --partial "s.lmdb: db is incomplete (2000 records): the write that filled it was interrupted"
	# the 2000 stored are exactly the first 2000 records
	l2-store get-features --incomplete s.lmdb db | l2-cat -f tsv > got.tsv
	l2-cat -f tsv x.l2f | head -n 2000 | LC_ALL=C sort > want.tsv
	cmp want.tsv got.tsv
	run l2-store put-features --resume s.lmdb db x.l2f
	assert_success
	assert_output --partial "500 records stored, 2000 kept"
	l2-store get-features s.lmdb db | l2-cat -f tsv > got.tsv
	l2-cat -f tsv x.l2f | LC_ALL=C sort > want.tsv
	cmp want.tsv got.tsv
}

@test "kill -9 mid-way: the store opens, committed batches intact, resume completes" {
	feats x 950 8
	# the writer reads all 950 records, commits 900 in 9 batches, then waits
	# for more input with 50 uncommitted when it is killed
	mkfifo in.fifo
	l2-store put-features --batch 100 s.lmdb db in.fifo 2>/dev/null &
	writer=$!
	sleep 60 > in.fifo &   # holds the pipe open: no end of input
	holder=$!
	cat x.l2f > in.fifo
	for i in $(seq 100); do
		[ "$(l2-store info s.lmdb 2>/dev/null | grep -c '^db	db	900$')" = 1 ] && break
		sleep 0.1
	done
	kill -9 $writer
	kill $holder
	wait $writer || true
	run l2-store info s.lmdb
	assert_success
	assert_line "db	db	900"
	run l2-store put-features --resume s.lmdb db x.l2f
	assert_success
	assert_output --partial "50 records stored, 900 kept"
	l2-store get-features s.lmdb db | l2-cat -f tsv > got.tsv
	l2-cat -f tsv x.l2f | LC_ALL=C sort > want.tsv
	cmp want.tsv got.tsv
}

@test "default replaces existing keys, --resume keeps them" {
	feats x 20 4 1
	feats y 20 4 2
	l2-store put-features s.lmdb db x.l2f 2>/dev/null
	l2-store put-features --resume s.lmdb db y.l2f 2>/dev/null
	l2-store get-features s.lmdb db | l2-cat -f tsv > got.tsv
	l2-cat -f tsv x.l2f | LC_ALL=C sort > want.tsv
	cmp want.tsv got.tsv
	l2-store put-features s.lmdb db y.l2f 2>/dev/null
	l2-store get-features s.lmdb db | l2-cat -f tsv > got.tsv
	l2-cat -f tsv y.l2f | LC_ALL=C sort > want.tsv
	cmp want.tsv got.tsv
}

@test "f16 streams are stored as f16 and come back bit-exactly" {
	"$PY3" - <<'PY'
import struct, random
rng = random.Random(5)
h = b"L2FS" + struct.pack("<HHIIQ", 1, 2, 3, 0, 40) + b"image-feature".ljust(24, b"\0") + b"\0" * 16
body = b""
for i in range(40):
    k = ("img/%02d.png" % i).encode()
    body += struct.pack("<I", len(k)) + k + struct.pack("<3e", *[rng.gauss(0, 1) for _ in range(3)])
open("h.l2f", "wb").write(h + body)
PY
	l2-store put-features s.lmdb feat.image h.l2f 2>/dev/null
	run l2-store get s.lmdb meta feat.image.dtype
	assert_output "f16"
	l2-store get-features s.lmdb feat.image > back.l2f
	run l2-cat --header back.l2f
	assert_line "dtype	f16"
	cmp <(l2-cat -f tsv h.l2f) <(l2-cat -f tsv back.l2f)
	cmp <(tail -c +65 h.l2f) <(tail -c +65 back.l2f)
}

@test "paths that are not stores are refused" {
	echo hello > plain
	run l2-store info plain
	assert_failure 1
	assert_output --partial "l2-store: plain: not a store (a store is a directory"
	mkdir photos && touch photos/a.png
	run l2-store info photos
	assert_failure 1
	assert_output --partial "photos: not a store (no data.mdb"
	feats x 3 2
	run l2-store put-features photos db x.l2f
	assert_failure 1
	assert_not_exist photos/data.mdb
	run l2-store info nowhere
	assert_failure 1
	assert_output --partial "l2-store: nowhere: No such file or directory"
	mkdir junk && head -c 50000 /dev/urandom > junk/data.mdb
	run l2-store info junk
	assert_failure 1
	assert_output --partial "junk: not a store, or corrupt"
}

@test "get-features refuses a sub-database without feature meta; bad output path" {
	feats x 3 2
	l2-store put-features s.lmdb db x.l2f 2>/dev/null
	run l2-store get-features s.lmdb meta
	assert_failure 1
	assert_output --partial "meta is not a feature sub-database"
	run l2-store get-features s.lmdb nosuch
	assert_failure 1
	assert_output --partial "no sub-database \"nosuch\""
	run l2-store get-features s.lmdb db -o /nonexistent/out.l2f
	assert_failure 1
	assert_output --partial "/nonexistent/out.l2f"
	run l2-store get-features s.lmdb db -o notadir/out.l2f
	assert_failure 1
	assert_not_exist notadir/out.l2f
}

@test "empty input creates nothing; bad stream header creates nothing" {
	run l2-store put-features s.lmdb db < /dev/null
	assert_failure 1
	assert_output --partial "empty input"
	assert_not_exist s.lmdb
	printf 'NOPE%060d' 0 > bad.l2f
	run l2-store put-features s.lmdb db bad.l2f
	assert_failure 1
	assert_output --partial "bad magic"
	assert_not_exist s.lmdb
}

@test "a reader sees the store while a writer holds it open" {
	feats x 500 8
	mkfifo in.fifo
	l2-store put-features --batch 100 s.lmdb db in.fifo 2>/dev/null &
	writer=$!
	sleep 60 > in.fifo &   # holds the pipe open: no end of input
	holder=$!
	cat x.l2f > in.fifo
	for i in $(seq 100); do
		[ "$(l2-store info s.lmdb 2>/dev/null | grep -c '^db	db	500$')" = 1 ] && break
		sleep 0.1
	done
	run l2-store info s.lmdb
	assert_line "db	db	500"
	run l2-store ls s.lmdb db
	assert_equal "${#lines[@]}" 500
	kill $holder
	wait $writer
	run l2-store info s.lmdb
	assert_line "db	db	500"
}

@test "info and ls work on index stores too" {
	command -v l2-build-index >/dev/null || skip "l2-build-index not built"
	feats x 30 4 1 text-feature
	l2-build-index -o t.idx x.l2f 2>/dev/null
	run l2-store info t.idx
	assert_success
	assert_line "meta	format	l2-index"
	assert_line "db	keys	30"
	run l2-store get t.idx meta kind
	assert_output "text-feature"
}
