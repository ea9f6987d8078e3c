"""Data sets as ``SkeletonSplit`` arrays, by name.

    load_split("nw_ucla", "train")            # NW-UCLA cross-view: views 1+2 (1,020) / view 3 (464)
    load_split("synthetic", "train")          # procedural demo actions (ntu25; "synthetic:coco17" for others)
    load_split("mediapipe", "test")           # ../shared/data/mediapipe/pose33_sequences.npz
    load_split("mediapipe:ntu25", "test")     # the same, mapped to ntu25 by core.mapping
    load_split("ntu60-xsub", "train", root="runs/data/ntu120")   # from a built NTU directory
    load_split("custom:my_folder", "train")   # a custom-format folder or its imported directory
    load_split("runs/data/my_set", "test")    # any prepared directory
    load_split("nw_ucla", "val")              # every data set has one: its own, or a fixed slice of "train"

Validation: a data set without a validation split of its own gets a fixed, stratified slice of its training split
(`core.data.splits`: 10 % per class, seed 0, chosen from the clips sorted by name); the trainer removes those clips
from the ones it trains on.
"""
from __future__ import annotations

import os
from pathlib import Path

from core.data.prepared import SkeletonSplit
from core.data.splits import DEFAULT_VAL_FRACTION, DEFAULT_VAL_SEED, validation_indices, validation_info

NTU_BENCHMARKS = ("ntu60-xsub", "ntu60-xview", "ntu120-xsub", "ntu120-xset")
DATASETS = ("nw_ucla", "synthetic", "mediapipe", "custom:<dir>", *NTU_BENCHMARKS, "<prepared dir>")
SYNTHETIC_SEEDS = {"train": 0, "val": 1, "test": 2}


def _synthetic(dataset: str, split: str) -> SkeletonSplit:
    from core.synthetic import make_synthetic_split
    layout = dataset.split(":", 1)[1] if ":" in dataset else "ntu25"
    if split not in SYNTHETIC_SEEDS:
        raise ValueError(f"unknown synthetic split {split!r}; choose from {sorted(SYNTHETIC_SEEDS)}")
    per_class = 20 if split == "train" else 8
    return make_synthetic_split(layout, per_class=per_class, seed=SYNTHETIC_SEEDS[split],
                                name=f"synthetic-{split}")


VALIDATION_SPLITS = ("val", "validation")


def load_split(dataset: str, split: str = "train", root: str | os.PathLike | None = None,
               val_fraction: float = DEFAULT_VAL_FRACTION, val_seed: int = DEFAULT_VAL_SEED) -> SkeletonSplit:
    """Load one split of a data set by name (see the module docstring for the names).

    root overrides where the data set lives: the NW-UCLA json folder, the MediaPipe .npz, or the built
    NTU directory (default runs/data/ntu120, else runs/data/ntu60, or $LAST_DATA/...).
    split 'val' (or 'validation') is the data set's own validation split where it has one, else the fixed
    stratified slice (`val_fraction` of every class, `val_seed`) of its training split; either way its
    `info["validation"]` says which.
    """
    if split not in VALIDATION_SPLITS:
        return _load(dataset, split, root)
    try:
        val = _load(dataset, "val", root)
        val.info["validation"] = validation_info(f"{val.name} (the data set's own)", val.names, None, None)
        return val
    except (KeyError, ValueError):  # no validation split of its own: a slice of the training split
        pass
    train = _load(dataset, "train", root)
    _, index = validation_indices(train.names, train.labels, val_fraction, val_seed)
    base = train.name[:-len("-train")] if train.name.endswith("-train") else train.name
    val = train.subset(index, name=f"{base}-val")
    val.info["validation"] = validation_info(f"slice of {train.name}", val.names, val_fraction, val_seed)
    return val


def _load(dataset: str, split: str, root: str | os.PathLike | None) -> SkeletonSplit:
    key = dataset.strip()
    low = key.lower().replace("-", "_")
    if low in ("nw_ucla", "nwucla", "ucla"):
        from core.data.nw_ucla import load_nw_ucla
        return load_nw_ucla(split, root)
    if low == "synthetic" or low.startswith("synthetic:"):
        return _synthetic(key, split)
    if low in ("mediapipe", "mediapipe33") or low.startswith("mediapipe:"):
        from core.data.mediapipe import load_mediapipe
        layout = key.split(":", 1)[1] if ":" in key else "mediapipe33"
        return load_mediapipe(split, root, layout=layout)
    if key.lower().replace("_", "-") in NTU_BENCHMARKS:  # ntu60-xsub or ntu60_xsub
        from core.data.ntu import load_ntu
        return load_ntu(key.lower().replace("_", "-"), split, root)
    if key.startswith("custom:"):
        from core.data.custom import load_custom
        return load_custom(key[len("custom:"):], split)
    if Path(key).is_dir():
        from core.data.custom import load_custom
        return load_custom(key, split)
    raise ValueError(f"unknown data set {dataset!r}; known: {', '.join(DATASETS)}")


__all__ = ["SkeletonSplit", "load_split", "DATASETS", "NTU_BENCHMARKS", "VALIDATION_SPLITS"]
