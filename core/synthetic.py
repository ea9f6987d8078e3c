"""Procedural skeleton actions for the demo and unit tests (never for quality claims).

A simple humanoid is posed per frame by joint angles that follow each action's rhythm; subjects vary
in limb lengths, tempo, amplitude, facing direction and position, and sensor noise is added. The
body is built in its own frame (x = the person's left, y = up, z = forward) and mapped to any layout.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from core.cli import ArgumentParser, run_cli
from core.data.prepared import SkeletonSplit
from core.layouts import get_layout

SYNTHETIC_ACTIONS = ("wave", "clap", "squat", "jump", "punch", "kick", "arm_circles", "walk_in_place")
STAND = "stand"  # the relaxed standing pose every action starts from (not a class)


def _limb(abduction: np.ndarray, flexion: np.ndarray, side: float) -> np.ndarray:
    """Unit direction of a limb hanging down, raised sideways by `abduction` and forwards by `flexion`."""
    x = side * np.sin(abduction) * np.cos(flexion)
    y = -np.cos(abduction) * np.cos(flexion)
    z = np.sin(flexion) * np.ones_like(abduction)
    return np.stack([x, y, z], axis=-1)


def _action_angles(action: str, phase: np.ndarray, amp: float) -> dict[str, np.ndarray]:
    """Joint angles (radians) per frame for each limb; keys default to a relaxed standing pose."""
    s, c = np.sin(phase), np.cos(phase)
    zero = np.zeros_like(phase)
    a: dict[str, np.ndarray] = {}
    d = np.deg2rad
    if action == STAND:
        pass
    elif action == "wave":
        a["r_upper_abd"], a["r_fore_abd"] = zero + d(150), d(150) + amp * d(35) * s
    elif action == "clap":
        a["l_upper_flex"] = a["r_upper_flex"] = zero + d(60)
        a["l_fore_flex"] = a["r_fore_flex"] = zero + d(90)
        a["l_fore_abd"] = a["r_fore_abd"] = d(-30) + amp * d(40) * (1 + s) / 2
        a["l_upper_abd"] = a["r_upper_abd"] = zero + d(15)
    elif action == "squat":
        depth = amp * (1 - c) / 2
        a["hip_flex"], a["knee_bend"], a["drop"] = d(80) * depth, d(150) * depth, 0.35 * depth
        a["l_upper_flex"] = a["r_upper_flex"] = a["l_fore_flex"] = a["r_fore_flex"] = d(90) * depth
    elif action == "jump":
        up = np.clip(s, 0, None)
        a["lift"] = 0.15 * amp * up
        a["l_upper_abd"] = a["r_upper_abd"] = a["l_fore_abd"] = a["r_fore_abd"] = d(20) + d(140) * (1 + s) / 2
        a["leg_abd"] = d(15) * (1 + s) / 2
    elif action == "punch":
        right, left = np.clip(s, 0, None), np.clip(-s, 0, None)
        a["r_upper_flex"], a["r_fore_flex"] = d(40) + d(50) * right * amp, d(120) - d(30) * right * amp
        a["l_upper_flex"], a["l_fore_flex"] = d(40) + d(50) * left * amp, d(120) - d(30) * left * amp
    elif action == "kick":
        k = np.clip(s, 0, None) * amp
        a["r_hip_flex"], a["r_knee_bend"] = d(75) * k, d(60) * (1 - k) * (k > 0.05)
        a["l_upper_abd"] = a["r_upper_abd"] = zero + d(25)
    elif action == "arm_circles":
        a["l_upper_abd"] = a["r_upper_abd"] = d(90) + amp * d(25) * c
        a["l_upper_flex"] = a["r_upper_flex"] = amp * d(25) * s
        a["l_fore_abd"], a["r_fore_abd"] = a["l_upper_abd"], a["r_upper_abd"]
        a["l_fore_flex"], a["r_fore_flex"] = a["l_upper_flex"], a["r_upper_flex"]
    elif action == "walk_in_place":
        left, right = np.clip(s, 0, None) * amp, np.clip(-s, 0, None) * amp
        a["l_hip_flex"], a["l_knee_bend"] = d(50) * left, d(90) * left
        a["r_hip_flex"], a["r_knee_bend"] = d(50) * right, d(90) * right
        a["l_upper_flex"], a["r_upper_flex"] = d(-25) * s * amp, d(25) * s * amp
        a["l_fore_flex"], a["r_fore_flex"] = d(-25) * s * amp + d(20), d(25) * s * amp + d(20)
    else:
        raise KeyError(f"unknown synthetic action {action!r}; known: {', '.join(SYNTHETIC_ACTIONS)}")
    return a


def _body_points(action: str, frames: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Named 3D points (T, 3) of one subject performing `action` in its own body frame."""
    size = rng.uniform(0.85, 1.15)
    limb = size * rng.uniform(0.9, 1.1, size=4)  # upper arm, forearm, thigh, shin scales
    cycles = rng.uniform(1.5, 3.0)
    phase = np.linspace(0, 2 * np.pi * cycles, frames) + rng.uniform(0, 2 * np.pi)
    ang = _action_angles(action, phase, rng.uniform(0.75, 1.15))
    zero = np.zeros(frames)

    def get(key: str, alt: str | None = None) -> np.ndarray:
        return ang.get(key, ang.get(alt, zero) if alt else zero)

    pelvis = np.stack([zero, 1.0 * size - get("drop") + get("lift"), zero], -1)
    up = np.array([0.0, 1.0, 0.0])
    p: dict[str, np.ndarray] = {"pelvis": pelvis}
    p["spine_mid"] = pelvis + 0.25 * size * up
    p["spine_top"] = pelvis + 0.48 * size * up
    p["neck"] = pelvis + 0.55 * size * up
    p["head"] = pelvis + 0.68 * size * up
    for side, sign in (("l", 1.0), ("r", -1.0)):
        shoulder = p["spine_top"] + np.array([sign * 0.19 * size, 0.0, 0.0])
        upper = _limb(get(f"{side}_upper_abd"), get(f"{side}_upper_flex"), sign)
        elbow = shoulder + 0.28 * limb[0] * upper
        fore = _limb(get(f"{side}_fore_abd", f"{side}_upper_abd"), get(f"{side}_fore_flex", f"{side}_upper_flex"), sign)
        wrist = elbow + 0.25 * limb[1] * fore
        hand = wrist + 0.07 * size * fore
        hip = pelvis + np.array([sign * 0.10 * size, 0.0, 0.0])
        hip_flex = get(f"{side}_hip_flex", "hip_flex")
        thigh = _limb(get("leg_abd"), hip_flex, sign)
        knee = hip + 0.44 * limb[2] * thigh
        shin = _limb(get("leg_abd"), hip_flex - get(f"{side}_knee_bend", "knee_bend"), sign)
        ankle = knee + 0.42 * limb[3] * shin
        name = "left" if side == "l" else "right"
        p.update({f"shoulder_{name}": shoulder, f"elbow_{name}": elbow, f"wrist_{name}": wrist,
                  f"hand_{name}": hand, f"hand_tip_{name}": hand + 0.06 * size * fore,
                  f"thumb_{name}": hand + np.array([-sign * 0.03 * size, 0.0, 0.03 * size]),
                  f"hip_{name}": hip, f"knee_{name}": knee, f"ankle_{name}": ankle,
                  f"heel_{name}": ankle + np.array([0.0, -0.03, -0.04]) * size,
                  f"foot_{name}": ankle + np.array([0.0, -0.05, 0.12]) * size})
    face = {"nose": (0.0, 0.0, 0.09), "eye": (0.03, 0.03, 0.07), "ear": (0.07, 0.0, 0.0), "mouth": (0.025, -0.04, 0.07)}
    for key, (dx, dy, dz) in face.items():
        if key == "nose":
            p["nose"] = p["head"] + np.array([dx, dy, dz]) * size
            continue
        for name, sign in (("left", 1.0), ("right", -1.0)):
            p[f"{key}_{name}"] = p["head"] + np.array([sign * dx, dy, dz]) * size
    return p


