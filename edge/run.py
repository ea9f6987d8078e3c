"""The real-time loop on the command line: a thin runner over the library (edge.recognizer.ActionRecognizer:
MediaPipe pose -> person ids -> time-based window -> LAST on any runtime -> smoothed actions and events) that
adds the events file, the overlay video or window, a progress bar and the latency summary.

    python -m edge.run --camera 0 --model runs/train/best.pt --display
    python -m edge.run --video clip.mp4 --model model_int8.onnx --headless --out-video out.mp4 --events ev.jsonl
    python -m edge.run --skeletons pose33_sequences.npz --index 3 --model model.tflite --events ev.jsonl
    python -m edge.run --video clip.mp4 --model best.pt --explain --out-video explained.mp4   # joints by importance
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from core.cli import EXIT_BAD_INPUT, EXIT_FAILED, ArgumentParser, exit_code_for
from edge.errors import EdgeBackendMissing, EdgeError
from edge.events import EventWriter
from edge.latency import LatencyMeter
from edge.recognizer import (POSE_LAYOUT, ActionRecognizer, ActionRecognizerOptions, ActionResult, BaseOptions,
                             PersonOptions, PoseOptions, RunningMode, SmoothingOptions)
from edge.smoothing import UNKNOWN

PROG = "python -m edge.run"
STATUS = {"tracking": "ok", "warming_up": "warming", "partial_body": "partial", "no_person": "missing"}


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


@dataclass
class RunResult:
    """Counters of one run: fixed size however long it runs (callers that want every result use on_result)."""
    frames: int = 0  # frames with a result
    frames_with_person: int = 0
    classifications: int = 0
    label_counts: dict[str, int] = field(default_factory=dict)  # smoothed label per classification, counted
    persons_seen: int = 0  # distinct person ids
    dropped: int = 0  # frames captured that never got a result (camera reader + pipeline, newest-frame policy)
    error: str | None = None
    latency: dict[str, dict[str, float]] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)  # LatencyMeter.stats(): per-frame latency, drops, FPS
    rss_start_mb: float | None = None  # after the warm-up frames (or at the start of a shorter run)
    rss_start_frame: int = 0
    rss_end_mb: float | None = None
    draw_dropped: int = 0  # pipelined: results the drawing thread had no time for (never their events)


class EdgeRunner:
    """The command line's loop over one frame source: each frame goes to the ActionRecognizer (the library);
    the runner adds what the library never does: the events file, overlay, display, progress bar and the
    meter. With a pipelined recognizer (made by `pipelined_runner`) frames are handed in with recognize_async and
    results come back on the recognizer's thread, where events are written and the meter reads the clock; the
    main thread only captures, draws and shows."""

    DRAW_QUEUE = 64  # results waiting to be drawn (pipelined); beyond it the oldest is not drawn (counted)

    def __init__(self, recognizer: ActionRecognizer | None, events: EventWriter | None = None, explainer=None):
        self.recognizer = recognizer
        self.events = events or EventWriter()
        self.latency = LatencyMeter()
        self.last: ActionResult | None = None
        self._lock = threading.Lock()
        self._in_flight: dict[float, Any] = {}  # pipelined: timestamp -> frame handed in, awaiting its result
        self._to_draw: deque[tuple[Any, ActionResult]] = deque()
        self._drawing = False
        self._result = RunResult()
        self._on_result: Callable[[Any, ActionResult], None] | None = None
        self._anyone_yet = False
        self._rss_warmup = 100
        self.explainer = explainer  # core.explain.DecisionExplainer: --explain
        self.joint_scores: dict[int, np.ndarray] = {}  # person id -> importance of their current decision
        self._explained: dict[int, Any] = {}  # subject key -> the decision its joint_scores explain

    @property
    def runtime(self):
        return self.recognizer.runtime

    def _write(self, events, frame_index: int) -> None:
        for event in events:
            record = event.to_dict()
            self.events.emit(record.pop("event"), **record, frame=frame_index)

    def deliver(self, res: ActionResult, image: Any, timestamp_ms: int) -> None:
        """The recognizer's result_callback (pipelined): on the recognizer's thread, in frame order."""
        with self._lock:
            frame = self._in_flight.pop(res.timestamp_ms)
            for older in [t for t in self._in_flight if t < res.timestamp_ms]:
                del self._in_flight[older]  # the recognizer dropped it (newest-frame policy)
            self._record(frame, res, pipelined=True)
            if self._drawing:
                if len(self._to_draw) >= self.DRAW_QUEUE:
                    self._to_draw.popleft()
                    self._result.draw_dropped += 1
                self._to_draw.append((frame, res))

    def _record(self, frame, res: ActionResult, pipelined: bool, draw_ms: float | None = None,
                event_at: float | None = None) -> None:
        """Events, counters and the meter for one frame's result."""
        result = self._result
        present = any(p.state != "no_person" for p in res.persons)
        if present:
            result.frames_with_person += 1
            self._anyone_yet = True
        elif not self._anyone_yet and result.frames == 0:
            self.events.emit("no_person", time=frame.time_s, frame=frame.index)
        self._write(res.events, frame.index)
        event_at = time.perf_counter() if event_at is None else event_at
        if res.classified:
            result.classifications += 1
            for p in res.persons:
                result.label_counts[p.label] = result.label_counts.get(p.label, 0) + 1
        if res.persons:
            result.persons_seen = max(result.persons_seen, max(p.person_id for p in res.persons) + 1)
        stages = {"capture": frame.capture_ms, **res.latency_ms} if frame.image is not None else dict(res.latency_ms)
        if self.explainer is not None and res.classified:
            started = time.perf_counter()
            self._explain(res)
            stages["explain"] = (time.perf_counter() - started) * 1e3
        if draw_ms is not None:
            stages["draw"] = draw_ms
        self.latency.frame(frame.captured_at, res.times_s, stages, pipelined, event_at,
                           res.classifications_dropped)
        self.last = res
        result.frames += 1
        if result.frames == self._rss_warmup:
            result.rss_start_mb, result.rss_start_frame = rss_mb(), result.frames
        if self._on_result is not None:
            self._on_result(frame, res)

    def run(self, source, sink=None, display: bool = False, canvas=None, progress: bool = False,
            rss_warmup: int = 100, on_result: Callable[[Any, ActionResult], None] | None = None,
            realtime: bool = False) -> RunResult:
        """Every frame of `source` through the recognizer; on_result(frame, result) sees each result (on the
        recognizer's thread when pipelined). realtime (pipelined): frames the loop has no time for are dropped,
        as from a camera; otherwise every frame is processed."""
        rec = self.recognizer
        result = self._result = RunResult(rss_start_mb=rss_mb())
        self._on_result, self._rss_warmup, self._anyone_yet = on_result, rss_warmup, False
        self._drawing = sink is not None or display
        self.events.emit("run_start", source=source.describe(), model=str(getattr(rec.runtime, "path", "")),
                         runtime=getattr(rec.runtime, "name", type(rec.runtime).__name__),
                         classes=rec.class_names, layout=rec.spec.layout, model_fps=rec.model_fps,
                         window_s=rec.window_size / rec.model_fps, stride_s=rec.stride / rec.model_fps,
                         frames=rec.spec.frames, persons=rec.max_persons,
                         loop="pipelined" if rec.pipelined else "synchronous")
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=getattr(source, "frame_count", None) or None, unit="frame", desc="edge",
                       dynamic_ncols=True, leave=False)
        frame = None
        iterator = iter(source)
        try:
            while True:
                try:
                    frame = next(iterator)
                except StopIteration:
                    break
                item = frame.people if frame.people is not None else frame.image
                try:
                    if rec.pipelined:
                        with self._lock:
                            self._in_flight[frame.time_s * 1000.0] = frame
                        rec.recognize_async(item, frame.time_s * 1000.0, block=not realtime)
                    else:
                        res = rec.recognize_for_video(item, frame.time_s * 1000.0)
                except (EdgeError, ValueError, RuntimeError, OSError) as exc:  # e.g. a backend failing mid-run
                    result.error = f"frame {frame.index}: {type(exc).__name__}: {_one_line(exc)}"
                    break
                if rec.pipelined:
                    quit_ = self._draw_pending(canvas, source, sink, display)
                else:
                    event_at = time.perf_counter()
                    quit_, draw_ms = self._draw(frame, res, canvas, source, sink, display)
                    self._record(frame, res, pipelined=False, draw_ms=draw_ms, event_at=event_at)
                if bar is not None:
                    bar.n = result.frames
                    bar.update(0)
                if quit_:
                    break
        except KeyboardInterrupt:
            result.error = "interrupted"
        finally:
            if bar is not None:
                bar.close()
        if getattr(source, "error", None):
            result.error = source.error
        try:
            if rec.pipelined:  # results of the frames still in flight (a few at most), then draw them
                rec.flush(timeout=5.0 if result.error else None)
                self._draw_pending(canvas, source, sink, display)
        except (EdgeError, ValueError, RuntimeError, OSError) as exc:
            result.error = result.error or f"{type(exc).__name__}: {_one_line(exc)}"
        except KeyboardInterrupt:
            result.error = "interrupted"
        end_t = frame.time_s if frame is not None else 0.0
        end_i = frame.index if frame is not None else 0
        with self._lock:
            self._write(rec.finish(end_t * 1000.0) if not result.error or not rec.pipelined
                        else self._finish_now(end_t), end_i)
        self.latency.dropped = int(getattr(source, "dropped", 0)) + rec.dropped_frames
        result.dropped = self.latency.dropped
        result.latency = self.latency.summary()
        result.stats = self.latency.stats()
        result.rss_end_mb = rss_mb()
        if result.error:
            self.events.emit("error", message=result.error, time=end_t, frame=end_i)
        s = result.stats
        self.events.emit("run_end", frames=result.frames, frames_with_person=result.frames_with_person,
                         classifications=result.classifications, persons=result.persons_seen,
                         dropped=result.dropped, fps=s["fps"], classified_share=s["classified_share"],
                         latency_ms={k: {q: v[q] for q in ("p50_ms", "p90_ms", "p99_ms")}
                                     for k, v in result.latency.items()},
                         frame_latency_ms={k: {q: v[q] for q in ("p50_ms", "p90_ms", "p99_ms")}
                                           for k, v in s["latency_ms"].items()},
                         rss_start_mb=result.rss_start_mb, rss_end_mb=result.rss_end_mb)
        return result

    def _finish_now(self, end_t: float) -> list:
        """After an error the pipeline may be stopped: end the active actions without waiting for it."""
        out: list = []
        for subject in self.recognizer.subjects.values():
            subject.actions.end(end_t, "end_of_stream", out)
        return out

    def _draw(self, frame, res: ActionResult, canvas, source, sink, display) -> tuple[bool, float | None]:
        """Draw one result (overlay video, window); (the user pressed q / Esc, draw ms or None)."""
        if sink is None and not display:
            return False, None
        started = time.perf_counter()
        image = self.render(frame, res, canvas, getattr(source, "dropped", 0) + self.recognizer.dropped_frames)
        if sink is not None:
            sink.write(image)
        quit_ = bool(display and self._show(image))
        return quit_, (time.perf_counter() - started) * 1e3

    def _draw_pending(self, canvas, source, sink, display) -> bool:
        """Pipelined: draw the results that arrived since the last call, in order, on this (the main) thread."""
        while True:
            with self._lock:
                if not self._to_draw:
                    return False
                frame, res = self._to_draw.popleft()
            quit_, draw_ms = self._draw(frame, res, canvas, source, sink, display)
            if draw_ms is not None:
                with self._lock:
                    self.latency.add("draw", draw_ms)
            if quit_:
                return True

    def _explain(self, res: ActionResult) -> None:
        """Joint importance of every new decision, on the window it was made from, drawn in the pose layout."""
        from core.explain import scores_in_layout
        from core.preprocess import prepare_clip
        rec = self.recognizer
        for p in res.persons:
            key = p.person_id if rec.spec.persons == 1 else 0
            subject = rec.subjects.get(key)
            if subject is None or subject.decision is None or subject.decision is self._explained.get(key):
                continue
            self._explained[key] = subject.decision
            label = subject.decision.label  # explain the decision's class ('unknown': the window's top class)
            target = rec.class_names.index(label) if label in rec.class_names else None
            scores = self.explainer(prepare_clip(subject.window.clip(), rec.spec)[None], target)
            self.joint_scores[p.person_id] = scores_in_layout(scores, rec.spec.layout, rec.source_layout_name)

    def render(self, frame, res: ActionResult, canvas, dropped: int) -> np.ndarray:
        from edge.overlay import PERSON_COLOURS, OverlayText, draw_hud, draw_label, draw_skeleton, \
            image_landmarks_to_pixels
        rec = self.recognizer
        if frame.image is not None:
            image = frame.image.copy()
            h, w = image.shape[:2]
            layout = POSE_LAYOUT
            to_pixels = lambda pts: image_landmarks_to_pixels(pts, w, h)  # noqa: E731
        else:
            image = canvas.blank()
            layout = canvas.layout
            to_pixels = canvas.to_pixels
        for p in res.persons:
            if p.landmarks is None:
                continue
            colour = PERSON_COLOURS[p.person_id % len(PERSON_COLOURS)]
            pts = to_pixels(p.landmarks)
            draw_skeleton(image, pts, layout, colour, joint_scores=self.joint_scores.get(p.person_id)
                          if p.state == "tracking" else None)
            draw_label(image, pts, f"#{p.person_id} {p.label if p.state == 'tracking' else p.state}", colour)
        main = next((p for p in res.persons if p.state != "no_person"), res.persons[0] if res.persons else None)
        status = STATUS[main.state] if main is not None else "missing"
        label = main.label if main is not None else UNKNOWN
        if status == "warming":
            filled = rec.subjects[main.person_id].window.filled if main.person_id in rec.subjects else 0
            label = f"buffering {filled}/{rec.window_size}"
        with self._lock:  # the recognizer's thread records into the meter meanwhile (pipelined)
            stages = {k: self.latency.last(k) for k in ("capture", "pose", "preprocess", "classify", "smoothing",
                                                        "draw") + (("explain",) if self.explainer is not None else ())}
            fps = self.latency.fps()
        draw_hud(image, OverlayText(label, main.confidence if main is not None else None, status, fps, stages,
                                    dropped, frame.time_s))
        return image

    def _show(self, image: np.ndarray) -> bool:
        """Show a frame; True when the user pressed q or Esc."""
        import cv2
        cv2.imshow("LAST edge", image)
        return (cv2.waitKey(1) & 0xFF) in (ord("q"), 27)

