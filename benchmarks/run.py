"""Measure a checkpoint in every format on this machine, or judge it against a device's budgets: convert, check,
score and time in one command.

    python -m benchmarks.run --ckpt runs/nw_ucla/last_small/best.pt --data nw_ucla:test          # every format, here
    python -m benchmarks.run --profile x86_cpu --ckpt runs/nw_ucla/last_small/best.pt --data nw_ucla:test \\
        --video ta_chi.mp4 --pose-model pose_landmarker_full.task
    python -m benchmarks.run --profile jetson_nano --ckpt best.pt --preset rapid

Every requested format (default: all; with --profile, the formats the profile deploys) is converted through the
format table (`converters.formats`; with a profile at its ONNX opset) and checked by the analyses in ANALYSES
(a profile's precision and operator rules: a `rejected` row naming the operator). Where it runs here: top-1 on
--data with the paired difference against PyTorch fp32 on the same clips (fixed / broken clips, 95 % interval,
holds / loses / inconclusive at ±1 point), load time, first inference, batch-1 latency (p50/p90/p99, mean ± std,
all artifacts interleaved in one fresh process), throughput at --batch, peak RSS. With --profile: a verdict against
its budgets (p90 is the headline), --video's edge loop end to end (benchmarks.edge: pipelined, the video paced at
its frame rate; its measured per-frame p90 decides the verdict of the artifact it ran), and estimates for devices that are not this
machine (benchmarks.estimate, always labelled). Writes <out>/result.json, result.csv and report.md with plots.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, fields
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from benchmarks.delegates import benchmark_rows as delegate_placements
from benchmarks.edge import bench_one
from benchmarks.estimate import GraphCost, estimate_for_profile, onnx_graph_cost
from benchmarks.native import run_native
from benchmarks.report import write_report
from benchmarks.rules import check_onnx, check_precision
from benchmarks.verdict import judge_for_profile
from converters import formats
from converters.calib import load_calibration, make_calibration_file
from converters.common import STATUSES as EXPORT_STATUSES
from converters.common import ExportResult, input_shape
from converters.formats import FORMATS, Planned
from converters.verify import verification_inputs
from core.checkpoint import Checkpoint, load_checkpoint
from core.cli import ArgumentParser, BadInput, run_cli
from core.data.splits import stratified_indices
from core.evaluation import check_split_matches, evaluate_logits, load_data_split, parse_data_arg, predict_split
from core.models.profile import count_gflops, count_params
from core.runtime import BackendMissing, backend_missing, load_runtime, runtime_kind
from core.stats import PairedDifference, paired_difference, verdict
from core.timing import PRESETS
from devices import DEPLOY_FORMATS, DeviceProfile, list_profiles, load_profile
from edge.pose import resolve_pose_model

log = logging.getLogger("benchmarks")

PROG = "python -m benchmarks.run"
ALL_FORMATS = ("pytorch", *FORMATS)
# one vocabulary: the converters' statuses, and `rejected` for what a device profile refuses
STATUSES = (*EXPORT_STATUSES, "rejected")
EXIT_OK, EXIT_FAILED = 0, 1
ACCURACY_TOLERANCE = 1.0  # points: "holds" when the whole 95 % interval of Δ top-1 lies above -1
# preset -> clips scored, calibration clips, video frames (None: all); timing run length is core.timing.PRESETS
PRESET_SIZES = {"rapid": (64, 64, 60), "quick": (200, 200, 150), "normal": (None, 500, None)}
VERSION_PACKAGES = ("numpy", "torch", "onnx", "onnxruntime", "onnxsim", "ai-edge-litert", "litert-torch",
                    "coremltools", "mediapipe", "tensorrt", "nvidia-modelopt", "opencv-contrib-python")


def model_name(ckpt: str | Path) -> str:
    """The label of a checkpoint in tables: its run folder (runs/nw_ucla/last_small_jvb/best.pt -> last_small_jvb)."""
    path = Path(ckpt)
    return path.parent.name or path.stem


@dataclass
class Row:
    """One artifact of one checkpoint: what was built, whether it runs here, how accurate and how fast it is."""

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
    runtime: str = ""  # what scored and timed it
    load_ms: float | None = None
    first_ms: float | None = None
    latency: dict[str, Any] | None = None  # core.timing.TimingStats.to_dict(samples=True)
    throughput_per_s: float | None = None
    throughput_batch: int | None = None
    peak_rss_mb: float | None = None
    ram_mb: float | None = None  # peak RSS minus the process before loading the model
    top1: float | None = None
    delta_top1: float | None = None  # points vs the PyTorch fp32 row
    max_logit_diff: float | None = None  # vs the PyTorch fp32 row, on the same clips
    paired: PairedDifference | None = None  # vs the PyTorch fp32 row on the same clips: fixed/broken, 95 % interval
    clips: int | None = None
    verdict: dict[str, Any] | None = None  # the device's budgets (with --profile)
    estimate: dict[str, Any] | None = None  # this profile's estimate, beside the measurement (never instead)
    native: dict[str, Any] | None = None  # trtexec / benchmark_model / onnxruntime_perf_test, where installed
    message: str = ""
    commands: list[str] = field(default_factory=list)  # what finishes the artifact on the device
    extra: dict[str, Any] = field(default_factory=dict)  # what the analyses (ANALYSES) found

    @property
    def key(self) -> str:
        return f"{Path(self.ckpt).parent.name}/{Path(self.ckpt).stem}:{self.format}:{self.precision}"

    @property
    def accuracy(self) -> str | None:
        """holds / loses / inconclusive: Δ top-1's 95 % interval against ±ACCURACY_TOLERANCE points."""
        return verdict(self.paired, ACCURACY_TOLERANCE) if self.paired else None

    def note(self, text: str, first: bool = False) -> None:
        parts = [text, self.message] if first else [self.message, text]
        self.message = "; ".join(p for p in parts if p)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["paired"] = self.paired.to_dict() if self.paired else None
        d["accuracy"] = self.accuracy
        return d


