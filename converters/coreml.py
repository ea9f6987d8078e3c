"""CoreML export: an ML Program .mlpackage with coremltools, checked numerically on any OS.

    python -m converters.coreml --ckpt best.pt                       # fp16 (default)
    python -m converters.coreml --ckpt best.pt --precision fp32
    python -m converters.coreml --ckpt best.pt --precision w8        # int8 weights, fp16 compute
    python -m converters.coreml --ckpt best.pt --precision w8a8 --calib runs/calib/nw_ucla_500.npz

fp16 / fp32  ct.convert(..., convert_to="mlprogram", compute_precision=FLOAT16 | FLOAT32); float32 I/O.
w8           the fp16 program with per-channel symmetric int8 weights (linear_quantize_weights).
w8a8         w8 plus int8 activations calibrated on the calibration set, verified on its stratified 20 %
             hold-out (coremltools.optimize.coreml.experimental.linear_quantize_activations). Calibration runs
             the model, which CoreML can only do on macOS: elsewhere the command says so and writes the
             w8 model instead (result precision "w8").
int8         an alias: w8a8 on macOS, w8 elsewhere.

Frontend: jit.trace (the default). With numpy >= 2.3, coremltools 9's TorchScript frontend fails on this
model's shape arithmetic ("only 0-dimensional arrays can be converted to Python scalars" when it casts a
traced size to int); the conversion works around it for its own duration (_numpy2_int_cast_fix). --frontend
auto (default) falls back to torch.export (+ run_decompositions) if tracing still fails; the result says
which frontend produced the file.

Verification: CoreML's predict() needs macOS. Everywhere, the package is evaluated by core.mil_eval
(a numpy interpreter of the MIL program, fp16 tensors rounded to fp16) and compared with PyTorch fp32:
status "ok" means mil_eval validated it (max |logit diff|, top-1 agreement), with a per-op fp16 overflow
check. On macOS the real CoreML prediction is compared too. For scoring on Linux:

    from converters.coreml import predict_fn
    predict = predict_fn("model.mlpackage")    # CoreML on macOS, mil_eval elsewhere
    logits = predict(x)                        # x (N, C, T, V, M) float32

Every package carries the toolkit metadata as JSON in its user_defined_metadata["last_edge"] and in the
sidecar <package>.json. Install: pip install -e '.[coreml]' (coremltools, typing-extensions<4.13).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import platform
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from converters.common import (BackendMissing, ExportResult, InputError, add_verification_args, artifact_stem,
                               export_main, load_export_model, missing_backend, require, reraise_if_disk_full,
                               staged_export, verification_opts)
from converters.formats import FORMATS
from converters.verify import compare_logits, judge, quantized_inputs, verification_inputs, verified_message
from core import mil_eval
from core.artifact import METADATA_KEY, artifact_metadata, write_sidecar
from core.evaluation import torch_logits
from core.runtime import load_runtime

log = logging.getLogger("converters.coreml")

FORMAT = "coreml"
FRONTENDS = ("auto", "trace", "export")
PIP_HINT = "pip install -e '.[coreml]'  (coremltools>=8 'typing-extensions<4.13')"
DEFAULT_CALIB_SAMPLES = 128


def is_macos() -> bool:
    return platform.system() == "Darwin"


def _coremltools():
    ct = require("coremltools", PIP_HINT)
    return ct


@contextlib.contextmanager
def _quiet(enabled: bool = True):
    """coremltools prints torch-version warnings and pass progress bars; keep the command's output readable."""
    if not enabled:
        yield
        return
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        logging.getLogger("coremltools").setLevel(logging.CRITICAL)
        yield


@contextlib.contextmanager
def _numpy2_int_cast_fix():
    """coremltools 9's TorchScript frontend casts a traced tensor size to int with int(array of shape (1,)),
    which numpy >= 2.3 refuses ("only 0-dimensional arrays can be converted to Python scalars"). For the
    duration of one conversion, such constant size-1 values are cast through .item() instead; everything
    else goes to the original handler."""
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.frontend.torch import ops as torch_ops
    original = torch_ops._cast

    def cast(context, node, dtype, dtype_name):
        x = torch_ops._get_inputs(context, node, expected=1)[0]
        if x.can_be_folded_to_const() and np.ndim(x.val) > 0 and np.size(x.val) == 1:
            context.add(mb.const(val=dtype(np.asarray(x.val).item()), name=node.name), node.name)
            return
        original(context, node, dtype, dtype_name)

    torch_ops._cast = cast
    try:
        yield
    finally:
        torch_ops._cast = original


