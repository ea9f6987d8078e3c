"""Static INT8 post-training quantization into an explicit Q/DQ ONNX model (shared by ONNX Runtime and
TensorRT's explicit-quantization path), calibrated on a calibration set from converters.calib.

    python -m converters.int8 --ckpt best.pt --calib runs/calib/best_nw_ucla_train_500.npz
    python -m converters.int8 --ckpt best.pt --calib calib.npz --keep-float none      # quantise everything
    python -m converters.int8 --ckpt best.pt --calib calib.npz --quantizer ort        # onnxruntime's quantizer

--quantizer auto (default): when NVIDIA ModelOpt's ONNX PTQ is installed (pip install nvidia-modelopt lief
cppimport onnxconverter-common onnxslim; its [onnx] extra would pull GPU packages) both quantizers run and
the one with the higher top-1 agreement with fp32 on the calibration clips is kept (measured: ModelOpt
0.986 vs 0.948 on a NW-UCLA last_small, but 0.775 vs 0.99 on a small test model); else onnxruntime's.

Weights are INT8 per output channel, activations INT8 per tensor, both symmetric (zero point 0), which is
what TensorRT accepts for explicit quantization. Activation ranges come from the 99.999th percentile
(measured on a NW-UCLA last_small: top-1 agreement with fp32 0.964 vs 0.852 with min/max ranges).
Numerically fragile ops stay in float (--keep-float):
    attention  the linear-attention products (activation x activation MatMuls) and their Div
    fragile    (default) attention + the dynamic-adjacency MatMuls of the graph convolution and every
               un-folded BatchNormalization (the input normalisation and the post-aggregation BN)
    none       quantise everything ONNX Runtime can quantise
(MatMuls with a constant rank-3 operand, the fixed adjacency of the Lite variants, always stay float:
ONNX Runtime's QLinearMatMul rejects their per-channel zero points.)
The Q/DQ model runs in onnxruntime, so its accuracy is measured here (top-1 agreement with PyTorch on the
calibration clips; the all-formats command scores it on a real split).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from converters import onnx as onnx_export
from converters.calib import load_calibration
from converters.common import (BackendMissing, ExportResult, InputError, artifact_stem, export_main,
                               load_export_model, missing_backend, require)
from converters.verify import compare_logits
from core.artifact import INPUT_NAME
from core.evaluation import torch_logits
from core.runtime import load_runtime

log = logging.getLogger("converters.int8")

KEEP_FLOAT_CHOICES = ("fragile", "attention", "none")
QUANTIZERS = ("auto", "ort", "modelopt")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
# top-1 agreement with fp32 on the calibration clips below which the export is reported as failed (a broken
# quantization lands near chance); the accuracy verdict itself comes from scoring on a real split
MIN_AGREEMENT = 0.9


def fragile_nodes(model_proto, keep_float: str) -> list[str]:
    """Names of the nodes to keep in float for a --keep-float choice."""
    if keep_float not in KEEP_FLOAT_CHOICES:
        raise InputError(f"--keep-float must be one of {KEEP_FLOAT_CHOICES}, got {keep_float!r}")
    names = unquantizable_nodes(model_proto)
    if keep_float == "none":
        return names
    consts = {init.name for init in model_proto.graph.initializer}
    consts |= {o for n in model_proto.graph.node if n.op_type == "Constant" for o in n.output}
    for node in model_proto.graph.node:
        if node.name in names:
            continue
        act_x_act = node.op_type == "MatMul" and not any(i in consts for i in node.input)
        in_attention = "/attention/" in node.name
        if keep_float == "attention":
            if in_attention and (act_x_act or node.op_type == "Div"):
                names.append(node.name)
        elif act_x_act or node.op_type == "BatchNormalization" or (in_attention and node.op_type == "Div"):
            names.append(node.name)
    return names


def unquantizable_nodes(model_proto) -> list[str]:
    """MatMuls with a constant operand of rank > 2 (the fixed adjacency of the Lite variants' graph conv):
    per-channel scales on a (K, V, V) weight give a zero point QLinearMatMul rejects at run time."""
    ranks = {init.name: len(init.dims) for init in model_proto.graph.initializer}
    return [n.name for n in model_proto.graph.node
            if n.op_type == "MatMul" and any(ranks.get(i, 0) > 2 for i in n.input)]


class NpzCalibrationReader:
    """onnxruntime CalibrationDataReader over calibration clips, in batches the model accepts."""

    def __init__(self, x: np.ndarray, input_name: str, batch: int):
        self.x, self.input_name, self.batch = x, input_name, batch
        self._it: Iterator[dict[str, np.ndarray]] | None = None
        self.rewind()

    def _batches(self) -> Iterator[dict[str, np.ndarray]]:
        for s in range(0, len(self.x) - self.batch + 1, self.batch):  # only full batches for fixed shapes
            yield {self.input_name: np.ascontiguousarray(self.x[s:s + self.batch])}

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = self._batches()


def quantize_ort(fp32_path: Path, out_path: Path, x: np.ndarray, batch: int | None, keep_float: str = "fragile",
                 method: str = "percentile", per_channel: bool = True) -> dict[str, Any]:
    """onnxruntime quantize_static into Q/DQ; returns what was done."""
    import onnx
    require("onnxruntime", "pip install onnxruntime")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    if method not in methods:
        raise InputError(f"--calibration-method must be one of {CALIBRATION_METHODS}, got {method!r}")
    prep = out_path.with_name(out_path.stem + ".prep.onnx")
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # shape inference + ORT graph optimisation (folds constants) makes the quantizer see every tensor
        quant_pre_process(str(fp32_path), str(prep), skip_symbolic_shape=True)
    exclude = fragile_nodes(onnx.load(str(prep)), keep_float)
    reader = NpzCalibrationReader(x, INPUT_NAME, batch or min(16, len(x)))
    start = time.perf_counter()
    # the quantizer prints per-weight notes (e.g. BatchNormalization's 1-D scales fall back to per-tensor)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_static(str(prep), str(out_path), reader, quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        weight_type=QuantType.QInt8, activation_type=QuantType.QInt8,
                        calibrate_method=methods[method], nodes_to_exclude=exclude,
                        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    prep.unlink(missing_ok=True)
    return {"quantizer": "onnxruntime.quantize_static", "calibration_method": method, "per_channel": per_channel,
            "keep_float": keep_float, "float_nodes": len(exclude), "calibration_seconds":
            round(time.perf_counter() - start, 2)}


MODELOPT_SCRIPT = """
import json, sys
import modelopt.onnx.quantization as mq
a = json.loads(sys.argv[1])
mq.quantize(onnx_path=a["src"], quantize_mode="int8", calibration_data_path=a["calib"],
            calibration_method=a["method"], output_path=a["out"], nodes_to_exclude=a["exclude"] or None,
            calibration_eps=["cpu"])
"""


def quantize_modelopt(fp32_path: Path, out_path: Path, x: np.ndarray, keep_float: str = "fragile",
                      method: str = "minmax") -> dict[str, Any]:
    """NVIDIA ModelOpt ONNX PTQ (places Q/DQ the way TensorRT fuses them), run on CPU in a subprocess:
    ModelOpt patches onnxruntime's calibrators on import, which breaks a later quantize_static in the same
    process (seen here: "Histogram has not been collected")."""
    import json
    import subprocess

    import onnx
    if not modelopt_available():
        raise BackendMissing("NVIDIA ModelOpt is not installed; install it with: pip install nvidia-modelopt lief "
                             "cppimport onnxconverter-common onnxslim (its [onnx] extra would pull GPU packages)")
    exclude = fragile_nodes(onnx.load(str(fp32_path)), keep_float)
    calib_file = out_path.with_name(out_path.stem + ".calib.npy")
    np.save(calib_file, x)
    args = {"src": str(fp32_path), "calib": str(calib_file), "out": str(out_path), "exclude": exclude,
            "method": "max" if method == "minmax" else "entropy"}
    start = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-c", MODELOPT_SCRIPT, json.dumps(args)], capture_output=True,
                              text=True)
    finally:
        calib_file.unlink(missing_ok=True)
    if done.returncode != 0 or not out_path.is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"ModelOpt quantization failed (exit {done.returncode}): {' | '.join(tail)}")
    return {"quantizer": "modelopt.onnx.quantization", "calibration_method": args["method"], "keep_float": keep_float,
            "float_nodes": len(exclude), "calibration_seconds": round(time.perf_counter() - start, 2)}


def modelopt_available() -> bool:
    import importlib.util
    try:
        return importlib.util.find_spec("modelopt") is not None and importlib.util.find_spec("onnxslim") is not None
    except (ImportError, ValueError):
        return False


def qdq_counts(path: str | Path) -> dict[str, int]:
    import onnx
    nodes = onnx.load(str(path), load_external_data=False).graph.node
    return {"QuantizeLinear": sum(n.op_type == "QuantizeLinear" for n in nodes),
            "DequantizeLinear": sum(n.op_type == "DequantizeLinear" for n in nodes)}


def export(ckpt: str | Path, out_dir: str | Path, precision: str = "int8", calib: str | Path | None = None,
           batch: int | None = None, keep_float: str = "fragile", quantizer: str = "auto",
           calibration_method: str = "percentile", per_channel: bool = True, opset: int | None = None,
           fp32_onnx: str | Path | None = None) -> ExportResult:
    """Checkpoint -> fp32 ONNX -> static INT8 Q/DQ ONNX, verified against PyTorch in onnxruntime.

    fp32_onnx: reuse an fp32 export of the same checkpoint and batch instead of exporting again."""
    if precision != "int8":
        raise InputError(f"converters.int8 produces int8 models, not {precision!r}")
    if calib is None:
        raise InputError("INT8 needs a calibration set: pass --calib FILE (make one with python -m converters.calib "
                         "--ckpt <checkpoint> --data <dataset>:train)")
    if quantizer not in QUANTIZERS:
        raise InputError(f"--quantizer must be one of {QUANTIZERS}, got {quantizer!r}")
    if quantizer == "auto":
        if not modelopt_available():
            quantizer = "ort"
        else:  # which quantizer keeps accuracy depends on the model: measure both, keep the better one
            kw = dict(batch=batch, keep_float=keep_float, calibration_method=calibration_method,
                      per_channel=per_channel, opset=opset, fp32_onnx=fp32_onnx)
            ort_result = export(ckpt, out_dir, precision, calib, quantizer="ort", **kw)
            kw["fp32_onnx"] = ort_result.extra.get("fp32_onnx", fp32_onnx)
            mo_result = export(ckpt, out_dir, precision, calib, quantizer="modelopt", **kw)
            ranked = sorted([r for r in (ort_result, mo_result) if r.path is not None],
                            key=lambda r: (r.extra.get("top1_agreement", -1), r is ort_result), reverse=True)
            if not ranked:
                return ort_result
            best = ranked[0]
            others = "; ".join(f"{r.extra.get('quantizer', '?')}: agreement {r.extra.get('top1_agreement', 0):.3f}"
                               for r in (ort_result, mo_result) if r.path is not None)
            best.message = f"auto picked {best.extra['quantizer']} ({others}); " + best.message
            best.extra["auto_candidates"] = others
            return best
    model, ck = load_export_model(ckpt)
    x = load_calibration(calib, ck)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if fp32_onnx is None:
        fp32 = onnx_export.export(ckpt, out_dir, "fp32", calib=calib, batch=batch,
                                  opset=opset or onnx_export.DEFAULT_OPSET)
        if fp32.status != "ok" or fp32.path is None:
            return ExportResult("int8", precision, None, "failed", f"fp32 ONNX export failed first: {fp32.message}")
        fp32_onnx = fp32.path
    suffix = "" if quantizer == "ort" else f"_{quantizer}"
    path = out_dir / f"{artifact_stem(ckpt, 'int8' + suffix, batch)}.onnx"
    try:
        if quantizer == "ort":
            info = quantize_ort(Path(fp32_onnx), path, x, batch, keep_float, calibration_method, per_channel)
        else:
            info = quantize_modelopt(Path(fp32_onnx), path, x, keep_float, calibration_method)
    except BackendMissing as exc:
        return missing_backend("int8", precision, exc, quantizer=quantizer)
    except InputError:
        raise
    except Exception as exc:
        return ExportResult("int8", precision, None, "failed", f"{quantizer} quantization failed: "
                            f"{type(exc).__name__}: {str(exc)[:300]}")
    info.update(qdq_counts(path))
    info["calibration_clips"] = int(len(x))
    try:
        onnx_export.finalize(path, ck, precision, batch, **info, fp32_onnx=Path(fp32_onnx).name)
    except Exception as exc:
        return ExportResult("int8", precision, path, "failed", f"Q/DQ ONNX check failed: {type(exc).__name__}: {exc}")
    ref = torch_logits(model, x)
    with load_runtime(path) as rt:
        stats = compare_logits(ref, rt.predict(x))
    good = stats["top1_agreement"] >= MIN_AGREEMENT
    msg = (f"{info['quantizer']}, {info['QuantizeLinear']} Q / {info['DequantizeLinear']} DQ nodes, "
           f"{info['float_nodes']} nodes kept in float ({keep_float}); on {stats['samples']} calibration clips vs "
           f"PyTorch fp32: top-1 agreement {stats['top1_agreement']:.3f}, max |logit diff| {stats['max_abs_diff']:.3f}")
    if not good:
        msg = f"top-1 agreement below {MIN_AGREEMENT}: " + msg
    return ExportResult("int8", precision, path, "ok" if good else "failed", msg,
                        extra={**info, **stats, "batch": batch, "fp32_onnx": str(fp32_onnx)})


def _add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keep-float", choices=KEEP_FLOAT_CHOICES, default="fragile",
                   help="which numerically fragile ops stay in float (default: fragile)")
    p.add_argument("--quantizer", choices=QUANTIZERS, default="auto",
                   help="auto (default): run onnxruntime's quantize_static and, if installed, NVIDIA ModelOpt's "
                        "ONNX PTQ, keep the one that agrees best with fp32; or force one")
    p.add_argument("--calibration-method", choices=CALIBRATION_METHODS, default="percentile",
                   help="activation ranges: percentile (default, 99.999th; clips rare outliers), minmax, entropy")
    p.add_argument("--per-tensor", action="store_true", help="per-tensor instead of per-channel weight scales")
    p.add_argument("--opset", type=int, default=None, help="opset of the fp32 export (default 17)")


def main(argv: list[str] | None = None) -> int:
    return export_main(export, argv, fmt="int8", precisions=("int8",), default_precision="int8", default_batch=None,
                       description=__doc__.split("\n\n")[0], add_args=_add_args,
                       opts_from_args=lambda a: {"keep_float": a.keep_float, "quantizer": a.quantizer,
                                                 "calibration_method": a.calibration_method,
                                                 "per_channel": not a.per_tensor, "opset": a.opset})


if __name__ == "__main__":
    sys.exit(main())
