"""The budget arithmetic: does a classifier meet a device's frame budget once the pose estimator has run?

    classifier budget = frame (33.3 ms at 30 FPS) - pose estimator latency on the device

- pose + classifier <= frame: `meets` (classify every frame);
- pose < frame < pose + classifier: `meets at stride k`: classify every k-th frame (edge.run --stride k),
  k = ceil(classifier / (frame - pose)), so the classifier's cost per frame fits what pose leaves;
- pose >= frame: `pose-bound`: the pose estimator alone misses the frame budget, whatever the classifier; process
  (and classify) every k-th camera frame, k = ceil((pose + classifier) / frame), i.e. 30/k FPS.
Model size and RAM over their budgets fail the verdict as well.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

PASSING = ("meets", "meets at stride")


def ordinal(k: int) -> str:
    return f"{k}{'th' if 10 <= k % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(k % 10, 'th')}"


@dataclass
class Verdict:
    status: str  # meets | meets at stride | pose-bound | no timing
    ok: bool
    frame_ms: float
    pose_ms: float
    classifier_budget_ms: float
    classifier_ms: float | None
    stride: int | None
    fps: float | None  # frames per second the loop sustains under this plan
    reasons: list[str] = field(default_factory=list)
    kind: str = "measured"  # measured | estimate

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def short(self) -> str:
        label = {"meets": "meets", "meets at stride": f"meets, classify every {ordinal(self.stride)} frame",
                 "pose-bound": f"pose-bound: every {ordinal(self.stride)} frame", "no timing": "no timing"}[self.status]
        extra = [r for r in self.reasons if r.startswith(("size", "RAM", "delegate"))]
        text = ("✔ " if self.ok else "✘ ") + label + ("; " + "; ".join(extra) if extra else "")
        return text + (" (estimate)" if self.kind == "estimate" else "")


def judge(classifier_ms: float | None, frame_ms: float, pose_ms: float, size_mb: float | None = None,
          size_budget_mb: float | None = None, ram_mb: float | None = None, ram_budget_mb: float | None = None,
          classifier_budget_ms: float | None = None, kind: str = "measured") -> Verdict:
    """The verdict of the module docstring. classifier_ms is the headline latency (p90)."""
    budget = frame_ms - pose_ms if classifier_budget_ms is None else classifier_budget_ms
    reasons: list[str] = []
    if classifier_ms is None:
        status, stride, fps = "no timing", None, None
    elif pose_ms >= frame_ms:
        stride = max(1, math.ceil((pose_ms + classifier_ms) / frame_ms))
        status, fps = "pose-bound", 1000.0 / (frame_ms * stride)
        reasons.append(f"pose alone takes {pose_ms:.1f} ms >= the {frame_ms:.1f} ms frame: no classifier fits; "
                       f"process and classify every {ordinal(stride)} frame ({fps:.1f} FPS)")
    elif classifier_ms <= budget:
        status, stride, fps = "meets", 1, 1000.0 / frame_ms
        reasons.append(f"classifier {classifier_ms:.2f} ms <= {budget:.1f} ms left after pose ({pose_ms:.1f} ms)")
    else:
        stride = max(2, math.ceil(classifier_ms / budget)) if budget > 0 else None
        if stride is None:
            status, fps = "pose-bound", None
            reasons.append(f"no time left after pose ({pose_ms:.1f} ms) in the {frame_ms:.1f} ms frame")
        else:
            status, fps = "meets at stride", 1000.0 / frame_ms
            reasons.append(f"classifier {classifier_ms:.2f} ms > {budget:.1f} ms left after pose: classify every "
                           f"{ordinal(stride)} frame (edge.run --stride {stride}), "
                           f"{classifier_ms / stride:.2f} ms per frame")
    ok = status in PASSING
    if size_mb is not None and size_budget_mb is not None and size_mb > size_budget_mb:
        ok = False
        reasons.append(f"size {size_mb:.2f} MB > {size_budget_mb:g} MB budget")
    if ram_mb is not None and ram_budget_mb is not None and ram_mb > ram_budget_mb:
        ok = False
        reasons.append(f"RAM {ram_mb:.0f} MB > {ram_budget_mb:g} MB budget")
    return Verdict(status, ok, frame_ms, pose_ms, budget, classifier_ms, stride, fps, reasons, kind)


def judge_for_profile(profile, classifier_ms: float | None, size_mb: float | None = None, ram_mb: float | None = None,
                      pose_ms: float | None = None, kind: str = "measured") -> Verdict:
    b = profile.budgets
    pose = float(b["pose_ms"]) if pose_ms is None else float(pose_ms)
    explicit = b.get("classifier_ms")
    return judge(classifier_ms, float(b["frame_ms"]), pose, size_mb, float(b["model_size_mb"]), ram_mb,
                 float(b["ram_mb"]), None if explicit is None else float(explicit), kind)
