"""Graph construction over a layout. Modes are functions: layout -> (K, V, V) float32 adjacency."""
from __future__ import annotations

from typing import Callable

import numpy as np

from core.layouts import Layout, get_layout

GRAPH_MODES: dict[str, Callable[[Layout], np.ndarray]] = {}


def graph_mode(name: str):
    def register(fn):
        GRAPH_MODES[name] = fn
        return fn
    return register


def edge_matrix(layout: Layout) -> np.ndarray:
    """Symmetric 0/1 adjacency of the physical edges, no self loops."""
    v = layout.num_joints
    a = np.zeros((v, v), dtype=np.float32)
    for i, j in layout.edges:
        a[i, j] = a[j, i] = 1.0
    return a


def degree_normalizer(layout: Layout) -> np.ndarray:
    """D^-1/2 of the adjacency with self loops."""
    degree = (edge_matrix(layout) + np.eye(layout.num_joints, dtype=np.float32)).sum(axis=1)
    return np.diag(1.0 / np.sqrt(degree)).astype(np.float32)


@graph_mode("spatial")
def spatial_partition(layout: Layout) -> np.ndarray:
    """Spatial partition (st-gcn): root (self and equal-distance neighbours), inward (towards the
    centre), outward (away from it); each subset normalised D^-1/2 A_k D^-1/2 with the full degree,
    so the subsets sum to the symmetric normalised adjacency."""
    v, dist = layout.num_joints, layout.hop_distance
    root = np.eye(v, dtype=np.float32)
    inward = np.zeros((v, v), dtype=np.float32)
    for i, j in layout.edges:
        if dist[i] == dist[j]:
            root[i, j] = root[j, i] = 1.0
        else:
            child, parent = (i, j) if dist[i] > dist[j] else (j, i)
            inward[child, parent] = 1.0
    outward = inward.T.copy()
    d = degree_normalizer(layout)
    return np.stack([d @ a @ d for a in (root, inward, outward)]).astype(np.float32)


@graph_mode("uniform")
def uniform(layout: Layout) -> np.ndarray:
    """One subset: the symmetric normalised adjacency with self loops."""
    d = degree_normalizer(layout)
    return (d @ (edge_matrix(layout) + np.eye(layout.num_joints, dtype=np.float32)) @ d)[None]


def build_adjacency(layout: str | Layout, mode: str = "spatial") -> np.ndarray:
    if mode not in GRAPH_MODES:
        raise KeyError(f"unknown graph mode {mode!r}; known: {', '.join(sorted(GRAPH_MODES))}")
    return GRAPH_MODES[mode](get_layout(layout))
