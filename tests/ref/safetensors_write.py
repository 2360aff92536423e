"""safetensors_write.py — write_st, the safetensors writer the golden scripts share
(make_augment, make_diffusion, make_gan, make_train; make_gan_train through make_train).
Not a make_*.py: make_all.sh does not run it."""
import json, struct
import numpy as np


def write_st(path, tensors, meta=None):
    """tensors: name -> (array, "F32" | "F64" | "I32"), written in that order; meta: the
    __metadata__ strings, if any.  The header is padded to 8 bytes with spaces."""
    hdr, blobs, off = {}, [], 0
    for k, (arr, dt) in tensors.items():
        b = np.ascontiguousarray(arr.astype({"F32": "<f4", "F64": "<f8", "I32": "<i4"}[dt])).tobytes()
        hdr[k] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if meta:
        hdr["__metadata__"] = meta
    h = json.dumps(hdr).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
