"""benchmarks: verdict logic, the estimate formula, opset/operator rejection, report/compare/calibrate on a tiny
model (fast: a closed-form test checkpoint, the rapid preset, PyTorch and ONNX only)."""
import json
import math

import numpy as np
import pytest
import yaml

from benchmarks import calibrate, compare
from benchmarks import run as bench
from benchmarks.estimate import GraphCost, estimate_for_profile, estimate_latency
from benchmarks.rules import check_onnx, check_precision
from benchmarks.verdict import judge, judge_for_profile
from devices import PROFILE_DIR, load_profile
from conftest import build_tiny_checkpoint


# ---------------------------------------------------------------------------------------------------------
# verdict

def test_verdict_parallel_units_budget_is_the_max_shared_is_the_sum():
    v = judge(10.0, 33.3, 20.0, parallel=False)  # one unit: pose + classifier = 30 ms fits
    assert v.status == "meets" and v.ok and v.stride == 1 and v.classifier_budget_ms == pytest.approx(13.3)
    v = judge(25.0, 33.3, 28.0, parallel=True)  # pipelined on two units: max(28, 25) fits, the sum would not
    assert v.status == "meets" and v.ok and v.per_frame_ms == pytest.approx(28.0)
    v = judge(25.0, 33.3, 28.0, parallel=False)  # the same stages on one unit: late every time it classifies
    assert v.status == "fits only on average" and not v.ok and v.per_frame_ms == pytest.approx(53.0)


def test_verdict_stride_passes_only_when_the_classifier_never_holds_a_frame_up():
    v = judge(30.0, 33.3, 20.0, parallel=False)  # 13.3 ms left: every 3rd frame, which is then 50 ms late
    assert v.status == "fits only on average" and not v.ok and v.stride == 3 and "every 3rd frame" in v.reasons[0]
    assert "fits only on average" in v.short() and v.short().startswith("✘")
    v = judge(70.0, 33.3, 20.0, parallel=True)  # the classifier on its own unit: pose keeps every frame
    assert v.status == "meets at stride" and v.ok and v.stride == 3


def test_verdict_from_the_measured_loop_p90_not_the_average():
    def loop(p90, mean, dropped=0.0):
        return {"busy_ms": {"p90_ms": p90, "mean_ms": mean}, "dropped_share": dropped, "classified_share": 1.0}
    assert judge(5.0, 33.3, 20.0, loop=loop(31.0, 25.0)).status == "meets"
    v = judge(5.0, 33.3, 20.0, loop=loop(36.0, 29.0))  # fits on average only: not passing
    assert v.status == "fits only on average" and not v.ok and v.basis == "loop"
    dropping = judge(5.0, 33.3, 20.0, loop=loop(31.0, 25.0, dropped=0.05))  # fast enough, but frames were lost
    assert dropping.status == "misses" and not dropping.ok and "5.0% of frames were dropped" in dropping.reasons[0]
    assert judge(5.0, 33.3, 20.0, loop=loop(50.0, 40.0)).status == "misses"


def test_verdict_pose_bound_recommends_every_kth_frame():
    v = judge(5.0, 33.3, 164.0, parallel=False)
    assert v.status == "pose-bound" and not v.ok
    assert v.stride == math.ceil(169 / 33.3) == 6 and v.fps == pytest.approx(1000 / (33.3 * 6))
    assert "pose alone takes 164.0 ms" in v.reasons[0] and "every 6th frame" in v.reasons[0]
    assert judge(5.0, 33.3, 164.0, parallel=True).stride == math.ceil(164 / 33.3) == 5  # the classifier beside it


def test_verdict_size_and_ram_budgets_fail_it():
    v = judge(1.0, 33.3, 10.0, size_mb=5.0, size_budget_mb=4.0, ram_mb=100, ram_budget_mb=50)
    assert v.status == "meets" and not v.ok
    assert any(r.startswith("size 5.00 MB > 4 MB") for r in v.reasons) and any("RAM 100 MB" in r for r in v.reasons)
    assert judge(None, 33.3, 10.0).status == "no timing"


def test_verdict_uses_the_profile_budgets_and_units():
    p = load_profile("raspberry_pi_5")
    assert judge_for_profile(p, 1.0).status == "pose-bound"  # 164 ms published pose on a Pi 5
    assert judge_for_profile(p, 1.0, pose_ms=12.0).status == "meets"  # a measured pose replaces it
    # the iPhone runs pose and classifier on its Neural Engine (one unit, they add up); a Jetson on CPU and GPU
    iphone, jetson = load_profile("iphone"), load_profile("jetson_orin_nano")
    assert not iphone.parallel_units and jetson.parallel_units and load_profile("x86_cpu").parallel_units
    assert judge_for_profile(iphone, 25.0, pose_ms=12.0).status == "fits only on average"
    assert judge_for_profile(jetson, 25.0, pose_ms=12.0).status == "meets"


