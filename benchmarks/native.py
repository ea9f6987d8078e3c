"""The device vendors' own benchmark tools, where they are installed: TensorRT's `trtexec`, LiteRT's
`benchmark_model` and ONNX Runtime's `onnxruntime_perf_test`. benchmarks.run runs the one that matches an
artifact and adds its numbers to the row under `native` (labelled with the tool), beside its own measurement.

Each parser reads the tool's summary lines; a tool that is absent, fails or prints nothing we recognise gives
None, never an error.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

FLOAT = r"([0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)"


def parse_trtexec(text: str) -> dict[str, float] | None:
    """trtexec's `Latency: min = a ms, max = b ms, mean = c ms, median = d ms, percentile(90%) = e ms, ...` line
    (the end-to-end host latency) and `Throughput: x qps`."""
    m = re.search(r"\] Latency: min = " + FLOAT + r" ms, max = " + FLOAT + r" ms, mean = " + FLOAT
                  + r" ms, median = " + FLOAT + r" ms(.*)", text)
    if not m:
        return None
    out = {"min_ms": float(m.group(1)), "max_ms": float(m.group(2)), "mean_ms": float(m.group(3)),
           "p50_ms": float(m.group(4))}
    for pct, value in re.findall(r"percentile\(([0-9.]+)%\) = " + FLOAT + " ms", m.group(5)):
        out[f"p{pct[:-2] if pct.endswith('.0') else pct}_ms"] = float(value)
    t = re.search(r"Throughput: " + FLOAT + " qps", text)
    if t:
        out["throughput_per_s"] = float(t.group(1))
    return out


def parse_benchmark_model(text: str) -> dict[str, float] | None:
    """LiteRT benchmark_model: `Inference timings in us: Init: a, First inference: b, Warmup (avg): c,
    Inference (avg): d` and, when printed, the `... p50=x p90=y` percentile line (microseconds)."""
    m = re.search(r"Inference timings in us: Init: " + FLOAT + r", First inference: " + FLOAT
                  + r", Warmup \(avg\): " + FLOAT + r", Inference \(avg\): " + FLOAT, text)
    if not m:
        return None
    out = {"init_ms": float(m.group(1)) / 1e3, "first_ms": float(m.group(2)) / 1e3,
           "mean_ms": float(m.group(4)) / 1e3}
    names = {"median": "p50", "p5": "p5", "p50": "p50", "p90": "p90", "p95": "p95", "p99": "p99", "std": "std"}
    for key, value in re.findall(r"\b(median|p5|p50|p90|p95|p99|std)=" + FLOAT, text):
        out[f"{names[key]}_ms"] = float(value) / 1e3
    return out


def parse_onnxruntime_perf_test(text: str) -> dict[str, float] | None:
    """onnxruntime_perf_test: `Average inference time cost: a ms` and `P50 Latency: b s` ... lines."""
    m = re.search(r"Average inference time cost(?: total)?: " + FLOAT + " ms", text)
    if not m:
        return None
    out = {"mean_ms": float(m.group(1))}
    for pct, value in re.findall(r"P(\d+) Latency: " + FLOAT + " s", text):
        out[f"p{pct}_ms"] = float(value) * 1e3
    return out


TOOLS = {
    ".engine": ("trtexec", lambda p, threads, runs: ["trtexec", f"--loadEngine={p}", f"--iterations={runs}",
                                                     "--warmUp=500", "--percentile=90,99"], parse_trtexec),
    ".tflite": ("benchmark_model", lambda p, threads, runs: ["benchmark_model", f"--graph={p}",
                                                             f"--num_threads={threads}", f"--num_runs={runs}"],
                parse_benchmark_model),
    ".onnx": ("onnxruntime_perf_test", lambda p, threads, runs: ["onnxruntime_perf_test", "-e", "cpu", "-r",
                                                                 str(runs), "-x", str(threads), str(p)],
              parse_onnxruntime_perf_test),
}


def run_native(path: str | Path, threads: int = 1, runs: int = 100, timeout: float = 300) -> dict[str, Any] | None:
    """The vendor tool's numbers for an artifact, or None where the tool is not installed or says nothing usable."""
    entry = TOOLS.get(Path(path).suffix)
    if entry is None or shutil.which(entry[0]) is None:
        return None
    tool, command, parse = entry
    try:
        done = subprocess.run(command(path, threads, runs), capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    parsed = parse(done.stdout + "\n" + done.stderr)
    return None if parsed is None else {"tool": tool, **parsed}
