"""The edge loop as a library, in the style of MediaPipe Tasks (pose_landmarker.py):

    from edge import ActionRecognizer, ActionRecognizerOptions, RunningMode

    options = ActionRecognizerOptions(model_path="best.onnx", running_mode=RunningMode.VIDEO, max_persons=2)
    with ActionRecognizer.create_from_options(options) as recognizer:
        for index, frame in enumerate(frames):               # BGR numpy images, as OpenCV reads them
            result = recognizer.recognize_for_video(frame, timestamp_ms=index * 1000 // 30)
            for person in result.persons:                    # stable ids, per-person label and state
                print(person.person_id, person.state, person.label, person.confidence)
            for event in result.events:                      # action_start / action_end ... with the person id
                print(event.to_dict())

Running modes: VIDEO (frames, MediaPipe pose, synchronous), LIVE_STREAM (recognize_async; the result arrives on
`result_callback(result, image, timestamp_ms)` from MediaPipe's thread) and SKELETONS (pose from elsewhere:
pass (P, V, C) skeletons of `skeleton_layout`; a 4th channel is visibility).

What happens per call: pose (VIDEO / LIVE_STREAM) -> a tracker gives every person a stable id -> per person, a
body-visibility check (hips and shoulders; otherwise `partial_body`, nothing classified) -> the skeleton is
resampled to the frame rate the model was trained at (so the window and stride are durations) -> every
`stride_s` of stream time a full window is classified -> EMA + hysteresis -> action events.

The library draws nothing, opens no window, writes no file and shows no progress bar (`python -m edge.run` does
that). Memory is fixed: per person a ring buffer of the window, a bounded number of people; results are returned,
never accumulated."""
from __future__ import annotations

import enum
import threading
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
from edge.errors import DeferredErrors, EdgeBackendMissing, EdgeError
from edge.events import ActionEvent, ActionEvents, PresenceEvents
from edge.smoothing import UNKNOWN, ActionSmoother, softmax
from edge.tracking import SkeletonTracker, torso_joints
from edge.validate import check_frame, check_skeletons, check_timestamp
from edge.window import SkeletonWindow, TimeResampler, WindowPolicy

POSE_LAYOUT = "mediapipe33"
STATES = ("tracking", "warming_up", "partial_body", "no_person")


class RunningMode(enum.Enum):
    VIDEO = "video"  # decoded frames in order, recognize_for_video() returns the result
    LIVE_STREAM = "live_stream"  # camera frames, recognize_async() -> result_callback
    SKELETONS = "skeletons"  # skeletons from another pose estimator, recognize_for_video()


@dataclass
class ActionRecognizerOptions:
    model_path: str | Path | None = None  # .pt / .onnx / .tflite / .engine / .mlpackage (with its metadata)
    running_mode: RunningMode = RunningMode.VIDEO
    result_callback: Callable[["ActionResult", Any, int], None] | None = None  # LIVE_STREAM only
    window_s: float | None = None  # None: the model's online window at its training frame rate
    stride_s: float | None = None  # classify every stride_s of stream time; None: 4 model frames
    smoothing: float = 0.5  # EMA weight of the newest probabilities (1 = no smoothing)
    min_confidence: float = 0.5  # an action starts at this smoothed probability; below it the label is unknown
    unknown_threshold: float | None = None  # open-set score under which a window is unknown (None: the model's)
    exit_confidence: float | None = None  # hysteresis: an action ends below this (default min_confidence - 0.1)
    margin: float = 0.1  # another class must beat the current one by this much to take over
    max_persons: int | None = None  # people detected and tracked (None: the model's M)
    hold_s: float = 0.2  # a lost person keeps their last pose this long; after it their action ends
    reset_s: float = 1.0  # a person unseen this long starts their window afresh
    id_memory_s: float = 3.0  # a lost person's id waits this long for them (never handed to anyone else)
    min_valid: float = 0.75  # least fraction of the window with a real (or held) pose to classify
    min_body_visibility: float = 0.5  # hips and shoulders must be at least this visible to classify
    pose_model_path: str | Path | None = None  # MediaPipe pose_landmarker .task (None: cache / download)
    pose_variant: str = "full"
    min_pose_detection_confidence: float = 0.5  # MediaPipe's thresholds (lower finds more, smaller people)
    min_pose_presence_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    skeleton_layout: str = POSE_LAYOUT  # SKELETONS mode: layout of the skeletons passed in
    coordinates: str | None = None  # which MediaPipe landmarks feed the model: world | image (None: the model's)
    threads: int | None = 1  # CPU threads of the model runtime (the pose estimator wants the other cores)
    quiet: bool = True  # silence MediaPipe / TFLite / absl console chatter
    runtime: Any = None  # an already loaded core.runtime.Runtime (shares one model between recognizers)


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
        r = recognizer
        self.key = key
        self.slots: list[int | None] = [None] * r.spec.persons  # person id per model person slot
        self.resampler = TimeResampler(r.model_fps, max_gap_s=r.options.hold_s)
        self.window = SkeletonWindow(r.window_size, r.spec.persons, r.model_layout.num_joints, r.spec.channels,
                                     r.policy)
        self.smoother = ActionSmoother(r.class_names, r.options.smoothing, r.options.min_confidence,
                                       r.options.exit_confidence, r.options.margin)
        self.actions = ActionEvents(key)
        self.since_classify = 0
        self.last_whole_s: float | None = None  # last time a classifiable body was seen
        self.last_state = "warming_up"
        self.lost_reported = False
        self.decision = None


