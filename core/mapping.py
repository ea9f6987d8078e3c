"""Convert skeletons between layouts, e.g. MediaPipe world landmarks -> a model trained on NTU.

Every target joint is a fixed weighted mean of source joints, so a conversion is one matrix product
over the joint axis (vectorised over any leading axes). Joints the source lacks are derived from
midpoints; a target joint is zero (missing) when any source joint it needs is missing (all zero).

Supported: identity, mediapipe33 -> ntu25 | kinect20 | coco17, coco17 -> ntu25 | kinect20,
ntu25 -> kinect20, kinect20 -> ntu25. Layout conversion never changes the axes: MediaPipe's y points
down, Kinect's up; ``mediapipe_world_to_camera`` rotates one into the other (180 degrees about z).

mediapipe33 -> ntu25 (MP landmark index in brackets; "mid" = mean of the listed points)

| ntu25 joint | from mediapipe33 |
|---|---|
| spine_base | mid(left_hip [23], right_hip [24]) |
| spine_mid | mid(spine_base, spine_shoulder) = mean of both hips and both shoulders |
| neck | mid(spine_shoulder, head) |
| head | mid(left_ear [7], right_ear [8]) |
| spine_shoulder | mid(left_shoulder [11], right_shoulder [12]) |
| shoulder/elbow/wrist_left | left_shoulder [11] / left_elbow [13] / left_wrist [15] |
| hand_left | mean(left_wrist [15], left_pinky [17], left_index [19]) (palm centre) |
| hand_tip_left / thumb_left | left_index [19] / left_thumb [21] |
| hip/knee/ankle_left | left_hip [23] / left_knee [25] / left_ankle [27] |
| foot_left | left_foot_index [31] |
| ..._right | the same with the right-side landmarks (12, 14, 16, 18, 20, 22, 24, 26, 28, 32) |

mediapipe33 -> kinect20: hip_center = mid(hips), spine = mid(hip_center, shoulder_center),
shoulder_center = mid(shoulders), head = mid(ears); arms, hands and legs as for ntu25.

mediapipe33 -> coco17: nose [0], eyes [2, 5], ears [7, 8], shoulders [11, 12], elbows [13, 14],
wrists [15, 16], hips [23, 24], knees [25, 26], ankles [27, 28] (all exact).

coco17 -> ntu25 / kinect20: spine and neck from midpoints as above, head = mid(ears); COCO has no
hands or feet, so hand, hand_tip and thumb copy the wrist and foot copies the ankle (approximations).
"""
from __future__ import annotations

import sys
from functools import lru_cache

import numpy as np

from core.cli import ArgumentParser, run_cli
from core.layouts import get_layout

# recipes: target joint -> {source joint: weight}; names are the layouts' own joint names
_Recipe = dict[str, dict[str, float]]


def _mid(*joints: str) -> dict[str, float]:
    return {j: 1.0 / len(joints) for j in joints}


def _combine(*parts: dict[str, float]) -> dict[str, float]:
    """Mean of several recipes (e.g. the midpoint of two derived joints)."""
    out: dict[str, float] = {}
    for p in parts:
        for j, w in p.items():
            out[j] = out.get(j, 0.0) + w / len(parts)
    return out


def _mp_limbs(side: str) -> _Recipe:
    s = side
    return {
        f"shoulder_{s}": {f"{s}_shoulder": 1.0}, f"elbow_{s}": {f"{s}_elbow": 1.0},
        f"wrist_{s}": {f"{s}_wrist": 1.0}, f"hand_{s}": _mid(f"{s}_wrist", f"{s}_pinky", f"{s}_index"),
        f"hip_{s}": {f"{s}_hip": 1.0}, f"knee_{s}": {f"{s}_knee": 1.0}, f"ankle_{s}": {f"{s}_ankle": 1.0},
        f"foot_{s}": {f"{s}_foot_index": 1.0},
    }


