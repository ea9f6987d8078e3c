"""Which ops of an artifact a device's accelerator would run, and which fall back to the CPU (or GPU), judged from
the delegate rules in the device profile (devices/*.yaml `delegates`, from the vendors' documentation) before
anyone owns the device.

    python -m benchmarks.delegates --profile android_snapdragon runs/export/best/best_int8_b1_full.tflite
    python -m benchmarks.delegates --profile raspberry_pi_4 model.tflite --json runs/delegates.json

A rule names the ops a delegate runs (TFLite builtin names for .tflite files, ONNX op types for .onnx), the
tensor dtypes it computes (an op whose activations have another dtype, e.g. a float op in an otherwise int8
file, falls back), the largest tensor rank it accepts, and how it partitions: per_op (NNAPI, QNN, TensorRT
DLA: every unsupported op falls back alone, the graph is split into accelerator segments) or prefix (the Edge
TPU compiler: the first unsupported op and everything after it run on the CPU). The report counts the ops
placed on the accelerator, the segments (every switch between accelerator and CPU costs a copy) and names the
ops that fall back with the reason. It reads the graph only; the vendor's compiler has the last word.
"""
from __future__ import annotations

import collections
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.cli import ArgumentParser, BadInput, run_cli
from core.markdown import table_head
from devices import DeviceProfile, load_profile

PROG = "python -m benchmarks.delegates"
SUFFIX_ARTIFACT = {".tflite": "tflite", ".onnx": "onnx", ".mlpackage": "coreml", ".mlmodel": "coreml"}
# ONNX ops TensorRT fuses into their neighbours or folds at build time: never a layer of their own
ONNX_FOLDED = {"Constant", "Identity", "Shape", "Gather", "Cast"}


@dataclass
class GraphOp:
    index: int
    op: str
    dtypes: list[str]  # dtypes of its non-constant input and output tensors
    rank: int  # largest rank among them
    nonunit_dims: int  # largest number of dimensions > 1 among them
    weights_constant: bool = True  # its second input (the weights of FULLY_CONNECTED / CONV_2D) is a constant


@dataclass
class DelegateReport:
    artifact: str
    delegate: str
    ops: int
    on_accelerator: int
    segments: int  # contiguous runs of accelerator ops in execution order
    fallback: dict[str, int] = field(default_factory=dict)  # op -> count
    reasons: dict[str, str] = field(default_factory=dict)  # op -> why (the first such op's reason)
    first_fallback: str | None = None  # "OP (op #i)" of the first op that falls back
    status: str = "whole"  # whole | partial | none | not applicable
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def short(self) -> str:
        """One line for a verdict: how much runs there and which ops do not."""
        if self.status == "whole":
            return f"{self.delegate}: all {self.ops} ops on the accelerator"
        return (f"{self.delegate}: {self.on_accelerator}/{self.ops} ops on the accelerator, "
                f"{', '.join(self.fallback)} fall back")

    def text(self) -> str:
        if self.status == "not applicable":
            return f"{self.delegate}: {self.note}"
        if self.status == "whole":
            return f"{self.delegate}: all {self.ops} ops on the accelerator"
        falls = ", ".join(f"{op} ×{n} ({self.reasons[op]})" for op, n in self.fallback.items())
        return (f"{self.delegate}: {self.on_accelerator}/{self.ops} ops on the accelerator in {self.segments} "
                f"segment{'s' if self.segments != 1 else ''}; falls back: {falls}")


