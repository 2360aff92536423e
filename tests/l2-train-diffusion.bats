#!/usr/bin/env bats
# l2-train-diffusion: options, conditions, checkpoints (the same bytes for any thread
# count; resume after a stop and after kill -9 byte-identical; corrupt, truncated and
# mismatched files refused), refusals (missing feature sets, condition sizes), and a tiny
# model memorising 4 images: its samples land on training images.
load test_helper
load gan_fixture

setup_file() { gan_fixture_with_clip; }

# the small network every test trains (16x16)
TINY="--preset tiny --channels 8 --mult 1,2 --attn-res 8 --resolution 16 --batch 4 --threads 1 --grid 2x2"

@test "help, version, bad options" {
	run l2-train-diffusion --help
	assert_success; assert_output --partial "usage: l2-train-diffusion"
	run l2-train-diffusion --version
	assert_success
	run l2-train-diffusion --bogus
	assert_failure 2
	run l2-train-diffusion -o run
	assert_failure 2; assert_output --partial "-d PATH"
	run l2-train-diffusion -d "$DS" --cond words
	assert_failure 2; assert_output --partial "--cond"
	run l2-train-diffusion -d "$DS" --preset huge
	assert_failure 2; assert_output --partial "--preset"
	run l2-train-diffusion -d "$DS" --resolution 24
	assert_failure 2; assert_output --partial "power of two"
	run l2-train-diffusion -d "$DS" --mult 1,0
	assert_failure 2; assert_output --partial "--mult"
	run l2-train-diffusion -d "$DS" --channels 10
	assert_failure 2; assert_output --partial "multiple of 4"
	run l2-train-diffusion -d "$DS" --patch 3
	assert_failure 2; assert_output --partial "patch"
	run l2-train-diffusion -d "$DS" --weighting uniform
	assert_failure 2; assert_output --partial "--weighting"
	run l2-train-diffusion -d "$DS" --ema-std 0.7
	assert_failure 2; assert_output --partial "--ema-std"
	run l2-train-diffusion -d "$DS" --sample-ema 0.2
	assert_failure 2; assert_output --partial "--sample-ema"
	run l2-train-diffusion -d "$DS" --sample-sampler ddpm
	assert_failure 2; assert_output --partial "--sample-sampler"
	run l2-train-diffusion -d "$DS" --pairs-fraction 1.5
	assert_failure 2
	run l2-train-diffusion -d "$DS" --cond-drop 1
	assert_failure 2
	run l2-train-diffusion -d "$DS" --fid-every 5
	assert_failure 2; assert_output --partial "--clip"
	[ ! -e diffusion-run ]
}

@test "a short run writes weights, EMAs, state, log, loss plot and grids" {
	run l2-train-diffusion -d "$DS" -o run $TINY --steps 6 --tick 3
	assert_success
	assert_output --partial "step 3/6"; assert_output --partial "img/s"; assert_output --partial "ETA"
	for f in model.safetensors model_ema-0.050.safetensors model_ema-0.100.safetensors state.safetensors log.tsv \
		loss.png grid.png grid-000003.png grid-000006.png; do
		assert_file_exist "run/$f"
	done
	[ "$(wc -l < run/log.tsv)" = 3 ]
	head -1 run/log.tsv | grep -q "^step	loss	mse	mse_s0.002	"
	[ "$(head -c 8 run/grid.png | od -An -tx1 | tr -d ' ')" = 89504e470d0a1a0a ]
	[ "$(head -c 8 run/loss.png | od -An -tx1 | tr -d ' ')" = 89504e470d0a1a0a ]
	run bash -c 'ls run | grep -v -E "^(model|model_ema-0\.(050|100)|state)\.safetensors$|^log\.tsv$|^loss\.png$|^grid(-[0-9]{6})?\.png$"'
	assert_output ""
}

