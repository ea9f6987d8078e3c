"""TFLite converter: litert-torch conversion, LiteRT interpreter parity, INT8 with float multiplies, errors.

Uses the converter tests' last_nano fitted in closed form to synthetic motions (T=16) so INT8 is checked on real logits."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("litert_torch", reason="litert-torch not installed: pip install -e '.[tflite]'")
pytest.importorskip("ai_edge_litert", reason="ai-edge-litert not installed: pip install -e '.[tflite]'")
pytest.importorskip("ai_edge_quantizer", reason="ai-edge-quantizer not installed: pip install -e '.[tflite]'")

from converters import tflite  # noqa: E402
from converters.common import InputError  # noqa: E402
from core.artifact import read_artifact_metadata  # noqa: E402

from converters_helpers import FRAMES, held_out, make_test_checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_test_checkpoint(tmp_path_factory.mktemp("tflite") / "tiny.pt")


@pytest.fixture(scope="module")
def calib_file(tmp_path_factory, ckpt):
    x, labels = held_out(per_class=3, seed=11)
    path = tmp_path_factory.mktemp("calib") / "calib.npz"
    np.savez(path, x=x.astype(np.float32), labels=labels)
    return path


@pytest.fixture(scope="module")
def fp32_result(ckpt, tmp_path_factory):
    return tflite.export(ckpt, tmp_path_factory.mktemp("out"), "fp32", verify_samples=12)


def _interpreter_logits(path, x):
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    outs = []
    for clip in x:
        it.set_tensor(inp["index"], clip[None])
        it.invoke()
        outs.append(it.get_tensor(out["index"])[0].copy())
    return np.stack(outs)


def test_fp32_matches_pytorch_in_the_interpreter(fp32_result, ckpt):
    import torch

    from core.checkpoint import load_model
    r = fp32_result
    assert r.status == "ok", r.message
    assert r.path.suffix == ".tflite" and r.size_bytes > 10_000
    assert r.extra["input_dtype"] == "float32" and r.extra["output_dtype"] == "float32"
    assert r.extra["input_shape"] == [1, 3, FRAMES, 25, 1]
    assert r.extra["top1_agreement"] == 1.0 and r.extra["max_abs_diff"] < 1e-3
    # independent check straight through the interpreter, on clips the export did not see
    model, _ = load_model(ckpt)
    x, _ = held_out(per_class=1, seed=21)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    got = _interpreter_logits(r.path, x)
    np.testing.assert_allclose(got, ref, atol=1e-3 * max(1.0, np.abs(ref).max()))
    meta = read_artifact_metadata(r.path)
    assert meta["format"] == "tflite" and meta["precision"] == "fp32"
    assert meta["class_names"][0] == "wave" and meta["input_spec"]["frames"] == FRAMES


def test_fp16_weights_halve_the_file_and_keep_predictions(fp32_result, tmp_path):
    fp16 = tflite.cast_fp16(fp32_result.path, tmp_path / "m_fp16.tflite")
    info = tflite.describe(fp16)
    assert info["ops"].get("DEQUANTIZE", 0) > 0  # fp16 weight tensors dequantised at load
    assert fp16.stat().st_size < 0.85 * fp32_result.path.stat().st_size
    x, _ = held_out(per_class=1, seed=22)
    a, b = _interpreter_logits(fp32_result.path, x), _interpreter_logits(fp16, x)
    assert (a.argmax(1) == b.argmax(1)).all()
    assert np.abs(a - b).max() < 0.05 * max(1.0, np.abs(a).max())


def test_int8_pt2e_keeps_the_multiplies_float(ckpt, calib_file, fp32_result, tmp_path):
    """The tiny closed-form test model has tiny class margins, so its top-1 agreement says little (the
    accuracy proof is the NW-UCLA measurement in docs/converters_tflite_coreml.md); what is checked here is
    the recipe: int8 conv/linear, float multiplies, honest I/O dtypes, bounded logit error, a verdict."""
    r = tflite.export(ckpt, tmp_path, "int8", calib=calib_file, calib_samples=8, verify_samples=12)
    assert r.status in ("ok", "failed") and r.path.is_file(), r.message
    if r.status == "failed":
        assert "top-1 agreement" in r.message  # the only reason this recipe may miss on this model
    assert r.extra["int8_method"] == "pt2e"
    assert r.extra["ops"]["CONV_2D"] > 0 and r.extra["integer_ops"] > 0.3 * r.extra["compute_ops"]
    assert "MUL" in r.extra["float_op_types"] and "CONV_2D" not in r.extra["float_op_types"]
    assert r.extra["max_abs_diff"] < 0.25 * r.extra["logit_scale"]
    assert r.path.stat().st_size < 0.8 * fp32_result.path.stat().st_size
    meta = json.loads((r.path.parent / (r.path.name + ".json")).read_text())
    # the metadata states the file's real I/O dtypes
    assert meta["input_dtype"] == r.extra["input_dtype"] and meta["output_dtype"] == r.extra["output_dtype"]
    assert meta["int8_method"] == "pt2e" and "calib.npz" in meta["calibration"]


def test_verdict_thresholds():
    from converters.verify import judge
    good = {"max_abs_diff": 0.5, "logit_scale": 10.0, "top1_agreement": 0.95}
    assert judge("tflite", "int8", good) == (True, "")
    ok, why = judge("tflite", "int8", {**good, "top1_agreement": 0.6})
    assert not ok and "agreement 0.600" in why
    ok, why = judge("tflite", "fp32", {**good, "max_abs_diff": 0.5})
    assert not ok and "max |logit diff|" in why
    assert not judge("tflite", "fp16", {**good, "max_abs_diff": float("nan")})[0]
    ok, why = judge("coreml", "fp16", good, ("2 op(s) overflow fp16",))
    assert not ok and "overflow" in why


def test_missing_calibration_file_is_a_clear_error(ckpt, tmp_path):
    missing = tmp_path / "nope.npz"
    with pytest.raises(InputError, match="nope.npz"):
        tflite.export(ckpt, tmp_path, "int8", calib=missing)


def test_cli_corrupt_checkpoint_exits_2(tmp_path, capsys):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    assert tflite.main(["--ckpt", str(bad), "--out", str(tmp_path), "--quiet"]) == 2
    assert "broken.pt" in capsys.readouterr().err


def test_missing_backend_is_a_result_not_a_crash(ckpt, tmp_path, monkeypatch):
    from core.runtime import BackendMissing

    def no_litert(*_a, **_k):
        raise BackendMissing("litert_torch is not installed; install it with: " + tflite.PIP_HINT)

    monkeypatch.setattr(tflite, "_litert_torch", no_litert)
    r = tflite.export(ckpt, tmp_path, "fp32", verify_samples=2)
    assert r.status == "missing-backend" and "pip install" in r.message and r.path is None
    assert r.exit_code == 3
