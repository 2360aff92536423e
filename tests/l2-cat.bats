#!/usr/bin/env bats
# l2-cat: stream inspection, concatenation, TSV and .npy conversion.
load test_helper

@test "l2-cat -h prints usage and exits 0" {
	run l2-cat -h
	assert_success
	assert_output --partial "usage: l2-cat"
}

@test "l2-cat --version" {
	run l2-cat --version
	assert_success
	assert_output --regexp "^l2-cat \(l2\) [0-9]+\.[0-9]+"
}

@test "unknown option is a usage error (exit 2)" {
	run l2-cat --bogus
	assert_failure 2
	assert_output --partial "l2-cat: option '--bogus'"
}

@test "npy -> stream -> npy round trip is bit-exact" {
	make_npy x.npy 17 33 5
	l2-cat --from-npy x.npy --kind text-feature > s.l2f
	l2-cat -f npy -o y.npy s.l2f
	cmp x.npy y.npy
}

@test "keys file round trip, and --keys-out" {
	make_npy x.npy 3 4
	printf 'a cat\nthe dog\nüñí 😀\n' > keys.txt
	l2-cat --from-npy x.npy --keys keys.txt > s.l2f
	l2-cat -f npy -o y.npy --keys-out k2.txt s.l2f
	cmp keys.txt k2.txt
	cmp x.npy y.npy
}

@test "--header prints kind, dim, count" {
	make_npy x.npy 3 4
	l2-cat --from-npy x.npy --kind text-feature --normalize > s.l2f
	run l2-cat --header s.l2f
	assert_success
	assert_line "kind	text-feature"
	assert_line "dim	4"
	assert_line "count	3"
	assert_line "flags	normalized"
}

@test "concatenated streams read back as one" {
	make_npy a.npy 4 6 1
	make_npy b.npy 5 6 2
	l2-cat --from-npy a.npy > a.l2f
	l2-cat --from-npy b.npy > b.l2f
	run bash -c "cat a.l2f b.l2f | l2-cat --count"
	assert_output "9"
	cat a.l2f b.l2f | l2-cat > ab.l2f
	run l2-cat --count ab.l2f
	assert_output "9"
	l2-cat -f tsv a.l2f b.l2f > t1
	cat a.l2f b.l2f | l2-cat -f tsv > t2
	cmp t1 t2
}

@test "stdin and file input give the same output" {
	make_npy a.npy 4 6
	l2-cat --from-npy a.npy > a.l2f
	l2-cat -f tsv a.l2f > t1
	l2-cat -f tsv < a.l2f > t2
	cmp t1 t2
}

@test "tsv prints %.9g values that parse back exactly" {
	make_npy a.npy 2 3
	l2-cat --from-npy a.npy > a.l2f
	run l2-cat -f tsv a.l2f
	assert_success
	[ "${#lines[@]}" -eq 2 ]
	[[ "${lines[0]}" == 0$'\t'* ]]
}

@test "mismatched dimensions between concatenated streams are refused" {
	make_npy a.npy 2 3
	make_npy b.npy 2 4
	l2-cat --from-npy a.npy > a.l2f
	l2-cat --from-npy b.npy > b.l2f
	run bash -c "cat a.l2f b.l2f | l2-cat -f tsv"
	assert_failure 1
	assert_output --partial "expected image-feature dim 3"
}

@test "truncated stream: clear error, exit 1" {
	make_npy a.npy 4 6
	l2-cat --from-npy a.npy > a.l2f
	head -c 100 a.l2f > t.l2f
	run l2-cat -f tsv t.l2f
	assert_failure 1
	assert_output --partial "l2-cat: t.l2f: truncated input"
}

@test "wrong magic and wrong version are refused" {
	printf 'NOPE%060d' 0 > bad.l2f
	run l2-cat bad.l2f
	assert_failure 1
	assert_output --partial "bad magic"
	make_npy a.npy 1 2
	l2-cat --from-npy a.npy > a.l2f
	printf '\x09' | dd of=a.l2f bs=1 seek=4 conv=notrunc 2>/dev/null
	run l2-cat a.l2f
	assert_failure 1
	assert_output --partial "unsupported stream version"
}

@test "empty input and missing file" {
	run l2-cat < /dev/null
	assert_failure 1
	assert_output --partial "empty input"
	run l2-cat nope.l2f
	assert_failure 1
	assert_output --partial "l2-cat: nope.l2f: No such file"
}

