#!/usr/bin/env bats
# l2-encode-text: CLIP text features and token ids against
# tests/ref/make_clip.py (OpenAI's SimpleTokenizer and model re-implemented
# in Python/PyTorch) on the tiny model test_clip --write-models rebuilds.
# Needs the CLIP vocabulary ($L2_TEST_VOCAB); tests that read it skip without.
load test_helper

REF=$L2_ROOT/tests/ref/clip

setup_file() {
	"$L2_BUILD/tests/test_clip" --write-models "$BATS_FILE_TMPDIR"
	export OPENAI=$BATS_FILE_TMPDIR/openai.safetensors HF=$BATS_FILE_TMPDIR/hf.safetensors
}

setup() {
	cd "$BATS_TEST_TMPDIR" || return 1
	unset L2_CLIP_VOCAB
}

need_vocab() { [ -n "$L2_TEST_VOCAB" ] && [ -r "$L2_TEST_VOCAB" ] || skip "no CLIP vocabulary (L2_TEST_VOCAB)"; }

streams_close() {
	l2-cat -f tsv "$1" > x.tsv
	l2-cat -f tsv "$2" > y.tsv
	[ "$(wc -l < x.tsv)" = "$(wc -l < y.tsv)" ] || { echo "record counts differ"; return 1; }
	paste x.tsv y.tsv | awk -F'\t' -v tol="$3" '
	{ if ($1 != $3) { print "key " $1 " vs " $3; exit 1 }
	  n = split($2, x, " "); m = split($4, y, " "); if (n != m) { print "dims differ"; exit 1 }
	  for (i = 1; i <= n; i++) { d = x[i] - y[i]; if (d < 0) d = -d; if (d > w) w = d } }
	END { print "max abs error " w; exit !(w <= tol) }'
}

golden() { l2-cat --from-npy "$REF/text_features.npy" --keys "$REF/texts.txt" --kind text-feature --normalized > gold.l2f; }

@test "l2-encode-text -h prints usage and exits 0" {
	run l2-encode-text -h
	assert_success
	assert_output --partial "usage: l2-encode-text"
}

@test "l2-encode-text --version" {
	run l2-encode-text --version
	assert_success
	assert_output --regexp "^l2-encode-text \(l2\) [0-9]+\.[0-9]+"
}

@test "usage errors exit 2: unknown option, no -m, two files, --tokens with --store" {
	run l2-encode-text --bogus; assert_failure 2
	run l2-encode-text x.txt; assert_failure 2; assert_output --partial "missing -m"
	run l2-encode-text -m "$OPENAI" a b; assert_failure 2
	run l2-encode-text --tokens --store ds.lmdb; assert_failure 2
}

@test "features match the PyTorch reference in both layouts, any batch size" {
	need_vocab; golden
	l2-encode-text -m "$OPENAI" --vocab "$L2_TEST_VOCAB" "$REF/texts.txt" > a.l2f
	run streams_close a.l2f gold.l2f 1e-4; assert_success
	l2-encode-text -m "$HF" --vocab "$L2_TEST_VOCAB" -b 2 < "$REF/texts.txt" > b.l2f
	run streams_close b.l2f gold.l2f 1e-4; assert_success
	l2-cat --header a.l2f | grep -qx $'kind\ttext-feature'
	l2-cat --header a.l2f | grep -qx $'flags\tnormalized'
	l2-encode-text -m "$HF" --vocab "$L2_TEST_VOCAB" --raw "$REF/texts.txt" | l2-cat --header | grep -qx $'flags\tnone'
}

@test "--tokens prints clip.tokenize ids without padding" {
	need_vocab
	l2-encode-text --tokens --vocab "$L2_TEST_VOCAB" "$REF/texts.txt" > ids.txt
	diff ids.txt "$REF/text_ids.txt"
	run bash -c "echo 'a photo of a cat' | l2-encode-text --tokens --vocab '$L2_TEST_VOCAB'"
	assert_output "49406 320 1125 539 320 2368 49407"
}

@test "over-long text is cut to the context with the end token last" {
	need_vocab
	for i in $(seq 200); do printf 'word%d ' "$i"; done > long.txt
	echo >> long.txt
	run l2-encode-text --tokens --vocab "$L2_TEST_VOCAB" -m "$OPENAI" long.txt
	assert_success
	[ "$(echo "$output" | wc -w)" = 77 ]
	[ "$(echo "$output" | awk '{ print $NF }')" = 49407 ]
}

