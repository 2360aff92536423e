#!/usr/bin/env bash
# bench_image.sh — image input paths, one thread, images per CPU-second: l2 (lib/io/image*.c,
# including image_resample.c) vs PIL + torchvision doing the same work, on generated
# 640x480 JPEGs and PNGs.  BENCH_QUICK=1: fewer images.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
N=${BENCH_N:-40}
[ "${BENCH_QUICK:-0}" = 1 ] && N=8
out=bench/out/image
mkdir -p "$out"
libs="$(pkg-config --libs openblas lmdb jansson 2>/dev/null || echo -lopenblas -llmdb -ljansson)"
if nm "$BUILD/libl2.a" 2>/dev/null | grep -q ' U cudaMalloc'; then # built with CUDA
	nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
	cuda=$(dirname "$(dirname "$nvcc")")
	libs="$libs -L$cuda/lib64 -Wl,-rpath,$cuda/lib64 -lcublas -lcudart -lstdc++"
fi
cc -O2 -march=native -Ilib bench/image_prep.c "$BUILD/libl2.a" -lpng -ljpeg -lz $libs -lm -pthread -o "$out/image_prep"
/usr/bin/python3 - "$out" "$N" <<'PY'
import os, sys
import numpy as np
from PIL import Image
out, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
yy, xx = np.mgrid[0:480, 0:640]
for i in range(n):
    base = np.stack([(xx * (c + 1) + yy * (3 - c) + 40 * i) % 256 for c in range(3)], -1)
    im = Image.fromarray(np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8))
    im.save(os.path.join(out, "img%03d.jpg" % i), quality=90)
    if i < n // 2:
        im.save(os.path.join(out, "img%03d.png" % i))
PY
py_rate() { # WHAT EXT
	/usr/bin/python3 - "$out" "$1" "$2" <<'PY'
import glob, sys, time
import torch, torch.nn.functional as F, torchvision.transforms as T
from PIL import Image
torch.set_num_threads(1)
out, what, ext = sys.argv[1:4]
files = sorted(glob.glob(out + "/*." + ext))
clip = T.Compose([T.Resize(224, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224),
                  lambda im: im.convert("RGB"), T.ToTensor(),
                  T.Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))])
best = 0
for _ in range(3):
    t0 = time.process_time()
    for f in files:
        im = Image.open(f)
        if what == "clip":
            clip(im)
        elif what == "fid":
            x = T.ToTensor()(im.convert("RGB"))[None]
            F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        else:
            im.load()
    best = max(best, len(files) / (time.process_time() - t0))
print("%.1f" % best)
PY
}
echo "## Image input (one thread, 640x480, images per CPU-second)"
echo
echo "| path | files | l2 | PIL + torchvision | ratio |"
echo "|---|---|---:|---:|---:|"
for ext in jpg png; do
	for what in decode clip fid; do
		args=$what
		[ $what = clip ] && args="clip 224"
		ours=$("$out/image_prep" $args "$out"/*.$ext)
		theirs=$(py_rate $what $ext)
		ratio=$(awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "%.2f", a / b }')
		echo "| $what | $ext | $ours | $theirs | ${ratio}x |"
	done
done
