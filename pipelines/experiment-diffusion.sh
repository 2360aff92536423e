#!/usr/bin/env bash
# experiment-diffusion.sh — the diffusion quality experiment (make experiment-diffusion) on the
# demo's emoji set at 32x32, fully supervised (--cond text), one seed:
#   (a) presets   tiny / small / base trained for the same compute budget, each scored;
#   (b) samplers  FD against network evaluations for each SAMPLERS x STEPS, on the (a) model
#                 named by EXP_MODEL_PRESET (guidance EXP_W);
#   (c) guidance  w in GUIDANCE, without and with the interval EXP_INTERVAL (dpmpp-2m, 16 steps);
#   (d) long      the LONG_PRESET model (default EXP_MODEL_PRESET) trained for LONG_STEPS steps
#                 (small: about 45 minutes on 2 idle threads, an hour on less), on the
#                 EDM2-style schedule of a LONG_AT-step run (warm-up LONG_AT/10, 1/sqrt decay
#                 after LONG_AT/5), stopped at step LONG_AT (about 20 minutes; LONG_AT_THREADS threads,
#                 timed) and resumed bit for bit: both points scored, the end with both EMAs;
#   (e) GAN       l2-train-gan (the demo's network, --cond text) for the same budget as the
#                 EXP_MODEL_PRESET diffusion model, scored the same way;
#   (f) forms     at the same budget as the EXP_MODEL_PRESET model (32x32 pixels, the condition
#                 added to the noise embedding): 64x64 pixels with --patch 2, cross-attention
#                 conditioning (--cond-tokens EXP_TOKENS), and latent diffusion only when
#                 EXP_VAE names real autoencoder weights (a random-weight VAE is no quality run).
# Every score is over one sample per held-out image (its primary caption): the CLIP-feature
# Frechet distance to the held-out images (l2-fid), the CLIP score (mean cosine of a sample
# with its caption) and R-precision top-1/top-5 (pipelines/r-precision.sh: the sample's own
# caption among the split's distinct captions, as eval-retrieval scores the real images).
#
# "Same budget" is CPU time, not wall time: this machine is shared, so each trainer's cost per
# step is measured first (CPU seconds of a 3-step run subtracted from a 13-step one, both
# 2 threads) and its steps are BUDGET / that cost.  On an idle 2-core machine the two agree
# up to the threads' efficiency.
#
#   pipelines/experiment-diffusion.sh        (make experiment-diffusion; after make demo's feature half)
# Environment: BIN, DATASET, MODEL (the demo's CLIP), VOCAB, W (the demo's work directory, for
# test-images.l2f), EXP (work directory, default $W/exp-diffusion), RESULTS (the Markdown
# written, default bench/results/diffusion.md), BUDGET (CPU seconds per trainer, default 1200),
# PRESETS (default "tiny small base"), EXP_MODEL_PRESET (default small), SAMPLERS (default
# "euler heun dpmpp-2m euler-a"), STEPS (default "8 16 32"), GUIDANCE (default "1 1.5 2 3"),
# EXP_W (default 2), EXP_INTERVAL (default 0.2,5), THREADS (default 2), SEED (default 0),
# DIFF_FLAGS (more l2-train-diffusion options), GAN_FLAGS (l2-train-gan's network and batch),
# FORMS (default 1; 0 skips (f)), EXP_TOKENS (default 4), EXP_VAE (real VAE weights for the
# latent arm; its latents are encoded at 64x64 into feature set exp-latent of DATASET),
# EXP_GAN (default 1; 0 skips (e)), LONG (default 1; 0 skips (d)), LONG_STEPS (default 3000),
# LONG_AT (default 1400), LONG_AT_THREADS (default THREADS), LONG_PRESET (default EXP_MODEL_PRESET),
# EXP_PROMPTS (the long run's sample grids: captions separated by |).  PRESETS="", SAMPLERS=""
# or GUIDANCE="" skip (a), (b) or (c), so `PRESETS= SAMPLERS= GUIDANCE= EXP_GAN=0 LONG=0` runs (f) alone.
# Reruns skip trainings and scores whose outputs exist (delete EXP to start over).  Two instances
# may share EXP while they run different parts (each training and score has its own files; e.g.
# LONG=1 alone beside PRESETS=tiny with the others off); a last run with every part on then only
# writes the whole report.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/bin}
DATASET=${DATASET:-demo/cache/emoji.lmdb}
W=${W:-demo/out/work}
EXP=${EXP:-$W/exp-diffusion}
RESULTS=${RESULTS:-bench/results/diffusion.md}
BUDGET=${BUDGET:-1200}
PRESETS=${PRESETS-tiny small base}
EXP_MODEL_PRESET=${EXP_MODEL_PRESET:-small}
SAMPLERS=${SAMPLERS-euler heun dpmpp-2m euler-a}
STEPS=${STEPS:-8 16 32}
GUIDANCE=${GUIDANCE-1 1.5 2 3}
EXP_W=${EXP_W:-2}
EXP_INTERVAL=${EXP_INTERVAL:-0.2,5}
THREADS=${THREADS:-2}
SEED=${SEED:-0}
DIFF_FLAGS=${DIFF_FLAGS:-}
FORMS=${FORMS:-1}
EXP_GAN=${EXP_GAN:-1}
LONG=${LONG:-1}
LONG_STEPS=${LONG_STEPS:-3000}
LONG_AT=${LONG_AT:-1400}
LONG_AT_THREADS=${LONG_AT_THREADS:-$THREADS}
LONG_PRESET=${LONG_PRESET:-$EXP_MODEL_PRESET}
IFS='|' read -r -a EXP_PROMPTS <<< "${EXP_PROMPTS:-grinning face|face with tears of joy|heavy black heart|blue heart|japan flag|pizza|red apple|banana|dog face|rocket|snowman|sun with face}"
EXP_TOKENS=${EXP_TOKENS:-4}
EXP_VAE=${EXP_VAE:-}
GAN_FLAGS=${GAN_FLAGS:---resolution 32 --channel-base 512 --channel-max 32 --z-dim 64 --w-dim 64 --cond-hidden 64 --map-layers 2 --batch 8}
: "${MODEL:?the CLIP weights of the demo}"
VOCAB=${VOCAB:-${MODEL%.safetensors}.vocab.txt.gz}
export L2_BIN=$(cd "$BIN" && pwd)
for f in "$DATASET" "$MODEL" "$W/test-images.l2f"; do
	[ -e "$f" ] || { echo "experiment-diffusion.sh: $f is missing (run make demo first)" >&2; exit 1; }
