"""One way to check an artifact against PyTorch fp32, with one tolerance table for every format.

    x, source = verification_inputs(ckpt, calib)            # real clips when a calibration set is given
    stats = compare_logits(torch_logits(model, x), runtime.predict(x))
    good, problems = judge("tflite", "int8", stats)

A tolerance is (max |logit diff| relative to max(1, max |logit|), or None when quantisation makes single
logits meaningless; the minimum top-1 agreement with PyTorch fp32).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from converters.calib import load_calibration, quantization_clips
from converters.common import InputError
from core.checkpoint import input_spec
from core.evaluation import check_split_matches, load_data_split, predict_split, torch_logits
from core.preprocess import prepare_clip
from core.spec import InputSpec
from core.stats import paired_difference
from core.synthetic import make_synthetic_split

TOLERANCES: dict[tuple[str, str], tuple[float | None, float]] = {
    ("onnx", "fp32"): (1e-3, 1.0),
    ("int8", "int8"): (None, 0.90),
    ("trt", "fp32"): (1e-3, 0.95),
    ("trt", "fp16"): (2e-2, 0.95),
    ("trt", "int8"): (1e-1, 0.95),
    ("tflite", "fp32"): (1e-3, 1.0),
    ("tflite", "fp16"): (2e-2, 0.97),
    ("tflite", "int8"): (None, 0.90),
    ("coreml", "fp32"): (1e-3, 1.0),
    ("coreml", "fp16"): (5e-2, 0.97),
    ("coreml", "w8"): (None, 0.95),
    ("coreml", "w8a8"): (None, 0.90),
}


def tolerance(fmt: str, precision: str) -> tuple[float | None, float]:
    try:
        return TOLERANCES[(fmt, precision)]
    except KeyError:
        raise InputError(f"no tolerance for {fmt} {precision}; known: "
                         f"{', '.join(f'{f} {p}' for f, p in TOLERANCES)}") from None


def verification_inputs(ckpt: dict[str, Any], calib: str | Path | None = None, count: int = 32,
                        seed: int = 0) -> tuple[np.ndarray, str]:
    """Clips (N, C, T, V, M) to compare an artifact with PyTorch, and where they came from: the calibration
    set when given (real, preprocessed data), otherwise synthetic motions of the checkpoint's layout."""
    if calib is not None:
        x = load_calibration(calib, ckpt)
        return x[:count], f"calibration set {Path(calib).name}"
    spec = InputSpec.from_dict(ckpt["input_spec"])
    per_class = max(1, -(-count // 8))
    split = make_synthetic_split(layout=ckpt["layout"], per_class=per_class, frames=max(spec.frames, 32),
                                 seed=seed, persons=spec.persons)
    order = np.random.default_rng(seed).permutation(len(split.labels))[:count]
    clips = [prepare_clip(split.sample(int(i)), spec) for i in order]
    return np.stack(clips).astype(np.float32), "synthetic skeleton motions (pass --calib for real data)"


def quantized_inputs(ckpt: dict[str, Any], calib: str | Path, verify_count: int, calib_count: int
                     ) -> tuple[np.ndarray, str, np.ndarray, str]:
    """(verification clips, their source, calibration clips, their source) for a converter that quantizes with
    a calibration set and scores its own artifact: the clips it verifies on are the set's stratified hold-out
    (converters.calib.quantization_clips, as converters.int8 does), never clips it calibrated on."""
    try:
        clips = quantization_clips(calib, ckpt)
    except InputError as exc:
        if "--holdout" not in str(exc):
            raise
        raise InputError(f"--calib {calib}: too few clips to hold 20 % back for verification and calibrate on the "
                         "rest; draw a larger set with python -m converters.calib") from None
    calib_x = clips.calibrate[:calib_count]
    return (clips.verify[:verify_count], clips.verified_on, calib_x,
            f"calibration set {Path(calib).name} ({len(calib_x)} clips, {len(clips.verify)} held back)")


def compare_logits(reference: np.ndarray, candidate: np.ndarray) -> dict[str, Any]:
    """max |logit diff|, top-1 agreement and the reference's logit scale of `candidate` against `reference`."""
    reference, candidate = np.asarray(reference, np.float64), np.asarray(candidate, np.float64)
    if reference.shape != candidate.shape:
        raise ValueError(f"output shapes differ: {reference.shape} vs {candidate.shape}")
    return {
        "max_abs_diff": float(np.max(np.abs(reference - candidate))) if reference.size else 0.0,
        "top1_agreement": float(np.mean(reference.argmax(1) == candidate.argmax(1))) if len(reference) else 1.0,
        "samples": int(len(reference)),
        "logit_scale": float(np.max(np.abs(reference))) if reference.size else 0.0,
    }


def judge(fmt: str, precision: str, stats: dict[str, Any], extra_problems: tuple[str, ...] = ()) -> tuple[bool, str]:
    """(within tolerance, what is not) for compare_logits stats of a `fmt` `precision` artifact."""
    rel, agreement = tolerance(fmt, precision)
    problems = list(extra_problems)
    if not np.isfinite(stats["max_abs_diff"]):
        problems.append("non-finite outputs")
    elif rel is not None and stats["max_abs_diff"] > rel * max(1.0, stats["logit_scale"]):
        problems.append(f"max |logit diff| {stats['max_abs_diff']:.3g} > {rel * max(1.0, stats['logit_scale']):.3g}")
    if stats["top1_agreement"] < agreement:
        problems.append(f"top-1 agreement {stats['top1_agreement']:.3f} < {agreement}")
    return not problems, "; ".join(problems)


def verify_predictor(fmt: str, precision: str, predict: Callable[[np.ndarray], np.ndarray], model,
                     x: np.ndarray) -> tuple[bool, str, dict[str, Any]]:
    """Run `predict` and the PyTorch model on x, compare, judge: (good, problems, stats)."""
    stats = compare_logits(torch_logits(model, x), predict(x))
    good, problems = judge(fmt, precision, stats)
    return good, problems, stats


def score_on_split(predict: Callable[[np.ndarray], np.ndarray], model, ck: dict[str, Any], data: str) -> dict[str, Any]:
    """Top-1 of the artifact and of PyTorch fp32 on a real split (`--data NAME:SPLIT`), their agreement and max
    logit difference: the accuracy proof that a check on a few clips cannot give."""
    try:
        split = load_data_split(data, layout=ck["layout"], default_split="test")
        check_split_matches(split, ck["layout"], ck["class_names"], data, "checkpoint")
    except (ValueError, FileNotFoundError) as exc:
        raise InputError(str(exc)) from exc
    spec = input_spec(ck)
    reference = predict_split(lambda b: torch_logits(model, b), split, spec, desc="PyTorch fp32")
    got = predict_split(predict, split, spec, desc="artifact")
    labels = np.asarray(split.labels)
    stats = compare_logits(reference, got)
    return {"eval_data": data, "eval_clips": int(len(labels)),
            "top1_fp32": float((reference.argmax(1) == labels).mean()),
            "top1": float((got.argmax(1) == labels).mean()),
            "eval_agreement": stats["top1_agreement"], "eval_max_abs_diff": stats["max_abs_diff"],
            "eval_paired": paired_difference(labels, reference, got).to_dict()}


def split_message(s: dict[str, Any]) -> str:
    p = s["eval_paired"]
    return (f"on {s['eval_data']} ({s['eval_clips']} clips): top-1 {100 * s['top1']:.2f} vs PyTorch fp32 "
            f"{100 * s['top1_fp32']:.2f} ({p['delta']:+.2f} points, 95 % interval [{p['low']:+.2f}, {p['high']:+.2f}], "
            f"+{p['fixed']}/-{p['broken']} clips), agreement {s['eval_agreement']:.3f}, max |logit diff| "
            f"{s['eval_max_abs_diff']:.3g}")


def verified_message(msg: str, predict: Callable[[np.ndarray], np.ndarray] | None, model, ck: dict[str, Any],
                     eval_data: str | None, notes: list[str], good: bool, problems: str) -> tuple[str, dict[str, Any]]:
    """An exporter's result line: its verification `msg`, the split scores with --eval-data, its notes, and
    "outside tolerance" first when the check failed; with the split statistics for the result's extra."""
    split_stats: dict[str, Any] = {}
    if eval_data:
        split_stats = score_on_split(predict, model, ck, eval_data)
        msg += "; " + split_message(split_stats)
    if notes:
        msg += "; " + "; ".join(notes)
    if not good:
        msg = f"outside tolerance ({problems}): " + msg
    return msg, split_stats