@test "unwritable output leaves no file behind" {
	make_npy a.npy 2 3
	touch notadir
	run l2-cat --from-npy a.npy -o notadir/out.l2f
	assert_failure 1
	assert_output --partial "notadir/out.l2f"
	run bash -c "l2-cat --from-npy a.npy -o /dev/full"
	assert_failure 1
	run l2-cat --from-npy a.npy -o /nonexistent/out.l2f
	assert_failure 1
	assert_output --partial "/nonexistent/out.l2f"
}

@test "refuses to write binary to a terminal" {
	command -v script >/dev/null || skip "script(1) not installed"
	make_npy a.npy 2 3
	run script -qec "l2-cat --from-npy a.npy" /dev/null
	assert_failure
	assert_output --partial "refusing to write binary output to a terminal"
}

@test "--normalized checks rows" {
	make_npy a.npy 2 3
	run l2-cat --from-npy a.npy --normalized
	assert_failure 1
	assert_output --partial "not 1"
}

# ---- f16 and neighbors streams, more refusals (helper "found") -------------

PY3=$(command -v /usr/bin/python3 || command -v python3)

@test "f16 streams: header, exact widening in tsv and npy, kept f16 on output (f32 when mixed)" {
	"$PY3" - <<'PY'
import struct, random
rng = random.Random(7)
vals = [struct.unpack("<e", struct.pack("<e", rng.gauss(0, 2)))[0] for _ in range(3 * 5)]
vals[:4] = [65504.0, -6.103515625e-05, 5.960464477539063e-08, -0.0]
h = b"L2FS" + struct.pack("<HHIIQ", 1, 2, 5, 0, 3) + b"text-feature".ljust(24, b"\0") + b"\0" * 16
body, want = b"", []
for i in range(3):
    k = ("caption %d" % i).encode()
    v = vals[5 * i:5 * i + 5]
    body += struct.pack("<I", len(k)) + k + struct.pack("<5e", *v)
    want.append("caption %d\t" % i + " ".join("%.9g" % x for x in v))
open("h.l2f", "wb").write(h + body)
open("want.tsv", "w").write("\n".join(want) + "\n")
open("want.f32", "wb").write(struct.pack("<15f", *vals))
PY
	run l2-cat --header h.l2f
	assert_line "dtype	f16"
	assert_line "dim	5"
	l2-cat -f tsv h.l2f > got.tsv
	cmp want.tsv got.tsv
	l2-cat -f npy -o h.npy h.l2f
	cmp want.f32 <(tail -c 60 h.npy)
	l2-cat h.l2f > f.l2f
	run l2-cat --header f.l2f
	assert_line "dtype	f16"
	cmp want.tsv <(l2-cat -f tsv f.l2f)
	# the records' bytes are kept: only the header's count differs (until-end)
	cmp <(tail -c +65 h.l2f) <(tail -c +65 f.l2f)
	l2-cat --from-npy h.npy --kind text-feature > g32.l2f
	l2-cat h.l2f g32.l2f > m.l2f
	run l2-cat --header m.l2f
	assert_line "dtype	f32"
	cmp <(cat want.tsv; sed 's/^caption //' want.tsv) <(l2-cat -f tsv m.l2f)
}

# neighbors.l2f: 2 queries, k = 3, dim 2; keys with a tab and a newline
make_neighbors() {
	"$PY3" - <<'PY'
import struct
def hdr(n):
    return b"L2FS" + struct.pack("<HHIIQ", 1, 1, 2, 0, n) + b"neighbors".ljust(24, b"\0") + struct.pack("<I", 3) + b"\0" * 12
def key(s):
    b = s.encode()
    return struct.pack("<I", len(b)) + b
recs = []
for q, nb in [("img/a.png", [("a cat", .75), ("a\tdog", .5), ("new\nline", .125)]),
              ("img/b.png", [("x", .9), ("y", -.25), ("z", -1.0)])]:
    r = key(q) + struct.pack("<2f", 1.5, -2)
    for i, (k, s) in enumerate(nb):
        r += key(k) + struct.pack("<f", s) + struct.pack("<2f", i, i + .5)
    recs.append(r)
open("nb.l2f", "wb").write(hdr(2) + recs[0] + recs[1])
open("nb1.l2f", "wb").write(hdr(1) + recs[0])
open("nb2.l2f", "wb").write(hdr(0xFFFFFFFFFFFFFFFF) + recs[1])
PY
}

