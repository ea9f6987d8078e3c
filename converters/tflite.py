"""TFLite (LiteRT) export: fp32, fp16 and INT8 files converted directly from PyTorch with litert-torch.

    python -m converters.tflite --ckpt best.pt --precision fp32
    python -m converters.tflite --ckpt best.pt --precision fp16
    python -m converters.tflite --ckpt best.pt --precision int8 --calib runs/calib/nw_ucla_500.npz

No TensorFlow and no onnx2tf (onnx2tf produced numerically wrong models for this architecture).

fp32   litert-torch conversion of the traced model (torch.export), float32 I/O.
fp16   the fp32 file with float16 weights (ai-edge-quantizer float casting): half the size, float32 I/O
       and float32 math on CPU; GPU delegates run it in fp16.
int8   static post-training quantization calibrated on the calibration set; --int8-method picks how:
       aeq-compute (default) ai-edge-quantizer W8A8 on the convolutions only (inputs, weights and outputs of
                   CONV_2D / DEPTHWISE_CONV_2D int8, dequantized after; every other op float): where the Q/DQ
                   ONNX model and TensorRT quantize; float32 I/O. On the NW-UCLA checkpoints (nano..large,
                   joint and joint+velocity+bone) -0.22..+1.72 points vs fp32, where PT2E lost up to 9
                   (docs/converters.md).
       pt2e        litert-torch PT2E: per-channel int8 weights and int8 activations for conv,
                   add and concat; the elementwise multiplies (the linear-attention products and the
                   dynamic-adjacency scale) and the classifier head stay float (float32 logits).
       pt2e-all    litert-torch's stock PT2E config, multiplies quantised too (for comparison).
       aeq-w8a8    ai-edge-quantizer's static W8A8 recipe on the fp32 file: nearly every op integer.
       aeq-w8a16   ai-edge-quantizer W8 weights, int16 activations.
       full        full integer for NPU / DSP delegates (converters.full_int8): the model rewritten into
                   integer-friendly ops with the same function, every op int8, int8 input and output; the
                   stream derivation runs in float before the input is quantized (an input stage in the
                   metadata, run by core.runtime); the activation-range rule is chosen on the verification
                   clips (the checkpoint's validation split), --range-rules lists the candidates.
       The result's extra and the metadata sidecar state the I/O dtypes and the integer/float op split.

Every file is then run in the ai-edge-litert interpreter (core.runtime.TFLiteRuntime) and compared with
PyTorch fp32 on the verification clips (the calibration set when given, else synthetic motions; for int8 the
set's stratified 20 % hold-out, which the quantizer never sees): max |logit diff| and top-1 agreement. Batch is
fixed (default 1). Install: pip install -e '.[tflite]'
(litert-torch, ai-edge-litert, ai-edge-quantizer, typing-extensions<4.13).
"""
from __future__ import annotations

import argparse
import collections
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from converters import full_int8
from converters.common import quiet_output as _quiet
from converters.common import (BackendMissing, ExportResult, InputError, add_verification_args, artifact_stem,
                               export_main, load_export_model, missing_backend, require, reraise_if_disk_full,
                               staged_export, verification_opts)
from converters.formats import FORMATS
from converters.verify import compare_logits, judge, quantized_inputs, verification_inputs, verified_message
from core.artifact import artifact_metadata, write_sidecar
from core.evaluation import torch_logits
from core.runtime import load_runtime

log = logging.getLogger("converters.tflite")

FORMAT = "tflite"
INT8_METHODS = ("pt2e", "pt2e-all", "aeq-w8a8", "aeq-w8a16", "aeq-compute", "full")
DEFAULT_INT8_METHOD = "aeq-compute"
PIP_HINT = "pip install -e '.[tflite]'  (litert-torch ai-edge-litert ai-edge-quantizer 'typing-extensions<4.13')"
DEFAULT_CALIB_SAMPLES = 256


