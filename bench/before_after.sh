#!/usr/bin/env bash
# before_after.sh OLD_BUILD NEW_BUILD [ROUNDS] — the same l2 workloads through two builds of l2
# (e.g. a worktree at an older commit and this one), interleaved old, new, old, new, … ROUNDS
# times (default 5), printing the median rate of each side and their ratio.  It answers "did a
# change of structure cost speed?" on a shared machine: both sides meet the same load, and
# PyTorch is not needed (make bench compares l2 with PyTorch).
#
#   CLIP ViT-B/32 (random weights, f16): images/s from 16 files, captions/s of 256 captions;
#   FID Inception (random weights): images/s of 16 files through l2-fid; retrieval: queries/s of
#   1000 queries against 50000 unit 512-d vectors, exact and IVF (nprobe 8); CLIP training:
#   steps/s of a small CLIP at batch 128 (6 steps); GAN training: images/s at 32x32, batch 8
#   (12 steps).  On 2 threads (BENCH_THREADS=N for others), end to end (each run loads its model
#   and writes its output), under nice -n ${NICE:-10}.  Rates per wall second and per CPU second
#   (user + system).  On a machine with more runnable threads than cores, measure with
#   BENCH_THREADS=1 and read the CPU-second rates: with 2 threads, OpenBLAS's threads spin while
#   their partner waits for a core, which inflates CPU time at random.
set -euo pipefail
OLD=$(cd "$1" && pwd) NEW=$(cd "$2" && pwd) ROUNDS=${3:-5}
cd "$(dirname "$0")/.."
W=${BENCH_OUT:-bench/out/before_after}
mkdir -p "$W"
W=$(cd "$W" && pwd)
TH=${BENCH_THREADS:-2}
N=nice\ -n\ ${NICE:-10}
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Haswell}
vocab=${L2_CLIP_VOCAB:-$PWD/lib/text/vocab/bpe_simple_vocab_16e6.txt.gz}

# ---- inputs (made once, with NEW's tools and /usr/bin/python3) ---------------------------
[ -s "$W/b32.safetensors" ] || /usr/bin/python3 bench/clip_torch.py make "$W/b32.safetensors"
[ -s "$W/inception.safetensors" ] || "$NEW/bin/l2-fid" --random-weights "$W/inception.safetensors" --seed 1
if [ ! -s "$W/q1000.l2f" ]; then
	mkdir -p "$W/img"
	/usr/bin/python3 - "$W" <<'PY'
import os, sys
import numpy as np
from PIL import Image
w = sys.argv[1]; rng = np.random.default_rng(0)
yy, xx = np.mgrid[0:256, 0:320]
for i in range(48):
    base = np.stack([(xx * (c + 1) + yy * (3 - c) + 40 * i) % 256 for c in range(3)], -1)
    im = Image.fromarray(np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8))
    im.save(os.path.join(w, "img", "img%03d.%s" % (i, "jpg" if i % 2 else "png")), **({"quality": 90} if i % 2 else {}))
words = "a an the red green blue small large dog cat bird house tree car person on under near with of".split()
with open(os.path.join(w, "captions.txt"), "w") as f:
    for i in range(256):
        f.write(" ".join(rng.choice(words, 12)) + "\n")
def unit(a): return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)
c = unit(rng.normal(size=(500, 512)))
x = unit(c[rng.integers(0, 500, 50000)] + 0.08 * rng.normal(size=(50000, 512)))
q = unit(c[rng.integers(0, 500, 1000)] + 0.08 * rng.normal(size=(1000, 512)))
np.save(os.path.join(w, "x.npy"), x); np.save(os.path.join(w, "q.npy"), q)
PY
	"$NEW/bin/l2-cat" --from-npy "$W/x.npy" --kind text-feature --normalized > "$W/x.l2f"
	"$NEW/bin/l2-cat" --from-npy "$W/q.npy" --kind image-feature --normalized > "$W/q1000.l2f.tmp"
	mv "$W/q1000.l2f.tmp" "$W/q1000.l2f"
fi
if [ ! -d "$W/fx/ds.lmdb" ]; then
	( export PATH="$NEW/bin:$PATH"; source tests/gan_fixture.bash; make_gan_fixture "$W/fx" 128 > /dev/null )
