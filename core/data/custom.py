"""Your own skeletons: a documented, pickle-free per-sample format and an import command.

A custom data set is a folder of per-sample files plus an optional ``manifest.json``:

    my_set/
      manifest.json        {"layout": "coco17", "class_names": ["wave", "clap"], "fps": 30,
                            "coordinates": "image",
                            "samples": [{"file": "clip_0001.npz", "label": 0, "split": "train"}, ...]}
      clip_0001.npz        keypoint (M, T, V, C) float, label (int, unless in the manifest),
                           optional keypoint_score (M, T, V), optional frame_dir (the sample's name)
      clip_0002.json       the same keys as JSON (nested lists)

Without ``samples`` every *.npz / *.json in the folder is a sample; without ``split`` a seeded
stratified ``--test-ratio`` split is made. V must match the layout; C is 2 (image x, y) or 3.
Joints stored in another order than the layout's are remapped with ``--joint-order`` (the file's joints
in their stored order, as layout names or indices; ``python -m core.layouts <layout>`` lists them).

What is skipped and reported (like a corrupt file): NaN/inf clips, clips whose frames are all zero, and
clips with more than ``--max-missing`` (default 0.5) of their frames all zero (a frame in which no joint
of any person is non-zero counts as missing). A warning is printed when the bone lengths do not fit the
layout (a common sign of a wrong joint order).

    python -m core.data.custom --src my_set --out runs/data/my_set      # check + import
    python -m train.fit --config configs/nw_ucla_last_small.yaml data.name=runs/data/my_set

``load_split("custom:<dir>", split)`` reads an imported directory, or imports a raw folder in memory.
"""
from __future__ import annotations

import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.cli import ArgumentParser, error_message, run_cli
from core.data.checks import DEFAULT_MAX_MISSING, clip_problem, implausible_bones, missing_frames, skipped_report
from core.data.prepared import SkeletonSplit
from core.layouts import get_layout, joint_order_index, list_layouts

SAMPLE_SUFFIXES = (".npz", ".json")


class CustomFormatError(ValueError):
    """A custom sample or manifest that cannot be used (the message names the file)."""


class ImplausibleBonesWarning(UserWarning):
    """The bone lengths of a data set do not fit its layout (often: joints stored in another order)."""


@dataclass
class Sample:
    name: str
    keypoint: np.ndarray  # (M, T, V, C)
    label: int
    split: str | None
    missing_frames: int = 0  # frames in which every joint is zero (kept clips have at most max_missing of them)


def save_sample(path: str | Path, keypoint: np.ndarray, label: int, keypoint_score: np.ndarray | None = None,
                frame_dir: str | None = None) -> Path:
    """Write one sample in the custom format (.npz, no pickle)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {"keypoint": np.asarray(keypoint, dtype=np.float32), "label": np.int64(label)}
    if keypoint_score is not None:
        arrays["keypoint_score"] = np.asarray(keypoint_score, dtype=np.float32)
    if frame_dir is not None:
        arrays["frame_dir"] = np.str_(frame_dir)
    np.savez_compressed(path, **arrays)
    return path


def _read_file(path: Path) -> dict[str, Any]:
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except ValueError as e:  # object arrays need pickle: refuse them
            raise CustomFormatError(f"{path}: cannot read without pickle ({e}); store plain numeric arrays") from e
        except (OSError, EOFError) as e:
            raise CustomFormatError(f"{path}: not a readable .npz: {e}") from e
    d = read_json(path)
    if not isinstance(d, dict):
        raise CustomFormatError(f"{path}: expected a JSON object with 'keypoint', got {type(d).__name__}")
    return d


def read_json(path: Path) -> Any:
    """A JSON file; CustomFormatError naming the file (and line) when it is not UTF-8 JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CustomFormatError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from e
    except UnicodeDecodeError as e:
        raise CustomFormatError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from e


