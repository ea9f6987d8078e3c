"""Backend markers for the tests (as mmdeploy's `backend_checker`): a backend test module starts with
`pytestmark = require_backend("coreml")` (skips the module with the install hint when the backend is absent, and
marks its tests `coreml`), a single test takes `@backend_checker("tensorrt")`, and code that branches on a backend
asks `backend_available("tensorrt")`. `pytest -m "not tflite"` deselects by backend. Whether a backend is here is
asked of core.runtime's registry, the one the runtimes and the benchmark ask."""
from __future__ import annotations

import pytest

from core import runtime

# test marker -> the registry's backend (a converter test needs the toolchain, not a Mac to run CoreML on)
MARKERS: dict[str, str] = {"onnxruntime": "onnxruntime", "tensorrt": "tensorrt", "modelopt": "modelopt",
                           "tflite": "litert-torch", "coreml": "coremltools", "mediapipe": "mediapipe",
                           "opencv": "opencv"}


def backend_available(marker: str) -> bool:
    return runtime.backend_available(MARKERS[marker])


def skip_reason(marker: str) -> str:
    return runtime.backend_missing(MARKERS[marker])


class _Marks(list):
    """A list of marks that also works as one decorator (and as a module's `pytestmark`)."""

    def __call__(self, test):
        for mark in self:
            test = mark(test)
        return test


def backend_checker(marker: str) -> _Marks:
    """The backend's marker plus a skip (with the install hint) when it is not installed."""
    reason = skip_reason(marker)
    return _Marks([getattr(pytest.mark, marker), pytest.mark.skipif(bool(reason), reason=reason)])


def require_backend(marker: str) -> _Marks:
    """At a module's top: skip the whole module when the backend is absent (its imports would fail), else
    return the marks for `pytestmark`."""
    if not backend_available(marker):
        pytest.skip(skip_reason(marker), allow_module_level=True)
    return backend_checker(marker)
