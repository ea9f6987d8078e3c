"""Self-describing checkpoints: everything needed to rebuild and run a model, nothing pickled.

A checkpoint is a plain dict of tensors, strings, numbers, lists and dicts, saved atomically and
loaded with torch.load(weights_only=True)."""
from __future__ import annotations

import copy
import glob
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from core import __version__
from core.models.last import LAST, LASTConfig, list_variants
from core.spec import InputSpec

FORMAT = "last-edge-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message names the file and the reason."""


def checkpoint_dict(model: LAST, spec: InputSpec, class_names: list[str] | None = None,
                    train: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None,
                    extra: dict[str, Any] | None = None) -> dict[str, Any]:
    cfg = model.cfg
    class_names = list(class_names) if class_names is not None else [f"class_{i}" for i in range(cfg.num_classes)]
    if len(class_names) != cfg.num_classes:
        raise ValueError(f"{len(class_names)} class names for a model with {cfg.num_classes} classes")
    if spec.layout != cfg.layout:
        raise ValueError(f"input spec layout {spec.layout!r} differs from the model's {cfg.layout!r}")
    spec.streams = cfg.streams
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "toolkit_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": {"variant": model.variant, "config": cfg.to_dict()},
        "layout": cfg.layout,
        "num_classes": cfg.num_classes,
        "class_names": class_names,
        "input_spec": spec.to_dict(),
        "train": dict(train or {}),
        "metrics": dict(metrics or {}),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **(extra or {}),
    }


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """Write to a temporary file in the same folder, flush it to the disk, then rename: a crash or a kill at any
    moment leaves either the previous file or the new one, never half a file (os.replace is atomic on POSIX and
    Windows; the fsyncs make the rename survive a power cut). Temporaries an earlier killed write left behind
    are removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def fsync_dir(folder: Path) -> None:
    """Persist a rename in `folder` (POSIX; a no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(path: str | Path, model: LAST, spec: InputSpec, class_names: list[str] | None = None,
                    train: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None,
                    extra: dict[str, Any] | None = None) -> Path:
    return atomic_torch_save(checkpoint_dict(model, spec, class_names, train, metrics, extra), path)


def load_checkpoint(path: str | Path | Checkpoint) -> dict[str, Any]:
    """Load and validate a checkpoint; raises CheckpointError naming the file on any problem. An opened
    Checkpoint hands back its dict without reading the file again."""
    if isinstance(path, Checkpoint):
        return path.data
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt zip, truncated file, pickled objects that weights_only refuses
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable LAST checkpoint ({first[:200]})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a LAST checkpoint (missing format marker {FORMAT!r})")
    version = ckpt.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {version} is newer than this toolkit supports "
                              f"({FORMAT_VERSION}); upgrade the toolkit")
    for key, kind in (("model", dict), ("state_dict", dict), ("input_spec", dict), ("class_names", list)):
        if key not in ckpt:
            raise CheckpointError(f"{path}: checkpoint lacks {key!r}")
        if not isinstance(ckpt[key], kind):
            raise CheckpointError(f"{path}: {key!r} is a {type(ckpt[key]).__name__}, expected a {kind.__name__}")
    if not all(isinstance(v, torch.Tensor) for v in ckpt["state_dict"].values()):
        raise CheckpointError(f"{path}: 'state_dict' holds values that are not tensors")
    if not all(isinstance(c, str) for c in ckpt["class_names"]):
        raise CheckpointError(f"{path}: 'class_names' must be a list of names")
    try:
        InputSpec.from_dict(ckpt["input_spec"])
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise CheckpointError(f"{path}: invalid 'input_spec': {exc}") from exc
    variant = ckpt["model"].get("variant")
    if variant not in list_variants() and variant != "custom":
        raise CheckpointError(f"{path}: unknown model variant {variant!r}; this toolkit knows "
                              f"{', '.join(list_variants())}")
    return ckpt


def build_model(ckpt: dict[str, Any], path: str | Path = "<checkpoint>") -> LAST:
    try:
        cfg = LASTConfig.from_dict(ckpt["model"]["config"])
        model = LAST(cfg)
        model.variant = ckpt["model"]["variant"]
        model.load_state_dict(ckpt["state_dict"])
    except (ValueError, KeyError, RuntimeError, TypeError, AttributeError, IndexError, OverflowError) as exc:
        raise CheckpointError(f"{path}: cannot rebuild the model: {exc}") from exc
    return model.eval()


def load_model(path: str | Path | Checkpoint) -> tuple[LAST, dict[str, Any]]:
    """(model in eval mode, checkpoint dict) from a checkpoint file alone (from an opened Checkpoint: a copy of
    its model, the file is not read again)."""
    if isinstance(path, Checkpoint):
        return path.model(), path.data
    ckpt = load_checkpoint(path)
    return build_model(ckpt, path), ckpt


class Checkpoint(os.PathLike):
    """A checkpoint file opened once: its dict and its model, handed to every step of a run (export, calibration,
    scoring) instead of the path. Whatever takes a checkpoint path takes this too and reads nothing again;
    `Path(ckpt)` and `str(ckpt)` give the file, so artifact names derive from it as from the path."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.data = load_checkpoint(self.path)
        self._model = build_model(self.data, self.path)

    def model(self) -> LAST:
        """A private copy of the model (a converter may trace, export or quantise what it is given)."""
        return copy.deepcopy(self._model)

    @property
    def spec(self) -> InputSpec:
        return input_spec(self.data)

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"Checkpoint({str(self.path)!r}, variant={self.data['model']['variant']!r})"


def input_spec(ckpt: dict[str, Any]) -> InputSpec:
    return InputSpec.from_dict(ckpt["input_spec"])
