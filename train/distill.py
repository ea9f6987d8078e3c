"""Knowledge distillation into a LAST student: logit KD, per-stage feature mimicry, feature projectors.

    python -m train.distill --config configs/nw_ucla_distill.yaml                  # live teacher, cached per draw
    python -m train.distill --config configs/nw_ucla_distill.yaml distill.teacher_ensemble=[B.pt,C.pt]
    python -m train.distill --config configs/nw_ucla_distill.yaml model.init=runs/pretrain/nano/best.pt
    python -m train.teacher --ckpt T.pt --data nw_ucla:train --out teacher.npz       # the un-augmented file ...
    python -m train.distill --config configs/nw_ucla_distill.yaml distill.teacher=null distill.teacher_file=teacher.npz

Consistent by default: the teacher scores exactly the augmented clip the student trains on (Beyer et al. 2022,
"a good teacher is patient and consistent"). A live LAST checkpoint (`distill.teacher`, other streams and another
variant allowed, the layout and class list must match), optionally averaged with more checkpoints
(`distill.teacher_ensemble`: their logits averaged, one teacher). `distill.teacher_cache` keeps the teacher's
logits per (epoch, clip) of a run's augmentation draws, with a fingerprint of each input, so a later run with the
same seed, data and augmentation (another student, alpha or tau) replays them without running the teacher; a
cached entry is used only when the student's input matches its fingerprint.
An offline file (`distill.teacher_file`: per sample name the logits and pooled features from
`python -m train.teacher`, or features of another width, e.g. a cross-modal RGB teacher) describes the whole,
un-augmented clip while the student sees an augmented crop: an explicit, inconsistent choice, kept for comparison
and for cross-modal features.
With `data.label_fraction` < 1 the student trains on every training clip: cross-entropy on the labelled ones,
the teacher's targets on all (`distill.unlabelled`).

Losses (every weight in the `distill` config section):
    loss = alpha * CE(student, y) + (1 - alpha) * tau^2 * KL(softmax(teacher / tau) || softmax(student / tau))
         + feature_weight   * mean_i MSE(connector_i(student stage i), teacher stage i)     (live LAST teacher)
         + projector_weight * D(projector(student pooled feature), teacher pooled feature)  (mse | cosine | infonce)
Connectors (1x1 conv + BN) and projectors exist only in training: best.pt / last.pt hold the plain student.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.checkpoint import CheckpointError, input_spec, load_model
from core.cli import run_cli
from core.data.splits import names_digest
from core.models.last import LAST
from train.trainer import FitError, Trainer, run_trainer, trainer_main

# Hard-label weight per student variant (design note 004: a bigger capacity gap leans more on the teacher).
DEFAULT_ALPHA = {"last_nano": 0.3, "last_lite_nano": 0.3, "last_small": 0.5, "last_lite_small": 0.5}


# ---------------------------------------------------------------------------------------------
# Losses


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, tau: float) -> torch.Tensor:
    """tau^2 * KL(softmax(teacher / tau) || softmax(student / tau)), averaged over the batch (Hinton et al.);
    the tau^2 keeps the gradient scale independent of the temperature."""
    log_p_student = F.log_softmax(student_logits.float() / tau, dim=1)
    log_p_teacher = F.log_softmax(teacher_logits.float() / tau, dim=1)
    return F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True) * tau * tau


def masked_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy over the labelled rows (label >= 0); 0 for a batch without one."""
    known = labels >= 0
    if bool(known.all()):
        return F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)
    if not bool(known.any()):
        return logits.float().sum() * 0.0
    return F.cross_entropy(logits[known].float(), labels[known], label_smoothing=label_smoothing)


def logit_distill_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                       alpha: float, tau: float, label_smoothing: float = 0.0) -> tuple[torch.Tensor, torch.Tensor,
                                                                                          torch.Tensor]:
    """(alpha * CE + (1 - alpha) * KD, CE, KD); CE over the labelled rows only (label -1: unlabelled)."""
    ce = masked_cross_entropy(student_logits, labels, label_smoothing)
    kd = kd_loss(student_logits, teacher_logits, tau)
    return alpha * ce + (1.0 - alpha) * kd, ce, kd


