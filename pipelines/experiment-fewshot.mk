# experiment-fewshot.mk — `make experiment-fewshot`: Lafite2's few-shot table with error bars on
# the demo's emoji set and CLIP; included by pipelines/demo.mk.
#
#   make experiment-fewshot                                    both generators (hours)
#   make -f pipelines/demo.mk experiment-fewshot FS_GENERATORS=gan   the GAN half
#   make -f pipelines/demo.mk experiment-fewshot FS_SEEDS="0 1 2 3 4"
#
# pipelines/experiment-fewshot.sh drives pipelines/workflow.mk once per cell (rows none,
# gaussian, retrieve, optimize, mix x columns zero-shot, 1%, 10%, 100% x seeds) on the demo's
# dataset (DATASET=, its split by emoji) with the demo's CLIP; the workflow adds its feature
# sets (image-ID, caption-ID, pseudo-ID) to that dataset.  The corpus retrieved from (pseudo
# features, and the mixing at sampling) is the train captions and the DISTRACTORS WordNet
# glosses: never a held-out caption.  Runs and table in $(FS_OUT) (the table in
# $(FS_OUT)/fewshot/: index.html, table.tsv, table.md, fd.svg/png); a rerun redoes only what
# changed.  Uses from demo.mk: BIN, W, OUT, DATASET, MODEL, VOCAB, DISTRACTORS, CACHE.

FS_OUT        ?= $(OUT)/fewshot-runs
FS_GENERATORS ?= gan diffusion
FS_SEEDS      ?= 0 1 2
FS_JOBS       ?= 2
# sizes and steps (the workflow's RES=32 by default): the GAN of the demo, 32x32; the diffusion
# model's tiny preset with the workflow's batch of 32, evaluated with DPM++(2M) at 12 steps (the
# evaluation's 671 samples per cell cost about as much as 75 training steps)
FS_GAN_VARS   ?= PRE_STEPS=1500 FT_STEPS=400 BATCH=8
FS_DIFF_VARS  ?= PRE_STEPS=600 FT_STEPS=150 BATCH=32
FS_DIFF_SAMPLE ?= --sampler dpmpp-2m --steps 12 --guidance 2
FS_FLAGS      ?= THREADS=1 K=16

$(W)/fewshot-corpus.txt: $(DATASET)/.complete | $(W)/.dir
	{ $(BIN)/l2-dataset captions --unique --split train $(DATASET); \
	  $(if $(filter 0,$(DISTRACTORS)),,cat $(CACHE)/wordnet-glosses-$(DISTRACTORS).txt); } > $@.tmp && mv $@.tmp $@

experiment-fewshot: $(DATASET)/.complete $(MODEL) $(W)/fewshot-corpus.txt
	GENERATORS='$(FS_GENERATORS)' SEEDS='$(FS_SEEDS)' JOBS=$(FS_JOBS) GAN_VARS='$(FS_GAN_VARS)' DIFFUSION_VARS='$(FS_DIFF_VARS)' \
		pipelines/experiment-fewshot.sh BIN=$(BIN) DATASET=$(abspath $(DATASET)) CLIP=$(abspath $(MODEL)) VOCAB=$(abspath $(VOCAB)) \
		CORPUS=$(abspath $(W)/fewshot-corpus.txt) OUT=$(FS_OUT) 'DIFF_SAMPLE=$(FS_DIFF_SAMPLE)' $(FS_FLAGS)
	@printf '\nexperiment-fewshot: -> %s\n' '$(FS_OUT)/fewshot/index.html' >&2
	@column -t -s "$$(printf '\t')" $(FS_OUT)/fewshot/table.tsv >&2
