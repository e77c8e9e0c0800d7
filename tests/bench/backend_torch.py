#!/usr/bin/python3
"""PyTorch side of tests/bench/backend: same weights, same input, same threads.

Run by the `backend` benchmark, not by hand (though it works by hand):

    backend_torch.py --check
    backend_torch.py [--omp-wait=default|passive] WEIGHTS WORKLOAD THREADS
                     ITERS [WARMUP [OUT]]

WEIGHTS is the file the C program wrote: raw little-endian f32, the input
first, then every parameter in state_dict order (torchvision's resnet18
without num_batches_tracked; TRANSFORMER_PARAMS below for the transformer
block). WORKLOAD is resnet18_b1, resnet18_b8 or transformer_block. The script
times ITERS forward passes after WARMUP (default 2) under
torch.inference_mode(), writes the output of the last one to OUT (raw f32)
when given, and prints one line:

    RESULT median_ms=... min_ms=... iters=... threads=... torch=... blas=...
           omp_wait=... model=...

--omp-wait=passive sets OMP_WAIT_POLICY=passive before torch loads. On a
small machine GNU OpenMP's spinning workers (elementwise ops, oneDNN) and
OpenBLAS's own pthreads (linear, matmul) starve each other; which policy is
faster depends on the model, so the benchmark runs both and keeps the faster.

Exit 77 when torch cannot be imported (the benchmark then skips), 2 on bad
arguments, 1 when the weights file does not fit the model.
"""

import os
import statistics
import sys
import time

D_MODEL, HEADS, MLP, SEQ = 768, 12, 3072, 128

# Order and shapes of the transformer block's parameters in the weights file
# (backend_models.c, init_transformer()).
TRANSFORMER_PARAMS = [
    ("ln1_w", (D_MODEL,)), ("ln1_b", (D_MODEL,)),
    ("q_w", (D_MODEL, D_MODEL)), ("q_b", (D_MODEL,)),
    ("k_w", (D_MODEL, D_MODEL)), ("k_b", (D_MODEL,)),
    ("v_w", (D_MODEL, D_MODEL)), ("v_b", (D_MODEL,)),
    ("o_w", (D_MODEL, D_MODEL)), ("o_b", (D_MODEL,)),
    ("ln2_w", (D_MODEL,)), ("ln2_b", (D_MODEL,)),
    ("fc1_w", (MLP, D_MODEL)), ("fc1_b", (MLP,)),
    ("fc2_w", (D_MODEL, MLP)), ("fc2_b", (D_MODEL,)),
]


def blas_library():
    """Which libblas.so.3 torch resolved (Debian switches it by alternatives).

    Debian's torch calls a generic BLAS for linear/matmul: the reference
    netlib one unless OpenBLAS (libopenblas0-pthread) or BLIS is installed,
    which changes the transformer figure by an order of magnitude.
    """
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1]
                if "libblas.so" in path or "libopenblas" in path:
                    real = os.path.realpath(path)
                    if "openblas" in real:
                        return "openblas"
                    if "blis" in real:
                        return "blis"
                    if "mkl" in real:
                        return "mkl"
                    return "netlib-reference"
    except OSError:
        pass
    return "unknown"


def import_torch():
    try:
        import torch  # noqa: F401
    except ImportError as e:
        print(f"backend_torch.py: cannot import torch with {sys.executable}: "
              f"{e}", file=sys.stderr)
        sys.exit(77)
    return torch