@test "same seed, same bytes; another seed differs; threads do not matter" {
	l2-train-diffusion --quiet -d "$DS" -o a $TINY --steps 4 --tick 4 --dropout 0.1
	l2-train-diffusion --quiet -d "$DS" -o b $TINY --steps 4 --tick 4 --dropout 0.1
	l2-train-diffusion --quiet -d "$DS" -o c $TINY --steps 4 --tick 4 --dropout 0.1 --seed 1
	l2-train-diffusion --quiet -d "$DS" -o t $TINY --steps 4 --tick 4 --dropout 0.1 --threads 3 --batch 5
	l2-train-diffusion --quiet -d "$DS" -o u $TINY --steps 4 --tick 4 --dropout 0.1 --threads 1 --batch 5
	cmp a/model.safetensors b/model.safetensors
	cmp a/state.safetensors b/state.safetensors
	cmp a/grid.png b/grid.png
	! cmp -s a/model.safetensors c/model.safetensors
	cmp t/state.safetensors u/state.safetensors
	cmp t/grid.png u/grid.png
}

@test "resume after --stop-after is byte-identical" {
	l2-train-diffusion --quiet -d "$DS" -o full $TINY --steps 12 --tick 4
	l2-train-diffusion --quiet -d "$DS" -o part $TINY --steps 12 --tick 4 --stop-after 4
	run l2-train-diffusion --quiet -d "$DS" -o part $TINY --steps 12 --tick 4 --resume
	assert_success
	for f in model.safetensors model_ema-0.050.safetensors model_ema-0.100.safetensors state.safetensors grid.png; do
		cmp full/$f part/$f
	done
	# the log too, but for the images/s column (timing)
	cmp <(cut -f1-17 full/log.tsv) <(cut -f1-17 part/log.tsv)
}

@test "resume after kill -9 is byte-identical" {
	l2-train-diffusion --quiet -d "$DS" -o full $TINY --steps 30 --tick 1
	l2-train-diffusion --quiet -d "$DS" -o k $TINY --steps 30 --tick 1 &
	pid=$!
	for i in $(seq 1 300); do [ -f k/state.safetensors ] && break; sleep 0.05; done
	sleep 0.2
	kill -9 $pid || true
	wait $pid || true
	[ "$(wc -l < k/log.tsv)" -lt 31 ]
	run l2-train-diffusion --quiet -d "$DS" -o k $TINY --steps 30 --tick 1 --resume
	assert_success
	for f in model.safetensors model_ema-0.050.safetensors state.safetensors; do cmp full/$f k/$f; done
	cmp <(cut -f1-17 full/log.tsv) <(cut -f1-17 k/log.tsv)
}

@test "resume refuses: no state, other settings, corrupt or truncated state" {
	run l2-train-diffusion -d "$DS" -o none $TINY --steps 2 --resume
	assert_failure 1; assert_output --partial "no training state"
	l2-train-diffusion --quiet -d "$DS" -o r $TINY --steps 2 --tick 2
	run l2-train-diffusion -d "$DS" -o r $TINY --steps 2 --lr 0.001 --resume
	assert_failure 1; assert_output --partial "other settings"
	cp r/state.safetensors keep
	head -c 3000 keep > r/state.safetensors
	run l2-train-diffusion -d "$DS" -o r $TINY --steps 4 --resume
	assert_failure 1; assert_output --partial "state.safetensors"
	[ "${#lines[@]}" = 1 ]
	cp keep r/state.safetensors
	printf 'X' | dd of=r/state.safetensors bs=1 seek=$(( $(stat -c %s keep) - 10 )) conv=notrunc 2> /dev/null
	run l2-train-diffusion -d "$DS" -o r $TINY --steps 4 --resume
	assert_failure 1; assert_output --partial "state.safetensors"
	[ "${#lines[@]}" = 1 ]
}

@test "bad dataset: missing, not a dataset, a missing feature set" {
	run l2-train-diffusion -d nothere.lmdb $TINY --steps 1
	assert_failure 1; assert_output --partial "nothere.lmdb"
	mkdir junk && echo hi > junk/data.mdb
	run l2-train-diffusion -d junk $TINY --steps 1
	assert_failure 1; assert_output --partial "junk"
	run l2-train-diffusion -d "$DS" $TINY --steps 1 --pseudo-feature nope
	assert_failure 1; assert_output --partial "no feature set 'nope'"
	[ "${#lines[@]}" = 1 ]
	[ ! -e diffusion-run ]
}

