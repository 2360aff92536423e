#!/bin/bash
# submit.sh — the sharded pseudo-feature pipeline as Slurm jobs chained by dependencies:
# encode the corpus and the images as job arrays of N shards, index the captions (one
# job), retrieve + optimise per image shard (an array), merge (one job).
#
#   pipelines/slurm/submit.sh -n 100 -m clip.safetensors -o out/ images.txt corpus.txt
#
# images.txt: image paths, one per line; corpus.txt: one caption per line.  Output:
# OUT/pseudo-optimize.l2f in the order of images.txt, byte-identical to one plain run
# (README "Beyond one machine").  Any sbatch option can be added to every job through
# Slurm's own SBATCH_* variables (SBATCH_PARTITION, SBATCH_ACCOUNT, ...).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
n=8 model= out=out mode=optimize k=16
usage() { echo "usage: submit.sh [-n SHARDS] -m WEIGHTS [-o OUTDIR] [--mode MODE] [-k K] IMAGES.txt CORPUS.txt" >&2; exit 2; }
while [ $# -gt 0 ]; do
	case $1 in
	-n) n=${2:?}; shift ;;
	-m) model=${2:?}; shift ;;
	-o) out=${2:?}; shift ;;
	--mode) mode=${2:?}; shift ;;
	-k) k=${2:?}; shift ;;
	-h | --help) usage ;;
	-*) usage ;;
	*) break ;;
	esac
	shift
done
[ $# -eq 2 ] && [ -n "$model" ] && [[ $n =~ ^[1-9][0-9]*$ ]] || usage
images=$1 corpus=$2
mkdir -p "$out"
shards() { seq -f "$out/$1.%g.l2f" 0 $((n - 1)) | tr '\n' ' '; }
last=$((n - 1))
txt=$(sbatch --parsable --array=0-$last "$here/encode-text.sbatch" "$model" "$corpus" "$out")
img=$(sbatch --parsable --array=0-$last "$here/encode-images.sbatch" "$model" "$images" "$out")
idx=$(sbatch --parsable --dependency=afterok:$txt --job-name=l2-index --cpus-per-task=8 \
	--wrap "l2-cat --unshard $n $(shards captions) > $out/captions.l2f && l2-build-index -o $out/captions.idx $out/captions.l2f")
pse=$(sbatch --parsable --dependency=afterok:$img:$idx --array=0-$last "$here/pseudo.sbatch" "$out" "$mode" "$k")
mrg=$(sbatch --parsable --dependency=afterok:$pse --job-name=l2-merge \
	--wrap "l2-cat --unshard $n $(shards "pseudo-$mode") > $out/pseudo-$mode.l2f && l2-cat --unshard $n $(shards images) > $out/images.l2f")
echo "submitted: text $txt, images $img, index $idx, pseudo $pse, merge $mrg -> $out/pseudo-$mode.l2f"
