#!/usr/bin/python3
"""Model zoo for the ONNX loader and genie-run: tiny random-weight stand-ins of
real architectures, exported from PyTorch to ONNX with their reference
inputs and PyTorch's outputs.

Usage: /usr/bin/python3 tests/models/make_models.py OUTDIR [--only NAME]

Writes, per model, OUTDIR/<name>/model.onnx, OUTDIR/<name>/inputs/<input>.npy,
OUTDIR/<name>/expected/<output>.npy, and OUTDIR/manifest.json listing every
model (with --only, the entry of that model is added to / replaced in an
existing manifest). Everything is seeded: a second run writes the same bytes.
It fails if a graph uses an op outside the loader's list (SUPPORTED_OPS), and
it runs each graph through a small float32 numpy interpreter of that list,
which must match PyTorch within the manifest's tolerances.
Needs Debian's python3-torch (1.13), python3-torchvision and python3-onnx.
"""
import argparse
import json
import math
import os
import re
import sys
import time

import numpy as np
import onnx
import onnx.numpy_helper
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

# The ONNX ops the C loader maps onto Genie (opsets 11-17).
SUPPORTED_OPS = {
    "Conv", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Relu", "Sigmoid",
    "Tanh", "Erf", "Gelu", "HardSwish", "HardSigmoid", "Clip", "MaxPool",
    "AveragePool", "GlobalAveragePool", "BatchNormalization",
    "LayerNormalization", "Softmax", "ReduceMean", "ReduceSum", "Reshape",
    "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Concat", "Split", "Slice",
    "Gather", "Shape", "Expand", "Where", "Cast", "Pow", "Sqrt", "Equal",
    "ConstantOfShape", "Range", "Constant", "Identity", "Dropout",
}
TOLERANCES = {"rtol": 1e-4, "atol": 1e-5}
MODEL_ORDER = ["resnet18", "mobilenet_v2", "gpt2_decoder", "gpt2_decoder_kv",
               "bert_encoder", "dlrm", "clip_dual"]

ONNX_DTYPE_NAMES = {onnx.TensorProto.FLOAT: "float32",
                    onnx.TensorProto.FLOAT16: "float16",
                    onnx.TensorProto.INT64: "int64",
                    onnx.TensorProto.INT32: "int32",
                    onnx.TensorProto.BOOL: "bool",
                    onnx.TensorProto.DOUBLE: "float64",
                    onnx.TensorProto.INT8: "int8",
                    onnx.TensorProto.UINT8: "uint8"}


class ZooError(Exception):
    pass


def seeded_rng(seed):
    return np.random.RandomState(seed)


def randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def randint(rng, high, *shape):
    return rng.randint(0, high, size=shape).astype(np.int64)


# ---------------------------------------------------------------------------
# Shared transformer pieces (plain torch, static shapes).
# ---------------------------------------------------------------------------

def gelu_erf(x):
    return F.gelu(x)  # erf form; opset <= 17 exports it as Div/Erf/Add/Mul


def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)  # OpenAI CLIP's activation


def split_heads(x, n_head):
    # [B, T, C] -> [B, H, T, D]
    b, t, c = x.shape
    return x.reshape(b, t, n_head, c // n_head).transpose(1, 2)


def merge_heads(x):
    # [B, H, T, D] -> [B, T, C]
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)


def attention_probs(q, k, scale, additive=None, masked=None, fill=-1e4):
    att = torch.matmul(q, k.transpose(-1, -2)) * scale
    if masked is not None:
        att = att.masked_fill(masked, fill)  # -> Where
    if additive is not None:
        att = att + additive
    return torch.softmax(att, dim=-1)


