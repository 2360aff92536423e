#!/usr/bin/env bats
# l2-build-index: creating, appending, duplicates, options and bad input.
load test_helper

# text_stream NAME N D [SEED] [KIND] — unit-norm stream with keys "caption I" (I from 0)
text_stream() {
	local name=$1 n=$2 d=$3 seed=${4:-1} kind=${5:-text-feature}
	make_npy "$name.npy" "$n" "$d" "$seed"
	seq 0 $((n - 1)) | sed 's/^/caption /' > "$name.keys"
	l2-cat --from-npy "$name.npy" --keys "$name.keys" --kind "$kind" --normalize > "$name.l2f"
}

info() { l2-retrieve -i "$1" --info | awk -F'\t' -v k="$2" '$1 == k { print $2 }'; }

@test "l2-build-index -h prints usage and exits 0" {
	run l2-build-index -h
	assert_success
	assert_output --partial "usage: l2-build-index"
}

@test "l2-build-index --version" {
	run l2-build-index --version
	assert_success
	assert_output --regexp "^l2-build-index \(l2\) [0-9]+\.[0-9]+"
}

@test "bad options are usage errors (exit 2)" {
	run l2-build-index --bogus -o x
	assert_failure 2
	assert_output --partial "--bogus"
	run l2-build-index t.l2f
	assert_failure 2
	assert_output --partial "-o INDEX is required"
	run l2-build-index -o x --metric l1
	assert_failure 2
	assert_output --partial "unknown metric"
	run l2-build-index -o x --ivf 0
	assert_failure 1
	assert_output --partial "invalid value for --ivf"
	run l2-build-index -o x --ivf-iters 3
	assert_failure 2
	assert_output --partial "go with --ivf"
}

@test "build from a file and from standard input give the same index" {
	text_stream t 50 8
	l2-build-index -o a.idx t.l2f
	l2-build-index -o b.idx < t.l2f
	[ "$(info a.idx count)" = 50 ]
	[ "$(info a.idx dim)" = 8 ]
	[ "$(info a.idx kind)" = text-feature ]
	[ "$(info a.idx metric)" = cos ]
	[ "$(info a.idx dtype)" = f32 ]
	text_stream q 5 8 9 image-feature
	l2-retrieve -i a.idx -k 4 -f tsv q.l2f > a.tsv
	l2-retrieve -i b.idx -k 4 -f tsv q.l2f > b.tsv
	cmp a.tsv b.tsv
	# no temporary directories left beside the index
	run bash -c "ls -d *.tmp.* 2>/dev/null"
	assert_output ""
}

@test "appending adds rows; duplicate keys are reported and skipped" {
	text_stream t 30 6 1
	text_stream u 10 6 2
	l2-build-index -o x.idx t.l2f
	# u's keys caption 0..9 are all in t already: all skipped
	run l2-build-index -o x.idx u.l2f
	assert_success
	assert_output --partial 'duplicate key skipped: "caption 0"'
	assert_output --partial "0 added, 10 duplicate keys skipped, 30 in the index"
	[ "$(info x.idx count)" = 30 ]
	# new keys are appended
	make_npy v.npy 5 6 3
	printf 'new %s\n' a b c d e > v.keys
	l2-cat --from-npy v.npy --keys v.keys --kind text-feature --normalize > v.l2f
	run l2-build-index -o x.idx v.l2f
	assert_success
	assert_output --partial "5 added, 0 duplicate keys skipped, 35 in the index"
	# a key repeated within one stream is indexed once
	cat v.l2f v.l2f > vv.l2f
	l2-build-index -o y.idx vv.l2f 2>/dev/null
	[ "$(info y.idx count)" = 5 ]
}

