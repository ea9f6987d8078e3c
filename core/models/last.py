"""LAST: Lightweight Adaptive-Shift Transformer for skeleton action recognition.

blocks (adaptive graph conv -> temporal shift -> linear temporal attention) -> stages -> model.
Input (N, C, T, V, M) joints; velocity/bone streams are computed inside the model so every exported
artifact takes raw (preprocessed) joints.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.cli import did_you_mean
from core.graph import build_adjacency
from core.layouts import get_layout
from core.spec import STREAMS, from_known_keys


@dataclass
class LASTConfig:
    layout: str = "ntu25"
    num_classes: int = 60
    in_channels: int = 3
    streams: tuple[str, ...] = ("joint",)
    stem_channels: int = 32  # per input stream
    # (out_channels, depth, temporal stride of the stage's first block)
    stages: tuple[tuple[int, int, int], ...] = ((64, 2, 1), (128, 2, 2), (256, 2, 2))
    adaptive: bool = True  # learned + dynamic adjacency (off for the Lite variants)
    attention: bool = True  # linear temporal attention (off for the Lite variants)
    graph_mode: str = "spatial"
    dynamic_reduction: int = 8  # channels of the dynamic-adjacency embedding = in // reduction
    attention_heads: int = 4
    attention_qk_ratio: float = 0.25  # query/key width as a fraction of the channels
    temporal_kernel: int = 5  # depthwise temporal conv after the shift (1 = shift + pointwise only)
    shift_div: int = 8  # 1/shift_div channels shift forward, 1/shift_div backward
    dropout: float = 0.5

    def __post_init__(self):
        self.streams = tuple(self.streams)
        self.stages = tuple(tuple(int(v) for v in s) for s in self.stages)
        bad = [s for s in self.streams if s not in STREAMS]
        if bad or not self.streams:
            raise ValueError(f"streams must be a non-empty subset of {STREAMS}, got {self.streams}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["streams"] = list(self.streams)
        d["stages"] = [list(s) for s in self.stages]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LASTConfig":
        return from_known_keys(cls, d, "LAST config")


def fast_inference(module: nn.Module, x: torch.Tensor) -> bool:
    """Plain eager inference (eval, no autograd, a real tensor, not tracing/exporting/compiling): the modules
    then run BatchNorm-folded weights as GEMMs. Exporters and training see the plain Conv + BatchNorm graph
    (the exporters fold it themselves)."""
    return (not module.training and not torch.is_grad_enabled() and type(x) is torch.Tensor
            and not module.__dict__.get("quant_sim")  # core.models.quant simulates the Q/DQ model instead
            and not torch.jit.is_tracing() and not torch.jit.is_scripting() and not torch.onnx.is_in_onnx_export()
            and not torch.compiler.is_compiling())


def pointwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int = 1) -> torch.Tensor:
    """A 1x1 conv as one GEMM per sample (torch's CPU conv2d runs 1x1 kernels through an im2col copy)."""
    if stride > 1:
        x = x[:, :, ::stride]
    n, cin, t, v = x.shape
    x = x.reshape(n, cin, t * v)
    w = weight.reshape(weight.shape[0], cin)
    y = torch.matmul(w, x) if bias is None else torch.baddbmm(bias.view(1, -1, 1), w.expand(n, -1, -1), x)
    return y.view(n, -1, t, v)


class ConvBN(nn.Sequential):
    """Conv2d + BatchNorm2d (+ ReLU), an nn.Sequential so the state_dict keys stay '0.*' and '1.*'."""

    def folded(self) -> tuple[torch.Tensor, torch.Tensor]:
        scale, shift = bn_affine(self[1])
        return self[0].weight * scale.view(-1, 1, 1, 1), shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not fast_inference(self, x):
            return super().forward(x)
        conv, bn = self[0], self[1]
        w, b = cached(self, "folded", (conv.weight, bn.weight, bn.bias, bn.running_mean, bn.running_var),
                      self.folded)
        if conv.kernel_size == (1, 1) and conv.groups == 1:
            y = pointwise(x, w, b, conv.stride[0])
        else:
            y = F.conv2d(x, w, b, conv.stride, conv.padding, conv.dilation, conv.groups)
        return torch.relu_(y) if len(self) > 2 else y


def conv_bn(cin: int, cout: int, kernel: tuple[int, int] = (1, 1), stride: int = 1, groups: int = 1) -> ConvBN:
    pad = ((kernel[0] - 1) // 2, (kernel[1] - 1) // 2)
    return ConvBN(nn.Conv2d(cin, cout, kernel, (stride, 1), pad, groups=groups, bias=False), nn.BatchNorm2d(cout))


def bn_affine(bn: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BatchNorm as y = x * scale + shift."""
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


def cached(module: nn.Module, name: str, sources: tuple[torch.Tensor, ...],
           make: Callable[[], torch.Tensor]) -> torch.Tensor:
    """make(), re-computed only when a source tensor's contents changed; without autograd only, so training
    still differentiates through make(). The check compares the sources with a snapshot taken when make() ran
    (one memcmp-like torch.equal per source, ~2 % of a last_nano forward): version counters would be cheaper
    but miss edits through `param.data` or a numpy view, which then ran stale weights silently."""
    if torch.is_grad_enabled() or torch.jit.is_tracing():
        return make()
    store = module.__dict__.setdefault("_derived_cache", {})
    hit = store.get(name)
    if hit is None or not same_contents(hit[0], sources):
        hit = store[name] = (tuple(s.detach().clone() for s in sources), make())
    return hit[1]


def same_contents(snapshot: tuple[torch.Tensor, ...], sources: tuple[torch.Tensor, ...]) -> bool:
    """Every source equals its snapshot bit for bit in dtype, device, shape and values (NaN never equals)."""
    return all(a.dtype == b.dtype and a.device == b.device and a.shape == b.shape and torch.equal(a, b)
               for a, b in zip(snapshot, sources))


class InputStreams(nn.Module):
    """Joint / velocity / bone streams from the joint input, each with its own 1x1 stem."""

    def __init__(self, cfg: LASTConfig):
        super().__init__()
        layout = get_layout(cfg.layout)
        self.streams = cfg.streams
        v = layout.num_joints
        # bone = x @ bone_matrix: joint minus its parent (zero for the centre joints)
        bone = np.eye(v, dtype=np.float32)
        for j, p in enumerate(layout.parents):
            bone[p, j] -= 1.0
        self.register_buffer("bone_matrix", torch.from_numpy(bone), persistent=False)
        self.data_bn = nn.ModuleList(nn.BatchNorm1d(cfg.in_channels * v) for _ in cfg.streams)
        self.stems = nn.ModuleList(
            ConvBN(nn.Conv2d(cfg.in_channels, cfg.stem_channels, 1, bias=False),
                   nn.BatchNorm2d(cfg.stem_channels), nn.ReLU()) for _ in cfg.streams)
        self.out_channels = cfg.stem_channels * len(cfg.streams)

    def stream(self, x: torch.Tensor, name: str) -> torch.Tensor:
        if name == "joint":
            return x
        if name == "velocity":
            return torch.cat([x[:, :, 1:] - x[:, :, :-1], torch.zeros_like(x[:, :, :1])], dim=2)
        return torch.matmul(x, self.bone_matrix)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, T, V)
        n, c, t, v = x.shape
        outs = []
        for name, bn, stem in zip(self.streams, self.data_bn, self.stems):
            s = self.stream(x, name)
            if fast_inference(self, x):  # the eval normalisation as one affine per (channel, joint)
                scale, shift = cached(bn, "affine", (bn.weight, bn.bias, bn.running_mean, bn.running_var),
                                      lambda bn=bn: bn_affine(bn))
                s = s * scale.view(c, 1, v) + shift.view(c, 1, v)
            else:  # exports keep one BatchNormalization node on the tiny 3-channel input: INT8 keeps it in float
                s = bn(s.permute(0, 1, 3, 2).reshape(n, c * v, t)).reshape(n, c, v, t).permute(0, 1, 3, 2)
            outs.append(stem(s))
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)


class AdaptiveGraphConv(nn.Module):
    """x' = BN(sum_k W_k x (A_physical[k] + A_learned[k] + A_dynamic(x)[k])).

    A_dynamic is per sample: tanh of the similarity of two temporal-pooled joint embeddings.
    Computed aggregate-then-mix: the joints are aggregated first (one MatMul of x against the K stacked
    adjacencies, whose (N, K, C_in*T, V) result is already the (N, K*C_in, T, V) layout), then one 1x1 conv
    over the K*C_in channels does the channel mixing and the sum over the subsets in the same GEMM.
    No ReduceSum and no transpose, and the conv is followed by its BatchNorm, which exporters fold.
    The parameters keep their original layout (conv weight (K*C_out, C_in, 1, 1), subset-major), so every
    checkpoint loads unchanged; the weight is re-ordered at run time (a constant in exports, cached in eval)."""

    def __init__(self, cin: int, cout: int, adjacency: np.ndarray, adaptive: bool, reduction: int):
        super().__init__()
        k, v, _ = adjacency.shape
        self.subsets, self.cout = k, cout
        self.register_buffer("a_physical", torch.from_numpy(adjacency))
        self.conv = nn.Conv2d(cin, cout * k, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.adaptive = adaptive
        if adaptive:
            self.a_learned = nn.Parameter(torch.zeros(k, v, v))
            self.embed_channels = max(cin // reduction, 4)
            self.embed = nn.Conv2d(cin, 2 * k * self.embed_channels, 1)
            self.alpha = nn.Parameter(torch.zeros(1))

    def adjacency(self, x: torch.Tensor, fast: bool = False) -> torch.Tensor:
        a = self.a_physical
        if not self.adaptive:
            return a
        a = a + self.a_learned
        n, _, _, v = x.shape
        # the embedding is a 1x1 conv (affine), so pooling over time first gives the same result T times cheaper
        pooled = x.mean(dim=2, keepdim=True)
        e = pointwise(pooled, self.embed.weight, self.embed.bias) if fast else self.embed(pooled)
        e = e.reshape(n, 2, self.subsets, self.embed_channels, v)
        dyn = torch.tanh(torch.matmul(e[:, 0].transpose(-1, -2), e[:, 1]) / self.embed_channels)
        return a + self.alpha * dyn  # (N, K, V, V)

    def aggregate(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """x (N, C_in, T, V) against the K adjacencies a: the (N, K*C_in, T, V) input of the mixing conv."""
        n, cin, t, v = x.shape
        return torch.matmul(x.reshape(n, 1, cin * t, v), a).reshape(n, self.subsets * cin, t, v)

    def mixing_weight(self) -> torch.Tensor:
        """(K*C_out, C_in, 1, 1) subset-major -> (C_out, K*C_in, 1, 1) for the aggregated (N, K*C_in, T, V)."""
        w = self.conv.weight
        k, cin = self.subsets, w.shape[1]
        return w.reshape(k, self.cout, cin).transpose(0, 1).reshape(self.cout, k * cin, 1, 1)

    def folded(self) -> tuple[torch.Tensor, torch.Tensor]:
        scale, shift = bn_affine(self.bn)
        return self.mixing_weight() * scale.view(-1, 1, 1, 1), shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fast = fast_inference(self, x)
        xa = self.aggregate(x, self.adjacency(x, fast))
        if fast:
            bn = self.bn
            w, b = cached(self, "folded", (self.conv.weight, bn.weight, bn.bias, bn.running_mean, bn.running_var),
                          self.folded)
            return pointwise(xa, w, b)
        if not self.training and torch.compiler.is_exporting():
            # torch.export (LiteRT): the conv's weight is an op here, which PT2E's conv-BN folding rejects, so
            # hand it the folded conv (same values) instead of conv + BN
            w, b = self.folded()
            return F.conv2d(xa, w, b)
        return self.bn(F.conv2d(xa, self.mixing_weight()))


class TemporalShift(nn.Module):
    """Shift 1/div of the channels one frame forward and 1/div backward (no FLOPs, no parameters).

    In ONNX exports the shift is a depthwise temporal conv with a fixed one-hot kernel (exactly the same
    values): ONNX Runtime then keeps the whole conv chain in its blocked NCHWc layout instead of reordering
    to NCHW and back around Slice/Concat (those reorders and slices were 20-30 % of the Lite variants' time)."""

    def __init__(self, channels: int, div: int = 8):
        super().__init__()
        self.fold = channels // div
        kernel = torch.zeros(channels, 1, 3, 1)
        kernel[:self.fold, 0, 0] = 1.0  # frame t sees t-1
        kernel[self.fold:2 * self.fold, 0, 2] = 1.0  # frame t sees t+1
        kernel[2 * self.fold:, 0, 1] = 1.0
        self.register_buffer("shift_kernel", kernel, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.fold
        if f == 0:
            return x
        if torch.onnx.is_in_onnx_export():
            return F.conv2d(x, self.shift_kernel.to(x.dtype), padding=(1, 0), groups=x.shape[1])
        zero = torch.zeros_like(x[:, :f, :1])
        forward = torch.cat([zero, x[:, :f, :-1]], dim=2)  # frame t sees t-1
        backward = torch.cat([x[:, f:2 * f, 1:], zero], dim=2)  # frame t sees t+1
        return torch.cat([forward, backward, x[:, 2 * f:]], dim=1)


class TemporalUnit(nn.Module):
    """Shift, then (optional depthwise temporal conv) and pointwise channel mixing; carries the stride."""

    def __init__(self, channels: int, stride: int, kernel: int, shift_div: int):
        super().__init__()
        self.shift = TemporalShift(channels, shift_div)
        self.depthwise = conv_bn(channels, channels, (kernel, 1), stride, groups=channels) if kernel > 1 else None
        self.pointwise = conv_bn(channels, channels, (1, 1), 1 if kernel > 1 else stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.shift(x)
        if self.depthwise is not None:
            x = F.relu(self.depthwise(x))
        return self.pointwise(x)


class LinearTemporalAttention(nn.Module):
    """Linear attention over time for every joint, phi(x) = elu(x) + 1, cost O(T).

    The key/value sums are means over tokens, which keeps them within the fp16 range (raw sums
    reach 1e5-1e6 on real inputs and overflow 65,504).
    Layout: q/k/v come from one 1x1 conv, then ONE transpose moves the joint axis in front,
    (N, C, T, V) -> (N, V, C, T) (a single-axis move, which runtimes do as a fast 2-D transpose); the heads are
    then a free reshape (N, V, h, d, T) and every product is a batched MatMul on that layout; ONE transpose
    back before the output projection (a 1x1 conv whose BatchNorm exporters fold)."""

    def __init__(self, channels: int, heads: int, qk_ratio: float, eps: float = 1e-4):
        super().__init__()
        self.heads = heads if channels % heads == 0 else 1
        self.qk = max(int(channels * qk_ratio) // self.heads * self.heads, self.heads)
        self.channels, self.eps = channels, eps
        self.qkv = nn.Conv2d(channels, 2 * self.qk + channels, 1, bias=False)
        self.proj = conv_bn(channels, channels)
        nn.init.zeros_(self.proj[1].weight)  # start as identity inside the residual

    def feature_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """phi(q), phi(k) (N, V, h, dk, T) and the values (N, V, h, dv, T) of x (N, C, T, V)."""
        n, c, t, v = x.shape
        h = self.heads
        qkv = pointwise(x, self.qkv.weight, None) if fast_inference(self, x) else self.qkv(x)
        qkv = qkv.permute(0, 3, 1, 2)  # (N, V, 2*qk + C, T)
        q, k, val = torch.split(qkv, [self.qk, self.qk, c], dim=2)
        q = F.elu(q.reshape(n, v, h, -1, t)) + 1.0
        k = F.elu(k.reshape(n, v, h, -1, t)) + 1.0
        return q, k, val.reshape(n, v, h, -1, t)

    def attention_weights(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The attention matrix forward never builds, (N, V, h, T_query, T_key) with rows summing to ~1 (query t
        over keys s: phi(q_t).phi(k_s) / sum_s' phi(q_t).phi(k_s')), and the values (N, V, h, dv, T);
        for interpretability (core.explain), O(T^2)."""
        q, k, val = self.feature_maps(x)
        scores = torch.matmul(q.transpose(-1, -2), k) / x.shape[2]  # (N, V, h, T, T), a mean over keys
        return scores / (scores.sum(dim=-1, keepdim=True) + self.eps), val

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v = x.shape
        q, k, val = self.feature_maps(x)
        kv = torch.matmul(val, k.transpose(-1, -2)) / t  # (N, V, h, dv, dk), a mean over tokens
        k_mean = k.mean(dim=4).unsqueeze(3)  # (N, V, h, 1, dk)
        den = torch.matmul(k_mean, q) + self.eps  # (N, V, h, 1, T)
        # (kv @ q) / den == kv @ (q / den): the division runs on dk rows instead of dv = 4 dk
        out = torch.matmul(kv, q / den).reshape(n, v, c, t).permute(0, 2, 3, 1)  # (N, C, T, V)
        return self.proj(out)


class LASTBlock(nn.Module):
    def __init__(self, cin: int, cout: int, adjacency: np.ndarray, stride: int, cfg: LASTConfig):
        super().__init__()
        self.gcn = AdaptiveGraphConv(cin, cout, adjacency, cfg.adaptive, cfg.dynamic_reduction)
        self.temporal = TemporalUnit(cout, stride, cfg.temporal_kernel, cfg.shift_div)
        self.attention = (LinearTemporalAttention(cout, cfg.attention_heads, cfg.attention_qk_ratio)
                          if cfg.attention else None)
        if cin == cout and stride == 1:
            self.residual: nn.Module = nn.Identity()
        else:
            self.residual = conv_bn(cin, cout, (1, 1), stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.residual(x)
        y = F.relu(self.gcn(x))
        y = self.temporal(y)
        if self.attention is not None:
            y = y + self.attention(y)
        return F.relu(y + res)


class LASTStage(nn.Module):
    def __init__(self, cin: int, cout: int, depth: int, stride: int, adjacency: np.ndarray, cfg: LASTConfig):
        super().__init__()
        self.blocks = nn.Sequential(*[
            LASTBlock(cin if i == 0 else cout, cout, adjacency, stride if i == 0 else 1, cfg)
            for i in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class LAST(nn.Module):
    def __init__(self, cfg: LASTConfig):
        super().__init__()
        self.cfg = cfg
        self.variant = "custom"  # set by the registry
        adjacency = build_adjacency(cfg.layout, cfg.graph_mode)
        self.num_joints = adjacency.shape[-1]
        self.stem = InputStreams(cfg)
        stages, cin = [], self.stem.out_channels
        for cout, depth, stride in cfg.stages:
            stages.append(LASTStage(cin, cout, depth, stride, adjacency, cfg))
            cin = cout
        self.stages = nn.ModuleList(stages)
        self.num_features = cin
        self.dropout = nn.Dropout(cfg.dropout)
        self.fc = nn.Linear(cin, cfg.num_classes)

    def _fold_persons(self, x: torch.Tensor) -> tuple[torch.Tensor, int]:
        if x.dim() != 5:
            raise ValueError(f"LAST expects input (N, C, T, V, M), got shape {tuple(x.shape)}")
        n, c, t, v, m = x.shape
        if not torch.jit.is_tracing() and (v != self.num_joints or c != self.cfg.in_channels):
            raise ValueError(f"LAST({self.cfg.layout}) expects C={self.cfg.in_channels}, V={self.num_joints}; "
                             f"got C={c}, V={v}")
        return x.permute(0, 4, 1, 2, 3).reshape(n * m, c, t, v), m

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps (N*M, C_i, T_i, V) after every stage (for feature distillation)."""
        x, _ = self._fold_persons(x)
        x = self.stem(x)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats

    def forward_intermediates(self, x: torch.Tensor, indices: int | list[int] | None = None,
                              stop_early: bool = False, intermediates_only: bool = False
                              ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """timm-style stage taps: (final feature map (N, M, C, T', V), [stage i output (N*M, C_i, T_i, V) for i in
        indices]). indices: None = every stage, an int n = the last n stages, a list = those stages (negative
        counts from the end). stop_early skips the stages after the last tap (only with intermediates_only)."""
        n_stages = len(self.stages)
        if indices is None:
            take = list(range(n_stages))
        elif isinstance(indices, int):
            take = list(range(n_stages - indices, n_stages))
        else:
            take = [i % n_stages if -n_stages <= i < n_stages else i for i in indices]
        if any(not 0 <= i < n_stages for i in take):
            raise ValueError(f"stage indices {indices} out of range for {n_stages} stages")
        m = x.shape[-1]
        x, _ = self._fold_persons(x)
        x = self.stem(x)
        feats = []
        last = max(take) if (stop_early and intermediates_only and take) else n_stages - 1
        for i, stage in enumerate(self.stages[:last + 1]):
            x = stage(x)
            if i in take:
                feats.append(x)
        if intermediates_only:
            return feats
        return x.reshape(-1, m, *x.shape[1:]), feats

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, V, M) -> (N, M, C_out, T', V) feature map."""
        m = x.shape[-1]
        feat = self.forward_stages(x)[-1]
        return feat.reshape(-1, m, *feat.shape[1:])

    def forward_head(self, feat: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        pooled = feat.mean(dim=(3, 4)).mean(dim=1)  # over time and joints, then persons
        if pre_logits:
            return pooled
        return self.fc(self.dropout(pooled))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# ---------------------------------------------------------------------------------------------
# Variant registry (timm-style: one config, one small function per variant)

_VARIANTS: dict[str, Callable[..., LAST]] = {}


# Stage widths; the Lite variants keep their full sibling's stages without adaptive graph and attention.
NANO = dict(stem_channels=12, stages=((24, 1, 1), (48, 1, 2), (80, 1, 2)))
SMALL = dict(stem_channels=16, stages=((32, 1, 1), (64, 2, 2), (128, 1, 2)))
BASE = dict(stem_channels=32, stages=((64, 1, 2), (128, 2, 2), (192, 2, 2)))
LARGE = dict(stem_channels=24, stages=((48, 1, 2), (128, 2, 2), (288, 3, 2)))


def register_variant(fn: Callable[..., LAST]) -> Callable[..., LAST]:
    _VARIANTS[fn.__name__] = fn
    return fn


def _make(name: str, base: LASTConfig, **overrides: Any) -> LAST:
    model = LAST(replace(base, **overrides))
    model.variant = name
    return model


@register_variant
def last_nano(**kwargs: Any) -> LAST:
    return _make("last_nano", LASTConfig(**NANO), **kwargs)


@register_variant
def last_small(**kwargs: Any) -> LAST:
    return _make("last_small", LASTConfig(**SMALL), **kwargs)


@register_variant
def last_base(**kwargs: Any) -> LAST:
    return _make("last_base", LASTConfig(**BASE), **kwargs)


@register_variant
def last_large(**kwargs: Any) -> LAST:
    return _make("last_large", LASTConfig(**LARGE), **kwargs)


@register_variant
def last_lite_nano(**kwargs: Any) -> LAST:
    return _make("last_lite_nano", LASTConfig(**NANO,
                                              adaptive=False, attention=False), **kwargs)


@register_variant
def last_lite_small(**kwargs: Any) -> LAST:
    return _make("last_lite_small", LASTConfig(**SMALL,
                                               adaptive=False, attention=False), **kwargs)


def list_variants() -> list[str]:
    return list(_VARIANTS)


def create_model(variant: str, **kwargs: Any) -> LAST:
    if variant not in _VARIANTS:
        raise KeyError(f"unknown LAST variant {variant!r}{did_you_mean(variant, _VARIANTS)}; known variants: "
                       f"{', '.join(_VARIANTS)}")
    return _VARIANTS[variant](**kwargs)


def variant_config(variant: str, **kwargs: Any) -> LASTConfig:
    """The resolved config a variant builds with these overrides."""
    return create_model(variant, **kwargs).cfg
