"""The edge loop's meter, in bounded memory (a long run stays flat): per-stage latency, and per frame the latency
from capture to pose done, to classified and to its events, the frame's busy time, dropped frames, FPS.

- A **stage** (capture, pose, track, preprocess, classify, smoothing, draw) records the time it took on a frame;
  a stage that did not run (classify between windows, pose on a replay) records nothing.
- **Per-frame latency** is measured from the moment the frame was captured (read from the camera or decoded) to
  `pose_done`, to `classified` (frames whose classification ran) and to `event` (its result and events were
  handed out); p50/p90/p99 over frames, not averages of stages.
- A frame's **busy time** is how long the busiest thread worked on it: the sum of every stage in the synchronous
  loop (one thread), the longest thread in the pipelined one (capture / pose+track+preprocess /
  classify+smoothing / draw run on their own threads). The loop keeps up with the camera while busy time fits
  the frame; `benchmarks.verdict` judges its p90.
- **Dropped** frames were captured but never got a result (the newest-frame policy replaced them)."""
from __future__ import annotations

import time
from collections import deque
from contextlib import contextmanager
from typing import Any, Iterator

from core.timing import summarize

STAGES = ("capture", "pose", "track", "preprocess", "classify", "smoothing", "draw")
MILESTONES = ("pose_done", "classified", "event")  # per-frame latency, measured from capture
# the thread each stage runs on in the pipelined loop (in the synchronous loop every stage is on one thread)
PIPELINE_THREADS = {"capture": "capture", "pose": "pose", "track": "pose", "preprocess": "pose",
                    "classify": "classify", "smoothing": "classify", "explain": "classify", "draw": "main"}


def busy_ms(stages: dict[str, float], pipelined: bool) -> float:
    """A frame's busy time from its stage times: the sum (synchronous) or the busiest thread (pipelined)."""
    if not pipelined:
        return float(sum(stages.values()))
    per_thread: dict[str, float] = {}
    for stage, ms in stages.items():
        thread = PIPELINE_THREADS.get(stage, stage)
        per_thread[thread] = per_thread.get(thread, 0.0) + ms
    return max(per_thread.values(), default=0.0)