class NamedIO(torch.nn.Module):
    """Wraps the model so the TFLite signature reads skeleton -> logits, like every other artifact."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, skeleton: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.model(skeleton)}


def _litert_torch():
    return require("litert_torch", PIP_HINT)


def convert_fp32(model, sample: np.ndarray, path: Path, quiet: bool = True) -> Path:
    """torch -> .tflite (float32) with litert-torch."""
    litert_torch = _litert_torch()
    with _quiet(quiet):
        edge = litert_torch.signature("serving_default", NamedIO(model).eval(),
                                      sample_kwargs={"skeleton": torch.from_numpy(sample)}).convert()
        edge.export(str(path))
    return path


def cast_fp16(fp32_path: Path, path: Path, quiet: bool = True) -> Path:
    """Float16 weights (dequantised at load time) with ai-edge-quantizer's float-casting recipe."""
    require("ai_edge_quantizer", PIP_HINT)
    from ai_edge_quantizer import qtyping, quantizer
    qt = quantizer.Quantizer(str(fp32_path))
    qt.update_quantization_recipe(
        regex=".*", operation_name="*", algorithm_key="float_casting",
        op_config=qtyping.OpQuantizationConfig(
            weight_tensor_config=qtyping.TensorQuantizationConfig(num_bits=16, dtype=qtyping.TensorDataType.FLOAT),
            compute_precision=qtyping.ComputePrecision.FLOAT, explicit_dequantize=True))
    with _quiet(quiet):
        qt.quantize().export_model(str(path), overwrite=True)
    return path


# PT2E op patterns left in float by the default recipe: the elementwise multiplies (linear-attention out*z and
# alpha*A_dynamic: quantising them costs accuracy) and the classifier head (float logits, no int8 ties)
FLOAT_PATTERNS = ("mul", "mul_relu", "linear", "addmm")


def _pt2e_quantizer(float_patterns: tuple[str, ...] = FLOAT_PATTERNS):
    """litert-torch's PT2E quantizer (per-channel symmetric int8 weights, int8 activations) with the
    given op patterns left unannotated, i.e. computed in float."""
    _litert_torch()
    from litert_torch.quantize import pt2e_quantizer as pt2eq

    class PartialPT2EQuantizer(pt2eq.PT2EQuantizer):
        # set_module_name/type silently match nothing under torch.export in torch 2.13, so the op list is
        # the only reliable switch
        STATIC_OPS = [op for op in pt2eq.PT2EQuantizer.STATIC_OPS if op not in float_patterns]

    return PartialPT2EQuantizer().set_global(
        pt2eq.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))


def convert_int8_pt2e(model, calib_x: np.ndarray, path: Path, batch: int = 1,
                      float_patterns: tuple[str, ...] = FLOAT_PATTERNS, quiet: bool = True) -> Path:
    """PT2E static INT8: export, insert observers, run the calibration clips, convert, lower to TFLite."""
    litert_torch = _litert_torch()
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    named = NamedIO(model).eval()
    sample = torch.from_numpy(np.ascontiguousarray(calib_x[:batch]))
    quantizer = _pt2e_quantizer(float_patterns)
    graph = torch.export.export(named, (), {"skeleton": sample}).module()
    graph = prepare_pt2e(graph, quantizer)
    from tqdm import tqdm
    with torch.no_grad():
        for i in tqdm(range(0, len(calib_x), batch), desc="calibrating (PT2E)", leave=False,
                      disable=quiet and not sys.stderr.isatty()):
            graph(skeleton=torch.from_numpy(np.ascontiguousarray(calib_x[i:i + batch])))
    graph = convert_pt2e(graph, fold_quantize=False)
    with _quiet(quiet):
        edge = litert_torch.signature("serving_default", graph, sample_kwargs={"skeleton": sample}).convert(
            quant_config=QuantConfig(pt2e_quantizer=quantizer))
        edge.export(str(path))
    return path


# TFLite ops the ai-edge-quantizer recipes leave in float: an int8 DIV fails at runtime on the linear-attention
# normaliser (its denominator quantises to the zero point: "div.cc data[i] != zero_point")
AEQ_FLOAT_OPS = ("DIV",)
# aeq-compute: only the convolutions compute in int8 (their inputs and weights quantized, outputs dequantized),
# the placement of the Q/DQ ONNX model and of TensorRT. Everything else stays float: the stream derivation from
# the raw joints (SUB, BATCH_MATMUL / FULLY_CONNECTED), the attention and dynamic-adjacency products, and the
# convolutions' outputs (PT2E quantizes those, e.g. the attention's q/k/v in one range: NW-UCLA last_nano
# joint+velocity+bone fell 9 points with PT2E and holds with this)
AEQ_COMPUTE_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D")


