"""A data set split held as arrays: the one shape every loader produces and every consumer reads."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class SkeletonSplit:
    data: np.ndarray  # (N, M, T_max, V, C) raw coordinates, zero-padded in time and persons
    lengths: np.ndarray  # (N,) valid frames per sample
    labels: np.ndarray  # (N,) int64 in [0, len(class_names))
    names: list[str]
    class_names: list[str]
    layout: str
    fps: float | None = None
    name: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        n = len(self.data)
        if not (len(self.lengths) == len(self.labels) == len(self.names) == n):
            raise ValueError(f"split {self.name!r}: data, lengths, labels and names differ in length")
        if self.data.ndim != 5:
            raise ValueError(f"split {self.name!r}: data must be (N, M, T, V, C), got shape {self.data.shape}")
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.lengths = np.asarray(self.lengths, dtype=np.int64)
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            raise ValueError(f"split {self.name!r}: labels outside [0, {len(self.class_names)})")

    def __len__(self) -> int:
        return len(self.data)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_joints(self) -> int:
        return int(self.data.shape[3])

    def sample(self, i: int) -> np.ndarray:
        """(M, T_i, V, C) float32 valid frames of sample i."""
        return np.asarray(self.data[i, :, : max(int(self.lengths[i]), 1)], dtype=np.float32)

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.num_classes)

    def subset(self, index: np.ndarray, name: str | None = None) -> "SkeletonSplit":
        index = np.asarray(index)
        return SkeletonSplit(self.data[index], self.lengths[index], self.labels[index],
                             [self.names[i] for i in index], list(self.class_names), self.layout, self.fps,
                             name or self.name, dict(self.info))
