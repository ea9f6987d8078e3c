"""Supervised training of any LAST variant on any prepared data set, on one CPU or many GPUs.

    python -m train.fit --config configs/nw_ucla_last_large.yaml
    python -m train.fit --config configs/nw_ucla_last_large.yaml --resume          # continue a killed run
    python -m train.fit --config configs/synthetic.yaml model.variant=last_nano schedule.epochs=5
    torchrun --nproc_per_node 4 -m train.fit --config configs/ntu60_xsub.yaml     # DDP, one process per GPU

Outputs in output_dir: config.yaml (resolved), last.pt, best.pt, metrics.csv / metrics.jsonl, tb/ (TensorBoard),
confusion.png / confusion.json (best epoch), curves.png, summary.json, train.log.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from core.cli import ArgumentParser, run_cli
from core.models.last import LAST, create_model
from core.spec import InputSpec
from train.config import ConfigError, load_config, save_config
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


def load_data(cfg: dict[str, Any]) -> tuple[Any, Any]:
    d = cfg["data"]
    if d["root"] is not None and not Path(d["root"]).exists():
        raise FitError(f"data.root {d['root']} does not exist (data set {d['name']!r})")
    splits = []
    for key in ("train_split", "val_split"):
        try:
            splits.append(load_named_split(d["name"], d[key], d["root"]))
        except (FileNotFoundError, KeyError, ValueError) as exc:
            raise FitError(f"cannot load data set {d['name']!r} split {d[key]!r} (data.{key}): {exc}") from exc
    train, val = splits
    if len(train) == 0:
        raise FitError(f"data set {d['name']!r} split {d['train_split']!r} is empty")
    if train.layout != val.layout:
        raise FitError(f"data set {d['name']!r}: train split layout {train.layout!r} differs from the validation "
                       f"split's {val.layout!r}")
    if list(train.class_names) != list(val.class_names):
        raise FitError(f"data set {d['name']!r}: train ({len(train.class_names)} classes) and validation "
                       f"({len(val.class_names)} classes) splits have different class lists")
    return train, val


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
        init = load_checkpoint(m["init"])
        if init["layout"] != spec.layout:
            raise FitError(f"model.init {m['init']}: checkpoint layout {init['layout']!r} differs from the data's "
                           f"{spec.layout!r}")
        own = model.state_dict()
        usable = {k: v for k, v in init["state_dict"].items() if k in own and own[k].shape == v.shape}
        model.load_state_dict(usable, strict=False)
    return model


def make_optimizer(model: nn.Module, o: dict[str, Any]) -> torch.optim.Optimizer:
    # no weight decay on norms and biases
    decay, no_decay = [], []
    for name, p in model.named_parameters():
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


class Logger:
    """One-line summaries to stdout and train.log, metrics to CSV/JSONL, scalars to TensorBoard (rank 0)."""

    FIELDS = ["epoch", "lr", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "val_mean_class",
              "epoch_seconds", "wall_seconds"]

    def __init__(self, out: Path, active: bool, purge_step: int | None = None):
        self.out, self.active, self.tb = out, active, None
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
            w = csv.DictWriter(f, fieldnames=self.FIELDS, extrasaction="ignore")
            w.writeheader()
            w.writerows(history)
        with open(self.out / "metrics.jsonl", "w") as f:
            for row in history:
                f.write(json.dumps(row) + "\n")

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def plot_curves(history: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].plot(ep, [h["train_loss"] for h in history], label="train")
    axes[0].plot(ep, [h.get("val_loss") for h in history], label="val")
    axes[0].set_title("loss")
    axes[1].plot(ep, [100 * h["train_top1"] for h in history], label="train top-1")
    axes[1].plot(ep, [100 * (h.get("val_top1") or float("nan")) for h in history], label="val top-1")
    axes[1].plot(ep, [100 * (h.get("val_top5") or float("nan")) for h in history], label="val top-5", alpha=0.6)
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


# ---------------------------------------------------------------------------------------------
# Training


def shard_indices(n: int, world: int, rank: int) -> np.ndarray:
    """Validation shard of a rank: every world-th sample (no padding, so reduced metrics are exact)."""
    return np.arange(rank, n, world)


def evaluate_model(model: LAST, split: Any, spec: InputSpec, ddp: Dist, batch_size: int, clips: int = 1
                   ) -> dict[str, Any]:
    """Every rank predicts its shard, rank 0's gather assembles the whole split in order."""
    idx = shard_indices(len(split), ddp.world, ddp.rank)
    part = split.subset(idx) if ddp.enabled else split
    logits = predict_split(torch_predict_fn(model, str(ddp.device)), part, spec, batch_size, clips,
                           progress=ddp.main, desc="eval")
    pieces = ddp.gather((idx, logits))
    full = np.zeros((len(split), len(split.class_names)), dtype=np.float32)
    for i, lg in pieces:
        full[i] = lg
    return evaluate_logits(full, split.labels, split.class_names)


