# workflow.mk — Lafite2's workflows on your own image folder (man l2-workflows(7)).
#
#   make -f pipelines/workflow.mk pretrain   IMAGES=photos/ CAPTIONS=captions.tsv CLIP=clip.safetensors
#   make -f pipelines/workflow.mk zeroshot   IMAGES=photos/ CAPTIONS=captions.tsv CLIP=clip.safetensors
#   make -f pipelines/workflow.mk fewshot    ... PAIRS=0.1          (also: semi, supervised)
#   make -f pipelines/workflow.mk fewshot    ... GENERATOR=diffusion PSEUDO=retrieve OUT=runs
#   make -f pipelines/workflow.mk fewshot    DATASET=ds.lmdb CLIP=...  an l2 dataset already built
#   make -f pipelines/workflow.mk fewshot    ... PSEUDO=none     no pre-training: from scratch
#   make -f pipelines/workflow.mk evaluate   ... MIX=1           sampling mixed with retrieval
#   make -f pipelines/workflow.mk help       the variables and targets
#
# Stages (each rebuilds only when its inputs or settings changed):
#   dataset   l2-dataset build IMAGES (+ CAPTIONS), TEST_FRACTION held out     $(D)/dataset.lmdb
#             (or DATASET=, an existing l2 dataset with its own split, used as it is; the
#             workflow adds its feature sets to it)
#   encode    the held-out images (RGB over the dataset's background) and captions, every
#             caption, the train images: l2-encode-images / l2-encode-text with CLIP
#   pseudo    pipelines/pseudo.mk: index the CORPUS, retrieve K captions per train image,
#             l2-optimize-pseudo --mode PSEUDO; imported into the dataset as feature sets
#             named after CLIP (image-ID, caption-ID, pseudo-ID), so other CLIPs never mix in
#   pretrain  l2-train-gan / l2-train-diffusion language-free (--cond pseudo, or gaussian;
#             PSEUDO=none: none, and fewshot/supervised train from scratch for FT_STEPS)
#   zeroshot  the pre-trained model evaluated on the held-out captions
#   fewshot   fine-tuned from it with PAIRS of the training pairs (--paired-only)
#   semi      fine-tuned from it with PAIRS of the pairs and the pseudo features for the rest
#   supervised  fine-tuned from it with every pair (--cond text)
#   evaluate  SETTING's evaluation alone (default fewshot)
#   run-dir   prints SETTING's run directory (for scripts driving many settings)
# Every evaluation: one sample per distinct held-out caption -> CLIP-feature FD to the held-out
# images, CLIP score, R-precision (pipelines/r-precision.sh) beside the real images' figure,
# Inception FID/KID with INCEPTION=, a sample grid; RUN/eval/report.html and $(OUT)/report.html
# (every evaluated run under OUT in one table).  MIX=1 evaluates into RUN/eval-mix/ instead, each
# condition mixed with its MIX_FLAGS nearest corpus captions at sampling (l2-sample --retrieve).
#
# Where things go (IDs are hashes of the settings that make them, so outputs of other settings
# live beside them and never overwrite them; a second PAIRS reuses the pre-training):
#   $(OUT)/data-ID/                     dataset, exports, caption lists
#   $(OUT)/data-ID/clip-ID/             feature streams of that CLIP
#   $(OUT)/data-ID/clip-ID/corpus-ID/   corpus index and pseudo features (pipelines/pseudo.mk)
#   $(OUT)/GENERATOR-SETTING-...-ID/    a training run; its eval/ the evaluation
# Bad input (missing IMAGES, captions naming missing images, an empty corpus, a CLIP whose
# feature size differs from features stored under its name) stops before anything is written.

SHELL        := /bin/bash
.SHELLFLAGS  := -o pipefail -ec
.DELETE_ON_ERROR:
.SUFFIXES:
.DEFAULT_GOAL := help
# the stages say what they do ("workflow: ..."); VERBOSE=1 also prints the commands
ifeq ($(VERBOSE),)
.SILENT:
endif