def read_sample(path: str | Path, layout: str, label: int | None = None, split: str | None = None,
                score_threshold: float = 0.0, score_channel: bool = False, joint_order: np.ndarray | None = None,
                max_missing: float = DEFAULT_MAX_MISSING) -> Sample:
    """One per-sample file -> Sample with keypoint (M, T, V, C) in the layout's joint order.

    joint_order (from core.layouts.joint_order_index) remaps joints stored in another order. Joints whose
    score is below score_threshold are zeroed (missing); score_channel appends the score as the last channel.
    A clip with NaN/inf, with every frame zero or with more than max_missing of its frames zero raises
    CustomFormatError (the caller reports and skips it)."""
    path = Path(path)
    d = _read_file(path)
    if "keypoint" not in d:
        raise CustomFormatError(f"{path}: missing 'keypoint' (M, T, V, C) (found {sorted(d)})")
    try:
        kp = np.asarray(d["keypoint"], dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise CustomFormatError(f"{path}: 'keypoint' is not a numeric (M, T, V, C) array: {e}") from e
    if kp.ndim == 3:  # (T, V, C): one person
        kp = kp[None]
    v = get_layout(layout).num_joints
    if kp.ndim != 4 or kp.shape[2] != v or kp.shape[3] not in (2, 3) or kp.shape[1] == 0:
        raise CustomFormatError(f"{path}: 'keypoint' has shape {kp.shape}, expected (M, T>0, {v}, 2 or 3) for "
                                f"layout {layout!r}")
    score = None
    if "keypoint_score" in d:
        if np.size(d["keypoint_score"]) != np.prod(kp.shape[:3]):
            raise CustomFormatError(f"{path}: 'keypoint_score' must have shape {kp.shape[:3]}")
        score = np.asarray(d["keypoint_score"], dtype=np.float32).reshape(kp.shape[:3])
    elif score_channel:
        raise CustomFormatError(f"{path}: --score-channel needs 'keypoint_score'")
    if joint_order is not None:
        kp = kp[:, :, joint_order]
        score = score[:, :, joint_order] if score is not None else None
    if score is not None and score_threshold > 0:
        kp = np.where((score >= score_threshold)[..., None], kp, 0.0)
    problem = clip_problem(kp, max_missing)
    if problem:
        raise CustomFormatError(f"{path}: {problem}")
    missing = int(missing_frames(kp).sum())
    if score_channel:
        kp = np.concatenate([kp, score[..., None]], axis=-1)
    if label is None:
        if "label" not in d:
            raise CustomFormatError(f"{path}: no 'label' in the file or the manifest")
        label = d["label"]
    try:
        value = np.asarray(label).item()
        label = int(value)
        if label != value:
            raise ValueError("not whole")
    except (TypeError, ValueError, OverflowError) as e:
        raise CustomFormatError(f"{path}: label {label!r} is not an integer") from e
    name = path.stem
    if "frame_dir" in d:
        frame_dir = np.asarray(d["frame_dir"])
        if frame_dir.size != 1:
            raise CustomFormatError(f"{path}: 'frame_dir' must be one name, got an array of shape {frame_dir.shape}")
        name = str(frame_dir.item())
    return Sample(name, kp, label, split, missing)


def read_folder(src: str | Path, layout: str | None = None, class_names: list[str] | None = None,
                test_ratio: float = 0.2, seed: int = 0, score_threshold: float = 0.0, score_channel: bool = False,
                joint_order: str | list | None = None, max_missing: float | None = None, verbose: bool = True
                ) -> tuple[dict[str, Any], list[Sample], list[str], dict[str, np.ndarray]]:
    """Read a raw custom folder -> (manifest, samples, skipped messages, {split: indices}).

    joint_order and max_missing default to the manifest's "joint_order" / "max_missing" (see read_sample).
    Skipped files are printed (verbose) with core.data.checks.skipped_report; implausible bone lengths
    raise an ImplausibleBonesWarning."""
    from core.data.mediapipe import stratified_split

    src = Path(src)
    if not src.is_dir():
        raise FileNotFoundError(f"custom data folder not found: {src}")
    manifest: dict[str, Any] = {}
    manifest_file = src / "manifest.json"
    if manifest_file.is_file():
        manifest = read_json(manifest_file)
        if not isinstance(manifest, dict):
            raise CustomFormatError(f"{manifest_file}: expected a JSON object, got {type(manifest).__name__}")
    layout = layout or manifest.get("layout")
    if not layout:
        raise CustomFormatError(f"{src}: say which skeleton layout the keypoints use (manifest.json 'layout' or "
                                f"--layout; known: {', '.join(list_layouts())})")
    if not isinstance(layout, str) or layout not in list_layouts():
        raise CustomFormatError(f"{src}: unknown skeleton layout {layout!r}; known: {', '.join(list_layouts())}")
    joint_order = joint_order if joint_order is not None else manifest.get("joint_order")
    try:
        order_index = joint_order_index(layout, joint_order) if joint_order is not None else None
    except (ValueError, TypeError, KeyError, IndexError) as e:
        raise CustomFormatError(f"{src}: joint_order: {error_message(e)}") from None
    try:
        max_missing = float(max_missing if max_missing is not None
                            else manifest.get("max_missing", DEFAULT_MAX_MISSING))
    except (TypeError, ValueError):
        raise CustomFormatError(f"{manifest_file}: max_missing {manifest.get('max_missing')!r} is not a number") from None
    if not 0 <= max_missing <= 1:
        raise CustomFormatError(f"{src}: max_missing {max_missing:g} must be a fraction in 0..1")
    entries = manifest.get("samples")
    if entries is None:
        entries = [{"file": f.name} for f in sorted(src.iterdir())
                   if f.suffix in SAMPLE_SUFFIXES and f.name != "manifest.json"]
    if not isinstance(entries, list):
        raise CustomFormatError(f"{manifest_file}: 'samples' must be a list of {{'file': ...}} entries")
    if not entries:
        raise CustomFormatError(f"{src}: no samples (*.npz / *.json files, or 'samples' in manifest.json)")
    class_names = class_names or manifest.get("class_names")
    if class_names is not None and (not isinstance(class_names, list)
                                    or not all(isinstance(c, str) for c in class_names)):
        raise CustomFormatError(f"{manifest_file}: 'class_names' must be a list of names")
    samples, skipped = [], []
    for k, e in enumerate(entries):
        if not isinstance(e, dict) or not isinstance(e.get("file"), str) or not e["file"]:
            skipped.append(f"{manifest_file}: samples[{k}] needs a 'file' entry (a path in {src})")
            continue
        if not isinstance(e.get("split"), (str, type(None))):
            skipped.append(f"{manifest_file}: samples[{k}]: 'split' must be a name, got {e['split']!r}")
            continue
        try:
            samples.append(read_sample(src / e["file"], layout, e.get("label"), e.get("split"), score_threshold,
                                       score_channel, order_index, max_missing))
        except (CustomFormatError, OSError) as err:
            skipped.append(str(err))
    if verbose and skipped and samples:  # (none usable: the error below names the first reason, in one line)
        print(skipped_report(skipped, len(entries)))
    if not samples:
        raise CustomFormatError(f"{src}: no usable sample: all {len(entries)} were skipped (first reason: "
                                f"{skipped[0]})")
    channels = {s.keypoint.shape[-1] for s in samples}
    if len(channels) > 1:
        raise CustomFormatError(f"{src}: samples mix {sorted(channels)} channels; use one coordinate format")
    labels = np.array([s.label for s in samples])
    class_names = class_names or [f"class_{i}" for i in range(labels.max() + 1)]
    bad = [s.name for s in samples if not 0 <= s.label < len(class_names)]
    if bad:
        raise CustomFormatError(f"{src}: labels outside 0..{len(class_names) - 1} in {bad[:5]} "
                                f"({len(class_names)} class names)")
    if all(s.split for s in samples):
        names = sorted({s.split for s in samples})
        splits = {n: np.array([i for i, s in enumerate(samples) if s.split == n], np.int64) for n in names}
    else:
        splits = stratified_split(labels, test_ratio, seed)
    coordinate_channels = samples[0].keypoint.shape[-1] - (1 if score_channel else 0)
    warning = implausible_bones([s.keypoint[..., :coordinate_channels] for s in samples], layout)
    if warning:
        warnings.warn(f"{src}: {warning}", ImplausibleBonesWarning, stacklevel=2)
    manifest = {**manifest, "layout": layout, "class_names": list(class_names), "max_missing": max_missing,
                "warnings": [f"{src}: {warning}"] if warning else []}
    if joint_order is not None:
        manifest["joint_order"] = [get_layout(layout).joints[j] for j in np.argsort(order_index)]
    return manifest, samples, skipped, splits


def _stack(samples: list[Sample]) -> tuple[np.ndarray, np.ndarray]:
    m = max(s.keypoint.shape[0] for s in samples)
    t = max(s.keypoint.shape[1] for s in samples)
    v, c = samples[0].keypoint.shape[2:]
    data = np.zeros((len(samples), m, t, v, c), dtype=np.float32)
    for i, s in enumerate(samples):
        data[i, : s.keypoint.shape[0], : s.keypoint.shape[1]] = s.keypoint
    return data, np.array([s.keypoint.shape[1] for s in samples], np.int64)


def import_folder(src: str | Path, out: str | Path, **kwargs: Any) -> dict[str, Any]:
    """Check and import a raw custom folder into a prepared directory; returns a summary."""
    from core.data.store import write_prepared

    manifest, samples, skipped, splits = read_folder(src, **kwargs)
    data, lengths = _stack(samples)
    write_prepared(out, data, lengths, np.array([s.label for s in samples]), [s.name for s in samples],
                   manifest["class_names"], manifest["layout"], splits, fps=manifest.get("fps"),
                   coordinates=manifest.get("coordinates", "world" if data.shape[-1] == 3 else "image"),
                   source=f"custom import of {Path(src).resolve()}",
                   extra={"skipped": skipped, "warnings": manifest["warnings"], "max_missing": manifest["max_missing"],
                          **({"joint_order": manifest["joint_order"]} if "joint_order" in manifest else {})})
    with_missing = [s.missing_frames / s.keypoint.shape[1] for s in samples if s.missing_frames]
    return {"samples": len(samples), "files": len(samples) + len(skipped), "skipped": skipped,
            "splits": {k: len(v) for k, v in splits.items()}, "shape": list(data.shape),
            "layout": manifest["layout"], "class_names": manifest["class_names"], "warnings": manifest["warnings"],
            "clips_with_missing_frames": len(with_missing),
            "max_missing_fraction_kept": round(max(with_missing), 3) if with_missing else 0.0}


def load_custom(path: str | Path, split: str = "train") -> SkeletonSplit:
    """An imported (prepared) directory, or a raw custom folder read in memory."""
    from core.data.store import is_prepared, load_prepared

    path = Path(path)
    if is_prepared(path):
        return load_prepared(path, split)
    manifest, samples, skipped, splits = read_folder(path)
    data, lengths = _stack(samples)
    if split == "all":
        index = np.arange(len(samples))
    elif split in splits:
        index = splits[split]
    else:
        raise KeyError(f"{path} has no split {split!r}; available: {sorted(splits) + ['all']}")
    return SkeletonSplit(data[index], lengths[index], np.array([samples[i].label for i in index]),
                         [samples[i].name for i in index], manifest["class_names"], manifest["layout"],
                         manifest.get("fps"), f"{path.name}-{split}",
                         {"skipped": skipped, "coordinates": manifest.get("coordinates",
                                                                      "world" if data.shape[-1] == 3 else "image")})


def main(argv: list[str] | None = None) -> None:
    p = ArgumentParser(prog="python -m core.data.custom",
                                description="Check and import a folder of custom skeleton samples (*.npz / *.json "
                                            "with keypoint (M, T, V, C) and label) into a prepared directory.")
    p.add_argument("--src", required=True, help="folder of per-sample files (+ optional manifest.json)")
    p.add_argument("--out", required=True, help="prepared directory to write (e.g. runs/data/my_set)")
    p.add_argument("--layout", default=None,
                   help=f"skeleton layout if not in manifest.json ({', '.join(list_layouts())})")
    p.add_argument("--classes", default=None, help="comma-separated class names if not in manifest.json")
    p.add_argument("--test-ratio", type=float, default=0.2, help="held-out fraction per class when samples carry "
                                                                 "no 'split' (default 0.2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--score-threshold", type=float, default=0.0, help="zero joints with keypoint_score below this")
    p.add_argument("--score-channel", action="store_true", help="append keypoint_score as a channel (2D + score)")
    p.add_argument("--joint-order", default=None,
                   help="the files' joints in their stored order, as comma-separated layout joint names or 0-based "
                        "layout indices (python -m core.layouts LAYOUT lists them); remapped to the layout's order")
    p.add_argument("--max-missing", type=float, default=None,
                   help=f"skip clips with more than this fraction of all-zero frames (default {DEFAULT_MAX_MISSING})")
    args = p.parse_args(argv)
    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ImplausibleBonesWarning)
        # the user's files or arguments (CustomFormatError, a missing folder, an unknown layout) are exit 2, an
        # unwritable output exit 1 (run_cli)
        summary = import_folder(args.src, args.out, layout=args.layout, class_names=classes,
                                test_ratio=args.test_ratio, seed=args.seed, score_threshold=args.score_threshold,
                                score_channel=args.score_channel, joint_order=args.joint_order,
                                max_missing=args.max_missing)
    for w in caught:
        print(f"{p.prog}: warning: {w.message}", file=sys.stderr)
    skipped = len(summary["skipped"])
    print(f"imported {summary['samples']} of {summary['files']} samples ({summary['layout']}, data "
          f"{summary['shape']}, splits {summary['splits']}) into {args.out}"
          + (f"; skipped {skipped} (listed above)" if skipped else ""))
    if summary["clips_with_missing_frames"]:
        print(f"{summary['clips_with_missing_frames']} kept clip(s) have all-zero frames (at most "
              f"{100 * summary['max_missing_fraction_kept']:.0f} % of a clip; --max-missing sets the limit)")

if __name__ == "__main__":
    sys.exit(run_cli(main, "python -m core.data.custom"))