fi
mkdir -p "$W/img16" && for f in "$W"/img/img00?.* "$W"/img/img01[0-5].*; do ln -sf "$f" "$W/img16/"; done
for side in old new; do # each side's own index (same format; building it is not timed here)
	B=$OLD; [ $side = new ] && B=$NEW
	[ -d "$W/$side-exact.idx" ] || "$B/bin/l2-build-index" --quiet -o "$W/$side-exact.idx" "$W/x.l2f"
	[ -d "$W/$side-ivf.idx" ] || "$B/bin/l2-build-index" --quiet --ivf 256 --seed 1 -o "$W/$side-ivf.idx" "$W/x.l2f"
done

# ---- one measurement: prints a rate -------------------------------------------------------
# secs CMD…: runs CMD, prints its wall seconds; its CPU seconds (user + system) go to $W/cpu
secs() { /usr/bin/time -f "%e %U %S" -o "$W/time" "$@" > /dev/null 2> "$W/err" || { cat "$W/err" >&2; exit 1; }
	awk '{ print $2 + $3 > "'"$W"'/cpu"; print $1 }' "$W/time"; }
rate() { # rate NAME SIDE
	local B=$OLD side=$2
	[ "$side" = new ] && B=$NEW
	case $1 in
	clip-images) s=$(secs $N "$B/bin/l2-encode-images" --quiet -m "$W/b32.safetensors" --threads $TH -o "$W/out-$side.l2f" "$W/img16")
		n=16 ;;
	clip-text) s=$(secs $N "$B/bin/l2-encode-text" --quiet -m "$W/b32.safetensors" --vocab "$vocab" --threads $TH -o "$W/out-$side.l2f" "$W/captions.txt")
		n=256 ;;
	fid) s=$(secs $N "$B/bin/l2-fid" --quiet -m "$W/inception.safetensors" --threads $TH --features "$W/out-$side.l2f" "$W/img16")
		n=16 ;;
	exact) s=$(secs $N "$B/bin/l2-retrieve" --quiet -i "$W/$side-exact.idx" -k 10 --threads $TH -o /dev/null "$W/q1000.l2f")
		n=1000 ;;
	ivf) s=$(secs $N "$B/bin/l2-retrieve" --quiet -i "$W/$side-ivf.idx" -k 10 --nprobe 8 --threads $TH -o /dev/null "$W/q1000.l2f")
		n=1000 ;;
	clip-train) s=$(secs $N "$B/bin/l2-train-clip" --synthetic 512 --resolution 32 --patch 8 --width 128 --layers 2 \
			--context 16 --embed-dim 128 --vocab-size 600 --batch 128 --steps 6 --log-every 0 --threads $TH \
			-o "$W/clip-$side.safetensors")
		n=6 ;;
	gan-train) rm -rf "$W/gan-$side"
		s=$(secs $N "$B/bin/l2-train-gan" --quiet -d "$W/fx/ds.lmdb" -o "$W/gan-$side" --resolution 32 --channel-base 512 \
			--channel-max 32 --z-dim 64 --w-dim 64 --cond-hidden 64 --map-layers 2 --batch 8 --lambda-con 0 --steps 12 \
			--tick 12 --grid 1x1 --threads $TH)
		n=96 ;;
	esac
	echo "$(echo "$n / $s" | bc -l) $(echo "$n / $(cat "$W/cpu")" | bc -l)"
}
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

echo "| workload | unit | old (median of $ROUNDS) | new | new / old | old per CPU-second | new | new / old |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
for b in ${BENCHES:-clip-images clip-text fid exact ivf clip-train gan-train}; do
	: > "$W/$b.old"; : > "$W/$b.new"
	for ((r = 0; r < ROUNDS; r++)); do
		rate $b old >> "$W/$b.old"
		rate $b new >> "$W/$b.new"
	done
	unit=images/s
	case $b in clip-text) unit=captions/s ;; exact | ivf) unit=queries/s ;; clip-train) unit=steps/s ;; esac
	o=$(cut -d' ' -f1 "$W/$b.old" | median) n=$(cut -d' ' -f1 "$W/$b.new" | median)
	oc=$(cut -d' ' -f2 "$W/$b.old" | median) nc=$(cut -d' ' -f2 "$W/$b.new" | median)
	printf "| %s | %s | %.2f | %.2f | %.3f | %.2f | %.2f | %.3f |\n" "$b" "$unit" "$o" "$n" "$(echo "$n / $o" | bc -l)" \
		"$oc" "$nc" "$(echo "$nc / $oc" | bc -l)"
	echo "# $b old (wall, cpu rates): $(tr '\n' ';' < "$W/$b.old")  new: $(tr '\n' ';' < "$W/$b.new")" >&2
done
