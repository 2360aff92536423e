#!/usr/bin/env bash
# bench_cuda.sh — --device cuda (lib/core/device.h: cuBLAS SGEMM with the
# operands copied in and out on every call; everything else on the CPU)
# against the CPU path of the same build, and PyTorch on the same GPU, in one
# run.  Skipped (exit 0, one line) without a CUDA build or device.
#   SGEMM: l2's offload and OpenBLAS on TH threads (bench/bench_cuda.c) and
#     torch.mm on the CPU, on the GPU resident, on the GPU with copies
#     (bench/bench_cuda.py), float32 everywhere (TF32 off).
#   CLIP ViT-B/32 (random weights, bench/clip_torch.py): l2-encode-images
#     (N minus B images end to end from PNG/JPEG files, best of 2) and
#     l2-encode-text (all captions minus loading alone), CPU and cuda, and
#     PyTorch on the GPU; the largest feature difference cuda vs CPU.
#   l2-train-clip: steps/s of a small CLIP (--synthetic) CPU vs cuda.
# BENCH_TH (default: all cores), BENCH_N, BENCH_NX; BENCH_NO_BUILD=1 uses the
# bench_cuda already built (a machine without the -dev headers); BENCH_QUICK=1:
# a tiny ViT, few images, small products.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
TH=${BENCH_TH:-$(nproc)}
N=${BENCH_N:-136}
B=${BENCH_B:-8}
NX=${BENCH_NX:-2048}
R=${BENCH_R:-5}
PY=${PYTHON:-python3}   # with torch (Debian: /usr/bin/python3)
model=b32
tcfg="--synthetic 1024 --width 256 --layers 4 --resolution 64 --patch 8 --context 16 --embed-dim 128 --vocab-size 2000 --batch 128 --steps 8 --eval-every 0 --seed 1"
if [ "${BENCH_QUICK:-0}" = 1 ]; then
	N=24 NX=128 R=2 model=tiny
	tcfg="--synthetic 128 --width 64 --layers 1 --resolution 32 --patch 4 --context 8 --embed-dim 32 --vocab-size 530 --batch 32 --steps 4 --eval-every 0 --seed 1"
fi
export L2_TORCH_DEVICE=${L2_TORCH_DEVICE:-cuda}
out=bench/out/cuda
mkdir -p "$out/img"
if [ ! -e "$BUILD/bin/libl2cuda.so" ]; then echo "(bench_cuda: $BUILD has no libl2cuda.so: a build without CUDA)"; exit 0; fi
export L2_CUDA_LIB=${L2_CUDA_LIB:-$PWD/$BUILD/bin/libl2cuda.so}
[ "${BENCH_NO_BUILD:-0}" = 1 ] || make -s --no-print-directory BUILD="$BUILD" \
	--eval '$(BUILD)/bench/bench_cuda: bench/bench_cuda.c $(BUILD)/libl2.a ; @mkdir -p $(@D) && $(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) $< -o $@ $(BUILD)/libl2.a $(LDLIBS)' \
	"$BUILD/bench/bench_cuda" >&2
"$BUILD/bench/bench_cuda" "$TH" "$R" > "$out/sgemm_l2.txt" 2> "$out/sgemm_l2.err" || {
	echo "(bench_cuda: $(cat "$out/sgemm_l2.err"))"; exit 0; }
