"""Errors the edge loop reports as one clear line (never a traceback), and a guard against native libraries
printing their own multi-line logs to the console."""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator


class EdgeError(RuntimeError):
    """A problem with an input of the edge loop (camera, video, skeleton file, pose model, model/layout).
    exit_code follows core.cli: 2 bad input (the default), 3 a backend missing here."""

    exit_code = 2


class EdgeBackendMissing(EdgeError):
    """mediapipe or OpenCV is not installed; the message says what to install."""

    exit_code = 3


class SourceError(EdgeError):
    """A camera, video or skeleton file that cannot be opened or read."""


class PoseModelError(EdgeError):
    """The MediaPipe pose model cannot be found, fetched or verified; the message says where to put it."""


@contextmanager
def native_stderr_silenced(enabled: bool = True) -> Iterator[None]:
    """Silence C++ log lines written straight to file descriptor 2 (MediaPipe/TFLite start-up chatter such
    as 'Created TensorFlow Lite XNNPACK delegate', OpenCV's V4L2 warnings); Python exceptions still carry
    the real errors."""
    try:
        fd = sys.stderr.fileno() if enabled else -1
    except (AttributeError, OSError, ValueError):  # a replaced stderr (pytest capture, notebooks)
        fd = -1
    if fd < 0:
        yield
        return
    sys.stderr.flush()
    saved, devnull = os.dup(fd), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    try:
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)
