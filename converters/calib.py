"""Calibration sets: N clips drawn from a prepared split, stratified by class, preprocessed exactly as the
checkpoint's input spec says, saved as ONE .npz that every quantizer (ONNX Runtime, ModelOpt, TensorRT,
LiteRT, CoreML) reuses.

    python -m converters.calib --ckpt runs/nw_ucla/last_small/best.pt --data nw_ucla:train --num 500
    python -m converters.calib --ckpt best.pt --data synthetic:train --num 200 --out runs/calib/syn.npz

The file holds x (N, C, T, V, M) float32, labels, names, class_names, the input spec (JSON) and the
data source; load_calibration() checks that it fits the checkpoint it is used with.
"""
from __future__ import annotations

import json
import logging
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from converters.common import InputError, input_shape, setup_logging
from core.checkpoint import load_checkpoint
from core.cli import ArgumentParser, run_cli
from core.evaluation import load_data_split as _load_data_split
from core.evaluation import parse_data_arg as _parse_data_arg
from core.preprocess import prepare_clip
from core.spec import InputSpec

log = logging.getLogger("converters.calib")

DEFAULT_NUM = 500
MIN_RECOMMENDED = 100
# share of a calibration set held back (stratified, disjoint) to verify a quantized model on clips its
# ranges were not fitted to
DEFAULT_HOLDOUT = 0.2
CALIB_FORMAT = "last-edge-calibration/1"
PROG = "python -m converters.calib"


def parse_data_arg(data: str) -> tuple[str, str]:
    """'NAME:SPLIT' -> (name, split); a bare name means its 'train' split."""
    try:
        return _parse_data_arg(data, "train")
    except ValueError as exc:
        raise InputError(str(exc)) from exc


def load_data_split(data: str, layout: str | None = None):
    """A SkeletonSplit from 'NAME:SPLIT' (core.evaluation.load_data_split), errors as InputError."""
    try:
        return _load_data_split(data, layout=layout, default_split="train")
    except (FileNotFoundError, ValueError) as exc:
        raise InputError(str(exc)) from exc


def stratified_indices(labels: np.ndarray, num: int, seed: int = 0) -> np.ndarray:
    """`num` indices whose class proportions follow `labels` (largest remainder), at least one per class
    when num allows; deterministic for a seed."""
    labels = np.asarray(labels)
    n = len(labels)
    if num >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts / n * num
    take = np.floor(quota).astype(int)
    if num >= len(classes):
        take = np.maximum(take, 1)
    # hand out what is left by largest remainder, never above a class's count
    while take.sum() < num:
        room = take < counts
        remainder = np.where(room, quota - take, -np.inf)
        take[int(np.argmax(remainder))] += 1
    while take.sum() > num:  # the at-least-one rule can overshoot by a few
        take[int(np.argmax(take))] -= 1
    chosen = [rng.choice(np.flatnonzero(labels == c), size=k, replace=False) for c, k in zip(classes, take) if k]
    return np.sort(np.concatenate(chosen))


def build_calibration(ckpt: dict[str, Any], split, num: int = DEFAULT_NUM, seed: int = 0) -> dict[str, Any]:
    """Arrays of a calibration set (not yet saved) from a SkeletonSplit, preprocessed by the checkpoint's spec."""
    spec = InputSpec.from_dict(ckpt["input_spec"])
    if split.layout != spec.layout:
        raise InputError(f"data set {split.name!r} uses layout {split.layout!r} but the checkpoint expects "
                         f"{spec.layout!r}")
    if num < 1:
        raise InputError(f"--num must be >= 1, got {num}")
    idx = stratified_indices(split.labels, num, seed)
    if len(idx) < num:
        log.warning("split %s has only %d samples; the calibration set has %d, not %d",
                    split.name, len(split), len(idx), num)
    if len(idx) < MIN_RECOMMENDED:
        warnings.warn(f"calibration set of {len(idx)} clips is below the recommended {MIN_RECOMMENDED}: INT8 "
                      "ranges may be poorly estimated", stacklevel=2)
    it = tqdm(idx, desc="calibration clips", unit="clip", disable=len(idx) < 200)
    x = np.stack([prepare_clip(split.sample(int(i)), spec) for i in it]).astype(np.float32)
    return {
        "x": x,
        "labels": split.labels[idx].astype(np.int64),
        "names": np.array([split.names[i] for i in idx]),
        "class_names": np.array(list(split.class_names)),
        "input_spec": np.array(json.dumps(spec.to_dict())),
        "source": np.array(split.name or "unknown"),
        "format": np.array(CALIB_FORMAT),
    }


