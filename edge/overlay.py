"""Drawing for the edge loop: skeletons, the current action with its confidence, per-stage latency.
cv2 is imported inside the functions."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.layouts import get_layout

PERSON_COLOURS = ((0, 220, 0), (255, 160, 0), (0, 160, 255), (255, 0, 200))  # BGR, by person id
Y_UP_LAYOUTS = ("ntu25", "kinect20")  # Kinect camera space: y grows upwards


@dataclass
class OverlayText:
    label: str
    confidence: float | None
    status: str  # ok | held | missing | reset | warming
    fps: float
    stages: dict[str, float]  # last latency per stage (ms)
    dropped: int = 0
    source_time: float = 0.0


# joint importance (edge.run --explain): grey (unimportant) -> yellow -> red (what the decision rests on), BGR
IMPORTANCE_STOPS = np.array([[150, 150, 150], [0, 215, 255], [0, 0, 255]], dtype=np.float32)


def importance_colour(score: float) -> tuple[int, int, int]:
    """BGR colour of a joint importance in [0, 1] on the grey -> yellow -> red ramp."""
    s = float(np.clip(score, 0.0, 1.0)) * (len(IMPORTANCE_STOPS) - 1)
    k = min(int(s), len(IMPORTANCE_STOPS) - 2)
    c = IMPORTANCE_STOPS[k] + (s - k) * (IMPORTANCE_STOPS[k + 1] - IMPORTANCE_STOPS[k])
    return tuple(int(round(v)) for v in c)


def draw_skeleton(image: np.ndarray, points: np.ndarray, layout: str, colour: tuple[int, int, int],
                  min_visibility: float = 0.5, joint_scores: np.ndarray | None = None) -> None:
    """points: (V, >=2) pixel coordinates, optional visibility in column 3. joint_scores (V,) in [0, 1]: joints
    coloured and sized by importance instead of plain red dots."""
    import cv2
    edges = get_layout(layout).edges
    vis = points[:, 3] if points.shape[1] > 3 else np.ones(len(points))
    pts = np.round(points[:, :2]).astype(int)
    for a, b in edges:
        if vis[a] >= min_visibility and vis[b] >= min_visibility:
            cv2.line(image, tuple(pts[a]), tuple(pts[b]), colour, 2, cv2.LINE_AA)
    for j in range(len(pts)):
        if vis[j] >= min_visibility:
            if joint_scores is None:
                cv2.circle(image, tuple(pts[j]), 3, (0, 0, 255), -1, cv2.LINE_AA)
            else:
                cv2.circle(image, tuple(pts[j]), 3 + int(round(5 * float(np.clip(joint_scores[j], 0, 1)))),
                           importance_colour(joint_scores[j]), -1, cv2.LINE_AA)


def image_landmarks_to_pixels(landmarks: np.ndarray, width: int, height: int) -> np.ndarray:
    out = np.asarray(landmarks, dtype=np.float32).copy()
    out[:, 0] *= width
    out[:, 1] *= height
    return out


class SkeletonCanvas:
    """A blank frame for replayed skeletons: coordinates fitted once to the whole sequence's extent."""

    def __init__(self, sequence: np.ndarray, layout: str, size: int = 480, margin: float = 0.08):
        xy = sequence[..., :2].reshape(-1, 2)
        xy = xy[np.abs(xy).sum(1) > 0]
        lo, hi = (xy.min(0), xy.max(0)) if len(xy) else (np.zeros(2), np.ones(2))
        self.lo, self.span = lo, float(max((hi - lo).max(), 1e-6))
        self.flip_y = self._y_points_up(sequence, layout)
        self.size, self.margin, self.layout = size, margin, layout

    @staticmethod
    def _y_points_up(sequence: np.ndarray, layout: str) -> bool:
        """True when y grows upwards (camera/world space) rather than downwards (image space): shoulders
        above hips tells, whatever the layout; the layout's convention decides when the data cannot."""
        lay = get_layout(layout)
        if lay.hips is None or lay.shoulders is None:
            return layout in Y_UP_LAYOUTS
        x = sequence.reshape(-1, lay.num_joints, sequence.shape[-1])
        present = np.abs(x).sum(axis=(1, 2)) > 0
        if not present.any():
            return layout in Y_UP_LAYOUTS
        shoulders = x[present][:, list(lay.shoulders), 1].mean()
        hips = x[present][:, list(lay.hips), 1].mean()
        return bool(shoulders > hips)

    def blank(self) -> np.ndarray:
        return np.full((self.size, self.size, 3), 30, dtype=np.uint8)

    def to_pixels(self, person: np.ndarray) -> np.ndarray:
        u = (person[:, :2] - self.lo) / self.span
        if self.flip_y:
            u[:, 1] = 1.0 - u[:, 1]
        px = (self.margin + u * (1 - 2 * self.margin)) * self.size
        out = np.zeros((len(person), 4), np.float32)
        out[:, :2] = px
        out[:, 3] = (np.abs(person[:, :3]).sum(1) > 0).astype(np.float32)  # missing joints are not drawn
        return out


