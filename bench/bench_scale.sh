#!/usr/bin/env bash
# bench_scale.sh — a rehearsal of a 100M-image run on this machine: synthetic CLIP-like
# features (bench/pseudo_synth.c, the pseudo benchmark's modality-gap generator) for 1M
# captions and 100k images go through pipelines/sharded.mk with 8 shards (make -j2, one
# thread per shard); the CLIP encoders themselves run sharded on a small real-size sample
# (random ViT-B/32 weights).  Every stage is timed (wall and CPU seconds, children
# included); from those rates it prints DISTRIBUTED.md §2's table for 100M images and 100M
# captions: time on 1, 8 and 100 machines like this one, storage, and the bottleneck.
# Also checks that exact retrieval time grows with the rows (100k vs 1M) and IVF time with
# nprobe/NLIST, and measures IVF recall@16 on cross-modal queries.
#
#   nice -n 10 bench/bench_scale.sh > scale.md 2> scale.log     ~30 min on 2 cores, ~9 GB in bench/out/scale
#   BENCH_QUICK=1 bench/bench_scale.sh                          a smoke run (~1 min)
#
# Not part of `make bench` (bench/run.sh skips it unless BENCH_SCALE=1) nor of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BIN=$PWD/$BUILD/bin
NI=${SCALE_IMAGES:-100000} NC=${SCALE_CAPTIONS:-1000000} SHARDS=${SCALE_SHARDS:-8}
NLIST=${SCALE_NLIST:-1024} NPROBE=${SCALE_NPROBE:-32} NPROBE_LO=8 Q=${SCALE_QUERIES:-2048}
ENC_IMAGES=${SCALE_ENC_IMAGES:-32} ENC_CAPTIONS=${SCALE_ENC_CAPTIONS:-512}
JOBS=${SCALE_JOBS:-2}
D=512 K=16 CONCEPTS=2000 MODEL=b32
if [ "${BENCH_QUICK:-0}" = 1 ]; then
	NI=8192 NC=65536 NLIST=64 NPROBE=8 NPROBE_LO=2 Q=512 ENC_IMAGES=8 ENC_CAPTIONS=64 MODEL=tiny
fi
TARGET=100000000 # images and captions of the plan
out=bench/out/scale
mkdir -p "$out"

make -s --no-print-directory BUILD="$BUILD" \
	--eval '$(BUILD)/bench/pseudo_synth: bench/pseudo_synth.c $(BUILD)/libl2.a ; @mkdir -p $(@D) && $(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) $< -o $@ $(BUILD)/libl2.a $(LDLIBS)' \
	"$BUILD/bench/pseudo_synth" 2>&1 | grep -v '^[✓✗]' >&2 || true
SYN=$BUILD/bench/pseudo_synth

declare -A WALL CPU
# timed NAME CMD... : run CMD, record wall and CPU seconds (user + sys, children included)
timed() {
	local name=$1 t0 c0 c1
	shift
	t0=$(date +%s.%N)
	c0=$(awk '{ print $14 + $15 + $16 + $17 }' /proc/$$/stat)
	"$@"
	# children's CPU is added to ours when they are waited for
	c1=$(awk '{ print $14 + $15 + $16 + $17 }' /proc/$$/stat)
	WALL[$name]=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
	CPU[$name]=$(awk -v a="$c0" -v b="$c1" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", (b - a) / hz }')
	echo "bench_scale: $name: ${WALL[$name]} s wall, ${CPU[$name]} s CPU" >&2
}
bytes() { du -sb "$@" | awk '{ s += $1 } END { print s }'; }

# ---- 0. inputs ------------------------------------------------------------------------------
echo "bench_scale: $NC captions, $NI images (D $D), $SHARDS shards, make -j$JOBS; $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)" >&2
if [ ! -s "$out/txt.l2f" ] || [ "$(cat "$out/.made" 2>/dev/null)" != "$NI $NC $CONCEPTS" ]; then
	timed synth "$SYN" streams "$NI" "$NC" $D $CONCEPTS 1 "$out/img.l2f" "$out/txt.l2f"
	echo "$NI $NC $CONCEPTS" > "$out/.made"
fi
"$SYN" streams "$Q" 0 $D $CONCEPTS 1 "$out/q.l2f" /dev/null # the first Q images again: the query sample

# ---- 1. the encoders on a real-size sample, sharded --------------------------------------------
w=bench/out/clip/$MODEL.safetensors
mkdir -p bench/out/clip "$out/enc"
[ -s "$w" ] || /usr/bin/python3 bench/clip_torch.py make "$w" $([ $MODEL = tiny ] && echo tiny)
/usr/bin/python3 - "$out/enc/img" "$ENC_IMAGES" "$out/enc/captions.txt" "$ENC_CAPTIONS" <<'PY'
import os, random, sys
import numpy as np
from PIL import Image
d, n, cap, m = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
os.makedirs(d, exist_ok=True)
rng = np.random.default_rng(0)
yy, xx = np.mgrid[0:256, 0:320]
for i in range(n):
    base = np.stack([(xx * (c + 1) + yy * (3 - c) + 40 * i) % 256 for c in range(3)], -1)
    im = Image.fromarray(np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8))
    im.save(os.path.join(d, "img%04d.jpg" % i), quality=90)