# ----------------------------------------------------------------------------------------------------------
# Per-artifact analyses: each gets the row right after its export and may reject it, note on it or add to
# row.extra (what it found) and row.commands (what finishes it on the device). Appending a function here is
# how a new check joins every run.

Analysis = Callable[[Row, ExportResult, "DeviceProfile | None"], None]


def onnx_source(row: Row, result: ExportResult) -> Path | None:
    """The ONNX file the artifact is (ONNX, INT8) or is built from (a TensorRT engine), when there is one here."""
    source = row.path if row.format in ("onnx", "int8") else result.extra.get("onnx")
    return Path(source) if source and str(source).endswith(".onnx") and Path(source).exists() else None


def profile_rules(row: Row, result: ExportResult, profile: DeviceProfile | None) -> None:
    """The device profile's runtime must parse the ONNX: its opset and every operator."""
    source = onnx_source(row, result)
    if profile is None or source is None:
        return
    problems = check_onnx(source, profile)
    if problems:
        row.status, row.message = "rejected", "; ".join(problems)
    elif row.path is None:  # built on the device: say what was checked here
        row.note(f"{source.name} (opset {profile.max_opset or 17}) passes {profile.name}'s operator check", first=True)


def source_size(row: Row, result: ExportResult, profile: DeviceProfile | None) -> None:
    """No artifact here (an engine built on the device): the size column is the ONNX it is built from."""
    source = onnx_source(row, result)
    if row.size_bytes is None and source is not None and row.status != "rejected":
        row.size_bytes = source.stat().st_size
        row.note(f"size: {source.name}, the engine's source")


def runs_here(row: Row, result: ExportResult, profile: DeviceProfile | None) -> None:
    """An artifact whose runtime is not on this machine is exported, not verifiable here (core.runtime says why)."""
    if row.status == "ok" and row.path:
        why = backend_missing(runtime_kind(row.path))
        if why:
            row.status = "exported-not-verifiable-here"
            row.note(why, first=True)


ANALYSES: list[Analysis] = [profile_rules, source_size, runs_here]


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


# the x86 vector extensions whose kernels give different (each within its documented accuracy) results
SIMD_FLAGS = ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni", "avx512_bf16",
              "amx_int8")


