#!/usr/bin/env bash
# Generate PyTorch's reference values, then check every op against them on
# the local target and over TCP against a real genie-runtime.
#   every_op.sh EVERY_OP_TEST_BINARY GENIE_RUNTIME_BINARY
set -u
here=$(dirname "$0")
py=/usr/bin/python3
if ! "$py" -c 'import torch' 2>/dev/null; then
	echo "SKIP: Debian's python3-torch is not installed (deploy/install-deps.sh installs it)"
	exit 77
fi
tmp=$(mktemp -d)
rt=
cleanup() {
	[ -n "$rt" ] && kill "$rt" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
"$py" "$here/../models/every_op.py" "$tmp/every_op.bin" || exit 1
"$1" "$tmp/every_op.bin" local || exit 1
[ $# -ge 2 ] || exit 0

"$2" --listen tcp://127.0.0.1:0 --port-file "$tmp/port" --backend cpu --log '*=warning' &
rt=$!
for _ in $(seq 100); do
	[ -s "$tmp/port" ] && break
	sleep 0.05
done
[ -s "$tmp/port" ] || { echo "genie-runtime did not start"; exit 1; }
"$1" "$tmp/every_op.bin" "tcp://127.0.0.1:$(cat "$tmp/port")" || exit 1
kill -TERM "$rt"
wait "$rt" || { echo "genie-runtime did not stop cleanly"; rt=; exit 1; }
rt=
