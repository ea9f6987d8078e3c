"""The edge loop as a library, in the style of MediaPipe Tasks (pose_landmarker.py):

    from edge import ActionRecognizer, ActionRecognizerOptions, BaseOptions, RunningMode

    options = ActionRecognizerOptions(base_options=BaseOptions(model_path="best.onnx"),
                                      running_mode=RunningMode.VIDEO, max_persons=2)
    with ActionRecognizer.create_from_options(options) as recognizer:
        for index, frame in enumerate(frames):               # BGR numpy images, as OpenCV reads them
            result = recognizer.recognize_for_video(frame, timestamp_ms=index * 1000 // 30)
            for person in result.persons:                    # stable ids, per-person label and state
                print(person.person_id, person.state, person.label, person.confidence)
            for event in result.events:                      # action_start / action_end ... with the person id
                print(event.to_dict())

Options are grouped as in MediaPipe: `base_options` (the model, the pose model, threads), a short list of task
options (running mode, callback, people, window, stride, confidence, skeleton layout) and three groups
(`pose_options`, `person_options`, `smoothing_options`). The flat keywords of the previous release
(`model_path=`, `smoothing=`, `hold_s=`, ...) still work for one release, with a DeprecationWarning.

Running modes: VIDEO (frames, synchronous: pose, then the classifier, on the caller's thread), LIVE_STREAM
(recognize_async: pipelined, the result arrives on `result_callback(result, image, timestamp_ms)`, in frame
order) and SKELETONS (pose from elsewhere: pass (P, V, C) skeletons of `skeleton_layout`; a 4th channel is
visibility; synchronous, or pipelined with a result_callback).

Pipelined (edge.pipeline): pose, tracking and windows run on one thread, the classifier, smoothing and events on
another, so while the classifier works on the window up to frame t, pose already runs on frame t+1: the loop
keeps up when max(pose, classifier) fits the frame, not their sum. Hand-offs are bounded: the newest frame
replaces one the pose stage has not taken (dropped, counted), and a window is skipped when a newer window of the
same person is already waiting (classifications dropped, never frames or order). `block=True` waits instead
(files, replays): then every frame and window is processed and the results equal the synchronous ones.

What happens per frame: pose (VIDEO / LIVE_STREAM) -> a tracker gives every person a stable id -> per person, a
body-visibility check (hips and shoulders; otherwise `partial_body`, nothing classified) -> the skeleton is
resampled to the frame rate the model was trained at (so the window and stride are durations) -> every
`stride_s` of stream time (default: every model frame) a full window is classified -> EMA + hysteresis ->
action events.

The library draws nothing, opens no window, writes no file and shows no progress bar (`python -m edge.run` does
that). Memory is fixed: per person a ring buffer of the window, a bounded number of people, bounded hand-offs;
results are returned, never accumulated."""
from __future__ import annotations

import enum
import functools
import threading
import warnings
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from core.layouts import get_layout
from core.mapping import mediapipe_world_to_camera
from core.openset import rule_from_metadata
from core.preprocess import prepare_clip
from edge.body import BodyCheck
from edge.errors import CallbackError, EdgeBackendMissing, EdgeError
from edge.events import ActionEvent, ActionEvents, PresenceEvents
from edge.smoothing import UNKNOWN, ActionSmoother, softmax
from edge.tracking import SkeletonTracker, torso_joints
from edge.validate import check_frame, check_skeletons, check_timestamp
from edge.window import SkeletonWindow, TimeResampler, WindowPolicy

POSE_LAYOUT = "mediapipe33"
STATES = ("tracking", "warming_up", "partial_body", "no_person")


class RunningMode(enum.Enum):
    VIDEO = "video"  # decoded frames in order, recognize_for_video() returns the result
    LIVE_STREAM = "live_stream"  # camera frames, recognize_async() -> result_callback (pipelined)
    SKELETONS = "skeletons"  # skeletons from another pose estimator: recognize_for_video(), or recognize_async()
    # with a result_callback (pipelined)


# ---- options, grouped the MediaPipe way: what runs (base_options), then the task's own options ------------------
@dataclass
class BaseOptions:
    """What runs: the action model, the pose model and the model runtime's threads."""
    model_path: str | Path | None = None  # .pt / .onnx / .tflite / .engine / .mlpackage (with its metadata)
    runtime: Any = None  # an already loaded core.runtime.Runtime instead of model_path (shares one model)
    threads: int | None = 1  # CPU threads of the model runtime (the pose estimator wants the other cores)
    pose_model_path: str | Path | None = None  # MediaPipe pose_landmarker .task (None: cache / download)
    pose_variant: str = "full"  # lite | full | heavy: the official bundle to look for when no path is given
    quiet: bool = True  # silence MediaPipe / TFLite / absl console chatter


