"""CoreML converter: ML Program spec checks (skip_model_load), int8 weights, and the numpy MIL evaluator that
validates packages numerically off macOS (against PyTorch and against hand-built MIL programs)."""
from __future__ import annotations

import json
import platform

import numpy as np
import pytest

ct = pytest.importorskip("coremltools", reason="coremltools not installed: pip install -e '.[coreml]'")

from converters import coreml  # noqa: E402
from core import mil_eval  # noqa: E402
from converters.common import InputError  # noqa: E402
from core.artifact import METADATA_KEY, read_artifact_metadata  # noqa: E402

from converters_helpers import FRAMES, held_out, make_test_checkpoint  # noqa: E402

ON_MAC = platform.system() == "Darwin"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_test_checkpoint(tmp_path_factory.mktemp("coreml") / "tiny.pt")


@pytest.fixture(scope="module")
def fp16_result(ckpt, tmp_path_factory):
    return coreml.export(ckpt, tmp_path_factory.mktemp("out"), "fp16", verify_samples=8)


def _torch_logits(ckpt, x):
    import torch

    from core.checkpoint import load_model
    model, _ = load_model(ckpt)
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy(), model


def test_fp16_package_spec(fp16_result, ckpt):
    r = fp16_result
    assert r.status == "ok", r.message
    assert r.path.suffix == ".mlpackage" and r.size_bytes > 10_000
    assert r.extra["frontend"] == "trace"  # the jit.trace path works (with the numpy-2 cast fix)
    mlmodel = ct.models.MLModel(str(r.path), skip_model_load=True)
    spec = mlmodel.get_spec()
    assert spec.WhichOneof("Type") == "mlProgram"
    (inp,), (out,) = spec.description.input, spec.description.output
    assert inp.name == "skeleton" and list(inp.type.multiArrayType.shape) == [1, 3, FRAMES, 25, 1]
    assert out.name == "logits" and list(out.type.multiArrayType.shape) == [1, 8]
    float32 = ct.proto.FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Value("FLOAT32")
    assert inp.type.multiArrayType.dataType == float32 and out.type.multiArrayType.dataType == float32
    # op counts follow the architecture: one conv per Conv2d, two elu per attention block, one linear head
    import torch
    _, model = _torch_logits(ckpt, held_out(1, 3)[0][:1])
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    attentions = sum(m.attention is not None for m in model.modules() if hasattr(m, "attention"))
    ops = coreml.describe(r.path)["ops"]
    assert ops["conv"] == convs and ops["elu"] == 2 * attentions and ops["linear"] == 1
    assert ops.get("cast", 0) >= 2  # fp32 I/O around an fp16 program
    meta = json.loads(mlmodel.user_defined_metadata[METADATA_KEY])
    assert meta["class_names"][0] == "wave" and meta["precision"] == "fp16"
    assert read_artifact_metadata(r.path)["input_spec"]["frames"] == FRAMES  # sidecar too


def test_mil_eval_matches_pytorch_on_held_out_clips(fp16_result, ckpt):
    x, _ = held_out(per_class=1, seed=31)
    ref, _ = _torch_logits(ckpt, x)
    program = mil_eval.load(fp16_result.path)
    got = program.predict(x)
    assert got.shape == ref.shape
    assert (got.argmax(1) == ref.argmax(1)).all()
    assert np.abs(got - ref).max() < 0.05 * max(1.0, np.abs(ref).max())
    assert not any(r.fp16_overflow for r in program.ranges(x[:1]))
    # fp16 rounding is really simulated: the fp16 program is not bit-equal to fp32
    assert np.abs(got - ref).max() > 1e-6


@pytest.mark.skipif(ON_MAC, reason="on macOS int8 means w8a8")
def test_int8_off_macos_is_w8_with_quantized_weights(ckpt, fp16_result, tmp_path):
    r = coreml.export(ckpt, tmp_path, "int8", verify_samples=8)
    assert r.status == "ok", r.message
    assert r.precision == "w8" and "w8a8" in r.message and r.path.name.endswith("_w8_b1.mlpackage")
    assert r.extra["ops"].get("constexpr_affine_dequantize", 0) > 0
    assert r.size_bytes < 0.8 * fp16_result.size_bytes
    assert r.extra["top1_agreement"] >= 0.95


def test_w8a8_needs_a_calibration_file(ckpt, tmp_path):
    with pytest.raises(InputError, match="--calib"):
        coreml.export(ckpt, tmp_path, "w8a8")
    with pytest.raises(InputError, match="missing_calib.npz"):
        coreml.export(ckpt, tmp_path, "w8a8", calib=tmp_path / "missing_calib.npz")


def test_missing_coremltools_is_a_result(ckpt, tmp_path, monkeypatch):
    from core.runtime import BackendMissing

    def missing():
        raise BackendMissing("coremltools is not installed; install it with: " + coreml.PIP_HINT)

    monkeypatch.setattr(coreml, "_coremltools", missing)
    r = coreml.export(ckpt, tmp_path, "fp16", verify_samples=2)
    assert r.status == "missing-backend" and "pip install" in r.message


