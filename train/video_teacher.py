"""Cross-modal teacher (RGB -> skeleton): features of a frozen video transformer over the RGB videos that
pair with skeleton samples, written once to an .npz that skeleton students then learn to match.

The design notes' VideoMAE V2 path (../shared/design/000_*, 001_*): run the heavy RGB model once over the
data set and store one feature vector per sample, instead of decoding video during every training epoch.

    python -m train.teacher --video-model weights/videomae-base-finetuned-kinetics \\
        --videos /data/nturgb+d_rgb --skeletons /data/nturgb+d_skeletons --out rgb_teacher.npz --per-frame

The model is a Hugging Face ``transformers`` VideoMAE folder (config.json + weights + preprocessor_config.json,
as written by ``save_pretrained`` or ``huggingface-cli download``), loaded with ``local_files_only=True``:
nothing is downloaded at run time. Its own image processor config drives resize, crop and normalisation;
N frames (the model's ``num_frames``) are sampled uniformly over each video (segment centres).

Feature definition (VideoMAE has no CLS token):
  * ``features`` (N, D): the mean of the last hidden state over all tokens; for a classification checkpoint
    (VideoMAEForVideoClassification with mean pooling) followed by its ``fc_norm``, i.e. exactly the vector its
    classifier reads.
  * ``frame_features`` (N, T', D), on request: the same, per temporal token (T' = frames / tubelet_size),
    pooled over the spatial tokens only.

File format (numpy arrays only; ``np.load(path, allow_pickle=False)``):
  ``names`` (N,) str, ``features`` (N, D) float32, optional ``frame_features`` (N, T', D) float32,
  ``meta_json`` a JSON string (model, feature_dim, pooling, frames, preprocessing, timing, skipped videos).
"""
from __future__ import annotations

import json
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import torch
from tqdm import tqdm

from core.runtime import BackendMissing, require

VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg")
RGB_SUFFIX = "_rgb"  # NTU RGB+D: S001C001P001R001A001_rgb.avi is the video of S001C001P001R001A001.skeleton
FILE_KEYS = ("names", "features", "frame_features", "meta_json")
FORMAT_VERSION = 1
VIDEO_EXTRA_HINT = "pip install -e .[video]  (or: pip install transformers)"


class VideoReadError(ValueError):
    """A video that OpenCV cannot open or decode; the message names the file."""


class TeacherFileError(ValueError):
    """A malformed teacher feature file; the message names the file and what is wrong."""


# ---------------------------------------------------------------------------------------------
# Pairing videos with skeleton samples


def sample_name(video: str | Path) -> str:
    """The skeleton sample name of a video file: its stem without NTU's ``_rgb`` suffix."""
    stem = Path(video).stem
    return stem[: -len(RGB_SUFFIX)] if stem.endswith(RGB_SUFFIX) else stem


def find_videos(root: str | Path) -> dict[str, Path]:
    """{sample name: video path} of every video file under root (recursively), sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--videos: folder not found: {root}")
    found: dict[str, Path] = {}
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()):
        name = sample_name(path)
        if name in found:
            raise ValueError(f"--videos: two videos for sample {name}: {found[name]} and {path}")
        found[name] = path
    if not found:
        raise FileNotFoundError(f"--videos: no video files ({', '.join(VIDEO_SUFFIXES)}) under {root}")
    return dict(sorted(found.items()))


def skeleton_names(root: str | Path) -> list[str]:
    """Sample names of the raw NTU ``*.skeleton`` files under root (recursively), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--skeletons: folder not found: {root}")
    names = sorted({p.stem for p in root.rglob("*.skeleton")})
    if not names:
        raise FileNotFoundError(f"--skeletons: no .skeleton files under {root}")
    return names


@dataclass
class Pairing:
    pairs: list[tuple[str, Path]]          # (sample name, video), in sample-name order
    missing_video: list[str] = field(default_factory=list)   # skeleton samples without a video
    unpaired_video: list[str] = field(default_factory=list)  # videos without a skeleton sample

    def summary(self) -> str:
        def few(names: list[str]) -> str:
            return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        text = f"{len(self.pairs)} (video, skeleton) pairs"
        if self.missing_video:
            text += f"; {len(self.missing_video)} skeleton samples have no video ({few(self.missing_video)})"
        if self.unpaired_video:
            text += f"; {len(self.unpaired_video)} videos have no skeleton sample, skipped " \
                    f"({few(self.unpaired_video)})"
        return text


