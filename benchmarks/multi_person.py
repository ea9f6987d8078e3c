"""Identity you can measure: multi-person videos composited from real single-person videos, with per-frame ground
truth ids, run through MediaPipe Pose and the edge library's tracker; ID switches, fragmentations and IDF1 per
scenario, and the people count replayed from the events.

    python -m benchmarks.multi_person --videos ../shared/data/video --pose-model pose_landmarker_full.task \\
        --out runs/multi_person

How a scenario is made: each source video (one person) goes once through MediaPipe Pose with segmentation masks;
the mask cuts the person out of every frame and pastes them onto a plain canvas along a path (side by side, walking
toward each other, crossing with one in front, one vanishing and coming back). Who is where is known exactly: the
ground truth of person k in frame t is the source's own landmarks moved along k's path, and how much of k is hidden
behind people drawn in front of them (frames where less than `min_visible` of the body shows are not required).
The composite goes through MediaPipe Pose (VIDEO mode, `num_poses` = people in the scene) once; its landmarks are
kept (`<out>/<scenario>.poses.npz`) and replayed through `edge.ActionRecognizer` (VIDEO mode; a stand-in hands it
the recorded poses, so the tracker, the body check and the events are the library's own).

Metrics (MOT conventions): per frame, people and tracks are matched by landmark distance (in ground-truth body
heights, gate `gate`), keeping last frame's matches while they hold; an ID switch is a person matched to another
track id than last time; a fragmentation is a person's coverage interrupted and resumed; IDF1 is the F1 score of
the best one-to-one assignment of track ids to people over the whole video. A skeleton that MediaPipe merged from
two overlapping people (within the gate of one and less than 1.5 times nearer it than another) counts for
neither."""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.report import pyplot, write_results
from core.cli import ArgumentParser, BadInput, require_files, run_cli
from core.markdown import table_head
from core.plots import save_figure
from edge.pose import PersonPose
from edge.tracking import assign

PROG = "python -m benchmarks.multi_person"
BODY = list(range(11, 29))  # shoulders .. ankles: the landmarks people are matched on
CANVAS = (640, 360)  # a 16:9 camera picture
SOURCE_SCALE = 1.5  # the 340x256 sources' people (about 90 px tall) become about 135 px tall
COMPOSITE_VERSION = 2  # bump when the compositing changes: recorded landmarks of older composites are not reused


# ---- scenarios ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PersonPath:
    """One person of a scenario: a single-person source video walked along keyframes (time fraction, x fraction
    of the canvas where the body's centre is)."""
    source: str  # file name in the videos folder
    path: tuple[tuple[float, float], ...]
    start: int = 0  # first source frame used
    hidden: tuple[int, int] | None = None  # frames [a, b) in which this person is not drawn at all
    z: int = 0  # drawing order: higher is in front

    def centre_x(self, t: int, frames: int) -> float:
        keys = np.array(self.path)
        return float(np.interp(t / max(frames - 1, 1), keys[:, 0], keys[:, 1]))


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    frames: int
    people: tuple[PersonPath, ...]
    fps: float = 30.0


A, B, C = "ta_chi.mp4", "clean_and_jerk.mp4", "skateboarding.mp4"
SCENARIOS = (
    Scenario("side_by_side", "two people side by side, in place", 60,
             (PersonPath(A, ((0, 0.27),)), PersonPath(B, ((0, 0.73),)))),
    Scenario("approach", "two people walk toward each other and stop close", 75,
             (PersonPath(A, ((0, 0.15), (1, 0.40))), PersonPath(B, ((0, 0.85), (1, 0.62))))),
    Scenario("crossing", "two people walk across each other, one in front", 90,
             (PersonPath(A, ((0, 0.15), (1, 0.85))), PersonPath(B, ((0, 0.85), (1, 0.15)), z=1))),
    Scenario("occlusion", "side by side; one vanishes for 0.5 s and comes back", 75,
             (PersonPath(A, ((0, 0.27),), hidden=(30, 45)), PersonPath(B, ((0, 0.73),)))),
    Scenario("stand_in", "one leaves; 0.3 s later someone else appears where they stood", 75,
             (PersonPath(A, ((0, 0.27),), hidden=(30, 75)), PersonPath(B, ((0, 0.73),)),
              PersonPath(C, ((0, 0.27),), start=60, hidden=(0, 39)))),
)
GOALS = {"side_by_side": 0, "approach": 0, "occlusion": 0, "crossing": 1, "stand_in": 0}  # most ID switches


