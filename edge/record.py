"""Record your own action clips from a camera, in the folder layout edge.extract reads.

    python -m edge.record --camera 0 --label wave --clips 10 --seconds 3             # -> my_videos/wave/*.mp4
    python -m edge.record --camera 0 --label clap --clips 10 --seconds 3 --out my_videos
    python -m edge.extract --videos my_videos --out runs/data/my_set                 # then train, export, run

Each clip starts after a countdown shown over the live picture (3, 2, 1, then a red REC dot and the time left);
the files hold the camera's frames without any overlay. Without a display the countdown is printed instead.
The clip length is counted in camera frames (seconds x the camera's frame rate), so it is exact whatever the
machine's speed."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from core.cli import EXIT_BACKEND_MISSING, EXIT_BAD_INPUT, EXIT_FAILED, ArgumentParser
from core.data.paths import unsafe_path_part
from edge.errors import EdgeError, SourceError, native_stderr_silenced

PROG = "python -m edge.record"


def countdown_overlay(image: np.ndarray, text: str, caption: str, recording: bool = False) -> np.ndarray:
    """A copy of the frame with a big centred `text` (countdown) or a REC dot, and a caption at the bottom."""
    import cv2
    out = image.copy()
    h, w = out.shape[:2]
    scale = max(0.5, min(w, h) / 480)
    if recording:
        cv2.circle(out, (int(24 * scale), int(24 * scale)), int(10 * scale), (0, 0, 255), -1, cv2.LINE_AA)
        cv2.putText(out, text, (int(42 * scale), int(32 * scale)), cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale,
                    (0, 0, 255), 2, cv2.LINE_AA)
    else:
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 4 * scale, 8)
        cv2.putText(out, text, ((w - tw) // 2, (h + th) // 2), cv2.FONT_HERSHEY_SIMPLEX, 4 * scale,
                    (255, 255, 255), 8, cv2.LINE_AA)
    cv2.rectangle(out, (0, h - int(30 * scale)), (w, h), (0, 0, 0), -1)
    cv2.putText(out, caption, (8, h - int(9 * scale)), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (255, 255, 255), 1,
                cv2.LINE_AA)
    return out


def record_clips(capture: Any, out_dir: Path, label: str, clips: int, seconds: float, countdown_s: float = 3.0,
                 show: Callable[[np.ndarray], bool] | None = None, log: Callable[[str], None] = print,
                 fps: float | None = None) -> list[Path]:
    """Record `clips` clips of `seconds` from an opened cv2.VideoCapture-like object (read(), get(), release()).
    show(frame) displays an overlay frame and returns True to stop. Returns the clip paths written."""
    import cv2
    why = unsafe_path_part(label)
    if why:
        raise EdgeError(f"label {label!r} {why}")
    fps = fps or float(capture.get(cv2.CAP_PROP_FPS) or 0)
    fps = fps if 1 <= fps <= 240 else 30.0
    folder = Path(out_dir) / label
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    written: list[Path] = []

    def read() -> np.ndarray:
        ok, frame = capture.read()
        if not ok or frame is None:
            raise SourceError(f"the camera stopped delivering frames after {len(written)} clip(s)")
        return frame

    for k in range(1, clips + 1):
        caption = f"{label}: clip {k}/{clips}"
        count_frames = int(round(countdown_s * fps))
        last_second = None
        for i in range(count_frames):
            frame = read()
            second = int(np.ceil((count_frames - i) / fps))
            if second != last_second:
                log(f"{caption} in {second}...")
                last_second = second
            if show is not None and show(countdown_overlay(frame, str(second), caption)):
                return written
        path = folder / f"{label}_{stamp}_{k:03d}.mp4"
        frame = read()
        h, w = frame.shape[:2]
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        if not writer.isOpened():
            raise EdgeError(f"--out {out_dir}: OpenCV cannot write {path.name}")
        total = max(1, int(round(seconds * fps)))
        log(f"{caption}: recording {seconds:g} s")
        try:
            for i in range(total):
                if i:
                    frame = read()
                writer.write(frame)
                if show is not None and show(countdown_overlay(frame, f"{(total - i) / fps:.1f} s", caption,
                                                               recording=True)):
                    writer.release()
                    written.append(path)
                    return written
        finally:
            writer.release()
        written.append(path)
        log(f"saved {path} ({total} frames, {fps:g} fps)")
    return written


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--camera", default="0", help="camera index (or a device path / stream URL) (0)")
    p.add_argument("--label", required=True, help="action name: the clips go to <out>/<label>/")
    p.add_argument("--clips", type=int, default=10, help="clips to record (10)")
    p.add_argument("--seconds", type=float, default=3.0, help="length of each clip (3)")
    p.add_argument("--countdown", type=float, default=3.0, help="seconds of countdown before each clip (3)")
    p.add_argument("--out", default="my_videos", help="folder of label sub-folders (my_videos)")
    p.add_argument("--headless", action="store_true", help="no window: print the countdown")
    args = p.parse_args(argv)
    if args.clips < 1 or args.seconds <= 0 or args.countdown < 0:
        print(f"{PROG}: error: --clips >= 1, --seconds > 0, --countdown >= 0", file=sys.stderr)
        return EXIT_BAD_INPUT
    why = unsafe_path_part(args.label.strip())
    if why:  # the label is the folder the clips go to, inside --out
        print(f"{PROG}: error: --label {args.label!r} {why}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        import cv2
    except ImportError as exc:
        print(f"{PROG}: error: OpenCV is not installed ({exc}); pip install opencv-python", file=sys.stderr)
        return EXIT_BACKEND_MISSING
    from edge.run import display_available
    device = int(args.camera) if str(args.camera).lstrip("-").isdigit() else args.camera
    with native_stderr_silenced():
        capture = cv2.VideoCapture(device)
    if not capture.isOpened():
        print(f"{PROG}: error: --camera {args.camera}: the camera does not open (not connected, busy, or no "
              "permission)", file=sys.stderr)
        return EXIT_BAD_INPUT
    show = None
    if not args.headless and display_available():
        def show(image: np.ndarray) -> bool:
            cv2.imshow("edge.record (q: stop)", image)
            return (cv2.waitKey(1) & 0xFF) in (ord("q"), 27)
    try:
        paths = record_clips(capture, Path(args.out), args.label.strip(), args.clips, args.seconds, args.countdown,
                             show)
    except EdgeError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        capture.release()
        if show is not None:
            cv2.destroyAllWindows()
    print(f"{len(paths)} clip(s) in {Path(args.out) / args.label.strip()}; next: python -m edge.extract --videos "
          f"{args.out} --out runs/data/my_set")
    return 0


if __name__ == "__main__":
    sys.exit(main())
