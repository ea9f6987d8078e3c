"""What ActionRecognizer accepts as a frame, a timestamp and skeletons, checked before any work is done, so a bad
input gets one of the named errors of edge.errors (FrameError, TimestampError, SkeletonInputError; all EdgeError
and ValueError) instead of an OpenCV, MediaPipe or numpy internal, and a call that raised can be retried.

Sensible results where there is one: a grayscale (H, W) / (H, W, 1) frame is converted to BGR and a BGRA frame
loses its alpha; a skeleton joint with a NaN, infinite or absurd (> 1e6) coordinate is a *missing* joint
(coordinates and visibility 0), never a missing person or a body far away; a long pause between timestamps is
allowed (the person's window resets after `reset_s`)."""
from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from edge.errors import FrameError, SkeletonInputError, TimestampError

MAX_COORDINATE = 1e6  # beyond this a coordinate is not a body in metres or normalised pixels
MAX_TIMESTAMP_MS = 9e15  # MediaPipe keeps microseconds in an int64


def check_timestamp(timestamp_ms: Any, last_ms: float | None, minimum: float | None = None) -> float:
    """The timestamp as a float in ms: a finite real number (not a bool), above `last_ms` and `minimum`."""
    if isinstance(timestamp_ms, (bool, np.bool_)) or not isinstance(timestamp_ms, numbers.Real):
        raise TimestampError(f"timestamp_ms must be a number of milliseconds, got {type(timestamp_ms).__name__} "
                             f"{timestamp_ms!r:.40}")
    t = float(timestamp_ms)
    if not math.isfinite(t) or abs(t) > MAX_TIMESTAMP_MS:
        raise TimestampError(f"timestamp_ms must be a finite number of milliseconds (|t| <= {MAX_TIMESTAMP_MS:g}), "
                             f"got {t}")
    if minimum is not None and t < minimum:
        raise TimestampError(f"timestamp_ms must be >= {minimum:g} for the pose estimator, got {t:g}")
    if last_ms is not None and t <= last_ms:
        raise TimestampError(f"timestamps must increase: got {t:g} ms after {last_ms:g} ms")
    return t


def _is_mediapipe_image(frame: Any) -> bool:
    return type(frame).__module__.startswith("mediapipe") and type(frame).__name__ == "Image"


def check_frame(frame: Any) -> Any:
    """A BGR uint8 (H, W, 3) image for the pose estimator (a mediapipe.Image passes as it is)."""
    if frame is None:
        raise FrameError("frame is None: the camera or video gave no image (check what read() returned)")
    if _is_mediapipe_image(frame):
        return frame
    try:
        image = np.asarray(frame)
    except Exception as exc:  # objects numpy cannot turn into an array
        raise FrameError(f"frame of type {type(frame).__name__} is not an image ({exc})") from None
    if image.dtype.kind not in "biuf":
        raise FrameError(f"frame of dtype {image.dtype} ({type(frame).__name__}) is not an image: expected uint8 BGR "
                         "(H, W, 3) as OpenCV decodes it")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise FrameError(f"frame of shape {image.shape}: expected (H, W, 3) BGR, (H, W) gray or (H, W, 4) BGRA")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise FrameError(f"frame of shape {image.shape} is empty (no pixels)")
    if image.dtype != np.uint8:
        hint = (" (a float image in [0, 1]: (frame * 255).clip(0, 255).astype(np.uint8))"
                if image.dtype.kind == "f" else "")
        raise FrameError(f"frame of dtype {image.dtype}: expected uint8 BGR as OpenCV decodes it{hint}")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    elif image.shape[2] == 4:
        image = image[..., :3]
    return np.ascontiguousarray(image)


def check_skeletons(skeletons: Any, joints: int, channels: int, layout: str) -> list[np.ndarray]:
    """(P, V, C) skeletons (or one (V, C) skeleton, or a list of them) -> one float32 (V, C) array per person;
    None or an empty array is nobody. Non-finite or absurd joints become missing joints (all channels 0)."""
    if skeletons is None:
        return []
    try:
        raw = np.asarray(skeletons)
    except (ValueError, TypeError) as exc:  # ragged lists
        raise SkeletonInputError(f"skeletons must be a (P, {joints}, C) array of numbers ({exc})") from None
    if raw.size == 0:
        return []
    if raw.dtype.kind not in "biuf":
        raise SkeletonInputError(f"skeletons of dtype {raw.dtype}: expected numbers shaped (P, {joints}, C)")
    people = raw.astype(np.float64)
    if people.ndim == 2:
        people = people[None]  # one person
    if people.ndim != 3 or people.shape[1] != joints or people.shape[2] < channels:
        raise SkeletonInputError(f"a skeleton of layout {layout} must be ({joints}, >={channels}), got "
                                 f"{tuple(raw.shape[-2:]) if raw.ndim >= 2 else raw.shape} (skeletons {raw.shape})")
    coords = people[..., :min(3, people.shape[2])]
    missing = ~np.isfinite(coords).all(-1) | (np.abs(np.nan_to_num(coords)) > MAX_COORDINATE).any(-1)
    people[missing] = 0.0
    people = np.nan_to_num(people, nan=0.0, posinf=0.0, neginf=0.0)  # e.g. a NaN visibility: not visible
    return [p.astype(np.float32) for p in people]
