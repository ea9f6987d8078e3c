"""Frame sources of the edge loop: a video file (every frame, in order), a live camera (own thread,
always the newest frame, dropped frames counted) and a recorded skeleton sequence (no pose estimator).

cv2 is imported only by the video and camera sources."""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from edge.errors import EdgeBackendMissing, SourceError, native_stderr_silenced

OPENCV_HINT = "pip install opencv-python-headless (or pip install -e '.[edge]')"
JOINTS_TO_LAYOUT = {33: "mediapipe33", 25: "ntu25", 20: "kinect20", 17: "coco17"}
SKELETON_KEYS = ("pose", "keypoint", "skeletons", "skeleton", "data")


@dataclass
class Frame:
    index: int  # position in the source (camera: frames read by the capture thread)
    time_s: float  # stream time of the frame
    image: np.ndarray | None = None  # BGR
    people: list[np.ndarray] | None = None  # replay: (V, C) per person present in this frame
    captured_at: float = 0.0  # time.perf_counter() when it was read (the start of its per-frame latency)
    capture_ms: float = 0.0  # time spent reading / decoding it


def _cv2():
    try:
        import cv2
    except ImportError as exc:
        raise EdgeBackendMissing(f"OpenCV is not installed ({exc}); install it with: {OPENCV_HINT}") from None
    return cv2


class VideoFileSource:
    """Every frame of a video file, in order; timestamps from the file's frame rate."""

    kind = "video"

    def __init__(self, path: str | Path, max_frames: int | None = None):
        cv2 = _cv2()
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(f"--video {self.path}: file not found")
        self.cap = cv2.VideoCapture(str(self.path))
        if not self.cap.isOpened():
            raise SourceError(f"--video {self.path}: OpenCV cannot open this file (not a video, or a codec "
                              "this OpenCV build lacks)")
        fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0)
        self.fps = fps if 1 <= fps <= 240 else 30.0
        self.frame_count = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.max_frames = max_frames
        self.dropped = 0
        self.error: str | None = None
        self.size = (int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        while self.max_frames is None or index < self.max_frames:
            started = time.perf_counter()
            ok, image = self.cap.read()
            if not ok or image is None:
                if index == 0:
                    self.error = f"--video {self.path}: no frame could be decoded (unreadable or empty video)"
                break
            now = time.perf_counter()
            yield Frame(index, index / self.fps, image, captured_at=now, capture_ms=(now - started) * 1e3)
            index += 1

    def close(self) -> None:
        self.cap.release()

    def describe(self) -> str:
        return f"video {self.path} ({self.size[0]}x{self.size[1]}, {self.fps:.2f} fps, {self.frame_count} frames)"


class CameraSource:
    """A live camera read on its own thread. The loop always gets the newest frame; frames the loop was
    too slow for are dropped and counted, so processing never falls behind real time."""

    kind = "camera"

    def __init__(self, device: int | str, max_frames: int | None = None, open_timeout_s: float = 5.0,
                 disconnect_after: int = 30, width: int | None = None, height: int | None = None,
                 speed: float = 1.0, end_is_eof: bool = False):
        cv2 = _cv2()
        self.device = device
        # a video file given as the device plays at its frame rate, like a camera (demos, tests)
        self.simulated = isinstance(device, str) and Path(device).is_file()
        self.speed = speed  # a simulated camera plays this many times faster than its frame rate
        self.end_is_eof = end_is_eof  # a simulated camera's last frame ends the stream (else: a disconnect)
        with native_stderr_silenced():  # OpenCV prints a dozen V4L2/FFMPEG lines for a missing camera
            self.cap = cv2.VideoCapture(device)
        if width:
            self.cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height:
            self.cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        if not self.cap.isOpened():
            self.cap.release()
            raise SourceError(f"--camera {device}: the camera does not open (not connected, busy, or no permission; "
                              "list devices with v4l2-ctl --list-devices on Linux)")
        fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0)
        self.fps = fps if 1 <= fps <= 240 else 30.0
        self.max_frames = max_frames
        self.disconnect_after = disconnect_after  # consecutive failed reads that mean 'disconnected'
        self.read_count = 0  # frames the capture thread got from the device
        self.delivered = 0  # frames handed to the loop
        self.error: str | None = None
        self._latest: Frame | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._finished = False
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._reader, name=f"camera-{device}", daemon=True)
        self._thread.start()
        with self._cond:  # a camera that opens but never delivers a frame is as good as closed
            self._cond.wait_for(lambda: self._latest is not None or self._finished, timeout=open_timeout_s)
        if self._latest is None:
            self.close()
            raise SourceError(self.error or f"--camera {device}: opened but delivered no frame within "
                                            f"{open_timeout_s:.0f} s")
        h, w = self._latest.image.shape[:2]
        self.size = (w, h)

    @property
    def dropped(self) -> int:
        """Frames read from the device that the loop never processed (it was busy with a newer one)."""
        return max(0, self.read_count - self.delivered - (1 if self._latest is not None else 0))

    def _reader(self) -> None:
        failures = 0
        while not self._stop.is_set():
            if self.simulated:
                delay = self._t0 + self.read_count / (self.fps * self.speed) - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            started = time.perf_counter()
            ok, image = self.cap.read()
            if not ok or image is None:
                failures += 1
                if self.simulated and self.end_is_eof:
                    break  # a video file played in real time: its end is the end of the stream
                if failures >= self.disconnect_after:
                    self.error = (f"--camera {self.device}: disconnected after {self.read_count} frames "
                                  f"({failures} failed reads in a row)")
                    break
                time.sleep(0.01)
                continue
            failures = 0
            now = time.perf_counter()
            # a file played like a camera keeps its own time line; a camera's is the time of the read
            t = self.read_count / self.fps if self.simulated else time.monotonic() - self._t0
            with self._cond:
                self._latest = Frame(self.read_count, t, image, captured_at=now,
                                     capture_ms=(now - started) * 1e3)  # overwrite: newest wins
                self.read_count += 1
                self._cond.notify_all()
        with self._cond:
            self._finished = True
            self._cond.notify_all()

    def __iter__(self) -> Iterator[Frame]:
        while self.max_frames is None or self.delivered < self.max_frames:
            with self._cond:
                self._cond.wait_for(lambda: self._latest is not None or self._finished)
                if self._latest is None:
                    return  # reader ended (disconnect or close) and nothing new is waiting
                frame, self._latest = self._latest, None
            self.delivered += 1
            yield frame

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.cap.release()

    def describe(self) -> str:
        return f"camera {self.device} ({self.fps:.0f} fps)"


