"""train.grid: a grid of arms x seeds that resumes after being killed and publishes its results as data."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.cli import BadInput
from tests.conftest import REPO
from train.grid import load_spec

SYN = ["data.frames=16", "optim.batch_size=32", "schedule.warmup_epochs=0", "train.test_clips=1"]


def write_spec(tmp_path: Path, epochs: int = 3) -> Path:
    spec = {
        "name": "tiny", "out": str(tmp_path / "grid"), "results": str(tmp_path / "results.json"),
        "doc": str(tmp_path / "doc.md"), "plot": str(tmp_path / "grid.png"), "seeds": [0, 1], "epochs": epochs,
        "common": SYN,
        "arms": [
            {"name": "teacher", "method": "teacher", "config": "configs/synthetic.yaml", "seeds": [0],
             "overrides": ["model.variant=last_small"]},
            {"name": "scratch", "method": "scratch", "config": "configs/synthetic.yaml"},
            {"name": "kd", "method": "kd", "config": "configs/synthetic.yaml", "teacher": "arm:teacher@0"},
            {"name": "kd_file", "method": "kd_file", "config": "configs/synthetic.yaml", "teacher": "arm:teacher@0",
             "seeds": [0]},
        ]}
    path = tmp_path / "spec.yaml"
    path.write_text(json.dumps(spec))  # JSON is YAML
    return path


def grid_cmd(spec: Path) -> list[str]:
    return [sys.executable, "-m", "train.grid", "--spec", str(spec), "--workers", "1"]


@pytest.mark.slow
def test_a_killed_grid_resumes_and_publishes_every_arm(tmp_path):
    spec = write_spec(tmp_path)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.Popen(grid_cmd(spec), cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    first = tmp_path / "grid" / "teacher_s0"
    deadline = time.time() + 240
    while not (first / "last.pt").exists() and time.time() < deadline:  # one epoch written, the run continues
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its running training, mid-run
    proc.wait()
    assert (first / "last.pt").exists() and not (first / "summary.json").exists()

    done = subprocess.run(grid_cmd(spec), cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resumed from" in (first / "train.log").read_text()
    results = json.loads((tmp_path / "results.json").read_text())
    arms = {a["name"]: a for a in results["arms"]}
    assert set(arms) == {"teacher", "scratch", "kd", "kd_file"}
    assert arms["scratch"]["seeds"] == [0, 1] and arms["kd"]["method"] == "kd"
    for arm in arms.values():
        for values in arm["per_seed"].values():
            assert set(values) >= {"test_top1_at_val_epoch", "test_top1_last_epoch", "val_top1", "epochs",
                                   "minutes"}
            assert 0 <= values["test_top1_at_val_epoch"] <= 100 and values["epochs"] == 3
    assert {c["arm"] for c in results["comparisons"]} == {"kd", "kd_file"}  # against scratch, seed-paired
    assert "| kd |" in (tmp_path / "doc.md").read_text() and (tmp_path / "grid.png").stat().st_size > 0
    # consistent KD ran through the teacher cache of its seed; kd_file through the un-augmented teacher file
    assert (tmp_path / "grid" / "teacher_cache" / "teacher-0_s1" / "epoch_0002.npz").exists()
    assert (tmp_path / "grid" / "teacher_files" / "teacher_s0.npz").exists()
    # a finished grid runs nothing again
    again = subprocess.run(grid_cmd(spec), cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "starts" not in again.stdout


def test_bad_specs_are_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("arms: [{name: a, method: magic, config: configs/synthetic.yaml}]")
    with pytest.raises(BadInput, match=r"arms\[0\] \(a\): method 'magic'"):
        load_spec(bad)
    bad.write_text("arms: [{name: a, method: kd, config: configs/synthetic.yaml}]")
    with pytest.raises(BadInput, match="needs a teacher"):
        load_spec(bad)
    bad.write_text("arms: [{name: a, method: kd, config: configs/synthetic.yaml, teacher: 'arm:nope'}]")
    with pytest.raises(BadInput, match="arm:nope, which is not an arm"):
        load_spec(bad)
    with pytest.raises(BadInput, match="not found"):
        load_spec(tmp_path / "missing.yaml")


def test_the_published_grids_parse():
    for spec in sorted((REPO / "configs" / "grids").glob("*.yaml")):
        grid = load_spec(spec)
        assert grid.arms and grid.results.suffix == ".json"
