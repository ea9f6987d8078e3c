import numpy as np
import pytest

from core.data.augment import (DEFAULT_AUGMENT, GaussianNoise, RandomFlip, RandomRotate, RandomScale, RandomShear,
                               build_augment, crop_ratio, resolve_config)
from core.data.dataset import SkeletonDataset
from core.layouts import get_layout
from core.preprocess import prepare_clip
from core.spec import InputSpec
from core.synthetic import make_synthetic_split


@pytest.fixture(scope="module")
def clip():
    split = make_synthetic_split("ntu25", per_class=1, frames=20, seed=0)
    x = prepare_clip(split.sample(0), InputSpec(layout="ntu25", frames=16, persons=2))
    assert np.abs(x[..., 1]).sum() == 0  # second person missing: must stay zero through every step
    return x


def _bones(x):
    parents = get_layout("ntu25").parents
    return np.linalg.norm(x[:, :, :, 0] - x[:, :, parents, 0], axis=0)


def test_rotation_is_rigid_and_keeps_missing_zero(clip):
    out = RandomRotate(max_deg=15, p=1.0)(clip, np.random.default_rng(0))
    assert not np.allclose(out, clip)
    np.testing.assert_allclose(_bones(out), _bones(clip), atol=1e-5)
    assert np.abs(out[..., 1]).sum() == 0
    angle = np.rad2deg(np.arccos(np.clip((np.trace(RandomRotate(15, "y", 1.0).matrix(
        np.random.default_rng(1))) - 1) / 2, -1, 1)))
    assert 0 < angle <= 15


def test_scale_shear_noise_ranges(clip):
    rng = np.random.default_rng(0)
    for _ in range(20):
        out = RandomScale(0.9, 1.1, p=1.0)(clip, rng)
        ratio = np.linalg.norm(out) / np.linalg.norm(clip)
        assert 0.9 <= ratio <= 1.1
        m = RandomShear(0.1, p=1.0).matrix(rng)
        assert np.allclose(np.diag(m), 1) and np.abs(m - np.eye(3)).max() <= 0.1
    noisy = GaussianNoise(0.001, p=1.0)(clip, rng)
    diff = (noisy - clip)[..., 0]
    assert 0.0008 < diff.std() < 0.0012
    assert np.abs(noisy[..., 1]).sum() == 0


def test_flip_swaps_sides_and_is_an_involution(clip):
    layout = get_layout("ntu25")
    flip = RandomFlip(layout.flip_index, p=1.0)
    once = flip(clip, np.random.default_rng(0))
    hl, hr = layout.index("hand_left"), layout.index("hand_right")
    np.testing.assert_allclose(once[1:, :, hl], clip[1:, :, hr])
    np.testing.assert_allclose(once[0, :, hl], -clip[0, :, hr])
    np.testing.assert_allclose(flip(once, np.random.default_rng(0)), clip)


def test_compose_is_seeded_and_configurable(clip):
    aug = build_augment(True, "ntu25")
    a = aug(clip, np.random.default_rng(5))
    b = aug(clip, np.random.default_rng(5))
    c = aug(clip, np.random.default_rng(6))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and a.shape == clip.shape
    assert not np.array_equal(a, c)
    assert np.abs(a[..., 1]).sum() == 0
    only_flip = resolve_config({"flip": True, "rotate": False})
    assert set(only_flip) == {"flip"} and only_flip["flip"]["p"] == DEFAULT_AUGMENT["flip"]["p"]
    assert build_augment({"rotate": False}, "ntu25") is None
    assert crop_ratio({"crop": {"ratio": [0.8, 1.0]}}) == (0.8, 1.0) and crop_ratio({"crop": False}) is None
    with pytest.raises(ValueError, match="unknown augmentation"):
        resolve_config({"rotation": True})
    with pytest.raises(ValueError, match="crop.ratio"):
        crop_ratio({"crop": {"ratio": [0.0, 1.0]}})
    # the flat form used by train/config.py
    flat = resolve_config({"enabled": True, "rotate_deg": [0, 15, 0], "rotate_prob": 0.5, "scale": 0.1,
                           "flip_prob": 0.0})
    assert flat["rotate"]["max_deg"] == [0.0, 15.0, 0.0] and flat["scale"]["low"] == pytest.approx(0.9)
    assert type(flat["rotate"]["max_deg"][1]) is float  # plain YAML-able numbers
    assert "flip" not in flat and resolve_config({"enabled": False}) == {}


def test_dataset_applies_config_only_in_training():
    split = make_synthetic_split("ntu25", per_class=1, frames=24, seed=0)
    spec = InputSpec(layout="ntu25", frames=16)
    plain = SkeletonDataset(split, spec, train=False)[3][0].numpy()
    fixed = SkeletonDataset(split, spec, train=True, augment={"crop": False})[3][0].numpy()
    np.testing.assert_allclose(fixed, plain)  # no crop, no augmentation -> the test-time clip
    aug = SkeletonDataset(split, spec, train=True, augment={"rotate": {"p": 1.0}, "crop": False}, seed=1)
    x1, x2 = aug[3][0].numpy(), aug[3][0].numpy()
    np.testing.assert_array_equal(x1, x2)  # seeded per (seed, epoch, index)
    assert not np.allclose(x1, plain)
    aug.set_epoch(1)
    assert not np.allclose(aug[3][0].numpy(), x1)
    assert SkeletonDataset(split, spec, train=False, augment=True)[3][0].numpy().tolist() == plain.tolist()


def test_numpy_streams_match_the_model(clip):
    import torch

    from core.data.streams import streams
    from core.models.last import InputStreams, create_model
    model = create_model("last_nano", num_classes=3, layout="ntu25", streams=("joint", "velocity", "bone"))
    module = next(m for m in model.modules() if isinstance(m, InputStreams))
    x = clip[..., 0]  # (C, T, V)
    ours = streams(clip, "ntu25")
    for name in ("velocity", "bone"):
        ref = module.stream(torch.from_numpy(x[None]), name)[0].numpy()
        np.testing.assert_allclose(ours[name][..., 0], ref, atol=1e-6)
