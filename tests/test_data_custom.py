import json

import numpy as np
import pytest

from core.cli import run_cli
from core.data import load_split
from core.data.custom import CustomFormatError, import_folder, main, read_sample, save_sample
from core.data.dataset import SkeletonDataset
from core.data.mediapipe import load_mediapipe
from core.data.store import load_prepared
from core.spec import InputSpec


def _make_raw(folder, rng, manifest=True):
    for k in range(6):
        t = 10 + k
        save_sample(folder / f"clip_{k}.npz", rng.uniform(0.2, 0.8, (1, t, 17, 2)), label=k % 2,
                    keypoint_score=rng.uniform(0, 1, (1, t, 17)), frame_dir=f"person_a_{k}")
    (folder / "clip_6.json").write_text(json.dumps({"keypoint": rng.uniform(size=(2, 8, 17, 2)).tolist(),
                                                    "label": 1}))
    (folder / "clip_7.json").write_text('{"keypoint": [[1, 2')  # corrupt
    save_sample(folder / "clip_8.npz", rng.uniform(size=(1, 5, 25, 3)), label=0)  # wrong joint count
    if manifest:
        (folder / "manifest.json").write_text(json.dumps({"layout": "coco17", "class_names": ["wave", "clap"],
                                                          "fps": 30}))


def test_import_reports_skips_and_loads_back(tmp_path, capsys):
    rng = np.random.default_rng(0)
    _make_raw(tmp_path / "raw", rng)
    summary = import_folder(tmp_path / "raw", tmp_path / "set", test_ratio=0.25)
    assert summary["samples"] == 7 and len(summary["skipped"]) == 2
    assert summary["shape"] == [7, 2, 15, 17, 2] and summary["splits"] == {"train": 5, "test": 2}
    out = capsys.readouterr().out
    assert "clip_7.json:1: invalid JSON" in out and "clip_8.npz" in out and "(M, T>0, 17, 2 or 3)" in out
    every = load_prepared(tmp_path / "set")
    assert every.class_names == ["wave", "clap"] and every.layout == "coco17"
    assert "person_a_3" in every.names and "clip_6" in every.names
    i = every.names.index("person_a_3")
    assert every.lengths[i] == 13 and every.sample(i).shape == (2, 13, 17, 2)
    train = load_split(f"custom:{tmp_path / 'set'}", "train")
    in_memory = load_split(f"custom:{tmp_path / 'raw'}", "train")
    assert train.names == in_memory.names and len(train) == 5
    np.testing.assert_allclose(np.asarray(train.data), in_memory.data)
    test = load_split(str(tmp_path / "set"), "test")  # a prepared directory by path
    assert sorted(test.labels.tolist()) == [0, 1]
    x, y = SkeletonDataset(train, InputSpec(layout="coco17", channels=2, frames=12, persons=2,
                                            coordinates="image"), train=True, augment=True)[0]
    assert tuple(x.shape) == (2, 12, 17, 2) and y in (0, 1)