r = random.Random(0)
words = "a the red small happy old shiny wooden blue smiling tiny green dog cat house tree car on in with".split()
open(cap, "w").write("".join(" ".join(r.choice(words) for _ in range(r.randrange(4, 14))) + "\n" for _ in range(m)))
PY
enc_shard() { # enc_shard images|text I : one shard of the sample, one thread
	if [ "$1" = images ]; then
		"$BIN/l2-encode-images" --quiet -m "$w" --threads 1 --shard "$2/$SHARDS:4" -o "$out/enc/img.$2.l2f" "$out/enc/img"
	else
		"$BIN/l2-encode-text" --quiet -m "$w" --threads 1 --shard "$2/$SHARDS:64" -o "$out/enc/txt.$2.l2f" "$out/enc/captions.txt"
	fi
}
export -f enc_shard
export BIN w out SHARDS
mkdir -p "$out/enc/none"
timed load-img "$BIN/l2-encode-images" --quiet -m "$w" --threads 1 -o "$out/enc/empty-img.l2f" "$out/enc/none" 2>/dev/null
timed load-txt "$BIN/l2-encode-text" --quiet -m "$w" --threads 1 -o "$out/enc/empty.l2f" /dev/null
timed enc-img bash -c "seq 0 $((SHARDS - 1)) | xargs -P $JOBS -I{} bash -c 'enc_shard images {}'"
timed enc-txt bash -c "seq 0 $((SHARDS - 1)) | xargs -P $JOBS -I{} bash -c 'enc_shard text {}'"
"$BIN/l2-cat" --quiet --unshard "$SHARDS:4" $(seq -f "$out/enc/img.%g.l2f" 0 $((SHARDS - 1))) |
	cmp - <("$BIN/l2-encode-images" --quiet -m "$w" --threads 1 --shard 0/1:4 "$out/enc/img") ||
	echo "bench_scale: WARNING: merged image shards differ from the plain run" >&2

# ---- 2. the feature pipeline, stage by stage (pipelines/sharded.mk) ---------------------------------
mk=(make --no-print-directory -s -j"$JOBS" -f pipelines/sharded.mk BIN="$BIN/" OUT="$out/run" SHARDS="$SHARDS"
	THREADS=1 K=$K IMAGE_FEATURES="$out/img.l2f" TEXT_FEATURES="$out/txt.l2f"
	INDEX_FLAGS="--f16 --ivf $NLIST" RETRIEVE_FLAGS="--nprobe $NPROBE")
