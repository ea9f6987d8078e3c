"""The edge loop on real frames: MediaPipe Pose (Tasks API) on ../shared's videos, the no-person clip, a
'camera' that disconnects, and a replay of real MediaPipe recordings. Skips without ../shared or mediapipe."""
from __future__ import annotations

import numpy as np
import pytest

from edge.events import read_events

from backend_checker import require_backend

pytestmark = require_backend("mediapipe")  # skips the module without mediapipe and opencv

import cv2  # noqa: E402


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """The edge loop sets torch's (process-wide) thread count; give other areas' tests theirs back."""
    import torch
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pose_model(shared_dir):
    path = shared_dir / "models" / "pose_landmarker_full.task"
    if not path.is_file():
        pytest.skip(f"pose model not found at {path}")
    return path


@pytest.fixture(scope="module")
def ntu_ckpt(tmp_path_factory):
    """An (untrained) ntu25 model: the MediaPipe landmarks go through core.mapping on their way in."""
    from core.checkpoint import save_checkpoint
    from core.models.last import create_model
    from core.spec import InputSpec
    model = create_model("last_nano", num_classes=3, layout="ntu25")
    spec = InputSpec(layout="ntu25", frames=16, window_frames=24, fps=30.0)
    return save_checkpoint(tmp_path_factory.mktemp("edge_mp") / "nano_ntu25.pt", model, spec, ["a", "b", "c"])


def run_cli(*args):
    from edge.run import main
    return main([str(a) for a in args] + ["--no-progress"])


def test_pose_estimator_on_a_real_frame(shared_dir, pose_model):
    from edge.pose import MediaPipePose
    cap = cv2.VideoCapture(str(shared_dir / "data" / "video" / "ta_chi.mp4"))
    ok, frame = cap.read()
    cap.release()
    assert ok
    with MediaPipePose(pose_model, mode="video") as pose:
        people = pose.detect(frame, 0)
    assert len(people) == 1
    p = people[0]
    assert p.world.shape == (33, 4) and p.image.shape == (33, 4)
    assert np.abs(p.world[:, :3]).max() < 2.0  # metres around the hips
    hips = p.world[[23, 24], :3].mean(0)
    assert np.linalg.norm(hips) < 0.1  # world landmarks are hip-centred
    assert 0 < p.image_centre[0] < 1 and 0 < p.image_centre[1] < 1


def test_world_landmarks_enter_the_window_rotated_not_mirrored(shared_dir, pose_model, tmp_path):
    """MediaPipe world (y down) -> camera axes (y up) by a rotation: what the window holds is exactly
    (-x, -y, z) of the landmarks."""
    from core.checkpoint import save_checkpoint
    from core.models.last import create_model
    from core.runtime import load_runtime
    from core.spec import InputSpec
    from edge.capture import VideoFileSource
    from edge.pose import MediaPipePose
    from edge.run import EdgeLoop, RunResult
    spec = InputSpec(layout="mediapipe33", frames=8, window_frames=8)
    ckpt = save_checkpoint(tmp_path / "mp.pt", create_model("last_nano", num_classes=2, layout="mediapipe33"),
                           spec, ["a", "b"])
    source = VideoFileSource(shared_dir / "data" / "video" / "ta_chi.mp4", max_frames=3)
    seen = []
    with MediaPipePose(pose_model) as pose:
        detect = pose.detect
        pose.detect = lambda image, ts: seen.append(detect(image, ts)) or seen[-1]  # keep what MediaPipe returned
        loop = EdgeLoop(load_runtime(ckpt, threads=1), pose=pose)
        result = RunResult()
        for frame in source:
            loop.step(frame, result)
        source.close()
    mediapipe_world = seen[-1][0].world[:, :3]
    assert mediapipe_world[[11, 12], 1].mean() < mediapipe_world[[23, 24], 1].mean()  # MediaPipe: y down
    raw = loop.window.clip()[0, -1]
    assert np.allclose(raw, mediapipe_world * np.array([-1, 1, 1]) * np.array([1, -1, 1]))
    shoulders_y, hips_y = raw[[11, 12], 1].mean(), raw[[23, 24], 1].mean()
    assert shoulders_y > hips_y  # y points up after the rotation (ta_chi starts upright)


