#!/usr/bin/env bats
# l2-optimize-pseudo: modes, determinism, diagnostics, bad input.
# Fixtures are synthetic modality-gap features made by plain python3 below.
load test_helper

# l2f.py: read/write l2 feature streams (schemas/l2fs.md) and make synthetic
# neighbors streams: image = normalize(semantic + noise + image gap),
# caption = normalize(semantic + noise + text gap), pair cosine about 0.3.
write_l2fpy() {
	cat > l2f.py <<'PY'
import math, random, struct, sys

def header(kind, dim, k=0, count=0xFFFFFFFFFFFFFFFF, flags=1):
    return (b"L2FS" + struct.pack("<HHIIQ", 1, 1, dim, flags, count) + kind.encode().ljust(24, b"\0")
            + struct.pack("<I", k) + b"\0" * 12)

def rec(key, vec):
    k = key.encode()
    return struct.pack("<I", len(k)) + k + struct.pack("<%df" % len(vec), *vec)

def unit(v):
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]

def read(path):
    """-> (kind, dim, k, [(key, vec, [(nkey, score, nvec)])])"""
    b = open(path, "rb").read()
    out, p, kind, dim, k = [], 0, None, 0, 0
    while p < len(b):
        if b[p:p + 4] == b"L2FS":
            _, _, dim, _, _ = struct.unpack_from("<HHIIQ", b, p + 4)
            kind = b[p + 24:p + 48].rstrip(b"\0").decode()
            k = struct.unpack_from("<I", b, p + 48)[0]
            p += 64
            continue
        def one(p):
            n = struct.unpack_from("<I", b, p)[0]; p += 4
            key = b[p:p + n].decode(); p += n
            return key, p
        key, p = one(p)
        vec = list(struct.unpack_from("<%df" % dim, b, p)); p += 4 * dim
        nb = []
        for _ in range(k):
            nk, p = one(p)
            s = struct.unpack_from("<f", b, p)[0]; p += 4
            nv = list(struct.unpack_from("<%df" % dim, b, p)); p += 4 * dim
            nb.append((nk, s, nv))
        out.append((key, vec, nb))
    return kind, dim, k, out

def synth(n, m, d, concepts, seed):
    rng = random.Random(seed)
    g = lambda: unit([rng.gauss(0, 1) for _ in range(d)])
    cent = [g() for _ in range(concepts)]
    gi, gt = g(), g()
    def item():
        c = cent[rng.randrange(concepts)]
        z = g()
        s = unit([a + b for a, b in zip(c, z)])
        zi, zt = g(), g()
        return (unit([a + 1.15 * b + c_ for a, b, c_ in zip(s, zi, gi)]),
                unit([a + 1.15 * b + c_ for a, b, c_ in zip(s, zt, gt)]))
    imgs = [item()[0] for _ in range(n)]
    corpus = [item()[1] for _ in range(m)]
    return imgs, corpus

def neighbors(path, n, m, d, k, concepts=8, seed=1):
    imgs, corpus = synth(n, m, d, concepts, seed)
    with open(path, "wb") as f:
        f.write(header("neighbors", d, k))
        for i, v in enumerate(imgs):
            sc = sorted(((sum(a * b for a, b in zip(v, t)), j) for j, t in enumerate(corpus)), reverse=True)[:k]
            f.write(rec("img%03d.png" % i, v))
            for s, j in sc:
                f.write(rec("caption %d" % j, corpus[j])[:4 + len("caption %d" % j)])
                f.write(struct.pack("<f", s) + struct.pack("<%df" % d, *corpus[j]))

if __name__ == "__main__":
    if sys.argv[1] == "neighbors":
        neighbors(sys.argv[2], *map(int, sys.argv[3:]))
    elif sys.argv[1] == "images":
        imgs, _ = synth(int(sys.argv[3]), 1, int(sys.argv[4]), 4, int(sys.argv[5]))
        with open(sys.argv[2], "wb") as f:
            f.write(header("image-feature", int(sys.argv[4])))
            for i, v in enumerate(imgs): f.write(rec("img%03d.png" % i, v))
