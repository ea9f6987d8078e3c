"""Cross-modal teacher (python -m train.teacher --video-model): a tiny randomly initialised VideoMAE over the
real paired NTU sample in ../shared/data/ntu (S001C001P001R001A001_rgb.avi + .skeleton)."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from train import teacher
from train.video_teacher import (TeacherFileError, find_videos, load_feature_file, pair_videos, sample_indices,
                                 sample_name, save_feature_file, skeleton_names)

NTU_SAMPLE = "S001C001P001R001A001"
FRAMES, HIDDEN, IMAGE = 4, 16, 32


@pytest.fixture(scope="module")
def tiny_videomae(tmp_path_factory) -> Path:
    """A 1-layer VideoMAE (hidden 16, 32x32 pixels, 4 frames) with its image processor, saved like a download."""
    transformers = pytest.importorskip("transformers", reason="the optional 'video' extra (transformers) is "
                                                               "not installed")
    import torch

    torch.manual_seed(0)
    config = transformers.VideoMAEConfig(image_size=IMAGE, patch_size=16, num_frames=FRAMES, tubelet_size=2,
                                         hidden_size=HIDDEN, num_hidden_layers=1, num_attention_heads=2,
                                         intermediate_size=32)
    folder = tmp_path_factory.mktemp("tiny_videomae")
    transformers.VideoMAEModel(config).save_pretrained(folder)
    transformers.VideoMAEImageProcessor(size={"shortest_edge": IMAGE},
                                        crop_size={"height": IMAGE, "width": IMAGE}).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def ntu_video(shared_dir) -> Path:
    path = shared_dir / "data" / "ntu" / f"{NTU_SAMPLE}_rgb.avi"
    if not path.is_file() or not (path.parent / f"{NTU_SAMPLE}.skeleton").is_file():
        pytest.skip(f"the paired NTU sample is not in {path.parent}")
    return path


def test_sample_names_pair_ntu_videos_with_skeletons(tmp_path):
    assert sample_name("a/b/S001C001P001R001A001_rgb.avi") == NTU_SAMPLE
    assert sample_name("clips/jump_03.mp4") == "jump_03"
    videos, skeletons = tmp_path / "videos", tmp_path / "skeletons"
    (videos / "sub").mkdir(parents=True)
    skeletons.mkdir()
    for name in ("S001C001P001R001A001_rgb.avi", "sub/S001C001P001R001A002_rgb.avi", "S009C001P001R001A001_rgb.avi",
                 "notes.txt"):
        (videos / name).write_bytes(b"x")
    for name in ("S001C001P001R001A001", "S001C001P001R001A002", "S002C001P001R001A001"):
        (skeletons / f"{name}.skeleton").write_text("0\n")
    found = find_videos(videos)
    assert list(found) == ["S001C001P001R001A001", "S001C001P001R001A002", "S009C001P001R001A001"]
    pairing = pair_videos(found, skeleton_names(skeletons))
    assert [n for n, _ in pairing.pairs] == ["S001C001P001R001A001", "S001C001P001R001A002"]
    assert pairing.pairs[1][1] == videos / "sub" / "S001C001P001R001A002_rgb.avi"
    assert pairing.missing_video == ["S002C001P001R001A001"]
    assert pairing.unpaired_video == ["S009C001P001R001A001"]
    assert "1 skeleton samples have no video (S002C001P001R001A001)" in pairing.summary()
    (videos / "S001C001P001R001A001_rgb.mp4").write_bytes(b"x")
    with pytest.raises(ValueError, match="two videos for sample S001C001P001R001A001"):
        find_videos(videos)


def test_uniform_sampling_takes_segment_centres():
    assert sample_indices(103, 4).tolist() == [12, 38, 64, 90]
    assert sample_indices(2, 4).tolist() == [0, 0, 1, 1]  # a short video repeats frames


def _reference_features(model_dir: Path, video: Path, indices: list[int]) -> np.ndarray:
    """Features computed independently: every frame decoded, the sampled ones fed through transformers."""
    import cv2
    import torch
    import transformers

    cap = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame[:, :, ::-1])  # BGR -> RGB
    cap.release()
    processor = transformers.AutoImageProcessor.from_pretrained(model_dir, local_files_only=True)
    model = transformers.VideoMAEModel.from_pretrained(model_dir, local_files_only=True).eval()
    pixels = processor([[np.ascontiguousarray(frames[i]) for i in indices]], return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        return model(pixels).last_hidden_state.mean(1).numpy()


def test_end_to_end_on_the_real_ntu_pair(tiny_videomae, ntu_video, tmp_path):
    out = tmp_path / "rgb_teacher.npz"
    meta = teacher.write_teacher(["--video-model", str(tiny_videomae), "--videos", str(ntu_video.parent),
                                  "--skeletons", str(ntu_video.parent), "--out", str(out), "--per-frame",
                                  "--frames", str(FRAMES), "--device", "cpu", "--no-progress"])
    with np.load(out, allow_pickle=False) as data:
        assert sorted(data.files) == ["features", "frame_features", "meta_json", "names"]
        names, features, frame_features = data["names"].tolist(), data["features"], data["frame_features"]
        file_meta = json.loads(str(data["meta_json"]))
    assert names == [NTU_SAMPLE]
    assert features.shape == (1, HIDDEN) and features.dtype == np.float32
    assert frame_features.shape == (1, FRAMES // 2, HIDDEN) and frame_features.dtype == np.float32
    # the pooled feature is the plain transformers model's mean-pooled output on the same sampled frames
    expected = _reference_features(tiny_videomae, ntu_video, [12, 38, 64, 90])  # 103 frames, 4 sampled
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-5)
    # no head norm here: the mean of the per-temporal-token features is the global mean
    np.testing.assert_allclose(frame_features.mean(1), features, rtol=1e-4, atol=1e-5)
    assert file_meta["feature_dim"] == HIDDEN and file_meta["model"] == str(tiny_videomae)
    assert file_meta["pooling"].startswith("mean") and file_meta["frames"] == FRAMES
    assert file_meta["preprocessing"]["crop_size"] == {"height": IMAGE, "width": IMAGE}
    assert meta["skipped"] == [] and meta["videos"] == 1
    loaded = load_feature_file(out)
    assert loaded["names"] == [NTU_SAMPLE] and loaded["frame_features"].shape == frame_features.shape


def test_corrupt_video_is_reported_and_skipped(tiny_videomae, ntu_video, tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / f"{NTU_SAMPLE}_rgb.avi").symlink_to(ntu_video)
    corrupt = videos / "S001C001P001R001A002_rgb.avi"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    out = tmp_path / "rgb_teacher.npz"
    assert teacher.main(["--video-model", str(tiny_videomae), "--videos", str(videos), "--out", str(out),
                        "--device", "cpu", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if str(corrupt) in line] == \
        [f"skipped {corrupt}: OpenCV cannot open this video"]
    data = load_feature_file(out)
    assert data["names"] == [NTU_SAMPLE] and data["frame_features"] is None
    assert [s["name"] for s in data["meta"]["skipped"]] == ["S001C001P001R001A002"]


def test_no_usable_video_is_an_error(tiny_videomae, tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "broken_rgb.mp4").write_bytes(b"not a video at all")
    code = teacher.main(["--video-model", str(tiny_videomae), "--videos", str(videos),
                        "--out", str(tmp_path / "t.npz"), "--device", "cpu", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert "python -m train.teacher: error: no usable video: all 1 paired videos were unreadable" in err
    assert not (tmp_path / "t.npz").exists()


def test_wrong_frame_count_names_the_model(tiny_videomae, ntu_video, tmp_path, capsys):
    code = teacher.main(["--video-model", str(tiny_videomae), "--videos", str(ntu_video.parent),
                        "--out", str(tmp_path / "t.npz"), "--frames", "8", "--device", "cpu"])
    assert code == 2
    assert f"--frames 8: the model {tiny_videomae} takes {FRAMES} frames" in capsys.readouterr().err


def test_missing_video_extra_says_what_to_install(tmp_path, monkeypatch, capsys):
    (tmp_path / "m").mkdir()
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "a_rgb.avi").write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers -> ImportError
    code = teacher.main(["--video-model", str(tmp_path / "m"), "--videos", str(tmp_path / "v"),
                        "--out", str(tmp_path / "t.npz")])
    assert code == 3
    assert "pip install -e .[video]" in capsys.readouterr().err


def test_feature_file_is_checked_on_load(tmp_path):
    path = save_feature_file(tmp_path / "t.npz", ["a", "b"], np.zeros((2, 3)), None, {"model": "m"})
    assert load_feature_file(path)["features"].dtype == np.float32
    np.savez(tmp_path / "bad.npz", names=np.array(["a", "b"]), features=np.zeros((3, 3), np.float32),
             meta_json=np.array("{}"))
    with pytest.raises(TeacherFileError, match=r"bad.npz: features \(3, 3\) do not match 2 names"):
        load_feature_file(tmp_path / "bad.npz")
    np.savez(tmp_path / "nometa.npz", names=np.array(["a"]), features=np.zeros((1, 3), np.float32))
    with pytest.raises(TeacherFileError, match="no 'meta_json' array"):
        load_feature_file(tmp_path / "nometa.npz")


def _write_video(path: Path, frames: int = 10, seed: int = 0) -> None:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (64, 48))
    rng = np.random.default_rng(seed)
    for _ in range(frames):
        writer.write(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    writer.release()


def test_data_split_chooses_the_samples(tiny_videomae, tmp_path, capsys):
    from core.data import load_split

    split_names = load_split("synthetic", "test").names
    videos = tmp_path / "videos"
    videos.mkdir()
    for i, name in enumerate([split_names[3], split_names[0], "not_in_the_split"]):
        _write_video(videos / f"{name}_rgb.avi", seed=i)
    out = tmp_path / "t.npz"
    meta = teacher.write_teacher(["--video-model", str(tiny_videomae), "--videos", str(videos), "--data",
                                  "synthetic:test", "--out", str(out), "--device", "cpu", "--batch", "2",
                                  "--no-progress"])
    assert load_feature_file(out)["names"] == sorted([split_names[0], split_names[3]])
    assert meta["missing_video"] == len(split_names) - 2 and meta["unpaired_video"] == 1
    assert f"{len(split_names) - 2} skeleton samples have no video" in capsys.readouterr().err


def test_processor_that_does_not_fit_the_model_is_named(tiny_videomae, tmp_path, capsys):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_videomae, folder)
    config = json.loads((folder / "preprocessor_config.json").read_text())
    config["crop_size"] = {"height": 2 * IMAGE, "width": 2 * IMAGE}
    (folder / "preprocessor_config.json").write_text(json.dumps(config))
    videos = tmp_path / "videos"
    videos.mkdir()
    _write_video(videos / "clip_rgb.avi")
    assert teacher.main(["--video-model", str(folder), "--videos", str(videos), "--out", str(tmp_path / "t.npz"),
                        "--device", "cpu", "--no-progress"]) == 2
    assert f"{folder}/preprocessor_config.json makes (64, 64) frames, config.json's image_size is {IMAGE}" \
        in capsys.readouterr().err


def test_command_line_bad_input_is_one_line(tmp_path, capsys):
    """Through the real __main__ block, as users run it: one `prog: error:` line naming the folder, status 2."""
    import runpy

    old = sys.argv
    sys.argv = ["train.teacher", "--video-model", str(tmp_path / "model"), "--videos", str(tmp_path / "none"),
                "--out", str(tmp_path / "t.npz")]
    try:
        with pytest.raises(SystemExit) as exit_info:
            runpy.run_module("train.teacher", run_name="__main__", alter_sys=False)
    finally:
        sys.argv = old
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert exit_info.value.code == 2
    assert lines == [f"python -m train.teacher: error: --videos: folder not found: {tmp_path / 'none'}"]


def test_decoding_threads_keep_order_and_results(tiny_videomae, tmp_path, capsys):
    from train.video_teacher import VideoTeacher, extract_features

    pairs = []
    for i in range(5):
        path = tmp_path / f"clip{i}_rgb.avi"
        if i == 2:
            path.write_bytes(b"corrupt")
        else:
            _write_video(path, seed=i)
        pairs.append((f"clip{i}", path))
    model = VideoTeacher(tiny_videomae, "cpu")
    serial = extract_features(model, pairs, batch=2, progress=False, workers=1)
    threaded = extract_features(model, pairs, batch=2, progress=False, workers=3)
    assert serial[0] == threaded[0] == ["clip0", "clip1", "clip3", "clip4"]
    np.testing.assert_array_equal(serial[1], threaded[1])
    np.testing.assert_array_equal(serial[2], threaded[2])
    assert [s["name"] for s in threaded[3]["skipped"]] == ["clip2"]
    assert capsys.readouterr().err.count("skipped") == 2  # once per run


def test_header_frame_count_that_lies_samples_the_decodable_frames(tmp_path):
    """A truncated file whose header still says 20 frames: sampling spreads over the frames that decode."""
    import cv2

    from train.video_teacher import read_frames

    full = tmp_path / "full.avi"
    writer = cv2.VideoWriter(str(full), cv2.VideoWriter_fourcc(*"MJPG"), 30, (64, 48))
    for i in range(20):
        writer.write(np.full((48, 64, 3), 10 * i, np.uint8))  # frame i has grey level 10 i
    writer.release()
    data = full.read_bytes()
    cut = tmp_path / "cut_rgb.avi"
    cut.write_bytes(data[: int(len(data) * 0.7)])
    cap = cv2.VideoCapture(str(cut))
    header = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    decodable = 0
    while cap.read()[0]:
        decodable += 1
    cap.release()
    assert header == 20 and 0 < decodable < 20
    clip = read_frames(cut, 8)
    expected = 10.0 * sample_indices(decodable, 8)
    np.testing.assert_allclose(clip.reshape(8, -1).mean(1), expected, atol=4)