class LatencyMeter:
    """Stage times, per-frame latency and busy time; percentiles over the last `history` samples of each."""

    def __init__(self, stages: tuple[str, ...] = STAGES, history: int = 10_000):
        self.stages = list(stages)
        self.history = history
        self.samples: dict[str, deque[float]] = {s: deque(maxlen=history) for s in self.stages}
        self.counts: dict[str, int] = {s: 0 for s in self.stages}
        self.frame_ms: deque[float] = deque(maxlen=history)  # interval between two frames' ends (FPS)
        self.busy: deque[float] = deque(maxlen=history)
        self.milestones: dict[str, deque[float]] = {m: deque(maxlen=history) for m in MILESTONES}
        self.frames = 0
        self.dropped = 0
        self.classified = 0  # frames whose classification ran
        self.classifications_dropped = 0  # windows skipped because a newer one was waiting
        self.due = 0  # frames with at least one window due (classified, or skipped)
        self._first_end: float | None = None
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

    def frame(self, captured_at: float, times: dict[str, float], stages: dict[str, float], pipelined: bool,
              event_at: float | None = None, classifications_dropped: int = 0) -> None:
        """One frame's result: `times` holds time.perf_counter() of its milestones (ActionResult.times_s),
        `stages` its stage times in ms (capture included); event_at: when its events were handed out (now)."""
        event_at = time.perf_counter() if event_at is None else event_at
        for stage, ms in stages.items():
            self.add(stage, ms)
        for name, at in (("pose_done", times.get("pose_done")), ("classified", times.get("classified")),
                         ("event", event_at)):
            if at is not None:
                self.milestones[name].append((at - captured_at) * 1e3)
        self.classified += "classified" in times
        self.due += "classified" in times or classifications_dropped > 0
        self.classifications_dropped += classifications_dropped
        self.busy.append(busy_ms(stages, pipelined))
        self.frame_done(event_at)

    def frame_done(self, now: float | None = None) -> None:
        """Mark the end of one frame; the time between two marks is the end-to-end frame interval."""
        now = time.perf_counter() if now is None else now
        if self._last_frame_end is not None:
            self.frame_ms.append((now - self._last_frame_end) * 1e3)
        else:
            self._first_end = now
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

    def _stats(self, values, count: int) -> dict[str, float]:
        stats = summarize(values, keep_samples=False)
        return {"count": count, "mean_ms": stats.mean_ms, "std_ms": stats.std_ms, "p50_ms": stats.p50_ms,
                "p90_ms": stats.p90_ms, "p99_ms": stats.p99_ms}

    def summary(self) -> dict[str, dict[str, float]]:
        """Per stage, then `frame` (the interval between frames, with fps) and `busy`: count, mean, p50/p90/p99."""
        out: dict[str, dict[str, float]] = {}
        for name in self.stages:
            if self.samples[name]:
                out[name] = self._stats(self.samples[name], self.counts[name])
        if self.frame_ms:
            out["frame"] = self._stats(self.frame_ms, self.frames)
            out["frame"]["fps"] = 1e3 / out["frame"]["mean_ms"] if out["frame"]["mean_ms"] > 0 else 0.0
        if self.busy:
            out["busy"] = self._stats(self.busy, self.frames)
        return out

    def stats(self) -> dict[str, Any]:
        """The run's summary for scripts and checks (edge.run --stats): frames, dropped, classified share, FPS,
        per-stage and per-frame p50/p90/p99."""
        stages = self.summary()
        captured = self.frames + self.dropped
        wall = (self._last_frame_end - self._first_end) if self.frames > 1 else 0.0
        return {
            "frames": self.frames, "captured": captured, "dropped": self.dropped,
            "dropped_share": self.dropped / captured if captured else 0.0,
            "classified_frames": self.classified, "classifications_dropped": self.classifications_dropped,
            "classified_share": self.classified / self.due if self.due else None,  # of frames with a window due
            "fps": (self.frames - 1) / wall if wall > 0 else None,
            "stages_ms": {k: v for k, v in stages.items() if k not in ("frame", "busy")},
            "frame_interval_ms": stages.get("frame"), "busy_ms": stages.get("busy"),
            "latency_ms": {m: self._stats(v, len(v)) for m, v in self.milestones.items() if v},
        }

    def table(self) -> str:
        """The exit summary: one row per stage and per-frame measure, p50/p90/p99 in ms, then FPS and drops."""
        summ = self.summary()
        lines = [f"{'stage':<16}{'runs':>7}{'mean':>9}{'p50':>9}{'p90':>9}{'p99':>9}   (ms)"]
        rows = [(k, v) for k, v in summ.items() if k not in ("frame", "busy")]
        rows += [("busy/frame", summ["busy"])] if "busy" in summ else []
        rows += [(f"capture->{m}", self._stats(v, len(v))) for m, v in self.milestones.items() if v]
        for name, row in rows:
            lines.append(f"{name:<16}{row['count']:>7d}{row['mean_ms']:>9.2f}{row['p50_ms']:>9.2f}"
                         f"{row['p90_ms']:>9.2f}{row['p99_ms']:>9.2f}")
        if "frame" in summ:
            wall = time.perf_counter() - self._started
            s = self.stats()
            share = f", classified on {s['classified_share']:.0%} of the frames with a window due" \
                if s["classified_share"] is not None else ""
            lines.append(f"end-to-end: {s['fps'] or 0:.1f} FPS over {self.frames} frames ({self.frames / wall:.1f} "
                         f"FPS including start-up, {wall:.1f} s wall), {self.dropped} dropped "
                         f"({s['dropped_share']:.1%}){share}")
        return "\n".join(lines)
