"""Does this model meet this device's budget? Convert, check, measure and judge in one command.

    python -m benchmarks.run --profile x86_cpu --ckpt runs/nw_ucla/last_small/best.pt --data nw_ucla:test \\
        --video ../shared/data/video/ta_chi.mp4 --pose-model ../shared/models/pose_landmarker_full.task
    python -m benchmarks.run --profile jetson_nano --ckpt best.pt --preset rapid

For every format the profile deploys (or --formats): convert through `converters` honouring the profile's ONNX
opset and operator rules, check the artifact against them (a violation is a `rejected` row naming the operator),
then, where it runs here, measure load time, first inference, batch-1 latency after warm-up (p50/p90/p99,
mean ± std; p90 is the headline), throughput at --batch, peak RSS and top-1 on --data, and judge it against the
profile's budgets (benchmarks.verdict). --video adds the edge loop end to end (per-stage p50/p90, FPS). Devices
that are not this machine get an estimate from FLOPs and bytes (benchmarks.estimate), always labelled as one.
Writes <out>/result.json (with tool versions) and <out>/report.md with plots (benchmarks.report).
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.delegates import benchmark_rows as delegate_placements
from benchmarks.estimate import GraphCost, estimate_for_profile, onnx_graph_cost
from benchmarks.native import run_native
from benchmarks.report import write_report
from benchmarks.rules import check_onnx, check_precision
from benchmarks.verdict import judge_for_profile
from converters import trt as trt_converter
from converters.calib import make_calibration_file, stratified_indices
from converters.common import BackendMissing, ExportResult, input_shape
from converters.common import InputError as ConverterInputError
from converters.verify import verification_inputs
from core.artifact import INPUT_NAME
from core.checkpoint import input_spec, load_checkpoint, load_model
from core.cli import ArgumentParser, BadInput, run_cli
from core.evaluation import check_split_matches, evaluate_logits, load_data_split, parse_data_arg, predict_split
from core.models.profile import count_gflops, count_params
from core.runtime import load_runtime, runtime_kind
from core.timing import PRESETS
from devices import DeviceProfile, list_profiles, load_profile
from edge.bench import bench_one
from edge.pose import resolve_pose_model

log = logging.getLogger("benchmarks")

PROG = "python -m benchmarks.run"
ALL_FORMATS = ("pytorch", "onnx", "int8", "tflite", "coreml", "trt")
STATUSES = ("ok", "exported, not runnable here", "rejected", "failed", "backend missing")
EXIT_OK, EXIT_FAILED = 0, 1
# preset -> clips scored, calibration clips, video frames (None: all); timing run length is core.timing.PRESETS
PRESET_SIZES = {"rapid": (64, 64, 60), "quick": (200, 200, 150), "normal": (None, 500, None)}
VERSION_PACKAGES = ("numpy", "torch", "onnx", "onnxruntime", "onnxsim", "ai-edge-litert", "litert-torch",
                    "coremltools", "mediapipe", "tensorrt", "nvidia-modelopt", "opencv-contrib-python")


def model_name(ckpt: Path) -> str:
    """The label of a checkpoint in tables: its run folder (runs/nw_ucla/last_small_jvb/best.pt -> last_small_jvb)."""
    return ckpt.parent.name or ckpt.stem


@dataclass
class Row:
    ckpt: str
    model: str
    variant: str
    format: str
    precision: str
    status: str
    path: str | None = None
    size_bytes: int | None = None
    params: int | None = None
    gflops: float | None = None
    runtime: str = ""
    load_ms: float | None = None
    first_ms: float | None = None
    latency: dict[str, Any] | None = None  # core.timing.TimingStats.to_dict(samples=True)
    throughput_per_s: float | None = None
    throughput_batch: int | None = None
    peak_rss_mb: float | None = None
    ram_mb: float | None = None  # peak RSS minus the process before loading the model
    top1: float | None = None
    delta_top1: float | None = None  # points vs the PyTorch fp32 row
    clips: int | None = None
    verdict: dict[str, Any] | None = None
    estimate: dict[str, Any] | None = None  # this profile's estimate, beside the measurement (never instead)
    native: dict[str, Any] | None = None  # trtexec / benchmark_model / onnxruntime_perf_test, where installed
    message: str = ""
    commands: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{Path(self.ckpt).parent.name}/{Path(self.ckpt).stem}:{self.format}:{self.precision}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------------------------------------
# Environment

def tool_versions() -> dict[str, Any]:
    versions: dict[str, Any] = {"python": platform.python_version()}
    for pkg in VERSION_PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return versions


def machine_info() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"platform": platform.platform(), "machine": platform.machine(), "cpu": cpu, "cores": cores,
            "hostname_hash": abs(hash(platform.node())) % 10**6}


def backend_available(kind: str) -> tuple[bool, str]:
    """Whether an artifact of this runtime kind can run on this machine, and why not."""
    if kind == "coreml":
        if platform.system() != "Darwin":
            return False, "CoreML predictions need macOS or iOS"
        return importlib.util.find_spec("coremltools") is not None, "pip install coremltools"
    module = {"onnxruntime": "onnxruntime", "litert": "ai_edge_litert", "tensorrt": "tensorrt",
              "pytorch": "torch"}[kind]
    if importlib.util.find_spec(module) is None:
        return False, f"{module} is not installed"
    return True, ""


# ----------------------------------------------------------------------------------------------------------
# Converting

def plan_rows(formats: list[str], profile: DeviceProfile) -> list[tuple[str, str]]:
    """(format, precision) pairs: each format at the precisions this toolkit builds for it."""
    rows = []
    for fmt in formats:
        if fmt == "trt":
            # the device's own precision on a TensorRT device; fp16 elsewhere (prepared for a GPU, not run here)
            rows.append(("trt", profile.precision if profile.runtime == "tensorrt" else "fp16"))
        elif fmt == "tflite":
            rows += [("tflite", p) for p in ("fp32", "int8")]
        elif fmt == "coreml":
            rows.append(("coreml", "fp16"))
        elif fmt == "int8":
            rows.append(("int8", "int8"))
        else:
            rows.append((fmt, "fp32"))
    return rows


def export_artifact(fmt: str, precision: str, ckpt: Path, out_dir: Path, calib: Path | None, profile: DeviceProfile):
    """One converter call through its public export(); every failure becomes a result, never an exception."""
    opset = profile.max_opset or 17
    try:
        module = importlib.import_module(f"converters.{fmt}")
    except ImportError as exc:
        return ExportResult(fmt, precision, None, "missing-backend", f"converters.{fmt} needs {exc.name}")
    except BackendMissing as exc:
        return ExportResult(fmt, precision, None, "missing-backend", str(exc))
    opts: dict[str, Any] = {}
    batch: int | None = 1
    if fmt in ("onnx", "int8"):
        batch, opts["opset"] = None, opset  # ONNX models keep a dynamic batch
    elif fmt == "trt":
        opts.update(opset=opset, profile=str(profile.path or profile.name))
    try:
        return module.export(ckpt, out_dir, precision, calib=calib, batch=batch, **opts)
    except BackendMissing as exc:
        return ExportResult(fmt, precision, None, "missing-backend", str(exc))
    except ConverterInputError as exc:
        return ExportResult(fmt, precision, None, "failed", f"bad input: {exc}")
    except Exception as exc:  # one broken converter must not take the report down
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        return ExportResult(fmt, precision, None, "failed", f"{type(exc).__name__}: {first}")


def trt_finishing_command(profile: DeviceProfile, onnx_path: Path, ck: dict[str, Any], precision: str) -> str:
    """The trtexec command for the profile's TensorRT version (8.2's trtexec has --workspace, not --memPoolSize)."""
    version = tuple(int(v) for v in profile.runtime_info["version"].split(".")[:2] if v.isdigit())
    engine = onnx_path.with_name(onnx_path.stem.replace("_fp32", f"_{precision}") + ".engine")
    workspace = trt_converter.DEFAULT_WORKSPACE_MB
    cmd = trt_converter.trtexec_command(onnx_path, engine, trt_converter.shape_plan(ck, 1, None), precision,
                                        version[0], workspace, INPUT_NAME)
    if version < (8, 4):
        cmd = [f"--workspace={workspace}" if c.startswith("--memPoolSize") else c for c in cmd]
    return shlex.join(cmd)


# ----------------------------------------------------------------------------------------------------------
# Measuring

def run_measure(args: dict[str, Any], timeout: float = 1800) -> dict[str, Any]:
    """benchmarks.measure in a fresh interpreter; its JSON result (or {'error': ...})."""
    with tempfile.TemporaryDirectory() as tmp:
        args = {**args, "result": str(Path(tmp) / "result.json")}
        try:
            done = subprocess.run([sys.executable, "-m", "benchmarks.measure", json.dumps(args)],
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"measurement timed out after {timeout:.0f} s"}
        if done.returncode != 0:
            tail = (done.stderr or "").strip().splitlines()[-1:] or ["no output"]
            return {"error": tail[0][:300]}
        return json.loads(Path(args["result"]).read_text())


def score(row: Row, split, spec, threads: int | None) -> str:
    """Top-1 of the row's artifact on the split; returns the runtime that scored it."""
    opts = {"spinning": False} if runtime_kind(row.path) == "onnxruntime" else {}
    rt = load_runtime(row.path, threads=threads, **opts)
    logits = predict_split(rt.predict, split, spec, batch_size=32, clips=1, progress=True,
                           desc=f"top-1 {row.format} {row.precision}")
    row.top1 = float(evaluate_logits(logits, split.labels)["top1"])
    row.clips = len(split.labels)
    rt.close()
    return rt.name


