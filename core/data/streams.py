"""Joint / velocity / bone streams in numpy, identical to what the LAST model computes inside
(core.models.last.InputStreams); for analysis and for models that take precomputed streams."""
from __future__ import annotations

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
