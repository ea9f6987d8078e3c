"""People as identities: whole-skeleton matching across frames with an assignment step and track ages.

Each detection is a skeleton (V, 2 or 3) in a space where people are comparable (image landmarks for video:
MediaPipe's world landmarks are hip-centred per person). The cost of giving detection d to track k is

    |centre_d - centre_k| / size_k  +  shape_weight * mean_j |pose_d[j] - pose_k[j]| / size_k

over joints visible in both (pose = skeleton minus its centre), i.e. "how far did the body move, and how much did
its shape change, in body sizes". Pairs above `max_cost` are never matched. The assignment is optimal
(scipy's Hungarian solver when installed, else an exact search over permutations, which is cheap for the handful
of people one camera sees). A detection nobody claims starts a *new* id: a lost person's id is never handed to
someone else, it waits `max_age_s` for that person to come back and is then dropped."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import permutations

import numpy as np

EPS = 1e-6
EXACT_SEARCH_LIMIT = 6  # without scipy: exact permutation search up to this many rows/columns, greedy above


@lru_cache(maxsize=None)
def hungarian():
    """scipy's linear_sum_assignment, or None without scipy (imported once: the first import takes a second)."""
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError:
        return None
    return linear_sum_assignment


def assign(cost: np.ndarray) -> list[tuple[int, int]]:
    """Minimum-cost one-to-one assignment of rows to columns (rectangular allowed); returns (row, col) pairs."""
    rows, cols = cost.shape
    if rows == 0 or cols == 0:
        return []
    linear_sum_assignment = hungarian()
    if linear_sum_assignment is not None:
        r, c = linear_sum_assignment(cost)
        return list(zip(r.tolist(), c.tolist()))
    if min(rows, cols) <= EXACT_SEARCH_LIMIT and max(rows, cols) <= EXACT_SEARCH_LIMIT:
        transpose = rows > cols
        m = cost.T if transpose else cost
        best, best_perm = np.inf, ()
        for perm in permutations(range(m.shape[1]), m.shape[0]):
            total = float(m[np.arange(m.shape[0]), perm].sum())
            if total < best:
                best, best_perm = total, perm
        pairs = list(enumerate(best_perm))
        return [(c, r) for r, c in pairs] if transpose else pairs
    pairs, used_r, used_c = [], set(), set()  # many people and no scipy: greedy, cheapest pair first
    for flat in np.argsort(cost, axis=None):
        r, c = divmod(int(flat), cols)
        if r not in used_r and c not in used_c:
            pairs.append((r, c))
            used_r.add(r)
            used_c.add(c)
    return pairs


@dataclass
class Track:
    id: int
    points: np.ndarray  # (V, D) last seen skeleton in the tracking space
    visible: np.ndarray  # (V,) bool
    first_seen_s: float
    last_seen_s: float
    hits: int = 1

    def age_s(self, now_s: float) -> float:
        return now_s - self.first_seen_s

    def missing_s(self, now_s: float) -> float:
        return now_s - self.last_seen_s


def _centre_size(points: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, float]:
    p = points[visible] if visible.any() else points
    centre = p.mean(0)
    extent = p.max(0) - p.min(0)
    return centre, float(max(np.linalg.norm(extent), EPS))  # bounding-box diagonal: the body's size


class SkeletonTracker:
    """Stable person ids across frames.

    max_cost: the largest matching cost (body sizes of movement + weighted shape change) accepted between two
    consecutive sightings; it grows with the time a person was unseen (`drift_per_s`) so a person walking behind
    something can be picked up again. max_age_s: a track unseen this long is dropped. max_tracks bounds memory."""

    def __init__(self, max_cost: float = 0.6, shape_weight: float = 1.0, drift_per_s: float = 1.0,
                 max_age_s: float = 1.0, max_tracks: int = 8):
        self.max_cost = max_cost
        self.shape_weight = shape_weight
        self.drift_per_s = drift_per_s
        self.max_age_s = max_age_s
        self.max_tracks = max_tracks
        self.tracks: dict[int, Track] = {}
        self.next_id = 0
        hungarian()  # pay for the scipy import now, not on the first frame

    def reset(self) -> None:
        self.tracks.clear()

    def cost(self, track: Track, points: np.ndarray, visible: np.ndarray) -> float:
        both = track.visible & visible
        if both.sum() < 2:
            return np.inf
        c_t, size = _centre_size(track.points, both)
        c_d, _ = _centre_size(points, both)
        move = float(np.linalg.norm(c_d - c_t)) / size
        shape = float(np.linalg.norm((points[both] - c_d) - (track.points[both] - c_t), axis=1).mean()) / size
        return move + self.shape_weight * shape

    def update(self, skeletons: list[np.ndarray], now_s: float,
               visibility: list[np.ndarray | None] | None = None) -> list[int]:
        """skeletons: one (V, D) array per detection (all-zero joints count as not visible unless `visibility`
        says otherwise). Returns the track id of every detection, in the detections' order."""
        visibility = visibility or [None] * len(skeletons)
        dets = []
        for sk, vis in zip(skeletons, visibility):
            sk = np.asarray(sk, dtype=np.float64)
            seen = np.abs(sk).sum(1) > 0 if vis is None else (np.asarray(vis) > 0.5) & (np.abs(sk).sum(1) > 0)
            if seen.sum() < 2:  # too few joints to compare: compare on all of them
                seen = np.ones(len(sk), bool)
            dets.append((sk, seen))
        track_list = list(self.tracks.values())
        cost = np.full((len(track_list), len(dets)), np.inf)
        for i, tr in enumerate(track_list):
            limit = self.max_cost + self.drift_per_s * max(tr.missing_s(now_s), 0.0)
            for j, (sk, seen) in enumerate(dets):
                c = self.cost(tr, sk, seen)
                cost[i, j] = c if c <= limit else np.inf
        ids: list[int | None] = [None] * len(dets)
        finite = np.where(np.isfinite(cost), cost, 1e9)  # solvers want finite numbers; 1e9 = forbidden
        for i, j in assign(finite):
            if np.isfinite(cost[i, j]):
                tr = track_list[i]
                ids[j] = tr.id
                tr.points, tr.visible = dets[j][0], dets[j][1]
                tr.last_seen_s, tr.hits = now_s, tr.hits + 1
        for j, (sk, seen) in enumerate(dets):
            if ids[j] is None:  # somebody new (never a lost person's id)
                tr = Track(self.next_id, sk, seen, now_s, now_s)
                self.tracks[tr.id] = tr
                self.next_id += 1
                ids[j] = tr.id
        for tid in [t.id for t in self.tracks.values() if t.missing_s(now_s) > self.max_age_s]:
            del self.tracks[tid]
        while len(self.tracks) > self.max_tracks:  # bounded memory: forget the longest-lost track
            oldest = max(self.tracks.values(), key=lambda t: t.missing_s(now_s))
            del self.tracks[oldest.id]
        return [int(i) for i in ids]