WF_ROOT      := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))/..
BUILD        ?= build
BIN          ?= $(if $(wildcard $(BUILD)/bin/l2-train-gan),$(abspath $(BUILD))/bin,$(patsubst %/,%,$(dir $(shell command -v l2-train-gan 2>/dev/null))))
export L2_BIN := $(BIN)

# ---- the user's inputs ------------------------------------------------------------------
IMAGES       ?=
CAPTIONS     ?=
# an existing l2 dataset instead of IMAGES and CAPTIONS (given on the command line)
WF_DATASET   := $(if $(filter command line,$(origin DATASET)),$(DATASET))
CORPUS       ?=
CLIP         ?=
VOCAB        ?= $(CLIP:.safetensors=.vocab.txt.gz)
INCEPTION    ?=
OUT          ?= workflow-out
# ---- settings -----------------------------------------------------------------------------
GENERATOR    ?= gan
PAIRS        ?= 0.1
PSEUDO       ?= optimize
SETTING      ?= fewshot
SEED         ?= 0
TEST_FRACTION ?= 0.1
SPLIT_SEED   ?= 0
# R,G,B: images with alpha become RGB over this colour (l2-dataset build --background);
# empty: alpha dropped.  SKIP_BAD=1: images the tools cannot read are left out with a warning
BACKGROUND   ?=
SKIP_BAD     ?=
K            ?= 16
RES          ?= 32
THREADS      ?=
ifeq ($(GENERATOR),diffusion)
BATCH        ?= 32
PRE_STEPS    ?= 1000
FT_STEPS     ?= 300
else
BATCH        ?= 8
PRE_STEPS    ?= 2000
FT_STEPS     ?= 500
endif
GAN_SIZE     ?= --resolution $(RES) --channel-base 512 --channel-max 32 --z-dim 64 --w-dim 64 --cond-hidden 64 --map-layers 2
GAN_FT_FLAGS ?= --gamma-con 5
# semi: the condition of the images without their pair (the pre-training's by default; mixed:
# pseudo or Gaussian at random)
SEMI_COND    ?= $(PRE_COND)
DIFF_PRESET  ?= tiny
DIFF_SIZE    ?= --preset $(DIFF_PRESET) --resolution $(RES)
DIFF_EMA     ?= 0.050
DIFF_SAMPLE  ?= --sampler dpmpp-2m --steps 16 --guidance 2
TRAIN_FLAGS  ?=
GRID_CAPTIONS ?= 8
GRID_N       ?= 4
PSEUDO_FLAGS ?= --seed $(SEED)
# DiffAugment in the GAN's fine-tuning (l2-train-gan --augment), e.g. AUGMENT=color,translation,cutout
AUGMENT      ?=
MIX          ?=
MIX_FLAGS    ?= --retrieve-k 5 --retrieve-weight 0.5

# the user's folder and captions: pipelines/pseudo.mk (included below) takes IMAGES and CAPTIONS
# to mean the exported train images and the corpus
WF_IMAGES    := $(IMAGES)
WF_CAPTIONS  := $(CAPTIONS)

