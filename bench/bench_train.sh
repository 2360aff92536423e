#!/usr/bin/env bash
# bench_train.sh — one training step of the small CLIP that make demo trains
# (32x32 images, patch 8, width 128, 2+2 layers, embed 128, batch 128),
# l2-train-clip against the same architecture, loss, optimiser and batch in
# PyTorch (bench/bench_train.py, float32, CPU), at the same thread count;
# steps/s, their ratio, and achieved GFLOP/s against the machine's SGEMM
# rate measured in the same run.
#
#   BUILD=build bench/bench_train.sh       (make bench)
#   BENCH_QUICK=1 bench/bench_train.sh     a smoke run (fewer steps, batch 32)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
TH=${BENCH_THREADS:-2}
STEPS=${TRAIN_STEPS:-20} B=${TRAIN_BATCH:-128} W=${TRAIN_WIDTH:-128} L=${TRAIN_LAYERS:-2}
if [ "${BENCH_QUICK:-0}" = 1 ]; then STEPS=${TRAIN_STEPS:-5}; B=${TRAIN_BATCH:-32}; fi
R=32 P=8 CTX=16 E=128 VS=600
out=bench/out/train
mkdir -p "$out"
make -s --no-print-directory BUILD="$BUILD" \
	--eval '$(BUILD)/bench/sgemm_peak: bench/sgemm_peak.c ; @mkdir -p $(@D) && $(CC) $(CPPFLAGS) -O2 -march=native $< -o $@ $(LDLIBS)' \
	"$BUILD/bench/sgemm_peak" 2>&1 | grep -v '^[✓✗]' >&2 || true

peak=$("$BUILD/bench/sgemm_peak" 1024 "$TH" | awk '{print $2}')
# ours: the timing line covers the steps after the first two (settled arena)
line=$("$BUILD/bin/l2-train-clip" --synthetic $((B * 4)) --resolution $R --patch $P --width $W --layers $L \
	--context $CTX --embed-dim $E --vocab-size $VS --batch "$B" --steps $((STEPS + 2)) --log-every 0 \
	--threads "$TH" -o "$out/bench.safetensors" 2>&1 | grep 'timing:')
ours=$(echo "$line" | sed -n 's/.*: \([0-9.]*\) steps\/s.*/\1/p')
gflops=$(echo "$line" | sed -n 's/.*steps\/s, \([0-9.]*\) GFLOP\/s.*/\1/p')
T=$(echo "$line" | sed -n 's/.*text length \([0-9]*\)).*/\1/p')
V=$(python3 -c "
import json, struct; f = open('$out/bench.safetensors', 'rb'); n = struct.unpack('<Q', f.read(8))[0]
print(json.loads(f.read(n))['token_embedding.weight']['shape'][0])")
torch=NA
if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
	torch=$(/usr/bin/python3 bench/bench_train.py --batch "$B" --res $R --patch $P --width "$W" --layers "$L" \
		--text-len "$T" --vocab "$V" --embed $E --steps "$STEPS" --threads "$TH" | awk '{print $2}')
fi
peak2=$("$BUILD/bench/sgemm_peak" 1024 "$TH" | awk '{print $2}')
peak=$(echo "if ($peak2 > $peak) $peak2 else $peak" | bc -l)
rm -f "$out"/bench.*

echo "## Training step: small CLIP (l2-train-clip vs PyTorch), $TH threads"
echo
echo "Image ${R}x${R} patch $P, width $W, $L+$L layers, heads $((W / 64 > 0 ? W / 64 : 1)), text length $T, vocab $V, embed $E, batch $B;"
echo "forward + backward + gradient clipping + AdamW; $STEPS timed steps after warm-up."
echo
echo "| | steps/s | images/s | GFLOP/s | % of SGEMM ($peak GFLOP/s) |"
echo "|---|---:|---:|---:|---:|"
awk -v o="$ours" -v t="$torch" -v g="$gflops" -v p="$peak" -v b="$B" 'BEGIN {
	printf "| l2-train-clip | %.3f | %.0f | %.1f | %.0f%% |\n", o, o * b, g, 100 * g / p
	if (t != "NA") {
		tg = g * t / o
		printf "| PyTorch | %.3f | %.0f | %.1f | %.0f%% |\n", t, t * b, tg, 100 * tg / p
		printf "| ratio (l2 / PyTorch) | **%.2fx** | | | |\n", o / t
	} else print "| PyTorch | not installed | | | |"
}'