def _ntu25_torso() -> _Recipe:
    """NTU25's spine, neck and head from the hips, shoulders and ears (MediaPipe and COCO name them alike)."""
    base, top, head = _mid("left_hip", "right_hip"), _mid("left_shoulder", "right_shoulder"), \
        _mid("left_ear", "right_ear")
    return {"spine_base": base, "spine_mid": _combine(base, top), "neck": _combine(top, head), "head": head,
            "spine_shoulder": top}


def _mp_to_ntu25() -> _Recipe:
    r = _ntu25_torso()
    for s in ("left", "right"):
        r.update(_mp_limbs(s))
        r[f"hand_tip_{s}"] = {f"{s}_index": 1.0}
        r[f"thumb_{s}"] = {f"{s}_thumb": 1.0}
    return r


def _mp_to_kinect20() -> _Recipe:
    base, top = _mid("left_hip", "right_hip"), _mid("left_shoulder", "right_shoulder")
    r: _Recipe = {"hip_center": base, "spine": _combine(base, top), "shoulder_center": top,
                  "head": _mid("left_ear", "right_ear")}
    for s in ("left", "right"):
        r.update(_mp_limbs(s))
    return r


def _mp_to_coco17() -> _Recipe:
    names = get_layout("coco17").joints  # every COCO keypoint exists in MediaPipe under the same name
    return {j: {j: 1.0} for j in names}


def _coco_to_ntu25() -> _Recipe:
    r = _ntu25_torso()
    for s in ("left", "right"):
        for part in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle"):
            r[f"{part}_{s}"] = {f"{s}_{part}": 1.0}
        for part in ("hand", "hand_tip", "thumb"):
            r[f"{part}_{s}"] = {f"{s}_wrist": 1.0}
        r[f"foot_{s}"] = {f"{s}_ankle": 1.0}
    return r


def _coco_to_kinect20() -> _Recipe:
    ntu = _coco_to_ntu25()
    return {"hip_center": ntu["spine_base"], "spine": ntu["spine_mid"], "shoulder_center": ntu["spine_shoulder"],
            "head": ntu["head"], **{k: v for k, v in ntu.items() if k in get_layout("kinect20").joints}}


_NTU_KINECT_SAME = ("head", "shoulder_left", "elbow_left", "wrist_left", "hand_left", "shoulder_right", "elbow_right",
                    "wrist_right", "hand_right", "hip_left", "knee_left", "ankle_left", "foot_left", "hip_right",
                    "knee_right", "ankle_right", "foot_right")


def _ntu25_to_kinect20() -> _Recipe:
    r: _Recipe = {"hip_center": {"spine_base": 1.0}, "spine": {"spine_mid": 1.0},
                  "shoulder_center": {"spine_shoulder": 1.0}}
    r.update({j: {j: 1.0} for j in _NTU_KINECT_SAME})
    return r


def _kinect20_to_ntu25() -> _Recipe:
    r: _Recipe = {"spine_base": {"hip_center": 1.0}, "spine_mid": {"spine": 1.0},
                  "neck": _mid("shoulder_center", "head"), "spine_shoulder": {"shoulder_center": 1.0}}
    r.update({j: {j: 1.0} for j in _NTU_KINECT_SAME})
    for s in ("left", "right"):
        r[f"hand_tip_{s}"] = {f"hand_{s}": 1.0}
        r[f"thumb_{s}"] = {f"hand_{s}": 1.0}
    return r


_RECIPES = {
    ("mediapipe33", "ntu25"): _mp_to_ntu25,
    ("mediapipe33", "kinect20"): _mp_to_kinect20,
    ("mediapipe33", "coco17"): _mp_to_coco17,
    ("coco17", "ntu25"): _coco_to_ntu25,
    ("coco17", "kinect20"): _coco_to_kinect20,
    ("ntu25", "kinect20"): _ntu25_to_kinect20,
    ("kinect20", "ntu25"): _kinect20_to_ntu25,
}


def supported_conversions() -> list[tuple[str, str]]:
    return sorted(_RECIPES)


def mapping_matrix(src: str, dst: str) -> np.ndarray:
    """(V_dst, V_src) weights: x_dst = W @ x_src over the joint axis. Each row sums to 1."""
    return _cached_matrix(get_layout(src).name, get_layout(dst).name).copy()


