#!/usr/bin/env bats
# pipelines/workflow.mk end to end on a tiny folder: 12 generated 32x32 PNGs with captions
# (tests/gan_fixture.bash), a CLIP trained for 3 steps, 4-step GAN and diffusion runs.
# Every target, the reports, a rerun doing nothing, another PAIRS reusing the pre-training,
# and the bad inputs the workflow refuses before writing anything.
load test_helper
load gan_fixture

DIFF_SIZE_TINY="--preset tiny --channels 8 --mult 1,2 --attn-res 8 --resolution 16 --grid 2x2"

setup_file() {
	workflow_folder
	# one few-shot run the tests below copy (cp -a keeps the times make compares)
	mkdir base && (cd base && wf fewshot >/dev/null 2>&1)
}

# a copy of setup_file's run in ./out
base_run() { cp -a "$BATS_FILE_TMPDIR/base/out" out; }

# wf TARGET [VAR=VALUE...]: the workflow on the fixture, in ./out
wf() {
	make -f "$L2_ROOT/pipelines/workflow.mk" BIN="$L2_BUILD/bin" IMAGES="$BATS_FILE_TMPDIR/fx" \
		CAPTIONS="$BATS_FILE_TMPDIR/fx/captions.tsv" CLIP="$BATS_FILE_TMPDIR/clip/clip.safetensors" \
		OUT=out TEST_FRACTION=0.3 SPLIT_SEED=1 K=4 BATCH=4 THREADS=1 PRE_STEPS=4 FT_STEPS=4 PAIRS=0.5 \
		GAN_SIZE="$GAN_SIZE_TINY" DIFF_SIZE="$DIFF_SIZE_TINY" DIFF_SAMPLE="--steps 2" "$@"
}

# the metric NAME of the only run matching GLOB under out/
metric() { awk -F'\t' -v k="$2" '$1 == k { print $2 }' out/$1/eval/metrics.tsv; }

@test "workflow.mk: help names the targets and variables" {
	run make -f "$L2_ROOT/pipelines/workflow.mk"
	assert_success
	assert_output --partial "pretrain"
	assert_output --partial "IMAGES CAPTIONS CORPUS CLIP"
}

@test "workflow.mk fewshot (GAN): dataset, pseudo features, pre-training, fine-tuning, evaluation, reports; a rerun does nothing" {
	run wf fewshot
	assert_success
	assert_output --partial "pre-training the gan language-free on optimize pseudo features"
	assert_output --partial "few-shot: fine-tuning with 0.5 of the pairs"
	assert_file_exists out/gan-pre-optimize-*/G_ema.safetensors
	assert_file_exists out/gan-fewshot-0.5-optimize-*/eval/grid.png
	assert_file_exists out/gan-fewshot-0.5-optimize-*/eval/report.html
	assert_file_exists out/report.html
	[ "$(metric 'gan-fewshot-*' setting)" = fewshot ]
	[ "$(metric 'gan-fewshot-*' pairs)" = 0.5 ]
	[ "$(metric 'gan-fewshot-*' held_out_captions)" = 3 ]
	for m in fd_clip clip_score r_precision_top1 r_precision_chance_top1 real_fd_clip real_r_precision_top1; do
		[[ "$(metric 'gan-fewshot-*' $m)" =~ ^-?[0-9.]+$ ]] || { echo "metric $m: '$(metric 'gan-fewshot-*' $m)'"; false; }
	done
	grep -q 'gan-fewshot-0.5-optimize-.*/eval/report.html' out/report.html
	grep -q 'real images' out/report.html
	# the features live in the dataset under names of this CLIP
	run l2-dataset stats out/data-*/dataset.lmdb
	assert_output --regexp $'feature\timage-[0-9a-f]{8}\timage-feature\t16'
	assert_output --regexp $'feature\tpseudo-[0-9a-f]{8}\tpseudo-text-feature\t16'
	# nothing left to do
	run wf -q fewshot
	assert_success
	local t0; t0=$(stat -c %Y out/report.html)
	run wf fewshot
	assert_success
	refute_output --partial "workflow:"
	[ "$(stat -c %Y out/report.html)" = "$t0" ]
}