def pair_videos(videos: dict[str, Path], names: Iterable[str] | None = None) -> Pairing:
    """Match videos to skeleton sample names. names=None keeps every video (its name is the sample name)."""
    if names is None:
        return Pairing(sorted(videos.items()))
    wanted = sorted(set(names))
    pairs = [(n, videos[n]) for n in wanted if n in videos]
    missing = [n for n in wanted if n not in videos]
    unpaired = sorted(set(videos) - set(wanted))
    return Pairing(pairs, missing, unpaired)


# ---------------------------------------------------------------------------------------------
# Reading video


def sample_indices(total: int, frames: int) -> np.ndarray:
    """`frames` indices spread uniformly over `total` frames (the centre of each of `frames` equal
    segments); frames repeat when the video is shorter than `frames`."""
    if total <= 0:
        raise ValueError(f"cannot sample from a video with {total} frames")
    return np.minimum(((np.arange(frames) + 0.5) * total / frames).astype(np.int64), total - 1)


def _decode(path: Path, wanted: np.ndarray) -> tuple[dict[int, np.ndarray], int]:
    """Decode the frames at the `wanted` indices (RGB uint8) in one sequential pass; also returns how many
    frames were actually decoded (a container's frame count can be wrong)."""
    cv2 = require("cv2", VIDEO_EXTRA_HINT)

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise VideoReadError(f"{path}: OpenCV cannot open this video")
    wanted_set = set(int(i) for i in wanted)
    last = int(wanted.max())
    got: dict[int, np.ndarray] = {}
    index = 0
    try:
        while index <= last and cap.grab():  # grab() skips the colour conversion of unused frames
            if index in wanted_set:
                ok, frame = cap.retrieve()
                if not ok or frame is None:
                    raise VideoReadError(f"{path}: frame {index} cannot be decoded")
                got[index] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)  # OpenCV decodes BGR; VideoMAE wants RGB
            index += 1
    finally:
        cap.release()
    return got, index


