#!/usr/bin/env bash
# bench_vae.sh — the image autoencoders of latent diffusion on 2 threads:
# l2's KL-f8 (SD's VAE, 83.7M parameters) and TAESD (2.4M) encoders and
# decoders (lib/models/vae.c; bench/bench_vae.c) against the PyTorch
# float32 transcription they are tested on (tests/ref/make_vae.py;
# bench/bench_vae.py), same random weights, same inputs, in one run: images/s
# at 64x64 and 256x256 (median of the timed calls after a warm-up, batches
# already in memory), the share of the same-run 2-thread SGEMM rate
# (l2_vae_flops: direct convolutions and attention products; l2's KL-f8
# computes its 3x3 convolutions as Winograd F(2x2, 3x3) with 4/9 of their
# multiply-adds, so its share can pass 100%), the speed-up per
# CPU-second (user + sys; steadier than wall time on a shared machine), and
# the largest difference of the outputs relative to the largest output.
# BENCH_QUICK=1: 64x64 only, fewer repetitions.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
TH=2
R=${BENCH_R:-3}   # timed calls per side and configuration
SIZES=${BENCH_SIZES:-"64 256"}
if [ "${BENCH_QUICK:-0}" = 1 ]; then R=1 SIZES=64; fi
out=bench/out/vae
mkdir -p "$out"
make -s --no-print-directory BUILD="$BUILD" \
	--eval '$(BUILD)/bench/bench_vae: bench/bench_vae.c $(BUILD)/libl2.a ; @mkdir -p $(@D) && $(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) $< -o $@ $(BUILD)/libl2.a $(LDLIBS)' \
	--eval '$(BUILD)/bench/sgemm_peak: bench/sgemm_peak.c ; @mkdir -p $(@D) && $(CC) $(CPPFLAGS) -O2 -march=native $< -o $@ $(LDLIBS)' \
	"$BUILD/bench/bench_vae" "$BUILD/bench/sgemm_peak" >&2
[ -s "$out/kl.safetensors" ] && [ -s "$out/taesd.safetensors" ] || "$BUILD/bench/bench_vae" write "$out"
peak=$("$BUILD/bench/sgemm_peak" 1024 $TH | awk '{print $2}')
rows=()
for kind in kl taesd; do
	for size in $SIZES; do
		# 4 images per thread at 64x64, one at 256x256
		B=$((size <= 64 ? 4 * TH : TH))
		for half in encode decode; do
			pre=$out/${kind}_${half}_$size
			read -r _ l2 _ l2c _ g < <("$BUILD/bench/bench_vae" run "$out/$kind.safetensors" $half $size $B $R $TH "$pre")
			read -r _ pt _ ptc _ err < <(/usr/bin/python3 bench/bench_vae.py $kind $half $size $B $R $TH "$pre")
			rows+=("$kind $half $size $B $l2 $pt $g $err $l2c $ptc")
		done
	done
done
echo "## VAE ($TH threads; random weights; SGEMM rate $peak GFLOP/s on $TH threads, same run)"
echo
echo "| autoencoder | half | image | batch | l2 images/s | PyTorch images/s | l2 speed-up | GFLOP/image | l2 share of SGEMM | PyTorch share | speed-up per CPU-second | max rel. difference |"
echo "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for r in "${rows[@]}"; do
	awk -v p="$peak" '{ name = $1 == "kl" ? "KL-f8" : "TAESD"
		printf "| %s | %s | %dx%d | %d | %.3f | %.3f | %.2fx | %.1f | %.0f%% | %.0f%% | %.2fx | %s |\n",
			name, $2, $3, $3, $4, $5, $6, $5 / $6, $7, 100 * $5 * $7 / p, 100 * $6 * $7 / p, $9 / $10, $8 }' <<<"$r"
done
echo
echo "OpenBLAS core: ${OPENBLAS_CORETYPE:-autodetected}; each l2 image on one thread with one-thread OpenBLAS (bit-identical latents and images for any batch or thread count); l2's KL-f8 3x3 convolutions as Winograd F(2x2, 3x3)"
