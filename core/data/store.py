"""The prepared-directory format: what the NTU builder and the custom importer write, and what
``load_split(<dir>, split)`` reads back (memory-mapped, no pickle).

    <dir>/manifest.json   format, layout, class_names, fps, coordinates, shape, dtype, splits, source, skipped
    <dir>/data.npy        (N, M, T, V, C) float16/float32, zero-padded in time and persons
    <dir>/lengths.npy     (N,) int32 valid frames per sample
    <dir>/labels.npy      (N,) int64
    <dir>/names.txt       one sample name per line
    <dir>/split_<s>.npy   int64 indices of split <s> (e.g. train, test); optional
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from core.data.prepared import SkeletonSplit

FORMAT = "last-edge-prepared"
VERSION = 1


class PreparedFormatError(ValueError):
    """A prepared directory that is incomplete or inconsistent (the message names the file)."""


class IndexedArray:
    """A lazy row selection of a (memory-mapped) array: rows are read only when indexed, so a split
    of a multi-GB data set costs no memory until a sample is used."""

    def __init__(self, base: np.ndarray, index: np.ndarray):
        self.base = base
        self.index = np.asarray(index, dtype=np.int64)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.index),) + tuple(self.base.shape[1:])

    @property
    def ndim(self) -> int:
        return self.base.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.base.dtype

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key: Any) -> Any:
        first, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        if isinstance(first, (int, np.integer)):
            return self.base[(int(self.index[first]),) + tuple(rest)]
        rows = self.index[first]
        if not rest:
            return IndexedArray(self.base, rows)
        return np.asarray(self.base[rows])[(slice(None),) + tuple(rest)]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = np.asarray(self.base[self.index])
        return out.astype(dtype) if dtype is not None else out


def write_prepared(out: str | Path, data: np.ndarray, lengths: np.ndarray, labels: np.ndarray, names: list[str],
                   class_names: list[str], layout: str, splits: dict[str, np.ndarray] | None = None,
                   fps: float | None = None, coordinates: str = "world", source: str = "",
                   extra: dict[str, Any] | None = None) -> Path:
    """Write a complete prepared directory (arrays first, manifest last so a crash leaves no manifest)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "data.npy", np.asarray(data))
    finish_prepared(out, lengths, labels, names, class_names, layout, splits, fps, coordinates, source, extra)
    return out


def finish_prepared(out: Path, lengths: np.ndarray, labels: np.ndarray, names: list[str], class_names: list[str],
                    layout: str, splits: dict[str, np.ndarray] | None = None, fps: float | None = None,
                    coordinates: str = "world", source: str = "", extra: dict[str, Any] | None = None) -> None:
    """Write everything but data.npy (which the caller has written, possibly as a memmap)."""
    data = np.load(out / "data.npy", mmap_mode="r")
    np.save(out / "lengths.npy", np.asarray(lengths, dtype=np.int32))
    np.save(out / "labels.npy", np.asarray(labels, dtype=np.int64))
    (out / "names.txt").write_text("".join(f"{n}\n" for n in names), encoding="utf-8")
    for s, idx in (splits or {}).items():
        np.save(out / f"split_{s}.npy", np.asarray(idx, dtype=np.int64))
    manifest = {"format": FORMAT, "version": VERSION, "layout": layout, "class_names": list(class_names),
                "fps": fps, "coordinates": coordinates, "shape": list(data.shape), "dtype": str(data.dtype),
                "splits": {s: int(len(i)) for s, i in (splits or {}).items()}, "source": source, **(extra or {})}
    tmp = out / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    os.replace(tmp, out / "manifest.json")


def is_prepared(path: str | Path) -> bool:
    f = Path(path) / "manifest.json"
    if not f.is_file():
        return False
    try:
        return json.loads(f.read_text(encoding="utf-8")).get("format") == FORMAT
    except (OSError, json.JSONDecodeError):
        return False


def read_manifest(path: str | Path) -> dict[str, Any]:
    f = Path(path) / "manifest.json"
    if not f.is_file():
        raise FileNotFoundError(f"{f} not found: {path} is not a prepared data set directory (build one with "
                                f"python -m core.data.ntu or python -m core.data.custom)")
    try:
        manifest = json.loads(f.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise PreparedFormatError(f"{f}: invalid json at line {e.lineno}: {e.msg}") from e
    if manifest.get("format") != FORMAT:
        raise PreparedFormatError(f"{f}: format is {manifest.get('format')!r}, expected {FORMAT!r}")
    return manifest


def load_prepared(path: str | Path, split: str | None = None, index: np.ndarray | None = None,
                  mmap: bool = True, name: str | None = None) -> SkeletonSplit:
    """A prepared directory (or one split of it) as a SkeletonSplit; data stays memory-mapped."""
    path = Path(path)
    manifest = read_manifest(path)
    for f in ("data.npy", "lengths.npy", "labels.npy", "names.txt"):
        if not (path / f).is_file():
            raise PreparedFormatError(f"{path / f} is missing (incomplete build? re-run the build to resume)")
    data = np.load(path / "data.npy", mmap_mode="r" if mmap else None)
    lengths = np.load(path / "lengths.npy")
    labels = np.load(path / "labels.npy")
    names = (path / "names.txt").read_text(encoding="utf-8").splitlines()
    if not len(data) == len(lengths) == len(labels) == len(names):
        raise PreparedFormatError(f"{path}: data.npy, lengths.npy, labels.npy and names.txt disagree in length "
                                  f"({len(data)}, {len(lengths)}, {len(labels)}, {len(names)})")
    if index is None and split not in (None, "all"):
        f = path / f"split_{split}.npy"
        if not f.is_file():
            known = sorted(p.stem[len("split_"):] for p in path.glob("split_*.npy"))
            raise KeyError(f"{path} has no split {split!r}; available: {known + ['all']}")
        index = np.load(f)
    if index is None:
        index = np.arange(len(names))
    index = np.asarray(index, dtype=np.int64)
    rows = IndexedArray(data, index) if mmap else data[index]
    return SkeletonSplit(rows, lengths[index], labels[index], [names[i] for i in index],
                         list(manifest["class_names"]), manifest["layout"], manifest.get("fps"),
                         name or f"{path.name}-{split or 'all'}",
                         {"root": str(path), "coordinates": manifest.get("coordinates", "world"),
                          "source": manifest.get("source", "")})
