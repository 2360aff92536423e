#!/usr/bin/env bash
# bench_diffusion.sh — the diffusion denoiser against the same network in PyTorch
# (bench/bench_diffusion.py imports tests/ref/make_diffusion.py's nn.Module; float32, CPU,
# the same thread count), at 32x32 with a 512-d condition:
#   training   images/s of whole steps (loss, backward, Adam, renormalisation, two
#              power EMAs) at batch 32 (l2: lib/method/diffusion_train, shards of 8 over
#              the threads);
#   forward    network evaluations x images / s at batch 64 (a CFG pair of 32), no grad
#              (l2: the loaded model, lib/models/diffusion_model.c);
#   sampling   images/s end to end: DPM-Solver++(2M), 16 steps, classifier-free guidance
#              (conditional and null rows in one batch), 32 images (l2: lib/models/sampler);
# for each preset in PRESETS (default: small).  Medians of REPS repetitions after an
# untimed one, in wall seconds and in CPU seconds (user + sys, all threads): on a shared
# machine the CPU-second columns are the meaningful ones.  The last column is l2's
# GFLOP per CPU-second against the 1-thread SGEMM rate measured in the same run.
#
#   BUILD=build bench/bench_diffusion.sh        (make bench)
#   BENCH_QUICK=1 bench/bench_diffusion.sh      a smoke run (tiny preset, fewer repetitions)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
TH=${BENCH_THREADS:-2}
PRESETS=${DIFF_PRESETS:-small}
REPS=${DIFF_REPS:-7}
if [ "${BENCH_QUICK:-0}" = 1 ]; then PRESETS=${DIFF_PRESETS:-tiny}; REPS=${DIFF_REPS:-3}; fi
make -s --no-print-directory BUILD="$BUILD" \
	--eval '$(BUILD)/bench/bench_diffusion: bench/bench_diffusion.c $(BUILD)/libl2.a ; @mkdir -p $(@D) && $(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) $< -o $@ $(BUILD)/libl2.a $(LDLIBS)' \
	"$BUILD/bench/bench_diffusion" >&2
bin=$BUILD/bench/bench_diffusion
peak=$("$bin" peak 1024 | awk '{print $2}')
have_torch=0
/usr/bin/python3 -c 'import torch' 2>/dev/null && have_torch=1
echo "## diffusion denoiser ($TH threads, 32x32, condition 512; 1-thread SGEMM ${peak} GFLOP/s)"
echo
echo "| preset | what | l2 /s | PyTorch /s | ratio | l2 /CPU-s | PyTorch /CPU-s | ratio | l2 GFLOP/CPU-s | % of SGEMM |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for P in $PRESETS; do
	for mode in train forward sample; do
		case $mode in
		train) B=32 R=$REPS what="training img" ;;
		forward) B=64 R=$REPS what="forward NFE·img" ;;
		sample) B=32 R=$(( (REPS + 2) / 3 )) what="DPM++(2M)-16 + CFG img" ;;
		esac
		read -r _ ow oc gf < <("$bin" "$mode" "$P" "$B" "$R" "$TH")
		tw=NA tc=NA rw=NA rc=NA
		if [ $have_torch = 1 ]; then
			read -r _ tw tc < <(/usr/bin/python3 bench/bench_diffusion.py "$mode" --preset "$P" --batch "$B" \
				--reps "$R" --threads "$TH")
			rw=$(awk -v a="$ow" -v b="$tw" 'BEGIN { printf "%.2f", a / b }')
			rc=$(awk -v a="$oc" -v b="$tc" 'BEGIN { printf "%.2f", a / b }')
		fi
		g=$(awk -v r="$oc" -v f="$gf" 'BEGIN { printf "%.1f", r * f }')
		pc=$(awk -v g="$g" -v p="$peak" 'BEGIN { printf "%.0f", 100 * g / p }')
		echo "| $P | $what | $ow | $tw | ${rw}x | $oc | $tc | ${rc}x | $g | $pc |"
	done
done