def scenario_key(scenario: Scenario, extra: dict[str, Any]) -> str:
    """A short hash of everything a recorded scenario depends on (its definition, the canvas, pose settings)."""
    text = json.dumps({"scenario": asdict(scenario), "canvas": CANVAS, "scale": SOURCE_SCALE,
                       "version": COMPOSITE_VERSION, **extra},
                      sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


# ---- sources: the person cut out of each frame ---------------------------------------------------------
@dataclass
class Source:
    frames: np.ndarray  # (T, H, W, 3) uint8 BGR, scaled by SOURCE_SCALE
    masks: np.ndarray  # (T, H, W) float32 in [0, 1]: the person
    landmarks: np.ndarray  # (T, 33, 4) image landmarks in the scaled source's pixels (x, y), z, visibility; NaN
    centre_x: float  # where the person's hips are, on average (px)


def _pose_landmarker(pose_model: Path, num_poses: int, masks: bool, detection: float = 0.5, presence: float = 0.5):
    from edge.errors import native_stderr_silenced
    from edge.pose import _import_mediapipe
    mp, BaseOptions, vision = _import_mediapipe(True)
    options = vision.PoseLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(pose_model)), running_mode=vision.RunningMode.VIDEO,
        num_poses=num_poses, output_segmentation_masks=masks, min_pose_detection_confidence=detection,
        min_pose_presence_confidence=presence)
    with native_stderr_silenced():
        return mp, vision.PoseLandmarker.create_from_options(options)


def read_video(path: Path, frames: int, scale: float = 1.0) -> tuple[np.ndarray, float]:
    import cv2
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise BadInput(f"{path}: OpenCV cannot open it")
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 30.0)
    out = []
    while len(out) < frames:
        ok, image = cap.read()
        if not ok:
            break
        if scale != 1.0:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        out.append(image)
    cap.release()
    if len(out) < frames:
        raise BadInput(f"{path}: {len(out)} frames, the scenario needs {frames}")
    return np.stack(out), fps


def load_source(video: Path, frames: int, pose_model: Path, cache: Path | None = None,
                scale: float = SOURCE_SCALE) -> Source:
    """The first `frames` frames of a single-person video, scaled, with MediaPipe's person mask and landmarks
    (computed once, kept in `cache`)."""
    images, _ = read_video(video, frames, scale)
    key = hashlib.sha1(f"{video.name}:{video.stat().st_size}:{frames}:{scale}:{pose_model.stat().st_size}"
                       .encode()).hexdigest()[:12]
    path = cache / f"source_{video.stem}_{key}.npz" if cache is not None else None
    if path is not None and path.is_file():
        with np.load(path, allow_pickle=False) as z:
            masks, landmarks = z["masks"].astype(np.float32) / 255, z["landmarks"]
    else:
        import cv2
        mp, landmarker = _pose_landmarker(pose_model, 1, masks=True)
        h, w = images.shape[1:3]
        masks = np.zeros(images.shape[:3], np.float32)
        landmarks = np.full((frames, 33, 4), np.nan, np.float32)
        try:
            for t, image in enumerate(images):
                rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
                result = landmarker.detect_for_video(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb),
                                                     int(t * 1000 / 30))
                if result.pose_landmarks:
                    lm = result.pose_landmarks[0]
                    landmarks[t] = [[p.x * w, p.y * h, p.z, p.visibility] for p in lm]
                    masks[t] = result.segmentation_masks[0].numpy_view()[..., 0]
        finally:
            landmarker.close()
        masks = np.round(masks * 255) / 255  # exactly what the cache keeps: the same composite either way
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(path, masks=np.round(masks * 255).astype(np.uint8), landmarks=landmarks)
    hips = landmarks[:, [23, 24], 0].mean(1)
    return Source(images, masks, landmarks, float(np.nanmedian(hips)))