rm -rf "$out/run"
S=$out/run/shards
timed cut-txt "${mk[@]}" $(seq -f "$S/captions.%g.l2f" 0 $((SHARDS - 1)))
timed merge-txt "${mk[@]}" "$out/run/captions.l2f"
timed index "${mk[@]}" THREADS=2 "$out/run/captions.idx/.built"
timed cut-img "${mk[@]}" $(seq -f "$S/images.%g.l2f" 0 $((SHARDS - 1)))
timed pseudo "${mk[@]}" $(seq -f "$S/pseudo-optimize.%g.l2f" 0 $((SHARDS - 1)))
timed merge-pseudo "${mk[@]}" "$out/run/images.l2f" "$out/run/pseudo-optimize.l2f"
cmp "$out/run/images.l2f" "$out/img.l2f" || echo "bench_scale: WARNING: merged images differ from the input" >&2
# the neighbours the pseudo stage pipes through (never stored there), for the query sample,
# and the optimisation alone on them
"$BIN/l2-retrieve" --quiet --threads 2 --nprobe "$NPROBE" -k $K -i "$out/run/captions.idx" -o "$out/nb.l2f" "$out/q.l2f"
nb_bytes=$(stat -c %s "$out/nb.l2f")
timed optimize "$BIN/l2-optimize-pseudo" --quiet --threads 2 -o /dev/null "$out/nb.l2f"

# ---- 3. retrieval cost laws and recall on the query sample ---------------------------------------
"$BIN/l2-cat" --quiet --shard 0/$((NC / NI)):"$NI" "$out/txt.l2f" > "$out/txt-small.l2f" # the first NI captions
rm -rf "$out/small.idx" && "$BIN/l2-build-index" --quiet --f16 -o "$out/small.idx" "$out/txt-small.l2f"
timed exact-small "$BIN/l2-retrieve" --quiet --threads 2 -k $K -i "$out/small.idx" -o /dev/null "$out/q.l2f"
timed exact-large "$BIN/l2-retrieve" --quiet --threads 2 -k $K -i "$out/run/captions.idx" -o /dev/null "$out/q.l2f"
timed ivf-lo "$BIN/l2-retrieve" --quiet --threads 2 -k $K --nprobe $NPROBE_LO -i "$out/run/captions.idx" -o /dev/null "$out/q.l2f"
timed ivf-hi "$BIN/l2-retrieve" --threads 2 -k $K --nprobe $NPROBE -i "$out/run/captions.idx" -o /dev/null "$out/q.l2f"
recall_of() { "$BIN/l2-retrieve" --threads 2 -k $K --nprobe "$1" --recall -i "$out/run/captions.idx" -o /dev/null "$out/q.l2f" 2>&1 |
	sed -n 's/.*against exact search: \([0-9.]*\).*/\1/p'; }
recall=$(recall_of $NPROBE) recall_lo=$(recall_of $NPROBE_LO)

# ---- 4. storage ------------------------------------------------------------------------------------
img_b=$(stat -c %s "$out/img.l2f") txt_b=$(stat -c %s "$out/txt.l2f") idx_b=$(bytes "$out/run/captions.idx")
ps_b=$(stat -c %s "$out/run/pseudo-optimize.l2f") enc_img_b=$(bytes "$out/enc/img")

# ---- 5. the table --------------------------------------------------------------------------------
for s in load-img load-txt enc-img enc-txt cut-txt merge-txt index cut-img pseudo merge-pseudo optimize exact-small exact-large ivf-lo ivf-hi; do
	printf '%s %s %s\n' "$s" "${WALL[$s]}" "${CPU[$s]}"
