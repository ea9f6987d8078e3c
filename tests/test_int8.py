"""INT8 static Q/DQ ONNX: accuracy within tolerance of fp32, measured in onnxruntime, and the choice of the
ops kept in float."""
from __future__ import annotations

import numpy as np
import pytest

from converters import int8, onnx as onnx_export
from core.artifact import read_artifact_metadata
from core.runtime import load_runtime
from backend_checker import backend_checker

pytestmark = backend_checker("onnxruntime")


@pytest.mark.slow  # 16 s measured on the shared 2-core machine
def test_qdq_int8_accuracy_within_tolerance(tiny_checkpoint, tmp_path, held_out):
    result = int8.export(tiny_checkpoint["ckpt_int8"], tmp_path, "int8", calib=tiny_checkpoint["calib"], batch=None,
                         quantizer="ort")
    assert result.status == "ok", result.message
    assert result.extra["QuantizeLinear"] > 20 and result.extra["DequantizeLinear"] > 20
    assert result.extra["float_nodes"] > 0
    meta = read_artifact_metadata(result.path)
    assert meta["precision"] == "int8" and meta["quantizer"] == "onnxruntime.quantize_static"

    x, labels = held_out()  # clips the quantizer never saw
    fp32 = load_runtime(result.extra["fp32_onnx"]).predict(x)
    q = load_runtime(result.path).predict(x)
    agreement = float(np.mean(fp32.argmax(1) == q.argmax(1)))
    acc_fp32, acc_int8 = float(np.mean(fp32.argmax(1) == labels)), float(np.mean(q.argmax(1) == labels))
    assert agreement >= 0.9, agreement
    assert abs(acc_fp32 - acc_int8) <= 0.07, (acc_fp32, acc_int8)  # 48 clips: 1 clip = 2 points
    assert not np.allclose(fp32, q)  # it really is quantized


@pytest.mark.slow  # both quantizers: ~40 s
@backend_checker("modelopt")
def test_auto_keeps_only_files_the_target_opset_allows(tiny_checkpoint, tmp_path):
    """ModelOpt always writes opset >= 19; a device that parses opset 17 (benchmarks.run passes its profile's
    max_opset) must get onnxruntime's file, whatever the agreement says."""
    result = int8.export(tiny_checkpoint["ckpt_int8"], tmp_path, "int8", calib=tiny_checkpoint["calib"], batch=None,
                         quantizer="auto", opset=17)
    assert result.status == "ok" and result.path is not None, result.message
    assert int8.file_opset(result.path) <= 17 and result.extra["quantizer"] == "onnxruntime.quantize_static"
    assert "opset 19 > 17, not a candidate" in result.message
    (made,) = tmp_path.glob("*_modelopt.onnx")  # it was made, and left out
    assert int8.file_opset(made) >= 19


def test_fragile_node_selection(tiny_checkpoint, tmp_path):
    import onnx
    fp32 = onnx_export.export(tiny_checkpoint["ckpt"], tmp_path, "fp32", batch=None, verify_samples=4)
    proto = onnx.load(str(fp32.path))
    by_name = {n.name: n for n in proto.graph.node}
    attention = int8.fragile_nodes(proto, "attention")
    fragile = int8.fragile_nodes(proto, "fragile")
    assert int8.fragile_nodes(proto, "none") == []
    assert attention and set(attention) < set(fragile)
    assert all("/attention/" in n and by_name[n].op_type in ("MatMul", "Div") for n in attention)
    kinds = {by_name[n].op_type for n in fragile}
    assert {"MatMul", "BatchNormalization"} <= kinds
    assert not any(by_name[n].op_type == "Conv" for n in fragile)  # convolutions are what INT8 is for
    block = int8.fragile_nodes(proto, "attention-block")
    assert set(fragile) < set(block) and all("/attention/" in n for n in set(block) - set(fragile))
    assert any(by_name[n].op_type == "Conv" for n in block)  # the attention's qkv/proj convs stay float too
    with pytest.raises(ValueError, match="--keep-float"):
        int8.fragile_nodes(proto, "everything")


# ----------------------------------------------------------------------------------------------------------
# Multi-stream models: the velocity/bone streams are derived inside the graph from the joint input

JVB = ("joint", "velocity", "bone")


@pytest.fixture(scope="module")
def jvb(tiny_checkpoint):
    """A joint+velocity+bone test model (its own checkpoint; the calibration clips are the shared ones)."""
    from conftest import build_tiny_checkpoint
    ckpt = build_tiny_checkpoint(tiny_checkpoint["root"] / "tiny_jvb.pt", branch_gain=0.0, streams=JVB)
    return {"ckpt": ckpt, "calib": tiny_checkpoint["calib"]}


def test_holdout_split_is_disjoint_and_stratified():
    from converters.calib import holdout_split
    labels = np.repeat(np.arange(5), [30, 20, 10, 5, 2])
    cal, held = holdout_split(labels, 0.2, seed=0)
    assert len(np.intersect1d(cal, held)) == 0
    assert np.array_equal(np.sort(np.concatenate([cal, held])), np.arange(len(labels)))
    assert len(held) == round(0.2 * len(labels))
    assert set(labels[held]) == set(labels)  # every class is verified
    assert np.array_equal(held, holdout_split(labels, 0.2, seed=0)[1])  # deterministic
    with pytest.raises(ValueError, match="--holdout"):
        holdout_split(labels, 1.0)


