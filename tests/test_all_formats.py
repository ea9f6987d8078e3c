"""python -m converters: every requested format is a row (a missing backend or converter is a row with its
reason, not a crash), scored on a real split, saved as markdown, CSV, JSON and a plot."""
from __future__ import annotations

import csv
import json
import warnings

import numpy as np
import pytest
import torch

import converters.__main__ as all_formats
from backend_checker import backend_available
from core.checkpoint import load_model
from tolerances import float32_logit_tolerance


@pytest.mark.slow  # 43 s measured on the shared 2-core machine
def test_all_formats_table(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "table"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = all_formats.main(["--ckpt", str(tiny_checkpoint["ckpt_int8"]), "--formats", "onnx,int8,trt", "--data",
                                 "synthetic:test", "--calib", str(tiny_checkpoint["calib"]), "--int8-quantizers",
                                 "ort", "--limit", "32", "--out",
                                 str(out), "--latency-runs", "2", "--threads", "1", "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| format | precision | status |" in printed
    rows = {(r["format"], r["precision"]): r for r in json.loads((out / "formats_table.json").read_text())["rows"]}
    ref, onnx_row, q = rows[("pytorch", "fp32")], rows[("onnx", "fp32")], rows[("int8", "int8")]
    assert ref["status"] == onnx_row["status"] == q["status"] == "ok"
    assert 0 < ref["top1"] <= 1 and onnx_row["top1"] == ref["top1"]
    model, _ = load_model(tiny_checkpoint["ckpt_int8"])
    x = np.load(tiny_checkpoint["calib"])["x"][:32]
    with torch.no_grad():
        ref_logits = model(torch.from_numpy(x)).numpy()
    assert onnx_row["max_logit_diff"] <= float32_logit_tolerance(model, x.shape[2], ref_logits)
    assert onnx_row["delta_top1"] == 0
    assert abs(q["delta_top1"]) <= 10  # 32 clips: 1 clip = 3 points
    assert all(r["latency_ms"] and r["latency_ms"] > 0 for r in (ref, onnx_row, q))
    trt_row = rows[("trt", "int8")]
    if not backend_available("tensorrt"):
        assert trt_row["status"] == "missing-backend" and "trtexec" in trt_row["message"]
    with open(out / "formats_table.csv") as f:
        assert len(list(csv.DictReader(f))) == 4
    assert (out / "formats_table.png").stat().st_size > 5000
    assert "Δ top-1" in (out / "formats_table.md").read_text()


def test_missing_converter_is_a_row_not_a_crash(tiny_checkpoint, tmp_path):
    result = all_formats.run_export("no_such_format", "fp32", tiny_checkpoint["ckpt"], tmp_path, None, 1)
    assert result.status == "failed" and "unknown format 'no_such_format'" in result.message


def test_format_table_matches_every_exporter(tiny_checkpoint, tmp_path):
    import importlib
    import inspect

    from converters.formats import FORMATS, check_request
    from converters.common import InputError
    shared = {"ckpt", "out_dir", "precision", "calib", "batch"}
    for fmt in FORMATS.values():
        params = inspect.signature(importlib.import_module(fmt.module).export).parameters
        assert not any(p.kind is p.VAR_KEYWORD for p in params.values()), f"{fmt.module}.export swallows **opts"
        assert set(params) - shared == set(fmt.options), fmt.name
    with pytest.raises(InputError, match="unknown option.*keep_flaot.*did you mean 'keep_float'"):
        check_request("int8", "int8", {"keep_flaot": "none"})
    with pytest.raises(InputError, match="tflite does not export 'w8'"):
        check_request("tflite", "w8", {})
    bad = all_formats.run_export("int8", "int8", tiny_checkpoint["ckpt"], tmp_path, None, None, quantiser="ort")
    assert bad.status == "failed" and "quantiser" in bad.message


def test_bad_arguments_exit_2(tiny_checkpoint, tmp_path, capsys):
    assert all_formats.main(["--ckpt", str(tiny_checkpoint["ckpt"]), "--formats", "onnx,pdf",
                             "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown format 'pdf'" in err and err.count("\n") == 1 and err.startswith("python -m converters: error:")
    assert all_formats.main(["--ckpt", str(tiny_checkpoint["ckpt"]), "--formats", "int8", "--out", str(tmp_path)]) == 2
    assert "calibration set" in capsys.readouterr().err