done > "$out/times.txt"
awk -v ni="$NI" -v nc="$NC" -v q="$Q" -v T="$TARGET" -v sh="$SHARDS" -v cores="$(nproc)" -v jobs="$JOBS" \
	-v nlist="$NLIST" -v np="$NPROBE" -v nplo="$NPROBE_LO" -v recall="${recall:-NA}" -v recall_lo="${recall_lo:-NA}" \
	-v ei="$ENC_IMAGES" -v ec="$ENC_CAPTIONS" -v img_b="$img_b" -v txt_b="$txt_b" -v idx_b="$idx_b" -v ps_b="$ps_b" \
	-v nb_b="$nb_bytes" -v enc_img_b="$enc_img_b" -v model="$MODEL" -v load="$(cut -d' ' -f1 /proc/loadavg)" '
{ W[$1] = $2; C[$1] = $3 }
function days(s) { return s >= 86400 * 2 ? sprintf("%.1f d", s / 86400) : s >= 7200 ? sprintf("%.1f h", s / 3600) : s >= 120 ? sprintf("%.0f min", s / 60) : sprintf("%.0f s", s) }
function size(b) { return b >= 1e12 ? sprintf("%.1f TB", b / 1e12) : b >= 1e9 ? sprintf("%.0f GB", b / 1e9) : sprintf("%.0f MB", b / 1e6) }
function row(name, work, cpu_s, m, note) {   # cpu_s: CPU seconds for the whole 100M job; m: machines it spreads over
	t1 = cpu_s / cores; t8 = cpu_s / cores / (m >= 8 ? 8 : m); t100 = cpu_s / cores / (m >= 100 ? 100 : m)
	printf "| %s | %s | %s | %s | %s | %s |\n", name, work, days(t1), days(t8), days(t100), note
	if (t100 > worst) { worst = t100; bottleneck = name }
	if (name !~ /exact/ && t100 > worst2) { worst2 = t100; bottleneck2 = name }
}
END {
	# CPU seconds per item, measured; encoders net of loading the weights once per shard
	ci = (C["enc-img"] - sh * C["load-img"]) / ei; if (ci <= 0) ci = C["enc-img"] / ei
	ct = (C["enc-txt"] - sh * C["load-txt"]) / ec; if (ct <= 0) ct = C["enc-txt"] / ec
	cut = (C["cut-txt"] / sh) / nc             # one reader of the whole stream, per record
	idx = C["index"] / nc                      # f16 + IVF, per row (one writer)
	ps = C["pseudo"] / ni                      # IVF retrieve + optimise, per image, at nc rows
	opt = C["optimize"] / q                    # the optimisation alone
	ex_s = C["exact-small"] / q; ex_l = C["exact-large"] / q
	iv_lo = C["ivf-lo"] / q; iv_hi = C["ivf-hi"] / q
	rows_lo = nc * nplo / nlist; rows_hi = nc * np / nlist
	printf "### Measured here: %d images, %d captions, %d shards, make -j%d (%s, %d cores, load %s at the end)\n\n", ni, nc, sh, jobs, model, cores, load
	printf "| stage | wall s | CPU s | rate (CPU) |\n|---|---:|---:|---|\n"
	printf "| encode %d images, ViT-B/32 (%d shards) | %s | %s | %.3f CPU-s/image (+%.1f s weights per shard) |\n", ei, sh, W["enc-img"], C["enc-img"], ci, C["load-img"]
	printf "| encode %d captions (%d shards) | %s | %s | %.4f CPU-s/caption (+%.1f s per shard) |\n", ec, sh, W["enc-txt"], C["enc-txt"], ct, C["load-txt"]
	printf "| cut %d caption features into %d shards (`l2-cat --shard`) | %s | %s | %.2f µs/record/shard |\n", nc, sh, W["cut-txt"], C["cut-txt"], cut * 1e6
	printf "| merge them (`l2-cat --unshard`) | %s | %s | |\n", W["merge-txt"], C["merge-txt"]
	printf "| index: f16, IVF %d lists (one writer, 2 threads) | %s | %s | %.1f CPU-s per 1M rows |\n", nlist, W["index"], C["index"], idx * 1e6
	printf "| cut %d image features | %s | %s | |\n", ni, W["cut-img"], C["cut-img"]
	printf "| retrieve (IVF nprobe %d) \\| optimise, %d shards | %s | %s | %.0f images/CPU-s |\n", np, sh, W["pseudo"], C["pseudo"], 1 / ps
	printf "| merge images + pseudo features | %s | %s | |\n", W["merge-pseudo"], C["merge-pseudo"]
	printf "| optimise alone, %d images (2 threads) | %s | %s | %.0f images/CPU-s |\n", q, W["optimize"], C["optimize"], 1 / opt
	printf "| exact retrieval, %d queries × %d rows | %s | %s | %.0f queries/CPU-s |\n", q, ni, W["exact-small"], C["exact-small"], 1 / ex_s
	printf "| exact retrieval, %d queries × %d rows | %s | %s | %.1f queries/CPU-s (%.1f× the time for %.0f× the rows) |\n", q, nc, W["exact-large"], C["exact-large"], 1 / ex_l, ex_l / ex_s, nc / ni
	printf "| IVF nprobe %d/%d (%.0f rows/query) | %s | %s | %.0f q/CPU-s, recall@16 %s |\n", nplo, nlist, rows_lo, W["ivf-lo"], C["ivf-lo"], 1 / iv_lo, recall_lo
	printf "| IVF nprobe %d/%d (%.0f rows/query) | %s | %s | %.0f q/CPU-s, recall@16 %s (%.1f× the time for %.0f× the probes) |\n\n", np, nlist, rows_hi, W["ivf-hi"], C["ivf-hi"], 1 / iv_hi, recall, iv_hi / iv_lo, np / nplo
	# ---- the plan: 100M images, 100M captions, machines like this one (cores each), ideal scaling
	printf "### 100M images + 100M captions, from these rates (machines of %d cores; map stages scale with machines)\n\n", cores
	printf "| stage | work | 1 machine | 8 m. | 100 m. | notes |\n|---|---|---:|---:|---:|---|\n"
	row("encode images", "1e8 ViT-B/32 images", T * ci, 1e9, sprintf("%.3f CPU-s/image", ci))
	row("encode captions", "1e8 captions", T * ct, 1e9, sprintf("%.4f CPU-s/caption", ct))
	# k-means and filing grow with the lists: from NLIST to 10k lists, at most 10000/NLIST times the cost per row
	row("index f16 + IVF 10k", "1e8 rows, one writer", T * idx * (nlist < 10000 ? 10000 / nlist : 1), 1, \
		sprintf("%.1f CPU-s per 1M rows measured at %d lists, × %.1f for 10k lists (upper bound)", idx * 1e6, nlist, 10000 / nlist))
	# exact: per query cost proportional to rows (checked above): 1e8 rows = (1e8 / nc) x the 1M-row cost
	row("retrieve, exact", "1e8 × 1e8 × 512 × 2 = 1.0e19 FLOP", T * ex_l * (T / nc), 1e9, sprintf("%.1f q/CPU-s at %d rows, ∝ rows", 1 / ex_l, nc))
	# IVF at 1e8 rows, 10k lists, nprobe 32: 320k rows per query; scaled by rows scanned from the measured probes
	r100 = T * 32 / 10000
	row("retrieve, IVF nprobe 32/10k", sprintf("%.0fk rows/query", r100 / 1000), T * iv_hi * (r100 / rows_hi), 1e9, sprintf("from %.0f q/CPU-s at %.0f rows/query; index in RAM per node", 1 / iv_hi, rows_hi))
	row("pseudo features (optimise)", "per image, piped from retrieval", T * opt, 1e9, sprintf("%.0f images/CPU-s", 1 / opt))
	printf "\nBottleneck at 100 machines: **%s**; with IVF retrieval instead: **%s**. Training (one pass of GAN or CLIP) exchanges gradients every step and is not a map: see bench/RESULTS.md for its single-machine rates.\n\n", bottleneck, bottleneck2
	# storage per record, measured
	printf "Storage for 1e8 (measured bytes per record): images as JPEG %s (%.0f KB each, this sample), image features %s, caption features %s, index (f16 + IVF) %s, neighbours at k = 16 %s if stored (%.1f KB per image: piped instead), pseudo features %s.\n", \
		size(enc_img_b / ei * T), enc_img_b / ei / 1e3, size(img_b / ni * T), size(txt_b / nc * T), size(idx_b / nc * T), size(nb_b / q * T), nb_b / q / 1e3, size(ps_b / ni * T)
}' "$out/times.txt"
