"""Static INT8 post-training quantization into an explicit Q/DQ ONNX model (shared by ONNX Runtime and
TensorRT's explicit-quantization path), calibrated on a calibration set from converters.calib.

    python -m converters.int8 --ckpt best.pt --calib runs/calib/best_nw_ucla_train_500.npz
    python -m converters.int8 --ckpt best.pt --calib calib.npz --keep-float none      # quantise everything
    python -m converters.int8 --ckpt best.pt --calib calib.npz --quantizer ort        # onnxruntime's quantizer
    python -m converters.int8 --ckpt best.pt --calib calib.npz --eval-data nw_ucla:test --sensitivity

--quantizer auto (default): when NVIDIA ModelOpt's ONNX PTQ is installed (pip install nvidia-modelopt lief
cppimport onnxconverter-common onnxslim; its [onnx] extra would pull GPU packages) both quantizers run and
the one with the higher top-1 agreement with fp32 on the verification clips is kept; else onnxruntime's. With
--opset (benchmarks.run passes the device profile's limit) a ModelOpt file, always opset >= 19, competes only
when that limit allows it.

The input and the derivation of the velocity / bone streams stay in float, and each stream is quantized at
its own stem convolution: quantizing the raw joints the streams are computed from turned the velocity stream
into rounding noise (onnxruntime) or clipped the joints at +-1 torso length (ModelOpt's entropy range; a
NW-UCLA last_base joint+velocity+bone fell from 88.8 % to 27.6 %). --quantize-streams restores that placement
for comparison. ModelOpt's unquantized ops stay fp32 (--high-precision; its own default is fp16).

Weights are INT8 per output channel, activations INT8 per tensor, both symmetric (zero point 0), which is
what TensorRT accepts for explicit quantization. Activation ranges come from the 99.99th percentile of each
tensor's histogram (--percentile): chosen on the validation clips of the four NW-UCLA joint+velocity+bone
checkpoints (nano..large) against 99.9 and 99.999, and the two placements (experiments/int8_defaults.py; the test
split scored only the choice). Several activations are heavy-tailed (the stems' outputs, post-ReLU tensors): the
99.999th percentile is nearly their maximum, the bulk of the values gets a few INT8 steps, and with every
activation quantized (--ort-placement all) it broke last_nano (-18.6 points on validation).
Numerically fragile ops stay in float (--keep-float):
    attention  the linear-attention products (activation x activation MatMuls) and their Div
    fragile    (default) attention + the dynamic-adjacency MatMuls of the graph convolution and every
               un-folded BatchNormalization (the input normalisation and the post-aggregation BN)
    attention-block  fragile + every node of the linear-attention blocks (their qkv/proj convolutions too):
               what the sensitivity sweep ranked first on a last_small joint+velocity+bone snapshot
    none       quantise everything ONNX Runtime can quantise
(MatMuls with a constant rank-3 operand, the fixed adjacency of the Lite variants, always stay float:
ONNX Runtime's QLinearMatMul rejects their per-channel zero points.)
The Q/DQ model runs in onnxruntime, so its accuracy is measured here, on clips the quantizer never saw:
--holdout (default 20 %) of the calibration set held back, stratified and disjoint, or --eval-data
NAME:SPLIT; the message says which. --sensitivity ranks the network's parts by the damage their
quantization alone does (one part quantized at a time, from the one calibrated model).
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
from converters.calib import DEFAULT_HOLDOUT, QuantizationClips, quantization_clips
from converters.common import (BackendMissing, ExportResult, InputError, artifact_stem, export_main, load_export_model,
                               missing_backend, require, reraise_if_disk_full, staged_export)
from converters.formats import FORMATS
from converters.verify import compare_logits, judge
from core.artifact import INPUT_NAME
from core.evaluation import torch_logits
from core.models.quant import onnx_scope_key
from core.runtime import load_runtime

log = logging.getLogger("converters.int8")

KEEP_FLOAT_CHOICES = ("fragile", "attention-block", "attention", "none")
QUANTIZERS = ("auto", "ort", "modelopt")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
HIGH_PRECISIONS = ("fp32", "fp16")
# onnxruntime placement: "compute" quantizes only the inputs of the ops that have INT8 kernels (where TensorRT
# and ModelOpt put Q/DQ); "all" is onnxruntime's default, which also requantizes every Add, Concat, ReLU,
# reshape and the classifier output (201 vs 59 quantized tensors on a last_small; each one a rounding step)
ORT_PLACEMENTS = ("compute", "all")
COMPUTE_OPS = ["Conv", "MatMul", "Gemm"]
DEFAULT_PERCENTILE = 99.99  # chosen on validation clips: experiments/int8_defaults.py


def fragile_nodes(model_proto, keep_float: str) -> list[str]:
    """Names of the nodes to keep in float for a --keep-float choice."""
    if keep_float not in KEEP_FLOAT_CHOICES:
        raise InputError(f"--keep-float must be one of {KEEP_FLOAT_CHOICES}, got {keep_float!r}")
    names = unquantizable_nodes(model_proto)
    if keep_float == "none":
        return names
    if keep_float == "attention-block":  # fragile + the whole linear-attention block (its qkv/proj convs too)
        fragile = fragile_nodes(model_proto, "fragile")
        return fragile + [n.name for n in model_proto.graph.node if "/attention/" in n.name and n.name not in fragile]
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


def stream_input_nodes(model_proto) -> list[str]:
    """Nodes between the graph input and the first convolutions: the input layout ops and the derivation
    of the velocity / bone streams (frame differences, joint-minus-parent MatMul) with each stream's data
    BatchNorm. They stay in float so that each stream is quantized after it has been derived and normalised
    (at the first convolution's input, with its own range), never the raw joints the streams come from:
    frame differences are ~1% of the joints' range, below one INT8 step of it."""
    consumers: dict[str, list] = {}
    for node in model_proto.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    initializers = {init.name for init in model_proto.graph.initializer}
    frontier = [i.name for i in model_proto.graph.input if i.name not in initializers]
    seen: dict[str, None] = {}
    while frontier:
        for node in consumers.get(frontier.pop(), []):
            if node.op_type == "Conv" or node.name in seen:
                continue
            seen[node.name] = None
            frontier.extend(node.output)
    return list(seen)


def range_overrides(model_proto, ranges: dict[str, float]) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """onnxruntime TensorQuantOverrides from a QAT checkpoint's activation ranges (train.qat): the input tensor of
    every Conv / Gemm whose scope is a module QAT quantized gets the range QAT trained with. (overrides, the range
    keys no node matched)."""
    amax: dict[str, float] = {}
    used: set[str] = set()
    for node in model_proto.graph.node:
        key = onnx_scope_key(node.name)
        if node.op_type in ("Conv", "Gemm") and key in ranges and ranges[key] > 0:
            amax[node.input[0]] = max(amax.get(node.input[0], 0.0), float(ranges[key]))
            used.add(key)
    # (onnxruntime wants numpy scalars here)
    return ({t: [{"rmin": np.float32(-a), "rmax": np.float32(a)}] for t, a in amax.items()},
            sorted(set(ranges) - used))


class NpzCalibrationReader:
    """onnxruntime CalibrationDataReader over calibration clips, in batches the model accepts. set_range()
    limits it to a window of batches, which onnxruntime's strided calibration uses to calibrate chunk by chunk."""

    def __init__(self, x: np.ndarray, input_name: str, batch: int):
        self.x, self.input_name, self.batch = x, input_name, batch
        self.start, self.end = 0, len(self)
        self._it: Iterator[dict[str, np.ndarray]] | None = None
        self.rewind()

    def __len__(self) -> int:  # only full batches, for fixed shapes
        return len(self.x) // self.batch

    def _batches(self) -> Iterator[dict[str, np.ndarray]]:
        for b in range(self.start, self.end):
            yield {self.input_name: np.ascontiguousarray(self.x[b * self.batch:(b + 1) * self.batch])}

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = self._batches()

    def set_range(self, start_index: int, end_index: int) -> None:
        self.start, self.end = start_index, min(end_index, len(self))
        self.rewind()


# onnxruntime's histogram calibrators keep every intermediate tensor of every calibration batch in memory
# before building histograms: 400 NW-UCLA clips through last_base took 12.5 GB and were OOM-killed here.
# Calibrating in chunks of at most this many clips merges the histograms chunk by chunk instead.
CALIBRATION_CHUNK_CLIPS = 32


def calibration_stride(batches: int, batch: int, chunk_clips: int = CALIBRATION_CHUNK_CLIPS) -> int:
    """Batches per calibration chunk: the largest divisor of `batches` (onnxruntime requires one) that keeps
    a chunk within chunk_clips clips."""
    most = max(1, chunk_clips // batch)
    return max(d for d in range(1, min(most, batches) + 1) if batches % d == 0)


def quantize_ort(fp32_path: Path, out_path: Path, x: np.ndarray, batch: int | None, keep_float: str = "fragile",
                 method: str = "percentile", per_channel: bool = True, float_streams: bool = True,
                 placement: str = "compute", percentile: float = DEFAULT_PERCENTILE,
                 ranges: dict[str, float] | None = None) -> dict[str, Any]:
    """onnxruntime quantize_static into Q/DQ; returns what was done. ranges: a QAT checkpoint's activation
    ranges, used instead of the calibrated ones where they apply."""
    import onnx
    require("onnxruntime", "pip install onnxruntime")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    if method not in methods:
        raise InputError(f"--calibration-method must be one of {CALIBRATION_METHODS}, got {method!r}")
    if not 50.0 < percentile <= 100.0:
        raise InputError(f"--percentile must be in (50, 100], got {percentile}")
    if placement not in ORT_PLACEMENTS:
        raise InputError(f"--ort-placement must be one of {ORT_PLACEMENTS}, got {placement!r}")
    prep = out_path.with_name(out_path.stem + ".prep.onnx")
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # shape inference + ORT graph optimisation (folds constants) makes the quantizer see every tensor
        quant_pre_process(str(fp32_path), str(prep), skip_symbolic_shape=True)
    prep_proto = onnx.load(str(prep))
    exclude = fragile_nodes(prep_proto, keep_float)
    stream_nodes = stream_input_nodes(prep_proto) if float_streams else []
    exclude += [n for n in stream_nodes if n not in exclude]
    overrides: dict[str, list[dict[str, Any]]] = {}
    if ranges:
        overrides, unmatched = range_overrides(prep_proto, ranges)
        if unmatched:
            prep.unlink(missing_ok=True)
            raise InputError(f"{len(unmatched)} of the checkpoint's {len(ranges)} QAT ranges match no Conv/Gemm of "
                             f"the exported graph (e.g. {unmatched[0]!r}): was it fine-tuned from another model?")
    reader = NpzCalibrationReader(x, INPUT_NAME, batch or min(16, len(x)))
    stride = calibration_stride(len(reader), reader.batch)
    start = time.perf_counter()
    # the quantizer prints per-weight notes (e.g. BatchNormalization's 1-D scales fall back to per-tensor)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_static(str(prep), str(out_path), reader, quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        weight_type=QuantType.QInt8, activation_type=QuantType.QInt8,
                        calibrate_method=methods[method], nodes_to_exclude=exclude,
                        op_types_to_quantize=COMPUTE_OPS if placement == "compute" else None,
                        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                                       "CalibStridedMinMax": stride, "CalibPercentile": percentile,
                                       # compute: inputs only; a Conv's output is quantized where its reader is
                                       # a Conv (after the ReLU, as TensorRT fuses Conv+ReLU), not before
                                       "OpTypesToExcludeOutputQuantization":
                                           COMPUTE_OPS if placement == "compute" else [],
                                       "TensorQuantOverrides": overrides})
    prep.unlink(missing_ok=True)
    return {"quantizer": "onnxruntime.quantize_static", "calibration_method": method, "per_channel": per_channel,
            **({"percentile": percentile} if method == "percentile" else {}),
            "keep_float": keep_float, "float_streams": float_streams, "stream_nodes": len(stream_nodes),
            "placement": placement, "float_nodes": len(exclude), "qat_ranges": len(overrides),
            "calibration_seconds": round(time.perf_counter() - start, 2)}


