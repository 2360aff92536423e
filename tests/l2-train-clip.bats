#!/usr/bin/env bats
# l2-train-clip: options, outputs in OpenAI layout, bit-identical resume
# (stopped and killed runs), corrupt/mismatched checkpoints, datasets with
# and without captions.

load test_helper

TINY="--width 32 --layers 1 --resolution 16 --patch 8 --context 8 --embed-dim 16 --vocab-size 530 --batch 8 --threads 1"

# make_pngs DIR N — N small RGB PNGs (pure python, no PIL)
make_pngs() {
	python3 - "$@" <<'PY'
import os, struct, sys, zlib, random
d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(d, exist_ok=True)
rng = random.Random(3)
def chunk(t, b): return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b) & 0xffffffff)
for i in range(n):
    w = h = 20
    col = [rng.randrange(256) for _ in range(3)]
    rows = b"".join(b"\x00" + bytes([(c + 7 * x * (i % 3)) % 256 for x in range(w) for c in col]) for y in range(h))
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + \
          chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    open(os.path.join(d, "img%02d.png" % i), "wb").write(png)
PY
}

# st_keys FILE — the tensor names of a safetensors file, sorted
st_keys() {
	python3 - "$1" <<'PY'
import json, struct, sys
f = open(sys.argv[1], "rb"); n = struct.unpack("<Q", f.read(8))[0]; h = json.loads(f.read(n))
print("\n".join(sorted(k for k in h if k != "__metadata__")))
PY
}

@test "l2-train-clip --help and --version" {
	run l2-train-clip --help
	assert_success
	assert_output --partial "usage: l2-train-clip"
	assert_output --partial "--resume"
	run l2-train-clip --version
	assert_success
	assert_output --partial "0."
}

@test "l2-train-clip: bad options exit 2" {
	run l2-train-clip --bogus
	assert_failure 2
	run l2-train-clip
	assert_failure 2
	assert_output --partial "--dataset"
	run l2-train-clip --synthetic 20 --width 256 --heads 2
	assert_failure 2
	assert_output --partial "width/64"
	run l2-train-clip --synthetic 20 --resolution 30 --patch 8
	assert_failure 2
	run l2-train-clip --synthetic 20 --lr -1
	assert_failure 2
	run l2-train-clip --synthetic 20 --steps abc
	assert_failure
	assert_output --partial "--steps"
}

@test "l2-train-clip: synthetic run writes OpenAI-layout weights, vocabulary and state" {
	run l2-train-clip --synthetic 40 $TINY --steps 3 --eval-every 3 -o m.safetensors
	assert_success
	assert_output --partial "step 3/3"
	assert_output --partial "top-1"
	assert_file_exists m.safetensors
	assert_file_exists m.vocab.txt.gz
	assert_file_exists m.state
	run st_keys m.safetensors
	assert_line "visual.conv1.weight"
	assert_line "visual.class_embedding"
	assert_line "visual.transformer.resblocks.0.attn.in_proj_weight"
	assert_line "visual.transformer.resblocks.0.mlp.c_proj.bias"
	assert_line "visual.proj"
	assert_line "token_embedding.weight"
	assert_line "transformer.resblocks.0.ln_1.weight"
	assert_line "ln_final.bias"
	assert_line "text_projection"
	assert_line "logit_scale"
	run bash -c "zcat m.vocab.txt.gz | head -1"
	assert_output "#version: 0.2"
	# the vocabulary is reusable
	run l2-train-clip --synthetic 40 $TINY --steps 1 --vocab m.vocab.txt.gz -o n.safetensors
	assert_success
	# the encoders find it beside the weights; without it they say why l2's own does not fit
	echo "a red circle" | env -u L2_CLIP_VOCAB l2-encode-text -m m.safetensors > /dev/null
	mkdir away && mv m.vocab.txt.gz vocab.txt.gz away/
	run bash -c "echo 'a red circle' | env -u L2_CLIP_VOCAB l2-encode-text -m m.safetensors"
	assert_failure 1
	assert_output --partial "l2's own OpenAI one was tried: give --vocab"
}

@test "l2-train-clip: same seed, same bytes; --resume after a stop is bit-identical" {
	mkdir a b c
	l2-train-clip --synthetic 40 $TINY --steps 6 --seed 5 -o a/m.safetensors --quiet
	l2-train-clip --synthetic 40 $TINY --steps 6 --seed 5 -o b/m.safetensors --quiet --stop-after 3
	run cmp -s a/m.safetensors b/m.safetensors
	assert_failure
	l2-train-clip --synthetic 40 $TINY --steps 6 --seed 5 -o b/m.safetensors --quiet --resume
	cmp a/m.safetensors b/m.safetensors
	cmp a/m.state b/m.state
	l2-train-clip --synthetic 40 $TINY --steps 6 --seed 5 -o c/m.safetensors --quiet
	cmp a/m.safetensors c/m.safetensors
}

@test "l2-train-clip: a run killed with -9 resumes to the same weights" {
	mkdir a k
	l2-train-clip --synthetic 40 $TINY --steps 200 --seed 2 -o a/m.safetensors --quiet
	l2-train-clip --synthetic 40 $TINY --steps 200 --seed 2 -o k/m.safetensors --quiet --save-every 1 &
	pid=$!
	# kill as soon as the first checkpoint exists: the loop is running then
	for i in $(seq 1000); do [ -e k/m.state ] && break; sleep 0.02; done
	kill -9 $pid || true
	wait $pid || true
	assert_file_exists k/m.state
	# it was killed mid-run: the saved step is short of 40
	run python3 -c "
import json, struct; f = open('k/m.state', 'rb'); n = struct.unpack('<Q', f.read(8))[0]
print(json.loads(f.read(n))['__metadata__']['step'])"
	assert_success
	[ "$output" -lt 200 ]
	l2-train-clip --synthetic 40 $TINY --steps 200 --seed 2 -o k/m.safetensors --quiet --resume
	cmp a/m.safetensors k/m.safetensors
	run l2-train-clip --synthetic 40 $TINY --steps 200 --seed 2 -o k/m.safetensors --resume
	assert_success
	assert_output --partial "already at step 200"
}

