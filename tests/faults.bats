#!/usr/bin/env bats
# Fault injection: every writer on a full filesystem (a small tmpfs each test
# mounts itself; skipped where mounting is not allowed), and kill -9 at
# seeded random moments during store writes, feature imports, dataset and
# index builds and checkpoint writes — after each, the last committed state
# must read back intact and a rerun (--resume) must reach the uninterrupted
# result byte for byte.  L2_FAULT_SEEDS=N runs N kill moments per writer
# instead of the default few.
load test_helper
bats_require_minimum_version 1.5.0

PY3=$(command -v /usr/bin/python3 || command -v python3)
SEEDS=${L2_FAULT_SEEDS:-3}

# small_fs SIZE — a tmpfs of SIZE mounted at ./small (SMALL), unmounted by
# teardown; skips the test where mounting is not allowed.
small_fs() {
	mkdir -p small
	mount -t tmpfs -o size="$1" l2-test small 2>/dev/null ||
		skip "cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN)"
	SMALL=$PWD/small
}
# grow_fs SIZE — give the tmpfs room again (as freeing space would)
grow_fs() { mount -o remount,size="$1" "$SMALL"; }

teardown() {
	if [ -n "${SMALL:-}" ]; then umount "$SMALL" 2>/dev/null || umount -l "$SMALL" 2>/dev/null; fi
	true
}

# feats NAME ROWS DIM [SEED] [KIND] — NAME.l2f: random unit rows keyed k0000..
feats() {
	local name=$1 n=$2 d=$3 seed=${4:-1} kind=${5:-pseudo-text-feature}
	make_npy "$name.npy" "$n" "$d" "$seed"
	seq -f 'k%05g' 0 $((n - 1)) > "$name.keys"
	l2-cat --from-npy "$name.npy" --keys "$name.keys" --kind "$kind" --normalize > "$name.l2f"
}

# ---- full filesystem -----------------------------------------------------------------

@test "full disk: put-features says no space left on device, the store stays at its last commit, --resume completes" {
	feats a 5000 128
	small_fs 1m
	run l2-store put-features --batch 500 "$SMALL/st" feat.x a.l2f
	assert_failure 1
	assert_output --regexp "small/st: commit failed: No space left on device$"
	run l2-store info "$SMALL/st"
	assert_success
	n=$(l2-store info "$SMALL/st" | awk -F'\t' '$1 == "db" && $2 == "feat.x" { print $3 }')
	[ $(( ${n:-0} % 500 )) = 0 ]
	grow_fs 32m
	l2-store put-features --quiet --resume "$SMALL/st" feat.x a.l2f
	l2-store get-features "$SMALL/st" feat.x | l2-cat -f tsv > got.tsv
	l2-cat -f tsv a.l2f | LC_ALL=C sort > want.tsv
	cmp want.tsv got.tsv
}

@test "full disk: export-images keeps the reason of a failed write" {
	mkdir imgs
	for i in $(seq 0 59); do cp "$L2_ROOT/tests/fixtures/images/rgb8.png" "imgs/i$i.png"; done
	l2-dataset build --quiet ds.lmdb imgs
	small_fs 64k
	run l2-dataset export-images -o "$SMALL/out" ds.lmdb
	assert_failure 1
	assert_output --regexp "small/out/i[0-9]+\.png: write error: No space left on device$"
	run l2-dataset export-images --rgb -o "$SMALL/rgb" ds.lmdb
	assert_failure 1
	assert_output --regexp "write error: No space left on device$"
	# nothing half-written: no temporary files
	run find "$SMALL" -name '*.tmp*'
	assert_output ""
}

@test "full disk: l2-build-index says no space left on device; a new index leaves nothing, an append leaves the old one" {
	feats a 6000 128 1 text-feature
	feats b 300 128 2 text-feature
	small_fs 1m
	run l2-build-index -o "$SMALL/new.idx" a.l2f
	assert_failure 1
	assert_output --regexp "small/new.idx: .*No space left on device$"
	run ls "$SMALL"
	assert_output ""
	l2-build-index --quiet -o "$SMALL/old.idx" b.l2f
	run l2-build-index -o "$SMALL/old.idx" a.l2f
	assert_failure 1
	assert_output --regexp "small/old.idx: .*No space left on device$"
	run l2-retrieve -i "$SMALL/old.idx" --info
	assert_success
	assert_line --regexp "^count	300$"
}