# ---- compositing and ground truth ------------------------------------------------------------------------
def _paste(canvas: np.ndarray, image: np.ndarray, alpha: np.ndarray, dx: int) -> np.ndarray:
    """Alpha-blend `image` shifted right by dx onto the canvas (same height); returns the pasted alpha."""
    h, w = canvas.shape[:2]
    sw = image.shape[1]
    a0, a1 = max(0, dx), min(w, dx + sw)
    placed = np.zeros((h, w), np.float32)
    if a1 <= a0:
        return placed
    s0 = a0 - dx
    sh = min(h, image.shape[0])
    top = (h - sh) // 2
    region = alpha[:sh, s0:s0 + a1 - a0, None]
    canvas[top:top + sh, a0:a1] = (canvas[top:top + sh, a0:a1] * (1 - region) +
                                   image[:sh, s0:s0 + a1 - a0] * region).astype(np.uint8)
    placed[top:top + sh, a0:a1] = region[..., 0]
    return placed


@dataclass
class Composite:
    frames: np.ndarray  # (T, H, W, 3) uint8
    truth: np.ndarray  # (T, K, 33, 2) ground-truth image landmarks (normalised to the canvas); NaN where absent
    visible: np.ndarray  # (T, K) fraction of person k's body not hidden (0 when not drawn)


def composite(scenario: Scenario, sources: dict[str, Source], seed: int = 0) -> Composite:
    w, h = CANVAS
    rng = np.random.default_rng(seed)
    background = np.clip(rng.normal(118, 6, (h, w, 3)), 0, 255).astype(np.uint8)  # plain, slightly noisy wall
    k = len(scenario.people)
    frames = np.empty((scenario.frames, h, w, 3), np.uint8)
    truth = np.full((scenario.frames, k, 33, 2), np.nan, np.float32)
    visible = np.zeros((scenario.frames, k), np.float32)
    order = sorted(range(k), key=lambda i: scenario.people[i].z)
    for t in range(scenario.frames):
        canvas = background.copy()
        alphas: dict[int, np.ndarray] = {}
        for i in order:
            person = scenario.people[i]
            src = sources[person.source]
            f = person.start + t
            if person.hidden and person.hidden[0] <= t < person.hidden[1]:
                continue
            dx = int(round(person.centre_x(t, scenario.frames) * w - src.centre_x))
            alphas[i] = _paste(canvas, src.frames[f], src.masks[f], dx)
            lm = src.landmarks[f]
            if np.isfinite(lm[:, :2]).all():
                top = (h - min(h, src.frames.shape[1])) // 2
                truth[t, i] = (lm[:, :2] + [dx, top]) / [w, h]
        frames[t] = canvas
        for i, alpha in alphas.items():  # how much of person i is left after the people drawn in front
            mine = alpha > 0.5
            total = mine.sum()
            if not total:
                continue
            in_front = [alphas[j] for j in order[order.index(i) + 1:] if j in alphas]
            covered = np.zeros_like(mine) if not in_front else np.maximum.reduce(in_front) > 0.5
            visible[t, i] = float((mine & ~covered).sum() / total)
    return Composite(frames, truth, visible)


# ---- MediaPipe on the composite, recorded and replayed ---------------------------------------------------
def record_poses(frames: np.ndarray, pose_model: Path, num_poses: int, fps: float, detection: float,
                 presence: float) -> list[list[PersonPose]]:
    """Every frame through MediaPipe Pose (VIDEO mode), as the edge library runs it."""
    from edge.pose import MediaPipePose
    out = []
    with MediaPipePose(pose_model, mode="video", num_poses=num_poses, min_detection=detection,
                       min_presence=presence) as pose:
        for t, image in enumerate(frames):
            out.append(pose.detect(image, int(round(t * 1000 / fps))))
    return out


def save_poses(path: Path, poses: list[list[PersonPose]], size: tuple[int, int]) -> None:
    p = max([len(f) for f in poses] + [1])
    image = np.zeros((len(poses), p, 33, 4), np.float32)
    world = np.zeros_like(image)
    count = np.array([len(f) for f in poses], np.int64)
    for t, people in enumerate(poses):
        for i, person in enumerate(people):
            image[t, i], world[t, i] = person.image, person.world
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, image=image, world=world, count=count, size=np.array(size, np.int64))


def load_poses(path: Path) -> list[list[PersonPose]]:
    with np.load(path, allow_pickle=False) as z:
        size = tuple(int(v) for v in z["size"])
        return [[PersonPose(z["world"][t, i], z["image"][t, i], size) for i in range(int(n))]
                for t, n in enumerate(z["count"])]


class RecordedPose:
    """Stands in for edge.pose.MediaPipePose: hands out recorded poses, one frame per detect() call."""

    def __init__(self, poses: list[list[PersonPose]]):
        self.poses = poses
        self.index = 0

    def detect(self, frame: Any, timestamp_ms: int) -> list[PersonPose]:
        people = self.poses[self.index]
        self.index += 1
        return people

    def close(self) -> None:
        pass


