"""Training-time skeleton augmentation on the preprocessed (C, T, V, M) clip.

After preprocessing the skeleton is centred, aligned (x right, y up, z forward) and scaled to unit
torso length, so rotations about y are viewpoint changes and the noise sigma is in torso lengths.
Missing (all-zero) joints stay zero.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def rotation_matrix(ax: float, ay: float, az: float) -> np.ndarray:
    """Rotation about x, then y, then z (radians)."""
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


class SkeletonAugment:
    """Random rotation, scale, shear, Gaussian noise and optional left/right flip, each with its own
    probability; called as augment(x (C, T, V, M), rng) -> x."""

    def __init__(self, rotate_deg: Sequence[float] = (0.0, 15.0, 0.0), rotate_prob: float = 0.5,
                 scale: float = 0.1, scale_prob: float = 0.5, shear: float = 0.1, shear_prob: float = 0.3,
                 noise: float = 0.001, noise_prob: float = 0.5, flip_prob: float = 0.0,
                 flip_index: Sequence[int] | None = None):
        self.rotate = np.deg2rad(np.asarray(rotate_deg, dtype=np.float64))
        self.rotate_prob, self.scale, self.scale_prob = rotate_prob, scale, scale_prob
        self.shear, self.shear_prob, self.noise, self.noise_prob = shear, shear_prob, noise, noise_prob
        self.flip_prob = flip_prob
        self.flip_index = None if flip_index is None else np.asarray(flip_index, dtype=np.int64)
        if flip_prob > 0 and self.flip_index is None:
            raise ValueError("flip_prob > 0 needs the layout's flip_index")

    @classmethod
    def from_config(cls, cfg: dict[str, Any], layout: Any = None) -> "SkeletonAugment | None":
        if not cfg.get("enabled", True):
            return None
        kwargs = {k: v for k, v in cfg.items() if k != "enabled"}
        flip_index = getattr(layout, "flip_index", None) if layout is not None else None
        return cls(**kwargs, flip_index=flip_index)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        c = x.shape[0]
        missing = np.abs(x).sum(axis=0, keepdims=True) == 0
        x = np.asarray(x, dtype=np.float32)
        if self.flip_prob > 0 and rng.random() < self.flip_prob:
            x = x[:, :, self.flip_index].copy()
            x[0] = -x[0]
            missing = missing[:, :, self.flip_index]
        if c == 3:
            mat = np.eye(3)
            if self.rotate.any() and rng.random() < self.rotate_prob:
                mat = rotation_matrix(*(rng.uniform(-1, 1, 3) * self.rotate)) @ mat
            if self.shear > 0 and rng.random() < self.shear_prob:
                sh = np.eye(3)
                off = ~np.eye(3, dtype=bool)
                sh[off] = rng.uniform(-self.shear, self.shear, 6)
                mat = sh @ mat
            if self.scale > 0 and rng.random() < self.scale_prob:
                mat = rng.uniform(1 - self.scale, 1 + self.scale) * mat
            if not np.allclose(mat, np.eye(3)):
                x = np.einsum("ij,jtvm->itvm", mat.astype(np.float32), x)
        elif self.scale > 0 and rng.random() < self.scale_prob:
            x = x * np.float32(rng.uniform(1 - self.scale, 1 + self.scale))
        if self.noise > 0 and rng.random() < self.noise_prob:
            x = x + rng.normal(0.0, self.noise, x.shape).astype(np.float32)
        return np.where(missing, 0.0, x).astype(np.float32)
