"""core.models.integer_graph: the integer-friendly rewrite computes the LAST model's function (float tolerance),
and core.data.streams' input stage derives the streams exactly as the model does inside."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core.data.streams import StreamInputStage, stack_streams
from core.models.integer_graph import IntegerFriendlyLAST, integer_friendly, positive_feature
from core.models.last import create_model

JVB = ("joint", "velocity", "bone")


def _trained_looking(variant: str, streams: tuple[str, ...], seed: int = 0):
    """A LAST model whose BatchNorm statistics, learned adjacency, alpha and attention projection are not their
    initial values (at initialisation the attention and the dynamic adjacency contribute exactly zero)."""
    torch.manual_seed(seed)
    model = create_model(variant, layout="ntu25", num_classes=7, streams=streams).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
            if getattr(m, "adaptive", False):
                m.alpha.fill_(0.3)
                m.a_learned.normal_(0, 0.05)
    return model


def _clips(n: int = 3, persons: int = 2, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.normal(0, 0.1, (n, 3, 24, 25, persons)), axis=2)  # smooth motions: small frame differences
    return (x + rng.normal(0, 1, (n, 3, 1, 25, persons))).astype(np.float32)


@pytest.mark.parametrize("variant,streams,options", [
    ("last_nano", ("joint",), {}), ("last_nano", JVB, {}), ("last_small", JVB, {}), ("last_lite_nano", JVB, {}),
    ("last_small", ("joint",), {"phi": "exp", "norm": "div", "split_adjacency": True})])
def test_rewrite_computes_the_models_function(variant, streams, options):
    model = _trained_looking(variant, streams)
    x = _clips()
    stage, graph = integer_friendly(model, x, **options)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
        got = graph(torch.from_numpy(stage(x))).numpy()
    assert np.abs(ref).max() > 0.1  # a non-trivial output
    # float32 rounding of re-associated sums: a few ulps of the logits' scale, nothing more
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 * max(1.0, float(np.abs(ref).max())))


def test_attention_rewrite_is_not_vacuous():
    """The comparison above sees the attention: switching its rewrite off changes the output by far more than the
    tolerance, so an error in the rewrite could not hide."""
    model = _trained_looking("last_small", JVB)
    x = _clips()
    stage, graph = integer_friendly(model, x)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
        for block in (b for s in graph.stages for b in s.blocks):
            block.attention.qkv_weight.mul_(1.5)
        changed = graph(torch.from_numpy(stage(x))).numpy()
    assert np.abs(changed - ref).max() > 1e-2


def test_positive_feature_is_elu_plus_one():
    x = torch.linspace(-30, 30, 2001)
    expected = torch.nn.functional.elu(x) + 1
    for mode in ("sigmoid", "exp"):
        torch.testing.assert_close(positive_feature(x, mode), expected, rtol=1e-5, atol=1e-7)


def test_input_gain_equalises_the_channels_and_the_stem_compensates():
    model = _trained_looking("last_nano", JVB)
    x = _clips(n=8)
    stage, graph = integer_friendly(model, x, percentile=100.0)
    feats = stage(x)
    peaks = np.abs(feats).transpose(1, 0, 2, 3, 4).reshape(feats.shape[1], -1).max(1)
    np.testing.assert_allclose(peaks, 1.0, rtol=1e-5)  # every stream / coordinate reaches exactly 1
    plain_stage, plain = integer_friendly(model, None)
    with torch.no_grad():
        a = graph(torch.from_numpy(feats)).numpy()
        b = plain(torch.from_numpy(plain_stage(x))).numpy()
    np.testing.assert_allclose(a, b, atol=1e-5 * max(1.0, float(np.abs(b).max())))


def test_stream_stack_matches_the_models_own_derivation():
    model = _trained_looking("last_nano", JVB)
    x = _clips(n=2, persons=1)
    stacked = stack_streams(x, "ntu25", JVB)  # (N, 9, T, V, 1)
    xt = torch.from_numpy(x[..., 0])
    with torch.no_grad():
        inside = torch.cat([model.stem.stream(xt, name) for name in JVB], dim=1).numpy()
    np.testing.assert_allclose(stacked[..., 0], inside, atol=1e-6)


def test_stage_round_trips_through_metadata_and_rejects_bad_shapes():
    model = _trained_looking("last_nano", JVB)
    stage = IntegerFriendlyLAST(model).input_stage()
    again = StreamInputStage.from_dict(stage.to_dict())
    x = _clips(n=1)
    np.testing.assert_array_equal(again(x), stage(x))
    bad = stage.to_dict()
    bad["shift"] = bad["shift"][:-1]
    with pytest.raises(ValueError, match="scale"):
        StreamInputStage.from_dict(bad)
    with pytest.raises(ValueError, match="input_gain"):
        IntegerFriendlyLAST(model, input_gain=np.ones(4))
