#!/usr/bin/python3
"""Reference values for tests/integration/every_op_test.c.

Builds, with PyTorch (Debian's python3-torch) and a fixed seed, the inputs
and the expected result of every op in docs/OPS.md that PyTorch can compute
the same way, and writes them to one file of records:

    u32 name length, name bytes, u32 dtype (genie numbering), u32 ndim,
    i64 dims[ndim], raw little-endian data

The C test records the same ops through libgenie on the local target and
compares each named result. Usage: every_op.py OUT_FILE
"""
import math
import struct
import sys

import torch
import torch.nn.functional as F

DTYPES = {torch.float32: 1, torch.float16: 2, torch.int64: 4, torch.int32: 5,
          torch.bool: 8}

torch.manual_seed(1234)
records = []


def put(name, t):
    t = t.detach().contiguous()
    records.append((name, t))
    return t


def rnd(*shape):
    return torch.randn(*shape, dtype=torch.float32)


# Inputs (names starting with "in_").
x = put("in_x", rnd(2, 3, 8, 8))
wc = put("in_wc", rnd(4, 3, 3, 3) * 0.3)
bc = put("in_bc", rnd(4))
xg = put("in_xg", rnd(1, 4, 9, 9))
wg = put("in_wg", rnd(6, 2, 3, 3) * 0.3)
mean = put("in_mean", rnd(4) * 0.1)
var = put("in_var", torch.rand(4) + 0.5)
gamma = put("in_gamma", rnd(4))
beta = put("in_beta", rnd(4))
a = put("in_a", rnd(2, 3, 4))
b = put("in_b", rnd(4))
m1 = put("in_m1", rnd(2, 3, 4))
m2 = put("in_m2", rnd(4, 5))
v4 = put("in_v4", rnd(4))
wl = put("in_wl", rnd(6, 4))
bl = put("in_bl", rnd(6))
ln_g = put("in_ln_g", rnd(8))
ln_b = put("in_ln_b", rnd(8))
s = put("in_s", rnd(2, 3, 8))
q = put("in_q", rnd(2, 2, 5, 8))
k = put("in_k", rnd(2, 2, 6, 8))
v = put("in_v", rnd(2, 2, 6, 8))
mask = put("in_mask", torch.rand(5, 6) > 0.3)
table = put("in_table", rnd(10, 6))
idx = put("in_idx", torch.tensor([[1, 3, 9], [0, 0, 7]], dtype=torch.int64))
gidx = put("in_gidx", torch.tensor([2, 0, -1], dtype=torch.int64))

# Convolution, pooling, normalisation.
conv = put("conv", F.conv2d(x, wc, bc, stride=1, padding=1))
put("conv_grouped", F.conv2d(xg, wg, None, stride=2, padding=1, dilation=2,
                             groups=2))
bn = put("batchnorm", F.batch_norm(conv, mean, var, gamma, beta, False, 0.0,
                                   1e-5))
put("maxpool", F.max_pool2d(bn, 3, 2, 1))
put("avgpool", F.avg_pool2d(bn, 3, 2, 1, ceil_mode=True,
                            count_include_pad=False))
put("avgpool_incl", F.avg_pool2d(bn, 2, 2, 0))
put("global_avgpool", F.adaptive_avg_pool2d(bn, 1))

# Elementwise.
put("relu", F.relu(a))
put("gelu", F.gelu(a))
put("gelu_tanh", F.gelu(a, approximate="tanh"))
put("silu", F.silu(a))
put("sigmoid", torch.sigmoid(a))
put("tanh", torch.tanh(a))
put("hardswish", F.hardswish(a))
put("hardsigmoid", F.hardsigmoid(a))
put("neg", -a)
put("abs", a.abs())
put("exp", a.exp())
put("log", (a.abs() + 1).log())
put("sqrt", a.abs().sqrt())
put("rsqrt", (a.abs() + 1).rsqrt())
put("erf", torch.erf(a))
put("clip", a.clamp(-0.5, 0.7))
put("add", a + b)
put("sub", a - b)
put("mul", a * b)
put("div", a / (b.abs() + 1))
put("pow", (a.abs() + 0.5).pow(b))
put("maximum", torch.maximum(a, b))
put("minimum", torch.minimum(a, b))
put("where_gt", torch.where(a > b, a, b))
put("eq_count", ((a * 0 + 1) == torch.ones(4)).float().sum())
put("cast_f16", a.half().float())

# Linear algebra and attention.
put("matmul", m1 @ m2)
put("matmul_vec", m1 @ v4)
put("linear", F.linear(a, wl, bl))
put("layernorm", F.layer_norm(s, (8,), ln_g, ln_b, 1e-5))
put("softmax", F.softmax(s, 1))
put("log_softmax", F.log_softmax(s, -1))


def sdpa(q, k, v, mask=None, causal=False):
    sc = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if causal:
        keep = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).tril()
        sc = sc.masked_fill(~keep, float("-inf"))
    if mask is not None:
        sc = sc.masked_fill(~mask, float("-inf"))
    return torch.softmax(sc, -1) @ v


put("sdpa_causal", sdpa(q, k, v, causal=True))
put("sdpa_mask", sdpa(q, k, v, mask=mask))

# Reductions and indexing.
put("reduce_sum", a.sum(dim=(0, 2)))
put("reduce_mean", a.mean(dim=1, keepdim=True))
put("reduce_max", a.amax(dim=-1))
put("argmax", a.argmax(dim=2))
put("embedding", F.embedding(idx, table))
put("embedding_bag", F.embedding_bag(idx, table, mode="mean"))
put("gather", torch.index_select(a, 1, gidx % 3))

# Shapes.
put("reshape", a.reshape(4, -1))
put("permute", a.permute(2, 0, 1))
put("transpose", a.transpose(0, 2))
put("slice", a[:, 1:, ::2])
put("expand", b.expand(3, 4))
put("squeeze_unsqueeze", a.unsqueeze(1).squeeze(1))
put("concat", torch.cat([a, a * 2], dim=1))
put("split1", torch.split(a, [1, 3], dim=2)[1])
put("arange", torch.arange(0, 10, dtype=torch.float32) * 0.5 + 1)
put("zeros_ones", torch.zeros(2, 3) + torch.ones(3))

with open(sys.argv[1], "wb") as f:
    for name, t in records:
        nb = name.encode()
        f.write(struct.pack("<I", len(nb)) + nb)
        f.write(struct.pack("<II", DTYPES[t.dtype], t.dim()))
        f.write(struct.pack("<%dq" % t.dim(), *t.shape))
        f.write(t.numpy().tobytes())
print("every_op.py: wrote %d records to %s" % (len(records), sys.argv[1]))
