# test_helper.bash — shared set-up for l2's BATS tests.
# Puts the built tools first on PATH, works in a per-test temp dir, loads
# bats-support/assert/file, and offers helpers that make small fixtures.

L2_ROOT=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
L2_BUILD=${L2_BUILD:-$L2_ROOT/build}
export PATH="$L2_BUILD/bin:$L2_ROOT/tools:$PATH"
export L2_ROOT L2_BUILD
# pipelines/*.sh run the tools of L2_BIN (default build/bin): the build under test (build-san with SAN=1)
export L2_BIN="$L2_BUILD/bin"
# OpenAI CLIP's vocabulary, which l2 ships (lib/text/vocab/README.md)
export L2_TEST_VOCAB=${L2_TEST_VOCAB:-$L2_ROOT/lib/text/vocab/bpe_simple_vocab_16e6.txt.gz}

load_lib() {
	local name=$1
	for d in /usr/lib/bats /usr/lib/bats-core /usr/share/bats; do
		if [ -f "$d/$name/load.bash" ]; then load "$d/$name/load.bash"; return; fi
	done
	echo "missing bats library $name (make deps)" >&2
	return 1
}
load_lib bats-support
load_lib bats-assert
load_lib bats-file

setup() {
	cd "$BATS_TEST_TMPDIR" || return 1
}

# make_npy FILE ROWS COLS [SEED] — a float32 .npy with random normal values
make_npy() {
	python3 - "$@" <<'PY'
import struct, sys, random, math
path, n, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(int(sys.argv[4]) if len(sys.argv) > 4 else 1)
hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (n, d)
hdr += " " * ((64 - (10 + len(hdr) + 1) % 64) % 64) + "\n"
with open(path, "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode())
    f.write(struct.pack("<%df" % (n * d), *[rng.gauss(0, 1) for _ in range(n * d)]))
PY
}

# png_size FILE — a PNG's WIDTHxHEIGHT, from its IHDR
png_size() { od -An -tu1 -j16 -N8 "$1" | awk '{ print $1 * 16777216 + $2 * 65536 + $3 * 256 + $4 "x" $5 * 16777216 + $6 * 65536 + $7 * 256 + $8 }'; }
