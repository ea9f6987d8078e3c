"""LAST: Lightweight Adaptive-Shift Transformer for skeleton action recognition.

blocks (adaptive graph conv -> temporal shift -> linear temporal attention) -> stages -> model.
Input (N, C, T, V, M) joints; velocity/bone streams are computed inside the model so every exported
artifact takes raw (preprocessed) joints.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.cli import did_you_mean
from core.graph import build_adjacency
from core.layouts import get_layout
from core.spec import STREAMS


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
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown LAST config keys {unknown}")
        return cls(**d)


def conv_bn(cin: int, cout: int, kernel: tuple[int, int] = (1, 1), stride: int = 1, groups: int = 1) -> nn.Sequential:
    pad = ((kernel[0] - 1) // 2, (kernel[1] - 1) // 2)
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, (stride, 1), pad, groups=groups, bias=False),
                         nn.BatchNorm2d(cout))


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
            nn.Sequential(nn.Conv2d(cfg.in_channels, cfg.stem_channels, 1, bias=False),
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
            s = bn(s.permute(0, 1, 3, 2).reshape(n, c * v, t)).reshape(n, c, v, t).permute(0, 1, 3, 2)
            outs.append(stem(s))
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)


class AdaptiveGraphConv(nn.Module):
    """x' = sum_k (A_physical[k] + A_learned[k] + A_dynamic(x)[k]) applied to W_k x.

    A_dynamic is per sample: tanh of the similarity of two temporal-pooled joint embeddings."""

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

    def adjacency(self, x: torch.Tensor) -> torch.Tensor:
        a = self.a_physical
        if not self.adaptive:
            return a
        a = a + self.a_learned
        n, _, _, v = x.shape
        e = self.embed(x).mean(dim=2).reshape(n, 2, self.subsets, self.embed_channels, v)
        dyn = torch.tanh(torch.matmul(e[:, 0].transpose(-1, -2), e[:, 1]) / self.embed_channels)
        return a + self.alpha * dyn  # (N, K, V, V)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, t, v = x.shape
        a = self.adjacency(x)
        y = self.conv(x).reshape(n, self.subsets, self.cout * t, v)
        y = torch.matmul(y, a).sum(dim=1).reshape(n, self.cout, t, v)
        return self.bn(y)


class TemporalShift(nn.Module):
    """Shift 1/div of the channels one frame forward and 1/div backward (no FLOPs, no parameters)."""

    def __init__(self, channels: int, div: int = 8):
        super().__init__()
        self.fold = channels // div

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.fold
        if f == 0:
            return x
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
    reach 1e5-1e6 on real inputs and overflow 65,504)."""

    def __init__(self, channels: int, heads: int, qk_ratio: float, eps: float = 1e-4):
        super().__init__()
        self.heads = heads if channels % heads == 0 else 1
        self.qk = max(int(channels * qk_ratio) // self.heads * self.heads, self.heads)
        self.channels, self.eps = channels, eps
        self.qkv = nn.Conv2d(channels, 2 * self.qk + channels, 1, bias=False)
        self.proj = conv_bn(channels, channels)
        nn.init.zeros_(self.proj[1].weight)  # start as identity inside the residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v = x.shape
        h = self.heads
        q, k, val = torch.split(self.qkv(x), [self.qk, self.qk, c], dim=1)

        def tokens(z: torch.Tensor) -> torch.Tensor:  # (N, h*d, T, V) -> (N, h, V, T, d)
            return z.reshape(n, h, -1, t, v).permute(0, 1, 4, 3, 2)

        q, k, val = F.elu(tokens(q)) + 1.0, F.elu(tokens(k)) + 1.0, tokens(val)
        kv = torch.matmul(k.transpose(-1, -2), val) / t  # (N, h, V, dk, dv), a mean over tokens
        k_mean = k.mean(dim=3, keepdim=True)  # (N, h, V, 1, dk)
        num = torch.matmul(q, kv)  # (N, h, V, T, dv)
        den = torch.matmul(q, k_mean.transpose(-1, -2)) + self.eps  # (N, h, V, T, 1)
        out = (num / den).permute(0, 1, 4, 3, 2).reshape(n, c, t, v)
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
