"""torch Dataset over a SkeletonSplit: temporal sampling and normalisation from the InputSpec."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from core.data.augment import build_augment, resolve_config
from core.data.augment import crop_ratio as config_crop
from core.data.prepared import SkeletonSplit
from core.preprocess import prepare_clip
from core.spec import InputSpec


class SkeletonDataset(Dataset):
    """Yields (x (C, T, V, M) float32, label). With train=True a random valid interval is cropped
    (crop_ratio) and the optional `augment` callable is applied to the (C, T, V, M) array.
    `augment` may also be a config dict (core.data.augment); its `crop` entry, if given, overrides
    crop_ratio (`crop: false` turns the random crop off)."""

    def __init__(self, split: SkeletonSplit, spec: InputSpec, train: bool = False,
                 augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | dict[str, Any] | None = None,
                 seed: int = 0, crop_ratio: tuple[float, float] = (0.5, 1.0)):
        if split.layout != spec.layout:
            raise ValueError(f"data set {split.name!r} uses layout {split.layout!r} but the model expects "
                             f"{spec.layout!r}")
        self.split, self.spec, self.train = split, spec, train
        if isinstance(augment, (dict, bool)):  # a config (YAML): see core.data.augment
            if "crop" in resolve_config(augment) or (isinstance(augment, dict) and augment.get("crop") is False):
                crop_ratio = config_crop(augment)
            augment = build_augment(augment, spec.layout)
        self.augment = augment
        self.seed, self.epoch = seed, 0
        self.crop_ratio = crop_ratio if train else None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        rng = np.random.default_rng((self.seed, self.epoch, i)) if self.train else None
        x = prepare_clip(self.split.sample(i), self.spec, rng=rng, crop_ratio=self.crop_ratio)
        if self.train and callable(self.augment):
            x = self.augment(x, rng)
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), int(self.split.labels[i])
