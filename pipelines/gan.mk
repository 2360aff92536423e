# gan.mk — the demo's GAN image half, included by pipelines/demo.mk (IMAGE_HALVES).
#
#   make demo                                     runs it before the report (IMAGE_HALVES=gan)
#   make -f pipelines/demo.mk gan                 only this half (after the feature half)
#   make -f pipelines/demo.mk gan GAN_PRE_STEPS=10000 GAN_FT_STEPS=2000  a longer run
#   make -f pipelines/demo.mk experiment-fewshot  the few-shot table (long; not in tests)
#
# Steps:
#   8 gan-pre     l2-train-gan language-free on the train images with the optimised pseudo
#                 features (feat.pseudo)                         -> $(W)/gan-pre/
#   9 gan-ft      fine-tune from it with 10% of the training pairs (--paired-only), L_ConG
#                 through the demo's CLIP, FD every tick          -> $(W)/gan-ft/
#  10 gan-sample  l2-sample G_ema on the held-out captions; CLIP features of the samples;
#                 l2-fid (feature streams) against the held-out images; the HTML section
#                 $(OUT)/extra/50-gan.html (prompt beside its images) for report.sh
# Uses from demo.mk: BIN, W, P, OUT, DATASET, MODEL, VOCAB, SEED, step, timed, $(W)/.stored,
# $(W)/test-captions.txt.l2f, $(W)/test-images.l2f, $(P)/images.l2f (the train images).

GAN_RES        ?= 32
GAN_SIZE       ?= --resolution $(GAN_RES) --channel-base 512 --channel-max 32 --z-dim 64 --w-dim 64 --cond-hidden 64 --map-layers 2
GAN_BATCH      ?= 8
GAN_PRE_STEPS  ?= 2000
GAN_FT_STEPS   ?= 500
GAN_PAIRS      ?= 0.1
GAN_TICK       ?= 250
GAN_COMMON     ?= $(GAN_SIZE) --batch $(GAN_BATCH) --seed $(SEED) --tick $(GAN_TICK)
GAN_SAMPLES    ?= 16
GAN_N          ?= 4

.PHONY: gan gan-pre gan-ft gan-sample
gan: $(OUT)/extra/50-gan.html

$(W)/gan-pre/.done: $(W)/.stored
	$(call step,8/10,GAN pre-training language-free on pseudo features ($(GAN_PRE_STEPS) steps))
	$(call timed,gan-pre,$(BIN)/l2-train-gan -d $(DATASET) -o $(W)/gan-pre --cond pseudo $(GAN_COMMON) --steps $(GAN_PRE_STEPS))
	touch $@

$(W)/gan-ft/.done: $(W)/gan-pre/.done $(MODEL)
	$(call step,9/10,GAN fine-tuning with $(GAN_PAIRS) of the pairs ($(GAN_FT_STEPS) steps))
	$(call timed,gan-ft,$(BIN)/l2-train-gan -d $(DATASET) -o $(W)/gan-ft --init $(W)/gan-pre --pairs-fraction $(GAN_PAIRS) --paired-only \
		--gamma-con 5 --clip $(MODEL) --fid-every $(GAN_TICK) $(GAN_COMMON) --steps $(GAN_FT_STEPS))
	touch $@
gan-pre: $(W)/gan-pre/.done
gan-ft: $(W)/gan-ft/.done

# held-out captions -> one image each (for the FD) and a few with GAN_N images (for the report)
$(W)/gan-samples/.done: $(W)/gan-ft/.done $(W)/test-captions.txt.l2f
	$(call step,10/10,sampling the held-out captions)
	rm -rf $(W)/gan-samples $(W)/gan-fd && mkdir -p $(W)/gan-samples
	$(call timed,gan-sample,$(BIN)/l2-sample --quiet -m $(W)/gan-ft/G_ema.safetensors -n 1 -o $(W)/gan-fd $(W)/test-captions.txt.l2f)
	head -n $(GAN_SAMPLES) $(W)/test-captions.txt > $(W)/gan-samples/prompts-in.txt
	$(BIN)/l2-sample --quiet -m $(W)/gan-ft/G_ema.safetensors --clip $(MODEL) --vocab $(VOCAB) --prompts $(W)/gan-samples/prompts-in.txt \
		-n $(GAN_N) -o $(W)/gan-samples
	touch $@

$(W)/gan-fd.txt: $(W)/gan-samples/.done $(W)/test-images.l2f
	rm -f $(W)/gan-fd/prompts.txt
	$(BIN)/l2-encode-images --quiet -m $(MODEL) $(W)/gan-fd > $(W)/gan-fd.l2f
	$(BIN)/l2-fid $(W)/gan-fd.l2f $(W)/test-images.l2f > $@.tmp && mv $@.tmp $@

