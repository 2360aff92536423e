# diffusion.mk — the demo's diffusion half, beside the GAN half (pipelines/gan.mk); included by
# pipelines/demo.mk.
#
#   make demo                                      runs it through IMAGE_HALVES (demo.mk)
#   make -f pipelines/demo.mk diffusion            only this half (after the feature half)
#   make -f pipelines/demo.mk diffusion DIFF_PRESET=small DIFF_PRE_STEPS=6000   a longer run
#   make -f pipelines/demo.mk experiment-diffusion BUDGET=600   the quality experiment
#                  (pipelines/experiment-diffusion.sh -> bench/results/diffusion.md; long)
#
# Steps:
#   diffusion 1/3  l2-train-diffusion language-free on the train images with the optimised pseudo
#                  features (feat.pseudo)                              -> $(W)/diff-pre/
#   diffusion 2/3  fine-tune from it with 10% of the training pairs (--paired-only)
#                                                                      -> $(W)/diff-ft/
#   diffusion 3/3  l2-sample (DPM-Solver++(2M), classifier-free guidance) the EMA on the held-out
#                  captions: one image each for the CLIP-feature FD against the held-out images
#                  (l2-fid on feature streams, as the GAN half), DIFF_N images for a few of them;
#                  the HTML section $(OUT)/extra/60-diffusion.html for report.sh, with the GAN's FD
#                  beside this one's when the GAN half ran
# Uses from demo.mk: BIN, W, OUT, DATASET, MODEL, VOCAB, SEED, step, timed, $(W)/.stored,
# $(W)/test-captions.txt, $(W)/test-captions.txt.l2f, $(W)/test-images.l2f.

DIFF_PRESET    ?= tiny
DIFF_BATCH     ?= 32
DIFF_PRE_STEPS ?= 1000
DIFF_FT_STEPS  ?= 300
DIFF_PAIRS     ?= 0.1
DIFF_TICK      ?= 250
DIFF_LR        ?= 0.004
DIFF_COMMON    ?= --preset $(DIFF_PRESET) --batch $(DIFF_BATCH) --lr $(DIFF_LR) --seed $(SEED) --tick $(DIFF_TICK)
DIFF_EMA       ?= 0.050
DIFF_SAMPLE    ?= --sampler dpmpp-2m --steps 16 --guidance 2
DIFF_SAMPLES   ?= 16
DIFF_N         ?= 4

.PHONY: diffusion diffusion-pre diffusion-ft experiment-diffusion
diffusion: $(OUT)/extra/60-diffusion.html

$(W)/diff-pre/.done: $(W)/.stored
	$(call step,diffusion 1/3,diffusion pre-training language-free on pseudo features ($(DIFF_PRESET), $(DIFF_PRE_STEPS) steps))
	$(call timed,diff-pre,$(BIN)/l2-train-diffusion -d $(DATASET) -o $(W)/diff-pre --cond pseudo $(DIFF_COMMON) --steps $(DIFF_PRE_STEPS))
	touch $@

$(W)/diff-ft/.done: $(W)/diff-pre/.done
	$(call step,diffusion 2/3,diffusion fine-tuning with $(DIFF_PAIRS) of the pairs ($(DIFF_FT_STEPS) steps))
	$(call timed,diff-ft,$(BIN)/l2-train-diffusion -d $(DATASET) -o $(W)/diff-ft --init $(W)/diff-pre --pairs-fraction $(DIFF_PAIRS) \
		--paired-only $(DIFF_COMMON) --steps $(DIFF_FT_STEPS))
	touch $@
diffusion-pre: $(W)/diff-pre/.done
diffusion-ft: $(W)/diff-ft/.done