def test_real_video_headless_overlay_events_latency(shared_dir, pose_model, ntu_ckpt, tmp_path, capsys):
    video, events = tmp_path / "overlay.mp4", tmp_path / "events.jsonl"
    rc = run_cli("--video", shared_dir / "data" / "video" / "ta_chi.mp4", "--model", ntu_ckpt, "--pose-model",
                 pose_model, "--headless", "--out-video", video, "--events", events, "--max-frames", "45")
    out = capsys.readouterr().out
    assert rc == 0
    evs = read_events(events)
    end = evs[-1]
    assert end["event"] == "run_end" and end["frames"] == 45
    assert end["frames_with_person"] >= 40 and end["classifications"] >= 4
    assert {"capture", "pose", "preprocess", "classify", "smoothing", "draw"} <= set(end["latency_ms"])
    assert any(e["event"] == "person_found" for e in evs)
    for row in ("pose", "classify", "draw"):
        assert any(line.startswith(row) for line in out.splitlines()), out
    cap = cv2.VideoCapture(str(video))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 45
    ok, frame = cap.read()
    cap.release()
    assert ok and frame.shape == (256, 340, 3)


def test_no_person_video_reports_no_person(shared_dir, pose_model, ntu_ckpt, tmp_path, capsys):
    events = tmp_path / "events.jsonl"
    rc = run_cli("--video", shared_dir / "data" / "video" / "no_person_climbing.mp4", "--model", ntu_ckpt,
                 "--pose-model", pose_model, "--headless", "--events", events, "--max-frames", "40")
    out = capsys.readouterr().out
    assert rc == 0
    assert "no person detected in any of the 40 frames" in out
    evs = read_events(events)
    assert [e["event"] for e in evs][:2] == ["run_start", "no_person"]
    assert evs[-1]["frames_with_person"] == 0 and evs[-1]["classifications"] == 0
    assert not any(e["event"] == "action_start" for e in evs)


def test_camera_disconnect_mid_run_ends_with_one_line(shared_dir, pose_model, ntu_ckpt, tmp_path, capsys):
    """A video file opened as the camera device plays at its frame rate (60 fps: faster than pose + model
    here): live-stream pose, newest-frame reading, then the 'camera' stops (end of file = unplugged)."""
    cam = tmp_path / "camera.avi"
    cap = cv2.VideoCapture(str(shared_dir / "data" / "video" / "ta_chi.mp4"))
    writer = cv2.VideoWriter(str(cam), cv2.VideoWriter_fourcc(*"MJPG"), 60.0, (340, 256))
    for _ in range(60):
        writer.write(cap.read()[1])
    writer.release()
    cap.release()
    events = tmp_path / "events.jsonl"
    rc = run_cli("--camera", cam, "--model", ntu_ckpt, "--pose-model", pose_model, "--headless", "--events", events)
    captured = capsys.readouterr()
    assert rc == 1
    err = [line for line in captured.err.splitlines() if line.strip()]
    assert len(err) == 1 and "disconnected after 60 frames" in err[0] and "Traceback" not in captured.err
    assert "frames dropped" in captured.out
    evs = read_events(events)
    assert [e["event"] for e in evs[-2:]] == ["error", "run_end"]
    assert evs[-1]["dropped"] > 0 and evs[-1]["frames"] + evs[-1]["dropped"] == 60
    assert evs[-1]["frames"] >= 5 and evs[-1]["frames_with_person"] >= 5


def test_replay_of_real_mediapipe_recordings_through_the_mapping(shared_dir, ntu_ckpt, tmp_path, capsys):
    events = tmp_path / "events.jsonl"
    rc = run_cli("--skeletons", shared_dir / "data" / "mediapipe" / "pose33_sequences.npz", "--index", "3",
                 "--model", ntu_ckpt, "--headless", "--events", events)
    out = capsys.readouterr().out
    assert rc == 0
    assert "mediapipe33, 30 frames" in out
    assert read_events(events)[-1]["classifications"] >= 1
