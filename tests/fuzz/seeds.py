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


# ---- .npy and .npz ---------------------------------------------------------------------

def npy(shape, values, descr="<f4", version=1):
    d = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (
        descr, "".join("%d," % n for n in shape) if len(shape) == 1 else ", ".join(str(n) for n in shape))
    pre = 10 if version == 1 else 12
    pad = (64 - (pre + len(d) + 1) % 64) % 64
    h = (d + " " * pad + "\n").encode()
    size = struct.pack("<H", len(h)) if version == 1 else struct.pack("<I", len(h))
    return b"\x93NUMPY" + bytes([version, 0]) + size + h + struct.pack("<%d%s" % (len(values), "f" if descr == "<f4" else "d"), *values)


def npy_seeds():
    import io
    import zipfile
    out("npy", "f4-2x3-v1", npy((2, 3), [1, 2, 3, 4, 5, 6]))
    out("npy", "f8-4-v2", npy((4,), [0.5, -1, 1e300, 0], "<f8", 2))
    out("npy", "f4-scalar-v3", npy((), [7], "<f4", 3))
    out("npy", "f4-0x5", npy((0, 5), []))
    mu, sigma = npy((2,), [0.1, 0.2], "<f8"), npy((2, 2), [1, 0.5, 0.5, 2], "<f8")
    for name, how, z64 in (("stored", zipfile.ZIP_STORED, False), ("deflated", zipfile.ZIP_DEFLATED, False),
                           ("zip64", zipfile.ZIP_STORED, True)):
        b = io.BytesIO()
        with zipfile.ZipFile(b, "w", how) as z:
            for member, data in (("mu.npy", mu), ("sigma.npy", sigma)):
                with z.open(member, "w", force_zip64=z64) as f:
                    f.write(data)
        out("npy", "npz-" + name, b.getvalue())
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w") as z:
        z.writestr("arr_0.npy", npy((3,), [1, 2, 3]))
    out("npy", "npz-arr0", b.getvalue())


# ---- PNG and JPEG ------------------------------------------------------------------------

def png(w, h, ctype, depth, interlace=0, plte=None, trns=None, seed=1):
    import zlib
    chans = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[ctype]
    bits = chans * depth
    rows, x = [], seed
    passes = [(0, 0, 1, 1)] if not interlace else [
        (0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    raw = b""
    for x0, y0, dx, dy in passes:
        pw, ph = len(range(x0, w, dx)), len(range(y0, h, dy))
        if not pw or not ph:
            continue
        for _ in range(ph):
            n = (pw * bits + 7) // 8
            row = bytearray()
            for _ in range(n):
                x = (x * 1103515245 + 12345) & 0x7FFFFFFF
                row.append(x >> 16 & 0xFF)
            if ctype == 3:  # indices inside the palette
                row = bytearray(b & ((1 << min(depth, 2)) - 1) if depth < 8 else b % 4 for b in row)
            raw += bytes([(x >> 8) % 5]) + bytes(row)

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    b = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, interlace))
    if plte:
        b += chunk(b"PLTE", plte)
    if trns:
        b += chunk(b"tRNS", trns)
    return b + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def image_seeds():
    plte = bytes([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])
    for depth in (1, 2, 4, 8, 16):
        out("image", "png-grey%d" % depth, png(5, 4, 0, depth))
    out("image", "png-grey8-trns", png(5, 4, 0, 8, trns=b"\x00\x10"))
    out("image", "png-grey16-interlaced", png(9, 9, 0, 16, interlace=1))
    for depth in (8, 16):
        out("image", "png-rgb%d" % depth, png(5, 4, 2, depth))
        out("image", "png-greyalpha%d" % depth, png(4, 5, 4, depth))
        out("image", "png-rgba%d" % depth, png(6, 3, 6, depth))
    out("image", "png-rgb8-trns", png(5, 4, 2, 8, trns=b"\x00\x10\x00\x20\x00\x30"))
    out("image", "png-rgba8-interlaced", png(10, 9, 6, 8, interlace=1))
    for depth in (1, 2, 4, 8):
        out("image", "png-palette%d" % depth, png(7, 3, 3, depth, plte=plte))
    out("image", "png-palette8-trns", png(7, 3, 3, 8, plte=plte, trns=b"\x00\x80"))
    fixtures = os.path.join(HERE, "..", "fixtures", "images")
    for name in ("jg.jpg", "jprog.jpg", "jrgb444.jpg", "jrgb422.jpg", "jextra.jpg", "jgprog.jpg",
                 "jcmyk.jpg", "jcmyk_noadobe.jpg", "jycck.jpg", "jycckprog.jpg", "jrgb.jpg"):
        with open(os.path.join(fixtures, name), "rb") as f:
            out("image", "jpeg-" + name[1:-4], f.read())


