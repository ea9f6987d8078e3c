"""The sliding window of the edge loop: a ring buffer of the last T frames with a policy for missing
detections (hold the last pose briefly, then mark frames missing, reset after a long gap), fed at the model's
training frame rate by a resampler, so a window is a duration whatever the source's frame rate."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class WindowPolicy:
    hold_frames: int = 5  # a lost person keeps their last pose this many frames (detector flicker)
    reset_after: int = 30  # a gap longer than this empties the window: the next action starts afresh
    min_valid: float = 0.75  # never classify a window with less than this fraction of real/held frames


class SkeletonWindow:
    """Ring buffer of (persons, joints, channels) frames; `clip()` returns them oldest first as (M, T, V, C).

    Fixed-size numpy storage: memory does not grow with the length of the run."""

    def __init__(self, size: int, persons: int, joints: int, channels: int, policy: WindowPolicy | None = None):
        if size < 1:
            raise ValueError(f"window size must be >= 1, got {size}")
        self.size, self.persons, self.joints, self.channels = size, persons, joints, channels
        self.policy = policy or WindowPolicy()
        self.buffer = np.zeros((size, persons, joints, channels), dtype=np.float32)
        self.valid = np.zeros(size, dtype=bool)
        self.reset()

    def reset(self) -> None:
        self.buffer[:] = 0
        self.valid[:] = False
        self.head = 0  # next slot to write
        self.filled = 0  # frames written since the last reset (capped at size)
        self.missing_streak = 0
        self.last_pose: np.ndarray | None = None
        self.resets = getattr(self, "resets", -1) + 1

    def push(self, persons: np.ndarray | None) -> str:
        """Add one frame: (M', V, C) tracked people (M' <= persons; all-zero rows mean 'not seen') or None
        when nobody was detected. Returns the frame's state: 'ok', 'held', 'missing' or 'reset'."""
        frame = np.zeros((self.persons, self.joints, self.channels), dtype=np.float32)
        seen = persons is not None and np.asarray(persons).size > 0 and bool(np.abs(persons).sum() > 0)
        if seen:
            persons = np.asarray(persons, dtype=np.float32)
            if persons.ndim == 2:
                persons = persons[None]
            if persons.shape[1:] != (self.joints, self.channels):
                raise ValueError(f"frame has shape {persons.shape[1:]} per person, the window holds "
                                 f"({self.joints}, {self.channels})")
            k = min(self.persons, persons.shape[0])
            frame[:k] = persons[:k]
            self.missing_streak = 0
            self.last_pose = frame
            state = "ok"
        else:
            self.missing_streak += 1
            if self.missing_streak > self.policy.reset_after:
                if self.valid.any():  # something real to forget
                    self.reset()
                    self.missing_streak = self.policy.reset_after + 1
                    return "reset"
                return "missing"
            if self.last_pose is not None and self.missing_streak <= self.policy.hold_frames:
                frame = self.last_pose
                state = "held"
            else:
                state = "missing"
        self.buffer[self.head] = frame
        self.valid[self.head] = state != "missing"
        self.head = (self.head + 1) % self.size
        self.filled = min(self.filled + 1, self.size)
        return state

    @property
    def full(self) -> bool:
        return self.filled >= self.size

    @property
    def valid_fraction(self) -> float:
        return float(self.valid.sum()) / self.size

    @property
    def ready(self) -> bool:
        """Full and mostly real: the only windows the loop classifies."""
        return self.full and self.valid_fraction >= self.policy.min_valid

    def clip(self) -> np.ndarray:
        """(M, T, V, C) oldest frame first, missing frames all-zero."""
        order = np.roll(np.arange(self.size), -self.head)
        return np.ascontiguousarray(self.buffer[order].transpose(1, 0, 2, 3))


class TimeResampler:
    """Source frames at any (even irregular) times -> samples on a fixed grid of `fps` starting at the first
    frame's time. A grid time between two sightings is linearly interpolated (joint by joint, where both
    frames have the joint); a grid time in a gap longer than `max_gap_s` or with nobody seen is None."""

    def __init__(self, fps: float, max_gap_s: float = 0.25, max_burst: int = 1024):
        if fps <= 0:
            raise ValueError(f"resampling rate must be > 0 fps, got {fps}")
        self.fps = float(fps)
        self.max_gap_s = max_gap_s
        self.max_burst = max_burst  # a huge jump in time yields at most this many (missing) samples
        self.start_s: float | None = None
        self.emitted = 0  # grid samples produced so far
        self.prev_t: float | None = None
        self.prev: np.ndarray | None = None

    def grid_time(self, k: int) -> float:
        return (self.start_s or 0.0) + k / self.fps

    def push(self, t_s: float, frame: np.ndarray | None) -> list[tuple[float, np.ndarray | None]]:
        """(grid time, sample or None) for every grid time up to and including t_s."""
        if self.start_s is None:
            self.start_s = t_s
        out: list[tuple[float, np.ndarray | None]] = []
        while True:
            g = self.grid_time(self.emitted)
            if g > t_s + 1e-9:
                break
            if frame is None:
                sample = None
            elif self.prev is None or self.prev_t is None or t_s - self.prev_t > self.max_gap_s or g >= t_s:
                sample = frame if t_s - g <= self.max_gap_s else None
            else:
                w = (g - self.prev_t) / (t_s - self.prev_t)
                both = (np.abs(self.prev).sum(-1, keepdims=True) > 0) & (np.abs(frame).sum(-1, keepdims=True) > 0)
                sample = np.where(both, (1 - w) * self.prev + w * frame, frame).astype(np.float32)
            out.append((g, sample))
            self.emitted += 1
            if len(out) >= self.max_burst:  # e.g. a stream that paused for minutes: skip ahead
                self.emitted = int(np.floor((t_s - self.start_s) * self.fps)) + 1
                break
        self.prev_t, self.prev = t_s, frame
        return out