@test "l2-train-clip: SIGTERM writes a checkpoint, exits 130, and the run resumes to the same weights" {
	mkdir a t
	l2-train-clip --synthetic 40 $TINY --steps 300 --seed 4 -o a/m.safetensors --quiet
	l2-train-clip --synthetic 40 $TINY --steps 300 --seed 4 -o t/m.safetensors --quiet --save-every 1 &
	pid=$!
	# the first checkpoint means the training loop (and its handler) is running
	for i in $(seq 1000); do [ -e t/m.state ] && break; sleep 0.02; done
	kill -TERM $pid
	rc=0
	wait $pid || rc=$?
	[ "$rc" -eq 130 ]
	assert_file_exists t/m.state
	l2-train-clip --synthetic 40 $TINY --steps 300 --seed 4 -o t/m.safetensors --quiet --resume
	cmp a/m.safetensors t/m.safetensors
}

@test "l2-train-clip: corrupt, truncated and mismatched checkpoints are refused" {
	l2-train-clip --synthetic 40 $TINY --steps 2 -o m.safetensors --quiet
	cp m.state good.state
	python3 -c "
import sys; b = bytearray(open('m.state','rb').read()); b[-20] ^= 0x55; open('m.state','wb').write(b)"
	run l2-train-clip --synthetic 40 $TINY --steps 4 -o m.safetensors --resume
	assert_failure 1
	assert_output --partial "m.state"
	assert_output --partial "corrupt"
	head -c 300 good.state > m.state
	run l2-train-clip --synthetic 40 $TINY --steps 4 -o m.safetensors --resume
	assert_failure 1
	assert_output --partial "m.state"
	cp good.state m.state
	run l2-train-clip --synthetic 40 $TINY --steps 4 --lr 1e-3 -o m.safetensors --resume
	assert_failure 1
	assert_output --partial "other settings"
	run l2-train-clip --synthetic 40 $TINY --steps 4 -o none.safetensors --resume
	assert_failure 1
	assert_output --partial "no training state"
	# a state of the first format (no l2.state_version): refused with a hint, one line
	python3 -c 'import json, struct, sys
h = json.dumps({"param.x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "__metadata__": {"l2.kind":
    "train-state", "step": "2", "adam_t": "2", "rng_key": "1", "rng_ctr": "9", "config": "x"}}).encode()
sys.stdout.buffer.write(struct.pack("<Q", len(h)) + h + bytes(4))' > m.state
	run l2-train-clip --synthetic 40 $TINY --steps 4 -o m.safetensors --resume
	assert_failure 1
	assert_output --partial "m.state: a training state of format 1"
	[ "${#lines[@]}" = 1 ]
}

@test "l2-train-clip: missing dataset, non-dataset and unwritable output" {
	run l2-train-clip -d nowhere.lmdb $TINY --steps 1
	assert_failure 1
	assert_output --partial "nowhere.lmdb"
	run l2-train-clip --synthetic 40 $TINY --steps 1 -o /nonexistent/dir/m.safetensors
	assert_failure 1
	assert_output --partial "/nonexistent/dir"
}

@test "l2-train-clip: a vocabulary that is not one is refused and nothing is written" {
	printf 'not a vocabulary\n\x01\x02' > bad.txt
	mkdir -p out2
	run l2-train-clip --synthetic 40 $TINY --vocab bad.txt --steps 1 -o out2/m.safetensors
	assert_failure 1
	assert_output --partial "bad.txt"
	[ "${#lines[@]}" -eq 1 ]
	run ls -A out2
	assert_output ""
}

@test "l2-train-clip: dataset with some images lacking captions" {
	command -v l2-dataset >/dev/null || skip "l2-dataset not built"
	make_pngs imgs 30
	: > caps.tsv
	for i in $(seq 0 24); do printf 'img%02d.png\tcolour number %d\n' $i $((i % 7)) >> caps.tsv; done
	l2-dataset build --captions caps.tsv --test-fraction 0.2 ds.lmdb imgs 2>/dev/null
	run l2-train-clip -d ds.lmdb $TINY --steps 2 --eval-every 2 -o d.safetensors
	assert_success
	assert_output --partial "have no caption: skipped"
	assert_output --partial "top-1"
	assert_file_exists d.safetensors
	# a dataset with no captions at all cannot train
	l2-dataset build nocap.lmdb imgs 2>/dev/null
	run l2-train-clip -d nocap.lmdb $TINY --steps 2 -o e.safetensors
	assert_failure 1
	assert_output --partial "captioned training images"
	refute [ -e e.safetensors ]
}

@test "l2-train-clip: weights load in l2-encode-images and l2-encode-text" {
	command -v l2-encode-images >/dev/null || skip "l2-encode-images not built"
	command -v l2-encode-text >/dev/null || skip "l2-encode-text not built"
	l2-train-clip --synthetic 40 $TINY --steps 2 -o m.safetensors --quiet
	make_pngs imgs 3
	run l2-encode-images -m m.safetensors imgs -o f.l2f
	assert_success
	run bash -c "printf 'a big red circle\n' | l2-encode-text -m m.safetensors -o t.l2f"
	assert_success
}