$(OUT)/extra/50-gan.html: $(W)/gan-fd.txt
	mkdir -p $(OUT)/extra $(OUT)/img/gan
	cp $(W)/gan-samples/*.png $(OUT)/img/gan/
	cp $(W)/gan-ft/grid.png $(OUT)/img/gan/train-grid.png
	cp $(W)/gan-ft/loss.png $(OUT)/img/gan/ft-loss.png
	cp $(W)/gan-pre/loss.png $(OUT)/img/gan/pre-loss.png
	{ echo '<h2>Text to image (Lafite GAN)</h2>'; \
	  echo "<p>Pre-trained language-free for $(GAN_PRE_STEPS) steps on the optimised pseudo text features, fine-tuned for $(GAN_FT_STEPS) steps on $(GAN_PAIRS) of the training pairs (batch $(GAN_BATCH), $(GAN_RES)&times;$(GAN_RES)). Held-out captions, G_ema, $(GAN_N) seeds each.</p>"; \
	  echo "<p>CLIP-feature Fr&eacute;chet distance, one sample per held-out caption vs the held-out images: <b>$$(head -1 $(W)/gan-fd.txt | sed 's/^FID: //')</b></p>"; \
	  echo '<table>'; \
	  while IFS=$$'\t' read -r i p; do \
	    printf '<tr><td>%s</td><td>' "$$(printf '%s' "$$p" | sed 's/&/\&amp;/g; s/</\&lt;/g')"; \
	    for j in $$(seq 0 $$(($(GAN_N) - 1))); do printf '<img src="img/gan/%s-%02d.png" width="64" height="64"> ' "$$i" "$$j"; done; \
	    echo '</td></tr>'; \
	  done < $(W)/gan-samples/prompts.txt; \
	  echo '</table>'; \
	  echo '<p>Fine-tuning samples per tick (rows: held-out captions, real image first) and loss curves (red G, blue D):</p>'; \
	  echo '<img src="img/gan/train-grid.png"> <img src="img/gan/pre-loss.png" width="320"> <img src="img/gan/ft-loss.png" width="320">'; \
	} > $@.tmp && mv $@.tmp $@

# ---- the few-shot experiment (long; not part of tests or the default demo) -------------------------
# Four pre-training conditions with the same budget, each fine-tuned at 1% and 10% pairs:
#   none      no pre-training (fine-tune from scratch)
#   gaussian  pre-trained on Gaussian pseudo features (Lafite)
#   retrieve  pre-trained on retrieval-only pseudo features
#   optimize  pre-trained on retrieval + optimisation (Lafite2)
# Evaluation on the held-out split: G_ema samples one image per distinct held-out caption;
#   fd_clip     Frechet distance of the samples' CLIP features to the held-out images' (l2-fid)
#   clip_score  mean cosine of each sample's CLIP feature with its caption's (pipelines/clip-score.sh)
# Rows "optimize+mix" sample the optimize runs with l2-sample --retrieve (each prompt's feature
# mixed with its nearest TRAIN captions, METHOD §3 item 4), to measure whether mixing helps.
# Reference rows: the real train images (FD to the held-out images; CLIP score with their own
# captions is not defined for unpaired rows, so it is the held-out images' mean cosine with their
# primary captions). Writes $(FS_DIR)/fewshot.tsv and fewshot.html; the settings go in settings.txt.
FS_PRE_STEPS  ?= 2000
FS_FT_STEPS   ?= 500
FS_DIR        ?= $(W)/fewshot
FS_SETTINGS   := none gaussian retrieve optimize
FS_FRACTIONS  := 0.01 0.1
FS_MIX        ?= --retrieve-k 5 --retrieve-weight 0.5
# the source tree BIN was built from, for settings.txt (set it when BIN is a copy)
FS_TREE       ?= $(shell git describe --always --dirty 2>/dev/null || echo unknown)
FS_RUNS       := $(foreach s,$(FS_SETTINGS),$(foreach f,$(FS_FRACTIONS),$(s)-$(f)))

$(FS_DIR)/pre-%/.done: $(W)/.stored
	$(BIN)/l2-train-gan -d $(DATASET) -o $(FS_DIR)/pre-$* --cond pseudo \
		--pseudo-feature $(if $(filter optimize,$*),pseudo,pseudo-$*) $(GAN_COMMON) --steps $(FS_PRE_STEPS)
	touch $@

define fs_ft
$(FS_DIR)/ft-$(1)-$(2)/.done: $(if $(filter none,$(1)),$(W)/.stored,$(FS_DIR)/pre-$(1)/.done)
	$(BIN)/l2-train-gan -d $(DATASET) -o $(FS_DIR)/ft-$(1)-$(2) $(if $(filter none,$(1)),,--init $(FS_DIR)/pre-$(1)) \
		--pairs-fraction $(2) --paired-only --gamma-con 5 --clip $(MODEL) --fid-every $(FS_FT_STEPS) $(GAN_COMMON) --steps $(FS_FT_STEPS)
	touch $$@
endef
$(foreach s,$(FS_SETTINGS),$(foreach f,$(FS_FRACTIONS),$(eval $(call fs_ft,$(s),$(f)))))

# train captions only: mixing must not see the held-out captions
$(W)/train-captions.txt: $(DATASET)/.complete | $(W)/.dir
	$(BIN)/l2-dataset captions --unique --split train $(DATASET) > $@.tmp && mv $@.tmp $@

# $(call fs_eval,NAME,RUN,EXTRA l2-sample options): samples -> features -> "fd<TAB>clip_score"
define fs_eval
$(FS_DIR)/eval-$(1).tsv: $(FS_DIR)/ft-$(2)/.done $(W)/test-captions.txt.l2f $(W)/test-images.l2f $(if $(3),$(W)/train-captions.idx/.done)
	rm -rf $(FS_DIR)/eval-$(1)
	$(BIN)/l2-sample --quiet -m $(FS_DIR)/ft-$(2)/G_ema.safetensors -n 1 --seed $(SEED) $(3) -o $(FS_DIR)/eval-$(1) $(W)/test-captions.txt.l2f
	rm -f $(FS_DIR)/eval-$(1)/prompts.txt
	$(BIN)/l2-encode-images --quiet -m $(MODEL) $(FS_DIR)/eval-$(1) > $(FS_DIR)/eval-$(1).l2f
	printf '%s\t%s\n' "$$$$($(BIN)/l2-fid $(FS_DIR)/eval-$(1).l2f $(W)/test-images.l2f | sed -n 's/^FID: //p')" \
		"$$$$(L2_BIN=$(BIN) pipelines/clip-score.sh $(FS_DIR)/eval-$(1).l2f $(W)/test-captions.txt.l2f)" > $$@.tmp && mv $$@.tmp $$@
endef
$(foreach r,$(FS_RUNS),$(eval $(call fs_eval,$(r),$(r),)))
$(foreach f,$(FS_FRACTIONS),$(eval $(call fs_eval,optimize+mix-$(f),optimize-$(f),--retrieve $(W)/train-captions.idx $(FS_MIX))))

# references: real train images vs held-out images; held-out images with their primary captions
$(FS_DIR)/eval-real.tsv: $(P)/images.l2f $(W)/test-images.l2f $(W)/.stored
	mkdir -p $(FS_DIR)
	$(BIN)/l2-dataset export-features -n image --split test $(DATASET) > $(FS_DIR)/real-test-images.l2f
	$(BIN)/l2-dataset captions --split test --primary --keys $(DATASET) | cut -f2 > $(FS_DIR)/real-test-captions.txt
	$(BIN)/l2-encode-text --quiet -m $(MODEL) --vocab $(VOCAB) $(FS_DIR)/real-test-captions.txt > $(FS_DIR)/real-test-captions.l2f
	printf '%s\t%s\n' "$$($(BIN)/l2-fid $(P)/images.l2f $(W)/test-images.l2f | sed -n 's/^FID: //p')" \
		"$$(L2_BIN=$(BIN) pipelines/clip-score.sh $(FS_DIR)/real-test-images.l2f $(FS_DIR)/real-test-captions.l2f)" > $@.tmp && mv $@.tmp $@

FS_ROWS := $(FS_RUNS) $(FS_FRACTIONS:%=optimize+mix-%)
$(FS_DIR)/fewshot.tsv: $(FS_ROWS:%=$(FS_DIR)/eval-%.tsv) $(FS_DIR)/eval-real.tsv
	{ printf 'setting\tpairs\tfd_clip\tclip_score\tpre_steps\tft_steps\n'; \
	  for r in $(FS_ROWS); do s=$${r%-*}; f=$${r##*-}; \
	    printf '%s\t%s\t%s\t%s\t%s\n' $$s $$f "$$(cat $(FS_DIR)/eval-$$r.tsv)" \
	      "$$([ $$s = none ] && echo 0 || echo $(FS_PRE_STEPS))" $(FS_FT_STEPS); done; \
	  printf 'real\t-\t%s\t-\t-\n' "$$(cat $(FS_DIR)/eval-real.tsv)"; } > $@.tmp && mv $@.tmp $@
	{ echo 'GAN: $(GAN_COMMON)'; echo 'pre-training steps: $(FS_PRE_STEPS); fine-tuning steps: $(FS_FT_STEPS) (--paired-only --gamma-con 5)'; \
	  echo 'mixing at sampling: $(FS_MIX) over the train captions'; echo "dataset: $(DATASET); CLIP: $(MODEL)"; \
	  echo "l2: $$($(BIN)/l2-train-gan --version), tree $(FS_TREE)"; } > $(FS_DIR)/settings.txt

experiment-fewshot: experiment-fewshot-gan
experiment-fewshot-gan: $(FS_DIR)/fewshot.tsv
	{ echo '<table><tr><th>setting</th><th>pairs</th><th>FD (CLIP features, held-out)</th><th>CLIP score</th><th>pre-training steps</th><th>fine-tuning steps</th></tr>'; \
	  tail -n +2 $< | awk -F'\t' '{ printf "<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n", $$1, $$2, $$3, $$4, $$5, $$6 }'; \
	  echo '</table>'; sed 's/^/<p>/; s/$$/<\/p>/' $(FS_DIR)/settings.txt; } > $(FS_DIR)/fewshot.html
	column -t -s "$$(printf '\t')" $<