@test "workflow.mk: another PAIRS reruns only the fine-tuning and its evaluation" {
	base_run
	local pre; pre=$(echo out/gan-pre-optimize-*)
	local t0; t0=$(stat -c %Y.%y "$pre/.done")
	run wf fewshot PAIRS=1
	assert_success
	refute_output --partial "pre-training"
	refute_output --partial "workflow: dataset"
	refute_output --partial "workflow: encoding"
	assert_output --partial "few-shot: fine-tuning with 1 of the pairs"
	[ "$(stat -c %Y.%y "$pre/.done")" = "$t0" ]
	# both fine-tunings are there, side by side, and in the report
	assert_file_exists out/gan-fewshot-0.5-optimize-*/eval/metrics.tsv
	assert_file_exists out/gan-fewshot-1-optimize-*/eval/metrics.tsv
	grep -q 'gan-fewshot-0.5-' out/report.html
	grep -q 'gan-fewshot-1-' out/report.html
}

@test "workflow.mk: zeroshot, semi and supervised from the one pre-training; evaluate alone" {
	base_run
	run wf zeroshot semi supervised
	assert_success
	refute_output --partial "pre-training"
	assert_output --partial "semi-supervised: fine-tuning with 0.5 of the pairs and --cond pseudo for the rest"
	assert_output --partial "fully supervised: fine-tuning with every pair"
	[ "$(metric 'gan-pre-optimize-*' setting)" = zeroshot ]
	[ "$(metric 'gan-semi-*' setting)" = semi ]
	[ "$(metric 'gan-supervised-*' pairs)" = 1 ]
	run wf -q evaluate SETTING=semi
	assert_success
	# l2-train-gan was given the conditions of each setting
	run cat out/gan-semi-*/log.tsv
	assert_success
}

@test "workflow.mk: an added image makes the dataset out of date, and only for its folder" {
	mkdir fx && cp -a "$BATS_FILE_TMPDIR/fx/." fx/
	wf dataset IMAGES="$PWD/fx" CAPTIONS="$PWD/fx/captions.tsv" >/dev/null 2>&1
	run wf -q dataset IMAGES="$PWD/fx" CAPTIONS="$PWD/fx/captions.tsv"
	assert_success
	cp fx/img/00.png fx/img/extra.png
	run wf -q dataset IMAGES="$PWD/fx" CAPTIONS="$PWD/fx/captions.tsv"
	assert_failure
	run wf dataset IMAGES="$PWD/fx" CAPTIONS="$PWD/fx/captions.tsv"
	assert_success
	assert_output --partial "workflow: dataset"
	run l2-dataset stats out/data-*/dataset.lmdb
	assert_line --regexp $'^images\t13$'
	# the pre-trained copy of the original folder is untouched by it
	rm -rf out && base_run
	run wf -q fewshot
	assert_success
}

@test "workflow.mk: PSEUDO=gaussian needs no corpus; GENERATOR=diffusion few-shot" {
	run wf pretrain PSEUDO=gaussian CAPTIONS= CORPUS=
	assert_success
	assert_output --partial "language-free on gaussian pseudo features"
	refute_output --partial "pseudo features: "
	rm -rf out && base_run
	run wf fewshot GENERATOR=diffusion
	assert_success
	refute_output --partial "workflow: dataset"
	assert_output --partial "pre-training the diffusion"
	assert_file_exists out/diffusion-fewshot-0.5-optimize-*/eval/metrics.tsv
	[ "$(metric 'diffusion-fewshot-*' generator)" = diffusion ]
	run wf -q fewshot GENERATOR=diffusion
	assert_success
}

