"""Edge loop: window / tracking / smoothing / events logic, replayed skeletons through the real loop, the same
labels on every runtime available here, and the bad-input cases (one clear line, valid events)."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from core.layouts import get_layout
from edge.events import ActionEvents, EventWriter, read_events
from edge.smoothing import UNKNOWN, ActionSmoother, softmax
from edge.window import SkeletonWindow, WindowPolicy
from backend_checker import backend_available, backend_checker, skip_reason
from tolerances import float32_logit_tolerance

REPO = Path(__file__).resolve().parents[1]
ACTIONS = ("wave", "squat", "jump")
LAYOUT = "mediapipe33"


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """The edge loop sets torch's (process-wide) thread count; give other areas' tests theirs back."""
    import torch
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


# ---- a small real model, trained once per session on synthetic motions --------------------------------
@lru_cache(maxsize=None)
def _trained_checkpoint(directory: str) -> Path:
    import torch

    from core.checkpoint import save_checkpoint
    from core.data.dataset import SkeletonDataset
    from core.models.last import create_model
    from core.spec import InputSpec
    from core.synthetic import make_synthetic_split
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 threads on a busy 2-core machine is many times slower
    try:
        torch.manual_seed(0)
        split = make_synthetic_split(LAYOUT, per_class=10, frames=32, seed=0, actions=ACTIONS)
        spec = InputSpec(layout=LAYOUT, frames=16, window_frames=32, fps=30.0)
        model = create_model("last_nano", num_classes=len(ACTIONS), layout=LAYOUT)
        ds = SkeletonDataset(split, spec, train=True)
        loader = torch.utils.data.DataLoader(ds, batch_size=10, shuffle=True)
        opt = torch.optim.AdamW(model.parameters(), 5e-3)
        for epoch in range(25):
            model.train()
            ds.set_epoch(epoch)
            for x, y in loader:
                loss = torch.nn.functional.cross_entropy(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
        model.eval()
        return save_checkpoint(Path(directory) / "nano_mp33.pt", model, spec, list(ACTIONS))
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def edge_ckpt(tmp_path_factory) -> Path:
    directory = tmp_path_factory.getbasetemp() / "edge_model"  # one path: test_edge_api.py shares the model
    directory.mkdir(exist_ok=True)
    return _trained_checkpoint(str(directory))


def _two_actions_with_gap(path: Path, gap: int = 40) -> Path:
    """wave (64 frames), nobody (gap), squat (64 frames) as one (M, T, V, C) replay file."""
    from edge.demo import main as demo_main
    assert demo_main(["--out", str(path), "--layout", LAYOUT, "--actions", "wave,squat", "--gap", str(gap),
                      "--seed", "1"]) == 0
    return path


@pytest.fixture(scope="session")
def replay_file(tmp_path_factory) -> Path:
    return _two_actions_with_gap(tmp_path_factory.mktemp("edge_replay") / "wave_gap_squat.npz")


def run_cli(*args: str) -> int:
    from edge.run import main
    return main([str(a) for a in args] + ["--no-progress"])


# ---- window -----------------------------------------------------------------------------------------
def test_window_holds_then_marks_missing_then_resets():
    w = SkeletonWindow(10, persons=1, joints=4, channels=3, policy=WindowPolicy(hold_frames=2, reset_after=7,
                                                                               min_valid=0.7))
    pose = np.ones((1, 4, 3), np.float32)
    states = [w.push(pose * (i + 1)) for i in range(10)]
    assert states == ["ok"] * 10 and w.ready
    assert w.push(None) == "held" and w.push(None) == "held"
    clip = w.clip()
    assert clip.shape == (1, 10, 4, 3)
    assert np.allclose(clip[0, -1], 10) and np.allclose(clip[0, -2], 10)  # held = last real pose
    assert np.allclose(clip[0, 0], 3)  # oldest first
    assert w.push(None) == "missing" and w.push(None) == "missing"
    assert w.valid_fraction == pytest.approx(0.8) and w.ready
    assert w.push(None) == "missing" and w.push(None) == "missing"
    assert w.valid_fraction == pytest.approx(0.6) and not w.ready  # mostly-empty windows are never ready
    assert w.push(None) == "missing"
    assert w.push(None) == "reset" and w.filled == 0 and not w.ready
    assert w.push(pose) == "ok" and w.filled == 1


def test_window_rejects_wrong_joint_count():
    w = SkeletonWindow(4, 1, 33, 3)
    with pytest.raises(ValueError, match="per person"):
        w.push(np.ones((1, 25, 3), np.float32))


# ---- a model trained on two people together ---------------------------------------------------------
def test_two_person_model_keeps_each_person_in_their_slot(tmp_path):
    """A model trained with M=2: the detector's person order flips mid-sequence, the window's slots do not."""
    from core.checkpoint import save_checkpoint
    from core.models.last import create_model
    from core.spec import InputSpec
    from core.synthetic import synthetic_clip
    from edge.recognizer import ActionRecognizer, ActionRecognizerOptions, BaseOptions, RunningMode
    spec = InputSpec(layout=LAYOUT, frames=8, persons=2, window_frames=12, fps=30.0)
    ckpt = save_checkpoint(tmp_path / "m2.pt", create_model("last_nano", num_classes=2, layout=LAYOUT), spec,
                           ["a", "b"])
    rec = ActionRecognizer(ActionRecognizerOptions(BaseOptions(model_path=ckpt), RunningMode.SKELETONS,
                                                   stride_s=4 / 30))
    assert rec.max_persons == 2
    a = synthetic_clip("wave", LAYOUT, 20, seed=1)[0]
    b = synthetic_clip("squat", LAYOUT, 20, seed=2)[0]
    a[..., 0] -= 1.0  # person a stands 1 m to the left of b
    b[..., 0] += 1.0
    classified = 0
    for t in range(20):
        people = [a[t], b[t]] if t < 10 else [b[t], a[t]]  # the detector swaps its order at frame 10
        res = rec.recognize_for_video(np.stack(people), t * 1000 / 30)
        classified += res.classified
        assert [p.person_id for p in res.persons] == [0, 1]
    (subject,) = rec.subjects.values()
    assert subject.slots == [0, 1]
    clip = subject.window.clip()  # (M, T, V, C), last 12 frames
    hips = list(get_layout(LAYOUT).hips)
    assert (clip[0, :, hips, 0].mean(0) < 0).all() and (clip[1, :, hips, 0].mean(0) > 0).all()
    assert classified >= 2


# ---- smoothing and events ---------------------------------------------------------------------------
def test_smoother_ema_hysteresis_and_unknown():
    s = ActionSmoother(["a", "b"], alpha=0.5, enter=0.6, exit=0.45, margin=0.1)
    d = s.update([0.55, 0.45])
    assert d.label == UNKNOWN and d.index is None  # below the floor: no action
    d = s.update([0.9, 0.1])
    assert d.label == "a" and d.changed and d.confidence == pytest.approx(0.725)
    d = s.update([0.3, 0.7])  # one contrary window: EMA 0.5125 stays above exit -> still 'a'
    assert d.label == "a" and not d.changed
    d = s.update([0.1, 0.9])  # EMA a=0.306 < exit, b=0.694 >= enter -> switch
    assert d.label == "b" and d.changed
    d = s.update([0.5, 0.5])
    d = s.update([0.5, 0.5])  # b decays to 0.55: above exit, stays
    assert d.label == "b"
    assert s.clear() is not None and s.current is None


def test_softmax_is_stable():
    p = softmax(np.array([1000.0, 0.0, -1000.0]))
    assert np.isfinite(p).all() and p[0] == pytest.approx(1.0)


def test_action_events_start_end_as_json_lines(tmp_path):
    path = tmp_path / "ev.jsonl"
    s = ActionSmoother(["wave", "clap"], alpha=1.0, enter=0.6)
    out = []
    ev = ActionEvents(person_id=7)
    for i, p in enumerate([[0.9, 0.1], [0.95, 0.05], [0.1, 0.9], [0.55, 0.45]]):
        ev.update(s.update(p), i * 0.5, out)
    ev.end(2.0, "end_of_stream", out)
    with EventWriter(path) as writer:
        for e in out:
            record = e.to_dict()
            writer.emit(record.pop("event"), **record)
    events = read_events(path)
    assert {e["person"] for e in events} == {7}
    assert [(e["event"], e["action"]) for e in events] == [
        ("action_start", "wave"), ("action_end", "wave"), ("action_start", "clap"), ("action_end", "clap")]
    assert events[1]["duration"] == pytest.approx(1.0) and events[1]["peak_confidence"] == pytest.approx(0.95)
    assert events[3]["reason"] == "low_confidence"


def test_event_writer_never_writes_nan(tmp_path):
    with EventWriter(tmp_path / "e.jsonl") as w:
        w.emit("x", value=float("nan"), arr=np.arange(3), num=np.float32(0.5))
    (e,) = read_events(tmp_path / "e.jsonl")
    assert e == {"event": "x", "value": None, "arr": [0, 1, 2], "num": 0.5}


# ---- replay through the real loop -------------------------------------------------------------------
def test_replay_detects_both_actions_and_the_gap(edge_ckpt, replay_file, tmp_path, capsys):
    events_path, video = tmp_path / "events.jsonl", tmp_path / "replay.mp4"
    rc = run_cli("--skeletons", replay_file, "--model", edge_ckpt, "--headless", "--events", events_path,
                 "--out-video", video, "--stride-s", str(4 / 30))
    out = capsys.readouterr().out
    assert rc == 0
    events = read_events(events_path)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end"
    starts = [e for e in events if e["event"] == "action_start"]
    assert [e["action"] for e in starts] == ["wave", "squat"], events
    assert all(e["confidence"] >= 0.5 for e in starts)
    # wave ends because the person vanished, within the hold time (0.2 s = 6 frames); the gap (1.33 s) is longer
    # than reset_s (1 s), so whoever comes back starts a fresh window, and shorter than id_memory_s (3 s), so the
    # person who reappears where she left keeps her id (lost, then found again: the events pair)
    wave_end = next(e for e in events if e["event"] == "action_end" and e["action"] == "wave")
    assert wave_end["reason"] == "no_person" and 64 <= wave_end["frame"] <= 63 + 7
    presence = [(e["event"], e["person"]) for e in events if e["event"] in ("person_found", "person_lost")]
    assert presence == [("person_found", 0), ("person_lost", 0), ("person_found", 0)], presence
    assert [e["person"] for e in starts] == [0, 0]
    assert starts[1]["frame"] >= 64 + 40 + 32 - 1  # a fresh window must fill with squat frames first
    end = events[-1]
    assert end["frames"] == 168 and end["frames_with_person"] == 128 and end["persons"] == 1  # one id
    assert "classify" in end["latency_ms"] and "p99_ms" in end["latency_ms"]["classify"]
    assert "p50" in out and "classify" in out and "FPS" in out
    import cv2
    cap = cv2.VideoCapture(str(video))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 168
    cap.release()


def test_replay_command_line_runs_without_camera_display_or_shared(edge_ckpt, replay_file, tmp_path):
    """What the README's main job runs: a headless replay in a fresh process."""
    events_path = tmp_path / "ev.jsonl"
    env = {**os.environ, "DISPLAY": "", "LAST_SHARED": str(tmp_path / "no-shared")}
    proc = subprocess.run([sys.executable, "-m", "edge.run", "--skeletons", str(replay_file), "--model",
                           str(edge_ckpt), "--headless", "--events", str(events_path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "p90" in proc.stdout
    assert {"action_start", "run_end"} <= {e["event"] for e in read_events(events_path)}


def test_replay_of_a_data_set_file_picks_the_indexed_sequence(edge_ckpt, tmp_path, capsys):
    from core.synthetic import make_synthetic_split
    split = make_synthetic_split(LAYOUT, per_class=2, frames=48, seed=5, actions=ACTIONS)
    path = tmp_path / "set.npz"
    np.savez(path, pose=split.data[:, 0], label=split.labels, classes=np.array(ACTIONS), lengths=split.lengths)
    from edge.capture import load_skeleton_sequence
    seq = load_skeleton_sequence(path, index=4)
    assert seq.label == "jump" and seq.data.shape == (1, split.lengths[4], 33, 3)
    rc = run_cli("--skeletons", path, "--index", "4", "--repeat", "3", "--model", edge_ckpt, "--headless")
    assert rc == 0
    assert "label jump" in capsys.readouterr().out


def test_long_replay_memory_stays_flat(edge_ckpt, tmp_path):
    """10,000 frames of replay through the runner: RSS after the warm-up vs at the end."""
    from core.runtime import load_runtime
    from edge.capture import SkeletonReplaySource, load_skeleton_sequence
    from edge.recognizer import ActionRecognizer, ActionRecognizerOptions, BaseOptions, RunningMode
    from edge.run import EdgeRunner
    path = _two_actions_with_gap(tmp_path / "seq.npz")
    source = SkeletonReplaySource(load_skeleton_sequence(path), repeat=60, max_frames=10_000)
    rec = ActionRecognizer(ActionRecognizerOptions(BaseOptions(runtime=load_runtime(edge_ckpt, threads=1)),
                                                   running_mode=RunningMode.SKELETONS, stride_s=40 / 30))
    runner = EdgeRunner(rec, events=EventWriter())
    result = runner.run(source, rss_warmup=500)
    assert result.frames == 10_000 and result.classifications > 100  # each of the 119 appearances classified
    assert result.rss_end_mb - result.rss_start_mb < 15.0, (result.rss_start_mb, result.rss_end_mb)
    assert len(runner.latency.samples["track"]) <= runner.latency.history


# ---- the same labels on every runtime available here -------------------------------------------------
def _export(kind: str, ckpt: Path, out: Path) -> Path:
    calib = out / "calib.npz"
    if not calib.exists():
        from core.checkpoint import load_checkpoint
        from core.preprocess import prepare_clip
        from core.spec import InputSpec
        from core.synthetic import make_synthetic_split
        spec = InputSpec.from_dict(load_checkpoint(ckpt)["input_spec"])
        split = make_synthetic_split(LAYOUT, per_class=8, frames=32, seed=3, actions=ACTIONS)
        np.savez(calib, x=np.stack([prepare_clip(split.sample(i), spec) for i in range(len(split))]))
    backend = "tflite" if kind.startswith("tflite") else "onnxruntime"
    if not backend_available(backend):  # only a missing backend skips: a failed export is a failure
        pytest.skip(skip_reason(backend))
    if kind == "onnx_fp32":
        from converters.onnx import export
        res = export(ckpt, out, "fp32")
    elif kind == "onnx_int8":
        from converters.int8 import export
        res = export(ckpt, out, "int8", calib=calib)
    elif kind == "tflite_full_int8":  # int8 input: core.runtime derives the streams and quantizes
        from converters.tflite import export
        res = export(ckpt, out, "int8", calib=calib, int8_method="full", range_rules=("p99.99", "minmax"))
    else:
        from converters.tflite import export
        res = export(ckpt, out, "fp32")
    if res.status == "missing-backend":
        pytest.skip(f"{kind}: {res.message}")
    assert res.status == "ok" and res.path is not None, f"{kind} export {res.status}: {res.message}"
    return res.path


def test_a_failed_export_fails_the_same_labels_test_instead_of_skipping(monkeypatch, tmp_path):
    """Only a missing backend may skip: an INT8 or TFLite regression must show as a failure."""
    import converters.onnx
    from converters.common import ExportResult
    monkeypatch.setattr(converters.onnx, "export", lambda *a, **k: ExportResult("onnx", "fp32", None, "failed",
                                                                                   "simulated regression"))
    (tmp_path / "calib.npz").touch()
    try:
        _export("onnx_fp32", tmp_path / "unused.pt", tmp_path)
    except pytest.skip.Exception:
        pytest.fail("a failed export was turned into a skip")
    except AssertionError as exc:
        assert "simulated regression" in str(exc)
    else:
        pytest.fail("a failed export passed")


@pytest.mark.parametrize("kind", ["onnx_fp32", "onnx_int8", "tflite_fp32", "tflite_full_int8"])
def test_every_runtime_gives_the_same_labels_on_the_same_replay(kind, edge_ckpt, replay_file, tmp_path):
    from core.runtime import load_runtime
    from edge.capture import SkeletonReplaySource, load_skeleton_sequence
    from edge.recognizer import ActionRecognizer, ActionRecognizerOptions, BaseOptions, RunningMode
    from edge.run import EdgeRunner
    artifact = _export(kind, edge_ckpt, tmp_path)

    def labels(model_path):
        got = []
        rec = ActionRecognizer(ActionRecognizerOptions(BaseOptions(runtime=load_runtime(model_path, threads=1)),
                                                       running_mode=RunningMode.SKELETONS))
        EdgeRunner(rec).run(SkeletonReplaySource(load_skeleton_sequence(replay_file)),
                            on_result=lambda frame, r: got.extend(p for p in r.persons if r.classified))
        return [p.label for p in got], np.stack([p.probabilities for p in got])

    ref_labels, ref_probs = labels(edge_ckpt)
    got_labels, got_probs = labels(artifact)
    assert len(ref_labels) > 10 and {"wave", "squat"} <= set(ref_labels)
    assert got_labels == ref_labels
    if "int8" in kind:
        tol = 0.05  # INT8 quantization noise, as tests/test_int8.py
    else:  # a softmax moves no probability by more than half the largest logit change (tests/tolerances.py)
        import torch
        from core.checkpoint import load_model
        model, _ = load_model(edge_ckpt)
        x = np.load(tmp_path / "calib.npz")["x"]
        with torch.no_grad():
            tol = 0.5 * float32_logit_tolerance(model, x.shape[2], model(torch.from_numpy(x)).numpy())
    assert np.abs(got_probs - ref_probs).max() <= tol


# ---- bad input: one clear line, never a traceback, events stay valid -----------------------------------
def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_missing_model_file(tmp_path, replay_file, capsys):
    assert run_cli("--skeletons", replay_file, "--model", tmp_path / "nope.pt", "--headless") == 2
    line = _one_error_line(capsys)
    assert "nope.pt" in line and "not found" in line


def test_corrupt_model_file(tmp_path, replay_file, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not an onnx model")
    events = tmp_path / "ev.jsonl"
    assert run_cli("--skeletons", replay_file, "--model", bad, "--headless", "--events", events) == 2
    assert "bad.onnx" in _one_error_line(capsys)
    assert read_events(events)[-1]["event"] == "error"


def test_layout_mismatch_is_one_line(edge_ckpt, tmp_path, capsys):
    from core.synthetic import synthetic_clip
    kinect = tmp_path / "kinect.npz"
    np.savez(kinect, pose=synthetic_clip("wave", "kinect20", 40, seed=1))
    assert run_cli("--skeletons", kinect, "--model", edge_ckpt, "--headless") == 2
    line = _one_error_line(capsys)
    assert "layout mismatch" in line and "kinect20" in line and "mediapipe33" in line


@pytest.mark.parametrize("content,match", [
    (b"garbage", "unreadable"),
    (None, "matches no known layout"),
])
def test_bad_skeleton_file(edge_ckpt, tmp_path, capsys, content, match):
    path = tmp_path / "bad.npz"
    if content is None:
        np.savez(path, pose=np.ones((10, 7, 3), np.float32))
    else:
        path.write_bytes(content)
    assert run_cli("--skeletons", path, "--model", edge_ckpt, "--headless") == 2
    line = _one_error_line(capsys)
    assert "bad.npz" in line and match in line


def test_unwritable_out_video_is_one_line(edge_ckpt, replay_file, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    events = tmp_path / "ev.jsonl"
    rc = run_cli("--skeletons", replay_file, "--model", edge_ckpt, "--headless", "--out-video", blocker / "out.mp4",
                 "--events", events)
    assert rc == 1
    assert "a_file" in _one_error_line(capsys)
    assert read_events(events)[-1]["event"] == "error"


def test_index_out_of_range(edge_ckpt, tmp_path, capsys):
    path = tmp_path / "set.npz"
    np.savez(path, pose=np.ones((3, 10, 33, 3), np.float32), label=np.array([0, 1, 2]))
    assert run_cli("--skeletons", path, "--index", "7", "--model", edge_ckpt, "--headless") == 2
    assert "--index 7 is out of range" in _one_error_line(capsys)


@backend_checker("opencv")
def test_unreadable_video_is_one_line(edge_ckpt, tmp_path, capsys):
    video = tmp_path / "broken.mp4"
    video.write_bytes(b"\x00" * 2048)
    pose_model = tmp_path / "pose.task"  # resolution only checks the file exists; the video fails first
    pose_model.write_bytes(b"x")
    events = tmp_path / "ev.jsonl"
    rc = run_cli("--video", video, "--model", edge_ckpt, "--pose-model", pose_model, "--headless", "--events", events)
    assert rc == 2
    assert "broken.mp4" in _one_error_line(capsys)
    assert read_events(events)[-1]["event"] == "error"


@backend_checker("opencv")
def test_camera_that_does_not_open_is_one_line(edge_ckpt, tmp_path, capsys):
    pose_model = tmp_path / "pose.task"
    pose_model.write_bytes(b"x")
    rc = run_cli("--camera", "97", "--model", edge_ckpt, "--pose-model", pose_model, "--headless")
    assert rc == 2
    assert "--camera 97" in _one_error_line(capsys)


def test_missing_pose_model_says_where_to_put_it(edge_ckpt, tmp_path, monkeypatch, capsys):
    import edge.pose as pose
    monkeypatch.delenv(pose.POSE_MODEL_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(pose, "POSE_MODEL_URL", f"file://{tmp_path}/offline/pose_landmarker_{{v}}.task")
    rc = run_cli("--video", tmp_path / "any.mp4", "--model", edge_ckpt, "--headless")
    assert rc == 2
    line = _one_error_line(capsys)
    expected = tmp_path / "cache" / "last-edge" / "pose_landmarker_full.task"
    assert str(expected) in line and "--pose-model" in line and pose.POSE_MODEL_ENV in line


def test_pose_model_resolution_order_and_sha256(tmp_path, monkeypatch):
    import edge.pose as pose
    assert "/latest/" not in pose.POSE_MODEL_URL and f"/{pose.POSE_MODEL_VERSION}/" in pose.POSE_MODEL_URL
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    env_model = tmp_path / "env.task"
    env_model.write_bytes(b"env")
    explicit = tmp_path / "explicit.task"
    explicit.write_bytes(b"explicit")
    cached = tmp_path / "cache" / "last-edge" / "pose_landmarker_full.task"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"cached")
    monkeypatch.setenv(pose.POSE_MODEL_ENV, str(env_model))
    assert pose.resolve_pose_model(explicit) == explicit
    assert pose.resolve_pose_model() == env_model
    monkeypatch.delenv(pose.POSE_MODEL_ENV)
    assert pose.resolve_pose_model() == cached
    cached.unlink()
    # a "download" (file:// here, no internet) whose sha256 does not match is refused and not kept
    served = tmp_path / "served" / "pose_landmarker_full.task"
    served.parent.mkdir()
    served.write_bytes(b"not the official bundle")
    monkeypatch.setattr(pose, "POSE_MODEL_URL", f"file://{tmp_path}/served/pose_landmarker_{{v}}.task")
    with pytest.raises(pose.PoseModelError, match="sha256"):
        pose.resolve_pose_model()
    assert not cached.exists()
    # every variant is pinned (a lite or heavy file is checked too), at a versioned URL, never `latest`
    (tmp_path / "served" / "pose_landmarker_lite.task").write_bytes(b"lite")
    with pytest.raises(pose.PoseModelError, match="sha256"):
        pose.resolve_pose_model(variant="lite")
    assert set(pose.POSE_MODEL_SHA256) == set(pose.POSE_VARIANTS)
    # a file whose sha256 is the pinned one is kept in the cache
    monkeypatch.setitem(pose.POSE_MODEL_SHA256, "lite", (hashlib.sha256(b"lite").hexdigest(),))
    got = pose.resolve_pose_model(variant="lite")
    assert got == cached.with_name("pose_landmarker_lite.task") and got.read_bytes() == b"lite"


def test_backend_failure_mid_run_ends_cleanly_with_valid_events(edge_ckpt, replay_file, tmp_path):
    """A backend that fails on its 3rd call (e.g. a GPU lost mid-run): the loop stops with one message and the
    events file still ends with error + run_end."""
    from core.runtime import load_runtime
    from edge.capture import SkeletonReplaySource, load_skeleton_sequence
    from edge.recognizer import ActionRecognizer, ActionRecognizerOptions, BaseOptions, RunningMode
    from edge.run import EdgeRunner
    runtime = load_runtime(edge_ckpt, threads=1)
    real_predict, calls = runtime.predict, []

    def failing_predict(x):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("device lost\nsecond line of a long backend message")
        return real_predict(x)

    runtime.predict = failing_predict
    path = tmp_path / "ev.jsonl"
    with EventWriter(path) as writer:
        rec = ActionRecognizer(ActionRecognizerOptions(BaseOptions(runtime=runtime),
                                                       running_mode=RunningMode.SKELETONS))
        calls.clear()  # the recognizer's warm-up inference
        result = EdgeRunner(rec, events=writer).run(SkeletonReplaySource(load_skeleton_sequence(replay_file)))
    assert result.error is not None and result.error.endswith("RuntimeError: device lost")
    assert result.classifications == 2
    events = read_events(path)
    assert [e["event"] for e in events[-2:]] == ["error", "run_end"]


@backend_checker("opencv")
def test_camera_source_always_serves_the_newest_frame_and_counts_drops(tmp_path):
    """A file opened as the 'camera' device plays at its frame rate (200 fps here) on the reader thread,
    faster than this consumer: the consumer always gets the newest frame and the rest are counted as dropped."""
    import time

    import cv2

    from edge.capture import CameraSource
    video = tmp_path / "cam.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 200.0, (64, 48))
    for i in range(120):
        writer.write(np.full((48, 64, 3), i * 2, np.uint8))
    writer.release()
    cam = CameraSource(str(video), disconnect_after=5)
    indices = []
    for frame in cam:
        indices.append(frame.index)
        time.sleep(0.02)
    cam.close()
    assert indices == sorted(indices) and len(set(indices)) == len(indices)
    assert cam.read_count == 120 and len(indices) < 120
    assert cam.dropped == 120 - len(indices)
    assert cam.error is not None and "disconnected after 120 frames" in cam.error
