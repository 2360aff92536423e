#!/usr/bin/env bash
# bench_gan.sh — training images/s of l2-train-gan against the same
# architecture, losses and optimiser in PyTorch (bench/bench_gan.py, float32,
# CPU, same thread count, modulated convs in StyleGAN2's training form), at
# 32x32 and 64x64 for a fixed small configuration (channel base 512, max 32,
# z/w 64, condition MLP 64, mapping 2, condition 128, batch 8, R1 every 16;
# L_ConG off on both sides: it needs CLIP weights).
#
# Both sides are timed over the same steps 2 .. 2+STEPS-1 (one R1 step, 16,
# among them), in wall seconds and in CPU seconds (user + sys, all threads):
# ours as the difference of a run of 2+STEPS steps and one of 2 steps (so
# start-up, the first steps' page faults and the end-of-run tick cancel),
# PyTorch's from inside the script after two untimed steps.  On a shared
# machine the CPU-second columns are the meaningful ones.
#
#   BUILD=build bench/bench_gan.sh         (make bench)
#   BENCH_QUICK=1 bench/bench_gan.sh       a smoke run (fewer steps, 32x32 only)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
TH=${BENCH_THREADS:-2}
STEPS=${GAN_STEPS:-20} RESS=${GAN_RESS:-"32 64"}
if [ "${BENCH_QUICK:-0}" = 1 ]; then STEPS=${GAN_STEPS:-6}; RESS=${GAN_RESS:-32}; fi
out=bench/out/gan
rm -rf "$out" && mkdir -p "$out"
export PATH="$PWD/$BUILD/bin:$PATH"
source tests/gan_fixture.bash
make_gan_fixture "$out/fx" 128 > /dev/null
B=8
SIZE="--channel-base 512 --channel-max 32 --z-dim 64 --w-dim 64 --cond-hidden 64 --map-layers 2 --batch $B"
# ours R STEPS -> "wall_s cpu_s GFLOP_per_image"
ours() {
	rm -rf "$out/run"
	/usr/bin/time -f "%e %U %S" -o "$out/time" l2-train-gan -d "$out/fx/ds.lmdb" -o "$out/run" --resolution "$1" $SIZE \
		--lambda-con 0 --steps "$2" --tick "$2" --grid 1x1 --threads "$TH" 2> "$out/log" || { cat "$out/log" >&2; exit 1; }
	local fpi
	fpi=$(sed -n 's/.* \([0-9.]*\) img\/s, \([0-9.]*\) GFLOP\/s.*/\1 \2/p' "$out/log" | awk '{ print $2 / $1 }')
	awk -v f="$fpi" '{ print $1, $2 + $3, f }' "$out/time"
}
echo "| resolution | l2 img/s | PyTorch img/s | ratio | l2 img/CPU-s | PyTorch img/CPU-s | ratio | l2 GFLOP/CPU-s |"
echo "|---|---|---|---|---|---|---|---|"
for R in $RESS; do
	read -r w0 c0 _ < <(ours "$R" 2)
	read -r w1 c1 fpi < <(ours "$R" $((2 + STEPS)))
	ow=$(awk -v n=$((STEPS * B)) -v a="$w0" -v b="$w1" 'BEGIN { printf "%.1f", n / (b - a) }')
	oc=$(awk -v n=$((STEPS * B)) -v a="$c0" -v b="$c1" 'BEGIN { printf "%.1f", n / (b - a) }')
	gf=$(awk -v r="$oc" -v f="$fpi" 'BEGIN { printf "%.2f", r * f }')
	tw=NA tc=NA rw=NA rc=NA
	if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
		read -r _ tw _ tc < <(/usr/bin/python3 bench/bench_gan.py --res "$R" --cbase 512 --cmax 32 --zdim 64 --wdim 64 \
			--chid 64 --cdim 128 --maps 2 --batch $B --steps "$STEPS" --threads "$TH")
		rw=$(awk -v a="$ow" -v b="$tw" 'BEGIN { printf "%.2f", a / b }')
		rc=$(awk -v a="$oc" -v b="$tc" 'BEGIN { printf "%.2f", a / b }')
	fi
	echo "| ${R}x${R} | $ow | $tw | ${rw}x | $oc | $tc | ${rc}x | $gf |"
done
