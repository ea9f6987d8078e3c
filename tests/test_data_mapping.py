import numpy as np
import pytest

from core.layouts import get_layout
from core.mapping import convert_layout, mapping_matrix, mediapipe_world_to_camera, supported_conversions
from core.synthetic import synthetic_clip


@pytest.mark.parametrize("src,dst", supported_conversions())
def test_rows_are_convex_and_left_right_consistent(src, dst):
    w = mapping_matrix(src, dst)
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-6)
    assert (w >= 0).all()
    # mirroring the source then converting == converting then mirroring the target
    x = np.random.default_rng(0).normal(size=(2, 5, get_layout(src).num_joints, 3)).astype(np.float32)
    a = convert_layout(x[..., get_layout(src).flip_index, :], src, dst)
    b = convert_layout(x, src, dst)[..., get_layout(dst).flip_index, :]
    np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("dst", ["ntu25", "kinect20", "coco17"])
def test_mediapipe_matches_the_same_body_in_the_target_layout(dst):
    """The synthetic humanoid rendered in mediapipe33 and converted equals it rendered in dst for the
    joints both layouts measure directly."""
    mp = synthetic_clip("wave", "mediapipe33", frames=12, seed=3, noise=0.0)
    ref = synthetic_clip("wave", dst, frames=12, seed=3, noise=0.0)
    out = convert_layout(mp, "mediapipe33", dst)
    assert out.shape == ref.shape
    layout = get_layout(dst)
    shared = [j for j in layout.joints if any(k in j for k in ("shoulder_", "elbow", "wrist", "knee", "ankle"))
              and j != "spine_shoulder"]
    shared += [j for j in layout.joints if j in ("hip_left", "hip_right", "left_hip", "right_hip")]
    assert len(shared) >= 10
    idx = [layout.index(j) for j in shared]
    np.testing.assert_allclose(out[..., idx, :], ref[..., idx, :], atol=1e-5)
    if dst == "ntu25":  # derived spine base = mid-hip, which is where the humanoid's pelvis is
        hips = ref[..., [layout.index("hip_left"), layout.index("hip_right")], :].mean(-2)
        np.testing.assert_allclose(out[..., layout.index("spine_base"), :], hips, atol=1e-5)


def test_missing_joints_propagate_and_shapes_are_checked():
    x = np.ones((3, 33, 4), dtype=np.float32)
    x[1] = 0  # a missing frame stays missing
    x[2, 7] = 0  # left ear missing -> head and neck missing, the rest present
    out = convert_layout(x, "mediapipe33", "ntu25")
    ntu = get_layout("ntu25")
    assert out.shape == (3, 25, 4)
    assert np.all(out[1] == 0)
    missing = {ntu.joints[j] for j in np.flatnonzero(np.abs(out[2]).sum(-1) == 0)}
    assert missing == {"head", "neck"}
    with pytest.raises(ValueError, match="33 mediapipe33 joints"):
        convert_layout(np.zeros((4, 25, 3)), "mediapipe33", "ntu25")
    with pytest.raises(ValueError, match="no mapping from layout 'ntu25' to 'mediapipe33'"):
        mapping_matrix("ntu25", "mediapipe33")
    np.testing.assert_array_equal(convert_layout(x, "mediapipe33", "mediapipe33"), x)
    out = mediapipe_world_to_camera(np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]))
    np.testing.assert_array_equal(out, [[-1.0, -2.0, 3.0], [0.0, 0.0, 0.0]])
    assert not np.signbit(out[1]).any()  # missing joints stay exactly +0
    # a rotation (det +1), not a mirror: the body's handedness survives
    assert np.linalg.det(np.diag([-1.0, -1.0, 1.0])) == 1.0
