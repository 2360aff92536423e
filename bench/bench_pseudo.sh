#!/usr/bin/env bash
# bench_pseudo.sh — l2-optimize-pseudo throughput at its default settings on
# a synthetic neighbors stream (D = 512, k = 16, modality-gap features made
# by bench/pseudo_synth.c), against the same algorithm in PyTorch (autograd +
# torch.optim.Adam, float32, CPU), with FLOPs per image and the share of the
# machine's SGEMM rate, measured in the same run.
#
#   BUILD=build bench/bench_pseudo.sh          100,000 images (make bench)
#   PSEUDO_N=20000 bench/bench_pseudo.sh       fewer
#   BENCH_QUICK=1 bench/bench_pseudo.sh        a smoke run
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
N=${PSEUDO_N:-100000}
[ "${BENCH_QUICK:-0}" = 1 ] && N=${PSEUDO_N:-2048}
TORCH_N=${PSEUDO_TORCH_N:-$((N < 2048 ? N : 2048))}
TH=${BENCH_THREADS:-$(nproc)}
D=512 K=16 B=256 STEPS=10 POOL=2048 CORPUS=20000 CONCEPTS=20
BIN=$BUILD/bin
out=bench/out/pseudo
mkdir -p "$out"

# helpers built with the project's flags and library
make -s --no-print-directory BUILD="$BUILD" \
	--eval '$(BUILD)/bench/pseudo_synth: bench/pseudo_synth.c $(BUILD)/libl2.a ; @mkdir -p $(@D) && $(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) $< -o $@ $(BUILD)/libl2.a $(LDLIBS)' \
	--eval '$(BUILD)/bench/sgemm_peak: bench/sgemm_peak.c ; @mkdir -p $(@D) && $(CC) $(CPPFLAGS) -O2 -march=native $< -o $@ $(LDLIBS)' \
	"$BUILD/bench/pseudo_synth" "$BUILD/bench/sgemm_peak" 2>&1 | grep -v '^[✓✗]' >&2 || true
SYN=$BUILD/bench/pseudo_synth

secs() { # secs CMD... : "WALL CPU" seconds of one run (CPU = user + sys), output discarded
	local TIMEFORMAT='%R %U %S' t
	t=$({ time "$@" > /dev/null; } 2>&1 | tail -n 1)
	awk '{ printf "%s %.3f\n", $1, $2 + $3 }' <<<"$t"
}

# the input stream: POOL real synthetic records (exact top-k among CORPUS
# captions), repeated with new keys to N records
nb=$out/neighbors.l2f
trap 'rm -f "$nb"' EXIT
$SYN neighbors $POOL $CORPUS $D $K $CONCEPTS 1 "$N" > "$nb"
cat "$nb" > /dev/null # page cache
size=$(stat -c %s "$nb")

peak=$("$BUILD/bench/sgemm_peak" 1024 "$TH" | awk '{print $2}')
shape=$($SYN sgemm $B $D)
t_opt=$(secs $BIN/l2-optimize-pseudo --threads "$TH" "$nb")
t_ret=$(secs $BIN/l2-optimize-pseudo --threads "$TH" --mode retrieve "$nb")
t_gau=$(secs $BIN/l2-optimize-pseudo --threads "$TH" --mode gaussian "$nb")
t_cat=$(secs $BIN/l2-cat "$nb")
torch=NA
if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
	torch=$(/usr/bin/python3 bench/pseudo_torch.py "$TORCH_N" $B $D $K $STEPS "$TH" | awk '{print $2}')
fi
peak2=$("$BUILD/bench/sgemm_peak" 1024 "$TH" | awk '{print $2}') # the load may change: take the better
peak=$(echo "if ($peak2 > $peak) $peak2 else $peak" | bc -l)

load=$(cut -d' ' -f1 /proc/loadavg)
awk -v n="$N" -v B=$B -v D=$D -v K=$K -v S=$STEPS -v to="$t_opt" -v tr="$t_ret" -v tg="$t_gau" -v tc="$t_cat" -v load="$load" \
	-v torch="$torch" -v tn="$TORCH_N" -v peak="$peak" -v shape="$shape" -v size="$size" -v th="$TH" 'BEGIN {
	# GEMM FLOPs per image: per Adam step S = U F^T and G = P F (2 B D each),
	# the final loss (2 B D), and the before/after accuracy GEMMs (2 x 2 B D)
	gemm = (4 * S + 2 + 4) * B * D
	other = S * (B * 6 + D * 20) + 8 * K * D
	split(to, o, " "); split(tr, r, " "); split(tg, g, " "); split(tc, c, " ")
	ips = n / o[1]
	printf "## l2-optimize-pseudo: %d images, D = %d, k = %d, batch %d, %d Adam steps, %d threads\n\n", n, D, K, B, S, th
	printf "Input stream %.0f MB from the page cache. FLOPs per image: %.2f M in GEMMs + %.2f M elementwise.\n", size / 1e6, gemm / 1e6, other / 1e6
	printf "SGEMM rate in this run: %.1f GFLOP/s (1024^3), %.1f GFLOP/s (the B x B x D pair of one step). Load average %s.\n", peak, shape, load
	printf "CPU-s: user + system seconds of the process (all threads); on a busy machine images per CPU-second is the steadier figure.\n\n"
	printf "| what | images/s (wall) | images per CPU-s | GFLOP/s (wall) | share of SGEMM peak |\n|---|---:|---:|---:|---:|\n"
	printf "| l2-optimize-pseudo (optimize, defaults) | %.0f | %.0f | %.1f | %.0f%% |\n", ips, n / o[2], ips * gemm / 1e9, 100 * ips * gemm / 1e9 / peak
	if (torch != "NA") printf "| PyTorch, same algorithm (%d images, no I/O) | %.0f | | %.1f | %.0f%% |\n", tn, torch, torch * gemm / 1e9, 100 * torch * gemm / 1e9 / peak
	if (torch != "NA") printf "| **ratio l2 / PyTorch** | **%.1fx** | | | |\n", ips / torch
	printf "| l2-optimize-pseudo --mode retrieve | %.0f | %.0f | | |\n", n / r[1], n / r[2]
	printf "| l2-optimize-pseudo --mode gaussian | %.0f | %.0f | | |\n", n / g[1], n / g[2]
	printf "| l2-cat (reading and writing the stream only) | %.0f | %.0f | | |\n", n / c[1], n / c[2]
	printf "\nOptimisation alone (optimize minus retrieve, wall): %.0f images/s, %.1f GFLOP/s in GEMMs = %.0f%% of the SGEMM peak.\n", n / (o[1] - r[1]), n / (o[1] - r[1]) * gemm / 1e9, 100 * n / (o[1] - r[1]) * gemm / 1e9 / peak
}'
