#!/bin/sh
# emoji.sh [DATASET] — the bundled emoji dataset: fetch the npm package
# emoji-datasource-google on demand into a cache, and build an l2 dataset
# from it (schemas/dataset.md, "Emoji dataset"): 64x64 PNGs, lower-cased
# names (+ short names) as captions, a train/test split by emoji, and a
# caption corpus of all captions plus WordNet glosses as distractors.
#
# Environment (all optional):
#   L2_CACHE          download cache (default: demo/cache in the checkout)
#   EMOJI_VERSION     package version (default 16.0.0, the one tested)
#   TEST_FRACTION     test share (default 0.1)      SEED   split seed (default 0)
#   DISTRACTORS       WordNet glosses in the corpus (default 20000; 0 = none)
#   WORDNET           WordNet data directory (default /usr/share/wordnet)
#   SKIN_TONES        1 (default) keeps the skin-tone variants, 0 leaves them out
#   L2_BIN            where the l2 tools are (default: build/bin, then PATH)
# The dataset defaults to $L2_CACHE/emoji.lmdb.  Nothing is fetched when the
# package is already in the cache; the build is resumed when interrupted.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${L2_CACHE:-$root/demo/cache}
version=${EMOJI_VERSION:-16.0.0}
out=${1:-$cache/emoji.lmdb}
test_fraction=${TEST_FRACTION:-0.1}
seed=${SEED:-0}
distractors=${DISTRACTORS:-20000}
wordnet=${WORDNET:-/usr/share/wordnet}
skin=${SKIN_TONES:-1}
bin=${L2_BIN:-}
[ -z "$bin" ] && [ -x "$root/build/bin/l2-dataset" ] && bin=$root/build/bin
dataset=${bin:+$bin/}l2-dataset
glosses_tool=${bin:+$bin/}l2-wordnet-glosses

say() { printf 'emoji.sh: %s\n' "$*" >&2; }
die() { printf 'emoji.sh: %s\n' "$*" >&2; exit 1; }

command -v "$dataset" >/dev/null 2>&1 || die "$dataset not found (run make, or set L2_BIN)"
mkdir -p "$cache"

# 1. the package, fetched once with npm pack (a tarball; no node_modules)
pkg=$cache/emoji-datasource-google-$version
if [ ! -f "$pkg/package/emoji.json" ]; then
	command -v npm >/dev/null 2>&1 || die "npm is needed to fetch emoji-datasource-google (apt-get install npm, or make deps-demo)"
	tgz=$cache/emoji-datasource-google-$version.tgz
	if [ ! -f "$tgz" ]; then
		say "fetching emoji-datasource-google@$version with npm (about 75 MB, once)"
		tmp=$(mktemp -d "$cache/npm.XXXXXX")
		(cd "$tmp" && npm pack --silent "emoji-datasource-google@$version" >/dev/null) ||
			{ rm -rf "$tmp"; die "npm pack emoji-datasource-google@$version failed"; }
		mv "$tmp"/emoji-datasource-google-*.tgz "$tgz.part"
		rm -rf "$tmp"
		mv "$tgz.part" "$tgz"
	fi
	say "unpacking emoji.json and the 64x64 images"
	rm -rf "$pkg.part"
	mkdir -p "$pkg.part"
	tar -xzf "$tgz" -C "$pkg.part" package/emoji.json package/package.json package/LICENSE \
		--wildcards 'package/img/google/64/*' || die "$tgz: cannot unpack (delete it to fetch again)"
	rm -rf "$pkg"
	mv "$pkg.part" "$pkg"
fi

# 2. distractor captions: WordNet glosses (Debian wordnet-base)
corpus_opts=
if [ "$distractors" != 0 ]; then
	if [ -f "$wordnet/data.noun" ]; then
		glosses=$cache/wordnet-glosses-$distractors.txt
		if [ ! -f "$glosses" ]; then
			"$glosses_tool" --max "$distractors" --seed "$seed" "$wordnet" > "$glosses.part"
			mv "$glosses.part" "$glosses"
		fi
		corpus_opts="--corpus $glosses --source wordnet"
	else
		say "warning: $wordnet/data.noun missing (apt-get install wordnet-base); corpus without distractors"
	fi
fi

# 3. the dataset (resumed when a previous build was interrupted)
skin_opt=
[ "$skin" = 0 ] && skin_opt=--no-skin-tones
resume=
[ -d "$out.partial" ] && resume=--resume && say "resuming the interrupted build in $out.partial"
say "building $out"
# shellcheck disable=SC2086
"$dataset" emoji --progress --force $resume $skin_opt --test-fraction "$test_fraction" --seed "$seed" \
	$corpus_opts "$out" "$pkg/package"