@test "--init: wrong condition size, another model, corrupt or truncated weights" {
	cp -r "$FX" fx2
	make_npy p8.npy 16 8
	l2-cat --from-npy p8.npy --keys fx2/pseudo.keys --kind pseudo-text-feature --normalize -o p8.l2f
	l2-dataset import-features --quiet -n p8 fx2/ds.lmdb p8.l2f
	run l2-train-diffusion -d fx2/ds.lmdb $TINY --steps 1 --pseudo-feature p8 --pairs-fraction 0.5
	assert_failure 1; assert_output --partial "differ in size"
	make_npy c8.npy 8 8 2
	l2-cat --from-npy c8.npy --keys fx2/caption.keys --kind text-feature --normalize -o c8.l2f
	l2-dataset import-features --quiet -n c8 fx2/ds.lmdb c8.l2f
	run l2-train-diffusion -d fx2/ds.lmdb -o r8 $TINY --steps 1 --pseudo-feature p8 --caption-feature c8 --fid-every 1 --clip "$CLIP"
	assert_failure 1; assert_output --partial "48 dimensions, the conditions 8"
	l2-train-diffusion --quiet -d fx2/ds.lmdb -o r8 $TINY --steps 1 --pseudo-feature p8
	run l2-train-diffusion -d "$DS" -o ft $TINY --steps 1 --init r8
	assert_failure 1; assert_output --partial "8 dimensions"
	[ ! -e ft ]
	l2-train-diffusion --quiet -d "$DS" -o base $TINY --steps 1
	run l2-train-diffusion -d "$DS" -o ft $TINY --channels 12 --steps 1 --init base
	assert_failure 1; assert_output --partial "made with"
	mkdir tr && head -c 5000 base/model.safetensors > tr/model.safetensors
	run l2-train-diffusion -d "$DS" -o ft $TINY --steps 1 --init tr
	assert_failure 1; assert_output --partial "tr/model.safetensors"; [ "${#lines[@]}" = 1 ]
	mkdir fl && cp base/model.safetensors fl/
	printf 'X' | dd of=fl/model.safetensors bs=1 seek=$(( $(stat -c %s fl/model.safetensors) - 10 )) conv=notrunc 2> /dev/null
	run l2-train-diffusion -d "$DS" -o ft $TINY --steps 1 --init fl
	assert_failure 1; assert_output --partial "checksum"; [ "${#lines[@]}" = 1 ]
	mkdir gan && l2-train-gan --quiet -d "$DS" -o gan $GAN_TINY --steps 1 && cp gan/G.safetensors gan/model.safetensors
	run l2-train-diffusion -d "$DS" -o ft $TINY --steps 1 --init gan
	assert_failure 1; assert_output --partial "not an l2 diffusion model"
	[ ! -e ft ]
}

@test "conditions: text, gaussian, mixed, pairs fraction, paired-only, fine-tuning with --init" {
	run l2-train-diffusion -d "$DS" -o t $TINY --steps 2 --tick 2 --cond text
	assert_success; assert_output --partial "12 images (12 paired, cond text)"
	run l2-train-diffusion -d "$DS" -o g $TINY --steps 2 --tick 2 --cond gaussian
	assert_success; assert_output --partial "(0 paired, cond gaussian)"
	run l2-train-diffusion -d "$DS" -o m $TINY --steps 2 --tick 2 --cond mixed --pairs-fraction 0.25
	assert_success; assert_output --partial "(3 paired, cond mixed)"
	run l2-train-diffusion -d "$DS" -o p $TINY --steps 2 --tick 2 --pairs-fraction 0.34 --paired-only
	assert_success; assert_output --partial "4 images (4 paired"
	run l2-train-diffusion -d "$DS" -o ft $TINY --steps 2 --tick 2 --init t --pairs-fraction 0.2 --paired-only
	assert_success
	! cmp -s t/model.safetensors ft/model.safetensors
	run l2-train-diffusion -d "$DS" -o w $TINY --steps 2 --tick 2 --weighting min-snr:5 --ema-std 0.08
	assert_success
	assert_file_exist w/model_ema-0.080.safetensors
}

