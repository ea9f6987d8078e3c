"""Skeleton layouts as data: joint names, edges, centre, left/right pairs and body parts.

Edges are undirected pairs; the bone parent of every joint is derived by a breadth-first walk
from the centre, so bones and graph partitions never disagree.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np


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