@dataclass
class Replay:
    hypotheses: list[dict[int, np.ndarray]]  # per frame: track id -> (33, 2) image landmarks of a person in view
    events: list[dict[str, Any]]  # the library's events as JSON-lines records
    present: list[int]  # per frame: people the library reports in view (state != no_person)


def replay(poses: list[list[PersonPose]], model: Path, pose_model: Path, max_persons: int, fps: float,
           **options: Any) -> Replay:
    """Recorded poses through edge.ActionRecognizer (VIDEO mode, the tracker and events of the library)."""
    from edge.recognizer import ActionRecognizer, ActionRecognizerOptions
    opts = ActionRecognizerOptions(model_path=model, pose_model_path=pose_model, max_persons=max_persons, **options)
    hypotheses, events, present = [], [], []
    blank = np.zeros((2, 2, 3), np.uint8)  # the recorded poses stand for the picture
    with ActionRecognizer.create_from_options(opts) as rec:
        rec.pose.close()
        rec.pose = RecordedPose(poses)
        for t in range(len(poses)):
            result = rec.recognize_for_video(blank, t * 1000.0 / fps)
            seen = {p.person_id: p.landmarks[:, :2] for p in result.persons
                    if p.state != "no_person" and p.landmarks is not None}
            hypotheses.append(seen)
            present.append(len(seen))
            events += [e.to_dict() | {"frame": t} for e in result.events]
    return Replay(hypotheses, events, present)


# ---- MOT-style identity metrics --------------------------------------------------------------------------
def _distance(hyp: np.ndarray, truth: np.ndarray, aspect: float) -> float:
    """Median distance of the body landmarks, in ground-truth body sizes (the diagonal of the landmarks' box; x
    scaled by the canvas aspect). The median: a skeleton MediaPipe merged from two people belongs to the one
    most of its joints are on."""
    scale = np.array([aspect, 1.0])
    t, h = truth[BODY] * scale, hyp[BODY] * scale
    size = float(np.linalg.norm(np.nanmax(truth * scale, 0) - np.nanmin(truth * scale, 0)))
    return float(np.nanmedian(np.linalg.norm(t - h, axis=1))) / max(size, 1e-6)


AMBIGUITY = 1.5  # a skeleton less than this much nearer one person than another belongs to neither


def _ambiguous(h: int, people: list[int], dist: dict[tuple[int, int], float], gate: float) -> bool:
    """A skeleton MediaPipe merged from two overlapping people (within the gate of one and about as near to
    another) is no identity decision: it is left out of the frame (neither right nor wrong)."""
    near = sorted(dist[(i, h)] for i in people)
    return len(near) >= 2 and near[0] < gate and near[1] < AMBIGUITY * near[0]


@dataclass
class IdentityMetrics:
    frames: int
    people: int
    truth_boxes: int  # (person, frame) pairs required (visible enough)
    matched: int
    misses: int
    false_positives: int
    id_switches: int
    fragmentations: int
    idf1: float
    ids_per_person: list[int]
    shared_ids: int  # track ids that covered more than one person (a lost person's id handed to someone else)
    switch_frames: list[int] = field(default_factory=list)