@test "vocabulary search: --vocab, then \$L2_CLIP_VOCAB, then beside the weights" {
	need_vocab
	echo "a cat" > t.txt
	run l2-encode-text -m "$OPENAI" t.txt
	assert_failure 1; assert_output --partial "no CLIP vocabulary"
	L2_CLIP_VOCAB=$L2_TEST_VOCAB l2-encode-text -m "$OPENAI" t.txt > a.l2f
	mkdir m && ln -s "$OPENAI" m/model.safetensors && ln -s "$L2_TEST_VOCAB" m/bpe_simple_vocab_16e6.txt.gz
	l2-encode-text -m m/model.safetensors t.txt > b.l2f
	cmp a.l2f b.l2f
}

@test "a Hugging Face merges.txt (plain text) tokenizes the same" {
	need_vocab
	gzip -dc "$L2_TEST_VOCAB" | head -n 48895 | sed '1s/.*/#version: 0.2/' > merges.txt
	l2-encode-text --tokens --vocab merges.txt "$REF/texts.txt" | diff - "$REF/text_ids.txt"
}

@test "wrong vocabulary file: not BPE, or too small for the model" {
	need_vocab
	echo "a cat" > t.txt
	echo "hello world" > junk.txt
	run l2-encode-text -m "$OPENAI" --vocab junk.txt t.txt
	assert_failure 1; assert_output --partial "junk.txt"
	gzip -dc "$L2_TEST_VOCAB" | head -n 1000 > small.txt
	run l2-encode-text -m "$OPENAI" --vocab small.txt t.txt
	assert_failure 1; assert_output --partial "wrong vocabulary"
	run l2-encode-text -m "$OPENAI" --vocab nothere.gz t.txt
	assert_failure 1; assert_output --partial "nothere.gz"
}

@test "invalid UTF-8 is an error naming the line; no output file" {
	need_vocab
	printf 'fine\nbad \xff byte\n' > t.txt
	run l2-encode-text -m "$OPENAI" --vocab "$L2_TEST_VOCAB" -o out.l2f t.txt
	assert_failure 1
	assert_output --partial "line 2"
	assert_not_exist out.l2f
}

@test "bad weights and missing input are errors" {
	need_vocab
	run l2-encode-text -m nothere.safetensors --vocab "$L2_TEST_VOCAB" "$REF/texts.txt"
	assert_failure 1; assert_output --partial "nothere.safetensors"
	run l2-encode-text -m "$OPENAI" --vocab "$L2_TEST_VOCAB" nothere.txt
	assert_failure 1; assert_output --partial "nothere.txt"
	python3 - "$HF" <<'PY'
import sys
b = open(sys.argv[1], "rb").read()
b = b.replace(b'"text_model.final_layer_norm.bias"', b'"text_model.final_layer_norm.biaX"', 1)
open("missing.safetensors", "wb").write(b)
PY
	run l2-encode-text -m missing.safetensors --vocab "$L2_TEST_VOCAB" "$REF/texts.txt"
	assert_failure 1; assert_output --partial "text_model.final_layer_norm.bias"
}

@test "empty input gives an empty stream; keys are the lines (CRLF stripped)" {
	need_vocab
	l2-encode-text -m "$OPENAI" --vocab "$L2_TEST_VOCAB" < /dev/null > e.l2f
	[ "$(l2-cat --count e.l2f)" = 0 ]
	printf 'a cat\r\nüñí 😀\n' | l2-encode-text -m "$OPENAI" --vocab "$L2_TEST_VOCAB" | l2-cat -f tsv | cut -f1 > keys
	printf 'a cat\nüñí 😀\n' | diff - keys
}

@test "--store puts the features into a dataset store keyed by text" {
	need_vocab
	run l2-encode-text -m "$OPENAI" --vocab "$L2_TEST_VOCAB" --store ds.lmdb -o s.l2f "$REF/texts.txt"
	assert_success
	assert_output --partial "1 empty or over-long"
	[ "$(l2-cat --count s.l2f)" = 5 ]
	l2-dataset export-features -n caption ds.lmdb > e.l2f
	[ "$(l2-cat --count e.l2f)" = 4 ]
	l2-cat -f tsv e.l2f | cut -f1 | grep -qx "a photo of a cat"
}

@test "unwritable output is an error" {
	need_vocab
	run l2-encode-text -m "$OPENAI" --vocab "$L2_TEST_VOCAB" -o /nonexistent/x.l2f "$REF/texts.txt"
	assert_failure 1
}