def cpu_features() -> list[str]:
    """The SIMD extensions of SIMD_FLAGS this CPU reports (/proc/cpuinfo; empty where it cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return [f for f in SIMD_FLAGS if f in flags]


def stable_hash(text: str, digits: int = 6) -> int:
    """A short hash that is the same in every process (the built-in hash() of a str is salted per process)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") % 10**digits


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
            "cpu_features": cpu_features(), "hostname_hash": stable_hash(platform.node())}


# ----------------------------------------------------------------------------------------------------------
# What to build

def profile_precisions(profile: DeviceProfile | None) -> dict[str, tuple[str, ...]]:
    """A device's choices: an engine built on the device (TensorRT) at the device's precision when that is its
    runtime, else at fp16 (prepared for a GPU, no calibration set needed); the rest at the table's precisions."""
    if profile is None:
        return {}
    own = DEPLOY_FORMATS[profile.runtime]
    return {f.name: (profile.precision if f.name == own else "fp16",) for f in FORMATS.values() if f.built_on_device}


def plan_run(requested: list[str], profile: DeviceProfile | None, args: argparse.Namespace) -> list[Planned]:
    """The artifact rows of every checkpoint (PyTorch, the reference, is never planned: every run scores it, and
    measures it unless a profile leaves it out); the profile's opset and the profile itself go to every converter
    that takes them."""
    precisions = {**profile_precisions(profile), **formats.precisions_from_args(args)}
    try:
        plan = formats.plan([f for f in requested if f != "pytorch"], precisions, formats.quantizers_from_args(args))
    except ValueError as exc:
        raise BadInput(f"--formats: {exc}") from None
    for row in plan:
        options = FORMATS[row.format].options
        if profile is not None and "opset" in options:
            row.options["opset"] = profile.max_opset or 17
        if profile is not None and "profile" in options:
            row.options["profile"] = str(profile.path or profile.name)
    return plan


def calibration_set(checkpoint: Checkpoint, plan: list[Planned], profile: DeviceProfile | None,
                    args: argparse.Namespace, out_dir: Path) -> Path | None:
    """--calib (checked against the checkpoint now), or a set drawn from --calib-data (default: the train split of
    --data's data set) when a row the profile accepts needs one; None when none is needed or none can be drawn."""
    if args.calib is not None:
        load_calibration(args.calib, checkpoint.data)
        return args.calib
    needed = [p for p in plan if p.needs_calibration and not (profile and check_precision(p.precision, profile))]
    source = args.calib_data or (f"{parse_data_arg(args.data)[0]}:train" if args.data else None)
    if not needed or source is None:
        return None
    num = PRESET_SIZES[args.preset][1]
    return make_calibration_file(checkpoint, source, num, out_dir / f"calib_{source.replace(':', '_')}_{num}.npz")


def limit_split(split, limit: int | None, seed: int = 0):
    """A stratified subset of `limit` clips (the whole split when it has no more)."""
    if not limit or limit >= len(split.labels):
        return split
    return split.subset(stratified_indices(split.labels, limit, seed))


# ----------------------------------------------------------------------------------------------------------
# Building and checking

def build_row(checkpoint: Checkpoint, planned: Planned, profile: DeviceProfile | None, calib: Path | None,
              out_dir: Path, built: dict[str, Path]) -> Row:
    """One planned artifact: converted through the format table (never an exception), then every analysis.
    `built` carries the fp32 ONNX an earlier row of this checkpoint made, for the INT8 rows to quantize."""
    row = Row(str(checkpoint), model_name(checkpoint.path), checkpoint.data["model"]["variant"], planned.format,
              planned.label, "ok")
    problems = check_precision(planned.precision, profile) if profile else []
    if problems:
        row.status, row.message = "rejected", "; ".join(problems)
        return row
    if planned.needs_calibration and calib is None:
        row.status, row.message = "failed", "INT8 needs a calibration set: pass --calib, --calib-data or --data"
        return row
    log.info("== %s: %s %s", checkpoint.path.name, planned.format, planned.label)
    opts = dict(planned.options)
    if "onnx" in built and "fp32_onnx" in FORMATS[planned.format].options:
        opts["fp32_onnx"] = built["onnx"]
    result = formats.try_export(planned.format, checkpoint, out_dir, planned.precision, calib=calib, batch=1, **opts)
    if planned.format == "onnx" and result.ok:
        built["onnx"] = result.path
    row.status, row.message, row.size_bytes = result.status, result.message, result.size_bytes
    row.path = str(result.path) if result.path else None
    row.commands = list(result.extra.get("finish", []))
    for analyse in ANALYSES:
        analyse(row, result, profile)
    return row