def align_time(student: torch.Tensor, teacher: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Average-pool the longer of two (N, C, T, V) maps over time to the shorter one's T (strides may differ)."""
    ts, tt = student.shape[2], teacher.shape[2]
    if ts > tt:
        student = F.adaptive_avg_pool2d(student, (tt, student.shape[3]))
    elif tt > ts:
        teacher = F.adaptive_avg_pool2d(teacher, (ts, teacher.shape[3]))
    return student, teacher


class Connector(nn.Sequential):
    """1x1 conv + BN from the student's stage width to the teacher's (training only)."""

    def __init__(self, student_channels: int, teacher_channels: int):
        super().__init__(nn.Conv2d(student_channels, teacher_channels, 1, bias=False), nn.BatchNorm2d(teacher_channels))


def feature_mimicry_loss(student_feats: list[torch.Tensor], teacher_feats: list[torch.Tensor],
                         connectors: nn.ModuleList) -> torch.Tensor:
    """Mean over the tapped stages of MSE(connector(student stage), teacher stage), time aligned by pooling."""
    losses = []
    for s, t, connect in zip(student_feats, teacher_feats, connectors):
        s, t = align_time(connect(s), t.float())
        losses.append(F.mse_loss(s.float(), t))
    return torch.stack(losses).mean()


class Projector(nn.Module):
    """Student pooled feature -> teacher feature width: Linear, or a 2-layer MLP (Linear-BN-ReLU-Linear)."""

    def __init__(self, in_dim: int, out_dim: int, kind: str = "linear"):
        super().__init__()
        if kind == "linear":
            self.net: nn.Module = nn.Linear(in_dim, out_dim)
        elif kind == "mlp":
            hidden = max(in_dim, out_dim)
            self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                                     nn.Linear(hidden, out_dim))
        else:
            raise ValueError(f"projector must be linear or mlp, got {kind!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def projector_loss(pred: torch.Tensor, target: torch.Tensor, kind: str, temperature: float = 0.1) -> torch.Tensor:
    """mse: mean squared error; cosine: mean (1 - cos); infonce: cross-entropy of each prediction against the
    batch's targets (its own target is the positive), on L2-normalised vectors."""
    pred, target = pred.float(), target.float()
    if kind == "mse":
        return F.mse_loss(pred, target)
    if kind == "cosine":
        return (1.0 - F.cosine_similarity(pred, target, dim=1)).mean()
    if kind == "infonce":
        logits = F.normalize(pred, dim=1) @ F.normalize(target, dim=1).t() / temperature
        return F.cross_entropy(logits, torch.arange(len(pred), device=pred.device))
    raise ValueError(f"projector_loss must be mse, cosine or infonce, got {kind!r}")


# ---------------------------------------------------------------------------------------------
# Teachers


class TeacherError(FitError, ValueError):
    """A teacher that does not fit the student (layout, classes, sample names); stops before training."""


class LiveTeacher(nn.Module):
    """A LAST checkpoint run frozen (eval mode, no gradients) on the student's input batch."""

    def __init__(self, path: str | Path, layout: str, class_names: list[str], student: str, spec: Any):
        super().__init__()
        try:
            model, ckpt = load_model(path)
        except CheckpointError as exc:
            raise TeacherError(f"distill.teacher: {exc}") from exc
        if ckpt["layout"] != layout:
            raise TeacherError(f"teacher {path} uses layout {ckpt['layout']!r} but the student ({student}) uses "
                               f"{layout!r}; layouts must match")
        if list(ckpt["class_names"]) != list(class_names):
            raise TeacherError(f"teacher {path} has {len(ckpt['class_names'])} classes "
                               f"({', '.join(ckpt['class_names'][:3])}, ...) but the student ({student}) has "
                               f"{len(class_names)} ({', '.join(class_names[:3])}, ...); class lists must match")
        tspec = input_spec(ckpt)
        for key in ("channels", "center", "align", "scale"):
            if getattr(tspec, key) != getattr(spec, key):
                raise TeacherError(f"teacher {path} was trained with {key}={getattr(tspec, key)!r}, the student "
                                   f"({student}) uses {key}={getattr(spec, key)!r}; preprocessing must match")
        self.model: LAST = model.eval().requires_grad_(False)
        self.path, self.variant, self.streams = str(path), model.variant, tuple(model.cfg.streams)
        self.stage_channels = [s[0] for s in model.cfg.stages]
        self.num_features = model.num_features

    def train(self, mode: bool = True) -> "LiveTeacher":
        return super().train(False)  # always frozen: BN statistics and dropout stay in eval mode

    @torch.no_grad()
    def forward(self, x: torch.Tensor, indices: list[int] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """(logits, pooled feature, stage maps at `indices`)."""
        final, feats = self.model.forward_intermediates(x, indices=indices if indices else [])
        return self.model.forward_head(final), self.model.forward_head(final, pre_logits=True), feats


class EnsembleTeacher(nn.Module):
    """Several frozen LAST checkpoints as one teacher: the mean of their logits (and of their pooled features when
    they have the same width). Per-stage maps come from the first."""

    def __init__(self, members: list[LiveTeacher]):
        super().__init__()
        self.members = nn.ModuleList(members)
        first = members[0]
        self.path = "+".join(m.path for m in members)
        self.variant = "+".join(m.variant for m in members)
        self.streams = first.streams
        self.stage_channels, self.num_features = first.stage_channels, first.num_features
        self.same_width = all(m.num_features == first.num_features for m in members)

    def train(self, mode: bool = True) -> "EnsembleTeacher":
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor, indices: list[int] | None = None):
        outs = [m(x, indices if i == 0 else []) for i, m in enumerate(self.members)]
        logits = torch.stack([o[0] for o in outs]).mean(0)
        pooled = torch.stack([o[1] for o in outs]).mean(0) if self.same_width else outs[0][1]
        return logits, pooled, outs[0][2]


def file_digest(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def input_fingerprint(x: torch.Tensor) -> torch.Tensor:
    """(N, 2) float64 per-sample sum and sum of |x|: what a cached teacher output was computed from."""
    flat = x.detach().reshape(len(x), -1).double()
    return torch.stack([flat.sum(1), flat.abs().sum(1)], dim=1).cpu()


class TeacherCache:
    """Teacher logits per (epoch, clip) of one run's augmentation draws, in a folder: meta.json (what the draws
    depend on) and epoch_<e>.npz (logits, input fingerprints, which clips are filled). A run whose key differs
    stops with the difference; an entry whose fingerprint differs from the student's input is an error."""

    RTOL = 1e-5  # float32 augmentation arithmetic may differ in the last bits between CPUs

    def __init__(self, folder: str | Path, key: dict[str, Any], num_clips: int, num_classes: int):
        self.folder, self.key = Path(folder), key
        self.num_clips, self.num_classes = num_clips, num_classes
        self.folder.mkdir(parents=True, exist_ok=True)
        meta = self.folder / "meta.json"
        if meta.is_file():
            saved = json.loads(meta.read_text())
            differ = sorted(k for k in set(saved) | set(key) if saved.get(k) != key.get(k))
            if differ:
                raise TeacherError(f"distill.teacher_cache {self.folder} was written for another run ("
                                   + "; ".join(f"{k}: {saved.get(k)!r} there, {key.get(k)!r} here" for k in differ[:3])
                                   + "); use another folder")
        else:
            meta.write_text(json.dumps(key, indent=1))
        self.epoch: int | None = None
        self.hits = self.misses = 0

    def path(self, epoch: int) -> Path:
        return self.folder / f"epoch_{epoch:04d}.npz"

    def open_epoch(self, epoch: int) -> None:
        self.epoch, self.dirty = epoch, False
        p = self.path(epoch)
        if p.is_file():
            with np.load(p, allow_pickle=False) as z:
                self.logits, self.fp, self.filled = (torch.from_numpy(z["logits"]), torch.from_numpy(z["fingerprint"]),
                                                     torch.from_numpy(z["filled"]))
        else:
            self.logits = torch.zeros(self.num_clips, self.num_classes)
            self.fp = torch.zeros(self.num_clips, 2, dtype=torch.float64)
            self.filled = torch.zeros(self.num_clips, dtype=torch.bool)

    def lookup(self, idx: torch.Tensor, x: torch.Tensor) -> torch.Tensor | None:
        """The cached logits of these clips, or None when one of them is not cached yet."""
        idx = idx.cpu()
        if not bool(self.filled[idx].all()):
            self.misses += 1
            return None
        got, want = input_fingerprint(x), self.fp[idx]
        if not torch.allclose(got, want, rtol=self.RTOL, atol=1e-6):
            bad = int((~torch.isclose(got, want, rtol=self.RTOL, atol=1e-6).all(1)).nonzero()[0])
            raise TeacherError(f"distill.teacher_cache {self.folder}: epoch {self.epoch + 1}, clip {int(idx[bad])}: "
                               f"the cached teacher scored another input (fingerprint {want[bad].tolist()} vs the "
                               f"student's {got[bad].tolist()}); the augmentation differs from the cached run's")
        self.hits += 1
        return self.logits[idx]

    def store(self, idx: torch.Tensor, x: torch.Tensor, logits: torch.Tensor) -> None:
        idx = idx.cpu()
        self.logits[idx] = logits.detach().float().cpu()
        self.fp[idx] = input_fingerprint(x)
        self.filled[idx] = True
        self.dirty = True

    def flush(self) -> None:
        if self.epoch is None or not self.dirty:
            return
        p = self.path(self.epoch)
        tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp.npz")  # runs sharing a cache never share a temp file
        np.savez(tmp, logits=self.logits.numpy(), fingerprint=self.fp.numpy(), filled=self.filled.numpy())
        tmp.replace(p)
        self.dirty = False


class TeacherFile:
    """Per-sample teacher outputs from an .npz, read generically:

    - `names` (N,) sample names + `features` (N, D) and/or `logits` (N, K) [+ `stage_<i>` (N, C_i)]: the file
      `python -m train.teacher` writes;
    - or one array per sample name, a feature vector (D,) or per-frame features (T, D) averaged over frames
      (a cross-modal file keyed by sample name)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise TeacherError(f"distill.teacher_file: {self.path} not found; write it with python -m train.teacher")
        try:
            data = np.load(self.path, allow_pickle=False)
            keys = list(data.keys())
        except Exception as exc:  # not a zip, truncated
            raise TeacherError(f"distill.teacher_file: {self.path} is not a readable .npz ({exc})") from exc
        self.logits = self.features = None
        self.meta: dict[str, Any] = {}
        self.class_names: list[str] | None = None
        if "names" in keys or "sample_names" in keys:
            self.names = [str(n) for n in data["names" if "names" in keys else "sample_names"]]
            if "logits" in keys:
                self.logits = np.asarray(data["logits"], dtype=np.float32)
            if "features" in keys:
                feats = np.asarray(data["features"], dtype=np.float32)
                self.features = feats.mean(axis=1) if feats.ndim == 3 else feats
            elif "frame_features" in keys:  # per-frame only: average over time
                self.features = np.asarray(data["frame_features"], dtype=np.float32).mean(axis=1)
            if "class_names" in keys:
                self.class_names = [str(c) for c in data["class_names"]]
            for key in ("meta_json", "meta"):
                if key in keys:
                    self.meta = json.loads(str(data[key]))
                    break
        else:  # one array per sample
            self.names = keys
            rows = [np.asarray(data[k], dtype=np.float32) for k in keys]
            rows = [r.mean(axis=0) if r.ndim == 2 else r.reshape(-1) for r in rows]
            if len({r.shape for r in rows}) > 1:
                raise TeacherError(f"distill.teacher_file: {self.path}: per-sample feature arrays differ in size")
            self.features = np.stack(rows) if rows else np.zeros((0, 0), np.float32)
        if self.logits is None and self.features is None:
            raise TeacherError(f"distill.teacher_file: {self.path} has neither `logits` nor `features` "
                               f"(keys: {', '.join(keys[:8])})")
        for what, arr in (("logits", self.logits), ("features", self.features)):
            if arr is not None and len(arr) != len(self.names):
                raise TeacherError(f"distill.teacher_file: {self.path}: {len(arr)} rows of {what} for "
                                   f"{len(self.names)} names")
        if len(set(self.names)) != len(self.names):
            raise TeacherError(f"distill.teacher_file: {self.path} repeats sample names")

    @property
    def feature_dim(self) -> int | None:
        return None if self.features is None else int(self.features.shape[1])

    def rows_for(self, names: list[str], what: str = "training split") -> np.ndarray:
        """Row of every name; a name missing from the file stops with the counts and a few examples (names the
        file has beyond the split, e.g. the validation slice, are not used)."""
        index = {n: i for i, n in enumerate(self.names)}
        missing = [n for n in names if n not in index]
        if missing:
            raise TeacherError(f"distill.teacher_file: {self.path} holds {len(self.names)} samples, the {what} "
                               f"{len(names)}: {len(missing)} sample(s) of the {what} missing from the file (e.g. "
                               f"{', '.join(missing[:3])}). Write the file for the same data and split with "
                               f"python -m train.teacher")
        return np.array([index[n] for n in names], dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# Trainer


class MaskedLabels(torch.utils.data.Dataset):
    """(x, label or -1 for an unlabelled clip, index) over an IndexedDataset."""

    def __init__(self, base: Any, labelled: np.ndarray):
        self.base, self.labelled = base, labelled

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        x, y, idx = self.base[i]
        return x, (y if self.labelled[i] else -1), idx

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)


class DistillTrainer(Trainer):
    loss_fields = ["ce", "kd", "feat", "proj"]
    cache: TeacherCache | None = None
    labelled: np.ndarray | None = None

    def resolve_alpha(self) -> float:
        k = self.cfg["distill"]
        if k["alpha"] is not None:
            return float(k["alpha"])
        return DEFAULT_ALPHA.get(self.cfg["model"]["variant"], 0.5)

    def build_extras(self) -> nn.Module | None:
        """Load the teacher (checked against the student before any step) and build connectors / projector."""
        k = self.cfg["distill"]
        if bool(k["teacher"]) == bool(k["teacher_file"]):
            raise TeacherError("set exactly one of distill.teacher (a checkpoint, live) and distill.teacher_file "
                               "(an .npz from python -m train.teacher)")
        student = f"{self.cfg['model']['variant']} on {self.cfg['data']['name']}" + (
            f", init {self.cfg['model']['init']}" if self.cfg["model"]["init"] else "")
        self.alpha0 = self.resolve_alpha()
        self.alpha1 = float(k["alpha_end"]) if k["alpha_end"] is not None else self.alpha0
        self.tau = float(k["tau"])
        self.teacher: LiveTeacher | None = None
        self.teacher_rows = self.teacher_logits = self.teacher_features = None
        extras = nn.ModuleDict()
        self.stages = [int(i) for i in k["feature_stages"]] if float(k["feature_weight"]) > 0 else []
        if k["teacher_ensemble"] and not k["teacher"]:
            raise TeacherError("distill.teacher_ensemble needs distill.teacher (the first member)")
        if k["teacher"]:
            members = [LiveTeacher(path, self.spec.layout, self.class_names, student, self.spec)
                       for path in [k["teacher"], *k["teacher_ensemble"]]]
            self.teacher = members[0] if len(members) == 1 else EnsembleTeacher(members)
            self.teacher.to(self.ddp.device)
            if k["teacher_cache"]:
                if self.stages or float(k["projector_weight"]) > 0:
                    raise TeacherError("distill.teacher_cache holds logits only: it cannot serve feature mimicry "
                                       "(distill.feature_weight) or the projector loss (distill.projector_weight)")
                self.cache = TeacherCache(k["teacher_cache"], self.cache_key(members), len(self.train_ds),
                                          len(self.class_names))
            teacher_dim = self.teacher.num_features
            if self.stages:
                n = len(self.model.stages)
                if any(not -n <= i < n for i in self.stages) or len(self.teacher.stage_channels) != n:
                    raise TeacherError(f"distill.feature_stages {self.stages}: the student has {n} stages, the "
                                       f"teacher {len(self.teacher.stage_channels)}")
                extras["connectors"] = nn.ModuleList(
                    Connector(self.model.cfg.stages[i][0], self.teacher.stage_channels[i]) for i in self.stages)
        else:
            if self.stages:
                raise TeacherError("distill.feature_weight > 0 needs a live teacher (distill.teacher): per-stage maps "
                                   "are not stored in teacher files; use distill.projector_weight for file features")
            tf = TeacherFile(k["teacher_file"])
            if tf.class_names is not None and tf.logits is not None and tf.class_names != self.class_names:
                raise TeacherError(f"teacher file {tf.path} has {len(tf.class_names)} classes but the student "
                                   f"({student}) has {len(self.class_names)}; class lists must match")
            rows = tf.rows_for(list(self.train_split.names), f"{self.cfg['data']['name']} "
                                                             f"{self.cfg['data']['train_split']} split")
            self.teacher_file = tf
            if tf.logits is not None:
                self.teacher_logits = torch.from_numpy(tf.logits[rows]).to(self.ddp.device)
            if tf.features is not None:
                self.teacher_features = torch.from_numpy(tf.features[rows]).to(self.ddp.device)
            teacher_dim = tf.feature_dim
        if float(k["projector_weight"]) > 0:
            if teacher_dim is None:
                raise TeacherError("distill.projector_weight > 0 but the teacher file has no `features`")
            extras["projector"] = Projector(self.model.num_features, teacher_dim, k["projector"])
        if self.teacher is None and self.teacher_logits is None and "projector" not in extras:
            raise TeacherError(f"teacher file {k['teacher_file']} has no logits: set distill.projector_weight > 0 "
                               f"to learn from its features")
        return extras if len(extras) else None

    def cache_key(self, members: list[LiveTeacher]) -> dict[str, Any]:
        """Everything a cached teacher output depends on: the teachers, the clips in order, the seed and the
        training-time preprocessing and augmentation."""
        c = self.cfg
        return {"teachers": [f"{Path(m.path).name}:{file_digest(m.path)}" for m in members],
                "data": c["data"]["name"], "clips": len(self.train_ds),
                "names": names_digest([f"{i}:{n}" for i, n in enumerate(self.train_ds_split.names)]),
                "seed": int(c["train"]["seed"]), "augment": c["augment"], "crop_ratio": c["data"]["crop_ratio"],
                "input_spec": self.spec.to_dict()}

    def describe(self) -> str:
        k = self.cfg["distill"]
        if self.teacher is not None:
            src = f"live teacher {self.teacher.variant} ({'+'.join(self.teacher.streams)}) {self.teacher.path}"
            if self.cache is not None:
                src += f", cached in {self.cache.folder}"
        else:
            src = f"teacher file {k['teacher_file']} (un-augmented clips: not the student's input)"
        alpha = f"{self.alpha0:g}" + (f"->{self.alpha1:g}" if self.alpha1 != self.alpha0 else "")
        unlabelled = (f"; {len(self.train_ds) - int(self.labelled.sum())} unlabelled clips distilled"
                      if self.labelled is not None else "")
        return (f"; distilling from {src}: alpha {alpha}, tau {self.tau:g}, feature_weight {k['feature_weight']}, "
                f"projector_weight {k['projector_weight']}{unlabelled}")

    def current_alpha(self) -> float:
        total = max(self.steps_per_epoch * int(self.cfg["schedule"]["epochs"]), 1)
        progress = min(self.scheduler.last_epoch / total, 1.0)
        return self.alpha0 + (self.alpha1 - self.alpha0) * progress

    # -- training on unlabelled clips too (data.label_fraction < 1) -------------------------------------

    def build_train_dataset(self):
        """Every training clip when a fraction of the labels is used and distill.unlabelled: the unlabelled ones
        carry label -1 (no cross-entropy, the teacher's targets only)."""
        self.labelled = None
        k = self.cfg["distill"]
        if self.unlabelled_split is not None and bool(k["unlabelled"]):
            labelled_names = set(self.train_split.names)
            self.labelled = np.array([n in labelled_names for n in self.unlabelled_split.names])
            self.train_split = self.unlabelled_split
        self.train_ds_split = self.train_split
        ds = super().build_train_dataset()
        return MaskedLabels(ds, self.labelled) if self.labelled is not None else ds

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        self.epoch_index = epoch
        if self.cache is not None:
            self.cache.open_epoch(epoch)
        try:
            return super().train_epoch(epoch)
        finally:
            if self.cache is not None:
                self.cache.flush()

    def teacher_logits_for(self, x: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                                                list[torch.Tensor]]:
        """(logits, pooled, stage maps) of the live teacher on exactly this batch, from the cache when it has them."""
        if self.cache is not None:
            hit = self.cache.lookup(idx, x)
            if hit is not None:
                return hit.to(x.device), None, []
        t_logits, t_pooled, t_feats = self.teacher(x, self.stages)
        if self.cache is not None:
            self.cache.store(idx, x, t_logits)
        return t_logits, t_pooled, t_feats

    def compute_loss(self, model, extras, batch):
        x, y, idx = batch
        k = self.cfg["distill"]
        final, feats = model.forward_intermediates(x, indices=self.stages)
        logits = model.forward_head(final)
        parts: dict[str, torch.Tensor] = {}
        alpha = self.current_alpha()
        smoothing = float(self.cfg["optim"]["label_smoothing"])
        t_feats: list[torch.Tensor] = []
        if self.teacher is not None:
            t_logits, t_pooled, t_feats = self.teacher_logits_for(x, idx)
        else:
            t_logits = self.teacher_logits[idx] if self.teacher_logits is not None else None
            t_pooled = self.teacher_features[idx] if self.teacher_features is not None else None
        if t_logits is not None:
            loss, parts["ce"], parts["kd"] = logit_distill_loss(logits, t_logits, y, alpha, self.tau, smoothing)
        else:
            loss = parts["ce"] = masked_cross_entropy(logits, y, smoothing)
        if self.stages:
            parts["feat"] = feature_mimicry_loss(feats, t_feats, extras["connectors"])
            loss = loss + float(k["feature_weight"]) * parts["feat"]
        if extras is not None and "projector" in extras:
            pooled = model.forward_head(final, pre_logits=True)
            parts["proj"] = projector_loss(extras["projector"](pooled), t_pooled, k["projector_loss"],
                                           float(k["infonce_temperature"]))
            loss = loss + float(k["projector_weight"]) * parts["proj"]
        for name in self.loss_fields:
            parts.setdefault(name, torch.zeros((), device=x.device))
        return loss, logits, parts


def run(cfg: dict[str, Any], resume: str | None = None, stop_after_epochs: int | None = None,
        overwrite: bool = False) -> dict[str, Any]:
    return run_trainer(DistillTrainer, cfg, resume, stop_after_epochs, overwrite)


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    return trainer_main(DistillTrainer, argv, prog="python -m train.distill",
                        description="Distil a teacher into a LAST student (config section `distill`).")


if __name__ == "__main__":
    # a teacher that does not fit, ConfigError, CheckpointError: exit 2 (bad input); FitError: exit 1 (core.cli)
    sys.exit(run_cli(main, "python -m train.distill"))
