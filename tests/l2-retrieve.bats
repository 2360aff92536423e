#!/usr/bin/env bats
# l2-retrieve: results against a float64 brute force (plain python3), the
# neighbors stream, IVF, and bad or mismatched input and indexes.
load test_helper

# text_stream NAME N D [SEED] [KIND] — unit-norm stream with keys "caption I"
text_stream() {
	local name=$1 n=$2 d=$3 seed=${4:-1} kind=${5:-text-feature}
	make_npy "$name.npy" "$n" "$d" "$seed"
	seq 0 $((n - 1)) | sed "s/^/${6:-caption} /" > "$name.keys"
	l2-cat --from-npy "$name.npy" --keys "$name.keys" --kind "$kind" --normalize > "$name.l2f"
}

setup_index() {
	text_stream t 500 24 1
	text_stream q 12 24 2 image-feature img
	l2-build-index -o t.idx t.l2f 2>/dev/null
}

# brute force in float64 over the exact float32 values (l2-cat -f tsv is %.9g)
brute() { # K TEXT.l2f QUERY.l2f
	l2-cat -f tsv "$2" > text.tsv
	l2-cat -f tsv "$3" > query.tsv
	python3 - "$1" <<'PY'
import sys
k = int(sys.argv[1])
def load(p):
    rows = []
    for line in open(p):
        key, vals = line.rstrip("\n").split("\t")
        rows.append((key, [float(v) for v in vals.split()]))
    return rows
text, query = load("text.tsv"), load("query.tsv")
for qk, qv in query:
    s = sorted(((sum(a * b for a, b in zip(qv, tv)), i) for i, (tk, tv) in enumerate(text)), key=lambda t: (-t[0], t[1]))
    for r, (sc, i) in enumerate(s[:k]):
        print("%s\t%d\t%s\t%.17g" % (qk, r + 1, text[i][0], sc))
PY
}

# compare TSV results with the brute force: same keys and ranks, scores to 1e-6
same_as_brute() { # GOT EXPECTED
	python3 - "$1" "$2" <<'PY'
import sys
got = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
exp = [l.rstrip("\n").split("\t") for l in open(sys.argv[2])]
assert len(got) == len(exp), (len(got), len(exp))
for g, e in zip(got, exp):
    assert g[:3] == e[:3], (g, e)
    assert abs(float(g[3]) - float(e[3])) <= 1e-6, (g, e)
PY
}

@test "l2-retrieve -h prints usage and exits 0" {
	run l2-retrieve -h
	assert_success
	assert_output --partial "usage: l2-retrieve"
}

@test "l2-retrieve --version" {
	run l2-retrieve --version
	assert_success
	assert_output --regexp "^l2-retrieve \(l2\) [0-9]+\.[0-9]+"
}

@test "bad options are usage errors (exit 2)" {
	run l2-retrieve --bogus
	assert_failure 2
	assert_output --partial "--bogus"
	run l2-retrieve q.l2f
	assert_failure 2
	assert_output --partial "-i INDEX is required"
	run l2-retrieve -i x -f csv
	assert_failure 2
	assert_output --partial "unknown format"
	run l2-retrieve -i x --recall
	assert_failure 2
	assert_output --partial "--recall goes with --nprobe"
	run l2-retrieve -i x a b
	assert_failure 2
}

@test "top-k equals a float64 brute force" {
	setup_index
	l2-retrieve -i t.idx -k 7 -f tsv q.l2f > got.tsv
	brute 7 t.l2f q.l2f > exp.tsv
	[ $(wc -l < got.tsv) -eq 84 ]
	same_as_brute got.tsv exp.tsv
}

@test "standard input, threads and batch size do not change the output" {
	setup_index
	l2-retrieve -i t.idx -k 5 q.l2f > a.l2f
	l2-retrieve -i t.idx -k 5 < q.l2f > b.l2f
	l2-retrieve -i t.idx -k 5 --threads 1 --batch 5 -o c.l2f q.l2f
	l2-retrieve -i t.idx -k 5 --threads 2 --batch 1 q.l2f > d.l2f
	cmp a.l2f b.l2f
	cmp a.l2f c.l2f
	cmp a.l2f d.l2f
}

