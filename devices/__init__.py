"""Device profiles as data: one schema-validated YAML file per device.

A profile says what the device is (board, SoC, CPU, accelerators with their peak compute per precision,
memory size and bandwidth), what it runs (runtime, version, execution provider / delegate, threads, the
precisions it runs, the ONNX opset and operators its runtime accepts, the formats to deploy), its budgets
(frame, the pose estimator's latency there with its source, model size, RAM) and the constants of the
latency estimate (see benchmarks.estimate). Add your own device by copying a file into devices/ or pass a
path: `devices.load_profile("my_board.yaml")`. A bad profile raises ProfileError naming the file and field.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

PROFILE_DIR = Path(__file__).resolve().parent
RUNTIMES = ("tensorrt", "tflite", "coreml", "onnxruntime")
PRECISIONS = ("fp32", "fp16", "int8")
FORMATS = ("pytorch", "onnx", "int8", "trt", "tflite", "coreml")
DEPLOY_FORMATS = {"tensorrt": "trt", "tflite": "tflite", "coreml": "coreml", "onnxruntime": "onnx"}  # runtime -> format
DEFAULT_FRAME_MS = 1000 / 30
DEFAULT_CLASSIFIER_UNIT = {"tensorrt": "gpu", "coreml": "ane", "tflite": "cpu", "onnxruntime": "cpu"}


class ProfileError(ValueError):
    """A device profile that does not follow the schema; the message names the file and the field."""


# ----------------------------------------------------------------------------------------------------------
# The schema: field -> (type(s), required). Nested sections are dicts of the same form.

_NUM = (int, float)
SCHEMA: dict[str, Any] = {
    "name": (str, True),
    "description": (str, True),
    "board": (str, True),
    "soc": (str, True),
    "cpu": ({"cores": (int, True), "arch": (str, True), "ghz": (_NUM, True)}, True),
    "accelerators": ([{"name": (str, True), "kind": (str, True), "peak_gflops": ("precision_map", True),
                       "source": (str, False)}], False),
    "memory": ({"size_gb": (_NUM, True), "bandwidth_gbs": (_NUM, True), "source": (str, False)}, True),
    "runtime": ({"name": (str, True), "version": (str, True), "provider": (str, True), "threads": (int, False),
                 "software": (str, False)}, True),
    # where pose and the classifier run (cpu, gpu, npu, ane, dsp...): two different units, or the CPU with two or
    # more cores, run them at the same time (the pipelined loop's budget is then their max, else their sum)
    "units": ({"pose": (str, True), "classifier": (str, True), "source": (str, False)}, False),
    "precisions": (["precision"], True),
    "precision": ("precision", True),
    "fast_int8": (bool, True),
    "formats": (["format"], True),
    "onnx": ({"max_opset": (int, True), "supported_ops": ([str], False), "unsupported_ops": ([str], False),
              "source": (str, False)}, False),
    "budgets": ({"frame_ms": (_NUM, True), "pose_ms": (_NUM, True), "pose_source": (str, True),
                 "pose_ms_at": ("resolution_map", False),  # {"1280x720": ms}: pose time per input resolution
                 "classifier_ms": (_NUM, False), "model_size_mb": (_NUM, True), "ram_mb": (_NUM, True)}, True),
    "estimate": ({"compute_efficiency": (_NUM, True), "bandwidth_efficiency": (_NUM, True),
                  "layer_overhead_us": (_NUM, True), "fixed_overhead_ms": (_NUM, True),
                  "calibrated": (str, False)}, True),
    "sources": ([str], False),
    "notes": (str, False),
    # accelerator delegates and their op / precision rules, from the vendor's documentation (benchmarks.delegates)
    "delegates": ([{"name": (str, True), "kind": (str, True), "artifact": ("artifact", True),
                    "dtypes": (["dtype"], True), "partition": ("partition", True), "ops": ("op_rules", True),
                    "max_rank": (int, False), "max_nonunit_dims": (int, False), "constant_weights": ([str], False),
                    "accessory": (bool, False),
                    "compiler": (str, False), "sources": ([str], True), "notes": (str, False)}], False),
}
ARTIFACTS = ("tflite", "onnx", "coreml")
DTYPES = ("float32", "float16", "int8", "uint8", "int16", "int32", "bool")
# per_op: an op the delegate cannot run falls back alone (NNAPI, QNN, TensorRT DLA with GPU fallback);
# prefix: the first op it cannot run and every op after it fall back (the Edge TPU compiler maps one segment)
PARTITIONS = ("per_op", "prefix")


def _type_name(t: Any) -> str:
    if isinstance(t, tuple):
        return " or ".join(x.__name__ for x in t)
    return getattr(t, "__name__", str(t))


def _check_map(value: Any, where: str, errors: list[str], what: str, key_problem: Callable[[Any], str | None],
               minimum: float | None, number: str) -> None:
    """A non-empty mapping whose keys pass `key_problem` (None: fine) and whose values are numbers >= minimum
    (None: > 0)."""
    if not isinstance(value, dict) or not value:
        errors.append(f"{where}: expected a mapping {what}")
        return
    for k, v in value.items():
        problem = key_problem(k)
        if problem:
            errors.append(f"{where}.{k}: {problem}")
        elif isinstance(v, bool) or not isinstance(v, _NUM) or (v <= 0 if minimum is None else v < minimum):
            errors.append(f"{where}.{k}: expected {number}, got {v!r}")


def _check(value: Any, spec: Any, where: str, errors: list[str]) -> None:
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            errors.append(f"{where}: expected a mapping, got {type(value).__name__}")
            return
        for key in sorted(set(value) - set(spec)):
            errors.append(f"{where + '.' if where else ''}{key}: unknown field (known: {', '.join(spec)})")
        for key, (sub, required) in spec.items():
            path = f"{where + '.' if where else ''}{key}"
            if key not in value or value[key] is None:
                if required:
                    errors.append(f"{path}: missing required field")
                continue
            _check(value[key], sub, path, errors)
    elif isinstance(spec, list):
        if not isinstance(value, list):
            errors.append(f"{where}: expected a list, got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            _check(item, spec[0], f"{where}[{i}]", errors)
    elif spec == "precision":
        if value not in PRECISIONS:
            errors.append(f"{where}: {value!r} is not a precision ({', '.join(PRECISIONS)})")
    elif spec == "format":
        if value not in FORMATS:
            errors.append(f"{where}: {value!r} is not a format ({', '.join(FORMATS)})")
    elif spec in ("artifact", "dtype", "partition"):
        allowed = {"artifact": ARTIFACTS, "dtype": DTYPES, "partition": PARTITIONS}[spec]
        if value not in allowed:
            errors.append(f"{where}: {value!r} is not one of {', '.join(allowed)}")
    elif spec == "op_rules":  # op name -> null (the delegate's dtypes) or the dtypes that op accepts
        if not isinstance(value, dict) or not value:
            errors.append(f"{where}: expected a mapping op name -> null or a list of dtypes")
            return
        for op, dtypes in value.items():
            if dtypes is None:
                continue
            if not isinstance(dtypes, list) or any(d not in DTYPES for d in dtypes):
                errors.append(f"{where}.{op}: expected null or a list of dtypes ({', '.join(DTYPES)}), got {dtypes!r}")
    elif spec == "resolution_map":  # {"1280x720": ms}
        _check_map(value, where, errors, "WIDTHxHEIGHT -> ms",
                   lambda k: None if re.fullmatch(r"[1-9]\d*x[1-9]\d*", str(k)) else
                   f"{k!r} is not a resolution WIDTHxHEIGHT (e.g. 1280x720)", 0.0, "a number of ms >= 0")
    elif spec == "precision_map":  # {"fp16": GFLOPS}
        _check_map(value, where, errors, "precision -> GFLOPS",
                   lambda k: None if k in PRECISIONS else f"{k!r} is not a precision ({', '.join(PRECISIONS)})",
                   None, "a positive number")
    else:
        if isinstance(value, bool) and spec is not bool:
            errors.append(f"{where}: expected {_type_name(spec)}, got bool")
        elif not isinstance(value, spec):
            errors.append(f"{where}: expected {_type_name(spec)}, got {type(value).__name__} {value!r}")


def validate(data: Any, source: str = "<profile>") -> None:
    """Raise ProfileError listing every schema violation as `<file>: <field>: <problem>`."""
    errors: list[str] = []
    _check(data, SCHEMA, "", errors)
    if not errors:  # rules across fields
        rt = data["runtime"]["name"]
        if rt not in RUNTIMES:
            errors.append(f"runtime.name: {rt!r} is not a runtime ({', '.join(RUNTIMES)})")
        if rt in ("tensorrt", "onnxruntime") and not data.get("onnx"):
            errors.append(f"onnx: missing required field (runtime {rt} loads ONNX: give max_opset)")
        if data["precision"] not in data["precisions"]:
            errors.append(f"precision: {data['precision']!r} is not in precisions {data['precisions']}")
        if not data["fast_int8"] and data["precision"] == "int8":
            errors.append("precision: int8 on a device without fast INT8 (fast_int8: false)")
        for key in ("compute_efficiency", "bandwidth_efficiency"):
            if not 0 < data["estimate"][key] <= 1:
                errors.append(f"estimate.{key}: must be in (0, 1], got {data['estimate'][key]}")
        for key in ("frame_ms", "model_size_mb", "ram_mb"):
            if data["budgets"][key] <= 0:
                errors.append(f"budgets.{key}: must be positive, got {data['budgets'][key]}")
        if data["budgets"]["pose_ms"] < 0:
            errors.append(f"budgets.pose_ms: must be >= 0, got {data['budgets']['pose_ms']}")
        if data["memory"]["bandwidth_gbs"] <= 0:
            errors.append("memory.bandwidth_gbs: must be positive")
    if errors:
        raise ProfileError(f"{source}: " + f"\n{source}: ".join(errors))


# ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DeviceProfile:
    name: str
    description: str
    board: str
    soc: str
    cpu: dict[str, Any]
    memory: dict[str, Any]
    runtime_info: dict[str, Any]
    precisions: tuple[str, ...]
    precision: str  # the default deployment precision
    fast_int8: bool
    formats: tuple[str, ...]
    onnx: dict[str, Any] | None
    budgets: dict[str, Any]
    estimate: dict[str, Any]
    accelerators: tuple[dict[str, Any], ...] = ()
    units: dict[str, Any] = field(default_factory=dict)  # {pose, classifier}: where each runs
    delegates: tuple[dict[str, Any], ...] = ()
    sources: tuple[str, ...] = ()
    notes: str = ""
    path: Path | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    # the flat names the converters use
    @property
    def runtime(self) -> str:
        return self.runtime_info["name"]

    @property
    def threads(self) -> int | None:
        return self.runtime_info.get("threads")

    @property
    def latency_budget_ms(self) -> float:
        return float(self.budgets["frame_ms"])

    @property
    def size_budget_mb(self) -> float:
        return float(self.budgets["model_size_mb"])

    @property
    def max_opset(self) -> int | None:
        return int(self.onnx["max_opset"]) if self.onnx else None

    def peak_gflops(self, precision: str) -> tuple[float, str]:
        """(peak GFLOPS, unit that has it) for a precision: the fastest accelerator (or the CPU entry) listing
        it; precisions a unit does not list fall back to its fp32 peak."""
        best, unit = 0.0, ""
        for acc in self.accelerators:
            peaks = acc["peak_gflops"]
            value = peaks.get(precision, peaks.get("fp32", 0.0))
            if value > best:
                best, unit = float(value), acc["name"]
        return best, unit

    @property
    def pose_unit(self) -> str:
        return str(self.units.get("pose", "cpu"))

    @property
    def classifier_unit(self) -> str:
        """The profile's `units.classifier`, else the runtime's usual unit (TensorRT: gpu, CoreML: ane, else cpu)."""
        return str(self.units.get("classifier") or DEFAULT_CLASSIFIER_UNIT.get(self.runtime, "cpu"))

    @property
    def parallel_units(self) -> bool:
        """Pose and classifier run at the same time: different units, or two CPU cores or more."""
        return self.pose_unit != self.classifier_unit or (self.pose_unit == "cpu" and int(self.cpu["cores"]) >= 2)

    def classifier_budget_ms(self, pose_ms: float | None = None) -> float:
        """What the classifier may take per frame: the explicit budget, else frame - pose (may be <= 0)."""
        if self.budgets.get("classifier_ms") is not None:
            return float(self.budgets["classifier_ms"])
        pose = self.budgets["pose_ms"] if pose_ms is None else pose_ms
        return float(self.budgets["frame_ms"]) - float(pose)


def list_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def profile_from_dict(data: dict[str, Any], source: str = "<profile>", path: Path | None = None) -> DeviceProfile:
    validate(data, source)
    return DeviceProfile(
        name=data["name"], description=data["description"], board=data["board"], soc=data["soc"],
        cpu=dict(data["cpu"]), memory=dict(data["memory"]), runtime_info=dict(data["runtime"]),
        precisions=tuple(data["precisions"]), precision=data["precision"], fast_int8=data["fast_int8"],
        formats=tuple(data["formats"]), onnx=dict(data["onnx"]) if data.get("onnx") else None,
        budgets=dict(data["budgets"]),
        estimate=dict(data["estimate"]), accelerators=tuple(dict(a) for a in data.get("accelerators") or ()),
        units=dict(data.get("units") or {}),
        delegates=tuple(dict(d) for d in data.get("delegates") or ()),
        sources=tuple(data.get("sources") or ()), notes=data.get("notes") or "", path=path, raw=data)


def load_profile(name_or_path: str | Path) -> DeviceProfile:
    """A profile by name (devices/<name>.yaml) or by path; ProfileError names the file and field."""
    path = Path(name_or_path)
    if not path.is_file():
        path = PROFILE_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        close = difflib.get_close_matches(str(name_or_path), list_profiles(), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise FileNotFoundError(f"unknown device profile {str(name_or_path)!r}{hint}; known: "
                                f"{', '.join(list_profiles())} (or pass a path to your own YAML)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ProfileError(f"{path}:{where} not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    return profile_from_dict(data, str(path), path)
