#!/usr/bin/env bats
# Shards of the map stages (lib/core/shard.h): for N in {1, 3}, every stage run
# as N shards and merged with `l2-cat --unshard` gives the plain run's bytes;
# --shard auto from Slurm-array and Open MPI variables; pipelines/sharded.mk
# equals pipelines/pseudo.mk; the documented GNU parallel line runs verbatim;
# the Slurm scripts run under a stand-in sbatch.
load test_helper

setup_file() {
	cd "$BATS_FILE_TMPDIR" || return 1
	"$L2_BUILD/tests/test_clip" --write-models . > /dev/null
	# 8,300 short captions: three shards of the default 4096-line blocks (4096, 4096, 108)
	awk 'BEGIN { for (i = 0; i < 8300; i++) { printf "caption %d", i; for (j = 0; j < i % 13; j++) printf " w%d", j; print "" } }' > corpus.txt
	python3 - <<'PY'
import os, random, struct, zlib
rng = random.Random(5)
def chunk(t, b): return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b))
os.makedirs("imgs/sub", exist_ok=True)
for i in range(11):
    col = [rng.randrange(256) for _ in range(3)]
    raw = b"".join(b"\0" + bytes((c + 9 * x * (i % 4) + 5 * y) % 256 for x in range(12) for c in col) for y in range(12))
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 12, 12, 8, 2, 0, 0, 0)) \
        + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    open("imgs/%simg%02d.png" % ("sub/" if i % 3 == 0 else "", i), "wb").write(png)
PY
	head -n 40 corpus.txt > small.txt
	export M=$BATS_FILE_TMPDIR/openai.safetensors FX=$BATS_FILE_TMPDIR
}

# shard N FILE... -> FILE.0 ... FILE.(N-1) merged back; prints nothing, fails on a difference
merged() { local n=$1 stem=$2; l2-cat --quiet --unshard "$n${BLK:+:$BLK}" $(seq -f "$stem.%g" 0 $((n - 1))); }

@test "l2-encode-text: 1 and 3 shards (blocks of 4096 lines) merged are the plain bytes" {
	l2-encode-text -m "$M" "$FX/corpus.txt" > plain.l2f
	for n in 1 3; do
		for i in $(seq 0 $((n - 1))); do l2-encode-text --quiet -m "$M" --shard $i/$n "$FX/corpus.txt" > t.$i; done
		merged $n t | cmp - plain.l2f
	done
	[ "$(l2-cat --count t.0)" = 4096 ] && [ "$(l2-cat --count t.1)" = 4096 ] && [ "$(l2-cat --count t.2)" = 108 ]
	# token ids shard the same way
	l2-encode-text --tokens --shard 1/3:10 "$FX/small.txt" > ids
	l2-encode-text --tokens "$FX/small.txt" | sed -n '11,20p' | diff - ids
}

@test "l2-encode-images: 1 and 3 shards merged are the plain bytes (rounds of threads x batch = A)" {
	l2-encode-images -m "$M" -b 2 --threads 2 "$FX/imgs" > plain.l2f
	for n in 1 3; do
		for i in $(seq 0 $((n - 1))); do l2-encode-images --quiet -m "$M" -b 2 --threads 2 --shard $i/$n:4 "$FX/imgs" > s.$i; done
		BLK=4 merged $n s | cmp - plain.l2f
	done
	[ "$(l2-cat --count s.2)" = 3 ]
	# a path list on standard input shards by line, the same way
	(cd "$FX" && find imgs -type f | sort) > list
	(cd "$FX" && l2-encode-images --quiet -m "$M" -b 2 --threads 2 --shard 2/3:4 - < "$OLDPWD/list") > l.2
	l2-cat -f tsv l.2 | cut -f1 > keys
	sed -n '9,11p' list | diff - keys
}

@test "l2-retrieve and l2-optimize-pseudo (3 modes) per shard, merged, are the plain bytes" {
	l2-encode-text --quiet -m "$M" "$FX/small.txt" | l2-build-index --quiet -o idx
	l2-encode-images --quiet -m "$M" -b 2 --threads 2 "$FX/imgs" > img.l2f
	for mode in optimize retrieve gaussian; do
		l2-retrieve --quiet -i idx -k 4 img.l2f | l2-optimize-pseudo --quiet --mode $mode --batch 4 > plain.$mode
		for n in 1 3; do
			for i in $(seq 0 $((n - 1))); do
				l2-cat --quiet --shard $i/$n:4 img.l2f | l2-retrieve --quiet -i idx -k 4 |
					l2-optimize-pseudo --quiet --mode $mode --batch 4 > p.$i
			done
			BLK=4 merged $n p | cmp - plain.$mode
		done
	done
	# gaussian noise follows the key, not the position: a record alone gets its plain bytes
	l2-cat -f tsv plain.gaussian | sed -n 7p > want
	l2-cat --quiet --shard 6/11:1 img.l2f | l2-optimize-pseudo --quiet --mode gaussian | l2-cat -f tsv | diff - want
}