# ---------------------------------------------------------------------------------------------------------
# estimate

def test_estimate_formula_by_hand():
    cost = GraphCost(flops=2e9, weight_bytes=4e6, activation_bytes=8e6, layers=100)
    constants = {"compute_efficiency": 0.5, "bandwidth_efficiency": 0.25, "layer_overhead_us": 10,
                 "fixed_overhead_ms": 0.5}
    e = estimate_latency(cost, peak_gflops=100, bandwidth_gbs=10, constants=constants, precision="fp32")
    # compute 2e9 / (100e9 * 0.5) = 40 ms; memory (4e6 + 2 * 8e6) / (10e9 * 0.25) = 8 ms; overhead 1 + 0.5 ms
    assert (e.compute_ms, e.memory_ms, e.overhead_ms) == pytest.approx((40.0, 8.0, 1.5))
    assert e.latency_ms == pytest.approx(41.5) and e.bound == "compute"
    e16 = estimate_latency(cost, 100, 0.1, constants, precision="fp16")  # bytes halve at fp16
    assert e16.memory_ms == pytest.approx(400.0) and e16.bound == "memory"
    assert e.to_dict()["kind"] == "estimate"


def test_estimate_uses_the_profile_peak_for_its_precision():
    cost = GraphCost(1e9, 1e6, 1e6, 10)
    nano = load_profile("jetson_nano")
    e = estimate_for_profile(cost, nano)
    assert e.precision == "fp16" and e.peak_gflops == 472 and e.unit.startswith("128-core")


# ---------------------------------------------------------------------------------------------------------
# opset / operator rules

def _layernorm_onnx(path, opset=17):
    import onnx
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])
    scale = helper.make_tensor("s", TensorProto.FLOAT, [8], np.ones(8, np.float32))
    graph = helper.make_graph([helper.make_node("LayerNormalization", ["x", "s"], ["h"]),
                               helper.make_node("Relu", ["h"], ["y"])], "g", [x], [y], [scale])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.save(model, str(path))
    return path


def test_jetson_nano_rejects_opset_17_and_layernorm_by_name(tmp_path):
    problems = check_onnx(_layernorm_onnx(tmp_path / "ln.onnx"), load_profile("jetson_nano"))
    assert problems[0] == "opset 17 > 13, the highest tensorrt 8.2 parses"
    assert any(p.startswith("operator LayerNormalization (1 node) is not supported by tensorrt 8.2") for p in problems)
    assert not any("Relu" in p for p in problems)
    assert any("LayerNormalization" in p for p in check_onnx(tmp_path / "ln.onnx", load_profile("jetson_agx_orin")))
    assert check_onnx(tmp_path / "ln.onnx", load_profile("jetson_orin_nano")) == []  # TensorRT 10 parses it
    assert check_precision("int8", load_profile("jetson_nano")) == [
        "precision int8 is not one jetson_nano runs (fp32, fp16)"]


# ---------------------------------------------------------------------------------------------------------
# the command on a tiny model

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    ckpt = build_tiny_checkpoint(root / "tiny" / "best.pt")
    return root, ckpt


def _profile_file(root, name, **changes):
    data = yaml.safe_load((PROFILE_DIR / "x86_cpu.yaml").read_text())
    data["name"] = name
    for key, value in changes.items():
        data[key] = value
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def x86_run(tiny):
    """One rapid run on a copy of the x86 profile whose runtime refuses Elu (the linear attention's feature map):
    PyTorch is measured, the ONNX row must be rejected naming the operator."""
    root, ckpt = tiny
    profile = _profile_file(root, "no_elu_cpu", onnx={"max_opset": 17, "unsupported_ops": ["Elu"]})
    out = root / "x86"
    code = bench.main(["--profile", str(profile), "--ckpt", str(ckpt), "--formats", "pytorch,onnx", "--preset", "rapid",
                       "--data", "synthetic:test", "--batch", "4", "--estimate", "raspberry_pi_5,iphone",
                       "--out", str(out), "--quiet"])
    assert code == 0
    return out, json.loads((out / "result.json").read_text())


