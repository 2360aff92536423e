#!/usr/bin/env bash
# r-precision.sh — R-precision of a text-to-image model on a dataset's held-out split: each
# held-out image's primary caption is sampled once, and a sample counts as retrieving at
# rank m when one of that image's captions is among the m captions nearest to it (CLIP
# features, cosine) of all the split's distinct captions — exactly as `l2-dataset
# eval-retrieval` scores the real held-out images, so the two are comparable.
#
#   pipelines/r-precision.sh -m CLIP.safetensors [--vocab V] [--split test] [-o WORKDIR] \
#       DATASET MODEL.safetensors [l2-sample options...]          sample, then score
#   pipelines/r-precision.sh -m CLIP.safetensors [...] DATASET --samples DIR
#                                     score images already named by image key (DIR/KEY)
#   pipelines/r-precision.sh -m CLIP.safetensors [...] DATASET --real
#                                     the real held-out images (the reference)
#
# MODEL is anything l2-sample loads (an l2-train-gan G_ema or an l2-train-diffusion
# model_ema); the options after it go to l2-sample (e.g. --steps 32 --guidance 2).
# Prints eval-retrieval's lines (queries, candidates, k, top1, chance_top1, top5, ...).
# WORKDIR (default: a temporary directory, removed) keeps the samples, streams and index.
set -euo pipefail
bin=${L2_BIN:-$(cd "$(dirname "$0")/.." && pwd)/build/bin}
usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
clip= vocab=() split=test work= samples= real=0
while [ $# -gt 0 ]; do
	case $1 in
	-m) clip=$2; shift 2 ;;
	--vocab) vocab=(--vocab "$2"); shift 2 ;;
	--split) split=$2; shift 2 ;;
	-o) work=$2; shift 2 ;;
	-h | --help) usage ;;
	*) break ;;
	esac
done
[ -n "$clip" ] && [ $# -ge 2 ] || usage
ds=$1 model=$2
shift 2
case $model in
--samples) samples=${1:?--samples needs a directory}; shift ;;
--real) real=1 ;;
esac
if [ -z "$work" ]; then
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
fi
mkdir -p "$work"
# the candidates: every distinct caption of the split
"$bin/l2-dataset" captions --unique --split "$split" "$ds" > "$work/captions.txt"
"$bin/l2-encode-text" --quiet -m "$clip" "${vocab[@]}" "$work/captions.txt" > "$work/captions.l2f"
rm -rf "$work/captions.idx"
"$bin/l2-build-index" --quiet -o "$work/captions.idx" "$work/captions.l2f"
if [ $real = 1 ]; then
	samples=$work/real
	rm -rf "$samples"
	"$bin/l2-dataset" export-images --quiet --rgb --split "$split" -o "$samples" "$ds"
elif [ -z "$samples" ]; then
	# one sample per held-out image, of its primary caption, saved as DIR/KEY
	"$bin/l2-dataset" captions --split "$split" --primary --keys "$ds" > "$work/primary.tsv"
	cut -f2 "$work/primary.tsv" > "$work/primary.txt"
	"$bin/l2-encode-text" --quiet -m "$clip" "${vocab[@]}" "$work/primary.txt" > "$work/primary.l2f"
	rm -rf "$work/drawn" "$work/samples"
	"$bin/l2-sample" --quiet -m "$model" -n 1 "$@" -o "$work/drawn" "$work/primary.l2f"
	samples=$work/samples
	# renamed with builtins only: a subprocess per image made this loop most of an evaluation's
	# time on a loaded machine
	i=0
	mkdir -p "$samples"
	while IFS=$'\t' read -r key _; do
		[[ "$key" == */* ]] && mkdir -p "$samples/${key%/*}"
		printf -v drawn '%s/drawn/%04d-00.png' "$work" $i
		mv "$drawn" "$samples/$key"
		i=$((i + 1))
	done < "$work/primary.tsv"
fi
"$bin/l2-encode-images" --quiet -m "$clip" "$samples" > "$work/samples.l2f"
k=$(wc -l < "$work/captions.txt")
[ "$k" -gt 10 ] && k=10
"$bin/l2-retrieve" -i "$work/captions.idx" -k "$k" "$work/samples.l2f" |
	"$bin/l2-dataset" eval-retrieval --split "$split" "$ds"
