#!/usr/bin/env python3
"""make_image.py — fixtures and PIL/torch reference outputs for lib/image*.c.

Writes
  tests/fixtures/images/*.png|jpg|txt  small non-square images of every PNG
      colour type and bit depth (written by the raw PNG writer below, so every
      type, tRNS form, filter and interlacing is covered) and every JPEG kind
      PIL writes (grey, RGB 4:2:0/4:2:2/4:4:4, progressive, CMYK with and without
      the Adobe marker), plus corrupt/truncated files and a non-image.
  tests/ref/image/cases.txt  one test case per line (see below), read by
      tests/c/test_image.c
  tests/ref/image/*.bin      raw reference bytes (uint8; uint16 LE for mode I;
      float32 LE for CLIP tensors and bilinear outputs)

cases.txt lines (whitespace separated; REF is FILE.bin or sha256:HEX, the
SHA-256 of the reference bytes, used for the large 224x224 results):
  load  FIX MODE W H REF        decoded image in PIL's mode (Image.open)
  rgb   FIX W H REF             convert('RGB')
  resize FIX W H REF            Image.resize((W, H), BICUBIC) in its own mode
  short FIX S W H REF           torchvision Resize(S) (bicubic)
  crop  FIX W H REF             torchvision CenterCrop((H, W)) (pads when larger)
  clip  FIX RES REF             CLIP's preprocess (torchvision transforms), f32
  over  FIX R G B REF           alpha over (R,G,B) as lib/io/image.h documents
  bilin FIX OH OW REF           F.interpolate(bilinear, align_corners=False) of
                                ToTensor(convert('RGB')), f32 (C, OH, OW)
  bilins FIX OH OW REF          the same, 400 random elements: REF holds
                                (u32 flat index, f32 value) pairs
  bilinh FIX OH OW REF          the same, compared by checksum (bit-exact)
  bad   FIX                     PIL refuses it; so must we
FIX "synth:MODE:WxH" is a larger image made from the integer formula of
synth() below (test_image.c rebuilds it), for large down-scales.
Mode I results are clipped to 0..65535 (lib/io/image.h stores PIL's 32-bit I
as uint16; after convert('RGB') clips to 0..255 the result is the same).
"""
import hashlib
import os
import struct
import warnings
import zlib

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms as T
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.normpath(os.path.join(HERE, "..", "fixtures", "images"))
OUT = os.path.join(HERE, "image")
rng = np.random.default_rng(20261129)
cases = []


def ref(name, data, big=3000):
    """Store reference bytes, or their SHA-256 when large."""
    data = bytes(data)
    if len(data) > big or not name:
        return "sha256:" + hashlib.sha256(data).hexdigest()
    with open(os.path.join(OUT, name + ".bin"), "wb") as f:
        f.write(data)
    return name + ".bin"


# ---- a raw PNG writer: any colour type, bit depth, tRNS, filters, Adam7 -------
def png_chunk(t, data):
    c = struct.pack(">I", len(data)) + t + data
    return c + struct.pack(">I", zlib.crc32(t + data) & 0xFFFFFFFF)