PY
}

setup() {
	cd "$BATS_TEST_TMPDIR" || return 1
	write_l2fpy
}

# neighbors FILE N M D K [CONCEPTS SEED]
neighbors() { python3 l2f.py neighbors "$@"; }

@test "l2-optimize-pseudo -h prints usage and exits 0" {
	run l2-optimize-pseudo -h
	assert_success
	assert_output --partial "usage: l2-optimize-pseudo"
	assert_output --partial "--retrieval-temp"
}

@test "l2-optimize-pseudo --version" {
	run l2-optimize-pseudo --version
	assert_success
	assert_output --regexp "^l2-optimize-pseudo \(l2\) [0-9]+\.[0-9]+"
}

@test "unknown options are usage errors (exit 2), bad values exit 1" {
	run l2-optimize-pseudo --bogus
	assert_failure 2
	assert_output --partial "usage: l2-optimize-pseudo"
	run l2-optimize-pseudo --mode sideways
	assert_failure 2
	assert_output --partial "unknown mode 'sideways'"
	run l2-optimize-pseudo a.l2f b.l2f
	assert_failure 2
	run l2-optimize-pseudo --tau 0
	assert_failure 1
	assert_output --partial "invalid value for --tau: '0'"
	for bad in "--lambda -1" "--batch 0" "--k 0" "--lr nan" "--steps -1" "--retrieval-temp 0" "--xi -2" "--seed x"; do
		run l2-optimize-pseudo $bad
		assert_failure 1
		assert_output --partial "invalid value for ${bad% *}"
	done
}

@test "optimize: one normalised pseudo feature per image, keys in order" {
	neighbors nb.l2f 40 120 16 4
	l2-optimize-pseudo nb.l2f > p.l2f
	run l2-cat --header p.l2f
	assert_line "kind	pseudo-text-feature"
	assert_line "dim	16"
	assert_line "flags	normalized"
	run l2-cat --count p.l2f
	assert_output "40"
	diff <(l2-cat -f tsv p.l2f | cut -f1) <(for i in $(seq 0 39); do printf 'img%03d.png\n' "$i"; done)
	python3 - <<'PY'
import l2f, math
_, d, _, recs = l2f.read("p.l2f")
for key, v, _ in recs:
    assert abs(math.sqrt(sum(x * x for x in v)) - 1) < 1e-6, key
PY
}

@test "stdin and file input give the same bytes; -o writes the same" {
	neighbors nb.l2f 30 100 12 3
	l2-optimize-pseudo nb.l2f > a.l2f
	l2-optimize-pseudo < nb.l2f > b.l2f
	l2-optimize-pseudo -o c.l2f nb.l2f
	cmp a.l2f b.l2f
	cmp a.l2f c.l2f
}

@test "retrieve: k=1 is the nearest caption; k>1 the softmax-weighted sum" {
	neighbors nb.l2f 20 80 8 4
	l2-optimize-pseudo --mode retrieve --k 1 nb.l2f > r1.l2f
	l2-optimize-pseudo --mode retrieve --k 3 --retrieval-temp 0.05 nb.l2f > r3.l2f
	python3 - <<'PY'
import l2f, math
_, d, _, nb = l2f.read("nb.l2f")
_, _, _, r1 = l2f.read("r1.l2f")
_, _, _, r3 = l2f.read("r3.l2f")
for (key, f, n), (k1, h1, _), (k3, h3, _) in zip(nb, r1, r3):
    assert key == k1 == k3
    t = l2f.unit(n[0][2])
    assert max(abs(a - b) for a, b in zip(h1, t)) < 1e-6
    w = [math.exp(s / 0.05) for _, s, _ in n[:3]]
    acc = [sum(w[j] / sum(w) * l2f.unit(n[j][2])[e] for j in range(3)) for e in range(d)]
    acc = l2f.unit(acc)
    assert max(abs(a - b) for a, b in zip(h3, acc)) < 1e-6, key
PY
}