def identity_metrics(truth: np.ndarray, visible: np.ndarray, hypotheses: list[dict[int, np.ndarray]],
                     aspect: float, gate: float = 0.3, min_visible: float = 0.5) -> IdentityMetrics:
    """truth (T, K, 33, 2) NaN where absent; visible (T, K); hypotheses per frame {id: (33, 2)}."""
    frames, k = truth.shape[:2]
    present = np.isfinite(truth[..., 0]).all(-1) & (visible > 0)
    required = present & (visible >= min_visible)
    last_match: dict[int, int] = {}  # person -> track id matched last
    previous: dict[int, int] = {}  # person -> track id matched in the previous frame
    covered = np.zeros((frames, k), bool)
    switches, switch_frames = 0, []
    false_pos = 0
    pair_frames: dict[tuple[int, int], int] = {}
    hyp_total = 0
    ids_of: dict[int, set[int]] = {i: set() for i in range(k)}
    for t in range(frames):
        people = [i for i in range(k) if present[t, i]]
        dist = {(i, h): _distance(hyp, truth[t, i], aspect) for i in people for h, hyp in hypotheses[t].items()}
        hyps = {h: hyp for h, hyp in hypotheses[t].items() if not _ambiguous(h, people, dist, gate)}
        for (i, h), d in dist.items():  # IDF1 counts every frame a pair is within the gate
            if d < gate and required[t, i]:
                pair_frames[(i, h)] = pair_frames.get((i, h), 0) + 1
        match: dict[int, int] = {}
        for i in people:  # last frame's correspondences hold while they are within the gate
            h = previous.get(i)
            if h is not None and h in hyps and h not in match.values() and dist[(i, h)] < gate:
                match[i] = h
        rest_p = [i for i in people if i not in match]
        rest_h = [h for h in hyps if h not in match.values()]
        if rest_p and rest_h:
            cost = np.array([[dist[(i, h)] if dist[(i, h)] < gate else 1e9 for h in rest_h] for i in rest_p])
            for r, c in assign(cost):
                if cost[r, c] < gate:
                    match[rest_p[r]] = rest_h[c]
        for i, h in match.items():
            covered[t, i] = True
            ids_of[i].add(h)
            if i in last_match and last_match[i] != h:
                switches += 1
                switch_frames.append(t)
            last_match[i] = h
        previous = match
        unmatched = [h for h in hyps if h not in match.values()]
        # a track on a person hidden too much to be required is neither right nor wrong (an ignore region)
        false_pos += sum(1 for h in unmatched if not any(dist.get((i, h), np.inf) < gate for i in people))
        hyp_total += sum(1 for h in hyps if not any(dist.get((i, h), np.inf) < gate and not required[t, i]
                                                    for i in people))
    fragmentations = 0
    for i in range(k):
        seq = covered[required[:, i], i]
        fragmentations += int(np.sum(seq[1:] & ~seq[:-1]))  # coverage resumed after a gap
    persons = list(range(k))
    track_ids = sorted({h for (_, h) in pair_frames})
    idtp = 0
    if track_ids:
        gain = np.array([[pair_frames.get((i, h), 0) for h in track_ids] for i in persons], float)
        idtp = int(sum(gain[r, c] for r, c in assign(-gain)))
    truth_total = int(required.sum())
    idf1 = 2 * idtp / (truth_total + hyp_total) if truth_total + hyp_total else 1.0
    matched = int((covered & required).sum())
    shared = sum(1 for h in {h for ids in ids_of.values() for h in ids} if sum(h in ids_of[i] for i in persons) > 1)
    return IdentityMetrics(frames, k, truth_total, matched, truth_total - matched, false_pos, switches,
                           fragmentations, round(idf1, 4), [len(ids_of[i]) for i in persons], shared, switch_frames)


# ---- events -------------------------------------------------------------------------------------------------
def event_pairing_problems(events: list[dict[str, Any]]) -> list[str]:
    """Every person_lost must be followed by person_found before that person's next event (and nobody is lost
    twice or found twice in a row)."""
    state: dict[int, str] = {}
    problems = []
    for e in events:
        pid, kind = e.get("person"), e.get("event")
        if kind == "person_found":
            if state.get(pid) == "present":
                problems.append(f"frame {e.get('frame')}: person {pid} found twice")
            state[pid] = "present"
        elif kind == "person_lost":
            if state.get(pid) != "present":
                problems.append(f"frame {e.get('frame')}: person {pid} lost while not present")
            state[pid] = "lost"
        elif pid is not None and state.get(pid) != "present" and kind != "action_end":
            problems.append(f"frame {e.get('frame')}: {kind} of person {pid} while not present")
    return problems


def counts_from_events(events: list[dict[str, Any]], frames: int) -> list[int]:
    """People present after each frame, from the found / lost events alone."""
    present: set[int] = set()
    out = []
    by_frame: dict[int, list[dict[str, Any]]] = {}
    for e in events:
        by_frame.setdefault(e["frame"], []).append(e)
    for t in range(frames):
        for e in by_frame.get(t, []):
            if e["event"] == "person_found":
                present.add(e["person"])
            elif e["event"] == "person_lost":
                present.discard(e["person"])
        out.append(len(present))
    return out