MODELOPT_SCRIPT = """
import json, sys
import modelopt.onnx.quantization as mq
a = json.loads(sys.argv[1])
mq.quantize(onnx_path=a["src"], quantize_mode="int8", calibration_data_path=a["calib"],
            calibration_method=a["method"], output_path=a["out"], nodes_to_exclude=a["exclude"] or None,
            high_precision_dtype=a["high_precision"], calibration_eps=["cpu"])
"""


def quantize_modelopt(fp32_path: Path, out_path: Path, x: np.ndarray, keep_float: str = "fragile",
                      method: str = "minmax", float_streams: bool = True, high_precision: str = "fp32"
                      ) -> dict[str, Any]:
    """NVIDIA ModelOpt ONNX PTQ (places Q/DQ the way TensorRT fuses them), run on CPU in a subprocess:
    ModelOpt patches onnxruntime's calibrators on import, which breaks a later quantize_static in the same
    process (seen here: "Histogram has not been collected")."""
    import json
    import subprocess

    import onnx
    if not modelopt_available():
        raise BackendMissing("NVIDIA ModelOpt is not installed; install it with: pip install nvidia-modelopt lief "
                             "cppimport onnxconverter-common onnxslim (its [onnx] extra would pull GPU packages)")
    import re
    proto = onnx.load(str(fp32_path))
    names = fragile_nodes(proto, keep_float)
    stream_nodes = stream_input_nodes(proto) if float_streams else []
    names += [n for n in stream_nodes if n not in names]
    exclude = [re.escape(n) + "$" for n in names]  # ModelOpt matches these as regular expressions
    calib_file = out_path.with_name(out_path.stem + ".calib.npy")
    np.save(calib_file, x)
    args = {"src": str(fp32_path), "calib": str(calib_file), "out": str(out_path), "exclude": exclude,
            "method": "max" if method == "minmax" else "entropy", "high_precision": high_precision}
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
            "float_streams": float_streams, "stream_nodes": len(stream_nodes), "high_precision": high_precision,
            "float_nodes": len(names), "calibration_seconds": round(time.perf_counter() - start, 2)}


