"""Skeleton layouts as data: joint names, edges, centre, left/right pairs and body parts.

Edges are undirected pairs; the bone parent of every joint is derived by a breadth-first walk
from the centre, so bones and graph partitions never disagree.

    python -m core.layouts              # the registered layouts
    python -m core.layouts kinect20     # its joint order as a markdown table (index, joint, parent, mirror, part)
"""
from __future__ import annotations

import sys
from collections import deque
from dataclasses import dataclass, field
from difflib import get_close_matches
from functools import cached_property

import numpy as np

from core.cli import ArgumentParser, run_cli


@dataclass(frozen=True)
class Layout:
    name: str
    joints: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]
    center: tuple[int, ...]  # joints whose mean is the body centre (one joint or a midpoint)
    flip_pairs: tuple[tuple[int, int], ...]  # (left, right) joint pairs
    parts: dict[str, tuple[int, ...]] = field(default_factory=dict)  # body-part groups
    hips: tuple[int, int] | None = None  # (left, right), for canonical orientation
    shoulders: tuple[int, int] | None = None  # (left, right)
    spine: tuple[int, int] | None = None  # (bottom, top), the body's up direction
    description: str = ""

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    def index(self, joint_name: str) -> int:
        return self.joints.index(joint_name)

    @cached_property
    def hop_distance(self) -> np.ndarray:
        """Graph hops from every joint to the nearest centre joint."""
        neighbours = [[] for _ in self.joints]
        for a, b in self.edges:
            neighbours[a].append(b)
            neighbours[b].append(a)
        dist = np.full(self.num_joints, -1, dtype=np.int64)
        queue = deque(self.center)
        for c in self.center:
            dist[c] = 0
        while queue:
            j = queue.popleft()
            for n in neighbours[j]:
                if dist[n] < 0:
                    dist[n] = dist[j] + 1
                    queue.append(n)
        return dist

    @cached_property
    def parents(self) -> np.ndarray:
        """Bone parent of each joint (centre joints are their own parent)."""
        dist = self.hop_distance
        parent = np.arange(self.num_joints)
        for a, b in sorted(self.edges):
            for child, par in ((a, b), (b, a)):
                if dist[child] == dist[par] + 1 and parent[child] == child:
                    parent[child] = par
        return parent

    @cached_property
    def flip_index(self) -> np.ndarray:
        """Permutation that swaps left and right joints."""
        perm = np.arange(self.num_joints)
        for left, right in self.flip_pairs:
            perm[left], perm[right] = right, left
        return perm


_LAYOUTS: dict[str, Layout] = {}


def register_layout(layout: Layout) -> Layout:
    _LAYOUTS[layout.name] = layout
    return layout


def get_layout(name: str | Layout) -> Layout:
    if isinstance(name, Layout):
        return name
    try:
        return _LAYOUTS[name]
    except KeyError:
        raise KeyError(f"unknown skeleton layout {name!r}; known layouts: {', '.join(sorted(_LAYOUTS))}") from None


def list_layouts() -> list[str]:
    return sorted(_LAYOUTS)


def joint_table(name: str | Layout) -> str:
    """The layout's joint order as a markdown table: index (0- and 1-based), joint, bone parent, left/right
    mirror, body part."""
    layout = get_layout(name)
    part_of = {j: part for part, joints in layout.parts.items() for j in joints}
    rows = ["| index | 1-based | joint | bone parent | mirror | part |", "|---|---|---|---|---|---|"]
    for j, joint in enumerate(layout.joints):
        parent = int(layout.parents[j])
        mirror = int(layout.flip_index[j])
        rows.append(f"| {j} | {j + 1} | {joint} | {'(centre)' if parent == j else layout.joints[parent]} | "
                    f"{'' if mirror == j else layout.joints[mirror]} | {part_of.get(j, '')} |")
    return "\n".join(rows)