@dataclass
class SkeletonSequence:
    data: np.ndarray  # (M, T, V, C)
    layout: str
    fps: float | None = None
    name: str = ""
    label: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


def _guess_layout(joints: int, path: Path, given: str | None) -> str:
    if given:
        return given
    if joints not in JOINTS_TO_LAYOUT:
        raise SourceError(f"{path}: {joints} joints per frame matches no known layout "
                          f"({', '.join(f'{v}={k}' for k, v in JOINTS_TO_LAYOUT.items())}); pass --skeleton-layout")
    return JOINTS_TO_LAYOUT[joints]


def _pick(array: np.ndarray, index: int, what: str, path: Path) -> np.ndarray:
    if not -len(array) <= index < len(array):
        raise SourceError(f"{path}: --index {index} is out of range, the file holds {len(array)} {what}")
    return array[index]


def load_skeleton_sequence(path: str | Path, index: int = 0, layout: str | None = None) -> SkeletonSequence:
    """One skeleton sequence (M, T, V, C) from a file:

    - .npz with 'pose' / 'keypoint' / 'skeletons' (T, V, C) or (M, T, V, C), or a data set of them
      (N, T, V, C) with a 'label' array of length N, or (N, M, T, V, C); optional 'lengths', 'fps',
      'layout', 'classes'/'class_names'; --index picks the sample
    - .npy of the same shapes; .json with 'skeletons' (T, V, C) (NW-UCLA style) or 'pose'
    - a prepared data set directory (manifest.json, python -m core.data.custom/ntu); --index picks the sample
    Never unpickles (allow_pickle=False)."""
    path = Path(path)
    if not path.exists():
        raise SourceError(f"--skeletons {path}: file not found")
    meta: dict[str, Any] = {}
    if path.is_dir():
        from core.data.store import is_prepared, load_prepared
        if not is_prepared(path):
            raise SourceError(f"--skeletons {path}: a directory but not a prepared data set (no manifest.json)")
        try:
            split = load_prepared(path)
        except (ValueError, KeyError, OSError) as exc:
            raise SourceError(f"--skeletons {path}: {exc}") from None
        i = int(_pick(np.arange(len(split)), index, "samples", path))
        data = split.sample(i)
        return SkeletonSequence(data, split.layout, split.fps, split.names[i], split.class_names[split.labels[i]],
                                {"coordinates": split.info.get("coordinates")})
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        elif path.suffix == ".npy":
            arrays = {"pose": np.load(path, allow_pickle=False)}
        elif path.suffix == ".json":
            obj = json.loads(path.read_text(encoding="utf-8"))
            key = next((k for k in SKELETON_KEYS if k in obj), None)
            if key is None:
                raise SourceError(f"{path}: no skeleton array (looked for {', '.join(SKELETON_KEYS)})")
            arrays = {"pose": np.asarray(obj[key], dtype=np.float32)}
            meta = {k: obj[k] for k in ("layout", "fps", "label", "file_name") if k in obj}
        else:
            raise SourceError(f"--skeletons {path}: unsupported file type {path.suffix!r} "
                              "(expected .npz, .npy, .json or a prepared data set directory)")
    except SourceError:
        raise
    except (OSError, ValueError, json.JSONDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SourceError(f"--skeletons {path}: unreadable ({first[:160]})") from None
    key = next((k for k in SKELETON_KEYS if k in arrays), None)
    if key is None:
        raise SourceError(f"--skeletons {path}: no skeleton array; expected one of {', '.join(SKELETON_KEYS)}, "
                          f"found {sorted(arrays)}")
    x = np.asarray(arrays[key], dtype=np.float32)
    labels = arrays.get("label", arrays.get("labels"))
    classes = arrays.get("classes", arrays.get("class_names"))
    lengths = arrays.get("lengths")
    name, label = path.stem, meta.get("label")
    if x.ndim == 4 and labels is not None and np.ndim(labels) == 1 and len(labels) == len(x) and len(x) > 1:
        x = x[:, None]  # a data set of single-person sequences (N, T, V, C) -> (N, 1, T, V, C)
    if x.ndim == 5:
        x_i = _pick(x, index, "sequences", path)
        i = index % len(x)
        if lengths is not None:
            x_i = x_i[:, : max(int(lengths[i]), 1)]
        if labels is not None:
            li = int(labels[i])
            label = str(classes[li]) if classes is not None and 0 <= li < len(classes) else str(li)
        x, name = x_i, f"{path.stem}[{i}]"
    elif x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] < 2 or x.shape[1] < 1:
        raise SourceError(f"--skeletons {path}: array {key!r} has shape {tuple(np.shape(arrays[key]))}; expected "
                          "(T, V, C), (M, T, V, C), (N, T, V, C) with labels, or (N, M, T, V, C)")
    if not np.isfinite(x).all():
        raise SourceError(f"--skeletons {path}: the sequence contains NaN or infinite coordinates")
    given = layout or (str(arrays["layout"]) if "layout" in arrays else meta.get("layout"))
    fps = float(arrays["fps"]) if "fps" in arrays else meta.get("fps")
    return SkeletonSequence(x, _guess_layout(x.shape[2], path, given), fps, name, label)