@test "--steps 0 equals --mode retrieve" {
	neighbors nb.l2f 20 80 8 4
	l2-optimize-pseudo --mode retrieve nb.l2f > r.l2f
	l2-optimize-pseudo --steps 0 nb.l2f > o.l2f
	python3 - <<'PY'
import l2f
a, b = l2f.read("r.l2f")[3], l2f.read("o.l2f")[3]
assert max(abs(x - y) for (_, u, _), (_, v, _) in zip(a, b) for x, y in zip(u, v)) < 1e-6
PY
}

@test "--report: optimisation raises in-batch accuracy over retrieval (synthetic modality gap)" {
	neighbors nb.l2f 96 400 32 8 4 3
	run l2-optimize-pseudo --report --batch 32 -o p.l2f nb.l2f
	assert_success
	assert_output --partial "cos(h,image)"
	assert_output --partial "cos(h,nearest text)"
	assert_line --regexp "^l2-optimize-pseudo: |^all: "
	all=$(grep '^all:' <<<"$output")
	before=$(sed -E 's/.*in-batch acc ([0-9.]+) -> ([0-9.]+).*/\1/' <<<"$all")
	after=$(sed -E 's/.*in-batch acc ([0-9.]+) -> ([0-9.]+).*/\2/' <<<"$all")
	echo "accuracy $before -> $after"
	python3 -c "import sys; b, a = float(sys.argv[1]), float(sys.argv[2]); assert a > b + 0.1 and a > 0.9, (b, a)" "$before" "$after"
}

@test "--report-file: TSV with a header, one row per batch and an overall row" {
	neighbors nb.l2f 50 150 16 4
	l2-optimize-pseudo --batch 16 --report-file r.tsv nb.l2f > p.l2f
	run cat r.tsv
	assert_line --index 0 "batch	images	cos_image_before	cos_image_after	cos_text_before	cos_text_after	acc_before	acc_after	loss_before	loss_after"
	[ "${#lines[@]}" -eq 6 ]
	assert_line --index 4 --regexp "^4	2	"
	assert_line --index 5 --regexp "^all	50	"
	python3 - <<'PY'
rows = [l.split("\t") for l in open("r.tsv").read().splitlines()[1:]]
for r in rows:
    assert len(r) == 10
    vals = [float(x) for x in r[2:]]
    if float(r[1]) >= 16:  # a batch of 2 is already at its optimum
        assert float(r[9]) < float(r[8]), r  # loss decreases
PY
}

@test "deterministic: same bytes across runs and thread counts" {
	neighbors nb.l2f 70 200 16 4
	l2-optimize-pseudo --threads 1 --batch 32 nb.l2f > a.l2f
	l2-optimize-pseudo --threads 2 --batch 32 nb.l2f > b.l2f
	l2-optimize-pseudo --threads 2 --batch 32 nb.l2f > c.l2f
	cmp a.l2f b.l2f
	cmp b.l2f c.l2f
}

@test "gaussian: image-feature input, seeded, independent of batch and threads" {
	python3 l2f.py images im.l2f 30 512 1
	l2-optimize-pseudo --mode gaussian --seed 7 im.l2f > a.l2f
	l2-optimize-pseudo --mode gaussian --seed 7 --batch 1 --threads 1 im.l2f > b.l2f
	l2-optimize-pseudo --mode gaussian --seed 7 --batch 13 --threads 2 < im.l2f > c.l2f
	l2-optimize-pseudo --mode gaussian --seed 8 im.l2f > d.l2f
	cmp a.l2f b.l2f
	cmp a.l2f c.l2f
	! cmp -s a.l2f d.l2f
	python3 - <<'PY'
import l2f, math
_, _, _, im = l2f.read("im.l2f")
_, _, _, ps = l2f.read("a.l2f")
c = [sum(x * y for x, y in zip(f, h)) for (_, f, _), (_, h, _) in zip(im, ps)]
m = sum(c) / len(c)
assert abs(m - 1 / math.sqrt(10)) < 0.03, m   # normalize(0.25 f + 0.75 eps): cos about 0.32
PY
	l2-optimize-pseudo --mode gaussian --xi 0 im.l2f > z.l2f
	python3 - <<'PY'
import l2f
a, b = l2f.read("im.l2f")[3], l2f.read("z.l2f")[3]
assert max(abs(x - y) for (_, u, _), (_, v, _) in zip(a, b) for x, y in zip(u, v)) < 1e-6
PY
}