def test_verification_clips_are_not_calibration_clips(tiny_checkpoint):
    from converters.calib import load_calibration_set, quantization_clips
    from core.checkpoint import load_checkpoint
    clips = quantization_clips(tiny_checkpoint["calib"], load_checkpoint(tiny_checkpoint["ckpt"]), holdout=0.25)
    total = len(load_calibration_set(tiny_checkpoint["calib"])["x"])
    assert len(clips.calibrate) + len(clips.verify) == total
    assert len(clips.verify) == round(0.25 * total)
    assert not set(clips.calibrate_names) & set(clips.verify_names)
    # no held-out clip is also, by value, a calibration clip
    flat_cal = clips.calibrate.reshape(len(clips.calibrate), -1)
    for v in clips.verify.reshape(len(clips.verify), -1):
        assert not np.any(np.all(flat_cal == v, axis=1))
    assert "held-out" in clips.verified_on and "not used for calibration" in clips.verified_on


def test_stream_derivation_stays_float(jvb, tmp_path):
    import onnx
    fp32 = onnx_export.export(jvb["ckpt"], tmp_path, "fp32", batch=None, verify_samples=4)
    proto = onnx.load(str(fp32.path))
    by_name = {n.name: n for n in proto.graph.node}
    stream = int8.stream_input_nodes(proto)
    kinds = {by_name[n].op_type for n in stream}
    # the velocity difference, the bone MatMul and each stream's data BatchNorm; never a convolution
    assert {"Sub", "MatMul", "BatchNormalization"} <= kinds and "Conv" not in kinds
    assert sum(by_name[n].op_type == "BatchNormalization" for n in stream) == len(JVB)

    result = int8.export(jvb["ckpt"], tmp_path, "int8", calib=jvb["calib"], batch=None, quantizer="ort",
                         fp32_onnx=fp32.path)
    q = onnx.load(str(result.path)).graph
    producer = {o: n.op_type for n in q.node for o in n.output}
    sub = next(n for n in q.node if n.op_type == "Sub")
    assert all(producer.get(i) != "DequantizeLinear" for i in sub.input)  # velocity from float joints
    first_convs = [n for n in q.node if n.op_type == "Conv" and n.name.startswith("/stem/")]
    assert len(first_convs) == len(JVB)
    assert all(producer.get(n.input[0]) == "DequantizeLinear" for n in first_convs)  # each stream quantized
    assert result.extra["stream_nodes"] == len(stream) and "held-out" in result.extra["verified_on"]

    # compute placement (the default): Q/DQ only in front of the ops with INT8 kernels, as TensorRT places them
    consumers = {}
    for n in q.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    # every quantized activation feeds a Conv/MatMul/Gemm (its other readers see the same DQ output)
    quantize = [n for n in q.node if n.op_type == "QuantizeLinear"]
    assert quantize
    for node in quantize:
        readers = [r for dq in consumers[node.output[0]] for r in consumers.get(dq.output[0], [])]
        assert {r.op_type for r in readers} & set(int8.COMPUTE_OPS), (node.input[0], [r.op_type for r in readers])
    everywhere = int8.export(jvb["ckpt"], tmp_path / "all", "int8", calib=jvb["calib"], batch=None, quantizer="ort",
                             fp32_onnx=fp32.path, ort_placement="all")
    assert everywhere.extra["QuantizeLinear"] > result.extra["QuantizeLinear"]  # every Add/Concat/ReLU too
    with pytest.raises(ValueError, match="--percentile"):
        int8.export(jvb["ckpt"], tmp_path, "int8", calib=jvb["calib"], batch=None, quantizer="ort",
                    fp32_onnx=fp32.path, percentile=101.0)


@pytest.mark.slow  # one INT8 export of the tiny multi-stream model
def test_multistream_qdq_keeps_predictions_on_unseen_clips(jvb, tmp_path, held_out):
    from core.evaluation import torch_logits
    from core.checkpoint import load_model
    model, _ = load_model(jvb["ckpt"])
    x, labels = held_out()  # another seed: clips neither calibration nor its held-back part contain
    ref = torch_logits(model, x)
    result = int8.export(jvb["ckpt"], tmp_path, "int8", calib=jvb["calib"], batch=None, quantizer="ort")
    assert result.status == "ok", result.message
    q = load_runtime(result.path).predict(x)
    assert not np.allclose(ref, q)  # it really is quantized
    agreement = float(np.mean(ref.argmax(1) == q.argmax(1)))
    assert agreement >= 0.95, agreement
    acc_fp32, acc_int8 = float(np.mean(ref.argmax(1) == labels)), float(np.mean(q.argmax(1) == labels))
    assert abs(acc_fp32 - acc_int8) <= 0.05, (acc_fp32, acc_int8)  # 48 clips: 1 clip = 2 points