def pack_rows(a, depth):
    """a: (h, w, nch) samples -> list of packed scanlines (bytes)."""
    h, w, c = a.shape
    rows = []
    for y in range(h):
        s = a[y].reshape(-1)
        if depth == 16:
            rows.append(s.astype(">u2").tobytes())
        elif depth == 8:
            rows.append(s.astype(np.uint8).tobytes())
        else:
            per = 8 // depth
            n = (len(s) + per - 1) // per
            out = bytearray(n)
            for i, v in enumerate(s):
                out[i // per] |= int(v) << (8 - depth * (i % per + 1))
            rows.append(bytes(out))
    return rows


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def filter_rows(rows, bpp, first_filter):
    out = bytearray()
    prev = bytes(len(rows[0])) if rows else b""
    for i, r in enumerate(rows):
        ft = (first_filter + i) % 5
        f = bytearray(len(r))
        for x in range(len(r)):
            a = r[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            pred = (0, a, b, (a + b) // 2, paeth(a, b, c))[ft]
            f[x] = (r[x] - pred) & 255
        out += bytes([ft]) + f
        prev = r
    return bytes(out)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def write_png(path, a, ctype, depth, plte=None, trns=None, interlace=False, extra_before_idat=b""):
    h, w, c = a.shape
    bpp = max(1, c * depth // 8)
    raw = b""
    if interlace:
        for x0, y0, dx, dy in ADAM7:
            sub = a[y0::dy, x0::dx]
            if sub.shape[0] and sub.shape[1]:
                raw += filter_rows(pack_rows(sub, depth), bpp, x0 + y0)
    else:
        raw = filter_rows(pack_rows(a, depth), bpp, 0)
    data = b"\x89PNG\r\n\x1a\n"
    data += png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 1 if interlace else 0))
    if plte is not None:
        data += png_chunk(b"PLTE", bytes(np.asarray(plte, np.uint8).reshape(-1)))
    if trns is not None:
        data += png_chunk(b"tRNS", trns)
    data += extra_before_idat
    z = zlib.compress(raw, 9)
    # two IDAT chunks, to exercise chunk boundaries
    data += png_chunk(b"IDAT", z[: len(z) // 2]) + png_chunk(b"IDAT", z[len(z) // 2:])
    data += png_chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)
    return data


def content(h, w, c, maxv):
    """Smooth gradients plus noise: never flat, with sharp edges for ringing."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.empty((h, w, c))
    for k in range(c):
        base = (xx / max(w - 1, 1) * (0.3 + 0.2 * k) + yy / max(h - 1, 1) * (0.7 - 0.2 * k)) % 1.0
        base[(xx.astype(int) // 7 + yy.astype(int) // 5 + k) % 3 == 0] = 1.0 - base[(xx.astype(int) // 7 + yy.astype(int) // 5 + k) % 3 == 0]
        v = 0.75 * base + 0.25 * rng.random((h, w))
        out[..., k] = np.round(v * maxv)
    return np.clip(out, 0, maxv).astype(np.int64)


def alpha(h, w, maxv):
    """Random alpha with fully transparent and fully opaque areas."""
    a = rng.integers(0, maxv + 1, (h, w))
    a[: h // 4, :] = maxv
    a[h // 4: h // 3, :] = 0
    a[:, : w // 6] = rng.choice([0, maxv], (h, w // 6))
    return a


def make_pngs():
    S1, S2 = (23, 37), (71, 50)  # (h, w): landscape and portrait
    made = []

    def mk(name, size, ctype, depth, a, **kw):
        write_png(os.path.join(FIX, name), a, ctype, depth, **kw)
        made.append(name)

    # greyscale
    mk("g1.png", S1, 0, 1, content(*S1, 1, 1))
    mk("g2.png", S2, 0, 2, content(*S2, 1, 3))
    mk("g4i.png", S1, 0, 4, content(*S1, 1, 15), interlace=True)
    mk("g8.png", S2, 0, 8, content(*S2, 1, 255))
    g = content(*S1, 1, 255)
    mk("g8t.png", S1, 0, 8, g, trns=struct.pack(">H", int(g[3, 4, 0])))
    mk("g16.png", S2, 0, 16, content(*S2, 1, 65535))
    # 16-bit grey with small values, so that PIL's I -> RGB clipping is not all 255
    mk("g16lo.png", S1, 0, 16, content(*S1, 1, 300))
    g = content(*S1, 1, 65535)
    mk("g16t.png", S1, 0, 16, g, trns=struct.pack(">H", int(g[0, 0, 0])))
    # grey + alpha
    a = content(*S1, 1, 255)
    mk("ga8.png", S1, 4, 8, np.dstack([a, alpha(*S1, 255)]))
    a = content(*S2, 1, 65535)
    mk("ga16.png", S2, 4, 16, np.dstack([a, alpha(*S2, 65535)]))
    # RGB
    mk("rgb8.png", S1, 2, 8, content(*S1, 3, 255))
    mk("rgb8i.png", S2, 2, 8, content(*S2, 3, 255), interlace=True)
    c = content(*S1, 3, 255)
    mk("rgb8t.png", S1, 2, 8, c, trns=struct.pack(">HHH", *[int(v) for v in c[5, 6]]))
    mk("rgb16.png", S2, 2, 16, content(*S2, 3, 65535))
    # RGBA
    mk("rgba8.png", S1, 6, 8, np.dstack([content(*S1, 3, 255), alpha(*S1, 255)]))
    mk("rgba8b.png", S2, 6, 8, np.dstack([content(*S2, 3, 255), alpha(*S2, 255)]))
    mk("rgba16.png", S2, 6, 16, np.dstack([content(*S2, 3, 65535), alpha(*S2, 65535)]))
    # palette
    for depth, size in ((1, S2), (2, S1), (4, S2)):
        n = 1 << depth
        plte = rng.integers(0, 256, (n, 3))
        mk("p%d.png" % depth, size, 3, depth, rng.integers(0, n, size + (1,)), plte=plte)
    plte = rng.integers(0, 256, (200, 3))
    idx = content(*S1, 1, 199)
    mk("p8.png", S1, 3, 8, idx, plte=plte)
    mk("p8i.png", S2, 3, 8, content(*S2, 1, 199), plte=plte, interlace=True)
    # palette + tRNS with one alpha per entry (PIL: info['transparency'] bytes)
    trns = bytes(rng.integers(0, 256, 150).astype(np.uint8))
    mk("p8t.png", S2, 3, 8, content(*S2, 1, 199), plte=plte, trns=trns)
    # palette + tRNS with a single transparent entry (PIL: an int)
    mk("p8t1.png", S1, 3, 8, content(*S1, 1, 199), plte=plte, trns=b"\xff" * 7 + b"\x00")
    # indices beyond a short PLTE: PIL shows its grey ramp there
    mk("p4short.png", S1, 3, 4, content(*S1, 1, 15), plte=rng.integers(0, 256, (9, 3)))
    # tiny images: one-pixel rows and columns at every step
    mk("t1x1.png", (1, 1), 2, 8, np.array([[[200, 10, 99]]]))
    mk("t3x1.png", (1, 3), 6, 8, np.array([[[250, 0, 120, 255], [3, 200, 90, 128], [40, 60, 80, 0]]]))
    mk("t1x4.png", (4, 1), 3, 8, np.array([[[0]], [[1]], [[2]], [[1]]]), plte=[[255, 0, 0], [0, 255, 0], [0, 0, 255]])
    mk("t2x5.png", (5, 2), 0, 8, np.array([[[0], [255]], [[255], [0]], [[17], [240]], [[128], [127]], [[1], [254]]]))
    return made


def strip_app14(data):
    """Remove the Adobe APP14 segment from a JPEG."""
    out, i = bytearray(data[:2]), 2
    while i < len(data):
        assert data[i] == 0xFF
        m = data[i + 1]
        if m == 0xDA:
            out += data[i:]
            break
        n = struct.unpack(">H", data[i + 2: i + 4])[0]
        if m != 0xEE:
            out += data[i: i + 2 + n]
        i += 2 + n
    return bytes(out)


def make_jpegs():
    made = []
    S1, S2 = (23, 37), (71, 50)

    def save(name, arr, mode, **kw):
        im = Image.fromarray(arr.astype(np.uint8), mode)
        im.save(os.path.join(FIX, name), quality=90, **kw)
        made.append(name)

    save("jg.jpg", content(*S1, 1, 255)[..., 0], "L")
    save("jrgb.jpg", content(*S2, 3, 255), "RGB")
    save("jrgb444.jpg", content(*S1, 3, 255), "RGB", subsampling=0)
    save("jrgb422.jpg", content(*S2, 3, 255), "RGB", subsampling=1)
    save("jprog.jpg", content(*S1, 3, 255), "RGB", progressive=True)
    save("jgprog.jpg", content(*S2, 1, 255)[..., 0], "L", progressive=True)
    save("jcmyk.jpg", content(*S1, 4, 255), "CMYK")
    with open(os.path.join(FIX, "jcmyk.jpg"), "rb") as f:
        d = f.read()
    with open(os.path.join(FIX, "jcmyk_noadobe.jpg"), "wb") as f:
        f.write(strip_app14(d))
    made.append("jcmyk_noadobe.jpg")
    save("jcmykprog.jpg", content(*S2, 4, 255), "CMYK", progressive=True)
    # damage PIL tolerates (libjpeg warns "extraneous bytes before marker"),
    # and junk after the end-of-image marker
    with open(os.path.join(FIX, "jrgb444.jpg"), "rb") as f:
        d = f.read()
    with open(os.path.join(FIX, "jextra.jpg"), "wb") as f:
        f.write(d[:-2] + b"\x12\x34\x56\xff\xd9" + b"trailing junk")
    made.append("jextra.jpg")
    return made


def synth(mode, w, h):
    """A larger image from an integer formula that tests/c/test_image.c
    rebuilds (synth_image): smooth ramps, bands with sharp edges, hash noise;
    RGBA/LA alpha with opaque and transparent stripes."""
    nch = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}[mode]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.int64)
    out = np.empty((h, w, nch), np.uint8)
    for c in range(nch):
        hs = ((xx * 73856093) ^ (yy * 19349663) ^ (c * 83492791)) & 0xFFFFFFFF
        hs = ((hs ^ (hs >> 13)) * 0x5BD1E995) & 0xFFFFFFFF
        hs ^= hs >> 15
        noise = hs >> 24
        if mode in ("LA", "RGBA") and c == nch - 1:
            a = noise.copy()
            a[yy < h // 4] = 255
            a[(yy >= h // 4) & (yy < h // 3)] = 0
            out[..., c] = a
            continue
        smooth = (xx * 255 // (w - 1) * (c + 1) + yy * 255 // (h - 1) * (3 - c)) // 4
        band = np.where((xx // 9 + yy // 13 + c) % 4 == 0, 255 - smooth, smooth)
        out[..., c] = (band * 3 + noise) // 4
    return Image.fromarray(out if nch > 1 else out[..., 0], mode)


SYNTH = (("RGB", 640, 480), ("RGBA", 333, 517), ("L", 401, 299), ("LA", 150, 1000))


def synth_references():
    for mode, w, h in SYNTH:
        im = synth(mode, w, h)
        name = "synth:%s:%dx%d" % (mode, w, h)
        cases.append("load %s %s %d %d %s" % (name, mode, w, h, ref("", native(im).tobytes())))
        for tw, th in ((224, 224), (100, 37), (41, h), (w, 77), (w * 3 // 2, h + 1)):
            r = im.resize((tw, th), Image.BICUBIC)
            cases.append("resize %s %d %d %s" % (name, tw, th, ref("", native(r).tobytes())))
        r = T.Resize(224, interpolation=T.InterpolationMode.BICUBIC)(im)
        cases.append("short %s 224 %d %d %s" % (name, r.size[0], r.size[1], ref("", native(r).tobytes())))
        for n in (224, 32):
            x = clip_transform(n)(im).numpy().astype("<f4")
            cases.append("clip %s %d %s" % (name, n, ref("", x.tobytes(), 0)))
        if mode == "RGB":
            x = T.ToTensor()(im)[None]
            y = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)[0].numpy().astype("<f4")
            cases.append("bilinh %s 299 299 %s" % (name, ref("", y.tobytes(), 0)))


YCCK_C = r"""
/* Writes a YCCK JPEG (Adobe transform 2) from a CMYK formula: PIL cannot. */
#include <stdio.h>
#include <stdlib.h>
#include <jpeglib.h>
int main(int argc, char **argv)
{
	int w = 45, h = 29, progressive = argc > 2;
	struct jpeg_compress_struct c;
	struct jpeg_error_mgr e;
	FILE *f = fopen(argv[1], "wb");
	if (!f) return 1;
	c.err = jpeg_std_error(&e);
	jpeg_create_compress(&c);
	jpeg_stdio_dest(&c, f);
	c.image_width = w;
	c.image_height = h;
	c.input_components = 4;
	c.in_color_space = JCS_CMYK;
	jpeg_set_defaults(&c);
	jpeg_set_colorspace(&c, JCS_YCCK);
	jpeg_set_quality(&c, 90, TRUE);
	if (progressive) jpeg_simple_progression(&c);
	jpeg_start_compress(&c, TRUE);
	unsigned char row[45 * 4];
	for (int y = 0; y < h; y++) {
		for (int x = 0; x < w; x++)
			for (int k = 0; k < 4; k++) {
				unsigned v = (unsigned)(x * 97 + y * 57 + k * 71) * 2654435761u;
				row[4 * x + k] = (unsigned char)(((x * 255 / (w - 1)) * (k + 1) / 4 + (v >> 27) * 4 + ((x / 6 + y / 5 + k) % 3 ? 0 : 90)) & 255);
			}
		JSAMPROW r = row;
		jpeg_write_scanlines(&c, &r, 1);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	return fclose(f) != 0;
}
"""


def make_ycck():
    """YCCK JPEGs (libjpeg turns them into CMYK; PIL then inverts, as for all
    4-component JPEGs), written by a small libjpeg program compiled here."""
    import subprocess
    import tempfile
    made = []
    with tempfile.TemporaryDirectory() as td:
        src, exe = os.path.join(td, "ycck.c"), os.path.join(td, "ycck")
        with open(src, "w") as f:
            f.write(YCCK_C)
        try:
            subprocess.run(["cc", "-O1", src, "-o", exe, "-ljpeg"], check=True)
        except (OSError, subprocess.CalledProcessError):
            print("make_image: no C compiler or libjpeg headers; YCCK fixtures not made")
            return made
        subprocess.run([exe, os.path.join(FIX, "jycck.jpg")], check=True)
        subprocess.run([exe, os.path.join(FIX, "jycckprog.jpg"), "progressive"], check=True)
        made += ["jycck.jpg", "jycckprog.jpg"]
    return made


def make_bad():
    """Damaged files: each must be refused (PIL refuses them too)."""
    bad = []

    def put(name, data):
        with open(os.path.join(FIX, name), "wb") as f:
            f.write(data)
        bad.append(name)

    rd = lambda n: open(os.path.join(FIX, n), "rb").read()  # noqa: E731
    p = rd("rgb8.png")
    put("bad_trunc.png", p[: len(p) * 2 // 3])
    put("bad_header.png", p[:16] + b"\x00\x00\x00\x00" + p[20:])   # IHDR width 0, bad CRC
    put("bad_sig.png", b"\x89PNX" + p[4:])
    j = rd("jrgb.jpg")
    put("bad_trunc.jpg", j[: len(j) * 2 // 3])
    put("bad_trunc_prog.jpg", rd("jprog.jpg")[: len(rd("jprog.jpg")) // 2])
    put("bad_header.jpg", j[:2] + b"\xff\xc0\x00\x03" + j[2:40])
    put("empty.png", b"")
    put("notimage.txt", b"hello, this is not an image\n" * 3)
    put("bad_eoi_only.jpg", b"\xff\xd8\xff\xd9")
    # a JPEG without its EOI marker: PIL refuses it ("image file is truncated")
    j = rd("jrgb444.jpg")
    assert j.endswith(b"\xff\xd9")
    put("bad_noeoi.jpg", j[:-2])
    return bad


# ---- reference computations --------------------------------------------------
def native(im):
    """PIL image -> (mode, bytes as lib/io/image.h stores them)."""
    a = np.asarray(im)
    if im.mode == "1":
        return a.astype(np.uint8) * 255
    if im.mode == "I":
        return np.clip(a, 0, 65535).astype("<u2")
    return a.astype(np.uint8)


CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def clip_transform(n):
    return T.Compose([
        T.Resize(n, interpolation=T.InterpolationMode.BICUBIC),
        T.CenterCrop(n),
        lambda im: im.convert("RGB"),
        T.ToTensor(),
        T.Normalize(CLIP_MEAN, CLIP_STD),
    ])


def over(im, bg):
    """Alpha over bg with rounding (c*a + bg*(255-a) + 127) // 255."""
    rgba = np.asarray(im.convert("RGBA")).astype(np.int64)
    a = rgba[..., 3:4]
    return ((rgba[..., :3] * a + np.array(bg) * (255 - a) + 127) // 255).astype(np.uint8)


def references(good):
    for name in good:
        stem = os.path.splitext(name)[0]
        im = Image.open(os.path.join(FIX, name))
        im.load()
        w, h = im.size
        cases.append("load %s %s %d %d %s" % (name, im.mode, w, h, ref(stem + ".load", native(im).tobytes())))
        rgb = im.convert("RGB")
        cases.append("rgb %s %d %d %s" % (name, w, h, ref(stem + ".rgb", np.asarray(rgb).tobytes())))
        # plain resizes in the image's own mode: down, up, one axis only, tiny
        for tw, th in ((w // 2 + 3, h // 3 + 1), (w * 2 + 1, h + 13), (w, h // 2), (w // 3, h), (3, 2), (1, 1)):
            tw, th = max(tw, 1), max(th, 1)
            r = im.resize((tw, th), Image.BICUBIC)
            cases.append("resize %s %d %d %s" % (name, tw, th, ref("%s.resize%dx%d" % (stem, tw, th), native(r).tobytes())))
        for s in (7, 16, 224):
            r = T.Resize(s, interpolation=T.InterpolationMode.BICUBIC)(im)
            cases.append("short %s %d %d %d %s" % (name, s, r.size[0], r.size[1], ref("%s.short%d" % (stem, s), native(r).tobytes())))
        for cw, ch in ((w - 5, h - 4), (w - 4, h - 3), (w + 5, h + 2), (w // 2, h + 4)):
            cw, ch = max(cw, 1), max(ch, 1)
            r = T.CenterCrop((ch, cw))(im)
            cases.append("crop %s %d %d %s" % (name, cw, ch, ref("%s.crop%dx%d" % (stem, cw, ch), native(r).tobytes())))
        for n in (7, 16, 224):
            x = clip_transform(n)(im).numpy().astype("<f4")
            cases.append("clip %s %d %s" % (name, n, ref("%s.clip%d" % (stem, n), x.tobytes())))
        if im.mode in ("LA", "RGBA", "P") or (im.mode in ("L", "RGB") and "transparency" in im.info):
            bg = (200, 30, 117)
            cases.append("over %s %d %d %d %s" % (name, *bg, ref(stem + ".over", over(im, bg).tobytes())))
    # torch bilinear (pytorch-fid's resize) on a few decoded images
    for name in ("rgb8.png", "jrgb.jpg", "g8t.png"):
        stem = os.path.splitext(name)[0]
        im = Image.open(os.path.join(FIX, name)).convert("RGB")
        x = T.ToTensor()(im)[None]
        w, h = im.size
        for oh, ow in ((h, w), (2 * h, 2 * w), (h // 2 + 1, w // 3 + 2), (5, 7), (h + 9, w - 3), (299, 299)):
            y = F.interpolate(x, size=(oh, ow), mode="bilinear", align_corners=False)[0].numpy().astype("<f4")
            y = y.reshape(-1)
            if y.size <= 512:
                cases.append("bilin %s %d %d %s" % (name, oh, ow, ref("%s.bilin%dx%d" % (stem, oh, ow), y.tobytes(), 1 << 30)))
                continue
            idx = np.sort(rng.choice(y.size, 400, replace=False)).astype("<u4")
            rec = np.empty(idx.size, dtype=[("i", "<u4"), ("v", "<f4")])
            rec["i"], rec["v"] = idx, y[idx]
            cases.append("bilins %s %d %d %s" % (name, oh, ow, ref("%s.bilin%dx%d" % (stem, oh, ow), rec.tobytes(), 1 << 30)))


def main():
    warnings.simplefilter("ignore")
    os.makedirs(FIX, exist_ok=True)
    os.makedirs(OUT, exist_ok=True)
    for d in (FIX, OUT):
        for f in os.listdir(d):
            os.remove(os.path.join(d, f))
    good = make_pngs() + make_jpegs() + make_ycck()
    bad = make_bad()
    # a PNG whose IDAT CRC is wrong (PIL does not check IDAT CRCs)
    p = bytearray(open(os.path.join(FIX, "rgb8.png"), "rb").read())
    k = p.find(b"IEND") - 8
    p[k] ^= 0x5A  # last byte of the second IDAT's CRC
    with open(os.path.join(FIX, "idatcrc.png"), "wb") as f:
        f.write(bytes(p))
    good.append("idatcrc.png")
    for name in bad:
        try:
            with Image.open(os.path.join(FIX, name)) as im:
                im.load()
                im.convert("RGB")
        except Exception:
            cases.append("bad %s" % name)
        else:
            raise SystemExit("PIL accepted %s" % name)
    references(good)
    synth_references()
    with open(os.path.join(OUT, "cases.txt"), "w") as f:
        f.write("# made by tests/ref/make_image.py; see its docstring\n")
        f.write("\n".join(cases) + "\n")
    tot = sum(os.path.getsize(os.path.join(d, f)) for d in (FIX, OUT) for f in os.listdir(d))
    print("make_image: %d fixtures, %d cases, %d bytes" % (len(os.listdir(FIX)), len(cases), tot))


if __name__ == "__main__":
    main()