# ---------------------------------------------------------------------------------------------------------
# mil_eval against hand-built MIL programs (no torch conversion: fast, and every op checked on its own)

def _save(prog, path, precision="fp32", target=None):
    mlmodel = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=target or ct.target.iOS16,
                         compute_precision=ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16)
    mlmodel.save(str(path))
    return path


def test_mil_eval_ops_against_torch(tmp_path):
    import torch
    import torch.nn.functional as F
    from coremltools.converters.mil import Builder as mb

    rng = np.random.default_rng(0)
    w_group = rng.normal(size=(6, 2, 3, 1)).astype(np.float32)
    w_dw = rng.normal(size=(4, 1, 5, 1)).astype(np.float32)
    bias = rng.normal(size=6).astype(np.float32)
    mean, var = rng.normal(size=4).astype(np.float32), rng.uniform(0.5, 2, 4).astype(np.float32)
    w_fc = rng.normal(size=(3, 5)).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(shape=(2, 4, 7, 5))], opset_version=ct.target.iOS16)
    def prog(x):
        a = mb.conv(x=x, weight=w_group, bias=bias, strides=[2, 1], pad_type="custom", pad=[1, 1, 0, 0], groups=2)
        b = mb.conv(x=x, weight=w_dw, pad_type="same", groups=4)
        c = mb.batch_norm(x=x, mean=mean, variance=var, epsilon=1e-3)
        q, k = mb.split(x=x, split_sizes=[1, 3], axis=1)
        att = mb.matmul(x=mb.elu(x=q, alpha=1.0), y=mb.tanh(x=k), transpose_y=True)
        sl = mb.slice_by_index(x=x, begin=[0, 1, 1, 0], end=[2, 3, 6, 5], stride=[1, 1, 2, 1])
        cat = mb.concat(values=[sl, mb.relu(x=sl)], axis=1)
        red = mb.real_div(x=mb.reduce_mean(x=x, axes=[2], keep_dims=True), y=mb.add(x=mb.reduce_sum(x=x, axes=[2], keep_dims=True), y=10.0))
        fc = mb.linear(x=mb.reshape(x=mb.transpose(x=x, perm=[0, 2, 1, 3]), shape=[14, 4, 5]), weight=w_fc)
        return a, b, c, att, cat, red, fc

    program = mil_eval.load(_save(prog, tmp_path / "ops.mlpackage"))
    x = rng.normal(size=(2, 4, 7, 5)).astype(np.float32)
    outs = program.run({program.input_name: x})
    got = [outs[name] for name in program.outputs]
    t = torch.from_numpy(x)
    q, k = t[:, :1], t[:, 1:]
    sl = t[:, 1:3, 1:6:2]
    expected = [
        F.conv2d(t, torch.from_numpy(w_group), torch.from_numpy(bias), stride=(2, 1), padding=(1, 0), groups=2),
        F.conv2d(t, torch.from_numpy(w_dw), padding=(2, 0), groups=4),
        F.batch_norm(t, torch.from_numpy(mean), torch.from_numpy(var), eps=1e-3),
        F.elu(q) @ torch.tanh(k).transpose(-1, -2),
        torch.cat([sl, F.relu(sl)], 1),
        t.mean(2, keepdim=True) / (t.sum(2, keepdim=True) + 10.0),
        t.permute(0, 2, 1, 3).reshape(14, 4, 5) @ torch.from_numpy(w_fc).T,
    ]
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e.numpy(), rtol=1e-4, atol=1e-4)


def test_mil_eval_flags_fp16_overflow(tmp_path):
    from coremltools.converters.mil import Builder as mb

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 8))], opset_version=ct.target.iOS16)
    def prog(x):
        big = mb.mul(x=x, y=300.0)
        return mb.mul(x=big, y=300.0)  # 300*300*x > 65504 for |x| > 0.73

    program = mil_eval.load(_save(prog, tmp_path / "overflow.mlpackage", precision="fp16"))
    x = np.linspace(-2, 2, 8, dtype=np.float32)[None]
    trace = program.ranges(x)
    flagged = [r for r in trace if r.fp16_overflow]
    assert flagged and flagged[-1].type == "mul" and flagged[-1].max_abs > 65504
    assert not np.isfinite(program.predict(x)).all()  # the fp16 result really overflows
    small = np.full((1, 8), 0.1, np.float32)
    np.testing.assert_allclose(program.predict(small), 90000.0 * small, rtol=1e-3)


def test_mil_eval_rejects_unknown_ops_and_non_packages(tmp_path):
    from coremltools.converters.mil import Builder as mb

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4))], opset_version=ct.target.iOS16)
    def prog(x):
        return mb.sin(x=x)

    program = mil_eval.load(_save(prog, tmp_path / "sin.mlpackage"))
    with pytest.raises(mil_eval.UnsupportedOpError, match="'sin'"):
        program.predict(np.zeros((1, 4), np.float32))
    (tmp_path / "empty.mlpackage").mkdir()
    with pytest.raises(mil_eval.MILEvalError, match="empty.mlpackage"):
        mil_eval.load(tmp_path / "empty.mlpackage")
