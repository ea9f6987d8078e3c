"""The real-time loop: camera / video / recorded skeletons -> MediaPipe pose -> sliding window -> LAST
(any runtime) -> smoothed actions, events and an overlay.

    python -m edge.run --camera 0 --model runs/train/best.pt --display
    python -m edge.run --video clip.mp4 --model model_int8.onnx --headless --out-video out.mp4 --events ev.jsonl
    python -m edge.run --skeletons pose33_sequences.npz --index 3 --model model.tflite --events ev.jsonl
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.mapping import mediapipe_world_to_camera
from edge.errors import EdgeError
from edge.events import ActionEvents, EventWriter
from edge.latency import LatencyMeter
from edge.smoothing import UNKNOWN, ActionSmoother, softmax
from edge.tracking import HipTracker
from edge.window import SkeletonWindow, WindowPolicy

POSE_LAYOUT = "mediapipe33"


def rss_mb() -> float | None:
    """Resident memory of this process in MB (Linux /proc; None elsewhere)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def display_available() -> bool:
    if platform.system() in ("Darwin", "Windows"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class LayoutMapper:
    """Frames of the source layout (MediaPipe 33, or a replay file's layout) -> the model's layout."""

    def __init__(self, source: str, target: str):
        self.source, self.target = source, target
        self.identity = source == target
        if self.identity:
            return
        from core.mapping import convert_layout
        self._convert = convert_layout
        from core.layouts import get_layout
        probe = np.zeros((1, get_layout(source).num_joints, 3), np.float32)
        try:
            out = np.asarray(convert_layout(probe, source, target))
        except (KeyError, ValueError, NotImplementedError) as exc:
            raise EdgeError(f"model/layout mismatch: the input is {source} but the model expects {target} "
                            f"and there is no mapping between them ({exc})") from None
        if out.shape[-2] != get_layout(target).num_joints:
            raise EdgeError(f"model/layout mismatch: mapping {source} -> {target} gave {out.shape[-2]} joints")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x if self.identity else np.asarray(self._convert(x, self.source, self.target), dtype=np.float32)


@dataclass
class LoopConfig:
    stride: int = 4  # classify every S frames once the window is full
    alpha: float = 0.5  # EMA weight of the newest probabilities
    min_confidence: float = 0.5  # below this the label is UNKNOWN ("no action")
    exit_confidence: float | None = None  # hysteresis: an action ends below this (default min_confidence - 0.1)
    margin: float = 0.1  # another class must beat the current one by this much to take over
    policy: WindowPolicy = field(default_factory=WindowPolicy)
    window_frames: int | None = None  # override the spec's online window (raw frames)
    persons: int | None = None  # people to track (default: the model's M)


@dataclass
class RunResult:
    frames: int = 0
    frames_with_person: int = 0
    classifications: int = 0
    labels: list[tuple[int, str, float]] = field(default_factory=list)  # (frame, label, confidence) per classify
    probs: list[np.ndarray] = field(default_factory=list)  # raw probabilities per classification
    dropped: int = 0
    error: str | None = None
    latency: dict[str, dict[str, float]] = field(default_factory=dict)
    rss_start_mb: float | None = None  # after the warm-up frames (or at the start of a shorter run)
    rss_start_frame: int = 0
    rss_end_mb: float | None = None


class EdgeLoop:
    """One pass over a frame source. Holds the runtime, window, tracker, smoother and outputs."""

    def __init__(self, runtime: Any, config: LoopConfig | None = None, pose: Any = None,
                 events: EventWriter | None = None, source_layout: str = POSE_LAYOUT, coordinates: str | None = None,
                 keep_probs: bool = False):
        from core.layouts import get_layout
        self.runtime = runtime
        self.cfg = config or LoopConfig()
        self.spec = runtime.spec
        self.class_names = runtime.class_names
        self.model_layout = get_layout(self.spec.layout)
        self.mapper = LayoutMapper(source_layout, self.spec.layout)
        self.source_layout = get_layout(source_layout)
        self.pose = pose
        self.coordinates = coordinates or self.spec.coordinates  # which MediaPipe landmarks feed the model
        self.persons = self.cfg.persons or self.spec.persons
        if self.persons > self.spec.persons:
            raise EdgeError(f"--persons {self.persons}: the model was trained with {self.spec.persons} person(s)")
        self.window = SkeletonWindow(self.cfg.window_frames or self.spec.online_window, self.spec.persons,
                                     self.model_layout.num_joints, self.spec.channels, self.cfg.policy)
        self.tracker = HipTracker(self.persons)
        self.smoother = ActionSmoother(self.class_names, self.cfg.alpha, self.cfg.min_confidence,
                                       self.cfg.exit_confidence, self.cfg.margin)
        self.events = events or EventWriter()
        self.actions = ActionEvents(self.events)
        self.latency = LatencyMeter()
        self.keep_probs = keep_probs
        self.decision_label = UNKNOWN
        self.decision_conf: float | None = None
        self._presence: str | None = None  # None (start) | "present" | "absent"
        self._since_classify = 0
        self._was_ready = False

    # ---- per-frame steps -------------------------------------------------------------------
    def _detect(self, frame) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray] | None]:
        """(people in source layout (V, C), tracking centres, image landmarks for drawing or None)."""
        c = self.spec.channels
        if frame.people is not None:  # replay
            people = [p[:, :c] for p in frame.people]
            centres = [p[list(self.source_layout.center), :2].mean(0) for p in frame.people]
            return people, centres, None
        if frame.image is None or self.pose is None:
            return [], [], None
        with self.latency.stage("pose"):
            poses = self.pose.detect(frame.image, int(round(frame.time_s * 1000)))
        if self.coordinates == "world":
            people = [mediapipe_world_to_camera(p.world[:, :3])[:, :c] for p in poses]
        else:  # image landmarks: normalised x, y (down), relative z, exactly as MediaPipe recordings store them
            people = [p.image[:, :c] for p in poses]
        return people, [p.image_centre for p in poses], [p.image for p in poses]

    def _presence_event(self, state: str, frame) -> None:
        present = state in ("ok", "held")
        new = "present" if present else "absent"
        if new == self._presence:
            return
        if new == "present":
            self.events.emit("person_found", time=frame.time_s, frame=frame.index)
        elif self._presence is None:
            self.events.emit("no_person", time=frame.time_s, frame=frame.index)
        else:
            self.events.emit("person_lost", time=frame.time_s, frame=frame.index)
        self._presence = new

    def _forget(self, frame, reason: str) -> None:
        """The window stopped being classifiable: end the active action, clear the smoothing."""
        self.smoother.clear()
        self.actions.end(frame.time_s, frame.index, reason=reason)
        self.decision_label, self.decision_conf = UNKNOWN, None

    def step(self, frame, result: RunResult) -> dict[str, Any]:
        from core.preprocess import prepare_clip
        people, centres, image_points = self._detect(frame)
        slots = self.tracker.update(centres)
        tracked = None
        if any(s is not None for s in slots):
            with self.latency.stage("track"):  # per-frame: tracked slots -> model layout
                src = np.zeros((self.persons, self.source_layout.num_joints, self.spec.channels), np.float32)
                for slot, det in enumerate(slots):
                    if det is not None:
                        src[slot] = people[det]
                tracked = self.mapper(src)
        state = self.window.push(tracked)
        if state in ("ok", "held"):
            result.frames_with_person += 1
        self._presence_event(state, frame)
        if state == "reset":
            self.events.emit("window_reset", time=frame.time_s, frame=frame.index,
                             reason=f"no person for more than {self.window.policy.reset_after} frames")
        ready = self.window.ready
        if self._was_ready and not ready:
            self._forget(frame, "no_person")
        self._was_ready = ready
        self._since_classify += 1
        if ready and self._since_classify >= self.cfg.stride:
            self._since_classify = 0
            with self.latency.stage("preprocess"):
                x = prepare_clip(self.window.clip(), self.spec)[None]
            with self.latency.stage("classify"):
                logits = self.runtime.predict(x)[0]
            with self.latency.stage("smoothing"):
                probs = softmax(logits)
                decision = self.smoother.update(probs)
                self.actions.update(decision, frame.time_s, frame.index)
            self.decision_label, self.decision_conf = decision.label, decision.confidence
            result.classifications += 1
            result.labels.append((frame.index, decision.label, decision.confidence))
            if self.keep_probs:
                result.probs.append(probs)
        return {"state": state, "slots": slots, "image_points": image_points, "people": people}

    # ---- the whole run ----------------------------------------------------------------------
    def run(self, source, sink=None, display: bool = False, canvas=None, progress: bool = False,
            rss_warmup: int = 100) -> RunResult:
        result = RunResult(rss_start_mb=rss_mb())
        self.events.emit("run_start", source=source.describe(), model=str(getattr(self.runtime, "path", "")),
                         runtime=getattr(self.runtime, "name", type(self.runtime).__name__),
                         classes=self.class_names, layout=self.spec.layout, window=self.window.size,
                         frames=self.spec.frames, persons=self.persons, stride=self.cfg.stride)
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=getattr(source, "frame_count", None) or None, unit="frame", desc="edge",
                       dynamic_ncols=True, leave=False)
        frame = None
        iterator = iter(source)
        try:
            while True:
                t0 = time.perf_counter()
                try:
                    frame = next(iterator)
                except StopIteration:
                    break
                self.latency.add("capture", (time.perf_counter() - t0) * 1e3)
                try:
                    info = self.step(frame, result)
                except (EdgeError, ValueError, RuntimeError, OSError) as exc:  # e.g. a backend failing mid-run
                    result.error = f"frame {frame.index}: {type(exc).__name__}: {_one_line(exc)}"
                    break
                if sink is not None or display:
                    with self.latency.stage("draw"):
                        image = self.render(frame, info, canvas, getattr(source, "dropped", 0))
                        if sink is not None:
                            sink.write(image)
                        if display and self._show(image):
                            break
                self.latency.frame_done()
                result.frames += 1
                if result.frames == rss_warmup:
                    result.rss_start_mb, result.rss_start_frame = rss_mb(), result.frames
                if bar is not None:
                    bar.update(1)
        except KeyboardInterrupt:
            result.error = "interrupted"
        finally:
            if bar is not None:
                bar.close()
        if getattr(source, "error", None):
            result.error = source.error
        end_t = frame.time_s if frame is not None else 0.0
        end_i = frame.index if frame is not None else 0
        self.actions.end(end_t, end_i, reason="end_of_stream")
        result.dropped = int(getattr(source, "dropped", 0))
        result.latency = self.latency.summary()
        result.rss_end_mb = rss_mb()
        if result.error:
            self.events.emit("error", message=result.error, time=end_t, frame=end_i)
        self.events.emit("run_end", frames=result.frames, frames_with_person=result.frames_with_person,
                         classifications=result.classifications, dropped=result.dropped,
                         fps=result.latency.get("frame", {}).get("fps"),
                         latency_ms={k: {q: v[q] for q in ("p50_ms", "p90_ms", "p99_ms")}
                                     for k, v in result.latency.items()},
                         rss_start_mb=result.rss_start_mb, rss_end_mb=result.rss_end_mb)
        return result

    def render(self, frame, info: dict[str, Any], canvas, dropped: int) -> np.ndarray:
        from edge.overlay import (PERSON_COLOURS, OverlayText, draw_hud, draw_skeleton,
                                  image_landmarks_to_pixels)
        if frame.image is not None:
            image = frame.image.copy()
            h, w = image.shape[:2]
            for slot, det in enumerate(info["slots"]):
                if det is not None and info["image_points"]:
                    pts = image_landmarks_to_pixels(info["image_points"][det], w, h)
                    draw_skeleton(image, pts, POSE_LAYOUT, PERSON_COLOURS[slot % 2])
        else:
            image = canvas.blank()
            for slot, det in enumerate(info["slots"]):
                if det is not None:
                    draw_skeleton(image, canvas.to_pixels(frame.people[det]), canvas.layout, PERSON_COLOURS[slot % 2])
        status = info["state"] if self.window.full or info["state"] not in ("ok", "held") else "warming"
        label = self.decision_label if status != "warming" else f"buffering {self.window.filled}/{self.window.size}"
        stages = {k: self.latency.last(k) for k in ("capture", "pose", "preprocess", "classify", "smoothing", "draw")}
        draw_hud(image, OverlayText(label, self.decision_conf, status, self.latency.fps(), stages, dropped,
                                    frame.time_s))
        return image

    def _show(self, image: np.ndarray) -> bool:
        """Show a frame; True when the user pressed q or Esc."""
        import cv2
        cv2.imshow("LAST edge", image)
        return (cv2.waitKey(1) & 0xFF) in (ord("q"), 27)


