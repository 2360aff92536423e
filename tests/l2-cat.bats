#!/usr/bin/env bats
# l2-cat: stream inspection, concatenation, TSV and .npy conversion.
load test_helper

@test "l2-cat -h prints usage and exits 0" {
	run l2-cat -h
	assert_success
	assert_output --partial "usage: l2-cat"
}

@test "l2-cat --version" {
	run l2-cat --version
	assert_success
	assert_output --regexp "^l2-cat \(l2\) [0-9]+\.[0-9]+"
}

@test "unknown option is a usage error (exit 2)" {
	run l2-cat --bogus
	assert_failure 2
	assert_output --partial "l2-cat: option '--bogus'"
}

@test "npy -> stream -> npy round trip is bit-exact" {
	make_npy x.npy 17 33 5
	l2-cat --from-npy x.npy --kind text-feature > s.l2f
	l2-cat -f npy -o y.npy s.l2f
	cmp x.npy y.npy
}

@test "keys file round trip, and --keys-out" {
	make_npy x.npy 3 4
	printf 'a cat\nthe dog\nüñí 😀\n' > keys.txt
	l2-cat --from-npy x.npy --keys keys.txt > s.l2f
	l2-cat -f npy -o y.npy --keys-out k2.txt s.l2f
	cmp keys.txt k2.txt
	cmp x.npy y.npy
}

@test "--header prints kind, dim, count" {
	make_npy x.npy 3 4
	l2-cat --from-npy x.npy --kind text-feature --normalize > s.l2f
	run l2-cat --header s.l2f
	assert_success
	assert_line "kind	text-feature"
	assert_line "dim	4"
	assert_line "count	3"
	assert_line "flags	normalized"
}

@test "concatenated streams read back as one" {
	make_npy a.npy 4 6 1
	make_npy b.npy 5 6 2
	l2-cat --from-npy a.npy > a.l2f
	l2-cat --from-npy b.npy > b.l2f
	run bash -c "cat a.l2f b.l2f | l2-cat --count"
	assert_output "9"
	cat a.l2f b.l2f | l2-cat > ab.l2f
	run l2-cat --count ab.l2f
	assert_output "9"
	l2-cat -f tsv a.l2f b.l2f > t1
	cat a.l2f b.l2f | l2-cat -f tsv > t2
	cmp t1 t2
}

@test "stdin and file input give the same output" {
	make_npy a.npy 4 6
	l2-cat --from-npy a.npy > a.l2f
	l2-cat -f tsv a.l2f > t1
	l2-cat -f tsv < a.l2f > t2
	cmp t1 t2
}

@test "tsv prints %.9g values that parse back exactly" {
	make_npy a.npy 2 3
	l2-cat --from-npy a.npy > a.l2f
	run l2-cat -f tsv a.l2f
	assert_success
	[ "${#lines[@]}" -eq 2 ]
	[[ "${lines[0]}" == 0$'\t'* ]]
}

@test "mismatched dimensions between concatenated streams are refused" {
	make_npy a.npy 2 3
	make_npy b.npy 2 4
	l2-cat --from-npy a.npy > a.l2f
	l2-cat --from-npy b.npy > b.l2f
	run bash -c "cat a.l2f b.l2f | l2-cat -f tsv"
	assert_failure 1
	assert_output --partial "expected image-feature dim 3"
}

@test "truncated stream: clear error, exit 1" {
	make_npy a.npy 4 6
	l2-cat --from-npy a.npy > a.l2f
	head -c 100 a.l2f > t.l2f
	run l2-cat -f tsv t.l2f
	assert_failure 1
	assert_output --partial "l2-cat: t.l2f: truncated input"
}

@test "wrong magic and wrong version are refused" {
	printf 'NOPE%060d' 0 > bad.l2f
	run l2-cat bad.l2f
	assert_failure 1
	assert_output --partial "bad magic"
	make_npy a.npy 1 2
	l2-cat --from-npy a.npy > a.l2f
	printf '\x09' | dd of=a.l2f bs=1 seek=4 conv=notrunc 2>/dev/null
	run l2-cat a.l2f
	assert_failure 1
	assert_output --partial "unsupported stream version"
}

@test "empty input and missing file" {
	run l2-cat < /dev/null
	assert_failure 1
	assert_output --partial "empty input"
	run l2-cat nope.l2f
	assert_failure 1
	assert_output --partial "l2-cat: nope.l2f: No such file"
}

@test "unwritable output leaves no file behind" {
	make_npy a.npy 2 3
	touch notadir
	run l2-cat --from-npy a.npy -o notadir/out.l2f
	assert_failure 1
	assert_output --partial "notadir/out.l2f"
	run bash -c "l2-cat --from-npy a.npy -o /dev/full"
	assert_failure 1
	run l2-cat --from-npy a.npy -o /nonexistent/out.l2f
	assert_failure 1
	assert_output --partial "/nonexistent/out.l2f"
}

@test "refuses to write binary to a terminal" {
	command -v script >/dev/null || skip "script(1) not installed"
	make_npy a.npy 2 3
	run script -qec "l2-cat --from-npy a.npy" /dev/null
	assert_failure
	assert_output --partial "refusing to write binary output to a terminal"
}

@test "--normalized checks rows" {
	make_npy a.npy 2 3
	run l2-cat --from-npy a.npy --normalized
	assert_failure 1
	assert_output --partial "not 1"
}
