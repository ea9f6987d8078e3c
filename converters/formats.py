"""The one table of export formats: every command (`python -m converters.<fmt>`, `python -m converters`,
`python -m benchmarks.run`) and the docs read it.

    FORMATS["tflite"].precisions          # ('fp32', 'fp16', 'int8')
    export("tflite", ckpt, out_dir, "int8", calib=...)   # options checked against the table
    plan(["onnx", "int8", "tflite"])      # the rows of a several-formats run, at the table's default precisions
    python -m converters --list-formats   # the table as Markdown (docs/converters.md)
"""
from __future__ import annotations

import argparse
import importlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from converters.common import BackendMissing, ExportResult, InputError
from core.cli import did_you_mean
from core.markdown import table_head

log = logging.getLogger("converters")


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
    built_on_device: bool  # the artifact is built on the target itself (a TensorRT engine): prepared elsewhere
    description: str

    def needs_calibration(self, precision: str) -> bool:
        return precision in self.calibrated


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("onnx", "converters.onnx", ".onnx", "onnxruntime", ("fp32",), ("fp32",), (),
           ("opset", "simplify_graph", "verify_samples"), True, False,
           "opset 17 (or the profile's), onnxsim, metadata embedded, verified in onnxruntime"),
    Format("int8", "converters.int8", ".onnx", "onnxruntime", ("int8",), ("int8",), ("int8",),
           ("keep_float", "quantizer", "calibration_method", "per_channel", "opset", "fp32_onnx", "float_streams",
            "high_precision", "holdout", "eval_data", "eval_num", "sensitivity_report", "clips", "ort_placement",
            "percentile"),
           True, False,
           "static INT8 Q/DQ ONNX (onnxruntime or NVIDIA ModelOpt placement); what TensorRT's explicit path eats"),
    Format("trt", "converters.trt", ".engine", "tensorrt", ("fp32", "fp16", "int8"), ("int8",), ("int8",),
           ("dynamic", "workspace_mb", "int8_mode", "profile", "keep_float", "quantizer", "opset"), False, True,
           "TensorRT 10/11 engine (explicit Q/DQ INT8; implicit calibration for 8.x); built on the device"),
    Format("tflite", "converters.tflite", ".tflite", "litert", ("fp32", "fp16", "int8"), ("fp32", "int8"), ("int8",),
           ("int8_method", "range_rules", "verify_samples", "calib_samples", "quiet", "eval_data"), False, False,
           "LiteRT flatbuffer via litert-torch (no TensorFlow); INT8 conv-only with float I/O or full-integer"),
    Format("coreml", "converters.coreml", ".mlpackage", "coreml", ("fp32", "fp16", "w8", "w8a8", "int8"), ("fp16", "w8"),
           ("w8a8",), ("frontend", "target", "verify_samples", "calib_samples", "quiet", "eval_data"), False, False,
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


def try_export(fmt: str, ckpt: str | Path, out_dir: str | Path, precision: str, calib: str | Path | None = None,
               batch: int | None = 1, **opts: Any) -> ExportResult:
    """export() for a run of several formats: every failure, bad input included, becomes a result naming it, so
    one broken converter never takes the other rows down."""
    try:
        return export(fmt, ckpt, out_dir, precision, calib=calib, batch=batch, **opts)
    except BackendMissing as exc:
        return ExportResult(fmt, precision, None, "missing-backend", str(exc))
    except InputError as exc:
        return ExportResult(fmt, precision, None, "failed", f"bad input: {exc}")
    except Exception as exc:  # noqa: BLE001  (the row says what broke; --verbose logs the traceback)
        log.debug("export %s %s failed", fmt, precision, exc_info=True)
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        return ExportResult(fmt, precision, None, "failed", f"{type(exc).__name__}: {first}")


# ----------------------------------------------------------------------------------------------------------
# A run of several formats: which rows, at which precisions

@dataclass
class Planned:
    """One row of a several-formats run: a format at a precision, with the converter options of that row."""

    format: str
    precision: str
    label: str  # the precision column: the precision, or int8/<quantizer> when several quantizers each make a row
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def needs_calibration(self) -> bool:
        return FORMATS[self.format].needs_calibration(self.precision)


def plan(formats: Sequence[str], precisions: Mapping[str, Sequence[str]] | None = None,
         quantizers: Sequence[str] = ("auto",)) -> list[Planned]:
    """The rows for `formats`: each at `precisions[fmt]`, else at the table's default precisions. The INT8 Q/DQ
    format makes one row per quantizer (labelled int8/<q> when there are several: to compare them); any other
    format that quantizes through Q/DQ (TensorRT's explicit INT8) takes the first."""
    rows: list[Planned] = []
    for name in formats:
        f = get_format(name)
        chosen = tuple((precisions or {}).get(name) or f.table_precisions)
        for precision in chosen:
            check_request(name, precision, {})
            if "quantizer" in f.options and f.needs_calibration(precision):
                several = name == "int8" and len(quantizers) > 1
                for q in (quantizers if name == "int8" else quantizers[:1]):
                    rows.append(Planned(name, precision, f"{precision}/{q}" if several else precision,
                                        {"quantizer": q}))
            else:
                rows.append(Planned(name, precision, precision))
    return rows


def add_plan_args(p: argparse.ArgumentParser, formats: Sequence[str] = tuple(FORMATS)) -> None:
    """The options that choose the rows of a several-formats run (python -m converters, python -m benchmarks.run)."""
    p.add_argument("--formats", default=None, help=f"comma-separated subset of {','.join(formats)} (default: all)")
    p.add_argument("--int8-quantizers", default="auto",
                   help="Q/DQ INT8 rows: auto (the better of onnxruntime/ModelOpt), or a list such as ort,modelopt "
                        "for one row each")
    p.add_argument("--trt-precision", choices=FORMATS["trt"].precisions, default=None,
                   help=f"TensorRT precision (default {','.join(FORMATS['trt'].table_precisions)})")
    for name in ("tflite", "coreml"):
        p.add_argument(f"--{name}-precisions", default=None,
                       help=f"comma-separated {name} precisions (default {','.join(FORMATS[name].table_precisions)})")


def precisions_from_args(args: argparse.Namespace) -> dict[str, tuple[str, ...]]:
    """--trt-precision, --tflite-precisions, --coreml-precisions as plan()'s precisions (only those given)."""
    chosen = {"trt": args.trt_precision, "tflite": args.tflite_precisions, "coreml": args.coreml_precisions}
    return {name: tuple(p for p in value.split(",") if p) for name, value in chosen.items() if value}


def quantizers_from_args(args: argparse.Namespace) -> tuple[str, ...]:
    return tuple(q for q in args.int8_quantizers.split(",") if q) or ("auto",)


def markdown_table() -> str:
    head = ["format", "module", "artifact", "runtime", "precisions", "calibration", "options"]
    lines = table_head(head)
    for f in FORMATS.values():
        lines.append(f"| {f.name} | `python -m {f.module}` | `{f.suffix}` | {f.runtime} | {', '.join(f.precisions)} | "
                     f"{', '.join(f.calibrated) or '-'} | {', '.join(f'`{o}`' for o in f.options)} |")
    return "\n".join(lines) + "\n"