def file_opset(path: str | Path) -> int:
    """The default-domain opset an ONNX file declares."""
    import onnx
    return onnx_export.opset_of(onnx.load(str(path), load_external_data=False))


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


@staged_export("int8")
def export(ckpt: str | Path, out_dir: str | Path, precision: str = "int8", calib: str | Path | None = None,
           batch: int | None = None, keep_float: str = "fragile", quantizer: str = "auto",
           calibration_method: str = "percentile", per_channel: bool = True, opset: int | None = None,
           fp32_onnx: str | Path | None = None, float_streams: bool = True, high_precision: str = "fp32",
           holdout: float = DEFAULT_HOLDOUT, eval_data: str | None = None, eval_num: int | None = None,
           clips: QuantizationClips | None = None, sensitivity_report: bool = False,
           ort_placement: str = "compute", percentile: float = DEFAULT_PERCENTILE) -> ExportResult:
    """Checkpoint -> fp32 ONNX -> static INT8 Q/DQ ONNX, verified against PyTorch in onnxruntime on clips the
    quantizer never saw: `holdout` of the calibration set (stratified, disjoint), or eval_data
    ('<dataset>:<split>', a stratified eval_num of it) when given.

    fp32_onnx: reuse an fp32 export of the same checkpoint and batch instead of exporting again.
    float_streams: keep the input and the stream-derivation subgraph in float (see stream_input_nodes).
    high_precision: ModelOpt's dtype for the ops it leaves unquantized (fp32, or fp16 as its default).
    ort_placement: onnxruntime quantizes the inputs of Conv/MatMul/Gemm only ("compute", as TensorRT places
    Q/DQ) or every op it can ("all", its default).
    sensitivity_report: also rank the network's parts by the damage their quantization alone does on the
    verification clips (extra["sensitivity"], the worst three in the message)."""
    if precision != "int8":
        raise InputError(f"converters.int8 produces int8 models, not {precision!r}")
    if calib is None:
        raise InputError("INT8 needs a calibration set: pass --calib FILE (make one with python -m converters.calib "
                         "--ckpt <checkpoint> --data <dataset>:train)")
    if quantizer not in QUANTIZERS:
        raise InputError(f"--quantizer must be one of {QUANTIZERS}, got {quantizer!r}")
    if high_precision not in HIGH_PRECISIONS:
        raise InputError(f"--high-precision must be one of {HIGH_PRECISIONS}, got {high_precision!r}")
    model, ck = load_export_model(ckpt)
    if clips is None:
        clips = quantization_clips(calib, ck, holdout, eval_data, eval_num)
    kw = dict(batch=batch, keep_float=keep_float, calibration_method=calibration_method, per_channel=per_channel,
              opset=opset, fp32_onnx=fp32_onnx, float_streams=float_streams, high_precision=high_precision,
              clips=clips, sensitivity_report=sensitivity_report, ort_placement=ort_placement,
              percentile=percentile)
    if quantizer == "auto":
        if not modelopt_available():
            quantizer = "ort"
        else:  # which quantizer keeps accuracy depends on the model: measure both, keep the better one
            ort_result = export(ckpt, out_dir, precision, calib, quantizer="ort", **kw)
            kw["fp32_onnx"] = ort_result.extra.get("fp32_onnx", fp32_onnx)
            mo_result = export(ckpt, out_dir, precision, calib, quantizer="modelopt", **kw)
            done = [r for r in (ort_result, mo_result) if r.path is not None]
            # an explicit --opset is the target runtime's limit (benchmarks.run passes the device profile's):
            # ModelOpt always writes opset >= 19, which e.g. TensorRT 8.x cannot parse
            opsets = {id(r): file_opset(r.path) for r in done}
            fits = [r for r in done if opset is None or opsets[id(r)] <= opset]
            ranked = sorted(fits, key=lambda r: (r.extra.get("top1_agreement", -1), r is ort_result), reverse=True)
            if not ranked:
                return ort_result
            best = ranked[0]
            others = "; ".join(f"{r.extra.get('quantizer', '?')}: agreement {r.extra.get('top1_agreement', 0):.3f}"
                               + ("" if r in fits else f", opset {opsets[id(r)]} > {opset}, not a candidate")
                               for r in done)
            best.message = f"auto picked {best.extra['quantizer']} ({others}); " + best.message
            best.extra["auto_candidates"] = others
            return best
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if fp32_onnx is None:
        fp32 = onnx_export.export(ckpt, out_dir, "fp32", calib=calib, batch=batch,
                                  opset=opset or onnx_export.DEFAULT_OPSET)
        if fp32.status != "ok" or fp32.path is None:
            return ExportResult("int8", precision, None, "failed", f"fp32 ONNX export failed first: {fp32.message}")
        fp32_onnx = fp32.path
    trained = ck.get("quantization") or {}  # from train.qat; a full-integer simulation's ranges are not this graph's
    qat_ranges = trained.get("activation_amax") if trained.get("placement", "qdq") == "qdq" else None
    suffix = "" if quantizer == "ort" else f"_{quantizer}"
    path = out_dir / f"{artifact_stem(ckpt, 'int8' + suffix, batch)}.onnx"
    x = clips.calibrate
    try:
        if quantizer == "ort":
            info = quantize_ort(Path(fp32_onnx), path, x, batch, keep_float, calibration_method, per_channel,
                                float_streams, ort_placement, percentile, qat_ranges)
        else:
            info = quantize_modelopt(Path(fp32_onnx), path, x, keep_float, calibration_method, float_streams,
                                     high_precision)
    except BackendMissing as exc:
        return missing_backend("int8", precision, exc, quantizer=quantizer)
    except InputError:
        raise
    except Exception as exc:
        reraise_if_disk_full(exc)
        return ExportResult("int8", precision, None, "failed", f"{quantizer} quantization failed: "
                            f"{type(exc).__name__}: {str(exc)[:300]}")
    info.update(qdq_counts(path))
    info["calibration_clips"] = int(len(x))
    info["verified_on"] = clips.verified_on
    try:
        onnx_export.finalize(path, ck, precision, batch, **info, fp32_onnx=Path(fp32_onnx).name)
    except Exception as exc:
        reraise_if_disk_full(exc)
        return ExportResult("int8", precision, path, "failed", f"Q/DQ ONNX check failed: {type(exc).__name__}: {exc}")
    ref = torch_logits(model, clips.verify)
    with load_runtime(path) as rt:
        logits = rt.predict(clips.verify)
    stats = compare_logits(ref, logits)
    if clips.verify_labels is not None:
        stats["top1_fp32"] = float(np.mean(ref.argmax(1) == clips.verify_labels))
        stats["top1_int8"] = float(np.mean(logits.argmax(1) == clips.verify_labels))
    good, problems = judge("int8", precision, stats)  # the one tolerance table (converters.verify)
    accuracy = (f", top-1 fp32 {100 * stats['top1_fp32']:.2f}% -> int8 {100 * stats['top1_int8']:.2f}%"
                if "top1_fp32" in stats else "")
    streams = "input and stream derivation in float" if float_streams else "input quantized"
    if info.get("qat_ranges"):
        streams += f"; {info['qat_ranges']} activation ranges from the checkpoint's QAT"
    elif qat_ranges:
        streams += "; a QAT checkpoint, ranges calibrated by this quantizer"
    msg = (f"{info['quantizer']}, {info['QuantizeLinear']} Q / {info['DequantizeLinear']} DQ nodes, "
           f"{info['float_nodes']} nodes kept in float ({keep_float}; {streams}); verified on {clips.verified_on} "
           f"vs PyTorch fp32: top-1 agreement {stats['top1_agreement']:.3f}{accuracy}, "
           f"max |logit diff| {stats['max_abs_diff']:.3f}")
    if not good:
        msg = f"{problems}: " + msg
    extra = {**info, **stats, "batch": batch, "fp32_onnx": str(fp32_onnx)}
    if sensitivity_report:
        rows = sensitivity(path, ref, clips.verify, clips.verify_labels)
        extra["sensitivity"] = rows
        worst = ", ".join(f"{r['group']} (agreement {r['agreement']:.3f}, mean |logit diff| "
                          f"{r['mean_abs_logit_diff']:.3f})" for r in rows[1:4])
        msg += f"; quantized alone, the most sensitive parts are {worst}"
    return ExportResult("int8", precision, path, "ok" if good else "failed", msg, extra=extra)