@test "neighbors streams print one tsv line per neighbour" {
	make_neighbors
	run l2-cat -f tsv nb.l2f
	assert_success
	assert_equal "${#lines[@]}" 6
	assert_equal "${lines[0]}" "img/a.png	1	a cat	0.75"
	assert_equal "${lines[1]}" 'img/a.png	2	a\tdog	0.5'
	assert_equal "${lines[2]}" 'img/a.png	3	new\nline	0.125'
	assert_equal "${lines[5]}" "img/b.png	3	z	-1"
	run l2-cat --header nb.l2f
	assert_line "kind	neighbors"
	assert_line "k	3"
}

@test "neighbors streams concatenate and pass through unchanged" {
	make_neighbors
	cat nb1.l2f nb2.l2f | l2-cat > cat.l2f
	run l2-cat --count cat.l2f
	assert_output "2"
	cmp <(l2-cat -f tsv nb.l2f) <(l2-cat -f tsv cat.l2f)
	# byte-identical records after the header
	cmp <(tail -c +65 nb.l2f) <(tail -c +65 cat.l2f)
	make_npy a.npy 2 2
	l2-cat --from-npy a.npy > a.l2f
	run bash -c "cat nb.l2f a.l2f | l2-cat --count"
	assert_failure 1
}

@test "--from-npy refuses mismatched keys, float64, 1-d arrays and kind neighbors" {
	make_npy a.npy 3 2
	printf 'one\ntwo\n' > two.txt
	run l2-cat --from-npy a.npy --keys two.txt
	assert_failure 1
	assert_output --partial "two.txt: 2 keys for the 3 rows of a.npy"
	printf 'a\nb\nc\nd\n' > four.txt
	run l2-cat --from-npy a.npy --keys four.txt
	assert_failure 1
	assert_output --partial "more keys than the 3 rows"
	run l2-cat --from-npy a.npy --kind neighbors
	assert_failure 1
	assert_output --partial "neighbors"
	"$PY3" - <<'PY'
import struct
def npy(path, descr, shape, data):
    h = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape)
    h += " " * ((64 - (10 + len(h) + 1) % 64) % 64) + "\n"
    open(path, "wb").write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode() + data)
npy("d.npy", "<f8", "(2, 2)", struct.pack("<4d", 1, 2, 3, 4))
npy("v.npy", "<f4", "(4,)", struct.pack("<4f", 1, 2, 3, 4))
PY
	run l2-cat --from-npy d.npy
	assert_failure 1
	assert_output --partial "float64"
	run l2-cat --from-npy v.npy
	assert_failure 1
	assert_output --partial "2-d"
	run l2-cat --from-npy a.npy a.l2f
	assert_failure 2
	run l2-cat --keys two.txt
	assert_failure 2
}

@test "a failing input among several leaves no output file" {
	make_npy a.npy 3 2
	l2-cat --from-npy a.npy > a.l2f
	run l2-cat -o out.l2f a.l2f missing.l2f
	assert_failure 1
	assert_output --partial "missing.l2f"
	assert_not_exist out.l2f
	run l2-cat -f tsv -o out.tsv a.l2f missing.l2f
	assert_failure 1
	assert_not_exist out.tsv
	[ -z "$(ls | grep '\.tmp\.')" ]
}

@test "keys with tabs and newlines are escaped in tsv and --keys-out" {
	"$PY3" - <<'PY'
import struct
h = b"L2FS" + struct.pack("<HHIIQ", 1, 1, 1, 0, 2) + b"text-feature".ljust(24, b"\0") + b"\0" * 16
r = b""
for k in ["a\tb\\c", "line\r\nend"]:
    kb = k.encode()
    r += struct.pack("<I", len(kb)) + kb + struct.pack("<f", 1)
open("k.l2f", "wb").write(h + r)
PY
	run l2-cat -f tsv k.l2f
	assert_equal "${lines[0]}" 'a\tb\\c	1'
	assert_equal "${lines[1]}" 'line\r\nend	1'
	l2-cat -f npy -o k.npy --keys-out k.txt k.l2f
	run cat k.txt
	assert_equal "${lines[0]}" 'a\tb\\c'
	assert_equal "${lines[1]}" 'line\r\nend'
}