def save_calibration(path: str | Path, arrays: dict[str, Any]) -> Path:
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)
    return path


def load_calibration_set(path: str | Path) -> dict[str, Any]:
    """All arrays of a calibration file; InputError naming the file if it is missing or not one."""
    path = Path(path)
    hint = "make one with: python -m converters.calib --ckpt <checkpoint> --data <dataset>:train"
    if not path.is_file():
        raise InputError(f"{path}: calibration file not found; {hint}")
    try:
        with np.load(path, allow_pickle=False) as f:  # never unpickle a user file
            arrays = {k: f[k] for k in f.files}
    except Exception as exc:
        raise InputError(f"{path}: not a readable calibration file ({type(exc).__name__}: {exc}); {hint}") from exc
    if "x" not in arrays:
        raise InputError(f"{path}: calibration file has no 'x' array (keys: {sorted(arrays)}); {hint}")
    x = arrays["x"]
    if x.ndim != 5 or x.dtype.kind != "f" or len(x) == 0:
        raise InputError(f"{path}: 'x' must be a non-empty float array (N, C, T, V, M), got {x.dtype} {x.shape}")
    if not np.isfinite(x).all():
        raise InputError(f"{path}: calibration data contains NaN or inf")
    arrays["x"] = x.astype(np.float32, copy=False)
    return arrays


def load_calibration(path: str | Path, ckpt: dict[str, Any] | None = None) -> np.ndarray:
    """x (N, C, T, V, M) float32 of a calibration file, checked against the checkpoint's input shape and spec."""
    arrays = load_calibration_set(path)
    x = arrays["x"]
    if ckpt is not None:
        want = input_shape(ckpt, len(x))
        if tuple(x.shape) != want:
            raise InputError(f"{path}: calibration clips have shape {tuple(x.shape[1:])} (C, T, V, M) but the "
                             f"checkpoint expects {want[1:]}; rebuild it for this checkpoint")
        if "input_spec" in arrays:
            try:
                saved = json.loads(str(arrays["input_spec"]))
            except ValueError:
                saved = None
            if not isinstance(saved, dict):
                raise InputError(f"{path}: 'input_spec' is not the JSON object converters.calib writes; rebuild the "
                                 "calibration set for this checkpoint")
            want_spec = ckpt["input_spec"]
            differ = [k for k in ("layout", "frames", "persons", "center", "align", "scale", "sampling", "coordinates")
                      if saved.get(k) != want_spec.get(k)]
            if differ:
                raise InputError(f"{path}: calibration set was preprocessed with a different input spec "
                                 f"({', '.join(f'{k}={saved.get(k)!r} vs {want_spec.get(k)!r}' for k in differ)}); "
                                 "rebuild it for this checkpoint")
    if len(x) < MIN_RECOMMENDED:
        log.warning("%s: only %d calibration clips (recommended >= %d)", path, len(x), MIN_RECOMMENDED)
    return x