@test "the neighbors stream: header, TSV view, and the neighbours' own features" {
	setup_index
	l2-retrieve -i t.idx -k 3 -o n.l2f q.l2f
	run l2-cat --header n.l2f
	assert_line "kind	neighbors"
	assert_line "dim	24"
	assert_line "k	3"
	assert_line "flags	normalized"
	l2-cat -f tsv n.l2f > via-cat.tsv
	l2-retrieve -i t.idx -k 3 -f tsv q.l2f > direct.tsv
	cmp via-cat.tsv direct.tsv
	# every neighbour feature is its caption's indexed vector; the query's is the query
	l2-cat -f tsv t.l2f > text.tsv
	l2-cat -f tsv q.l2f > query.tsv
	python3 - <<'PY'
import struct
vec = {}
for p in ("text.tsv", "query.tsv"):
    for line in open(p):
        k, v = line.rstrip("\n").split("\t")
        vec[k] = struct.pack("<24f", *[float(x) for x in v.split()])
data = open("n.l2f", "rb").read()
pos, n = 64, 0
def key():
    global pos
    (L,) = struct.unpack_from("<I", data, pos); pos += 4
    s = data[pos:pos + L].decode(); pos += L
    return s
while pos < len(data):
    q = key(); assert data[pos:pos + 96] == vec[q], q; pos += 96
    last = 2.0
    for j in range(3):
        t = key(); (s,) = struct.unpack_from("<f", data, pos); pos += 4
        assert s <= last; last = s
        assert data[pos:pos + 96] == vec[t], t; pos += 96
    n += 1
assert n == 12, n
PY
}

@test "keys with tabs and newlines are escaped in TSV" {
	make_npy t.npy 3 4 1
	printf 'a\\tb\nline\nc\n' > t.keys # keys: "a\tb" literally (backslash t), line, c
	python3 -c "
import struct
rows = [('tab\there', 1), ('new\nline', 2), ('back\\\\slash', 3)]
with open('t.l2f', 'wb') as f:
    f.write(b'L2FS' + struct.pack('<HHIIQ', 1, 1, 2, 1, 3) + b'text-feature'.ljust(24, b'\0') + bytes(16))
    for k, i in rows:
        b = k.encode(); f.write(struct.pack('<I', len(b)) + b + struct.pack('<2f', (1 if i == 1 else 0.6), (0 if i == 1 else 0.8)))
"
	l2-build-index -o x.idx t.l2f
	make_npy q.npy 1 2 3
	l2-cat --from-npy q.npy --kind image-feature --normalize > q.l2f
	run l2-retrieve -i x.idx -k 3 -f tsv q.l2f
	assert_success
	assert_output --partial 'tab\there'
	assert_output --partial 'new\nline'
	assert_output --partial 'back\\slash'
	[ "${#lines[@]}" -eq 3 ]
}

@test "k equal to the index size works; larger is refused" {
	text_stream t 9 4 1
	text_stream q 2 4 2 image-feature
	l2-build-index -o t.idx t.l2f 2>/dev/null
	run l2-retrieve -i t.idx -k 9 -f tsv q.l2f
	assert_success
	[ "${#lines[@]}" -eq 18 ]
	run l2-retrieve -i t.idx -k 10 -o out.l2f q.l2f
	assert_failure 1
	assert_output --partial "t.idx: -k 10, but the index holds only 9 rows"
	[ ! -e out.l2f ]
}

@test "dimension and kind mismatches are refused" {
	setup_index
	text_stream d 3 25 2 image-feature
	run l2-retrieve -i t.idx -o out.l2f d.l2f
	assert_failure 1
	assert_output --partial "d.l2f: the queries have dimension 25, the index t.idx has 24"
	[ ! -e out.l2f ]
	l2-retrieve -i t.idx -k 2 q.l2f > n.l2f
	run l2-retrieve -i t.idx n.l2f
	assert_failure 1
	assert_output --partial "cannot search with a neighbors stream"
	# text queries (text-to-text retrieval) are fine
	text_stream tq 2 24 3 text-feature
	run l2-retrieve -i t.idx -k 1 -f tsv tq.l2f
	assert_success
}

