"""experiments.efficiency: GEMM-paired share of the peak, batching gain and its bound, the report."""
from __future__ import annotations

import json

import numpy as np
import pytest

from backend_checker import backend_checker
from experiments import efficiency


def test_shares_pair_each_model_with_its_own_gemm_calls():
    # two rounds; the machine is twice as fast for model "a" in round 2, and so is the GEMM around it
    models = {"a": {"family": "LAST", "flops": 1e9, "onnx_nodes": 10},
              "b": {"family": "LAST", "flops": 2e9, "onnx_nodes": 20}}
    raw = {"1": {"gemm_gflops": {"a": [100.0, 200.0], "b": [100.0, 100.0]},
                 "b1_s": {"a": [0.02, 0.01], "b": [0.04, 0.04]},
                 "batch_s": {"a": [0.025, 0.0125], "b": [0.02, 0.02]}}}
    rows = efficiency.summarize(models, raw, reference="a")["1"]["models"]
    a, b = rows["a"], rows["b"]
    assert a["b1_share_paired"]["median"] == pytest.approx(0.5)  # 50 GFLOP/s on 100, 100 on 200: 0.5 both rounds
    assert a["b1_share_paired"]["p10"] == pytest.approx(0.5) == a["b1_share_paired"]["p90"]
    # unpaired: median time 15 ms (66.7 GFLOP/s) against the median of all GEMM calls (100)
    assert a["b1_share_whole_run"] == pytest.approx(1 / 0.015 / 100)
    assert a["batch_gain"]["median"] == pytest.approx(0.8)
    assert b["batch_gain"]["median"] == pytest.approx(2.0)
    assert a["gain_bound"] == pytest.approx(2.0) and b["gain_bound"] == pytest.approx(2.0)
    assert b["speedup_vs_reference"]["median"] == pytest.approx(np.median([0.5, 0.25]))


@backend_checker("onnxruntime")
def test_run_writes_report_json_and_plot(tmp_path, capsys):
    out = tmp_path / "eff"
    rc = efficiency.main(["--variants", "last_lite_nano", "--threads", "1", "--rounds", "2", "--per-round", "1",
                          "--batch", "2", "--frames", "16", "--out", str(out)])
    assert rc == 0
    res = json.loads((out / "efficiency.json").read_text())
    row = res["threads"]["1"]["models"]["last_lite_nano"]
    assert row["gflops"] > 0 and row["onnx_nodes"] > 0
    assert 0 < row["b1_share_paired"]["median"] and row["batch_gain"]["median"] > 0
    assert row["gain_bound"] == pytest.approx(1 / row["b1_share_paired"]["median"])
    assert len(res["raw"]["1"]["b1_s"]["last_lite_nano"]) == 2
    md = (out / "efficiency.md").read_text()
    assert "| last_lite_nano |" in md and "batch-2 ms/clip" in md
    assert (out / "efficiency.png").stat().st_size > 1000


def test_bad_arguments_are_one_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        efficiency.main(["--variants", "last_tiny", "--out", str(tmp_path)])
    assert exc.value.code == 2 and "unknown LAST variant 'last_tiny'" in capsys.readouterr().err
    rc = efficiency.main(["--peers", "EfficientGCN-B0", "--peers-harness", str(tmp_path / "nope.py"),
                          "--variants", "last_nano", "--out", str(tmp_path)])
    assert rc != 0 and "--peers-harness" in capsys.readouterr().err


@backend_checker("onnxruntime")
def test_sweep_times_every_batch_size(tmp_path):
    out = tmp_path / "sweep"
    assert efficiency.main(["--variants", "last_lite_nano", "--sweep", "1,2", "--threads", "1", "--rounds", "2",
                            "--frames", "16", "--out", str(out)]) == 0
    row = json.loads((out / "sweep.json").read_text())["sweep"]["last_lite_nano"]
    assert row["1"]["gain"]["median"] == pytest.approx(1.0) and row["2"]["ms_per_clip"] > 0
    assert "| last_lite_nano |" in (out / "sweep.md").read_text()
