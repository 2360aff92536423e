#!/usr/bin/env bats
# pipelines/clipart-captions.sh: a category tree of clip art -> path<TAB>caption
# lines (the cleaning rules, order, skipped files, bad folders), and the
# dataset those captions build.
load test_helper
bats_require_minimum_version 1.5.0

captions() { "$L2_ROOT/pipelines/clipart-captions.sh" "$@"; }

# a fake openclipart tree: category folders, author suffixes, numbering, camelCase
make_tree() {
	local img=$L2_ROOT/tests/fixtures/images
	mkdir -p art/food/fruit art/animals/birds art/shapes/stars art/unsorted art/recreation/games/cards/white
	cp "$img/rgba8.png" art/food/fruit/red_apple_nicu_buculei_01.png
	cp "$img/rgb8.png" art/food/fruit/GreenPear-02.png
	cp "$img/p8t.png" art/animals/birds/duck_yellow_kurt_cagle_.png
	cp "$img/g8.png" art/animals/birds/gallo_di_profilo_archite_01.png
	cp "$img/ga8.png" art/shapes/stars/star_89pt35step.png
	cp "$img/rgb8.png" art/shapes/stars/fc19.png
	cp "$img/jrgb.jpg" art/unsorted/Anatra.jpg
	cp "$img/rgba8b.png" art/recreation/games/cards/white/white_c_7.png
	cp "$img/rgb8.png" art/food/apple_bw.png
	echo "not an image" > art/food/readme.txt
	ln -s fruit/red_apple_nicu_buculei_01.png art/food/apple-link.png
}

@test "clipart-captions.sh: titles cleaned, folders as context, bytewise path order" {
	make_tree
	run --separate-stderr captions art
	assert_success
	assert_output "$(printf '%s\t%s\n' \
		animals/birds/duck_yellow_kurt_cagle_.png 'a drawing of duck yellow, birds, animals' \
		animals/birds/gallo_di_profilo_archite_01.png 'a drawing of gallo di profilo, birds, animals' \
		food/apple-link.png 'a drawing of apple link, food' \
		food/apple_bw.png 'a drawing of apple black and white, food' \
		food/fruit/GreenPear-02.png 'a drawing of green pear, fruit, food' \
		food/fruit/red_apple_nicu_buculei_01.png 'a drawing of red apple, fruit, food' \
		recreation/games/cards/white/white_c_7.png 'a drawing of white, cards, recreation' \
		shapes/stars/fc19.png 'a drawing of fc, stars, shapes' \
		shapes/stars/star_89pt35step.png 'a drawing of star, stars, shapes' \
		unsorted/Anatra.jpg 'a drawing of anatra')"
	assert_equal "$stderr" "clipart-captions.sh: 10 captions, 0 untitled (category only)"
	# PREFIX and CONTEXT; a trailing slash changes nothing
	run --separate-stderr env PREFIX= CONTEXT=0 "$L2_ROOT/pipelines/clipart-captions.sh" art/
	assert_success
	assert_line --index 5 "$(printf 'food/fruit/red_apple_nicu_buculei_01.png\tred apple')"
	run --separate-stderr env CONTEXT=1 "$L2_ROOT/pipelines/clipart-captions.sh" art
	assert_line --index 5 "$(printf 'food/fruit/red_apple_nicu_buculei_01.png\ta drawing of red apple, fruit')"
	# deterministic
	a=$(captions art 2>/dev/null)
	b=$(captions art 2>/dev/null)
	assert_equal "$a" "$b"
}

@test "clipart-captions.sh: a name with no word left is captioned by its folders and counted" {
	mkdir -p art/shapes/arrows
	cp "$L2_ROOT/tests/fixtures/images/rgb8.png" art/shapes/arrows/03_3.png
	run --separate-stderr captions art
	assert_success
	assert_output "$(printf 'shapes/arrows/03_3.png\ta drawing of clip art, arrows, shapes')"
	assert_equal "$stderr" "clipart-captions.sh: 1 captions, 1 untitled (category only)"
}

@test "clipart-captions.sh: unreadable, empty, non-image, dangling and too large files are skipped and counted" {
	make_tree
	cp "$L2_ROOT/tests/fixtures/images/bad_sig.png" art/food/badsig.png
	: > art/food/empty.png
	echo "text" > art/food/text.jpg
	ln -s nowhere.png art/food/dangling.png
	# a PNG header claiming 20000x20000 pixels: the tools refuse it as a decompression bomb
	printf '\211PNG\r\n\032\n\0\0\0\rIHDR\0\0\116\040\0\0\116\040\010\006\0\0\0\343\160\106\071\0\0\0\0IDAT\065\257\006\036\0\0\0\0IEND\256\102\140\202' > art/food/huge.png
	cp "$L2_ROOT/tests/fixtures/images/rgb8.png" art/food/secret.png
	chmod 000 art/food/secret.png
	run --separate-stderr captions art
	assert_success
	refute_output --partial badsig
	refute_output --partial empty.png
	refute_output --partial text.jpg
	refute_output --partial dangling
	refute_output --partial huge
	# root reads a mode-000 file anyway
	if [ "$(id -u)" = 0 ]; then n=5; else n=6; refute_output --partial secret; fi
	assert_equal "$(printf '%s\n' "$output" | wc -l)" $((16 - n))
	assert_equal "$stderr" "$(printf 'clipart-captions.sh: %d files skipped (unreadable, empty, not PNG/JPEG data, or too large)\nclipart-captions.sh: %d captions, 0 untitled (category only)' $n $((16 - n)))"
	chmod 644 art/food/secret.png
	# what the check stands for: l2-dataset refuses that file
	mkdir bomb && cp art/food/huge.png bomb/
	run l2-dataset build ds bomb
	assert_failure 1
	assert_output --partial "decompression bomb"
}