@test "gaussian also takes a neighbors stream (the query feature)" {
	neighbors nb.l2f 10 40 8 2
	run l2-optimize-pseudo --mode gaussian --report nb.l2f -o g.l2f
	assert_success
	run l2-cat --count g.l2f
	assert_output "10"
}

@test "concatenated neighbors streams and batches larger than the input" {
	neighbors a.l2f 9 40 8 3 4 1
	neighbors b.l2f 7 40 8 3 4 2
	cat a.l2f b.l2f | l2-optimize-pseudo --batch 1000 > p.l2f
	run l2-cat --count p.l2f
	assert_output "16"
	cat a.l2f b.l2f | l2-optimize-pseudo --batch 1 > q.l2f
	run l2-cat --count q.l2f
	assert_output "16"
}

@test "empty neighbors stream gives an empty pseudo stream" {
	python3 -c "import l2f, sys; sys.stdout.buffer.write(l2f.header('neighbors', 8, 3))" > e.l2f
	l2-optimize-pseudo e.l2f > p.l2f
	run l2-cat --count p.l2f
	assert_output "0"
}

@test "wrong input kinds are refused with a clear message" {
	python3 l2f.py images im.l2f 3 8 1
	run l2-optimize-pseudo im.l2f
	assert_failure 1
	assert_output --partial "l2-optimize-pseudo: im.l2f: expected a neighbors stream (from l2-retrieve), got image-feature (only --mode gaussian"
	make_npy t.npy 2 8
	l2-cat --from-npy t.npy --kind text-feature > t.l2f
	run l2-optimize-pseudo --mode gaussian t.l2f
	assert_failure 1
	assert_output --partial "got text-feature"
}

@test "non-finite values in the input are refused, naming the record" {
	neighbors nb.l2f 6 30 8 3
	python3 - <<'PY'
import struct, l2f
kind, d, k, recs = l2f.read("nb.l2f")
def write(path, bad):
    with open(path, "wb") as f:
        f.write(l2f.header(kind, d, k))
        for i, (key, v, nb) in enumerate(recs):
            v = list(v)
            if i == 4 and bad == "img": v[2] = float("nan")
            f.write(l2f.rec(key, v))
            for j, (nk, s, nv) in enumerate(nb):
                nv = list(nv)
                if i == 4 and j == 1 and bad == "txt": nv[0] = float("inf")
                if i == 4 and j == 2 and bad == "score": s = float("nan")
                f.write(l2f.rec(nk, [])[:4 + len(nk.encode())] + struct.pack("<f", s) + struct.pack("<%df" % d, *nv))
for b in ("img", "txt", "score"): write(b + ".l2f", b)
PY
	run l2-optimize-pseudo -o out.l2f img.l2f
	assert_failure 1
	assert_output "l2-optimize-pseudo: img.l2f: record 5 ('img004.png'): vector: value 2 is NaN"
	assert_file_not_exists out.l2f
	run l2-optimize-pseudo txt.l2f
	assert_failure 1
	assert_output --partial "record 5 ('img004.png'): neighbour 2: value 0 is infinite"
	run l2-optimize-pseudo score.l2f
	assert_failure 1
	assert_output --partial "record 5 ('img004.png'): the score of neighbour 3 is not finite"
}