# ---- command line ----------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m edge.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--camera", metavar="N", help="camera index (or a device path / stream URL)")
    src.add_argument("--video", metavar="PATH", help="a video file, processed frame by frame")
    src.add_argument("--skeletons", metavar="FILE", help="replay a recorded skeleton sequence (.npz/.npy/.json or "
                     "a prepared data set directory) without a pose estimator")
    p.add_argument("--model", required=True, metavar="ARTIFACT",
                   help="checkpoint (.pt), .onnx (fp32/INT8), .engine, .tflite or .mlpackage")
    p.add_argument("--pose-model", metavar="PATH", help="MediaPipe pose_landmarker .task file (default: "
                   "$LAST_POSE_MODEL, then ~/.cache/last-edge/, then download)")
    p.add_argument("--pose-variant", default="full", choices=("lite", "full", "heavy"),
                   help="official bundle to look for / fetch when no path is given (default: full)")
    view = p.add_mutually_exclusive_group()
    view.add_argument("--display", action="store_true", help="show a window with the skeleton, label, latency")
    view.add_argument("--headless", action="store_true", help="no window (default when no display is present)")
    p.add_argument("--out-video", metavar="PATH", help="write the overlay video (.mp4 mp4v or .avi MJPG)")
    p.add_argument("--events", metavar="PATH", help="write action events as JSON lines")
    p.add_argument("--stride", type=int, default=4, help="classify every S frames once the window is full (4)")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads for the model runtime (1: the pose estimator needs the other cores; on a "
                        "2-core machine 2 threads made classify 30x slower through oversubscription)")
    p.add_argument("--index", type=int, default=0, help="--skeletons: which sequence of a data set file (0)")
    p.add_argument("--repeat", type=int, default=1, help="--skeletons: replay the sequence N times (memory checks)")
    p.add_argument("--skeleton-layout", help="--skeletons: layout of the file when it cannot be guessed")
    p.add_argument("--fps", type=float, help="--skeletons: frame rate for timestamps (default: file, spec, 30)")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument("--persons", type=int, choices=(1, 2), help="people to track (default: the model's M)")
    p.add_argument("--window", type=int, help="raw frames in the window (default: the model's online window)")
    p.add_argument("--alpha", type=float, default=0.5, help="EMA weight of the newest probabilities (0.5)")
    p.add_argument("--min-confidence", type=float, default=0.5,
                   help="below this smoothed probability the label is 'unknown' (0.5)")
    p.add_argument("--hold", type=int, default=5, help="frames a lost person keeps their last pose (5)")
    p.add_argument("--reset-after", type=int, default=30, help="frames without a person that reset the window (30)")
    p.add_argument("--min-valid", type=float, default=0.75, help="least fraction of real frames to classify (0.75)")
    p.add_argument("--coordinates", choices=("world", "image"),
                   help="MediaPipe landmarks fed to the model (default: the model's input spec)")
    p.add_argument("--print-events", action="store_true", help="also print events to stdout")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def load_runtime_or_fail(path: str, threads: int | None):
    """The runtime for an artifact, or an EdgeError with one line (backends raise all kinds of errors on a
    corrupt file: protobuf DecodeError, flatbuffer ValueError, zip errors)."""
    from core.runtime import load_runtime
    try:
        return load_runtime(path, threads=threads)
    except Exception as exc:
        message = _one_line(exc)
        raise EdgeError(message if str(path) in message else f"--model {path}: {message}") from None


