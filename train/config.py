"""Experiment configuration: defaults <- YAML file <- command-line overrides (`section.key=value`).

Every key must be known: a typo stops the run before anything is loaded, naming the file or argument.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from core.cli import did_you_mean
from core.models.last import list_variants
from core.spec import STREAMS

# Defaults follow the design notes (AdamW 1e-3 / 1e-4, 5 warm-up epochs, cosine with warm restarts
# T_0=10, T_mult=2, eta_min=1e-6, clip 1.0, batch 64); None means "derive from the data / model".
DEFAULTS: dict[str, Any] = {
    "name": None,  # run name; default <data.name>_<model.variant>
    "output_dir": None,  # default runs/train/<name>
    "model": {
        "variant": "last_small",
        "streams": ["joint"],  # any of joint, velocity, bone (computed inside the model)
        "layout": None,  # must match the data set's layout if given
        "num_classes": None,  # must match the data set's class count if given
        "dropout": None,  # None: the variant's default
        "sync_bn": False,  # SyncBatchNorm under torchrun
        "init": None,  # a checkpoint to start from (weights only; a different head is re-initialised)
    },
    "data": {
        "name": "synthetic",  # core.data.load_split name: nw_ucla, ntu60_xsub, ..., synthetic
        "root": None,  # data root if not the data set's default
        "train_split": "train",
        "val_split": "test",
        "frames": 64,  # T fed to the model
        "persons": None,  # M; default: as many as the data set has
        "sampling": "uniform",  # test-time sampling: uniform | center
        "crop_ratio": [0.5, 1.0],  # training: random valid interval of this fraction of the clip
        "center": True,
        "align": True,
        "scale": True,
        "num_workers": 2,
    },
    "augment": {
        "enabled": True,
        "rotate_deg": [0.0, 15.0, 0.0],  # max |angle| about the x, y (up) and z axes of the aligned skeleton
        "rotate_prob": 0.5,
        "scale": 0.1,  # factor uniform in [1 - s, 1 + s]
        "scale_prob": 0.5,
        "shear": 0.1,
        "shear_prob": 0.3,
        "noise": 0.001,  # Gaussian sigma, in torso lengths
        "noise_prob": 0.5,
        "flip_prob": 0.0,  # left/right mirror (changes handedness; off by default)
    },
    "optim": {
        "name": "adamw",  # adamw | sgd
        "lr": 1.0e-3,
        "weight_decay": 1.0e-4,
        "betas": [0.9, 0.999],
        "momentum": 0.9,  # sgd only
        "batch_size": 64,  # per process
        "clip_grad": 1.0,  # max gradient norm; 0 disables
        "label_smoothing": 0.0,
    },
    "schedule": {
        "epochs": 80,
        "warmup_epochs": 5,  # linear warm-up from warmup_start_factor * lr
        "warmup_start_factor": 0.01,
        "name": "cosine_restarts",  # cosine_restarts | cosine | constant
        "T_0": 10,  # epochs of the first cosine cycle (after warm-up)
        "T_mult": 2,
        "eta_min": 1.0e-6,
    },
    "train": {
        "seed": 0,
        "deterministic": True,
        "device": "auto",  # auto | cpu | cuda
        "amp": "auto",  # auto (fp16 on CUDA, off on CPU) | off | fp16 | bf16
        "threads": None,  # torch intra-op threads on CPU
        "eval_every": 1,  # epochs between evaluations (the last epoch is always evaluated)
        "test_clips": 1,  # clips averaged in the final evaluation of best.pt
        "log_every": 20,  # steps between TensorBoard scalars
    },
}


class ConfigError(ValueError):
    """A configuration problem; the message names the file or argument and the key."""


_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _number(value: Any) -> Any:
    """YAML 1.1 reads '1e-3' as a string; numbers written that way are meant as numbers."""
    if isinstance(value, str) and _FLOAT.match(value.strip()):
        return float(value)
    if isinstance(value, list):
        return [_number(v) for v in value]
    return value


def _merge(base: dict[str, Any], update: dict[str, Any], source: str, prefix: str = "") -> None:
    for key, value in update.items():
        value = _number(value)
        path = f"{prefix}{key}"
        if key not in base:
            known = ", ".join(sorted(base))
            raise ConfigError(f"{source}: unknown config key {path!r}{did_you_mean(key, base)}; known keys here: {known}")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {path!r} must be a mapping of keys, got {value!r}")
            _merge(base[key], value, source, f"{path}.")
        else:
            base[key] = value


def parse_override(text: str) -> dict[str, Any]:
    """'optim.lr=3e-4' -> {'optim': {'lr': 0.0003}} (the value is parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"command line: override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"command line: cannot parse the value of {key!r}: {exc}") from exc
    out: dict[str, Any] = {}
    node = out
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    """Defaults, then the YAML file, then `section.key=value` overrides; validated."""
    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
        _merge(cfg, loaded, str(path))
    for text in overrides or []:
        _merge(cfg, parse_override(text), f"command line {text!r}")
    validate(cfg)
    for key in ("name", "output_dir"):
        cfg[key] = None if cfg[key] is None else str(cfg[key])
    if not cfg["name"]:
        cfg["name"] = f"{cfg['data']['name']}_{cfg['model']['variant']}"
    if not cfg["output_dir"]:
        cfg["output_dir"] = str(Path("runs") / "train" / cfg["name"])
    return cfg


def validate(cfg: dict[str, Any]) -> None:
    def need(cond: bool, msg: str) -> None:
        if not cond:
            raise ConfigError(f"config: {msg}")

    m, d, a, o, s, t = (cfg[k] for k in ("model", "data", "augment", "optim", "schedule", "train"))
    need(m["variant"] in list_variants(),
         f"model.variant {m['variant']!r} is not a LAST variant{did_you_mean(m['variant'], list_variants())}; "
         f"known: {', '.join(list_variants())}")
    need(isinstance(m["streams"], (list, tuple)) and m["streams"] and all(x in STREAMS for x in m["streams"]),
         f"model.streams must be a non-empty list of {list(STREAMS)}, got {m['streams']!r}")
    need(int(d["frames"]) >= 4, f"data.frames must be >= 4, got {d['frames']}")
    need(d["sampling"] in ("uniform", "center"), f"data.sampling must be uniform or center, got {d['sampling']!r}")
    cr = d["crop_ratio"]
    need(cr is None or (len(cr) == 2 and 0 < float(cr[0]) <= float(cr[1]) <= 1),
         f"data.crop_ratio must be null or [lo, hi] with 0 < lo <= hi <= 1, got {cr!r}")
    need(len(a["rotate_deg"]) == 3, f"augment.rotate_deg must be [x, y, z] degrees, got {a['rotate_deg']!r}")
    need(o["name"] in ("adamw", "sgd"), f"optim.name must be adamw or sgd, got {o['name']!r}")
    need(float(o["lr"]) > 0, f"optim.lr must be > 0, got {o['lr']}")
    need(int(o["batch_size"]) >= 1, f"optim.batch_size must be >= 1, got {o['batch_size']}")
    need(0 <= float(o["label_smoothing"]) < 1, f"optim.label_smoothing must be in [0, 1), got {o['label_smoothing']}")
    need(int(s["epochs"]) >= 1, f"schedule.epochs must be >= 1, got {s['epochs']}")
    need(0 <= int(s["warmup_epochs"]) <= int(s["epochs"]), f"schedule.warmup_epochs must be in [0, epochs]")
    need(s["name"] in ("cosine_restarts", "cosine", "constant"),
         f"schedule.name must be cosine_restarts, cosine or constant, got {s['name']!r}")
    need(int(s["T_0"]) >= 1 and int(s["T_mult"]) >= 1, "schedule.T_0 and T_mult must be >= 1")
    need(t["amp"] in ("auto", "off", "fp16", "bf16"), f"train.amp must be auto, off, fp16 or bf16, got {t['amp']!r}")
    need(int(t["test_clips"]) >= 1, f"train.test_clips must be >= 1, got {t['test_clips']}")


def save_config(cfg: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path
