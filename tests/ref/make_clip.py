#!/usr/bin/env python3
"""make_clip.py — PyTorch reference outputs for lib/models/clip.c and lib/text/clip_tokenizer.c.

The reference model is OpenAI's CLIP (clip/model.py: VisionTransformer,
text Transformer with causal mask, QuickGELU, LayerNorm eps 1e-5) written
out again below with torch.nn modules and OpenAI's state-dict key names, run
in float64.  Its weights are not committed: they are a pure function of
(seed, key, index) that lib/models/clip.c's l2_clip_random_values() computes the
same way, so the C test rebuilds the same model (in both key layouts) at
test time and compares features with these goldens.

Writes tests/ref/clip/:
  img_*.png              small non-square test images (RGB, RGBA, grey, P)
  pixels.npy             (N, 3, 32, 32) float32: CLIP's torchvision transform
                         of the PNGs (Resize(32, bicubic), CenterCrop, RGB,
                         ToTensor, Normalize)
  image_features.npy     (N, 48) float32, L2-normalised image features
  image_keys.txt         the PNG names in order
  texts.txt              texts, one per line
  text_features.npy      (M, 48) float32, L2-normalised text features
  text_ids.txt           the token ids of texts.txt (no padding), one line each
  tokens.jsonl           {"text": ..., "ids": [...]} per tricky string: ids of
                         clip.tokenize(text, context_length=77, truncate=True)
                         without padding
  ftfy.jsonl             {"text", "fix_text", "fix_encoding", "is_bad"}: real
                         ftfy's fix_text, fix_encoding and badness.is_bad of
                         the tricky strings, of short strings over the
                         characters its heuristic's rules name, of
                         mojibake made below (UTF-8 of many scripts decoded
                         as windows-125x / Latin-1 / MacRoman / cp437, twice,
                         partly, with lost bytes, C1 controls, A0 turned to
                         space) and of legitimate text that only looks odd
  model.json             the tiny model's sizes and seed

The tokenizer reference is OpenAI's SimpleTokenizer (clip/simple_tokenizer.py)
re-implemented with the `regex` module (python3-regex), cleaning text with
the real ftfy.fix_text.  ftfy is not packaged in Debian: point FTFY_SRC at a
checkout of https://github.com/rspeer/python-ftfy (the goldens were made with
ftfy 6.3.1; it needs python3-wcwidth), e.g.

    git clone https://github.com/rspeer/python-ftfy /tmp/ftfy
    FTFY_SRC=/tmp/ftfy /usr/bin/python3 tests/ref/make_clip.py

or have `ftfy` importable.  `make_clip.py --tokenizer-only` writes just
tokens.jsonl and ftfy.jsonl.  Without ftfy, tokens.jsonl and ftfy.jsonl are
left as they are (a note says so) and only the model goldens are rewritten;
their few plain texts are then cleaned by ftfy_subset() below, the steps of
fix_text that act on well-formed text, which equals fix_text on them.
"""
import gzip
import html
import html.entities
import json
import math
import os
import random
import struct
import sys
import unicodedata

import numpy as np
import regex
import torch
import torch.nn as nn
from PIL import Image
from torchvision import transforms

if os.environ.get("FTFY_SRC"):
    sys.path.insert(0, os.environ["FTFY_SRC"])
try:
    import ftfy
except ImportError:
    ftfy = None

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "clip")
VOCAB = os.environ.get("L2_TEST_VOCAB") or os.path.join(HERE, "../../lib/text/vocab/bpe_simple_vocab_16e6.txt.gz")

CFG = dict(width=128, layers=2, patch=8, res=32, embed=48,
           twidth=128, tlayers=2, context=77, vocab=49408, seed=1234)

# ---- the weight generator (mirror of l2_clip_random_values) -----------------

M64 = (1 << 64) - 1


def fnv1a64(s):
    h = 0xcbf29ce484222325
    for b in s.encode():
        h ^= b
        h = (h * 0x100000001b3) & M64
    return h