# ----------------------------------------------------------------------------------------------------------
# Scoring (in this process) and measuring (in fresh ones)

def score_rows(rows: list[Row], reference: Checkpoint, split, threads: int | None) -> None:
    """Top-1 of every artifact that loads here on the same clips, and each against the PyTorch fp32 row (rows[0]):
    Δ top-1 with its paired 95 % interval, max |logit diff|. An artifact its converter failed (outside the
    verification tolerance) is scored too: what it costs on real clips. A CoreML package off macOS is scored by the
    numpy MIL evaluator, which checks its numbers but says nothing about its speed (it stays not runnable here)."""
    spec = reference.spec
    ref_logits: np.ndarray | None = None
    for i, row in enumerate(rows):
        if row.status in ("rejected", "missing-backend") or not row.path:
            continue
        opts = {"spinning": False} if runtime_kind(row.path) == "onnxruntime" else {}
        try:
            rt = load_runtime(reference if i == 0 else row.path, threads=threads, **opts)
        except BackendMissing as exc:
            row.note(f"not scored: {exc}")
            if row.status == "ok":
                row.status = "exported-not-verifiable-here"
            continue
        try:
            logits = predict_split(rt.predict, split, spec, batch_size=32, clips=1, progress=True,
                                   desc=f"top-1 {row.format} {row.precision}")
        except Exception as exc:  # noqa: BLE001  (the row names what broke)
            if row.status == "ok":  # the real runtime failing is a failure; the numbers-only evaluator's is a note
                row.status = "failed"
            row.note(f"not scored: {type(exc).__name__}: {str(exc)[:200]}")
            continue
        finally:
            rt.close()
        row.top1, row.clips = float(evaluate_logits(logits, split.labels)["top1"]), len(split.labels)
        if row.status == "exported-not-verifiable-here":
            row.note(f"top-1 by the {rt.name} (numbers only, no timing)", first=True)
        if i == 0:
            ref_logits = logits
        elif ref_logits is not None:
            row.delta_top1 = 100 * (row.top1 - rows[0].top1)
            row.max_logit_diff = float(np.abs(logits - ref_logits).max())
            row.paired = paired_difference(split.labels, ref_logits, logits)
    if ref_logits is not None:
        rows[0].delta_top1, rows[0].max_logit_diff = 0.0, 0.0


def run_measure(args: dict[str, Any], timeout: float = 1800) -> dict[str, Any]:
    """benchmarks.measure in a fresh interpreter (the one place latency is measured); its JSON result (or
    {'error': ...})."""
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


def measure_cold(rows: list[Row], x_file: Path, args: argparse.Namespace) -> None:
    """Load time, first inference and peak memory, one fresh process per artifact (its own high-water mark),
    and the vendor's own benchmark tool where it is installed."""
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
                r.note(f"timing failed: {res['error']}")
            continue
        for r in group:
            m = res[r.key]
            r.latency = m["latency"]
            r.throughput_per_s, r.throughput_batch = m.get("throughput_per_s"), m.get("throughput_batch")


# ----------------------------------------------------------------------------------------------------------
# One checkpoint

def reference_row(checkpoint: Checkpoint) -> Row:
    """PyTorch fp32, the checkpoint itself: the reference every other row is compared with."""
    return Row(str(checkpoint), model_name(checkpoint.path), checkpoint.data["model"]["variant"], "pytorch", "fp32",
               "ok", path=str(checkpoint), size_bytes=checkpoint.path.stat().st_size)


