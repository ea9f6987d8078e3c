"""Joint / velocity / bone streams in numpy, identical to what the LAST model computes inside
(core.models.last.InputStreams); for analysis and for models that take precomputed streams."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.layouts import get_layout


def velocity(x: np.ndarray) -> np.ndarray:
    """(C, T, V, M) frame difference x[t+1] - x[t]; the last frame is zero."""
    out = np.zeros_like(x)
    out[:, :-1] = x[:, 1:] - x[:, :-1]
    return out


def bone(x: np.ndarray, layout: str) -> np.ndarray:
    """(C, T, V, M) joint minus its parent in the layout's tree (zero for the centre joints)."""
    parents = get_layout(layout).parents
    return x - x[:, :, parents]


def streams(x: np.ndarray, layout: str,
            names: tuple[str, ...] = ("joint", "velocity", "bone")) -> dict[str, np.ndarray]:
    make = {"joint": lambda a: a, "velocity": velocity, "bone": lambda a: bone(a, layout)}
    unknown = [n for n in names if n not in make]
    if unknown:
        raise ValueError(f"unknown stream(s) {unknown}; known: {sorted(make)}")
    return {n: make[n](x) for n in names}


def stack_streams(x: np.ndarray, layout: str, names: tuple[str, ...]) -> np.ndarray:
    """Batched clips (N, C, T, V, M) -> the named streams stacked on the channel axis, (N, S*C, T, V, M)."""
    n, c, t, v, m = x.shape
    as_persons = x.transpose(1, 2, 3, 4, 0).reshape(c, t, v, m * n)  # the batch as extra persons
    derived = streams(as_persons, layout, tuple(names))
    stacked = np.concatenate([derived[name] for name in names], axis=0)  # (S*C, T, V, M*N)
    return np.ascontiguousarray(stacked.reshape(-1, t, v, m, n).transpose(4, 0, 1, 2, 3))


@dataclass
class StreamInputStage:
    """The float part of a full-integer LAST artifact, run by its runtime before the integer graph: derive the
    velocity / bone streams from the joints and normalise each (stream, channel, joint) with the model's data
    BatchNorm (times a per-channel gain that gives every channel the same range), so that the int8 input
    quantizes each stream after it has been derived, never the raw joints a frame difference is ~1 % of.

    features = stack_streams(x) * scale[:, None, :, None] + shift[:, None, :, None], scale/shift (S*C, V)."""

    layout: str
    streams: tuple[str, ...]
    scale: np.ndarray  # (S*C, V)
    shift: np.ndarray  # (S*C, V)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(N, C, T, V, M) float joints -> (N, S*C, T, V, M) float32 normalised streams."""
        stacked = stack_streams(np.asarray(x, np.float32), self.layout, self.streams)
        return (stacked * self.scale[:, None, :, None] + self.shift[:, None, :, None]).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"layout": self.layout, "streams": list(self.streams),
                "scale": self.scale.astype(np.float32).tolist(), "shift": self.shift.astype(np.float32).tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StreamInputStage":
        scale, shift = np.asarray(d["scale"], np.float32), np.asarray(d["shift"], np.float32)
        if scale.shape != shift.shape or scale.ndim != 2:
            raise ValueError(f"stream input stage: scale {scale.shape} and shift {shift.shape} must both be (S*C, V)")
        return cls(d["layout"], tuple(d["streams"]), scale, shift)
