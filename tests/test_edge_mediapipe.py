"""The edge loop on real frames: MediaPipe Pose (Tasks API) on ../shared's videos, the no-person clip, a
'camera' that disconnects, and a replay of real MediaPipe recordings. Skips without ../shared or mediapipe."""
from __future__ import annotations

import time

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
    from edge.recognizer import ActionRecognizer, ActionRecognizerOptions
    spec = InputSpec(layout="mediapipe33", frames=8, window_frames=8)
    ckpt = save_checkpoint(tmp_path / "mp.pt", create_model("last_nano", num_classes=2, layout="mediapipe33"),
                           spec, ["a", "b"])
    source = VideoFileSource(shared_dir / "data" / "video" / "ta_chi.mp4", max_frames=3)
    seen = []
    with ActionRecognizer(ActionRecognizerOptions(runtime=load_runtime(ckpt, threads=1),
                                                  pose_model_path=pose_model)) as rec:
        detect = rec.pose.detect
        rec.pose.detect = lambda image, ts: seen.append(detect(image, ts)) or seen[-1]  # keep MediaPipe's output
        for frame in source:
            rec.recognize_for_video(frame.image, frame.time_s * 1000)
        source.close()
        (subject,) = rec.subjects.values()
    mediapipe_world = seen[-1][0].world[:, :3]
    assert mediapipe_world[[11, 12], 1].mean() < mediapipe_world[[23, 24], 1].mean()  # MediaPipe: y down
    raw = subject.window.clip()[0, -1]
    # the window holds the pose resampled to the model's 30 fps (the video is 29.97 fps): the last sample is a
    # blend of the last two frames, within a millimetre of the last one
    assert np.allclose(raw, mediapipe_world * np.array([-1, 1, 1]) * np.array([1, -1, 1]), atol=2e-3)
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
    assert "dropped:" in captured.out
    evs = read_events(events)
    assert [e["event"] for e in evs[-2:]] == ["error", "run_end"]
    assert evs[-1]["dropped"] > 0 and evs[-1]["frames"] + evs[-1]["dropped"] == 60
    assert evs[-1]["frames"] >= 2 and evs[-1]["frames_with_person"] >= 2  # a few, however loaded the machine


def test_replay_of_real_mediapipe_recordings_through_the_mapping(shared_dir, ntu_ckpt, tmp_path, capsys):
    """Upper-body webcam recordings: MediaPipe guesses the hips (visibility ~0.2), so the body check is off here."""
    events = tmp_path / "events.jsonl"
    rc = run_cli("--skeletons", shared_dir / "data" / "mediapipe" / "pose33_sequences.npz", "--index", "3",
                 "--model", ntu_ckpt, "--headless", "--events", events, "--min-body-visibility", "0")
    out = capsys.readouterr().out
    assert rc == 0
    assert "mediapipe33, 30 frames" in out
    assert read_events(events)[-1]["classifications"] >= 1


def test_upper_body_recordings_are_partial_body_by_default(shared_dir, ntu_ckpt, tmp_path, capsys):
    """The same real recordings with the default body check: MediaPipe sees no hips (visibility ~0.2), so the
    person is partial_body and nothing is classified (instead of a confident label for two arms)."""
    events = tmp_path / "events.jsonl"
    rc = run_cli("--skeletons", shared_dir / "data" / "mediapipe" / "pose33_sequences.npz", "--index", "3",
                 "--model", ntu_ckpt, "--headless", "--events", events)
    assert rc == 0
    evs = read_events(events)
    assert evs[-1]["classifications"] == 0 and not any(e["event"] == "action_start" for e in evs)


