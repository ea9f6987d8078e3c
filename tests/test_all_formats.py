"""Every format at once. `python -m benchmarks.run` without a profile measures them on this machine: every requested
format is a row (a missing backend or converter is a row with its reason, not a crash), scored on a real split with
the paired difference against PyTorch fp32, timed, saved as markdown, CSV, JSON and plots. `python -m converters`
only exports (and verifies), and names the new spelling for the scoring options it used to take."""
from __future__ import annotations

import csv
import json
import warnings

import numpy as np
import pytest
import torch

import converters.__main__ as export_cli
from backend_checker import backend_available
from benchmarks import run as bench
from converters import formats
from converters.common import InputError
from core.checkpoint import Checkpoint, load_model
from core.stats import VERDICTS
from devices import load_profile
from tolerances import float32_logit_tolerance


@pytest.mark.slow  # ~45 s on the shared 2-core machine
def test_every_format_on_this_machine(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "table"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = bench.main(["--ckpt", str(tiny_checkpoint["ckpt_int8"]), "--formats", "onnx,int8,trt", "--data",
                           "synthetic:test", "--calib", str(tiny_checkpoint["calib"]), "--int8-quantizers", "ort",
                           "--limit", "32", "--preset", "rapid", "--batch", "2", "--out", str(out), "--threads", "1",
                           "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| model | format | precision | status |" in printed and "no device profile" in printed
    result = json.loads((out / "result.json").read_text())
    assert result["profile"] is None and result["estimates"] == []
    rows = {(r["format"], r["precision"]): r for r in result["rows"]}
    ref, onnx_row, q = rows[("pytorch", "fp32")], rows[("onnx", "fp32")], rows[("int8", "int8")]
    assert ref["status"] == onnx_row["status"] == q["status"] == "ok"
    assert 0 < ref["top1"] <= 1 and onnx_row["top1"] == ref["top1"] and ref["clips"] == 32
    model, _ = load_model(tiny_checkpoint["ckpt_int8"])
    x = np.load(tiny_checkpoint["calib"])["x"][:32]
    with torch.no_grad():
        ref_logits = model(torch.from_numpy(x)).numpy()
    assert onnx_row["max_logit_diff"] <= float32_logit_tolerance(model, x.shape[2], ref_logits)
    assert onnx_row["delta_top1"] == 0
    # the paired statistics against PyTorch fp32 on the same 32 clips
    p = q["paired"]
    assert p["n"] == 32 and p["delta"] == pytest.approx(q["delta_top1"]) and p["low"] <= p["delta"] <= p["high"]
    assert p["delta"] == pytest.approx(100 * (p["fixed"] - p["broken"]) / 32)
    assert q["accuracy"] in VERDICTS and onnx_row["accuracy"] == "holds" and ref["accuracy"] is None
    assert all(r["latency"]["p50_ms"] > 0 and r["verdict"] is None for r in (ref, onnx_row, q))
    trt_row = rows[("trt", "int8")]
    if not backend_available("tensorrt"):
        assert trt_row["status"] == "missing-backend" and trt_row["commands"][0].startswith("trtexec ")
    with open(out / "result.csv") as f:
        lines = list(csv.DictReader(f))
    assert len(lines) == 4 and {line["accuracy"] for line in lines[1:3]} <= set(VERDICTS)
    assert (out / "latency_vs_accuracy.png").stat().st_size > 5000 and not (out / "budget.png").exists()
    report = (out / "report.md").read_text()
    assert "Δ top-1 [95 % CI]" in report and f"+{p['fixed']} / -{p['broken']}" in report


def test_converters_exports_only_and_names_the_new_spelling(tiny_checkpoint, tmp_path, capsys):
    code = export_cli.main(["--ckpt", str(tiny_checkpoint["ckpt"]), "--formats", "onnx", "--data", "synthetic:test",
                            "--limit", "8", "--out", str(tmp_path), "--quiet"])
    assert code == 0
    exports = json.loads((tmp_path / "exports.json").read_text())["results"]
    assert [(r["format"], r["status"]) for r in exports] == [("onnx", "ok")]
    assert not list(tmp_path.glob("formats_table*")) and not list(tmp_path.glob("*.png"))  # nothing measured
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"python -m converters: scoring and timing moved: python -m benchmarks.run --ckpt "
                   f"{tiny_checkpoint['ckpt']} --formats onnx --data synthetic:test --limit 8 --out {tmp_path}"]


def test_the_checkpoint_is_read_once_per_run(tiny_checkpoint, tmp_path, monkeypatch):
    """The TensorRT INT8 row alone builds an fp32 ONNX, a Q/DQ ONNX and the engine plan: one read of the file."""
    reads = []
    real_load = torch.load

    def counting_load(path, *args, **kwargs):
        reads.append(str(path))
        return real_load(path, *args, **kwargs)
    monkeypatch.setattr(torch, "load", counting_load)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = export_cli.main(["--ckpt", str(tiny_checkpoint["ckpt"]), "--formats", "onnx,int8,trt", "--calib",
                                str(tiny_checkpoint["calib"]), "--int8-quantizers", "ort", "--out", str(tmp_path),
                                "--quiet"])
    assert code in (0, 1, 3)  # verification verdicts and a missing TensorRT are not this test's subject
    assert reads.count(str(tiny_checkpoint["ckpt"])) == 1


def test_plan_follows_the_format_table_and_the_profile():
    plan = formats.plan(["onnx", "int8", "trt", "tflite", "coreml"], quantizers=("ort", "modelopt"))
    assert [(p.format, p.label) for p in plan] == [
        ("onnx", "fp32"), ("int8", "int8/ort"), ("int8", "int8/modelopt"), ("trt", "int8"), ("tflite", "fp32"),
        ("tflite", "int8"), ("coreml", "fp16"), ("coreml", "w8")]
    assert plan[3].options == {"quantizer": "ort"} and plan[1].needs_calibration and not plan[0].needs_calibration
    with pytest.raises(InputError, match="tflite does not export 'w8'"):
        formats.plan(["tflite"], {"tflite": ("w8",)})
    # a TensorRT device builds at its own precision; elsewhere the engine is prepared at fp16 (no calibration)
    assert bench.profile_precisions(load_profile("jetson_nano")) == {"trt": ("fp16",)}
    assert bench.profile_precisions(load_profile("jetson_orin_nano")) == {"trt": ("int8",)}
    assert bench.profile_precisions(load_profile("x86_cpu")) == {"trt": ("fp16",)}
    assert bench.profile_precisions(None) == {}


def test_opened_checkpoint_stands_in_for_its_path(tiny_checkpoint):
    from core.checkpoint import load_checkpoint, load_model
    opened = Checkpoint(tiny_checkpoint["ckpt"])
    model, data = load_model(opened)
    assert data is opened.data and load_checkpoint(opened) is opened.data
    assert model is not opened.model() and str(opened) == str(tiny_checkpoint["ckpt"])
    for a, b in zip(model.state_dict().values(), opened.model().state_dict().values()):
        assert torch.equal(a, b)


def test_missing_converter_is_a_row_not_a_crash(tiny_checkpoint, tmp_path):
    result = formats.try_export("no_such_format", tiny_checkpoint["ckpt"], tmp_path, "fp32")
    assert result.status == "failed" and "unknown format 'no_such_format'" in result.message


def test_format_table_matches_every_exporter(tiny_checkpoint, tmp_path):
    import importlib
    import inspect

    from converters.formats import FORMATS, check_request
    shared = {"ckpt", "out_dir", "precision", "calib", "batch"}
    for fmt in FORMATS.values():
        params = inspect.signature(importlib.import_module(fmt.module).export).parameters
        assert not any(p.kind is p.VAR_KEYWORD for p in params.values()), f"{fmt.module}.export swallows **opts"
        assert set(params) - shared == set(fmt.options), fmt.name
    with pytest.raises(InputError, match="unknown option.*keep_flaot.*did you mean 'keep_float'"):
        check_request("int8", "int8", {"keep_flaot": "none"})
    with pytest.raises(InputError, match="tflite does not export 'w8'"):
        check_request("tflite", "w8", {})
    bad = formats.try_export("int8", tiny_checkpoint["ckpt"], tmp_path, "int8", batch=None, quantiser="ort")
    assert bad.status == "failed" and "quantiser" in bad.message


def test_bad_arguments_exit_2(tiny_checkpoint, tmp_path, capsys):
    assert export_cli.main(["--ckpt", str(tiny_checkpoint["ckpt"]), "--formats", "onnx,pdf",
                            "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown format 'pdf'" in err and err.count("\n") == 1 and err.startswith("python -m converters: error:")
    assert export_cli.main(["--ckpt", str(tiny_checkpoint["ckpt"]), "--formats", "int8", "--out", str(tmp_path)]) == 2
    assert "calibration set" in capsys.readouterr().err
