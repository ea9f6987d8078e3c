"""The edge library (ActionRecognizer): the same events as the command line, flat memory, time-based windows,
stable person ids through crossings and misses, partial bodies, lost people; edge.record against a fake camera."""
from __future__ import annotations

import gc

import numpy as np
import pytest

from backend_checker import backend_checker
from core.synthetic import synthetic_clip
from edge.events import read_events
from edge.recognizer import ActionRecognizer, RunningMode
from edge.tracking import SkeletonTracker, assign
from test_edge import LAYOUT, edge_ckpt, replay_file, run_cli  # noqa: F401  (shared session fixtures)


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    import torch
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def recognizer(ckpt, **kwargs) -> ActionRecognizer:
    return ActionRecognizer.create_from_model_path(ckpt, RunningMode.SKELETONS, **kwargs)


def replay(rec: ActionRecognizer, frames: np.ndarray, fps: float, t0_ms: float = 0.0):
    """(T, P, V, C) frames (all-zero person = nobody) -> [(ActionResult)], plus the finishing events."""
    results = []
    for t, people in enumerate(frames):
        people = [p for p in people if np.abs(p).sum() > 0]
        results.append(rec.recognize_for_video(np.asarray(people), t0_ms + t * 1000.0 / fps))
    return results, rec.finish()


def resample_clip(clip: np.ndarray, fps_from: float, fps_to: float) -> np.ndarray:
    """The same motion sampled at another frame rate: linear interpolation of (T, V, C) in time."""
    t_from = np.arange(len(clip)) / fps_from
    t_to = np.arange(int(np.floor(t_from[-1] * fps_to)) + 1) / fps_to
    flat = clip.reshape(len(clip), -1)
    out = np.stack([np.interp(t_to, t_from, flat[:, k]) for k in range(flat.shape[1])], axis=1)
    return out.reshape((len(t_to),) + clip.shape[1:]).astype(np.float32)


# ---- the library and the command line agree ---------------------------------------------------------
def test_api_events_on_a_replay_equal_the_command_line_events(edge_ckpt, replay_file, tmp_path):
    from edge.capture import load_skeleton_sequence
    events_path = tmp_path / "ev.jsonl"
    assert run_cli("--skeletons", replay_file, "--model", edge_ckpt, "--headless", "--events", events_path) == 0
    cli = [{k: v for k, v in e.items() if k != "frame"} for e in read_events(events_path)
           if e["event"] not in ("run_start", "run_end")]
    seq = load_skeleton_sequence(replay_file)
    api = []
    with recognizer(edge_ckpt) as rec:
        results, tail = replay(rec, seq.data.transpose(1, 0, 2, 3), seq.fps or 30.0)
        for r in results:
            api += [e.to_dict() for e in r.events]
        api += [e.to_dict() for e in tail]
    assert [e["event"] for e in api].count("action_start") == 2
    assert len(api) == len(cli)
    for a, c in zip(api, cli):
        assert a.keys() == c.keys()
        for key in a:
            assert a[key] == (pytest.approx(c[key], abs=1e-5) if isinstance(a[key], float) else c[key]), key


def test_result_is_typed_and_states_follow_the_stream(edge_ckpt):
    clip = synthetic_clip("wave", LAYOUT, 60, seed=3)[0]
    with recognizer(edge_ckpt) as rec:
        first = rec.recognize_for_video(clip[:1], 0)
        assert [p.state for p in first.persons] == ["warming_up"] and first.persons[0].confidence is None
        for t in range(1, 60):
            res = rec.recognize_for_video(clip[t:t + 1], t * 1000 / 30)
        (person,) = res.persons
        assert person.state == "tracking" and person.label == "wave" and person.confidence > 0.5
        assert person.probabilities.shape == (3,) and person.probabilities.argmax() == 0
        with pytest.raises(ValueError, match="timestamps must increase"):
            rec.recognize_for_video(clip[:1], 10)
    with pytest.raises(ValueError, match="closed"):
        rec.recognize_for_video(clip[:1], 99_999)


