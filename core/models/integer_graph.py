"""A trained LAST model rewritten for full-integer inference: the same function, in ops that have int8 kernels.

    stage, graph = integer_friendly(model, calib_x)      # stage: numpy float part, graph: nn.Module
    graph(torch.from_numpy(stage(x)))  ==  model(torch.from_numpy(x))   (within float rounding)

An int8 graph quantizes every tensor with one per-tensor range, so the rewrite changes where ranges are needed,
never what is computed (tests/test_integer_graph.py checks the outputs against the model):

* **Streams derived in float, before the graph.** The velocity / bone derivation and each stream's data
  BatchNorm move into a numpy input stage (core.data.streams.StreamInputStage) that the runtime runs before it
  quantizes the input: a frame difference is ~1 % of the joints' range, below one int8 step of it. Each input
  channel also gets a gain that gives every channel the same calibrated range (the stem's weights carry the
  inverse), so one int8 input scale serves every stream.
* **One stem convolution** over the stacked streams (block-diagonal weight, BatchNorm folded): no slices and
  no concatenation of differently scaled stems.
* **Linear attention without EXP, MEAN or an unguarded division.** phi(x) = elu(x) + 1 = relu(x) + exp(m) with
  m = x - relu(x) <= 0, and exp(m) = s / (1 - s) with s = sigmoid(m) (LOGISTIC has an int8 kernel, EXP has
  none in the quantizer; 1 - s >= 0.5 never quantizes to zero). The 1/T of the key/value means cancels between
  numerator and denominator, so plain sums are used; the normaliser 1/den is rsqrt(den)^2 (RSQRT maps a zero
  input to its largest output instead of failing as an int8 DIV by its zero point does). Tensors stay 3-D
  (N*V*heads, d, T), the rank NPU delegates accept.
* **Rank <= 4 everywhere** for one person (most NPU delegates take nothing larger): the person axis is dropped
  by a reshape, the dynamic adjacency's embedding is split by channel slices, the head pools in rank 4.
* **Dynamic adjacency**: the 1/embed_channels scale is folded into the embedding's weights, and with
  split_adjacency the joints are aggregated by the fixed (physical + learned) adjacency and by the dynamic one
  separately (the same sum), so the small alpha * tanh(...) term gets its own int8 range instead of a few steps
  of the fixed adjacency's.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.data.streams import StreamInputStage
from core.models.last import LAST, AdaptiveGraphConv, LinearTemporalAttention, bn_affine

PHI_MODES = ("sigmoid", "exp")  # exp(m) as s / (1 - s) (integer kernels) or as EXP (no int8 kernel in the quantizer)
NORM_MODES = ("rsqrt", "div")  # 1/den as rsqrt(den)^2 or as a DIV


def positive_feature(x: torch.Tensor, mode: str = "sigmoid") -> torch.Tensor:
    """elu(x) + 1 written as relu(x) + exp(min(x, 0)), the exponential of a non-positive argument only."""
    pos = F.relu(x)
    m = x - pos  # min(x, 0)
    if mode == "exp":
        return pos + torch.exp(m)
    s = torch.sigmoid(m)  # in (0, 0.5]
    return pos + s / (1.0 - s)  # exp(m) = sigmoid(m) / sigmoid(-m)


class IntegerAttention(nn.Module):
    """LinearTemporalAttention's function (see the module docstring for the rewrite)."""

    def __init__(self, attention: LinearTemporalAttention, phi: str = "sigmoid", norm: str = "rsqrt"):
        super().__init__()
        if phi not in PHI_MODES or norm not in NORM_MODES:
            raise ValueError(f"phi must be one of {PHI_MODES} and norm one of {NORM_MODES}, got {phi!r}, {norm!r}")
        self.heads, self.qk, self.channels, self.eps = attention.heads, attention.qk, attention.channels, attention.eps
        self.phi, self.norm = phi, norm
        self.register_buffer("qkv_weight", attention.qkv.weight.detach().clone())
        self.proj = attention.proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v = x.shape
        h = self.heads
        qkv = F.conv2d(x, self.qkv_weight).permute(0, 3, 1, 2)  # (N, V, 2*qk + C, T)
        q, k, val = torch.split(qkv, [self.qk, self.qk, c], dim=2)
        q = positive_feature(q.reshape(n * v * h, -1, t), self.phi)  # (B, dk, T)
        k = positive_feature(k.reshape(n * v * h, -1, t), self.phi)
        val = val.reshape(n * v * h, -1, t)  # (B, dv, T)
        kv = torch.matmul(val, k.transpose(1, 2))  # (B, dv, dk): sums over tokens (the 1/T cancels)
        k_sum = k.sum(dim=2, keepdim=True)  # (B, dk, 1)
        den = torch.matmul(k_sum.transpose(1, 2), q) + t * self.eps  # (B, 1, T)
        if self.norm == "div":
            qn = q / den
        else:
            r = torch.rsqrt(den)
            qn = q * r * r
        out = torch.matmul(kv, qn).reshape(n, v, c, t).permute(0, 2, 3, 1)  # (N, C, T, V)
        return self.proj(out)