@test "unnormalised queries against a cosine index need --normalize" {
	setup_index
	make_npy r.npy 4 24 8
	l2-cat --from-npy r.npy --kind image-feature > r.l2f
	l2-cat --from-npy r.npy --kind image-feature --normalize > rn.l2f
	run l2-retrieve -i t.idx r.l2f
	assert_failure 1
	assert_output --partial "not flagged unit-norm"
	l2-retrieve -i t.idx --normalize -f tsv r.l2f > a.tsv
	l2-retrieve -i t.idx -f tsv rn.l2f > b.tsv
	cmp a.tsv b.tsv
}

@test "inner-product index over raw vectors matches the brute force" {
	make_npy t.npy 200 6 1
	make_npy q.npy 5 6 2
	l2-cat --from-npy t.npy --kind text-feature > t.l2f
	l2-cat --from-npy q.npy --kind image-feature > q.l2f
	l2-build-index -o ip.idx --metric ip t.l2f 2>/dev/null
	l2-retrieve -i ip.idx -k 4 -f tsv q.l2f > got.tsv
	brute 4 t.l2f q.l2f > exp.tsv
	same_as_brute got.tsv exp.tsv
	run l2-cat --header <(l2-retrieve -i ip.idx -k 1 q.l2f)
	assert_line "flags	none"
}

@test "truncated query stream: error, no output file" {
	setup_index
	head -c 300 q.l2f > cut.l2f
	run l2-retrieve -i t.idx -o out.l2f cut.l2f
	assert_failure 1
	assert_output --partial "cut.l2f: truncated input"
	[ ! -e out.l2f ]
	run l2-retrieve -i t.idx -f tsv -o out.tsv cut.l2f
	assert_failure 1
	[ ! -e out.tsv ]
}

@test "missing, non-index and corrupt stores are clear errors" {
	setup_index
	run l2-retrieve -i nope.idx q.l2f
	assert_failure 1
	assert_output --partial "nope.idx: No such file"
	run l2-retrieve -i q.l2f q.l2f
	assert_failure 1
	assert_output --partial "q.l2f: not an l2 index"
	mkdir d
	run l2-retrieve -i d q.l2f
	assert_failure 1
	assert_output --partial "d: not an l2 index (no data.mdb)"
	# truncated data file
	cp -r t.idx cut.idx
	truncate -s $(( $(stat -c %s cut.idx/data.mdb) / 2 )) cut.idx/data.mdb
	run l2-retrieve -i cut.idx -o out.l2f q.l2f
	assert_failure 1
	assert_output --partial "cut.idx: corrupt index: data.mdb is truncated"
	[ ! -e out.l2f ]
	# garbage in place of the LMDB meta pages
	cp -r t.idx junk.idx
	head -c 8192 /dev/urandom | dd of=junk.idx/data.mdb conv=notrunc 2>/dev/null
	run l2-retrieve -i junk.idx q.l2f
	assert_failure 1
	assert_output --partial "junk.idx: "
	refute_output --partial "Segmentation"
	# an LMDB store that is not an index
	mkdir other
	printf 'format\nsomething-else\n' | mdb_load -T -s meta other
	run l2-retrieve -i other q.l2f
	assert_failure 1
	assert_output --partial "other: not an l2 index"
}

@test "inconsistent metadata is reported as corruption; an empty index is refused" {
	setup_index
	cp -r t.idx a.idx
	printf 'dim\n25\n' | mdb_load -T -s meta a.idx
	run l2-retrieve -i a.idx q.l2f
	assert_failure 1
	assert_output --partial "a.idx: corrupt index"
	cp -r t.idx b.idx
	printf 'count\n499\n' | mdb_load -T -s meta b.idx
	run l2-retrieve -i b.idx q.l2f
	assert_failure 1
	assert_output --partial "b.idx: corrupt index: 500 keys for 499 rows"
	cp -r t.idx c.idx
	printf 'count\n0\n' | mdb_load -T -s meta c.idx
	run l2-retrieve -i c.idx q.l2f
	assert_failure 1
	assert_output --partial "c.idx: the index is empty"
	cp -r t.idx v.idx
	printf 'version\n2\n' | mdb_load -T -s meta v.idx
	run l2-retrieve -i v.idx q.l2f
	assert_failure 1
	assert_output --partial "unsupported index version"
}