# ---- checks, before anything is written ---------------------------------------------------
wf_error = $(error workflow.mk: $(1))
abs     = $(abspath $(1))
NEEDS_DATA := $(filter-out help clean-out,$(or $(MAKECMDGOALS),$(.DEFAULT_GOAL)))
ifneq ($(NEEDS_DATA),)
$(if $(filter gan diffusion,$(GENERATOR)),,$(call wf_error,GENERATOR=$(GENERATOR): gan or diffusion))
$(if $(filter optimize retrieve gaussian none,$(PSEUDO)),,$(call wf_error,PSEUDO=$(PSEUDO): optimize, retrieve, gaussian or none))
$(if $(filter none,$(PSEUDO)),$(if $(filter pretrain zeroshot semi,$(NEEDS_DATA) $(if $(filter evaluate run-dir,$(NEEDS_DATA)),$(SETTING))),$(call wf_error,PSEUDO=none (no pre-training) has only the fewshot and supervised settings)))
ifneq ($(WF_DATASET),)
$(if $(WF_IMAGES)$(WF_CAPTIONS),$(call wf_error,DATASET= stands for IMAGES= and CAPTIONS=: give one or the other))
$(if $(wildcard $(WF_DATASET)/data.mdb),,$(call wf_error,DATASET=$(WF_DATASET): not an l2 dataset (no data.mdb)))
else
$(if $(WF_IMAGES),,$(call wf_error,set IMAGES=DIR (your image folder) or DATASET=ds.lmdb))
$(if $(wildcard $(WF_IMAGES)/.),,$(call wf_error,IMAGES=$(WF_IMAGES): no such folder))
$(if $(filter $(call abs,$(WF_IMAGES))/%,$(call abs,$(OUT))/),$(call wf_error,OUT=$(OUT) is inside IMAGES=$(WF_IMAGES): its exports would join the dataset))
endif
$(if $(CLIP),,$(call wf_error,set CLIP=WEIGHTS (l2-train-clip's, or OpenAI's converted)))
$(if $(wildcard $(CLIP)),,$(call wf_error,CLIP=$(CLIP): no such file))
$(if $(wildcard $(VOCAB)),,$(call wf_error,VOCAB=$(VOCAB): no such file (l2-train-clip writes it beside the weights; else set VOCAB=)))
$(if $(or $(INCEPTION),),$(if $(wildcard $(INCEPTION)),,$(call wf_error,INCEPTION=$(INCEPTION): no such file)))
$(if $(BIN),,$(call wf_error,the l2 tools are neither in $(BUILD)/bin nor on PATH (make first, or BUILD=)))
ifneq ($(WF_CAPTIONS),)
$(if $(wildcard $(WF_CAPTIONS)),,$(call wf_error,CAPTIONS=$(WF_CAPTIONS): no such file))
# every image a caption line names must be in IMAGES: a typo would otherwise silently lose pairs
WF_MISSING := $(shell awk -F'\t' 'NF && $$1 != "" { print $$1 }' '$(WF_CAPTIONS)' | sort -u | \
	{ n=0 first=; while IFS= read -r p; do [ -f '$(WF_IMAGES)'/"$$p" ] || { n=$$((n + 1)); [ -n "$$first" ] || first=$$p; }; done; \
	[ -z "$$first" ] || printf '%s image(s) not in $(WF_IMAGES), the first: %s' $$n "$$first"; })
$(if $(WF_MISSING),$(call wf_error,CAPTIONS=$(WF_CAPTIONS) names $(WF_MISSING)))
$(if $(shell awk -F'\t' 'NF >= 2 && $$2 != "" { print 1; exit }' '$(WF_CAPTIONS)'),,$(call wf_error,CAPTIONS=$(WF_CAPTIONS) has no path<TAB>caption line))
endif
ifneq ($(CORPUS),)
$(if $(wildcard $(CORPUS)),,$(call wf_error,CORPUS=$(CORPUS): no such file))
$(if $(filter gaussian,$(PSEUDO)),,$(if $(shell grep -q '[^[:space:]]' '$(CORPUS)' && echo 1),,$(call wf_error,CORPUS=$(CORPUS) is empty: retrieval needs caption lines)))
else ifeq ($(WF_CAPTIONS)$(WF_DATASET),)
$(if $(filter gaussian none,$(PSEUDO)),,$(call wf_error,no corpus to retrieve from: set CORPUS=FILE or CAPTIONS=FILE.tsv (or PSEUDO=gaussian)))
endif
ifneq ($(filter zeroshot fewshot semi supervised evaluate,$(NEEDS_DATA)),)
$(if $(WF_CAPTIONS)$(WF_DATASET),,$(call wf_error,$(filter zeroshot fewshot semi supervised evaluate,$(NEEDS_DATA)) needs CAPTIONS=FILE.tsv (pairs and held-out captions)))
endif
ifneq ($(filter fewshot semi,$(NEEDS_DATA) $(if $(filter evaluate run-dir,$(NEEDS_DATA)),$(SETTING))),)
$(if $(shell awk 'BEGIN { exit !($(PAIRS) + 0 > 0 && $(PAIRS) + 0 <= 1) }' && echo ok),,$(call wf_error,PAIRS=$(PAIRS): a fraction above 0 and at most 1 (PAIRS=0 is the zeroshot target)))
endif
endif