@test "an appended row is found by its own vector" {
	text_stream t 20 5 1
	l2-build-index -o x.idx t.l2f
	make_npy v.npy 1 5 77
	echo "the new one" > v.keys
	l2-cat --from-npy v.npy --keys v.keys --kind text-feature --normalize > v.l2f
	l2-build-index -o x.idx v.l2f
	l2-cat --from-npy v.npy --keys v.keys --kind image-feature --normalize > q.l2f
	run l2-retrieve -i x.idx -k 1 -f tsv q.l2f
	assert_success
	assert_output --regexp "^the new one	1	the new one	(1|0\.99999)"
}

@test "kind and dimension mismatches on append are refused, index unchanged" {
	text_stream t 20 6 1
	l2-build-index -o x.idx t.l2f
	text_stream i 5 6 2 image-feature
	run l2-build-index -o x.idx i.l2f
	assert_failure 1
	assert_output --partial "x.idx: the index holds text-feature vectors, the stream is image-feature"
	text_stream d 5 7 2
	run l2-build-index -o x.idx d.l2f
	assert_failure 1
	assert_output --partial "x.idx: the index has dimension 6, the stream 7"
	run l2-build-index -o x.idx --f16 t.l2f
	assert_failure 1
	assert_output --partial "--f16 applies only to a new index"
	[ "$(info x.idx count)" = 20 ]
}

@test "streams of other kinds cannot be indexed" {
	make_npy a.npy 3 4
	l2-cat --from-npy a.npy --kind inception-feature > a.l2f
	run l2-build-index -o x.idx a.l2f
	assert_failure 1
	assert_output --partial "cannot index a inception-feature stream"
	[ ! -e x.idx ]
}

@test "unnormalised input: refused for a cosine index, --normalize or --metric ip accept it" {
	make_npy a.npy 10 4
	l2-cat --from-npy a.npy --kind text-feature > a.l2f
	run l2-build-index -o x.idx a.l2f
	assert_failure 1
	assert_output --partial "not flagged unit-norm"
	assert_output --partial "--normalize"
	[ ! -e x.idx ]
	l2-build-index -o n.idx --normalize a.l2f
	[ "$(info n.idx metric)" = cos ]
	l2-build-index -o p.idx --metric ip a.l2f
	[ "$(info p.idx metric)" = ip ]
}

@test "truncated input: error, no index left behind" {
	text_stream t 40 16
	head -c 1000 t.l2f > cut.l2f
	run l2-build-index -o x.idx cut.l2f
	assert_failure 1
	assert_output --partial "cut.l2f: truncated input"
	[ ! -e x.idx ]
	run bash -c "ls -d x.idx.tmp.* 2>/dev/null"
	assert_output ""
}

@test "truncated input while appending leaves the index as it was" {
	text_stream t 40 16 1
	l2-build-index -o x.idx t.l2f
	make_npy b.npy 30 16 5
	seq 100 129 > b.keys
	l2-cat --from-npy b.npy --keys b.keys --kind text-feature --normalize > b.l2f
	head -c 1500 b.l2f > cut.l2f
	run l2-build-index -o x.idx cut.l2f
	assert_failure 1
	[ "$(info x.idx count)" = 40 ]
	l2-build-index -o x.idx b.l2f
	[ "$(info x.idx count)" = 70 ]
}

@test "empty and missing input, NaN vectors" {
	run l2-build-index -o x.idx < /dev/null
	assert_failure 1
	assert_output --partial "empty input"
	run l2-build-index -o x.idx nope.l2f
	assert_failure 1
	assert_output --partial "nope.l2f: No such file"
	# a stream with a header and no records
	make_npy a.npy 1 4
	l2-cat --from-npy a.npy --kind text-feature --normalize | head -c 64 > h.l2f
	printf '\0\0\0\0\0\0\0\0' | dd of=h.l2f bs=1 seek=16 conv=notrunc 2>/dev/null
	run l2-build-index -o x.idx h.l2f
	assert_failure 1
	assert_output --partial "no records to index"
	[ ! -e x.idx ]
	python3 -c "
import struct
with open('nan.l2f','wb') as f:
    f.write(b'L2FS'+struct.pack('<HHII Q',1,1,2,0,1)+b'text-feature'.ljust(24,b'\0')+bytes(16))
    f.write(struct.pack('<I',1)+b'a'+struct.pack('<2f',float('nan'),1.0))
"
	run l2-build-index -o x.idx --metric ip nan.l2f
	assert_failure 1
	assert_output "l2-build-index: nan.l2f: record 1 ('a'): vector: value 0 is NaN"
	[ ! -e x.idx ]
}

