# workflow-eval.mk — the evaluation of a workflow run, included by pipelines/workflow.mk.
#
# For a run directory RUN under OUT (its G_ema.safetensors, or model_ema-DIFF_EMA.safetensors):
#   RUN/eval/samples/      l2-sample, one image per distinct held-out caption (SEED)
#   RUN/eval/metrics.tsv   name<TAB>value: fd_clip (l2-fid of the samples' CLIP features against
#                          the held-out images'), clip_score (pipelines/clip-score.sh: mean cosine
#                          of each sample with its caption), r_precision top-1/top-5 and their
#                          chance level (pipelines/r-precision.sh: each held-out image's primary
#                          caption sampled once, retrieving among the held-out captions), with
#                          INCEPTION= fid_inception and kid (l2-fid on the images)
#   RUN/eval/grid.png      GRID_N samples for each of the first GRID_CAPTIONS held-out captions
#   RUN/eval/report.html   the above with the run's loss curves
# MIX=1: the same in RUN/eval-mix/, every l2-sample call with --retrieve over the corpus index
# $(P)/captions.idx and MIX_FLAGS (Lafite2's retrieval mixing at sampling).
# The real images' figures, once per dataset and CLIP, in $(F)/real.tsv: FD of the train images
# to the held-out ones, and R-precision of the held-out images themselves.
# $(OUT)/report.html: every evaluated run under OUT in one table (pipelines/workflow-report.sh),
# remade whenever one of the runs asked for is evaluated.
# Uses from workflow.mk: BIN D F P DATASET CLIP VOCAB INCEPTION SEED THR OUT MODEL_FILE
# SAMPLE_FLAGS GRID_CAPTIONS GRID_N MIX MIX_FLAGS PSEUDO RUN_*, step.

WF_REPORT := $(WF_ROOT)/pipelines/workflow-report.sh
EVAL      := $(if $(filter 1,$(MIX)),eval-mix,eval)
EVAL_SAMPLE := $(SAMPLE_FLAGS) $(if $(filter 1,$(MIX)),--retrieve $(P)/captions.idx $(MIX_FLAGS))

$(F)/real.tsv: $(P)/images.l2f $(F)/test-images.l2f $(D)/.dataset $(CLIP)
	$(call step,reference figures of the real images: FD train vs held-out and R-precision of the held-out images)
	rm -rf $(F)/real-rp
	{ printf 'fd_clip\t%s\n' "$$($(BIN)/l2-fid $(P)/images.l2f $(F)/test-images.l2f 2>/dev/null | sed -n 's/^FID: //p')"; \
	  $(WF_ROOT)/pipelines/r-precision.sh -m $(CLIP) --vocab $(VOCAB) -o $(F)/real-rp $(DATASET) --real \
	    | awk -F'\t' '{ print "r_precision_" $$1 "\t" $$2 }'; } > $@.tmp
	rm -rf $(F)/real-rp
	mv $@.tmp $@

# named here so that make does not take them for intermediate files of the pattern rule below
# (and delete them after a run)
.PHONY: eval-inputs
eval-inputs: $(F)/test-captions.l2f $(D)/test-captions.txt $(F)/test-images.l2f $(F)/real.tsv $(D)/images-test/.done