class ActionRecognizer:
    """Skeleton action recognition on a stream of frames or skeletons (see the module docstring)."""

    def __init__(self, options: ActionRecognizerOptions):
        from core.runtime import BackendMissing, load_runtime
        self.options = options
        if not isinstance(options.running_mode, RunningMode):
            raise ValueError(f"running_mode must be a RunningMode, got {options.running_mode!r}")
        if options.running_mode is RunningMode.LIVE_STREAM and options.result_callback is None:
            raise ValueError("LIVE_STREAM mode needs a result_callback")
        if options.running_mode is not RunningMode.LIVE_STREAM and options.result_callback is not None:
            raise ValueError("result_callback is only used in LIVE_STREAM mode")
        self._owns_runtime = options.runtime is None  # a runtime passed in belongs to the caller
        if options.runtime is not None:
            self.runtime = options.runtime
        elif options.model_path is not None:
            try:
                self.runtime = load_runtime(options.model_path, threads=options.threads)
            except Exception as exc:  # backends raise all kinds of errors on a corrupt file: one line
                text = str(exc).strip().splitlines()
                message = text[0] if text else type(exc).__name__
                message = message if str(options.model_path) in message else f"{options.model_path}: {message}"
                raise (EdgeBackendMissing if isinstance(exc, BackendMissing) else EdgeError)(message) from None
        else:
            raise ValueError("ActionRecognizerOptions needs model_path (or a loaded runtime)")
        self.spec = self.runtime.spec
        self.class_names = list(self.runtime.class_names)
        # "nothing I know": the open-set rule of the artifact (train.openset), or the option's threshold
        self.openset = rule_from_metadata(self.runtime.metadata, options.unknown_threshold)
        self.model_layout = get_layout(self.spec.layout)
        self.model_fps = self.spec.model_fps
        window_s = options.window_s if options.window_s is not None else self.spec.online_window_s
        self.window_size = max(1, int(round(window_s * self.model_fps)))
        stride_s = options.stride_s if options.stride_s is not None else 4 / self.model_fps
        self.stride = max(1, int(round(stride_s * self.model_fps)))
        self.policy = WindowPolicy(hold_frames=int(round(options.hold_s * self.model_fps)),
                                   reset_after=int(round(options.reset_s * self.model_fps)),
                                   min_valid=options.min_valid)
        self.max_persons = options.max_persons or self.spec.persons
        if self.max_persons < 1:
            raise ValueError(f"max_persons must be >= 1, got {self.max_persons}")
        self.source_layout_name = (options.skeleton_layout if options.running_mode is RunningMode.SKELETONS
                                   else POSE_LAYOUT)
        self.source_layout = get_layout(self.source_layout_name)
        self.mapper = LayoutMapper(self.source_layout_name, self.spec.layout)
        self.coordinates = options.coordinates or self.spec.coordinates
        # at most max_persons ids per frame in every mode (SKELETONS too); see edge/tracking.py for the gates
        self.tracker = SkeletonTracker(max_age_s=options.id_memory_s, max_persons=self.max_persons,
                                       max_tracks=4 * self.max_persons, anchor_joints=torso_joints(self.source_layout))
        self.presence = PresenceEvents(options.hold_s)  # person_found / person_lost that pair (edge/events.py)
        self.body_check = BodyCheck(min_visibility=options.min_body_visibility)  # geometry, not visibility alone
        self._callback_errors = DeferredErrors()  # LIVE_STREAM: result_callback exceptions, for the caller
        self.subjects: dict[int, _Subject] = {}
        self._body_joints = torso_joints(self.source_layout)
        self._last_ts: float | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.pose = None
        if options.running_mode is not RunningMode.SKELETONS:
            from edge.pose import MediaPipePose, resolve_pose_model
            model = resolve_pose_model(options.pose_model_path, options.pose_variant)
            live = options.running_mode is RunningMode.LIVE_STREAM
            self.pose = MediaPipePose(model, mode="live" if live else "video", num_poses=self.max_persons,
                                      min_detection=options.min_pose_detection_confidence,
                                      min_presence=options.min_pose_presence_confidence,
                                      min_tracking=options.min_tracking_confidence, quiet=options.quiet,
                                      on_result=self._on_live_pose if live else None)

    # ---- construction, MediaPipe style ----------------------------------------------------------
    @classmethod
    def create_from_options(cls, options: ActionRecognizerOptions) -> "ActionRecognizer":
        return cls(options)

    @classmethod
    def create_from_model_path(cls, model_path: str | Path, running_mode: RunningMode = RunningMode.VIDEO,
                               **kwargs: Any) -> "ActionRecognizer":
        return cls(ActionRecognizerOptions(model_path=model_path, running_mode=running_mode, **kwargs))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.pose is not None:
            self.pose.close()
        if self._owns_runtime:
            self.runtime.close()
        self._callback_errors.raise_pending()  # a result_callback that raised since the last call

    def __enter__(self) -> "ActionRecognizer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- public calls --------------------------------------------------------------------------
    def recognize_for_video(self, frame_or_skeletons: Any, timestamp_ms: float) -> ActionResult:
        """VIDEO: a BGR image (numpy, as OpenCV decodes it) or a mediapipe.Image. SKELETONS: (P, V, C) skeletons
        (or a list of (V, C)); an empty array or None means nobody. Timestamps must increase."""
        mode = self.options.running_mode
        if mode is RunningMode.LIVE_STREAM:
            raise ValueError("recognize_for_video is for VIDEO and SKELETONS mode; use recognize_async")
        if mode is RunningMode.VIDEO:
            frame_or_skeletons = check_frame(frame_or_skeletons)  # a named error before any state changes
        else:  # validated before the timestamp is taken, so a call that raised can be retried
            frame_or_skeletons = check_skeletons(frame_or_skeletons, self.source_layout.num_joints,
                                                 self.spec.channels, self.source_layout_name)
        self._check_open_and_time(timestamp_ms)
        latency: dict[str, float] = {}
        if mode is RunningMode.SKELETONS:
            detections = self._skeleton_detections(frame_or_skeletons)
        else:
            t0 = time.perf_counter()
            poses = self.pose.detect(frame_or_skeletons, int(timestamp_ms))
            latency["pose"] = (time.perf_counter() - t0) * 1e3
            detections = self._pose_detections(poses)
        with self._lock:
            return self._step(detections, float(timestamp_ms), latency)

    def recognize_async(self, image: Any, timestamp_ms: int) -> None:
        """LIVE_STREAM: hand a camera frame to MediaPipe; the ActionResult arrives on result_callback. MediaPipe
        drops frames it has no time for, so the caller never falls behind real time."""
        if self.options.running_mode is not RunningMode.LIVE_STREAM:
            raise ValueError("recognize_async is for LIVE_STREAM mode; use recognize_for_video")
        self._callback_errors.raise_pending()  # the previous frames' result_callback exceptions reach the caller
        image = check_frame(image)
        self._check_open_and_time(timestamp_ms)
        self.pose.detect_async(image, int(timestamp_ms))

    def finish(self, timestamp_ms: float | None = None) -> list[ActionEvent]:
        """End every active action (reason end_of_stream); call at the end of a video."""
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
        minimum = None if self.options.running_mode is RunningMode.SKELETONS else 0.0  # MediaPipe: t >= 0
        self._last_ts = check_timestamp(timestamp_ms, self._last_ts, minimum)

    def _on_live_pose(self, poses: list, image: Any, timestamp_ms: int) -> None:
        try:  # raised here, an exception would only reach MediaPipe's log: keep it for the caller's thread
            with self._lock:
                result = self._step(self._pose_detections(poses), float(timestamp_ms), {})
            self.options.result_callback(result, image, timestamp_ms)
        except Exception as exc:
            self._callback_errors.capture(exc)

    def _whole_body(self, visibility: np.ndarray) -> bool:
        if not self._body_joints:
            return True
        return bool((visibility[self._body_joints] >= self.options.min_body_visibility).all())

    def _pose_detections(self, poses: list) -> list[_Detection]:
        c = self.spec.channels
        out = []
        for p in poses:
            if self.coordinates == "world":
                coords = mediapipe_world_to_camera(p.world[:, :3])[:, :c]
            else:  # image landmarks: normalised x, y (down), relative z, as MediaPipe recordings store them
                coords = p.image[:, :c]
            vis = p.world[:, 3]
            whole = self._whole_body(vis) and (self.options.min_body_visibility <= 0 or  # 0 turns the check off
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

    def _step(self, detections: list[_Detection], ts_ms: float, latency: dict[str, float]) -> ActionResult:
        now = ts_ms / 1000.0
        events: list[ActionEvent] = []
        t0 = time.perf_counter()
        ids = self.tracker.update([d.track_points for d in detections], now, [d.visibility for d in detections])
        tracked = [(pid, d) for pid, d in zip(ids, detections) if pid is not None]  # None: beyond max_persons
        ids = [pid for pid, _ in tracked]
        by_id = dict(tracked)
        self.presence.found(ids, now, events)
        for pid in ids:
            self._subject_for(pid)
        # forget people the tracker dropped (unseen for id_memory_s)
        live = set(self.tracker.tracks)
        for key in [k for k, s in self.subjects.items() if not any(p in live for p in s.slots if p is not None)]:
            self.subjects.pop(key).actions.end(now, "no_person", events)
        for subject in self.subjects.values():
            subject.slots = [p if p in live else None for p in subject.slots]
            if self.spec.persons > 1:
                for pid in ids:
                    if pid not in subject.slots and None in subject.slots:
                        subject.slots[subject.slots.index(None)] = pid
        latency["track"] = (time.perf_counter() - t0) * 1e3
        classified = False
        persons: list[PersonResult] = []
        for subject in self.subjects.values():
            classified |= self._advance(subject, by_id, now, events, latency)
            for slot, pid in enumerate(subject.slots):
                if pid is None:
                    continue
                det = by_id.get(pid)
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
        persons.sort(key=lambda p: p.person_id)
        self.presence.lost(now, set(self.tracker.tracks), events)  # after the lost people's action_end
        return ActionResult(ts_ms, persons, events, classified, latency)

    def _advance(self, subject: _Subject, by_id: dict[int, _Detection], now: float, events: list[ActionEvent],
                 latency: dict[str, float]) -> bool:
        """Push this frame into the subject's window (at the model's frame rate), classify when due."""
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
        classified = False
        for grid_t, sample in subject.resampler.push(now, frame):
            state = subject.window.push(sample)
            subject.since_classify += 1
            if state == "reset":
                subject.smoother.clear()
                subject.decision = None
            if sample is not None and subject.window.ready and subject.since_classify >= self.stride:
                subject.since_classify = 0
                self._classify(subject, grid_t, events, latency)
                classified = True
        # a person out of view (or only partly in view) for longer than the hold time: their action ends
        gone_for = now - subject.last_whole_s if subject.last_whole_s is not None else np.inf
        if not whole and gone_for > self.options.hold_s and not subject.lost_reported:
            reason = "partial_body" if partial else "no_person"
            subject.actions.end(now, reason, events)
            subject.smoother.clear()
            subject.decision = None
            subject.lost_reported = True
        if whole:
            subject.last_state = "tracking" if subject.decision is not None else "warming_up"
        else:
            subject.last_state = "partial_body" if partial else "no_person"
        return classified

    def _classify(self, subject: _Subject, grid_t: float, events: list[ActionEvent],
                  latency: dict[str, float]) -> None:
        t0 = time.perf_counter()
        clip = subject.window.clip()  # (M, T, V, C), model layout: the open-set body test reads it too
        x = prepare_clip(clip, self.spec)[None]
        t1 = time.perf_counter()
        logits = self.runtime.predict(x)[0]
        t2 = time.perf_counter()
        # an unknown window (core.openset) carries no evidence for any class: the label decays to unknown
        decision = subject.smoother.update(softmax(logits) if self.openset is None else
                                           self.openset.probabilities(logits, clip))
        subject.actions.update(decision, grid_t, events)
        subject.decision = decision
        t3 = time.perf_counter()
        for stage, ms in (("preprocess", t1 - t0), ("classify", t2 - t1), ("smoothing", t3 - t2)):
            latency[stage] = latency.get(stage, 0.0) + ms * 1e3