# ---- command line ----------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    p.add_argument("--stride-s", type=float, help="classify every S seconds of stream time (default: every frame at "
                   "the model's training frame rate; the pipelined loop skips a window only when a newer one waits)")
    p.add_argument("--loop", choices=("pipelined", "sync"), help="pipelined: pose and classifier on two threads, "
                   "the budget is max(pose, classifier) per frame (default for --camera and --video); sync: one "
                   "after the other on one thread (default for --skeletons; single-core devices)")
    p.add_argument("--realtime", action="store_true", help="--video / --skeletons: play at the file's frame rate, "
                   "like a camera: frames the loop has no time for are dropped and counted (default: every frame)")
    p.add_argument("--speed", type=float, default=1.0, help="--realtime: play this many times faster (1.0)")
    p.add_argument("--stats", metavar="PATH", help="write the run's summary as JSON: frames, dropped, classified "
                   "share, FPS, per-stage and per-frame latency p50/p90/p99")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads for the model runtime (1: the pose estimator needs the other cores; on a "
                        "2-core machine 2 threads made classify 30x slower through oversubscription)")
    p.add_argument("--index", type=int, default=0, help="--skeletons: which sequence of a data set file (0)")
    p.add_argument("--repeat", type=int, default=1, help="--skeletons: replay the sequence N times (memory checks)")
    p.add_argument("--skeleton-layout", help="--skeletons: layout of the file when it cannot be guessed")
    p.add_argument("--fps", type=float, help="--skeletons: frame rate for timestamps (default: file, spec, 30)")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument("--persons", type=int, help="people to detect and track, each with their own id and action "
                   "(default: the model's M)")
    p.add_argument("--window-s", type=float, help="window length in seconds (default: the model's online window "
                   "at its training frame rate)")
    p.add_argument("--alpha", type=float, default=0.5, help="EMA weight of the newest probabilities (0.5)")
    p.add_argument("--min-confidence", type=float, default=0.5,
                   help="below this smoothed probability the label is 'unknown' (0.5)")
    p.add_argument("--unknown-threshold", type=float, metavar="SCORE",
                   help="open-set score under which a window is 'unknown' (default: the rule the model carries, "
                        "from python -m train.openset; -inf turns it off)")
    p.add_argument("--hold-s", type=float, default=0.2,
                   help="seconds a lost person keeps their last pose; then their action ends (0.2)")
    p.add_argument("--reset-s", type=float, default=1.0,
                   help="seconds after which an unseen person's window starts afresh (1.0)")
    p.add_argument("--id-memory-s", type=float, default=3.0,
                   help="seconds a lost person's id waits for them, never handed to anyone else (3.0)")
    p.add_argument("--min-body-visibility", type=float, default=0.5,
                   help="hips and shoulders must be this visible to classify, else 'partial_body' (0.5; 0 turns "
                        "the check off, e.g. for upper-body recordings)")
    p.add_argument("--min-valid", type=float, default=0.75, help="least fraction of real frames to classify (0.75)")
    p.add_argument("--min-pose-confidence", type=float, default=0.5,
                   help="MediaPipe's pose detection and presence thresholds (0.5; lower finds smaller people, more "
                        "of them, and more false ones)")
    p.add_argument("--coordinates", choices=("world", "image"),
                   help="MediaPipe landmarks fed to the model (default: the model's input spec)")
    p.add_argument("--explain", nargs="?", const="auto", metavar="METHOD",
                   choices=("auto", "integrated_gradients", "gradcam", "occlusion"),
                   help="colour the overlay's joints by their importance for the current decision (core.explain). "
                        "auto: integrated gradients with a .pt model (or --explain-ckpt), occlusion through the "
                        "runtime otherwise (needs no gradients, points at the moving joints less reliably)")
    p.add_argument("--explain-ckpt", metavar="PT", help="--explain with an exported --model: the .pt checkpoint "
                   "it was converted from, for gradient attribution")
    p.add_argument("--print-events", action="store_true", help="also print events to stdout")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def load_runtime_or_fail(path: str, threads: int | None):
    """The runtime for an artifact, or an EdgeError with one line (backends raise all kinds of errors on a
    corrupt file: protobuf DecodeError, flatbuffer ValueError, zip errors)."""
    from core.runtime import BackendMissing, load_runtime
    try:
        return load_runtime(path, threads=threads)
    except Exception as exc:
        message = _one_line(exc)
        message = message if str(path) in message else f"--model {path}: {message}"
        raise (EdgeBackendMissing if isinstance(exc, BackendMissing) else EdgeError)(message) from None


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def recognizer_options(args: argparse.Namespace, runtime) -> ActionRecognizerOptions:
    """The library's options from the command line's."""
    return ActionRecognizerOptions(
        base_options=BaseOptions(runtime=runtime, pose_model_path=args.pose_model, pose_variant=args.pose_variant),
        window_s=args.window_s, stride_s=args.stride_s, min_confidence=args.min_confidence, max_persons=args.persons,
        unknown_threshold=args.unknown_threshold,
        pose_options=PoseOptions(min_detection_confidence=args.min_pose_confidence,
                                 min_presence_confidence=args.min_pose_confidence,
                                 min_body_visibility=args.min_body_visibility, coordinates=args.coordinates),
        person_options=PersonOptions(hold_s=args.hold_s, reset_s=args.reset_s, id_memory_s=args.id_memory_s,
                                     min_valid=args.min_valid),
        smoothing_options=SmoothingOptions(alpha=args.alpha))


