"""People as identities: whole-skeleton matching across frames with motion prediction, gates and an optimal
assignment step.

Each detection is a skeleton (V, 2 or 3) in a space where people are comparable (image landmarks for video:
MediaPipe's world landmarks are hip-centred per person). A track remembers the last skeleton, its centre velocity
and a smoothed body size. Giving detection d to track k costs

    |centre_d - predicted centre_k| / size_k  +  shape_weight * mean_j |pose_d[j] - pose_k[j]| / size_k

(pose = skeleton minus its centre, over joints visible in both; the predicted centre continues the track's
velocity), i.e. "how far did the body move beyond its own motion, and how much did its shape change, in body
sizes". A pair is only allowed through three gates, so a detection is never given to a track it cannot be:

- motion: the centre moved at most `max_jump + max_speed * min(dt, max_search_s)` body sizes from the prediction
  (dt = time since the track was last seen: one frame allows a jitter, a person hidden for half a second may have
  walked on; the search stops growing after `max_search_s`, so a long-lost id is only taken back nearby);
- size: the body is at most `max_size_ratio` times larger or smaller than the track's (a person far behind is not
  the one in front);
- shape: the pose changed by at most `max_shape` body sizes.

A track unseen for longer than `reid_after_s` takes a body back only through tighter gates (`max_reid_shape`,
`max_reid_size_ratio`): someone stepping in where a person vanished gets a new id rather than theirs (a new id for
a returning person is the lesser harm: a lost person's actions are never given to someone else).

The assignment is optimal (scipy's Hungarian solver when installed, else an exact search over permutations, which
is cheap for the handful of people one camera sees). A detection no track can claim starts a *new* id: a lost
person's id is never handed to someone else, it waits `max_age_s` for that person to come back and is then
dropped. At most `max_persons` people get an id per frame (detections matched to the most established tracks
first, then the largest new bodies); the rest get None. Memory is bounded by `max_tracks`: beyond it the least
established lost track (fewest sightings, then the longest unseen) is forgotten, never a person seen this frame.
Joints with a non-finite coordinate count as not visible."""
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


def torso_joints(layout) -> list[int]:
    """Hip and shoulder joints of a core.layouts layout: where the body's centre is."""
    return [j for pair in (layout.hips, layout.shoulders) if pair for j in pair]


@dataclass
class Track:
    id: int
    points: np.ndarray  # (V, D) last seen skeleton in the tracking space
    visible: np.ndarray  # (V,) bool
    first_seen_s: float
    last_seen_s: float
    centre: np.ndarray  # (D,) centre of the last sighting
    size: float  # smoothed body size (bounding-box diagonal of the visible joints)
    velocity: np.ndarray  # (D,) centre velocity per second (smoothed)
    hits: int = 1

    def age_s(self, now_s: float) -> float:
        return now_s - self.first_seen_s

    def missing_s(self, now_s: float) -> float:
        return now_s - self.last_seen_s


@dataclass
class _Detection:
    points: np.ndarray
    visible: np.ndarray
    centre: np.ndarray
    size: float


def _centre_size(points: np.ndarray, visible: np.ndarray, anchors: np.ndarray | None = None
                 ) -> tuple[np.ndarray, float]:
    p = points[visible] if visible.any() else points
    extent = p.max(0) - p.min(0)
    if anchors is not None and (visible & anchors).sum() >= 2:  # the torso moves with the body, arms do not
        p = points[visible & anchors]
    return p.mean(0), float(max(np.linalg.norm(extent), EPS))  # bounding-box diagonal: the body's size


