"""The trainer behind `train.fit`, `train.distill` and `train.pretrain`: one loop in small steps.

    trainer = Trainer(cfg, Dist(device))
    trainer.fit()  # setup -> resume -> (train_epoch -> evaluate -> save)* -> summary

Subclasses change what a step computes, not the loop: `build_extras` adds training-only modules
(connectors, projectors, decoders: optimised, saved in last.pt's resume state, never in the exported
weights), `compute_loss` maps one batch to a loss, `load_splits` may drop the validation split.
Resume, DDP under torchrun, AMP on CUDA, the weight EMA, logging, curves and checkpoints come for free.
"""
from __future__ import annotations

import argparse
import copy
import csv
import json
import math
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler
import yaml

from core.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from core.data.dataset import SkeletonDataset
from core.data.splits import shared_clip_count, stratified_fraction, validation_info
from core.plots import pyplot
from core.stats import mcnemar_exact_p
from core.models.last import LAST, create_model
from core.spec import InputSpec
from core.cli import ArgumentParser
from train.config import load_config, save_config
from core.evaluation import evaluate_logits, load_named_split, predict_split, save_confusion_plot, torch_predict_fn


class FitError(RuntimeError):
    """A problem found before or during training; the message says what and where."""


class NonFiniteLossError(FitError):
    pass


# ---------------------------------------------------------------------------------------------
# Distributed helpers (all no-ops in a single process)


class Dist:
    def __init__(self, device_pref: str = "auto"):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        use_cuda = device_pref in ("auto", "cuda") and torch.cuda.is_available()
        if device_pref == "cuda" and not torch.cuda.is_available():
            raise FitError("train.device=cuda but no CUDA device is visible; use train.device=cpu")
        if use_cuda:
            torch.cuda.set_device(self.local_rank)
            self.device = torch.device("cuda", self.local_rank)
        else:
            self.device = torch.device("cpu")
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if use_cuda else "gloo")

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_sum(self, values: list[float]) -> list[float]:
        if not self.enabled:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def gather(self, obj: Any) -> list[Any]:
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


# ---------------------------------------------------------------------------------------------
# Schedule, seeding, RNG state


def apply_step_budget(sched: dict[str, Any], steps_per_epoch: int) -> None:
    """schedule.steps: the epochs that budget takes on this data (rounded up), with warm-up and the first cosine
    cycle scaled by the same factor (in place; the run's config and checkpoints record the resolved values)."""
    epochs = max(1, math.ceil(int(sched["steps"]) / max(steps_per_epoch, 1)))
    scale = epochs / int(sched["epochs"])
    sched["warmup_epochs"] = min(epochs, int(round(int(sched["warmup_epochs"]) * scale)))
    sched["T_0"] = max(1, int(round(int(sched["T_0"]) * scale)))
    sched["epochs"] = epochs


def lr_factor(epoch: float, sched: dict[str, Any], base_lr: float) -> float:
    """Learning-rate multiplier at a fractional epoch: linear warm-up, then cosine (with warm restarts)."""
    warm = float(sched["warmup_epochs"])
    if epoch < warm:
        start = float(sched["warmup_start_factor"])
        return start + (1.0 - start) * epoch / warm
    floor = float(sched["eta_min"]) / base_lr
    e = epoch - warm
    if sched["name"] == "constant":
        return 1.0
    if sched["name"] == "cosine":
        period = max(float(sched["epochs"]) - warm, 1e-8)
        e = min(e, period)
    else:  # cosine_restarts, as torch's CosineAnnealingWarmRestarts
        period = float(sched["T_0"])
        while e >= period:
            e -= period
            period *= int(sched["T_mult"])
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * e / period))


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True, warn_only=True)


