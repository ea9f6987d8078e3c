"""Experiment configuration: defaults <- YAML file <- command-line overrides (`section.key=value`).

Every key must be known: a typo stops the run before anything is loaded, naming the file or argument.
"""
from __future__ import annotations

import copy
import re
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

import yaml

from configs import resolve_config
from core.cli import did_you_mean
from core.models.last import list_variants
from core.models.quant import PLACEMENTS
from core.spec import STREAMS

# Typed sections: the field types are checked when a file or an override sets a key, the defaults follow the
# design notes (AdamW 1e-3 / 1e-4, 5 warm-up epochs, cosine with warm restarts T_0=10, T_mult=2, eta_min=1e-6,
# clip 1.0, batch 64); None means "derive from the data / model". Code reads the resolved config as a plain dict
# (`load_config`) or as these dataclasses (`TrainConfig.from_dict(cfg)`).


@dataclass
class ModelConfig:
    variant: str = "last_small"
    streams: list[str] = field(default_factory=lambda: ["joint"])  # any of joint, velocity, bone (in the model)
    layout: Optional[str] = None  # must match the data set's layout if given
    num_classes: Optional[int] = None  # must match the data set's class count if given
    dropout: Optional[float] = None  # None: the variant's default
    sync_bn: bool = False  # SyncBatchNorm under torchrun
    init: Optional[str] = None  # a checkpoint to start from (same-named, same-shaped tensors: pretrained encoder)


@dataclass
class DataConfig:
    name: str = "synthetic"  # core.data.load_split name: nw_ucla, ntu60_xsub, ..., synthetic
    root: Optional[str] = None  # data root if not the data set's default
    train_split: str = "train"
    val_split: str = "val"  # chooses the epoch; "val": the data set's own, else a fixed slice of train_split
    val_fraction: float = 0.1  # the slice: this fraction of every class of train_split (removed from training)
    val_seed: int = 0  # the slice's draw (fixed: every run and seed of a data set validates on the same clips)
    test_split: Optional[str] = "test"  # scored once at the end (chosen and last epoch), never chooses; null: none
    frames: int = 64  # T fed to the model
    persons: Optional[int] = None  # M; default: as many as the data set has
    sampling: str = "uniform"  # test-time sampling: uniform | center
    crop_ratio: Optional[list[float]] = field(default_factory=lambda: [0.5, 1.0])  # training: random interval
    center: bool = True
    align: bool = True
    scale: bool = True
    num_workers: int = 2
    label_fraction: float = 1.0  # < 1: train on this stratified fraction of the training labels (low-label runs)
    label_seed: int = 0  # which labelled subset (fixed across seeds so every arm sees the same clips)


@dataclass
class AugmentConfig:
    enabled: bool = True
    rotate_deg: list[float] = field(default_factory=lambda: [0.0, 15.0, 0.0])  # max |angle| about x, y (up), z
    rotate_prob: float = 0.5
    scale: float = 0.1  # factor uniform in [1 - s, 1 + s]
    scale_prob: float = 0.5
    shear: float = 0.1
    shear_prob: float = 0.3
    noise: float = 0.001  # Gaussian sigma, in torso lengths
    noise_prob: float = 0.5
    flip_prob: float = 0.0  # left/right mirror (changes handedness; off by default)


@dataclass
class OptimConfig:
    name: str = "adamw"  # adamw | sgd
    lr: float = 1.0e-3
    weight_decay: float = 1.0e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    momentum: float = 0.9  # sgd only
    batch_size: int = 64  # per process
    clip_grad: float = 1.0  # max gradient norm; 0 disables
    label_smoothing: float = 0.0


@dataclass
class ScheduleConfig:
    epochs: int = 80
    warmup_epochs: int = 5  # linear warm-up from warmup_start_factor * lr
    warmup_start_factor: float = 0.01
    name: str = "cosine_restarts"  # cosine_restarts | cosine | constant
    T_0: int = 10  # epochs of the first cosine cycle (after warm-up)
    T_mult: int = 2
    eta_min: float = 1.0e-6
    # a budget in optimizer steps instead of epochs: epochs = ceil(steps / steps per epoch), and warm-up and T_0
    # scale with them, so the schedule has the same shape in steps whatever the data set's size
    steps: Optional[int] = None


@dataclass
class RunConfig:  # the `train:` section
    seed: int = 0
    deterministic: bool = True
    device: str = "auto"  # auto | cpu | cuda
    amp: str = "auto"  # auto (fp16 on CUDA, off on CPU) | off | fp16 | bf16
    threads: Optional[int] = None  # torch intra-op threads on CPU
    eval_every: int = 1  # epochs between evaluations (the last epoch is always evaluated)
    test_clips: int = 1  # clips averaged in the final evaluation of best.pt
    log_every: int = 20  # steps between TensorBoard scalars
    ema_decay: float = 0.0  # > 0: keep a weight EMA (timm ModelEmaV3 style), evaluate it and save ema.pt
    early_stop_patience: int = 0  # > 0: stop after this many epochs without a better validation score
    # best.pt: significant (the last epoch unless the best-top1 epoch beats it on the validation clips, exact McNemar
    # p < 0.05; chosen by experiments/selection_rule.py on validation clips alone) | top1 (best validation top1, ties
    # to the lower loss) | loss (lowest validation loss)
    select: str = "significant"