@test "full disk: a dataset build and an import-features stop with the message; what was committed stays readable" {
	mkdir imgs
	for i in $(seq 0 199); do cp "$L2_ROOT/tests/fixtures/images/rgb8.png" "imgs/i$i.png"; done
	small_fs 256k
	run l2-dataset build --checkpoint 10 "$SMALL/ds.lmdb" imgs
	assert_failure 1
	assert_output --regexp "No space left on device$"
	assert_not_exist "$SMALL/ds.lmdb"
	grow_fs 32m
	l2-dataset build --quiet --resume --checkpoint 10 "$SMALL/ds.lmdb" imgs
	assert_equal "$(l2-dataset list "$SMALL/ds.lmdb" | wc -l)" 200
	l2-dataset list "$SMALL/ds.lmdb" > keys
	make_npy f.npy 200 4096 1
	l2-cat --from-npy f.npy --keys keys --kind image-feature > f.l2f
	grow_fs $(( $(du -k "$SMALL/ds.lmdb/data.mdb" | cut -f1) + 1024 ))k
	run l2-dataset import-features -n img "$SMALL/ds.lmdb" f.l2f
	assert_failure 1
	assert_output --regexp "No space left on device$"
	run l2-dataset stats "$SMALL/ds.lmdb"
	assert_success
}

@test "full disk: stream writers say so and leave no partial output" {
	feats a 3000 128
	small_fs 512k
	run l2-cat a.l2f -o "$SMALL/out.l2f"
	assert_failure 1
	assert_output --regexp "No space left on device$"
	run ls -A "$SMALL"
	assert_output ""
}

# ---- kill -9 at seeded moments -----------------------------------------------------------

# kill_at SEED CMD... — run CMD and kill -9 it after a delay drawn from SEED
# (0 to KILL_MAX_MS ms, default 600): before it starts, mid-write or after it
# ends are all moments it must survive.
kill_at() {
	local seed=$1
	shift
	local ms=$(((seed * 2654435761 + 40503) % ${KILL_MAX_MS:-600}))
	"$@" 3>&- > /dev/null 2>&1 &
	local pid=$!
	sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# the records of a store's DB (or of a stream), sorted, as TSV
db_tsv() { l2-store get-features "$@" | l2-cat -f tsv; }

@test "kill -9 during put-features: the store opens at a whole number of batches, --resume completes it byte for byte" {
	feats a 4000 32
	l2-cat -f tsv a.l2f | LC_ALL=C sort > want.tsv
	for s in $(seq $SEEDS); do
		rm -rf st
		kill_at "$s" l2-store put-features --batch 200 st feat.x a.l2f
		# a kill before LMDB wrote data.mdb leaves a folder with at most lock.mdb: nothing to read yet
		if [ -e st ] && [ -n "$(ls -A st | grep -vx lock.mdb)" ]; then
			run l2-store info st
			assert_success
			n=$(l2-store info st | awk -F'\t' '$1 == "db" && $2 == "feat.x" { print $3 }')
			if [ -n "$n" ]; then # killed after its first batch was committed
				[ $((n % 200)) = 0 ] || [ "$n" = 4000 ]
				db_tsv --incomplete st feat.x > part.tsv
				[ "$(wc -l < part.tsv)" = "$n" ]
			fi
		fi
		l2-store put-features --quiet --resume st feat.x a.l2f
		db_tsv st feat.x > got.tsv
		cmp want.tsv got.tsv
	done
}

@test "kill -9 during import-features: the dataset opens, the set is complete or marked incomplete, a rerun completes it" {
	mkdir imgs
	"$PY3" - imgs 1500 <<'PY'
import os, struct, sys, zlib
d, n = sys.argv[1], int(sys.argv[2])
def chunk(t, b): return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b) & 0xffffffff)
for i in range(n):
    raw = b"".join(b"\0" + bytes([(i * 7 + x + y) % 256 for x in range(6)]) for y in range(2))
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    open(os.path.join(d, "i%04d.png" % i), "wb").write(png)
PY
	l2-dataset build --quiet ds0.lmdb imgs
	l2-dataset list ds0.lmdb > keys
	make_npy f.npy 1500 16 3
	l2-cat --from-npy f.npy --keys keys --kind image-feature --normalize > f.l2f
	l2-cat -f tsv f.l2f | LC_ALL=C sort > want.tsv
	for s in $(seq $SEEDS); do
		rm -rf ds.lmdb && cp -r ds0.lmdb ds.lmdb
		kill_at "$((s + 100))" l2-dataset import-features -n img ds.lmdb f.l2f
		run l2-dataset stats ds.lmdb
		assert_success
		if grep -q '^feature	img' <<< "$output" && ! grep -q '^feature	img.*incomplete' <<< "$output"; then
			l2-dataset export-features -n img ds.lmdb | l2-cat -f tsv > got.tsv
			cmp want.tsv got.tsv   # complete means complete
		fi
		l2-dataset import-features --quiet -n img ds.lmdb f.l2f
		l2-dataset export-features -n img ds.lmdb | l2-cat -f tsv > got.tsv
		cmp want.tsv got.tsv
	done
}

