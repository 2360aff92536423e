#!/usr/bin/env bats
# l2-dataset: building datasets from folders, captions TSVs and the emoji
# package layout; split, corpus, features, retrieval accuracy, resume.
load test_helper

# make_pngs DIR NAME... — small valid RGBA PNGs (pure Python, no PIL)
make_pngs() {
	python3 - "$@" <<'PY'
import os, struct, sys, zlib
d = sys.argv[1]
def chunk(t, b):
    return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b) & 0xffffffff)
for i, name in enumerate(sys.argv[2:]):
    path = os.path.join(d, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    w = h = 4
    raw = b"".join(b"\0" + b"".join(bytes([(i * 37 + x * 11) % 256, (y * 60) % 256, 90, 255 if x else 0])
                                     for x in range(w)) for y in range(h))
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    open(path, "wb").write(png)
PY
}

# make_nb FILE DIM — a neighbors stream from lines "query<TAB>cap1|cap2|..." on stdin
make_nb() {
	NB_ROWS=$(cat) python3 - "$@" <<'PY'
import os, struct, sys
path, d = sys.argv[1], int(sys.argv[2])
rows = [l.split("\t") for l in os.environ["NB_ROWS"].split("\n") if l.strip()]
k = len(rows[0][1].split("|"))
with open(path, "wb") as f:
    f.write(b"L2FS" + struct.pack("<HHIIQ", 1, 1, d, 0, len(rows)) + b"neighbors".ljust(24, b"\0") +
            struct.pack("<I", k) + b"\0" * 12)
    vec = struct.pack("<%df" % d, *([0.5] * d))
    for q, caps in rows:
        f.write(struct.pack("<I", len(q.encode())) + q.encode() + vec)
        for j, c in enumerate(caps.split("|")):
            f.write(struct.pack("<I", len(c.encode())) + c.encode() + struct.pack("<f", 1.0 - j / 10) + vec)
PY
}

@test "l2-dataset -h prints usage and exits 0" {
	run l2-dataset -h
	assert_success
	assert_output --partial "usage: l2-dataset build"
	run l2-dataset build -h
	assert_success
}

@test "l2-dataset --version" {
	run l2-dataset --version
	assert_success
	assert_output --regexp "^l2-dataset \(l2\) [0-9]+\.[0-9]+"
}

@test "bad options, commands and arguments are usage errors (exit 2)" {
	run l2-dataset build --bogus x y
	assert_failure 2
	run l2-dataset frobnicate x
	assert_failure 2
	assert_output --partial "unknown command 'frobnicate'"
	run l2-dataset
	assert_failure 2
	run l2-dataset build onlyone
	assert_failure 2
	run l2-dataset list --split dev x
	assert_failure 2
	run l2-dataset build --test-fraction 1.5 a b
	assert_failure 2
	run l2-dataset export-features x
	assert_failure 2
	run l2-dataset import-features -n Bad.Name x
	assert_failure 2
}