# every run directory is named GENERATOR-SETTING-...: the settings recorded in the metrics
$(OUT)/%/$(EVAL)/metrics.tsv: $(OUT)/%/.done $(F)/test-captions.l2f $(D)/test-captions.txt $(F)/test-images.l2f $(F)/real.tsv $(WF_REPORT) $(if $(INCEPTION),$(INCEPTION) $(D)/images-test/.done) $(if $(filter 1,$(MIX)),$(P)/captions.idx/.built)
	$(call step,evaluating $(OUT)/$* on the held-out captions$(if $(filter 1,$(MIX)), (sampling mixed with retrieval)))
	e=$(OUT)/$*/$(EVAL).tmp; rm -rf $$e; mkdir -p $$e; \
	model=$(OUT)/$*/$(MODEL_FILE); \
	$(BIN)/l2-sample --quiet $(THR) -m $$model -n 1 --seed $(SEED) $(EVAL_SAMPLE) -o $$e/samples $(F)/test-captions.l2f; \
	mv $$e/samples/prompts.txt $$e/prompts.txt; \
	$(BIN)/l2-encode-images --quiet $(THR) -m $(CLIP) $$e/samples > $$e/samples.l2f; \
	fd=$$($(BIN)/l2-fid $$e/samples.l2f $(F)/test-images.l2f 2>/dev/null | sed -n 's/^FID: //p'); \
	cs=$$($(WF_ROOT)/pipelines/clip-score.sh $$e/samples.l2f $(F)/test-captions.l2f); \
	$(WF_ROOT)/pipelines/r-precision.sh -m $(CLIP) --vocab $(VOCAB) -o $$e/rp $(DATASET) $$model --seed $(SEED) $(EVAL_SAMPLE) > $$e/r-precision.tsv; \
	rm -rf $$e/rp; \
	head -n $(GRID_CAPTIONS) $(D)/test-captions.txt > $$e/grid-prompts.txt; \
	$(BIN)/l2-sample --quiet $(THR) -m $$model --clip $(CLIP) --vocab $(VOCAB) --prompts $$e/grid-prompts.txt \
		-n $(GRID_N) --seed $(SEED) $(EVAL_SAMPLE) --grid $$e/grid.png; \
	{ n=$*; printf 'run\t%s\n' "$$n"; printf 'generator\t%s\n' "$${n%%-*}"; \
	  s=$${n#*-}; s=$${s%%-*}; [ "$$s" = pre ] && s=zeroshot; printf 'setting\t%s\n' "$$s"; \
	  case $$s in zeroshot) p=0 ;; supervised) p=1 ;; *) p=$${n#*-*-}; p=$${p%%-*} ;; esac; printf 'pairs\t%s\n' "$$p"; \
	  printf 'pseudo\t%s\n' '$(PSEUDO)'; printf 'mixing\t%s\n' '$(if $(filter 1,$(MIX)),1,0)'; printf 'seed\t%s\n' '$(SEED)'; \
	  printf 'held_out_captions\t%s\n' "$$(wc -l < $(D)/test-captions.txt)"; \
	  printf 'fd_clip\t%s\n' "$$fd"; printf 'clip_score\t%s\n' "$$cs"; \
	  awk -F'\t' '{ print "r_precision_" $$1 "\t" $$2 }' $$e/r-precision.tsv; \
	  awk -F'\t' '{ print "real_" $$1 "\t" $$2 }' $(F)/real.tsv; \
	  $(if $(INCEPTION),$(BIN)/l2-fid -m $(INCEPTION) --kid $(THR) $$e/samples $(D)/images-test 2>/dev/null \
	    | awk '/^FID: / { print "fid_inception\t" $$2 } /^KID: / { print "kid\t" $$2 " +- " $$4 }';) \
	} > $$e/metrics.tsv; \
	$(WF_REPORT) run $$e $(OUT)/$* > $$e/report.html; \
	rm -rf $(OUT)/$*/$(EVAL) && mv $$e $(OUT)/$*/$(EVAL)

WF_GOALS := $(foreach g,$(filter zeroshot fewshot semi supervised,$(MAKECMDGOALS)) $(if $(filter evaluate,$(MAKECMDGOALS)),$(SETTING)),$(RUN_$(g))/$(EVAL)/metrics.tsv)
# remade after every evaluation asked for; the other runs' metrics are read as they are (listing
# them as prerequisites would re-evaluate old runs whenever an evaluation input changes)
$(OUT)/report.html: $(WF_GOALS) $(WF_REPORT)
	$(WF_REPORT) index $(OUT) > $@.tmp && mv $@.tmp $@
	@printf 'workflow: report -> %s\n' '$@' >&2