def benchmark_checkpoint(checkpoint: Checkpoint, plan: list[Planned], profile: DeviceProfile | None,
                         args: argparse.Namespace, split, calib: Path | None, out_dir: Path) -> list[Row]:
    """Build, check and score every planned artifact of one opened checkpoint (read once: every converter and the
    reference runtime are handed the same Checkpoint)."""
    rows = [reference_row(checkpoint)]
    built: dict[str, Path] = {}
    rows += [build_row(checkpoint, planned, profile, calib, out_dir, built) for planned in plan]
    if split is not None:
        score_rows(rows, checkpoint, split, args.threads)
    return rows


def checkpoint_summary(checkpoint: Checkpoint, params: int, gflops: float) -> dict[str, Any]:
    """Per checkpoint: variant, streams, size, and the top-1 its training recorded at the best and the last epoch
    (last.pt beside best.pt), so the report shows the last epoch beside the best one."""
    ck = checkpoint.data
    cfg = ck["model"].get("config", {})
    info = {"model": model_name(checkpoint.path), "variant": ck["model"]["variant"], "streams": cfg.get("streams"),
            "params": params, "gflops": gflops, "layout": ck["layout"],
            "train_top1_best": (ck.get("metrics") or {}).get("top1"), "train_top1_last": None,
            "epoch_best": (ck.get("train") or {}).get("epoch")}
    last = checkpoint.path.with_name("last.pt")
    if last.is_file() and last != checkpoint.path:
        lk = load_checkpoint(last)
        info["train_top1_last"] = (lk.get("metrics") or {}).get("top1")
        info["epoch_last"] = (lk.get("train") or {}).get("epoch")
    return info


def graph_cost(checkpoint: Checkpoint, gflops: float, out_dir: Path, rows: list[Row]) -> GraphCost:
    """FLOPs from torch, bytes and operator count from the fp32 ONNX graph (exported here if no row made one)."""
    onnx_path = next((Path(r.path) for r in rows if r.format == "onnx" and r.path and r.status == "ok"), None)
    if onnx_path is None:
        onnx_path = formats.export("onnx", checkpoint, out_dir / "cost", "fp32", batch=None, verify_samples=2).path
    return onnx_graph_cost(onnx_path, gflops * 1e9)


# ----------------------------------------------------------------------------------------------------------
# With a device profile: the edge loop, verdicts and estimates

def end_to_end(rows: list[Row], profile: DeviceProfile, args: argparse.Namespace, out_dir: Path) -> list[dict]:
    """The edge loop on each --video with the profile's runtime format of each checkpoint (else PyTorch)."""
    if not args.video:
        return []
    pose_model = resolve_pose_model(args.pose_model)
    preferred = DEPLOY_FORMATS[profile.runtime]
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
            r = bench_one(Path(video), Path(pick.path), pose_model, args.threads or 1, None, frames, None,
                          out_dir / f"{stem}.events.jsonl", pipelined=True, realtime=True, stride_frames=args.stride)
            r.update(ckpt=ckpt, model=pick.model, variant=pick.variant, format=pick.format, precision=pick.precision,
                     stride=args.stride, key=pick.key)
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
            out.append({"ckpt": ckpt, "model": model_name(ckpt), "variant": variant, "profile": p.name,
                        "runtime": p.runtime,
                        "precision": p.precision, "estimate": est.to_dict(), "size_mb": size_mb,
                        "verdict": v.to_dict(), "calibrated": p.estimate.get("calibrated", "")})
    return out


def measured_loops(e2e: list[dict]) -> dict[str, dict]:
    """The pipelined loop measured on the videos, per row key (its worst video): it decides that row's verdict."""
    loops: dict[str, dict] = {}
    for r in e2e:
        if r.get("stats", {}).get("busy_ms"):
            worst = loops.get(r["key"])
            if worst is None or r["stats"]["busy_ms"]["p90_ms"] > worst["busy_ms"]["p90_ms"]:
                loops[r["key"]] = r["stats"]
    return loops


