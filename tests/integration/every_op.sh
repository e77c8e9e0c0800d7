#!/usr/bin/env bash
# Generate PyTorch's reference values, then check every op against them.
#   every_op.sh EVERY_OP_TEST_BINARY
set -u
here=$(dirname "$0")
py=/usr/bin/python3
if ! "$py" -c 'import torch' 2>/dev/null; then
	echo "SKIP: Debian's python3-torch is not installed (deploy/install-deps.sh installs it)"
	exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$py" "$here/../models/every_op.py" "$tmp/every_op.bin" || exit 1
exec "$1" "$tmp/every_op.bin"
