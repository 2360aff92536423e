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
