#!/usr/bin/env python3
"""seeds.py — write the hand-made seed inputs of the fuzz harnesses.

    tests/fuzz/seeds.py [HARNESS...]     (default: all)

Each harness's corpus (tests/fuzz/corpus/NAME/) starts from these seeds:
small, valid inputs of every shape the parser knows, so that libFuzzer
begins deep inside the format rather than at its magic bytes.  Campaigns
add what they discover (minimised with libFuzzer's -merge=1), so the
folders hold more than this script writes; it only (re)writes its own
files, named seed-*.  Needs only the Python standard library."""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def out(harness, name, data):
    d = os.path.join(HERE, "corpus", harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


# ---- feature streams (schemas/l2fs.md) ----------------------------------------------

def l2fs_header(kind, dim, count=2**64 - 1, dtype=1, flags=0, k=0):
    return (b"L2FS" + struct.pack("<HHIIQ", 1, dtype, dim, flags, count) + kind.encode().ljust(24, b"\0")
            + struct.pack("<I", k) + bytes(12))


def vec(values, dtype=1):
    return struct.pack("<%d%s" % (len(values), "f" if dtype == 1 else "e"), *values)


def record(key, values, dtype=1):
    k = key.encode()
    return struct.pack("<I", len(k)) + k + vec(values, dtype)


def neighbors_record(key, q, nbrs, dtype=1):
    b = record(key, q, dtype)
    for nkey, score, v in nbrs:
        nk = nkey.encode()
        b += struct.pack("<I", len(nk)) + nk + struct.pack("<f", score) + vec(v, dtype)
    return b


def stream_seeds():
    s = l2fs_header("image-feature", 4, count=3)
    for i in range(3):
        s += record("img/%d.png" % i, [0.5, -0.5, 0.5 * i, 1.0])
    out("stream", "image-f32-counted", s)
    s = l2fs_header("text-feature", 3, dtype=2, flags=1)
    s += record("a red heart", [0.6, 0.8, 0.0], 2) + record("a blue moon", [0.0, 0.6, 0.8], 2)
    out("stream", "text-f16-until-end", s)
    s = l2fs_header("neighbors", 2, k=2)
    s += neighbors_record("q.png", [1, 0], [("cat", 0.9, [0.9, 0.1]), ("dog", 0.5, [0.5, 0.5])])
    s += neighbors_record("r.png", [0, 1], [("sun", 0.8, [0.2, 0.8]), ("", -0.1, [0.0, 0.0])])
    out("stream", "neighbors-k2", s)
    a = l2fs_header("pseudo-text-feature", 2, count=1) + record("x", [1, 2])
    b = l2fs_header("pseudo-text-feature", 2, dtype=2) + record("y", [3, 4], 2)
    out("stream", "concatenated", a + b)
    out("stream", "empty-counted", l2fs_header("inception-feature", 8, count=0))


SEEDS = {"stream": stream_seeds}

if __name__ == "__main__":
    for name in sys.argv[1:] or SEEDS:
        SEEDS[name]()
