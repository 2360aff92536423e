#!/usr/bin/env bash
# bench_gan.sh — training images/s of l2-train-gan against the same
# architecture, losses and optimiser in PyTorch (bench/bench_gan.py, float32,
# CPU, same thread count), at 32x32 and 64x64 for a fixed small
# configuration (channel base 512, max 32, z/w 64, condition MLP 64, mapping
# 2, condition 128, batch 8, R1 every 16; L_ConG off on both sides: it needs
# CLIP weights).  Our number covers the whole loop including the one tick
# (grid, checkpoint) at the end; PyTorch's skips its first two steps.
#
#   BUILD=build bench/bench_gan.sh         (make bench)
#   BENCH_QUICK=1 bench/bench_gan.sh       a smoke run (fewer steps, 32x32 only)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
TH=${BENCH_THREADS:-2}
STEPS=${GAN_STEPS:-20} RESS=${GAN_RESS:-"32 64"}
if [ "${BENCH_QUICK:-0}" = 1 ]; then STEPS=${GAN_STEPS:-5}; RESS=${GAN_RESS:-32}; fi
out=bench/out/gan
rm -rf "$out" && mkdir -p "$out"
export PATH="$PWD/$BUILD/bin:$PATH"
source tests/gan_fixture.bash
make_gan_fixture "$out/fx" 128 > /dev/null
SIZE="--channel-base 512 --channel-max 32 --z-dim 64 --w-dim 64 --cond-hidden 64 --map-layers 2 --batch 8"
echo "| resolution | l2-train-gan img/s | PyTorch img/s | ratio | l2 GFLOP/s |"
echo "|---|---|---|---|---|"
for R in $RESS; do
	line=$(l2-train-gan -d "$out/fx/ds.lmdb" -o "$out/run$R" --resolution "$R" $SIZE --lambda-con 0 --steps "$STEPS" \
		--tick "$STEPS" --grid 1x1 --threads "$TH" 2>&1 | grep '^l2-train-gan: done:')
	ours=$(echo "$line" | sed -n 's/.*s, \([0-9.]*\) img\/s.*/\1/p')
	gf=$(echo "$line" | sed -n 's/.*img\/s, \([0-9.]*\) GFLOP\/s.*/\1/p')
	torch=NA ratio=NA
	if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
		torch=$(/usr/bin/python3 bench/bench_gan.py --res "$R" --cbase 512 --cmax 32 --zdim 64 --wdim 64 --chid 64 \
			--cdim 128 --maps 2 --batch 8 --steps "$STEPS" --threads "$TH" | awk '{print $2}')
		ratio=$(awk -v a="$ours" -v b="$torch" 'BEGIN { printf "%.2f", a / b }')
	fi
	echo "| ${R}x${R} | $ours | $torch | ${ratio}x | $gf |"
done
