"""ONNX export: parity with PyTorch, embedded metadata, fixed/dynamic batch, calibration sets, and the
clear errors for a corrupt checkpoint and a missing or wrong calibration file."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from converters import onnx as onnx_export
from converters.calib import (build_calibration, load_calibration, load_calibration_set, save_calibration,
                              stratified_indices)
from converters.common import InputError
from converters.verify import compare_logits
from core.evaluation import torch_logits
from core.artifact import read_artifact_metadata
from core.checkpoint import load_checkpoint, load_model
from core.runtime import load_runtime
from core.synthetic import make_synthetic_split
from backend_checker import backend_checker
from tolerances import float32_logit_tolerance

pytestmark = backend_checker("onnxruntime")



def test_onnx_dynamic_batch_matches_pytorch_and_carries_metadata(tiny_checkpoint, tmp_path, held_out):
    result = onnx_export.export(tiny_checkpoint["ckpt"], tmp_path, "fp32", calib=tiny_checkpoint["calib"], batch=None)
    assert result.status == "ok", result.message
    assert result.path.suffix == ".onnx" and result.size_bytes > 10_000
    meta = read_artifact_metadata(result.path)  # embedded, not only the sidecar
    ckpt = load_checkpoint(tiny_checkpoint["ckpt"])
    assert meta["class_names"] == ckpt["class_names"]
    assert meta["input_spec"] == ckpt["input_spec"] and meta["input_shape"][0] is None
    assert meta["opset"] == 17

    import onnx
    proto = onnx.load(str(result.path))
    assert any(p.key == "last_edge" for p in proto.metadata_props)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic batch

    model, _ = load_model(tiny_checkpoint["ckpt"])
    x, _ = held_out()
    rt = load_runtime(result.path)
    ref = torch_logits(model, x)
    stats = compare_logits(ref, rt.predict(x))  # 48 real clips in one dynamic batch
    assert stats["max_abs_diff"] <= float32_logit_tolerance(model, x.shape[2], ref)
    assert stats["top1_agreement"] == 1.0
    assert rt.predict(x[:3]).shape == (3, len(ckpt["class_names"]))


def test_onnx_fixed_batch(tiny_checkpoint, tmp_path, held_out):
    result = onnx_export.export(tiny_checkpoint["ckpt"], tmp_path, "fp32", batch=2, simplify_graph=False)
    assert result.status == "ok", result.message
    assert result.path.name.endswith("_fp32_b2.onnx")
    rt = load_runtime(result.path)
    assert rt.batch == 2
    x, _ = held_out(per_class=1)
    # 8 clips through a batch-2 graph: served in chunks, identical to PyTorch
    model, _ = load_model(tiny_checkpoint["ckpt"])
    ref = torch_logits(model, x[:5])
    assert np.abs(rt.predict(x[:5]) - ref).max() <= float32_logit_tolerance(model, x.shape[2], ref)


def test_corrupt_checkpoint_gives_clear_error(tmp_path, capsys):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    assert onnx_export.main(["--ckpt", str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "broken.pt" in err and "not a readable LAST checkpoint" in err
    assert onnx_export.main(["--ckpt", str(tmp_path / "absent.pt")]) == 2
    assert "absent.pt: checkpoint file not found" in capsys.readouterr().err


def test_missing_or_wrong_calibration_file(tiny_checkpoint, tmp_path, capsys):
    from converters import int8
    missing = tmp_path / "nope.npz"
    assert int8.main(["--ckpt", str(tiny_checkpoint["ckpt"]), "--calib", str(missing), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "nope.npz: calibration file not found" in err and "python -m converters.calib" in err
    with pytest.raises(InputError, match="INT8 needs a calibration set"):
        int8.export(tiny_checkpoint["ckpt"], tmp_path, "int8", calib=None)

    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip")
    with pytest.raises(InputError, match="garbage.npz: not a readable calibration file"):
        load_calibration_set(garbage)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, x=np.zeros((4, 3, 8, 25, 1), np.float32))  # 8 frames, the checkpoint wants 16
    with pytest.raises(InputError, match="wrong.npz: calibration clips have shape"):
        load_calibration(wrong, load_checkpoint(tiny_checkpoint["ckpt"]))


def test_stratified_calibration_set(tiny_checkpoint, tmp_path):
    labels = np.repeat(np.arange(4), [50, 30, 15, 5])
    idx = stratified_indices(labels, 20, seed=0)
    assert len(idx) == 20 == len(np.unique(idx))
    assert np.bincount(labels[idx]).tolist() == [10, 6, 3, 1]  # proportional to the class frequencies
    assert np.array_equal(idx, stratified_indices(labels, 20, seed=0))  # deterministic

    ckpt = load_checkpoint(tiny_checkpoint["ckpt"])
    split = make_synthetic_split("ntu25", per_class=5, frames=32, seed=3)
    with pytest.warns(UserWarning, match="below the recommended 100"):
        arrays = build_calibration(ckpt, split, num=16)
    path = save_calibration(tmp_path / "c.npz", arrays)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x = load_calibration(path, ckpt)
    assert x.shape == (16, 3, 16, 25, 1) and x.dtype == np.float32
    saved = load_calibration_set(path)
    assert json.loads(str(saved["input_spec"]))["frames"] == 16
    assert sorted(np.bincount(saved["labels"]).tolist()) == [2] * 8  # 16 clips over 8 classes


def test_calib_cli(tiny_checkpoint, tmp_path):
    from converters.calib import main
    out = tmp_path / "calib"  # --out is a folder, as everywhere
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["--ckpt", str(tiny_checkpoint["ckpt"]), "--data", "synthetic:val", "--num", "24",
                     "--out", str(out)]) == 0
    (written,) = out.glob("*.npz")
    assert written.name.endswith("synthetic_val_24.npz")
    assert load_calibration_set(written)["x"].shape[0] == 24
    assert main(["--ckpt", str(tiny_checkpoint["ckpt"]), "--data", "no_such_set:train", "--out", str(out)]) == 2
