#!/usr/bin/env bash
# bench_fid.sh — FID Inception-v3 features with random weights on 2 threads:
# l2-fid (im2col + OpenBLAS SGEMM, one image batch per thread) vs PyTorch on
# the same network and weights (bench/bench_fid.py, tests/ref/make_fid.py),
# end to end from PNG/JPEG files; then the 2048-d Fréchet distance: l2's
# eigendecompositions vs pytorch-fid's scipy sqrtm.  The l2 time includes
# loading and hashing the 95 MB weights.  BENCH_QUICK=1: fewer images.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
N=${BENCH_N:-48}   # images through l2-fid
NT=${BENCH_NT:-16} # images through PyTorch (slower)
DIM=${BENCH_DIM:-2048}
if [ "${BENCH_QUICK:-0}" = 1 ]; then N=8 NT=4 DIM=512; fi
out=bench/out/fid
mkdir -p "$out/img"
rm -f "$out"/img/*
cc -O2 bench/sgemm_peak.c -o "$out/sgemm_peak" $(pkg-config --cflags --libs openblas 2>/dev/null || echo -lopenblas)
peak=$("$out/sgemm_peak" 1024 2 | awk '{print $2}')
/usr/bin/python3 - "$out/img" "$N" <<'PY'
import os, sys
import numpy as np
from PIL import Image
out, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
yy, xx = np.mgrid[0:256, 0:320]
for i in range(n):
    base = np.stack([(xx * (c + 1) + yy * (3 - c) + 40 * i) % 256 for c in range(3)], -1)
    im = Image.fromarray(np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8))
    if i % 2: im.save(os.path.join(out, "img%03d.jpg" % i), quality=90)
    else: im.save(os.path.join(out, "img%03d.png" % i))
PY
l2=$BUILD/bin/l2-fid
"$l2" --random-weights "$out/w.safetensors" --seed 1
t0=$(date +%s.%N)
"$l2" -m "$out/w.safetensors" --threads 2 --features "$out/l2.l2f" "$out/img"
t1=$(date +%s.%N)
"$BUILD/bin/l2-cat" -f npy -o "$out/l2.npy" "$out/l2.l2f"
ours=$(awk -v n="$N" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", n / (b - a) }')
read -r _ theirs _ err < <(/usr/bin/python3 bench/bench_fid.py torch "$out/img" "$NT" 2 "$out/l2.npy")
gflop=11.345 # per image, 2048-d (l2_inception_flops; printed by test_inception)
/usr/bin/python3 bench/bench_fid.py stats "$out" "$DIM"
read -r _ tpy _ fpy < <(/usr/bin/python3 bench/bench_fid.py frechet "$out/a.npz" "$out/b.npz")
t0=$(date +%s.%N)
fl2=$("$l2" --quiet "$out/a.npz" "$out/b.npz" | head -1 | cut -d' ' -f2)
t1=$(date +%s.%N)
tl2=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
echo "## FID (2 threads; Inception-v3 random weights, $N/$NT images 320x256 PNG+JPEG; distance ${DIM}-d)"
echo
echo "| what | l2 | PyTorch / scipy | l2 speed-up |"
echo "|---|---|---|---|"
awk -v o="$ours" -v t="$theirs" -v g="$gflop" -v p="$peak" 'BEGIN {
	printf "| Inception features, images/s (end to end) | %.2f | %.2f | %.1fx |\n", o, t, o / t
	printf "| share of SGEMM peak (%.0f GFLOP/s, %.2f GFLOP/image) | %.0f%% | %.0f%% | |\n", p, g, 100 * o * g / p, 100 * t * g / p }'
awk -v a="$tl2" -v b="$tpy" -v d="$DIM" 'BEGIN {
	printf "| Frechet distance %d-d, seconds (l2: whole command incl. reading .npz) | %.3f | %.3f | %.1fx |\n", d, a, b, b / a }'
echo
echo "features: max relative error l2 vs PyTorch $err; FID l2 $fl2, scipy $fpy"