@dataclass
class PoseOptions:
    """MediaPipe's thresholds (lower finds more, smaller people) and what of its output reaches the model."""
    min_detection_confidence: float = 0.5
    min_presence_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    min_body_visibility: float = 0.5  # hips and shoulders must be at least this visible to classify
    coordinates: str | None = None  # which MediaPipe landmarks feed the model: world | image (None: the model's)


@dataclass
class PersonOptions:
    """People over time."""
    hold_s: float = 0.2  # a lost person keeps their last pose this long; after it their action ends
    reset_s: float = 1.0  # a person unseen this long starts their window afresh
    id_memory_s: float = 3.0  # a lost person's id waits this long for them (never handed to anyone else)
    min_valid: float = 0.75  # least fraction of the window with a real (or held) pose to classify


@dataclass
class SmoothingOptions:
    """From each window's probabilities to actions: EMA and hysteresis."""
    alpha: float = 0.5  # EMA weight of the newest probabilities (1 = no smoothing)
    exit_confidence: float | None = None  # an action ends below this (default min_confidence - 0.1)
    margin: float = 0.1  # another class must beat the current one by this much to take over


@dataclass
class ActionRecognizerOptions:
    base_options: BaseOptions = field(default_factory=BaseOptions)
    running_mode: RunningMode = RunningMode.VIDEO
    result_callback: Callable[["ActionResult", Any, int], None] | None = None  # LIVE_STREAM, pipelined SKELETONS
    max_persons: int | None = None  # people detected and tracked (None: the model's M)
    window_s: float | None = None  # None: the model's online window at its training frame rate
    stride_s: float | None = None  # classify every stride_s of stream time; None: every model frame
    min_confidence: float = 0.5  # an action starts at this smoothed probability; below it the label is unknown
    unknown_threshold: float | None = None  # open-set score under which a window is unknown (None: the model's)
    skeleton_layout: str = POSE_LAYOUT  # SKELETONS mode: layout of the skeletons passed in
    pose_options: PoseOptions = field(default_factory=PoseOptions)
    person_options: PersonOptions = field(default_factory=PersonOptions)
    smoothing_options: SmoothingOptions = field(default_factory=SmoothingOptions)

    def __getattr__(self, name: str) -> Any:  # only reached for names that are not fields
        if name in LEGACY_OPTIONS:
            group, key = LEGACY_OPTIONS[name]
            _warn_legacy([name], stacklevel=3)
            return getattr(getattr(self, group), key)
        raise AttributeError(f"{type(self).__name__!s} has no option {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in LEGACY_OPTIONS:
            group, key = LEGACY_OPTIONS[name]
            _warn_legacy([name], stacklevel=3)
            setattr(getattr(self, group), key, value)
        else:
            object.__setattr__(self, name, value)


# the flat keywords of the previous release -> (group, field); accepted for one release with a DeprecationWarning
LEGACY_OPTIONS: dict[str, tuple[str, str]] = {
    "model_path": ("base_options", "model_path"), "runtime": ("base_options", "runtime"),
    "threads": ("base_options", "threads"), "pose_model_path": ("base_options", "pose_model_path"),
    "pose_variant": ("base_options", "pose_variant"), "quiet": ("base_options", "quiet"),
    "min_pose_detection_confidence": ("pose_options", "min_detection_confidence"),
    "min_pose_presence_confidence": ("pose_options", "min_presence_confidence"),
    "min_tracking_confidence": ("pose_options", "min_tracking_confidence"),
    "min_body_visibility": ("pose_options", "min_body_visibility"), "coordinates": ("pose_options", "coordinates"),
    "hold_s": ("person_options", "hold_s"), "reset_s": ("person_options", "reset_s"),
    "min_valid": ("person_options", "min_valid"), "smoothing": ("smoothing_options", "alpha"),
    "exit_confidence": ("smoothing_options", "exit_confidence"), "margin": ("smoothing_options", "margin"),
}

LEGACY_ORDER = ("model_path", "running_mode", "result_callback", "window_s", "stride_s", "smoothing", "min_confidence",
                "exit_confidence", "margin", "max_persons", "hold_s", "reset_s", "min_valid", "min_body_visibility",
                "pose_model_path", "pose_variant", "min_pose_detection_confidence", "min_pose_presence_confidence",
                "min_tracking_confidence", "skeleton_layout", "coordinates", "threads", "quiet", "runtime")


def _warn_legacy(names: list[str], stacklevel: int) -> None:
    spelled = ", ".join(f"{n} -> {'.'.join(LEGACY_OPTIONS[n])}" for n in names)
    warnings.warn(f"ActionRecognizerOptions: flat options are deprecated and will be removed in the next release; "
                  f"use the grouped spelling ({spelled})", DeprecationWarning, stacklevel=stacklevel)


def _accept_legacy_keywords(init: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(init)
    def __init__(self: ActionRecognizerOptions, *args: Any, **kwargs: Any) -> None:
        if args and not isinstance(args[0], BaseOptions):  # positional arguments in the previous release's order
            kwargs.update(zip(LEGACY_ORDER, args))
            args = ()
        legacy = {k: kwargs.pop(k) for k in list(kwargs) if k in LEGACY_OPTIONS}
        init(self, *args, **kwargs)
        if legacy:
            _warn_legacy(list(legacy), stacklevel=3)
            for name, value in legacy.items():
                group, key = LEGACY_OPTIONS[name]
                setattr(getattr(self, group), key, value)
    return __init__


ActionRecognizerOptions.__init__ = _accept_legacy_keywords(ActionRecognizerOptions.__init__)  # type: ignore


@dataclass
class PersonResult:
    person_id: int
    state: str  # tracking | warming_up | partial_body | no_person
    label: str  # the current action, or "unknown"
    confidence: float | None  # smoothed probability of `label` (None before the first classification)
    probabilities: np.ndarray | None  # smoothed probabilities over class_names (None before the first)
    landmarks: np.ndarray | None = None  # this frame's skeleton (image landmarks for video; as given for skeletons)


@dataclass
class ActionResult:
    timestamp_ms: float
    persons: list[PersonResult]  # everyone tracked: seen this frame, or lost for less than id_memory_s
    events: list[ActionEvent]  # what happened at this step (action_start / action_end / person_found / ...)
    classified: bool  # a classification ran at this step
    latency_ms: dict[str, float] = field(default_factory=dict)  # per stage of this step
    # time.perf_counter() when this frame was handed in ("submitted"), its pose was done ("pose_done"), its
    # classification finished ("classified", when one ran) and its result was complete ("done")
    times_s: dict[str, float] = field(default_factory=dict)
    classifications_dropped: int = 0  # pipelined: classifications due at this step that a newer one made stale

    @property
    def labels(self) -> dict[int, str]:
        return {p.person_id: p.label for p in self.persons}


class LayoutMapper:
    """Skeletons of the source layout (MediaPipe 33, or a replay's layout) -> the model's layout."""

    def __init__(self, source: str, target: str):
        self.source, self.target = source, target
        self.identity = source == target
        if self.identity:
            return
        from core.mapping import convert_layout
        self._convert = convert_layout
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
class _Detection:
    model_input: np.ndarray  # (V_source, C) the coordinates the model sees (before layout mapping)
    track_points: np.ndarray  # (V_source, D) where people are comparable (image landmarks / the skeleton)
    visibility: np.ndarray  # (V_source,)
    landmarks: np.ndarray  # returned to the caller (drawing)
    whole_body: bool  # hips and shoulders visible enough


class _Subject:
    """What is classified together: one person (M = 1 models) or the M people of an M-person model."""

    def __init__(self, key: int, recognizer: "ActionRecognizer"):
        r, smoothing = recognizer, recognizer.options.smoothing_options
        self.key = key
        self.slots: list[int | None] = [None] * r.spec.persons  # person id per model person slot
        self.resampler = TimeResampler(r.model_fps, max_gap_s=r.options.person_options.hold_s)
        self.window = SkeletonWindow(r.window_size, r.spec.persons, r.model_layout.num_joints, r.spec.channels,
                                     r.policy)
        self.smoother = ActionSmoother(r.class_names, smoothing.alpha, r.options.min_confidence,
                                       smoothing.exit_confidence, smoothing.margin)
        self.actions = ActionEvents(key)
        self.since_classify = 0
        self.last_whole_s: float | None = None  # last time a classifiable body was seen
        self.last_state = "warming_up"
        self.lost_reported = False
        self.decision = None


# A frame goes through three steps: plan (tracking, windows, the inputs to classify), classify (the runtime) and
# apply (smoothing, events, the result). Plan changes only what tracking and windows own; apply changes only what
# smoothing and events own, in frame order; so the synchronous call and the pipeline (plan and classify+apply on
# two threads) give the same results whenever the pipeline classifies the same windows.
@dataclass
class _Job:
    subject: _Subject
    grid_t: float  # stream time of the window's newest sample
    x: np.ndarray | None  # the prepared window (released once classified)
    clip: np.ndarray | None = None  # the window itself, for the open-set body test (core.openset)
    logits: np.ndarray | None = None
    dropped: bool = False  # pipelined: a newer window of the same subject was waiting


@dataclass
class _SubjectStep:
    subject: _Subject
    slots: list[int | None]  # the person ids of this frame (the subject's slots change in later plans)
    ops: list[tuple[str, _Job | None]]  # ("reset", None) | ("classify", job), in stream order
    whole: bool  # someone classifiable was seen
    partial: bool  # someone was seen, but not whole
    lost: str | None  # no_person | partial_body: the action ends at this frame


@dataclass
class _Plan:
    timestamp_ms: float
    seen: list[int]  # the person ids detected in this frame
    live: set[int]  # the ids the tracker still remembers
    forgotten: list[_Subject]  # subjects the tracker dropped
    steps: list[_SubjectStep]
    detections: dict[int, _Detection]
    jobs: list[_Job]
    latency: dict[str, float]
    times: dict[str, float]
    image: Any = None  # handed back to the result callback
    keep_all: bool = False  # submitted with block=True: classify every window, drop nothing


@dataclass
class _Submitted:
    item: Any
    timestamp_ms: float
    submitted: float
    keep_all: bool


class ActionRecognizer:
    """Skeleton action recognition on a stream of frames or skeletons (see the module docstring)."""

    def __init__(self, options: ActionRecognizerOptions):
        from core.runtime import BackendMissing, load_runtime
        self.options = options
        base, person = options.base_options, options.person_options
        mode = options.running_mode
        if not isinstance(mode, RunningMode):
            raise ValueError(f"running_mode must be a RunningMode, got {mode!r}")
        if mode is RunningMode.LIVE_STREAM and options.result_callback is None:
            raise ValueError("LIVE_STREAM mode needs a result_callback")
        if mode is RunningMode.VIDEO and options.result_callback is not None:
            raise ValueError("result_callback is used in LIVE_STREAM mode (and pipelined SKELETONS mode)")
        self.pipelined = options.result_callback is not None
        self._owns_runtime = base.runtime is None  # a runtime passed in belongs to the caller
        if base.runtime is not None:
            self.runtime = base.runtime
        elif base.model_path is not None:
            try:
                self.runtime = load_runtime(base.model_path, threads=base.threads)
            except Exception as exc:  # backends raise all kinds of errors on a corrupt file: one line
                text = str(exc).strip().splitlines()
                message = text[0] if text else type(exc).__name__
                message = message if str(base.model_path) in message else f"{base.model_path}: {message}"
                raise (EdgeBackendMissing if isinstance(exc, BackendMissing) else EdgeError)(message) from None
        else:
            raise ValueError("ActionRecognizerOptions needs base_options.model_path (or a loaded runtime)")
        self.spec = self.runtime.spec
        self.class_names = list(self.runtime.class_names)
        # "nothing I know": the open-set rule of the artifact (train.openset), or the option's threshold
        self.openset = rule_from_metadata(getattr(self.runtime, "metadata", None) or {}, options.unknown_threshold)
        self.model_layout = get_layout(self.spec.layout)
        self.model_fps = self.spec.model_fps
        window_s = options.window_s if options.window_s is not None else self.spec.online_window_s
        self.window_size = max(1, int(round(window_s * self.model_fps)))
        stride_s = options.stride_s if options.stride_s is not None else 1 / self.model_fps
        self.stride = max(1, int(round(stride_s * self.model_fps)))
        self.policy = WindowPolicy(hold_frames=int(round(person.hold_s * self.model_fps)),
                                   reset_after=int(round(person.reset_s * self.model_fps)),
                                   min_valid=person.min_valid)
        self.max_persons = options.max_persons or self.spec.persons
        if self.max_persons < 1:
            raise ValueError(f"max_persons must be >= 1, got {self.max_persons}")
        self.source_layout_name = options.skeleton_layout if mode is RunningMode.SKELETONS else POSE_LAYOUT
        self.source_layout = get_layout(self.source_layout_name)
        self.mapper = LayoutMapper(self.source_layout_name, self.spec.layout)
        self.coordinates = options.pose_options.coordinates or self.spec.coordinates
        # at most max_persons ids per frame in every mode (SKELETONS too); see edge/tracking.py for the gates
        self.tracker = SkeletonTracker(max_age_s=person.id_memory_s, max_persons=self.max_persons,
                                       max_tracks=4 * self.max_persons, anchor_joints=torso_joints(self.source_layout))
        self.presence = PresenceEvents(person.hold_s)  # person_found / person_lost that pair (edge/events.py)
        # geometry, not visibility alone (edge/body.py)
        self.body_check = BodyCheck(min_visibility=options.pose_options.min_body_visibility)
        self.subjects: dict[int, _Subject] = {}
        self._body_joints = torso_joints(self.source_layout)
        self._last_ts: float | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.pose = None
        if mode is not RunningMode.SKELETONS:
            from edge.pose import MediaPipePose, resolve_pose_model
            pose = options.pose_options
            model = resolve_pose_model(base.pose_model_path, base.pose_variant)
            # VIDEO mode of MediaPipe in both running modes: LIVE_STREAM runs it on the pipeline's own thread
            self.pose = MediaPipePose(model, mode="video", num_poses=self.max_persons,
                                      min_detection=pose.min_detection_confidence,
                                      min_presence=pose.min_presence_confidence,
                                      min_tracking=pose.min_tracking_confidence, quiet=base.quiet)
        # one inference before the first frame: first calls of a runtime are slow (allocation, kernel choice)
        self.runtime.predict(np.zeros((1,) + tuple(prepare_clip(np.zeros(
            (self.spec.persons, self.window_size, self.model_layout.num_joints, self.spec.channels), np.float32),
            self.spec).shape), np.float32))
        self._pipeline = None
        if self.pipelined:
            from edge.pipeline import Pipeline
            self._pipeline = Pipeline(self._plan_submitted, self._emit, name="recognizer")

    # ---- construction, MediaPipe style ----------------------------------------------------------
    @classmethod
    def create_from_options(cls, options: ActionRecognizerOptions) -> "ActionRecognizer":
        return cls(options)

    @classmethod
    def create_from_model_path(cls, model_path: str | Path, running_mode: RunningMode = RunningMode.VIDEO,
                               **kwargs: Any) -> "ActionRecognizer":
        return cls(ActionRecognizerOptions(base_options=BaseOptions(model_path=model_path),
                                           running_mode=running_mode, **kwargs))

    def close(self) -> None:
        """Stop the pipeline (frames still in flight are discarded), release MediaPipe and the runtime. An
        exception of the pipeline that no call reported yet is raised here."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._pipeline is not None:
                self._pipeline.close()
        finally:
            if self.pose is not None:
                self.pose.close()
            if self._owns_runtime:
                self.runtime.close()

    def __enter__(self) -> "ActionRecognizer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- public calls --------------------------------------------------------------------------
    def recognize_for_video(self, frame_or_skeletons: Any, timestamp_ms: float) -> ActionResult:
        """VIDEO: a BGR image (numpy, as OpenCV decodes it) or a mediapipe.Image. SKELETONS: (P, V, C) skeletons
        (or a list of (V, C)); an empty array or None means nobody. Timestamps must increase."""
        if self.pipelined:
            raise ValueError("recognize_for_video is for VIDEO and SKELETONS mode without a result_callback; "
                             "use recognize_async")
        submitted = time.perf_counter()
        frame_or_skeletons = self._check_input(frame_or_skeletons)  # a named error before any state changes
        self._check_open_and_time(timestamp_ms)
        latency: dict[str, float] = {}
        detections = self._detect(frame_or_skeletons, float(timestamp_ms), latency)
        times = {"submitted": submitted, "pose_done": time.perf_counter()}
        with self._lock:
            self._last_ts = float(timestamp_ms)  # only once the input was accepted: a call that raised can be retried
            plan = self._plan(detections, float(timestamp_ms), latency, times)
            self._classify(plan)
            return self._apply(plan)

    def recognize_async(self, frame_or_skeletons: Any, timestamp_ms: float, block: bool = False) -> None:
        """LIVE_STREAM (frames) and SKELETONS with a result_callback: hand a frame to the pipeline and return; its
        ActionResult arrives on result_callback(result, frame, timestamp_ms), in frame order, from the pipeline's
        thread. block=False (cameras): a frame the pose stage had no time for is replaced by the newer one and
        never gets a result (counted in dropped_frames), and a classification a newer one made stale is skipped
        (ActionResult.classifications_dropped), so the stream never falls behind real time. block=True (files,
        replays): waits instead, every frame and every window is processed. An exception of the pipeline (the
        runtime, the callback) is raised by the next call."""
        if not self.pipelined:
            raise ValueError("recognize_async needs a result_callback (LIVE_STREAM, or SKELETONS with a callback); "
                             "use recognize_for_video")
        frame_or_skeletons = self._check_input(frame_or_skeletons)
        self._check_open_and_time(timestamp_ms)
        self._pipeline.submit(_Submitted(frame_or_skeletons, float(timestamp_ms), time.perf_counter(), block), block)
        self._last_ts = float(timestamp_ms)

    @property
    def dropped_frames(self) -> int:
        """Frames handed to recognize_async that the pose stage never took (a newer one replaced them)."""
        return self._pipeline.dropped if self._pipeline is not None else 0

    def flush(self, timeout: float | None = None) -> bool:
        """Pipelined: wait until every frame handed in has its result (or was dropped); False on timeout."""
        return self._pipeline.drain(timeout) if self._pipeline is not None else True

    def finish(self, timestamp_ms: float | None = None) -> list[ActionEvent]:
        """End every active action (reason end_of_stream); call at the end of a video. Pipelined: after every
        frame handed in has its result."""
        self.flush()
        t = (timestamp_ms if timestamp_ms is not None else (self._last_ts or 0.0)) / 1000.0
        out: list[ActionEvent] = []
        with self._lock:
            for subject in self.subjects.values():
                subject.actions.end(t, "end_of_stream", out)
        return out

    # ---- internals -----------------------------------------------------------------------------
    def _check_open_and_time(self, timestamp_ms: float) -> None:
        if self._closed:
            raise ValueError("this ActionRecognizer is closed")
        minimum = None if self.pose is None else 0.0  # MediaPipe: t >= 0
        check_timestamp(timestamp_ms, self._last_ts, minimum)  # set once the input was accepted

    def _check_input(self, item: Any) -> Any:
        """Validated before the timestamp is taken, so a call that raised can be retried."""
        if self.pose is not None:
            return check_frame(item)
        return check_skeletons(item, self.source_layout.num_joints, self.spec.channels, self.source_layout_name)

    def _detect(self, item: Any, ts_ms: float, latency: dict[str, float]) -> list[_Detection]:
        if self.pose is None:
            return self._skeleton_detections(item)
        t0 = time.perf_counter()
        poses = self.pose.detect(item, int(ts_ms))
        latency["pose"] = (time.perf_counter() - t0) * 1e3
        return self._pose_detections(poses)

    def _plan_submitted(self, frame: _Submitted) -> _Plan:
        """The pipeline's first stage (its own thread): pose, tracking, windows."""
        latency: dict[str, float] = {}
        detections = self._detect(frame.item, frame.timestamp_ms, latency)
        times = {"submitted": frame.submitted, "pose_done": time.perf_counter()}
        with self._lock:
            plan = self._plan(detections, frame.timestamp_ms, latency, times)
        plan.image, plan.keep_all = frame.item, frame.keep_all
        return plan

    def _emit(self, plan: _Plan, behind: list[_Plan]) -> None:
        """The pipeline's second stage (its own thread): classify, smooth, hand the result to the callback."""
        if not plan.keep_all:  # newest-window policy: skip a window when a newer one of the subject is waiting
            newer = {id(job.subject) for later in behind for job in later.jobs}
            last = {id(job.subject): job for job in plan.jobs}
            for job in plan.jobs:
                job.dropped = id(job.subject) in newer or last[id(job.subject)] is not job
        self._classify(plan)
        with self._lock:
            result = self._apply(plan)
        try:
            self.options.result_callback(result, plan.image, int(plan.timestamp_ms))
        except Exception as exc:  # the pipeline re-raises it in the caller's thread (next call, flush or close)
            text = str(exc).strip().splitlines()
            raise CallbackError(f"result_callback raised {type(exc).__name__}: {text[0] if text else ''}") from exc

    def _whole_body(self, visibility: np.ndarray) -> bool:
        if not self._body_joints:
            return True
        return bool((visibility[self._body_joints] >= self.options.pose_options.min_body_visibility).all())

    def _pose_detections(self, poses: list) -> list[_Detection]:
        c = self.spec.channels
        out = []
        for p in poses:
            if self.coordinates == "world":
                coords = mediapipe_world_to_camera(p.world[:, :3])[:, :c]
            else:  # image landmarks: normalised x, y (down), relative z, as MediaPipe recordings store them
                coords = p.image[:, :c]
            vis = p.world[:, 3]
            whole = self._whole_body(vis) and (self.options.pose_options.min_body_visibility <= 0 or  # 0 turns the check off
                                               self.body_check.whole_body(p.image, p.image_size))  # edge/body.py
            out.append(_Detection(np.asarray(coords, np.float32), p.track_points, vis, p.image, whole))
        return out

    def _skeleton_detections(self, skeletons: Any) -> list[_Detection]:
        v = self.source_layout.num_joints
        c = self.spec.channels
        people = check_skeletons(skeletons, v, c, self.source_layout_name)  # NaN / inf joints: missing joints
        out = []
        for p in people:
            if p.ndim != 2 or p.shape[0] != v or p.shape[1] < c:
                raise ValueError(f"a skeleton of layout {self.source_layout_name} must be ({v}, >={c}), got "
                                 f"{p.shape}")
            if not np.abs(p).sum() > 0:
                continue  # an all-zero row is nobody
            seen = np.abs(p[:, :3]).sum(1) > 0
            vis = np.where(seen, p[:, 3], 0.0) if p.shape[1] > 3 else seen.astype(np.float32)
            out.append(_Detection(p[:, :c], p[:, :min(3, p.shape[1])], vis.astype(np.float32), p,
                                  self._whole_body(vis)))
        return out

    def _subject_for(self, person_id: int) -> _Subject:
        """M = 1: every person their own subject. M > 1: one subject, people keep the slot they got first."""
        if self.spec.persons == 1:
            if person_id not in self.subjects:
                self.subjects[person_id] = _Subject(person_id, self)
                self.subjects[person_id].slots[0] = person_id
            return self.subjects[person_id]
        if 0 not in self.subjects:
            self.subjects[0] = _Subject(0, self)
        subject = self.subjects[0]
        if person_id not in subject.slots and None in subject.slots:
            subject.slots[subject.slots.index(None)] = person_id
        return subject

    # ---- plan: tracking and windows -----------------------------------------------------------------
    def _plan(self, detections: list[_Detection], ts_ms: float, latency: dict[str, float],
              times: dict[str, float]) -> _Plan:
        now = ts_ms / 1000.0
        t0 = time.perf_counter()
        ids = self.tracker.update([d.track_points for d in detections], now, [d.visibility for d in detections])
        tracked = [(pid, d) for pid, d in zip(ids, detections) if pid is not None]  # None: beyond max_persons
        ids = [pid for pid, _ in tracked]
        by_id = dict(tracked)
        for pid in ids:
            self._subject_for(pid)
        # forget people the tracker dropped (unseen for id_memory_s)
        live = set(self.tracker.tracks)
        forgotten = [self.subjects.pop(k) for k in [k for k, s in self.subjects.items()
                                                    if not any(p in live for p in s.slots if p is not None)]]
        for subject in self.subjects.values():
            subject.slots = [p if p in live else None for p in subject.slots]
            if self.spec.persons > 1:
                for pid in ids:
                    if pid not in subject.slots and None in subject.slots:
                        subject.slots[subject.slots.index(None)] = pid
        latency["track"] = (time.perf_counter() - t0) * 1e3
        steps = [self._plan_subject(subject, by_id, now, latency) for subject in self.subjects.values()]
        jobs = [job for step in steps for kind, job in step.ops if job is not None]
        return _Plan(ts_ms, ids, live, forgotten, steps, by_id, jobs, latency, times)

    def _plan_subject(self, subject: _Subject, by_id: dict[int, _Detection], now: float,
                      latency: dict[str, float]) -> _SubjectStep:
        """Push this frame into the subject's window (at the model's frame rate); prepare the windows due."""
        seen = [by_id.get(p) if p is not None else None for p in subject.slots]
        whole = [d for d in seen if d is not None and d.whole_body]
        frame = None
        if whole:
            src = np.zeros((len(subject.slots), self.source_layout.num_joints, self.spec.channels), np.float32)
            for slot, det in enumerate(seen):
                if det is not None and det.whole_body:
                    src[slot] = det.model_input
            frame = self.mapper(src)
            subject.last_whole_s = now
            subject.lost_reported = False
        partial = not whole and any(d is not None for d in seen)
        ops: list[tuple[str, _Job | None]] = []
        for grid_t, sample in subject.resampler.push(now, frame):
            state = subject.window.push(sample)
            subject.since_classify += 1
            if state == "reset":
                ops.append(("reset", None))
            if sample is not None and subject.window.ready and subject.since_classify >= self.stride:
                subject.since_classify = 0
                t0 = time.perf_counter()
                clip = subject.window.clip()
                ops.append(("classify", _Job(subject, grid_t, prepare_clip(clip, self.spec)[None],
                                             clip if self.openset is not None else None)))
                latency["preprocess"] = latency.get("preprocess", 0.0) + (time.perf_counter() - t0) * 1e3
        # a person out of view (or only partly in view) for longer than the hold time: their action ends
        gone_for = now - subject.last_whole_s if subject.last_whole_s is not None else np.inf
        lost = None
        if not whole and gone_for > self.options.person_options.hold_s and not subject.lost_reported:
            lost = "partial_body" if partial else "no_person"
            subject.lost_reported = True
        return _SubjectStep(subject, list(subject.slots), ops, bool(whole), partial, lost)

    # ---- classify: the runtime ---------------------------------------------------------------------
    def _classify(self, plan: _Plan) -> None:
        ran = False
        for job in plan.jobs:
            if not job.dropped:
                t0 = time.perf_counter()
                job.logits = self.runtime.predict(job.x)[0]
                plan.latency["classify"] = plan.latency.get("classify", 0.0) + (time.perf_counter() - t0) * 1e3
                ran = True
            job.x = None
        if ran:
            plan.times["classified"] = time.perf_counter()

    # ---- apply: smoothing, events, the result --------------------------------------------------------
    def _apply(self, plan: _Plan) -> ActionResult:
        now = plan.timestamp_ms / 1000.0
        events: list[ActionEvent] = []
        self.presence.found(plan.seen, now, events)
        for subject in plan.forgotten:
            subject.actions.end(now, "no_person", events)
        classified = False
        persons: list[PersonResult] = []
        t0 = time.perf_counter()
        for step in plan.steps:
            subject = step.subject
            for kind, job in step.ops:
                if kind == "reset":
                    subject.smoother.clear()
                    subject.decision = None
                elif job.logits is not None:
                    # an unknown window (core.openset) carries no evidence for any class: the label decays to unknown
                    decision = subject.smoother.update(softmax(job.logits) if self.openset is None else
                                                       self.openset.probabilities(job.logits, job.clip))
                    subject.actions.update(decision, job.grid_t, events)
                    subject.decision = decision
                    classified = True
            if step.lost is not None:
                subject.actions.end(now, step.lost, events)
                subject.smoother.clear()
                subject.decision = None
            if step.whole:
                subject.last_state = "tracking" if subject.decision is not None else "warming_up"
            else:
                subject.last_state = "partial_body" if step.partial else "no_person"
            for pid in step.slots:
                if pid is None:
                    continue
                det = plan.detections.get(pid)
                state = subject.last_state
                if det is None:
                    state = "no_person"
                elif not det.whole_body:
                    state = "partial_body"
                d = subject.decision
                persons.append(PersonResult(pid, state, d.label if d is not None else UNKNOWN,
                                            d.confidence if d is not None else None,
                                            d.probs if d is not None else None,
                                            det.landmarks if det is not None else None))
        if plan.jobs:
            plan.latency["smoothing"] = (time.perf_counter() - t0) * 1e3
        persons.sort(key=lambda p: p.person_id)
        self.presence.lost(now, plan.live, events)  # after the lost people's action_end
        plan.times["done"] = time.perf_counter()
        return ActionResult(plan.timestamp_ms, persons, events, classified, plan.latency, plan.times,
                            sum(job.dropped for job in plan.jobs))
