"""Checkpoint -> TensorRT engine, built with the TensorRT Python API (TensorRT 10 and 11 names), then
loaded and compared with onnxruntime on the calibration clips; a short build report is written next to it.

    python -m converters.trt --ckpt best.pt                                   # fp32, batch 1
    python -m converters.trt --ckpt best.pt --precision fp16 --dynamic 1,8,32
    python -m converters.trt --ckpt best.pt --precision int8 --calib calib.npz  # explicit Q/DQ (TRT 10/11)
    python -m converters.trt --ckpt best.pt --precision int8 --calib calib.npz --int8-mode implicit  # TRT 8-10
    python -m converters.trt --ckpt best.pt --precision int8 --profile jetson_nano  # -> FP16 (no fast INT8)

INT8 paths:
  explicit  (default) the Q/DQ ONNX model from converters.int8. The path TensorRT 10 recommends and the
            only one TensorRT 11 keeps (strongly typed networks, no INT8/FP16 builder flags, no calibrators).
  implicit  fp32 ONNX + an entropy calibrator (IInt8EntropyCalibrator2) for TensorRT 8-10 on older JetPacks;
            the calibration cache is keyed by the calibration data, batch, TensorRT version and device.
FP16 on TensorRT 11 (no FP16 flag) builds from an fp16 ONNX model, which is prepared as well.

Without TensorRT (it cannot be installed everywhere, e.g. on this CPU-only machine) the command still
does everything up to the engine (fp32 ONNX, Q/DQ or fp16 ONNX, calibration data), writes
<engine>.build.json with the plan, prints the exact trtexec and python commands to finish on the device
and exits with status 3 (see converters.common).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from converters import int8 as int8_export
from converters import onnx as onnx_export
from converters.calib import load_calibration
from converters.common import (BackendMissing, ExportResult, InputError, artifact_stem, export_main, input_shape,
                               load_export_model, require, reraise_if_disk_full, staged_export, write_json)
from converters.formats import FORMATS
from converters.verify import compare_logits, judge, verification_inputs
from core.artifact import INPUT_NAME, artifact_metadata, write_sidecar
from core.runtime import load_runtime
from devices import DeviceProfile, load_profile

log = logging.getLogger("converters.trt")

INT8_MODES = ("explicit", "implicit")
DEFAULT_WORKSPACE_MB = 1024
TRT_HINT = ("pip install tensorrt (x86_64 with an NVIDIA GPU and CUDA), or use the TensorRT that JetPack ships "
            "on a Jetson (python3 -c 'import tensorrt')")


@dataclass
class ShapePlan:
    """Input shapes of the engine: a fixed batch, or a min/opt/max optimisation profile."""
    shape: tuple[int, ...]  # (N, C, T, V, M) with the opt batch
    batch: int | None  # fixed batch, None when dynamic
    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 1

    def dims(self, n: int) -> tuple[int, ...]:
        return (n,) + tuple(self.shape[1:])

    @property
    def profile(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        return self.dims(self.min_batch), self.dims(self.opt_batch), self.dims(self.max_batch)


def parse_dynamic(text: str) -> tuple[int, int, int]:
    """'min,opt,max' batch sizes."""
    try:
        lo, opt, hi = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--dynamic takes min,opt,max batch sizes (e.g. 1,8,32), got {text!r}")
    if not 1 <= lo <= opt <= hi:
        raise argparse.ArgumentTypeError(f"--dynamic needs 1 <= min <= opt <= max, got {text!r}")
    return lo, opt, hi


def shape_plan(ckpt: dict[str, Any], batch: int | None, dynamic: tuple[int, int, int] | None) -> ShapePlan:
    if dynamic is not None:
        lo, opt, hi = dynamic
        return ShapePlan(input_shape(ckpt, opt), None, lo, opt, hi)
    b = batch or 1
    return ShapePlan(input_shape(ckpt, b), b, b, b, b)


def device_profile(name: str | None) -> DeviceProfile | None:
    """The --profile device (a devices/ name or a YAML path); InputError naming it when it cannot be read."""
    if not name:
        return None
    try:
        return load_profile(name)
    except (FileNotFoundError, ValueError) as exc:
        raise InputError(f"--profile: {exc}") from exc


def resolve_precision(requested: str, profile: DeviceProfile | None) -> tuple[str, str]:
    """(precision to build, note). Devices without fast INT8 (Jetson Nano, Maxwell) get FP16 instead of INT8."""
    if requested != "int8" or profile is None or profile.fast_int8:
        return requested, ""
    return "fp16", f"{profile.name} has no fast INT8 ({profile.notes or profile.description}): building FP16"


def trt_version(text: str) -> tuple[int, int]:
    """'8.2' / '10.3.0' -> (8, 2); (0, 0) when the text names no version."""
    parts = [int(v) for v in text.split(".")[:2] if v.isdigit()]
    return (parts + [0, 0])[0], (parts + [0, 0])[1]


def detect_device_name() -> str:
    """The GPU (or Jetson module) this engine is built for; part of the calibration-cache key."""
    model = Path("/proc/device-tree/model")
    if model.is_file():
        return model.read_text(errors="ignore").strip("\x00 \n")
    try:
        import torch
        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return "unknown-gpu"


def calibration_cache_key(x: np.ndarray, batch: int, trt_version: str, device: str) -> str:
    """A cache is valid only for the same data, batch, TensorRT version and device: hash all four."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(x, dtype=np.float32).tobytes())
    h.update(f"|{tuple(x.shape)}|b{batch}|trt{trt_version}|{device}".encode())
    return h.hexdigest()[:16]


