import numpy as np
import pytest

from core.graph import build_adjacency, edge_matrix
from core.layouts import get_layout, list_layouts
from core.preprocess import normalize, prepare_clip, temporal_indices
from core.spec import InputSpec
from core.synthetic import SYNTHETIC_ACTIONS, make_synthetic_split, synthetic_clip

LAYOUTS = ["ntu25", "kinect20", "mediapipe33", "coco17"]


def test_required_layouts_registered():
    assert set(LAYOUTS) <= set(list_layouts())
    assert get_layout("ntu25").num_joints == 25 and get_layout("kinect20").num_joints == 20
    assert get_layout("mediapipe33").num_joints == 33 and get_layout("coco17").num_joints == 17
    with pytest.raises(KeyError, match="unknown skeleton layout"):
        get_layout("nope")


@pytest.mark.parametrize("name", LAYOUTS)
def test_layout_sanity(name):
    layout = get_layout(name)
    v = layout.num_joints
    assert len(layout.joints) == len(set(layout.joints))
    for a, b in layout.edges:
        assert 0 <= a < v and 0 <= b < v and a != b
    assert (layout.hop_distance >= 0).all(), "graph must be connected"
    # every non-centre joint's parent is one hop closer to the centre
    for j, p in enumerate(layout.parents):
        if j in layout.center:
            assert p == j
        else:
            assert layout.hop_distance[p] == layout.hop_distance[j] - 1
    # flip is an involution that maps left names to right names
    assert (layout.flip_index[layout.flip_index] == np.arange(v)).all()
    for left, right in layout.flip_pairs:
        assert "left" in layout.joints[left] and "right" in layout.joints[right]
    parts = [j for joints in layout.parts.values() for j in joints]
    assert sorted(parts) == list(range(v)), "body parts must partition the joints"


@pytest.mark.parametrize("name", LAYOUTS)
def test_spatial_adjacency_normalised_and_symmetric(name):
    layout = get_layout(name)
    a = build_adjacency(name, "spatial")
    assert a.shape == (3, layout.num_joints, layout.num_joints)
    total = a.sum(0)
    np.testing.assert_allclose(total, total.T, atol=1e-6)
    np.testing.assert_allclose(a[1], a[2].T, atol=1e-6)  # inward and outward mirror each other
    # the subsets sum to D^-1/2 (A + I) D^-1/2
    full = edge_matrix(layout) + np.eye(layout.num_joints)
    d = 1 / np.sqrt(full.sum(1))
    np.testing.assert_allclose(total, d[:, None] * full * d[None, :], atol=1e-6)
    # symmetric normalisation: spectral radius is 1 for a connected graph
    assert abs(np.abs(np.linalg.eigvalsh(total)).max() - 1.0) < 1e-5


def test_normalize_canonical_pose():
    clip = synthetic_clip("walk_in_place", "ntu25", 40, seed=3)
    x = normalize(clip, "ntu25")
    layout = get_layout("ntu25")
    first_valid = x[0, 0]
    np.testing.assert_allclose(first_valid[0], 0, atol=1e-5)  # centred on spine base
    up = x[0, :, layout.spine[1]] - x[0, :, layout.spine[0]]
    np.testing.assert_allclose(np.linalg.norm(up.mean(0)), 1.0, atol=1e-4)  # unit torso
    assert up.mean(0)[1] > 0.99  # spine points up (+y)
    right = x[0, :, layout.shoulders[1]] - x[0, :, layout.shoulders[0]]
    assert right.mean(0)[0] > 0.9 * np.linalg.norm(right.mean(0))  # shoulders along +x


def test_missing_frames_stay_zero_and_sampling():
    clip = synthetic_clip("clap", "kinect20", 30, seed=1)
    clip[:, 10:12] = 0
    x = normalize(clip, "kinect20")
    assert (x[:, 10:12] == 0).all() and np.abs(x[:, 12]).sum() > 0
    assert list(temporal_indices(4, 8, "uniform")) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert list(temporal_indices(3, 5, "center", "zero")) == [0, 1, 2, -1, -1]
    assert list(temporal_indices(3, 5, "center", "repeat")) == [0, 1, 2, 0, 1]
    out = prepare_clip(clip, InputSpec(layout="kinect20", frames=16, persons=2))
    assert out.shape == (3, 16, 20, 2) and (out[..., 1] == 0).all()


def test_synthetic_split_classes_differ():
    split = make_synthetic_split("mediapipe33", per_class=3, frames=32, seed=0)
    assert split.data.shape == (3 * len(SYNTHETIC_ACTIONS), 1, 32, 33, 3)
    assert (split.class_counts() == 3).all()
    # clips of different actions differ more than noise
    a = prepare_clip(split.sample(0), InputSpec(layout="mediapipe33", frames=32))
    b = prepare_clip(split.sample(3), InputSpec(layout="mediapipe33", frames=32))
    assert np.abs(a - b).mean() > 0.05


def test_joint_order_is_printed_and_written_down(capsys):
    from pathlib import Path

    from core.layouts import joint_table, main
    main(["kinect20"])
    out = capsys.readouterr().out
    assert "| 0 | 1 | hip_center | (centre) |  | torso |" in out
    assert "| 19 | 20 | foot_right | ankle_right | foot_left | right_leg |" in out
    docs = (Path(__file__).resolve().parents[1] / "docs" / "data.md").read_text(encoding="utf-8")
    for name in LAYOUTS:  # docs/data.md holds every layout's table exactly as printed
        assert joint_table(name) in docs, f"docs/data.md lacks the current {name} joint table"
    from core.cli import run_cli
    code = run_cli(main, "python -m core.layouts", ["kinect"])
    err = capsys.readouterr().err
    assert code == 2 and err == ("python -m core.layouts: error: unknown skeleton layout 'kinect'; "
                                                 "known layouts: coco17, kinect20, mediapipe33, ntu25\n")
