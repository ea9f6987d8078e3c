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
    with pytest.raises(ValueError, match="--keep-float"):
        int8.fragile_nodes(proto, "everything")
