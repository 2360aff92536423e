# pseudo.mk — pseudo text features for an image folder, as make rules.
#
#   make -f pipelines/pseudo.mk IMAGES=photos/ CAPTIONS=corpus.txt MODEL=clip.safetensors
#   make -f pipelines/pseudo.mk ... MODES="optimize retrieve gaussian" OUT=pseudo-out K=16
#   make -f pipelines/pseudo.mk IMAGE_FEATURES=img.l2f TEXT_FEATURES=txt.l2f   (features made elsewhere)
#
# What it makes, under $(OUT):
#   captions.l2f            l2-encode-text CAPTIONS            (or TEXT_FEATURES)
#   captions.idx/           l2-build-index of them
#   images.l2f              l2-encode-images IMAGES            (or IMAGE_FEATURES)
#   pseudo-MODE.l2f         l2-retrieve -i captions.idx -k K | l2-optimize-pseudo --mode MODE
#                           (gaussian: l2-optimize-pseudo --mode gaussian images.l2f)
#   report-MODE.tsv         its diagnostics (l2-optimize-pseudo --report-file)
#   dataset.lmdb            with STORE=1 (default when IMAGES is given): the images and the
#                           features (feat.image, feat.pseudo, feat.pseudo-retrieve, ...), see
#                           schemas/dataset.md; DATASET= names another (existing) dataset
#
# Variables: IMAGES CAPTIONS MODEL VOCAB OUT K MODES PSEUDO_FLAGS IMAGE_FLAGS TEXT_FLAGS
# GAUSSIAN_INPUT STORE DATASET BUILD BIN.  Every output appears by rename: an interrupted run leaves no half
# file.
#
# Included by another makefile (pipelines/demo.mk does), the rules are the same; set before
# the include: PSEUDO_OUT, PSEUDO_K and PSEUDO_BIN (where OUT, K and BIN mean something else
# there), and optionally PSEUDO_STEP(stage, text) and PSEUDO_TIMED(name, command), the
# includer's progress line and timing wrapper (stages: encode, index, pseudo).

SHELL        := /bin/bash
.SHELLFLAGS  := -o pipefail -ec
.DELETE_ON_ERROR:
.SUFFIXES:

BUILD        ?= build
BIN          ?= $(if $(wildcard $(BUILD)/bin/l2-optimize-pseudo),$(BUILD)/bin/,)
OUT          ?= pseudo-out
K            ?= 16
PSEUDO_OUT   ?= $(OUT)
PSEUDO_K     ?= $(K)
PSEUDO_BIN   ?= $(BIN)
PSEUDO_STEP  ?=
PSEUDO_TIMED ?= $(2)
IMAGE_FLAGS  ?=
TEXT_FLAGS   ?=
MODES        ?= optimize
PSEUDO_FLAGS ?=
IMAGES       ?=
CAPTIONS     ?=
MODEL        ?=
VOCAB        ?=
IMAGE_FEATURES ?=
TEXT_FEATURES  ?=
STORE        ?= $(if $(IMAGES),1,0)
DATASET      ?= $(PSEUDO_OUT)/dataset.lmdb

IMG_FLAGS    := -m $(MODEL) $(IMAGE_FLAGS)
TXT_FLAGS    := -m $(MODEL) $(if $(VOCAB),--vocab $(VOCAB)) $(TEXT_FLAGS)
feat_name     = $(if $(filter optimize,$(1)),pseudo,pseudo-$(1))

.PHONY: all features store check-vars
all: features $(if $(filter 1,$(STORE)),store)
features: $(MODES:%=$(PSEUDO_OUT)/pseudo-%.l2f)

check-vars:
	@$(if $(or $(IMAGES),$(IMAGE_FEATURES)),,echo "pseudo.mk: set IMAGES=DIR (or IMAGE_FEATURES=STREAM)" >&2; exit 2)
	@$(if $(filter gaussian,$(MODES))$(filter-out gaussian,$(MODES)),,echo "pseudo.mk: MODES is empty" >&2; exit 2)
	@$(if $(filter-out optimize retrieve gaussian,$(MODES)),echo "pseudo.mk: unknown mode(s) $(filter-out optimize retrieve gaussian,$(MODES))" >&2; exit 2,)

$(PSEUDO_OUT)/.dir:
	@mkdir -p $(PSEUDO_OUT) && touch $@

# ---- text side: corpus features and their index ------------------------------
ifneq ($(TEXT_FEATURES),)
$(PSEUDO_OUT)/captions.l2f: $(TEXT_FEATURES) | $(PSEUDO_OUT)/.dir
	cp $< $@.tmp && mv $@.tmp $@
else
$(PSEUDO_OUT)/captions.l2f: $(CAPTIONS) $(MODEL) | $(PSEUDO_OUT)/.dir
	@$(if $(CAPTIONS),,echo "pseudo.mk: set CAPTIONS=FILE (or TEXT_FEATURES=STREAM)" >&2; exit 2)
	@$(if $(MODEL),,echo "pseudo.mk: set MODEL=WEIGHTS for l2-encode-text" >&2; exit 2)
	$(call PSEUDO_STEP,encode,encoding the captions $(CAPTIONS))
	$(call PSEUDO_TIMED,encode-captions,$(PSEUDO_BIN)l2-encode-text $(TXT_FLAGS) $(CAPTIONS) > $@.tmp)
	mv $@.tmp $@
