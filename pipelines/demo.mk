# demo.mk — the bundled default, end to end on the emoji set (run by `make demo`).
#
#   make demo                                   everything, report in demo/out/report.html
#   make -f pipelines/demo.mk BUILD=build       the same without the dependency check
#   make -f pipelines/demo.mk CLIP_STEPS=3000   a longer CLIP training (its own cache entry)
#   make -f pipelines/demo.mk clean-out         forget the outputs (keeps the cache)
#
# Steps (each prints "demo: [n] ..." and its tool's progress):
#   1 dataset    pipelines/emoji.sh: npm package -> demo/cache/emoji.lmdb (schemas/dataset.md)
#   2 clip       l2-train-clip on the train split -> demo/cache/clip-SETTINGS/ (reused when the
#                same settings were trained before)
#   3 encode     l2-dataset export-images, then l2-encode-images --background 255,255,255
#                (the trainer's preprocessing) for test and train images; l2-encode-text for the test
#                captions and for the whole corpus (captions + WordNet distractors)
#   4 index      l2-build-index of the test captions and of the corpus
#   5 retrieve   l2-retrieve held-out images against both; l2-dataset eval-retrieval scores
#                top-1/top-5 against chance
#   6 pseudo     l2-retrieve train images against the corpus, l2-optimize-pseudo in the modes
#                optimize, retrieve, gaussian (--report-file), stored into the dataset
#   7 report     pipelines/report.sh -> demo/out/report.html
# The train-image and corpus half of steps 3-6 is pipelines/pseudo.mk, included with its
# outputs in $(W)/pseudo/ (train images -> pseudo text features is what it does for any
# image folder); the held-out half, the scores and the store are this file's.
#
# The image halves: IMAGE_HALVES names makefiles pipelines/NAME.mk (default: gan diffusion), each
# included here and providing a target NAME that runs after step 6 and writes
# $(OUT)/extra/NN-NAME.html, which the report includes in name order.  Uses from here: BIN, W, OUT, DATASET, MODEL, VOCAB,
# SEED, step, timed, $(W)/.stored, $(W)/test-captions.txt(.l2f), $(W)/test-images.l2f.

SHELL        := /bin/bash
.SHELLFLAGS  := -o pipefail -ec
.DELETE_ON_ERROR:
.SUFFIXES:
# keep every intermediate file (exports, streams, indexes): a rerun redoes only what changed
.SECONDARY:

BUILD        ?= build
BIN          ?= $(abspath $(BUILD))/bin
CACHE        ?= demo/cache
OUT          ?= demo/out
export L2_CACHE := $(abspath $(CACHE))
export L2_BIN   := $(BIN)

# dataset
TEST_FRACTION ?= 0.1
SEED         ?= 0
DISTRACTORS  ?= 20000
SKIN_TONES   ?= 1
DATASET      ?= $(CACHE)/emoji.lmdb

# the small CLIP (l2-train-clip); its cache entry is named after these settings
# (300 steps: about 4 minutes on this 2-core machine; the report's accuracy grows with more)
CLIP_STEPS   ?= 300
CLIP_FLAGS   ?= --steps $(CLIP_STEPS) --seed $(SEED)
CLIP_LOG     ?= --log-every 10
CLIP_ID      := $(shell printf '%s' '$(CLIP_FLAGS) $(TEST_FRACTION) $(SEED) $(DISTRACTORS) $(SKIN_TONES)' | md5sum | cut -c1-10)
CLIP_DIR     ?= $(CACHE)/clip-$(CLIP_ID)
MODEL        ?= $(CLIP_DIR)/clip.safetensors
# l2-train-clip writes its BPE vocabulary beside the weights as STEM.vocab.txt.gz
VOCAB        ?= $(MODEL:.safetensors=.vocab.txt.gz)

# retrieval and pseudo features
K            ?= 10
PSEUDO_K     ?= 8
MODES        ?= optimize retrieve gaussian
PSEUDO_FLAGS ?= --seed $(SEED)
SAMPLES      ?= 24
IMAGE_HALVES ?= gan diffusion
PROGRESS     ?= --progress
BACKGROUND   ?= 255,255,255

W            := $(OUT)/work
step          = @printf '\ndemo: [%s] %s\n' '$(1)' '$(2)' >&2
# time a command into $(W)/timings.tsv: $(call timed,NAME,COMMAND)
timed         = t0=$$(date +%s.%N); $(2); awk -v a=$$t0 -v b=$$(date +%s.%N) 'BEGIN { printf "%s\t%.1f\n", "$(1)", b - a }' >> $(W)/timings.tsv