def print_summary(result: RunResult, loop: EdgeLoop, source, out=None) -> None:
    out = out or sys.stdout
    print(f"source: {source.describe()}", file=out)
    print(f"model: {loop.runtime.path} ({getattr(loop.runtime, 'name', '?')}), window {loop.window.size} raw frames "
          f"-> T={loop.spec.frames}, stride {loop.cfg.stride}, classes {len(loop.class_names)}", file=out)
    print(loop.latency.table(), file=out)
    if result.frames and result.frames_with_person == 0:
        print(f"no person detected in any of the {result.frames} frames", file=out)
    else:
        print(f"person in {result.frames_with_person}/{result.frames} frames, {result.classifications} "
              f"classifications, {loop.events.count} events", file=out)
    if result.labels:
        counts: dict[str, int] = {}
        for _, label, _ in result.labels:
            counts[label] = counts.get(label, 0) + 1
        print("labels: " + ", ".join(f"{k} x{v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])), file=out)
    if getattr(source, "kind", "") == "camera":
        print(f"camera: {result.dropped} frames dropped (processing the newest frame only)", file=out)
    if result.rss_start_mb is not None and result.rss_end_mb is not None and result.frames:
        print(f"memory: RSS {result.rss_start_mb:.1f} MB after {result.rss_start_frame} frames -> "
              f"{result.rss_end_mb:.1f} MB after {result.frames} frames "
              f"({result.rss_end_mb - result.rss_start_mb:+.1f} MB)", file=out)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.stride < 1:
        print("edge.run: error: --stride must be >= 1", file=sys.stderr)
        return 2
    display = args.display or (not args.headless and display_available())
    if args.display and not display_available():
        print("edge.run: error: --display needs a display (none found: DISPLAY/WAYLAND_DISPLAY unset); "
              "use --headless --out-video out.mp4", file=sys.stderr)
        return 1
    events = None
    source = pose = sink = None
    try:
        events = EventWriter(args.events, echo=sys.stdout if args.print_events else None)
    except OSError as exc:
        print(f"edge.run: error: --events {args.events}: cannot write ({_one_line(exc)})", file=sys.stderr)
        return 1
    try:
        runtime = load_runtime_or_fail(args.model, args.threads)
        spec = runtime.spec
        cfg = LoopConfig(stride=args.stride, alpha=args.alpha, min_confidence=args.min_confidence,
                         policy=WindowPolicy(args.hold, args.reset_after, args.min_valid),
                         window_frames=args.window, persons=args.persons)
        canvas = None
        if args.skeletons:
            from edge.capture import SkeletonReplaySource, load_skeleton_sequence
            seq = load_skeleton_sequence(args.skeletons, args.index, args.skeleton_layout)
            if seq.data.shape[-1] < spec.channels:
                raise EdgeError(f"--skeletons {args.skeletons}: {seq.data.shape[-1]} channels per joint, the model "
                                f"needs {spec.channels}")
            source = SkeletonReplaySource(seq, args.repeat, args.fps or seq.fps or spec.fps, args.max_frames,
                                          args.skeletons)
            source_layout = seq.layout
            if args.out_video or display:
                from edge.overlay import SkeletonCanvas
                canvas = SkeletonCanvas(seq.data, seq.layout)
        else:
            from edge.pose import MediaPipePose, resolve_pose_model
            source_layout = POSE_LAYOUT
            LayoutMapper(POSE_LAYOUT, spec.layout)  # fail on a layout mismatch before opening anything
            model_path = resolve_pose_model(args.pose_model, args.pose_variant)
            if args.video:
                from edge.capture import VideoFileSource
                source = VideoFileSource(args.video, args.max_frames)
            else:
                from edge.capture import CameraSource
                device = int(args.camera) if str(args.camera).lstrip("-").isdigit() else args.camera
                source = CameraSource(device, args.max_frames)
            pose = MediaPipePose(model_path, mode="video" if args.video else "live",
                                 num_poses=args.persons or spec.persons)
        loop = EdgeLoop(runtime, cfg, pose, events, source_layout, args.coordinates)
        if args.out_video:
            from edge.overlay import VideoSink
            size = (canvas.size, canvas.size) if canvas is not None else source.size
            sink = VideoSink(args.out_video, source.fps, size)
        result = loop.run(source, sink, display, canvas, progress=not args.no_progress and sys.stderr.isatty())
        print_summary(result, loop, source)
        if args.out_video:
            print(f"overlay video: {args.out_video} ({sink.frames} frames)")
        if args.events:
            print(f"events: {args.events} ({events.count} lines)")
        if result.error:
            print(f"edge.run: {result.error}", file=sys.stderr)
            return 130 if result.error == "interrupted" else 1
        return 0
    except EdgeError as exc:
        events.emit("error", message=str(exc))
        print(f"edge.run: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # an output path that cannot be created, a disk that filled up, ...
        message = f"{getattr(exc, 'filename', None) or ''}: {exc.strerror or _one_line(exc)}".lstrip(": ")
        events.emit("error", message=message)
        print(f"edge.run: error: {message}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug: still one line (and valid events); LAST_EDGE_DEBUG=1 shows the traceback
        if os.environ.get("LAST_EDGE_DEBUG"):
            raise
        events.emit("error", message=f"internal error: {type(exc).__name__}: {_one_line(exc)}")
        print(f"edge.run: internal error: {type(exc).__name__}: {_one_line(exc)} (set LAST_EDGE_DEBUG=1 for the "
              "traceback)", file=sys.stderr)
        return 1
    finally:
        for closable in (sink, pose, source, events):
            if closable is not None:
                try:
                    closable.close()
                except Exception:  # closing must never hide the real outcome
                    pass
        if display:
            try:
                import cv2
                cv2.destroyAllWindows()
            except Exception:
                pass


if __name__ == "__main__":
    sys.exit(main())
