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


class InputError(EdgeError, ValueError):
    """A frame, timestamp or skeleton passed to ActionRecognizer that it cannot use; the message says what was
    passed and what is expected. Also a ValueError, so code written against the first API keeps working."""


class FrameError(InputError):
    """None, an empty image, a float image or an image of a shape that is not a picture."""


class TimestampError(InputError):
    """A timestamp that is not a finite number, or that does not increase."""


class SkeletonInputError(InputError):
    """Skeletons (SKELETONS mode) that are not numbers of the layout's shape."""


class CallbackError(EdgeError):
    """`result_callback` raised on the pipeline's thread. It is raised in the caller's thread by the next
    recognize_async(), flush() or close(); the callback's own exception is its __cause__."""

    exit_code = 1


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