# ----------------------------------------------------------------------------------------------------------
# Layer-wise sensitivity: which part of the network loses the accuracy

def node_group(name: str) -> str:
    """The part of the network a node belongs to, from its exported name: 'stem', 'stages.1/blocks.0/gcn', 'fc'."""
    parts = [p for p in name.split("/") if p]
    if not parts:
        return "other"
    if parts[0].startswith("stages.") and len(parts) >= 5:
        return f"{parts[0]}/{parts[2]}/{parts[3]}"
    if parts[0].startswith("stages.") and len(parts) == 4:  # the block's own residual Add / ReLU
        return f"{parts[0]}/{parts[2]}/out"
    return parts[0] if parts[0] in ("stem", "fc") else "other"


def keep_only_group(qdq_proto, group: str | None):
    """A copy of a Q/DQ model in which only the nodes of `group` read quantized tensors (None: no node does).
    Every other consumer is rewired past its Q/DQ pair to the float tensor (weights: their dequantized value),
    so the copy shows the damage that one group's quantization does on its own."""
    import copy

    import onnx
    from onnx import numpy_helper
    model = copy.deepcopy(qdq_proto)
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    float_of: dict[str, str] = {}
    for dq in [n for n in graph.node if n.op_type == "DequantizeLinear"]:
        src = producer.get(dq.input[0])
        if src is not None and src.op_type == "QuantizeLinear":
            float_of[dq.output[0]] = src.input[0]  # activation pair, or a weight ModelOpt quantizes in-graph
        elif dq.input[0] in inits:  # a weight stored as int8: its dequantized float value
            q = numpy_helper.to_array(inits[dq.input[0]]).astype(np.float32)
            scale = numpy_helper.to_array(inits[dq.input[1]]).astype(np.float32)
            zero = (numpy_helper.to_array(inits[dq.input[2]]).astype(np.float32) if len(dq.input) > 2 and dq.input[2]
                    else np.zeros_like(scale))
            axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
            if scale.ndim == 1 and scale.size > 1:
                shape = [1] * q.ndim
                shape[axis] = -1
                scale, zero = scale.reshape(shape), zero.reshape(shape)
            name = dq.output[0] + "_float"
            graph.initializer.append(numpy_helper.from_array(((q - zero) * scale).astype(np.float32), name))
            float_of[dq.output[0]] = name
    for node in graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") or (group and node_group(node.name) == group):
            continue
        for i, name in enumerate(node.input):
            if name in float_of:
                node.input[i] = float_of[name]
    for out in graph.output:  # a quantized graph output (ORT quantizes the classifier's): float unless in group
        src = producer.get(float_of.get(out.name, ""))
        if src is not None and not (group and node_group(src.name) == group):
            dq = producer[out.name]
            dq.op_type, dq.domain = "Identity", ""
            del dq.input[:]
            dq.input.append(float_of[out.name])
            del dq.attribute[:]
    try:
        import onnx.utils  # noqa: F401
        from onnxruntime.quantization.onnx_model import ONNXModel
        ONNXModel(model).clean_initializers()  # drop what no node reads any more
        ONNXModel(model).remove_unused_constant()
    except Exception:
        pass
    onnx.checker.check_model(model)
    return model


