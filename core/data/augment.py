"""Training-time augmentation of model inputs (C, T, V, M), pyskl style: small seeded callables
``aug(x, rng) -> x``, applied on the fly by ``SkeletonDataset(train=True)``.

Defaults follow the design notes' table (ranges and probabilities):

| name | what | default |
|---|---|---|
| rotate | rotation about each of `axes` by U(-max_deg, max_deg) | ±15°, axes xyz, p 0.5 |
| scale | multiply coordinates by U(low, high) (one factor, or one per axis) | 0.9-1.1, p 0.5 |
| shear | x' = S x with off-diagonal terms U(-max, max) | ±0.1, p 0.3 |
| noise | add N(0, std) to present joints | σ 0.001, p 0.5 |
| flip | swap left/right joints (layout.flip_index) and mirror x | p 0.5 |
| crop | random valid interval of ratio U(lo, hi) before resampling (prepare_clip) | 0.5-1.0 |

Rotation, scale and shear are combined into one matrix and applied in one product; joints that are
missing (all zero) stay zero. The config is a plain dict (from YAML): each key is `true`/`false` or a
dict of parameters, e.g. ``{"rotate": {"max_deg": 10}, "shear": False, "flip": {"p": 0.5}}``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from core.layouts import get_layout

Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]

DEFAULT_AUGMENT: dict[str, dict[str, Any]] = {
    "rotate": {"max_deg": 15.0, "axes": "xyz", "p": 0.5},
    "scale": {"low": 0.9, "high": 1.1, "per_axis": False, "p": 0.5},
    "shear": {"max": 0.1, "p": 0.3},
    "noise": {"std": 0.001, "p": 0.5},
    "flip": {"p": 0.5},
    "crop": {"ratio": [0.5, 1.0]},
}


def _rotation(axis: str, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def apply_linear(x: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """x (C, T, V, M) -> matrix @ x over the first (coordinate) axis; missing joints stay zero."""
    c = matrix.shape[0]
    present = np.any(x != 0, axis=0, keepdims=True)  # NaN counts as present: never hide bad data
    out = x.copy()
    out[:c] = np.einsum("ij,j...->i...", matrix.astype(np.float32), x[:c])
    return np.where(present, out, 0.0).astype(np.float32)


class RandomLinear:
    """An augmentation that multiplies the coordinates by a random matrix (its `matrix`), with probability p."""

    p: float

    def matrix(self, rng: np.random.Generator, channels: int = 3) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return apply_linear(x, self.matrix(rng, min(x.shape[0], 3))) if rng.random() < self.p else x


@dataclass
class RandomRotate(RandomLinear):
    """max_deg: one limit for every axis in `axes`, or [x, y, z] limits (0 disables that axis)."""
    max_deg: float | list[float] = 15.0
    axes: str = "xyz"
    p: float = 0.5

    def matrix(self, rng: np.random.Generator, channels: int = 3) -> np.ndarray:
        limits = np.broadcast_to(np.asarray(self.max_deg, dtype=np.float64), (3,))
        limits = {a: lim for a, lim in zip("xyz", limits) if a in self.axes and lim > 0}
        if channels < 3:  # 2D skeletons only rotate in the image plane
            limits = {"z": max(limits.values(), default=0.0)}
        m = np.eye(3)
        for axis, lim in limits.items():
            m = _rotation(axis, np.deg2rad(rng.uniform(-lim, lim))) @ m
        return m[:channels, :channels]


@dataclass
class RandomScale(RandomLinear):
    low: float = 0.9
    high: float = 1.1
    per_axis: bool = False
    p: float = 0.5

    def matrix(self, rng: np.random.Generator, channels: int = 3) -> np.ndarray:
        factors = rng.uniform(self.low, self.high, size=channels if self.per_axis else 1)
        return np.diag(np.broadcast_to(factors, (channels,)))


@dataclass
class RandomShear(RandomLinear):
    max: float = 0.1
    p: float = 0.3

    def matrix(self, rng: np.random.Generator, channels: int = 3) -> np.ndarray:
        m = np.eye(channels) + rng.uniform(-self.max, self.max, size=(channels, channels)) * (1 - np.eye(channels))
        return m


@dataclass
class GaussianNoise:
    std: float = 0.001
    p: float = 0.5

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() >= self.p:
            return x
        present = np.any(x != 0, axis=0, keepdims=True)  # NaN counts as present: never hide bad data
        return np.where(present, x + rng.normal(0.0, self.std, size=x.shape), 0.0).astype(np.float32)


@dataclass
class RandomFlip:
    """Mirror the body: swap left/right joints and negate x (the body's left-right axis after align)."""
    flip_index: np.ndarray
    p: float = 0.5

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() >= self.p:
            return x
        out = x[:, :, self.flip_index].copy()
        out[0] = -out[0]
        return out + np.float32(0.0)  # -0.0 -> 0.0


class Compose:
    """Applies the steps in order; the linear ones (rotate, scale, shear) that fire are fused into
    one matrix product."""

    def __init__(self, steps: list[Augment]):
        self.steps = list(steps)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        channels = min(x.shape[0], 3)
        matrix = None
        for step in self.steps:
            if isinstance(step, (RandomRotate, RandomScale, RandomShear)):
                if rng.random() < step.p:
                    m = step.matrix(rng, channels)
                    matrix = m if matrix is None else m @ matrix
                continue
            if matrix is not None:
                x, matrix = apply_linear(x, matrix), None
            x = step(x, rng)
        return apply_linear(x, matrix) if matrix is not None else x

    def __repr__(self) -> str:
        return f"Compose({self.steps})"


def _options(config: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = config.get(key, False)
    if value is False or value is None:
        return None
    if value is True:
        return dict(DEFAULT_AUGMENT[key])
    if not isinstance(value, dict):
        raise ValueError(f"augment.{key} must be true, false or a dict of parameters, got {value!r}")
    return {**DEFAULT_AUGMENT[key], **value}


FLAT_KEYS = {"enabled", "rotate_deg", "rotate_prob", "scale", "scale_prob", "shear", "shear_prob", "noise",
             "noise_prob", "flip_prob", "crop_ratio"}


def from_flat_config(flat: dict[str, Any]) -> dict[str, Any]:
    """The flat form (train/config.py's `augment:` block: rotate_deg [x, y, z], rotate_prob, scale (+-),
    scale_prob, shear, shear_prob, noise, noise_prob, flip_prob, enabled) -> the nested form."""
    unknown = sorted(set(flat) - FLAT_KEYS)
    if unknown:
        raise ValueError(f"unknown augmentation key(s) {unknown}; known: {sorted(FLAT_KEYS)}")
    if not flat.get("enabled", True):
        return {}
    d = DEFAULT_AUGMENT
    out: dict[str, Any] = {}
    rot = flat.get("rotate_deg", d["rotate"]["max_deg"])
    if np.any(np.asarray(rot, dtype=float) > 0):
        out["rotate"] = {"max_deg": [float(v) for v in np.broadcast_to(np.asarray(rot, dtype=float), (3,))],
                         "axes": "xyz",
                         "p": flat.get("rotate_prob", d["rotate"]["p"])}
    if flat.get("scale", 0.1):
        s = float(flat.get("scale", 0.1))
        out["scale"] = {"low": 1 - s, "high": 1 + s, "p": flat.get("scale_prob", d["scale"]["p"])}
    if flat.get("shear", d["shear"]["max"]):
        out["shear"] = {"max": flat.get("shear", d["shear"]["max"]), "p": flat.get("shear_prob", d["shear"]["p"])}
    if flat.get("noise", d["noise"]["std"]):
        out["noise"] = {"std": flat.get("noise", d["noise"]["std"]), "p": flat.get("noise_prob", d["noise"]["p"])}
    if flat.get("flip_prob", 0.0):
        out["flip"] = {"p": flat["flip_prob"]}
    if "crop_ratio" in flat:
        out["crop"] = {"ratio": flat["crop_ratio"]} if flat["crop_ratio"] else False
    return out


def resolve_config(config: dict[str, Any] | bool | None) -> dict[str, Any]:
    """true -> every default; a dict -> only the listed steps (true = that step's defaults).
    The flat form of train/config.py (rotate_deg, rotate_prob, ...) is accepted too."""
    if config is True:
        return {k: dict(v) for k, v in DEFAULT_AUGMENT.items()}
    if not config:
        return {}
    scale = config.get("scale")
    if set(config) & (FLAT_KEYS - {"scale"}) or (isinstance(scale, (int, float)) and not isinstance(scale, bool)):
        config = from_flat_config(config)
    unknown = sorted(set(config) - set(DEFAULT_AUGMENT))
    if unknown:
        raise ValueError(f"unknown augmentation(s) {unknown}; known: {sorted(DEFAULT_AUGMENT)}")
    return {k: opts for k in DEFAULT_AUGMENT if (opts := _options(config, k)) is not None}


def build_augment(config: dict[str, Any] | bool | None, layout: str) -> Compose | None:
    """The per-sample augmentation for a config (the temporal crop is not part of it: see crop_ratio)."""
    cfg = resolve_config(config)
    steps: list[Augment] = []
    try:
        if "flip" in cfg:
            steps.append(RandomFlip(get_layout(layout).flip_index, **cfg["flip"]))
        if "rotate" in cfg:
            steps.append(RandomRotate(**cfg["rotate"]))
        if "scale" in cfg:
            steps.append(RandomScale(**cfg["scale"]))
        if "shear" in cfg:
            steps.append(RandomShear(**cfg["shear"]))
        if "noise" in cfg:
            steps.append(GaussianNoise(**cfg["noise"]))
    except TypeError as e:
        raise ValueError(f"bad augmentation parameters: {e}") from e
    return Compose(steps) if steps else None


def crop_ratio(config: dict[str, Any] | bool | None) -> tuple[float, float] | None:
    """The training crop interval ratio from a config, or None (plain uniform sampling)."""
    cfg = resolve_config(config)
    if "crop" not in cfg:
        return None
    lo, hi = (float(v) for v in cfg["crop"]["ratio"])
    if not 0 < lo <= hi <= 1:
        raise ValueError(f"augment.crop.ratio must satisfy 0 < lo <= hi <= 1, got {[lo, hi]}")
    return lo, hi