def tflite_graph(path: str | Path) -> list[GraphOp]:
    """Ops of a .tflite file in execution order, with their activation dtypes and ranks."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    # no default delegate: XNNPACK would replace the ops it takes by one DELEGATE node
    it = Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    tensors = {d["index"]: d for d in it.get_tensor_details()}
    constant = set()
    for d in tensors.values():
        try:
            it.get_tensor(d["index"])  # before allocate_tensors only the constants have data
            constant.add(d["index"])
        except ValueError:
            pass
    ops = []
    for op in it._get_ops_details():  # the public API has no op list (what the LiteRT analyzer uses)
        ids = [i for i in list(op["inputs"]) + list(op["outputs"]) if i >= 0 and i not in constant]
        shapes = [tensors[i]["shape"] for i in ids if i in tensors]
        inputs = [i for i in op["inputs"] if i >= 0]
        ops.append(GraphOp(int(op["index"]), op["op_name"], sorted({np.dtype(tensors[i]["dtype"]).name for i in ids}),
                           max((len(s) for s in shapes), default=0),
                           max((int(np.sum(np.asarray(s) > 1)) for s in shapes), default=0),
                           len(inputs) < 2 or inputs[1] in constant))
    return ops


def onnx_graph(path: str | Path) -> list[GraphOp]:
    """Nodes of an ONNX graph in order, with the ranks shape inference gives their tensors."""
    import onnx
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path), load_external_data=False))
    ranks = {v.name: len(v.type.tensor_type.shape.dim)
             for v in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output)}
    consts = {i.name for i in model.graph.initializer}
    ops = []
    for i, node in enumerate(model.graph.node):
        names = [n for n in list(node.input) + list(node.output) if n and n not in consts]
        ops.append(GraphOp(i, node.op_type, [], max((ranks.get(n, 0) for n in names), default=0), 0))
    return ops


def artifact_graph(path: str | Path) -> tuple[str, list[GraphOp]]:
    kind = SUFFIX_ARTIFACT.get(Path(path).suffix.lower())
    if kind == "tflite":
        return kind, tflite_graph(path)
    if kind == "onnx":
        return kind, onnx_graph(path)
    return kind or Path(path).suffix, []


def placement(op: GraphOp, rule: dict[str, Any], artifact: str) -> str | None:
    """None when the delegate runs this op, else why it falls back."""
    if artifact == "onnx" and op.op in ONNX_FOLDED:
        return None
    ops = rule["ops"]
    if op.op not in ops:
        return "not in its supported ops"
    allowed = ops[op.op] or rule["dtypes"]
    if artifact == "tflite":
        if op.op in ("QUANTIZE", "DEQUANTIZE"):  # they convert: at least one side must be a dtype it computes
            if not set(op.dtypes) & set(allowed):
                return f"{'/'.join(op.dtypes)} not computed there"
        elif any(d not in allowed for d in op.dtypes):
            bad = [d for d in op.dtypes if d not in allowed]
            return f"{'/'.join(bad)} not supported there (takes {', '.join(allowed)})"
    if op.op in (rule.get("constant_weights") or ()) and not op.weights_constant:
        return "its weights are an activation, not a constant"
    if rule.get("max_rank") and op.rank > rule["max_rank"]:
        return f"rank {op.rank} > {rule['max_rank']}"
    if rule.get("max_nonunit_dims") and op.nonunit_dims > rule["max_nonunit_dims"]:
        return f"{op.nonunit_dims} dimensions larger than 1 > {rule['max_nonunit_dims']}"
    return None


def delegate_report(path: str | Path, rule: dict[str, Any], graph: tuple[str, list[GraphOp]] | None = None
                    ) -> DelegateReport:
    """Place every op of the artifact at `path` under one delegate rule of a profile."""
    artifact, ops = graph or artifact_graph(path)
    name = Path(path).name
    if artifact != rule["artifact"]:
        return DelegateReport(name, rule["name"], len(ops), 0, 0, status="not applicable",
                              note=f"takes {rule['artifact']} files, this is {artifact}")
    placed: list[str | None] = [placement(op, rule, artifact) for op in ops]
    if rule["partition"] == "prefix":  # the first unsupported op cuts the graph: the rest runs on the CPU
        cut = next((i for i, why in enumerate(placed) if why), None)
        if cut is not None:
            placed = placed[:cut + 1] + [why or f"after the first unsupported op ({ops[cut].op}, op #{cut})"
                                         for why in placed[cut + 1:]]
    fallback: dict[str, int] = collections.Counter()
    reasons: dict[str, str] = {}
    segments, previous = 0, False
    for op, why in zip(ops, placed):
        on = why is None
        segments += on and not previous
        previous = on
        if not on:
            fallback[op.op] += 1
            reasons.setdefault(op.op, why)
    first = next((f"{op.op} (op #{op.index})" for op, why in zip(ops, placed) if why), None)
    on_acc = sum(why is None for why in placed)
    status = "whole" if on_acc == len(ops) else "none" if on_acc == 0 else "partial"
    return DelegateReport(name, rule["name"], len(ops), on_acc, segments, dict(fallback.most_common()), reasons,
                          first, status)


def profile_reports(path: str | Path, profile: DeviceProfile) -> list[DelegateReport]:
    """One report per delegate of the profile (none when it names no delegate)."""
    if not profile.delegates:
        return []
    graph = artifact_graph(path)
    return [delegate_report(path, rule, graph) for rule in profile.delegates]


def benchmark_rows(rows: list[Any], profile: DeviceProfile) -> list[dict[str, Any]]:
    """benchmarks.run's hook: for every artifact row, where its ops would run on the profile's delegates; the
    summary joins the row's verdict reasons. Returns the reports as JSON rows."""
    out = []
    for row in rows:
        if not row.path or not Path(row.path).exists() or not profile.delegates:
            continue
        for report in profile_reports(row.path, profile):
            if report.status == "not applicable":
                continue
            if row.verdict is not None:
                row.verdict.setdefault("reasons", []).append("delegate " + report.short())
            out.append({"key": row.key, **report.to_dict()})
    return out


def markdown(reports: list[DelegateReport]) -> str:
    lines = table_head(["artifact", "delegate", "ops on the accelerator", "segments", "falls back (why)"])
    for r in reports:
        if r.status == "not applicable":
            lines.append(f"| {r.artifact} | {r.delegate} | – | – | {r.note} |")
            continue
        falls = "; ".join(f"{op} ×{n}: {r.reasons[op]}" for op, n in r.fallback.items()) or "nothing"
        lines.append(f"| {r.artifact} | {r.delegate} | {r.on_accelerator}/{r.ops} | {r.segments} | {falls} |")
    return "\n".join(lines)


def _main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("artifacts", nargs="+", type=Path, help=".tflite / .onnx files")
    p.add_argument("--profile", required=True, help="device profile (devices/<name>.yaml or a path)")
    p.add_argument("--json", type=Path, default=None, help="also write the reports as JSON")
    args = p.parse_args(argv)
    try:
        profile = load_profile(args.profile)
    except FileNotFoundError as exc:
        raise BadInput(f"--profile: {exc}") from exc
    if not profile.delegates:
        raise BadInput(f"--profile {profile.name}: names no accelerator delegate (add a `delegates:` section)")
    reports = []
    for path in args.artifacts:
        if not path.exists():
            raise BadInput(f"{path}: no such file")
        if path.suffix.lower() not in SUFFIX_ARTIFACT:
            raise BadInput(f"{path}: not a model file ({', '.join(SUFFIX_ARTIFACT)})")
        reports += profile_reports(path, profile)
    print(markdown(reports))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([r.to_dict() for r in reports], indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, PROG, argv)


if __name__ == "__main__":
    sys.exit(main())
