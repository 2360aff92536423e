#!/usr/bin/env bats
# l2-wordnet-glosses: WordNet data files -> corpus lines; the seeded subset.
load test_helper

@test "l2-wordnet-glosses -h, --version, usage errors" {
	run l2-wordnet-glosses -h
	assert_success
	assert_output --partial "usage: l2-wordnet-glosses"
	run l2-wordnet-glosses --bogus
	assert_failure 2
	run l2-wordnet-glosses a b
	assert_failure 2
	run l2-wordnet-glosses --max -1
	assert_failure
	assert_output --partial "invalid value for --max"
}

@test "the definition part of WordNet's gloss field, a deterministic subset" {
	mkdir wn
	printf '  1 This software and database is being provided\n  2 licence text | not a gloss\n' > wn/data.noun
	printf '00001740 03 n 01 entity 0 003 ~ 00001930 n 0000 | that which is perceived to exist  \n' >> wn/data.noun
	printf '00002137 03 n 02 abstraction 0 | a general concept; "an example"; "another"\n' >> wn/data.noun
	printf '00001740 29 v 04 breathe 0 | draw air into, and expel out of, the lungs; "I can breathe better"\n' > wn/data.verb
	printf '00001740 00 a 01 able 0 | (usually followed by `to'"'"') having the necessary means\n' > wn/data.adj
	: > wn/data.adv
	run l2-wordnet-glosses wn
	assert_success
	assert_output "$(printf 'that which is perceived to exist\na general concept\ndraw air into, and expel out of, the lungs\n(usually followed by `to'"'"') having the necessary means')"
	a=$(l2-wordnet-glosses --max 2 --seed 4 wn)
	b=$(l2-wordnet-glosses --max 2 --seed 4 wn)
	assert_equal "$a" "$b"
	assert_equal "$(printf '%s\n' "$a" | wc -l)" 2
	run l2-wordnet-glosses nowhere
	assert_failure 1
}

@test "a subset is the same lines in their order, a larger one a superset; bad files are errors" {
	mkdir wn
	for i in $(seq 1 30); do printf '%08d 03 n 01 w%d 0 | gloss number %d; "an example"\n' $i $i $i; done > wn/data.noun
	: > wn/data.verb; : > wn/data.adj; : > wn/data.adv
	l2-wordnet-glosses --max 10 --seed 3 wn > a.txt
	l2-wordnet-glosses --max 20 --seed 3 wn > b.txt
	assert_equal "$(wc -l < a.txt)" 10
	assert_equal "$(grep -cvxFf b.txt a.txt)" 0
	# in the files' order
	l2-wordnet-glosses wn | grep -xFf a.txt | diff - a.txt
	l2-wordnet-glosses --max 99 wn | diff - <(l2-wordnet-glosses wn)
	echo '00000001 03 n 01 x 0 no bar here' >> wn/data.noun
	run l2-wordnet-glosses wn
	assert_failure 1
	assert_output --partial "wn/data.noun: line 31: no gloss"
	sed -i '$d' wn/data.noun
	rm wn/data.adv
	run l2-wordnet-glosses wn
	assert_failure 1
	assert_output --partial "wn/data.adv"
}
