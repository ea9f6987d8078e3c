"""The sliding window of the edge loop: a ring buffer of the last T frames with a policy for missing
detections (hold the last pose briefly, then mark frames missing, reset after a long gap)."""
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