def limit_split(split, limit: int | None, seed: int = 0):
    if not limit or limit >= len(split.labels):
        return split
    return split.subset(stratified_indices(split.labels, limit, seed))


def graph_cost(model, ck: dict[str, Any], out_dir: Path, rows: list[Row]) -> GraphCost:
    """FLOPs from torch, bytes and operator count from the fp32 ONNX graph (exported here if no row made one)."""
    flops = count_gflops(model, torch.zeros(input_shape(ck, 1))) * 1e9
    onnx_path = next((Path(r.path) for r in rows if r.format == "onnx" and r.path), None)
    if onnx_path is None:
        onnx_export = importlib.import_module("converters.onnx")
        res = onnx_export.export(Path(rows[0].ckpt), out_dir / "cost", "fp32", batch=None, verify_samples=2)
        onnx_path = res.path
    return onnx_graph_cost(onnx_path, flops)


# ----------------------------------------------------------------------------------------------------------

def benchmark_checkpoint(ckpt: Path, profile: DeviceProfile, formats: list[str], args: argparse.Namespace,
                         split, out_dir: Path) -> tuple[list[Row], GraphCost, dict[str, Any]]:
    model, ck = load_model(ckpt)
    variant = ck["model"]["variant"]
    params = count_params(model)
    plan = plan_rows(formats, profile)
    _, calib_n, _ = PRESET_SIZES[args.preset]
    calib = args.calib
    if calib is None and any(p == "int8" for _, p in plan) and all(not check_precision(p, profile)
                                                                    for f, p in plan if p == "int8"):
        source = args.calib_data or (f"{parse_data_arg(args.data)[0]}:train" if args.data else None)
        if source:
            calib = make_calibration_file(ckpt, source, calib_n, out_dir / f"calib_{source.replace(':', '_')}.npz")
    rows: list[Row] = []
    for fmt, precision in plan:
        row = Row(str(ckpt), model_name(ckpt), variant, fmt, precision, "ok", params=params)
        rows.append(row)
        problems = check_precision(precision, profile)
        if problems:
            row.status, row.message = "rejected", "; ".join(problems)
            continue
        if fmt == "pytorch":
            row.path, row.size_bytes = str(ckpt), ckpt.stat().st_size
        else:
            if precision == "int8" and calib is None:
                row.status, row.message = "failed", "INT8 needs a calibration set: pass --calib or --data"
                continue
            log.info("== %s: %s %s", ckpt.name, fmt, precision)
            res = export_artifact(fmt, precision, ckpt, out_dir, calib, profile)
            row.message = res.message
            row.path = str(res.path) if res.path else None
            row.size_bytes = res.size_bytes
            row.status = {"ok": "ok", "exported-not-verifiable-here": "exported, not runnable here",
                          "failed": "failed", "missing-backend": "backend missing"}[res.status]
            onnx_file = res.path if fmt in ("onnx", "int8") else (Path(res.extra["onnx"]) if res.extra.get("onnx")
                                                                 else None)
            if onnx_file is not None and Path(onnx_file).suffix == ".onnx" and Path(onnx_file).exists():
                problems = check_onnx(onnx_file, profile)
                if problems:
                    row.status, row.message = "rejected", "; ".join(problems)
                    continue
                if fmt == "trt":
                    row.message = (f"{Path(onnx_file).name} (opset {profile.max_opset or 17}) passes "
                                   f"{profile.name}'s operator check; " + res.message.splitlines()[0])
                    if profile.runtime == "tensorrt":
                        row.commands.append(trt_finishing_command(profile, Path(onnx_file), ck, precision))
                    found = sorted((k.startswith("python"), k, v) for k, v in res.extra.items()
                                   if k.startswith(("trtexec", "python")))  # trtexec first, then python
                    row.commands += [v for _, _, v in found if v not in row.commands]
                    if row.size_bytes is None:  # no engine here: the size column is the ONNX it is built from
                        row.size_bytes = Path(onnx_file).stat().st_size
                        row.message += f" (size: {Path(onnx_file).name}, the engine's source)"
        if row.status == "ok" and row.path:
            runs_here, why = backend_available(runtime_kind(row.path))
            if not runs_here:
                row.status = "exported, not runnable here"
                row.message = f"{why}; " + row.message if row.message else why
    cost = graph_cost(model, ck, out_dir, rows)
    for row in rows:
        row.gflops = cost.flops / 1e9
    # accuracy on the real split, in this process (a CoreML package off macOS: by the numpy MIL evaluator,
    # which checks its numbers but says nothing about its speed)
    if split is not None:
        ref = None
        for row in rows:
            off_mac_coreml = row.format == "coreml" and row.status == "exported, not runnable here" and row.path
            if row.status != "ok" and not off_mac_coreml:
                continue
            try:
                scored_by = score(row, split, input_spec(ck), args.threads)
            except Exception as exc:
                if off_mac_coreml:
                    row.message += f"; not scored: {type(exc).__name__}: {str(exc)[:200]}"
                else:
                    row.status, row.message = "failed", f"scoring failed: {type(exc).__name__}: {str(exc)[:200]}"
                continue
            if off_mac_coreml:
                row.message = f"top-1 by the {scored_by} (no timing: CoreML runs on macOS / iOS); " + row.message
            if row.format == "pytorch":
                ref = row.top1
            if ref is not None:
                row.delta_top1 = 100 * (row.top1 - ref)
    # cold start and peak memory, one fresh process per artifact
    x_file = out_dir / f".input_{ckpt.parent.name}_{ckpt.stem}.npy"
    np.save(x_file, verification_inputs(ck, calib, count=max(8, args.batch))[0])
    for row in rows:
        if row.status != "ok":
            continue
        cold = run_measure({"mode": "cold", "path": row.path, "x": str(x_file), "threads": args.threads})
        if "error" in cold:
            row.status, row.message = "failed", f"could not run here: {cold['error']}"
            continue
        row.runtime, row.load_ms, row.first_ms = cold["runtime"], cold["load_ms"], cold["first_ms"]
        row.peak_rss_mb, row.ram_mb = cold["peak_rss_mb"], cold["peak_rss_mb"] - cold["rss_before_mb"]
        row.native = run_native(row.path, threads=args.threads or 1, runs=PRESETS[args.preset].runs)
    return rows, cost, {"x": str(x_file), "layout": ck["layout"], "classes": len(ck["class_names"]),
                        **checkpoint_summary(ckpt, ck, params, cost)}