def rand_values(name, seed, e, n):
    h = np.uint64(fnv1a64(name) ^ seed)
    i = np.arange(1, n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = h + i * np.uint64(0x9e3779b97f4a7c15)
        z ^= z >> np.uint64(30)
        z *= np.uint64(0xbf58476d1ce4e5b9)
        z ^= z >> np.uint64(27)
        z *= np.uint64(0x94d049bb133111eb)
        z ^= z >> np.uint64(31)
    if e < 0:
        v = (768.0 + (z >> np.uint64(55)).astype(np.float64)) / 1024.0
    else:
        v = ((z >> np.uint64(53)).astype(np.float64) * 2.0 - 2047.0) / 2048.0 * math.ldexp(1.0, -e)
    return v.astype(np.float32)


def fan_exp(fan_in):
    return int(math.floor(0.5 * math.log2(fan_in / 3.0) + 0.5))


def block_tensors(prefix, W):
    H = 4 * W
    return [("ln_1.weight", (W,), -1), ("ln_1.bias", (W,), 4),
            ("attn.in_proj_weight", (3 * W, W), fan_exp(W)), ("attn.in_proj_bias", (3 * W,), 5),
            ("attn.out_proj.weight", (W, W), fan_exp(W)), ("attn.out_proj.bias", (W,), 5),
            ("ln_2.weight", (W,), -1), ("ln_2.bias", (W,), 4),
            ("mlp.c_fc.weight", (H, W), fan_exp(W)), ("mlp.c_fc.bias", (H,), 5),
            ("mlp.c_proj.weight", (W, H), fan_exp(H)), ("mlp.c_proj.bias", (W,), 5)]


def spec(c):
    """(OpenAI key, shape, exponent) of every random tensor of config c."""
    W, P, E = c["width"], c["patch"], c["embed"]
    S = (c["res"] // P) ** 2 + 1
    spec = [("visual.conv1.weight", (W, 3, P, P), fan_exp(3 * P * P)),
            ("visual.class_embedding", (W,), fan_exp(W)),
            ("visual.positional_embedding", (S, W), fan_exp(W)),
            ("visual.ln_pre.weight", (W,), -1), ("visual.ln_pre.bias", (W,), 4),
            ("visual.ln_post.weight", (W,), -1), ("visual.ln_post.bias", (W,), 4),
            ("visual.proj", (W, E), fan_exp(W))]
    for l in range(c["layers"]):
        spec += [("visual.transformer.resblocks.%d.%s" % (l, k), s, e) for k, s, e in block_tensors("", W)]
    T = c["twidth"]
    spec += [("token_embedding.weight", (c["vocab"], T), 4), ("positional_embedding", (c["context"], T), 5),
             ("ln_final.weight", (T,), -1), ("ln_final.bias", (T,), 4), ("text_projection", (T, E), fan_exp(T))]
    for l in range(c["tlayers"]):
        spec += [("transformer.resblocks.%d.%s" % (l, k), s, e) for k, s, e in block_tensors("", T)]
    return spec


def state_dict(c):
    seed = c["seed"]
    sd = {}
    for name, shape, e in spec(c):
        sd[name] = torch.from_numpy(rand_values(name, seed, e, int(np.prod(shape))).reshape(shape)).double()
    sd["logit_scale"] = torch.tensor(4.625, dtype=torch.float64)
    return sd

# ---- OpenAI's CLIP architecture (clip/model.py), written again -----------------


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, d, heads, mask=None):
        super().__init__()
        self.attn = nn.MultiheadAttention(d, heads)
        self.ln_1 = nn.LayerNorm(d)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(d, 4 * d))
        self.mlp.add_module("gelu", QuickGELU())
        self.mlp.add_module("c_proj", nn.Linear(4 * d, d))
        self.ln_2 = nn.LayerNorm(d)
        self.mask = mask

    def forward(self, x):  # (L, N, D)
        m = self.mask.to(x.device, x.dtype)[: x.shape[0], : x.shape[0]] if self.mask is not None else None
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=m)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width, layers, heads, mask=None):
        super().__init__()
        self.resblocks = nn.Sequential(*[ResidualAttentionBlock(width, heads, mask) for _ in range(layers)])

    def forward(self, x):
        return self.resblocks(x)


