import json

import numpy as np
import pytest

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
    with pytest.raises(SystemExit) as exit_info:
        main(["--src", str(raw), "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1  # one line, exit 2 (bad input)
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