done
mkdir -p "$EXP" "$(dirname "$RESULTS")"
say() { printf 'experiment-diffusion: %s\n' "$*" >&2; }
top() { awk -F'\t' -v k="$1" '$1 == k { v = $2 } END { print v == "" ? "nan" : v }' "$2"; } # an eval-retrieval line
cpu() { awk '{ printf "%.2f", $2 + $3 }' "$1"; } # /usr/bin/time -f '%e %U %S' output: user + sys

# cost NAME TRAINER ARGS...: CPU seconds per step of a trainer (13 steps minus 3 steps)
cost() {
	local name=$1 t=$2
	shift 2
	local f=$EXP/cost-$name
	if [ ! -s "$f" ]; then
		for n in 3 13; do
			rm -rf "$EXP/cal-$name"
			/usr/bin/time -f '%e %U %S' -o "$EXP/cal-$name.$n" "$BIN/$t" --quiet -d "$DATASET" -o "$EXP/cal-$name" \
				--threads "$THREADS" --seed "$SEED" --steps $n --tick 1000 "$@"
		done
		rm -rf "$EXP/cal-$name"
		awk -v a="$(cpu "$EXP/cal-$name.3")" -v b="$(cpu "$EXP/cal-$name.13")" 'BEGIN { c = (b - a) / 10; printf "%.4f\n", (c > 0.001 ? c : 0.001) }' > "$f"
	fi
	cat "$f"
}

# train NAME TRAINER ARGS...: BUDGET CPU seconds of steps into $EXP/NAME
train() {
	local name=$1 t=$2
	shift 2
	local c steps
	c=$(cost "$name" "$t" "$@")
	steps=$(awk -v b="$BUDGET" -v c="$c" 'BEGIN { s = int(b / c); print (s > 10 ? s : 10) }')
	if [ ! -f "$EXP/$name/.done" ]; then
		say "training $name: $steps steps ($c CPU-s per step, budget $BUDGET CPU-s)"
		rm -rf "$EXP/$name"
		/usr/bin/time -f '%e %U %S' -o "$EXP/$name.time" "$BIN/$t" --quiet -d "$DATASET" -o "$EXP/$name" \
			--threads "$THREADS" --seed "$SEED" --steps "$steps" --tick "$steps" "$@"
		echo "$steps" > "$EXP/$name/.done"
	fi
}

