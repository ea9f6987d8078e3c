"""Up to two people kept in stable slots across frames by the nearest hip centre."""
from __future__ import annotations

from itertools import permutations

import numpy as np


class HipTracker:
    """Assigns each frame's detections to `max_persons` slots so slot i follows the same person.

    Centres are compared in image coordinates (MediaPipe world landmarks are hip-centred per person, so
    their centres are all ~0). A slot whose person is unseen for more than `max_missing` frames is freed;
    a jump larger than `max_jump` (same units as the centres) is treated as a different person."""

    def __init__(self, max_persons: int = 1, max_missing: int = 15, max_jump: float = 0.35):
        if max_persons not in (1, 2):
            raise ValueError(f"the edge loop tracks 1 or 2 people, got {max_persons}")
        self.max_persons = max_persons
        self.max_missing = max_missing
        self.max_jump = max_jump
        self.centres: list[np.ndarray | None] = [None] * max_persons
        self.missing = [0] * max_persons

    def reset(self) -> None:
        self.centres = [None] * self.max_persons
        self.missing = [0] * self.max_persons

    def update(self, centres: list[np.ndarray]) -> list[int | None]:
        """centres: one (2,) or (3,) hip centre per detection, in the detector's order (most confident
        first). Returns, per slot, the index of the detection it holds this frame (None: not seen)."""
        n = len(centres)
        slots: list[int | None] = [None] * self.max_persons
        tracked = [i for i, c in enumerate(self.centres) if c is not None]
        used: set[int] = set()
        if tracked and n:
            best, best_cost = None, np.inf
            # brute force is exact and cheap for <= 2 slots x a handful of detections
            for perm in permutations(range(n), min(len(tracked), n)):
                cost = 0.0
                pairs = []
                for slot, det in zip(tracked, perm):
                    d = float(np.linalg.norm(np.asarray(centres[det])[:2] - self.centres[slot][:2]))
                    if d > self.max_jump:
                        continue
                    cost += d
                    pairs.append((slot, det))
                # prefer more matches, then smaller total distance
                key = (-len(pairs), cost)
                if best is None or key < best_cost:
                    best, best_cost = pairs, key
            for slot, det in best or []:
                slots[slot] = det
                used.add(det)
        # unmatched detections (most confident first) take the slots nobody matched this frame: empty slots
        # first, then the one whose person has been gone longest (a lone person who 'jumped' stays tracked)
        for det in range(n):
            if det in used:
                continue
            free = sorted((s for s in range(self.max_persons) if slots[s] is None),
                          key=lambda s: (self.centres[s] is not None, -self.missing[s]))
            if free:
                slots[free[0]] = det
                used.add(det)
        for s in range(self.max_persons):
            if slots[s] is None:
                self.missing[s] += 1
                if self.missing[s] > self.max_missing:
                    self.centres[s] = None
            else:
                self.missing[s] = 0
                self.centres[s] = np.asarray(centres[slots[s]], dtype=np.float64)[:2].copy()
        return slots