def holdout_split(labels: np.ndarray, fraction: float = DEFAULT_HOLDOUT, seed: int = 0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(calibration indices, held-out indices): `fraction` of the clips held back, stratified by class,
    disjoint from the rest, deterministic for a seed."""
    labels = np.asarray(labels)
    if not 0.0 < fraction < 1.0:
        raise InputError(f"--holdout must be a fraction in (0, 1), got {fraction}")
    n = len(labels)
    num = int(round(fraction * n))
    if num < 1 or num >= n:
        raise InputError(f"--holdout {fraction} of {n} calibration clips leaves no clips on one side; "
                         "use a larger calibration set or --eval-data")
    held = stratified_indices(labels, num, seed + 1)
    return np.setdiff1d(np.arange(n), held), held


@dataclass
class QuantizationClips:
    """Clips to calibrate on and disjoint clips to verify on, and where the latter came from."""
    calibrate: np.ndarray  # (N, C, T, V, M)
    verify: np.ndarray
    verify_labels: np.ndarray | None
    verified_on: str  # e.g. "100 held-out clips of calib.npz (not used for calibration)"
    calibrate_names: list[str] = field(default_factory=list)
    verify_names: list[str] = field(default_factory=list)


def quantization_clips(path: str | Path, ckpt: dict[str, Any], holdout: float = DEFAULT_HOLDOUT,
                       eval_data: str | None = None, eval_num: int | None = None, seed: int = 0
                       ) -> QuantizationClips:
    """Calibration clips and verification clips the quantizer never sees.

    eval_data ('<dataset>:<split>'): calibrate on the whole calibration file, verify on that split (a
    stratified eval_num of it when given). Otherwise hold back `holdout` of the calibration file, stratified
    by class."""
    x = load_calibration(path, ckpt)
    arrays = load_calibration_set(path)
    labels = arrays.get("labels")
    names = [str(n) for n in arrays["names"]] if "names" in arrays else [f"#{i}" for i in range(len(x))]
    if eval_data:
        vx, vy, vnames = prepare_split_clips(eval_data, ckpt, eval_num, seed)
        overlap = set(vnames) & set(names)
        if overlap and parse_data_arg(eval_data)[0] != "synthetic":
            log.warning("--eval-data %s shares %d clips with the calibration set %s", eval_data, len(overlap),
                        Path(path).name)
        return QuantizationClips(x, vx, vy, f"{len(vx)} clips of {eval_data} (--eval-data)", names, vnames)
    strata = labels if labels is not None and len(labels) == len(x) else np.zeros(len(x), np.int64)
    cal, held = holdout_split(strata, holdout, seed)
    return QuantizationClips(x[cal], x[held], None if labels is None else labels[held],
                             f"{len(held)} held-out clips of {Path(path).name} (stratified {holdout:.0%}, "
                             f"not used for calibration; calibrated on the other {len(cal)})",
                             [names[i] for i in cal], [names[i] for i in held])


def prepare_split_clips(data: str, ckpt: dict[str, Any], num: int | None = None, seed: int = 0
                        ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(x, labels, names) of a data split preprocessed by the checkpoint's input spec (stratified `num`)."""
    spec = InputSpec.from_dict(ckpt["input_spec"])
    split = load_data_split(data, layout=ckpt["layout"])
    if split.layout != spec.layout:
        raise InputError(f"--eval-data {data}: layout {split.layout!r}, the checkpoint expects {spec.layout!r}")
    idx = stratified_indices(split.labels, num, seed) if num else np.arange(len(split))
    x = np.stack([prepare_clip(split.sample(int(i)), spec) for i in idx]).astype(np.float32)
    return x, split.labels[idx].astype(np.int64), [split.names[i] for i in idx]


def default_calib_path(ckpt_path: str | Path, data: str, num: int) -> Path:
    tag = data.replace(":", "_").replace("/", "_")
    return Path("runs") / "calib" / f"{Path(ckpt_path).stem}_{tag}_{num}.npz"


def make_calibration_file(ckpt_path: str | Path, data: str, num: int = DEFAULT_NUM, out: str | Path | None = None,
                          seed: int = 0) -> Path:
    ckpt = load_checkpoint(ckpt_path)
    split = load_data_split(data, layout=ckpt["layout"])
    arrays = build_calibration(ckpt, split, num, seed)
    path = save_calibration(out or default_calib_path(ckpt_path, data, num), arrays)
    counts = np.bincount(arrays["labels"], minlength=len(arrays["class_names"]))
    log.info("calibration set: %d clips from %s, per class %s -> %s", len(arrays["x"]), split.name or data,
             counts.tolist(), path)
    return path


def _main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", required=True, type=Path, help="checkpoint whose input spec the clips follow")
    p.add_argument("--data", required=True, help="NAME:SPLIT, e.g. nw_ucla:train or synthetic:train")
    p.add_argument("--num", type=int, default=DEFAULT_NUM, help=f"clips to draw (default {DEFAULT_NUM}; "
                   f"fewer than {MIN_RECOMMENDED} gives a warning)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default runs/calib); the file is <ckpt>_<data>_<num>.npz")
    args = p.parse_args(argv)
    setup_logging()
    name = default_calib_path(args.ckpt, args.data, args.num)
    path = make_calibration_file(args.ckpt, args.data, args.num, (args.out / name.name) if args.out else name,
                                 args.seed)
    print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    """The command line: exit status 0 ok, 1 failed, 2 bad input, 3 backend missing (core.cli)."""
    return run_cli(_main, PROG, argv)


if __name__ == "__main__":
    sys.exit(main())
