""""Nothing I know" as an answer: an open-set rule computed from a classifier's logits and the clip it saw, with
thresholds chosen on validation clips so that a known share of in-distribution clips is kept.

A classifier trained on K actions spreads all its probability over those K, so a softmax of 0.99 on random noise
says nothing. The rule has two parts:

- **a body test** (the input): real skeletons keep their bone lengths from frame to frame, random "skeletons" do
  not. `body_unsteadiness` is the median over bones of the coefficient of variation of the bone's length over the
  clip; a clip above `body_max` (the validation clips' 99th percentile) is unknown whatever the model says. Scale and
  units cancel, so it needs no calibration per data set beyond that percentile.
- **a classifier score** (the logits; higher = more like the training data): ``energy`` = T * logsumexp(logits / T)
  (Liu et al., NeurIPS 2020), ``max_logit`` (Hendrycks et al., ICML 2022) or ``max_softmax`` (Hendrycks & Gimpel,
  ICLR 2017), with a threshold such that, with the body test, at least `keep` (95 %) of the validation clips are
  kept.

    rule = OpenSet.fit(val_logits, val_clips, layout="kinect20", kind="max_softmax", keep=0.95, data="nw_ucla:val")
    rule.scores(logits, clips)     # the classifier score, -inf where the body test fails (AUROC uses this)
    rule.known(logits, clips)      # bool per clip
    auroc(in_scores, out_scores), rejection(rule.threshold, out_scores)

The rule is stored in the checkpoint under ``openset`` (``python -m train.openset``, which also picks the score on
validation clips) and copied into every exported artifact's metadata (core.artifact), so the edge loop answers
``unknown`` with any runtime."""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from core.data.prepared import SkeletonSplit
from core.layouts import get_layout

SCORES = ("energy", "max_logit", "max_softmax")
OUTLIER_KINDS = ("synthetic", "random_gaussian", "random_walk")
DEFAULT_SCORE = "energy"
DEFAULT_KEEP = 0.95
BODY_KEEP = 0.99  # the body test alone may reject at most 1 % of the validation clips


def _logsumexp(z: np.ndarray) -> np.ndarray:
    top = z.max(axis=-1, keepdims=True)
    return (top + np.log(np.exp(z - top).sum(axis=-1, keepdims=True)))[..., 0]


