# gan.mk — the demo's GAN image half, included by pipelines/demo.mk (IMAGE_HALVES).
#
#   make demo                                     runs it before the report (IMAGE_HALVES=gan)
#   make -f pipelines/demo.mk gan                 only this half (after the feature half)
#   make -f pipelines/demo.mk gan GAN_PRE_STEPS=10000 GAN_FT_STEPS=2000  a longer run
#   make -f pipelines/demo.mk experiment-fewshot  the few-shot table (pipelines/experiment-fewshot.mk)
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