# held-out captions -> one image each (for the FD) and a few with DIFF_N images (for the report)
DIFF_MODEL = $(W)/diff-ft/model_ema-$(DIFF_EMA).safetensors
$(W)/diff-samples/.done: $(W)/diff-ft/.done $(W)/test-captions.txt.l2f
	$(call step,diffusion 3/3,sampling the held-out captions)
	rm -rf $(W)/diff-samples $(W)/diff-fd && mkdir -p $(W)/diff-samples
	$(call timed,diff-sample,$(BIN)/l2-sample --quiet -m $(DIFF_MODEL) $(DIFF_SAMPLE) --seed $(SEED) -n 1 -o $(W)/diff-fd $(W)/test-captions.txt.l2f)
	head -n $(DIFF_SAMPLES) $(W)/test-captions.txt > $(W)/diff-samples/prompts-in.txt
	$(BIN)/l2-sample --quiet -m $(DIFF_MODEL) $(DIFF_SAMPLE) --seed $(SEED) --clip $(MODEL) --vocab $(VOCAB) \
		--prompts $(W)/diff-samples/prompts-in.txt -n $(DIFF_N) -o $(W)/diff-samples
	touch $@

$(W)/diff-fd.txt: $(W)/diff-samples/.done $(W)/test-images.l2f
	rm -f $(W)/diff-fd/prompts.txt
	$(BIN)/l2-encode-images --quiet -m $(MODEL) $(W)/diff-fd > $(W)/diff-fd.l2f
	$(BIN)/l2-fid $(W)/diff-fd.l2f $(W)/test-images.l2f > $@.tmp && mv $@.tmp $@

$(OUT)/extra/60-diffusion.html: $(W)/diff-fd.txt
	mkdir -p $(OUT)/extra $(OUT)/img/diffusion
	cp $(W)/diff-samples/*.png $(OUT)/img/diffusion/
	cp $(W)/diff-ft/grid.png $(OUT)/img/diffusion/train-grid.png
	cp $(W)/diff-ft/loss.png $(OUT)/img/diffusion/ft-loss.png
	cp $(W)/diff-pre/loss.png $(OUT)/img/diffusion/pre-loss.png
	{ echo '<h2>Text to image (l2 diffusion)</h2>'; \
	  echo "<p>An EDM-preconditioned U-Net ($(DIFF_PRESET) preset, $(DIFF_BATCH) images per step) pre-trained language-free for $(DIFF_PRE_STEPS) steps on the optimised pseudo text features, fine-tuned for $(DIFF_FT_STEPS) steps on $(DIFF_PAIRS) of the training pairs. Held-out captions, the power EMA (std $(DIFF_EMA)), sampled with $(DIFF_SAMPLE), $(DIFF_N) seeds each.</p>"; \
	  printf '<p>CLIP-feature Fr&eacute;chet distance, one sample per held-out caption vs the held-out images: <b>%s</b>' "$$(head -1 $(W)/diff-fd.txt | sed 's/^FID: //')"; \
	  if [ -f $(W)/gan-fd.txt ]; then printf ' (the GAN above: %s)' "$$(head -1 $(W)/gan-fd.txt | sed 's/^FID: //')"; fi; echo '</p>'; \
	  echo '<table>'; \
	  while IFS=$$'\t' read -r i p; do \
	    printf '<tr><td>%s</td><td>' "$$(printf '%s' "$$p" | sed 's/&/\&amp;/g; s/</\&lt;/g')"; \
	    for j in $$(seq 0 $$(($(DIFF_N) - 1))); do printf '<img src="img/diffusion/%s-%02d.png" width="64" height="64"> ' "$$i" "$$j"; done; \
	    echo '</td></tr>'; \
	  done < $(W)/diff-samples/prompts.txt; \
	  echo '</table>'; \
	  echo '<p>Fine-tuning samples at the last tick (rows: held-out captions, real image first) and the loss curves (mean squared error per noise level, the learned u(&sigma;), the objective) of pre-training and fine-tuning:</p>'; \
	  echo '<img src="img/diffusion/train-grid.png"> <img src="img/diffusion/pre-loss.png" width="380"> <img src="img/diffusion/ft-loss.png" width="380">'; \
	} > $@.tmp && mv $@.tmp $@

# the quality experiment (presets, samplers, guidance, GAN at the same budget): its settings
# are the script's environment (BUDGET, PRESETS, SAMPLERS, STEPS, GUIDANCE, ...)
experiment-diffusion: $(W)/.stored $(W)/test-images.l2f
	BIN=$(BIN) DATASET=$(DATASET) MODEL=$(MODEL) VOCAB=$(VOCAB) W=$(W) pipelines/experiment-diffusion.sh
