"""Northwestern-UCLA Multiview Action 3D (skeleton json version used by the CTR-GCN family).

Each ``aAA_sSS_eEE_vVV.json`` holds ``file_name``, ``skeletons`` (T x 20 x 3, Kinect v1 joints, metres)
and ``label`` (1..10). The cross-view protocol trains on views 1 and 2 (1,020 clips) and tests on
view 3 (464 clips). Parsed arrays are cached as .npz (keyed by the file list, sizes and mtimes) so a
second load is fast.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import time
from pathlib import Path

import numpy as np

from core.data.checks import skipped_report
from core.data.paths import cache_dir, shared_root
from core.data.prepared import SkeletonSplit

CLASS_NAMES = ["pick up with one hand", "pick up with two hands", "drop trash", "walk around", "sit down",
               "stand up", "donning", "doffing", "throw", "carry"]
SPLIT_VIEWS = {"train": (1, 2), "test": (3,), "all": (1, 2, 3)}
LAYOUT = "kinect20"
FPS = 30.0  # Kinect v1 recording rate
NAME_PATTERN = re.compile(r"^a(\d+)_s(\d+)_e(\d+)_v(\d+)$")


class NWUCLAError(ValueError):
    """A NW-UCLA json file that cannot be used (the message names the file)."""


def default_root() -> Path:
    """../shared/data/nw_ucla/all_sqe next to the repository, or $LAST_SHARED/data/nw_ucla/all_sqe."""
    return shared_root() / "data" / "nw_ucla" / "all_sqe"


def parse_name(name: str) -> dict[str, int]:
    """'a01_s02_e03_v01' -> {'action': 1, 'subject': 2, 'episode': 3, 'view': 1}."""
    m = NAME_PATTERN.match(name)
    if not m:
        raise NWUCLAError(f"{name!r} is not a NW-UCLA sample name (expected aAA_sSS_eEE_vVV)")
    action, subject, episode, view = map(int, m.groups())
    return {"action": action, "subject": subject, "episode": episode, "view": view}


def read_sample(path: str | Path) -> tuple[str, np.ndarray, int]:
    """One json -> (name, skeleton (T, 20, 3) float32, label 0..9). Raises NWUCLAError naming the file."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise NWUCLAError(f"{path}: cannot read json: {e}") from e
    if not isinstance(d, dict):
        raise NWUCLAError(f"{path}: expected a JSON object with 'skeletons' and 'label', got {type(d).__name__}")
    missing = {"skeletons", "label"} - set(d)
    if missing:
        raise NWUCLAError(f"{path}: missing keys {sorted(missing)}")
    try:
        skel = np.asarray(d["skeletons"], dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise NWUCLAError(f"{path}: 'skeletons' is not a numeric T x 20 x 3 array: {e}") from e
    if skel.ndim != 3 or skel.shape[1:] != (20, 3) or len(skel) == 0:
        raise NWUCLAError(f"{path}: 'skeletons' has shape {skel.shape}, expected (T>0, 20, 3)")
    if not np.isfinite(skel).all():
        raise NWUCLAError(f"{path}: 'skeletons' contains NaN or inf")
    label = d["label"] - 1 if isinstance(d["label"], int) and not isinstance(d["label"], bool) else -1
    if not 0 <= label < len(CLASS_NAMES):
        raise NWUCLAError(f"{path}: label {d['label']} outside 1..{len(CLASS_NAMES)}")
    name = d.get("file_name", path.stem)
    return name if isinstance(name, str) else path.stem, skel, label


def _fingerprint(files: list[Path]) -> str:
    h = hashlib.sha1()
    for f in files:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def _parse_all(files: list[Path]) -> dict[str, np.ndarray]:
    names, labels, lengths, clips, skipped = [], [], [], [], []
    for f in files:
        try:
            name, skel, label = read_sample(f)
        except NWUCLAError as e:
            skipped.append(str(e))
            continue
        names.append(name)
        labels.append(label)
        lengths.append(len(skel))
        clips.append(skel)
    frames = np.concatenate(clips) if clips else np.zeros((0, 20, 3), np.float32)
    return {"frames": frames, "lengths": np.asarray(lengths, np.int64), "labels": np.asarray(labels, np.int64),
            "names": np.asarray(names), "skipped": np.asarray(skipped, dtype=str)}


def load_arrays(root: str | Path | None = None, cache: bool | str | Path = True, verbose: bool = True
                ) -> dict[str, np.ndarray]:
    """All clips of a NW-UCLA folder as arrays (cached): frames (sum of T, 20, 3) concatenated in
    sample order, lengths, labels, names, skipped. Corrupt files are reported and skipped."""
    root = Path(root) if root else default_root()
    if not root.is_dir():
        raise FileNotFoundError(f"NW-UCLA folder not found: {root} (expected the all_sqe/*.json files; pass "
                                f"root=... / --root, or set LAST_SHARED)")
    files = sorted(root.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no *.json files in {root}")
    cache_file = None
    if cache:
        folder = Path(cache) if not isinstance(cache, bool) else cache_dir()
        cache_file = folder / f"nw_ucla_v2_{_fingerprint(files)}.npz"
        if cache_file.is_file():
            try:
                with np.load(cache_file, allow_pickle=False) as z:
                    return {k: z[k] for k in z.files}
            except (OSError, ValueError, KeyError):
                pass  # a broken cache is rebuilt below
    arrays = _parse_all(files)
    if verbose and len(arrays["skipped"]):
        print(skipped_report([str(m) for m in arrays["skipped"]], len(files)))
    if cache_file is not None:
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_suffix(".tmp.npz")
            np.savez(tmp, **arrays)
            os.replace(tmp, cache_file)
        except OSError as e:  # a read-only home must not stop training
            if verbose:
                print(f"[nw_ucla] could not write cache {cache_file}: {e}")
    return arrays


def load_nw_ucla(split: str = "train", root: str | Path | None = None, cache: bool | str | Path = True,
                 verbose: bool = True) -> SkeletonSplit:
    """The cross-view split: 'train' = views 1+2 (1,020 clips), 'test' = view 3 (464), or 'all'."""
    if split not in SPLIT_VIEWS:
        raise ValueError(f"unknown NW-UCLA split {split!r}; choose from {sorted(SPLIT_VIEWS)}")
    arrays = load_arrays(root, cache=cache, verbose=verbose)
    names = [str(n) for n in arrays["names"]]
    views = np.array([parse_name(n)["view"] for n in names], dtype=np.int64)
    index = np.flatnonzero(np.isin(views, SPLIT_VIEWS[split]))
    lengths = arrays["lengths"][index]
    starts = np.concatenate([[0], np.cumsum(arrays["lengths"])[:-1]]).astype(np.int64)
    data = np.zeros((len(index), 1, int(lengths.max()) if len(index) else 1, 20, 3), dtype=np.float32)
    for row, i in enumerate(index):
        data[row, 0, : lengths[row]] = arrays["frames"][starts[i]: starts[i] + lengths[row]]
    return SkeletonSplit(
        data=data, lengths=lengths, labels=arrays["labels"][index],
        names=[names[i] for i in index], class_names=list(CLASS_NAMES), layout=LAYOUT, fps=FPS,
        name=f"nw_ucla-{split}",
        info={"protocol": "cross-view", "views": list(SPLIT_VIEWS[split]),
              "skipped": [str(s) for s in arrays["skipped"]]})


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m core.data.nw_ucla",
                                description="Load NW-UCLA (cross-view), fill the cache and print split statistics.")
    p.add_argument("--root", default=None, help="folder of the all_sqe/*.json files (default: ../shared/...)")
    p.add_argument("--no-cache", action="store_true", help="parse the json files even if a cache exists")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    splits = {s: load_nw_ucla(s, args.root, cache=not args.no_cache) for s in ("train", "test")}
    print(f"loaded in {time.perf_counter() - t0:.2f} s")
    print(f"| class | {' | '.join(splits)} |\n|---|---|---|")
    counts = {s: sp.class_counts() for s, sp in splits.items()}
    for c, name in enumerate(CLASS_NAMES):
        print(f"| {c} {name} | " + " | ".join(str(counts[s][c]) for s in splits) + " |")
    print("| total | " + " | ".join(str(len(sp)) for sp in splits.values()) + " |")
    for s, sp in splits.items():
        print(f"{s}: frames min/mean/max {sp.lengths.min()}/{sp.lengths.mean():.1f}/{sp.lengths.max()}")


if __name__ == "__main__":
    main()
