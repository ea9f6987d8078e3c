"""One inference interface for every artifact the toolkit produces, chosen by the file suffix.

    rt = load_runtime("runs/export/best/best_int8.onnx", threads=2)
    logits = rt.predict(x)          # x: (N, C, T, V, M) float32 -> (N, K) float32
    rt.class_names, rt.spec, rt.metadata, rt.name

Backends are imported only when a file of their kind is loaded, so the edge loop and the scoring code
need nothing but the backend of the artifact they actually run:

    .pt / .pth          PyTorch checkpoint (torch.load weights_only=True, via core.checkpoint)
    .onnx               onnxruntime (fp32 or Q/DQ INT8), denormals flushed to zero
    .engine/.plan/.trt  TensorRT 10/11 Python API (+ CUDA through torch)
    .tflite             ai-edge-litert Interpreter (integer I/O is quantised/dequantised here)
    .mlpackage/.mlmodel coremltools on macOS; elsewhere core.mil_eval, a numpy evaluator of the ML Program
                        (numbers only: its speed says nothing about CoreML's)

Runtimes are context managers (`with load_runtime(p) as rt:`); `close()` frees the session, `warmup()` runs
a few zero batches. A runtime changes no process-wide setting beyond its own calls (torch's thread count and
denormal flag are set around each call and restored).
"""
from __future__ import annotations

import importlib
import importlib.util
import platform
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from core.artifact import INPUT_NAME, OUTPUT_NAME, artifact_metadata, read_artifact_metadata
from core.data.streams import StreamInputStage
from core.mil_eval import load as load_mil_program
from core.spec import InputSpec


class BackendMissing(RuntimeError):
    """An optional backend (onnxruntime, TensorRT, LiteRT, coremltools, ...) is not installed or cannot run
    here; the message says what to install or where it runs."""


