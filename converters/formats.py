"""The one table of export formats: every command (`python -m converters.<fmt>`, the all-formats table,
benchmarks) and the docs read it.

    FORMATS["tflite"].precisions          # ('fp32', 'fp16', 'int8')
    export("tflite", ckpt, out_dir, "int8", calib=...)   # options checked against the table
    python -m converters --list-formats   # the table as Markdown (docs/converters.md)
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from converters.common import BackendMissing, ExportResult, InputError
from core.cli import did_you_mean
from core.markdown import table_head


@dataclass(frozen=True)
class Format:
    name: str
    module: str
    suffix: str
    runtime: str
    precisions: tuple[str, ...]
    table_precisions: tuple[str, ...]  # rows the all-formats table makes by default
    calibrated: tuple[str, ...]  # precisions that need a calibration set
    options: tuple[str, ...]  # keyword options of export() beyond (ckpt, out_dir, precision, calib, batch)
    dynamic_batch: bool  # the artifact keeps a dynamic batch
    description: str

    def needs_calibration(self, precision: str) -> bool:
        return precision in self.calibrated


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("onnx", "converters.onnx", ".onnx", "onnxruntime", ("fp32",), ("fp32",), (),
           ("opset", "simplify_graph", "verify_samples"), True,
           "opset 17 (or the profile's), onnxsim, metadata embedded, verified in onnxruntime"),
    Format("int8", "converters.int8", ".onnx", "onnxruntime", ("int8",), ("int8",), ("int8",),
           ("keep_float", "quantizer", "calibration_method", "per_channel", "opset", "fp32_onnx", "float_streams",
            "high_precision", "holdout", "eval_data", "eval_num", "sensitivity_report", "clips", "ort_placement",
            "percentile"),
           True,
           "static INT8 Q/DQ ONNX (onnxruntime or NVIDIA ModelOpt placement); what TensorRT's explicit path eats"),
    Format("trt", "converters.trt", ".engine", "tensorrt", ("fp32", "fp16", "int8"), ("int8",), ("int8",),
           ("dynamic", "workspace_mb", "int8_mode", "profile", "keep_float", "quantizer", "opset"), False,
           "TensorRT 10/11 engine (explicit Q/DQ INT8; implicit calibration for 8.x); built on the device"),
    Format("tflite", "converters.tflite", ".tflite", "litert", ("fp32", "fp16", "int8"), ("fp32", "int8"), ("int8",),
           ("int8_method", "verify_samples", "calib_samples", "quiet", "eval_data"), False,
           "LiteRT flatbuffer via litert-torch (no TensorFlow); PT2E INT8 with float I/O"),
    Format("coreml", "converters.coreml", ".mlpackage", "coreml", ("fp32", "fp16", "w8", "w8a8", "int8"), ("fp16", "w8"),
           ("w8a8",), ("frontend", "target", "verify_samples", "calib_samples", "quiet", "eval_data"), False,
           "ML Program .mlpackage (fp16, 8-bit weights, W8A8 on macOS); checked off macOS by a numpy evaluator"),
)}


def get_format(name: str) -> Format:
    """The table row of a format; InputError with the closest name for a typo."""
    try:
        return FORMATS[name]
    except KeyError:
        raise InputError(f"unknown format {name!r}{did_you_mean(name, FORMATS)}; choose from "
                         f"{', '.join(FORMATS)}") from None


def check_request(fmt: str, precision: str, opts: dict[str, Any]) -> Format:
    """Validate a format, precision and options against the table (a misspelled option is an error)."""
    f = get_format(fmt)
    if precision not in f.precisions:
        raise InputError(f"{fmt} does not export {precision!r}{did_you_mean(precision, f.precisions)}; "
                         f"precisions: {', '.join(f.precisions)}")
    unknown = [k for k in opts if k not in f.options]
    if unknown:
        hints = "".join(did_you_mean(k, f.options) for k in unknown)
        raise InputError(f"{fmt}: unknown option(s) {', '.join(unknown)}{hints}; accepted: "
                         f"{', '.join(f.options) or 'none'}")
    return f


def export(fmt: str, ckpt: str | Path, out_dir: str | Path, precision: str, calib: str | Path | None = None,
           batch: int | None = 1, **opts: Any) -> ExportResult:
    """Export through the format's module after checking the request against the table.

    Bad input raises InputError; a backend that is not installed is a 'missing-backend' result."""
    f = check_request(fmt, precision, opts)
    if f.needs_calibration(precision) and calib is None:
        raise InputError(f"{fmt} {precision} needs a calibration set: pass calib (python -m converters.calib "
                         "--ckpt <checkpoint> --data <dataset>:train)")
    try:
        module = importlib.import_module(f.module)
    except BackendMissing as exc:
        return ExportResult(fmt, precision, None, "missing-backend", str(exc))
    except ModuleNotFoundError as exc:
        return ExportResult(fmt, precision, None, "missing-backend", f"{f.module} needs {exc.name}: "
                            f"pip install {exc.name}")
    return module.export(ckpt, out_dir, precision, calib=calib, batch=None if f.dynamic_batch else batch, **opts)


def markdown_table() -> str:
    head = ["format", "module", "artifact", "runtime", "precisions", "calibration", "options"]
    lines = table_head(head)
    for f in FORMATS.values():
        lines.append(f"| {f.name} | `python -m {f.module}` | `{f.suffix}` | {f.runtime} | {', '.join(f.precisions)} | "
                     f"{', '.join(f.calibrated) or '-'} | {', '.join(f'`{o}`' for o in f.options)} |")
    return "\n".join(lines) + "\n"