# ---- text for the tokenizer ---------------------------------------------------------------

TEXTS = {
    "caption": "a red heart with a smiling face",
    "upper-punct": "Hello, World!!  It's a DOG's life... (really?)",
    "html": "fish &amp; chips &lt;3 &quot;tasty&quot; &#x1F600; &eacute;",
    "mojibake-latin1": "cafÃ© and naÃ¯ve",
    "mojibake-cp1252": "donâ€™t â€œquoteâ€\x9d me",
    "special": "<|startoftext|>a cat<|endoftext|> after",
    "unicode": "Ὀδυσσεύς ΣΙΣΥΦΟΣ 東京タワー 🎉👍🏽 ﬁne ｆｕｌｌ",
    "combining": "e\u0301 a\u0308 \u212b ﬀ",
    "controls": "tab\there\r\nline\x1b[31mred\x1b[0m \u00a0nbsp \u200b",
    "numbers": "2023 12,345.67 ½ ² Ⅻ",
    "long-word": "supercalifragilisticexpialidocious" * 4,
}


def tokenizer_seeds():
    for name, text in TEXTS.items():
        out("tokenizer", name, text.encode("utf-8", "surrogatepass"))
    out("tokenizer", "invalid-utf8", b"abc \xff\xfe \xc3\x28 \xed\xa0\x80")


# ---- stores: records for l2_fuzz_lmdb (tests/fuzz/fuzz.c) ---------------------------------

STORE_DBS = ["meta", "images", "captions", "split", "groups", "attrs", "corpus", "feat.a", "feat.pseudo"]
INDEX_DBS = ["meta", "vectors", "keys", "hash", "ivf_centroids", "ivf_lists"]


def records(dbs, items):
    b = b""
    for db, key, val in items:
        key = key.encode() if isinstance(key, str) else key
        val = val.encode() if isinstance(val, str) else val
        b += bytes([dbs.index(db), len(key)]) + key + struct.pack("<H", len(val)) + val
    return b


def store_seeds():
    meta = [("meta", "format", "l2-store"), ("meta", "kind", "dataset"), ("meta", "version", "1"),
            ("meta", "state", "complete"), ("meta", "background", "ffffff")]
    feats = [("meta", "feat.a.kind", "image-feature"), ("meta", "feat.a.dim", "3"), ("meta", "feat.a.dtype", "f32"),
             ("meta", "feat.a.normalized", "1"), ("meta", "feat.pseudo.kind", "pseudo-text-feature"),
             ("meta", "feat.pseudo.dim", "2"), ("meta", "feat.pseudo.dtype", "f16")]
    images = [("images", "a.png", png(3, 2, 6, 8)), ("images", "b/c.png", png(2, 2, 3, 2, plte=bytes(range(12)))),
              ("split", "a.png", "train"), ("split", "b/c.png", "test"), ("groups", "b/c.png", "b"),
              ("captions", "a.png", "a red heart\nheart"), ("attrs", "a.png", "category\tSmileys & Emotion"),
              ("corpus", "a red heart", "caption"), ("corpus", "a gloss", "wordnet"),
              ("feat.a", "a.png", struct.pack("<3f", 0.6, 0.8, 0)), ("feat.a", "b/c.png", struct.pack("<3f", 0, 0, 1)),
              ("feat.pseudo", "a.png", struct.pack("<2e", 0.6, 0.8))]
    out("store", "dataset", records(STORE_DBS, meta + feats + images))
    out("store", "features-store", records(STORE_DBS, [("meta", "format", "l2-store"), ("meta", "kind", "features"),
                                                       ("meta", "version", "1")] + feats[:4] + images[-3:-1]))
    out("store", "no-format", records(STORE_DBS, [("meta", "kind", "dataset")] + images[:3]))


def be64(n):
    return struct.pack(">Q", n)