def test_manifest_splits_scores_and_errors(tmp_path, capsys):
    rng = np.random.default_rng(1)
    raw = tmp_path / "raw"
    _make_raw(raw, rng, manifest=False)
    code = run_cli(main, "python -m core.data.custom", ["--src", str(raw), "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1  # one line, exit 2 (bad input)
    assert err.startswith("python -m core.data.custom: error: ") and "layout" in err
    entries = [{"file": f"clip_{k}.npz", "label": k % 2, "split": "train" if k < 4 else "val"} for k in range(6)]
    (raw / "manifest.json").write_text(json.dumps({"layout": "coco17", "class_names": ["a", "b"],
                                                  "samples": entries}))
    main(["--src", str(raw), "--out", str(tmp_path / "set"), "--score-channel", "--score-threshold", "0.5"])
    val = load_prepared(tmp_path / "set", "val")
    assert len(val) == 2 and val.data.shape[-1] == 3
    x = np.asarray(val.data[0], dtype=np.float32)
    low = x[..., 2] < 0.5  # joints with a low score are zeroed but keep their score channel
    assert np.all(x[..., :2][low] == 0) and np.all(x[..., :2][~low & (x[..., 2] > 0)] != 0)
    np.savez(tmp_path / "obj.npz", keypoint=np.array([None, 1], dtype=object), label=0)
    with pytest.raises(CustomFormatError, match="without pickle"):
        read_sample(tmp_path / "obj.npz", "coco17")
    save_sample(tmp_path / "nan.npz", np.full((1, 3, 17, 2), np.nan), label=0)
    with pytest.raises(CustomFormatError, match="NaN"):
        read_sample(tmp_path / "nan.npz", "coco17")


def test_mediapipe_recordings(shared_dir):
    train, test = load_mediapipe("train"), load_mediapipe("test")
    assert len(train) + len(test) == 90 and not set(train.names) & set(test.names)
    assert train.class_names == ["hello", "iloveyou", "thanks"] and train.data.shape[1:] == (1, 30, 33, 3)
    assert test.class_counts().tolist() == [6, 6, 6]
    mapped = load_split("mediapipe:ntu25", "test")
    assert mapped.layout == "ntu25" and mapped.data.shape[-2] == 25 and mapped.names == test.names
    x, _ = SkeletonDataset(mapped, InputSpec(layout="ntu25", frames=32, coordinates="image"))[0]
    assert tuple(x.shape) == (3, 32, 25, 1) and np.isfinite(x.numpy()).all()


def test_report_writes_table_and_plot(tmp_path, capsys):
    from core.data.report import main as report
    report(["synthetic:coco17", "--out", str(tmp_path / "rep")])
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "| **total** | 160 | 64 |" in text and "| 0 wave | 20 | 8 |" in text
    assert (tmp_path / "rep" / "balance.png").stat().st_size > 10_000


def test_prepared_directory_is_lazy_and_checked(tmp_path):
    from core.data.store import IndexedArray, PreparedFormatError, write_prepared
    rng = np.random.default_rng(2)
    data = rng.normal(size=(6, 1, 5, 17, 2)).astype(np.float16)
    write_prepared(tmp_path / "p", data, [5, 4, 3, 5, 2, 1], [0, 1, 0, 1, 0, 1], [f"s{i}" for i in range(6)],
                   ["a", "b"], "coco17", splits={"train": np.array([4, 0, 2]), "test": np.array([1, 3, 5])})
    train = load_prepared(tmp_path / "p", "train")
    assert isinstance(train.data, IndexedArray) and train.names == ["s4", "s0", "s2"]
    np.testing.assert_array_equal(np.asarray(train.data), data[[4, 0, 2]])
    np.testing.assert_array_equal(train.data[1, :, :3], data[0, :, :3])
    np.testing.assert_array_equal(train.sample(0), data[4, :, :2].astype(np.float32))
    sub = train.subset(np.array([2, 0]))
    assert sub.names == ["s2", "s4"] and np.array_equal(np.asarray(sub.data), data[[2, 4]])
    with pytest.raises(KeyError, match="no split 'val'.*'test', 'train', 'all'"):
        load_prepared(tmp_path / "p", "val")
    (tmp_path / "p" / "labels.npy").unlink()
    with pytest.raises(PreparedFormatError, match="labels.npy is missing"):
        load_prepared(tmp_path / "p")
    with pytest.raises(FileNotFoundError, match="not a prepared data set"):
        load_prepared(tmp_path)


# --- real clips (NW-UCLA, Kinect v1) written in the custom format, as a user's export would be

# a joint order of the kind other Kinect v1 exports use (torso top-down, then limbs): the file's k-th joint is
# this kinect20 joint
OTHER_ORDER = ["head", "shoulder_center", "spine", "hip_center", "shoulder_left", "elbow_left", "wrist_left",
               "hand_left", "shoulder_right", "elbow_right", "wrist_right", "hand_right", "hip_left", "knee_left",
               "ankle_left", "foot_left", "hip_right", "knee_right", "ankle_right", "foot_right"]


def _real_clips(count):
    from core.data.nw_ucla import load_nw_ucla
    split = load_nw_ucla("test")
    keep = [i for i in range(len(split)) if split.lengths[i] >= 20][:count]
    return [(split.names[i], split.sample(i), int(split.labels[i])) for i in keep], split.class_names


def test_all_zero_and_mostly_zero_clips_are_skipped_and_reported(shared_dir, tmp_path, capsys):
    clips, classes = _real_clips(8)
    raw = tmp_path / "raw"
    for name, clip, label in clips:
        save_sample(raw / f"{name}.npz", clip, label)
    name0, clip0, _ = clips[0]
    save_sample(raw / "all_zero.npz", np.zeros_like(clip0), 0)  # like the 38-frame MSR Action3D clip
    mostly = clip0.copy()
    t = mostly.shape[1]
    mostly[:, : int(0.8 * t)] = 0  # 80 % of the frames carry no joint at all
    save_sample(raw / "mostly_zero.npz", mostly, 0)
    some = clip0.copy()
    some[:, ::4] = 0  # a quarter of the frames missing: kept
    save_sample(raw / "some_zero.npz", some, 0)
    nan = clip0.copy()
    nan[0, 3, 5] = np.nan
    save_sample(raw / "nan.npz", nan, 0)
    (raw / "manifest.json").write_text(json.dumps({"layout": "kinect20", "class_names": classes}))
    summary = import_folder(raw, tmp_path / "set")
    out = capsys.readouterr().out
    assert summary["samples"] == 9 and summary["files"] == 12 and len(summary["skipped"]) == 3
    assert f"skipped 3 of 12 files:\n  " in out
    assert f"all_zero.npz: all {t} frames are zero" in out
    k = int(0.8 * t)
    assert f"mostly_zero.npz: {k} of {t} frames are all zero ({100 * k / t:.0f} % missing" in out
    assert "nan.npz: 'keypoint' contains NaN or inf in 1 of" in out
    assert summary["clips_with_missing_frames"] == 1
    assert summary["max_missing_fraction_kept"] == pytest.approx(len(range(0, t, 4)) / t, abs=1e-3)
    names = load_prepared(tmp_path / "set").names
    assert "some_zero" in names and not {"all_zero", "mostly_zero", "nan"} & set(names)
    # the limit is configurable: 0.9 lets the 80 % clip in, the all-zero one never
    main(["--src", str(raw), "--out", str(tmp_path / "set2"), "--max-missing", "0.9"])
    out = capsys.readouterr().out
    assert "imported 10 of 12 samples" in out and "skipped 2 (listed above)" in out
    assert f"2 kept clip(s) have all-zero frames (at most {100 * k / t:.0f} %" in out


def test_joint_order_remaps_to_the_reference_order(shared_dir, tmp_path):
    from core.layouts import get_layout, joint_order_index
    clips, classes = _real_clips(6)
    layout = get_layout("kinect20")
    stored = [layout.index(j) for j in OTHER_ORDER]  # file position k holds kinect20 joint stored[k]
    raw = tmp_path / "raw"
    for name, clip, label in clips:
        save_sample(raw / f"{name}.npz", clip[:, :, stored], label, keypoint_score=np.ones(clip.shape[:3]) * 0.9)
    (raw / "manifest.json").write_text(json.dumps({"layout": "kinect20", "class_names": classes}))
    reference = {name: clip for name, clip, _ in clips}
    by_name = import_folder(raw, tmp_path / "by_name", joint_order=",".join(OTHER_ORDER))
    by_index = import_folder(raw, tmp_path / "by_index", joint_order=[str(j) for j in stored])
    assert by_name["samples"] == by_index["samples"] == 6
    for folder in ("by_name", "by_index"):
        got = load_prepared(tmp_path / folder)
        for i, name in enumerate(got.names):
            np.testing.assert_array_equal(got.sample(i), reference[name])
    assert json.loads((tmp_path / "by_name" / "manifest.json").read_text())["joint_order"] == OTHER_ORDER
    np.testing.assert_array_equal(joint_order_index("kinect20", OTHER_ORDER), np.argsort(stored))
    with pytest.raises(ValueError, match="'shoulder_centre' is not a kinect20 joint; did you mean 'shoulder_center'"):
        joint_order_index("kinect20", ["shoulder_centre"] + OTHER_ORDER[1:])
    with pytest.raises(ValueError, match="given twice \\['head'\\], missing \\['hip_center'\\]"):
        joint_order_index("kinect20", OTHER_ORDER[:3] + ["head"] + OTHER_ORDER[4:])
    with pytest.raises(ValueError, match="19 entries, layout kinect20 has 20"):
        joint_order_index("kinect20", OTHER_ORDER[:-1])


def test_implausible_bones_warn_when_the_order_is_wrong(shared_dir, tmp_path, capsys):
    from core.data.custom import ImplausibleBonesWarning
    from core.layouts import get_layout
    clips, classes = _real_clips(12)
    layout = get_layout("kinect20")
    stored = [layout.index(j) for j in OTHER_ORDER]
    raw = tmp_path / "raw"
    for name, clip, label in clips:
        save_sample(raw / f"{name}.npz", clip[:, :, stored], label)
    (raw / "manifest.json").write_text(json.dumps({"layout": "kinect20", "class_names": classes}))
    with pytest.warns(ImplausibleBonesWarning, match="bone lengths are implausible for layout kinect20: .*hip_center"):
        summary = import_folder(raw, tmp_path / "wrong")  # the order is not given
    assert summary["warnings"] and "--joint-order" in summary["warnings"][0]
    main(["--src", str(raw), "--out", str(tmp_path / "wrong2")])
    err = capsys.readouterr().err
    assert err.startswith("python -m core.data.custom: warning: ") and "implausible" in err
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", ImplausibleBonesWarning)  # the right order gives no warning
        right = import_folder(raw, tmp_path / "right", joint_order=OTHER_ORDER)
    assert right["warnings"] == []