@test "clipart-captions.sh: a missing folder, an empty one, usage" {
	run captions nowhere
	assert_failure 1
	assert_output "clipart-captions.sh: nowhere: no such folder"
	mkdir empty
	echo "x" > empty/notes.txt
	run --separate-stderr captions empty
	assert_failure 1
	assert_output ""
	[[ $stderr == *"clipart-captions.sh: empty: no usable image"* ]]
	run captions a b
	assert_failure 2
	assert_output --partial "usage: clipart-captions.sh"
	run env CONTEXT=x "$L2_ROOT/pipelines/clipart-captions.sh" empty
	assert_failure 2
	run captions -h
	assert_success
	assert_output --partial "How a caption is made"
}

@test "clipart-captions.sh: its captions build a dataset with every image captioned" {
	make_tree
	captions art > caps.tsv 2>/dev/null
	run l2-dataset build --captions caps.tsv --test-fraction 0.3 ds art
	assert_success
	run l2-dataset stats ds
	assert_line "$(printf 'images\t10')"
	assert_line "$(printf 'uncaptioned\t0')"
	run l2-dataset captions --primary ds
	assert_line "a drawing of red apple, fruit, food"
}

@test "clipart.mk: captions, dataset, a tiny CLIP and the corpus from a folder; a rerun does nothing" {
	make_tree
	mk() {
		make -s -C "$L2_ROOT" -f pipelines/clipart.mk BUILD="$L2_BUILD" PROGRESS= CACHE="$BATS_TEST_TMPDIR/cache" \
			IMAGES="$BATS_TEST_TMPDIR/art" DISTRACTORS=0 TEST_FRACTION=0.3 CLIP_LOG=--quiet \
			CLIP_FLAGS="--steps 2 --width 32 --layers 1 --resolution 16 --context 24 --embed-dim 16 --vocab-size 530 --batch 4 --threads 1" "$@"
	}
	run mk
	assert_success
	assert_file_exists cache/clipart-captions.tsv
	assert_file_exists cache/clipart.lmdb.done
	assert_equal "$(ls cache/clipart.lmdb)" "$(printf 'data.mdb\nlock.mdb')"
	# drawings on transparency: composited over white for the trainers
	run l2-store info cache/clipart.lmdb
	assert_line "$(printf 'meta\tbackground\tffffff')"
	assert_equal "$(wc -l < cache/clipart-corpus.txt)" "$(cut -f2 cache/clipart-captions.tsv | sort -u | wc -l)"
	run mk paths
	assert_success
	assert_line "IMAGES=$BATS_TEST_TMPDIR/art"
	clip=$(printf '%s\n' "$output" | sed -n 's/^CLIP=//p')
	assert_file_exists "$clip"
	assert_file_exists "${clip%.safetensors}.vocab.txt.gz"
	# the CLIP reads its own captions
	l2-encode-text --quiet -m "$clip" --vocab "${clip%.safetensors}.vocab.txt.gz" cache/clipart-corpus.txt > corpus.l2f
	assert_equal "$(l2-cat --count corpus.l2f)" "$(wc -l < cache/clipart-corpus.txt)"
	run mk --question
	assert_success
	# its paths drive pipelines/workflow.mk, over white, past an image the tools refuse
	printf '\211PNG\r\n\032\n\0\0\0\rIHDR\0\0\116\040\0\0\116\040\010\006\0\0\0\343\160\106\071\0\0\0\0IDAT\065\257\006\036\0\0\0\0IEND\256\102\140\202' > art/food/huge.png
	run make -s -C "$L2_ROOT" -f pipelines/workflow.mk dataset BUILD="$L2_BUILD" OUT="$BATS_TEST_TMPDIR/wf" TEST_FRACTION=0.3 \
		$(mk paths)
	assert_success
	ds=$(ls -d wf/data-*/dataset.lmdb)
	assert_equal "$(l2-dataset list "$ds" | wc -l)" 10
	run l2-store info "$ds"
	assert_line "$(printf 'meta\tbackground\tffffff')"
	# a missing folder: one error, nothing made
	run mk IMAGES="$BATS_TEST_TMPDIR/nowhere" CACHE="$BATS_TEST_TMPDIR/cache2"
	assert_failure
	assert_output --partial "nowhere: no such folder"
	assert_file_not_exists cache2/clipart-captions.tsv
	assert_file_not_exists cache2/clipart-captions.tsv.tmp
}