def index_seeds():
    rows = [("a red heart", [0.6, 0.8, 0, 0]), ("a blue moon", [0, 0.6, 0.8, 0]), ("sun", [0, 0, 0, 1])]

    def base(nlist, dtype="f32"):
        vals = [v for _, v in rows]
        packed = b"".join(struct.pack("<4" + ("f" if dtype == "f32" else "e"), *v) for v in vals)
        items = [("meta", "format", "l2-index"), ("meta", "version", "1"), ("meta", "kind", "text-feature"),
                 ("meta", "dim", "4"), ("meta", "dtype", dtype), ("meta", "metric", "cos"),
                 ("meta", "count", "%d" % len(rows)), ("meta", "block_rows", "4096"),
                 ("meta", "ivf_nlist", "%d" % nlist), ("meta", "l2_version", "0.1.0"), ("vectors", be64(0), packed)]
        for r, (key, _) in enumerate(rows):
            h = 0xcbf29ce484222325
            for c in key.encode():
                h = ((h ^ c) * 0x100000001b3) & (2**64 - 1)
            items += [("keys", be64(r), key.encode() + b"\0"), ("hash", be64(h), be64(r))]
        return items
    out("index", "exact-f32", records(INDEX_DBS, base(0)))
    out("index", "exact-f16", records(INDEX_DBS, base(0, "f16")))
    ivf = base(2) + [("ivf_centroids", struct.pack(">I", 0), struct.pack("<8f", 0.6, 0.8, 0, 0, 0, 0, 0.6, 0.8)),
                     ("ivf_lists", struct.pack(">II", 0, 0), struct.pack("<2Q", 0, 1)),
                     ("ivf_lists", struct.pack(">II", 1, 0), struct.pack("<Q", 2))]
    out("index", "ivf2", records(INDEX_DBS, ivf))


# ---- captions TSV and corpus file (tests/fuzz/fuzz_captions.c) ---------------------------
# The harness's folder holds a-b.png, a.png, a/x.png and "\u00e9 t.png".

def captions_input(tsv, corpus=b""):
    return struct.pack("<H", len(tsv)) + tsv + corpus


def captions_seeds():
    out("captions", "simple", captions_input(b"a.png\ta red heart\na/x.png\ta blue moon\n",
                                             b"a gloss of a word\nanother line\n"))
    out("captions", "several-per-image-dupes-dot-slash", captions_input(
        b"./a.png\theart\n././a.png\t  heart \na.png\ta red\theart\na-b.png\tdash\n",
        b"heart\nred heart\n\n   \n"))
    out("captions", "crlf-blank-lines-no-final-newline", captions_input(
        b"\r\na.png\tone\r\n\n  \t\r\na/x.png\ttwo\r\r", b"x\r\ny"))
    out("captions", "utf8-orphans", captions_input(
        "\u00e9 t.png\tcaf\u00e9 \u2615\nmissing.png\tnobody\nA.PNG\tcase\n".encode(),
        "na\u00efve \U0001F600\n".encode()))
    out("captions", "empty-captions-long-corpus", captions_input(b"a.png\t\na.png\t\x01\x7f\n",
                                                                 b"w" * 511 + b"\n" + b"v" * 512 + b"\n"))
    out("captions", "refused-no-tab", captions_input(b"a.png a caption\n"))
    out("captions", "refused-empty-path", captions_input(b"./\tcaption\n"))
    out("captions", "refused-bad-utf8", captions_input(b"a.png\t\xc3\x28\n"))
    out("captions", "refused-corpus-nul", captions_input(b"a.png\tok\n", b"a\0b\n"))
    out("captions", "refused-corpus-surrogate", captions_input(b"", b"\xed\xa0\x80\n"))


# ---- model files: written by l2's own writers (tests/fuzz/model_seeds.c) ----------------

def model_seeds():
    import subprocess
    root = os.path.join(HERE, "..", "..")
    build = os.environ.get("BUILD", "build")
    subprocess.run(["make", "-s", "-C", root, build + "/fuzz/model-seeds"], check=True)
    for h in ("safetensors", "ckpt"):
        os.makedirs(os.path.join(HERE, "corpus", h), exist_ok=True)
    subprocess.run([os.path.join(root, build, "fuzz", "model-seeds"), os.path.join(HERE, "corpus")], check=True)


SEEDS = {"stream": stream_seeds, "models": model_seeds, "store": store_seeds, "index": index_seeds, "npy": npy_seeds, "image": image_seeds, "tokenizer": tokenizer_seeds,
         "captions": captions_seeds}

if __name__ == "__main__":
    for name in sys.argv[1:] or SEEDS:
        SEEDS[name]()