def test_run_measures_rejects_and_reports(x86_run):
    out, result = x86_run
    rows = {r["format"]: r for r in result["rows"]}
    torch_row, onnx_row = rows["pytorch"], rows["onnx"]
    assert torch_row["status"] == "ok" and torch_row["latency"]["count"] >= 20
    lat = torch_row["latency"]
    assert lat["p50_ms"] <= lat["p90_ms"] <= lat["p99_ms"] and lat["std_ms"] >= 0 and len(lat["samples_ms"]) >= 20
    assert torch_row["top1"] is not None and torch_row["delta_top1"] == 0 and torch_row["clips"] == 64
    assert torch_row["load_ms"] > 0 and torch_row["first_ms"] > 0 and torch_row["peak_rss_mb"] > 0
    assert torch_row["throughput_batch"] == 4 and torch_row["throughput_per_s"] > 0
    assert torch_row["verdict"]["kind"] == "measured" and torch_row["estimate"]["kind"] == "estimate"
    assert onnx_row["status"] == "rejected" and "operator Elu" in onnx_row["message"]
    assert onnx_row["latency"] is None
    assert result["versions"]["onnxruntime"] and result["versions"]["python"]
    assert {e["profile"] for e in result["estimates"]} == {"raspberry_pi_5", "iphone"}
    assert all(e["verdict"]["kind"] == "estimate" for e in result["estimates"])
    md = (out / "report.md").read_text()
    assert "## Other devices: estimates, not measurements" in md and "operator Elu" in md
    assert "(estimate)" in md and "| tiny | pytorch | fp32 | ok |" in md
    for png in ("latency_vs_accuracy.png", "latency_distribution.png", "budget.png"):
        assert (out / png).stat().st_size > 1000, png


def test_jetson_nano_gets_an_opset_13_artifact_and_the_trt_8_2_command(tiny):
    root, ckpt = tiny
    out = root / "nano"
    assert bench.main(["--profile", "jetson_nano", "--ckpt", str(ckpt), "--preset", "rapid", "--estimate", "none",
                       "--out", str(out), "--quiet"]) == 0
    result = json.loads((out / "result.json").read_text())
    (row,) = result["rows"]
    assert row["format"] == "trt" and row["precision"] == "fp16" and row["status"] == "missing-backend"
    assert "opset 13" in row["message"] and "passes jetson_nano's operator check" in row["message"]
    command = row["commands"][0]
    assert command.startswith("trtexec --onnx=") and "--fp16" in command and "--workspace=1024" in command
    # converters.trt's own finishing command keeps the profile, so the board exports opset 13 as well
    assert any(c.startswith("python -m converters.trt") and "--profile" in c for c in row["commands"])
    onnx_path = command.split("--onnx=")[1].split()[0]
    assert check_onnx(onnx_path, load_profile("jetson_nano")) == []
    import onnx
    assert max(o.version for o in onnx.load(onnx_path).opset_import if o.domain in ("", "ai.onnx")) == 13
    assert [e["profile"] for e in result["estimates"]] == ["jetson_nano"]  # not measurable here: estimated


def test_compare_merges_runs(x86_run, tiny, tmp_path):
    out, _ = x86_run
    root, _ = tiny
    assert compare.main([str(out / "result.json"), str(root / "nano" / "result.json"), "--out", str(tmp_path)]) == 0
    md = (tmp_path / "compare.md").read_text()
    assert "| no_elu_cpu | tiny | pytorch | fp32 | ok |" in md and "| jetson_nano | tiny | trt |" in md
    assert "(estimate)" in md and "| raspberry_pi_5 |" in md
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert compare.main([str(bad)]) == 2


def test_calibrate_recovers_known_constants(tmp_path):
    peak = 100.0
    truth = {"compute_efficiency": 0.2, "layer_overhead_us": 15.0, "fixed_overhead_ms": 0.3}
    costs = [GraphCost(f, 1e5, 1e5, n) for f, n in ((1e8, 150), (3e8, 160), (6e8, 200), (1e9, 170))]
    points = [(c, c.flops / (peak * 1e9 * 0.2) * 1e3 + c.layers * 0.015 + 0.3) for c in costs]
    fitted = calibrate.fit_constants(points, peak)
    assert fitted == pytest.approx(truth, rel=1e-6)
    with pytest.raises(calibrate.CalibrationError):
        calibrate.fit_constants(points[:2], peak)
    two = calibrate.fit_constants(points[:2], peak, layer_overhead_us=15.0)
    assert two == pytest.approx(truth, rel=1e-6)


