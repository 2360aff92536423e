#!/usr/bin/env bats
# pipelines/experiment-fewshot.sh end to end on the workflow tests' tiny folder (a dozen
# generated PNGs, a 3-step CLIP, 2-step GAN runs): two seeds of the rows none (no pre-training)
# and mix (Lafite2's pre-training, sampled with retrieval mixing) over zero-shot, half the pairs
# and every pair; the table's mean and sd columns, the Markdown, the plot, the HTML; a rerun
# trains nothing; bad arguments are refused before anything is written.  (The other rows are
# workflow.mk's PSEUDO settings, which tests/workflow.bats runs.)
load test_helper
load gan_fixture

setup_file() {
	workflow_folder
}

# exp [VAR=VALUE...]: the experiment on the fixture, in ./out
exp() {
	GENERATORS=gan ROWS="none mix" SEEDS="0 1" COLUMNS="0 0.5 1" JOBS=2 "$L2_ROOT/pipelines/experiment-fewshot.sh" \
		BIN="$L2_BUILD/bin" IMAGES="$BATS_FILE_TMPDIR/fx" CAPTIONS="$BATS_FILE_TMPDIR/fx/captions.tsv" \
		CLIP="$BATS_FILE_TMPDIR/clip/clip.safetensors" OUT=out TEST_FRACTION=0.3 SPLIT_SEED=1 K=4 BATCH=4 \
		THREADS=1 PRE_STEPS=2 FT_STEPS=2 GAN_SIZE="$GAN_SIZE_TINY" GRID_CAPTIONS=2 GRID_N=2 "$@"
}

@test "experiment-fewshot.sh: rows x columns x seeds, mean and sd, plot and report; a rerun trains nothing" {
	run exp
	assert_success
	assert_output --partial "chains done"
	local t=out/fewshot/table.tsv
	assert_file_exists "$t"
	[ "$(head -1 "$t")" = $'generator\trow\tpairs\tn\tfd_mean\tfd_sd\tclip_score_mean\tclip_score_sd\trp_top1_mean\trp_top1_sd\trp_top5_mean\trp_top5_sd' ]
	# 2 rows x 3 columns, none has no zero-shot: 5 cells of 2 seeds each, numbers everywhere
	[ "$(tail -n +2 "$t" | wc -l)" = 5 ]
	run awk -F'\t' 'NR > 1 && ($4 != 2 || $5 !~ /^[0-9.]+$/ || $6 !~ /^[0-9.]+$/ || $10 !~ /^[0-9.]+$/) { print "bad: " $0 }' "$t"
	assert_output ""
	grep -q $'^gan\tnone\t1\t2\t' "$t"
	! grep -q $'^gan\tnone\t0\t' "$t"
	grep -q $'^gan\tmix\t0.5\t2\t' "$t"
	# the two seeds are two runs, and mix evaluates the optimize runs themselves
	[ "$(tail -n +2 out/fewshot/cells.tsv | wc -l)" = 10 ]
	[ "$(ls -d out/gan-fewshot-0.5-optimize-* | wc -l)" = 2 ]
	assert_file_exists out/gan-fewshot-0.5-optimize-*/eval-mix/grid.png
	grep -q $'^mixing\t1$' out/gan-supervised-optimize-*/eval-mix/metrics.tsv
	grep -q "few-shot: training with 0.5 of the pairs from scratch" out/fewshot/logs/gan-seed0-none.log
	grep -q "fully supervised: training with every pair from scratch" out/fewshot/logs/gan-seed1-none.log
	grep -q '| Lafite2 + retrieval mixing at sampling |' out/fewshot/table.md
	grep -q ' ± ' out/fewshot/table.md
	grep -q '<path d="M' out/fewshot/fd.svg
	grep -q 'no pre-training' out/fewshot/index.html
	grep -q 'src="../gan-fewshot-0.5-optimize-[0-9a-f]*/eval-mix/grid.png"' out/fewshot/index.html
	grep -q 'href="../gan-fewshot-0.5-optimize-[0-9a-f]*/eval-mix/report.html"' out/fewshot/index.html
	if command -v chromium >/dev/null; then assert_file_exists out/fewshot/fd.png; fi
	# everything is up to date: no training, no evaluation
	run exp
	assert_success
	run cat out/fewshot/logs/gan-seed0-mix.log
	refute_output --partial "workflow:"
}

@test "experiment-fewshot.sh: bad arguments stop it before anything is written" {
	run "$L2_ROOT/pipelines/experiment-fewshot.sh" CLIP=x
	assert_failure
	assert_output --partial "set OUT=DIR"
	run "$L2_ROOT/pipelines/experiment-fewshot.sh" OUT=out SEED=3
	assert_failure
	assert_output --partial "SEED=3: the experiment sets SEED itself"
	ROWS="none lafite" run "$L2_ROOT/pipelines/experiment-fewshot.sh" OUT=out
	assert_failure
	assert_output --partial "ROWS: unknown row lafite"
	COLUMNS="0 2" run "$L2_ROOT/pipelines/experiment-fewshot.sh" OUT=out
	assert_failure
	assert_output --partial "COLUMNS: 2 is not a fraction"
	[ ! -e out ]
	# workflow.mk's own checks (here: no such folder) fail the shared stages, named
	run exp IMAGES=/nonexistent
	assert_failure
	assert_output --partial "shared stages failed"
	run cat out/fewshot/logs/features-none.log
	assert_output --partial "IMAGES=/nonexistent: no such folder"
}