def checkpoint_summary(ckpt: Path, ck: dict[str, Any], params: int, cost: GraphCost) -> dict[str, Any]:
    """Per checkpoint: variant, streams, size, and the top-1 its training recorded at the best and the last epoch
    (last.pt beside best.pt), so the report shows the last epoch beside the best one."""
    cfg = ck["model"].get("config", {})
    info = {"model": model_name(ckpt), "variant": ck["model"]["variant"], "streams": cfg.get("streams"),
            "params": params, "gflops": cost.flops / 1e9, "layout": ck["layout"],
            "train_top1_best": (ck.get("metrics") or {}).get("top1"), "train_top1_last": None,
            "epoch_best": (ck.get("train") or {}).get("epoch")}
    last = ckpt.with_name("last.pt")
    if last.is_file() and last != ckpt:
        lk = load_checkpoint(last)
        info["train_top1_last"] = (lk.get("metrics") or {}).get("top1")
        info["epoch_last"] = (lk.get("train") or {}).get("epoch")
    return info


def time_rows(rows: list[Row], inputs: dict[str, str], args: argparse.Namespace) -> None:
    """Batch-1 latency of every runnable row of every checkpoint in one interleaved run (so their ratios hold)."""
    preset = PRESETS[args.preset]
    runnable = [r for r in rows if r.status == "ok"]
    if not runnable:
        return
    # one process, one input file per checkpoint: measure.timing takes one input, so group by checkpoint input
    by_input: dict[str, list[Row]] = {}
    for r in runnable:
        by_input.setdefault(inputs[r.ckpt], []).append(r)
    shapes = {x: np.load(x).shape[1:] for x in by_input}
    if len(set(shapes.values())) == 1:
        groups = [[r for rs in by_input.values() for r in rs]]
        xs = [next(iter(by_input))]
    else:  # different input shapes: interleave within each shape group
        groups, xs = list(by_input.values()), list(by_input)
    for group, x in zip(groups, xs):
        log.info("timing %d artifacts interleaved (%s preset: %d warm-up, >= %d runs)", len(group), preset.name,
                 preset.warmup, preset.runs)
        res = run_measure({"mode": "timing", "paths": {r.key: r.path for r in group}, "x": x, "threads": args.threads,
                           "warmup": preset.warmup, "runs": preset.runs, "min_seconds": preset.min_seconds,
                           "batch": args.batch})
        if "error" in res:
            for r in group:
                r.message += f"; timing failed: {res['error']}"
            continue
        for r in group:
            m = res[r.key]
            r.latency = m["latency"]
            r.throughput_per_s, r.throughput_batch = m.get("throughput_per_s"), m.get("throughput_batch")