def require(module: str, pip_hint: str) -> ModuleType:
    """Import `module` lazily; raise BackendMissing with the install command if it is not there."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise BackendMissing(f"{module} is not installed ({exc}); install it with: {pip_hint}") from exc


@dataclass(frozen=True)
class Backend:
    """An optional package the toolkit runs or converts with: the modules it needs, how to install them, and the
    operating system it is limited to (CoreML predictions: macOS)."""

    modules: tuple[str, ...]
    install: str
    system: str | None = None


# The one place that knows which backends exist and whether one is here: the runtimes below, the converters'
# toolchains, the benchmark's "runs here?" column and the tests' skip markers all ask it.
BACKENDS: dict[str, Backend] = {
    # runtimes (Runtime.name of the classes below)
    "pytorch": Backend(("torch",), "pip install torch"),
    "onnxruntime": Backend(("onnxruntime",), "pip install onnxruntime"),
    "tensorrt": Backend(("tensorrt",), "pip install tensorrt on an NVIDIA GPU machine (or 'last-edge[trt]'; a Jetson: "
                                       "JetPack's TensorRT)"),
    "litert": Backend(("ai_edge_litert",), "pip install ai-edge-litert"),
    "coreml": Backend(("coremltools",), "pip install 'last-edge[coreml]'", system="Darwin"),
    # toolchains of the converters and the edge loop
    "litert-torch": Backend(("litert_torch", "ai_edge_litert", "ai_edge_quantizer"), "pip install 'last-edge[tflite]'"),
    "coremltools": Backend(("coremltools",), "pip install 'last-edge[coreml]'"),
    "modelopt": Backend(("modelopt",), "pip install 'last-edge[int8]'"),
    "mediapipe": Backend(("mediapipe", "cv2"), "pip install 'last-edge[edge]'"),
    "opencv": Backend(("cv2",), "pip install 'last-edge[edge]' (OpenCV comes with MediaPipe)"),
}


def backend_missing(name: str) -> str:
    """Why a backend cannot run here ('' when it can): the missing modules and the install command, or the
    operating system it needs. Nothing is imported (a module's presence is asked of the import system)."""
    if name not in BACKENDS:
        raise KeyError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")
    backend = BACKENDS[name]
    if backend.system and platform.system() != backend.system:
        return f"{name} needs {backend.system.replace('Darwin', 'macOS')} (this is {platform.system()})"
    missing = [m for m in backend.modules if importlib.util.find_spec(m) is None]
    return f"{name} is not installed here (no {', '.join(missing)}): {backend.install}" if missing else ""


def backend_available(name: str) -> bool:
    return not backend_missing(name)


ONNX_SUFFIXES = (".onnx",)
TORCH_SUFFIXES = (".pt", ".pth")
TRT_SUFFIXES = (".engine", ".plan", ".trt")
TFLITE_SUFFIXES = (".tflite",)
COREML_SUFFIXES = (".mlpackage", ".mlmodel")


class Runtime(ABC):
    """A loaded model: metadata from the artifact, predict() on preprocessed clips (N, C, T, V, M)."""

    name: str = "runtime"

    def __init__(self, path: str | Path, metadata: dict[str, Any]):
        self.path = Path(path)
        self.metadata = metadata
        shape = metadata.get("input_shape") or [None]
        # a fixed batch (TFLite, CoreML, fixed-shape engines) is served in chunks, padded with zeros
        self.batch: int | None = int(shape[0]) if shape[0] else None

    @property
    def class_names(self) -> list[str]:
        return list(self.metadata["class_names"])

    @property
    def num_classes(self) -> int:
        return len(self.metadata["class_names"])

    @property
    def spec(self) -> InputSpec:
        return InputSpec.from_dict(self.metadata["input_spec"])

    @property
    def input_shape(self) -> list[int | None]:
        return list(self.metadata["input_shape"])

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Logits (N, K) float32 for preprocessed clips x (N, C, T, V, M) (a single (C, T, V, M) clip works too)."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == 4:
            x = x[None]
        expected = self.input_shape[1:]
        if x.ndim != 5 or list(x.shape[1:]) != expected:
            raise ValueError(f"{self.path.name}: input must be (N, {', '.join(map(str, expected))}) = (N, C, T, V, M), "
                             f"got {tuple(x.shape)}")
        x = np.ascontiguousarray(x)
        if self.batch is None or x.shape[0] == self.batch:
            return np.asarray(self._run(x), dtype=np.float32).reshape(x.shape[0], -1)
        outs = []
        for start in range(0, x.shape[0], self.batch):
            chunk = x[start:start + self.batch]
            real = chunk.shape[0]
            if real < self.batch:
                chunk = np.concatenate([chunk, np.zeros((self.batch - real,) + chunk.shape[1:], np.float32)])
            outs.append(np.asarray(self._run(chunk), dtype=np.float32).reshape(self.batch, -1)[:real])
        return np.concatenate(outs, axis=0)

    @abstractmethod
    def _run(self, x: np.ndarray) -> np.ndarray:
        """Logits for exactly one batch of the artifact's batch size (any size if it is dynamic)."""

    def warmup(self, runs: int = 3) -> "Runtime":
        """Run a few zero batches so lazy initialisation (allocations, kernel selection) is out of the timings."""
        x = np.zeros([self.batch or 1, *self.input_shape[1:]], np.float32)
        for _ in range(runs):
            self.predict(x)
        return self

    def close(self) -> None:
        """Release the backend's session / interpreter / engine (the object cannot predict afterwards)."""

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path.name!r}, batch={self.batch}, classes={self.num_classes})"


class TorchRuntime(Runtime):
    name = "pytorch"

    def __init__(self, path: str | Path, threads: int | None = None):
        import torch  # the PyTorch backend: an edge device running exported artifacts needs no torch

        from core.checkpoint import load_model
        self.model, ckpt = load_model(path)
        super().__init__(path, artifact_metadata(ckpt, "pytorch", "fp32", batch=None))
        self.threads = threads
        self._torch = torch

    def _run(self, x: np.ndarray) -> np.ndarray:
        torch = self._torch
        threads = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        # subnormal activations are 15x slower on x86 (backends notes); the flag is process-wide, so only
        # for the duration of this call (torch has no getter: its default, off, is restored)
        torch.set_flush_denormal(True)
        try:
            with torch.inference_mode():
                return self.model(torch.from_numpy(x)).numpy()
        finally:
            torch.set_flush_denormal(False)
            torch.set_num_threads(threads)

    def close(self) -> None:
        self.model = None


def denormals_flushed() -> bool:
    """Whether this thread flushes subnormal floats to zero (FTZ/DAZ): a subnormal times one comes out zero."""
    tiny = np.array([1e-39], dtype=np.float32)
    return float((tiny * np.float32(1.0))[0]) == 0.0


