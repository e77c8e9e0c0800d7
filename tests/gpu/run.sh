#!/usr/bin/env bash
# Runs the GPU test suite on a machine with an NVIDIA GPU and the CUDA
# Toolkit (in /usr/local/cuda, or CUDA_HOME): installs the build
# dependencies, configures a build with the CUDA backend required, builds,
# and runs `meson test --suite gpu`.
#
#   tests/gpu/run.sh [BUILD_DIR]     (default build-gpu, from the repo root)
#
# Exits non-zero when any step fails, and also when the GPU tests were
# skipped: on a GPU machine a skip means the GPU was not usable, which is
# a failure of the run, not a pass.
set -euo pipefail

cd "$(dirname "$0")/../.."
build=${1:-build-gpu}
cuda_home=${CUDA_HOME:-/usr/local/cuda}

echo "== nvidia-smi"
if command -v nvidia-smi >/dev/null; then
	nvidia-smi || echo "run.sh: nvidia-smi failed (rc $?)"
else
	echo "run.sh: nvidia-smi not found; the test will say whether a GPU is visible"
fi

echo "== dependencies"
bash deploy/install-deps.sh

echo "== configure $build"
if [ -d "$build/meson-private" ]; then
	meson configure "$build" -Dcuda=enabled -Dcudatoolkit_dir="$cuda_home"
else
	meson setup "$build" -Dcuda=enabled -Dcudatoolkit_dir="$cuda_home"
fi

echo "== build"
ninja -C "$build"

echo "== gpu tests"
meson test -C "$build" --suite gpu -v --print-errorlogs

log="$build/meson-logs/testlog.json"
if [ -f "$log" ] && grep -q '"result": "SKIP"' "$log"; then
	echo "run.sh: GPU tests were skipped: no usable GPU on this machine" >&2
	exit 1
fi
echo "run.sh: GPU tests passed"