.PHONY: all dataset clip encode index retrieve pseudo report clean-out check-tools experiment-fewshot
all: report
.DEFAULT_GOAL := all

# ---- pipelines/pseudo.mk: train images + corpus -> pseudo text features (steps 3, 4, 6) ----
P            := $(W)/pseudo
PSEUDO_OUT   := $(P)
PSEUDO_BIN   := $(BIN)/
IMAGES       := $(W)/images-train
CAPTIONS     := $(W)/corpus.txt
IMAGE_FLAGS  := $(PROGRESS) --background $(BACKGROUND)
TEXT_FLAGS   := $(PROGRESS)
STORE        := 0
GAUSSIAN_INPUT := neighbors
PSEUDO_FLAGS += $(PROGRESS)
STAGE_encode := 3/7
STAGE_index  := 4/7
STAGE_pseudo := 6/7
PSEUDO_STEP   = $(call step,$(STAGE_$(1)),$(2))
PSEUDO_TIMED  = $(call timed,$(1),$(2))
include pipelines/pseudo.mk
# the exported images are made here: encode them once they are
$(P)/images.l2f: $(W)/images-train/.done

check-tools:
	@for t in l2-dataset l2-train-clip l2-encode-images l2-encode-text l2-build-index l2-retrieve l2-optimize-pseudo; do \
		[ -x $(BIN)/$$t ] || { echo "demo: $(BIN)/$$t is missing (make BUILD=$(BUILD) first)" >&2; exit 1; }; done

$(W)/.dir:
	@mkdir -p $(W) $(OUT)/img && touch $@

# ---- 1 dataset ------------------------------------------------------------------------
dataset: $(DATASET)/.complete
$(DATASET)/.complete: | $(W)/.dir check-tools
	$(call step,1/7,emoji dataset -> $(DATASET))
	$(call timed,dataset,TEST_FRACTION=$(TEST_FRACTION) SEED=$(SEED) DISTRACTORS=$(DISTRACTORS) SKIN_TONES=$(SKIN_TONES) pipelines/emoji.sh $(DATASET))
	touch $@
$(W)/dataset-stats.tsv: $(DATASET)/.complete | $(W)/.dir
	$(BIN)/l2-dataset stats $(DATASET) > $@.tmp && mv $@.tmp $@

# ---- 2 the small CLIP ---------------------------------------------------------------------
clip: $(MODEL)
$(MODEL): | $(DATASET)/.complete
	$(call step,2/7,training the small CLIP ($(CLIP_FLAGS)) -> $(CLIP_DIR))
	mkdir -p $(CLIP_DIR)
	$(call timed,train-clip,$(BIN)/l2-train-clip $(CLIP_FLAGS) $(CLIP_LOG) -d $(DATASET) -o $(MODEL) 2>&1 | tee $(CLIP_DIR)/train.log >&2)

# ---- 3 encode --------------------------------------------------------------------------------
# images exported as they are stored and encoded with alpha over the dataset's
# background (white, BACKGROUND): the very preprocessing l2-train-clip applies
$(W)/images-%/.done: $(DATASET)/.complete | $(W)/.dir
	rm -rf $(W)/images-$*
	$(BIN)/l2-dataset export-images --quiet --split $* -o $(W)/images-$* $(DATASET)
	touch $@

$(W)/%-images.l2f: $(W)/images-%/.done $(MODEL)
	$(call step,3/7,encoding $* images)
	$(call timed,encode-$*-images,$(BIN)/l2-encode-images $(PROGRESS) --background $(BACKGROUND) -m $(MODEL) $(W)/images-$* > $@.tmp)
	mv $@.tmp $@

$(W)/test-captions.txt: $(DATASET)/.complete | $(W)/.dir
	$(BIN)/l2-dataset captions --unique --split test $(DATASET) > $@.tmp && mv $@.tmp $@
$(W)/corpus.txt: $(DATASET)/.complete | $(W)/.dir
	$(BIN)/l2-dataset corpus $(DATASET) > $@.tmp && mv $@.tmp $@

$(W)/%.txt.l2f: $(W)/%.txt $(MODEL)
	$(call step,3/7,encoding $(shell wc -l < $< 2>/dev/null) texts of $*)
	$(call timed,encode-$*,$(BIN)/l2-encode-text $(PROGRESS) -m $(MODEL) --vocab $(VOCAB) $< > $@.tmp)
	mv $@.tmp $@

encode: $(W)/test-images.l2f $(P)/images.l2f $(W)/test-captions.txt.l2f $(P)/captions.l2f

