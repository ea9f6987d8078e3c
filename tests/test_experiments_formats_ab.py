"""experiments.formats_ab: pairs artifacts by name across two folders, times them interleaved, reports the ratio."""
from __future__ import annotations

import shutil

import pytest

from backend_checker import backend_checker
from experiments import formats_ab
from core.cli import BadInput


@backend_checker("onnxruntime")
def test_pairs_by_name_times_both_sides_and_reports(tiny_checkpoint, tmp_path):
    from converters import onnx as onnx_export
    a, b = tmp_path / "a", tmp_path / "b"
    result = onnx_export.export(tiny_checkpoint["ckpt"], a / "m", "fp32", batch=None, verify_samples=4)
    assert result.status == "ok", result.message
    shutil.copytree(a, b)
    (a / "m" / "only_here.onnx").write_bytes(b"")  # an unpaired name is not timed
    assert formats_ab.paired_artifacts(a, b) == ["m/" + result.path.name]
    res = formats_ab.compare(a, b, ("old", "new"), rounds=3, per_round=2, threads=1)
    (row,) = res["timed"]
    assert row["old_ms"] > 0 and row["new_ms"] > 0 and row["speedup_p10"] <= row["speedup"] <= row["speedup_p90"]
    assert "| m/" in formats_ab.markdown(res)
    with pytest.raises(BadInput, match="share no"):
        formats_ab.compare(a, tmp_path, ("old", "new"), 1, 1, 1)
