#!/usr/bin/env bash
# bench_index.sh — l2-retrieve against faiss on this machine:
#   exact: NQ queries vs N unit 512-d vectors, k = 10, T threads, against
#          faiss IndexFlatIP (same threads), top-10 compared query by query;
#   IVF:   on clustered data (a mixture of Gaussians on the sphere), recall@10
#          and speed over nprobe, against our exact search and faiss IVFFlat;
#   build: time and peak memory (/usr/bin/time -v) of l2-build-index for NB rows.
# Sizes: BENCH_INDEX_N, _NQ, _BUILD_N, _NLIST, _NPROBES; BENCH_QUICK=1 = tiny.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export PATH=$PWD/$BUILD/bin:$PATH
PY=/usr/bin/python3
FA=bench/index_faiss.py
N=${BENCH_INDEX_N:-100000} NQ=${BENCH_INDEX_NQ:-10000} NB=${BENCH_INDEX_BUILD_N:-1000000}
NLIST=${BENCH_INDEX_NLIST:-1024} NPROBES=${BENCH_INDEX_NPROBES:-4,8,16,32}
D=512 K=10 T=${BENCH_THREADS:-2}
if [ "${BENCH_QUICK:-0}" = 1 ]; then N=20000 NQ=1000 NB=30000 NLIST=128 NPROBES=2,4,8; fi
W=bench/out/index
rm -rf "$W"
mkdir -p "$W"
$PY -c "import faiss" 2>/dev/null || { echo "bench_index: python3-faiss missing (tools/install-deps.sh bench)"; exit 1; }

stat_of() { sed -n "s/.*$2 \([0-9.]*\).*/\1/p" "$1" | head -1; }
qps() { $PY -c "print('%.0f' % ($1 / $2))"; }
ratio() { $PY -c "print('%.2f' % ($1 / $2))"; }

# ---- data -------------------------------------------------------------------
for kind in uniform clustered; do
	$PY $FA gen "$W/$kind-" "$N" "$NQ" "$D" 1 "$kind"
	l2-cat --from-npy "$W/$kind-x.npy" --kind text-feature --normalized > "$W/$kind-x.l2f"
	l2-cat --from-npy "$W/$kind-q.npy" --kind image-feature --normalized > "$W/$kind-q.l2f"
done
peak=$(OPENBLAS_NUM_THREADS=$T $PY $FA sgemm "$T" | awk '{print $2}')

# ---- exact --------------------------------------------------------------------
u=$W/uniform
l2-build-index --quiet -o "$u.idx" "$u-x.l2f"
l2-retrieve -i "$u.idx" -k $K --threads "$T" -f tsv -o "$u.tsv" --stats "$u-q.l2f" 2> "$u.stats"
l2-retrieve -i "$u.idx" -k $K --threads "$T" -f tsv -o "$u.tsv" --stats "$u-q.l2f" 2>> "$u.stats"
ours_s=$(sed -n 's/.*search \([0-9.]*\) s.*/\1/p' "$u.stats" | sort -g | head -1)
ours_cpu=$(sed -n 's/.*cpu \([0-9.]*\) s.*/\1/p' "$u.stats" | sort -g | head -1)
ours_total=$(sed -n 's/.*total \([0-9.]*\) s.*/\1/p' "$u.stats" | sort -g | head -1)
fl=$($PY $FA flat "$u-x.npy" "$u-q.npy" $K "$T" "$u-faiss.npy")
faiss_s=$(echo "$fl" | awk '{print $2}') faiss_cpu=$(echo "$fl" | awk '{print $4}')
cmp=$($PY $FA compare "$u-faiss.npy" "$u.tsv" "$u-x.npy" "$u-q.npy" $K)
same=$(echo "$cmp" | awk '{print $2}') sets=$(echo "$cmp" | awk '{print $4}') ties=$(echo "$cmp" | awk '{print $6}')
gf=$($PY -c "print('%.1f' % (2.0 * $NQ * $N * $D / $ours_s / 1e9))")
gff=$($PY -c "print('%.1f' % (2.0 * $NQ * $N * $D / $faiss_s / 1e9))")

echo "## Index search: $NQ queries × $N unit $D-d vectors, k = $K, $T threads"
echo
echo "| exact search | l2-retrieve | faiss IndexFlatIP | l2 / faiss |"
echo "|---|---:|---:|---:|"
echo "| queries/s (search only) | $(qps "$NQ" "$ours_s") | $(qps "$NQ" "$faiss_s") | $(ratio "$faiss_s" "$ours_s")× |"
echo "| queries per CPU-second (fair on a busy machine) | $(qps "$NQ" "$ours_cpu") | $(qps "$NQ" "$faiss_cpu") | $(ratio "$faiss_cpu" "$ours_cpu")× |"
echo "| queries/s (whole tool: read, search, write TSV) | $(qps "$NQ" "$ours_total") | | |"
echo "| GFLOP/s (2·NQ·N·D / time); SGEMM peak $peak | $gf ($($PY -c "print('%.0f' % (100 * $gf / $peak))")%) | $gff ($($PY -c "print('%.0f' % (100 * $gff / $peak))")%) | |"
echo "| identical top-$K lists / same sets / differing only by near-ties (< 1e-6) | $same / $sets / $ties of $NQ | | |"

