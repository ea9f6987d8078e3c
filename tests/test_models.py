import numpy as np
import pytest
import torch

from core.models import create_model, list_variants
from core.models.profile import count_gflops, count_params
from core.preprocess import prepare_clip
from core.spec import InputSpec
from core.synthetic import synthetic_clip
from backend_checker import backend_checker
from tolerances import float32_logit_tolerance

VARIANTS = list_variants()
# params and GFLOPs (T=64, V=25, M=1) targets; the family must stay within +-25 %
TARGETS = {"last_nano": (60e3, None), "last_small": (180e3, None), "last_base": (720e3, None),
           "last_large": (2.1e6, 0.85)}


def real_scale_input(layout="ntu25", frames=64, persons=1, batch=2, raw=False):
    """Synthetic skeletons in metres: raw camera coordinates or preprocessed as in training."""
    clips = []
    for i in range(batch):
        clip = synthetic_clip(["wave", "squat", "punch", "kick"][i % 4], layout, frames, seed=i)
        if raw:
            x = np.transpose(clip, (3, 1, 2, 0))
            x = np.concatenate([x] + [x * 0.9] * (persons - 1), axis=-1)
        else:
            x = prepare_clip(clip, InputSpec(layout=layout, frames=frames, persons=persons))
        clips.append(x)
    return torch.from_numpy(np.stack(clips).astype(np.float32))


def test_all_variants_registered():
    assert set(VARIANTS) >= {"last_nano", "last_small", "last_base", "last_large", "last_lite_nano", "last_lite_small"}
    with pytest.raises(KeyError, match="unknown LAST variant"):
        create_model("last_huge")


@pytest.mark.parametrize("variant", list(TARGETS))
def test_size_targets(variant):
    model = create_model(variant, num_classes=60)
    params_target, gflops_target = TARGETS[variant]
    assert 0.75 * params_target <= count_params(model) <= 1.25 * params_target
    if gflops_target:
        gflops = count_gflops(model.eval(), torch.zeros(1, 3, 64, 25, 1))
        assert 0.75 * gflops_target <= gflops <= 1.25 * gflops_target


def test_lite_variants_have_no_adaptive_graph_or_attention():
    lite = create_model("last_lite_small")
    full = create_model("last_small")
    assert not any("attention" in n or "a_learned" in n for n, _ in lite.named_parameters())
    assert any("attention" in n for n, _ in full.named_parameters())
    assert count_params(lite) < count_params(full)


@pytest.mark.parametrize("variant", VARIANTS)
def test_forward_shapes(variant):
    model = create_model(variant, num_classes=7, layout="kinect20").eval()
    x = real_scale_input("kinect20", frames=32, persons=2, batch=3)
    with torch.no_grad():
        logits = model(x)
        feat = model.forward_features(x)
        stages = model.forward_stages(x)
    assert logits.shape == (3, 7)
    assert feat.shape[:3] == (3, 2, model.num_features) and feat.shape[-1] == 20
    assert len(stages) == len(model.cfg.stages)


def test_multi_stream_input():
    model = create_model("last_nano", num_classes=5, streams=("joint", "velocity", "bone")).eval()
    assert len(model.stem.stems) == 3
    with torch.no_grad():
        out = model(real_scale_input(frames=24))
    assert out.shape == (2, 5) and torch.isfinite(out).all()


def test_bad_input_shape_is_named():
    model = create_model("last_nano", num_classes=5).eval()
    with pytest.raises(ValueError, match="expects C=3, V=25"):
        model(torch.zeros(1, 3, 16, 20, 1))


@pytest.mark.parametrize("variant", VARIANTS)
@backend_checker("onnxruntime")
def test_onnx_parity(variant, tmp_path):
    import onnxruntime as ort
    import onnx
    model = create_model(variant, num_classes=10).eval()
    x = real_scale_input(batch=1)
    path = tmp_path / f"{variant}.onnx"
    torch.onnx.export(model, (x,), str(path), input_names=["skeleton"], output_names=["logits"],
                      dynamic_axes={"skeleton": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17,
                      dynamo=False)
    graph = onnx.load(str(path))
    onnx.checker.check_model(graph)
    assert graph.opset_import[0].version >= 17
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    xb = real_scale_input(batch=3)  # a different batch size through the dynamic axis
    with torch.no_grad():
        expected = model(xb).numpy()
    got = sess.run(None, {"skeleton": xb.numpy()})[0]
    assert np.abs(got - expected).max() <= float32_logit_tolerance(model, xb.shape[2], expected)


@pytest.mark.parametrize("variant", ["last_small", "last_large"])
@pytest.mark.parametrize("raw", [False, True])
def test_fp16_forward_is_finite(variant, raw):
    model = create_model(variant, num_classes=10).eval()
    # trained-like statistics: BN running stats are what keep activations in range, so calibrate them
    x = real_scale_input(batch=4, raw=raw)
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()
    with torch.no_grad():
        ref = model(x)
        half = model.half()(x.half()).float()
    assert torch.isfinite(half).all()
    assert (half - ref).abs().max() < 0.05 * ref.abs().max() + 1e-2