@test "--k larger than the stream's k is an error; the default adapts" {
	neighbors nb.l2f 5 20 8 2
	run l2-optimize-pseudo --k 5 nb.l2f
	assert_failure 1
	assert_output --partial "--k 5 asks for more neighbours than the stream's 2"
	l2-optimize-pseudo nb.l2f > p.l2f
}

@test "truncated input: error, exit 1, no output file" {
	neighbors nb.l2f 10 40 8 3
	head -c 700 nb.l2f > t.l2f
	run l2-optimize-pseudo -o out.l2f t.l2f
	assert_failure 1
	assert_output --partial "l2-optimize-pseudo: t.l2f: truncated"
	assert_file_not_exists out.l2f
	run l2-optimize-pseudo -o out.l2f --report-file r.tsv t.l2f
	assert_failure 1
	assert_file_not_exists r.tsv
}

@test "empty input, missing file, unwritable output" {
	run l2-optimize-pseudo < /dev/null
	assert_failure 1
	assert_output --partial "empty input"
	run l2-optimize-pseudo nope.l2f
	assert_failure 1
	assert_output --partial "l2-optimize-pseudo: nope.l2f: No such file"
	neighbors nb.l2f 4 20 8 2
	run l2-optimize-pseudo -o /nonexistent/p.l2f nb.l2f
	assert_failure 1
	assert_output --partial "/nonexistent/p.l2f"
	run l2-optimize-pseudo -o /dev/full nb.l2f
	assert_failure 1
}

@test "refuses to write binary to a terminal" {
	command -v script >/dev/null || skip "script(1) not installed"
	neighbors nb.l2f 4 20 8 2
	run script -qec "l2-optimize-pseudo nb.l2f" /dev/null
	assert_failure
	assert_output --partial "refusing to write binary output to a terminal"
}

@test "matches the PyTorch float64 reference (tests/ref/make_pseudo.py) to 2e-6" {
	ref=$L2_ROOT/tests/ref/pseudo
	while read -r name k tr tau lambda steps lr batch; do
		l2-optimize-pseudo -k "$k" --retrieval-temp "$tr" --tau "$tau" --lambda "$lambda" --steps "$steps" \
			--lr "$lr" --batch "$batch" "$ref/neighbors.l2f" > "$name.l2f"
		python3 - "$name.l2f" "$ref/$name.npy" <<'PY'
import ast, struct, sys
import l2f
_, d, _, recs = l2f.read(sys.argv[1])
b = open(sys.argv[2], "rb").read()
hl = struct.unpack_from("<H", b, 8)[0]
hdr = ast.literal_eval(b[10:10 + hl].decode())
assert hdr["descr"] == "<f8" and hdr["shape"] == (len(recs), d), hdr
ref = struct.unpack_from("<%dd" % (len(recs) * d), b, 10 + hl)
worst = max(abs(x - ref[i * d + j]) for i, (_, v, _) in enumerate(recs) for j, x in enumerate(v))
assert worst < 2e-6, (sys.argv[1], worst)
PY
	done < "$ref/cases.txt"
}

@test "constant memory: 200x the input, about the same peak RSS" {
	neighbors nb.l2f 64 200 32 4
	for i in $(seq 200); do cat nb.l2f; done > big.l2f
	python3 - <<'PY'
import resource, subprocess
def peak(path):
    # fresh interpreter per run so the children's maximum is this run's
    out = subprocess.run(["python3", "-c", """
import resource, subprocess, sys
subprocess.run(["l2-optimize-pseudo", "--threads", "1", "--batch", "64", "-o", "/dev/null", sys.argv[1]], check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
""", path], check=True, capture_output=True, text=True).stdout
    return int(out)
small, big = peak("nb.l2f"), peak("big.l2f")
print("peak RSS KiB:", small, big)
assert big < small + 4096, (small, big)
PY
	run l2-cat --count big.l2f
	assert_output "12800"
}
