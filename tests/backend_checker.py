"""One backend-availability check for the tests (as mmdeploy's `backend_checker`): a backend test module
starts with `pytestmark = require_backend("coreml")` (skips the module with the install hint when the backend
is absent, and marks its tests `coreml`), a single test takes `@backend_checker("tensorrt")`, and code that
branches on a backend asks `backend_available("tensorrt")`. `pytest -m "not tflite"` deselects by backend."""
from __future__ import annotations

import importlib.util

import pytest

# backend marker -> (the modules it needs, where it comes from)
BACKENDS: dict[str, tuple[tuple[str, ...], str]] = {
    "onnxruntime": (("onnxruntime",), "pip install -e ."),
    "tensorrt": (("tensorrt",), "an NVIDIA GPU machine: pip install -e '.[trt]' (or JetPack)"),
    "modelopt": (("modelopt",), "pip install -e '.[int8]'"),
    "tflite": (("litert_torch", "ai_edge_litert", "ai_edge_quantizer"), "pip install -e '.[tflite]'"),
    "coreml": (("coremltools",), "pip install -e '.[coreml]'"),
    "mediapipe": (("mediapipe", "cv2"), "pip install -e '.[edge]'"),
    "opencv": (("cv2",), "pip install -e '.[edge]' (opencv comes with mediapipe)"),
}


def missing_modules(backend: str) -> list[str]:
    if backend not in BACKENDS:
        raise KeyError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    return [m for m in BACKENDS[backend][0] if importlib.util.find_spec(m) is None]


def backend_available(backend: str) -> bool:
    return not missing_modules(backend)


def skip_reason(backend: str) -> str:
    return f"{backend} not installed here (no {', '.join(missing_modules(backend))}): {BACKENDS[backend][1]}"


class _Marks(list):
    """A list of marks that also works as one decorator (and as a module's `pytestmark`)."""

    def __call__(self, test):
        for mark in self:
            test = mark(test)
        return test


def backend_checker(backend: str) -> _Marks:
    """The backend's marker plus a skip (with the install hint) when it is not installed."""
    available = backend_available(backend)
    return _Marks([getattr(pytest.mark, backend),
                   pytest.mark.skipif(not available, reason=skip_reason(backend) if not available else "")])


def require_backend(backend: str) -> _Marks:
    """At a module's top: skip the whole module when the backend is absent (its imports would fail), else
    return the marks for `pytestmark`."""
    if not backend_available(backend):
        pytest.skip(skip_reason(backend), allow_module_level=True)
    return backend_checker(backend)