# ---- IDs: a hash of what each stage's output depends on -------------------------------------
id = $(shell printf '%s' '$(strip $(1))' | md5sum | cut -c1-8)
DATA_ID   := $(call id,$(if $(WF_DATASET),dataset $(call abs,$(WF_DATASET)),$(call abs,$(WF_IMAGES)) $(if $(WF_CAPTIONS),$(call abs,$(WF_CAPTIONS))) $(TEST_FRACTION) $(SPLIT_SEED) $(BACKGROUND) $(SKIP_BAD)))
CLIP_ID   := $(call id,$(call abs,$(CLIP)) $(call abs,$(VOCAB)))
CORPUS_ID := $(call id,$(if $(CORPUS),$(call abs,$(CORPUS)),train-captions) $(K) $(PSEUDO_FLAGS))
D         := $(OUT)/data-$(DATA_ID)
F         := $(D)/clip-$(CLIP_ID)
P         := $(F)/corpus-$(CORPUS_ID)
DATASET   := $(D)/dataset.lmdb
IMG_SET   := image-$(CLIP_ID)
CAP_SET   := caption-$(CLIP_ID)
PS_SET    := pseudo-$(call id,$(CLIP_ID) $(CORPUS_ID) $(PSEUDO))
THR       := $(if $(THREADS),--threads $(THREADS))
# PSEUDO=none (no pre-training) and gaussian need no corpus, retrieval or pseudo features
NO_PS     := $(filter gaussian none,$(PSEUDO))
FEATS     := --image-feature $(IMG_SET) --caption-feature $(CAP_SET) $(if $(NO_PS),,--pseudo-feature $(PS_SET))
PRE_COND  := $(if $(filter gaussian,$(PSEUDO)),gaussian,pseudo)

ifeq ($(GENERATOR),diffusion)
TRAIN     := $(BIN)/l2-train-diffusion
GEN_FLAGS := $(DIFF_SIZE) --batch $(BATCH) --seed $(SEED) $(THR) $(TRAIN_FLAGS)
FT_EXTRA  :=
MODEL_FILE := model_ema-$(DIFF_EMA).safetensors
SAMPLE_FLAGS := $(DIFF_SAMPLE)
else
TRAIN     := $(BIN)/l2-train-gan
GEN_FLAGS := $(GAN_SIZE) --batch $(BATCH) --seed $(SEED) $(THR) $(TRAIN_FLAGS)
FT_EXTRA  := $(GAN_FT_FLAGS) $(if $(AUGMENT),--augment $(AUGMENT)) --clip $(call abs,$(CLIP))
MODEL_FILE := G_ema.safetensors
SAMPLE_FLAGS :=
endif
PRE_ID    := $(call id,$(DATA_ID) $(CLIP_ID) $(if $(NO_PS),,$(CORPUS_ID)) $(PSEUDO) $(GEN_FLAGS) $(if $(filter none,$(PSEUDO)),,$(PRE_STEPS)))
PRE       := $(OUT)/$(GENERATOR)-pre-$(PSEUDO)-$(PRE_ID)
FT_ID      = $(call id,$(PRE_ID) $(1) $(PAIRS) $(FT_STEPS) $(FT_EXTRA) $(if $(filter semi,$(1)),$(SEMI_COND)))
FEW       := $(OUT)/$(GENERATOR)-fewshot-$(PAIRS)-$(PSEUDO)-$(call FT_ID,fewshot)
SEMI      := $(OUT)/$(GENERATOR)-semi-$(PAIRS)-$(PSEUDO)-$(call FT_ID,semi)
SUP       := $(OUT)/$(GENERATOR)-supervised-$(PSEUDO)-$(call FT_ID,supervised)
RUN_zeroshot   := $(PRE)
RUN_fewshot    := $(FEW)
RUN_semi       := $(SEMI)
RUN_supervised := $(SUP)

