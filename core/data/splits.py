"""Stratified sampling and the validation protocol: the one place that draws subsets of a split.

Every data set gets a validation split. Where it has none of its own (NW-UCLA, NTU, MediaPipe recordings,
custom folders without a `val` split), `val` is a fixed, stratified slice of the *training* split: the same
clips in every run and process (chosen from the clips sorted by name, with a fixed seed), disjoint from the
test split, and removed from the clips a model trains on. The validation split alone chooses (best epoch,
early stopping, hyper-parameters, INT8 settings); the test split is scored, never used to choose.

    fit_idx, val_idx = validation_indices(train.names, train.labels)     # 10 % per class, seed 0
    info = validation_info(train, val_idx)                               # stored with the run
"""
from __future__ import annotations

import hashlib
from typing import Any, Sequence

import numpy as np

DEFAULT_VAL_FRACTION = 0.1
DEFAULT_VAL_SEED = 0


def stratified_indices(labels: np.ndarray, num: int, seed: int = 0) -> np.ndarray:
    """`num` sorted indices whose class proportions follow `labels` (largest remainder), at least one per class
    when num allows; deterministic for a seed."""
    labels = np.asarray(labels)
    n = len(labels)
    if num >= n:
        return np.arange(n)
    if num <= 0:
        return np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts / n * num
    take = np.floor(quota).astype(int)
    if num >= len(classes):
        take = np.maximum(take, 1)
    while take.sum() < num:  # hand out what is left by largest remainder, never above a class's count
        room = take < counts
        remainder = np.where(room, quota - take, -np.inf)
        take[int(np.argmax(remainder))] += 1
    while take.sum() > num:  # the at-least-one rule can overshoot by a few
        take[int(np.argmax(take))] -= 1
    chosen = [rng.choice(np.flatnonzero(labels == c), size=k, replace=False) for c, k in zip(classes, take) if k]
    return np.sort(np.concatenate(chosen))


def stratified_fraction(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of `fraction` of every class (at least one sample per class), drawn with `seed`."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    keep = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        take = max(1, int(round(fraction * len(members))))
        keep.append(rng.choice(members, size=take, replace=False))
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)


def validation_indices(names: Sequence[str], labels: np.ndarray, fraction: float = DEFAULT_VAL_FRACTION,
                       seed: int = DEFAULT_VAL_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(fit indices, validation indices) of a training split: `fraction` of every class (at least one clip of a
    class with two or more), drawn from the clips sorted by name so the slice does not depend on load order."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    names = [str(n) for n in names]
    labels = np.asarray(labels, dtype=np.int64)
    if len(names) != len(labels):
        raise ValueError(f"{len(names)} names for {len(labels)} labels")
    if len(set(names)) != len(names):
        raise ValueError("the training split repeats clip names; a validation slice needs unique names")
    order = np.argsort(np.asarray(names, dtype=object), kind="stable")
    rng = np.random.default_rng(seed)
    picked = []
    for c in np.unique(labels):
        members = order[labels[order] == c]  # this class's clips in name order
        if len(members) < 2:
            continue  # a class with one clip keeps it for training
        take = min(len(members) - 1, max(1, int(round(fraction * len(members)))))
        picked.append(members[rng.permutation(len(members))[:take]])
    val = np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)
    return np.setdiff1d(np.arange(len(names)), val), val


def names_digest(names: Sequence[str]) -> str:
    """A short, order-independent fingerprint of a set of clip names (sha256 of the sorted names)."""
    h = hashlib.sha256("\n".join(sorted(str(n) for n in names)).encode("utf-8"))
    return h.hexdigest()[:16]


def validation_info(source: str, names: Sequence[str], fraction: float | None, seed: int | None) -> dict[str, Any]:
    """What a run stores about its validation split: where it came from and a fingerprint of its clips."""
    return {"source": source, "fraction": fraction, "seed": seed, "clips": len(names),
            "digest": names_digest(names)}


def shared_clip_count(train_names: Sequence[str], other_names: Sequence[str]) -> int:
    """How many clip names two splits share (a validation or test split must share none with training)."""
    return len(set(map(str, train_names)) & set(map(str, other_names)))
