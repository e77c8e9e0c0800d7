#!/usr/bin/env bash
# Installs the Debian 12 packages Genie builds and tests with.
#
# Idempotent: when every package is already present it installs nothing and
# does not touch apt. Uses sudo when not run as root.
#
#   deploy/install-deps.sh          build + test dependencies
#   deploy/install-deps.sh --check  only report what is missing (exit 1 if any)
set -euo pipefail

PKGS=(
	# toolchain
	build-essential pkg-config meson ninja-build clang llvm
	# field dependencies (design.md, "Dependencies made for the field")
	libdpdk-dev
	libprotobuf-c-dev protobuf-c-compiler
	libcmocka-dev
	libibverbs-dev
	libsqlite3-dev
	libmicrohttpd-dev
	libssl-dev
	libxxhash-dev
	libdnnl-dev
	# onnx.proto, from which the ONNX loader is generated at build time
	libonnx-dev
	# test-time helpers
	# (torchvision and OpenBLAS: the benchmarks compare with a PyTorch that
	# does not run on the reference BLAS)
	python3 python3-numpy python3-torch python3-torchvision python3-onnx
	libopenblas0-pthread iproute2 procps
	# the openssl tool, which makes the TLS test's CA and certificates
	openssl
	# promtool, which checks the coordinator's /metrics exposition
	prometheus
)

missing=()
for p in "${PKGS[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done

if [ "${1:-}" = "--check" ]; then
	if [ ${#missing[@]} -eq 0 ]; then
		echo "install-deps: all ${#PKGS[@]} packages present"
		exit 0
	fi
	echo "install-deps: missing: ${missing[*]}"
	exit 1
fi

if [ ${#missing[@]} -eq 0 ]; then
	echo "install-deps: all ${#PKGS[@]} packages present, nothing to do"
	exit 0
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then
	if ! command -v sudo >/dev/null; then
		echo "install-deps: need root or sudo to install: ${missing[*]}" >&2
		exit 1
	fi
	SUDO=sudo
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "install-deps: done"