def end_to_end(rows: list[Row], profile: DeviceProfile, args: argparse.Namespace, out_dir: Path) -> list[dict]:
    """The edge loop on each --video with the profile's runtime format of each checkpoint (else PyTorch)."""
    if not args.video:
        return []
    pose_model = resolve_pose_model(args.pose_model)
    preferred = {"onnxruntime": "onnx", "tflite": "tflite", "coreml": "coreml", "tensorrt": "trt"}[profile.runtime]
    _, _, frames = PRESET_SIZES[args.preset]
    results = []
    for ckpt in dict.fromkeys(r.ckpt for r in rows):
        mine = [r for r in rows if r.ckpt == ckpt and r.status == "ok"]
        pick = next((r for r in mine if r.format == preferred), None) or next((r for r in mine if r.format ==
                                                                                 "pytorch"), None)
        if pick is None:
            continue
        for video in args.video:
            log.info("edge loop: %s with %s %s", Path(video).name, pick.format, pick.precision)
            stem = f"{Path(video).stem}__{Path(ckpt).parent.name}_{pick.format}_{pick.precision}"
            r = bench_one(Path(video), Path(pick.path), pose_model, args.threads or 1, args.stride, frames, None,
                          out_dir / f"{stem}.events.jsonl")
            r.update(ckpt=ckpt, model=pick.model, variant=pick.variant, format=pick.format, precision=pick.precision,
                     stride=args.stride)
            r.pop("label_sequence", None)
            results.append(r)
    return results