@test "kill -9 during a dataset build: DATASET is absent or whole, --resume finishes the same dataset" {
	mkdir imgs
	for i in $(seq 0 399); do cp "$L2_ROOT/tests/fixtures/images/rgb8.png" "imgs/i$i.png"; printf 'i%d.png\tcaption %d\n' $i $i; done > caps.tsv
	l2-dataset build --quiet --captions caps.tsv --checkpoint 20 ref.lmdb imgs
	l2-dataset list -l ref.lmdb > want.txt
	l2-dataset captions --keys ref.lmdb >> want.txt
	for s in $(seq $SEEDS); do
		rm -rf ds.lmdb ds.lmdb.partial
		kill_at "$((s + 200))" l2-dataset build --captions caps.tsv --checkpoint 20 ds.lmdb imgs
		if [ -e ds.lmdb ]; then
			assert_not_exist ds.lmdb.partial
		else
			# absent, a store, killed before LMDB wrote anything (at most lock.mdb), or
			# killed between LMDB's header pages and the store's first commit
			[ ! -e ds.lmdb.partial ] || l2-store info ds.lmdb.partial > /dev/null ||
				[ -z "$(ls -A ds.lmdb.partial | grep -vx lock.mdb)" ] ||
				l2-store info ds.lmdb.partial 2>&1 | grep -q "with nothing committed"
			l2-dataset build --quiet --resume --captions caps.tsv --checkpoint 20 ds.lmdb imgs
		fi
		{ l2-dataset list -l ds.lmdb; l2-dataset captions --keys ds.lmdb; } > got.txt
		cmp want.txt got.txt
		assert_not_exist ds.lmdb.lock
	done
}

@test "a dataset build killed before its first commit (empty .partial, lock.mdb alone, or an empty LMDB environment) starts again; a .partial holding other files is left alone" {
	mkdir imgs
	for i in 0 1 2; do cp "$L2_ROOT/tests/fixtures/images/rgb8.png" "imgs/i$i.png"; done
	l2-dataset build --quiet ref.lmdb imgs
	mkdir ds.lmdb.partial
	run l2-dataset build --resume ds.lmdb imgs
	assert_success
	assert_output --partial "had written nothing"
	assert_not_exist ds.lmdb.partial
	cmp <(l2-dataset list -l ref.lmdb) <(l2-dataset list -l ds.lmdb)
	mkdir ds2.lmdb.partial && : > ds2.lmdb.partial/lock.mdb
	l2-dataset build --quiet ds2.lmdb imgs
	cmp <(l2-dataset list -l ref.lmdb) <(l2-dataset list -l ds2.lmdb)
	# killed between LMDB's two header pages and the first commit (seen under SAN): an
	# environment with nothing in it; l2-store says so, and the build starts again
	mkdir ds4.lmdb.partial && mdb_load -f /dev/null ds4.lmdb.partial
	run l2-store info ds4.lmdb.partial
	assert_failure
	assert_output --partial "ds4.lmdb.partial: not an l2 store yet: an LMDB environment with nothing committed"
	l2-dataset build --quiet --resume ds4.lmdb imgs
	cmp <(l2-dataset list -l ref.lmdb) <(l2-dataset list -l ds4.lmdb)
	assert_not_exist ds4.lmdb.partial
	mkdir ds3.lmdb.partial && echo mine > ds3.lmdb.partial/notes.txt
	run l2-dataset build --resume ds3.lmdb imgs
	assert_failure
	assert_output --partial "ds3.lmdb.partial: not an interrupted build"
	[ "$(cat ds3.lmdb.partial/notes.txt)" = mine ]
	assert_not_exist ds3.lmdb
}

@test "kill -9 during an index build or append: the index is absent, old or whole, and a rerun gives the uninterrupted index" {
	feats a 3000 32 1 text-feature
	feats b 3000 32 2 text-feature
	sed -i 's/^k/b/' b.keys && l2-cat --from-npy b.npy --keys b.keys --kind text-feature --normalize > b.l2f
	feats q 5 32 3 text-feature
	l2-build-index --quiet -o ref.idx a.l2f
	l2-retrieve -i ref.idx -k 3 -f tsv q.l2f > want-a.tsv
	l2-build-index --quiet -o ref.idx b.l2f
	l2-retrieve -i ref.idx -k 3 -f tsv q.l2f > want-ab.tsv
	for s in $(seq $SEEDS); do
		rm -rf x.idx
		kill_at "$((s + 300))" l2-build-index -o x.idx a.l2f
		[ ! -e x.idx ] || l2-retrieve -i x.idx -k 3 -f tsv q.l2f | cmp want-a.tsv
		[ -e x.idx ] || l2-build-index --quiet -o x.idx a.l2f
		l2-retrieve -i x.idx -k 3 -f tsv q.l2f | cmp want-a.tsv
		kill_at "$((s + 400))" l2-build-index -o x.idx b.l2f
		n=$(l2-retrieve -i x.idx --info | awk -F'\t' '$1 == "count" { print $2 }')
		[ "$n" = 3000 ] || [ "$n" = 6000 ]
		l2-build-index --quiet -o x.idx b.l2f 2> /dev/null   # the rows already in are skipped
		l2-retrieve -i x.idx -k 3 -f tsv q.l2f | cmp want-ab.tsv
	done
	run bash -c "ls -d x.idx.tmp.* 2>/dev/null"
	assert_output ""
}
