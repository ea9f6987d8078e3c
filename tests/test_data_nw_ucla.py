import json

import numpy as np
import pytest

from core.data import load_split
from core.data.nw_ucla import CLASS_NAMES, NWUCLAError, load_nw_ucla, parse_name, read_sample


@pytest.fixture(scope="module")
def nw_ucla_root(shared_dir):
    return shared_dir / "data" / "nw_ucla" / "all_sqe"


def test_cross_view_split_counts_and_balance(nw_ucla_root, tmp_path, monkeypatch):
    monkeypatch.setenv("LAST_CACHE", str(tmp_path))
    train = load_split("nw_ucla", "train", root=nw_ucla_root)
    test = load_nw_ucla("test", nw_ucla_root, cache=tmp_path)
    assert (len(train), len(test)) == (1020, 464)
    assert train.layout == test.layout == "kinect20"
    assert train.class_names == CLASS_NAMES and len(CLASS_NAMES) == 10
    assert {parse_name(n)["view"] for n in train.names} == {1, 2}
    assert {parse_name(n)["view"] for n in test.names} == {3}
    assert train.class_counts().min() >= 90 and test.class_counts().min() >= 40
    assert train.class_counts().sum() == 1020
    # a01 is "pick up with one hand" (label 0), a12 is "carry" (label 9)
    for name, label in zip(train.names, train.labels):
        if name.startswith("a12_"):
            assert label == 9
        if name.startswith("a01_"):
            assert label == 0
    x = train.sample(0)
    assert x.shape == (1, train.lengths[0], 20, 3) and np.abs(x).sum() > 0


def _write(path, name, frames, label):
    path.write_text(json.dumps({"file_name": name, "skeletons": frames, "label": label}))


def test_corrupt_files_are_reported_and_skipped(tmp_path, capsys):
    rng = np.random.default_rng(0)
    _write(tmp_path / "a01_s01_e00_v01.json", "a01_s01_e00_v01", rng.normal(size=(5, 20, 3)).tolist(), 1)
    _write(tmp_path / "a02_s01_e00_v03.json", "a02_s01_e00_v03", rng.normal(size=(7, 20, 3)).tolist(), 2)
    _write(tmp_path / "a03_s01_e00_v01.json", "a03_s01_e00_v01", rng.normal(size=(5, 19, 3)).tolist(), 3)
    (tmp_path / "a04_s01_e00_v02.json").write_text('{"file_name": "a04_s01_e00_v02", "skel')
    train = load_nw_ucla("train", tmp_path, cache=False)
    test = load_nw_ucla("test", tmp_path, cache=False)
    assert train.names == ["a01_s01_e00_v01"] and test.names == ["a02_s01_e00_v03"]
    assert test.data.shape == (1, 1, 7, 20, 3) and test.labels.tolist() == [1]
    skipped = " ".join(train.info["skipped"])
    assert "a03_s01_e00_v01.json" in skipped and "a04_s01_e00_v02.json" in skipped
    assert "a04_s01_e00_v02.json" in capsys.readouterr().out
    with pytest.raises(NWUCLAError, match="a03_s01_e00_v01.json"):
        read_sample(tmp_path / "a03_s01_e00_v01.json")


def test_cache_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    src = tmp_path / "src"
    src.mkdir()
    _write(src / "a05_s02_e01_v02.json", "a05_s02_e01_v02", rng.normal(size=(9, 20, 3)).tolist(), 5)
    first = load_nw_ucla("all", src, cache=tmp_path / "cache")
    assert list((tmp_path / "cache").glob("nw_ucla_*.npz"))
    second = load_nw_ucla("all", src, cache=tmp_path / "cache")
    np.testing.assert_array_equal(first.data, second.data)
    assert second.names == first.names and second.labels.tolist() == [4]


def test_missing_folder_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        load_nw_ucla("train", tmp_path / "nope")
    with pytest.raises(ValueError, match="unknown NW-UCLA split"):
        load_nw_ucla("val", tmp_path)