def test_bad_input_is_one_line_with_exit_2(tiny, capsys):
    _, ckpt = tiny
    assert bench.main(["--profile", "toaster", "--ckpt", str(ckpt)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m benchmarks.run: error: --profile: unknown device profile 'toaster'")
    assert len(err.strip().splitlines()) == 1
    assert bench.main(["--profile", "x86_cpu", "--ckpt", str(ckpt), "--formats", "onnx,gif"]) == 2
    assert "--formats: unknown ['gif']" in capsys.readouterr().err


def test_native_tool_output_parsers():
    from benchmarks.native import parse_benchmark_model, parse_onnxruntime_perf_test, parse_trtexec, run_native
    trt = ("[11/29/2026-21:00:00] [I] Throughput: 1812.4 qps\n"
           "[11/29/2026-21:00:00] [I] Latency: min = 0.512 ms, max = 1.94 ms, mean = 0.55 ms, median = 0.54 ms, "
           "percentile(90%) = 0.58 ms, percentile(99%) = 0.91 ms\n"
           "[11/29/2026-21:00:00] [I] H2D Latency: min = 0.01 ms, max = 0.05 ms, mean = 0.02 ms, median = 0.02 ms\n")
    got = parse_trtexec(trt)
    assert got == {"min_ms": 0.512, "max_ms": 1.94, "mean_ms": 0.55, "p50_ms": 0.54, "p90_ms": 0.58, "p99_ms": 0.91,
                   "throughput_per_s": 1812.4}
    lite = ("count=100 first=2310 curr=2050 min=1990 max=2900 avg=2101.5 std=120\n"
            "Inference timings in us: Init: 5685, First inference: 18535, Warmup (avg): 2.3e+03, "
            "Inference (avg): 2101.5")
    got = parse_benchmark_model(lite)
    assert got["first_ms"] == pytest.approx(18.535) and got["mean_ms"] == pytest.approx(2.1015)
    assert got["std_ms"] == pytest.approx(0.12)
    ort = "Average inference time cost: 4.21 ms\nP50 Latency: 0.00412 s\nP90 Latency: 0.0051 s\n"
    assert parse_onnxruntime_perf_test(ort) == pytest.approx({"mean_ms": 4.21, "p50_ms": 4.12, "p90_ms": 5.1})
    assert parse_trtexec("no summary") is None and parse_benchmark_model("") is None
    assert run_native("model.xyz") is None  # no tool for this suffix: nothing, not an error


def test_calibrate_command_on_a_run(x86_run, tmp_path, capsys):
    out, result = x86_run
    # one model: one point fits nothing, and it says so in one line
    assert calibrate.main([str(out / "result.json"), "--format", "pytorch"]) == 2
    assert "need at least 2 measured points" in capsys.readouterr().err
    # with its batch-4 throughput: two points fit two constants, the per-operator overhead is kept
    assert calibrate.main([str(out / "result.json"), "--format", "pytorch", "--batch-points"]) == 0
    assert "fitted compute_efficiency, fixed_overhead_ms" in capsys.readouterr().out
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**result, "profile_name": "jetson_nano"}))
    assert calibrate.main([str(out / "result.json"), str(other)]) == 2
    assert "different profiles" in capsys.readouterr().err
    # three models' worth of points: fitted, and written into a profile that still validates
    row = next(r for r in result["rows"] if r["format"] == "pytorch")
    extra = []
    for i, scale in enumerate((2.0, 3.0)):
        ck = f"{row['ckpt']}.{i}"
        result["costs"][ck] = {**result["costs"][row["ckpt"]], "flops": result["costs"][row["ckpt"]]["flops"] * scale}
        extra.append({**row, "ckpt": ck, "model": f"m{i}", "throughput_batch": None,
                      "latency": {**row["latency"], "p50_ms": row["latency"]["p50_ms"] * (1 + scale) / 2}})
    result["rows"] += extra
    res_file = tmp_path / "result.json"
    res_file.write_text(json.dumps(result))
    profile = tmp_path / "board.yaml"
    profile.write_text((PROFILE_DIR / "x86_cpu.yaml").read_text())
    assert calibrate.main([str(res_file), "--format", "pytorch", "--write", str(profile)]) == 0
    fitted = load_profile(profile).estimate
    assert fitted["calibrated"].startswith("yes: pytorch fp32 p50 at 3 points")
    assert 0 < fitted["compute_efficiency"] <= 1


def test_machine_info_is_the_same_in_every_process():
    """hostname_hash identifies a machine across result files, so it cannot depend on the per-process str-hash
    salt (PYTHONHASHSEED); the SIMD features that decide which kernels ran are recorded with it."""
    import os
    import subprocess
    import sys
    code = "import json; from benchmarks.run import machine_info; print(json.dumps(machine_info()))"
    runs = [json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                                      env={**os.environ, "PYTHONHASHSEED": seed}).stdout) for seed in ("1", "2")]
    assert runs[0]["hostname_hash"] == runs[1]["hostname_hash"] == bench.machine_info()["hostname_hash"]
    assert set(runs[0]["cpu_features"]) <= set(bench.SIMD_FLAGS)