@test "workflow.mk refuses a missing IMAGES folder, captions naming missing images, an empty corpus, before writing" {
	run wf pretrain IMAGES=nowhere
	assert_failure
	assert_output --partial "IMAGES=nowhere: no such folder"
	assert_equal "$(echo "$output" | grep -c 'workflow.mk: ')" 1
	[ ! -e out ]
	{ cat "$BATS_FILE_TMPDIR/fx/captions.tsv"; printf 'img/nope.png\ta ghost\nimg/gone.png\tanother\n'; } > bad.tsv
	run wf fewshot CAPTIONS=bad.tsv
	assert_failure
	assert_output --partial "bad.tsv names 2 image(s) not in $BATS_FILE_TMPDIR/fx, the first: img/gone.png"
	[ ! -e out ]
	printf '\n  \n' > empty.txt
	run wf pretrain CORPUS=empty.txt
	assert_failure
	assert_output --partial "CORPUS=empty.txt is empty"
	[ ! -e out ]
	run wf pretrain CLIP=missing.safetensors
	assert_failure
	assert_output --partial "CLIP=missing.safetensors: no such file"
	run wf fewshot PAIRS=0
	assert_failure
	assert_output --partial "PAIRS=0: a fraction above 0 and at most 1"
	run wf pretrain OUT="$BATS_FILE_TMPDIR/fx/runs"
	assert_failure
	assert_output --partial "is inside IMAGES="
	[ ! -e "$BATS_FILE_TMPDIR/fx/runs" ]
	run wf pretrain GENERATOR=vae
	assert_failure
	assert_output --partial "GENERATOR=vae: gan or diffusion"
	[ ! -e out ]
}

@test "workflow.mk refuses a CLIP whose feature size differs from the features stored under its name" {
	mkdir c && cp "$BATS_FILE_TMPDIR"/clip/clip.safetensors "$BATS_FILE_TMPDIR"/clip/clip.vocab.txt.gz c/
	wf features CLIP=c/clip.safetensors >/dev/null 2>&1
	# the user retrains a wider CLIP into the same file
	l2-train-clip --synthetic 40 ${CLIP_TINY/--embed-dim 16/--embed-dim 24} --steps 1 --quiet -o c2.safetensors
	cp c2.safetensors c/clip.safetensors
	run wf features CLIP=c/clip.safetensors
	assert_failure
	assert_output --partial "gives 24-dimensional features but"
	assert_output --partial "of dimension 16 (made by another CLIP at this path)"
	# not taken as done: the next run refuses again
	run wf -q features CLIP=c/clip.safetensors
	assert_failure
}

@test "workflow.mk: DATASET= a dataset built before, PSEUDO=none from scratch, AUGMENT in the fine-tuning" {
	l2-dataset build --quiet --captions "$BATS_FILE_TMPDIR/fx/captions.tsv" --test-fraction 0.3 --seed 1 ds.lmdb "$BATS_FILE_TMPDIR/fx"
	local t0; t0=$(stat -c %Y ds.lmdb/data.mdb)
	run wf fewshot PSEUDO=none IMAGES= CAPTIONS= DATASET="$PWD/ds.lmdb" AUGMENT=color,translation VERBOSE=1
	assert_success
	refute_output --partial "workflow: dataset"
	refute_output --partial "pseudo features: "
	assert_output --partial "few-shot: training with 0.5 of the pairs from scratch"
	assert_output --partial "--augment color,translation"
	refute_output --partial "--init"
	[ "$(awk -F'\t' '$1 == "pseudo" { print $2 }' out/gan-fewshot-0.5-none-*/eval/metrics.tsv)" = none ]
	# the dataset got the workflow's feature sets, nothing else changed in it
	run l2-dataset stats ds.lmdb
	assert_output --regexp $'feature\timage-[0-9a-f]{8}\timage-feature\t16'
	assert_line --regexp $'^images\t12$'
	run wf -q fewshot PSEUDO=none IMAGES= CAPTIONS= DATASET="$PWD/ds.lmdb" AUGMENT=color,translation
	assert_success
	# refusals
	run wf zeroshot PSEUDO=none
	assert_failure
	assert_output --partial "PSEUDO=none (no pre-training) has only the fewshot and supervised settings"
	run wf fewshot DATASET="$PWD/ds.lmdb"
	assert_failure
	assert_output --partial "DATASET= stands for IMAGES= and CAPTIONS=: give one or the other"
	run wf fewshot IMAGES= CAPTIONS= DATASET="$PWD/nope.lmdb"
	assert_failure
	assert_output --partial "DATASET=$PWD/nope.lmdb: not an l2 dataset"
}
