#!/usr/bin/env python3
"""synth_data.py -- the synthetic inputs the CLIP, CUDA and FID benchmarks share, one copy so
that their numbers are measured on the same data.

  synth_data.py images DIR N     N 320x256 images (gradients + noise, seed 0), PNG and JPEG alternately
  synth_data.py captions FILE N  N captions of ~15 tokens (seed 0)
"""
import os
import random
import sys


def images(out, n):
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:256, 0:320]
    for i in range(n):
        base = np.stack([(xx * (c + 1) + yy * (3 - c) + 40 * i) % 256 for c in range(3)], -1)
        im = Image.fromarray(np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8))
        if i % 2: im.save(os.path.join(out, "img%03d.jpg" % i), quality=90)
        else: im.save(os.path.join(out, "img%03d.png" % i))


def captions(path, n):
    rng = random.Random(0)
    adj = "red small happy old shiny wooden blue smiling tiny green".split()
    noun = "cat dog house tree car face apple bird boat flower child table".split()
    verb = "sitting standing lying running looking".split()
    with open(path, "w") as f:
        for i in range(n):
            f.write("a photo of a %s %s %s next to a %s %s on the %s\n" % (rng.choice(adj), rng.choice(noun),
                    rng.choice(verb), rng.choice(adj), rng.choice(noun), rng.choice(["left", "right", "table"])))


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("images", "captions"):
        sys.exit(__doc__.strip())
    {"images": images, "captions": captions}[sys.argv[1]](sys.argv[2], int(sys.argv[3]))