# ---- memory --------------------------------------------------------------------------------------------
def test_memory_is_flat_over_a_long_replay(edge_ckpt):
    """Count Python objects and the recognizer's buffers, not time: 3,000 frames after a warm-up add nothing
    per frame (a per-frame leak of one object would show as >= 3,000)."""
    seq = np.concatenate([synthetic_clip(a, LAYOUT, 64, seed=i)[0] for i, a in enumerate(("wave", "squat"))] +
                         [np.zeros((45, 33, 3), np.float32)])  # two actions and a 1.5 s gap with nobody
    rec = recognizer(edge_ckpt, stride_s=8 / 30)
    t = 0

    def run(frames: int) -> None:
        nonlocal t
        for _ in range(frames):
            people = seq[t % len(seq)][None]
            rec.recognize_for_video(people if np.abs(people).sum() else None, t * 1000 / 30)
            t += 1

    run(600)
    gc.collect()
    before = len(gc.get_objects())
    run(3000)
    gc.collect()
    after = len(gc.get_objects())
    assert after - before < 500, (before, after)
    assert len(rec.subjects) <= 2 and len(rec.tracker.tracks) <= rec.tracker.max_tracks
    assert rec.tracker.next_id >= 3600 // len(seq)  # people came and went (every gap is longer than reset_s)
    for subject in rec.subjects.values():
        assert subject.window.buffer.shape[0] == rec.window_size


# ---- time, not frames ---------------------------------------------------------------------------------
def test_windows_are_durations_the_same_decisions_at_25_30_50_60_fps(edge_ckpt):
    """One continuous motion (wave, nobody, squat) sampled at four frame rates: the model (trained at 30 fps)
    sees the same window in seconds, so it starts and ends the same actions at the same stream times."""
    wave, squat = synthetic_clip("wave", LAYOUT, 64, seed=11)[0], synthetic_clip("squat", LAYOUT, 64, seed=12)[0]
    decisions = {}
    for fps in (25, 30, 50, 60):
        parts = [resample_clip(wave, 30, fps), np.zeros((int(1.5 * fps), 33, 3), np.float32),
                 resample_clip(squat, 30, fps)]
        frames = np.concatenate(parts)[:, None]
        with recognizer(edge_ckpt) as rec:
            assert rec.window_size == 32 and rec.stride == 1  # from the checkpoint: 32 frames at 30 fps, every frame
            results, tail = replay(rec, frames, fps)
        events = [e for r in results for e in r.events if e.kind.startswith("action")] + list(tail)
        decisions[fps] = [(e.kind, e.action, e.reason, round(e.time_s, 2)) for e in events]
    assert [d[1] for d in decisions[30] if d[0] == "action_start"] == ["wave", "squat"]
    for fps in (25, 50, 60):
        got, ref = decisions[fps], decisions[30]
        assert [d[:3] for d in got] == [d[:3] for d in ref], (fps, got, ref)
        # the same times up to one source frame (a frame arrives up to 1/fps after the grid time it completes)
        # and one model frame (the person keeps her id through the gap, so her window's 30 fps grid runs on and
        # her return is sampled at the next grid point)
        for (_, _, reason, tg), (_, _, _, tr) in zip(got, ref):
            assert abs(tg - tr) <= 1 / fps + 1 / 30 + 0.011 or reason == "end_of_stream", (fps, got, ref)


def test_no_person_ends_the_action_within_the_hold_time(edge_ckpt):
    clip = synthetic_clip("squat", LAYOUT, 70, seed=5)[0]
    frames = np.concatenate([clip, np.zeros((30, 33, 3), np.float32)])[:, None]
    with recognizer(edge_ckpt, hold_s=0.3) as rec:
        results, _ = replay(rec, frames, 30)
    events = [e for r in results for e in r.events]
    start = next(e for e in events if e.kind == "action_start")
    end = next(e for e in events if e.kind == "action_end")
    last_seen = 69 / 30
    assert start.action == end.action == "squat" and end.reason == "no_person"
    assert last_seen < end.time_s <= last_seen + 0.3 + 1 / 30
    states = [r.persons[0].state for r in results[70:75]]
    assert states == ["no_person"] * 5 and all(r.persons[0].label == "unknown" for r in results[80:90])


