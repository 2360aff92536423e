#!/usr/bin/env bash
# bench_clip.sh — CLIP ViT-B/32 (random weights, full size, f16 file) on 2
# threads: l2-encode-images / l2-encode-text vs PyTorch running the same
# architecture and weights (bench/clip_torch.py, tests/ref/make_clip.py),
# and the OpenBLAS SGEMM rate measured in the same run.  Image rates are
# end to end from PNG/JPEG files (decode, CLIP preprocessing, model); for l2
# the weight loading is taken out by timing N and B images and using the
# difference (l2 runs with --batch B: B images per thread per forward pass,
# each thread decoding and encoding its own batches).  Texts are ~15-token captions; PyTorch runs them at 77 tokens as
# OpenAI's encode_text does.  BENCH_QUICK=1: a tiny ViT, few images.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
N=${BENCH_N:-40}    # images through l2 (B of them for the load-time baseline)
B=${BENCH_B:-8}
NT=${BENCH_NT:-16}  # images through PyTorch
NX=${BENCH_NX:-512} # texts
TH=2
model=b32
if [ "${BENCH_QUICK:-0}" = 1 ]; then N=24 B=4 NT=4 NX=128 model=tiny; fi
out=bench/out/clip
mkdir -p "$out/img"
rm -f "$out"/img/*
vocab=${L2_CLIP_VOCAB:-$PWD/lib/text/vocab/bpe_simple_vocab_16e6.txt.gz}   # shipped with l2
[ -r "$vocab" ] || { echo "bench_clip: $vocab: no CLIP vocabulary" >&2; exit 1; }
cc -O2 bench/sgemm_peak.c -o "$out/sgemm_peak" $(pkg-config --cflags --libs openblas 2>/dev/null || echo -lopenblas)
peak=$("$out/sgemm_peak" 1024 $TH | awk '{print $2}')
w=$out/$model.safetensors
[ -s "$w" ] || /usr/bin/python3 bench/clip_torch.py make "$w" $([ $model = tiny ] && echo tiny)
/usr/bin/python3 bench/synth_data.py images "$out/img" "$N"
mkdir -p "$out/few" && rm -f "$out"/few/* && ls "$out/img" | head -n "$B" | while read -r f; do cp "$out/img/$f" "$out/few/"; done
l2=$BUILD/bin
now() { date +%s.%N; }
# best of REPS (the machine may be shared)
REPS=${BENCH_REPS:-2}
best() { local b=1e9 t0 t1; for _ in $(seq "$REPS"); do t0=$(now); "$@" > /dev/null; t1=$(now)
	b=$(awk -v b="$b" -v d="$(awk -v a="$t0" -v c="$t1" 'BEGIN { print c - a }')" 'BEGIN { print (d < b ? d : b) }'); done; echo "$b"; }
tb=$(best "$l2/l2-encode-images" -m "$w" --threads $TH -b "$B" "$out/few")
tn=$(best "$l2/l2-encode-images" -m "$w" --threads $TH -b "$B" "$out/img")
"$l2/l2-encode-images" -m "$w" --threads $TH -b "$B" "$out/img" > "$out/img.l2f"
ours=$(awk -v n="$N" -v b="$B" -v x="$tb" -v y="$tn" 'BEGIN { printf "%.3f", (n - b) / (y - x) }')
"$l2/l2-cat" -f npy -o "$out/img.npy" "$out/img.l2f"
read -r _ theirs _ err < <(/usr/bin/python3 bench/clip_torch.py images "$w" "$out/img" "$NT" $TH "$out/img.npy")
# captions of ~15 tokens
/usr/bin/python3 bench/synth_data.py captions "$out/captions.txt" "$NX"
"$l2/l2-encode-text" --tokens --vocab "$vocab" "$out/captions.txt" > "$out/ids.txt"
avg=$(awk '{ s += NF } END { printf "%.1f", s / NR }' "$out/ids.txt")
head -n 16 "$out/captions.txt" > "$out/cap16.txt"
# loading alone (no text), then all texts
REPS=3
tl=$(best "$l2/l2-encode-text" -m "$w" --vocab "$vocab" --threads $TH /dev/null)
ta=$(best "$l2/l2-encode-text" -m "$w" --vocab "$vocab" --threads $TH "$out/captions.txt")
tours=$(awk -v n="$NX" -v a="$ta" -v l="$tl" 'BEGIN { printf "%.2f", n / (a - l) }')
read -r _ ttheirs < <(/usr/bin/python3 bench/clip_torch.py texts "$w" "$out/ids.txt" "$NX" $TH)
# GFLOP per image: 2 x (50 tokens x layers x 12 W^2 + 49 patches x 3 P^2 W + W E)
gflop=$([ $model = tiny ] && awk 'BEGIN { W = 128; print 2 * (50 * 2 * 12 * W * W + 49 * 3072 * W + W * 64) / 1e9 }' \
	|| awk 'BEGIN { W = 768; print 2 * (50 * 12 * 12 * W * W + 49 * 3072 * W + W * 512) / 1e9 }')
echo "## CLIP ($model, random weights, $TH threads; $N/$NT images 320x256 PNG+JPEG; $NX captions of $avg tokens)"
echo
echo "(l2 images/s: N minus B images, best of ${BENCH_REPS:-2} runs each; texts/s: all captions minus loading alone, best of 3; PyTorch: encode_text at 77 tokens, batches of 64)"
echo
echo "| what | l2 | PyTorch | l2 speed-up |"
echo "|---|---|---|---|"
awk -v o="$ours" -v t="$theirs" -v g="$gflop" -v p="$peak" 'BEGIN {
	printf "| images/s (end to end from files) | %.2f | %.2f | %.1fx |\n", o, t, o / t
	printf "| share of SGEMM peak (%.1f GFLOP/s, %.2f GFLOP/image) | %.0f%% | %.0f%% | |\n", p, g, 100 * o * g / p, 100 * t * g / p }'
awk -v o="$tours" -v t="$ttheirs" 'BEGIN { printf "| caption texts/s | %.1f | %.1f | %.1fx |\n", o, t, o / t }'
echo
echo "image features: max abs error l2 vs PyTorch (float32, normalised) $err"
