#!/usr/bin/env bash
# Runs the GPU tests without a GPU: the cuda backend's host code and its
# kernels (kernels_*.cu, turned into plain C++ by prep.py) are built against
# an emulated device (emu_runtime.cpp and include/: a CUDA runtime whose
# device memory is host memory, kernels run block by block, threads of a
# block as host threads where they synchronise; cuBLAS gemms and a cuDNN
# convolution written as plain loops), under ASan and UBSan, and linked
# with the rest of gn_exec from a configured build.
#
#   tests/gpu/emu/run.sh [BUILD_DIR]   (default build, from the repo root)
#
# What this checks: the host-side logic (dispatch, shapes, strides, cuBLAS
# and cuDNN arguments, scratch and chunking, index errors) and the
# kernels' arithmetic and indexing, against the cpu backend. What it
# cannot: anything about the real device (launch limits, memory model,
# stream ordering, cuBLAS/cuDNN behaviour). It is a development aid, not
# a meson test, and no substitute for tests/gpu/run.sh on a GPU machine.
#
# EMU_NO_GPU=1 makes the emulated runtime report no device (the tests must
# skip); EMU_NO_CUDNN=1 makes cudnnCreate fail (conv2d cases skip);
# EMU_CFLAGS adds C flags (e.g. -DSDPA_SCRATCH_CAP=300 to force chunking).
set -euo pipefail

root=$(cd "$(dirname "$0")/../../.." && pwd)
emu="$root/tests/gpu/emu"
build=$(cd "${1:-build}" && pwd)
out="$build/gpu-emu"
cuda="$root/remote_runtime/backends/cuda"
san="-fsanitize=address,undefined -fno-omit-frame-pointer"
mkdir -p "$out"

inc_c=(-I"$emu/include" -I"$root/remote_runtime" -I"$root/common"
       -I"$root/client/include")
for k in elementwise shape nn reduce; do
	/usr/bin/python3 "$emu/prep.py" "$cuda/kernels_$k.cu" "$out/kernels_$k.cpp"
	g++ -std=c++17 -O1 -g $san -ffp-contract=off -Wall -Wextra \
		-Wno-unused-parameter -I"$emu/include" -I"$cuda" -I"$root/common" \
		-I"$root/client/include" -c "$out/kernels_$k.cpp" -o "$out/kernels_$k.o"
done
g++ -std=c++17 -O1 -g $san -I"$emu/include" -c "$emu/emu_runtime.cpp" \
	-o "$out/emu_runtime.o"
for f in "$cuda"/cuda_*.c; do
	gcc -std=gnu11 -O1 -g $san -D_GNU_SOURCE -DGN_HAVE_CUDNN=1 \
		${EMU_CFLAGS:-} -Wall -Wextra -Wshadow -Wmissing-prototypes \
		-Wno-missing-field-initializers -Werror "${inc_c[@]}" \
		-c "$f" -o "$out/backend_$(basename "$f" .c).o"
done
other=$(ls "$build"/remote_runtime/libgn_exec.a.p/*.o | grep -v backends_cuda_)
# The test's own link line from the build, with gn_exec replaced by the
# objects above and the CUDA libraries dropped.
libs=$(/usr/bin/python3 - "$build/build.ninja" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
m = re.search(r'^build tests/gpu/cuda_ops_test: .*?\n LINK_ARGS = (.*?)\n', text,
              re.M | re.S)
args = [a for a in m.group(1).split()
        if 'libgn_exec.a' not in a and not re.search(r'lib(cudart|cublas|cudnn)', a)
        and 'cuda' not in a]
print(' '.join(args))
PY
)
for t in cuda_backend_test cuda_ops_test; do
	gcc -std=gnu11 -O1 -g $san -D_GNU_SOURCE "${inc_c[@]}" \
		-c "$root/tests/gpu/$t.c" -o "$out/test_$t.o"
	(cd "$build" && g++ $san -o "$out/$t" "$out/test_$t.o" \
		"$out"/backend_*.o "$out"/kernels_*.o "$out/emu_runtime.o" \
		$other $libs)
done

export ASAN_OPTIONS=detect_leaks=0
rc=0
for t in cuda_backend_test cuda_ops_test; do
	echo "== $t (emulated device)"
	"$out/$t" || rc=1
done
exit $rc
