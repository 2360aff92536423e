#!/usr/bin/env python3
"""st_gap.py A.safetensors B.safetensors — how far apart two weight files are.

Prints one line: the largest over tensors of max|a - b| / max|b| (each
tensor's gap relative to its largest entry), the tensor it occurs in, and the
number of tensors that are bit-identical.  Pure Python (no NumPy), so the
MPI tests need nothing beyond python3.  Exit 1 when the files hold different
tensor names, shapes or dtypes."""
import json, struct, sys


def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        data = f.read()
    head.pop("__metadata__", None)
    out = {}
    for name, t in head.items():
        a, b = t["data_offsets"]
        fmt = {"F32": "f", "F64": "d"}[t["dtype"]]
        raw = data[a:b]
        out[name] = (t["dtype"], tuple(t["shape"]), raw, struct.unpack("<%d%s" % (len(raw) // struct.calcsize(fmt), fmt), raw))
    return out


a, b = load(sys.argv[1]), load(sys.argv[2])
if a.keys() != b.keys() or any(a[k][:2] != b[k][:2] for k in a):
    print("st_gap.py: the files hold different tensors", file=sys.stderr)
    sys.exit(1)
worst, where, same = 0.0, "", 0
for k in sorted(a):
    if a[k][2] == b[k][2]:
        same += 1
        continue
    x, y = a[k][3], b[k][3]
    m = max(abs(v) for v in y) or 1.0
    g = max(abs(p - q) for p, q in zip(x, y)) / m
    if g > worst:
        worst, where = g, k
print("%.3e %s %d/%d" % (worst, where or "-", same, len(a)))