class SkeletonTracker:
    """Stable person ids across frames (see the module docstring for the cost, the gates and the limits).

    max_jump / max_speed: motion gate in body sizes (per frame jitter, per second of motion); max_size_ratio and
    max_shape: the size and shape gates; max_age_s: a track unseen this long is dropped; max_persons: ids handed
    out per frame (None: everyone); max_tracks bounds memory (lost tracks included). anchor_joints: joints whose
    mean is the body's centre (hips and shoulders; None: every visible joint)."""

    def __init__(self, max_jump: float = 0.3, max_speed: float = 1.0, max_size_ratio: float = 1.6,
                 max_shape: float = 0.5, shape_weight: float = 1.0, max_age_s: float = 1.0,
                 max_persons: int | None = None, max_tracks: int = 8, anchor_joints: list[int] | None = None,
                 velocity_smoothing: float = 0.5, size_smoothing: float = 0.2, max_predict_s: float = 0.5,
                 max_search_s: float = 1.0, reid_after_s: float = 0.15, max_reid_shape: float = 0.25,
                 max_reid_size_ratio: float = 1.3):
        if max_persons is not None and max_persons < 1:
            raise ValueError(f"max_persons must be >= 1, got {max_persons}")
        self.max_jump, self.max_speed = max_jump, max_speed
        self.max_size_ratio, self.max_shape, self.shape_weight = max_size_ratio, max_shape, shape_weight
        self.max_age_s = max_age_s
        self.max_persons = max_persons
        self.max_tracks = max(max_tracks, max_persons or 1)  # everyone seen in a frame keeps a track
        self.anchor_joints = list(anchor_joints) if anchor_joints else None
        self.velocity_smoothing, self.size_smoothing = velocity_smoothing, size_smoothing
        self.max_predict_s = max_predict_s  # a velocity is not extrapolated further than this
        self.max_search_s = max_search_s  # the motion gate stops growing after this long unseen
        # a track unseen for longer than reid_after_s takes a body back only if its shape and size are close:
        # someone stepping in where a person vanished gets a new id rather than theirs
        self.reid_after_s, self.max_reid_shape, self.max_reid_size_ratio = reid_after_s, max_reid_shape, \
            max_reid_size_ratio
        self.tracks: dict[int, Track] = {}
        self.next_id = 0
        hungarian()  # pay for the scipy import now, not on the first frame

    def reset(self) -> None:
        self.tracks.clear()

    def _anchors(self, v: int) -> np.ndarray | None:
        if not self.anchor_joints or max(self.anchor_joints) >= v:
            return None
        mask = np.zeros(v, bool)
        mask[self.anchor_joints] = True
        return mask

    def _detection(self, skeleton: np.ndarray, visibility: np.ndarray | None) -> _Detection | None:
        sk = np.asarray(skeleton, dtype=np.float64)
        if sk.ndim != 2 or sk.shape[0] == 0:
            return None
        finite = np.isfinite(sk).all(1)
        sk = np.where(finite[:, None], sk, 0.0)  # a NaN / inf joint is a missing joint, never a far-away body
        seen = finite & (np.abs(sk).sum(1) > 0)
        if visibility is not None:
            vis = np.asarray(visibility, dtype=np.float64).reshape(-1)
            if vis.shape[0] == seen.shape[0]:
                seen &= np.nan_to_num(vis, nan=0.0) > 0.5
        if seen.sum() < 2:  # too few confident joints to compare: compare on every finite one
            seen = finite & (np.abs(sk).sum(1) > 0)
        if seen.sum() < 2:
            return None  # nothing to track (all joints missing)
        centre, size = _centre_size(sk, seen, self._anchors(len(sk)))
        return _Detection(sk, seen, centre, size)

    def cost(self, track: Track, det: _Detection, now_s: float) -> float:
        """The matching cost of a detection for a track, or inf when a gate forbids the pair."""
        both = track.visible & det.visible
        if both.sum() < 2 or track.points.shape != det.points.shape:
            return np.inf
        dt = max(track.missing_s(now_s), 0.0)
        reid = dt > self.reid_after_s
        max_ratio = self.max_reid_size_ratio if reid else self.max_size_ratio
        ratio = det.size / track.size
        if not 1 / max_ratio <= ratio <= max_ratio:
            return np.inf
        predicted = track.centre + track.velocity * min(dt, self.max_predict_s)
        move = float(np.linalg.norm(det.centre - predicted)) / track.size
        if move > self.max_jump + self.max_speed * min(dt, self.max_search_s):
            return np.inf
        shape = float(np.linalg.norm((det.points[both] - det.centre) - (track.points[both] - track.centre),
                                     axis=1).mean()) / track.size
        if shape > (self.max_reid_shape if reid else self.max_shape):
            return np.inf
        return move + self.shape_weight * shape

    def _claim(self, track: Track, det: _Detection, now_s: float) -> None:
        dt = now_s - track.last_seen_s
        if dt > 0:
            v = (det.centre - track.centre) / dt
            a = self.velocity_smoothing if track.hits > 1 else 1.0
            track.velocity = a * v + (1 - a) * track.velocity
        track.size = self.size_smoothing * det.size + (1 - self.size_smoothing) * track.size
        track.points, track.visible, track.centre = det.points, det.visible, det.centre
        track.last_seen_s, track.hits = now_s, track.hits + 1

    def update(self, skeletons: list[np.ndarray], now_s: float,
               visibility: list[np.ndarray | None] | None = None) -> list[int | None]:
        """skeletons: one (V, D) array per detection (all-zero or non-finite joints count as not visible; with
        `visibility`, joints below 0.5 too). Returns the track id of every detection, in the detections' order:
        None for a detection with nothing to track or beyond `max_persons`."""
        visibility = list(visibility) if visibility is not None else [None] * len(skeletons)
        dets = [self._detection(sk, vis) for sk, vis in zip(skeletons, visibility)]
        usable = [j for j, d in enumerate(dets) if d is not None]
        track_list = list(self.tracks.values())
        cost = np.full((len(track_list), len(usable)), np.inf)
        for i, tr in enumerate(track_list):
            for c, j in enumerate(usable):
                cost[i, c] = self.cost(tr, dets[j], now_s)
        matched: dict[int, Track] = {}  # detection index -> track
        finite = np.where(np.isfinite(cost), cost, 1e9)  # solvers want finite numbers; 1e9 = forbidden
        for i, c in assign(finite):
            if np.isfinite(cost[i, c]):
                matched[usable[c]] = track_list[i]
        # who gets an id this frame: the most established matched tracks first, then the largest new bodies;
        # new ids are handed out left to right (stable whatever order the detector lists people in)
        order = sorted(matched, key=lambda j: (-matched[j].hits, matched[j].first_seen_s)) + \
            sorted((j for j in usable if j not in matched), key=lambda j: -dets[j].size)
        if self.max_persons is not None:
            order = order[:self.max_persons]
        order = [j for j in order if j in matched] + sorted((j for j in order if j not in matched),
                                                            key=lambda j: tuple(dets[j].centre))
        ids: list[int | None] = [None] * len(dets)
        seen_now = set()
        for j in order:
            det = dets[j]
            if j in matched:
                tr = matched[j]
                self._claim(tr, det, now_s)
            else:  # somebody new (never a lost person's id)
                tr = Track(self.next_id, det.points, det.visible, now_s, now_s, det.centre, det.size,
                           np.zeros_like(det.centre))
                self.tracks[tr.id] = tr
                self.next_id += 1
            ids[j] = tr.id
            seen_now.add(tr.id)
        for tid in [t.id for t in self.tracks.values() if t.missing_s(now_s) > self.max_age_s]:
            del self.tracks[tid]
        while len(self.tracks) > self.max_tracks:  # bounded memory: forget the least established lost track
            lost = [t for t in self.tracks.values() if t.id not in seen_now] or list(self.tracks.values())
            weakest = min(lost, key=lambda t: (t.hits, -t.missing_s(now_s), -t.id))
            del self.tracks[weakest.id]
        return ids