def sensitivity(qdq_path: str | Path, reference: np.ndarray, x: np.ndarray, labels: np.ndarray | None = None,
                threads: int | None = 1) -> list[dict[str, Any]]:
    """Quantize one group at a time (from an already calibrated Q/DQ model) and rank the groups by the damage
    on clips `x` against fp32 `reference` logits: top-1 agreement and mean |logit diff|."""
    import onnx
    import onnxruntime as ort
    proto = onnx.load(str(qdq_path))
    dq_outputs = {o for n in proto.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    groups = sorted({node_group(n.name) for n in proto.graph.node
                     if n.op_type not in ("QuantizeLinear", "DequantizeLinear") and set(n.input) & dq_outputs})
    rows = []
    try:
        from tqdm import tqdm
        it = tqdm(groups + ["(all)"], desc="sensitivity", unit="group")
    except ImportError:
        it = groups + ["(all)"]
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    for group in it:
        model = proto if group == "(all)" else keep_only_group(proto, group)
        sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        out = np.concatenate([sess.run(None, {name: x[s:s + 32]})[0] for s in range(0, len(x), 32)])
        row = {"group": group, "agreement": float(np.mean(out.argmax(1) == reference.argmax(1))),
               "mean_abs_logit_diff": float(np.mean(np.abs(out - reference)))}
        if labels is not None:
            row["top1_delta_pts"] = 100 * float(np.mean(out.argmax(1) == labels) - np.mean(reference.argmax(1) == labels))
        rows.append(row)
    return sorted(rows, key=lambda r: (r["group"] != "(all)", -r["mean_abs_logit_diff"]))


def _add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keep-float", choices=KEEP_FLOAT_CHOICES, default="fragile",
                   help="which numerically fragile ops stay in float (default: fragile)")
    p.add_argument("--quantizer", choices=QUANTIZERS, default="auto",
                   help="auto (default): run onnxruntime's quantize_static and, if installed, NVIDIA ModelOpt's "
                        "ONNX PTQ, keep the one that agrees best with fp32; or force one")
    p.add_argument("--calibration-method", choices=CALIBRATION_METHODS, default="percentile",
                   help="activation ranges: percentile (default; clips rare outliers), minmax, entropy")
    p.add_argument("--percentile", type=float, default=DEFAULT_PERCENTILE,
                   help=f"with --calibration-method percentile: which percentile of each activation's histogram "
                        f"bounds its range (default {DEFAULT_PERCENTILE})")
    p.add_argument("--ort-placement", choices=ORT_PLACEMENTS, default="compute",
                   help="onnxruntime quantizer: quantize the inputs of Conv/MatMul/Gemm only (compute, default: "
                        "TensorRT's placement) or every op it can (all: its own default; requantizes every Add, "
                        "Concat and ReLU)")
    p.add_argument("--per-tensor", action="store_true", help="per-tensor instead of per-channel weight scales")
    p.add_argument("--opset", type=int, default=None,
                   help="opset of the fp32 export (default 17); with --quantizer auto also the highest opset the "
                        "result may have (ModelOpt writes >= 19)")
    p.add_argument("--quantize-streams", action="store_true",
                   help="also quantize the raw joint input the velocity/bone streams are derived from (the old "
                        "placement; loses accuracy on multi-stream models: for comparison only)")
    p.add_argument("--high-precision", choices=HIGH_PRECISIONS, default="fp32",
                   help="ModelOpt: dtype of the ops left unquantized (default fp32; fp16 is ModelOpt's own default)")
    p.add_argument("--holdout", type=float, default=DEFAULT_HOLDOUT,
                   help=f"share of the calibration set held back to verify on (default {DEFAULT_HOLDOUT})")
    p.add_argument("--eval-data", default=None,
                   help="verify on this split instead (<dataset>:<split>, e.g. nw_ucla:test); the whole calibration "
                        "set then calibrates")
    p.add_argument("--eval-num", type=int, default=None, help="with --eval-data: a stratified subset of N clips")
    p.add_argument("--sensitivity", action="store_true",
                   help="also quantize one part of the network at a time (stem, each block's gcn / temporal / "
                        "attention / residual, fc) and rank the parts by the damage on the verification clips")


def main(argv: list[str] | None = None) -> int:
    return export_main(export, argv, fmt="int8", precisions=FORMATS["int8"].precisions, default_precision="int8",
                       default_batch=None, description=__doc__.split("\n\n")[0], add_args=_add_args,
                       opts_from_args=lambda a: {"keep_float": a.keep_float, "quantizer": a.quantizer,
                                                 "calibration_method": a.calibration_method,
                                                 "per_channel": not a.per_tensor, "opset": a.opset,
                                                 "float_streams": not a.quantize_streams,
                                                 "high_precision": a.high_precision, "holdout": a.holdout,
                                                 "eval_data": a.eval_data, "eval_num": a.eval_num,
                                                 "sensitivity_report": a.sensitivity,
                                                 "ort_placement": a.ort_placement,
                                                 "percentile": a.percentile})


if __name__ == "__main__":
    sys.exit(main())
