#!/usr/bin/env bats
# l2-encode-text: CLIP text features and token ids against
# tests/ref/make_clip.py (OpenAI's SimpleTokenizer and model re-implemented
# in Python/PyTorch) on the tiny model test_clip --write-models rebuilds.
# The vocabulary is the one l2 ships (lib/text/vocab/; $L2_TEST_VOCAB).
load test_helper
load clip_fixture

REF=$L2_ROOT/tests/ref/clip

setup_file() { clip_models; }

setup() {
	cd "$BATS_TEST_TMPDIR" || return 1
	unset L2_CLIP_VOCAB
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
	golden
	l2-encode-text -m "$OPENAI" --vocab "$L2_TEST_VOCAB" "$REF/texts.txt" > a.l2f
	run streams_close a.l2f gold.l2f 1e-4; assert_success
	l2-encode-text -m "$HF" --vocab "$L2_TEST_VOCAB" -b 2 < "$REF/texts.txt" > b.l2f
	run streams_close b.l2f gold.l2f 1e-4; assert_success
	l2-cat --header a.l2f | grep -qx $'kind\ttext-feature'
	l2-cat --header a.l2f | grep -qx $'flags\tnormalized'
	l2-encode-text -m "$HF" --vocab "$L2_TEST_VOCAB" --raw "$REF/texts.txt" | l2-cat --header | grep -qx $'flags\tnone'
}

@test "--tokens prints clip.tokenize ids without padding" {
	l2-encode-text --tokens --vocab "$L2_TEST_VOCAB" "$REF/texts.txt" > ids.txt
	diff ids.txt "$REF/text_ids.txt"
	run bash -c "echo 'a photo of a cat' | l2-encode-text --tokens --vocab '$L2_TEST_VOCAB'"
	assert_output "49406 320 1125 539 320 2368 49407"
}

@test "over-long text is cut to the context with the end token last" {
	for i in $(seq 200); do printf 'word%d ' "$i"; done > long.txt
	echo >> long.txt
	run l2-encode-text --tokens --vocab "$L2_TEST_VOCAB" -m "$OPENAI" long.txt
	assert_success
	[ "$(echo "$output" | wc -w)" = 77 ]
	[ "$(echo "$output" | awk '{ print $NF }')" = 49407 ]
}

@test "vocabulary search: --vocab, \$L2_CLIP_VOCAB, beside the weights, then l2's own copy" {
	echo "a cat" > t.txt
	echo "not a vocabulary" > bad.txt
	# nothing chosen: the shipped copy ($(BUILD)/share/l2), the same as naming it
	l2-encode-text -m "$OPENAI" t.txt > a.l2f
	l2-encode-text -m "$OPENAI" --vocab "$L2_ROOT/lib/text/vocab/bpe_simple_vocab_16e6.txt.gz" t.txt > b.l2f
	cmp a.l2f b.l2f
	# each choice is taken before the ones after it (a bad file shows which was read)
	L2_CLIP_VOCAB=$PWD/bad.txt l2-encode-text -m "$OPENAI" --vocab "$L2_TEST_VOCAB" t.txt | cmp - a.l2f
	run env L2_CLIP_VOCAB=$PWD/bad.txt l2-encode-text -m "$OPENAI" t.txt
	assert_failure 1; assert_output --partial "bad.txt"
	mkdir m && ln -s "$OPENAI" m/model.safetensors && cp bad.txt m/merges.txt
	run l2-encode-text -m m/model.safetensors t.txt
	assert_failure 1; assert_output --partial "m/merges.txt"
	cp bad.txt m/bpe_simple_vocab_16e6.txt.gz
	run l2-encode-text -m m/model.safetensors t.txt
	assert_failure 1; assert_output --partial "m/bpe_simple_vocab_16e6.txt.gz"
	ln -s "$L2_TEST_VOCAB" m/model.vocab.txt.gz     # STEM.vocab.txt.gz, l2-train-clip's, first
	l2-encode-text -m m/model.safetensors t.txt | cmp - a.l2f
	# a program copied away from its share/l2 says where l2's copy should be
	mkdir -p x/bin && cp "$L2_BUILD/bin/l2-encode-text" x/bin/
	run x/bin/l2-encode-text -m "$OPENAI" t.txt
	assert_failure 1
	assert_output --partial "no CLIP vocabulary"
	assert_output --partial "x/bin/../share/l2/bpe_simple_vocab_16e6.txt.gz"
}