def _source_model(model, sample: np.ndarray, frontend: str):
    import torch
    x = torch.from_numpy(sample)
    if frontend == "trace":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarning on the model's shape check
            return torch.jit.trace(model, x)
    return torch.export.export(model, (x,)).run_decompositions({})


def convert(model, sample: np.ndarray, precision: str = "fp16", frontend: str = "auto",
            target: str | None = None, quiet: bool = True) -> tuple[Any, str, list[str]]:
    """torch -> ct.models.MLModel (ML Program). Returns (mlmodel, frontend used, notes)."""
    ct = _coremltools()
    compute = ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16
    target_name = target or "iOS16"
    try:
        deployment = getattr(ct.target, target_name)
    except AttributeError as exc:
        raise InputError(f"--target {target_name!r} is not a coremltools deployment target") from exc
    inputs = [ct.TensorType(name="skeleton", shape=sample.shape, dtype=np.float32)]
    outputs = [ct.TensorType(name="logits", dtype=np.float32)]
    notes: list[str] = []
    order = ["trace", "export"] if frontend == "auto" else [frontend]
    last_error: Exception | None = None
    for name in order:
        try:
            fix = _numpy2_int_cast_fix() if name == "trace" else contextlib.nullcontext()
            with _quiet(quiet), fix:
                source = _source_model(model, sample, name)
                mlmodel = ct.convert(source, inputs=inputs, outputs=outputs, convert_to="mlprogram",
                                     compute_precision=compute, minimum_deployment_target=deployment)
            return mlmodel, name, notes
        except Exception as exc:  # try the next frontend, remember why this one failed
            last_error = exc
            first = str(exc).strip().splitlines()[-1][:160] if str(exc).strip() else type(exc).__name__
            notes.append(f"{name} frontend failed ({type(exc).__name__}: {first})")
    raise RuntimeError("; ".join(notes)) from last_error


def quantize_weights(mlmodel, quiet: bool = True):
    """Per-channel symmetric int8 weights (dequantised at load; compute stays fp16)."""
    _coremltools()  # BackendMissing with the install hint when coremltools is absent
    from coremltools.optimize.coreml import OpLinearQuantizerConfig, OptimizationConfig, linear_quantize_weights
    config = OptimizationConfig(global_config=OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8",
                                                                      granularity="per_channel"))
    with _quiet(quiet):
        return linear_quantize_weights(mlmodel, config)


def quantize_activations(mlmodel, calib_x: np.ndarray, batch: int, quiet: bool = True):
    """int8 activations calibrated on the clips (runs the model: macOS only)."""
    if not is_macos():
        raise BackendMissing("CoreML activation calibration runs the model, which needs macOS "
                             f"(this is {platform.system()})")
    _coremltools()
    from coremltools.optimize.coreml import OptimizationConfig, experimental
    config = OptimizationConfig(global_config=experimental.OpActivationLinearQuantizerConfig(
        mode="linear_symmetric"))
    samples = [{"skeleton": np.ascontiguousarray(calib_x[i:i + batch])}
               for i in range(0, len(calib_x) - batch + 1, batch)]
    with _quiet(quiet):
        return experimental.linear_quantize_activations(mlmodel, config, samples)


def describe(path: str | Path) -> dict[str, Any]:
    """Inputs, outputs, op counts and metadata from the spec (skip_model_load: works on any OS)."""
    ct = _coremltools()
    with _quiet():
        mlmodel = ct.models.MLModel(str(path), skip_model_load=True)
    spec = mlmodel.get_spec()

    def io(features) -> dict[str, Any]:
        out = {}
        for f in features:
            arr = f.type.multiArrayType
            dtype = ct.proto.FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name(arr.dataType)
            out[f.name] = {"shape": [int(v) for v in arr.shape], "dtype": dtype}
        return out

    counts: dict[str, int] = {}
    opset = ""
    if spec.WhichOneof("Type") == "mlProgram":
        fn = spec.mlProgram.functions["main"]
        opset = fn.opset
        for op in fn.block_specializations[opset].operations:
            counts[op.type] = counts.get(op.type, 0) + 1
    return {"type": spec.WhichOneof("Type"), "spec_version": int(spec.specificationVersion), "opset": opset,
            "inputs": io(spec.description.input), "outputs": io(spec.description.output),
            "ops": dict(sorted(counts.items())), "metadata": dict(spec.description.metadata.userDefined)}