def measured_pose_ms(e2e: list[dict]) -> float | None:
    """p90 of the pose stage over the video runs (the device's own pose latency, when measured here)."""
    vals = [r["latency"]["pose"]["p90_ms"] for r in e2e if "pose" in r.get("latency", {})]
    return float(np.median(vals)) if vals else None


def estimates(costs: dict[str, tuple[str, GraphCost]], profiles: list[DeviceProfile], rows: list[Row]
              ) -> list[dict[str, Any]]:
    """Estimated latency and verdict of every checkpoint on every listed profile, at its deployment precision."""
    out = []
    for ckpt, (variant, cost) in costs.items():
        size = next((r.size_bytes for r in rows if r.ckpt == ckpt and r.format == "onnx" and r.size_bytes), None)
        for p in profiles:
            est = estimate_for_profile(cost, p)
            size_mb = None if size is None else size / 2**20 * {"fp32": 1, "fp16": .5, "int8": .25}[p.precision]
            v = judge_for_profile(p, est.latency_ms, size_mb=size_mb, kind="estimate")
            out.append({"ckpt": ckpt, "model": model_name(Path(ckpt)), "variant": variant, "profile": p.name,
                        "runtime": p.runtime,
                        "precision": p.precision, "estimate": est.to_dict(), "size_mb": size_mb,
                        "verdict": v.to_dict(), "calibrated": p.estimate.get("calibrated", "")})
    return out