class VisionTransformer(nn.Module):
    def __init__(self, res, patch, width, layers, heads, out):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch, stride=patch, bias=False)
        self.class_embedding = nn.Parameter(torch.zeros(width))
        self.positional_embedding = nn.Parameter(torch.zeros((res // patch) ** 2 + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.zeros(width, out))

    def forward(self, x):
        x = self.conv1(x)
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
        cls = self.class_embedding.to(x.dtype) + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype, device=x.device)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding
        x = self.ln_pre(x).permute(1, 0, 2)
        x = self.transformer(x).permute(1, 0, 2)
        return self.ln_post(x[:, 0, :]) @ self.proj


class CLIP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.visual = VisionTransformer(c["res"], c["patch"], c["width"], c["layers"], max(1, c["width"] // 64), c["embed"])
        ctx = c["context"]
        mask = torch.full((ctx, ctx), float("-inf")).triu_(1)
        self.transformer = Transformer(c["twidth"], c["tlayers"], max(1, c["twidth"] // 64), mask)
        self.token_embedding = nn.Embedding(c["vocab"], c["twidth"])
        self.positional_embedding = nn.Parameter(torch.zeros(ctx, c["twidth"]))
        self.ln_final = nn.LayerNorm(c["twidth"])
        self.text_projection = nn.Parameter(torch.zeros(c["twidth"], c["embed"]))
        self.logit_scale = nn.Parameter(torch.ones([]))

    def encode_image(self, x):
        return self.visual(x)

    def encode_text(self, text):  # full context, as OpenAI computes it
        x = self.token_embedding(text) + self.positional_embedding
        x = self.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)
        x = self.ln_final(x)
        return x[torch.arange(x.shape[0]), text.argmax(dim=-1)] @ self.text_projection

# ---- tokenizer reference (OpenAI SimpleTokenizer + ftfy) ----------------------------


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def ftfy_entities():
    ent = {}
    for name, ch in html.entities.html5.items():
        if name.endswith(";"):
            ent["&" + name] = ch
            if name == name.lower():
                up = "&" + name.upper()
                if html.unescape(up) == up:
                    ent[up] = ch.upper()
    return ent


FTFY_ENT = ftfy_entities()
FTFY_ENT_RE = regex.compile(r"&#?[0-9A-Za-z]{1,24};")
ANSI_RE = regex.compile("\033\\[((?:\\d|;)*)([a-zA-Z])")
LIGATURES = {ord(k): v for k, v in {"Ĳ": "IJ", "ĳ": "ij", "ŉ": "ʼn", "Ǆ": "DŽ", "ǅ": "Dž", "ǆ": "dž", "Ǉ": "LJ",
                                     "ǈ": "Lj", "ǉ": "lj", "Ǌ": "NJ", "ǋ": "Nj", "ǌ": "nj", "Ǳ": "DZ", "ǲ": "Dz",
                                     "ǳ": "dz", "ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl",
                                     "ﬅ": "ſt", "ﬆ": "st"}.items()}
WIDTH = {i: unicodedata.normalize("NFKC", chr(i)) for i in range(0xFF01, 0xFFF0)
         if unicodedata.normalize("NFKC", chr(i)) != chr(i)}
WIDTH[0x3000] = " "
CONTROL = {i: None for i in list(range(0, 9)) + [0x0B] + list(range(0x0E, 0x20)) + [0x7F] +
           list(range(0x206A, 0x2070)) + [0xFEFF] + list(range(0xFFF9, 0xFFFD))}


def ftfy_unescape(m):
    t = m.group(0)
    if t in FTFY_ENT:
        return FTFY_ENT[t]
    if t.startswith("&#"):
        u = html.unescape(t)
        return t if ";" in u else u
    return t


def ftfy_subset(text):
    # fallback without ftfy, only for the model's plain TEXTS: ftfy's
    # fix_segment repeats its steps until the text stops changing
    unescape = "<" not in text
    while True:
        orig = text
        if unescape:
            text = FTFY_ENT_RE.sub(ftfy_unescape, text)
        text = ANSI_RE.sub("", text)
        text = text.translate(LIGATURES).translate(WIDTH)
        text = regex.sub("[\u02bc\u2018-\u201b]", "'", text)
        text = regex.sub("[\u201c-\u201f]", '"', text)
        text = text.translate(CONTROL)
        text = unicodedata.normalize("NFC", text)
        if text == orig:
            return text


class SimpleTokenizer:
    def __init__(self, path):
        self.byte_encoder = bytes_to_unicode()
        merges = gzip.open(path).read().decode("utf-8").split("\n")[1:49152 - 256 - 2 + 1]
        merges = [tuple(m.split()) for m in merges]
        vocab = list(self.byte_encoder.values())
        vocab = vocab + [v + "</w>" for v in vocab] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
        self.encoder = dict(zip(vocab, range(len(vocab))))
        self.ranks = dict(zip(merges, range(len(merges))))
        self.cache = {"<|startoftext|>": "<|startoftext|>", "<|endoftext|>": "<|endoftext|>"}
        self.pat = regex.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
                                 regex.IGNORECASE)

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        pairs = set(zip(word, word[1:]))
        if not pairs:
            return token + "</w>"
        while True:
            bigram = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if bigram not in self.ranks:
                break
            first, second = bigram
            new, i = [], 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                    new.extend(word[i:j])
                    i = j
                except ValueError:
                    new.extend(word[i:])
                    break
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new.append(first + second)
                    i += 2
                else:
                    new.append(word[i])
                    i += 1
            word = tuple(new)
            if len(word) == 1:
                break
            pairs = set(zip(word, word[1:]))
        word = " ".join(word)
        self.cache[token] = word
        return word

    def encode(self, text):
        text = ftfy.fix_text(text) if ftfy else ftfy_subset(text)
        text = html.unescape(html.unescape(text)).strip()
        text = regex.sub(r"\s+", " ", text).strip().lower()
        out = []
        for tok in regex.findall(self.pat, text):
            tok = "".join(self.byte_encoder[b] for b in tok.encode("utf-8"))
            out.extend(self.encoder[t] for t in self.bpe(tok).split(" "))
        return out

    def tokenize(self, text, ctx=77):
        t = [49406] + self.encode(text) + [49407]
        if len(t) > ctx:
            t = t[:ctx]
            t[-1] = 49407
        return t


TRICKY = [
    "a photo of a cat",
    "A Photo Of A CAT!!!",
    "  lots   of\tspaces \t here  ",
    "it's what they're doing, we've seen I'm sure you'll say he'd",
    "IT'S LOUD'S 'sup 'Tis rock'n'roll ''quoted'' '' 'll",
    "numbers 1234567 and 3.14159, 1e10, 0x1F, ½ ² ٣ Ⅻ",
    "punctuation!?.,;:-_()[]{}<>/\\|@#$%^&*~`\"+=",
    "café naïve résumé Ångström façade jalapeño",
    "cafe\u0301 nai\u0308ve decomposed accents",
    "emoji 😀🎉👍🏽 👨‍👩‍👧 ❤️ and flags 🇫🇷",
    "中文字符 日本語のテキスト 한국어 텍스트",
    "Ελληνικά Русский текст עברית العربية हिन्दी ไทย",
    "html &amp; entities &lt;b&gt; &quot;quoted&quot; &#39;x&#39; &#x263A; &eacute; &amp;amp;",
    "with a < sign &amp;amp;amp; unescaped twice only",
    "&AMP; &EACUTE; &Eacute; &amp;amp;amp;amp; &#128512; &#0; &#x110000; &#65534; &#150; &notit; &amp",
    "ﾊﾝｶｸ half-width katakana ￥￦ ￣",
    "Σ ΑΣ. όσος ΟΔΟΣ'Σ ΣΑΣ",
    "\u0345 iota subscript \u1fb3 \u0391\u0345",
    "Hangul jamo \u1100\u1161\u11a8 and \u0041\u030a\u0301 and \u1e0b\u0323",
    "curly ‘quotes’ “double” don’t",
    "ligatures ﬁne ﬂour ﬀ and fullwidth ＡＢＣ１２３！ and\u3000ideographic space",
    "control\x07chars\x1b[31mred\x1b[0m zero\u200bwidth \ufeffbom",
    "<|startoftext|> special <|endoftext|> tokens",
    "x",
    "",
    "İstanbul ǅemal ß ẞ ΣΑΣ",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "a very long caption " + " ".join("word%d" % i for i in range(100)),
    # mojibake that ftfy.fix_text repairs before tokenizing
    "cafÃ© crÃ¨me brÃ»lÃ©e",
    "â€œcurly quotesâ€\x9d and donâ€™t â€” Iâ€™m sure",
    "voilÃ  le travail, Ã la mode",
    "ÐŸÑ€Ð¸Ð²ÐµÑ‚, Ð¼Ð¸Ñ€",
    "emoji ðŸ˜€ðŸŽ‰ and ðŸ‘\x8d",
    "Ã¢â‚¬Å“double mojibakeÃ¢â‚¬Â\x9d",
    "Hello \x93world\x94 \x96 C1 controls\x85",
    "Ð Ð¾Ñ Ñ Ð¸Ñ \x8f with lost A0 bytes",
    "Ã¢Â€Â™ and lossy â€\ufffd",
    "first &amp; line\nsecond < line &amp;\nthird &amp; line",
    "¯\\_(ã\x83\x84)_/¯ &macr;",
    "legit: ÀÉÎÕÜ ¿Qué? ¡Sí! « Bonjour » 20°C µg ×2 Ω≈√",
]

# ---- mojibake for ftfy.jsonl (made here, checked against the real ftfy) --------------

MOJI_SOURCES = [
    "café crème brûlée", "naïve résumé Ångström façade jalapeño", "Straße ZURÜCK Größe Übermut",
    "voilà à la mode, déjà vu", "“curly quotes” and ‘single’ don’t", "em—dash en–dash ellipsis… bullet • €5 ™ © ®",
    "Привет, мир! Съешь же ещё этих булок", "Ελληνικά κείμενα για δοκιμή", "Zażółć gęślą jaźń",
    "Příliš žluťoučký kůň úpěl", "İstanbul Şişli ğüşıöç", "Lietuvių ąčęėįšųūž", "עברית טקסט", "النص العربي",
    "हिन्दी पाठ", "ภาษาไทย", "中文字符测试", "日本語のテキスト", "한국어 텍스트", "emoji 😀🎉👍🏽 ❤️ 🇫🇷 👨‍👩‍👧",
    "½ ² ° µ × ÷ ± ¼", "¯\\_(ツ)_/¯", "non\u00a0breaking\u00a0space", "às vezes àquele à frente", "Ñandú pingüino",
    "Ça coûte 10 €", "Ÿ œ Œ š Š ž Ž ƒ ˆ ˜ ‰ ‹ ›", "Ἀθῆναι", "Ещё раз — «Ёлка»", "math ∑∫√∞≠≤≥",
]
MOJI_ENCODINGS = ["latin-1", "windows-1252", "sloppy-windows-1252", "windows-1251", "sloppy-windows-1251",
                  "windows-1250", "windows-1253", "windows-1254", "windows-1257", "iso-8859-2", "mac_roman", "cp437"]
LEGIT = [
    "ÀÁÂÃÄÅ uppercase accents", "P.S. ©2024 Acme™ Ltd®", "Ω≈ç√∫˜µ≤≥÷", "¿Qué? ¡Sí!", "« Bonjour » dit-il",
    "20°C and 5µg ×2", "│box│ ┌─┐ └─┘", "ΑΒΓΔ ΒΓΞΟ", "ВГРС ВЂ", "Ã is a letter", "Â° alone", "naïve café",
    "Ñ ñ ß ø Ø Ù", "€100 £5 ¥3 ¢1", "§ 3 ¶ 2", "—” he said", "SÃO PAULO", "MÜNCHEN ZÜRICH", "œuvre", "Œdipe",
    "√2 ≈ 1.414", "à²", "Ø Ù Ø Ù", "le Ø Ù", "a Â ", "the ÃÂ cat", "\u00c3 ", "\u00c3\u00a0", "×³", "ā€",
]


def mojibake_cases():
    rnd = random.Random(2024)
    out = []
    for s in MOJI_SOURCES:
        for enc in MOJI_ENCODINGS:
            b = s.encode("utf-8")
            m = b.decode(enc, errors="replace")
            out.append(m)
        out.append(s)
    for s in rnd.sample(MOJI_SOURCES, 12):  # twice
        m = s.encode("utf-8").decode("windows-1252", "replace").encode("utf-8").decode(rnd.choice(["latin-1", "sloppy-windows-1252"]))
        out.append(m)
    for s in rnd.sample(MOJI_SOURCES, 12):  # partly, next to good text of another script
        t = rnd.choice(MOJI_SOURCES)
        out.append(t + " " + s.encode("utf-8").decode("sloppy-windows-1252") + " " + t)
    for s in rnd.sample(MOJI_SOURCES, 12):  # A0 turned into a space; � into ?
        m = s.encode("utf-8").decode(rnd.choice(["latin-1", "sloppy-windows-1252", "windows-1252"]), "replace")
        out.append(m.replace("\u00a0", " "))
        out.append(m.replace("\ufffd", "?"))
    for s in rnd.sample(MOJI_SOURCES, 10):  # C1 controls from Latin-1, alone and in a mix
        out.append(s.encode("windows-1252", "replace").decode("latin-1"))
        out.append(s.encode("utf-8").decode("latin-1")[:12] + " \x93x\x94 \x81")
    for s in ["emoji 😀 and 🎉", "𝒥ohn", "a\u0000b"]:  # CESU-8 and Java's C0 80, decoded as Latin-1
        b = s.encode("utf-16-be", "surrogatepass")
        units = [int.from_bytes(b[i:i + 2], "big") for i in range(0, len(b), 2)]
        cesu = "".join(chr(u) for u in units).encode("utf-8", "surrogatepass").replace(b"\x00", b"\xc0\x80")
        out.append(cesu.decode("latin-1"))
        out.append(cesu.decode("sloppy-windows-1252"))
    out += LEGIT
    out += [l + "\r\n" + l for l in LEGIT[:4]] + ["a\u2028b\u2029c\x85d", "line\rbreak", "\ud7ff\ue000"]
    # short random strings over the characters ftfy's heuristic looks at
    from ftfy import badness, chardata
    pool = set("abcxyz ABC.,?!\n<&;")
    for cls in list(badness.MOJIBAKE_CATEGORIES.values()) + list(chardata.UTF8_CLUES.values()):
        r = regex.compile("[" + cls + "]")
        pool.update(chr(c) for c in range(0x80, 0x2600) if r.fullmatch(chr(c)))
    pool = sorted(pool)
    for _ in range(250):
        out.append("".join(rnd.choice(pool) for _ in range(rnd.randint(2, 9))))
    lit = "ŒœÂÃÎÐ€ŠšŸž\xa0\xad®©°·»–—´×²³ØÙµà¹¼½¾√±∂†≠™≤≥¥ø≈‚ÄìîïòôúùûπâóäêвЂВГРСўβΆΒΓΞΟā¡‘“•›¶§¤│╗"
    for _ in range(300):  # short strings around the rules that name characters
        out.append("".join(rnd.choice(lit) if rnd.random() < 0.6 else rnd.choice("abzAZ .,?!\n\t\u2003_1٣é")
                           for _ in range(rnd.choice([2, 3, 3, 4, 5]))))
    out += ["ГўВЂВ™s", " ГўВЂВ\na", "ГўВЂВ™ ok"]
    for _ in range(60):  # random bytes through the encodings
        b = bytes(rnd.choice([0x20, 0x61, 0xa0, 0xc2, 0xc3, 0xe2, 0x80, 0x9c, 0xed, 0xc0, 0xf0, 0x1a, 0x3f,
                              rnd.randint(0x80, 0xff)]) for _ in range(rnd.randint(2, 10)))
        out.append(b.decode(rnd.choice(["latin-1", "sloppy-windows-1252", "sloppy-windows-1251", "mac_roman", "cp437"])))
    seen, uniq = set(), []
    for t in out:
        if t not in seen:
            seen.add(t)
            uniq.append(t)
    return uniq


TEXTS = ["a photo of a cat", "a red apple on a table", "", "smiling face with heart-eyes 😍",
         "the quick brown fox jumps over the lazy dog " * 6]

# ---- writers ------------------------------------------------------------------------------


def save_npy(path, a):
    np.save(path, np.ascontiguousarray(a, dtype=np.float32))


def make_images():
    rng = np.random.RandomState(7)
    imgs = {}
    a = rng.randint(0, 256, (37, 45, 3), dtype=np.uint8)
    imgs["img_rgb.png"] = Image.fromarray(a, "RGB")
    b = rng.randint(0, 256, (50, 29, 4), dtype=np.uint8)
    imgs["img_rgba.png"] = Image.fromarray(b, "RGBA")
    g = rng.randint(0, 256, (40, 33), dtype=np.uint8)
    imgs["img_grey.png"] = Image.fromarray(g, "L")
    p = Image.fromarray(rng.randint(0, 256, (31, 64, 3), dtype=np.uint8), "RGB").quantize(16)
    imgs["img_pal.png"] = p
    for k, im in imgs.items():
        im.save(os.path.join(OUT, k))
    return sorted(imgs)


def tokenizer_goldens(c):
    if not os.path.exists(VOCAB):
        sys.exit("make_clip.py: no CLIP vocabulary at %s (set L2_TEST_VOCAB)" % VOCAB)
    tok = SimpleTokenizer(VOCAB)
    if ftfy is None:
        print("make_clip.py: no ftfy (set FTFY_SRC): tokens.jsonl and ftfy.jsonl left as they are", file=sys.stderr)
        return tok
    with open(os.path.join(OUT, "tokens.jsonl"), "w", encoding="utf-8") as fh:
        for t in TRICKY:
            fh.write(json.dumps({"text": t, "ids": tok.tokenize(t, c["context"])}, ensure_ascii=True) + "\n")
    with open(os.path.join(OUT, "ftfy.jsonl"), "w", encoding="utf-8") as fh:
        for t in TRICKY + mojibake_cases():
            fh.write(json.dumps({"text": t, "fix_text": ftfy.fix_text(t), "fix_encoding": ftfy.fix_encoding(t),
                                 "is_bad": ftfy.badness.is_bad(t)}, ensure_ascii=False) + "\n")
    return tok


def main():
    os.makedirs(OUT, exist_ok=True)
    c = CFG
    if sys.argv[1:] == ["--tokenizer-only"]:
        tokenizer_goldens(c)
        return
    torch.manual_seed(0)
    model = CLIP(c).double().eval()
    model.load_state_dict(state_dict(c), strict=True)

    tok = tokenizer_goldens(c)
    names = make_images()
    # CLIP's _transform(n_px) exactly (clip/clip.py)
    tf = transforms.Compose([
        transforms.Resize(c["res"], interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.CenterCrop(c["res"]),
        lambda im: im.convert("RGB"),
        transforms.ToTensor(),
        transforms.Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
    ])
    px = torch.stack([tf(Image.open(os.path.join(OUT, n))) for n in names])
    save_npy(os.path.join(OUT, "pixels.npy"), px.numpy())
    with torch.no_grad():
        f = model.encode_image(px.double())
    f = f / f.norm(dim=-1, keepdim=True)
    save_npy(os.path.join(OUT, "image_features.npy"), f.numpy())
    with open(os.path.join(OUT, "image_keys.txt"), "w") as fh:
        fh.write("".join(n + "\n" for n in names))

    ids = torch.zeros(len(TEXTS), c["context"], dtype=torch.long)
    for i, t in enumerate(TEXTS):
        x = tok.tokenize(t, c["context"])
        ids[i, :len(x)] = torch.tensor(x)
    with torch.no_grad():
        tfe = model.encode_text(ids)
    tfe = tfe / tfe.norm(dim=-1, keepdim=True)
    save_npy(os.path.join(OUT, "text_features.npy"), tfe.numpy())
    with open(os.path.join(OUT, "texts.txt"), "w", encoding="utf-8") as fh:
        fh.write("".join(t + "\n" for t in TEXTS))
    with open(os.path.join(OUT, "text_ids.txt"), "w") as fh:
        fh.write("".join(" ".join(str(int(v)) for v in r if v) + "\n" for r in ids))
    with open(os.path.join(OUT, "model.json"), "w") as fh:
        json.dump(c, fh, indent=1)
        fh.write("\n")
    print("make_clip.py: wrote", OUT, file=sys.stderr)


if __name__ == "__main__":
    main()