@test "IVF: --nprobe over every list equals exact; --recall reports recall@k" {
	setup_index
	l2-build-index -o ivf.idx --ivf 8 t.l2f 2>/dev/null
	l2-retrieve -i ivf.idx -k 5 -f tsv q.l2f > exact.tsv
	l2-retrieve -i ivf.idx -k 5 --nprobe 8 -f tsv q.l2f > all.tsv
	cmp exact.tsv all.tsv
	run l2-retrieve -i ivf.idx -k 5 --nprobe 8 --recall -o /dev/null q.l2f
	assert_success
	assert_output --partial "recall@5 of --nprobe 8 against exact search: 1.0000 (12 queries)"
	run l2-retrieve -i ivf.idx -k 5 --nprobe 2 --recall -o /dev/null q.l2f
	assert_success
	assert_output --regexp "recall@5 of --nprobe 2 against exact search: [01]\.[0-9]{4}"
	run l2-retrieve -i t.idx --nprobe 2 q.l2f
	assert_failure 1
	assert_output --partial "--nprobe needs an IVF index"
}

@test "IVF on clustered data: high recall with few lists probed" {
	python3 - <<'PY'
import random, struct, math
rng = random.Random(4)
d, nc = 16, 30
cent = []
for _ in range(nc):
    v = [rng.gauss(0, 1) for _ in range(d)]; n = math.sqrt(sum(x * x for x in v)); cent.append([x / n for x in v])
def sample(m):
    out = []
    for _ in range(m):
        c = cent[rng.randrange(nc)]
        v = [x + rng.gauss(0, 0.12) for x in c]; n = math.sqrt(sum(x * x for x in v)); out.append([x / n for x in v])
    return out
for name, kind, m in (("c", "text-feature", 3000), ("cq", "image-feature", 200)):
    with open(name + ".l2f", "wb") as f:
        f.write(b"L2FS" + struct.pack("<HHIIQ", 1, 1, d, 1, m) + kind.encode().ljust(24, b"\0") + bytes(16))
        for i, v in enumerate(sample(m)):
            k = ("%s%d" % (name, i)).encode()
            f.write(struct.pack("<I", len(k)) + k + struct.pack("<%df" % d, *v))
PY
	l2-build-index -o c.idx --ivf 30 c.l2f 2>/dev/null
	run l2-retrieve -i c.idx -k 10 --nprobe 6 --recall -o /dev/null cq.l2f
	assert_success
	recall=$(echo "$output" | sed -n 's/.*exact search: \([0-9.]*\).*/\1/p')
	python3 -c "import sys; sys.exit(0 if float('$recall') >= 0.95 else 1)"
}

@test "unwritable output leaves nothing behind" {
	setup_index
	touch notadir
	run l2-retrieve -i t.idx -o notadir/out.l2f q.l2f
	assert_failure 1
	assert_output --partial "notadir/out.l2f"
	run l2-retrieve -i t.idx -o /dev/full q.l2f
	assert_failure 1
}

@test "refuses to write binary to a terminal" {
	command -v script >/dev/null || skip "script(1) not installed"
	setup_index
	run script -qec "l2-retrieve -i t.idx q.l2f" /dev/null
	assert_failure
	assert_output --partial "refusing to write binary output to a terminal"
}

@test "end to end through the pipe: build from stdin, retrieve from stdin" {
	text_stream t 100 12 1
	text_stream q 4 12 2 image-feature
	cat t.l2f | l2-build-index -o x.idx 2>/dev/null
	run bash -c "cat q.l2f | l2-retrieve -i x.idx -k 2 -f tsv | cut -f1,2 | head -2"
	assert_success
	assert_line --index 0 "caption 0	1"
	assert_line --index 1 "caption 0	2"
}