# ----------------------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="exit status: 0 report written (rows may still be rejected/failed: see the report), "
                              "1 nothing could be measured or prepared, 2 bad input (argument, file, profile field)")
    p.add_argument("--profile", required=True, help=f"device profile: {', '.join(list_profiles())} or a YAML path")
    p.add_argument("--ckpt", required=True, nargs="+", type=Path, help="one or more LAST checkpoints (.pt)")
    p.add_argument("--formats", default=None,
                   help=f"comma-separated subset of {','.join(ALL_FORMATS)} (default: the profile's formats)")
    p.add_argument("--data", default=None, help="evaluation split NAME:SPLIT, e.g. nw_ucla:test (top-1 and Δ)")
    p.add_argument("--calib", type=Path, default=None, help="calibration .npz for INT8 (default: drawn from the "
                                                            "train split of --data)")
    p.add_argument("--calib-data", default=None, help="draw the calibration set from this NAME:SPLIT")
    p.add_argument("--preset", choices=tuple(PRESETS), default="quick",
                   help="run length: rapid (smoke test), quick (default), normal (report numbers)")
    p.add_argument("--batch", type=int, default=8, help="batch for the throughput column (default 8)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads per runtime (default 1)")
    p.add_argument("--video", nargs="*", default=None, help="video file(s) for the edge loop end to end")
    p.add_argument("--pose-model", default=None, help="MediaPipe pose .task for --video")
    p.add_argument("--stride", type=int, default=4, help="classify every Nth frame in the video run (default 4)")
    p.add_argument("--estimate", default="all",
                   help="profiles to estimate for (comma-separated, 'all' or 'none'; default all others)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default runs/bench/<profile>)")
    p.add_argument("--quiet", action="store_true")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    try:
        profile = load_profile(args.profile)
    except FileNotFoundError as exc:
        raise BadInput(f"--profile: {exc}") from exc
    formats = [f.strip() for f in args.formats.split(",")] if args.formats else list(profile.formats)
    unknown = [f for f in formats if f not in ALL_FORMATS]
    if unknown:
        raise BadInput(f"--formats: unknown {unknown}; choose from {', '.join(ALL_FORMATS)}")
    if args.batch < 1:
        raise BadInput(f"--batch must be >= 1, got {args.batch}")
    for ckpt in args.ckpt:
        if not ckpt.is_file():
            raise BadInput(f"--ckpt: no such file {ckpt}")
    for video in args.video or []:
        if not Path(video).is_file():
            raise BadInput(f"--video: no such file {video}")
    if args.estimate == "none":
        others: list[DeviceProfile] = []
    elif args.estimate == "all":
        others = [load_profile(n) for n in list_profiles() if n != profile.name]
    else:
        others = [load_profile(n.strip()) for n in args.estimate.split(",") if n.strip()]
    out_dir = args.out or Path("runs") / "bench" / profile.name
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    rows: list[Row] = []
    costs: dict[str, tuple[str, GraphCost]] = {}
    inputs: dict[str, str] = {}
    checkpoints: list[dict[str, Any]] = []
    clips_n, _, _ = PRESET_SIZES[args.preset]
    for ckpt in args.ckpt:
        ck = load_checkpoint(ckpt)
        split = None
        if args.data:
            split = load_data_split(args.data, layout=ck["layout"])
            check_split_matches(split, ck["layout"], ck["class_names"], args.data, str(ckpt))
            split = limit_split(split, clips_n)
        ck_out = out_dir / f"{ckpt.parent.name}_{ckpt.stem}"
        ck_out.mkdir(parents=True, exist_ok=True)
        ck_rows, cost, info = benchmark_checkpoint(ckpt, profile, formats, args, split, ck_out)
        rows += ck_rows
        costs[str(ckpt)] = (ck_rows[0].variant, cost)
        inputs[str(ckpt)] = info["x"]
        checkpoints.append({k: v for k, v in info.items() if k != "x"})
    time_rows(rows, inputs, args)
    e2e = end_to_end(rows, profile, args, out_dir)
    pose_measured = measured_pose_ms(e2e)
    # the pose latency measured by --video is this machine's: the one a verdict for this machine should use
    pose_for_verdict = pose_measured
    for row in rows:
        p90 = row.latency["p90_ms"] if row.latency else None
        size_mb = row.size_bytes / 2**20 if row.size_bytes else None
        row.verdict = judge_for_profile(profile, p90, size_mb, row.ram_mb, pose_ms=pose_for_verdict).to_dict()
        if row.status == "ok":
            precision = row.precision if row.precision in ("fp32", "fp16", "int8") else "fp32"
            row.estimate = estimate_for_profile(costs[row.ckpt][1], profile, precision).to_dict()
    # hook (benchmarks.delegates): which ops of each artifact the profile's accelerator delegates would run
    delegates = delegate_placements(rows, profile)
    for x in inputs.values():
        Path(x).unlink(missing_ok=True)
    if not any(r.latency for r in rows) and profile.name not in {p.name for p in others}:
        others = [profile] + others  # nothing of this profile ran here: estimate it too, labelled as such
    return {
        "tool": "benchmarks.run", "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "seconds": round(time.time() - started),
        "command": "python -m benchmarks.run " + " ".join(shlex.quote(a) for a in (args.argv or [])),
        "profile": profile.raw, "profile_name": profile.name, "preset": args.preset, "data": args.data,
        "threads": args.threads, "batch": args.batch, "versions": tool_versions(), "machine": machine_info(),
        "pose": {"measured_p90_ms": pose_measured, "profile_ms": profile.budgets["pose_ms"],
                 "profile_source": profile.budgets["pose_source"], "used": "measured" if pose_measured else "profile"},
        "costs": {k: {"variant": v, **c.to_dict()} for k, (v, c) in costs.items()}, "checkpoints": checkpoints,
        "rows": [r.to_dict() for r in rows], "e2e": e2e, "estimates": estimates(costs, others, rows),
        "delegates": delegates,
    }


def _main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s", stream=sys.stderr)
    result = run(args)
    out_dir = args.out or Path("runs") / "bench" / result["profile_name"]
    paths = write_report(result, out_dir)
    print(paths["markdown"].read_text())
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    statuses = {r["status"] for r in result["rows"]}
    return EXIT_OK if statuses & {"ok", "exported, not runnable here", "backend missing", "rejected"} else EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    """Errors become one `python -m benchmarks.run: error: ...` line (core.cli): 2 bad input, 1 failed."""
    return run_cli(_main, PROG, argv)


if __name__ == "__main__":
    sys.exit(main())