def resnet18(torch):
    """torchvision's resnet18, or the same layers under the same names."""
    try:
        import torchvision
        return torchvision.models.resnet18(), "torchvision"
    except ImportError:
        pass
    nn = torch.nn

    class BasicBlock(nn.Module):
        def __init__(self, inp, planes, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(inp, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = None
            if stride != 1 or inp != planes:
                self.downsample = nn.Sequential(
                    nn.Conv2d(inp, planes, 1, stride, bias=False),
                    nn.BatchNorm2d(planes))

        def forward(self, x):
            idt = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return self.relu(out + idt)

    class ResNet18(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            inp = 64
            for i, planes in enumerate((64, 128, 256, 512)):
                stride = 1 if i == 0 else 2
                setattr(self, f"layer{i + 1}", nn.Sequential(
                    BasicBlock(inp, planes, stride),
                    BasicBlock(planes, planes, 1)))
                inp = planes
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(512, 1000)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return ResNet18(), "resnet18 replica (torchvision not installed)"


def transformer_block(torch, p):
    F = torch.nn.functional

    def forward(x):
        h = F.layer_norm(x, (D_MODEL,), p["ln1_w"], p["ln1_b"], 1e-5)

        def heads(t):
            return t.reshape(1, SEQ, HEADS, D_MODEL // HEADS).permute(0, 2, 1, 3)

        q = heads(F.linear(h, p["q_w"], p["q_b"]))
        k = heads(F.linear(h, p["k_w"], p["k_b"]))
        v = heads(F.linear(h, p["v_w"], p["v_b"]))
        s = q @ k.transpose(-2, -1) * (1.0 / (D_MODEL // HEADS) ** 0.5)
        a = (F.softmax(s, dim=-1) @ v).permute(0, 2, 1, 3)
        x = x + F.linear(a.reshape(1, SEQ, D_MODEL), p["o_w"], p["o_b"])
        h = F.layer_norm(x, (D_MODEL,), p["ln2_w"], p["ln2_b"], 1e-5)
        h = F.gelu(F.linear(h, p["fc1_w"], p["fc1_b"]))  # erf form
        return x + F.linear(h, p["fc2_w"], p["fc2_b"])

    return forward


def main(argv):
    if len(argv) == 2 and argv[1] == "--check":
        torch = import_torch()
        print(f"torch {torch.__version__} blas={blas_library()}")
        return 0
    omp_wait = "default"
    if len(argv) > 1 and argv[1].startswith("--omp-wait="):
        omp_wait = argv[1].split("=", 1)[1]
        argv = argv[:1] + argv[2:]
        if omp_wait not in ("default", "passive"):
            print(f"backend_torch.py: --omp-wait wants default or passive, "
                  f"got {omp_wait!r}", file=sys.stderr)
            return 2
    if len(argv) < 5 or len(argv) > 7:
        print(__doc__, file=sys.stderr)
        return 2
    path, workload = argv[1], argv[2]
    threads, iters = int(argv[3]), int(argv[4])
    warmup = int(argv[5]) if len(argv) > 5 else 2
    out_path = argv[6] if len(argv) > 6 else None
    # OpenBLAS and OpenMP read their thread counts when they load.
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["OPENBLAS_NUM_THREADS"] = str(threads)
    if omp_wait == "passive":
        os.environ["OMP_WAIT_POLICY"] = "passive"
    torch = import_torch()
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)

    import numpy as np
    flat = torch.from_numpy(np.fromfile(path, dtype="<f4"))
    off = 0

    def take(shape):
        nonlocal off
        n = 1
        for d in shape:
            n *= d
        if off + n > flat.numel():
            raise SystemExit(f"backend_torch.py: {path} holds {flat.numel()} "
                             f"floats; {workload} needs more")
        t = flat[off:off + n].reshape(shape)
        off += n
        return t

    if workload in ("resnet18_b1", "resnet18_b8"):
        batch = 1 if workload == "resnet18_b1" else 8
        x = take((batch, 3, 224, 224)).clone()
        model, model_name = resnet18(torch)
        sd = model.state_dict()
        for name, t in sd.items():
            if name.endswith("num_batches_tracked"):
                continue
            t.copy_(take(tuple(t.shape)))
        model.load_state_dict(sd)
        model.eval()
        fwd = model
    elif workload == "transformer_block":
        x = take((1, SEQ, D_MODEL)).clone()
        params = {name: take(shape).clone()
                  for name, shape in TRANSFORMER_PARAMS}
        fwd = transformer_block(torch, params)
        model_name = "nn.functional block"
    else:
        print(f"backend_torch.py: unknown workload {workload!r}",
              file=sys.stderr)
        return 2
    if off != flat.numel():
        print(f"backend_torch.py: {path} holds {flat.numel()} floats, "
              f"{workload} reads {off}", file=sys.stderr)
        return 1

    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            y = fwd(x)
        for _ in range(iters):
            t0 = time.perf_counter()
            y = fwd(x)
            times.append((time.perf_counter() - t0) * 1e3)
    if out_path:
        y.contiguous().numpy().astype("<f4").tofile(out_path)
    print(f"RESULT median_ms={statistics.median(times):.3f} "
          f"min_ms={min(times):.3f} iters={iters} "
          f"threads={torch.get_num_threads()} torch={torch.__version__} "
          f"blas={blas_library()} omp_wait={omp_wait} "
          f"model={model_name.replace(' ', '_')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