# the folder's images (path, size, time) in $(D)/images.list, rewritten only when they differ:
# the dataset's prerequisite, so an added, changed or removed image rebuilds it (a list of every
# file as prerequisites would miss removals and break on names with ':' or '%')
# (the temporary file is per process: pipelines/experiment-fewshot.sh runs several at once)
ifneq ($(and $(NEEDS_DATA),$(WF_IMAGES)),)
WF_LIST := $(abspath $(D))/images.list
$(shell mkdir -p '$(D)' && cd '$(WF_IMAGES)' && find -L . -type f \( -iname '*.png' -o -iname '*.jpg' -o -iname '*.jpeg' \) \
	-printf '%P\t%s\t%T@\n' | LC_ALL=C sort > '$(WF_LIST)'.tmp.$$$$ && { cmp -s '$(WF_LIST)'.tmp.$$$$ '$(WF_LIST)' || mv '$(WF_LIST)'.tmp.$$$$ '$(WF_LIST)'; }; rm -f '$(WF_LIST)'.tmp.$$$$)
endif

step = @printf '\nworkflow: %s\n' '$(1)' >&2

.PHONY: help pretrain zeroshot fewshot semi supervised evaluate run-dir dataset features clean-out
help:
	@sed -n '2,32p' $(firstword $(MAKEFILE_LIST)) | sed 's/^# \{0,1\}//'
	@printf '\nVariables: IMAGES CAPTIONS CORPUS CLIP VOCAB INCEPTION OUT GENERATOR PAIRS PSEUDO SETTING SEED\n'
	@printf 'TEST_FRACTION SPLIT_SEED BACKGROUND SKIP_BAD K RES BATCH PRE_STEPS FT_STEPS GAN_SIZE GAN_FT_FLAGS DIFF_PRESET DIFF_SIZE\n'
	@printf 'DIFF_EMA DIFF_SAMPLE SEMI_COND TRAIN_FLAGS THREADS GRID_CAPTIONS GRID_N PSEUDO_FLAGS AUGMENT MIX MIX_FLAGS\n'
	@printf 'DATASET BUILD BIN (see l2-workflows(7))\n'

dataset: $(D)/.dataset
features: $(F)/.imported-$(PSEUDO)

# ---- dataset ---------------------------------------------------------------------------------
$(D)/.dir:
	@mkdir -p $(D) && touch $@

ifneq ($(WF_DATASET),)
# a dataset the user built: read, never rebuilt (the workflow only adds its feature sets)
$(D)/.dataset: | $(D)/.dir
	n=$$($(BIN)/l2-dataset list --split test $(DATASET) | wc -l); [ "$$n" -gt 1 ] || { \
		echo "workflow.mk: DATASET=$(DATASET): $$n held-out image(s): it needs a test split" >&2; exit 1; }
	touch $@
else
$(D)/.dataset: $(D)/images.list $(WF_CAPTIONS) | $(D)/.dir
	$(call step,dataset: $(WF_IMAGES)$(if $(WF_CAPTIONS), with $(WF_CAPTIONS)) -> $(DATASET))
	rm -rf $(DATASET).partial
	$(BIN)/l2-dataset build --quiet --force $(if $(WF_CAPTIONS),--captions $(WF_CAPTIONS)) \
		$(if $(BACKGROUND),--background $(BACKGROUND)) $(if $(filter 1,$(SKIP_BAD)),--skip-bad) \
		--test-fraction $(TEST_FRACTION) --seed $(SPLIT_SEED) $(DATASET) $(WF_IMAGES)
	n=$$($(BIN)/l2-dataset list --split test $(DATASET) | wc -l); [ "$$n" -gt 1 ] || { \
		echo "workflow.mk: $(WF_IMAGES): $$n held-out image(s) at TEST_FRACTION=$(TEST_FRACTION): raise it (or SPLIT_SEED=)" >&2; exit 1; }
	touch $@
