"""benchmarks.tflite_int8 --reuse: an existing export is taken only when its sidecar names the same method and the
same checkpoint (the checkpoint's metrics, bit for bit)."""
from __future__ import annotations

import json
from pathlib import Path

from benchmarks.tflite_int8 import find_export


def _export(folder: Path, method: str, metrics: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"best_int8_b1_{method}.tflite"
    path.write_bytes(b"")
    path.with_name(path.name + ".json").write_text(json.dumps(
        {"format": "tflite", "precision": "int8", "int8_method": method, "metrics": metrics}))
    return path


def test_reuse_matches_method_and_checkpoint(tmp_path: Path) -> None:
    metrics = {"top1": 0.8627450980392157, "epoch": 30, "loss": 0.45707344121739135}
    ck = {"metrics": metrics}
    full = _export(tmp_path / "last_nano_jvb" / "a", "full", metrics)
    _export(tmp_path / "last_nano_jvb" / "b", "aeq-compute", {**metrics, "loss": 0.4571})
    assert find_export(ck, "last_nano_jvb", "full", [tmp_path]) == full
    assert find_export(ck, "last_nano_jvb", "aeq-compute", [tmp_path]) is None  # another checkpoint's file
    assert find_export(ck, "last_small_jvb", "full", [tmp_path]) is None  # another checkpoint's folder
