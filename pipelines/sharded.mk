# sharded.mk — pseudo.mk's pipeline with every map stage cut into SHARDS shards.
#
#   make -j2 -f pipelines/sharded.mk SHARDS=8 IMAGES=photos/ CAPTIONS=corpus.txt MODEL=clip.safetensors
#   make -j8 -f pipelines/sharded.mk SHARDS=64 THREADS=1 ...    (8 shards at a time, 1 thread each)
#   make -f pipelines/sharded.mk SHARDS=8 IMAGE_FEATURES=img.l2f TEXT_FEATURES=txt.l2f
#
# Each shard is one make rule, so `make -j` runs them side by side; on several
# machines, run the same commands from GNU parallel or a Slurm job array
# (README "Beyond one machine", pipelines/slurm/).  Shard I of N takes the
# records in blocks I, I+N, I+2N, ... of BLOCK records (--shard I/N:BLOCK,
# lib/core/shard.h), and `l2-cat --unshard` puts them back in order, so every
# merged output is byte-identical to pseudo.mk's.  Under $(OUT):
#
#   shards/captions.I.l2f   l2-encode-text --shard I/N CAPTIONS     (or l2-cat --shard of TEXT_FEATURES)
#   captions.l2f            l2-cat --unshard of the caption shards
#   captions.idx/           l2-build-index of them (one writer)
#   shards/images.I.l2f     l2-encode-images --shard I/N IMAGES     (or l2-cat --shard of IMAGE_FEATURES)
#   shards/pseudo-MODE.I.l2f  l2-retrieve -i captions.idx -k K shards/images.I.l2f
#                             | l2-optimize-pseudo --mode MODE, in one pipe: the neighbours
#                             (35 KB per image at k = 16) are never stored
#                           (gaussian: l2-optimize-pseudo --mode gaussian shards/images.I.l2f)
#   shards/report-MODE.I.tsv  its diagnostics
#   images.l2f, pseudo-MODE.l2f   the shards merged (l2-cat --unshard)
#
# Every output appears by rename, so an interrupted run leaves no half file and
# a rerun redoes only the shards that are missing.  Order-free consumers can
# take the shards as they are: `cat shards/pseudo-optimize.*.l2f | l2-dataset
# import-features ...`.  Byte-identity needs BLOCK to be a multiple of
# l2-optimize-pseudo's --batch (256; 4096 is); the encoders cut their batches
# at blocks themselves.
#
# Variables: SHARDS BLOCK THREADS IMAGES CAPTIONS MODEL VOCAB OUT K MODES PSEUDO_FLAGS
#            IMAGE_FEATURES TEXT_FEATURES IMG_FLAGS TXT_FLAGS BUILD BIN, and
#            INDEX_FLAGS (l2-build-index: --f16 --ivf NLIST), RETRIEVE_FLAGS (--nprobe P).

SHELL        := /bin/bash
.SHELLFLAGS  := -o pipefail -ec
.DELETE_ON_ERROR:
.SUFFIXES:

BUILD        ?= build
BIN          ?= $(if $(wildcard $(BUILD)/bin/l2-optimize-pseudo),$(BUILD)/bin/,)
SHARDS       ?= 2
BLOCK        ?= 4096
THREADS      ?=
OUT          ?= sharded-out
K            ?= 16
MODES        ?= optimize
PSEUDO_FLAGS ?=
INDEX_FLAGS  ?=
RETRIEVE_FLAGS ?=
IMAGES       ?=
CAPTIONS     ?=
MODEL        ?=
VOCAB        ?=
IMAGE_FEATURES ?=
TEXT_FEATURES  ?=

ifneq ($(shell [[ "$(SHARDS)" =~ ^[1-9][0-9]*$$ && "$(BLOCK)" =~ ^[1-9][0-9]*$$ ]] && echo ok),ok)
$(error sharded.mk: SHARDS and BLOCK must be numbers >= 1 (SHARDS=$(SHARDS) BLOCK=$(BLOCK)))
endif
THR          := $(if $(THREADS),--threads $(THREADS))
IMG_FLAGS    ?= -m $(MODEL)
TXT_FLAGS    ?= -m $(MODEL) $(if $(VOCAB),--vocab $(VOCAB))
IDS          := $(shell seq 0 $$(($(SHARDS) - 1)) 2>/dev/null)
S            := $(OUT)/shards
shard_files   = $(IDS:%=$(S)/$(1).%.l2f)
unshard       = $(BIN)l2-cat --quiet --unshard $(SHARDS):$(BLOCK) $(call shard_files,$(1)) > $@.tmp && mv $@.tmp $@