# ---- 4 index ------------------------------------------------------------------------------------
$(W)/%.idx/.done: $(W)/%.txt.l2f
	$(call step,4/7,indexing $*)
	rm -rf $(W)/$*.idx $(W)/$*.idx.tmp
	$(call timed,index-$*,$(BIN)/l2-build-index --quiet -o $(W)/$*.idx.tmp $<)
	mv $(W)/$*.idx.tmp $(W)/$*.idx
	touch $@

index: $(W)/test-captions.idx/.done $(P)/captions.idx/.built

# ---- 5 retrieve and score held-out images ----------------------------------------------------------
$(W)/test-vs-test-captions.nb.l2f: $(W)/test-images.l2f $(W)/test-captions.idx/.done
	$(call step,5/7,retrieving held-out images from test-captions)
	$(call timed,retrieve-test-test-captions,$(BIN)/l2-retrieve -i $(W)/test-captions.idx -k $(K) $< > $@.tmp)
	mv $@.tmp $@
$(W)/test-vs-corpus.nb.l2f: $(W)/test-images.l2f $(P)/captions.idx/.built
	$(call step,5/7,retrieving held-out images from corpus)
	$(call timed,retrieve-test-corpus,$(BIN)/l2-retrieve -i $(P)/captions.idx -k $(K) $< > $@.tmp)
	mv $@.tmp $@

$(W)/eval-test-captions.tsv: $(W)/test-vs-test-captions.nb.l2f
	$(BIN)/l2-dataset eval-retrieval --split test $(DATASET) $< > $@.tmp && mv $@.tmp $@
	@sed 's/^/demo:   /' $@ >&2
$(W)/eval-corpus.tsv: $(W)/test-vs-corpus.nb.l2f $(W)/corpus.txt
	$(BIN)/l2-dataset eval-retrieval --split test --candidates $$(wc -l < $(W)/corpus.txt) $(DATASET) $< > $@.tmp && mv $@.tmp $@

$(W)/%.nb.tsv: $(W)/%.nb.l2f
	$(BIN)/l2-cat -f tsv $< > $@.tmp && mv $@.tmp $@

retrieve: $(W)/eval-test-captions.tsv $(W)/eval-corpus.tsv $(W)/test-vs-test-captions.nb.tsv $(W)/test-vs-corpus.nb.tsv

# ---- 6 pseudo text features for the train images ------------------------------------------------------
# $(P)/pseudo-MODE.l2f and $(P)/report-MODE.tsv: pipelines/pseudo.mk's rules (included above)

# stored in the dataset for the trainers: feat.image (all images), feat.caption (every
# corpus line, so every caption, keyed by text), feat.pseudo (optimize), feat.pseudo-MODE
$(W)/.stored: $(P)/images.l2f $(W)/test-images.l2f $(P)/captions.l2f $(MODES:%=$(P)/pseudo-%.l2f)
	$(BIN)/l2-cat $(P)/images.l2f $(W)/test-images.l2f | $(BIN)/l2-dataset import-features --quiet -n image --model $(MODEL) $(DATASET)
	$(BIN)/l2-dataset import-features --quiet -n caption --model $(MODEL) $(DATASET) $(P)/captions.l2f
	$(foreach m,$(MODES),$(BIN)/l2-dataset import-features --quiet -n $(call feat_name,$(m)) --model $(MODEL) $(DATASET) $(P)/pseudo-$(m).l2f;)
	touch $@

pseudo: $(W)/.stored

# ---- 7 report --------------------------------------------------------------------------------------------
report: $(OUT)/report.html
$(OUT)/report.html: retrieve pseudo $(IMAGE_HALVES) $(W)/dataset-stats.tsv | $(W)/.dir
	$(call step,7/7,report)
	OUT=$(OUT) W=$(W) P=$(P) BIN=$(BIN) DATASET=$(DATASET) MODEL=$(MODEL) CLIP_FLAGS='$(CLIP_FLAGS)' \
		MODES='$(MODES)' SAMPLES=$(SAMPLES) K=$(K) PSEUDO_K=$(PSEUDO_K) pipelines/report.sh
	@printf '\ndemo: done -> %s\n' '$(OUT)/report.html' >&2
	@sed 's/^/demo:   /' $(W)/eval-test-captions.tsv >&2

clean-out:
	rm -rf $(OUT)

# the image halves (see the top): gan.mk has gan, gan-pre, gan-ft;
# diffusion.mk has diffusion, diffusion-pre, diffusion-ft, experiment-diffusion
include $(IMAGE_HALVES:%=pipelines/%.mk)
# the few-shot table with error bars on this dataset and CLIP (pipelines/experiment-fewshot.sh)
include pipelines/experiment-fewshot.mk