def draw_label(image: np.ndarray, points: np.ndarray, text: str, colour: tuple[int, int, int]) -> None:
    """A person's id and action above their head (the top of their visible landmarks)."""
    import cv2
    vis = points[:, 3] >= 0.5 if points.shape[1] > 3 else np.ones(len(points), bool)
    if not vis.any():
        return
    x, y = int(points[vis, 0].min()), int(points[vis, 1].min()) - 8
    cv2.putText(image, text, (max(x, 2), max(y, 14)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)


def draw_hud(image: np.ndarray, text: OverlayText) -> None:
    """Action label and confidence bar at the top, latency and FPS at the bottom."""
    import cv2
    h, w = image.shape[:2]
    scale = max(0.4, min(w, h) / 640)
    band = int(48 * scale) + 8
    cv2.rectangle(image, (0, 0), (w, band), (0, 0, 0), -1)
    label = {"warming": text.label, "partial": "partial body"}.get(text.status, "no person") \
        if text.status not in ("ok", "held") else text.label
    conf = f" {text.confidence:.2f}" if text.confidence is not None and text.status in ("ok", "held") else ""
    cv2.putText(image, f"{label}{conf}", (8, int(28 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.9 * scale,
                (255, 255, 255), 2, cv2.LINE_AA)
    if text.confidence is not None and text.status in ("ok", "held"):
        bar = int((w - 16) * float(np.clip(text.confidence, 0, 1)))
        cv2.rectangle(image, (8, band - 8), (8 + bar, band - 3), (0, 200, 255), -1)
    parts = [f"{k[:4]} {v:.1f}" for k, v in text.stages.items() if v is not None]
    lines = [f"{text.fps:.1f} FPS  t={text.source_time:.1f}s" + (f"  dropped {text.dropped}" if text.dropped else ""),
             "ms: " + "  ".join(parts)]
    y = h - 8
    for line in reversed(lines):
        (tw, th), _ = cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, 0.45 * scale, 1)
        cv2.rectangle(image, (0, y - th - 4), (min(w, tw + 12), y + 4), (0, 0, 0), -1)
        cv2.putText(image, line, (6, y), cv2.FONT_HERSHEY_SIMPLEX, 0.45 * scale, (200, 255, 200), 1, cv2.LINE_AA)
        y -= th + 8


class VideoSink:
    """An overlay video file: mp4v for .mp4/.mov, MJPG for .avi (no H.264 encoder is assumed)."""

    def __init__(self, path, fps: float, size: tuple[int, int]):
        import cv2
        from pathlib import Path
        from edge.errors import EdgeError
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fourcc = "MJPG" if self.path.suffix.lower() == ".avi" else "mp4v"
        self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*fourcc), float(fps), size)
        if not self.writer.isOpened():
            raise EdgeError(f"--out-video {self.path}: OpenCV cannot write this file ({fourcc}); use .mp4 or .avi")
        self.size = size
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        if (image.shape[1], image.shape[0]) != self.size:
            import cv2
            image = cv2.resize(image, self.size)
        self.writer.write(image)
        self.frames += 1

    def close(self) -> None:
        self.writer.release()
