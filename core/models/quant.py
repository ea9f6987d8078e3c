"""INT8 quantization simulation for quantization-aware training (train.qat), placed where the Q/DQ ONNX of
converters.int8 quantizes: the input and the (BatchNorm-folded) weight of every Conv / Gemm, nothing else.

    sim = QuantSim(model)          # fake-quantizes the model in place; state_dict keys stay the same
    sim.observe(True)              # activation ranges follow an EMA of each batch's |max| (first epoch)
    ... train ...
    sim.ranges()                   # {'stages.0.blocks.0.gcn': 3.1, ...}: written into the checkpoint

Matches the Q/DQ model's arithmetic: activations per tensor and weights per output channel, both symmetric INT8
with onnxruntime's scale (|max| / 127.5, values in [-128, 127]); BatchNorm folded into the preceding conv with its
running statistics, which stay frozen (the exporters fold them the same way). The linear-attention products, the
dynamic adjacency, the stream derivation and every BatchNorm outside a conv stay float, as converters.int8 keeps
them. Gradients pass the rounding straight through (torch's fake_quantize ops).

Keys name the module whose conv reads the tensor, as the ONNX exporter scopes node names
("/stages.0/blocks/blocks.0/gcn/Conv" -> "stages.0.blocks.0.gcn"): onnx_scope_key() maps one to the other.

placement="full" simulates the full-integer LiteRT file (converters.tflite --int8-method full) instead, where every
tensor is int8: on top of the Q/DQ placement, the output of every convolution, graph convolution, temporal unit,
attention and block, the attention's inner products (phi(q), phi(k), the key/value and key sums, the normalised
queries; not the denominator, see ATTENTION_PARTS) and the logits ("<module>:out", "<attention>:q" ... keys).
Those ranges only train the weights: the file's own ranges are calibrated on the fine-tuned weights when it is
exported.
"""
from __future__ import annotations

import types
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from core.models.last import (LAST, AdaptiveGraphConv, ConvBN, LASTBlock, LinearTemporalAttention, TemporalShift,
                              TemporalUnit)

QMIN, QMAX = -128, 127
PLACEMENTS = ("qdq", "full")  # where the Q/DQ ONNX quantizes; every tensor, as the full-integer LiteRT file
HALF_RANGE = (QMAX - QMIN) / 2.0  # onnxruntime's symmetric scale: |max| * 2 / 255
# placement="full": the attention's inner tensors on the int8 grid; not its denominator, whose small values a
# symmetric grid set by the largest rounds to zero (measured: top-1 agreement with fp32 0.02 with it, 0.91 without),
# where the file computes the normaliser with its own calibrated RSQRT
ATTENTION_PARTS = ("q", "k", "kv", "k_sum", "q_norm", "mixed")