@dataclass
class DistillConfig:  # train.distill: student = model.*, teacher = a live checkpoint or an offline file
    teacher: Optional[str] = None  # live teacher: a LAST checkpoint run frozen on the student's exact input
    teacher_ensemble: list[str] = field(default_factory=list)  # more checkpoints whose logits average with teacher's
    teacher_cache: Optional[str] = None  # folder: the live teacher's logits per (epoch, clip), reused by later runs
    teacher_file: Optional[str] = None  # un-augmented offline teacher (.npz of python -m train.teacher): inconsistent
    unlabelled: bool = True  # with data.label_fraction < 1: distil on the unlabelled training clips too
    alpha: Optional[float] = None  # hard-label CE weight; None: per student variant (nano 0.3, small 0.5, else 0.5)
    alpha_end: Optional[float] = None  # if set, alpha moves linearly from `alpha` to this over the run
    tau: float = 4.0  # KD temperature
    feature_weight: float = 0.0  # gamma of per-stage feature mimicry (live LAST teacher only; design: 0.1)
    feature_stages: list[int] = field(default_factory=lambda: [0, 1, 2])  # stages tapped (forward_intermediates)
    projector: str = "linear"  # linear | mlp: student pooled feature -> teacher feature width
    projector_loss: str = "cosine"  # mse | cosine | infonce
    projector_weight: float = 0.0  # weight of the pooled-feature loss (offline / cross-modal features)
    infonce_temperature: float = 0.1


@dataclass
class PretrainConfig:  # train.pretrain: MaskCLR self-supervised pretraining (no labels)
    mask_ratio: list[float] = field(default_factory=lambda: [0.5, 0.75])  # masked (frame, joint) cells, per clip
    part_share: float = 0.5  # share of the masking done by body parts (the rest: one contiguous frame block)
    recon_weight: float = 1.0  # masked-joint reconstruction (MSE on the masked, present joints)
    contrast_weight: float = 1.0  # NT-Xent between the two views' pooled embeddings
    temperature: float = 0.07
    proj_dim: int = 128


@dataclass
class QATConfig:  # train.qat: quantization-aware fine-tuning of a trained checkpoint (core.models.quant)
    observe_epochs: int = 1  # epochs during which activation ranges follow the batches (then frozen)
    range_momentum: float = 0.01  # EMA weight of each batch's |max| while observing
    placement: str = "qdq"  # qdq: where the Q/DQ ONNX quantizes; full: every tensor (the full-integer LiteRT file)