def make_runner(options: ActionRecognizerOptions, events: EventWriter | None = None,
                pipelined: bool = True, explainer=None) -> tuple[EdgeRunner, ActionRecognizer]:
    """A runner and its recognizer; pipelined: results come back on runner.deliver (LIVE_STREAM for frames,
    SKELETONS with a callback for replays). explainer: core.explain.DecisionExplainer (--explain)."""
    runner = EdgeRunner(None, events, explainer)
    if pipelined:
        if options.running_mode is RunningMode.VIDEO:
            options.running_mode = RunningMode.LIVE_STREAM
        options.result_callback = runner.deliver
    else:
        options.result_callback = None
        if options.running_mode is RunningMode.LIVE_STREAM:
            options.running_mode = RunningMode.VIDEO
    runner.recognizer = ActionRecognizer.create_from_options(options)
    return runner, runner.recognizer


def write_stats(path: str | os.PathLike, result: RunResult, runner: EdgeRunner, source) -> None:
    """edge.run --stats: the run's summary as JSON (LatencyMeter.stats() plus what ran on what)."""
    rec = runner.recognizer
    record = {"source": source.describe(), "fps_source": getattr(source, "fps", None),
              "model": str(getattr(rec.runtime, "path", "")), "runtime": getattr(rec.runtime, "name", ""),
              "loop": "pipelined" if rec.pipelined else "synchronous", "stride_s": rec.stride / rec.model_fps,
              "window_s": rec.window_size / rec.model_fps, "frames_with_person": result.frames_with_person,
              "error": result.error, "rss_start_mb": result.rss_start_mb, "rss_end_mb": result.rss_end_mb,
              "load_avg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
              **result.stats}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(record, indent=1))