@test "an installed l2 finds its vocabulary under PREFIX/share/l2; uninstall removes it" {
	make -s -C "$L2_ROOT" BUILD="$L2_BUILD" SAN="${SAN:-0}" PREFIX="$PWD/p" install > make.log 2>&1 || { cat make.log; false; }
	assert_file_exist p/share/l2/bpe_simple_vocab_16e6.txt.gz p/share/l2/bpe_simple_vocab_16e6.LICENSE
	cmp p/share/l2/bpe_simple_vocab_16e6.txt.gz "$L2_ROOT/lib/text/vocab/bpe_simple_vocab_16e6.txt.gz"
	echo "a photo of a cat" > t.txt
	run env -u L2_CLIP_VOCAB PATH=/usr/bin:/bin p/bin/l2-encode-text --tokens t.txt
	assert_success; assert_output "49406 320 1125 539 320 2368 49407"
	p/bin/l2-encode-text -m "$OPENAI" t.txt > a.l2f
	l2-encode-text -m "$OPENAI" t.txt | cmp - a.l2f
	# it is the installed copy that is read, not the build tree's
	mv p/share/l2 p/share/l2.away
	run p/bin/l2-encode-text --tokens t.txt
	assert_failure 1; assert_output --partial "p/bin/../share/l2/bpe_simple_vocab_16e6.txt.gz"
	mv p/share/l2.away p/share/l2
	make -s -C "$L2_ROOT" BUILD="$L2_BUILD" SAN="${SAN:-0}" PREFIX="$PWD/p" uninstall > make.log 2>&1 || { cat make.log; false; }
	[ -z "$(find p -type f)" ]
	assert_not_exist p/share/l2
}

@test "a Hugging Face merges.txt (plain text) tokenizes the same" {
	gzip -dc "$L2_TEST_VOCAB" | head -n 48895 | sed '1s/.*/#version: 0.2/' > merges.txt
	l2-encode-text --tokens --vocab merges.txt "$REF/texts.txt" | diff - "$REF/text_ids.txt"
}

@test "wrong vocabulary file: not BPE, or too small for the model" {
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
	printf 'fine\nbad \xff byte\n' > t.txt
	run l2-encode-text -m "$OPENAI" --vocab "$L2_TEST_VOCAB" -o out.l2f t.txt
	assert_failure 1
	assert_output --partial "line 2"
	assert_not_exist out.l2f
}

@test "bad weights and missing input are errors" {
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
	l2-encode-text -m "$OPENAI" --vocab "$L2_TEST_VOCAB" < /dev/null > e.l2f
	[ "$(l2-cat --count e.l2f)" = 0 ]
	printf 'a cat\r\nüñí 😀\n' | l2-encode-text -m "$OPENAI" --vocab "$L2_TEST_VOCAB" | l2-cat -f tsv | cut -f1 > keys
	printf 'a cat\nüñí 😀\n' | diff - keys
}

@test "--store puts the features into a dataset store keyed by text" {
	run l2-encode-text -m "$OPENAI" --vocab "$L2_TEST_VOCAB" --store ds.lmdb -o s.l2f "$REF/texts.txt"
	assert_success
	assert_output --partial "1 empty or over-long"
	[ "$(l2-cat --count s.l2f)" = 5 ]
	l2-dataset export-features -n caption ds.lmdb > e.l2f
	[ "$(l2-cat --count e.l2f)" = 4 ]
	l2-cat -f tsv e.l2f | cut -f1 | grep -qx "a photo of a cat"
}

@test "unwritable output is an error" {
	run l2-encode-text -m "$OPENAI" --vocab "$L2_TEST_VOCAB" -o /nonexistent/x.l2f "$REF/texts.txt"
	assert_failure 1
}
