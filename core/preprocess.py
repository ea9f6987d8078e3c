"""Preprocessing shared by training, evaluation and the edge loop.

Arrays are (M, T, V, C) skeletons in, (C, T, V, M) model input out. A frame whose joints are all
zero is 'missing' and stays zero through every step.
"""
from __future__ import annotations

import numpy as np

from core.layouts import Layout, get_layout
from core.spec import InputSpec

EPS = 1e-6


def valid_frames(x: np.ndarray) -> np.ndarray:
    """(T,) mask of frames where any person has any non-zero joint."""
    return np.abs(x).sum(axis=(0, 2, 3)) > 0


def valid_length(x: np.ndarray) -> int:
    """Frames up to and including the last valid one."""
    idx = np.flatnonzero(valid_frames(x))
    return int(idx[-1] + 1) if idx.size else 0


def _centre(frame: np.ndarray, layout: Layout) -> np.ndarray:
    return frame[list(layout.center)].mean(axis=0)


def _body_axes(person: np.ndarray, layout: Layout, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean up (hips -> shoulders or spine) and right (left -> right) vectors over present frames."""
    p = person[present]
    if layout.spine is not None:
        up = p[:, layout.spine[1]] - p[:, layout.spine[0]]
    else:
        up = p[:, list(layout.shoulders)].mean(1) - p[:, list(layout.hips)].mean(1)
    right = (p[:, layout.shoulders[1]] - p[:, layout.shoulders[0]]) + (p[:, layout.hips[1]] - p[:, layout.hips[0]])
    return up.mean(0), right.mean(0)


def canonical_rotation(up: np.ndarray, right: np.ndarray) -> np.ndarray | None:
    """Rotation whose rows are the body's right, up and forward axes (None if degenerate)."""
    y_norm = np.linalg.norm(up)
    if y_norm < EPS:
        return None
    y = up / y_norm
    x = right - (right @ y) * y
    x_norm = np.linalg.norm(x)
    if x_norm < EPS:
        return None
    x = x / x_norm
    z = np.cross(x, y)
    return np.stack([x, y, z]).astype(np.float32)


def normalize(x: np.ndarray, layout: str | Layout, center: bool = True, align: bool = True,
              scale: bool = True) -> np.ndarray:
    """Centre on the main person's centre in the first valid frame, rotate to a canonical
    orientation, scale to unit torso length. Missing joints/frames stay zero."""
    layout = get_layout(layout)
    x = np.asarray(x, dtype=np.float32).copy()
    missing = np.abs(x).sum(-1, keepdims=True) == 0  # (M, T, V, 1)
    main_present = np.abs(x[0]).sum(axis=(1, 2)) > 0
    if not main_present.any():
        return x
    first = int(np.flatnonzero(main_present)[0])
    if center:
        x = x - _centre(x[0, first], layout)
    if x.shape[-1] == 3 and (align or scale) and layout.hips is not None:
        up, right = _body_axes(x[0], layout, main_present)
        if align:
            rot = canonical_rotation(up, right)
            if rot is not None:
                x = x @ rot.T
        if scale:
            torso = float(np.linalg.norm(up))
            if torso > EPS:
                x = x / torso
    return np.where(missing, 0.0, x).astype(np.float32)


def temporal_indices(length: int, frames: int, sampling: str = "uniform", pad: str = "repeat",
                     rng: np.random.Generator | None = None, crop_ratio: tuple[float, float] | None = None
                     ) -> np.ndarray:
    """Indices into a clip of `length` valid frames giving exactly `frames` frames.

    uniform: spread over the clip (short clips are stretched by repeating frames).
    center: the central `frames` frames; short clips are padded (repeat: loop, zero: index -1).
    crop_ratio (training): a random valid interval of ratio in [lo, hi] of the clip, then uniform.
    """
    if length <= 0:
        return np.full(frames, -1, dtype=np.int64)
    if crop_ratio is not None:
        rng = rng or np.random.default_rng()
        ratio = rng.uniform(*crop_ratio)
        span = int(np.clip(round(length * ratio), 1, length))
        start = int(rng.integers(0, length - span + 1))
        return start + np.floor(np.linspace(0, span, frames, endpoint=False)).astype(np.int64)
    if sampling == "uniform":
        return np.floor(np.linspace(0, length, frames, endpoint=False)).astype(np.int64)
    if sampling == "center":
        if length >= frames:
            start = (length - frames) // 2
            return np.arange(start, start + frames)
        if pad == "repeat":
            return np.arange(frames) % length
        return np.concatenate([np.arange(length), np.full(frames - length, -1)])
    raise ValueError(f"unknown temporal sampling {sampling!r}")


def take_frames(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """x[:, idx] with index -1 meaning an all-zero frame."""
    out = x[:, np.clip(idx, 0, None)]
    out[:, idx < 0] = 0
    return out


def fit_persons(x: np.ndarray, persons: int) -> np.ndarray:
    """Keep the first `persons` people, zero-padding if fewer."""
    if x.shape[0] >= persons:
        return x[:persons]
    pad = np.zeros((persons - x.shape[0],) + x.shape[1:], dtype=x.dtype)
    return np.concatenate([x, pad], axis=0)


def to_model_input(x: np.ndarray) -> np.ndarray:
    """(M, T, V, C) -> (C, T, V, M) float32."""
    return np.ascontiguousarray(np.transpose(x, (3, 1, 2, 0)), dtype=np.float32)


def prepare_clip(x: np.ndarray, spec: InputSpec, rng: np.random.Generator | None = None,
                 crop_ratio: tuple[float, float] | None = None) -> np.ndarray:
    """A raw clip (M, T, V, C) -> model input (C, frames, V, persons), exactly as the spec says.
    The edge loop calls this on its window; training calls it with a crop_ratio and then augments."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 3:
        x = x[None]
    if x.shape[-1] < spec.channels:
        raise ValueError(f"clip has {x.shape[-1]} channels, the input spec needs {spec.channels}")
    x = fit_persons(x[..., :spec.channels], spec.persons)
    layout = get_layout(spec.layout)
    if x.shape[2] != layout.num_joints:
        raise ValueError(f"clip has {x.shape[2]} joints but layout {layout.name!r} has {layout.num_joints}")
    idx = temporal_indices(valid_length(x), spec.frames, spec.sampling, spec.pad, rng, crop_ratio)
    x = take_frames(x, idx)
    x = normalize(x, layout, spec.center, spec.align, spec.scale)
    return to_model_input(x)