def test_partial_body_is_never_classified(edge_ckpt):
    """A close-up (hips and shoulders barely visible): state partial_body, no classification, no action; when
    a tracked person's body goes out of view, their action ends with reason partial_body."""
    clip = synthetic_clip("wave", LAYOUT, 90, seed=7)[0]
    vis = np.ones((90, 33, 1), np.float32)
    closeup = np.concatenate([clip, vis], -1)
    closeup[:, [11, 12, 23, 24], 3] = 0.1  # MediaPipe's visibility for body parts out of the frame
    with recognizer(edge_ckpt) as rec:
        results, _ = replay(rec, closeup[:, None], 30)
    assert all(r.persons[0].state == "partial_body" for r in results)
    assert not any(r.classified for r in results) and not any(r.events[1:] for r in results)
    full = np.concatenate([clip, vis], -1)
    mixed = np.concatenate([full[:60], closeup[60:]])
    with recognizer(edge_ckpt) as rec:
        results, _ = replay(rec, mixed[:, None], 30)
    ends = [e for r in results for e in r.events if e.kind == "action_end"]
    assert [e.reason for e in ends] == ["partial_body"]
    assert 59 / 30 + 0.2 < ends[0].time_s <= 59 / 30 + 0.2 + 1 / 30 + 1e-6  # within the hold time
    assert not any(r.classified for r in results[61:])
    # the check can be turned off (upper-body recordings whose hips MediaPipe only guesses)
    with recognizer(edge_ckpt, min_body_visibility=0.0) as rec:
        results, _ = replay(rec, closeup[:, None], 30)
    assert any(r.classified for r in results)


# ---- people as identities -------------------------------------------------------------------------------
def _walker(action: str, seed: int, x0: float, x1: float, frames: int, scale: float) -> np.ndarray:
    clip = synthetic_clip(action, LAYOUT, frames, seed=seed)[0]
    clip = (clip - clip[:, [23, 24]].mean(1, keepdims=True)) * scale  # body at the origin, person-sized
    clip[..., 0] += np.linspace(x0, x1, frames)[:, None]
    clip[..., 2] += 3.0
    return clip


def test_ids_stay_stable_through_crossings_misses_and_detector_order():
    """Two people walk past each other (a tall one waving, a short one squatting): at the crossing their
    positions coincide, the detector returns them in random order and misses each now and then. Ids follow
    the bodies; a third person appearing while one is lost gets a new id, not the lost one's."""
    frames = 90
    a = _walker("wave", 1, -1.2, 1.2, frames, 1.15)
    b = _walker("squat", 2, 1.2, -1.2, frames, 0.85)
    rng = np.random.default_rng(0)
    tracker = SkeletonTracker()
    for t in range(frames):
        people = [("a", a[t]), ("b", b[t])]
        people = [p for p in people if not (p[0] == "a" and t in (30, 31, 44)) and not (p[0] == "b" and t == 46)]
        order = rng.permutation(len(people))
        dets = [people[i] for i in order]
        ids = tracker.update([d[1] for d in dets], t / 30)
        for (who, _), pid in zip(dets, ids):
            assert pid == {"a": 0, "b": 1}[who], (t, who, pid)
    # a lost (id 0) for 0.5 s; somebody else appears far away meanwhile: new id 2; a returns: id 0 again
    t = frames / 30
    assert tracker.update([b[-1]], t) == [1]
    stranger = _walker("jump", 3, 3.0, 3.0, 1, 1.0)[0]
    assert tracker.update([b[-1], stranger], t + 0.2) == [1, 2]
    assert tracker.update([a[-1], b[-1], stranger], t + 0.5) == [0, 1, 2]
    # gone longer than max_age_s: forgotten, a return is a new person
    assert tracker.update([b[-1]], t + 2.0) == [1]
    assert tracker.update([a[-1], b[-1]], t + 2.1) == [3, 1]


def test_every_event_names_its_person(edge_ckpt):
    """Two people in one stream with an M = 1 model: each is classified on their own window."""
    a = _walker("wave", 1, -1.0, -1.0, 70, 1.0)
    b = _walker("squat", 2, 1.0, 1.0, 70, 1.0)
    with recognizer(edge_ckpt, max_persons=2) as rec:
        results, tail = replay(rec, np.stack([a, b], 1), 30)
    starts = {e.person_id: e.action for r in results for e in r.events if e.kind == "action_start"}
    assert starts == {0: "wave", 1: "squat"}
    assert {e.person_id for e in tail} == {0, 1} and all(e.reason == "end_of_stream" for e in tail)
    assert [p.person_id for p in results[-1].persons] == [0, 1]