def rng_state() -> dict[str, Any]:
    """All RNG states as tensors / lists, loadable with torch.load(weights_only=True)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    py = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": [py[0], list(py[1]), py[2]],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))


# ---------------------------------------------------------------------------------------------
# Building blocks


class Splits:
    """The clips a run trains on, chooses on and is scored on, and what is stored about them."""

    def __init__(self, train: Any, val: Any, test: Any | None, validation: dict[str, Any], warnings: list[str]):
        self.train, self.val, self.test = train, val, test
        self.validation, self.warnings = validation, warnings


def load_data(cfg: dict[str, Any]) -> Splits:
    """Training, validation and test splits of `cfg["data"]`. A validation slice of the training split is removed
    from the clips trained on; a validation split that is the test split is allowed with a warning."""
    d = cfg["data"]
    if d["root"] is not None and not Path(d["root"]).exists():
        raise FitError(f"data.root {d['root']} does not exist (data set {d['name']!r})")

    def load(key: str, split: str) -> Any:
        try:
            return load_named_split(d["name"], split, d["root"], val_fraction=float(d["val_fraction"]),
                                    val_seed=int(d["val_seed"]))
        except (FileNotFoundError, KeyError, ValueError) as exc:
            raise FitError(f"cannot load data set {d['name']!r} split {split!r} (data.{key}): {exc}") from exc

    train, val = load("train_split", d["train_split"]), load("val_split", d["val_split"])
    test_name = d["test_split"] or None
    test = None if test_name is None or test_name == d["val_split"] else load("test_split", test_name)
    if len(train) == 0:
        raise FitError(f"data set {d['name']!r} split {d['train_split']!r} is empty")
    for other, key in ((val, "val_split"), (test, "test_split")):
        if other is None:
            continue
        if train.layout != other.layout:
            raise FitError(f"data set {d['name']!r}: train split layout {train.layout!r} differs from data.{key}'s "
                           f"{other.layout!r}")
        if list(train.class_names) != list(other.class_names):
            raise FitError(f"data set {d['name']!r}: train ({len(train.class_names)} classes) and data.{key} "
                           f"({len(other.class_names)} classes) splits have different class lists")
    info = dict(val.info.get("validation") or validation_info(val.name, val.names, None, None))
    info["split"] = d["val_split"]
    shared = shared_clip_count(train.names, val.names)
    if shared and str(info.get("source", "")).startswith("slice of"):
        held = set(val.names)
        train = train.subset(np.array([i for i, n in enumerate(train.names) if n not in held], dtype=np.int64),
                             name=f"{train.name} without its validation slice")
    elif shared:
        raise FitError(f"data.val_split {d['val_split']!r} shares {shared} clips with data.train_split "
                       f"{d['train_split']!r}: validation clips must not be trained on")
    warnings = []
    if d["val_split"] in ("test", test_name):
        warnings.append(f"data.val_split is {d['val_split']!r}, the split the model is scored on: the epoch is "
                        f"chosen on the test clips and their top-1 is optimistic. Use data.val_split=val (a fixed "
                        f"slice of the training split) for a number that can be published")
    if test is not None and shared_clip_count(train.names, test.names):
        raise FitError(f"data.test_split {test_name!r} shares {shared_clip_count(train.names, test.names)} clips "
                       f"with the training split")
    return Splits(train, val, test, info, warnings)


def check_model_matches_data(cfg: dict[str, Any], train: Any) -> None:
    m = cfg["model"]
    if m["layout"] is not None and m["layout"] != train.layout:
        raise FitError(f"model.layout is {m['layout']!r} but data set {cfg['data']['name']!r} uses layout "
                       f"{train.layout!r} ({train.num_joints} joints); remove model.layout or pick matching data")
    if m["num_classes"] is not None and int(m["num_classes"]) != train.num_classes:
        raise FitError(f"model.num_classes is {m['num_classes']} but data set {cfg['data']['name']!r} has "
                       f"{train.num_classes} classes")


def make_spec(cfg: dict[str, Any], split: Any) -> InputSpec:
    d = cfg["data"]
    persons = int(d["persons"] or split.data.shape[1])
    info = getattr(split, "info", {}) or {}
    return InputSpec(layout=split.layout, frames=int(d["frames"]), persons=persons,
                     channels=min(int(split.data.shape[-1]), 3), streams=tuple(cfg["model"]["streams"]),
                     center=bool(d["center"]), align=bool(d["align"]), scale=bool(d["scale"]),
                     sampling=d["sampling"], fps=split.fps,
                     coordinates=info.get("coordinates", "world"))


def make_model(cfg: dict[str, Any], spec: InputSpec, num_classes: int) -> LAST:
    m = cfg["model"]
    kwargs: dict[str, Any] = dict(num_classes=num_classes, layout=spec.layout, streams=tuple(m["streams"]),
                                  in_channels=spec.channels)
    if m["dropout"] is not None:
        kwargs["dropout"] = float(m["dropout"])
    model = create_model(m["variant"], **kwargs)
    if m["init"]:
        init_weights(model, m["init"], spec)
    return model


def init_weights(model: LAST, path: str, spec: InputSpec) -> list[str]:
    """Copy every same-named, same-shaped tensor of checkpoint `path` into `model` (a pretrained encoder, or a
    model with another head); returns the names that kept their fresh initialisation."""
    try:
        init = load_checkpoint(path)
    except CheckpointError as exc:
        raise FitError(f"model.init: {exc}") from exc
    if init["layout"] != spec.layout:
        raise FitError(f"model.init {path}: checkpoint layout {init['layout']!r} differs from the data's "
                       f"{spec.layout!r}")
    own = model.state_dict()
    usable = {k: v for k, v in init["state_dict"].items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise FitError(f"model.init {path}: no tensor matches a {model.variant} model (another variant?)")
    model.load_state_dict(usable, strict=False)
    return sorted(set(own) - set(usable))


def make_optimizer(modules: list[nn.Module], o: dict[str, Any]) -> torch.optim.Optimizer:
    # no weight decay on norms and biases
    decay, no_decay = [], []
    for module in modules:
        for _, p in module.named_parameters():
            if p.requires_grad:
                (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": float(o["weight_decay"])},
              {"params": no_decay, "weight_decay": 0.0}]
    if o["name"] == "sgd":
        return torch.optim.SGD(groups, lr=float(o["lr"]), momentum=float(o["momentum"]), nesterov=True)
    return torch.optim.AdamW(groups, lr=float(o["lr"]), betas=tuple(float(b) for b in o["betas"]))


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "bf16":
        return torch.bfloat16
    if device.type != "cuda":
        raise FitError(f"train.amp={amp} needs CUDA; on {device.type} use train.amp=off or bf16")
    return torch.float16


class ModelEma(nn.Module):
    """Exponential moving average of a model's weights (as timm's ModelEmaV3): after every optimiser step
    ema = d * ema + (1 - d) * weights, with d warmed up as min(decay, (1 + step) / (10 + step)) so the first
    steps do not average in the random initialisation; buffers (BN statistics) are copied."""

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = True):
        super().__init__()
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.warmup = float(decay), warmup
        self._averaged = {name for name, _ in self.module.named_parameters()}
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def current_decay(self) -> float:
        step = int(self.steps)
        return min(self.decay, (1 + step) / (10 + step)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        own = self.module.state_dict()
        for name, value in model.state_dict().items():
            if name in self._averaged:
                own[name].mul_(d).add_(value.detach(), alpha=1.0 - d)
            else:
                own[name].copy_(value)
        self.steps += 1


class IndexedDataset(Dataset):
    """(x, label, index): the index finds a sample's row in an offline teacher file."""

    def __init__(self, base: Dataset):
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        x, y = self.base[i]
        return x, y, i

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)