# ---- one scenario end to end ---------------------------------------------------------------------------------
@dataclass
class ScenarioRun:
    scenario: Scenario
    composite: Composite
    poses: list[list[PersonPose]]
    replay: Replay
    metrics: IdentityMetrics
    events_ok: list[str]
    count_agreement: float  # fraction of frames where the event count equals the ids seen within hold_s
    truth_count_agreement: float  # ... equals the number of people drawn at some frame within hold_s


def run_scenario(scenario: Scenario, videos: Path, pose_model: Path, model: Path, cache: Path,
                 detection: float = 0.5, presence: float = 0.5, sources: dict[str, Source] | None = None,
                 hold_s: float = 0.2) -> ScenarioRun:
    sources = {} if sources is None else sources  # the caller's cache: each video is read and scaled once
    needed = max(p.start + scenario.frames for p in scenario.people)
    for person in scenario.people:
        have = sources.get(person.source)
        if have is None or len(have.frames) < needed:  # read again when a scenario needs more frames of it
            sources[person.source] = load_source(videos / person.source, needed, pose_model, cache)
    comp = composite(scenario, sources)
    settings = {"detection": detection, "presence": presence, "pose_model_bytes": pose_model.stat().st_size}
    poses_path = cache / f"{scenario.name}_{scenario_key(scenario, settings)}.poses.npz"
    if poses_path.is_file():
        poses = load_poses(poses_path)
    else:
        poses = record_poses(comp.frames, pose_model, len(scenario.people), scenario.fps, detection, presence)
        save_poses(poses_path, poses, CANVAS)
    rep = replay(poses, model, pose_model, len(scenario.people), scenario.fps, hold_s=hold_s,
                 min_pose_detection_confidence=detection, min_pose_presence_confidence=presence)
    metrics = identity_metrics(comp.truth, comp.visible, rep.hypotheses, CANVAS[0] / CANVAS[1])
    counts = counts_from_events(rep.events, scenario.frames)
    # a person counts until unseen for longer than hold_s (the events' debounce): compare with everyone seen
    # within the last hold_s, and with the people drawn at some frame of that span
    times = np.arange(scenario.frames) * 1000.0 / scenario.fps / 1000.0  # the stream times replay() used
    span = [np.flatnonzero((times <= times[t]) & (times[t] - times <= hold_s)) for t in range(scenario.frames)]
    seen_recently = [len(set().union(*[set(rep.hypotheses[f]) for f in frames])) for frames in span]
    agree = float(np.mean(np.array(counts) == np.array(seen_recently)))
    truth_counts = (comp.visible > 0).sum(1)
    truth_agree = float(np.mean([counts[t] in truth_counts[frames] for t, frames in enumerate(span)]))
    return ScenarioRun(scenario, comp, poses, rep, metrics, event_pairing_problems(rep.events), agree, truth_agree)


def untrained_model(path: Path) -> Path:
    """Identities do not depend on the classifier: an untrained MediaPipe-33 last_nano stands in."""
    from core.checkpoint import save_checkpoint
    from core.models.last import create_model
    from core.spec import InputSpec
    if not path.is_file():
        import torch
        torch.manual_seed(0)
        model = create_model("last_nano", num_classes=3, layout="mediapipe33")
        save_checkpoint(path, model, InputSpec(layout="mediapipe33", frames=16, window_frames=32, fps=30.0),
                        ["a", "b", "c"])
    return path


# ---- report ---------------------------------------------------------------------------------------------------
def markdown(runs: list[ScenarioRun]) -> str:
    lines = table_head(["scenario", "frames", "people", "required", "covered", "ID switches (goal)",
                        "fragmentations", "IDF1", "track ids per person", "ids handed to another", "false tracks",
                        "events pair",
                        "count from events = ids seen", "= people drawn"])
    for r in runs:
        m = r.metrics
        goal = GOALS.get(r.scenario.name)
        lines.append(f"| {r.scenario.name} | {m.frames} | {m.people} | {m.truth_boxes} | "
                     f"{m.matched} ({100 * m.matched / max(m.truth_boxes, 1):.0f} %) | {m.id_switches}"
                     f"{f' (<= {goal})' if goal is not None else ''} | {m.fragmentations} | {m.idf1:.3f} | "
                     f"{', '.join(map(str, m.ids_per_person))} | {m.shared_ids} | {m.false_positives} | "
                     f"{'yes' if not r.events_ok else f'no ({len(r.events_ok)})'} | "
                     f"{100 * r.count_agreement:.0f} % of frames | {100 * r.truth_count_agreement:.0f} % |")
    return "\n".join(lines) + "\n"