# score NAME MODEL [l2-sample options]: "FD CLIP-score top1 top5 sample-CPU-s" into $EXP/score-NAME
score() {
	local name=$1 model=$2
	shift 2
	local out=$EXP/score-$name d=$EXP/eval-$name
	if [ ! -s "$out" ]; then
		say "scoring $name ($*)"
		rm -rf "$d"
		/usr/bin/time -f '%e %U %S' -o "$d.time" pipelines/r-precision.sh -m "$MODEL" --vocab "$VOCAB" -o "$d" \
			"$DATASET" "$model" --seed "$SEED" --threads "$THREADS" "$@" > "$d.rp"
		local fd cs t1 t5
		fd=$("$BIN/l2-fid" "$d/samples.l2f" "$W/test-images.l2f" | head -1 | sed 's/^FID: //')
		# samples.l2f is keyed by image key; pair each with its primary caption's text feature
		paste <("$BIN/l2-cat" -f tsv "$d/primary.l2f" | cut -f2) <(cut -f1 "$d/primary.tsv") > "$d/text.tsv"
		cs=$(awk -F'\t' 'NR == FNR { t[$2] = $1; next }
			{ if (!($1 in t)) next; n = split($2, x, " "); split(t[$1], y, " "); s = 0
			  for (i = 1; i <= n; i++) s += x[i] * y[i]; tot += s; m++ }
			END { if (!m) { print "nan"; exit } printf "%.4f\n", tot / m }' "$d/text.tsv" <("$BIN/l2-cat" -f tsv "$d/samples.l2f"))
		t1=$(top top1 "$d.rp") t5=$(top top5 "$d.rp")
		echo "$fd $cs $t1 $t5 $(cpu "$d.time")" > "$out"
	fi
	cat "$out"
}

# network evaluations per image of a sampler at N steps (a conditional/null pair counts 2
# where guidance applies; the interval saves the null pass outside it, not counted here)
nfe() {
	local s=$1 n=$2 w=$3
	local e=$n
	[ "$s" = heun ] && e=$((2 * n - 1))
	awk -v e="$e" -v w="$w" 'BEGIN { print w == 1 ? e : 2 * e }'
}

# ---- (a) presets ----
declare -A FD CS T1 T5 ST
for p in $PRESETS; do
	train "diff-$p" l2-train-diffusion --cond text --preset "$p" $DIFF_FLAGS
	read -r FD[$p] CS[$p] T1[$p] T5[$p] ST[$p] < <(score "diff-$p" "$EXP/diff-$p/model_ema-0.050.safetensors" \
		--sampler dpmpp-2m --steps 16 --guidance "$EXP_W")
done
M=$EXP/diff-$EXP_MODEL_PRESET/model_ema-0.050.safetensors
# (b), (c), (e) and (f) need the EXP_MODEL_PRESET model (already there when (a) trained it)
if [ -n "$SAMPLERS$GUIDANCE" ] || [ "$EXP_GAN" = 1 ] || [ "$FORMS" = 1 ]; then
	train "diff-$EXP_MODEL_PRESET" l2-train-diffusion --cond text --preset "$EXP_MODEL_PRESET" $DIFF_FLAGS
fi

# ---- (b) samplers ----
for s in $SAMPLERS; do
	for n in $STEPS; do score "s-$s-$n" "$M" --sampler "$s" --steps "$n" --guidance "$EXP_W" > /dev/null; done
done
# ---- (c) guidance ----
for w in $GUIDANCE; do
	score "w-$w" "$M" --sampler dpmpp-2m --steps 16 --guidance "$w" > /dev/null
	[ "$w" = 1 ] || score "wi-$w" "$M" --sampler dpmpp-2m --steps 16 --guidance "$w" --guidance-interval "$EXP_INTERVAL" > /dev/null
done
# ---- (d) the long run ----
# One run on a schedule that does not depend on its length (--lr-warmup, --lr-ref fixed), so
# its state at step LONG_AT is what a LONG_AT-step run of that schedule reaches: stopped there
# (timed, LONG_AT_THREADS threads), its EMAs kept, then resumed bit for bit to LONG_STEPS.
L=long-$LONG_PRESET
if [ "$LONG" = 1 ]; then
	lflags=(--cond text --preset "$LONG_PRESET" --steps "$LONG_STEPS" --lr-warmup $((LONG_AT / 10))
		--lr-ref $((LONG_AT / 5)) --tick 200 $DIFF_FLAGS)
	if [ ! -f "$EXP/$L-at/.done" ]; then
		say "long run: steps 0..$LONG_AT of $LONG_STEPS ($LONG_AT_THREADS threads, timed)"
		rm -rf "$EXP/$L" "$EXP/$L-at"
		/usr/bin/time -f '%e %U %S' -o "$EXP/$L-at.time" "$BIN/l2-train-diffusion" --quiet -d "$DATASET" \
			-o "$EXP/$L" --threads "$LONG_AT_THREADS" --seed "$SEED" --stop-after "$LONG_AT" "${lflags[@]}"
		mkdir -p "$EXP/$L-at.tmp"
		cp "$EXP/$L"/model_ema-*.safetensors "$EXP/$L"/log.tsv "$EXP/$L"/grid.png "$EXP/$L-at.tmp/"
		echo "$LONG_AT" > "$EXP/$L-at.tmp/.done"
		mv "$EXP/$L-at.tmp" "$EXP/$L-at"
	fi
	if [ ! -f "$EXP/$L/.done" ]; then
		say "long run: steps $LONG_AT..$LONG_STEPS ($THREADS threads)"
		/usr/bin/time -f '%e %U %S' -o "$EXP/$L-rest.time" "$BIN/l2-train-diffusion" --quiet -d "$DATASET" \
			-o "$EXP/$L" --threads "$THREADS" --seed "$SEED" --resume "${lflags[@]}"
		echo "$LONG_STEPS" > "$EXP/$L/.done"
	fi
	score "$L-at" "$EXP/$L-at/model_ema-0.050.safetensors" --sampler dpmpp-2m --steps 16 --guidance "$EXP_W" > /dev/null
	score "$L" "$EXP/$L/model_ema-0.050.safetensors" --sampler dpmpp-2m --steps 16 --guidance "$EXP_W" > /dev/null
	score "$L-e10" "$EXP/$L/model_ema-0.100.safetensors" --sampler dpmpp-2m --steps 16 --guidance "$EXP_W" > /dev/null
	# what the two points draw for common captions: a row per caption, 6 seeds
	printf '%s\n' "${EXP_PROMPTS[@]}" > "$EXP/prompts.txt"
	for pt in "$L-at" "$L"; do
		[ -s "$EXP/$pt-grid.png" ] || "$BIN/l2-sample" --quiet -m "$EXP/$pt/model_ema-0.050.safetensors" --clip "$MODEL" \
			--vocab "$VOCAB" --prompts "$EXP/prompts.txt" -n 6 --seed "$SEED" --threads "$THREADS" \
			--sampler dpmpp-2m --steps 16 --guidance "$EXP_W" --grid "$EXP/$pt-grid.png"
	done
fi

# ---- (e) the GAN ----
if [ "$EXP_GAN" = 1 ]; then
	train gan l2-train-gan --cond text $GAN_FLAGS
	score gan "$EXP/gan/G_ema.safetensors" > /dev/null
fi

# ---- (f) forms: 64x64 with patch 2, cross-attention, latents (real weights only) ----
P=$EXP_MODEL_PRESET
if [ "$FORMS" = 1 ]; then
	score "diff-$P" "$M" --sampler dpmpp-2m --steps 16 --guidance "$EXP_W" > /dev/null
	train "p64-$P" l2-train-diffusion --cond text --preset "$P" --resolution 64 --patch 2 $DIFF_FLAGS
	score "p64-$P" "$EXP/p64-$P/model_ema-0.050.safetensors" --sampler dpmpp-2m --steps 16 --guidance "$EXP_W" > /dev/null
	train "tok-$P" l2-train-diffusion --cond text --preset "$P" --cond-tokens "$EXP_TOKENS" $DIFF_FLAGS
	score "tok-$P" "$EXP/tok-$P/model_ema-0.050.safetensors" --sampler dpmpp-2m --steps 16 --guidance "$EXP_W" > /dev/null
	if [ -n "$EXP_VAE" ]; then
		"$BIN/l2-encode-latents" --quiet --vae "$EXP_VAE" -r 64 -n exp-latent --resume "$DATASET"
		train "lat-$P" l2-train-diffusion --cond text --preset "$P" --vae "$EXP_VAE" --latents exp-latent $DIFF_FLAGS
		score "lat-$P" "$EXP/lat-$P/model_ema-0.050.safetensors" --vae "$EXP_VAE" --sampler dpmpp-2m --steps 16 \
			--guidance "$EXP_W" > /dev/null
	fi
fi

# ---- real images: the floor of these scores ----
if [ ! -s "$EXP/score-real" ]; then
	pipelines/r-precision.sh -m "$MODEL" --vocab "$VOCAB" -o "$EXP/eval-real" "$DATASET" --real > "$EXP/eval-real.rp"
	echo "$(top top1 "$EXP/eval-real.rp") $(top top5 "$EXP/eval-real.rp") $(top queries "$EXP/eval-real.rp")" > "$EXP/score-real"
fi

# ---- the report ----
row() { # NAME LABEL...: | labels | FD | CLIP | top1 | top5 | sampling CPU-s |
	local name=$1
	shift
	local fd cs t1 t5 st
	read -r fd cs t1 t5 st < "$EXP/score-$name"
	printf '|'; printf ' %s |' "$@"
	awk -v fd="$fd" -v cs="$cs" -v a="$t1" -v b="$t5" -v st="$st" \
		'function pc(v) { return v == "nan" ? "—" : sprintf("%.1f%%", 100 * v) }
		BEGIN { printf " %.4f | %.4f | %s | %s | %.1f |\n", fd, cs, pc(a), pc(b), st }'
}
steps_of() { cat "$EXP/$1/.done"; }
wall_of() { awk '{ printf "%.0f", $1 }' "$EXP/$1.time"; }
train_cpu_of() { awk '{ printf "%.0f", $2 + $3 }' "$EXP/$1.time"; }
{
	echo "# Diffusion quality — make experiment-diffusion"
	echo
	echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) cores, tree $(git rev-parse --short HEAD 2>/dev/null || echo '?'); settings:"
	echo "BUDGET=$BUDGET CPU-s per trainer, THREADS=$THREADS, SEED=$SEED, PRESETS=\"$PRESETS\", model for (b)/(c):"
	echo "$EXP_MODEL_PRESET, guidance $EXP_W, interval $EXP_INTERVAL. Fully supervised (--cond text) on the demo's"
	echo "emoji train split, scored on one sample per held-out image ($(awk '{ print $3 }' "$EXP/score-real") images, primary caption):"
	echo "FD = CLIP-feature Fréchet distance to the held-out images (lower is better), CLIP = mean cosine of"
	echo "sample and caption, R@1/R@5 = R-precision (the sample's own caption among the split's distinct"
	echo "captions; real held-out images: $(awk '{ printf "%s / %s", $1 == "nan" ? "—" : sprintf("%.1f%%", 100 * $1), $2 == "nan" ? "—" : sprintf("%.1f%%", 100 * $2) }' "$EXP/score-real"))."
	echo "Sampling CPU-s: CPU seconds of sampling and scoring those images."
	if [ -n "$PRESETS" ]; then
		echo
		echo "## (a) presets at the same CPU budget (dpmpp-2m, 16 steps, guidance $EXP_W, EMA std 0.05)"
		echo
		echo "| preset | steps | wall s | FD | CLIP | R@1 | R@5 | sampling CPU-s |"
		echo "|---|---:|---:|---:|---:|---:|---:|---:|"
		for p in $PRESETS; do row "diff-$p" "$p" "$(steps_of "diff-$p")" "$(wall_of "diff-$p")"; done
	fi
	if [ -n "$SAMPLERS" ]; then
		echo
		echo "## (b) FD against network evaluations ($EXP_MODEL_PRESET, guidance $EXP_W)"
		echo
		echo "| sampler | steps | NFE/image | FD | CLIP | R@1 | R@5 | sampling CPU-s |"
		echo "|---|---:|---:|---:|---:|---:|---:|---:|"
		for s in $SAMPLERS; do for n in $STEPS; do row "s-$s-$n" "$s" "$n" "$(nfe "$s" "$n" "$EXP_W")"; done; done
	fi
	if [ -n "$GUIDANCE" ]; then
		echo
		echo "## (c) guidance ($EXP_MODEL_PRESET, dpmpp-2m, 16 steps)"
		echo
		echo "| w | interval | FD | CLIP | R@1 | R@5 | sampling CPU-s |"
		echo "|---:|---|---:|---:|---:|---:|---:|"
		for w in $GUIDANCE; do
			row "w-$w" "$w" "—"
			[ "$w" = 1 ] || row "wi-$w" "$w" "$EXP_INTERVAL"
		done
	fi
	if [ "$LONG" = 1 ]; then
		echo
		echo "## (d) the long run ($LONG_PRESET, dpmpp-2m 16, w $EXP_W; warm-up $((LONG_AT / 10)), 1/sqrt decay after step $((LONG_AT / 5)); threads: $LONG_AT_THREADS to step $LONG_AT, then $THREADS)"
		echo
		echo "| point | steps | wall s | train CPU-s | FD | CLIP | R@1 | R@5 | sampling CPU-s |"
		echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
		row "$L-at" "stopped at step $LONG_AT, EMA 0.05" "$LONG_AT" "$(wall_of "$L-at")" "$(train_cpu_of "$L-at")"
		w2=$(awk '{ s += $1 } END { printf "%.0f", s }' "$EXP/$L-at.time" "$EXP/$L-rest.time")
		c2=$(awk '{ s += $2 + $3 } END { printf "%.0f", s }' "$EXP/$L-at.time" "$EXP/$L-rest.time")
		row "$L" "end, EMA 0.05" "$LONG_STEPS" "$w2" "$c2"
		row "$L-e10" "end, EMA 0.10" "$LONG_STEPS" "$w2" "$c2"
		echo
		echo "Samples of common captions (a row each: $(IFS='|'; echo "${EXP_PROMPTS[*]}" | sed 's/|/, /g');"
		echo "6 seeds, EMA 0.05, as scored): $L-at-grid.png (step $LONG_AT) and $L-grid.png (step $LONG_STEPS) in EXP."
	fi
	if [ "$EXP_GAN" = 1 ]; then
		echo
		echo "## (e) GAN against diffusion at the same CPU budget"
		echo
		echo "| model | steps | wall s | FD | CLIP | R@1 | R@5 | sampling CPU-s |"
		echo "|---|---:|---:|---:|---:|---:|---:|---:|"
		for p in $(printf '%s\n' $PRESETS "$EXP_MODEL_PRESET" | awk '!seen[$0]++'); do
			row "diff-$p" "diffusion $p (dpmpp-2m 16, w $EXP_W)" "$(steps_of "diff-$p")" "$(wall_of "diff-$p")"
		done
		row gan "GAN (demo network, G_ema)" "$(steps_of gan)" "$(wall_of gan)"
	fi
	if [ "$FORMS" = 1 ]; then
		echo
		echo "## (f) image space and conditioning at the same CPU budget ($P, dpmpp-2m 16, w $EXP_W)"
		echo
		echo "| model | steps | wall s | train CPU-s | FD | CLIP | R@1 | R@5 | sampling CPU-s |"
		echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
		for a in "diff-$P:pixels 32x32, modulation" "p64-$P:pixels 64x64, patch 2" \
			"tok-$P:pixels 32x32, $EXP_TOKENS cross-attention tokens"; do
			row "${a%%:*}" "${a#*:}" "$(steps_of "${a%%:*}")" "$(wall_of "${a%%:*}")" "$(train_cpu_of "${a%%:*}")"
		done
		if [ -n "$EXP_VAE" ]; then
			row "lat-$P" "latents of $(basename "$EXP_VAE") (64x64 images)" "$(steps_of "lat-$P")" "$(wall_of "lat-$P")" \
				"$(train_cpu_of "lat-$P")"
		else
			echo
			echo "Latent diffusion: not run — no real autoencoder weights were given (EXP_VAE); with random"
			echo "weights the decoder's output is noise, so a score would say nothing about latent diffusion."
		fi
	fi
} > "$RESULTS.tmp"
mv "$RESULTS.tmp" "$RESULTS"
say "done -> $RESULTS"
cat "$RESULTS"