@test "output that is not an index, or cannot be written" {
	text_stream t 5 4
	touch file
	run l2-build-index -o file t.l2f
	assert_failure 1
	assert_output --partial "file: exists and is not an index directory"
	mkdir empty
	run l2-build-index -o empty t.l2f
	assert_failure 1
	assert_output --partial "empty: not an l2 index (no data.mdb)"
	run l2-build-index -o /nonexistent/x.idx t.l2f
	assert_failure 1
	assert_output --partial "/nonexistent/x.idx"
}

@test "--f16 stores half floats; neighbours agree with the f32 index" {
	text_stream t 300 32
	l2-build-index -o a.idx t.l2f
	l2-build-index -o h.idx --f16 t.l2f
	[ "$(info h.idx dtype)" = f16 ]
	[ $(stat -c %s h.idx/data.mdb) -lt $(stat -c %s a.idx/data.mdb) ]
	text_stream q 20 32 4 image-feature
	l2-retrieve -i a.idx -k 1 -f tsv q.l2f | cut -f3 > a.top
	l2-retrieve -i h.idx -k 1 -f tsv q.l2f | cut -f3 > h.top
	cmp a.top h.top
}

@test "--ivf trains lists; more lists than rows is refused" {
	text_stream t 200 8
	run l2-build-index -o x.idx --ivf 300 t.l2f
	assert_failure 1
	assert_output --partial "more lists than the 200 rows"
	[ ! -e x.idx ]
	l2-build-index -o x.idx --ivf 10 --seed 3 t.l2f
	[ "$(info x.idx ivf_nlist)" = 10 ]
	# retraining with another count; appending files rows into the lists
	text_stream u 30 8 2
	sed -i 's/caption/more/' u.keys
	l2-cat --from-npy u.npy --keys u.keys --kind text-feature --normalize > u.l2f
	l2-build-index -o x.idx u.l2f
	[ "$(info x.idx ivf_nlist)" = 10 ]
	[ "$(info x.idx count)" = 230 ]
	text_stream q 10 8 5 image-feature
	l2-retrieve -i x.idx -k 3 -f tsv q.l2f > exact.tsv
	l2-retrieve -i x.idx -k 3 --nprobe 10 -f tsv q.l2f > all.tsv
	cmp exact.tsv all.tsv
}

@test "the same seed builds the same IVF index" {
	text_stream t 300 8
	l2-build-index -o a.idx --ivf 12 --seed 5 t.l2f
	l2-build-index -o b.idx --ivf 12 --seed 5 t.l2f
	text_stream q 30 8 5 image-feature
	l2-retrieve -i a.idx -k 3 --nprobe 2 -f tsv q.l2f > a.tsv
	l2-retrieve -i b.idx -k 3 --nprobe 2 -f tsv q.l2f > b.tsv
	cmp a.tsv b.tsv
}

@test "an interrupted build leaves no index and no temporary directory" {
	text_stream t 20 4
	l2-build-index -o x.idx < <(cat t.l2f; sleep 10) 2>/dev/null &
	pid=$!
	for i in $(seq 100); do compgen -G "x.idx.tmp.*.$pid.*" > /dev/null && break; sleep 0.1; done
	compgen -G "x.idx.tmp.*.$pid.*" # it is under way
	kill -TERM "$pid"
	run wait "$pid"
	[ "$status" -ne 0 ]
	[ ! -e x.idx ]
	run bash -c "ls -d x.idx.tmp.* 2>/dev/null"
	assert_output ""
}