def test_live_stream_drops_frames_under_load_keeps_order_and_the_newest(shared_dir, pose_model, ntu_ckpt):
    """Frames handed in 5 ms apart, far faster than pose here: the pose stage takes the newest, the others are
    dropped and counted; results come in frame order, and the last frame is never lost."""
    from edge.recognizer import ActionRecognizer, ActionRecognizerOptions, BaseOptions, RunningMode
    got = []
    options = ActionRecognizerOptions(BaseOptions(model_path=ntu_ckpt, pose_model_path=pose_model),
                                      running_mode=RunningMode.LIVE_STREAM,
                                      result_callback=lambda result, image, ts: got.append((ts, result, image)))
    cap = cv2.VideoCapture(str(shared_dir / "data" / "video" / "ta_chi.mp4"))
    frames = [cap.read()[1] for _ in range(60)]
    cap.release()
    with ActionRecognizer.create_from_options(options) as rec:
        with pytest.raises(ValueError, match="recognize_async"):
            rec.recognize_for_video(np.zeros((8, 8, 3), np.uint8), 0)
        for i, frame in enumerate(frames):
            rec.recognize_async(frame, i * 33)
            time.sleep(0.005)
        assert rec.flush(timeout=30)
        dropped = rec.dropped_frames
    stamps = [t for t, _, _ in got]
    assert stamps == sorted(set(stamps)) and set(stamps) <= {i * 33 for i in range(60)}
    assert stamps[-1] == 59 * 33  # the newest frame always gets its result
    assert len(got) + dropped == 60 and dropped >= 20 and len(got) >= 2
    assert all(image is frames[t // 33] for t, _, image in got)  # the callback gets its own frame back
    assert any(r.persons and r.persons[0].landmarks is not None for _, r, _ in got)
    assert all(r.times_s["submitted"] < r.times_s["pose_done"] <= r.times_s["done"] for _, r, _ in got)


def test_extract_real_videos_gives_a_data_set_that_trains(shared_dir, pose_model, tmp_path, capsys):
    """edge.extract on the shared real videos (first 3 s of each, cut into 0.5 s clips, last third held out),
    with the no-person video and a broken file reported and skipped; then train.fit trains on the result."""
    from edge.extract import main as extract_main
    videos = tmp_path / "videos"
    for name in ("ta_chi", "clean_and_jerk", "no_person_climbing"):
        (videos / name).mkdir(parents=True)
        (videos / name / f"{name}.mp4").symlink_to(shared_dir / "data" / "video" / f"{name}.mp4")
    (videos / "ta_chi" / "broken.mp4").write_bytes(b"\x00" * 1024)
    out = tmp_path / "my_set"
    args = ["--videos", videos, "--out", out, "--pose-model", pose_model, "--workers", "1", "--max-frames", "90",
            "--segment-s", "0.5", "--holdout-tail", "0.3", "--no-progress"]
    assert extract_main([str(a) for a in args]) == 0
    text = capsys.readouterr().out
    assert "skipped ta_chi/broken.mp4" in text and "skipped no_person_climbing/no_person_climbing.mp4: no person" in text
    import json
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["layout"] == "mediapipe33" and manifest["fps"] == 30.0 and manifest["coordinates"] == "world"
    assert manifest["class_names"] == ["clean_and_jerk", "ta_chi"] and len(manifest["skipped"]) == 2
    splits = [s["split"] for s in manifest["samples"]]
    assert splits.count("train") == 8 and splits.count("test") == 4
    sample = np.load(out / manifest["samples"][0]["file"])
    assert sample["keypoint"].shape == (1, 15, 33, 3) and sample["keypoint_score"].shape == (1, 15, 33)
    hips_y, shoulders_y = sample["keypoint"][0, :, [23, 24], 1].mean(), sample["keypoint"][0, :, [11, 12], 1].mean()
    assert shoulders_y > hips_y  # world landmarks in the loop's camera axes (y up)
    # resumable: a second run does nothing new
    assert extract_main([str(a) for a in args]) == 0
    assert "4 videos already done" in capsys.readouterr().out
    from train.fit import main as fit_main
    summary = fit_main(["--config", "configs/synthetic.yaml", f"data.name=custom:{out}", "data.frames=16",
                        "data.num_workers=0", "model.variant=last_nano", "optim.batch_size=4", "schedule.epochs=2",
                        f"output_dir={tmp_path / 'run'}", "train.threads=1"])
    assert summary["finished"] and (tmp_path / "run" / "best.pt").is_file()
    from core.checkpoint import load_checkpoint
    ckpt = load_checkpoint(tmp_path / "run" / "best.pt")
    assert ckpt["input_spec"]["fps"] == 30.0 and ckpt["class_names"] == ["clean_and_jerk", "ta_chi"]


def side_by_side(shared_dir, path, frames: int) -> None:
    """Two real people in one picture: ta_chi.mp4 and clean_and_jerk.mp4 side by side (no real multi-person video
    can be fetched here)."""
    a = cv2.VideoCapture(str(shared_dir / "data" / "video" / "ta_chi.mp4"))
    b = cv2.VideoCapture(str(shared_dir / "data" / "video" / "clean_and_jerk.mp4"))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (680, 256))
    for _ in range(frames):
        writer.write(np.concatenate([a.read()[1], b.read()[1]], axis=1))
    writer.release()
    a.release()
    b.release()


def test_two_real_people_keep_their_ids(shared_dir, pose_model, ntu_ckpt, tmp_path):
    from edge.recognizer import ActionRecognizer, ActionRecognizerOptions
    video = tmp_path / "two.avi"
    side_by_side(shared_dir, video, 60)
    cap = cv2.VideoCapture(str(video))
    sides: dict[int, set[str]] = {}
    both = 0
    # MediaPipe's detector favours one main person: at 0.5 it finds only one of the two small people here
    options = ActionRecognizerOptions(model_path=ntu_ckpt, pose_model_path=pose_model, max_persons=2,
                                      min_pose_detection_confidence=0.3, min_pose_presence_confidence=0.3)
    with ActionRecognizer.create_from_options(options) as rec:
        for i in range(60):
            result = rec.recognize_for_video(cap.read()[1], i * 1000 / 30)
            both += sum(p.landmarks is not None for p in result.persons) == 2
            for p in result.persons:
                if p.landmarks is not None:
                    sides.setdefault(p.person_id, set()).add("left" if p.landmarks[[23, 24], 0].mean() < 0.5
                                                             else "right")
    cap.release()
    assert sorted(sides) == [0, 1], sides  # two people, two ids, for all 60 frames
    assert all(len(s) == 1 for s in sides.values()) and sides[0] != sides[1]
    assert both >= 30