def convert_int8_aeq(fp32_path: Path, calib_x: np.ndarray, path: Path, activation_bits: int = 8,
                     float_ops: tuple[str, ...] = AEQ_FLOAT_OPS, quiet: bool = True,
                     integer_ops: tuple[str, ...] | None = None) -> Path:
    """ai-edge-quantizer static recipe (int8 weights, int8/int16 activations) calibrated on the clips;
    integer_ops: quantize only these op types (every other op type of the file stays float)."""
    require("ai_edge_quantizer", PIP_HINT)
    from ai_edge_quantizer import quantizer, recipe
    if integer_ops is not None:
        present = set(describe(fp32_path)["ops"])
        # INPUT / OUTPUT: ai-edge-quantizer's names for the graph's I/O tensors, kept float too, so the raw
        # joints the velocity / bone streams are derived from are never rounded to int8
        float_ops = tuple(sorted(present - set(integer_ops))) + ("INPUT", "OUTPUT")
    qt = quantizer.Quantizer(str(fp32_path))
    qt.load_quantization_recipe(recipe.static_wi8_ai8() if activation_bits == 8 else recipe.static_wi8_ai16())
    for op in float_ops:
        qt.update_quantization_recipe(regex=".*", operation_name=op, algorithm_key="no_quantize")
    batch = _fixed_batch(fp32_path)
    # the calibration data is {signature: [{input name: array}, ...]}
    from ai_edge_litert.interpreter import Interpreter
    sig = Interpreter(model_path=str(fp32_path)).get_signature_list()
    sig_name, sig_io = next(iter(sig.items()))
    input_name = sig_io["inputs"][0]
    samples = [{input_name: np.ascontiguousarray(calib_x[i:i + batch])} for i in range(0, len(calib_x) - batch + 1, batch)]
    with _quiet(quiet):
        calibration = qt.calibrate({sig_name: samples})
        qt.quantize(calibration).export_model(str(path), overwrite=True)
    return path


def _fixed_batch(path: Path) -> int:
    from ai_edge_litert.interpreter import Interpreter
    return int(Interpreter(model_path=str(path)).get_input_details()[0]["shape"][0])


def describe(path: str | Path) -> dict[str, Any]:
    """I/O dtypes, op counts and how much of the graph computes in integer, read from the interpreter."""
    litert = require("ai_edge_litert.interpreter", "pip install ai-edge-litert")
    it = litert.Interpreter(model_path=str(path))
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    ops = it._get_ops_details()  # the public API has no op list; this is what the LiteRT analyzer uses
    counts = collections.Counter(op["op_name"] for op in ops)
    boundary = {"QUANTIZE", "DEQUANTIZE"}
    integer = [op for op in ops if op["op_name"] not in boundary
               and any(np.dtype(t).kind in "iu" for t in op["operand_types"][:1])]
    compute = [op for op in ops if op["op_name"] not in boundary]
    integer_index = {op["index"] for op in integer}
    return {
        "input_dtype": np.dtype(inp["dtype"]).name,
        "output_dtype": np.dtype(out["dtype"]).name,
        "input_shape": [int(v) for v in inp["shape"]],
        "input_quantization": [float(inp["quantization"][0]), int(inp["quantization"][1])],
        "output_quantization": [float(out["quantization"][0]), int(out["quantization"][1])],
        "ops": dict(sorted(counts.items())),
        "integer_ops": len(integer),
        "compute_ops": len(compute),
        "float_op_types": sorted({op["op_name"] for op in compute if op["index"] not in integer_index}),
    }