def joint_order_index(name: str | Layout, order: str | list[str] | list[int] | tuple) -> np.ndarray:
    """Where the layout's joints are in a source that stores them in another order.

    `order` lists the source's joints in their stored order, each as a layout joint name or a 0-based layout
    index (a list, or one comma-separated string): ``order[k]`` is the layout joint stored at position k.
    Returns ``index`` with ``source[..., index, :]`` in the layout's order. Raises ValueError naming the
    problem (unknown name, out-of-range index, a joint missing or given twice, wrong count).
    """
    layout = get_layout(name)
    items = [s.strip() for s in order.split(",")] if isinstance(order, str) else list(order)
    v = layout.num_joints
    if len(items) != v:
        raise ValueError(f"joint order has {len(items)} entries, layout {layout.name} has {v} joints "
                         f"(python -m core.layouts {layout.name} lists them)")
    targets = []
    for k, item in enumerate(items):
        text = str(item).strip()
        if text.lstrip("-").isdigit():
            j = int(text)
            if not 0 <= j < v:
                raise ValueError(f"joint order entry {k}: index {j} is outside 0..{v - 1} for layout {layout.name}")
        elif text in layout.joints:
            j = layout.joints.index(text)
        else:
            close = get_close_matches(text, layout.joints, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f" (python -m core.layouts {layout.name})"
            raise ValueError(f"joint order entry {k}: {text!r} is not a {layout.name} joint{hint}")
        targets.append(j)
    seen = np.bincount(targets, minlength=v)
    if (seen != 1).any():
        twice = [layout.joints[j] for j in np.flatnonzero(seen > 1)]
        absent = [layout.joints[j] for j in np.flatnonzero(seen == 0)]
        raise ValueError(f"joint order must name every {layout.name} joint once: given twice {twice}, "
                         f"missing {absent}")
    index = np.empty(v, dtype=np.int64)
    index[targets] = np.arange(v)  # layout joint targets[k] is stored at source position k
    return index


def _pairs(one_based: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    return tuple((a - 1, b - 1) for a, b in one_based)


# NTU RGB+D (Kinect v2), 25 joints. Edges follow the Kinect v2 body tree (as in st-gcn/pyskl).
NTU25 = register_layout(Layout(
    name="ntu25",
    joints=("spine_base", "spine_mid", "neck", "head", "shoulder_left", "elbow_left", "wrist_left",
            "hand_left", "shoulder_right", "elbow_right", "wrist_right", "hand_right", "hip_left",
            "knee_left", "ankle_left", "foot_left", "hip_right", "knee_right", "ankle_right", "foot_right",
            "spine_shoulder", "hand_tip_left", "thumb_left", "hand_tip_right", "thumb_right"),
    edges=_pairs([(1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9),
                  (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18),
                  (20, 19), (22, 8), (23, 8), (24, 12), (25, 12)]),
    center=(0,),
    flip_pairs=_pairs([(5, 9), (6, 10), (7, 11), (8, 12), (13, 17), (14, 18), (15, 19), (16, 20),
                       (22, 24), (23, 25)]),
    parts={
        "torso": (0, 1, 2, 3, 20),
        "left_arm": (4, 5, 6, 7, 21, 22),
        "right_arm": (8, 9, 10, 11, 23, 24),
        "left_leg": (12, 13, 14, 15),
        "right_leg": (16, 17, 18, 19),
    },
    hips=(12, 16), shoulders=(4, 8), spine=(0, 20),
    description="Kinect v2 (NTU RGB+D 60/120)",
))

# Kinect v1, 20 joints (NW-UCLA, MSR Action3D, UTD-MHAD).
KINECT20 = register_layout(Layout(
    name="kinect20",
    joints=("hip_center", "spine", "shoulder_center", "head", "shoulder_left", "elbow_left", "wrist_left",
            "hand_left", "shoulder_right", "elbow_right", "wrist_right", "hand_right", "hip_left",
            "knee_left", "ankle_left", "foot_left", "hip_right", "knee_right", "ankle_right", "foot_right"),
    edges=_pairs([(1, 2), (2, 3), (4, 3), (5, 3), (6, 5), (7, 6), (8, 7), (9, 3), (10, 9), (11, 10),
                  (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19)]),
    center=(0,),
    flip_pairs=_pairs([(5, 9), (6, 10), (7, 11), (8, 12), (13, 17), (14, 18), (15, 19), (16, 20)]),
    parts={
        "torso": (0, 1, 2, 3),
        "left_arm": (4, 5, 6, 7),
        "right_arm": (8, 9, 10, 11),
        "left_leg": (12, 13, 14, 15),
        "right_leg": (16, 17, 18, 19),
    },
    hips=(12, 16), shoulders=(4, 8), spine=(0, 2),
    description="Kinect v1 (NW-UCLA, MSR Action3D, UTD-MHAD)",
))

# MediaPipe BlazePose, 33 landmarks. MediaPipe's own connections leave the face apart from the body;
# nose-shoulder and mouth-nose edges are added so the graph is connected.
MEDIAPIPE33 = register_layout(Layout(
    name="mediapipe33",
    joints=("nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
            "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
            "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
            "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip", "right_hip",
            "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel", "right_heel",
            "left_foot_index", "right_foot_index"),
    edges=((0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10), (11, 12), (11, 13),
           (13, 15), (15, 17), (15, 19), (15, 21), (17, 19), (12, 14), (14, 16), (16, 18), (16, 20),
           (16, 22), (18, 20), (11, 23), (12, 24), (23, 24), (23, 25), (24, 26), (25, 27), (26, 28),
           (27, 29), (28, 30), (29, 31), (30, 32), (27, 31), (28, 32),
           (0, 11), (0, 12), (9, 0), (10, 0)),
    center=(23, 24),
    flip_pairs=((1, 4), (2, 5), (3, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16), (17, 18), (19, 20),
                (21, 22), (23, 24), (25, 26), (27, 28), (29, 30), (31, 32)),
    parts={
        "torso": (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 23, 24),
        "left_arm": (13, 15, 17, 19, 21),
        "right_arm": (14, 16, 18, 20, 22),
        "left_leg": (25, 27, 29, 31),
        "right_leg": (26, 28, 30, 32),
    },
    hips=(23, 24), shoulders=(11, 12), spine=None,
    description="MediaPipe Pose / BlazePose, 33 landmarks",
))

# COCO 17 keypoints (2D pose estimators). Hip-hip edge added to the pyskl tree to close the pelvis.
COCO17 = register_layout(Layout(
    name="coco17",
    joints=("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
            "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
            "right_knee", "left_ankle", "right_ankle"),
    edges=((15, 13), (13, 11), (16, 14), (14, 12), (11, 5), (12, 6), (9, 7), (7, 5), (10, 8), (8, 6),
           (5, 0), (6, 0), (1, 0), (3, 1), (2, 0), (4, 2), (11, 12)),
    center=(11, 12),
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    parts={
        "torso": (0, 1, 2, 3, 4, 5, 6, 11, 12),
        "left_arm": (7, 9),
        "right_arm": (8, 10),
        "left_leg": (13, 15),
        "right_leg": (14, 16),
    },
    hips=(11, 12), shoulders=(5, 6), spine=None,
    description="COCO 17 keypoints",
))


def main(argv: list[str] | None = None) -> None:
    p = ArgumentParser(prog="python -m core.layouts",
                                description="List the skeleton layouts, or print one layout's joint order.")
    p.add_argument("layout", nargs="?", help=f"a layout ({', '.join(list_layouts())}); none lists them all")
    args = p.parse_args(argv)
    if not args.layout:
        print("| layout | joints | what |\n|---|---|---|")
        for name in list_layouts():
            print(f"| {name} | {get_layout(name).num_joints} | {get_layout(name).description} |")
        return
    layout = get_layout(args.layout)  # an unknown name: one error line, exit 2 (run_cli)
    print(f"{layout.name}: {layout.description}, {layout.num_joints} joints\n")
    print(joint_table(layout))


if __name__ == "__main__":
    sys.exit(run_cli(main, "python -m core.layouts"))