class ActQuant(nn.Module):
    """Per-tensor symmetric INT8 fake quantization with an EMA-observed |max| (while observing and training)."""

    def __init__(self, momentum: float = 0.01):
        super().__init__()
        self.momentum = momentum
        self.observing = True
        self.register_buffer("amax", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        amax = float(self.amax)  # one host read per call: the observed range, 0 until the first batch
        if self.observing and self.training:
            with torch.no_grad():
                batch_max = float(x.detach().abs().amax())
                amax = batch_max if amax == 0.0 else amax + self.momentum * (batch_max - amax)
                self.amax.fill_(amax)
        if amax <= 0.0:
            return x
        return torch.fake_quantize_per_tensor_affine(x, amax / HALF_RANGE, 0, QMIN, QMAX)


def quantize_weight(w: torch.Tensor) -> torch.Tensor:
    """Per-output-channel symmetric INT8 fake quantization (the scale from the weight itself, as the quantizers do)."""
    amax = w.detach().abs().reshape(w.shape[0], -1).amax(dim=1).clamp_min(1e-12)
    scale = (amax / HALF_RANGE).float()
    zero = torch.zeros(w.shape[0], dtype=torch.int32, device=w.device)
    return torch.fake_quantize_per_channel_affine(w, scale, zero, 0, QMIN, QMAX)


def onnx_scope_key(node_name: str) -> str:
    """'/stages.1/blocks/blocks.0/residual/residual.0/Conv' -> 'stages.1.blocks.0.residual.0': the module path of
    the node's scope (the exporter repeats a container's name in its children's: 'blocks/blocks.0')."""
    parts: list[str] = []
    for part in [p for p in node_name.split("/") if p][:-1]:
        if parts and part.startswith(parts[-1] + "."):
            parts[-1] = part
        else:
            parts.append(part)
    return ".".join(parts)


def _freeze_bn(bn: nn.Module) -> None:
    """Keep a BatchNorm in eval mode (running statistics, no updates) whatever .train() is called with."""
    bn.train = types.MethodType(lambda self, mode=True: nn.Module.train(self, False), bn)
    nn.Module.train(bn, False)


class QuantSim(nn.Module):
    """The activation quantizers of one LAST model, attached to it (see the module docstring). An nn.Module so
    the trainer keeps its ranges in the resume state; the model's own state_dict is unchanged."""

    def __init__(self, model: LAST, momentum: float = 0.01, placement: str = "qdq"):
        super().__init__()
        if placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
        self.placement = placement
        self.keys: list[str] = []
        self.quantizers = nn.ModuleDict()
        for name, module in list(model.named_modules()):
            if isinstance(module, ConvBN):
                self._attach(module, f"{name}.0", self._conv_bn_forward)
            elif isinstance(module, AdaptiveGraphConv):
                self._attach(module, name, self._graph_conv_forward)
                if module.adaptive:
                    self._attach(module.embed, f"{name}.embed", self._conv_forward)
            elif isinstance(module, LinearTemporalAttention):
                self._attach(module.qkv, f"{name}.qkv", self._conv_forward)
            elif isinstance(module, TemporalShift) and module.fold > 0:
                self._attach(module, name, self._input_only_forward)
        self._attach(model.fc, "fc", self._linear_forward)
        if placement == "full":
            self._attach_outputs(model)
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                _freeze_bn(module)
            module.__dict__["quant_sim"] = True  # core.models.last.fast_inference: no BN-folded fast path
        for q in self.quantizers.values():
            q.momentum = momentum

    def _new_quantizer(self, key: str) -> ActQuant:
        quantizer = ActQuant()
        self.quantizers[key.replace(".", ":")] = quantizer  # ModuleDict keys cannot hold dots
        self.keys.append(key)
        return quantizer

    def _attach(self, module: nn.Module, key: str, make: Callable) -> None:
        # an instance attribute: the class and the state_dict stay
        module.forward = make(module, self._new_quantizer(key))

    def _attach_outputs(self, model: LAST) -> None:
        """placement="full": the int8 tensors of the full-integer file that the Q/DQ placement leaves float."""
        for name, module in list(model.named_modules()):
            if isinstance(module, LinearTemporalAttention):
                inner = {part: self._new_quantizer(f"{name}:{part}") for part in ATTENTION_PARTS}
                module.forward = self._attention_forward(module, inner)
            if isinstance(module, (ConvBN, AdaptiveGraphConv, TemporalUnit, LinearTemporalAttention, LASTBlock)):
                quantizer = self._new_quantizer(f"{name}:out")
                module.register_forward_hook(lambda m, args, out, q=quantizer: q(out))
        quantizer = self._new_quantizer("fc:out")  # int8 logits
        model.fc.register_forward_hook(lambda m, args, out, q=quantizer: q(out))

    @staticmethod
    def _attention_forward(m: LinearTemporalAttention, q: dict[str, "ActQuant"]):
        """LinearTemporalAttention.forward with its inner tensors on the int8 grid (the qkv conv keeps its own
        input quantizer from the Q/DQ placement)."""
        def forward(x: torch.Tensor) -> torch.Tensor:
            n, c, t, v = x.shape
            phi_q, phi_k, val = m.feature_maps(x)
            phi_q, phi_k = q["q"](phi_q), q["k"](phi_k)
            kv = q["kv"](torch.matmul(val, phi_k.transpose(-1, -2)) / t)
            k_mean = q["k_sum"](phi_k.mean(dim=4).unsqueeze(3))
            den = torch.matmul(k_mean, phi_q) + m.eps  # float: see ATTENTION_PARTS
            mixed = torch.matmul(kv, q["q_norm"](phi_q / den)).reshape(n, v, c, t).permute(0, 2, 3, 1)
            return m.proj(q["mixed"](mixed))
        return forward

    @staticmethod
    def _conv_bn_forward(m: ConvBN, q: ActQuant):
        conv = m[0]

        def forward(x: torch.Tensor) -> torch.Tensor:
            w, b = m.folded()
            y = F.conv2d(q(x), quantize_weight(w), b, conv.stride, conv.padding, conv.dilation, conv.groups)
            return torch.relu(y) if len(m) > 2 else y
        return forward

    @staticmethod
    def _graph_conv_forward(m: AdaptiveGraphConv, q: ActQuant):
        def forward(x: torch.Tensor) -> torch.Tensor:
            xa = m.aggregate(x, m.adjacency(x))  # float, as the Q/DQ model keeps the dynamic-adjacency MatMuls
            w, b = m.folded()
            return F.conv2d(q(xa), quantize_weight(w), b)
        return forward

    @staticmethod
    def _conv_forward(m: nn.Conv2d, q: ActQuant):
        def forward(x: torch.Tensor) -> torch.Tensor:
            return F.conv2d(q(x), quantize_weight(m.weight), m.bias, m.stride, m.padding, m.dilation, m.groups)
        return forward

    @staticmethod
    def _linear_forward(m: nn.Linear, q: ActQuant):
        def forward(x: torch.Tensor) -> torch.Tensor:
            return F.linear(q(x), quantize_weight(m.weight), m.bias)
        return forward

    @staticmethod
    def _input_only_forward(m: nn.Module, q: ActQuant):
        plain = type(m).forward

        def forward(x: torch.Tensor) -> torch.Tensor:  # the shift's fixed one-hot conv: its input is quantized
            return plain(m, q(x))
        return forward

    def observe(self, on: bool) -> None:
        for q in self.quantizers.values():
            q.observing = on

    def ranges(self) -> dict[str, float]:
        return {key: float(self.quantizers[key.replace(".", ":")].amax) for key in self.keys}

    def load_ranges(self, ranges: dict[str, float]) -> None:
        for key, amax in ranges.items():
            self.quantizers[key.replace(".", ":")].amax.fill_(float(amax))