.PHONY: all check-vars
all: $(OUT)/images.l2f $(MODES:%=$(OUT)/pseudo-%.l2f)

check-vars:
	@$(if $(or $(IMAGES),$(IMAGE_FEATURES)),,echo "sharded.mk: set IMAGES=DIR (or IMAGE_FEATURES=STREAM)" >&2; exit 2)
	@$(if $(filter-out optimize retrieve gaussian,$(MODES)),echo "sharded.mk: unknown mode(s) $(filter-out optimize retrieve gaussian,$(MODES))" >&2; exit 2,)

$(S)/.dir:
	@mkdir -p $(S) && touch $@

# ---- text side: caption shards, merged, indexed ----------------------------------------
ifneq ($(TEXT_FEATURES),)
$(S)/captions.%.l2f: $(TEXT_FEATURES) | check-vars $(S)/.dir
	$(BIN)l2-cat --quiet --shard $*/$(SHARDS):$(BLOCK) $< > $@.tmp && mv $@.tmp $@
else
$(S)/captions.%.l2f: $(CAPTIONS) $(MODEL) | check-vars $(S)/.dir
	@$(if $(CAPTIONS),,echo "sharded.mk: set CAPTIONS=FILE (or TEXT_FEATURES=STREAM)" >&2; exit 2)
	@$(if $(MODEL),,echo "sharded.mk: set MODEL=WEIGHTS for l2-encode-text" >&2; exit 2)
	$(BIN)l2-encode-text --quiet $(TXT_FLAGS) $(THR) --shard $*/$(SHARDS):$(BLOCK) $(CAPTIONS) > $@.tmp && mv $@.tmp $@
endif

$(OUT)/captions.l2f: $(call shard_files,captions)
	$(call unshard,captions)

$(OUT)/captions.idx/.built: $(OUT)/captions.l2f
	rm -rf $(OUT)/captions.idx.tmp
	$(BIN)l2-build-index --quiet $(THR) $(INDEX_FLAGS) -o $(OUT)/captions.idx.tmp $<
	touch $(OUT)/captions.idx.tmp/.built
	rm -rf $(OUT)/captions.idx && mv $(OUT)/captions.idx.tmp $(OUT)/captions.idx

# ---- image side ------------------------------------------------------------------------
ifneq ($(IMAGE_FEATURES),)
$(S)/images.%.l2f: $(IMAGE_FEATURES) | check-vars $(S)/.dir
	$(BIN)l2-cat --quiet --shard $*/$(SHARDS):$(BLOCK) $< > $@.tmp && mv $@.tmp $@
else
$(S)/images.%.l2f: $(if $(IMAGES),$(shell find $(IMAGES) -type f 2>/dev/null)) $(MODEL) | check-vars $(S)/.dir
	@$(if $(MODEL),,echo "sharded.mk: set MODEL=WEIGHTS for l2-encode-images" >&2; exit 2)
	$(BIN)l2-encode-images --quiet $(IMG_FLAGS) $(THR) --shard $*/$(SHARDS):$(BLOCK) $(IMAGES) > $@.tmp && mv $@.tmp $@
endif

$(OUT)/images.l2f: $(call shard_files,images)
	$(call unshard,images)

# ---- pseudo text features, per shard ------------------------------------------------------
# A static pattern per mode (MODE.I is ambiguous for one %).
define pseudo_mode
$(S)/pseudo-$(1).%.l2f: $(S)/images.%.l2f $(if $(filter gaussian,$(1)),,$(OUT)/captions.idx/.built)
	$(if $(filter gaussian,$(1)),$$(BIN)l2-optimize-pseudo --quiet --mode gaussian $$(THR) $$(PSEUDO_FLAGS) \
		--report-file $(S)/report-$(1).$$*.tsv $$< > $$@.tmp,$$(BIN)l2-retrieve --quiet $$(THR) $$(RETRIEVE_FLAGS) -i $(OUT)/captions.idx \
		-k $$(K) $$< | $$(BIN)l2-optimize-pseudo --quiet --mode $(1) $$(THR) $$(PSEUDO_FLAGS) \
		--report-file $(S)/report-$(1).$$*.tsv > $$@.tmp)
	mv $$@.tmp $$@

$(OUT)/pseudo-$(1).l2f: $$(call shard_files,pseudo-$(1))
	$$(call unshard,pseudo-$(1))
endef
$(foreach m,$(MODES),$(eval $(call pseudo_mode,$(m))))
