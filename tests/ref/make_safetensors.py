#!/usr/bin/env python3
"""make_safetensors.py — reference files for lib/io/safetensors.c (tests/c/test_safetensors.c).

The `safetensors` package is not packaged for Debian, so the format is written
here by hand exactly as its reference serializer (Rust, safetensors 0.4) does:
u64 LE header length, compact JSON (no spaces, UTF-8 not escaped),
"__metadata__" first, tensors in the given order with contiguous
data_offsets, the header padded with spaces to a multiple of 8 bytes.

Writes tests/ref/safetensors/:
  basic.safetensors        F32, F16, BF16, F64, I64, I32, U8, BOOL tensors, a
                           scalar, an empty tensor, __metadata__ with UTF-8
  basic_expected/NAME.f32  the float32 values each tensor converts to (raw LE),
                           computed by numpy (float16 -> float32 casts; bf16 as
                           the upper 16 bits of a float32, its definition)
  basic_names.txt          tensor names in header order, "name<TAB>dtype<TAB>shape"
  unaligned.safetensors    header not padded: tensor data at odd offsets
  corrupt/*.safetensors    malformed files; corrupt.txt: "file<TAB>message part"
"""
import json
import os
import struct

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "safetensors")
rng = np.random.default_rng(20261129)


def header_bytes(tensors, metadata=None, pad=True):
    """tensors: list of (name, dtype str, shape, raw bytes)."""
    h = {}
    if metadata is not None:
        h["__metadata__"] = metadata
    off = 0
    for name, dt, shape, raw in tensors:
        h[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    s = json.dumps(h, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if pad:
        s += b" " * ((8 - len(s) % 8) % 8)
    return s


def write(path, tensors, metadata=None, pad=True):
    s = header_bytes(tensors, metadata, pad)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(s)) + s)
        for t in tensors:
            f.write(t[3])


def write_raw(path, header, data=b"", hlen=None):
    h = header.encode("utf-8") if isinstance(header, str) else header
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h) if hlen is None else hlen) + h + data)


