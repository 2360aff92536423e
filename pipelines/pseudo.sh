#!/usr/bin/env bash
# pseudo.sh — pseudo text features for a folder of images, from a caption
# corpus, stored with the images in an LMDB dataset (Lafite2's language-free
# setting).  The steps (rules in pipelines/pseudo.mk):
#
#   l2-encode-text -m W CAPTIONS.txt | l2-build-index -o OUT/captions.idx
#   l2-encode-images -m W IMAGE_DIR > OUT/images.l2f
#   l2-retrieve -i OUT/captions.idx -k K OUT/images.l2f | l2-optimize-pseudo > OUT/pseudo-optimize.l2f
#   l2-dataset put-features OUT/dataset.lmdb pseudo OUT/pseudo-optimize.l2f
#
# Usage: pipelines/pseudo.sh IMAGE_DIR CAPTIONS.txt -m CLIP_WEIGHTS [options] [-- PSEUDO_OPTIONS]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

usage() {
	cat <<EOF
usage: pipelines/pseudo.sh IMAGE_DIR CAPTIONS.txt -m CLIP_WEIGHTS [options] [-- L2-OPTIMIZE-PSEUDO OPTIONS]
       pipelines/pseudo.sh --image-features IMG.l2f --text-features TXT.l2f [options]
Pseudo text features for the images of IMAGE_DIR, retrieved from the caption corpus
CAPTIONS.txt (one caption per line) and optimised, then stored with the images in an
LMDB dataset (schemas/dataset.md).

  -m, --model FILE        CLIP weights for l2-encode-images and l2-encode-text
      --vocab FILE        BPE vocabulary for l2-encode-text
  -o, --output DIR        working and output directory (default pseudo-out)
      --mode MODE         optimize (default), retrieve, gaussian, or all (the three)
  -k K                    neighbours retrieved per image (default 16)
      --dataset DIR       the dataset to store into (default OUT/dataset.lmdb, built from
                          IMAGE_DIR when it does not exist)
      --no-store          make the feature streams only
      --image-features F  use this image-feature stream instead of encoding IMAGE_DIR
      --text-features F   use this text-feature stream instead of encoding CAPTIONS.txt
  -j N                    parallel make jobs (default 1)
  -h, --help              this help
Options after -- go to l2-optimize-pseudo (e.g. -- --steps 20 --report).
Outputs: OUT/pseudo-MODE.l2f, OUT/report-MODE.tsv, OUT/dataset.lmdb (feat.image, feat.pseudo,
feat.pseudo-retrieve, feat.pseudo-gaussian).  Re-running redoes only what changed.
EOF
}

die() { echo "pseudo.sh: $*" >&2; exit 1; }

model= vocab= out=pseudo-out mode=optimize k=16 dataset= store= imgf= txtf= jobs=1
pos=() extra=()
while [ $# -gt 0 ]; do
	case $1 in
	-h | --help) usage; exit 0 ;;
	-m | --model) model=${2:?}; shift ;;
	--vocab) vocab=${2:?}; shift ;;
	-o | --output) out=${2:?}; shift ;;
	--mode) mode=${2:?}; shift ;;
	-k) k=${2:?}; shift ;;
	--dataset) dataset=${2:?}; shift ;;
	--no-store) store=0 ;;
	--image-features) imgf=${2:?}; shift ;;
	--text-features) txtf=${2:?}; shift ;;
	-j) jobs=${2:?}; shift ;;
	--) shift; extra=("$@"); break ;;
	-*) usage >&2; echo "pseudo.sh: unknown option '$1'" >&2; exit 2 ;;
	*) pos+=("$1") ;;
	esac
	shift
done
[ ${#pos[@]} -le 2 ] || { usage >&2; exit 2; }
images=${pos[0]:-} captions=${pos[1]:-}
case $mode in
optimize | retrieve | gaussian) modes=$mode ;;
all) modes="optimize retrieve gaussian" ;;
*) echo "pseudo.sh: unknown mode '$mode' (optimize, retrieve, gaussian or all)" >&2; exit 2 ;;
esac
[[ $k =~ ^[1-9][0-9]*$ ]] || { echo "pseudo.sh: invalid value for -k: '$k'" >&2; exit 2; }
[ -n "$images" ] || [ -n "$imgf" ] || { usage >&2; exit 2; }
[ -z "$images" ] || [ -d "$images" ] || die "$images: not a directory"
[ -z "$captions" ] || [ -r "$captions" ] || die "$captions: cannot read"
[ -z "$imgf" ] || [ -r "$imgf" ] || die "$imgf: cannot read"
[ -z "$txtf" ] || [ -r "$txtf" ] || die "$txtf: cannot read"
if [ "$modes" != gaussian ] && [ -z "$txtf" ] && [ -z "$captions" ]; then
	die "a caption corpus is needed (CAPTIONS.txt or --text-features) for mode $mode"
fi
if { [ -z "$imgf" ] || { [ "$modes" != gaussian ] && [ -z "$txtf" ]; }; } && [ -z "$model" ]; then
	die "CLIP weights are needed to encode (-m FILE), or give --image-features/--text-features"
fi
[ -z "$model" ] || [ -r "$model" ] || die "$model: cannot read"
[ -n "$store" ] || store=$([ -n "$images" ] && echo 1 || echo 0)

# tools: $L2_BUILD/bin, else the build beside this script ($BUILD, default build), else PATH
if [ -n "${L2_BUILD:-}" ] && [ -x "$L2_BUILD/bin/l2-optimize-pseudo" ]; then bin=$L2_BUILD/bin/
elif [ -x "$root/${BUILD:-build}/bin/l2-optimize-pseudo" ]; then bin=$root/${BUILD:-build}/bin/
else bin=; fi
need=(l2-optimize-pseudo)
[ "$modes" = gaussian ] || need+=(l2-build-index l2-retrieve)
[ -n "$imgf" ] || need+=(l2-encode-images)
[ -n "$txtf" ] || [ "$modes" = gaussian ] || need+=(l2-encode-text)
[ "$store" = 0 ] || need+=(l2-dataset)
for t in "${need[@]}"; do
	command -v "$bin$t" >/dev/null || die "$t not found (build it with make, or put it on PATH)"
done

abs() { [ -z "$1" ] || (cd "$(dirname "$1")" && echo "$PWD/$(basename "$1")"); }
args=(OUT="$out" K="$k" MODES="$modes" STORE="$store" BIN="$bin")
[ -z "$images" ] || args+=(IMAGES="$(abs "$images")")
[ -z "$captions" ] || args+=(CAPTIONS="$(abs "$captions")")
[ -z "$model" ] || args+=(MODEL="$(abs "$model")")
[ -z "$vocab" ] || args+=(VOCAB="$(abs "$vocab")")
[ -z "$imgf" ] || args+=(IMAGE_FEATURES="$(abs "$imgf")")
[ -z "$txtf" ] || args+=(TEXT_FEATURES="$(abs "$txtf")")
[ -z "$dataset" ] || args+=(DATASET="$dataset")
[ ${#extra[@]} -eq 0 ] || args+=(PSEUDO_FLAGS="$(printf '%q ' "${extra[@]}")")
make --no-print-directory -j"$jobs" -f "$here/pseudo.mk" "${args[@]}" all
for m in $modes; do
	echo "pseudo.sh: $out/pseudo-$m.l2f ($(tail -n 1 "$out/report-$m.tsv" | cut -f2) images; diagnostics in $out/report-$m.tsv)"
done
[ "$store" = 0 ] || echo "pseudo.sh: stored in ${dataset:-$out/dataset.lmdb}"
