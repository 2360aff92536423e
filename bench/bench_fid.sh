#!/usr/bin/env bash
# bench_fid.sh — FID Inception-v3 features with random weights on 2 threads:
# l2-fid (im2col + OpenBLAS SGEMM, one image batch per thread) vs PyTorch on
# the same network and weights (bench/bench_fid.py, tests/ref/make_fid.py),
# end to end from PNG/JPEG files; then the 2048-d Fréchet distance: l2's
# eigendecompositions vs pytorch-fid's scipy sqrtm.
#
# l2 is reported three ways: end to end for N images (including reading,
# folding and placing the 95 MB weights); the steady state of the same
# command, (N - B) / (t_N - t_B) from a second run on the first B images, so
# the weight loading cancels (what matters for thousands of images); and the
# network alone (bench/bench_fid.c: forward passes on images already in
# memory).  The share of the SGEMM rate is given against OpenBLAS on 2 threads
# (wall clock), and, since the machine may be shared, also as GFLOP per
# CPU-second against one-thread SGEMM measured the same way.
# BENCH_QUICK=1: fewer images.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
N=${BENCH_N:-48}   # images through l2-fid
B=${BENCH_B:-8}    # the short run whose time is taken out for the steady state
NT=${BENCH_NT:-16} # images through PyTorch (slower)
R=${BENCH_R:-3}    # timed batches per thread of the network-alone run
DIM=${BENCH_DIM:-2048}
TH=2
if [ "${BENCH_QUICK:-0}" = 1 ]; then N=12 B=4 NT=4 R=1 DIM=512; fi
out=bench/out/fid
mkdir -p "$out/img" "$out/few"
rm -f "$out"/img/* "$out"/few/*
make -s --no-print-directory BUILD="$BUILD" \
	--eval '$(BUILD)/bench/bench_fid: bench/bench_fid.c $(BUILD)/libl2.a ; @mkdir -p $(@D) && $(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) $< -o $@ $(BUILD)/libl2.a $(LDLIBS)' \
	--eval '$(BUILD)/bench/sgemm_peak: bench/sgemm_peak.c ; @mkdir -p $(@D) && $(CC) $(CPPFLAGS) -O2 -march=native $< -o $@ $(LDLIBS)' \
	"$BUILD/bench/bench_fid" "$BUILD/bench/sgemm_peak" >&2
peak=$("$BUILD/bench/sgemm_peak" 1024 $TH | awk '{print $2}')
peak1=$("$BUILD/bench/bench_fid" peak 1024 | awk '{print $2}')
/usr/bin/python3 bench/synth_data.py images "$out/img" "$N"
ls "$out/img" | head -n "$B" | while read -r f; do cp "$out/img/$f" "$out/few/"; done
l2=$BUILD/bin/l2-fid
"$l2" --random-weights "$out/w.safetensors" --seed 1
secs() { # secs CMD... : "WALL CPU" seconds of one run (CPU = user + sys)
	local TIMEFORMAT='%R %U %S' t
	t=$({ time "$@" > /dev/null; } 2>&1 | tail -n 1)
	awk '{ printf "%s %.3f\n", $1, $2 + $3 }' <<<"$t"
}
read -r tb cb < <(secs "$l2" -m "$out/w.safetensors" --threads $TH --features "$out/few.l2f" "$out/few")
read -r tn cn < <(secs "$l2" -m "$out/w.safetensors" --threads $TH --features "$out/l2.l2f" "$out/img")
read -r _ nw _ nc _ ng _ < <("$BUILD/bench/bench_fid" $TH 4 "$R")
"$BUILD/bin/l2-cat" -f npy -o "$out/l2.npy" "$out/l2.l2f"
read -r _ theirs _ err < <(/usr/bin/python3 bench/bench_fid.py torch "$out/img" "$NT" $TH "$out/l2.npy")
gflop=11.345 # per image, 2048-d (l2_inception_flops; printed by test_inception)
/usr/bin/python3 bench/bench_fid.py stats "$out" "$DIM"
read -r _ tpy _ fpy < <(/usr/bin/python3 bench/bench_fid.py frechet "$out/a.npz" "$out/b.npz")
t0=$(date +%s.%N)
fl2=$("$l2" --quiet "$out/a.npz" "$out/b.npz" | head -1 | cut -d' ' -f2)
t1=$(date +%s.%N)
tl2=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
echo "## FID ($TH threads; Inception-v3 random weights, $N/$NT images 320x256 PNG+JPEG; distance ${DIM}-d)"
echo
echo "| what | l2 | PyTorch / scipy | l2 speed-up |"
echo "|---|---|---|---|"
awk -v n="$N" -v b="$B" -v tn="$tn" -v tb="$tb" -v cn="$cn" -v cb="$cb" -v nw="$nw" -v nc="$nc" -v ng="$ng" \
	-v t="$theirs" -v g="$gflop" -v p="$peak" -v p1="$peak1" 'BEGIN {
	e = n / tn; s = (n - b) / (tn - tb); sc = (n - b) / (cn - cb)
	printf "| Inception features, images/s, end to end (%d images, weights loading included) | %.2f | %.2f | %.1fx |\n", n, e, t, e / t
	printf "| same, steady state ((%d - %d) / (t_%d - t_%d): weights loading taken out) | %.2f | | %.1fx |\n", n, b, n, b, s, s / t
	printf "| network alone (bench/bench_fid.c, %d threads x batch 4, images in memory) | %.2f | | %.1fx |\n", 2, nw, nw / t
	printf "| share of SGEMM rate (%.0f GFLOP/s on 2 threads, %.2f GFLOP/image): end to end / steady / network | %.0f%% / %.0f%% / %.0f%% | %.0f%% | |\n", p, g, 100 * e * g / p, 100 * s * g / p, 100 * nw * g / p, 100 * t * g / p
	printf "| GFLOP per CPU-second (1-thread SGEMM: %.0f): steady state / network | %.0f (%.0f%%) / %.0f (%.0f%%) | | |\n", p1, sc * g, 100 * sc * g / p1, ng, 100 * ng / p1 }'
awk -v a="$tl2" -v b="$tpy" -v d="$DIM" 'BEGIN {
	printf "| Frechet distance %d-d, seconds (l2: whole command incl. reading .npz) | %.3f | %.3f | %.1fx |\n", d, a, b, b / a }'
echo
echo "features: max relative error l2 vs PyTorch $err; FID l2 $fl2, scipy $fpy"
echo "OpenBLAS core: ${OPENBLAS_CORETYPE:-autodetected}"