def judge_rows(rows: list[Row], profile: DeviceProfile, costs: dict[str, tuple[str, GraphCost]],
               pose_ms: float | None, loops: dict[str, dict] | None = None) -> None:
    """Each row against the profile's budgets (with the pose latency measured here by --video, when there is one,
    and the measured pipelined loop of the row it ran), and the profile's estimate beside each measurement."""
    for row in rows:
        p90 = row.latency["p90_ms"] if row.latency else None
        size_mb = row.size_bytes / 2**20 if row.size_bytes else None
        row.verdict = judge_for_profile(profile, p90, size_mb, row.ram_mb, pose_ms=pose_ms,
                                        loop=(loops or {}).get(row.key)).to_dict()
        if row.status == "ok":
            precision = row.precision if row.precision in ("fp32", "fp16", "int8") else "fp32"
            row.estimate = estimate_for_profile(costs[row.ckpt][1], profile, precision).to_dict()


# ----------------------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="exit status: 0 report written (rows may still be rejected/failed: see the report), "
                              "1 nothing could be measured or prepared, 2 bad input (argument, file, profile field)")
    p.add_argument("--profile", default=None,
                   help=f"device profile: {', '.join(list_profiles())} or a YAML path (without: this machine, every "
                        "format, no verdict)")
    p.add_argument("--ckpt", required=True, nargs="+", type=Path, help="one or more LAST checkpoints (.pt)")
    formats.add_plan_args(p, ALL_FORMATS)
    p.add_argument("--data", default=None, help="evaluation split NAME:SPLIT, e.g. nw_ucla:test (top-1 and Δ)")
    p.add_argument("--limit", type=int, default=None,
                   help="clips scored: a stratified subset of N (default: the preset's; normal scores all)")
    p.add_argument("--calib", type=Path, default=None, help="calibration .npz for INT8 (default: drawn from the "
                                                            "train split of --data)")
    p.add_argument("--calib-data", default=None, help="draw the calibration set from this NAME:SPLIT")
    p.add_argument("--preset", choices=tuple(PRESETS), default="quick",
                   help="run length: rapid (smoke test), quick (default), normal (report numbers)")
    p.add_argument("--batch", type=int, default=8, help="batch for the throughput column (default 8)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads per runtime (default 1)")
    p.add_argument("--video", nargs="*", default=None, help="video file(s) for the edge loop end to end (--profile)")
    p.add_argument("--pose-model", default=None, help="MediaPipe pose .task for --video")
    p.add_argument("--stride", type=int, default=None, help="classify every Nth frame in the video run (default: "
                   "every frame; the pipelined loop skips a window only when a newer one is waiting)")
    p.add_argument("--estimate", default=None,
                   help="profiles to estimate for (comma-separated, 'all' or 'none'; default: all others with "
                        "--profile, none without)")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default runs/bench/<profile>, or runs/bench/host without one)")
    p.add_argument("--quiet", action="store_true")
    return p.parse_args(argv)


def checked_inputs(args: argparse.Namespace) -> tuple[DeviceProfile | None, list[str], list[DeviceProfile]]:
    """(profile, formats, profiles to estimate for) with every bad argument as BadInput naming it."""
    profile = None
    if args.profile:
        try:
            profile = load_profile(args.profile)
        except FileNotFoundError as exc:
            raise BadInput(f"--profile: {exc}") from exc
    if args.formats:
        requested = [f.strip() for f in args.formats.split(",") if f.strip()]
    else:
        requested = list(profile.formats) if profile else list(ALL_FORMATS)
    unknown = [f for f in requested if f not in ALL_FORMATS]
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
    if args.video and profile is None:
        raise BadInput("--video runs the edge loop against a device's budget: pass --profile too")
    chosen = args.estimate or ("all" if profile else "none")
    if chosen == "none":
        others: list[DeviceProfile] = []
    elif chosen == "all":
        others = [load_profile(n) for n in list_profiles() if not profile or n != profile.name]
    else:
        others = [load_profile(n.strip()) for n in chosen.split(",") if n.strip()]
    return profile, requested, others


