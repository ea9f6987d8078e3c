"""From noisy per-window probabilities to a steady action label: EMA, hysteresis, a confidence floor."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

UNKNOWN = "unknown"


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64).reshape(-1)
    z = z - z.max()
    e = np.exp(z)
    return (e / e.sum()).astype(np.float32)


@dataclass
class Decision:
    label: str  # a class name or UNKNOWN
    index: int | None  # class index, None for UNKNOWN
    confidence: float  # smoothed probability of `label` (of the best class when UNKNOWN)
    probs: np.ndarray  # smoothed probabilities (K,)
    changed: bool  # the label differs from the previous decision


class ActionSmoother:
    """Exponential moving average of probabilities with hysteresis.

    An action starts when its smoothed probability reaches `enter`; it holds until it drops below `exit`
    (< enter) or another class beats it by `margin` while above `enter`. Below the floor the label is
    UNKNOWN ("no action")."""

    def __init__(self, class_names: list[str], alpha: float = 0.5, enter: float = 0.5, exit: float | None = None,
                 margin: float = 0.1):
        if not 0 < alpha <= 1:
            raise ValueError(f"EMA alpha must be in (0, 1], got {alpha}")
        self.class_names = list(class_names)
        self.alpha = alpha
        self.enter = enter
        self.exit = enter - 0.1 if exit is None else exit
        if self.exit > self.enter:
            raise ValueError(f"hysteresis exit threshold {self.exit} must not exceed the enter threshold {self.enter}")
        self.margin = margin
        self.reset()

    def reset(self) -> None:
        self.probs: np.ndarray | None = None
        self.current: int | None = None

    def update(self, probs: np.ndarray) -> Decision:
        probs = np.asarray(probs, dtype=np.float32).reshape(-1)
        if probs.shape[0] != len(self.class_names):
            raise ValueError(f"{probs.shape[0]} probabilities for {len(self.class_names)} classes")
        self.probs = probs.copy() if self.probs is None else self.alpha * probs + (1 - self.alpha) * self.probs
        s = self.probs
        best = int(s.argmax())
        previous = self.current
        if self.current is None:
            if s[best] >= self.enter:
                self.current = best
        elif s[self.current] < self.exit:
            self.current = best if s[best] >= self.enter else None
        elif best != self.current and s[best] >= self.enter and s[best] >= s[self.current] + self.margin:
            self.current = best
        return self._decision(previous)

    def _decision(self, previous: int | None) -> Decision:
        s = self.probs
        if self.current is None:
            return Decision(UNKNOWN, None, float(s.max()), s.copy(), previous is not None)
        return Decision(self.class_names[self.current], self.current, float(s[self.current]), s.copy(),
                        previous != self.current)

    def clear(self) -> Decision | None:
        """Forget everything (the window was reset); returns the UNKNOWN decision if a label was active."""
        had = self.current is not None
        k = len(self.class_names)
        self.reset()
        if had:
            return Decision(UNKNOWN, None, 0.0, np.zeros(k, np.float32), True)
        return None