def openset_scores(logits: np.ndarray, kind: str = DEFAULT_SCORE, temperature: float = 1.0) -> np.ndarray:
    """(N,) scores of (N, K) logits (a single (K,) row gives a scalar array); higher = more in-distribution.
    Non-finite logits give -inf (never known)."""
    if kind not in SCORES:
        raise ValueError(f"unknown open-set score {kind!r}; choose from {', '.join(SCORES)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    z = np.asarray(logits, dtype=np.float64)
    finite = np.isfinite(z).all(axis=-1)
    z = np.where(np.isfinite(z), z, 0.0)
    if kind == "energy":
        out = temperature * _logsumexp(z / temperature)
    elif kind == "max_logit":
        out = z.max(axis=-1)
    else:
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        out = (e / e.sum(axis=-1, keepdims=True)).max(axis=-1)
    return np.where(finite, out, -np.inf)


def body_unsteadiness(clips: np.ndarray, layout: str) -> np.ndarray:
    """(N,) for clips (N, M, T, V, C) (or one (M, T, V, C) clip): the median over bones of std / mean of the
    bone's length over the frames where both of its joints are present (all-zero joints are missing), the
    largest over the people in the clip; 0 for a clip with nobody (no evidence against it)."""
    x = np.asarray(clips, dtype=np.float64)
    if x.ndim == 4:
        x = x[None]
    parents = np.asarray(get_layout(layout).parents)
    bones = parents != np.arange(len(parents))
    xyz = x[..., :3]
    present = np.isfinite(xyz).all(-1) & (np.abs(np.nan_to_num(xyz)).sum(-1) > 0)  # (N, M, T, V)
    both = present & present[..., parents]
    length = np.where(both, np.linalg.norm(np.nan_to_num(xyz) - np.nan_to_num(xyz)[..., parents, :], axis=-1),
                      np.nan)
    with warnings.catch_warnings():  # bones or people never seen: NaN, handled below
        warnings.simplefilter("ignore", RuntimeWarning)
        mean, std = np.nanmean(length, axis=2), np.nanstd(length, axis=2)  # (N, M, V)
        cv = (std / np.maximum(mean, 1e-9))[..., bones]
        per_person = np.nanmedian(cv, axis=-1)  # (N, M)
        out = np.nanmax(np.where(np.isfinite(per_person), per_person, -np.inf), axis=-1)
    return np.where(np.isfinite(out), out, 0.0)


def threshold_for(scores: np.ndarray, keep: float = DEFAULT_KEEP) -> float:
    """The largest threshold t with at least `keep` of `scores` >= t (the clips scored at t are kept)."""
    s = np.sort(np.asarray(scores, dtype=np.float64).reshape(-1))
    if s.size == 0:
        raise ValueError("no scores to choose a threshold from")
    if not 0 < keep <= 1:
        raise ValueError(f"keep must be in (0, 1], got {keep}")
    drop = int(np.floor((1 - keep) * s.size + 1e-9))  # at most this many clips fall below the threshold
    return float(s[min(drop, s.size - 1)])


def auroc(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
    """P(an in-distribution clip scores above an out-of-distribution one), ties counting half (Mann-Whitney)."""
    a = np.asarray(in_scores, dtype=np.float64).reshape(-1)
    b = np.asarray(out_scores, dtype=np.float64).reshape(-1)
    if a.size == 0 or b.size == 0:
        raise ValueError("AUROC needs in- and out-of-distribution scores")
    b = np.sort(b)
    below = np.searchsorted(b, a, side="left")  # out-of-distribution scores under each in-distribution one
    tied = np.searchsorted(b, a, side="right") - below
    return float((below + 0.5 * tied).sum() / (a.size * b.size))


def rejection(threshold: float, scores: np.ndarray) -> float:
    """Share of `scores` below the threshold (called unknown)."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    return float((s < threshold).mean()) if s.size else float("nan")


@dataclass(frozen=True)
class OpenSet:
    """The rule "unknown when the body test fails or the score `kind` is below `threshold`", with where it was
    chosen."""
    kind: str
    threshold: float
    temperature: float = 1.0
    keep: float = DEFAULT_KEEP  # share of the validation clips the rule keeps (at least)
    body_max: float | None = None  # largest body_unsteadiness of a known clip (None: no body test)
    layout: str | None = None  # the layout the body test reads bones in
    data: str = ""  # the validation split it was chosen on
    clips: int = 0
    kept: float | None = None  # share of those clips actually kept

    @classmethod
    def fit(cls, logits: np.ndarray, clips: np.ndarray | None = None, layout: str | None = None,
            kind: str = DEFAULT_SCORE, keep: float = DEFAULT_KEEP, data: str = "", temperature: float = 1.0,
            body_keep: float = BODY_KEEP) -> "OpenSet":
        """Thresholds from in-distribution validation clips: the body test keeps `body_keep` of them (when clips
        are given), then the score threshold is the largest that keeps at least `keep` of all of them."""
        scores = openset_scores(logits, kind, temperature)
        n = scores.size
        if n == 0:
            raise ValueError("no validation clips to choose a threshold from")
        body_max = None
        body_ok = np.ones(n, bool)
        if clips is not None and layout is not None:
            unsteady = body_unsteadiness(clips, layout)
            body_max = float(np.sort(unsteady)[min(n - 1, int(np.ceil(body_keep * n)) - 1)])
            body_ok = unsteady <= body_max
        need = int(np.ceil(keep * n - 1e-9))  # clips that must be kept
        candidates = np.sort(scores[body_ok])[::-1]
        if candidates.size < need:  # the body test alone rejects too many: it goes
            body_max, body_ok, candidates = None, np.ones(n, bool), np.sort(scores)[::-1]
        threshold = float(candidates[max(need, 1) - 1])
        kept = float((body_ok & (scores >= threshold)).mean())
        return cls(kind, threshold, temperature, keep, body_max, layout if body_max is not None else None, data,
                   int(n), kept)

    def scores(self, logits: np.ndarray, clips: np.ndarray | None = None) -> np.ndarray:
        """The classifier score per clip, -inf where the body test fails (clips: (N, M, T, V, C) in `layout`)."""
        s = openset_scores(logits, self.kind, self.temperature)
        if self.body_max is not None and clips is not None:
            s = np.where(body_unsteadiness(clips, self.layout) <= self.body_max, s, -np.inf)
        return s

    def known(self, logits: np.ndarray, clips: np.ndarray | None = None) -> np.ndarray:
        """bool per row of logits: passes the body test (when clips are given) and scores at or above the threshold."""
        return self.scores(logits, clips) >= self.threshold

    def probabilities(self, logits: np.ndarray, clip: np.ndarray | None = None) -> np.ndarray:
        """Softmax of one (K,) logits row, or all zeros when the clip (M, T, V, C) is unknown (no evidence for any
        class: a smoother then decays toward unknown instead of starting an action)."""
        z = np.asarray(logits, dtype=np.float64).reshape(-1)
        if not bool(self.known(z[None], None if clip is None else np.asarray(clip)[None])[0]):
            return np.zeros(z.shape, np.float32)
        e = np.exp(z - z.max())
        return (e / e.sum()).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "OpenSet | None":
        """The rule from a checkpoint's / artifact's `openset` entry (None when there is none)."""
        if not d:
            return None
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        rule = cls(**known)
        if rule.kind not in SCORES or not np.isfinite(rule.threshold):
            raise ValueError(f"bad open-set entry {d!r}: kind must be one of {SCORES} and threshold finite")
        return rule


def rule_from_metadata(metadata: dict[str, Any], threshold: float | None = None) -> OpenSet | None:
    """The open-set rule an artifact carries, or one with `threshold` instead (-inf: none at all)."""
    rule = OpenSet.from_dict(metadata.get("openset"))
    if threshold is None:
        return rule
    if not math.isfinite(threshold):
        return None
    return replace(rule or OpenSet(DEFAULT_SCORE, float(threshold)), threshold=float(threshold))


def mean_pose(split: SkeletonSplit) -> np.ndarray:
    """(V, C) mean first-frame pose of a split's first person (joints never seen: 0)."""
    first = split.data[:, 0, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nan_to_num(np.nanmean(np.where(first != 0, first, np.nan), axis=0))


def outlier_split(kind: str, layout: str, persons: int = 1, pose: np.ndarray | None = None, n: int = 100,
                  frames: int = 60, seed: int = 0) -> SkeletonSplit:
    """Clips that are none of anybody's actions, as an unlabelled split: the toolkit's procedural actions
    (`synthetic`: wave, clap, squat, ...), every joint drawn from N(0, 0.5 m) (`random_gaussian`), or a human pose
    (`pose`, e.g. mean_pose of the validation clips) whose joints drift as independent 1 cm random walks."""
    rng = np.random.default_rng(seed)
    v = get_layout(layout).num_joints
    if kind == "synthetic":
        from core.synthetic import SYNTHETIC_ACTIONS, make_synthetic_split
        data = make_synthetic_split(layout, per_class=max(1, n // len(SYNTHETIC_ACTIONS)), frames=frames,
                                    seed=seed).data
    elif kind == "random_gaussian":
        data = rng.normal(0.0, 0.5, (n, 1, frames, v, 3))
    elif kind == "random_walk":
        base = np.zeros((v, 3)) if pose is None else np.asarray(pose, np.float64)[:, :3]
        data = base[None, None, None] + np.cumsum(rng.normal(0.0, 0.01, (n, 1, frames, v, 3)), axis=2)
    else:
        raise ValueError(f"unknown outlier kind {kind!r}; choose from {', '.join(OUTLIER_KINDS)}")
    out = np.zeros((len(data), persons) + data.shape[2:], np.float32)
    out[:, :min(persons, data.shape[1])] = data[:, :persons]
    return SkeletonSplit(out, np.full(len(out), frames, np.int64), np.zeros(len(out), np.int64),
                         [f"{kind}_{i:04d}" for i in range(len(out))], ["unknown"], layout, fps=30.0, name=kind)