@pytest.mark.parametrize("rows,cols", [(2, 2), (3, 2), (2, 4), (4, 4)])
def test_exact_assignment_without_scipy_matches_scipy(rows, cols, monkeypatch):
    import builtins
    rng = np.random.default_rng(rows * 10 + cols)
    cost = rng.uniform(0, 1, (rows, cols))
    with_scipy = assign(cost)
    real_import = builtins.__import__

    def no_scipy(name, *args, **kwargs):
        if name.startswith("scipy"):
            raise ImportError("no scipy here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_scipy)
    from edge.tracking import hungarian
    hungarian.cache_clear()
    try:
        assert hungarian() is None
        without = assign(cost)
    finally:
        hungarian.cache_clear()
    total = lambda pairs: sum(cost[r, c] for r, c in pairs)  # noqa: E731
    assert len(without) == min(rows, cols) and total(without) == pytest.approx(total(with_scipy))


# ---- recording clips (the camera itself cannot be tested here: a fake capture stands in) ----------------
class FakeCapture:
    """Stands in for cv2.VideoCapture(0): numbered frames at 20 fps."""

    def __init__(self, frames: int = 1000):
        self.index, self.frames = 0, frames

    def get(self, prop):
        import cv2
        return 20.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def read(self):
        if self.index >= self.frames:
            return False, None
        frame = np.full((48, 64, 3), self.index % 250, np.uint8)
        self.index += 1
        return True, frame

    def release(self):
        pass


@backend_checker("opencv")
def test_record_writes_clips_after_a_countdown_overlay(tmp_path):
    import cv2
    from edge.record import record_clips
    shown, lines = [], []
    cap = FakeCapture()
    paths = record_clips(cap, tmp_path, "wave", clips=2, seconds=1.5, countdown_s=1.0,
                         show=lambda img: shown.append(img) and False, log=lines.append)
    assert [p.parent.name for p in paths] == ["wave", "wave"] and all(p.suffix == ".mp4" for p in paths)
    assert cap.index == 2 * (20 + 30)  # 1 s countdown + 1.5 s clip at 20 fps, twice
    for p in paths:
        c = cv2.VideoCapture(str(p))
        assert int(c.get(cv2.CAP_PROP_FRAME_COUNT)) == 30
        ok, first = c.read()
        c.release()
        assert ok and abs(float(first.mean()) - float(first[0, 0].mean())) < 3  # a plain frame: no overlay
    # the countdown was drawn over the live picture (frames differ from the flat camera frame)
    assert len(shown) == 100 and shown[0].std() > 5
    assert any("in 1..." in line for line in lines) and sum("saved" in line for line in lines) == 2
    from edge.record import main
    assert main(["--camera", "97", "--label", "wave", "--out", str(tmp_path), "--headless"]) == 2


TRAVERSING_LABELS = ["..", "../outside", "/tmp/abs", "a/b", "a\\b", ".", ""]


@pytest.mark.parametrize("label", TRAVERSING_LABELS)
def test_labels_cannot_write_outside_the_output_folder(label, tmp_path, capsys):
    """A label becomes a folder under --out (edge.extract's CSV, edge.record's --label): '..', an absolute path
    or a separator would write elsewhere, so it is bad input named in one line, before anything is written."""
    from edge.errors import EdgeError
    from edge.extract import find_videos
    from edge.record import main as record_main
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "a.mp4").write_bytes(b"not decoded: the labels are checked first")
    csv_file = tmp_path / "labels.csv"
    csv_file.write_text(f"file,label\na.mp4,{label}\n")
    if label:  # an empty label is the CSV's own 'expected file,label' error
        with pytest.raises(EdgeError, match=r"labels\.csv:2: label"):
            find_videos(videos, csv_file)
    else:
        with pytest.raises(EdgeError, match=r"labels\.csv:2"):
            find_videos(videos, csv_file)
    out = tmp_path / "out" / "inner"
    assert record_main(["--camera", "97", "--label", label, "--out", str(out), "--headless"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("python -m edge.record: error: --label")
    assert not (tmp_path / "out").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["labels.csv", "videos"]


@backend_checker("opencv")
@pytest.mark.parametrize("label", TRAVERSING_LABELS)
def test_record_clips_refuses_a_traversing_label(label, tmp_path):
    from edge.errors import EdgeError
    from edge.record import record_clips
    with pytest.raises(EdgeError, match="label"):
        record_clips(FakeCapture(), tmp_path / "out", label, clips=1, seconds=0.1, countdown_s=0)
    assert not (tmp_path / "out").exists()
