"""What a device profile accepts: the ONNX opset and operators of its runtime, and its precisions. A violation
makes a `rejected` row that names the operator (or opset, or precision), never a crash."""
from __future__ import annotations

from pathlib import Path

from converters.onnx import opset_of


def onnx_ops(model) -> dict[str, int]:
    """Operator counts of an ONNX graph and of its subgraphs (If/Loop bodies), default domain first."""
    counts: dict[str, int] = {}

    def walk(graph):
        for node in graph.node:
            key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
            counts[key] = counts.get(key, 0) + 1
            for attr in node.attribute:
                if attr.g is not None and len(attr.g.node):
                    walk(attr.g)
                for g in attr.graphs:
                    walk(g)
    walk(model.graph)
    return counts


def check_onnx(path: str | Path, profile) -> list[str]:
    """Every reason the profile's runtime would refuse this ONNX file (empty list: accepted)."""
    import onnx
    if not profile.onnx:
        return []
    model = onnx.load(str(path), load_external_data=False)
    runtime = f"{profile.runtime} {profile.runtime_info['version']}"
    problems = []
    opset = opset_of(model)
    if opset > profile.max_opset:
        problems.append(f"opset {opset} > {profile.max_opset}, the highest {runtime} parses")
    ops = onnx_ops(model)
    supported = set(profile.onnx.get("supported_ops") or ())
    unsupported = set(profile.onnx.get("unsupported_ops") or ())
    for op, n in sorted(ops.items()):
        if (supported and op not in supported) or op in unsupported:
            problems.append(f"operator {op} ({n} node{'s' if n > 1 else ''}) is not supported by {runtime}'s ONNX "
                            f"parser")
    return problems


def check_precision(precision: str, profile) -> list[str]:
    base = precision.split("/")[0]
    if base in ("w8",):  # weight-only quantisation runs in the device's float precision
        return []
    if base not in profile.precisions:
        return [f"precision {base} is not one {profile.name} runs ({', '.join(profile.precisions)})"]
    return []