# ---- IVF on clustered data ----------------------------------------------------
c=$W/clustered
t0=$(date +%s.%N)
l2-build-index --quiet -o "$c.idx" --ivf "$NLIST" "$c-x.l2f"
tb=$($PY -c "print('%.1f' % ($(date +%s.%N) - $t0))")
l2-retrieve -i "$c.idx" -k $K --threads "$T" -o /dev/null --stats "$c-q.l2f" 2> "$c.exact"
ex_s=$(sed -n 's/.*search \([0-9.]*\) s.*/\1/p' "$c.exact")
ex_cpu=$(sed -n 's/.*cpu \([0-9.]*\) s.*/\1/p' "$c.exact")
$PY $FA ivf "$c-x.npy" "$c-q.npy" $K "$T" "$NLIST" "$NPROBES" > "$c.faiss"
echo
echo "## IVF on clustered data: $N rows ($((N / 50)) Gaussian clusters on the sphere), $NQ queries, NLIST $NLIST"
echo
echo "Exact search on this data: $(qps "$NQ" "$ex_s") queries/s ($(qps "$NQ" "$ex_cpu") per CPU-second). l2 IVF build (k-means + filing): ${tb} s;"
echo "faiss IVFFlat train + add: $(awk '/build_s/ {print $2}' "$c.faiss") s."
echo
echo "| nprobe | l2 recall@$K | l2 queries/s | × exact | × exact (CPU time) | faiss IVFFlat recall@$K | faiss queries/s |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
for p in ${NPROBES//,/ }; do
	l2-retrieve -i "$c.idx" -k $K --threads "$T" --nprobe "$p" --recall -o /dev/null --stats "$c-q.l2f" 2> "$c.p$p"
	s=$(sed -n 's/.*search \([0-9.]*\) s.*/\1/p' "$c.p$p")
	# --recall searches twice (IVF, then exact); the IVF share is measured alone:
	l2-retrieve -i "$c.idx" -k $K --threads "$T" --nprobe "$p" -o /dev/null --stats "$c-q.l2f" 2> "$c.p$p.t"
	s=$(sed -n 's/.*search \([0-9.]*\) s.*/\1/p' "$c.p$p.t")
	sc=$(sed -n 's/.*cpu \([0-9.]*\) s.*/\1/p' "$c.p$p.t")
	r=$(sed -n 's/.*exact search: \([0-9.]*\).*/\1/p' "$c.p$p")
	fl=$(awk -v p="$p" '$1 == "nprobe" && $2 == p' "$c.faiss")
	echo "| $p | $r | $(qps "$NQ" "$s") | $(ratio "$ex_s" "$s") | $(ratio "$ex_cpu" "$sc") | $(echo "$fl" | awk '{print $6}') | $(qps "$NQ" "$(echo "$fl" | awk '{print $4}')") |"
done

# ---- build time and memory -------------------------------------------------------
b=$W/build
$PY - "$b.l2f" "$NB" "$D" <<'PY'
import sys, struct, numpy as np
path, n, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(2)
with open(path, "wb") as f:
    f.write(b"L2FS" + struct.pack("<HHIIQ", 1, 1, d, 1, n) + b"text-feature".ljust(24, b"\0") + bytes(16))
    for i0 in range(0, n, 50000):
        m = min(n, i0 + 50000) - i0
        x = rng.standard_normal((m, d), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        buf = bytearray()
        for i in range(m):
            k = ("a caption of row %d" % (i0 + i)).encode()
            buf += struct.pack("<I", len(k)) + k + x[i].tobytes()
        f.write(buf)
PY
echo
echo "## Building an index of $NB unit $D-d vectors (vectors alone: $((NB * D * 4 / 1048576)) MiB f32)"
echo
echo "| build | wall s | peak RSS MiB | index size MiB |"
echo "|---|---:|---:|---:|"
for opt in "" "--f16"; do
	rm -rf "$b.idx"
	/usr/bin/time -v l2-build-index --quiet -o "$b.idx" $opt "$b.l2f" 2> "$b.time"
	wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$b.time" | awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s }')
	rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$b.time")
	echo "| l2-build-index ${opt:-(f32)} | $wall | $((rss / 1024)) | $(($(stat -c %s "$b.idx/data.mdb") / 1048576)) |"
done
rm -rf "$b.idx" "$b.l2f"
