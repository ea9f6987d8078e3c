"""Full-integer LiteRT files (`python -m converters.tflite --precision int8 --int8-method full`): int8
activations and weights in every op, int8 input and output, for the NPU / DSP delegates that take a model
whole only when it is integer end to end (NNAPI, Qualcomm QNN / Hexagon, the Edge TPU, ...).

1. The model is rewritten into integer-friendly ops with the same function (core.models.integer_graph): the
   velocity / bone streams and their normalisation move into a float input stage that the runtime runs before
   it quantizes the input (core.data.streams.StreamInputStage, stored in the artifact's metadata), the
   attention's EXP / MEAN / DIV become LOGISTIC / SUM / RSQRT forms, the stems become one convolution.
2. litert-torch converts that graph to a float .tflite.
3. Every activation's range is measured on the calibration clips in the LiteRT interpreter (per clip min/max
   of every tensor), and ai-edge-quantizer's static int8 recipe quantizes every op, the graph's input and
   output included, with those ranges: per-channel symmetric int8 weights, per-tensor int8 activations.

Range rules (--range-rule, chosen on the checkpoint's validation clips, never the test split):
    ema       ai-edge-quantizer's own: an exponential moving average (0.95) of each clip's min and max
    minmax    the smallest min and largest max over all calibration clips
    q<P>      the P-th percentile over clips of each clip's min and max (e.g. q99: one clip in a hundred may
              exceed the range and clip)
    p<P>      the (100 - P)-th and P-th percentiles of all the tensor's values over all clips (from a
              histogram): the bulk of the values gets the int8 steps, rare extremes clip
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from converters.common import InputError, quiet_output, require
from core.data.streams import StreamInputStage
from core.evaluation import torch_logits
from core.models.integer_graph import integer_friendly
from core.runtime import TFLiteRuntime

PIP_HINT = "pip install -e '.[tflite]'  (litert-torch ai-edge-litert ai-edge-quantizer 'typing-extensions<4.13')"
RANGE_RULES = ("ema", "minmax", "q95", "q99", "q99.9", "p99.9", "p99.99", "p99.999")
DEFAULT_RANGE_RULE = "p99.99"
# the rules tried by default, one activation measurement for all (each trial is a quantization and a scoring)
CANDIDATE_RULES = ("p99.9", "p99.99", "p99.999", "q99", "minmax", "ema")
MIN_RANGE = 1e-6
# float ops a full-integer file may keep (none: the rewrite and the recipe quantize every op of LAST)
DOCUMENTED_FLOAT_OPS: tuple[str, ...] = ()
# every input channel (stream x coordinate) is scaled so that this percentile of its |value| is 1
DEFAULT_INPUT_PERCENTILE = 99.99
EMA_FACTOR = 0.95  # ai-edge-quantizer's moving-average smoothing


HISTOGRAM_BINS = 4096


@dataclass
class TensorRanges:
    """Activation statistics of a float .tflite file on calibration clips: per tensor, every clip's [min, max]
    and a histogram of all its values over [global min, global max]."""

    per_clip: dict[str, np.ndarray]  # name -> (clips, 2)
    histograms: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (HISTOGRAM_BINS,)

    def range(self, name: str, rule: str) -> tuple[float, float]:
        """(min, max) of one tensor under a range rule."""
        per_clip = self.per_clip[name]
        lo, hi = per_clip[:, 0], per_clip[:, 1]
        if rule == "minmax":
            return float(lo.min()), float(hi.max())
        if rule == "ema":
            a, b = lo[0], hi[0]
            for x, y in zip(lo[1:], hi[1:]):
                a, b = EMA_FACTOR * a + (1 - EMA_FACTOR) * x, EMA_FACTOR * b + (1 - EMA_FACTOR) * y
            return float(a), float(b)
        if rule.startswith("q"):
            p = float(rule[1:])
            return float(np.percentile(lo, 100 - p)), float(np.percentile(hi, p))
        if rule.startswith("p") and name in self.histograms:
            p = float(rule[1:])
            counts = self.histograms[name]
            edges = np.linspace(lo.min(), hi.max(), len(counts) + 1)
            cdf = np.cumsum(counts) / max(counts.sum(), 1)
            low = edges[int(np.searchsorted(cdf, 1 - p / 100))]
            high = edges[min(int(np.searchsorted(cdf, p / 100)) + 1, len(counts))]
            return float(min(low, 0.0) if lo.min() <= 0 else low), float(max(high, 0.0))
        raise InputError(f"range rule must be one of {', '.join(RANGE_RULES)}, got {rule!r}")


def _each_clip(float_path: Path, features: np.ndarray, batch: int):
    """Run the float file clip batch by clip batch, yielding {tensor name: value} of every float tensor."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    # no XNNPACK: a delegated partition's inner tensors are not the interpreter's to read
    it = Interpreter(model_path=str(float_path), experimental_preserve_all_tensors=True,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    details = [d for d in it.get_tensor_details() if d["name"] and np.all(d["shape"])
               and np.dtype(d["dtype"]) == np.float32]
    for start in range(0, len(features) - batch + 1, batch):
        it.set_tensor(inp["index"], np.ascontiguousarray(features[start:start + batch]))
        it.invoke()
        values = {}
        for d in details:
            try:
                values[d["name"]] = it.get_tensor(d["index"])
            except ValueError:  # a constant or an unallocated temporary
                continue
        yield values


def collect_ranges(float_path: Path, features: np.ndarray, batch: int = 1, histograms: bool = True) -> TensorRanges:
    """Per-clip extremes (and, in a second pass, histograms) of every non-constant float tensor of a .tflite
    file, measured in the LiteRT interpreter on `features` (the graph's input)."""
    per_clip: dict[str, list[tuple[float, float]]] = {}
    for values in _each_clip(float_path, features, batch):
        for name, value in values.items():
            per_clip.setdefault(name, []).append((float(value.min()), float(value.max())))
    ranges = TensorRanges({name: np.asarray(v, np.float64) for name, v in per_clip.items()})
    if histograms:
        bounds = {name: (v[:, 0].min(), v[:, 1].max()) for name, v in ranges.per_clip.items()}
        hist = {name: np.zeros(HISTOGRAM_BINS, np.int64) for name in bounds}
        for values in _each_clip(float_path, features, batch):
            for name, value in values.items():
                lo, hi = bounds[name]
                if hi <= lo:
                    continue
                idx = ((value.reshape(-1) - lo) * (HISTOGRAM_BINS / (hi - lo))).astype(np.int64)
                hist[name] += np.bincount(np.clip(idx, 0, HISTOGRAM_BINS - 1), minlength=HISTOGRAM_BINS)
        ranges.histograms = hist
    return ranges


def calibration_result(template: dict[str, Any], ranges: TensorRanges, rule: str) -> dict[str, Any]:
    """ai-edge-quantizer's calibration result (its QSV dict, from a short run of its own calibrator) with every
    tensor's min/max replaced by the rule's range over all clips."""
    out = {}
    for name, qsv in template.items():
        qsv = dict(qsv)
        if name in ranges.per_clip and "min" in qsv:
            lo, hi = ranges.range(name, rule)
            lo, hi = min(lo, 0.0), max(hi, 0.0)
            if hi - lo < MIN_RANGE:  # a tensor that is always zero (e.g. a branch scaled by 0): any scale
                hi = lo + MIN_RANGE  # represents it exactly, a zero-width range none (scale 0 divides by 0)
            qsv["min"] = np.full_like(np.asarray(qsv["min"], np.float32), lo)
            qsv["max"] = np.full_like(np.asarray(qsv["max"], np.float32), hi)
        out[name] = qsv
    return out


def quantize(float_path: Path, features: np.ndarray, path: Path, rule: str = DEFAULT_RANGE_RULE,
             float_ops: tuple[str, ...] = (), ranges: TensorRanges | None = None,
             quiet: bool = True) -> TensorRanges:
    """Static int8 everywhere (ai-edge-quantizer static_wi8_ai8, I/O included) with the rule's ranges; returns
    the per-clip ranges (to reuse for another rule)."""
    require("ai_edge_quantizer", PIP_HINT)
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import qtyping, quantizer, recipe
    qt = quantizer.Quantizer(str(float_path))
    qt.load_quantization_recipe(recipe.static_wi8_ai8())
    # a constant operand of BATCH_MATMUL (the fixed adjacency of the graph convolution) per tensor: LiteRT's int8
    # BATCH_MATMUL reads one scale, and a per-channel constant silently gave wrong products (agreement 0.28)
    qt.add_static_config(".*", "BATCH_MATMUL", 8, 8, qtyping.QuantGranularity.TENSORWISE)
    for op in float_ops:
        qt.update_quantization_recipe(regex=".*", operation_name=op, algorithm_key="no_quantize")
    batch = int(Interpreter(model_path=str(float_path)).get_input_details()[0]["shape"][0])
    sig = Interpreter(model_path=str(float_path)).get_signature_list()
    sig_name, sig_io = next(iter(sig.items()))
    name = sig_io["inputs"][0]
    if ranges is None:
        ranges = collect_ranges(float_path, features, batch)
    with quiet_output(quiet, stderr=True):
        # two clips give the quantizer's own result structure (which tensors, which shapes); ranges replace it
        template = qt.calibrate({sig_name: [{name: np.ascontiguousarray(features[i:i + batch])}
                                            for i in range(0, 2 * batch, batch)]})
        qt.quantize(calibration_result(template, ranges, rule)).export_model(str(path), overwrite=True)
    return ranges


@dataclass
class FullInt8Result:
    stage: StreamInputStage  # the float input stage, for the artifact's metadata
    rule: str  # the range rule kept
    candidates: list[dict[str, Any]]  # every rule tried: agreement / mean |logit diff| on the verification clips


def score(path: Path, stage: StreamInputStage, reference: np.ndarray, x: np.ndarray) -> dict[str, float]:
    """Agreement and mean |logit diff| of a full-integer file (run by core.runtime, input stage and quantization
    included) against fp32 reference logits on clips x."""
    with TFLiteRuntime(path, threads=1, metadata=runtime_metadata(stage, x.shape)) as rt:
        got = rt.predict(x)
    return {"agreement": float(np.mean(got.argmax(1) == reference.argmax(1))),
            "mean_abs_logit_diff": float(np.mean(np.abs(got - reference)))}


def runtime_metadata(stage: StreamInputStage, input_shape: tuple[int, ...]) -> dict[str, Any]:
    """The metadata core.runtime needs to run a full-integer file before its sidecar exists."""
    return {"input_shape": [None, *input_shape[1:]], "input_stage": stage.to_dict(), "class_names": []}


def convert(model, calib_x: np.ndarray, verify_x: np.ndarray, path: Path, to_float: Callable[..., Path],
            batch: int = 1,
            rules: tuple[str, ...] = CANDIDATE_RULES, input_percentile: float = DEFAULT_INPUT_PERCENTILE,
            float_ops: tuple[str, ...] = (), quiet: bool = True, **graph_options: Any) -> FullInt8Result:
    """Checkpoint model -> full-integer .tflite at `path`. Every range rule in `rules` is quantized from one
    measurement of the activations on calib_x; the one that agrees best with PyTorch fp32 on verify_x (ties:
    the smaller mean |logit diff|) is kept. verify_x must be clips the calibration never saw (the checkpoint's
    validation split): the choice is made there, never on a test split. to_float(module, sample, path, quiet)
    writes the float .tflite (converters.tflite.convert_fp32)."""
    for rule in rules:
        if not (rule in RANGE_RULES or (rule[:1] in "pq" and _is_number(rule[1:]))):
            raise InputError(f"range rule must be one of {', '.join(RANGE_RULES)} (or p<percentile> / q<percentile>), "
                             f"got {rule!r}")
    stage, graph = integer_friendly(model, calib_x, input_percentile, **graph_options)
    features = stage(calib_x)
    reference = torch_logits(model, verify_x)
    candidates = []
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        float_path = Path(tmp) / "integer_graph_fp32.tflite"
        to_float(graph, np.ascontiguousarray(features[:batch]), float_path, quiet)
        ranges = collect_ranges(float_path, features, batch, histograms=any(r.startswith("p") for r in rules))
        for rule in rules:
            trial = Path(tmp) / f"{rule}.tflite"
            quantize(float_path, features, trial, rule, float_ops, ranges, quiet)
            candidates.append({"rule": rule, **score(trial, stage, reference, verify_x)})
        best = max(candidates, key=lambda c: (c["agreement"], -c["mean_abs_logit_diff"]))
        shutil.move(str(Path(tmp) / f"{best['rule']}.tflite"), str(path))
    return FullInt8Result(stage, best["rule"], candidates)


def metadata(result: FullInt8Result, info: dict[str, Any]) -> dict[str, Any]:
    """What a full-integer artifact's sidecar adds: the input stage the runtime runs, the int8 input's scale and
    zero point, the graph's own input shape (the streams stacked) and the range rule with its candidates."""
    return {"input_stage": result.stage.to_dict(),
            "input_quantization": {"scale": info["input_quantization"][0], "zero_point": info["input_quantization"][1]},
            "output_quantization": {"scale": info["output_quantization"][0],
                                    "zero_point": info["output_quantization"][1]},
            "graph_input_shape": info["input_shape"], "range_rule": result.rule,
            "range_candidates": result.candidates}


def choice_message(result: FullInt8Result, source: str) -> str:
    tried = ", ".join(f"{c['rule']} {c['agreement']:.3f}" for c in result.candidates)
    return f"range rule {result.rule}, chosen on {source} by agreement with fp32 ({tried})"


def _is_number(text: str) -> bool:
    try:
        return 0 < float(text) <= 100
    except ValueError:
        return False