class SkeletonReplaySource:
    """A recorded sequence replayed frame by frame (repeated `repeat` times), at the file's fps for timestamps;
    as fast as the loop can go, or paced at `speed` times real time (like a camera)."""

    kind = "skeletons"

    def __init__(self, sequence: SkeletonSequence, repeat: int = 1, fps: float | None = None,
                 max_frames: int | None = None, path: str | Path | None = None, speed: float | None = None):
        self.sequence = sequence
        self.repeat = max(1, int(repeat))
        self.fps = float(fps or sequence.fps or 30.0)
        self.max_frames = max_frames
        self.path = path
        self.speed = speed  # None: as fast as the loop goes; F: paced at F times the file's frame rate
        self.dropped = 0
        self.error: str | None = None

    @property
    def frame_count(self) -> int:
        n = self.sequence.data.shape[1] * self.repeat
        return min(n, self.max_frames) if self.max_frames else n

    def __iter__(self) -> Iterator[Frame]:
        data = self.sequence.data
        length = data.shape[1]
        start = time.perf_counter()
        for index in range(self.frame_count):
            if self.speed:
                delay = start + index / (self.fps * self.speed) - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            frame = data[:, index % length]  # (M, V, C)
            people = [p for p in frame if np.abs(p).sum() > 0]
            yield Frame(index, index / self.fps, None, people, captured_at=time.perf_counter())

    def close(self) -> None:
        pass

    def describe(self) -> str:
        m, t, v, c = self.sequence.data.shape
        label = f", label {self.sequence.label}" if self.sequence.label is not None else ""
        return (f"skeletons {self.sequence.name} ({self.sequence.layout}, {t} frames x{self.repeat}, {m} person(s), "
                f"{c} channels{label})")