"$PY" bench/bench_cuda.py "$TH" "$R" > "$out/sgemm_torch.txt"
l2=$BUILD/bin
vocab=$PWD/lib/text/vocab/bpe_simple_vocab_16e6.txt.gz
now() { date +%s.%N; }
best() { local b=1e9 t0 t1; for _ in 1 2; do t0=$(now); "$@" > /dev/null; t1=$(now)
	b=$(awk -v b="$b" -v d="$(awk -v a="$t0" -v c="$t1" 'BEGIN { print c - a }')" 'BEGIN { print (d < b ? d : b) }'); done; echo "$b"; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.2f", n / (b - a) }'; }

# ViT-B/32 weights and images as bench_clip.sh makes them
w=$out/$model.safetensors
[ -s "$w" ] || "$PY" bench/clip_torch.py make "$w" $([ $model = tiny ] && echo tiny)
rm -f "$out"/img/*
"$PY" bench/synth_data.py images "$out/img" "$N"
mkdir -p "$out/few" && rm -f "$out"/few/* && ls "$out/img" | head -n "$B" | while read -r f; do cp "$out/img/$f" "$out/few/"; done
img_rows=()
for dev in cpu cuda; do
	for b in 16 64; do
		tb=$(best "$l2/l2-encode-images" --device $dev -m "$w" --threads "$TH" -b $b "$out/few")
		tn=$(best "$l2/l2-encode-images" --device $dev -m "$w" --threads "$TH" -b $b "$out/img")
		img_rows+=("$dev $b $(rate $((N - B)) "$tb" "$tn")")
	done
	"$l2/l2-encode-images" --device $dev -m "$w" --threads "$TH" "$out/img" > "$out/img_$dev.l2f"
	"$l2/l2-cat" -f npy -o "$out/img_$dev.npy" "$out/img_$dev.l2f"
done
read -r _ pt_img _ pt_err < <("$PY" bench/clip_torch.py images "$w" "$out/img" "$N" "$TH" "$out/img_cuda.npy")
img_diff=$("$PY" -c 'import sys, numpy as np; a, b = (np.load(f) for f in sys.argv[1:]); print("%.3g" % np.abs(a - b).max())' \
	"$out/img_cpu.npy" "$out/img_cuda.npy")

"$PY" bench/synth_data.py captions "$out/captions.txt" "$NX"
"$l2/l2-encode-text" --tokens --vocab "$vocab" "$out/captions.txt" > "$out/ids.txt"
txt_rows=()
for dev in cpu cuda; do
	tl=$(best "$l2/l2-encode-text" --device $dev -m "$w" --vocab "$vocab" --threads "$TH" /dev/null)
	ta=$(best "$l2/l2-encode-text" --device $dev -m "$w" --vocab "$vocab" --threads "$TH" "$out/captions.txt")
	txt_rows+=("$dev $(rate "$NX" "$tl" "$ta")")
	"$l2/l2-encode-text" --device $dev -m "$w" --vocab "$vocab" --threads "$TH" -o "$out/txt_$dev.l2f" "$out/captions.txt"
	"$l2/l2-cat" -f npy -o "$out/txt_$dev.npy" "$out/txt_$dev.l2f"
done
read -r _ pt_txt < <("$PY" bench/clip_torch.py texts "$w" "$out/ids.txt" "$NX" "$TH")
txt_diff=$("$PY" -c 'import sys, numpy as np; a, b = (np.load(f) for f in sys.argv[1:]); print("%.3g" % np.abs(a - b).max())' \
	"$out/txt_cpu.npy" "$out/txt_cuda.npy")

# a small CLIP trained for a few steps: the trainer's own timing line (steps after the first two)
train_rows=()
for dev in cpu cuda; do
	(cd "$out" && "$OLDPWD/$l2/l2-train-clip" $tcfg --device $dev --threads "$TH" -o "train_$dev.safetensors") 2> "$out/train_$dev.log"
	train_rows+=("$dev $(sed -n 's/.*timing: .* \([0-9.]*\) steps\/s, \([0-9.]*\) GFLOP\/s.*/\1 \2/p' "$out/train_$dev.log")")
done

echo "## CUDA ($(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1); $TH CPU threads: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'))"
echo
echo "SGEMM, float32 (TF32 off), GFLOP/s, median of $R after a warm-up; l2's offload copies A and B in and C out on every call:"
echo
echo "| m x n x k | OpenBLAS ($TH threads) | l2 offload | offload / OpenBLAS | torch CPU | torch GPU, operands there | torch GPU with copies | l2 offload / torch with copies | max rel. diff. offload vs OpenBLAS |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
paste -d' ' "$out/sgemm_l2.txt" "$out/sgemm_torch.txt" | awk '{
	printf "| %dx%dx%d | %.0f | %.0f | %.2fx | %.0f | %.0f | %.0f | %.2fx | %s |\n", $1, $2, $3, $4, $5, $5 / $4, $10, $11, $12, $5 / $12, $6 }'
echo
echo "CLIP $([ $model = tiny ] && echo "tiny ViT" || echo ViT-B/32) (random weights) end to end, $((N - B)) images 320x256 PNG+JPEG (N minus B, best of 2), $NX captions:"
echo
echo "| what | l2 CPU | l2 --device cuda | cuda / CPU | PyTorch on the GPU |"
echo "|---|---:|---:|---:|---:|"
for b in 16 64; do
	c=$(printf '%s\n' "${img_rows[@]}" | awk -v b=$b '$1 == "cpu" && $2 == b { print $3 }')
	g=$(printf '%s\n' "${img_rows[@]}" | awk -v b=$b '$1 == "cuda" && $2 == b { print $3 }')
	awk -v b=$b -v c="$c" -v g="$g" -v p="$pt_img" 'BEGIN { printf "| images/s, --batch %d | %.1f | %.1f | %.2fx | %.1f |\n", b, c, g, g / c, p }'
done
c=${txt_rows[0]#cpu } g=${txt_rows[1]#cuda }
awk -v c="$c" -v g="$g" -v p="$pt_txt" 'BEGIN { printf "| captions/s | %.0f | %.0f | %.2fx | %.0f |\n", c, g, g / c, p }'
read -r _ cs cg <<<"${train_rows[0]}"
read -r _ gs gg <<<"${train_rows[1]}"
awk -v cs="$cs" -v cg="$cg" -v gs="$gs" -v gg="$gg" 'BEGIN { printf "| l2-train-clip steps/s (below) | %.2f (%.0f GFLOP/s) | %.2f (%.0f GFLOP/s) | %.2fx | |\n", cs, cg, gs, gg, gs / cs }'
echo
echo "largest |cuda - CPU| of the unit-length features: images $img_diff, captions $txt_diff; PyTorch GPU vs l2 cuda images: $pt_err"
echo "l2-train-clip (--threads $TH either way): $tcfg"