def trt_major(version: str) -> int:
    return trt_version(version)[0]


def _dims(shape: tuple[int, ...]) -> str:
    return "x".join(str(int(v)) for v in shape)


def trtexec_command(onnx_path: Path, engine_path: Path, plan: ShapePlan, precision: str, trt_major_version: int,
                    workspace_mb: int, input_name: str = "skeleton", trt_minor_version: int = 0) -> list[str]:
    """The trtexec command that builds the same engine on a device.

    TensorRT 11: networks are strongly typed (precision comes from the ONNX: Q/DQ or fp16 tensors);
    TensorRT <= 10: weakly typed, precision from the --fp16/--int8 flags; before 8.4 (JetPack 4) trtexec has
    --workspace, not --memPoolSize."""
    cmd = ["trtexec", f"--onnx={onnx_path}", f"--saveEngine={engine_path}"]
    if plan.batch is None:
        lo, opt, hi = plan.profile
        cmd += [f"--minShapes={input_name}:{_dims(lo)}", f"--optShapes={input_name}:{_dims(opt)}",
                f"--maxShapes={input_name}:{_dims(hi)}"]
    if trt_major_version >= 11:
        cmd.append("--stronglyTyped")
    elif precision == "fp16":
        cmd.append("--fp16")
    elif precision == "int8":
        cmd += ["--int8", "--fp16"]  # Q/DQ decide what is INT8; the float rest may use FP16
    legacy = (trt_major_version, trt_minor_version) < (8, 4)
    cmd.append(f"--workspace={workspace_mb}" if legacy else f"--memPoolSize=workspace:{workspace_mb}M")
    return cmd


