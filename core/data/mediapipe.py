"""MediaPipe Pose recordings: (N, T, 33, 4) arrays of x, y, z, visibility with labels.

The file is an .npz with ``pose`` (N, T, 33, 3 or 4), ``label`` (N,) and optionally ``classes`` (names),
``names`` and ``lengths``. ``../shared/data/mediapipe/pose33_sequences.npz`` is a real one (90 clips of
30 frames, image landmarks). There is no official split, so a seeded stratified split holds out
``test_ratio`` of every class. With ``layout="ntu25"`` (or coco17/kinect20) the landmarks are mapped by
``core.mapping.convert_layout`` for models trained on that layout.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.data.paths import shared_root
from core.data.prepared import SkeletonSplit
from core.mapping import convert_layout


def default_path() -> Path:
    return shared_root() / "data" / "mediapipe" / "pose33_sequences.npz"


def stratified_split(labels: np.ndarray, test_ratio: float = 0.2, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded per-class hold-out: {'train': idx, 'test': idx}, every class in both when it has >= 2 samples."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(len(idx) * test_ratio))
        n_test = min(max(n_test, 1), len(idx) - 1) if len(idx) > 1 else 0
        test.extend(idx[:n_test])
        train.extend(idx[n_test:])
    return {"train": np.sort(np.asarray(train, np.int64)), "test": np.sort(np.asarray(test, np.int64))}


def _checked_arrays(arrays: dict[str, np.ndarray], path: Path
                    ) -> tuple[np.ndarray, np.ndarray, list[str], list[str], np.ndarray]:
    """(pose, labels, class names, sample names, lengths) of a recording file, each checked against the others;
    ValueError naming the file and the array otherwise."""
    for key in ("pose", "label"):
        if key not in arrays:
            raise ValueError(f"{path}: missing array {key!r} (found {sorted(arrays)})")
    pose, labels = arrays["pose"], arrays["label"]
    if pose.dtype.kind not in "fiu" or pose.ndim != 4 or pose.shape[2] != 33 or pose.shape[3] < 3 \
            or 0 in pose.shape[:2]:
        raise ValueError(f"{path}: 'pose' has shape {pose.shape} ({pose.dtype}), expected numbers (N>0, T>0, 33, "
                         f"3 or 4)")
    pose = pose.astype(np.float32)
    if not np.isfinite(pose[..., :3]).all():
        raise ValueError(f"{path}: 'pose' contains NaN or inf (mark a missing landmark with 0)")
    n, t = pose.shape[:2]
    if labels.dtype.kind not in "iu" or labels.shape != (n,) or (labels < 0).any():
        raise ValueError(f"{path}: 'label' must be {n} integers >= 0 (one per recording), got {labels.dtype} "
                         f"{labels.shape}")
    labels = labels.astype(np.int64)
    classes = [str(c) for c in np.ravel(arrays["classes"])] if "classes" in arrays else \
        [f"class_{i}" for i in range(int(labels.max()) + 1)]
    if int(labels.max()) >= len(classes):
        raise ValueError(f"{path}: label {int(labels.max())} but only {len(classes)} 'classes'")
    if "names" in arrays and arrays["names"].shape != (n,):
        raise ValueError(f"{path}: 'names' must hold {n} names, got shape {arrays['names'].shape}")
    names = [str(s) for s in arrays["names"]] if "names" in arrays else [f"{path.stem}_{i:05d}" for i in range(n)]
    lengths = arrays["lengths"] if "lengths" in arrays else np.full(n, t, np.int64)
    if lengths.dtype.kind not in "iu" or lengths.shape != (n,) or (lengths < 1).any() or (lengths > t).any():
        raise ValueError(f"{path}: 'lengths' must be {n} integers in 1..{t}, got {lengths.dtype} {lengths.shape}")
    return pose, labels, classes, names, lengths.astype(np.int64)


def load_mediapipe(split: str = "train", path: str | Path | None = None, layout: str = "mediapipe33",
                   test_ratio: float = 0.2, seed: int = 0, coordinates: str = "image") -> SkeletonSplit:
    """One split ('train', 'test' or 'all') of a MediaPipe recording file as a SkeletonSplit (C = x, y, z)."""
    path = Path(path) if path else default_path()
    if not path.is_file():
        raise FileNotFoundError(f"MediaPipe recordings not found: {path} (an .npz with 'pose' (N, T, 33, 4) and "
                                f"'label' (N,); pass root=/--root or set LAST_SHARED)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable pickle-free .npz: {e}") from e
    pose, labels, classes, names, lengths = _checked_arrays(arrays, path)
    n = len(pose)
    data = pose[:, None, :, :, :3]  # (N, M=1, T, 33, 3); visibility is not a model input
    if layout != "mediapipe33":
        data = convert_layout(data, "mediapipe33", layout)
    if split == "all":
        index = np.arange(n)
    else:
        parts = stratified_split(labels, test_ratio, seed)
        if split not in parts:
            raise ValueError(f"unknown MediaPipe split {split!r}; choose from train, test, all")
        index = parts[split]
    return SkeletonSplit(data[index], lengths[index], labels[index], [names[i] for i in index], classes, layout,
                         fps=30.0, name=f"mediapipe-{split}",
                         info={"coordinates": coordinates, "source": str(path), "test_ratio": test_ratio,
                               "seed": seed})