# joint name in a layout -> point name of the synthetic body
_ALIASES = {
    "spine_base": "pelvis", "hip_center": "pelvis", "spine": "spine_mid", "spine_shoulder": "spine_top",
    "shoulder_center": "spine_top", "left_eye_inner": "eye_left", "left_eye_outer": "eye_left",
    "right_eye_inner": "eye_right", "right_eye_outer": "eye_right", "left_pinky": "hand_tip_left",
    "right_pinky": "hand_tip_right", "left_index": "hand_tip_left", "right_index": "hand_tip_right",
    "left_foot_index": "foot_left", "right_foot_index": "foot_right",
}


def _point_name(joint: str) -> str:
    if joint in _ALIASES:
        return _ALIASES[joint]
    for side in ("left", "right"):
        if joint.startswith(side + "_"):  # mediapipe/coco 'left_elbow' -> 'elbow_left'
            return f"{joint[len(side) + 1:]}_{side}"
    return joint


def _layout_points(action: str, layout: str, frames: int, rng: np.random.Generator) -> np.ndarray:
    points = _body_points(action, frames, rng)
    return np.stack([points[_point_name(j)] for j in get_layout(layout).joints], axis=1)  # (T, V, 3)


def joint_motion(action: str, layout: str = "ntu25", frames: int = 64, seed: int = 0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Per joint (V,), in metres, without noise, in the body's own frame: how far it gets from its mean position
    during the action (its motion), and how far from where the same subject stands still (its displacement).
    A wave moves the right forearm and displaces the right elbow (raised, then held); both are 0 for the joints
    an action leaves alone."""
    posed = _layout_points(action, layout, frames, np.random.default_rng(seed))
    rest = _layout_points(STAND, layout, frames, np.random.default_rng(seed))  # same draws: the same subject
    motion = np.linalg.norm(posed - posed.mean(axis=0), axis=-1).max(axis=0)
    return motion, np.linalg.norm(posed - rest, axis=-1).max(axis=0)


def synthetic_clip(action: str, layout: str = "ntu25", frames: int = 64, seed: int | None = None,
                   noise: float = 0.01) -> np.ndarray:
    """One clip (1, T, V, 3) in camera coordinates (metres, y up, person about 3 m from the camera)."""
    rng = np.random.default_rng(seed)
    x = _layout_points(action, layout, frames, rng)
    yaw = rng.uniform(-np.pi / 6, np.pi / 6) + np.pi  # facing the camera, give or take 30 degrees
    rot = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    x = x @ rot.T + np.array([rng.uniform(-0.4, 0.4), rng.uniform(-0.9, -0.6), rng.uniform(2.5, 3.5)])
    x = x + rng.normal(0, noise, size=x.shape)
    return x[None].astype(np.float32)


def make_synthetic_split(layout: str = "ntu25", per_class: int = 20, frames: int = 64, seed: int = 0,
                         persons: int = 1, actions: tuple[str, ...] = SYNTHETIC_ACTIONS, name: str = "synthetic"):
    """A SkeletonSplit of procedurally generated clips with varying lengths (60-100% of `frames`)."""
    rng = np.random.default_rng(seed)
    v = get_layout(layout).num_joints
    n = per_class * len(actions)
    data = np.zeros((n, persons, frames, v, 3), dtype=np.float32)
    lengths, labels, names = np.zeros(n, np.int64), np.zeros(n, np.int64), []
    i = 0
    for label, action in enumerate(actions):
        for k in range(per_class):
            length = int(rng.integers(int(0.6 * frames), frames + 1))
            data[i, 0, :length] = synthetic_clip(action, layout, length, seed=int(rng.integers(2**31)))[0]
            lengths[i], labels[i] = length, label
            names.append(f"{name}_{action}_{k:04d}")
            i += 1
    return SkeletonSplit(data, lengths, labels, names, list(actions), layout, fps=30.0, name=name)


def synthetic_stream(actions: tuple[str, ...] | list[str], layout: str = "ntu25", seconds_per_action: float = 4.0,
                     fps: float = 30.0, seed: int = 0, noise: float = 0.01) -> np.ndarray:
    """One person performing `actions` one after the other: (T, V, 3), e.g. to replay through the edge loop."""
    rng = np.random.default_rng(seed)
    frames = int(round(seconds_per_action * fps))
    clips = [synthetic_clip(a, layout, frames, seed=int(rng.integers(2**31)), noise=noise)[0] for a in actions]
    return np.concatenate(clips, axis=0)


def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(prog="python -m core.synthetic",
                            description="Write a synthetic skeleton stream (.npz) to replay through the edge loop.")
    parser.add_argument("--out", required=True, help="output folder: writes synthetic_stream.npz there "
                                                     "(keys: pose (T, V, 3), layout, fps, actions)")
    parser.add_argument("--layout", default="ntu25")
    parser.add_argument("--actions", default="wave,squat,clap,punch", help=f"comma-separated from {SYNTHETIC_ACTIONS}")
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds per action")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    actions = [a.strip() for a in args.actions.split(",") if a.strip()]
    for a in actions:
        if a not in SYNTHETIC_ACTIONS:
            parser.error(f"--actions: unknown action {a!r}; choose from {', '.join(SYNTHETIC_ACTIONS)}")
    get_layout(args.layout)
    pose = synthetic_stream(actions, args.layout, args.seconds, args.fps, args.seed)
    out = Path(args.out) / "synthetic_stream.npz"
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, pose=pose, layout=args.layout, fps=args.fps, actions=json.dumps(actions))
    print(f"wrote {out}: {len(pose)} frames of {', '.join(actions)} ({args.layout}, {args.fps:g} fps)")


if __name__ == "__main__":
    sys.exit(run_cli(main, "python -m core.synthetic"))
