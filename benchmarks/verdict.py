"""The budget arithmetic: does the edge loop (pose estimator + classifier) keep up with the camera, frame by frame?

The loop is pipelined (edge.pipeline): while the classifier works on the window up to frame t, pose already runs
on frame t+1. Each frame then costs what its busiest stage costs, provided the two stages can run at the same time:
on separate units (pose on the CPU, the classifier on a GPU / NPU), or on a CPU with at least two cores. On one
unit that cannot run both at once (a single core, one accelerator for both) they add up.

    per-frame time = max(pose, classifier)   (parallel units)      pose + classifier   (one shared unit)

Statuses (only the first two pass):
- `meets`: the per-frame time fits the frame (33.3 ms at 30 FPS), so every frame is posed and classified in time.
  From a loop measurement (edge.run / benchmarks.edge on a real video, pipelined): its per-frame busy-time p90
  fits the frame and at most 1 % of the frames were dropped. Otherwise from the stage times (p90 of each).
- `meets at stride k`: parallel units, pose fits every frame, the classifier alone is slower than a frame: pose
  keeps up with every frame and the classifier runs on every k-th one, k = ceil(classifier / frame), on its own
  unit, never holding a frame up.
- `fits only on average` (not passing): one shared unit where pose + classifier exceeds the frame but pose +
  classifier / k does not: classifying every k-th frame fits the budget on average, and that k-th frame is late
  every time (a stall the user sees); or a measured loop whose mean fits and p90 does not.
- `misses` (not passing): a measured loop whose per-frame time does not fit even on average, or drops frames.
- `pose-bound` (not passing): pose alone takes the frame or more: whatever the classifier, process every k-th
  camera frame, k = ceil(per-frame / frame).
Model size and RAM over their budgets fail the verdict as well. Estimates for other devices use the same rule
with their profile's units (`units.pose`, `units.classifier`, `cpu.cores`) and are labelled as estimates.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

PASSING = ("meets", "meets at stride")
MAX_DROPPED = 0.01  # a measured loop that drops more frames than this does not keep up


def ordinal(k: int) -> str:
    return f"{k}{'th' if 10 <= k % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(k % 10, 'th')}"


@dataclass
class Verdict:
    status: str  # meets | meets at stride | fits only on average | misses | pose-bound | no timing
    ok: bool
    frame_ms: float
    pose_ms: float
    classifier_budget_ms: float  # what the classifier may take per frame: frame (parallel) or frame - pose
    classifier_ms: float | None
    stride: int | None
    fps: float | None  # frames per second the loop sustains under this plan
    reasons: list[str] = field(default_factory=list)
    kind: str = "measured"  # measured | estimate
    per_frame_ms: float | None = None  # max(pose, classifier) or their sum, or the loop's measured busy p90
    parallel: bool = True  # pose and classifier run at the same time (separate units or >= 2 CPU cores)
    basis: str = "stages"  # loop (a pipelined loop measured frame by frame) | stages (stage p90s)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def short(self) -> str:
        label = {"meets": "meets", "meets at stride": f"meets, classifies every {ordinal(self.stride or 1)} frame",
                 "fits only on average": f"fits only on average (every {ordinal(self.stride or 1)} frame late)"
                 if self.stride else "fits only on average",
                 "misses": "misses the frame", "pose-bound": f"pose-bound: every {ordinal(self.stride or 1)} frame",
                 "no timing": "no timing"}[self.status]
        extra = [r for r in self.reasons if r.startswith(("size", "RAM", "delegate"))]
        text = ("✔ " if self.ok else "✘ ") + label + ("; " + "; ".join(extra) if extra else "")
        return text + (" (estimate)" if self.kind == "estimate" else "")


def judge(classifier_ms: float | None, frame_ms: float, pose_ms: float, size_mb: float | None = None,
          size_budget_mb: float | None = None, ram_mb: float | None = None, ram_budget_mb: float | None = None,
          classifier_budget_ms: float | None = None, kind: str = "measured", parallel: bool = True,
          loop: dict[str, Any] | None = None) -> Verdict:
    """The verdict of the module docstring. classifier_ms and pose_ms are p90s; `loop` is a pipelined loop's
    measurement (edge.latency.LatencyMeter.stats(): busy_ms, dropped_share) that decides when given."""
    budget = (frame_ms if parallel else frame_ms - pose_ms) if classifier_budget_ms is None else classifier_budget_ms
    reasons: list[str] = []
    units = "in parallel" if parallel else "on one shared unit"
    stride: int | None = None
    fps: float | None = None
    per_frame: float | None = None
    basis = "loop" if loop and loop.get("busy_ms") else "stages"
    if classifier_ms is None and basis == "stages":
        status = "no timing"
    elif basis == "loop":
        busy = loop["busy_ms"]
        per_frame = float(busy["p90_ms"])
        dropped = float(loop.get("dropped_share") or 0.0)
        share = loop.get("classified_share")
        share_text = f", classified on {share:.0%} of the frames with a window due" if share is not None else ""
        if per_frame <= frame_ms and dropped <= MAX_DROPPED:
            status, stride, fps = "meets", 1, 1000.0 / frame_ms
            reasons.append(f"the pipelined loop, measured frame by frame: busy time p90 {per_frame:.1f} ms <= "
                           f"{frame_ms:.1f} ms frame, {dropped:.1%} of frames dropped{share_text}")
        elif per_frame <= frame_ms:  # fast enough frame by frame, yet the loop dropped frames
            status = "misses"
            reasons.append(f"the loop's busy time p90 {per_frame:.1f} ms fits the {frame_ms:.1f} ms frame but "
                           f"{dropped:.1%} of frames were dropped (more than {MAX_DROPPED:.0%}){share_text}")
        elif float(busy["mean_ms"]) <= frame_ms:
            status = "fits only on average"
            reasons.append(f"the loop's mean busy time {busy['mean_ms']:.1f} ms fits the {frame_ms:.1f} ms frame but "
                           f"its p90 {per_frame:.1f} ms does not ({dropped:.1%} of frames dropped){share_text}")
        else:
            status = "misses"
            reasons.append(f"the loop's busy time p90 {per_frame:.1f} ms and mean {busy['mean_ms']:.1f} ms exceed "
                           f"the {frame_ms:.1f} ms frame ({dropped:.1%} of frames dropped)")
    else:
        per_frame = max(pose_ms, classifier_ms) if parallel else pose_ms + classifier_ms
        if pose_ms >= frame_ms:
            stride = max(1, math.ceil(per_frame / frame_ms))
            status, fps = "pose-bound", 1000.0 / (frame_ms * stride)
            reasons.append(f"pose alone takes {pose_ms:.1f} ms >= the {frame_ms:.1f} ms frame: no classifier fits; "
                           f"process and classify every {ordinal(stride)} frame ({fps:.1f} FPS)")
        elif per_frame <= frame_ms:
            status, stride, fps = "meets", 1, 1000.0 / frame_ms
            how = f"max(pose {pose_ms:.1f}, classifier {classifier_ms:.2f})" if parallel else \
                f"pose {pose_ms:.1f} + classifier {classifier_ms:.2f}"
            reasons.append(f"{how} = {per_frame:.1f} ms <= {frame_ms:.1f} ms frame (pose and classifier {units}): "
                           "every frame classified")
        elif parallel:
            stride = max(2, math.ceil(classifier_ms / frame_ms))
            status, fps = "meets at stride", 1000.0 / frame_ms
            reasons.append(f"classifier {classifier_ms:.2f} ms > {frame_ms:.1f} ms frame, on its own unit: pose keeps "
                           f"up with every frame, the classifier runs on every {ordinal(stride)} frame")
        else:
            stride = max(2, math.ceil(classifier_ms / budget)) if budget > 0 else None
            status = "fits only on average"
            if stride is not None:
                fps = 1000.0 / frame_ms
                reasons.append(f"pose {pose_ms:.1f} + classifier {classifier_ms:.2f} ms > {frame_ms:.1f} ms frame on "
                               f"one shared unit: classifying every {ordinal(stride)} frame fits on average, and that "
                               f"frame takes {pose_ms + classifier_ms:.1f} ms every time")
    ok = status in PASSING
    if size_mb is not None and size_budget_mb is not None and size_mb > size_budget_mb:
        ok = False
        reasons.append(f"size {size_mb:.2f} MB > {size_budget_mb:g} MB budget")
    if ram_mb is not None and ram_budget_mb is not None and ram_mb > ram_budget_mb:
        ok = False
        reasons.append(f"RAM {ram_mb:.0f} MB > {ram_budget_mb:g} MB budget")
    return Verdict(status, ok, frame_ms, pose_ms, budget, classifier_ms, stride, fps, reasons, kind, per_frame,
                   parallel, basis)


def judge_for_profile(profile, classifier_ms: float | None, size_mb: float | None = None, ram_mb: float | None = None,
                      pose_ms: float | None = None, kind: str = "measured",
                      loop: dict[str, Any] | None = None) -> Verdict:
    b = profile.budgets
    pose = float(b["pose_ms"]) if pose_ms is None else float(pose_ms)
    explicit = b.get("classifier_ms")
    return judge(classifier_ms, float(b["frame_ms"]), pose, size_mb, float(b["model_size_mb"]), ram_mb,
                 float(b["ram_mb"]), None if explicit is None else float(explicit), kind, profile.parallel_units,
                 loop)