class OnnxRuntime(Runtime):
    name = "onnxruntime"

    def __init__(self, path: str | Path, threads: int | None = None, providers: list[str] | None = None,
                 spinning: bool | None = None):
        ort = require("onnxruntime", BACKENDS["onnxruntime"].install)
        super().__init__(path, read_artifact_metadata(path))
        opts = ort.SessionOptions()
        opts.add_session_config_entry("session.set_denormal_as_zero", "1")
        if spinning is not None:  # idle worker threads spin by default: fastest alone, unfair to neighbours
            opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=providers or ["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        dim0 = self.session.get_inputs()[0].shape[0]
        self.batch = dim0 if isinstance(dim0, int) else None  # the graph is the truth, not the sidecar

    def _run(self, x: np.ndarray) -> np.ndarray:
        flushed = denormals_flushed()
        try:
            return self.session.run([self.output_name], {self.input_name: x})[0]
        finally:
            # onnxruntime sets FTZ/DAZ on the calling thread too: give the caller its state back, through torch
            # where the caller has it (an edge process running exported files needs no torch, and loads none)
            torch = sys.modules.get("torch")
            if not flushed and torch is not None:
                torch.set_flush_denormal(False)

    def close(self) -> None:
        self.session = None


class TFLiteRuntime(Runtime):
    """A .tflite file in the LiteRT interpreter. Integer input / output is quantized / dequantized here with the
    tensors' own scale and zero point; a full-integer file's float input stage (stream derivation and
    normalisation, metadata 'input_stage') runs first, so callers always pass float32 joints."""

    name = "litert"

    def __init__(self, path: str | Path, threads: int | None = None, metadata: dict[str, Any] | None = None):
        litert = require("ai_edge_litert.interpreter", BACKENDS["litert"].install)
        super().__init__(path, read_artifact_metadata(path) if metadata is None else metadata)
        stage = self.metadata.get("input_stage")
        self.input_stage = StreamInputStage.from_dict(stage) if stage else None
        self.interpreter = litert.Interpreter(model_path=str(path), num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input_detail = self.interpreter.get_input_details()[0]
        self.output_detail = self.interpreter.get_output_details()[0]
        self.batch = int(self.input_detail["shape"][0])
        self.input_dtype = np.dtype(self.input_detail["dtype"])
        self.output_dtype = np.dtype(self.output_detail["dtype"])

    @staticmethod
    def _quant(detail: dict[str, Any]) -> tuple[float, int]:
        scale, zero = detail.get("quantization", (0.0, 0))
        return float(scale), int(zero)

    def _run(self, x: np.ndarray) -> np.ndarray:
        if self.input_stage is not None:
            x = self.input_stage(x)
        if self.input_dtype.kind in "iu":  # full-integer model: quantise the float input ourselves
            scale, zero = self._quant(self.input_detail)
            info = np.iinfo(self.input_dtype)
            x = np.clip(np.round(x / scale) + zero, info.min, info.max).astype(self.input_dtype)
        else:
            x = x.astype(self.input_dtype)
        self.interpreter.set_tensor(self.input_detail["index"], x)
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self.output_detail["index"])
        if self.output_dtype.kind in "iu":
            scale, zero = self._quant(self.output_detail)
            out = (out.astype(np.float32) - zero) * scale
        return out.astype(np.float32)

    def close(self) -> None:
        self.interpreter = None


class CoreMLRuntime(Runtime):
    name = "coreml"

    def __init__(self, path: str | Path, threads: int | None = None):
        if platform.system() != "Darwin":
            raise BackendMissing(f"{Path(path).name}: CoreML prediction needs macOS (this is {platform.system()}); "
                                 "run it on a Mac, or check the exported spec here with coremltools "
                                 "(MLModel(path, skip_model_load=True))")
        ct = require("coremltools", BACKENDS["coreml"].install)
        super().__init__(path, read_artifact_metadata(path))
        self.model = ct.models.MLModel(str(path))
        spec = self.model.get_spec()
        self.input_name = spec.description.input[0].name if spec.description.input else INPUT_NAME
        self.output_name = spec.description.output[0].name if spec.description.output else OUTPUT_NAME

    def _run(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict({self.input_name: x})[self.output_name])

    def close(self) -> None:
        self.model = None


class MILEvalRuntime(Runtime):
    """A CoreML ML Program evaluated op by op in numpy (core.mil_eval): the `.mlpackage` runtime off macOS.
    It checks numbers (fp16 rounding, weight quantisation, overflow); its speed says nothing about CoreML's."""

    name = "numpy MIL evaluator"

    def __init__(self, path: str | Path, threads: int | None = None):
        super().__init__(path, read_artifact_metadata(path))
        self.program = load_mil_program(path)
        self.batch = int(self.program.inputs[self.program.input_name][0][0])

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self.program.predict(x)

    def close(self) -> None:
        self.program = None


class TensorRTRuntime(Runtime):
    """A serialized TensorRT engine (TensorRT 10/11 tensor API); device memory through torch.cuda."""

    name = "tensorrt"

    def __init__(self, path: str | Path, threads: int | None = None):
        trt = require("tensorrt", BACKENDS["tensorrt"].install)
        torch = require("torch", "pip install torch")
        if not torch.cuda.is_available():
            raise BackendMissing(f"{Path(path).name}: running a TensorRT engine needs a CUDA GPU and a CUDA build of "
                                 "torch (Jetson: NVIDIA's torch wheel for your JetPack)")
        super().__init__(path, read_artifact_metadata(path))
        self._trt, self._torch = trt, torch
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.engine = trt.Runtime(self.logger).deserialize_cuda_engine(Path(path).read_bytes())
        if self.engine is None:
            raise RuntimeError(f"{path}: TensorRT could not deserialize the engine (built with another TensorRT "
                               "version or for another GPU? rebuild it on this device with python -m converters.trt)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.input_name, self.output_name = inputs[0], outputs[0]
        dim0 = self.engine.get_tensor_shape(self.input_name)[0]
        self.batch = None if dim0 < 0 else int(dim0)
        self.stream = torch.cuda.Stream()

    def _run(self, x: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.cuda.stream(self.stream):
            inp = torch.from_numpy(x).cuda()
            self.context.set_input_shape(self.input_name, tuple(inp.shape))
            out_shape = tuple(self.context.get_tensor_shape(self.output_name))
            out = torch.empty(out_shape, dtype=torch.float32, device="cuda")
            self.context.set_tensor_address(self.input_name, inp.data_ptr())
            self.context.set_tensor_address(self.output_name, out.data_ptr())
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError(f"{self.path}: TensorRT execution failed")
        self.stream.synchronize()
        return out.cpu().numpy()

    def close(self) -> None:
        self.context = None
        self.engine = None


# one registry: suffix -> runtime class (CoreML packages fall back to the numpy evaluator off macOS)
RUNTIMES: dict[str, type[Runtime]] = {
    **{sfx: TorchRuntime for sfx in TORCH_SUFFIXES},
    **{sfx: OnnxRuntime for sfx in ONNX_SUFFIXES},
    **{sfx: TensorRTRuntime for sfx in TRT_SUFFIXES},
    **{sfx: TFLiteRuntime for sfx in TFLITE_SUFFIXES},
    **{sfx: CoreMLRuntime for sfx in COREML_SUFFIXES},
}


def runtime_class(path: str | Path) -> type[Runtime]:
    """The runtime class for a file, from its suffix; ValueError naming the file otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix not in RUNTIMES:
        raise ValueError(f"{path}: unknown model file type {suffix!r}; expected one of {', '.join(RUNTIMES)}")
    cls = RUNTIMES[suffix]
    if cls is CoreMLRuntime and platform.system() != "Darwin" and suffix == ".mlpackage":
        return MILEvalRuntime
    return cls


def runtime_kind(path: str | Path) -> str:
    """'pytorch' | 'onnxruntime' | 'tensorrt' | 'litert' | 'coreml' from the file suffix."""
    cls = RUNTIMES.get(Path(path).suffix.lower()) or runtime_class(path)
    return cls.name


def load_runtime(path: str | Path, threads: int | None = None, **opts: Any) -> Runtime:
    """Load any toolkit artifact or checkpoint for inference; the backend follows from the suffix.

    threads: CPU threads for the backend (None: its default). opts: backend specific (onnxruntime: providers,
    spinning=False so idle worker threads do not busy-wait, e.g. when several runtimes share the CPU)."""
    cls = runtime_class(path)
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: model file not found")
    return cls(path, threads, **opts)  # an opened core.checkpoint.Checkpoint goes through as it is, read once