endif

# pixels the trainers see: RGB over the dataset's background
$(D)/images-%/.done: $(D)/.dataset
	rm -rf $(D)/images-$*
	$(BIN)/l2-dataset export-images --quiet --rgb --split $* -o $(D)/images-$* $(DATASET)
	touch $@

$(D)/test-captions.txt $(D)/train-captions.txt $(D)/all-captions.txt: $(D)/%-captions.txt: $(D)/.dataset
	$(BIN)/l2-dataset captions --unique --split $(if $(filter all,$*),all,$*) $(DATASET) > $@.tmp && mv $@.tmp $@

# ---- features of this CLIP -----------------------------------------------------------------------
$(F)/.dir: | $(D)/.dir
	@mkdir -p $(F) && touch $@

$(F)/test-images.l2f: $(D)/images-test/.done $(CLIP) | $(F)/.dir
	$(call step,encoding the held-out images)
	$(BIN)/l2-encode-images --quiet $(THR) -m $(CLIP) $(D)/images-test > $@.tmp && mv $@.tmp $@

$(F)/%-captions.l2f: $(D)/%-captions.txt $(CLIP) $(VOCAB) | $(F)/.dir
	$(call step,encoding the captions ($*: $(shell wc -l < $< 2>/dev/null)))
	$(BIN)/l2-encode-text --quiet $(THR) -m $(CLIP) --vocab $(VOCAB) $< > $@.tmp && mv $@.tmp $@

# import a stream as feature set NAME unless the dataset holds NAME with another size (a CLIP
# replaced at the same path by one of another width): say so instead of a half-done import.
# $(call import,NAME,FILE...): the streams concatenated into feature set NAME
import = dim=$$($(BIN)/l2-dataset stats $(DATASET) | awk -F'\t' '$$1 == "feature" && $$2 == "$(1)" { print $$4 }'); \
	new=$$($(BIN)/l2-cat --header $(firstword $(2)) | awk -F'\t' '$$1 == "dim" { print $$2 }'); \
	if [ -n "$$dim" ] && [ "$$dim" != "$$new" ]; then \
		echo "workflow.mk: CLIP=$(CLIP) gives $$new-dimensional features but $(DATASET) holds feature set $(1) of dimension $$dim (made by another CLIP at this path): use another OUT=, or remove $(D)" >&2; exit 1; fi; \
	$(BIN)/l2-cat $(2) | $(BIN)/l2-dataset import-features --quiet -n $(1) --model $(call abs,$(CLIP)) $(DATASET)

$(F)/.imported-$(PSEUDO): $(P)/images.l2f $(F)/test-images.l2f $(F)/all-captions.l2f $(if $(NO_PS),,$(P)/pseudo-$(PSEUDO).l2f)
	$(call step,storing the features in the dataset ($(IMG_SET) $(CAP_SET)$(if $(NO_PS),, $(PS_SET))))
	$(call import,$(IMG_SET),$(P)/images.l2f $(F)/test-images.l2f)
	$(call import,$(CAP_SET),$(F)/all-captions.l2f)
	$(if $(NO_PS),,$(call import,$(PS_SET),$(P)/pseudo-$(PSEUDO).l2f))
	touch $@

