"""The one timing implementation of the toolkit: warm-up, interleaved rounds, percentiles.

Every latency table uses it (`python -m core.models`, the converters' all-formats table, the edge loop's
per-stage meter and `benchmarks`), so a p90 means the same thing everywhere.

    stats = time_callable(lambda: model(x), warmup=3, runs=20)       # one function
    stats = interleaved({"onnx": f1, "tflite": f2}, warmup=3, runs=30)  # several, round-robin
    stats["onnx"].p90_ms, stats["onnx"].summary()

Interleaving: on a shared machine the load drifts (2x over a quarter of an hour was measured here), so
candidates are timed one call each per round; drift then hits every candidate alike and their ratios hold.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

PERCENTILES = (50, 90, 99)


@dataclass(frozen=True)
class TimingPreset:
    """Run length of a measurement: warm-up calls, timed calls and a minimum timed duration per candidate."""
    name: str
    warmup: int
    runs: int
    min_seconds: float = 0.0


# run-length presets in the spirit of MLPerf Mobile's quick/normal modes: rapid for smoke tests and CI,
# quick for a development loop, normal for numbers that go into a report
PRESETS = {
    "rapid": TimingPreset("rapid", warmup=2, runs=20),
    "quick": TimingPreset("quick", warmup=5, runs=100, min_seconds=1.0),
    "normal": TimingPreset("normal", warmup=20, runs=300, min_seconds=5.0),
}


@dataclass(frozen=True)
class TimingStats:
    """Summary of a list of durations in milliseconds."""
    count: int
    mean_ms: float
    std_ms: float
    min_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    samples_ms: tuple[float, ...] = field(default=(), repr=False, compare=False)

    def to_dict(self, samples: bool = False) -> dict:
        d = {k: getattr(self, k) for k in ("count", "mean_ms", "std_ms", "min_ms", "p50_ms", "p90_ms", "p99_ms",
                                           "max_ms")}
        if samples:
            d["samples_ms"] = list(self.samples_ms)
        return d

    def summary(self) -> str:
        return (f"p50 {self.p50_ms:.2f} / p90 {self.p90_ms:.2f} / p99 {self.p99_ms:.2f} ms, "
                f"mean {self.mean_ms:.2f} ± {self.std_ms:.2f} ms (n={self.count})")


def summarize(samples_ms: Iterable[float], keep_samples: bool = True) -> TimingStats:
    """Percentiles (numpy's linear interpolation), mean and sample standard deviation of durations in ms."""
    arr = np.fromiter((float(v) for v in samples_ms), dtype=np.float64)
    if arr.size == 0:
        raise ValueError("summarize: no samples")
    p50, p90, p99 = np.percentile(arr, PERCENTILES)
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return TimingStats(int(arr.size), float(arr.mean()), std, float(arr.min()), float(p50), float(p90), float(p99),
                       float(arr.max()), tuple(arr.tolist()) if keep_samples else ())


def interleaved(fns: dict[str, Callable[[], object]], warmup: int = 3, runs: int = 30, min_seconds: float = 0.0,
                clock: Callable[[], float] = time.perf_counter,
                progress: Callable[[int], None] | None = None) -> dict[str, TimingStats]:
    """Time each zero-argument callable round-robin: `warmup` untimed rounds, then at least `runs` timed rounds
    (more until the timed calls add up to `min_seconds`, so a fast set still samples the machine's drift).
    Returns TimingStats per key."""
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    total = 0.0
    rounds = 0
    # the cap keeps a tiny model under min_seconds from looping for ever
    while rounds < runs or (total < min_seconds and rounds < 100 * runs):
        for key, fn in fns.items():
            start = clock()
            fn()
            ms = (clock() - start) * 1e3
            times[key].append(ms)
            total += ms / 1e3
        rounds += 1
        if progress is not None:
            progress(rounds)
    return {k: summarize(v) for k, v in times.items()}


def time_callable(fn: Callable[[], object], warmup: int = 3, runs: int = 20, min_seconds: float = 0.0,
                  clock: Callable[[], float] = time.perf_counter) -> TimingStats:
    """TimingStats of one zero-argument callable (interleaved() with a single candidate)."""
    return interleaved({"fn": fn}, warmup, runs, min_seconds, clock)["fn"]


def time_once(fn: Callable[[], object], clock: Callable[[], float] = time.perf_counter) -> tuple[object, float]:
    """(result, milliseconds) of one call: load time, first inference."""
    start = clock()
    result = fn()
    return result, (clock() - start) * 1e3
