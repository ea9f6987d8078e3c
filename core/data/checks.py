"""Checks that keep wrong data out of a data set: the skipped-file report every importer prints, empty and
mostly-missing clips, and bone lengths that do not fit the layout (a common sign of a wrong joint order).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from core.layouts import get_layout
from core.synthetic import synthetic_clip  # the project's one body model for every layout

DEFAULT_MAX_MISSING = 0.5  # a clip with more than half of its frames all zero is skipped
# The bone check warns when at least MIN_OFF_BONES bones have a share of the body more than BONE_FACTOR times
# (or less than 1/BONE_FACTOR of) the reference's, or one bone is off by BONE_FACTOR_ALONE. Chosen on real data in
# the right order (NW-UCLA, MediaPipe recordings, the NTU file: their worst bones are 3.6x, 2.1x and 1.6x off; the
# third worst at most 1.6x) against the same data with shuffled joints (docs/data.md has the measured rates).
BONE_FACTOR = 1.8
MIN_OFF_BONES = 3
BONE_FACTOR_ALONE = 5.0
MIN_REFERENCE_SHARE = 0.01  # bones shorter than 1 % of the reference's summed bone length are not judged
# ... nor the face and the finger/toe ends: the reference humanoid draws them crudely and detectors place them
# loosely (MediaPipe's ear and foot-index bones are 2.5-2.8x the reference's on real recordings)
UNJUDGED_JOINT_WORDS = ("eye", "ear", "mouth", "nose", "thumb", "tip", "pinky", "index", "heel")
BONE_CHECK_CLIPS = 200  # clips looked at (evenly spaced) for the bone check


def skipped_report(skipped: list[str], total: int, what: str = "file", limit: int = 20,
                   full_list: str | None = None) -> str:
    """'skipped K of N files:' then one indented reason per skipped item (the first `limit`); '' when none."""
    if not skipped:
        return ""
    lines = [f"skipped {len(skipped)} of {total} {what}{'' if total == 1 else 's'}:"]
    lines += [f"  {reason}" for reason in skipped[:limit]]
    if len(skipped) > limit:
        lines.append(f"  ... and {len(skipped) - limit} more" + (f" (all listed in {full_list})" if full_list else ""))
    return "\n".join(lines)


def missing_frames(keypoint: np.ndarray) -> np.ndarray:
    """(M, T, V, C) -> (T,) bool: frames in which every joint of every person is zero (nothing tracked)."""
    return ~np.any(keypoint != 0, axis=(0, 2, 3))


def clip_problem(keypoint: np.ndarray, max_missing: float = DEFAULT_MAX_MISSING) -> str | None:
    """Why a (M, T, V, C) clip must not be used, or None: NaN/inf, every frame zero, or more than
    `max_missing` of its frames all zero."""
    t = keypoint.shape[1]
    finite = np.isfinite(keypoint).all(axis=(0, 2, 3))
    if not finite.all():
        return (f"'keypoint' contains NaN or inf in {int((~finite).sum())} of {t} frames "
                f"(use 0 for missing joints)")
    missing = int(missing_frames(keypoint).sum())
    if missing == t:
        return f"all {t} frames are zero (no skeleton in the clip)"
    if missing > max_missing * t:
        return (f"{missing} of {t} frames are all zero ({100 * missing / t:.0f} % missing; the limit is "
                f"max_missing {max_missing:g})")
    return None


def bone_lengths(keypoint: np.ndarray, layout: str) -> np.ndarray:
    """(M, T, V, C) -> (V,) median length of each joint's bone to its parent over the frames where both
    joints are present (NaN for the centre joints and for bones never seen)."""
    lay = get_layout(layout)
    parents = lay.parents
    present = np.any(keypoint != 0, axis=-1)  # (M, T, V)
    both = present & present[..., parents]
    length = np.linalg.norm(keypoint - keypoint[..., parents, :], axis=-1)
    length = np.where(both, length, np.nan).reshape(-1, lay.num_joints)
    out = np.full(lay.num_joints, np.nan)
    seen = both.reshape(-1, lay.num_joints).any(axis=0) & (parents != np.arange(lay.num_joints))
    out[seen] = np.nanmedian(length[:, seen], axis=0)
    return out


@lru_cache(maxsize=None)
def reference_bone_lengths(layout: str, channels: int = 3) -> np.ndarray:
    """(V,) bone lengths of the procedural humanoid of core.synthetic (x, y only for 2D data)."""
    clip = synthetic_clip("walk_in_place", layout, frames=64, seed=0, noise=0.0)
    return bone_lengths(clip[..., :min(channels, 3)], layout)


def bone_deviation(clips: list[np.ndarray], layout: str) -> np.ndarray:
    """(V,) each bone's share of the body relative to the reference's (1 = as expected; NaN = not judged):
    per clip, observed / reference lengths divided by their median (so the body's scale and units cancel),
    then the median over clips."""
    channels = clips[0].shape[-1]
    reference = reference_bone_lengths(layout, min(channels, 3))
    lay = get_layout(layout)
    judged = (reference >= MIN_REFERENCE_SHARE * np.nansum(reference)) & np.array(
        [not any(w in lay.joints[j] or w in lay.joints[lay.parents[j]] for w in UNJUDGED_JOINT_WORDS)
         for j in range(lay.num_joints)])
    ratios = []
    for clip in clips:
        ratio = bone_lengths(clip[..., :min(channels, 3)], layout) / np.where(judged, reference, np.nan)
        if np.isfinite(ratio).sum() >= 3 and np.nanmedian(ratio) > 0:
            ratios.append(ratio / np.nanmedian(ratio))
    if not ratios:
        return np.full(len(reference), np.nan)
    stacked = np.array(ratios)
    seen = np.isfinite(stacked).any(axis=0)
    out = np.full(stacked.shape[1], np.nan)
    out[seen] = np.nanmedian(stacked[:, seen], axis=0)
    return out


def implausible_bones(clips: list[np.ndarray], layout: str, max_clips: int = BONE_CHECK_CLIPS) -> str | None:
    """A warning naming the bones whose lengths do not fit the layout, or None when they look plausible."""
    if not clips:
        return None
    step = max(1, len(clips) // max_clips)
    deviation = bone_deviation(clips[::step], layout)
    lay = get_layout(layout)
    with np.errstate(invalid="ignore"):
        off = np.flatnonzero((deviation > BONE_FACTOR) | (deviation < 1 / BONE_FACTOR))
        alone = np.any((deviation > BONE_FACTOR_ALONE) | (deviation < 1 / BONE_FACTOR_ALONE))
    if len(off) < MIN_OFF_BONES and not alone:
        return None
    worst = sorted(off, key=lambda j: -abs(np.log(deviation[j])))
    named = ", ".join(f"{lay.joints[lay.parents[j]]}-{lay.joints[j]} {deviation[j]:.2g}x" for j in worst[:6])
    return (f"bone lengths are implausible for layout {layout}: {named} the expected share of the body "
            f"({len(off)} of {int(np.isfinite(deviation).sum())} bones off by more than {BONE_FACTOR:g}x); "
            f"the joints may be stored in another order: see `python -m core.layouts {layout}` and --joint-order")
