"""benchmarks.compare keeps every device it is given (a device whose run timed nothing keeps its rows, its estimate
and its budget line) and judges the pose budget at the input's resolution (benchmarks.pose_budget)."""
from __future__ import annotations

import json

import pytest
import yaml

from benchmarks import compare
from benchmarks.pose_budget import parse_resolution, pose_ms_at
from benchmarks.verdict import judge
from core.cli import BadInput
from devices import PROFILE_DIR, ProfileError, load_profile


def _x86_result(pose_measured: dict[str, float]) -> dict:
    """A benchmarks.run result on the x86 profile: one timed row (6 ms p90), and end-to-end runs on videos of the
    given sizes ("WxH" -> pose p90 ms)."""
    profile = load_profile("x86_cpu")
    budgets = profile.budgets
    verdict = judge(6.0, budgets["frame_ms"], budgets["pose_ms"], 1.0, budgets["model_size_mb"]).to_dict()
    e2e = [{"video": f"clip_{size}.mp4", "size": list(map(int, size.split("x"))),
            "latency": {"pose": {"p90_ms": ms}}} for size, ms in pose_measured.items()]
    return {"tool": "benchmarks.run", "profile_name": "x86_cpu", "profile": {"budgets": budgets},
            "machine": {"cpu": "x86"}, "pose": {"measured_p90_ms": None}, "e2e": e2e, "estimates": [],
            "rows": [{"variant": "last_nano", "model": "nano", "format": "onnx", "precision": "fp32", "status": "ok",
                      "size_bytes": 2**20, "latency": {"p50_ms": 5.0, "p90_ms": 6.0}, "verdict": verdict}]}


def _nano_result() -> dict:
    """A jetson_nano profile run on a machine without TensorRT: nothing timed, the board estimated."""
    profile = load_profile("jetson_nano")
    budgets = profile.budgets
    verdict = judge(3.0, budgets["frame_ms"], budgets["pose_ms"], 1.0, budgets["model_size_mb"],
                    kind="estimate").to_dict()
    return {"tool": "benchmarks.run", "profile_name": "jetson_nano", "profile": {"budgets": budgets},
            "machine": {"cpu": "x86"}, "pose": {"measured_p90_ms": None}, "e2e": [],
            "rows": [{"variant": "last_nano", "model": "nano", "format": "trt", "precision": "fp16",
                      "status": "exported, not runnable here", "size_bytes": 2**20, "latency": None,
                      "verdict": None}],
            "estimates": [{"profile": "jetson_nano", "variant": "last_nano", "model": "nano", "ckpt": "nano.pt",
                           "runtime": "tensorrt", "precision": "fp16", "estimate": {"latency_ms": 3.0},
                           "size_mb": 0.5, "verdict": verdict}]}


@pytest.fixture
def results(tmp_path):
    x86, nano = tmp_path / "x86.json", tmp_path / "nano.json"
    x86.write_text(json.dumps(_x86_result({"340x256": 20.0, "1920x1080": 95.0})))
    nano.write_text(json.dumps(_nano_result()))
    return x86, nano


def test_compare_keeps_a_device_that_timed_nothing(results, tmp_path):
    x86, nano = results
    assert compare.main([str(x86), str(nano), "--out", str(tmp_path)]) == 0
    md = (tmp_path / "compare.md").read_text()
    assert "| jetson_nano | nano | trt | fp16 | exported, not runnable here |" in md  # its row
    assert "| jetson_nano | nano | tensorrt | fp16 | estimate |" in md  # and its estimate
    budget = json.loads((tmp_path / "compare.json").read_text())["budgets"]
    assert [b["device"] for b in budget] == ["x86_cpu", "jetson_nano"]
    nano_line = budget[1]
    assert nano_line["pose_ms"] == load_profile("jetson_nano").budgets["pose_ms"] and "profile" in nano_line[
        "pose_source"]
    assert "| jetson_nano | 33.3 | 164.0 |" in md and "pose alone misses the frame" in md


def test_the_pose_budget_is_the_pose_time_at_the_input_resolution(results, tmp_path):
    x86, nano = results
    assert compare.main([str(x86), str(nano), "--resolution", "1920x1080", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "compare.json").read_text())
    x86_line = next(b for b in data["budgets"] if b["device"] == "x86_cpu")
    assert x86_line["pose_ms"] == 95.0 and x86_line["pose_source"].startswith("measured at 1920x1080")
    x86_row = next(r for r in data["rows"] if r["device"] == "x86_cpu")
    assert x86_row["verdict"].startswith("✘ pose-bound")  # 95 ms of pose leave nothing of a 33 ms frame
    assert compare.main([str(x86), "--resolution", "340x256", "--out", str(tmp_path)]) == 0
    row = json.loads((tmp_path / "compare.json").read_text())["rows"][0]
    assert row["verdict"].startswith("✔ meets")  # 20 ms pose + 6 ms classifier fit
    # not measured at 1280x720: the profile's figure for that resolution, else its single figure, labelled
    result = _x86_result({})
    budgets = result["profile"]["budgets"]
    assert pose_ms_at(result, (1280, 720)) == (float(budgets["pose_ms_at"]["1280x720"]), "profile at 1280x720")
    ms, source = pose_ms_at(result, (800, 600))
    assert ms == budgets["pose_ms"] and "no figure for 800x600" in source
    with pytest.raises(BadInput, match="WIDTHxHEIGHT"):
        parse_resolution("1080p")


def test_profile_pose_ms_at_is_validated(tmp_path):
    data = yaml.safe_load((PROFILE_DIR / "x86_cpu.yaml").read_text())
    data["budgets"]["pose_ms_at"] = {"720p": 84}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ProfileError, match="budgets.pose_ms_at.720p"):
        load_profile(path)
