"""Params, FLOPs (torch's FlopCounterMode), fp32 size and CPU latency of a model."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from core.models.last import LAST
from core.timing import time_callable


@dataclass
class ModelProfile:
    variant: str
    params: int
    gflops: float
    size_mb: float
    latency_ms: float | None


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_gflops(model: torch.nn.Module, x: torch.Tensor) -> float:
    """Forward GFLOPs of one call (a multiply-add counts as 2 FLOPs)."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() / 1e9


def measure_latency_ms(model: torch.nn.Module, x: torch.Tensor, warmup: int = 3, repeats: int = 20) -> float:
    """Median wall time of one forward pass (core.timing)."""
    with torch.inference_mode():
        return time_callable(lambda: model(x), warmup=warmup, runs=repeats).p50_ms


def profile_model(model: LAST, frames: int = 64, persons: int = 1, latency: bool = True) -> ModelProfile:
    model = model.eval()
    x = torch.randn(1, model.cfg.in_channels, frames, model.num_joints, persons)
    params = count_params(model)
    size_mb = sum(t.numel() * t.element_size() for t in model.state_dict().values()) / 2**20
    return ModelProfile(model.variant, params, count_gflops(model, x), size_mb,
                        measure_latency_ms(model, x) if latency else None)