def predict_fn(path: str | Path) -> Callable[[np.ndarray], np.ndarray]:
    """x (N, C, T, V, M) float32 -> logits: CoreML itself on macOS, converters.mil_eval elsewhere."""
    return load_runtime(path).predict  # core.runtime picks CoreML on macOS, the MIL evaluator elsewhere


@staged_export(FORMAT)
def export(ckpt: str | Path, out_dir: str | Path, precision: str = "fp16", calib: str | Path | None = None,
           batch: int | None = 1, frontend: str = "auto", target: str | None = None, verify_samples: int = 32,
           calib_samples: int = DEFAULT_CALIB_SAMPLES, quiet: bool = True, eval_data: str | None = None
           ) -> ExportResult:
    """Convert a checkpoint to an .mlpackage, write its metadata, validate it against PyTorch fp32."""
    if precision not in FORMATS[FORMAT].precisions:
        raise InputError(f"converters.coreml exports {', '.join(FORMATS[FORMAT].precisions)}, not {precision!r}")
    if frontend not in FRONTENDS:
        raise InputError(f"--frontend must be one of {', '.join(FRONTENDS)}, got {frontend!r}")
    notes: list[str] = []
    if precision == "int8":
        precision = "w8a8" if is_macos() else "w8"
        if precision == "w8":
            notes.append("int8 means w8a8 on macOS; here (no CoreML runtime to calibrate) it is w8")
    if batch is None:
        batch = 1
        notes.append("CoreML packages have a fixed batch here; exported with batch 1")
    model, ck = load_export_model(ckpt)
    calib_x = None
    if precision == "w8a8":
        if calib is None:
            raise InputError("--precision w8a8 calibrates activations: pass --calib <file from python -m "
                             "converters.calib>")
        # verified on the set's held-back clips, not on those it calibrated on
        x, source, calib_x, _ = quantized_inputs(ck, calib, max(verify_samples, batch), calib_samples)
    else:
        x, source = verification_inputs(ck, calib, count=max(verify_samples, batch))
    x = x[: max(len(x) // batch, 1) * batch]
    try:
        _coremltools()
    except BackendMissing as exc:
        return missing_backend(FORMAT, precision, exc)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    sample = np.ascontiguousarray(x[:batch])
    base = "fp32" if precision == "fp32" else "fp16"
    try:
        # activation quantization emits quantize/dequantize ops, which need iOS17
        mlmodel, used, front_notes = convert(model, sample, base, frontend,
                                             target or ("iOS17" if precision == "w8a8" else None), quiet)
    except InputError:
        raise
    except Exception as exc:
        reraise_if_disk_full(exc)
        return ExportResult(FORMAT, precision, None, "failed", f"coremltools conversion failed: {exc}")
    notes.append(f"frontend {'jit.trace' if used == 'trace' else 'torch.export'}"
                 + (f" ({front_notes[0]})" if front_notes else ""))
    final_precision = precision
    try:
        if precision in ("w8", "w8a8"):
            if precision == "w8a8":
                try:
                    mlmodel = quantize_activations(mlmodel, calib_x, batch, quiet)
                except BackendMissing as exc:
                    final_precision = "w8"
                    notes.append(f"w8a8 not possible here: {exc}; wrote the w8 (int8 weights) model instead, "
                                 "re-run on a Mac for w8a8")
            mlmodel = quantize_weights(mlmodel, quiet)
    except Exception as exc:
        reraise_if_disk_full(exc)
        return ExportResult(FORMAT, precision, None, "failed",
                            f"coremltools quantization failed: {type(exc).__name__}: {exc}")
    export_seconds = time.perf_counter() - start

    path = out_dir / f"{artifact_stem(ckpt, final_precision, batch)}.mlpackage"
    meta = artifact_metadata(ck, FORMAT, final_precision, batch=batch, converter=f"coremltools ({used})",
                             compute_precision=base, input_dtype="float32", output_dtype="float32",
                             calibration=(f"calibration set {Path(calib).name}" if final_precision == "w8a8"
                                          else None))
    mlmodel.user_defined_metadata[METADATA_KEY] = json.dumps(meta)
    mlmodel.short_description = (f"LAST {ck['model']['variant']} skeleton action recognition "
                                 f"({ck['num_classes']} classes, {final_precision})")
    mlmodel.input_description["skeleton"] = "preprocessed joints (N, C, T, V, M), see the input_spec metadata"
    mlmodel.output_description["logits"] = "class scores; class names in the metadata"
    if path.exists():
        shutil.rmtree(path)
    with _quiet(quiet):
        mlmodel.save(str(path))
    write_sidecar(path, meta)

    # numerical validation: mil_eval on any OS (plus CoreML itself on macOS)
    info = describe(path)
    reference = torch_logits(model, x)
    try:
        program = mil_eval.load(path)
        t0 = time.perf_counter()
        got = program.predict(x)
        eval_seconds = time.perf_counter() - t0
        trace = program.ranges(x[:batch])
    except mil_eval.MILEvalError as exc:
        return ExportResult(FORMAT, final_precision, path, "exported-not-verifiable-here",
                            f"written, but mil_eval cannot evaluate it ({exc}); CoreML predict() needs macOS; "
                            + "; ".join(notes), extra={**info, "batch": batch, "frontend": used})
    stats = compare_logits(reference, got)
    overflow = [r.op for r in trace if r.fp16_overflow]
    stats["fp16_overflow_ops"] = overflow
    stats["max_activation"] = float(np.nanmax([r.max_abs for r in trace])) if trace else 0.0
    stats["mil_eval_seconds"] = round(eval_seconds, 2)
    good, problems = judge(FORMAT, final_precision, stats,
                           (f"{len(overflow)} op(s) overflow fp16",) if overflow else ())
    checked_by = "mil_eval (numpy MIL evaluator; CoreML predict() needs macOS)"
    if is_macos():
        native = compare_logits(reference, predict_fn(path)(x))
        stats["coreml_max_abs_diff"], stats["coreml_top1_agreement"] = native["max_abs_diff"], native["top1_agreement"]
        checked_by = (f"CoreML predict (max diff {native['max_abs_diff']:.3g}, agreement "
                      f"{native['top1_agreement']:.3f}) and mil_eval")
    msg = (f"{checked_by} vs PyTorch fp32 on {stats['samples']} clips ({source}): max |logit diff| "
           f"{stats['max_abs_diff']:.3g}, top-1 agreement {stats['top1_agreement']:.3f}, max |activation| "
           f"{stats['max_activation']:.3g}")
    predict = (program.predict if not is_macos() else predict_fn(path)) if eval_data else None
    msg, split_stats = verified_message(msg, predict, model, ck, eval_data, notes, good, problems)
    return ExportResult(FORMAT, final_precision, path, "ok" if good else "failed", msg,
                        extra={**stats, **split_stats, **{k: v for k, v in info.items() if k != "metadata"},
                               "verify_source": source, "batch": batch, "frontend": used,
                               "requested_precision": precision, "export_seconds": round(export_seconds, 2)})


def _add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--frontend", choices=FRONTENDS, default="auto",
                   help="torch frontend: jit.trace, torch.export, or auto (trace, then export; default)")
    p.add_argument("--target", default=None,
                   help="minimum deployment target, e.g. iOS16, iOS17, macOS14 (default iOS16; iOS17 for w8a8)")
    add_verification_args(p, verify_samples=32, calib_samples=DEFAULT_CALIB_SAMPLES, tool="coremltools")


def main(argv: list[str] | None = None) -> int:
    import torch
    torch.set_flush_denormal(True)  # subnormal activations make the PyTorch reference 15x slower on x86
    return export_main(export, argv, fmt=FORMAT, precisions=FORMATS[FORMAT].precisions, default_precision="fp16",
                       default_batch=1, description=__doc__.split("\n\n")[0], add_args=_add_args,
                       opts_from_args=lambda a: {"frontend": a.frontend, "target": a.target, **verification_opts(a)})


if __name__ == "__main__":
    sys.exit(main())
