"""The input specification a model was trained with; it travels inside every checkpoint and export."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

STREAMS = ("joint", "velocity", "bone")
# Frame rate assumed for checkpoints that recorded none (older ones, data sets without a rate): every data set
# the toolkit reads (NW-UCLA, NTU, the MediaPipe recordings, edge.extract) is 30 fps.
DEFAULT_FPS = 30.0


def from_known_keys(cls: type, d: dict[str, Any], what: str) -> Any:
    """cls(**d) for a dataclass, with a ValueError naming the keys it does not know (a typo in a config, an
    artifact's metadata or a checkpoint from a newer toolkit)."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"unknown {what} keys {unknown}; known: {sorted(known)}")
    return cls(**d)


@dataclass
class InputSpec:
    layout: str = "ntu25"
    frames: int = 64  # T fed to the model
    persons: int = 1  # M
    channels: int = 3  # C per stream (x, y, z)
    streams: tuple[str, ...] = ("joint",)  # computed inside the model from the joint input
    # preprocessing, applied identically in training, evaluation and the edge loop
    center: bool = True  # subtract the layout's centre (first valid frame of the window)
    align: bool = True  # rotate to a canonical front-facing orientation (hips/shoulders, spine)
    scale: bool = True  # divide by the mean torso length
    sampling: str = "uniform"  # test-time temporal sampling: uniform | center
    pad: str = "repeat"  # for short clips with sampling=center: repeat | zero
    window_frames: int | None = None  # raw frames an online window should hold (None: frames)
    fps: float | None = None  # frame rate of the training data, if known
    coordinates: str = "world"  # world (metres) | image (normalised pixels)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.streams = tuple(self.streams)
        unknown = [s for s in self.streams if s not in STREAMS]
        if unknown or not self.streams:
            raise ValueError(f"input streams must be a non-empty subset of {STREAMS}, got {self.streams}")
        if self.sampling not in ("uniform", "center"):
            raise ValueError(f"sampling must be 'uniform' or 'center', got {self.sampling!r}")
        if self.pad not in ("repeat", "zero"):
            raise ValueError(f"pad must be 'repeat' or 'zero', got {self.pad!r}")

    @property
    def online_window(self) -> int:
        return int(self.window_frames or self.frames)

    @property
    def model_fps(self) -> float:
        """The frame rate the model was trained at; DEFAULT_FPS when the checkpoint recorded none."""
        return float(self.fps) if self.fps and self.fps > 0 else DEFAULT_FPS

    @property
    def online_window_s(self) -> float:
        """The online window as a duration: the edge loop resamples every source to model_fps."""
        return self.online_window / self.model_fps

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["streams"] = list(self.streams)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "InputSpec":
        return from_known_keys(cls, d, "input-spec")
