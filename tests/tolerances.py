"""Numeric tolerances derived from the arithmetic, not from one machine's result (docs/reliability.md).

Two correct float32 implementations of one network (PyTorch and onnxruntime, AVX2 and AVX-512 kernels, another
blocking or summation order) differ only by rounding. A sum of n products computed in any order has a relative
error of at most gamma_n ~ n * u of the sum of |terms| (Higham, Accuracy and Stability of Numerical Algorithms,
section 3.1); every layer on the way to the logits adds its own, so the logits differ by at most about

    depth * fan_in * u * scale

with u the unit roundoff, depth the number of summing layers (convolutions, linears, the graph aggregation and
attention products), fan_in the longest sum, and scale the size of the activations, max(1, max |logits|).
That is a worst case (random rounding gives about its square root), so it holds on any CPU; a wrong op, a
missing normalisation or a transposed weight moves logits by the scale itself, far above it."""
from __future__ import annotations

import numpy as np
from torch import nn

from core.models.last import AdaptiveGraphConv, LinearTemporalAttention

U32 = 2.0 ** -24  # unit roundoff of float32


def summation_shape(model: nn.Module, frames: int) -> tuple[int, int]:
    """(depth, fan_in) of a LAST model on clips of `frames` frames: the summing layers on any path, and the
    longest sum (a conv's in_channels x kernel, x the K subsets a graph conv mixes; the joints of the graph
    aggregation; the frames the linear attention averages)."""
    depth, fan_in = 0, frames
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            depth += 1
            fan_in = max(fan_in, int(m.weight[0].numel()))
        if isinstance(m, AdaptiveGraphConv):
            depth += 2  # the aggregation (over the joints, and the dynamic adjacency)
            fan_in = max(fan_in, int(m.conv.weight.shape[1]) * m.subsets, int(m.a_physical.shape[-1]))
        if isinstance(m, LinearTemporalAttention):
            depth += 2  # the key-value and query products
    return depth, fan_in


def float32_logit_tolerance(model: nn.Module, frames: int, reference: np.ndarray) -> float:
    """The most two correct float32 evaluations of `model` may differ by in any logit."""
    depth, fan_in = summation_shape(model, frames)
    return depth * fan_in * U32 * max(1.0, float(np.abs(reference).max()))