def fp16_onnx(fp32_path: Path, out_path: Path) -> Path:
    """An fp16 copy of an fp32 ONNX model with fp32 inputs/outputs (TensorRT 11's way to ask for FP16)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16
    model = convert_float_to_float16(onnx.load(str(fp32_path)), keep_io_types=True)
    toposort(model.graph)  # the converter appends its input Casts at the end of the node list
    onnx.save(model, str(out_path))
    return out_path


def toposort(graph) -> None:
    """Reorder graph.node in place so every node comes after the producers of its inputs."""
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            raise ValueError("graph has a cycle or inputs nobody produces")
        for n in ready:
            ordered.append(n)
            available.update(n.output)
        pending = [n for n in pending if all(n is not r for r in ready)]
    copies = [type(n)() for n in ordered]
    for c, n in zip(copies, ordered):
        c.CopyFrom(n)
    del graph.node[:]
    graph.node.extend(copies)


def ort_logits(onnx_path: Path, x: np.ndarray) -> np.ndarray:
    with load_runtime(onnx_path) as rt:
        return rt.predict(x)


# ----------------------------------------------------------------------------------------------------------
# The TensorRT builder (real API; imported lazily)

def make_entropy_calibrator(trt: Any, x: np.ndarray, batch: int, cache_path: Path, input_name: str):
    """IInt8EntropyCalibrator2 over calibration clips, device memory through torch.cuda, cache on disk."""
    import torch

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            super().__init__()
            self.batches = [x[s:s + batch] for s in range(0, len(x) - batch + 1, batch)]
            self.index = 0
            self.device_input: torch.Tensor | None = None

        def get_batch_size(self) -> int:
            return batch

        def get_batch(self, names: list[str]) -> list[int] | None:
            if self.index >= len(self.batches):
                return None
            self.device_input = torch.from_numpy(np.ascontiguousarray(self.batches[self.index])).cuda()
            self.index += 1
            return [int(self.device_input.data_ptr())]

        def read_calibration_cache(self) -> bytes | None:
            return cache_path.read_bytes() if cache_path.is_file() else None

        def write_calibration_cache(self, cache: bytes) -> None:
            cache_path.write_bytes(bytes(cache))

    return EntropyCalibrator()


def build_engine(trt: Any, onnx_path: Path, engine_path: Path, plan: ShapePlan, precision: str, int8_mode: str,
                 workspace_mb: int, calib_x: np.ndarray | None = None, cache_path: Path | None = None,
                 input_name: str = "skeleton") -> dict[str, Any]:
    """Parse the ONNX model and build a serialized engine with the TensorRT 10/11 Python API."""
    major = trt_major(trt.__version__)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    # TensorRT 11 networks are always strongly typed; on 10, strongly typed for explicit Q/DQ only when
    # the float rest should stay fp32 (we let 10 pick FP16 there, like trtexec --int8 --fp16)
    strongly_typed = major >= 11
    if strongly_typed and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    if major < 10:  # implicit batch was removed in 10; 8.x/9.x need the explicit-batch flag
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    if not strongly_typed:
        if precision in ("fp16", "int8"):
            config.set_flag(trt.BuilderFlag.FP16)
        if precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)
    profile = builder.create_optimization_profile()
    lo, opt, hi = plan.profile
    profile.set_shape(input_name, lo, opt, hi)
    config.add_optimization_profile(profile)
    if precision == "int8" and int8_mode == "implicit":
        if major >= 11:
            raise InputError("TensorRT 11 removed implicit INT8 calibration; use --int8-mode explicit")
        if calib_x is None or cache_path is None:
            raise InputError("implicit INT8 needs --calib")
        config.int8_calibrator = make_entropy_calibrator(trt, calib_x, plan.opt_batch, cache_path, input_name)
        if plan.batch is None:
            config.set_calibration_profile(profile)
    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path} (see the log above)")
    engine_path.write_bytes(bytes(serialized))
    return {"tensorrt_version": trt.__version__, "strongly_typed": strongly_typed, "network_layers": network.num_layers,
            "build_seconds": round(time.perf_counter() - start, 2), "workspace_mb": workspace_mb}


def engine_layer_count(trt: Any, engine_path: Path) -> int | None:
    try:
        engine = trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(engine_path.read_bytes())
        info = json.loads(engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON))
        return len(info.get("Layers", []))
    except Exception:  # the inspector needs a CUDA context; the count is informative only
        return None


def write_build_report(path: Path, report: dict[str, Any]) -> Path:
    lines = ["# TensorRT build report", "", "| key | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in report.items() if not isinstance(v, (list, dict))]
    path.write_text("\n".join(lines) + "\n")
    write_json(path.with_suffix(".json"), report)
    return path


# ----------------------------------------------------------------------------------------------------------

@staged_export("trt", reuse=("calib_*.cache",))
def export(ckpt: str | Path, out_dir: str | Path, precision: str = "fp32", calib: str | Path | None = None,
           batch: int | None = 1, dynamic: tuple[int, int, int] | None = None, workspace_mb: int = DEFAULT_WORKSPACE_MB,
           int8_mode: str = "explicit", profile: str | None = None, keep_float: str = "fragile",
           quantizer: str = "auto", opset: int | None = None) -> ExportResult:
    """Build (or, without TensorRT, prepare) a TensorRT engine; see the module docstring.
    profile: a device profile (devices/*.yaml); INT8 becomes FP16 where the device has no fast INT8.
    opset: of the ONNX models built from (default: the profile's max_opset, else converters.onnx's)."""
    if precision not in FORMATS["trt"].precisions:
        raise InputError(f"TensorRT precision must be one of {FORMATS['trt'].precisions}, got {precision!r}")
    if int8_mode not in INT8_MODES:
        raise InputError(f"--int8-mode must be one of {INT8_MODES}, got {int8_mode!r}")
    requested = precision
    device = device_profile(profile)
    precision, device_note = resolve_precision(precision, device)
    if precision == "int8" and calib is None:
        raise InputError("INT8 needs a calibration set: pass --calib FILE (make one with python -m converters.calib "
                         "--ckpt <checkpoint> --data <dataset>:train)")
    model, ck = load_export_model(ckpt)
    calib_x = load_calibration(calib, ck) if calib is not None else None
    plan = shape_plan(ck, batch, dynamic)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_batch = plan.batch  # None -> dynamic ONNX for a dynamic profile
    notes = [device_note] if device_note else []

    # 1. everything up to the engine: fp32 ONNX, then Q/DQ (explicit INT8) or fp16 ONNX (TensorRT 11 FP16)
    if opset is None and device is not None:  # the device's ONNX parser limit (TensorRT 8.2 on a Jetson Nano: 13)
        opset = device.max_opset
    opset_opt = {"opset": opset} if opset is not None else {}
    fp32 = onnx_export.export(ckpt, out_dir, "fp32", calib=calib, batch=onnx_batch, **opset_opt)
    if fp32.status != "ok" or fp32.path is None:
        return ExportResult("trt", precision, None, "failed", f"fp32 ONNX step failed: {fp32.message}")
    build_onnx = {10: fp32.path, 11: fp32.path}  # ONNX to build from, per TensorRT major version
    if precision == "int8" and int8_mode == "explicit":
        q = int8_export.export(ckpt, out_dir, "int8", calib=calib, batch=onnx_batch, keep_float=keep_float,
                               fp32_onnx=fp32.path, quantizer=quantizer, **opset_opt)
        if q.path is None or q.status not in ("ok", "failed"):
            return ExportResult("trt", precision, None, "failed", f"Q/DQ ONNX step failed: {q.message}")
        if q.status == "failed":
            notes.append(f"Q/DQ ONNX accuracy warning: {q.message}")
        build_onnx = {10: q.path, 11: q.path}
    elif precision == "fp16":
        half = fp16_onnx(fp32.path, fp32.path.with_name(fp32.path.stem.replace("_fp32", "_fp16") + ".onnx"))
        onnx_export.finalize(half, ck, "fp16", onnx_batch, purpose="TensorRT 11 FP16 build (strongly typed)")
        build_onnx[11] = half

    tag = "int8-implicit" if precision == "int8" and int8_mode == "implicit" else precision
    engine_path = out_dir / f"{artifact_stem(ckpt, tag, plan.batch)}.engine"
    calib_arg = f" --calib {shlex.quote(str(calib))}" if calib is not None else ""
    shape_arg = (f" --dynamic {plan.min_batch},{plan.opt_batch},{plan.max_batch}" if plan.batch is None
                 else f" --batch {plan.batch}")
    python_cmd = (f"python -m converters.trt --ckpt {shlex.quote(str(ckpt))} --precision {precision}{calib_arg}"
                  f"{shape_arg} --workspace {workspace_mb}"
                  + (f" --int8-mode {int8_mode}" if precision == "int8" else "")
                  + (f" --profile {shlex.quote(str(profile))}" if profile else ""))
    commands: dict[str, str] = {}
    if not (precision == "int8" and int8_mode == "implicit"):  # trtexec cannot run our calibrator
        if device is not None and device.runtime == "tensorrt":  # the device's own TensorRT first
            major, minor = trt_version(device.runtime_info["version"])
            commands[f"trtexec_{device.name}"] = shlex.join(trtexec_command(
                build_onnx[11 if major >= 11 else 10], engine_path, plan, precision, major, workspace_mb, INPUT_NAME,
                minor))
        commands["trtexec_trt10"] = shlex.join(trtexec_command(build_onnx[10], engine_path, plan, precision, 10,
                                                              workspace_mb, INPUT_NAME))
        commands["trtexec_trt11"] = shlex.join(trtexec_command(build_onnx[11], engine_path, plan, precision, 11,
                                                              workspace_mb, INPUT_NAME))
    commands["python"] = python_cmd
    build_plan = {"requested_precision": requested, "precision": precision,
                  "int8_mode": int8_mode if precision == "int8" else None, "batch": plan.batch,
                  "profile": [list(s) for s in plan.profile], "onnx_trt10": str(build_onnx[10]),
                  "onnx_trt11": str(build_onnx[11]), "engine": str(engine_path),
                  "calibration": str(calib) if calib is not None else None, "commands": commands, "notes": notes}
    plan_path = write_json(engine_path.with_name(engine_path.name + ".build.json"), build_plan)

    # 2. the engine itself, where TensorRT exists
    try:
        trt = require("tensorrt", TRT_HINT)
    except BackendMissing as exc:
        lines = [f"TensorRT is not installed here ({TRT_HINT}).",
                 f"Prepared: {build_onnx[10].name}" + (f", {build_onnx[11].name}" if build_onnx[11] != build_onnx[10]
                                                      else "") + f" and the build plan {plan_path.name}.",
                 "Finish on the device (copy the folder there) with one of:"]
        lines += [f"  {cmd}" for cmd in commands.values()]
        del exc
        return ExportResult("trt", precision, None, "missing-backend", "\n".join(notes + lines),
                            extra={"engine": str(engine_path), "onnx": str(build_onnx[10]), "plan": str(plan_path),
                                   **commands, "finish": list(commands.values())})
    major = trt_major(trt.__version__)
    if major >= 11 and precision == "int8" and int8_mode == "implicit":
        raise InputError("TensorRT 11 removed implicit INT8 calibration (calibrators); use --int8-mode explicit")
    source = build_onnx[11 if major >= 11 else 10]
    cache_path = None
    if precision == "int8" and int8_mode == "implicit":
        key = calibration_cache_key(calib_x, plan.opt_batch, trt.__version__, detect_device_name())
        cache_path = out_dir / f"calib_{key}.cache"
    try:
        info = build_engine(trt, source, engine_path, plan, precision, int8_mode, workspace_mb, calib_x, cache_path,
                            INPUT_NAME)
    except InputError:
        raise
    except Exception as exc:
        reraise_if_disk_full(exc)
        return ExportResult("trt", precision, None, "failed", f"engine build failed: {type(exc).__name__}: {exc}",
                            extra={"plan": str(plan_path)})
    meta = artifact_metadata(ck, "tensorrt", precision, batch=plan.batch, int8_mode=build_plan["int8_mode"],
                             tensorrt_version=trt.__version__, device=detect_device_name(), source_onnx=source.name)
    write_sidecar(engine_path, meta)
    # 3. load it and compare with onnxruntime on the calibration clips (or the verification inputs)
    x, src = (calib_x, "calibration set") if calib_x is not None else verification_inputs(ck)
    x = x[: max(plan.max_batch, 32)]
    report: dict[str, Any] = {"precision": precision, "int8_mode": build_plan["int8_mode"], **info,
                              "engine_layers": engine_layer_count(trt, engine_path),
                              "size_bytes": engine_path.stat().st_size, "source_onnx": source.name,
                              "onnx": str(source)}  # the file the device profile's operator check reads
    try:
        with load_runtime(engine_path) as rt:
            got = rt.predict(x)
        ref = ort_logits(source if precision != "fp16" else build_onnx[10], x)
        stats = compare_logits(ref, got)
        report.update(stats, compared_on=f"{len(x)} clips ({src}) vs onnxruntime on {source.name}")
        good, problems = judge("trt", precision, stats)
        status = "ok" if good else "failed"
        if problems:
            report["problems"] = problems
    except BackendMissing as exc:
        report["compare"] = f"not run: {exc}"
        status = "exported-not-verifiable-here"
    report_path = write_build_report(engine_path.with_name(engine_path.stem + ".report.md"), report)
    msg = "; ".join(notes + [f"TensorRT {trt.__version__}, {info['network_layers']} network layers, built in "
                             f"{info['build_seconds']} s", f"report {report_path.name}"])
    if "max_abs_diff" in report:
        msg += f"; vs onnxruntime: max |logit diff| {report['max_abs_diff']:.3g}, top-1 agreement " \
               f"{report['top1_agreement']:.3f}"
    return ExportResult("trt", precision, engine_path, status, msg, extra=report)


def _add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dynamic", type=parse_dynamic, default=None, metavar="MIN,OPT,MAX",
                   help="dynamic batch profile instead of --batch")
    p.add_argument("--workspace", type=int, default=DEFAULT_WORKSPACE_MB, metavar="MB",
                   help=f"builder workspace in MB (default {DEFAULT_WORKSPACE_MB})")
    p.add_argument("--int8-mode", choices=INT8_MODES, default="explicit",
                   help="explicit Q/DQ ONNX (TensorRT 10/11, default) or implicit entropy calibration (TensorRT 8-10)")
    p.add_argument("--profile", default=None,
                   help="device profile (devices/*.yaml, e.g. jetson_nano): INT8 becomes FP16 where INT8 is not fast")
    p.add_argument("--keep-float", choices=("fragile", "attention", "none"), default="fragile",
                   help="ops kept in float in the Q/DQ model (see converters.int8)")
    p.add_argument("--quantizer", choices=("auto", "ort", "modelopt"), default="auto",
                   help="Q/DQ quantizer for explicit INT8 (see converters.int8)")


def main(argv: list[str] | None = None) -> int:
    return export_main(export, argv, fmt="trt", precisions=FORMATS["trt"].precisions, default_precision="fp32",
                       default_batch=1, description=__doc__.split("\n\n")[0], add_args=_add_args,
                       opts_from_args=lambda a: {"dynamic": a.dynamic, "workspace_mb": a.workspace,
                                                 "int8_mode": a.int8_mode, "profile": a.profile,
                                                 "keep_float": a.keep_float, "quantizer": a.quantizer})


if __name__ == "__main__":
    sys.exit(main())
