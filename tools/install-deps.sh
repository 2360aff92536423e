#!/bin/sh
# install-deps.sh PROFILE — install the Debian packages l2 needs for PROFILE
# (build, test, goldens, bench, demo, fuzz) when they are missing.  Run by make;
# does nothing when everything is present.  Needs root (or sudo) to install.
set -eu

build="gcc make pkg-config libc6-dev libpng-dev libjpeg62-turbo-dev libopenblas-dev liblmdb-dev zlib1g-dev libjansson-dev"
# parallel: the sharding tests run the documented GNU parallel line; openmpi: MPI training
test="$build bats bats-support bats-assert bats-file lmdb-utils python3 man-db parallel openmpi-bin libopenmpi-dev"
goldens="$test python3-numpy python3-scipy python3-torch python3-torchvision python3-pil python3-regex python3-wcwidth"
bench="$goldens python3-faiss time"
# openclipart-png: the clip-art folder of pipelines/clipart.mk
demo="$test npm wordnet-base openclipart-png"
fuzz="$build clang-14 libclang-rt-14-dev"

profile=${1:-test}
case $profile in
	build) want=$build ;;
	test) want=$test ;;
	goldens) want=$goldens ;;
	bench) want=$bench ;;
	demo) want=$demo ;;
	fuzz) want=$fuzz ;;
	*) echo "install-deps.sh: unknown profile '$profile' (build, test, goldens, bench, demo, fuzz)" >&2; exit 2 ;;
esac

missing=
for p in $want; do
	# npm also comes with nodejs builds that conflict with Debian's npm package
	[ "$p" = npm ] && command -v npm >/dev/null 2>&1 && continue
	s=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case $s in *" installed") ;; *) missing="$missing $p" ;; esac
done
[ -z "$missing" ] && exit 0

echo "l2: installing missing packages:$missing" >&2
if [ "$(id -u)" = 0 ]; then sudo=; elif command -v sudo >/dev/null; then sudo=sudo; else
	echo "l2: not root and no sudo; install them with: apt-get install$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >&2
$sudo apt-get install -y -qq --no-install-recommends $missing >&2