class StepModule(nn.Module):
    """The model plus training-only extras behind one forward(batch) -> (loss, logits, parts): what DDP wraps,
    so gradients of connectors and projectors are reduced too."""

    def __init__(self, model: LAST, extras: nn.Module | None, loss_fn):
        super().__init__()
        self.model, self.extras = model, extras
        self._loss_fn = [loss_fn]  # a list: not a submodule

    def forward(self, *batch: torch.Tensor):
        return self._loss_fn[0](self.model, self.extras, batch)


class Logger:
    """One-line summaries to stdout and train.log, metrics to CSV/JSONL, scalars to TensorBoard (rank 0)."""

    FIELDS = ["epoch", "lr", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "val_mean_class",
              "ema_top1", "epoch_seconds", "wall_seconds"]

    def __init__(self, out: Path, active: bool, purge_step: int | None = None, extra_fields: list[str] = ()):
        self.out, self.active, self.tb = out, active, None
        self.fields = self.FIELDS[:-2] + list(extra_fields) + self.FIELDS[-2:]
        if active:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out / "tb"), purge_step=purge_step)
            except ImportError:
                self.info("TensorBoard logging off (pip install tensorboard)")

    def info(self, msg: str) -> None:
        if self.active:
            print(msg, flush=True)
            with open(self.out / "train.log", "a") as f:
                f.write(msg + "\n")

    def scalar(self, tag: str, value: float, step: int) -> None:
        if self.tb is not None:
            self.tb.add_scalar(tag, value, step)

    def write_history(self, history: list[dict[str, Any]]) -> None:
        """Rewrite the CSV/JSONL from the history (a resumed run drops the killed epoch's partial lines)."""
        if not self.active:
            return
        with open(self.out / "metrics.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore")
            w.writeheader()
            w.writerows(history)
        with open(self.out / "metrics.jsonl", "w") as f:
            for row in history:
                f.write(json.dumps(row) + "\n")

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def plot_curves(history: list[dict[str, Any]], path: Path, title: str) -> None:
    plt = pyplot()

    ep = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].plot(ep, [h["train_loss"] for h in history], label="train")
    if any(h.get("val_loss") is not None for h in history):
        axes[0].plot(ep, [h.get("val_loss") for h in history], label="val")
    axes[0].set_title("loss")
    axes[1].plot(ep, [100 * (h.get("train_top1") or float("nan")) for h in history], label="train top-1")
    axes[1].plot(ep, [100 * (h.get("val_top1") or float("nan")) for h in history], label="val top-1")
    axes[1].plot(ep, [100 * (h.get("val_top5") or float("nan")) for h in history], label="val top-5", alpha=0.6)
    if any(h.get("ema_top1") is not None for h in history):
        axes[1].plot(ep, [100 * (h.get("ema_top1") or float("nan")) for h in history], label="EMA val top-1")
    axes[1].set_title("accuracy (%)")
    axes[2].plot(ep, [h["lr"] for h in history])
    axes[2].set_title("learning rate (end of epoch)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].legend()
    axes[1].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def shard_indices(n: int, world: int, rank: int) -> np.ndarray:
    """Validation shard of a rank: every world-th sample (no padding, so reduced metrics are exact)."""
    return np.arange(rank, n, world)


def evaluate_model(model: LAST, split: Any, spec: InputSpec, ddp: Dist, batch_size: int, clips: int = 1,
                   return_logits: bool = False) -> dict[str, Any]:
    """Every rank predicts its shard, rank 0's gather assembles the whole split in order."""
    idx = shard_indices(len(split), ddp.world, ddp.rank)
    part = split.subset(idx) if ddp.enabled else split
    logits = predict_split(torch_predict_fn(model, str(ddp.device)), part, spec, batch_size, clips,
                           progress=ddp.main, desc="eval")
    pieces = ddp.gather((idx, logits))
    full = np.zeros((len(split), len(split.class_names)), dtype=np.float32)
    for i, lg in pieces:
        full[i] = lg
    metrics = evaluate_logits(full, split.labels, split.class_names)
    if return_logits:
        metrics["logits"] = full
    return metrics


# ---------------------------------------------------------------------------------------------
# The trainer


class Trainer:
    """Supervised training; subclasses override the hooks marked below."""

    loss_fields: list[str] = []  # extra per-epoch loss terms logged beside train_loss (subclasses)

    def __init__(self, cfg: dict[str, Any], ddp: Dist, resume: str | None = None,
                 stop_after_epochs: int | None = None, overwrite: bool = False):
        self.cfg, self.ddp = cfg, ddp
        self.resume_arg, self.stop_after_epochs, self.overwrite = resume, stop_after_epochs, overwrite
        self.out = Path(cfg["output_dir"])
        self.last_path, self.best_path, self.ema_path = self.out / "last.pt", self.out / "best.pt", self.out / "ema.pt"

    # -- hooks -----------------------------------------------------------------------------

    def load_splits(self) -> Splits:
        """Training (after the validation slice and the label fraction are taken out), validation and test."""
        splits = load_data(self.cfg)
        frac = float(self.cfg["data"]["label_fraction"])
        if frac < 1.0:
            self.unlabelled_split = splits.train  # every training clip, for teachers that need no labels
            keep = stratified_fraction(splits.train.labels, frac, int(self.cfg["data"]["label_seed"]))
            splits.train = splits.train.subset(keep, name=f"{splits.train.name}[{frac:g} labels]")
        return splits

    def build_model(self, spec: InputSpec, num_classes: int) -> LAST:
        return make_model(self.cfg, spec, num_classes)

    def build_extras(self) -> nn.Module | None:
        """Training-only modules optimised with the model (connectors, projectors, decoders)."""
        return None

    def build_train_dataset(self) -> Dataset:
        crop = tuple(self.cfg["data"]["crop_ratio"]) if self.cfg["data"]["crop_ratio"] else None
        base = SkeletonDataset(self.train_split, self.spec, train=True, augment=dict(self.cfg["augment"]),
                               seed=self.seed, crop_ratio=crop or (1.0, 1.0))
        return IndexedDataset(base)

    def compute_loss(self, model: nn.Module, extras: nn.Module | None, batch: tuple[torch.Tensor, ...]
                     ) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, torch.Tensor]]:
        """(loss, logits for the running train accuracy or None, named loss terms to log)."""
        x, y = batch[0], batch[1]
        logits = model(x)
        return self.criterion(logits.float(), y), logits, {}

    def load_best(self) -> nn.Module:
        """best.pt as the model that was validated (train.qat: with its INT8 simulation)."""
        return load_model(self.best_path)[0]

    def describe(self) -> str:
        """Extra words for the first log line."""
        return ""

    def checkpoint_extra(self) -> dict[str, Any]:
        """Extra top-level entries written into every checkpoint (train.qat: the quantization ranges)."""
        return {}

    # -- steps -----------------------------------------------------------------------------

    def setup(self) -> None:
        """Paths, seed, data, model, loader, optimiser: everything that can be wrong fails here, before a step."""
        cfg, ddp, t, o, s = self.cfg, self.ddp, self.cfg["train"], self.cfg["optim"], self.cfg["schedule"]
        r = self.resume_arg
        self.resume_path = Path(r) if r not in (None, "auto") else (self.last_path if r == "auto" else None)
        if self.resume_path is None and self.last_path.exists() and not self.overwrite:
            raise FitError(f"{self.out} already holds a run ({self.last_path}); continue it with --resume, "
                           f"or choose another output_dir / name, or pass --overwrite")
        if self.resume_path is not None and not self.resume_path.is_file():
            raise FitError(f"--resume: {self.resume_path} not found (nothing to resume in {self.out})")
        if t["threads"]:
            torch.set_num_threads(int(t["threads"]))
        self.seed = int(t["seed"])
        seed_everything(self.seed, bool(t["deterministic"]))

        self.unlabelled_split = None
        splits = self.load_splits()
        self.train_split, self.val_split, self.test_split = splits.train, splits.val, splits.test
        self.validation, self.data_warnings = splits.validation, splits.warnings
        check_model_matches_data(cfg, self.train_split)
        self.spec = make_spec(cfg, self.train_split)
        self.class_names = list(self.train_split.class_names)
        self.model = self.build_model(self.spec, len(self.class_names)).to(ddp.device)
        self.num_params = sum(p.numel() for p in self.model.parameters())
        self.criterion = nn.CrossEntropyLoss(label_smoothing=float(o["label_smoothing"]))
        self.train_ds = self.build_train_dataset()
        extras = self.build_extras()
        self.extras = extras.to(ddp.device) if extras is not None else None

        self.sampler = DistributedSampler(self.train_ds, num_replicas=ddp.world, rank=ddp.rank, shuffle=True,
                                          seed=self.seed)
        self.batch = int(o["batch_size"])
        self.loader = DataLoader(self.train_ds, batch_size=self.batch, sampler=self.sampler,
                                 num_workers=int(cfg["data"]["num_workers"]), drop_last=len(self.sampler) > self.batch,
                                 pin_memory=ddp.device.type == "cuda")
        self.steps_per_epoch = len(self.loader)
        if s.get("steps"):
            apply_step_budget(s, self.steps_per_epoch)

        self.sync_bn_note = ""
        if ddp.enabled and cfg["model"]["sync_bn"]:
            if ddp.device.type != "cuda":
                self.sync_bn_note = ("model.sync_bn ignored: SyncBatchNorm needs CUDA devices; BN statistics stay "
                                     "per process")
            else:
                self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.step_module: nn.Module = StepModule(self.model, self.extras, self.compute_loss)
        if ddp.enabled:
            self.step_module = nn.parallel.DistributedDataParallel(
                self.step_module, device_ids=[ddp.local_rank] if ddp.device.type == "cuda" else None)
        trained = [self.model] + ([self.extras] if self.extras is not None else [])
        self.optimizer = make_optimizer(trained, o)
        base_lr = float(o["lr"])
        steps = self.steps_per_epoch
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(step / steps, s, base_lr))
        self.dtype = amp_dtype(t["amp"], ddp.device)
        self.scaler = torch.amp.GradScaler(ddp.device.type, enabled=self.dtype == torch.float16)
        decay = float(t["ema_decay"])
        self.ema = ModelEma(self.model, decay) if decay > 0 else None

        self.start_epoch, self.history, self.best = 0, [], {"top1": -1.0, "epoch": 0}
        self.stopped_early = False
        self.wall_before = 0.0

    def resume(self) -> None:
        """Restore weights, extras, EMA, optimiser, scheduler, scaler, RNG and history from last.pt."""
        ddp = self.ddp
        if self.resume_path is None:
            if ddp.enabled:
                torch.manual_seed(self.seed + ddp.rank)  # same initial weights (DDP broadcasts rank 0's), own dropout
            return
        try:
            ckpt = load_checkpoint(self.resume_path)
        except CheckpointError as exc:
            raise FitError(f"--resume: {exc}") from exc
        state = ckpt.get("resume")
        if not state:
            raise FitError(f"--resume: {self.resume_path} has no resume state (only last.pt does)")
        if state["steps_per_epoch"] != self.steps_per_epoch:
            raise FitError(f"--resume: {self.resume_path} was written with {state['steps_per_epoch']} steps per "
                           f"epoch, this run has {self.steps_per_epoch}; keep optim.batch_size and the process count")
        self.model.load_state_dict(ckpt["state_dict"])
        if self.extras is not None:
            self.extras.load_state_dict(state["extras"])
        if self.ema is not None:
            if "ema" not in state:
                raise FitError(f"--resume: {self.resume_path} was trained without train.ema_decay")
            self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"][min(ddp.rank, len(state["rng"]) - 1)])
        self.start_epoch, self.history, self.best = int(state["epoch"]), list(state["history"]), dict(state["best"])
        self.wall_before = float(state["wall_seconds"])

    def open_log(self) -> None:
        ddp, cfg, out = self.ddp, self.cfg, self.out
        if ddp.main and self.resume_path is None and out.exists():  # a fresh (or overwritten) run starts clean logs
            shutil.rmtree(out / "tb", ignore_errors=True)
            for stale in ("train.log", "metrics.csv", "metrics.jsonl", "summary.json", "ddp_shards.json"):
                (out / stale).unlink(missing_ok=True)
        self.log = Logger(out, ddp.main, self.start_epoch * self.steps_per_epoch if self.resume_path else None,
                          extra_fields=self.loss_fields)
        if ddp.main:
            out.mkdir(parents=True, exist_ok=True)
            save_config(cfg, out / "config.yaml")
            val = f"{len(self.val_split)} val clips" if self.val_split is not None else "no validation split"
            self.log.info(
                f"{cfg['name']}: {cfg['model']['variant']} ({self.num_params / 1e6:.3f} M params, streams "
                f"{'+'.join(self.spec.streams)}) on {cfg['data']['name']} {len(self.train_split)} train clips / "
                f"{val}, {len(self.class_names)} classes, layout {self.spec.layout}, T={self.spec.frames}, "
                f"M={self.spec.persons}; {ddp.world} process(es) on {ddp.device}, batch {self.batch}/process, "
                f"{self.steps_per_epoch} steps/epoch" + self.describe()
                + (f"; resumed from {self.resume_path} at epoch {self.start_epoch}" if self.resume_path else ""))
            if self.sync_bn_note:
                self.log.info(self.sync_bn_note)
            if self.val_split is not None:
                v = self.validation
                self.log.info(f"validation: {v['clips']} clips of {v['source']} (digest {v['digest']}) choose the "
                              f"epoch; " + (f"{len(self.test_split)} clips of {cfg['data']['test_split']!r} are "
                                            f"scored once at the end" if self.test_split is not None else
                                            "no test split is scored"))
            for warning in self.data_warnings:
                self.log.info(f"WARNING: {warning}")
        if ddp.enabled:
            # each rank's first-epoch sample indices, gathered for inspection (disjoint shards)
            self.sampler.set_epoch(self.start_epoch)
            shards = ddp.gather([int(i) for i in self.sampler])
            if ddp.main:
                (out / "ddp_shards.json").write_text(json.dumps(
                    {"epoch": self.start_epoch, "world_size": ddp.world, "dataset_size": len(self.train_ds),
                     "shards": shards}))

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        from tqdm import tqdm

        ddp, o, t = self.ddp, self.cfg["optim"], self.cfg["train"]
        epochs = int(self.cfg["schedule"]["epochs"])
        self.sampler.set_epoch(epoch)
        self.train_ds.set_epoch(epoch)
        self.step_module.train()
        sums = {"loss": 0.0, "correct": 0.0, "seen": 0.0, "scored": 0.0, **{k: 0.0 for k in self.loss_fields}}
        bar = tqdm(self.loader, desc=f"epoch {epoch + 1}/{epochs}", disable=not ddp.main, leave=False,
                   dynamic_ncols=True, unit="batch")
        for step, batch in enumerate(bar):
            batch = [b.to(ddp.device, non_blocking=True) for b in batch]
            with torch.autocast(ddp.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None):
                loss, logits, parts = self.step_module(*batch)
            bad = float(not torch.isfinite(loss).item())
            if ddp.all_sum([bad])[0] > 0:
                good = self.last_path if self.last_path.exists() else None
                raise NonFiniteLossError(
                    f"loss became non-finite ({loss.item()}) at epoch {epoch + 1}, step {step + 1} "
                    f"(global step {epoch * self.steps_per_epoch + step + 1}); stopped without writing a checkpoint. "
                    f"Last good checkpoint: {good or 'none written yet'}. Try a lower optim.lr or optim.clip_grad.")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if float(o["clip_grad"]) > 0:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]],
                                         float(o["clip_grad"]))
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            if self.ema is not None:
                self.ema.update(self.model)
            n = len(batch[0])
            sums["loss"] += float(loss.detach()) * n
            sums["seen"] += n
            for k, v in parts.items():
                sums[k] += float(v.detach()) * n
            if logits is not None:  # label -1: an unlabelled clip (distillation on a label fraction)
                labelled = batch[1] >= 0
                sums["correct"] += float(((logits.detach().argmax(1) == batch[1]) & labelled).sum())
                sums["scored"] += float(labelled.sum())
            gstep = epoch * self.steps_per_epoch + step + 1
            if ddp.main and gstep % int(t["log_every"]) == 0:
                self.log.scalar("train/loss_step", float(loss.detach()), gstep)
                self.log.scalar("train/lr", self.optimizer.param_groups[0]["lr"], gstep)
            post = {"loss": f"{sums['loss'] / sums['seen']:.3f}"}
            if sums["scored"]:
                post["acc"] = f"{100 * sums['correct'] / sums['scored']:.1f}%"
            bar.set_postfix(post)
        bar.close()
        keys = list(sums)
        reduced = dict(zip(keys, ddp.all_sum([sums[k] for k in keys])))
        seen = max(reduced["seen"], 1)
        row: dict[str, Any] = {"epoch": epoch + 1, "lr": self.optimizer.param_groups[0]["lr"],
                               "train_loss": reduced["loss"] / seen,
                               "train_top1": reduced["correct"] / reduced["scored"] if reduced["scored"] else None}
        row.update({k: reduced[k] / seen for k in self.loss_fields})
        return row

    def evaluate(self, epoch: int, row: dict[str, Any]) -> dict[str, Any] | None:
        """Validation metrics of this epoch (None when not an evaluation epoch or there is no validation split)."""
        last_epoch = epoch + 1 == int(self.cfg["schedule"]["epochs"])
        if self.val_split is None or not ((epoch + 1) % int(self.cfg["train"]["eval_every"]) == 0 or last_epoch):
            return None
        metrics = evaluate_model(self.model, self.val_split, self.spec, self.ddp, self.batch, return_logits=True)
        self.save_val_logits(epoch, metrics.pop("logits"))
        row.update(val_loss=metrics["loss"], val_top1=metrics["top1"], val_top5=metrics["top5"],
                   val_mean_class=metrics["mean_class_accuracy"])
        if self.ema is not None:
            row["ema_top1"] = evaluate_model(self.ema.module, self.val_split, self.spec, self.ddp, self.batch)["top1"]
        return metrics

    def save_val_logits(self, epoch: int, logits: np.ndarray) -> None:
        """Every evaluated epoch's validation logits (val_predictions.npz): what a rule for choosing the epoch can
        be studied on without the test split (e.g. split-half: choose on one half, score on the other)."""
        if not self.ddp.main:
            return
        path = self.out / "val_predictions.npz"
        epochs, stack = [], []
        if path.is_file():
            with np.load(path, allow_pickle=False) as z:
                keep = z["epochs"] <= epoch  # a resumed run overwrites what it trains again
                epochs, stack = list(z["epochs"][keep]), list(z["logits"][keep])
        epochs.append(epoch + 1)
        stack.append(logits.astype(np.float32))
        tmp = path.with_name(".val_predictions.tmp.npz")
        np.savez_compressed(tmp, epochs=np.array(epochs), logits=np.stack(stack), labels=self.val_split.labels,
                            names=np.array(self.val_split.names))
        tmp.replace(path)

    def keep_last_unless_significant(self) -> dict[str, Any]:
        """train.select=significant: the last epoch, unless the best-top-1 epoch beats it on the validation clips by
        an exact McNemar test at p < 0.05 (on a few hundred clips the argmax of noisy epochs is mostly luck)."""
        last = self.history[-1]["epoch"]
        decision = {"rule": "significant", "best_top1_epoch": self.best["epoch"], "last_epoch": last}
        if self.best["epoch"] == last:
            return {**decision, "kept": last}
        with np.load(self.out / "val_predictions.npz", allow_pickle=False) as z:
            epochs, logits, labels = list(z["epochs"]), z["logits"], z["labels"]
        right = logits.argmax(2) == labels[None]
        b, l = right[epochs.index(self.best["epoch"])], right[epochs.index(last)]
        fixed, broken = int(np.sum(b & ~l)), int(np.sum(~b & l))
        p = mcnemar_exact_p(fixed, broken)
        decision.update(best_right_last_wrong=fixed, best_wrong_last_right=broken, p_value=p)
        if fixed > broken and p < 0.05:
            return {**decision, "kept": self.best["epoch"]}
        row = self.history[-1]
        self.best = {"top1": row["val_top1"], "top5": row["val_top5"], "epoch": last,
                     "mean_class_accuracy": row["val_mean_class"], "loss": row["val_loss"]}
        if self.ddp.main:
            save_checkpoint(self.best_path, self.model, self.spec, self.class_names,
                            train=self.train_info(last - 1), metrics=dict(self.best), extra=self.checkpoint_extra())
            self.log.info(f"selection: the last epoch {last} (epoch {decision['best_top1_epoch']}'s better validation "
                          f"top-1 is {fixed}:{broken} clips, McNemar p = {p:.2f}: not significant)")
        return {**decision, "kept": last}

    def improved(self, metrics: dict[str, Any]) -> bool:
        """Whether this epoch's validation beats the best so far, by train.select: top1 (ties go to the lower
        loss) or loss."""
        if self.cfg["train"]["select"] == "loss":
            return metrics["loss"] < self.best.get("loss", float("inf"))
        return (metrics["top1"], -metrics["loss"]) > (self.best["top1"], -self.best.get("loss", float("inf")))

    def train_info(self, epoch: int) -> dict[str, Any]:
        cfg = self.cfg
        return {"config": cfg, "epoch": epoch + 1, "epochs": int(cfg["schedule"]["epochs"]),
                "data": cfg["data"]["name"], "train_split": cfg["data"]["train_split"],
                "val_split": cfg["data"]["val_split"] if self.val_split is not None else None,
                "validation": self.validation if self.val_split is not None else None,
                "test_split": cfg["data"]["test_split"] if self.test_split is not None else None,
                "world_size": self.ddp.world, "num_params": self.num_params}

    def save(self, epoch: int, row: dict[str, Any], metrics: dict[str, Any] | None) -> None:
        """best.pt when improved (or every epoch without validation), ema.pt, last.pt with the resume state."""
        ddp = self.ddp
        improved = metrics is not None and self.improved(metrics)
        if improved:
            self.best = {"top1": metrics["top1"], "top5": metrics["top5"], "epoch": epoch + 1,
                         "mean_class_accuracy": metrics["mean_class_accuracy"], "loss": metrics["loss"]}
        elif self.val_split is None:
            self.best = {"top1": -1.0, "epoch": epoch + 1}
        states = ddp.gather(rng_state())
        if ddp.main:
            info = self.train_info(epoch)
            summary_metrics = {k: v for k, v in (metrics or {}).items() if k != "class_names"}
            if improved or self.val_split is None:
                save_checkpoint(self.best_path, self.model, self.spec, self.class_names, train=info,
                                metrics=summary_metrics, extra=self.checkpoint_extra())
            if improved:
                (self.out / "confusion.json").write_text(json.dumps(metrics, indent=1))
                save_confusion_plot(metrics, self.out / "confusion.png",
                                    f"{self.cfg['name']} epoch {epoch + 1}: top-1 {100 * metrics['top1']:.2f}%")
            if self.ema is not None:
                ema_metrics = {"top1": row["ema_top1"]} if row.get("ema_top1") is not None else {}
                save_checkpoint(self.ema_path, self.ema.module, self.spec, self.class_names,
                                train={**info, "ema_decay": self.ema.decay}, metrics=ema_metrics)
            resume_state = {"epoch": epoch + 1, "optimizer": self.optimizer.state_dict(),
                            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                            "rng": states, "history": self.history, "best": self.best,
                            "steps_per_epoch": self.steps_per_epoch, "wall_seconds": row["wall_seconds"]}
            if self.extras is not None:
                resume_state["extras"] = {k: v.detach().cpu() for k, v in self.extras.state_dict().items()}
            if self.ema is not None:
                resume_state["ema"] = {k: v.detach().cpu() for k, v in self.ema.state_dict().items()}
            save_checkpoint(self.last_path, self.model, self.spec, self.class_names, train=info,
                            metrics=summary_metrics, extra={"resume": resume_state, **self.checkpoint_extra()})
            self.log.write_history(self.history)
            for key in ("train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "ema_top1", "lr",
                        *self.loss_fields):
                if row.get(key) is not None:
                    self.log.scalar(f"epoch/{key}", row[key], epoch + 1)
            self.log.info(self.epoch_line(epoch, row, metrics))

    def epoch_line(self, epoch: int, row: dict[str, Any], metrics: dict[str, Any] | None) -> str:
        epochs = int(self.cfg["schedule"]["epochs"])
        train = f"train loss {row['train_loss']:.3f}"
        if row.get("train_top1") is not None:
            train += f" top-1 {100 * row['train_top1']:.2f}%"
        train += "".join(f" {k} {row[k]:.3f}" for k in self.loss_fields)
        val = (f"val loss {row['val_loss']:.3f} top-1 {100 * row['val_top1']:.2f}% top-5 "
               f"{100 * row['val_top5']:.2f}%" if metrics else "val -")
        if row.get("ema_top1") is not None:
            val += f" (EMA {100 * row['ema_top1']:.2f}%)"
        best = f" | best {100 * max(self.best['top1'], 0):.2f}% @{self.best['epoch']}" if self.val_split is not None \
            else ""
        return (f"epoch {epoch + 1:3d}/{epochs} lr {row['lr']:.2e} | {train} | {val}{best} | "
                f"{row['epoch_seconds']:.0f}s")

    def summary(self) -> dict[str, Any]:
        cfg, ddp, history, best = self.cfg, self.ddp, self.history, self.best
        epochs = int(cfg["schedule"]["epochs"])
        finished = len(history) >= epochs or self.stopped_early
        last = history[-1] if history else {}
        has_val = self.val_split is not None
        summary = {"name": cfg["name"], "variant": cfg["model"]["variant"], "streams": list(self.spec.streams),
                   "data": cfg["data"]["name"], "train_clips": len(self.train_split), "params": self.num_params,
                   "epochs": len(history), "planned_epochs": epochs, "finished": finished,
                   "stopped_early": self.stopped_early,
                   "chosen_on": cfg["data"]["val_split"] if has_val else None,
                   "validation": self.validation if has_val else None, "warnings": list(self.data_warnings),
                   "val_top1": best["top1"] if has_val else None, "val_top5": best.get("top5"),
                   "best_epoch": best["epoch"], "val_top1_last_epoch": last.get("val_top1"),
                   "last_ema_top1": last.get("ema_top1"),
                   "wall_seconds": last.get("wall_seconds", 0.0), "world_size": ddp.world,
                   "best_checkpoint": str(self.best_path), "last_checkpoint": str(self.last_path)}
        if self.ema is not None:
            summary["ema_checkpoint"] = str(self.ema_path)
        if finished and has_val and self.cfg["train"]["select"] == "significant":
            summary["selection"] = self.keep_last_unless_significant()
            summary.update(val_top1=self.best["top1"], val_top5=self.best.get("top5"), best_epoch=self.best["epoch"])
        if finished and self.test_split is not None and has_val and self.best_path.exists():
            summary.update(self.score_test())
        if finished and ddp.main:
            plot_curves(history, self.out / "curves.png", f"{cfg['name']} ({summary['params'] / 1e6:.2f} M params)")
            if has_val:
                test = (f"; test ({cfg['data']['test_split']}) top-1 {100 * summary['test_top1_at_val_epoch']:.2f}% "
                        f"at that epoch, {100 * summary['test_top1_last_epoch']:.2f}% at the last"
                        if "test_top1_at_val_epoch" in summary else "")
                self.log.info(
                    f"done: validation top-1 {100 * summary['val_top1']:.2f}% at epoch {summary['best_epoch']} "
                    f"(chosen), last epoch "
                    f"{100 * (last.get('val_top1') or 0):.2f}%{test}; {len(history)} epochs in "
                    f"{summary['wall_seconds'] / 60:.1f} min; {self.best_path}")
            else:
                self.log.info(f"done: {len(history)} epochs in {summary['wall_seconds'] / 60:.1f} min; "
                              f"{self.best_path}")
            for warning in self.data_warnings:
                self.log.info(f"WARNING: {warning}")
        if ddp.main:
            (self.out / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary

    def score_test(self) -> dict[str, Any]:
        """The test split, scored once: the validation-chosen best.pt (1 clip and train.test_clips clips) and the
        last epoch's weights; per-clip logits saved to test_predictions.npz for paired comparisons."""
        ddp, split, clips = self.ddp, self.test_split, int(self.cfg["train"]["test_clips"])
        best_model = self.load_best().to(ddp.device)
        at_best = evaluate_model(best_model, split, self.spec, ddp, self.batch, return_logits=True)
        at_last = evaluate_model(self.model, split, self.spec, ddp, self.batch, return_logits=True)
        out = {"test_split": self.cfg["data"]["test_split"], "test_clips_scored": len(split),
               "test_top1_at_val_epoch": at_best["top1"], "test_top5_at_val_epoch": at_best["top5"],
               "test_mean_class_at_val_epoch": at_best["mean_class_accuracy"],
               "test_top1_last_epoch": at_last["top1"], "test_top5_last_epoch": at_last["top5"]}
        if clips > 1:
            multi = evaluate_model(best_model, split, self.spec, ddp, self.batch, clips)
            out.update({f"test_top1_at_val_epoch_{clips}clips": multi["top1"],
                        f"test_top5_at_val_epoch_{clips}clips": multi["top5"]})
        if ddp.main:
            np.savez_compressed(self.out / "test_predictions.npz", names=np.array(split.names),
                                labels=split.labels, logits_at_val_epoch=at_best["logits"],
                                logits_last_epoch=at_last["logits"], class_names=np.array(self.class_names),
                                best_epoch=np.array(self.best["epoch"]))
            at_best.pop("logits"), at_best.pop("class_names", None)
            (self.out / "test_metrics.json").write_text(json.dumps(
                {"chosen_epoch": self.best["epoch"], "at_val_epoch": at_best,
                 "last_epoch": {k: v for k, v in at_last.items() if k not in ("logits", "class_names")}}, indent=1))
            save_confusion_plot({**at_best, "class_names": self.class_names}, self.out / "test_confusion.png",
                                f"{self.cfg['name']} test, epoch {self.best['epoch']} (chosen on validation): "
                                f"top-1 {100 * at_best['top1']:.2f}%")
        return out

    def fit(self) -> dict[str, Any]:
        self.setup()
        self.resume()
        self.open_log()
        epochs = int(self.cfg["schedule"]["epochs"])
        run_start, ran = time.time(), 0
        try:
            for epoch in range(self.start_epoch, epochs):
                if self.stop_after_epochs is not None and ran >= self.stop_after_epochs:
                    self.log.info(f"stopped after {ran} epoch(s) as asked (--stop-after-epochs); continue with "
                                  f"--resume")
                    break
                epoch_start = time.time()
                row = self.train_epoch(epoch)
                metrics = self.evaluate(epoch, row)
                row["epoch_seconds"] = time.time() - epoch_start
                row["wall_seconds"] = self.wall_before + time.time() - run_start
                self.history.append(row)
                ran += 1
                self.save(epoch, row, metrics)
                self.ddp.barrier()
                patience = int(self.cfg["train"]["early_stop_patience"])
                if patience and metrics is not None and epoch + 1 - self.best["epoch"] >= patience:
                    self.stopped_early = True
                    self.log.info(f"early stop: no better validation score for {patience} epochs (best at epoch "
                                  f"{self.best['epoch']})")
                    break
            return self.summary()
        finally:
            self.log.close()


def run_trainer(trainer_cls: type[Trainer], cfg: dict[str, Any], resume: str | None = None,
                stop_after_epochs: int | None = None, overwrite: bool = False) -> dict[str, Any]:
    ddp = Dist(cfg["train"]["device"])
    try:
        return trainer_cls(cfg, ddp, resume, stop_after_epochs, overwrite).fit()
    finally:
        ddp.close()


# ---------------------------------------------------------------------------------------------
# The command line shared by train.fit, train.distill and train.pretrain


def parse_args(argv: list[str] | None = None, prog: str = "python -m train.fit",
               description: str = "Train a LAST model.") -> argparse.Namespace:
    """The command line shared by train.fit, train.distill and train.pretrain."""
    p = ArgumentParser(
        prog=prog,
        description=description + " Settings: defaults <- --config YAML <- section.key=value overrides.",
        epilog="examples:\n  python -m train.fit --config configs/nw_ucla_last_large.yaml\n"
               "  python -m train.fit --config configs/synthetic.yaml model.variant=last_nano schedule.epochs=5\n"
               "  torchrun --nproc_per_node 2 -m train.fit --config configs/synthetic.yaml train.device=cpu",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=None, help="experiment YAML (see configs/)")
    p.add_argument("overrides", nargs="*", metavar="section.key=value",
                   help="override any config key, e.g. optim.lr=5e-4 schedule.epochs=30 model.streams=[joint,bone]")
    p.add_argument("--resume", nargs="?", const="auto", default=None, metavar="CHECKPOINT",
                   help="continue from output_dir/last.pt (or the given last.pt) with its optimizer, scheduler, "
                        "scaler and RNG state")
    p.add_argument("--stop-after-epochs", type=int, default=None, metavar="N",
                   help="train at most N epochs in this invocation, then save and exit (time-sliced jobs)")
    p.add_argument("--overwrite", action="store_true", help="start over even if output_dir holds a run")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    args = p.parse_args(argv)
    if args.resume not in (None, "auto") and "=" in args.resume and not Path(args.resume).exists():
        # "--resume schedule.epochs=30": argparse took the override for the optional checkpoint path
        args.overrides.append(args.resume)
        args.resume = "auto"
    return args


def trainer_main(trainer_cls: type, argv: list[str] | None, prog: str, description: str) -> dict[str, Any] | None:
    """Parse the shared command line, resolve the config, run `trainer_cls`; the summary, or None (--print-config)."""
    args = parse_args(argv, prog=prog, description=description)
    cfg = load_config(args.config, args.overrides)
    if args.print_config:
        print(yaml.safe_dump(cfg, sort_keys=False))
        return None
    return run_trainer(trainer_cls, cfg, resume=args.resume, stop_after_epochs=args.stop_after_epochs,
                       overwrite=args.overwrite)