def run(args: argparse.Namespace) -> dict[str, Any]:
    profile, requested, others = checked_inputs(args)
    plan = plan_run(requested, profile, args)
    out_dir = args.out or Path("runs") / "bench" / (profile.name if profile else "host")
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    rows: list[Row] = []
    costs: dict[str, tuple[str, GraphCost]] = {}
    inputs: dict[str, str] = {}
    checkpoints: list[dict[str, Any]] = []
    clips_n = args.limit or PRESET_SIZES[args.preset][0]
    for ckpt in args.ckpt:
        checkpoint = Checkpoint(ckpt)
        split = None
        if args.data:
            split = load_data_split(args.data, layout=checkpoint.data["layout"])
            check_split_matches(split, checkpoint.data["layout"], checkpoint.data["class_names"], args.data, str(ckpt))
            split = limit_split(split, clips_n)
        ck_out = out_dir / f"{ckpt.parent.name}_{ckpt.stem}"
        ck_out.mkdir(parents=True, exist_ok=True)
        calib = calibration_set(checkpoint, plan, profile, args, ck_out)
        ck_rows = benchmark_checkpoint(checkpoint, plan, profile, args, split, calib, ck_out)
        if profile is not None and "pytorch" not in requested:  # the device does not run it: only the reference
            ck_rows = ck_rows[1:]
        x_file = out_dir / f".input_{ckpt.parent.name}_{ckpt.stem}.npy"
        np.save(x_file, verification_inputs(checkpoint.data, calib, count=max(8, args.batch))[0])
        measure_cold(ck_rows, x_file, args)
        model = checkpoint.model()
        params, gflops = count_params(model), count_gflops(model, torch.zeros(input_shape(checkpoint.data, 1)))
        for row in ck_rows:
            row.params, row.gflops = params, gflops
        if profile is not None or others:
            costs[str(ckpt)] = (checkpoint.data["model"]["variant"], graph_cost(checkpoint, gflops, ck_out, ck_rows))
        rows += ck_rows
        inputs[str(ckpt)] = str(x_file)
        checkpoints.append(checkpoint_summary(checkpoint, params, gflops))
    time_rows(rows, inputs, args)
    for x in inputs.values():
        Path(x).unlink(missing_ok=True)
    e2e = end_to_end(rows, profile, args, out_dir) if profile else []
    pose_measured = measured_pose_ms(e2e)
    if profile is not None:
        # the pose latency measured by --video is this machine's: the one a verdict for this machine should use
        judge_rows(rows, profile, costs, pose_measured, measured_loops(e2e))
        if not any(r.latency for r in rows) and profile.name not in {p.name for p in others}:
            others = [profile] + others  # nothing of this profile ran here: estimate it too, labelled as such
    # which ops of each artifact the profile's accelerator delegates would run (benchmarks.delegates)
    delegates = delegate_placements(rows, profile) if profile is not None else []
    return {
        "tool": "benchmarks.run", "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "seconds": round(time.time() - started),
        "command": "python -m benchmarks.run " + " ".join(shlex.quote(a) for a in (args.argv or [])),
        "profile": profile.raw if profile else None, "profile_name": profile.name if profile else None,
        "preset": args.preset, "data": args.data, "clips": clips_n,
        "threads": args.threads, "batch": args.batch, "versions": tool_versions(), "machine": machine_info(),
        "accuracy_tolerance": ACCURACY_TOLERANCE,
        "pose": ({"measured_p90_ms": pose_measured, "profile_ms": profile.budgets["pose_ms"],
                  "profile_source": profile.budgets["pose_source"], "used": "measured" if pose_measured else "profile"}
                 if profile else None),
        "costs": {k: {"variant": v, **c.to_dict()} for k, (v, c) in costs.items()}, "checkpoints": checkpoints,
        "rows": [r.to_dict() for r in rows], "e2e": e2e, "estimates": estimates(costs, others, rows),
        "delegates": delegates,
    }


def _main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s", stream=sys.stderr)
    result = run(args)
    out_dir = args.out or Path("runs") / "bench" / (result["profile_name"] or "host")
    paths = write_report(result, out_dir)
    print(paths["markdown"].read_text())
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    statuses = {r["status"] for r in result["rows"]}
    return EXIT_OK if statuses - {"failed"} else EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    """Errors become one `python -m benchmarks.run: error: ...` line (core.cli): 2 bad input, 1 failed."""
    return run_cli(_main, PROG, argv)


if __name__ == "__main__":
    sys.exit(main())