class SelfAttention(nn.Module):
    def __init__(self, width, n_head):
        super().__init__()
        self.n_head = n_head
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.scale = 1.0 / math.sqrt(width // n_head)

    def qkv_heads(self, x):
        q, k, v = self.qkv(x).split(x.shape[-1], dim=-1)
        return (split_heads(q, self.n_head), split_heads(k, self.n_head),
                split_heads(v, self.n_head))

    def attend(self, q, k, v, additive=None, masked=None):
        p = attention_probs(q, k, self.scale, additive, masked)
        return self.proj(merge_heads(torch.matmul(p, v)))

    def forward(self, x, additive=None, masked=None):
        q, k, v = self.qkv_heads(x)
        return self.attend(q, k, v, additive, masked)


class MLP(nn.Module):
    def __init__(self, width, hidden, act):
        super().__init__()
        self.fc = nn.Linear(width, hidden)
        self.out = nn.Linear(hidden, width)
        self.act = act

    def forward(self, x):
        return self.out(self.act(self.fc(x)))


class PreLNBlock(nn.Module):
    def __init__(self, width, n_head, hidden, act=gelu_erf, eps=1e-5):
        super().__init__()
        self.ln1 = nn.LayerNorm(width, eps=eps)
        self.attn = SelfAttention(width, n_head)
        self.ln2 = nn.LayerNorm(width, eps=eps)
        self.mlp = MLP(width, hidden, act)

    def forward(self, x, additive=None, masked=None):
        x = x + self.attn(self.ln1(x), additive, masked)
        return x + self.mlp(self.ln2(x))


# ---------------------------------------------------------------------------
# GPT-2 style decoder (full sequence and one KV-cache step, same weights).
# ---------------------------------------------------------------------------

GPT_VOCAB, GPT_CTX, GPT_WIDTH, GPT_HEADS, GPT_LAYERS = 256, 32, 128, 4, 2
GPT_SEQ = 16


class GPT2(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(GPT_VOCAB, GPT_WIDTH)
        self.wpe = nn.Embedding(GPT_CTX, GPT_WIDTH)
        # GPT-2's embedding init (std 0.02 / 0.01): keeps the tied-head
        # logits O(1) so absolute tolerances mean something.
        nn.init.normal_(self.wte.weight, std=0.02)
        nn.init.normal_(self.wpe.weight, std=0.01)
        self.blocks = nn.ModuleList(
            PreLNBlock(GPT_WIDTH, GPT_HEADS, 4 * GPT_WIDTH)
            for _ in range(GPT_LAYERS))
        self.ln_f = nn.LayerNorm(GPT_WIDTH)
        # True above the diagonal: key j > query i is masked (constant).
        self.register_buffer(
            "future", torch.triu(torch.ones(GPT_CTX, GPT_CTX,
                                            dtype=torch.bool), 1),
            persistent=False)

    def head(self, x):
        # LM head tied to the token embedding.
        return torch.matmul(self.ln_f(x), self.wte.weight.t())

    def run(self, input_ids):
        """Full causal pass; returns logits and per-layer (k, v) [B,H,T,D]."""
        t = input_ids.shape[1]
        x = self.wte(input_ids) + self.wpe.weight[:t]
        masked = self.future[:t, :t]
        keys, values = [], []
        for blk in self.blocks:
            q, k, v = blk.attn.qkv_heads(blk.ln1(x))
            keys.append(k)
            values.append(v)
            x = x + blk.attn.attend(q, k, v, masked=masked)
            x = x + blk.mlp(blk.ln2(x))
        return self.head(x), keys, values

    def forward(self, input_ids):
        return self.run(input_ids)[0]


class GPT2Step(nn.Module):
    """One decoding step over a real KV cache; shares GPT2's modules."""

    def __init__(self, gpt, past_len):
        super().__init__()
        self.gpt = gpt
        self.past_len = past_len

    def forward(self, input_ids, past_keys, past_values):
        g = self.gpt
        pos = self.past_len
        x = g.wte(input_ids) + g.wpe.weight[pos:pos + 1]
        new_keys, new_values = [], []
        for i, blk in enumerate(g.blocks):
            q, k, v = blk.attn.qkv_heads(blk.ln1(x))
            k = torch.cat([past_keys[i], k], dim=2)
            v = torch.cat([past_values[i], v], dim=2)
            new_keys.append(k)
            new_values.append(v)
            x = x + blk.attn.attend(q, k, v)  # one query sees every key
            x = x + blk.mlp(blk.ln2(x))
        return (g.head(x), torch.stack(new_keys, 0),
                torch.stack(new_values, 0))


_GPT = {}


def gpt2_shared():
    """The gpt2_decoder weights and inputs, built once for both models."""
    if not _GPT:
        torch.manual_seed(3)
        gpt = randomize_norms(GPT2(), 3).eval()
        ids = randint(seeded_rng(3), GPT_VOCAB, 1, GPT_SEQ)
        _GPT.update(model=gpt, ids=ids)
    return _GPT["model"], _GPT["ids"]


def make_gpt2_decoder():
    gpt, ids = gpt2_shared()
    return dict(model=gpt, opset=17, inputs={"input_ids": ids},
                outputs=["logits"])


def make_gpt2_decoder_kv():
    gpt, ids = gpt2_shared()
    past = GPT_SEQ - 1
    with torch.no_grad():
        full_logits = gpt(torch.from_numpy(ids))
        _, keys, values = gpt.run(torch.from_numpy(ids[:, :past]))
    past_keys = torch.stack(keys, 0).numpy().copy()
    past_values = torch.stack(values, 0).numpy().copy()
    step = GPT2Step(gpt, past).eval()
    inputs = {"input_ids": np.ascontiguousarray(ids[:, past:]),
              "past_keys": past_keys, "past_values": past_values}

    def check(expected):
        diff = np.abs(expected["logits"][0, 0] - full_logits[0, -1].numpy())
        if not diff.max() <= 1e-5:
            raise ZooError("gpt2_decoder_kv: step logits differ from the "
                           "last position of gpt2_decoder by %g" % diff.max())
        if not np.array_equal(expected["present_keys"][:, :, :, :past],
                              past_keys):
            raise ZooError("gpt2_decoder_kv: present_keys lost the cache")
        return "kv-step logits == full logits[-1] (max diff %.2g)" % diff.max()

    return dict(model=step, opset=17, inputs=inputs,
                outputs=["logits", "present_keys", "present_values"],
                check=check)


# ---------------------------------------------------------------------------
# BERT style encoder (post-LN, additive padding mask, pooler).
# ---------------------------------------------------------------------------

BERT_VOCAB, BERT_CTX, BERT_WIDTH, BERT_HEADS, BERT_LAYERS = 256, 32, 128, 4, 2


class PostLNLayer(nn.Module):
    def __init__(self, width, n_head, hidden):
        super().__init__()
        self.attn = SelfAttention(width, n_head)
        self.ln1 = nn.LayerNorm(width, eps=1e-12)
        self.mlp = MLP(width, hidden, gelu_erf)
        self.ln2 = nn.LayerNorm(width, eps=1e-12)

    def forward(self, x, additive):
        x = self.ln1(x + self.attn(x, additive=additive))
        return self.ln2(x + self.mlp(x))


class Bert(nn.Module):
    def __init__(self, seq):
        super().__init__()
        self.word = nn.Embedding(BERT_VOCAB, BERT_WIDTH)
        self.pos = nn.Embedding(BERT_CTX, BERT_WIDTH)
        self.token_type = nn.Embedding(2, BERT_WIDTH)
        self.ln = nn.LayerNorm(BERT_WIDTH, eps=1e-12)
        self.layers = nn.ModuleList(
            PostLNLayer(BERT_WIDTH, BERT_HEADS, 4 * BERT_WIDTH)
            for _ in range(BERT_LAYERS))
        self.pool = nn.Linear(BERT_WIDTH, BERT_WIDTH)
        # Two segments (sentence A / sentence B); a constant, not an input.
        types = torch.zeros(1, seq, dtype=torch.int64)
        types[:, seq // 2:] = 1
        self.register_buffer("token_types", types, persistent=False)

    def forward(self, input_ids, attention_mask):
        t = input_ids.shape[1]
        x = (self.word(input_ids) + self.pos.weight[:t]
             + self.token_type(self.token_types))
        x = self.ln(x)
        m = attention_mask[:, None, None, :].to(torch.float32)
        additive = (1.0 - m) * -10000.0  # [B,1,1,T], broadcast over heads
        for layer in self.layers:
            x = layer(x, additive)
        return x, torch.tanh(self.pool(x[:, 0]))


def make_bert_encoder():
    torch.manual_seed(5)
    model = randomize_norms(Bert(12), 5).eval()
    rng = seeded_rng(5)
    ids = randint(rng, BERT_VOCAB, 2, 12)
    mask = np.ones((2, 12), dtype=np.int64)
    mask[1, 8:] = 0  # second sequence has 4 padding positions
    ids[1, 8:] = 0
    return dict(model=model, opset=14,
                inputs={"input_ids": ids, "attention_mask": mask},
                outputs=["last_hidden_state", "pooled"])


# ---------------------------------------------------------------------------
# DLRM style recommender.
# ---------------------------------------------------------------------------

class DLRM(nn.Module):
    TABLES = (100, 50, 80)
    DIM = 16

    def __init__(self):
        super().__init__()
        self.bottom = nn.Sequential(nn.Linear(13, 64), nn.ReLU(),
                                    nn.Linear(64, self.DIM), nn.ReLU())
        self.tables = nn.ModuleList(nn.Embedding(n, self.DIM)
                                    for n in self.TABLES)
        n = len(self.TABLES) + 1
        pairs = n * (n - 1) // 2
        self.top = nn.Sequential(nn.Linear(pairs + self.DIM, 64), nn.ReLU(),
                                 nn.Linear(64, 1))
        # Flat indices of the strictly-lower triangle of an n x n matrix.
        lower = [i * n + j for i in range(n) for j in range(i)]
        self.register_buffer("lower", torch.tensor(lower, dtype=torch.int64),
                             persistent=False)
        self.n = n

    def forward(self, dense, sparse_0, sparse_1, sparse_2):
        b = dense.shape[0]
        bottom = self.bottom(dense)  # [B, 16]
        # Fixed-size bags: lookup then sum over the bag axis (Gather +
        # ReduceSum, no EmbeddingBag / Loop).
        bags = [t(s).sum(dim=1) for t, s in
                zip(self.tables, (sparse_0, sparse_1, sparse_2))]
        feats = torch.stack([bottom] + bags, dim=1)  # [B, 4, 16]
        z = torch.matmul(feats, feats.transpose(1, 2))  # [B, 4, 4]
        inter = z.reshape(b, self.n * self.n).index_select(1, self.lower)
        return torch.sigmoid(self.top(torch.cat([bottom, inter], dim=1)))


def make_dlrm():
    torch.manual_seed(6)
    model = DLRM().eval()
    rng = seeded_rng(6)
    inputs = {"dense": randn(rng, 4, 13)}
    for i, n in enumerate(DLRM.TABLES):
        inputs["sparse_%d" % i] = randint(rng, n, 4, 3)
    return dict(model=model, opset=13, inputs=inputs, outputs=["prob"])


# ---------------------------------------------------------------------------
# CLIP style dual encoder.
# ---------------------------------------------------------------------------

CLIP_WIDTH, CLIP_HEADS, CLIP_LAYERS, CLIP_EMBED = 64, 4, 2, 32
CLIP_VOCAB, CLIP_TEXT_LEN, CLIP_PATCH, CLIP_IMAGE = 128, 8, 8, 32


def l2_normalize(x):
    # Not torch.norm / F.normalize: those export as ReduceL2.
    return x / torch.sqrt((x * x).sum(dim=-1, keepdim=True))


class VisionTower(nn.Module):
    def __init__(self):
        super().__init__()
        w = CLIP_WIDTH
        n_patch = (CLIP_IMAGE // CLIP_PATCH) ** 2
        self.patch = nn.Conv2d(3, w, CLIP_PATCH, stride=CLIP_PATCH,
                               bias=False)
        self.cls = nn.Parameter(torch.randn(w) * w ** -0.5)
        self.pos = nn.Parameter(torch.randn(n_patch + 1, w) * w ** -0.5)
        self.ln_pre = nn.LayerNorm(w)
        self.blocks = nn.ModuleList(PreLNBlock(w, CLIP_HEADS, 4 * w,
                                               act=quick_gelu)
                                    for _ in range(CLIP_LAYERS))
        self.ln_post = nn.LayerNorm(w)
        self.proj = nn.Parameter(torch.randn(w, CLIP_EMBED) * w ** -0.5)

    def forward(self, pixels):
        x = self.patch(pixels)  # [B, W, 4, 4]
        b, w = x.shape[0], x.shape[1]
        x = x.reshape(b, w, -1).transpose(1, 2)  # [B, 16, W]
        cls = self.cls.reshape(1, 1, w).expand(b, 1, w)
        x = torch.cat([cls, x], dim=1) + self.pos
        x = self.ln_pre(x)
        for blk in self.blocks:
            x = blk(x)
        return torch.matmul(self.ln_post(x[:, 0]), self.proj)


class TextTower(nn.Module):
    def __init__(self):
        super().__init__()
        w, t = CLIP_WIDTH, CLIP_TEXT_LEN
        self.tok = nn.Embedding(CLIP_VOCAB, w)
        self.pos = nn.Parameter(torch.randn(t, w) * 0.01)
        self.blocks = nn.ModuleList(PreLNBlock(w, CLIP_HEADS, 4 * w,
                                               act=quick_gelu)
                                    for _ in range(CLIP_LAYERS))
        self.ln_final = nn.LayerNorm(w)
        self.proj = nn.Parameter(torch.randn(w, CLIP_EMBED) * w ** -0.5)
        # Additive causal mask as in OpenAI CLIP: -inf above the diagonal.
        self.register_buffer(
            "causal", torch.full((t, t), float("-inf")).triu(1),
            persistent=False)

    def forward(self, input_ids):
        x = self.tok(input_ids) + self.pos
        for blk in self.blocks:
            x = blk(x, additive=self.causal)
        # Fixed last position (the "EOT" token), not argmax.
        x = self.ln_final(x[:, CLIP_TEXT_LEN - 1])
        return torch.matmul(x, self.proj)


class Clip(nn.Module):
    def __init__(self):
        super().__init__()
        self.visual = VisionTower()
        self.text = TextTower()

    def forward(self, pixel_values, input_ids):
        img = l2_normalize(self.visual(pixel_values))
        txt = l2_normalize(self.text(input_ids))
        return img, txt, 100.0 * torch.matmul(img, txt.t())


def make_clip_dual():
    torch.manual_seed(7)
    model = randomize_norms(Clip(), 7).eval()
    rng = seeded_rng(7)
    return dict(model=model, opset=17,
                inputs={"pixel_values": randn(rng, 1, 3, CLIP_IMAGE,
                                              CLIP_IMAGE),
                        "input_ids": randint(rng, CLIP_VOCAB, 2,
                                             CLIP_TEXT_LEN)},
                outputs=["image_embeds", "text_embeds", "logits_per_image"])


# ---------------------------------------------------------------------------
# torchvision CNNs.
# ---------------------------------------------------------------------------

def randomize_norms(model, seed):
    """Non-trivial norm parameters (and BN statistics): with the default
    gamma=1, beta=0 a loader that ignored them would still pass, and the
    exporter would fold the identical tensors into Identity aliases."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):
                w = m.weight
                w.copy_(0.75 + 0.5 * torch.rand(w.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(w.shape, generator=g))
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
    return model


def make_resnet18():
    torch.manual_seed(1)
    model = torchvision.models.resnet18(weights=None, num_classes=10)
    randomize_norms(model, 1)
    rng = seeded_rng(1)
    return dict(model=model.eval(), opset=11,
                inputs={"input": randn(rng, 1, 3, 64, 64)},
                outputs=["logits"])


def make_mobilenet_v2():
    torch.manual_seed(2)
    model = torchvision.models.mobilenet_v2(weights=None, num_classes=10)
    randomize_norms(model, 2)
    rng = seeded_rng(2)
    return dict(model=model.eval(), opset=13,
                inputs={"input": randn(rng, 1, 3, 64, 64)},
                outputs=["logits"])


MAKERS = {
    "resnet18": make_resnet18,
    "mobilenet_v2": make_mobilenet_v2,
    "gpt2_decoder": make_gpt2_decoder,
    "gpt2_decoder_kv": make_gpt2_decoder_kv,
    "bert_encoder": make_bert_encoder,
    "dlrm": make_dlrm,
    "clip_dual": make_clip_dual,
}


# ---------------------------------------------------------------------------
# A small numpy interpreter for SUPPORTED_OPS, in float32 like the C loader.
# It checks that each exported graph (not just the torch module) gives the
# expected outputs within the manifest's tolerances; onnxruntime is not
# available here.
# ---------------------------------------------------------------------------

def _attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a)
            for a in node.attribute}


def _axes_arg(node, ins, at, opset, since):
    """axes from the attribute (older opsets) or the optional input."""
    if opset >= since:
        return (None if len(ins) < 2 or ins[1] is None
                else [int(v) for v in ins[1].reshape(-1)])
    return at.get("axes")


def _pool_pads(at, nd):
    pads = list(at.get("pads", [0] * (2 * nd)))
    if at.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise ZooError("auto_pad is not supported by the checker")
    return pads


def _windows(x, kernel, strides, pads, dilations, pad_value, ceil=False):
    """[N,C,H,W] -> [N,C,OH,OW,KH,KW] sliding windows (2-D only)."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (dh, dw) = kernel, strides, dilations
    pt, pl, pb, pr = pads[0], pads[1], pads[2], pads[3]
    ekh, ekw = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    rnd = math.ceil if ceil else math.floor
    oh = int(rnd((h + pt + pb - ekh) / sh)) + 1
    ow = int(rnd((w + pl + pr - ekw) / sw)) + 1
    # Extra right/bottom padding so ceil-mode windows exist.
    xb = max(0, (oh - 1) * sh + ekh - (h + pt + pb))
    xr = max(0, (ow - 1) * sw + ekw - (w + pl + pr))
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb + xb), (pl, pr + xr)),
                constant_values=pad_value)
    s = xp.strides
    return np.lib.stride_tricks.as_strided(
        xp, (n, c, oh, ow, kh, kw),
        (s[0], s[1], s[2] * sh, s[3] * sw, s[2] * dh, s[3] * dw),
        writeable=False), (h, w, pt, pl)


def _conv(x, w, b, at):
    if x.ndim != 4:
        raise ZooError("checker: only 2-D Conv")
    group = at.get("group", 1)
    kernel = list(at.get("kernel_shape", w.shape[2:]))
    win, _ = _windows(x, kernel, at.get("strides", [1, 1]),
                      _pool_pads(at, 2), at.get("dilations", [1, 1]), 0.0)
    n, c, oh, ow, kh, kw = win.shape
    cg, m = c // group, w.shape[0]
    mg = m // group
    out = np.empty((n, m, oh, ow), np.float32)
    for g in range(group):
        cols = win[:, g * cg:(g + 1) * cg].transpose(0, 2, 3, 1, 4, 5)
        cols = cols.reshape(n * oh * ow, cg * kh * kw)
        wg = w[g * mg:(g + 1) * mg].reshape(mg, cg * kh * kw)
        r = (cols @ wg.T).reshape(n, oh, ow, mg).transpose(0, 3, 1, 2)
        out[:, g * mg:(g + 1) * mg] = r
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out


def _pool(x, at, kind):
    kernel = at["kernel_shape"]
    if len(kernel) != 2:
        raise ZooError("checker: only 2-D pooling")
    ceil = bool(at.get("ceil_mode", 0))
    pads = _pool_pads(at, 2)
    fill = -np.inf if kind == "max" else 0.0
    win, (h, w, pt, pl) = _windows(x, kernel, at.get("strides", [1, 1]),
                                   pads, at.get("dilations", [1, 1]), fill,
                                   ceil)
    if kind == "max":
        return win.max(axis=(4, 5))
    total = win.sum(axis=(4, 5), dtype=np.float32)
    ones = np.zeros((1, 1, h, w), np.float32) + 1
    if at.get("count_include_pad", 0):
        # Count real and explicit padding, not the ceil-mode overhang.
        ones = np.pad(ones, ((0, 0), (0, 0), (pads[0], pads[2]),
                             (pads[1], pads[3])), constant_values=1)
        cw, _ = _windows(ones, kernel, at.get("strides", [1, 1]),
                         [0] * 4, [1, 1], 0.0, ceil)
    else:
        cw, _ = _windows(ones, kernel, at.get("strides", [1, 1]), pads,
                         [1, 1], 0.0, ceil)
    return (total / cw.sum(axis=(4, 5))).astype(np.float32)


def _erf(x):
    return np.vectorize(math.erf, otypes=[np.float64])(
        x.astype(np.float64)).astype(x.dtype)


def _softmax(x, axis, opset):
    if opset < 13:  # coerced to 2-D at axis
        shape = x.shape
        x = x.reshape(int(np.prod(shape[:axis % x.ndim])), -1)
        return _softmax(x, 1, 13).reshape(shape)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _run_node(node, ins, opset):
    op, at = node.op_type, _attrs(node)
    x = ins[0] if ins else None
    f32 = np.float32
    if op == "Constant":
        if "value" in at:
            return [onnx.numpy_helper.to_array(at["value"]).copy()]
        for k, dt in (("value_float", f32), ("value_floats", f32),
                      ("value_int", np.int64), ("value_ints", np.int64)):
            if k in at:
                return [np.array(at[k], dtype=dt)]
        raise ZooError("checker: Constant %s" % sorted(at))
    if op in ("Identity", "Dropout"):
        return [x]
    if op == "Conv":
        return [_conv(x, ins[1], ins[2] if len(ins) > 2 else None, at)]
    if op == "Gemm":
        a = x.T if at.get("transA", 0) else x
        b = ins[1].T if at.get("transB", 0) else ins[1]
        y = at.get("alpha", 1.0) * (a @ b)
        if len(ins) > 2 and ins[2] is not None:
            y = y + at.get("beta", 1.0) * ins[2]
        return [y.astype(f32)]
    if op == "MatMul":
        return [np.matmul(x, ins[1])]
    binary = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply,
              "Pow": np.power, "Equal": np.equal}
    if op in binary:
        return [binary[op](x, ins[1]).astype(np.result_type(x, ins[1])
                                             if op != "Equal" else bool)]
    if op == "Div":
        if np.issubdtype(x.dtype, np.integer):
            return [np.trunc(x / ins[1]).astype(x.dtype)]
        return [x / ins[1]]
    unary = {"Relu": lambda v: np.maximum(v, 0).astype(v.dtype),
             "Sigmoid": lambda v: 1 / (1 + np.exp(-v)),
             "Tanh": np.tanh, "Sqrt": np.sqrt, "Erf": _erf}
    if op in unary:
        return [unary[op](x).astype(x.dtype)]
    if op == "Gelu":
        if at.get("approximate", b"none") in (b"tanh", "tanh"):
            y = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) *
                                       (x + 0.044715 * x ** 3)))
        else:
            y = 0.5 * x * (1 + _erf(x / math.sqrt(2)))
        return [y.astype(x.dtype)]
    if op == "HardSigmoid":
        a, b = at.get("alpha", 0.2), at.get("beta", 0.5)
        return [np.clip(a * x + b, 0, 1).astype(x.dtype)]
    if op == "HardSwish":
        return [(x * np.clip(x / 6 + 0.5, 0, 1)).astype(x.dtype)]
    if op == "Clip":
        lo = at.get("min") if opset < 11 else (
            ins[1] if len(ins) > 1 and ins[1] is not None else None)
        hi = at.get("max") if opset < 11 else (
            ins[2] if len(ins) > 2 and ins[2] is not None else None)
        y = x
        if lo is not None:
            y = np.maximum(y, lo)
        if hi is not None:
            y = np.minimum(y, hi)
        return [y.astype(x.dtype)]
    if op == "MaxPool":
        return [_pool(x, at, "max")]
    if op == "AveragePool":
        return [_pool(x, at, "avg")]
    if op == "GlobalAveragePool":
        return [x.mean(axis=tuple(range(2, x.ndim)), keepdims=True,
                       dtype=f32)]
    if op == "BatchNormalization":
        sc, bi, mean, var = ins[1:5]
        shp = (1, -1) + (1,) * (x.ndim - 2)
        inv = (sc / np.sqrt(var + f32(at.get("epsilon", 1e-5)))).reshape(shp)
        return [((x - mean.reshape(shp)) * inv + bi.reshape(shp)).astype(f32)]
    if op == "LayerNormalization":
        axis = at.get("axis", -1) % x.ndim
        axes = tuple(range(axis, x.ndim))
        mu = x.mean(axis=axes, keepdims=True)
        var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
        y = (x - mu) / np.sqrt(var + f32(at.get("epsilon", 1e-5))) * ins[1]
        if len(ins) > 2 and ins[2] is not None:
            y = y + ins[2]
        return [y.astype(f32)]
    if op == "Softmax":
        return [_softmax(x, at.get("axis", -1 if opset >= 13 else 1),
                         opset).astype(x.dtype)]
    if op in ("ReduceMean", "ReduceSum"):
        since = 13 if op == "ReduceSum" else 18
        axes = _axes_arg(node, ins, at, opset, since)
        keep = bool(at.get("keepdims", 1))
        if not axes:
            if op == "ReduceSum" and at.get("noop_with_empty_axes", 0):
                return [x]
            axes = list(range(x.ndim))
        fn = np.mean if op == "ReduceMean" else np.sum
        return [fn(x, axis=tuple(axes), keepdims=keep).astype(x.dtype)]
    if op == "Reshape":
        shape = [int(v) for v in ins[1]]
        if not at.get("allowzero", 0):
            shape = [x.shape[i] if v == 0 else v for i, v in enumerate(shape)]
        return [x.reshape(shape)]
    if op == "Flatten":
        axis = at.get("axis", 1) % (x.ndim + 1) if x.ndim else 0
        return [x.reshape(int(np.prod(x.shape[:axis])), -1)]
    if op == "Transpose":
        return [x.transpose(at.get("perm", list(range(x.ndim))[::-1]))]
    if op == "Squeeze":
        axes = _axes_arg(node, ins, at, opset, 13)
        if axes is None:
            return [np.squeeze(x)]
        return [np.squeeze(x, axis=tuple(a % x.ndim for a in axes))]
    if op == "Unsqueeze":
        axes = _axes_arg(node, ins, at, opset, 13)
        nd = x.ndim + len(axes)
        y = x
        for a in sorted(a % nd for a in axes):
            y = np.expand_dims(y, a)
        return [y]
    if op == "Concat":
        return [np.concatenate(ins, axis=at["axis"])]
    if op == "Split":
        axis = at.get("axis", 0) % x.ndim
        split = (([int(v) for v in ins[1]] if len(ins) > 1 and
                  ins[1] is not None else None)
                 if opset >= 13 else at.get("split"))
        if split is None:
            k = len(node.output)
            split = [x.shape[axis] // k] * k
        cuts = np.cumsum(split)[:-1]
        return list(np.split(x, cuts, axis=axis))
    if op == "Slice":
        starts, ends = ins[1], ins[2]
        axes = (ins[3] if len(ins) > 3 and ins[3] is not None
                else np.arange(len(starts)))
        steps = (ins[4] if len(ins) > 4 and ins[4] is not None
                 else np.ones(len(starts), np.int64))
        idx = [slice(None)] * x.ndim
        for s0, e0, a, st in zip(starts, ends, axes, steps):
            a, dim = int(a) % x.ndim, x.shape[int(a) % x.ndim]
            s0, e0, st = int(s0), int(e0), int(st)
            s0 = s0 + dim if s0 < 0 else s0
            e0 = e0 + dim if e0 < 0 else e0
            if st > 0:
                s0, e0 = min(max(s0, 0), dim), min(max(e0, 0), dim)
            else:
                s0, e0 = min(max(s0, 0), dim - 1), min(max(e0, -1), dim - 1)
                e0 = None if e0 < 0 else e0
            idx[a] = slice(s0, e0, st)
        return [x[tuple(idx)]]
    if op == "Gather":
        axis = at.get("axis", 0) % x.ndim
        ind = ins[1].astype(np.int64)
        ind = np.where(ind < 0, ind + x.shape[axis], ind)
        if (ind < 0).any() or (ind >= x.shape[axis]).any():
            raise ZooError("checker: Gather index out of range")
        return [np.take(x, ind, axis=axis)]
    if op == "Shape":
        sh = np.array(x.shape, np.int64)
        return [sh[at.get("start", 0):at.get("end", len(sh))]]
    if op == "Expand":
        shape = np.broadcast_shapes(x.shape, tuple(int(v) for v in ins[1]))
        return [np.broadcast_to(x, shape).copy()]
    if op == "Where":
        return [np.where(x, ins[1], ins[2]).astype(
            np.result_type(ins[1], ins[2]))]
    if op == "Cast":
        to = onnx.mapping.TENSOR_TYPE_TO_NP_TYPE[at["to"]]
        return [x.astype(to)]
    if op == "ConstantOfShape":
        v = (onnx.numpy_helper.to_array(at["value"]) if "value" in at
             else np.zeros(1, f32))
        return [np.full([int(d) for d in x], v.reshape(-1)[0], v.dtype)]
    if op == "Range":
        return [np.arange(x, ins[1], ins[2]).astype(x.dtype)]
    raise ZooError("checker: no implementation of %s" % op)


def run_onnx_numpy(proto, feeds):
    opset = {o.domain: o.version for o in proto.opset_import}.get("")
    env = {i.name: onnx.numpy_helper.to_array(i).copy()
           for i in proto.graph.initializer}
    env.update(feeds)
    for node in proto.graph.node:
        ins = [env[n] if n else None for n in node.input]
        outs = _run_node(node, ins, opset)
        for n, v in zip(node.output, outs):
            if n:
                env[n] = np.asarray(v)
    return {o.name: env[o.name] for o in proto.graph.output}


def tolerance_excess(got, want):
    """max |got - want| / (atol + rtol |want|): <= 1 passes."""
    bound = TOLERANCES["atol"] + TOLERANCES["rtol"] * np.abs(want)
    return float((np.abs(got.astype(np.float64) - want) / bound).max())


# ---------------------------------------------------------------------------
# Export, check, write.
# ---------------------------------------------------------------------------

def value_info_entry(vi):
    t = vi.type.tensor_type
    dims = []
    for d in t.shape.dim:
        if not d.HasField("dim_value"):
            raise ZooError("%s has a non-static dimension" % vi.name)
        dims.append(d.dim_value)
    return vi.name, ONNX_DTYPE_NAMES.get(t.elem_type, str(t.elem_type)), dims


def save_npy(path, arr):
    arr = np.ascontiguousarray(arr)
    arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
    np.save(path, arr, allow_pickle=False)


def odd_nodes(graph):
    """Nodes of supported types whose form the loader does not take."""
    odd = []
    for n in graph.node:
        at = _attrs(n)
        if n.op_type == "LayerNormalization" and (
                at.get("axis", -1) != -1 or at.get("stash_type", 1) != 1
                or len([o for o in n.output if o]) != 1):
            odd.append("LayerNormalization%s" % sorted(at.items()))
    return odd


def compact_json(obj):
    """Indented JSON with short lists of scalars (shapes, op types) kept on
    one line."""
    text = json.dumps(obj, indent=1)
    scalar = r'(?:"[^"\n]*"|-?[0-9][0-9.e+-]*|true|false|null)'
    pattern = re.compile(r"\[\n\s*(%s(?:,\n\s*%s)*)\n\s*\]" % (scalar, scalar))
    return pattern.sub(lambda m: "[" + ", ".join(
        x.strip() for x in m.group(1).split(",\n")) + "]", text) + "\n"


def build(name, outdir):
    spec = MAKERS[name]()
    model, opset = spec["model"], spec["opset"]
    in_names = list(spec["inputs"])
    out_names = spec["outputs"]
    model.eval()
    for arr in spec["inputs"].values():
        if arr.dtype not in (np.float32, np.int64):
            raise ZooError("%s: input dtype %s" % (name, arr.dtype))

    args = tuple(torch.from_numpy(spec["inputs"][n]) for n in in_names)
    with torch.no_grad():
        result = model(*args)
    if isinstance(result, torch.Tensor):
        result = (result,)
    if len(result) != len(out_names):
        raise ZooError("%s: %d outputs, %d names" %
                       (name, len(result), len(out_names)))
    expected = {}
    for n, t in zip(out_names, result):
        a = t.detach().contiguous().numpy().copy()
        if a.dtype != np.float32:
            raise ZooError("%s: output %s is %s" % (name, n, a.dtype))
        if not np.isfinite(a).all():
            raise ZooError("%s: output %s has NaN/inf" % (name, n))
        expected[n] = a
    note = spec["check"](expected) if "check" in spec else None

    mdir = os.path.join(outdir, name)
    for sub in ("inputs", "expected"):
        os.makedirs(os.path.join(mdir, sub), exist_ok=True)
        for f in os.listdir(os.path.join(mdir, sub)):
            if f.endswith(".npy"):  # stale files from an older layout
                os.remove(os.path.join(mdir, sub, f))
    onnx_path = os.path.join(mdir, "model.onnx")
    with torch.no_grad():
        torch.onnx.export(model, args, onnx_path, opset_version=opset,
                          do_constant_folding=True, input_names=in_names,
                          output_names=out_names,
                          training=torch.onnx.TrainingMode.EVAL,
                          export_params=True)
    proto = onnx.load(onnx_path)
    onnx.checker.check_model(proto, full_check=True)

    graph = proto.graph
    op_types = sorted({n.op_type for n in graph.node})
    unsupported = sorted(set(op_types) - SUPPORTED_OPS) + odd_nodes(graph)
    opsets = {o.domain: o.version for o in proto.opset_import}
    if opsets.get("", opsets.get("ai.onnx")) != opset:
        raise ZooError("%s: exported opset %s, wanted %d" %
                       (name, opsets, opset))
    if any(n.domain not in ("", "ai.onnx") for n in graph.node):
        raise ZooError("%s: node outside the default ONNX domain" % name)

    inits = {i.name for i in graph.initializer}
    g_inputs = [value_info_entry(v) for v in graph.input
                if v.name not in inits]
    g_outputs = [value_info_entry(v) for v in graph.output]
    if [i[0] for i in g_inputs] != in_names:
        raise ZooError("%s: graph inputs %s" % (name, g_inputs))
    if [o[0] for o in g_outputs] != out_names:
        raise ZooError("%s: graph outputs %s" % (name, g_outputs))
    for (n, dt, shape) in g_inputs:
        a = spec["inputs"][n]
        if dt != str(a.dtype) or list(a.shape) != shape:
            raise ZooError("%s: input %s is %s%s in ONNX, %s%s here" %
                           (name, n, dt, shape, a.dtype, list(a.shape)))
    for (n, dt, shape) in g_outputs:
        a = expected[n]
        if dt != "float32" or list(a.shape) != shape:
            raise ZooError("%s: output %s is %s%s in ONNX, %s%s in torch" %
                           (name, n, dt, shape, a.dtype, list(a.shape)))

    got = run_onnx_numpy(proto, spec["inputs"])
    worst = 0.0
    for n in out_names:
        if got[n].shape != expected[n].shape or got[n].dtype != np.float32:
            raise ZooError("%s: numpy run of the ONNX graph gave %s %s for %s"
                           % (name, got[n].dtype, got[n].shape, n))
        excess = tolerance_excess(got[n], expected[n])
        if not excess <= 1.0:
            raise ZooError("%s: numpy run of the ONNX graph differs from "
                           "torch on %s: %.3g x the tolerance" %
                           (name, n, excess))
        worst = max(worst, excess)

    for n in in_names:
        save_npy(os.path.join(mdir, "inputs", n + ".npy"), spec["inputs"][n])
    for n in out_names:
        save_npy(os.path.join(mdir, "expected", n + ".npy"), expected[n])

    params = sum(p.numel() for p in model.parameters())
    tensors = list(graph.initializer) + [
        a.t for n in graph.node if n.op_type == "Constant"
        for a in n.attribute if a.name == "value"]
    const_dtypes = sorted({ONNX_DTYPE_NAMES.get(t.data_type, str(t.data_type))
                           for t in tensors})
    entry = {
        "name": name,
        "onnx": name + "/model.onnx",
        "opset": opset,
        "inputs": [{"name": n, "dtype": dt, "shape": s,
                    "file": "%s/inputs/%s.npy" % (name, n)}
                   for n, dt, s in g_inputs],
        "outputs": [{"name": n, "dtype": dt, "shape": s,
                     "file": "%s/expected/%s.npy" % (name, n)}
                    for n, dt, s in g_outputs],
        "op_types": op_types,
        "num_nodes": len(graph.node),
        "num_params": params,
        "constant_dtypes": const_dtypes,
        "tolerances": dict(TOLERANCES),
    }
    print("%-16s opset=%d nodes=%d params=%d ops=%s%s" %
          (name, opset, len(graph.node), params, ",".join(op_types),
           "" if not unsupported else
           "  UNSUPPORTED=" + ",".join(unsupported)))
    print("%-16s numpy run of the ONNX graph == torch (worst %.2g of the "
          "tolerance)" % ("", worst))
    if note:
        print("%-16s %s" % ("", note))
    return entry, unsupported


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--only", choices=MODEL_ORDER,
                    help="build one model (its manifest entry is merged)")
    opts = ap.parse_args()

    torch.set_num_threads(1)  # reproducible reductions; shared machine
    os.makedirs(opts.outdir, exist_ok=True)
    names = [opts.only] if opts.only else MODEL_ORDER
    manifest_path = os.path.join(opts.outdir, "manifest.json")
    entries = {}
    if opts.only and os.path.exists(manifest_path):
        with open(manifest_path) as f:
            for e in json.load(f)["models"]:
                entries[e["name"]] = e

    t0 = time.time()
    bad = {}
    try:
        for name in names:
            entry, unsupported = build(name, opts.outdir)
            entries[name] = entry
            if unsupported:
                bad[name] = unsupported
    except ZooError as e:
        sys.exit("make_models.py: %s" % e)

    manifest = {
        "generator": "tests/models/make_models.py",
        "torch": torch.__version__.split("+")[0],
        "onnx": onnx.__version__,
        "supported_ops": sorted(SUPPORTED_OPS),
        "models": [entries[n] for n in MODEL_ORDER if n in entries],
    }
    with open(manifest_path, "w") as f:
        f.write(compact_json(manifest))
        f.write("\n")
    print("wrote %d model(s) to %s in %.1fs" %
          (len(names), opts.outdir, time.time() - t0))
    if bad:
        sys.exit("make_models.py: ops outside the loader's list: %s" %
                 "; ".join("%s: %s" % (k, ",".join(v))
                           for k, v in bad.items()))


if __name__ == "__main__":
    main()