@test "l2-cat --shard cuts any stream (neighbours, f16) and --unshard restores it" {
	l2-encode-images --quiet -m "$M" "$FX/imgs" > img.l2f
	l2-encode-text --quiet -m "$M" "$FX/small.txt" | l2-build-index --quiet -o idx
	l2-retrieve --quiet -i idx -k 3 img.l2f > nb.l2f
	python3 - <<'PY'
import random, struct
rng = random.Random(2)
with open("h.l2f", "wb") as f:   # an f16 stream, as l2-dataset export-features gives for f16 sets
    f.write(b"L2FS" + struct.pack("<HHIIQ", 1, 2, 5, 0, 9) + b"text-feature".ljust(24, b"\0") + b"\0" * 16)
    for i in range(9):
        k = b"t%d" % i
        f.write(struct.pack("<I", len(k)) + k + struct.pack("<5e", *[rng.gauss(0, 1) for _ in range(5)]))
PY
	l2-cat h.l2f > h16.l2f
	for f in img.l2f nb.l2f h16.l2f; do
		for n in 1 3; do
			for i in $(seq 0 $((n - 1))); do l2-cat --shard $i/$n:2 $f > c.$i; done
			BLK=2 merged $n c | cmp - $f
			# order-free consumers take the shards as they are: the same records
			cat $(seq -f c.%g 0 $((n - 1))) | l2-cat -f tsv | sort > a
			l2-cat -f tsv $f | sort | diff - a
		done
	done
}

@test "l2-cat --unshard refuses shards that do not fit N:A; usage errors" {
	l2-encode-text --quiet -m "$M" "$FX/small.txt" > t.l2f
	for i in 0 1 2; do l2-cat --shard $i/3:8 t.l2f > c.$i; done
	run l2-cat --unshard 3:5 c.0 c.1 c.2
	assert_failure 1; assert_output --partial "not shards 0..2 of one stream in blocks of 5"
	run l2-cat --unshard 3:8 c.0 c.2 c.1      # shards out of order: c.2 runs out first
	assert_failure 1; assert_output --partial "c.1: has records after the merged stream ended"
	run l2-cat --unshard 2 c.0 c.1 c.2;        assert_failure 2; assert_output --partial "needs the 2 shard streams"
	run l2-cat --unshard 0 c.0;                assert_failure 2
	run l2-cat --shard 3/3 t.l2f;              assert_failure 2; assert_output --partial "0..N-1"
	run l2-cat --shard 1/3:0 t.l2f;            assert_failure 2
	run l2-cat --shard 1/3 --unshard 3 c.0;    assert_failure 2
	run l2-cat --shard 1/3 --header t.l2f;     assert_failure 2
	run l2-encode-text -m "$M" --shard x/3 t;  assert_failure 2; assert_output --partial "--shard"
	run l2-encode-images -m "$M" --shard 1 "$FX/imgs"; assert_failure 2
	run l2-cat --unshard 2 - -;                assert_failure 1; assert_output --partial "standard input given twice"
}

@test "--shard auto: Slurm array and Open MPI variables; never implicit" {
	l2-encode-text --quiet -m "$M" "$FX/small.txt" > t.l2f
	l2-cat --shard 2/4:8 t.l2f > want
	env SLURM_ARRAY_TASK_ID=12 SLURM_ARRAY_TASK_MIN=10 SLURM_ARRAY_TASK_MAX=13 SLURM_ARRAY_TASK_COUNT=4 \
		SLURM_ARRAY_TASK_STEP=1 SLURM_PROCID=0 SLURM_NTASKS=1 l2-cat --shard auto:8 t.l2f | cmp - want
	env OMPI_COMM_WORLD_RANK=2 OMPI_COMM_WORLD_SIZE=4 l2-cat --shard auto:8 t.l2f | cmp - want
	run env OMPI_COMM_WORLD_RANK=2 OMPI_COMM_WORLD_SIZE=4 l2-cat --shard auto:8 -o x t.l2f
	assert_success; assert_output --partial "shard 2/4, blocks of 8 records (OMPI_COMM_WORLD_RANK)"
	# without --shard the variables change nothing
	env OMPI_COMM_WORLD_RANK=2 OMPI_COMM_WORLD_SIZE=4 l2-cat t.l2f | cmp - t.l2f
	run env -u SLURM_ARRAY_TASK_ID -u OMPI_COMM_WORLD_RANK -u PMI_RANK -u SLURM_PROCID l2-cat --shard auto t.l2f
	assert_failure 2; assert_output --partial "no launcher variables"
	run env SLURM_ARRAY_TASK_ID=3 SLURM_ARRAY_TASK_MIN=0 SLURM_ARRAY_TASK_COUNT=4 SLURM_ARRAY_TASK_STEP=2 l2-cat --shard auto t.l2f
	assert_failure 2; assert_output --partial "step"
}