def plot(runs: list[ScenarioRun], path: Path) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(len(runs), 1, figsize=(9, 1.4 * len(runs) + 0.6), squeeze=False)
    colours = plt.get_cmap("tab10")
    for ax, r in zip(axes[:, 0], runs):
        k = r.metrics.people
        for i in range(k):  # which track id covered person i in each frame (the nearest within the gate)
            for t, hyps in enumerate(r.replay.hypotheses):
                if not np.isfinite(r.composite.truth[t, i]).all():
                    continue
                best = min(hyps, key=lambda h: _distance(hyps[h], r.composite.truth[t, i], CANVAS[0] / CANVAS[1]),
                           default=None)
                if best is not None and _distance(hyps[best], r.composite.truth[t, i], CANVAS[0] / CANVAS[1]) < 0.3:
                    ax.barh(i, 1, left=t, color=colours(best % 10), height=0.6)
                else:
                    ax.barh(i, 1, left=t, color="lightgrey", height=0.6)
        ax.set_yticks(range(k))
        ax.set_yticklabels([f"person {i}" for i in range(k)], fontsize=7)
        ax.set_xlim(0, r.scenario.frames)
        ax.set_title(f"{r.scenario.name}: {r.metrics.id_switches} ID switches, IDF1 {r.metrics.idf1:.3f} "
                     "(colour = track id, grey = not covered)", fontsize=8)
    axes[-1, 0].set_xlabel("frame")
    return save_figure(fig, path, dpi=120)


def _main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", type=Path, required=True, help=f"folder with {A} and {B} (the shared videos)")
    p.add_argument("--pose-model", type=Path, required=True, help="MediaPipe pose_landmarker .task")
    p.add_argument("--ckpt", type=Path, help="model for the recognizer (default: an untrained MediaPipe-33 "
                                             "last_nano; ids do not depend on it)")
    p.add_argument("--scenarios", default=",".join(s.name for s in SCENARIOS), help="comma-separated subset")
    p.add_argument("--min-pose-confidence", type=float, default=0.5, help="MediaPipe detection / presence (0.5)")
    p.add_argument("--out", type=Path, default=Path("runs/multi_person"))
    p.add_argument("--write-videos", action="store_true", help="also write each composite as <scenario>.avi")
    args = p.parse_args(argv)
    wanted = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    known = {s.name: s for s in SCENARIOS}
    if unknown := [w for w in wanted if w not in known]:
        raise BadInput(f"--scenarios: unknown {unknown}; choose from {', '.join(known)}")
    needed = dict.fromkeys(person.source for w in wanted for person in known[w].people)  # every video they use
    require_files(*(args.videos / name for name in needed), args.pose_model)
    args.out.mkdir(parents=True, exist_ok=True)
    model = args.ckpt or untrained_model(args.out / "untrained_mp33.pt")
    runs, sources = [], {}
    started = time.time()
    for name in wanted:
        print(f"{name} ...", file=sys.stderr, flush=True)
        run = run_scenario(known[name], args.videos, args.pose_model, model, args.out, args.min_pose_confidence,
                           args.min_pose_confidence, sources)
        runs.append(run)
        if args.write_videos:
            from edge.overlay import VideoSink
            sink = VideoSink(args.out / f"{name}.avi", run.scenario.fps, CANVAS)
            try:
                for image in run.composite.frames:
                    sink.write(image)
            finally:
                sink.close()
    table = markdown(runs)
    result = {"tool": "benchmarks.multi_person", "command": f"{PROG} " + " ".join(argv or sys.argv[1:]),
              "canvas": CANVAS, "source_scale": SOURCE_SCALE, "min_pose_confidence": args.min_pose_confidence,
              "seconds": round(time.time() - started),
              "scenarios": [{"name": r.scenario.name, "what": r.scenario.what, "goal_max_switches":
                             GOALS.get(r.scenario.name), **asdict(r.metrics), "event_problems": r.events_ok,
                             "count_agreement": r.count_agreement, "truth_count_agreement": r.truth_count_agreement,
                             "detections_per_frame": float(np.mean([len(f) for f in r.poses]))} for r in runs]}
    made = plot(runs, args.out / "multi_person.png")
    print(table)
    write_results(args.out, "multi_person", result, table, [made])
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, PROG, argv)


if __name__ == "__main__":
    sys.exit(main())