@lru_cache(maxsize=None)
def _cached_matrix(src: str, dst: str) -> np.ndarray:
    """Built once per layout pair: the edge loop converts every frame."""
    src_l, dst_l = get_layout(src), get_layout(dst)
    if src_l.name == dst_l.name:
        w = np.eye(src_l.num_joints, dtype=np.float32)
        w.setflags(write=False)
        return w
    try:
        recipe = _RECIPES[(src_l.name, dst_l.name)]()
    except KeyError:
        raise ValueError(f"no mapping from layout {src_l.name!r} to {dst_l.name!r}; supported: "
                         + ", ".join(f"{a}->{b}" for a, b in supported_conversions())) from None
    w = np.zeros((dst_l.num_joints, src_l.num_joints), dtype=np.float32)
    for joint in dst_l.joints:
        for source, weight in recipe[joint].items():  # a KeyError here is a bug in a recipe
            w[dst_l.index(joint), src_l.index(source)] += weight
    w.setflags(write=False)
    return w


def convert_layout(x: np.ndarray, src: str, dst: str) -> np.ndarray:
    """(..., V_src, C) -> (..., V_dst, C) float32. Extra channels (e.g. visibility) are averaged like
    coordinates. A target joint is zero when any source joint it uses is all-zero (missing)."""
    x = np.asarray(x, dtype=np.float32)
    src_l = get_layout(src)
    if x.ndim < 2 or x.shape[-2] != src_l.num_joints:
        raise ValueError(f"convert_layout: array of shape {x.shape} does not have {src_l.num_joints} "
                         f"{src_l.name} joints on axis -2")
    w = _cached_matrix(src_l.name, get_layout(dst).name)
    out = np.einsum("uv,...vc->...uc", w, x)
    missing = (np.abs(x).sum(-1) == 0).astype(np.float32)  # (..., V_src)
    needs_missing = np.einsum("uv,...v->...u", (w > 0).astype(np.float32), missing) > 0
    out[needs_missing] = 0.0
    return out.astype(np.float32)


# MediaPipe world landmarks: x right (as in the image), y down, z away from the camera, hip-centred. Kinect/NTU
# camera space: x to the sensor's left, y up, z away. (-x, -y, z) is a 180-degree rotation about z between the
# two: a rotation, never a mirror (negating y alone would swap the body's front and back after alignment).
MEDIAPIPE_WORLD_TO_CAMERA = np.array([-1.0, -1.0, 1.0], dtype=np.float32)


def mediapipe_world_to_camera(x: np.ndarray) -> np.ndarray:
    """MediaPipe world axes (y down) -> Kinect camera axes (y up) by (-x, -y, z); zero joints stay zero."""
    x = np.asarray(x, dtype=np.float32)
    out = x.copy()
    out[..., :3] = x[..., :3] * MEDIAPIPE_WORLD_TO_CAMERA[: min(3, x.shape[-1])]
    return out + 0.0  # -0.0 -> 0.0 so missing joints stay exactly zero


def mapping_table(src: str, dst: str) -> str:
    """The conversion as a markdown table (for docs and --help)."""
    src_l, dst_l = get_layout(src), get_layout(dst)
    w = mapping_matrix(src, dst)
    rows = [f"| {dst_l.name} joint | from {src_l.name} |", "|---|---|"]
    for u, joint in enumerate(dst_l.joints):
        terms = [f"{w[u, v]:.3g}*{src_l.joints[v]}[{v}]" if abs(w[u, v] - 1) > 1e-6 else f"{src_l.joints[v]}[{v}]"
                 for v in np.flatnonzero(w[u])]
        rows.append(f"| {joint} | {' + '.join(terms)} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    p = ArgumentParser(prog="python -m core.mapping", description="Print a layout conversion table.")
    p.add_argument("src", choices=sorted({a for a, _ in _RECIPES}))
    p.add_argument("dst", choices=sorted({b for _, b in _RECIPES}))
    a = p.parse_args(argv)
    print(mapping_table(a.src, a.dst))


if __name__ == "__main__":
    sys.exit(run_cli(main, "python -m core.mapping"))
