"""Latency estimate for a device that is not this machine, from the model's FLOPs and bytes against the device
profile's peak compute and memory bandwidth. Always labelled an estimate; never mixed with measurements.

    t = max(F / (P * eta_c), B / (BW * eta_m)) + L * o_layer + o_fixed

F: FLOPs of one batch-1 inference (torch FlopCounterMode, a multiply-add = 2 FLOPs); P: the profile's peak for the
precision (GFLOPS); B: bytes moved = weights at the precision + every intermediate tensor written once and read
once; BW: the profile's memory bandwidth; L: operator count of the ONNX graph; eta_c, eta_m, o_layer, o_fixed: the
profile's `estimate` constants (python -m benchmarks.calibrate fits them from a measured run).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

BYTES_PER_ELEMENT = {"fp32": 4.0, "fp16": 2.0, "int8": 1.0}


@dataclass(frozen=True)
class GraphCost:
    """What the estimate needs to know about a model (batch 1, fp32 bytes)."""
    flops: float
    weight_bytes: float
    activation_bytes: float
    layers: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Estimate:
    latency_ms: float
    compute_ms: float
    memory_ms: float
    overhead_ms: float
    bound: str  # compute | memory
    peak_gflops: float
    unit: str
    precision: str

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kind": "estimate"}


def estimate_latency(cost: GraphCost, peak_gflops: float, bandwidth_gbs: float, constants: dict[str, Any],
                     precision: str = "fp32", unit: str = "") -> Estimate:
    """The formula of the module docstring (milliseconds)."""
    if peak_gflops <= 0 or bandwidth_gbs <= 0:
        raise ValueError("peak compute and bandwidth must be positive")
    scale = BYTES_PER_ELEMENT[precision] / 4.0
    compute_ms = cost.flops / (peak_gflops * 1e9 * constants["compute_efficiency"]) * 1e3
    bytes_moved = (cost.weight_bytes + 2.0 * cost.activation_bytes) * scale
    memory_ms = bytes_moved / (bandwidth_gbs * 1e9 * constants["bandwidth_efficiency"]) * 1e3
    overhead_ms = cost.layers * constants["layer_overhead_us"] / 1e3 + constants["fixed_overhead_ms"]
    bound = "compute" if compute_ms >= memory_ms else "memory"
    return Estimate(max(compute_ms, memory_ms) + overhead_ms, compute_ms, memory_ms, overhead_ms, bound,
                    peak_gflops, unit, precision)


def estimate_for_profile(cost: GraphCost, profile, precision: str | None = None) -> Estimate:
    precision = precision or profile.precision
    peak, unit = profile.peak_gflops(precision)
    return estimate_latency(cost, peak, float(profile.memory["bandwidth_gbs"]), profile.estimate, precision, unit)


# ----------------------------------------------------------------------------------------------------------
# The model's cost

def onnx_graph_cost(onnx_path: str | Path, flops: float) -> GraphCost:
    """Weights, intermediate activations (after shape inference at batch 1) and operator count of an ONNX model."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, shape_inference

    model = onnx.load(str(onnx_path))
    graph = model.graph
    weight_bytes = 0.0
    for init in graph.initializer:
        weight_bytes += float(np.prod(init.dims)) * helper.tensor_dtype_to_np_dtype(init.data_type).itemsize
    inferred = shape_inference.infer_shapes(model)
    produced = {o for n in graph.node for o in n.output}
    act = 0.0
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        if vi.name not in produced:
            continue
        t = vi.type.tensor_type
        if not t.HasField("shape") or t.elem_type == TensorProto.UNDEFINED:
            continue
        n = 1.0
        for d in t.shape.dim:
            n *= d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1  # symbolic batch -> 1
        act += n * helper.tensor_dtype_to_np_dtype(t.elem_type).itemsize
    return GraphCost(float(flops), weight_bytes, act, sum(1 for n in graph.node if n.op_type != "Constant"))
