"""Measurements that need a fresh interpreter (run by benchmarks.run as `python -m benchmarks.measure JSON`):

- cold:   one artifact: load time, first inference, peak RSS (ru_maxrss) over the process's RSS before loading;
- timing: several artifacts loaded side by side, timed round-robin (core.timing.interleaved) at batch 1 with the
          preset's run length, then throughput at batch N.

A fresh process keeps the converters' heavy imports (JAX, coremltools, litert-torch and their thread pools) out of
the numbers, and gives each artifact its own memory high-water mark.
"""
from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

import numpy as np

from core.runtime import load_runtime, runtime_kind
from core.timing import interleaved, time_once


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def rss_mb() -> float:
    return _status_mb("VmRSS") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss_mb() -> float:
    """High-water RSS of this process image. VmHWM, not ru_maxrss: after fork+exec Linux's ru_maxrss still
    carries the parent's size (measured: 496 MB for a 70 MB ONNX Runtime process started from the benchmark)."""
    return _status_mb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _load(path: str, threads: int | None):
    # ONNX Runtime's idle threads busy-wait by default, which would slow every other runtime timed beside it
    opts = {"spinning": False} if runtime_kind(path) == "onnxruntime" else {}
    return load_runtime(path, threads=threads, **opts)


def cold(args: dict) -> dict:
    x = np.load(args["x"])[:1]
    before = rss_mb()
    rt, load_ms = time_once(lambda: _load(args["path"], args["threads"]))
    _, first_ms = time_once(lambda: rt.predict(x))
    for _ in range(5):
        rt.predict(x)
    return {"load_ms": load_ms, "first_ms": first_ms, "rss_before_mb": before, "peak_rss_mb": peak_rss_mb(),
            "runtime": rt.name}


def timing(args: dict) -> dict:
    x = np.load(args["x"])
    x1 = x[:1]
    runtimes = {k: _load(p, args["threads"]) for k, p in args["paths"].items()}
    single = interleaved({k: (lambda rt=rt: rt.predict(x1)) for k, rt in runtimes.items()}, warmup=args["warmup"],
                         runs=args["runs"], min_seconds=args["min_seconds"])
    out = {k: {"latency": s.to_dict(samples=True)} for k, s in single.items()}
    batch = int(args["batch"])
    if batch > 1:
        xb = np.ascontiguousarray(np.resize(x, (batch,) + x.shape[1:]))
        many = interleaved({k: (lambda rt=rt: rt.predict(xb)) for k, rt in runtimes.items()}, warmup=1,
                           runs=max(5, args["runs"] // 10))
        for k, s in many.items():
            out[k]["throughput_batch"] = batch
            out[k]["throughput_per_s"] = batch / (s.p50_ms / 1e3)
            out[k]["batch_latency"] = s.to_dict()
    return out


def main() -> int:
    args = json.loads(sys.argv[1])
    result = cold(args) if args["mode"] == "cold" else timing(args)
    Path(args["result"]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