class IntegerGraphConv(nn.Module):
    """AdaptiveGraphConv's function with constant, BatchNorm-folded weights (see the module docstring)."""

    def __init__(self, gcn: AdaptiveGraphConv, split_adjacency: bool = False):
        super().__init__()
        # alpha == 0 (a graph conv whose dynamic adjacency is off): the dynamic term is exactly zero, so it is left
        # out rather than computed and quantized as a constant-zero tensor
        adaptive = gcn.adaptive and bool(gcn.alpha.detach().abs().item() > 0)
        self.subsets, self.adaptive, self.split = gcn.subsets, adaptive, split_adjacency and adaptive
        w, b = gcn.folded()
        self.register_buffer("weight", w.detach().clone())
        self.register_buffer("bias", b.detach().clone())
        static = gcn.a_physical + (gcn.a_learned if gcn.adaptive else 0.0)
        self.register_buffer("a_static", static.detach().clone())
        if adaptive:
            ec = gcn.embed_channels
            half = gcn.subsets * ec  # the first half of the embedding's channels is e[:, 0]
            ew, eb = gcn.embed.weight.detach().clone(), gcn.embed.bias.detach().clone()
            ew[:half] /= ec  # (e0 / ec)^T e1 == (e0^T e1) / ec
            eb[:half] /= ec
            self.register_buffer("embed_weight", ew)
            self.register_buffer("embed_bias", eb)
            self.embed_channels = ec
            self.register_buffer("alpha", gcn.alpha.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, cin, t, v = x.shape
        k = self.subsets
        rows = x.reshape(n, 1, cin * t, v)
        if self.adaptive:
            e = F.conv2d(x.mean(dim=2, keepdim=True), self.embed_weight, self.embed_bias)  # (N, 2*K*E, 1, V)
            half = k * self.embed_channels
            e0 = e[:, :half].reshape(n, k, self.embed_channels, v)  # rank 4: no 5-D reshape or slice
            e1 = e[:, half:].reshape(n, k, self.embed_channels, v)
            dynamic = self.alpha * torch.tanh(torch.matmul(e0.transpose(-1, -2), e1))  # (N, K, V, V)
            if self.split:
                xa = torch.matmul(rows, self.a_static) + torch.matmul(rows, dynamic)
            else:
                xa = torch.matmul(rows, self.a_static + dynamic)
        else:
            xa = torch.matmul(rows, self.a_static)
        return F.conv2d(xa.reshape(n, k * cin, t, v), self.weight, self.bias)


class IntegerFriendlyLAST(nn.Module):
    """Input: the stage's normalised streams (N, S*C, T, V, M); output: the LAST model's logits."""

    def __init__(self, model: LAST, input_gain: np.ndarray | None = None, phi: str = "sigmoid",
                 norm: str = "rsqrt", split_adjacency: bool = False):
        super().__init__()
        model = copy.deepcopy(model).eval()
        stem = model.stem
        self.layout, self.streams = model.cfg.layout, tuple(model.cfg.streams)
        c, s = model.cfg.in_channels, len(self.streams)
        gain = np.ones(s * c, np.float32) if input_gain is None else np.asarray(input_gain, np.float32)
        if gain.shape != (s * c,) or not np.all(gain > 0):
            raise ValueError(f"input_gain must be {s * c} positive values, got shape {gain.shape}")
        self.input_gain = gain
        with torch.no_grad():
            per_stream = [block.folded() for block in stem.stems]  # ((stem, C, 1, 1), (stem,))
            out = per_stream[0][0].shape[0]
            weight = torch.zeros(s * out, s * c, 1, 1)
            for i, (w, _) in enumerate(per_stream):
                weight[i * out:(i + 1) * out, i * c:(i + 1) * c] = w / torch.from_numpy(gain[i * c:(i + 1) * c]).view(1, -1, 1, 1)
            self.register_buffer("stem_weight", weight)
            self.register_buffer("stem_bias", torch.cat([b for _, b in per_stream]).detach().clone())
            self.data_affine = [tuple(t.detach().numpy().copy() for t in bn_affine(bn)) for bn in stem.data_bn]
        for stage in model.stages:
            for block in stage.blocks:
                block.gcn = IntegerGraphConv(block.gcn, split_adjacency)
                if block.attention is not None:
                    block.attention = IntegerAttention(block.attention, phi, norm)
        self.stages, self.fc = model.stages, model.fc  # the model's own modules (the stem is in stem_weight)
        self.num_joints = model.num_joints

    def input_stage(self) -> StreamInputStage:
        """The float stage the graph expects in front of it (derive, normalise, apply the input gain)."""
        v = self.num_joints
        scale = np.concatenate([sc.reshape(-1, v) for sc, _ in self.data_affine]) * self.input_gain[:, None]
        shift = np.concatenate([sh.reshape(-1, v) for _, sh in self.data_affine]) * self.input_gain[:, None]
        return StreamInputStage(self.layout, self.streams, scale.astype(np.float32), shift.astype(np.float32))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        n, c, t, v, m = features.shape
        # one person: dropping the trailing axis is a reshape, not a 5-D transpose (delegates take rank <= 4)
        x = features.reshape(n, c, t, v) if m == 1 else features.permute(0, 4, 1, 2, 3).reshape(n * m, c, t, v)
        x = F.relu(F.conv2d(x, self.stem_weight, self.stem_bias))
        for stage in self.stages:
            x = stage(x)
        pooled = x.reshape(n, m, x.shape[1], -1).mean(dim=3).mean(dim=1)  # LAST.forward_head, in rank 4
        return self.fc(pooled)  # (dropout is the identity in eval)


def input_ranges(model: LAST, x: np.ndarray, percentile: float = 99.99) -> np.ndarray:
    """Per input channel of the normalised streams, the `percentile` of |value| over the clips x (N, C, T, V, M)."""
    stage = IntegerFriendlyLAST(model).input_stage()
    feats = stage(x)  # (N, S*C, T, V, M)
    per_channel = np.abs(feats.transpose(1, 0, 2, 3, 4).reshape(feats.shape[1], -1))
    return np.maximum(np.percentile(per_channel, percentile, axis=1), 1e-6).astype(np.float32)


def integer_friendly(model: LAST, calib_x: np.ndarray | None = None, percentile: float = 99.99,
                     **options) -> tuple[StreamInputStage, IntegerFriendlyLAST]:
    """(float input stage, integer-friendly graph) of a LAST model; with calibration clips every input channel
    is scaled so its `percentile` of |value| is 1 (one int8 input range fits every stream)."""
    gain = None if calib_x is None else 1.0 / input_ranges(model, calib_x, percentile)
    graph = IntegerFriendlyLAST(model, gain, **options).eval()
    return graph.input_stage(), graph
