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
from core.data.splits import names_digest, stratified_indices
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
    """Calibration clips and verification clips the quantizer never sees: the clips every INT8 choice (quantizer,
    range, placement) is made on.

    eval_data ('<dataset>:<split>'): calibrate on the whole calibration file, verify on that split (a
    stratified eval_num of it when given). Otherwise the checkpoint's validation slice (the clips its epoch was
    chosen on; calibration clips among them are left out of calibration), or, where the checkpoint names none or
    its data set is not here, `holdout` of the calibration file held back, stratified by class."""
    x = load_calibration(path, ckpt)
    arrays = load_calibration_set(path)
    labels = arrays.get("labels")
    names = [str(n) for n in arrays["names"]] if "names" in arrays else [f"#{i}" for i in range(len(x))]
    if eval_data:
        if parse_data_arg(eval_data)[1] == "test":
            log.warning("--eval-data %s: INT8 choices (--quantizer auto, verification) are made on the test split; "
                        "use <dataset>:val to keep the test split for scoring", eval_data)
        vx, vy, vnames = prepare_split_clips(eval_data, ckpt, eval_num, seed)
        overlap = set(vnames) & set(names)
        if overlap and parse_data_arg(eval_data)[0] != "synthetic":
            log.warning("--eval-data %s shares %d clips with the calibration set %s", eval_data, len(overlap),
                        Path(path).name)
        return QuantizationClips(x, vx, vy, f"{len(vx)} clips of {eval_data} (--eval-data)", names, vnames)
    val = validation_clips(ckpt, eval_num, seed)
    if val is not None:
        vx, vy, vnames, source = val
        held = set(vnames)
        cal = np.array([i for i, n in enumerate(names) if n not in held], dtype=np.int64)
        if len(cal):
            left_out = len(names) - len(cal)
            return QuantizationClips(
                x[cal], vx, vy, f"{len(vx)} clips of {source}, the checkpoint's validation split (calibrated on "
                f"{len(cal)} other clips" + (f"; {left_out} validation clips left out of calibration" if left_out
                                             else "") + ")", [names[i] for i in cal], vnames)
    strata = labels if labels is not None and len(labels) == len(x) else np.zeros(len(x), np.int64)
    cal, held = holdout_split(strata, holdout, seed)
    return QuantizationClips(x[cal], x[held], None if labels is None else labels[held],
                             f"{len(held)} held-out clips of {Path(path).name} (stratified {holdout:.0%}, "
                             f"not used for calibration; calibrated on the other {len(cal)})",
                             [names[i] for i in cal], [names[i] for i in held])


def validation_clips(ckpt: dict[str, Any], num: int | None = None, seed: int = 0
                     ) -> tuple[np.ndarray, np.ndarray, list[str], str] | None:
    """(x, labels, names, '<data>:val') of the validation split a checkpoint was trained with, or None when the
    checkpoint names none (older or self-supervised runs), its data set is not here, or the slice drawn here
    differs from the one it was trained with."""
    train = ckpt.get("train") or {}
    info, data = train.get("validation") or {}, train.get("data")
    if not info or not data or not info.get("split"):
        return None
    source = f"{data}:{info['split']}"
    if info["split"] == "test":
        log.warning("%s: the checkpoint was validated on the test split; INT8 verifies on held-out calibration "
                    "clips instead", source)
        return None
    try:
        split = _load_data_split(source, layout=ckpt["layout"], ckpt=ckpt)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        log.info("validation split %s not available here (%s); verifying on held-out calibration clips", source,
                 str(exc).splitlines()[0][:200])
        return None
    if names_digest(split.names) != info.get("digest"):
        log.warning("%s drawn here (digest %s) is not the one the checkpoint was trained with (%s); verifying on "
                    "held-out calibration clips", source, names_digest(split.names), info.get("digest"))
        return None
    spec = InputSpec.from_dict(ckpt["input_spec"])
    idx = stratified_indices(split.labels, num, seed) if num else np.arange(len(split))
    vx = np.stack([prepare_clip(split.sample(int(i)), spec) for i in idx]).astype(np.float32)
    return vx, split.labels[idx].astype(np.int64), [split.names[i] for i in idx], source


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