@dataclass
class TrainConfig:
    name: Optional[str] = None  # run name; default <data.name>_<model.variant>
    output_dir: Optional[str] = None  # default runs/train/<name>
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: RunConfig = field(default_factory=RunConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    qat: QATConfig = field(default_factory=QATConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, cfg: dict[str, Any]) -> "TrainConfig":
        sections = {f.name: f.type for f in fields(cls)}
        kwargs = {}
        for key, value in cfg.items():
            section = _SECTIONS.get(key)
            kwargs[key] = section(**value) if section is not None else value
        unknown = set(cfg) - set(sections)
        if unknown:
            raise ConfigError(f"config: unknown section(s) {sorted(unknown)}")
        return cls(**kwargs)


_SECTIONS: dict[str, type] = {"model": ModelConfig, "data": DataConfig, "augment": AugmentConfig,
                              "optim": OptimConfig, "schedule": ScheduleConfig, "train": RunConfig,
                              "distill": DistillConfig, "pretrain": PretrainConfig, "qat": QATConfig}
DEFAULTS: dict[str, Any] = TrainConfig().to_dict()


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


def _field_types() -> dict[str, Any]:
    """'optim.lr' -> float, 'model.layout' -> Optional[str], ... from the dataclasses."""
    out = {}
    for name, hint in typing.get_type_hints(TrainConfig).items():
        section = _SECTIONS.get(name)
        if section is None:
            out[name] = hint
            continue
        for key, sub in typing.get_type_hints(section).items():
            out[f"{name}.{key}"] = sub
    return out


def _check_type(path: str, value: Any, hint: Any, source: str) -> Any:
    """The value, converted where YAML's reading is loose (an int for a float); else a ConfigError."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:  # Optional[X]
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    words = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: {path} must be a list, got {value!r}")
        return [_check_type(f"{path}[{i}]", v, args[0], source) for i, v in enumerate(value)] if args else list(value)
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if hint in words and not (isinstance(value, hint) and (hint is bool or not isinstance(value, bool))):
        raise ConfigError(f"{source}: {path} must be {words[hint]}, got {value!r}")
    return value


def _merge(base: dict[str, Any], update: dict[str, Any], source: str, prefix: str = "") -> None:
    types = _field_types()
    for key, value in update.items():
        value = _number(value)
        path = f"{prefix}{key}"
        if key not in base:
            known = ", ".join(sorted(base))
            raise ConfigError(f"{source}: unknown config key {path!r}{did_you_mean(key, base)}; known keys here: "
                              f"{known}")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {path!r} must be a mapping of keys, got {value!r}")
            _merge(base[key], value, source, f"{path}.")
        else:
            base[key] = _check_type(path, value, types[path], source) if path in types else value


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


def _merge_file(cfg: dict[str, Any], path: Path, chain: tuple[Path, ...] = ()) -> None:
    """Merge a YAML file into cfg, after the file(s) its `_base_:` names (relative to it; a list is merged in
    order), so a config states only what differs from its base."""
    if not path.is_file():
        where = f" (_base_ of {chain[-1]})" if chain else ""
        raise ConfigError(f"{path}: config file not found{where}")
    if path.resolve() in [c.resolve() for c in chain]:
        raise ConfigError(f"{path}: _base_ cycle: {' -> '.join(str(c) for c in chain + (path,))}")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    bases = loaded.pop("_base_", None) or []
    for base in [bases] if isinstance(bases, str) else bases:
        _merge_file(cfg, path.parent / base, chain + (path,))
    _merge(cfg, loaded, str(path))


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                base: tuple[dict[str, Any], str] | None = None) -> dict[str, Any]:
    """Defaults, then `base` (a resolved config and where it came from, e.g. a checkpoint's), then the YAML file
    (after its `_base_` files), then `section.key=value` overrides; validated."""
    cfg = copy.deepcopy(DEFAULTS)
    if base is not None:
        _merge(cfg, base[0], base[1])
    if path is not None:
        _merge_file(cfg, resolve_config(path))  # configs/<name>.yaml: the checkout's, else the installed copy
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
    need(0 <= int(s["warmup_epochs"]) <= int(s["epochs"]), "schedule.warmup_epochs must be in [0, epochs]")
    need(s["name"] in ("cosine_restarts", "cosine", "constant"),
         f"schedule.name must be cosine_restarts, cosine or constant, got {s['name']!r}")
    need(int(s["T_0"]) >= 1 and int(s["T_mult"]) >= 1, "schedule.T_0 and T_mult must be >= 1")
    need(s.get("steps") is None or int(s["steps"]) >= 1, f"schedule.steps must be null or >= 1, got {s.get('steps')}")
    need(cfg["qat"]["placement"] in PLACEMENTS,
         f"qat.placement must be one of {', '.join(PLACEMENTS)}, got {cfg['qat']['placement']!r}")
    need(t["amp"] in ("auto", "off", "fp16", "bf16"), f"train.amp must be auto, off, fp16 or bf16, got {t['amp']!r}")
    need(int(t["test_clips"]) >= 1, f"train.test_clips must be >= 1, got {t['test_clips']}")
    need(0 <= float(t["ema_decay"]) < 1, f"train.ema_decay must be in [0, 1), got {t['ema_decay']}")
    need(0 < float(d["val_fraction"]) < 1, f"data.val_fraction must be in (0, 1), got {d['val_fraction']}")
    need(t["select"] in ("top1", "loss", "significant"),
         f"train.select must be top1, loss or significant, got {t['select']!r}")
    need(int(t["early_stop_patience"]) >= 0, f"train.early_stop_patience must be >= 0, got {t['early_stop_patience']}")
    need(0 < float(d["label_fraction"]) <= 1, f"data.label_fraction must be in (0, 1], got {d['label_fraction']}")
    k, p = cfg["distill"], cfg["pretrain"]
    need(k["alpha"] is None or 0 <= float(k["alpha"]) <= 1, f"distill.alpha must be in [0, 1], got {k['alpha']}")
    need(k["alpha_end"] is None or 0 <= float(k["alpha_end"]) <= 1,
         f"distill.alpha_end must be in [0, 1], got {k['alpha_end']}")
    need(float(k["tau"]) > 0, f"distill.tau must be > 0, got {k['tau']}")
    need(k["projector"] in ("linear", "mlp"), f"distill.projector must be linear or mlp, got {k['projector']!r}")
    need(k["projector_loss"] in ("mse", "cosine", "infonce"),
         f"distill.projector_loss must be mse, cosine or infonce, got {k['projector_loss']!r}")
    mr = p["mask_ratio"]
    need(isinstance(mr, (list, tuple)) and len(mr) == 2 and 0 < float(mr[0]) <= float(mr[1]) < 1,
         f"pretrain.mask_ratio must be [lo, hi] with 0 < lo <= hi < 1, got {mr!r}")
    need(0 <= float(p["part_share"]) <= 1, f"pretrain.part_share must be in [0, 1], got {p['part_share']}")


def save_config(cfg: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path