endif

$(PSEUDO_OUT)/captions.idx/.built: $(PSEUDO_OUT)/captions.l2f
	$(call PSEUDO_STEP,index,indexing the captions)
	rm -rf $(PSEUDO_OUT)/captions.idx.tmp
	$(call PSEUDO_TIMED,index-captions,$(PSEUDO_BIN)l2-build-index --quiet -o $(PSEUDO_OUT)/captions.idx.tmp $<)
	touch $(PSEUDO_OUT)/captions.idx.tmp/.built
	rm -rf $(PSEUDO_OUT)/captions.idx && mv $(PSEUDO_OUT)/captions.idx.tmp $(PSEUDO_OUT)/captions.idx

# ---- image side -----------------------------------------------------------------
ifneq ($(IMAGE_FEATURES),)
$(PSEUDO_OUT)/images.l2f: $(IMAGE_FEATURES) | check-vars $(PSEUDO_OUT)/.dir
	cp $< $@.tmp && mv $@.tmp $@
else
$(PSEUDO_OUT)/images.l2f: $(if $(IMAGES),$(shell find $(IMAGES) -type f 2>/dev/null)) $(MODEL) | check-vars $(PSEUDO_OUT)/.dir
	@$(if $(MODEL),,echo "pseudo.mk: set MODEL=WEIGHTS for l2-encode-images" >&2; exit 2)
	$(call PSEUDO_STEP,encode,encoding the images $(IMAGES))
	$(call PSEUDO_TIMED,encode-images,$(PSEUDO_BIN)l2-encode-images $(IMG_FLAGS) $(IMAGES) > $@.tmp)
	mv $@.tmp $@
endif

# ---- pseudo text features ----------------------------------------------------------
# gaussian needs only the image features.  GAUSSIAN_INPUT=neighbors makes it read the
# retrieved neighbours instead, like the other modes: the same features, and a report that
# also gives the cosine to the retrieved captions (the demo's report shows it).
GAUSSIAN_INPUT ?= images
ifneq ($(GAUSSIAN_INPUT),neighbors)
$(PSEUDO_OUT)/pseudo-gaussian.l2f: $(PSEUDO_OUT)/images.l2f
	$(call PSEUDO_STEP,pseudo,pseudo features: gaussian)
	$(call PSEUDO_TIMED,pseudo-gaussian,$(PSEUDO_BIN)l2-optimize-pseudo --mode gaussian $(PSEUDO_FLAGS) --report-file $(PSEUDO_OUT)/report-gaussian.tsv $< > $@.tmp)
	mv $@.tmp $@
endif

$(PSEUDO_OUT)/pseudo-%.l2f: $(PSEUDO_OUT)/images.l2f $(PSEUDO_OUT)/captions.idx/.built
	$(call PSEUDO_STEP,pseudo,pseudo features: $*)
	$(call PSEUDO_TIMED,pseudo-$*,$(PSEUDO_BIN)l2-retrieve -i $(PSEUDO_OUT)/captions.idx -k $(PSEUDO_K) $< \
		| $(PSEUDO_BIN)l2-optimize-pseudo --mode $* $(PSEUDO_FLAGS) --report-file $(PSEUDO_OUT)/report-$*.tsv > $@.tmp)
	mv $@.tmp $@

# ---- into the dataset ------------------------------------------------------------------
# l2-dataset (schemas/dataset.md): build the dataset from the image folder (with
# CAPTIONS as its caption corpus) when it does not exist yet, then put each
# feature stream as feat.NAME.
DATASET_TOOL ?= $(PSEUDO_BIN)l2-dataset

store: $(PSEUDO_OUT)/.stored

$(PSEUDO_OUT)/.stored: $(PSEUDO_OUT)/images.l2f $(MODES:%=$(PSEUDO_OUT)/pseudo-%.l2f)
	@command -v $(DATASET_TOOL) >/dev/null || { echo "pseudo.mk: $(DATASET_TOOL) not found (build it, or STORE=0)" >&2; exit 1; }
	if [ ! -e $(DATASET) ]; then \
		$(if $(IMAGES),$(DATASET_TOOL) build --quiet $(if $(CAPTIONS),--corpus $(CAPTIONS)) $(DATASET) $(IMAGES),echo "pseudo.mk: $(DATASET) does not exist and IMAGES is not set" >&2; exit 1); \
	fi
	$(DATASET_TOOL) put-features $(DATASET) image $(PSEUDO_OUT)/images.l2f
	$(foreach m,$(MODES),$(DATASET_TOOL) put-features $(DATASET) $(call feat_name,$(m)) $(PSEUDO_OUT)/pseudo-$(m).l2f;)
	touch $@