# ---- pipelines/pseudo.mk: train images + corpus -> pseudo text features -----------------------------
PSEUDO_OUT   := $(P)
PSEUDO_K     := $(K)
PSEUDO_BIN   := $(BIN)/
PSEUDO_STEP   = $(call step,$(2))
MODEL        := $(CLIP)
TEXT_FLAGS   := --quiet $(THR)
IMAGE_FLAGS  := --quiet $(THR)
STORE        := 0
MODES        := $(if $(filter none,$(PSEUDO)),gaussian,$(PSEUDO))
override IMAGES   := $(D)/images-train
override CAPTIONS := $(if $(CORPUS),$(CORPUS),$(D)/train-captions.txt)
include $(WF_ROOT)/pipelines/pseudo.mk
$(P)/.dir: | $(F)/.dir
$(P)/images.l2f: $(D)/images-train/.done
$(P)/captions.l2f: $(VOCAB)

# ---- training ------------------------------------------------------------------------------------
# $(call train,RUNDIR,FLAGS,STEPS): into RUNDIR.tmp, renamed when complete
train = rm -rf $(1).tmp; \
	$(TRAIN) -d $(DATASET) -o $(1).tmp $(FEATS) $(GEN_FLAGS) --steps $(3) $(2); \
	rm -rf $(1) && mv $(1).tmp $(1) && touch $(1)/.done

pretrain: $(PRE)/.done
$(PRE)/.done: $(F)/.imported-$(PSEUDO)
	$(call step,pre-training the $(GENERATOR) language-free on $(PSEUDO) pseudo features ($(PRE_STEPS) steps) -> $(PRE))
	$(call train,$(PRE),--cond $(PRE_COND),$(PRE_STEPS))

# PSEUDO=none: the fine-tuning settings from a random initialisation (no pre-training)
FROM_PRE  := $(if $(filter none,$(PSEUDO)),$(F)/.imported-none,$(PRE)/.done)
INIT      := $(if $(filter none,$(PSEUDO)),,--init $(PRE))
FROM_WHAT := $(if $(filter none,$(PSEUDO)),from scratch,from $(PRE))
TRAINING  := $(if $(filter none,$(PSEUDO)),training,fine-tuning)

$(FEW)/.done: $(FROM_PRE)
	$(call step,few-shot: $(TRAINING) with $(PAIRS) of the pairs $(FROM_WHAT) ($(FT_STEPS) steps) -> $(FEW))
	$(call train,$(FEW),$(INIT) --pairs-fraction $(PAIRS) --paired-only $(FT_EXTRA),$(FT_STEPS))

$(SEMI)/.done: $(PRE)/.done
	$(call step,semi-supervised: fine-tuning with $(PAIRS) of the pairs and --cond $(SEMI_COND) for the rest ($(FT_STEPS) steps) -> $(SEMI))
	$(call train,$(SEMI),--init $(PRE) --pairs-fraction $(PAIRS) --cond $(SEMI_COND) $(FT_EXTRA),$(FT_STEPS))

$(SUP)/.done: $(FROM_PRE)
	$(call step,fully supervised: $(TRAINING) with every pair $(FROM_WHAT) ($(FT_STEPS) steps) -> $(SUP))
	$(call train,$(SUP),$(INIT) --cond text $(FT_EXTRA),$(FT_STEPS))

# ---- evaluation -------------------------------------------------------------------------------------
include $(WF_ROOT)/pipelines/workflow-eval.mk

zeroshot: $(OUT)/report.html $(PRE)/$(EVAL)/metrics.tsv
fewshot: $(OUT)/report.html $(FEW)/$(EVAL)/metrics.tsv
semi: $(OUT)/report.html $(SEMI)/$(EVAL)/metrics.tsv
supervised: $(OUT)/report.html $(SUP)/$(EVAL)/metrics.tsv
evaluate: $(OUT)/report.html $(RUN_$(SETTING))/$(EVAL)/metrics.tsv
run-dir:
	@echo '$(RUN_$(SETTING))'

clean-out:
	@echo "workflow.mk: to forget everything, remove $(OUT) yourself (runs are not deleted by make)" >&2