def run(cfg: dict[str, Any], resume: str | None = None, stop_after_epochs: int | None = None,
        overwrite: bool = False) -> dict[str, Any]:
    """Train as configured; returns the summary (best metrics, epochs, wall time, paths)."""
    t = cfg["train"]
    ddp = Dist(t["device"])
    try:
        return _run(cfg, ddp, resume, stop_after_epochs, overwrite)
    finally:
        ddp.close()


def _run(cfg: dict[str, Any], ddp: Dist, resume: str | None, stop_after_epochs: int | None,
         overwrite: bool) -> dict[str, Any]:
    t, o, s = cfg["train"], cfg["optim"], cfg["schedule"]
    out = Path(cfg["output_dir"])
    last_path, best_path = out / "last.pt", out / "best.pt"
    resume_path = Path(resume) if resume not in (None, "auto") else (last_path if resume == "auto" else None)
    if resume_path is None and last_path.exists() and not overwrite:
        raise FitError(f"{out} already holds a run ({last_path}); continue it with --resume, "
                       f"or choose another output_dir / name, or pass --overwrite")
    if resume_path is not None and not resume_path.is_file():
        raise FitError(f"--resume: {resume_path} not found (nothing to resume in {out})")
    if t["threads"]:
        torch.set_num_threads(int(t["threads"]))
    seed = int(t["seed"])
    seed_everything(seed, bool(t["deterministic"]))

    # Everything that can be wrong is checked before the first step.
    train_split, val_split = load_data(cfg)
    check_model_matches_data(cfg, train_split)
    spec = make_spec(cfg, train_split)
    class_names = list(train_split.class_names)
    model = make_model(cfg, spec, len(class_names)).to(ddp.device)
    num_params = sum(p.numel() for p in model.parameters())

    from torch.utils.data import DataLoader
    from torch.utils.data.distributed import DistributedSampler

    from core.data.dataset import SkeletonDataset

    augment = dict(cfg["augment"])  # the flat config block; core.data.augment builds the transforms
    crop = tuple(cfg["data"]["crop_ratio"]) if cfg["data"]["crop_ratio"] else None
    train_ds = SkeletonDataset(train_split, spec, train=True, augment=augment, seed=seed,
                               crop_ratio=crop or (1.0, 1.0))
    sampler = DistributedSampler(train_ds, num_replicas=ddp.world, rank=ddp.rank, shuffle=True, seed=seed)
    batch = int(o["batch_size"])
    per_rank = len(sampler)
    workers = int(cfg["data"]["num_workers"])
    loader = DataLoader(train_ds, batch_size=batch, sampler=sampler, num_workers=workers,
                        drop_last=per_rank > batch, pin_memory=ddp.device.type == "cuda")
    steps_per_epoch = len(loader)

    train_model: nn.Module = model
    sync_bn_note = ""
    if ddp.enabled:
        if cfg["model"]["sync_bn"] and ddp.device.type != "cuda":
            sync_bn_note = "model.sync_bn ignored: SyncBatchNorm needs CUDA devices; BN statistics stay per process"
        elif cfg["model"]["sync_bn"]:
            train_model = nn.SyncBatchNorm.convert_sync_batchnorm(train_model)
            model = train_model  # same module, BN layers replaced
        train_model = nn.parallel.DistributedDataParallel(
            train_model, device_ids=[ddp.local_rank] if ddp.device.type == "cuda" else None)
    optimizer = make_optimizer(model, o)
    base_lr = float(o["lr"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step / steps_per_epoch, s, base_lr))
    dtype = amp_dtype(t["amp"], ddp.device)
    scaler = torch.amp.GradScaler(ddp.device.type, enabled=dtype == torch.float16)
    criterion = nn.CrossEntropyLoss(label_smoothing=float(o["label_smoothing"]))

    start_epoch, history, best = 0, [], {"top1": -1.0, "epoch": 0}
    wall_before = 0.0
    if resume_path is not None:
        try:
            ckpt = load_checkpoint(resume_path)
        except CheckpointError as exc:
            raise FitError(f"--resume: {exc}") from exc
        state = ckpt.get("resume")
        if not state:
            raise FitError(f"--resume: {resume_path} has no resume state (only last.pt does)")
        if state["steps_per_epoch"] != steps_per_epoch:
            raise FitError(f"--resume: {resume_path} was written with {state['steps_per_epoch']} steps per epoch, "
                           f"this run has {steps_per_epoch}; keep optim.batch_size and the process count")
        model.load_state_dict(ckpt["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"][min(ddp.rank, len(state["rng"]) - 1)])
        start_epoch, history, best = int(state["epoch"]), list(state["history"]), dict(state["best"])
        wall_before = float(state["wall_seconds"])
    elif ddp.enabled:
        torch.manual_seed(seed + ddp.rank)  # same initial weights (DDP broadcasts rank 0's), own dropout

    if ddp.main and resume_path is None and out.exists():  # a fresh (or overwritten) run starts clean logs
        import shutil

        shutil.rmtree(out / "tb", ignore_errors=True)
        for stale in ("train.log", "metrics.csv", "metrics.jsonl", "summary.json", "ddp_shards.json"):
            (out / stale).unlink(missing_ok=True)
    log = Logger(out, ddp.main, purge_step=start_epoch * steps_per_epoch if resume_path else None)
    if ddp.main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
        log.info(f"{cfg['name']}: {cfg['model']['variant']} ({num_params / 1e6:.3f} M params, streams "
                 f"{'+'.join(spec.streams)}) on {cfg['data']['name']} {len(train_split)} train / {len(val_split)} "
                 f"val clips, {len(class_names)} classes, layout {spec.layout}, T={spec.frames}, M={spec.persons}; "
                 f"{ddp.world} process(es) on {ddp.device}, batch {batch}/process, {steps_per_epoch} steps/epoch"
                 + (f"; resumed from {resume_path} at epoch {start_epoch}" if resume_path else ""))
        if sync_bn_note:
            log.info(sync_bn_note)

    if ddp.enabled:
        # each rank's first-epoch sample indices, gathered for inspection (disjoint shards)
        sampler.set_epoch(start_epoch)
        shards = ddp.gather([int(i) for i in sampler])
        if ddp.main:
            (out / "ddp_shards.json").write_text(json.dumps(
                {"epoch": start_epoch, "world_size": ddp.world, "dataset_size": len(train_ds), "shards": shards}))

    epochs = int(s["epochs"])
    run_start = time.time()
    ran = 0
    from tqdm import tqdm

    for epoch in range(start_epoch, epochs):
        if stop_after_epochs is not None and ran >= stop_after_epochs:
            log.info(f"stopped after {ran} epoch(s) as asked (--stop-after-epochs); continue with --resume")
            break
        epoch_start = time.time()
        sampler.set_epoch(epoch)
        train_ds.set_epoch(epoch)
        train_model.train()
        loss_sum, correct, seen = 0.0, 0.0, 0.0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", disable=not ddp.main, leave=False,
                   dynamic_ncols=True, unit="batch")
        for step, (x, y) in enumerate(bar):
            x = x.to(ddp.device, non_blocking=True)
            y = y.to(ddp.device, non_blocking=True)
            with torch.autocast(ddp.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                logits = train_model(x)
                loss = criterion(logits.float(), y)
            bad = float(not torch.isfinite(loss).item())
            if ddp.all_sum([bad])[0] > 0:
                good = last_path if last_path.exists() else None
                raise NonFiniteLossError(
                    f"loss became non-finite ({loss.item()}) at epoch {epoch + 1}, step {step + 1} "
                    f"(global step {epoch * steps_per_epoch + step + 1}); stopped without writing a checkpoint. "
                    f"Last good checkpoint: {good or 'none written yet'}. Try a lower optim.lr or optim.clip_grad.")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if float(o["clip_grad"]) > 0:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), float(o["clip_grad"]))
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            n = len(y)
            loss_sum += float(loss.detach()) * n
            correct += float((logits.detach().argmax(1) == y).sum())
            seen += n
            gstep = epoch * steps_per_epoch + step + 1
            if ddp.main and gstep % int(t["log_every"]) == 0:
                log.scalar("train/loss_step", float(loss.detach()), gstep)
                log.scalar("train/lr", optimizer.param_groups[0]["lr"], gstep)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{100 * correct / seen:.1f}%")
        bar.close()
        loss_sum, correct, seen = ddp.all_sum([loss_sum, correct, seen])
        row: dict[str, Any] = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"],
                               "train_loss": loss_sum / max(seen, 1), "train_top1": correct / max(seen, 1)}
        last_epoch = epoch + 1 == epochs
        metrics = None
        if (epoch + 1) % int(t["eval_every"]) == 0 or last_epoch:
            metrics = evaluate_model(model, val_split, spec, ddp, batch)
            row.update(val_loss=metrics["loss"], val_top1=metrics["top1"], val_top5=metrics["top5"],
                       val_mean_class=metrics["mean_class_accuracy"])
        row["epoch_seconds"] = time.time() - epoch_start
        row["wall_seconds"] = wall_before + time.time() - run_start
        history.append(row)
        improved = metrics is not None and metrics["top1"] > best["top1"]
        if improved:
            best = {"top1": metrics["top1"], "top5": metrics["top5"], "epoch": epoch + 1,
                    "mean_class_accuracy": metrics["mean_class_accuracy"]}
        ran += 1
        if ddp.main:
            train_info = {"config": cfg, "epoch": epoch + 1, "epochs": epochs, "data": cfg["data"]["name"],
                          "train_split": cfg["data"]["train_split"], "val_split": cfg["data"]["val_split"],
                          "world_size": ddp.world, "num_params": num_params}
            summary_metrics = {k: v for k, v in (metrics or {}).items() if k != "class_names"}
            if improved:
                save_checkpoint(best_path, model, spec, class_names, train=train_info, metrics=summary_metrics)
                (out / "confusion.json").write_text(json.dumps(metrics, indent=1))
                save_confusion_plot(metrics, out / "confusion.png",
                                    f"{cfg['name']} epoch {epoch + 1}: top-1 {100 * metrics['top1']:.2f}%")
            resume_state = {"epoch": epoch + 1, "optimizer": optimizer.state_dict(),
                            "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                            "rng": None, "history": history, "best": best, "steps_per_epoch": steps_per_epoch,
                            "wall_seconds": row["wall_seconds"]}
        states = ddp.gather(rng_state())
        if ddp.main:
            resume_state["rng"] = states
            save_checkpoint(last_path, model, spec, class_names, train=train_info, metrics=summary_metrics,
                            extra={"resume": resume_state})
            log.write_history(history)
            for key in ("train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "lr"):
                if row.get(key) is not None:
                    log.scalar(f"epoch/{key}", row[key], epoch + 1)
            val = (f"val loss {row['val_loss']:.3f} top-1 {100 * row['val_top1']:.2f}% top-5 "
                   f"{100 * row['val_top5']:.2f}%" if metrics else "val -")
            log.info(f"epoch {epoch + 1:3d}/{epochs} lr {row['lr']:.2e} | train loss {row['train_loss']:.3f} "
                     f"top-1 {100 * row['train_top1']:.2f}% | {val} | best {100 * max(best['top1'], 0):.2f}% "
                     f"@{best['epoch']} | {row['epoch_seconds']:.0f}s")
        ddp.barrier()

    finished = len(history) >= epochs
    summary = {"name": cfg["name"], "variant": cfg["model"]["variant"], "streams": list(spec.streams),
               "data": cfg["data"]["name"], "params": num_params, "epochs": len(history), "planned_epochs": epochs,
               "finished": finished, "best_top1": best["top1"], "best_top5": best.get("top5"),
               "best_epoch": best["epoch"], "wall_seconds": history[-1]["wall_seconds"] if history else 0.0,
               "world_size": ddp.world, "best_checkpoint": str(best_path), "last_checkpoint": str(last_path)}
    if finished:
        clips = int(t["test_clips"])
        if clips > 1 and best_path.exists():
            from core.checkpoint import load_model

            best_model = load_model(best_path)[0].to(ddp.device)
            mc = evaluate_model(best_model, val_split, spec, ddp, batch, clips)
            summary.update({f"best_top1_{clips}clips": mc["top1"], f"best_top5_{clips}clips": mc["top5"]})
            if ddp.main:
                log.info(f"best.pt with {clips}-clip averaging: top-1 {100 * mc['top1']:.2f}% "
                         f"top-5 {100 * mc['top5']:.2f}%")
        if ddp.main:
            plot_curves(history, out / "curves.png", f"{cfg['name']} ({summary['params'] / 1e6:.2f} M params)")
            log.info(f"done: best top-1 {100 * best['top1']:.2f}% (top-5 {100 * (best.get('top5') or 0):.2f}%) at "
                     f"epoch {best['epoch']}, {len(history)} epochs in {summary['wall_seconds'] / 60:.1f} min; "
                     f"{best_path}")
    if ddp.main:
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    log.close()
    return summary


# ---------------------------------------------------------------------------------------------
# Command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = ArgumentParser(
        prog="python -m train.fit",
        description="Train a LAST model. Settings: defaults <- --config YAML <- section.key=value overrides.",
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
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    args = parse_args(argv)
    if args.resume not in (None, "auto") and "=" in args.resume and not Path(args.resume).exists():
        # "--resume schedule.epochs=30": argparse took the override for the optional checkpoint path
        args.overrides.append(args.resume)
        args.resume = "auto"
    cfg = load_config(args.config, args.overrides)
    if args.print_config:
        import yaml

        print(yaml.safe_dump(cfg, sort_keys=False))
        return None
    return run(cfg, resume=args.resume, stop_after_epochs=args.stop_after_epochs, overwrite=args.overwrite)


if __name__ == "__main__":
    # ConfigError / CheckpointError: exit 2 (bad input); FitError, NaN loss: exit 1 (core.cli)
    sys.exit(run_cli(main, "python -m train.fit"))
