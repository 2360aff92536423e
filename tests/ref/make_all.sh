#!/usr/bin/env bash
# make_all.sh — regenerate every golden file under tests/ref/ (make goldens).
# Needs python3-torch, python3-numpy, python3-pil, python3-scipy (installed by
# tools/install-deps.sh goldens).  Tests never run this; they read the
# committed outputs.
set -euo pipefail
cd "$(dirname "$0")"
export PYTHONHASHSEED=0
for s in make_*.py; do
	[ -e "$s" ] || continue
	echo "goldens: $s" >&2
	/usr/bin/python3 "$s"
done