def verify(path: Path, model, x: np.ndarray, threads: int | None = None) -> dict[str, Any]:
    """Run the file in the ai-edge-litert interpreter (core.runtime) and compare with PyTorch fp32 on x."""
    reference = torch_logits(model, x)
    with load_runtime(path, threads=threads) as runtime:
        start = time.perf_counter()
        got = runtime.predict(x)
        seconds = time.perf_counter() - start
    stats = compare_logits(reference, got)
    stats["ms_per_clip"] = round(1000 * seconds / max(len(x), 1), 3)
    return stats


@staged_export(FORMAT)
def export(ckpt: str | Path, out_dir: str | Path, precision: str = "fp32", calib: str | Path | None = None,
           batch: int | None = 1, int8_method: str = DEFAULT_INT8_METHOD, verify_samples: int = 64,
           calib_samples: int = DEFAULT_CALIB_SAMPLES, quiet: bool = True, eval_data: str | None = None,
           range_rules: tuple[str, ...] = full_int8.CANDIDATE_RULES) -> ExportResult:
    """Convert a checkpoint to a .tflite file and score it in the LiteRT interpreter against PyTorch fp32
    (on the verification clips; with eval_data '<dataset>:<split>' also top-1 on that real split)."""
    if precision not in FORMATS[FORMAT].precisions:
        raise InputError(f"converters.tflite exports {', '.join(FORMATS[FORMAT].precisions)}, not {precision!r}")
    if int8_method not in INT8_METHODS:
        raise InputError(f"--int8-method must be one of {', '.join(INT8_METHODS)}, got {int8_method!r}")
    notes: list[str] = []
    if batch is None:
        batch = 1
        notes.append("TFLite files have a fixed batch here; exported with batch 1")
    model, ck = load_export_model(ckpt)
    # verification and calibration clips; a bad --calib raises InputError before any work is done
    calib_x, calib_source = None, None
    if precision == "int8" and calib is not None:  # verified on the set's held-back clips, not calibrated on
        x, source, calib_x, calib_source = quantized_inputs(ck, calib, max(verify_samples, batch), calib_samples)
    else:
        x, source = verification_inputs(ck, calib, count=max(verify_samples, batch))
    x = x[: max(len(x) // batch, 1) * batch]
    if precision == "int8":
        if calib_x is None:
            calib_x, calib_source = verification_inputs(ck, None, count=calib_samples, seed=1)
            notes.append("no --calib: calibrated on synthetic motions, which is only a smoke test; pass "
                         "--calib from python -m converters.calib for a deployable INT8 file")
        calib_x = calib_x[: max(len(calib_x) // batch, 1) * batch]
    try:
        _litert_torch()
        require("ai_edge_litert.interpreter", PIP_HINT)
        if precision != "fp32":
            require("ai_edge_quantizer", PIP_HINT)
    except BackendMissing as exc:
        return missing_backend(FORMAT, precision, exc)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = artifact_stem(ckpt, precision, batch)
    if precision == "int8" and int8_method != DEFAULT_INT8_METHOD:
        stem += "_" + int8_method.replace("-", "_")
    path = out_dir / f"{stem}.tflite"
    sample = np.ascontiguousarray(x[:batch])
    start = time.perf_counter()
    full: full_int8.FullInt8Result | None = None
    try:
        with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
            fp32_path = path if precision == "fp32" else Path(tmp) / "fp32.tflite"
            if not (precision == "int8" and (int8_method.startswith("pt2e") or int8_method == "full")):
                convert_fp32(model, sample, fp32_path, quiet)
            if precision == "int8" and int8_method == "full":
                full = full_int8.convert(model, calib_x, x, path, convert_fp32, batch, rules=tuple(range_rules),
                                         quiet=quiet)
            elif precision == "fp16":
                cast_fp16(fp32_path, path, quiet)
            elif precision == "int8" and int8_method.startswith("pt2e"):
                convert_int8_pt2e(model, calib_x, path, batch,
                                  float_patterns=() if int8_method == "pt2e-all" else FLOAT_PATTERNS, quiet=quiet)
            elif precision == "int8":
                convert_int8_aeq(fp32_path, calib_x, path, 16 if int8_method == "aeq-w8a16" else 8, quiet=quiet,
                                 integer_ops=AEQ_COMPUTE_OPS if int8_method == "aeq-compute" else None)
    except (BackendMissing, InputError) as exc:
        if isinstance(exc, InputError):
            raise
        return missing_backend(FORMAT, precision, exc)
    except Exception as exc:  # a conversion failure is a result row, not a crash
        reraise_if_disk_full(exc)
        log.debug("tflite conversion failed", exc_info=True)
        return ExportResult(FORMAT, precision, None, "failed",
                            f"litert-torch conversion failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
    export_seconds = time.perf_counter() - start

    info = describe(path)
    method = int8_method if precision == "int8" else None
    full_info = full_int8.metadata(full, info) if full is not None else {}
    meta = artifact_metadata(ck, FORMAT, precision, batch=batch, converter="litert-torch",
                             int8_method=method, input_dtype=info["input_dtype"], output_dtype=info["output_dtype"],
                             calibration=calib_source, **full_info)
    write_sidecar(path, meta)

    try:
        stats = verify(path, model, x)
    except RuntimeError as exc:  # the interpreter refuses to run the file: a result row, not a crash
        first = str(exc).strip().splitlines()[0][:300]
        return ExportResult(FORMAT, precision, path, "failed",
                            f"written, but the LiteRT interpreter cannot run it: {first}",
                            extra={**info, "calibration": calib_source, "int8_method": method, "batch": batch})
    good, problems = judge(FORMAT, precision, stats)
    io = f"I/O {info['input_dtype']} -> {info['output_dtype']}"
    if precision == "int8":
        io += (f", {info['integer_ops']}/{info['compute_ops']} compute ops integer"
               f" (float: {', '.join(info['float_op_types']) or 'none'})")
    if full is not None:
        io += f"; {full_int8.choice_message(full, source)}"
    msg = (f"LiteRT interpreter vs PyTorch fp32 on {stats['samples']} clips ({source}): max |logit diff| "
           f"{stats['max_abs_diff']:.3g}, top-1 agreement {stats['top1_agreement']:.3f}; {io}")
    msg, split_stats = verified_message(msg, predict_fn(path) if eval_data else None, model, ck, eval_data, notes,
                                        good, problems)
    return ExportResult(FORMAT, precision, path, "ok" if good else "failed", msg,
                        extra={**stats, **info, **split_stats, "verify_source": source, "calibration": calib_source,
                               "int8_method": method, "batch": batch, "export_seconds": round(export_seconds, 2),
                               **{k: v for k, v in full_info.items() if k != "input_stage"}})


def predict_fn(path: str | Path, threads: int | None = None):
    """x (N, C, T, V, M) float32 -> logits, through the LiteRT interpreter (for the all-formats table)."""
    return load_runtime(path, threads=threads).predict


def _add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--int8-method", choices=INT8_METHODS, default=DEFAULT_INT8_METHOD,
                   help="INT8 recipe (default aeq-compute: int8 convolutions, everything else float; full: "
                        "every op int8 and int8 I/O, for NPU / DSP delegates)")
    p.add_argument("--range-rules", default=",".join(full_int8.CANDIDATE_RULES),
                   help="--int8-method full: activation-range rules to try, comma-separated; the one that agrees "
                        "best with fp32 on the verification clips (the checkpoint's validation split) is kept "
                        f"(default {','.join(full_int8.CANDIDATE_RULES)}; see converters.full_int8)")
    add_verification_args(p, verify_samples=64, calib_samples=DEFAULT_CALIB_SAMPLES, tool="litert-torch")


def main(argv: list[str] | None = None) -> int:
    torch.set_flush_denormal(True)  # this process only: subnormals make the PyTorch reference 15x slower on x86
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return export_main(export, argv, fmt=FORMAT, precisions=FORMATS[FORMAT].precisions, default_batch=1,
                       description=__doc__.split("\n\n")[0], add_args=_add_args,
                       opts_from_args=lambda a: {"int8_method": a.int8_method, **verification_opts(a),
                                                 "range_rules": tuple(r.strip() for r in a.range_rules.split(",")
                                                                      if r.strip())})


if __name__ == "__main__":
    sys.exit(main())