@test "memorise: a tiny model on 4 images samples training images" {
	# (about 17 CPU-seconds: 1000 steps of a 0.2M-parameter network at 16x16)
	# 4 training images (no held-out split), their captions as conditions
	mkdir four && ( cd four && head -4 "$FX/captions.tsv" > captions.tsv && mkdir img &&
		cut -f1 captions.tsv | while read -r f; do cp "$FX/$f" img/; done )
	l2-dataset build --quiet --captions four/captions.tsv --test-fraction 0 four/ds.lmdb four
	l2-dataset import-features --quiet -n caption four/ds.lmdb "$FX/caption.l2f"
	run l2-train-diffusion -d four/ds.lmdb -o mem --preset tiny --channels 16 --mult 1,2 --attn-res none \
		--resolution 16 --cond text --batch 4 --steps 1000 --lr 0.01 --tick 1000 --grid 4x3 --threads 2 \
		--ema-std 0.05 --sample-steps 24 --guidance 1 --P-mean -1.2 --P-std 1.2
	assert_success
	# (EDM's CIFAR noise levels, not the default's wider ones: memorising four images is won at low
	# noise, where those draw most of their samples; with the default's the mean MSE after 1000
	# steps is 0.021)
	# the samples of the grid (a row per training image: the real one first) land on their row's
	# image: mean squared error (pixels in [-1, 1]) below 0.01 on average, and none above 0.05
	# (one sample in twelve may keep a blotch after 1000 steps)
	python3 - mem/grid.png 16 3 <<'PY'
import struct, sys, zlib
path, R, cols = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
d = open(path, "rb").read(); pos = 8; idat = b""; w = h = 0
while pos < len(d):
    n, t = struct.unpack(">I4s", d[pos:pos + 8]); body = d[pos + 8:pos + 8 + n]; pos += 12 + n
    if t == b"IHDR": w, h = struct.unpack(">II", body[:8])
    if t == b"IDAT": idat += body
raw = zlib.decompress(idat); stride = 3 * w; rows = []; prev = bytearray(stride)
for y in range(h):
    f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - 3] if i >= 3 else 0; b = prev[i]; c = prev[i - 3] if i >= 3 else 0
        if f == 4:
            pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
            p = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
        else:
            p = (0, a, b, (a + b) // 2)[f]
        line[i] = (line[i] + p) & 255
    rows.append(line); prev = line
def tile(r, c):
    x0, y0 = 2 + c * (R + 2), 2 + r * (R + 2)
    return [rows[y0 + y][3 * (x0 + x) + k] / 127.5 - 1 for y in range(R) for x in range(R) for k in range(3)]
nrow = (h - 2) // (R + 2); errs = []
reals = [tile(r, 0) for r in range(nrow)]
for r in range(nrow):
    for c in range(1, cols + 1):
        s = tile(r, c)
        errs.append(sum((a - b) ** 2 for a, b in zip(s, reals[r])) / len(s))
mean = sum(errs) / len(errs)
print("rows %d, MSE of each sample to its training image: mean %.4f, worst %.4f" % (nrow, mean, max(errs)))
sys.exit(0 if nrow == 4 and mean < 0.01 and max(errs) < 0.05 else 1)
PY
}

@test "--fid-every: FD, CLIP score and R-precision in the log; --inception adds the Inception FID" {
	run l2-train-diffusion -d "$DS" -o f $TINY --steps 4 --tick 2 --fid-every 2 --clip "$CLIP" --fid-images 3
	assert_success; assert_output --partial "FD "; assert_output --partial "R-prec"
	# fd_clip (19), clip_score (20), fd_images (21): 3 at the first tick, all 4 held-out at the end
	awk -F'\t' 'NR == 2 && !($19 > 0 && $20 > -1 && $21 == 3) { exit 1 } NR == 3 && !($21 == 4) { exit 1 }
		NR > 1 && !($23 >= 0 && $23 <= 1 && $24 >= $23 && $24 <= 1) { exit 1 }' f/log.tsv
	l2-fid --random-weights w.safetensors --seed 3
	run l2-train-diffusion -d "$DS" -o i $TINY --steps 2 --tick 2 --fid-every 2 --clip "$CLIP" --inception w.safetensors
	assert_success; assert_output --partial "FID "
	awk -F'\t' 'NR == 2 && !($22 > 0) { exit 1 }' i/log.tsv
	run l2-train-diffusion -d "$DS" --inception w.safetensors
	assert_failure 2; assert_output --partial "--fid-every"
}

@test "unwritable output directory" {
	mkdir ro && chmod 555 ro
	[ -w ro ] && skip "running as root"
	run l2-train-diffusion -d "$DS" -o ro/run $TINY --steps 1
	assert_failure 1; assert_output --partial "ro/run"
}
