"""Per-stage latency and end-to-end FPS of the edge loop, in bounded memory (a long run stays flat)."""
from __future__ import annotations

import time
from collections import deque
from contextlib import contextmanager
from typing import Iterator

from core.timing import summarize

STAGES = ("capture", "pose", "track", "preprocess", "classify", "smoothing", "draw")


class LatencyMeter:
    """Per-stage timings in milliseconds, percentiles over the last `history` samples of each stage.

    A stage that did not run on a frame (classify between strides, pose on a replay) records nothing,
    so its percentiles describe the frames where it actually ran."""

    def __init__(self, stages: tuple[str, ...] = STAGES, history: int = 10_000):
        self.stages = list(stages)
        self.history = history
        self.samples: dict[str, deque[float]] = {s: deque(maxlen=history) for s in self.stages}
        self.counts: dict[str, int] = {s: 0 for s in self.stages}
        self.frame_ms: deque[float] = deque(maxlen=history)
        self.frames = 0
        self._last_frame_end: float | None = None
        self._started = time.perf_counter()

    def add(self, stage: str, ms: float) -> None:
        if stage not in self.samples:
            self.stages.append(stage)
            self.samples[stage] = deque(maxlen=self.history)
            self.counts[stage] = 0
        self.samples[stage].append(float(ms))
        self.counts[stage] += 1

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, (time.perf_counter() - start) * 1e3)

    def frame_done(self) -> None:
        """Mark the end of one frame; the time between two marks is the end-to-end frame time."""
        now = time.perf_counter()
        if self._last_frame_end is not None:
            self.frame_ms.append((now - self._last_frame_end) * 1e3)
        self._last_frame_end = now
        self.frames += 1

    def last(self, stage: str) -> float | None:
        s = self.samples.get(stage)
        return s[-1] if s else None

    def fps(self, recent: int = 30) -> float:
        """FPS over the most recent `recent` frames (the overlay's live number)."""
        if not self.frame_ms:
            return 0.0
        tail = list(self.frame_ms)[-recent:]
        mean = sum(tail) / len(tail)
        return 1e3 / mean if mean > 0 else 0.0

    def summary(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for name in self.stages + ["frame"]:
            values = self.frame_ms if name == "frame" else self.samples[name]
            if not values:
                continue
            stats = summarize(values, keep_samples=False)
            out[name] = {"count": self.frames if name == "frame" else self.counts[name],
                         "mean_ms": stats.mean_ms, "std_ms": stats.std_ms, "p50_ms": stats.p50_ms,
                         "p90_ms": stats.p90_ms, "p99_ms": stats.p99_ms}
        if self.frame_ms:
            out["frame"]["fps"] = 1e3 / out["frame"]["mean_ms"] if out["frame"]["mean_ms"] > 0 else 0.0
        return out

    def table(self) -> str:
        """The exit summary: one row per stage, p50/p90/p99 in ms, then the end-to-end FPS."""
        summ = self.summary()
        lines = [f"{'stage':<11}{'runs':>7}{'mean':>9}{'p50':>9}{'p90':>9}{'p99':>9}   (ms)"]
        for name, row in summ.items():
            lines.append(f"{name:<11}{row['count']:>7d}{row['mean_ms']:>9.2f}{row['p50_ms']:>9.2f}"
                         f"{row['p90_ms']:>9.2f}{row['p99_ms']:>9.2f}")
        if "frame" in summ:
            wall = time.perf_counter() - self._started
            lines.append(f"end-to-end: {summ['frame']['fps']:.1f} FPS over {self.frames} frames "
                         f"({self.frames / wall:.1f} FPS including start-up, {wall:.1f} s wall)")
        return "\n".join(lines)
