# clipart.mk — Debian's openclipart-png as "a user's folder": captions made from
# its category folders and file names, an l2 dataset with a held-out split, a
# small CLIP trained on the train split, and the caption corpus for retrieval.
#
#   make -f pipelines/clipart.mk                        captions, dataset, CLIP, corpus
#   make -f pipelines/clipart.mk CLIP_STEPS=2000        a longer CLIP (its own cache entry)
#   make -f pipelines/clipart.mk IMAGES=~/art           another folder laid out the same way
#
# Outputs (in CACHE, default demo/cache; each rebuilt only when what it comes from changed):
#   clipart-captions.tsv   pipelines/clipart-captions.sh IMAGES: path<TAB>caption
#   clipart.lmdb           l2-dataset build --captions (schemas/dataset.md), TEST_FRACTION
#                          held out by path hash, corpus = captions + DISTRACTORS WordNet glosses
#   clipart-corpus.txt     the dataset's corpus, one caption a line (workflow.mk's CORPUS=)
#   clipart-clip-ID/       clip.safetensors (+ clip.vocab.txt.gz, train.log): l2-train-clip on
#                          the train split, ID naming its settings
# `make -f pipelines/clipart.mk paths` prints them as VAR=value lines for pipelines/workflow.mk
# (IMAGES, CAPTIONS, CORPUS, CLIP, BACKGROUND, SKIP_BAD=1: three files are over the pixel limit):
#   make -f pipelines/workflow.mk fewshot $(make -s -f pipelines/clipart.mk paths) OUT=clipart-runs  Needs: make, wordnet-base for the distractors
# (tools/install-deps.sh demo), openclipart-png (the same profile).

SHELL        := /bin/bash
.SHELLFLAGS  := -o pipefail -ec
.DELETE_ON_ERROR:
.SUFFIXES:

BUILD        ?= build
BIN          ?= $(abspath $(BUILD))/bin
CACHE        ?= demo/cache
IMAGES       ?= /usr/share/openclipart/png
TEST_FRACTION ?= 0.1
SEED         ?= 0
DISTRACTORS  ?= 20000
WORDNET      ?= /usr/share/wordnet
PROGRESS     ?= --progress
# clip art is drawn on transparency: the dataset composites it over white wherever
# it becomes RGB (the trainers; l2-encode-images --background $(BACKGROUND) to match)
BACKGROUND   ?= 255,255,255

# the small CLIP: captions are longer than the emoji names (title + two folders),
# hence a context of 24 tokens; 400 steps of 128 pairs (7 epochs of the 7,300 train
# images).  Reading the images takes minutes before the first step (some are
# 12,000 px PNGs): 6-18 min at nice 10 on this 2-core machine shared with other jobs, then
# 400 steps in 7.8 min; held-out top-1 26.4%, top-5 38.9% among 631 captions.
CLIP_STEPS   ?= 400
CLIP_FLAGS   ?= --steps $(CLIP_STEPS) --context 24 --seed $(SEED)
CLIP_LOG     ?= --log-every 25 --eval-every 200
CLIP_ID      := $(shell printf '%s' '$(CLIP_FLAGS) $(TEST_FRACTION) $(SEED) $(DISTRACTORS) $(BACKGROUND) $(abspath $(IMAGES))' | md5sum | cut -c1-10)
CLIP_DIR     ?= $(CACHE)/clipart-clip-$(CLIP_ID)
MODEL        ?= $(CLIP_DIR)/clip.safetensors

CAPTIONS     := $(CACHE)/clipart-captions.tsv
DATASET      := $(CACHE)/clipart.lmdb
CORPUS       := $(CACHE)/clipart-corpus.txt
GLOSSES      := $(CACHE)/wordnet-glosses-$(DISTRACTORS).txt
step          = @printf '\nclipart: %s\n' '$(1)' >&2

.PHONY: all captions dataset clip corpus paths clean-dataset
all: corpus clip
captions: $(CAPTIONS)
dataset: $(DATASET).done
clip: $(MODEL)
corpus: $(CORPUS)

$(CACHE)/.dir:
	@mkdir -p $(CACHE) && touch $@

$(CAPTIONS): pipelines/clipart-captions.sh | $(CACHE)/.dir
	$(call step,captions of $(IMAGES) -> $@)
	pipelines/clipart-captions.sh $(IMAGES) > $@.tmp || { rm -f $@.tmp; exit 1; }
	mv $@.tmp $@

$(GLOSSES): | $(CACHE)/.dir
	$(BIN)/l2-wordnet-glosses --max $(DISTRACTORS) --seed $(SEED) $(WORDNET) > $@.tmp || { rm -f $@.tmp; exit 1; }
	mv $@.tmp $@

# the dataset is rebuilt (--force) when the captions change; an interrupted build resumes.
# Its stamp lies beside it: l2-dataset replaces only the store's own files in it.
$(DATASET).done: $(CAPTIONS) $(if $(filter 0,$(DISTRACTORS)),,$(GLOSSES))
	$(call step,dataset -> $(DATASET))
	$(BIN)/l2-dataset build $(PROGRESS) --skip-bad --force $(if $(wildcard $(DATASET).partial),--resume) \
		--captions $(CAPTIONS) --background $(BACKGROUND) --test-fraction $(TEST_FRACTION) --seed $(SEED) \
		$(if $(filter 0,$(DISTRACTORS)),,--corpus $(GLOSSES) --source wordnet) $(DATASET) $(IMAGES)
	$(BIN)/l2-dataset stats $(DATASET) >&2
	touch $@

$(CORPUS): $(DATASET).done
	$(BIN)/l2-dataset corpus $(DATASET) > $@.tmp || { rm -f $@.tmp; exit 1; }
	mv $@.tmp $@

$(MODEL): | $(DATASET).done
	$(call step,training the small CLIP ($(CLIP_FLAGS)) -> $(CLIP_DIR))
	mkdir -p $(CLIP_DIR)
	$(BIN)/l2-train-clip $(CLIP_FLAGS) $(CLIP_LOG) -d $(DATASET) -o $(MODEL) 2>&1 | tee $(CLIP_DIR)/train.log >&2

paths:
	@printf 'IMAGES=%s\nCAPTIONS=%s\nCORPUS=%s\nCLIP=%s\nBACKGROUND=%s\nSKIP_BAD=1\n' '$(IMAGES)' '$(abspath $(CAPTIONS))' \
		'$(abspath $(CORPUS))' '$(abspath $(MODEL))' '$(BACKGROUND)'
