"""Why is the second person of a two-person scene never detected? MediaPipe Pose settings tried on a real 1080p
NTU RGB+D frame sequence made two-person: the shared NTU clip (one person, 1920x1080) with a mirrored copy of that
person pasted beside her (cut out with MediaPipe's segmentation mask; no two-person NTU clip is available here).

    python -m benchmarks.two_person --video ../shared/data/ntu/S001C001P001R001A001_rgb.avi \\
        --pose-model pose_landmarker_full.task --out runs/two_person

Each row runs the same frames with one setting and counts the frames where MediaPipe returned both people."""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.multi_person import _paste, load_source
from benchmarks.report import write_results
from core.cli import ArgumentParser, require_files, run_cli
from core.markdown import table_head

PROG = "python -m benchmarks.two_person"
OFFSET = 0.22  # the copy stands this fraction of the frame width to the left of the original


def two_person_frames(video: Path, pose_model: Path, frames: int, cache: Path) -> np.ndarray:
    """(T, H, W, 3): the clip with a mirrored copy of its person pasted OFFSET of the width to her left."""
    src = load_source(video, frames, pose_model, cache, scale=1.0)
    w = src.frames.shape[2]
    out = src.frames.copy()
    for t in range(frames):
        flipped, mask = src.frames[t, :, ::-1], src.masks[t, :, ::-1]
        hips = src.landmarks[t, [23, 24], 0].mean() if np.isfinite(src.landmarks[t]).all() else src.centre_x
        dx = int(round((hips - OFFSET * w) - (w - hips)))  # the flipped person's centre lands OFFSET to the left
        _paste(out[t], flipped, mask, dx)
    return out


def count_people(frames: np.ndarray, pose_model: Path, mode: str, num_poses: int, confidence: float,
                 size: tuple[int, int] | None = None, tiles: bool = False) -> dict[str, Any]:
    """Detections per frame with one MediaPipe setting (VIDEO or IMAGE mode, num_poses, thresholds, a resize,
    or the left and right halves run separately)."""
    import cv2

    from edge.errors import native_stderr_silenced
    from edge.pose import _import_mediapipe
    mp, BaseOptions, vision = _import_mediapipe(True)
    running = vision.RunningMode.VIDEO if mode == "video" else vision.RunningMode.IMAGE

    def landmarker():
        options = vision.PoseLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(pose_model)), running_mode=running, num_poses=num_poses,
            min_pose_detection_confidence=confidence, min_pose_presence_confidence=confidence,
            min_tracking_confidence=confidence)
        with native_stderr_silenced():
            return vision.PoseLandmarker.create_from_options(options)

    parts = 2 if tiles else 1
    marks = [landmarker() for _ in range(parts)]
    counts, times = [], []
    try:
        for t, frame in enumerate(frames):
            if size is not None:
                frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
            w = frame.shape[1]
            pieces = [frame[:, :w // 2 + w // 8], frame[:, w // 2 - w // 8:]] if tiles else [frame]
            start = time.perf_counter()
            n = 0
            for mark, piece in zip(marks, pieces):
                image = mp.Image(image_format=mp.ImageFormat.SRGB,
                                 data=np.ascontiguousarray(cv2.cvtColor(piece, cv2.COLOR_BGR2RGB)))
                result = mark.detect_for_video(image, int(t * 1000 / 30)) if mode == "video" else mark.detect(image)
                n += len(result.pose_landmarks)
            times.append((time.perf_counter() - start) * 1e3)
            counts.append(n)
    finally:
        for mark in marks:
            mark.close()
    counts = np.array(counts)
    return {"frames": int(len(counts)), "both": int((counts >= 2).sum()), "mean_people": float(counts.mean()),
            "first_both": int(np.argmax(counts >= 2)) if (counts >= 2).any() else None,
            "pose_p50_ms": float(np.median(times))}


SETTINGS = (  # (label, mode, num_poses, confidence, resize, tiles)
    ("num_poses=1 (a one-person model's default: max_persons = M = 1)", "video", 1, 0.5, None, False),
    ("num_poses=2, VIDEO mode, confidence 0.5", "video", 2, 0.5, None, False),
    ("num_poses=2, VIDEO mode, confidence 0.3", "video", 2, 0.3, None, False),
    ("num_poses=2, VIDEO mode, confidence 0.1", "video", 2, 0.1, None, False),
    ("num_poses=2, IMAGE mode (detector on every frame), confidence 0.5", "image", 2, 0.5, None, False),
    ("num_poses=2, VIDEO mode, resized to 960x540", "video", 2, 0.5, (960, 540), False),
    ("num_poses=2, VIDEO mode, resized to 640x360", "video", 2, 0.5, (640, 360), False),
    ("two overlapping halves, one person each, VIDEO mode", "video", 1, 0.5, None, True),
)


def _main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--video", type=Path, required=True, help="a one-person video (the shared NTU clip)")
    p.add_argument("--pose-model", type=Path, required=True)
    p.add_argument("--frames", type=int, default=72)
    p.add_argument("--out", type=Path, default=Path("runs/two_person"))
    args = p.parse_args(argv)
    require_files(args.video, args.pose_model)
    args.out.mkdir(parents=True, exist_ok=True)
    frames = two_person_frames(args.video, args.pose_model, args.frames, args.out)
    import cv2
    cv2.imwrite(str(args.out / "two_person_frame0.jpg"), frames[0])
    rows = []
    for label, mode, num_poses, confidence, size, tiles in SETTINGS:
        print(f"{label} ...", file=sys.stderr, flush=True)
        rows.append({"setting": label, **count_people(frames, args.pose_model, mode, num_poses, confidence, size,
                                                      tiles)})
    lines = table_head(["MediaPipe setting", "frames with both people", "people per frame", "first frame with both",
                        "pose p50 ms"])
    for r in rows:
        lines.append(f"| {r['setting']} | {r['both']} / {r['frames']} | {r['mean_people']:.2f} | "
                     f"{'-' if r['first_both'] is None else r['first_both']} | {r['pose_p50_ms']:.0f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    write_results(args.out, "two_person", {"video": str(args.video), "offset": OFFSET,
                                           "size": list(frames.shape[1:3][::-1]), "rows": rows}, text,
                  [args.out / "two_person_frame0.jpg"])
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, PROG, argv)


if __name__ == "__main__":
    sys.exit(main())