def print_summary(result: RunResult, runner: EdgeRunner, source, out=None) -> None:
    out = out or sys.stdout
    rec = runner.recognizer
    print(f"source: {source.describe()}", file=out)
    print(f"model: {rec.runtime.path} ({getattr(rec.runtime, 'name', '?')}), window "
          f"{rec.window_size / rec.model_fps:.2f} s = {rec.window_size} frames at the model's {rec.model_fps:g} fps "
          f"-> T={rec.spec.frames}, stride {rec.stride / rec.model_fps:.3f} s, classes {len(rec.class_names)}, "
          f"{'pipelined' if rec.pipelined else 'synchronous'} loop", file=out)
    print(runner.latency.table(), file=out)
    if result.frames and result.frames_with_person == 0:
        print(f"no person detected in any of the {result.frames} frames", file=out)
    else:
        print(f"person in {result.frames_with_person}/{result.frames} frames, {result.persons_seen} person id(s), "
              f"{result.classifications} classifications, {runner.events.count} events", file=out)
    if result.label_counts:
        print("labels: " + ", ".join(f"{k} x{v}" for k, v in sorted(result.label_counts.items(),
                                                                    key=lambda kv: -kv[1])), file=out)
    if result.dropped or getattr(source, "kind", "") == "camera":
        print(f"dropped: {result.dropped} frames the loop had no time for (it processes the newest frame)", file=out)
    if result.draw_dropped:
        print(f"overlay: {result.draw_dropped} results were not drawn (drawing fell behind; their events were "
              "written)", file=out)
    if result.rss_start_mb is not None and result.rss_end_mb is not None and result.frames:
        print(f"memory: RSS {result.rss_start_mb:.1f} MB after {result.rss_start_frame} frames -> "
              f"{result.rss_end_mb:.1f} MB after {result.frames} frames "
              f"({result.rss_end_mb - result.rss_start_mb:+.1f} MB)", file=out)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("stride_s", "window_s", "hold_s", "reset_s", "speed"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            print(f"{PROG}: error: --{name.replace('_', '-')} must be > 0, got {value}", file=sys.stderr)
            return EXIT_BAD_INPUT
    if args.persons is not None and args.persons < 1:
        print(f"{PROG}: error: --persons must be >= 1, got {args.persons}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.realtime and args.camera:
        print(f"{PROG}: error: --realtime is for --video and --skeletons (a camera is real time)", file=sys.stderr)
        return EXIT_BAD_INPUT
    display = args.display or (not args.headless and display_available())
    if args.display and not display_available():
        print(f"{PROG}: error: --display needs a display (none found: DISPLAY/WAYLAND_DISPLAY unset); "
              "use --headless --out-video out.mp4", file=sys.stderr)
        return EXIT_BAD_INPUT
    previous_sigterm = None
    if threading.current_thread() is threading.main_thread():  # a service stopped with SIGTERM ends like Ctrl-C
        previous_sigterm = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _main(args, display)
    finally:
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)


def _main(args: argparse.Namespace, display: bool) -> int:
    events = None
    source = recognizer = sink = None
    try:
        events = EventWriter(args.events, echo=sys.stdout if args.print_events else None)
    except OSError as exc:
        print(f"{PROG}: error: --events {args.events}: cannot write ({_one_line(exc)})", file=sys.stderr)
        return EXIT_FAILED
    try:
        runtime = load_runtime_or_fail(args.model, args.threads)
        spec = runtime.spec
        if args.persons and spec.persons > 1 and args.persons > spec.persons:
            raise EdgeError(f"--persons {args.persons}: the model classifies {spec.persons} people together")
        options = recognizer_options(args, runtime)
        explainer = None
        if args.explain or args.explain_ckpt:
            from core.checkpoint import CheckpointError  # torch: only when asked to explain
            from core.explain import DecisionExplainer
            try:
                explainer = DecisionExplainer(runtime, args.explain or "auto", args.explain_ckpt, threads=args.threads)
            except (ValueError, CheckpointError) as exc:
                raise EdgeError(f"--explain: {exc}") from None
            print(f"--explain: {explainer.describe()}")
        pipelined = (args.loop or ("sync" if args.skeletons else "pipelined")) == "pipelined"
        canvas = None
        if args.skeletons:
            from edge.capture import SkeletonReplaySource, load_skeleton_sequence
            seq = load_skeleton_sequence(args.skeletons, args.index, args.skeleton_layout)
            if seq.data.shape[-1] < spec.channels:
                raise EdgeError(f"--skeletons {args.skeletons}: {seq.data.shape[-1]} channels per joint, the model "
                                f"needs {spec.channels}")
            source = SkeletonReplaySource(seq, args.repeat, args.fps or seq.fps or spec.fps, args.max_frames,
                                          args.skeletons, speed=args.speed if args.realtime else None)
            options.running_mode, options.skeleton_layout = RunningMode.SKELETONS, seq.layout
            if args.out_video or display:
                from edge.overlay import SkeletonCanvas
                canvas = SkeletonCanvas(seq.data, seq.layout)
        else:
            from edge.pose import resolve_pose_model
            from edge.recognizer import LayoutMapper
            LayoutMapper(POSE_LAYOUT, spec.layout)  # fail on a layout mismatch before opening anything
            options.base_options.pose_model_path = resolve_pose_model(args.pose_model, args.pose_variant)
            from edge.capture import CameraSource, VideoFileSource
            device = int(args.camera) if str(args.camera).lstrip("-").isdigit() else (args.camera or args.video)
            if args.video:
                VideoFileSource(args.video).close()  # a missing / unreadable file: one line before anything loads
            else:
                CameraSource(device).close()  # a camera that does not open: one line before anything loads
            options.running_mode = RunningMode.LIVE_STREAM if pipelined else RunningMode.VIDEO
        runner, recognizer = make_runner(options, events, pipelined, explainer)
        if source is None:  # opened once the loop is ready: a camera's frames start flowing now
            if args.video and not args.realtime:
                source = VideoFileSource(args.video, args.max_frames)
            else:  # a camera, or a video file played like one (its own reader thread, at its frame rate)
                source = CameraSource(device, args.max_frames, speed=args.speed, end_is_eof=bool(args.video))
        if args.out_video:
            from edge.overlay import VideoSink
            size = (canvas.size, canvas.size) if canvas is not None else source.size
            sink = VideoSink(args.out_video, source.fps, size)
        result = runner.run(source, sink, display, canvas, progress=not args.no_progress and sys.stderr.isatty(),
                            realtime=bool(args.realtime or args.camera))
        print_summary(result, runner, source)
        if args.stats:
            write_stats(args.stats, result, runner, source)
            print(f"stats: {args.stats}")
        if args.out_video:
            print(f"overlay video: {args.out_video} ({sink.frames} frames)")
        if args.events:
            print(f"events: {args.events} ({events.count} lines)")
        if result.error:
            print(f"{PROG}: {'error: ' if result.error != 'interrupted' else ''}{result.error}", file=sys.stderr)
            return 130 if result.error == "interrupted" else EXIT_FAILED
        return 0
    except EdgeError as exc:
        events.emit("error", message=str(exc))
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # an output path that cannot be created, a disk that filled up, ...
        message = f"{getattr(exc, 'filename', None) or ''}: {exc.strerror or _one_line(exc)}".lstrip(": ")
        events.emit("error", message=message)
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return exit_code_for(exc) or EXIT_FAILED  # a path that is not a folder: 2; a full disk: 1
    except Exception as exc:  # a bug: still one line (and valid events); LAST_EDGE_DEBUG=1 shows the traceback
        if os.environ.get("LAST_EDGE_DEBUG"):
            raise
        events.emit("error", message=f"internal error: {type(exc).__name__}: {_one_line(exc)}")
        print(f"{PROG}: internal error: {type(exc).__name__}: {_one_line(exc)} (set LAST_EDGE_DEBUG=1 for the "
              "traceback)", file=sys.stderr)
        return 1
    finally:
        for closable in (sink, recognizer, source, events):
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
