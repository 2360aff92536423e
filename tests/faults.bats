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