@test "make -j2 -f pipelines/sharded.mk SHARDS=3 equals pipelines/pseudo.mk; a rerun redoes only missing shards" {
	# blocks of 4 images: the image encoder's rounds (2 threads x 2) and the optimiser's
	# batches (4) fit them; captions in one window per shard (-b 1: batches of one)
	common=(BIN="$L2_BUILD/bin/" IMAGES="$FX/imgs" CAPTIONS="$FX/small.txt" MODEL="$M" K=4
		MODES="optimize retrieve gaussian" PSEUDO_FLAGS="--batch 4"
		IMG_FLAGS="-m $M -b 2 --threads 2" TXT_FLAGS="-m $M -b 1")
	make -s -f "$L2_ROOT/pipelines/pseudo.mk" "${common[@]}" STORE=0 OUT=plain > /dev/null
	make -s -j2 -f "$L2_ROOT/pipelines/sharded.mk" "${common[@]}" SHARDS=3 BLOCK=4 OUT=sh > /dev/null
	for f in captions.l2f images.l2f pseudo-optimize.l2f pseudo-retrieve.l2f pseudo-gaussian.l2f; do
		cmp plain/$f sh/$f
	done
	[ "$(l2-cat --count sh/shards/images.2.l2f)" = 3 ]
	# nothing to do; then only the missing shard (and what depends on it) is made again
	run make -f "$L2_ROOT/pipelines/sharded.mk" "${common[@]}" SHARDS=3 BLOCK=4 OUT=sh
	assert_success; refute_output --partial "l2-"
	rm sh/shards/pseudo-retrieve.1.l2f
	run make -f "$L2_ROOT/pipelines/sharded.mk" "${common[@]}" SHARDS=3 BLOCK=4 OUT=sh
	assert_success
	assert_output --partial "pseudo-retrieve.1.l2f"
	refute_output --partial "pseudo-retrieve.0.l2f.tmp"
	refute_output --partial "l2-encode"
	cmp plain/pseudo-retrieve.l2f sh/pseudo-retrieve.l2f
	run make -f "$L2_ROOT/pipelines/sharded.mk" SHARDS=0 IMAGES="$FX/imgs" OUT=bad
	assert_failure
	assert_output --partial "SHARDS and BLOCK must be numbers"
}

@test "the GNU parallel example of l2-encode-text(1) runs verbatim and merges to the plain bytes" {
	command -v parallel > /dev/null || skip "GNU parallel is not installed (tools/install-deps.sh test)"
	sed -n '/^\.\\" parallel-example-begin/,/^\.\\" parallel-example-end/p' "$L2_ROOT/man/l2-encode-text.1" |
		grep -v '^\.' | sed 's/\\-/-/g; s/\\e/\\/g' > example.sh
	grep -q "^parallel " example.sh
	ln -s "$M" clip.safetensors
	cp "$FX/corpus.txt" corpus.txt
	bash -euo pipefail example.sh
	l2-encode-text -m clip.safetensors corpus.txt | cmp - txt.l2f
}

@test "the Slurm scripts: bash -n, and a whole submit.sh run under a stand-in sbatch" {
	for f in "$L2_ROOT"/pipelines/slurm/*; do bash -n "$f"; done
	# sbatch stand-in: runs each job at once (array tasks in turn, with Slurm's variables)
	mkdir bin
	cat > bin/sbatch <<'EOF'
#!/bin/bash
array= wrap=
while [ $# -gt 0 ]; do
	case $1 in
	--array=*) array=${1#--array=} ;;
	--wrap) wrap=$2; shift ;;
	-*) ;;
	*) break ;;
	esac
	shift
done
if [ -n "$wrap" ]; then bash -c "$wrap" >> sbatch.log 2>&1 || exit 1
else
	lo=${array%-*} hi=${array#*-}
	for t in $(seq "$lo" "$hi"); do
		SLURM_ARRAY_TASK_ID=$t SLURM_ARRAY_TASK_MIN=$lo SLURM_ARRAY_TASK_MAX=$hi SLURM_ARRAY_TASK_COUNT=$((hi - lo + 1)) \
			SLURM_ARRAY_TASK_STEP=1 SLURM_CPUS_PER_TASK=1 bash "$@" >> sbatch.log 2>&1 || exit 1
	done
fi
echo $RANDOM
EOF
	chmod +x bin/sbatch
	(cd "$FX" && find "$PWD/imgs" -type f | sort) > images.txt
	PATH=$PWD/bin:$PATH run "$L2_ROOT/pipelines/slurm/submit.sh" -n 3 -m "$M" -o out -k 4 images.txt "$FX/small.txt"
	assert_success; assert_output --partial "out/pseudo-optimize.l2f"
	l2-encode-images --quiet -m "$M" --threads 1 - < images.txt > img.l2f
	cmp img.l2f out/images.l2f
	l2-encode-text --quiet -m "$M" --threads 1 "$FX/small.txt" | l2-build-index --quiet -o idx
	l2-retrieve --quiet -i idx -k 4 img.l2f | l2-optimize-pseudo --quiet --threads 1 | cmp - out/pseudo-optimize.l2f
}
