#!/bin/sh
# Run a libFuzzer binary from a seed corpus the fixed-seed driver writes.
#   run_fuzzer.sh DRIVER FUZZER [libFuzzer args...]
set -e
driver=$1
fuzzer=$2
shift 2
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
"$driver" --write-seeds "$corpus"
"$fuzzer" "$@" "$corpus"