def read_frames(path: str | Path, frames: int) -> np.ndarray:
    """(frames, H, W, 3) uint8 RGB frames sampled uniformly over the video at path (OpenCV)."""
    cv2 = require("cv2", VIDEO_EXTRA_HINT)

    path = Path(path)
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise VideoReadError(f"{path}: OpenCV cannot open this video")
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    cap.release()
    if total <= 0:  # no usable frame count in the container: count by decoding
        _, total = _decode(path, np.array([np.iinfo(np.int64).max // 2]))
    if total <= 0:
        raise VideoReadError(f"{path}: no frame can be decoded")
    wanted = sample_indices(total, frames)
    got, decoded = _decode(path, wanted)
    if len(got) < len(set(wanted.tolist())):  # fewer frames than the header said: sample the real ones
        if decoded <= 0:
            raise VideoReadError(f"{path}: no frame can be decoded")
        wanted = sample_indices(decoded, frames)
        got, _ = _decode(path, wanted)
        if len(got) < len(set(wanted.tolist())):
            raise VideoReadError(f"{path}: only {len(got)} of the sampled frames can be decoded")
    shapes = {f.shape for f in got.values()}
    if len(shapes) != 1:
        raise VideoReadError(f"{path}: frames of different sizes {sorted(shapes)}")
    return np.stack([got[int(i)] for i in wanted])


# ---------------------------------------------------------------------------------------------
# The video model


def _require_transformers() -> Any:
    try:
        import transformers
    except ImportError as exc:
        raise BackendMissing(f"--video-model needs the optional 'video' extra (Hugging Face transformers), "
                             f"which is not installed ({exc}); install it with: {VIDEO_EXTRA_HINT}") from exc
    return transformers


class VideoTeacher:
    """A frozen VideoMAE (transformers format) from a local folder, with its own preprocessing."""

    def __init__(self, model_dir: str | Path, device: str = "cpu"):
        transformers = _require_transformers()
        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise FileNotFoundError(f"--video-model: {model_dir} is not a transformers model folder (no "
                                    f"config.json); download one first, e.g. huggingface-cli download "
                                    f"MCG-NJU/videomae-base-finetuned-kinetics --local-dir {model_dir}")
        if not (model_dir / "preprocessor_config.json").is_file():
            raise FileNotFoundError(f"--video-model: {model_dir} has no preprocessor_config.json (the model's "
                                    f"resize/crop/normalisation); save the image processor next to the weights")
        config = transformers.AutoConfig.from_pretrained(model_dir, local_files_only=True)
        if config.model_type != "videomae":
            raise ValueError(f"--video-model: {model_dir} holds a {config.model_type!r} model; supported: "
                             f"'videomae' (VideoMAE and VideoMAE V2 checkpoints in the transformers format)")
        architectures = list(getattr(config, "architectures", None) or [])
        if "VideoMAEForVideoClassification" in architectures:
            classifier = transformers.VideoMAEForVideoClassification.from_pretrained(
                model_dir, local_files_only=True)
            self.backbone, self.head_norm = classifier.videomae, classifier.fc_norm
        else:  # VideoMAEModel, or the encoder of a VideoMAEForPreTraining checkpoint
            self.backbone = transformers.VideoMAEModel.from_pretrained(model_dir, local_files_only=True)
            self.head_norm = None
        self.processor = transformers.AutoImageProcessor.from_pretrained(model_dir, local_files_only=True)
        self.device = torch.device(device)
        self.backbone.to(self.device).eval()
        if self.head_norm is not None:
            self.head_norm.to(self.device).eval()
        self.config = config
        self.model_dir = model_dir
        self.num_frames = int(config.num_frames)
        self.temporal_tokens = self.num_frames // int(config.tubelet_size)
        self.feature_dim = int(config.hidden_size)
        self.pooling = ("mean of the last hidden state over all tokens"
                        + (", then the classifier's fc_norm" if self.head_norm is not None else ""))
        self.versions = {"transformers": transformers.__version__, "torch": torch.__version__}

    def preprocess(self, videos: list[np.ndarray]) -> Any:
        """(B, T, 3, H, W) float tensor from B lists of RGB uint8 frames, with the model's processor."""
        pixels = self.processor([list(v) for v in videos], return_tensors="pt")["pixel_values"]
        size = int(self.config.image_size)
        if tuple(pixels.shape[-2:]) != (size, size):
            raise ValueError(f"--video-model: {self.model_dir}/preprocessor_config.json makes "
                             f"{tuple(pixels.shape[-2:])} frames, config.json's image_size is {size}")
        return pixels

    def __call__(self, pixel_values: Any) -> tuple[np.ndarray, np.ndarray]:
        """(B, D) pooled features and (B, T', D) per-temporal-token features, float32."""
        with torch.inference_mode():
            hidden = self.backbone(pixel_values.to(self.device)).last_hidden_state  # (B, T'*h*w, D)
            b, tokens, d = hidden.shape
            # tokens are ordered time-major (Conv3d patches flattened over T', h, w)
            per_frame = hidden.reshape(b, self.temporal_tokens, tokens // self.temporal_tokens, d).mean(2)
            pooled = hidden.mean(1)
            if self.head_norm is not None:
                pooled, per_frame = self.head_norm(pooled), self.head_norm(per_frame)
        return pooled.float().cpu().numpy(), per_frame.float().cpu().numpy()

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.config.name_or_path or str(self.model_dir),
            "model_dir": str(self.model_dir),
            "model_type": self.config.model_type,
            "architectures": list(getattr(self.config, "architectures", None) or []),
            "feature_dim": self.feature_dim,
            "pooling": self.pooling,
            "frames": self.num_frames,
            "temporal_tokens": self.temporal_tokens,
            "tubelet_size": int(self.config.tubelet_size),
            "image_size": int(self.config.image_size),
            "sampling": "uniform: centre of each of `frames` equal segments",
            # the processor's own config file is what ran (resize, crop, rescale, mean, std)
            "preprocessing": json.loads((self.model_dir / "preprocessor_config.json").read_text()),
            "processor": type(self.processor).__name__,
            **self.versions,
        }


# ---------------------------------------------------------------------------------------------
# Extraction and the file


def _timed_read(path: Path, frames: int) -> tuple[np.ndarray | VideoReadError, float]:
    start = time.perf_counter()
    try:
        clip: np.ndarray | VideoReadError = read_frames(path, frames)
    except VideoReadError as exc:
        clip = exc
    return clip, time.perf_counter() - start


def _decoded(pairs: list[tuple[str, Path]], frames: int, workers: int
             ) -> Iterator[tuple[str, Path, np.ndarray | VideoReadError, float]]:
    """(name, path, frames or the read error, seconds) in order; with workers > 1 decoding runs ahead in
    threads (OpenCV releases the GIL while decoding), at most 2 x workers clips in memory."""
    if workers <= 1:
        for name, path in pairs:
            yield (name, path, *_timed_read(path, frames))
        return
    with ThreadPoolExecutor(workers) as pool:
        queue: deque = deque()
        for name, path in pairs:
            queue.append((name, path, pool.submit(_timed_read, path, frames)))
            if len(queue) >= 2 * workers:
                name0, path0, future = queue.popleft()
                yield (name0, path0, *future.result())
        while queue:
            name0, path0, future = queue.popleft()
            yield (name0, path0, *future.result())


def extract_features(teacher: VideoTeacher, pairs: list[tuple[str, Path]], batch: int = 4,
                     frames: int | None = None, progress: bool = True, workers: int = 1
                     ) -> tuple[list[str], np.ndarray, np.ndarray, dict[str, Any]]:
    """Run the teacher over the paired videos (decoded by `workers` threads). Unreadable videos are reported
    (one line each) and skipped. Returns names, features (N, D), frame_features (N, T', D) and statistics
    (seconds per stage summed over videos, wall seconds per video)."""
    frames = frames or teacher.num_frames
    if frames != teacher.num_frames:
        raise ValueError(f"--frames {frames}: the model {teacher.model_dir} takes {teacher.num_frames} frames "
                         f"(config num_frames; its position embeddings are built for that many)")
    names: list[str] = []
    pooled: list[np.ndarray] = []
    per_frame: list[np.ndarray] = []
    skipped: list[dict[str, str]] = []
    seconds = {"read": 0.0, "preprocess": 0.0, "model": 0.0}
    bar = tqdm(total=len(pairs), desc="video teacher", unit="video", disable=not progress, file=sys.stderr)
    pending: list[tuple[str, np.ndarray]] = []

    def flush() -> None:
        if not pending:
            return
        t0 = time.perf_counter()
        pixels = teacher.preprocess([clip for _, clip in pending])
        t1 = time.perf_counter()
        f, pf = teacher(pixels)
        seconds["preprocess"] += t1 - t0
        seconds["model"] += time.perf_counter() - t1
        names.extend(name for name, _ in pending)
        pooled.append(f)
        per_frame.append(pf)
        bar.update(len(pending))
        pending.clear()

    start = time.perf_counter()
    for name, path, clip, read_seconds in _decoded(pairs, frames, workers):
        seconds["read"] += read_seconds
        if isinstance(clip, VideoReadError):
            msg = f"skipped {clip}"
            (bar.write(msg, file=sys.stderr) if progress else print(msg, file=sys.stderr))
            skipped.append({"name": name, "file": str(path), "reason": str(clip)})
            bar.update(1)
            continue
        pending.append((name, clip))
        if len(pending) >= batch:
            flush()
    flush()
    bar.close()
    if not names:
        raise ValueError(f"no usable video: all {len(pairs)} paired videos were unreadable "
                         f"(first: {skipped[0]['file'] if skipped else 'none'})")
    stats = {"videos": len(names), "skipped": skipped, "seconds": {k: round(v, 3) for k, v in seconds.items()},
             "seconds_per_video": round((time.perf_counter() - start) / len(names), 4), "batch": batch,
             "workers": workers}
    return names, np.concatenate(pooled).astype(np.float32), np.concatenate(per_frame).astype(np.float32), stats


def save_feature_file(path: str | Path, names: list[str], features: np.ndarray,
                      frame_features: np.ndarray | None, meta: dict[str, Any]) -> Path:
    """Write the teacher file (numpy arrays only: it loads with allow_pickle=False)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"names": np.asarray(names, dtype=str), "features": np.asarray(features, dtype=np.float32),
              "meta_json": np.asarray(json.dumps({"format_version": FORMAT_VERSION, **meta}))}
    if frame_features is not None:
        arrays["frame_features"] = np.asarray(frame_features, dtype=np.float32)
    np.savez(path, **arrays)
    return path


def load_feature_file(path: str | Path) -> dict[str, Any]:
    """Read and check a teacher feature file: {names: list[str], features: (N, D), frame_features:
    (N, T', D) or None, meta: dict}. Errors name the file and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"teacher feature file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (ValueError, OSError) as exc:
        raise TeacherFileError(f"{path}: not a readable .npz of plain arrays ({exc})") from exc
    for key in ("names", "features", "meta_json"):
        if key not in arrays:
            raise TeacherFileError(f"{path}: no '{key}' array (has {sorted(arrays)})")
    names = [str(n) for n in arrays["names"].reshape(-1)]
    features = arrays["features"]
    if features.ndim != 2 or len(features) != len(names):
        raise TeacherFileError(f"{path}: features {features.shape} do not match {len(names)} names")
    if len(set(names)) != len(names):
        raise TeacherFileError(f"{path}: duplicate sample names")
    frame_features = arrays.get("frame_features")
    if frame_features is not None and (frame_features.ndim != 3 or len(frame_features) != len(names)):
        raise TeacherFileError(f"{path}: frame_features {frame_features.shape} do not match "
                               f"{len(names)} names")
    try:
        meta = json.loads(str(arrays["meta_json"]))
    except json.JSONDecodeError as exc:
        raise TeacherFileError(f"{path}: meta_json is not JSON ({exc})") from exc
    return {"names": names, "features": features, "frame_features": frame_features, "meta": meta}


def run_video_teacher(model_dir: str | Path, videos_dir: str | Path, out: str | Path,
                      names: Iterable[str] | None = None, per_frame: bool = False, frames: int | None = None,
                      device: str = "cpu", batch: int = 4, progress: bool = True,
                      source: str | None = None, workers: int = 1) -> dict[str, Any]:
    """The whole --video-model path: pair, extract, write. Returns the file's meta (plus 'out')."""
    if batch < 1:
        raise ValueError(f"--batch must be >= 1, got {batch}")
    videos = find_videos(videos_dir)
    pairing = pair_videos(videos, names)
    print(pairing.summary(), file=sys.stderr)
    if not pairing.pairs:
        raise ValueError(f"no video under {videos_dir} matches a skeleton sample name ({source}); NTU videos are "
                         f"named <sample>{RGB_SUFFIX}.avi, e.g. S001C001P001R001A001{RGB_SUFFIX}.avi")
    teacher = VideoTeacher(model_dir, device)
    start = time.perf_counter()
    sample_names, features, frame_features, stats = extract_features(teacher, pairing.pairs, batch, frames,
                                                                     progress, workers)
    meta = {**teacher.describe(), "videos_dir": str(videos_dir), "skeleton_source": source,
            "device": str(teacher.device), "missing_video": len(pairing.missing_video),
            "unpaired_video": len(pairing.unpaired_video), **stats,
            "seconds_total": round(time.perf_counter() - start, 3),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    path = save_feature_file(out, sample_names, features, frame_features if per_frame else None, meta)
    shapes = f"features {features.shape}" + (f", frame_features {frame_features.shape}" if per_frame else "")
    print(f"wrote {path}: {len(sample_names)} samples, {shapes}, {len(stats['skipped'])} skipped, "
          f"{stats['seconds_per_video']:.3f} s/video wall (summed: decode {stats['seconds']['read']:.2f} s "
          f"in {workers} thread(s), preprocess {stats['seconds']['preprocess']:.2f} s, model "
          f"{stats['seconds']['model']:.2f} s)")
    return {**meta, "out": str(path)}
