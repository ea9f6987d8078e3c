"""core.runtime: one interface over checkpoints and artifacts, chosen by the suffix, with clear errors."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from converters import onnx as onnx_export
from core.mil_eval import MILEvalError
from core.runtime import BackendMissing, MILEvalRuntime, TFLiteRuntime, load_runtime, runtime_class, runtime_kind
from backend_checker import backend_available
from tolerances import float32_logit_tolerance



def test_checkpoint_and_onnx_runtimes_agree(tiny_checkpoint, tmp_path, held_out):
    pt = load_runtime(tiny_checkpoint["ckpt"])
    res = onnx_export.export(tiny_checkpoint["ckpt"], tmp_path, "fp32", batch=None, verify_samples=4)
    ort = load_runtime(res.path, threads=1, spinning=False)
    assert pt.name == "pytorch" and ort.name == "onnxruntime"
    assert pt.class_names == ort.class_names and len(pt.class_names) == 8
    assert pt.spec == ort.spec and pt.spec.frames == 16
    x, _ = held_out(per_class=1)
    ref = pt.predict(x)
    assert np.abs(ref - ort.predict(x)).max() <= float32_logit_tolerance(pt.model, x.shape[2], ref)
    assert pt.predict(x[0]).shape == (1, 8)  # a single (C, T, V, M) clip
    with pytest.raises(ValueError, match=r"\(N, C, T, V, M\)"):
        ort.predict(x[:, :, :8])


def test_suffix_dispatch_and_clear_errors(tmp_path):
    assert [runtime_kind(p) for p in ("a.pt", "a.onnx", "a.engine", "a.tflite", "a.mlpackage")] == \
        ["pytorch", "onnxruntime", "tensorrt", "litert", "coreml"]
    with pytest.raises(ValueError, match="unknown model file type '.bin'"):
        load_runtime(tmp_path / "model.bin")
    with pytest.raises(FileNotFoundError, match="absent.onnx: model file not found"):
        load_runtime(tmp_path / "absent.onnx")
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\0")
    if not backend_available("tensorrt"):
        with pytest.raises(BackendMissing, match="pip install tensorrt"):
            load_runtime(engine)
    package = tmp_path / "m.mlpackage"
    package.mkdir()
    if sys.platform != "darwin":  # off macOS a package runs in the numpy MIL evaluator, not CoreML
        assert runtime_class(package) is MILEvalRuntime
        with pytest.raises((FileNotFoundError, MILEvalError), match="m.mlpackage"):
            load_runtime(package)


class FakeInterpreter:
    """Stands in for the LiteRT interpreter to check the int8 I/O arithmetic (the real interpreter is
    exercised by the TFLite tests): it returns its int8 input, shifted, as the int8 output."""

    def __init__(self):
        self.tensors = {}

    def set_tensor(self, index, value):
        self.tensors[index] = value

    def invoke(self):
        self.tensors[1] = (self.tensors[0].reshape(len(self.tensors[0]), -1)[:, :2].astype(np.int16) + 3
                           ).clip(-128, 127).astype(np.int8)

    def get_tensor(self, index):
        return self.tensors[index]


def test_tflite_integer_io_is_quantized_and_dequantized():
    rt = TFLiteRuntime.__new__(TFLiteRuntime)
    rt.interpreter = FakeInterpreter()
    rt.input_detail = {"index": 0, "dtype": np.int8, "quantization": (0.05, -2)}
    rt.output_detail = {"index": 1, "dtype": np.int8, "quantization": (0.5, 1)}
    rt.input_dtype, rt.output_dtype = np.dtype(np.int8), np.dtype(np.int8)
    rt.input_stage = None  # a model that takes the joints as they are (no streams derived before quantizing)
    x = np.array([[0.0, 1.0, 100.0]], np.float32)  # 100.0 saturates at 127
    q_in = rt.interpreter.tensors
    out = rt._run(x)
    assert q_in[0].tolist() == [[-2, 18, 127]]  # round(x / 0.05) - 2, clipped
    assert np.allclose(out, (np.array([[-2 + 3, 18 + 3]]) - 1) * 0.5)
    assert out.dtype == np.float32


def test_runtime_imports_no_backend_eagerly():
    code = ("import sys, core.runtime, converters.common, converters.onnx, converters.int8, converters.trt, "
            "converters.calib; heavy = [m for m in ('onnxruntime', 'tensorrt', 'coremltools', 'ai_edge_litert', "
            "'onnxsim', 'cv2', 'mediapipe', 'modelopt') if m in sys.modules]; print(heavy); assert not heavy")
    import subprocess
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_runtimes_close_warm_up_and_leave_process_settings_alone(tiny_checkpoint, tmp_path, held_out):
    import torch

    threads_before = torch.get_num_threads()
    onnx_path = onnx_export.export(tiny_checkpoint["ckpt"], tmp_path, "fp32").path
    x = held_out(2, 5)[0]
    for path in (tiny_checkpoint["ckpt"], onnx_path):
        with load_runtime(path, threads=1) as rt:
            assert rt.warmup(2) is rt
            assert rt.predict(x).shape == (len(x), rt.num_classes)
        # the context manager released the session / model: the object cannot predict any more
        with pytest.raises(Exception):
            rt.predict(x)
    # a runtime with threads=1 must not leave the process at 1 thread, nor denormals flushed
    assert torch.get_num_threads() == threads_before
    tiny = torch.tensor([1e-40], dtype=torch.float32)
    assert (tiny * 1.0).item() != 0.0, "denormals are still flushed to zero after the runtime returned"
    with load_runtime(onnx_path) as rt:  # onnxruntime's own threads: its flush-to-zero must not stay on this one
        rt.predict(x)
    from core.runtime import denormals_flushed
    assert not denormals_flushed() and (tiny * 1.0).item() != 0.0