def main():
    os.makedirs(os.path.join(OUT, "basic_expected"), exist_ok=True)
    os.makedirs(os.path.join(OUT, "corrupt"), exist_ok=True)
    tensors, expected = [], {}

    a = rng.standard_normal((3, 5)).astype("<f4")
    tensors.append(("layer.0.weight", "F32", a.shape, a.tobytes()))
    expected["layer.0.weight"] = a

    # f16: random normals plus the edges (max, min normal, subnormals, inf, -0)
    h = (rng.standard_normal(12) * 3).astype("<f2")
    h[:6] = np.array([65504.0, -65504.0, 6.103515625e-05, 5.960464477539063e-08, np.inf, -0.0], dtype="<f2")
    h = h.reshape(4, 3)
    tensors.append(("layer.0.bias_f16", "F16", h.shape, h.tobytes()))
    expected["layer.0.bias_f16"] = h.astype("<f4")

    # bf16: random bit patterns of finite values, plus edges
    f = (rng.standard_normal(14) * 100).astype("<f4")
    bits = (f.view("<u4") >> 16).astype("<u2")
    bits[:4] = [0x7F7F, 0x0001, 0xFF80, 0x8000]  # max finite, smallest subnormal, -inf, -0
    bits = bits.reshape(2, 7)
    tensors.append(("emb.bf16", "BF16", bits.shape, bits.tobytes()))
    expected["emb.bf16"] = (bits.astype("<u4") << 16).view("<f4")

    d = rng.standard_normal(6) * 1e3
    d[0] = 1.0 + 2.0 ** -30  # rounds to 1.0f
    d[1] = 3.4e38 * 1.0000001  # still finite in f32 after rounding? numpy decides
    d = d.astype("<f8")
    tensors.append(("proj.f64", "F64", d.shape, d.tobytes()))
    expected["proj.f64"] = d.astype("<f4")

    i64 = np.array([[-3, 0], [1 << 40, 7]], dtype="<i8")
    tensors.append(("position_ids", "I64", i64.shape, i64.tobytes()))
    expected["position_ids"] = i64.astype("<f4")

    i32 = np.array([-2147483648, 5, 123456789], dtype="<i4")
    tensors.append(("counts.i32", "I32", i32.shape, i32.tobytes()))
    expected["counts.i32"] = i32.astype("<f4")

    u8 = np.array([0, 1, 255, 128], dtype="u1")
    tensors.append(("mask.u8", "U8", u8.shape, u8.tobytes()))
    expected["mask.u8"] = u8.astype("<f4")

    b = np.array([True, False, True], dtype="?")
    tensors.append(("flags", "BOOL", b.shape, b.tobytes()))
    expected["flags"] = b.astype("<f4")

    s = np.array(2.5, dtype="<f4")
    tensors.append(("logit_scale", "F32", (), s.tobytes()))
    expected["logit_scale"] = s.reshape(1)

    e = np.zeros((0, 4), dtype="<f4")
    tensors.append(("empty", "F32", e.shape, e.tobytes()))
    expected["empty"] = e

    meta = {"format": "pt", "note": "grüße, 猫", "source": "make_safetensors.py"}
    write(os.path.join(OUT, "basic.safetensors"), tensors, meta)
    with open(os.path.join(OUT, "basic_names.txt"), "w") as fh:
        for name, dt, shape, _ in tensors:
            fh.write("%s\t%s\t%s\n" % (name, dt, ",".join(str(x) for x in shape)))
            expected[name].astype("<f4").tofile(os.path.join(OUT, "basic_expected", name + ".f32"))

    # unaligned: no padding, header length chosen odd
    u = rng.standard_normal(7).astype("<f4")
    uh = rng.standard_normal(5).astype("<f2")
    ut = [("x", "F32", u.shape, u.tobytes()), ("y", "F16", uh.shape, uh.tobytes())]
    hb = header_bytes(ut, pad=False)
    if len(hb) % 2 == 0:
        ut[0] = ("xx", "F32", u.shape, u.tobytes())
    write(os.path.join(OUT, "unaligned.safetensors"), ut, pad=False)
    u.tofile(os.path.join(OUT, "unaligned_x.f32"))
    uh.astype("<f4").tofile(os.path.join(OUT, "unaligned_y.f32"))

    # corrupt files and the message part each must produce
    c = os.path.join(OUT, "corrupt")
    cases = []

    def case(name, msg):
        cases.append((name, msg))
        return os.path.join(c, name)

    good = header_bytes([("w", "F32", (2, 2), b"\0" * 16)])
    with open(case("short.safetensors", "truncated safetensors file"), "wb") as fh:
        fh.write(b"\x10\0\0\0\0")
    write_raw(case("hlen_past_end.safetensors", "runs past the end of the file"), good, b"\0" * 16, hlen=len(good) + 100)
    write_raw(case("hlen_huge.safetensors", "implausible"), good, b"\0" * 16, hlen=1 << 62)
    write_raw(case("truncated_data.safetensors", "outside the data area"), good, b"\0" * 10)
    write_raw(case("bad_json.safetensors", "bad JSON header"), '{"w":{"dtype":"F32",' + " " * 3, b"")
    write_raw(case("not_object.safetensors", "not a JSON object"), "[1, 2]  ", b"")
    write_raw(case("offsets_out.safetensors", "tensor w: data_offsets [0, 64] outside the data area (16 bytes)"),
              '{"w":{"dtype":"F32","shape":[4,4],"data_offsets":[0,64]}}', b"\0" * 16)
    write_raw(case("wrong_size.safetensors", "tensor w: data_offsets [0, 8] span 8 bytes, but F32 (2, 2) needs 16"),
              '{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,8]}}', b"\0" * 16)
    write_raw(case("f16_size.safetensors", "but F16 (3,) needs 6"),
              '{"h":{"dtype":"F16","shape":[3],"data_offsets":[0,12]}}', b"\0" * 12)
    write_raw(case("reversed.safetensors", "end before they begin"),
              '{"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}', b"\0" * 16)
    write_raw(case("overlap.safetensors", "tensors a and b overlap"),
              '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
              '"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}', b"\0" * 16)
    write_raw(case("dtype_unknown.safetensors", "unknown dtype \"F128\""),
              '{"w":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}', b"\0" * 16)
    write_raw(case("shape_negative.safetensors", "shape entries must be integers >= 0"),
              '{"w":{"dtype":"F32","shape":[-1,4],"data_offsets":[0,16]}}', b"\0" * 16)
    write_raw(case("shape_float.safetensors", "shape entries must be integers >= 0"),
              '{"w":{"dtype":"F32","shape":[2.0,2],"data_offsets":[0,16]}}', b"\0" * 16)
    write_raw(case("missing_field.safetensors", "missing or non-array \"shape\""),
              '{"w":{"dtype":"F32","data_offsets":[0,16]}}', b"\0" * 16)
    write_raw(case("extra_field.safetensors", "unknown field \"strides\""),
              '{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16],"strides":[1]}}', b"\0" * 16)
    write_raw(case("duplicate.safetensors", "bad JSON header: duplicate object key"),
              '{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
              b"\0" * 8)
    write_raw(case("meta_nonstring.safetensors", "__metadata__ entry \"epoch\": value must be a string"),
              '{"__metadata__":{"epoch":3},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', b"\0" * 4)
    write_raw(case("too_many_dims.safetensors", "9 dimensions"),
              '{"w":{"dtype":"U8","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,1]}}', b"\0")
    write_raw(case("overflow.safetensors", "too many elements"),
              '{"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,4]}}', b"\0" * 4)
    write_raw(case("bad_utf8.safetensors", "bad JSON header"), b'{"w\xff":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}',
              b"\0" * 4)
    with open(os.path.join(OUT, "corrupt.txt"), "w") as fh:
        for name, msg in cases:
            fh.write("%s\t%s\n" % (name, msg))


if __name__ == "__main__":
    main()
