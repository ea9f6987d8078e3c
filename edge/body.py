"""Is this a whole body the model can classify? Visibility alone is not enough: on a close-up (a face and
shoulders filling the frame) MediaPipe still returns 33 landmarks, often with hips it is "sure" of (visibility
0.6-0.99) that lie at or below the bottom edge, or a whole shrunken body squeezed into the picture. The check adds
what the picture says about the body:

- **visibility**: hips and shoulders at least `min_visibility` (MediaPipe's own confidence);
- **inside the frame**: shoulders, hips and knees lie inside the picture (a close-up's hips and knees are guesses
  beyond its edge);
- **torso against the image**: the torso (mid-shoulder to mid-hip) is at most `max_torso_fraction` of the image
  height; a standing person whose legs are in the picture cannot have a longer one (full-body frames of the shared
  videos and the NTU clip: at most 0.24);
- **limb-length ratios**: shoulder width, hip width, upper arm, thigh and head width against the torso stay within
  human proportions (upper bounds only, with a margin: foreshortening shortens limbs, never lengthens them beyond
  these), so a torso squashed to fit the frame fails.

`tests/test_edge_hostile.py` checks it on real frames and close-up crops of real videos (close-ups whose hips
MediaPipe calls visible at 0.8-0.99 are rejected, the full frames pass). The geometric
part needs image landmarks (normalised x, y) and the image size, so it runs on MediaPipe's output (VIDEO and
LIVE_STREAM); skeletons passed in SKELETONS mode get the visibility check only."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# MediaPipe Pose landmark indices
NOSE, LEFT_EAR, RIGHT_EAR = 0, 7, 8
LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_ELBOW, RIGHT_ELBOW = 11, 12, 13, 14
LEFT_HIP, RIGHT_HIP, LEFT_KNEE, RIGHT_KNEE = 23, 24, 25, 26
MEDIAPIPE_JOINTS = 33


@dataclass(frozen=True)
class BodyCheck:
    """Thresholds of the whole-body check (defaults: full-body frames of real videos pass with a margin)."""
    min_visibility: float = 0.5
    inside_joints: tuple[int, ...] = (LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_HIP, RIGHT_HIP, LEFT_KNEE, RIGHT_KNEE)
    inside_margin: float = 0.0  # fraction of the image a joint may lie beyond the edge
    max_torso_fraction: float = 0.4  # torso length / image height (observed on full bodies: <= 0.24)
    max_shoulder_width: float = 1.5  # each / torso length (observed maxima: 1.12, 0.49, 1.01, 1.28, 0.24)
    max_hip_width: float = 0.8
    max_upper_arm: float = 1.3
    max_thigh: float = 1.7
    max_head_width: float = 0.45  # ear to ear (a child's head is relatively larger than an adult's)

    def reasons(self, image: np.ndarray, image_size: tuple[int, int] | None) -> list[str]:
        """Why (33, >= 3 or 4) MediaPipe image landmarks (x, y normalised, ..., visibility last) are not a whole
        body in a picture of `image_size` = (width, height); empty when they are."""
        lm = np.asarray(image, dtype=np.float64)
        if lm.ndim != 2 or lm.shape[0] != MEDIAPIPE_JOINTS or lm.shape[1] < 3:
            return [f"landmarks of shape {lm.shape}, expected ({MEDIAPIPE_JOINTS}, >=3)"]
        out = []
        vis = lm[:, -1] if lm.shape[1] >= 4 else np.ones(len(lm))
        core = [LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_HIP, RIGHT_HIP]
        if not np.isfinite(lm[core, :2]).all():
            return ["shoulders or hips have no coordinates"]
        if not (np.nan_to_num(vis[core], nan=0.0) >= self.min_visibility).all():
            out.append(f"hips or shoulders visibility below {self.min_visibility:g}")
        if image_size is None:  # no picture to compare with (skeletons from elsewhere)
            return out
        xy = lm[:, :2]
        inside = xy[list(self.inside_joints)]
        m = self.inside_margin
        if not (np.isfinite(inside).all() and (inside >= -m).all() and (inside <= 1 + m).all()):
            out.append("shoulders, hips or knees outside the picture")
        w, h = image_size
        px = np.nan_to_num(xy) * [w, h]
        torso = float(np.linalg.norm(px[[LEFT_SHOULDER, RIGHT_SHOULDER]].mean(0) - px[[LEFT_HIP, RIGHT_HIP]].mean(0)))
        if torso > self.max_torso_fraction * h:
            out.append(f"torso {torso / h:.2f} of the image height (> {self.max_torso_fraction:g}): a close-up")
        torso = max(torso, 1e-6)
        length = lambda a, b: float(np.linalg.norm(px[a] - px[b]))  # noqa: E731
        ratios = (("shoulder width", length(LEFT_SHOULDER, RIGHT_SHOULDER), self.max_shoulder_width),
                  ("hip width", length(LEFT_HIP, RIGHT_HIP), self.max_hip_width),
                  ("upper arm", max(length(LEFT_SHOULDER, LEFT_ELBOW), length(RIGHT_SHOULDER, RIGHT_ELBOW)),
                   self.max_upper_arm),
                  ("thigh", max(length(LEFT_HIP, LEFT_KNEE), length(RIGHT_HIP, RIGHT_KNEE)), self.max_thigh),
                  ("head width", length(LEFT_EAR, RIGHT_EAR), self.max_head_width))
        for name, value, limit in ratios:
            if value > limit * torso:
                out.append(f"{name} {value / torso:.2f} x the torso (> {limit:g}): not human proportions")
        return out

    def whole_body(self, image: np.ndarray, image_size: tuple[int, int] | None) -> bool:
        return not self.reasons(image, image_size)
