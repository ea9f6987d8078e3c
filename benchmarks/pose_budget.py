"""The pose estimator's time at the input's resolution, for a device's frame budget.

MediaPipe Pose runs its networks at a fixed size, but converting and resizing the camera picture is not free:
on the 2-core x86 machine of this project a 340x256 frame took about 20 ms and 1280x720 / 1920x1080 frames 84-105
ms. A verdict for a 1080p camera that assumes the 340x256 figure is wrong by 5x. `pose_ms_at` picks, in order:

1. the pose time a benchmarks.run result measured on videos of that resolution (its end-to-end runs record each
   video's size);
2. the profile's figure for that resolution (`budgets.pose_ms_at: {"1280x720": 84, ...}` in the device YAML);
3. the profile's single `budgets.pose_ms` (its source says what it was measured on), labelled as such.
"""
from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.cli import ArgumentParser, BadInput, require_files, run_cli
from core.markdown import table_head

PROG = "python -m benchmarks.pose_budget"


def parse_resolution(text: str) -> tuple[int, int]:
    """'1280x720' -> (1280, 720)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not m or int(m.group(1)) <= 0 or int(m.group(2)) <= 0:
        raise BadInput(f"--resolution {text!r}: expected WIDTHxHEIGHT, e.g. 1280x720")
    return int(m.group(1)), int(m.group(2))


def resolution_text(resolution: tuple[int, int]) -> str:
    return f"{resolution[0]}x{resolution[1]}"


def measured_resolutions(result: dict[str, Any]) -> list[tuple[int, int]]:
    """The frame sizes of the videos a benchmarks.run result ran end to end."""
    return sorted({tuple(int(v) for v in r["size"]) for r in result.get("e2e", []) if r.get("size")})


def pose_ms_at(result: dict[str, Any], resolution: tuple[int, int] | None) -> tuple[float, str]:
    """(pose ms, where it comes from) for the result's device at `resolution` (None: the result's own choice)."""
    budgets = (result.get("profile") or {}).get("budgets") or {}
    if resolution is not None:
        measured = [r["latency"]["pose"]["p90_ms"] for r in result.get("e2e", [])
                    if r.get("size") and tuple(r["size"]) == tuple(resolution) and "pose" in r.get("latency", {})]
        if measured:
            return float(np.median(measured)), f"measured at {resolution_text(resolution)} (p90)"
        by_size = budgets.get("pose_ms_at") or {}
        if resolution_text(resolution) in by_size:
            return float(by_size[resolution_text(resolution)]), f"profile at {resolution_text(resolution)}"
        return float(budgets.get("pose_ms", 0.0)), (f"profile ({budgets.get('pose_source', 'no source')}); no "
                                                    f"figure for {resolution_text(resolution)}")
    pose = result.get("pose") or {}
    if pose.get("measured_p90_ms") is not None:
        sizes = measured_resolutions(result)
        where = ", ".join(resolution_text(s) for s in sizes) if sizes else "the run's videos"
        return float(pose["measured_p90_ms"]), f"measured at {where} (p90)"
    return float(budgets.get("pose_ms", 0.0)), f"profile ({budgets.get('pose_source', 'no source')})"


# ---- measuring it: python -m benchmarks.pose_budget ------------------------------------------------------------
def measure(video: Path, pose_model: Path, resolutions: list[tuple[int, int]], frames: int = 60,
            warmup: int = 5) -> list[dict[str, Any]]:
    """MediaPipe Pose (VIDEO mode, one person, the edge loop's settings) per frame of `video` resized to each
    resolution, interleaved frame by frame (one landmarker per resolution) so load changes hit every size alike."""
    import cv2

    from edge.pose import MediaPipePose
    cap = cv2.VideoCapture(str(video))
    images = []
    while len(images) < frames + warmup:
        ok, image = cap.read()
        if not ok:
            break
        images.append(image)
    cap.release()
    if len(images) <= warmup:
        raise BadInput(f"--video {video}: fewer than {warmup + 1} frames")
    poses = [MediaPipePose(pose_model, mode="video", num_poses=1) for _ in resolutions]
    times: list[list[float]] = [[] for _ in resolutions]
    try:
        for t, image in enumerate(images):
            for k, (w, h) in enumerate(resolutions):
                frame = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
                start = time.perf_counter()
                poses[k].detect(frame, int(t * 1000 / 30))
                if t >= warmup:
                    times[k].append((time.perf_counter() - start) * 1e3)
    finally:
        for pose in poses:
            pose.close()
    return [{"resolution": resolution_text(r), "frames": len(ms), "p50_ms": float(np.percentile(ms, 50)),
             "p90_ms": float(np.percentile(ms, 90))} for r, ms in zip(resolutions, times)]


def main(argv: list[str] | None = None) -> int:
    def _run(argv: list[str] | None) -> int:
        p = ArgumentParser(prog=PROG,
                           description="MediaPipe Pose time per frame at several input resolutions (the figures "
                                       "for a device profile's budgets.pose_ms_at)")
        p.add_argument("--video", type=Path, required=True, help="a video with one person (resized per resolution)")
        p.add_argument("--pose-model", type=Path, required=True)
        p.add_argument("--resolutions", default="340x256,640x360,1280x720,1920x1080")
        p.add_argument("--frames", type=int, default=60)
        p.add_argument("--out", type=Path, default=Path("runs/pose_budget"))
        args = p.parse_args(argv)
        require_files(args.video, args.pose_model)
        rows = measure(args.video, args.pose_model, [parse_resolution(r) for r in args.resolutions.split(",")],
                       args.frames)
        lines = table_head(["resolution", "frames", "pose p50 ms", "pose p90 ms"])
        lines += [f"| {r['resolution']} | {r['frames']} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} |" for r in rows]
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "pose_budget.json").write_text(json.dumps({"video": str(args.video), "rows": rows}, indent=1))
        print("\n".join(lines))
        print(f"wrote {args.out / 'pose_budget.json'}")
        return 0

    return run_cli(_run, PROG, argv)


if __name__ == "__main__":
    sys.exit(main())