@test "build from an image folder alone: sorted keys, deterministic split, no captions" {
	make_pngs imgs c.png a.png sub/b.png sub/deeper/d.png
	echo "not an image" > imgs/notes.txt
	run l2-dataset build --test-fraction 0.5 --seed 3 ds imgs
	assert_success
	assert_output --partial "4 images"
	run l2-dataset list ds
	assert_output "$(printf 'a.png\nc.png\nsub/b.png\nsub/deeper/d.png')"
	run l2-dataset stats ds
	assert_line "images	4"
	assert_line "uncaptioned	4"
	assert_line "source	folder"
	assert_line "state	complete"
	# the split depends only on key and seed: a folder made in another order agrees
	make_pngs imgs2 sub/deeper/d.png sub/b.png a.png c.png
	l2-dataset build --quiet --test-fraction 0.5 --seed 3 ds2 imgs2
	diff <(l2-dataset list -l ds) <(l2-dataset list -l ds2)
	# and the test split is the documented hash rule (a Python re-implementation)
	want=$(python3 -c '
import sys
M = (1 << 64) - 1
def u(k, seed):
    h = 0xcbf29ce484222325
    for b in k.encode(): h = ((h ^ b) * 0x100000001b3) & M
    x = h ^ seed
    x ^= x >> 30; x = (x * 0xbf58476d1ce4e5b9) & M; x ^= x >> 27; x = (x * 0x94d049bb133111eb) & M; x ^= x >> 31
    return (x >> 11) / 2.0 ** 53
for k in ["a.png", "c.png", "sub/b.png", "sub/deeper/d.png"]:
    if u(k, 3) < 0.5: print(k)')
	assert_equal "$(l2-dataset list --split test ds)" "$want"
}

@test "build with a captions TSV: several per image, missing captions, orphan lines" {
	make_pngs imgs a.png b.png c.png
	printf 'a.png\tA Red  Square\n./a.png\ta second caption\nb.png\tblue\na.png\tA Red Square\nzzz.png\tno such image\n\nc.png\t   \n' > caps.tsv
	run l2-dataset build --captions caps.tsv ds imgs
	assert_success
	assert_output --partial "1 caption lines name images not in imgs (first: zzz.png)"
	run l2-dataset captions --keys ds
	assert_output "$(printf 'a.png\tA Red Square\na.png\ta second caption\nb.png\tblue')"
	run l2-dataset captions --primary ds
	assert_output "$(printf 'A Red Square\nblue')"
	run l2-dataset stats ds
	assert_line "captioned	2"
	assert_line "uncaptioned	1"
	assert_line "captions	3"
	assert_line "source	tsv"
	run l2-dataset corpus ds
	assert_output "$(printf 'A Red Square\na second caption\nblue')"
	run l2-dataset list -l ds
	assert_line "$(printf 'c.png\t%s\t' "$(l2-dataset list -l ds | awk -F'\t' '$1 == "c.png" { print $2 }')")"
}

@test "captions --unique per split, corpus sources, add-corpus" {
	make_pngs imgs a.png b.png
	printf 'a.png\tcat\nb.png\tcat\nb.png\tdog\n' > caps.tsv
	printf 'a distractor\ncat\n' > extra.txt
	l2-dataset build --quiet --test-fraction 0 --captions caps.tsv --corpus extra.txt --source wordnet ds imgs
	run l2-dataset captions --unique ds
	assert_output "$(printf 'cat\ndog')"
	run l2-dataset captions --unique --split test ds
	assert_output ""
	run l2-dataset corpus --source wordnet ds
	assert_output "a distractor"
	printf 'more text\ndog\n' | l2-dataset add-corpus --quiet --source extra ds
	run l2-dataset stats ds
	assert_line "corpus	4"
	assert_line "corpus.extra	1"
}

@test "a malformed captions TSV is an error naming the line, and nothing is written" {
	make_pngs imgs a.png
	printf 'a.png\tok\nno tab here\n' > caps.tsv
	run l2-dataset build --captions caps.tsv ds imgs
	assert_failure 1
	assert_output "l2-dataset: caps.tsv: line 2: expected 'relative/path<TAB>caption'"
	assert [ ! -e ds ]
	run l2-dataset build --captions missing.tsv ds imgs
	assert_failure 1
	assert_output --partial "missing.tsv"
}

@test "a corrupt image stops the build (no dataset); --skip-bad leaves it out" {
	make_pngs imgs a.png c.png
	head -c 40 imgs/a.png > imgs/b.png
	run l2-dataset build ds imgs
	assert_failure 1
	assert_output --regexp "^l2-dataset: imgs/b.png: "
	assert [ ! -e ds ]
	run l2-dataset build --skip-bad ds imgs
	assert_failure 1
	assert_output --partial "an interrupted build is there"
	rm -rf ds.partial
	run l2-dataset build --skip-bad ds imgs
	assert_success
	assert_output --partial "imgs/b.png"
	assert_output --partial "1 bad images skipped"
	run l2-dataset list ds
	assert_output "$(printf 'a.png\nc.png')"
}

@test "an interrupted build resumes and ends equal to a straight build" {
	names=$(seq -f 'img%03g.png' 1 40)
	make_pngs imgs $names
	for n in $names; do printf '%s\tcaption of %s\n%s\tsecond %s\n' "$n" "$n" "$n" "$n"; done > caps.tsv
	cp -r imgs good
	head -c 50 imgs/img031.png > bad && mv bad imgs/img031.png
	run l2-dataset build --checkpoint 1 --captions caps.tsv --seed 9 ds imgs
	assert_failure 1
	assert [ -d ds.partial ]
	assert [ ! -e ds ]
	# what was committed before the failure survives
	run mdb_stat -s split ds.partial
	assert_output --partial "Entries: 30"
	cp good/img031.png imgs/img031.png
	run l2-dataset build --checkpoint 1 --captions caps.tsv --seed 9 ds imgs
	assert_failure 1
	assert_output --partial "--resume"
	run l2-dataset build --resume --checkpoint 1 --captions caps.tsv --seed 9 ds imgs
	assert_success
	assert_output --partial "40 images"
	assert_output --regexp "1[01] added now"
	assert [ ! -e ds.partial ]
	l2-dataset build --quiet --captions caps.tsv --seed 9 straight good
	diff <(l2-dataset list -l ds) <(l2-dataset list -l straight)
	diff <(l2-dataset captions --keys ds) <(l2-dataset captions --keys straight)
	l2-dataset export-images -o e1 ds --quiet
	l2-dataset export-images -o e2 straight --quiet
	diff -r e1 e2
	diff -r e1 good
}

@test "resume refuses other split settings" {
	make_pngs imgs a.png
	head -c 30 imgs/a.png > imgs/b.png
	run l2-dataset build --seed 1 ds imgs
	assert_failure 1
	rm imgs/b.png
	run l2-dataset build --resume --seed 2 ds imgs
	assert_failure 1
	assert_output --partial "was started with --seed 1, not 2"
}

@test "an existing dataset is kept unless --force" {
	make_pngs imgs a.png
	l2-dataset build --quiet ds imgs
	run l2-dataset build ds imgs
	assert_failure 1
	assert_output "l2-dataset: ds: exists (use --force to replace it)"
	make_pngs imgs b.png
	l2-dataset build --quiet --force ds imgs
	assert_equal "$(l2-dataset list ds | wc -l)" 2
}

@test "empty folder, missing folder, unwritable output" {
	mkdir empty
	run l2-dataset build ds empty
	assert_failure 1
	assert_output "l2-dataset: empty: no PNG or JPEG images in it"
	run l2-dataset build ds nowhere
	assert_failure 1
	assert_output "l2-dataset: nowhere: not a directory"
	make_pngs imgs a.png
	run l2-dataset build /proc/l2-no/ds imgs
	assert_failure 1
}

@test "reading something that is not a dataset is an error" {
	run l2-dataset list nowhere
	assert_failure 1
	assert_output --partial "nowhere"
	mkdir plain
	run l2-dataset stats plain
	assert_failure 1
}

@test "export-images: original bytes, or RGB over the background" {
	make_pngs imgs a.png sub/b.png
	l2-dataset build --quiet ds imgs
	l2-dataset export-images --quiet -o out ds
	diff -r imgs out
	l2-dataset export-images --quiet --rgb -o rgb ds
	# IHDR: bit depth 8, colour type 2 (RGB)
	assert_equal "$(od -An -tu1 -j24 -N2 rgb/sub/b.png | tr -s ' ')" " 8 2"
	assert_equal "$(od -An -tu1 -j24 -N2 out/sub/b.png | tr -s ' ')" " 8 6"
	run l2-dataset export-images ds
	assert_failure 2
}

# first_pixel PNG — "R G B" of the top-left pixel of an 8-bit RGB PNG (filter byte 0 or 1)
first_pixel() {
	python3 - "$1" <<'PY'
import struct, sys, zlib
b = open(sys.argv[1], "rb").read()
i, idat = 8, b""
while i < len(b):
    n = struct.unpack(">I", b[i:i + 4])[0]
    if b[i + 4:i + 8] == b"IDAT": idat += b[i + 8:i + 8 + n]
    i += 12 + n
print(*zlib.decompress(idat)[1:4])
PY
}

@test "build --background: alpha composited over it wherever images become RGB; kept on resume" {
	make_pngs imgs a.png
	l2-dataset build --quiet --background 0,128,255 ds imgs
	run l2-store info ds
	assert_line "$(printf 'meta\tbackground\t0080ff')"
	# the top-left pixel is fully transparent: the background, not its stored RGB
	l2-dataset export-images --quiet --rgb -o rgb ds
	assert_equal "$(first_pixel rgb/a.png)" "0 128 255"
	l2-dataset build --quiet plain imgs
	l2-dataset export-images --quiet --rgb -o rgb-plain plain
	assert_equal "$(first_pixel rgb-plain/a.png)" "0 0 90"
	# a resumed build keeps the colour it was started with
	head -c 30 imgs/a.png > imgs/b.png
	run l2-dataset build --background 255,255,255 ds2 imgs
	assert_failure 1
	rm imgs/b.png
	run l2-dataset build --resume --background 0,0,0 ds2 imgs
	assert_failure 1
	assert_output --partial "was started with --background ffffff, not 000000"
	for bad in 1,2 1,2,256 -1,2,3 a,b,c 1,2,3,4 " 1,2,3"; do
		run l2-dataset build --background "$bad" ds3 imgs
		assert_failure 2
		assert_output --partial "invalid value for --background"
	done
	run l2-dataset emoji --background 1,2,3 ds4 imgs
	assert_failure 2
	assert_output --partial "--background is an option of build"
}

@test "features: import and export round trip, kind and dimension checks" {
	make_pngs imgs a.png b.png c.png
	l2-dataset build --quiet --test-fraction 0.5 ds imgs
	make_npy x.npy 3 8
	printf 'a.png\nb.png\nc.png\n' > keys.txt
	l2-cat --from-npy x.npy --keys keys.txt --normalize > f.l2f
	l2-dataset import-features --quiet -n image --model m.safetensors ds f.l2f
	l2-dataset export-features -n image ds > g.l2f
	cmp <(l2-cat f.l2f) <(l2-cat g.l2f)
	run l2-dataset stats ds
	assert_line --regexp "^feature	image	image-feature	8	f32,normalized	3$"
	# the split selects images
	n=$(l2-dataset export-features -n image --split test ds | l2-cat --count)
	assert_equal "$n" "$(l2-dataset list --split test ds | wc -l)"
	# the alias pseudo.mk uses
	l2-cat --from-npy x.npy --keys keys.txt --kind pseudo-text-feature > p.l2f
	l2-dataset put-features ds pseudo p.l2f --quiet
	# mismatches
	make_npy y.npy 3 5
	l2-cat --from-npy y.npy --keys keys.txt > y.l2f
	run l2-dataset import-features -n image ds y.l2f
	assert_failure 1
	assert_output --partial "feature set 'image' holds image-feature dim 8, not image-feature dim 5"
	printf 'a.png\nb.png\nnope.png\n' > bad.txt
	l2-cat --from-npy x.npy --keys bad.txt > z.l2f
	run l2-dataset import-features -n other ds z.l2f
	assert_failure 1
	assert_output --partial "key 'nope.png' is not an image of ds"
	run l2-dataset export-features -n missing ds
	assert_failure 1
	assert_output --partial "no feature set 'missing'"
	# text features are keyed by caption text, any text
	printf 'a cat\nthe dog\nüñí\n' > t.txt
	l2-cat --from-npy x.npy --keys t.txt --kind text-feature > t.l2f
	l2-dataset import-features --quiet -n caption ds < t.l2f
	run l2-dataset export-features -n caption --split test ds
	assert_failure 1
}

@test "eval-retrieval: top-1/top-5 and chance" {
	make_pngs imgs a.png b.png c.png d.png
	printf 'a.png\tcat\na.png\tkitten\nb.png\tdog\nc.png\tcow\nd.png\then\n' > caps.tsv
	l2-dataset build --quiet --test-fraction 0 --captions caps.tsv ds imgs
	make_nb nb.l2f 4 <<-EOF
	a.png	kitten|dog|cow|hen|cat
	b.png	cat|dog|cow|hen|kitten
	c.png	cat|dog|kitten|hen|cow
	d.png	cat|dog|kitten|cow|x
	EOF
	run l2-dataset eval-retrieval ds nb.l2f
	assert_success
	assert_line "queries	4"
	assert_line "candidates	5"
	assert_line "top1	0.2500"
	assert_line "top5	0.7500"
	# chance top-1: (2/5 + 1/5 + 1/5 + 1/5) / 4 = 0.25; top-5 of 5 candidates: 1
	assert_line "chance_top1	0.2500"
	assert_line "chance_top5	1.0000"
	run l2-dataset eval-retrieval --candidates 100 ds nb.l2f
	assert_line "chance_top1	0.0125"
	run l2-dataset eval-retrieval --split test ds nb.l2f
	assert_failure 1
	make_npy x.npy 2 4
	l2-cat --from-npy x.npy > notnb.l2f
	run l2-dataset eval-retrieval ds notnb.l2f
	assert_failure 1
	assert_output --partial "neighbors"
}

# a two-entry miniature of the npm package's layout
make_emoji_pkg() {
	mkdir -p pkg/img/google/64
	make_pngs pkg/img/google/64 1f600.png 1f44b.png 1f44b-1f3fb.png 1f44b-1f3ff.png 1f1ea-1f1ec.png
	cat > pkg/emoji.json <<-'EOF'
	[{"name":"GRINNING FACE","unified":"1F600","image":"1f600.png","short_name":"grinning","short_names":["grinning"],"category":"Smileys & Emotion","subcategory":"face-smiling","has_img_google":true},
	 {"name":"WAVING HAND SIGN","unified":"1F44B","image":"1f44b.png","short_names":["wave","waving_hand"],"category":"People & Body","subcategory":"hand-fingers-open","has_img_google":true,
	  "skin_variations":{"1F3FB":{"unified":"1F44B-1F3FB","image":"1f44b-1f3fb.png","has_img_google":true},
	                     "1F3FF":{"unified":"1F44B-1F3FF","image":"1f44b-1f3ff.png","has_img_google":true},
	                     "1F3FC":{"unified":"1F44B-1F3FC","image":"1f44b-1f3fc.png","has_img_google":true}}},
	 {"name":"Egypt Flag","unified":"1F1EA-1F1EC","image":"1f1ea-1f1ec.png","short_names":["flag-eg"],"category":"Flags","has_img_google":true},
	 {"name":"NO GOOGLE IMAGE","unified":"1F999","image":"1f999.png","short_names":["x"],"category":"Symbols","has_img_google":false}]
	EOF
	echo '{"name":"emoji-datasource-google","version":"9.9.9"}' > pkg/package.json
	echo 'MIT' > pkg/LICENSE
}

@test "emoji: captions, skin tones, split by emoji, attributes, corpus" {
	make_emoji_pkg
	printf 'gloss one\ngloss two\n' > gl.txt
	run l2-dataset emoji --test-fraction 0.5 --corpus gl.txt --source wordnet ds pkg
	assert_success
	assert_output --partial "5 images"
	run l2-dataset captions --keys ds
	assert_line "$(printf '1f600.png\tgrinning face')"
	assert_line "$(printf '1f600.png\tgrinning')"
	assert_line "$(printf '1f44b.png\twaving hand sign')"
	assert_line "$(printf '1f44b.png\twaving hand')"
	assert_line "$(printf '1f44b-1f3fb.png\twaving hand sign: light skin tone')"
	assert_line "$(printf '1f44b-1f3ff.png\twave: dark skin tone')"
	assert_line "$(printf '1f1ea-1f1ec.png\tegypt flag')"
	assert_line "$(printf '1f1ea-1f1ec.png\tflag-eg')"
	# variants fall on their base emoji's side, for any seed
	for seed in 1 2 3 4 5 6 7 8; do
		l2-dataset emoji --quiet --force --seed $seed --test-fraction 0.5 s$seed pkg
		l2-dataset list -l s$seed | awk -F'\t' '$1 ~ /^1f44b/ { print $2 }' | sort -u | wc -l | grep -qx 1
	done
	run l2-dataset stats ds
	assert_line "source	emoji-datasource-google 9.9.9"
	assert_line "background	ffffff"
	assert_line "corpus.wordnet	2"
	run l2-dataset corpus --source caption ds
	refute_line "waving hand sign: medium-light skin tone"
	assert_line "egypt flag"
	refute_line "no google image"
	run mdb_dump -p -s attrs ds
	assert_output --partial "category\\09People & Body"
}

@test "emoji: --no-skin-tones, and a directory that is not the package" {
	make_emoji_pkg
	l2-dataset emoji --quiet --no-skin-tones ds pkg
	assert_equal "$(l2-dataset list ds | wc -l)" 3
	mkdir other
	run l2-dataset emoji ds2 other
	assert_failure 1
	assert_output "l2-dataset: other: no emoji.json (is this the emoji-datasource-google package?)"
	mkdir -p broken/img/google/64 && echo '[{"name": ' > broken/emoji.json
	run l2-dataset emoji ds3 broken
	assert_failure 1
	assert_output --partial "broken/emoji.json: line"
}

@test "pipelines/emoji.sh: from a cached package tarball, with WordNet distractors, resumable" {
	make_emoji_pkg
	mkdir -p cache wn
	tar -czf cache/emoji-datasource-google-9.9.9.tgz --transform 's,^pkg,package,' pkg
	printf '00001740 03 n 01 entity 0 | that which is perceived to exist\n00002137 03 n 01 thing 0 | a separate and self-contained entity\n' > wn/data.noun
	: > wn/data.verb; : > wn/data.adj; : > wn/data.adv
	export L2_CACHE=$PWD/cache EMOJI_VERSION=9.9.9 WORDNET=$PWD/wn DISTRACTORS=1 L2_BIN=$L2_BUILD/bin
	run "$L2_ROOT/pipelines/emoji.sh" out.lmdb
	assert_success
	assert_output --partial "5 images"
	run l2-dataset stats out.lmdb
	assert_line "corpus.wordnet	1"
	assert_line "background	ffffff"
	assert [ -f cache/emoji-datasource-google-9.9.9/package/emoji.json ]
	# a second run reuses the unpacked package and rebuilds the dataset the same way
	rm cache/emoji-datasource-google-9.9.9.tgz
	l2-dataset list -l out.lmdb > before.txt
	run "$L2_ROOT/pipelines/emoji.sh" out.lmdb
	assert_success
	diff before.txt <(l2-dataset list -l out.lmdb)
}

@test "--shard on list, captions and export-images: blocks of A lines or images dealt round N" {
	make_pngs imgs a.png b.png c.png d.png e.png
	printf 'a.png\tone\na.png\ttwo\nb.png\tthree\nc.png\tfour\nd.png\tfive\ne.png\tsix\n' > caps.tsv
	l2-dataset build --quiet --captions caps.tsv ds imgs
	# list, 3 shards in blocks of 1: lines 0,3 / 1,4 / 2
	assert_equal "$(l2-dataset list --quiet --shard 0/3:1 ds)" "$(printf 'a.png\nd.png')"
	assert_equal "$(l2-dataset list --quiet --shard 2/3:1 ds)" "c.png"
	# captions: a record is an output line (a.png has two), in blocks of 2
	assert_equal "$(l2-dataset captions --quiet --keys --shard 0/2:2 ds)" "$(printf 'a.png\tone\na.png\ttwo\nd.png\tfive\ne.png\tsix')"
	assert_equal "$(l2-dataset captions --quiet --unique --shard 1/2:2 ds)" "$(printf 'one\nsix')"
	# the shards taken A at a time in turn are the plain lines; one shard of 1 is the plain run
	for i in 0 1 2; do l2-dataset captions --quiet --shard $i/3:1 ds > c.$i; done
	paste -d'\n' c.0 c.1 c.2 | sed '/^$/d' > merged
	l2-dataset captions --quiet ds > plain
	cmp merged plain
	cmp plain <(l2-dataset captions --quiet --shard 0/1 ds)
	# export-images: the shards together fill the plain folder
	for i in 0 1 2; do l2-dataset export-images --quiet --shard $i/3:1 -o out ds; done
	diff -r imgs out
	run l2-dataset export-images --shard 1/3:2 -o out1 ds
	assert_success
	assert_output --partial "out1: 2 images written"
	assert_equal "$(cd out1 && ls)" "$(printf 'c.png\nd.png')"
	run l2-dataset stats --shard 0/2 ds
	assert_failure 2
	assert_output --partial "--shard goes with list, captions and export-images"
	run l2-dataset list --shard 3/2 ds
	assert_failure 2
}
