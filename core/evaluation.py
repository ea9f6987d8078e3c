"""Scoring a model on a data set split, the same way for every backend: top-1, top-5, per-class accuracy,
confusion matrix. One torch-on-numpy inference path (`torch_predict_fn`) serves training, evaluation, the
converters' verification and the `.pt` runtime.

    predict = torch_predict_fn(model)                                          # or any Runtime.predict
    logits = predict_split(predict, split, spec, batch_size=32, clips=1)      # numpy -> numpy
    metrics = evaluate_logits(logits, split.labels, split.class_names)

`python -m train.evaluate` is the command line over these.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm import tqdm

from core.data import SkeletonSplit, load_split
from core.plots import pyplot
from core.preprocess import prepare_clip, valid_length
from core.spec import InputSpec

PredictFn = Callable[[np.ndarray], np.ndarray]
SPLIT_NAMES = ("train", "test", "val", "validation")


# ---------------------------------------------------------------------------------------------
# Metrics


def topk_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    k = min(k, logits.shape[1])
    topk = np.argsort(-logits, axis=1)[:, :k]
    return float((topk == labels[:, None]).any(axis=1).mean()) if len(labels) else float("nan")


def confusion_matrix(pred: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(true, predicted) counts."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (labels, pred), 1)
    return cm


def evaluate_logits(logits: np.ndarray, labels: np.ndarray, class_names: list[str] | None = None
                    ) -> dict[str, Any]:
    """Metrics of (N, K) logits (or scores) against (N,) integer labels, as a JSON-able dict:
    top1, top5 (fractions in [0, 1]), mean_class_accuracy, loss (cross-entropy of the softmax),
    per_class {name: accuracy or None if the class has no samples}, confusion (K x K counts, rows = true),
    num_samples."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if logits.ndim != 2:
        raise ValueError(f"logits must be (N, num_classes), got shape {logits.shape}")
    if len(logits) != len(labels):
        raise ValueError(f"{len(logits)} rows of logits for {len(labels)} labels")
    num_classes = logits.shape[1]
    class_names = list(class_names) if class_names is not None else [f"class_{i}" for i in range(num_classes)]
    if len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class names for logits with {num_classes} classes")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels outside [0, {num_classes})")
    pred = logits.argmax(axis=1) if len(labels) else labels
    cm = confusion_matrix(pred, labels, num_classes)
    support = cm.sum(axis=1)
    per_class = {name: (float(cm[i, i] / support[i]) if support[i] else None)
                 for i, name in enumerate(class_names)}
    present = [v for v in per_class.values() if v is not None]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_prob = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = float(-log_prob[np.arange(len(labels)), labels].mean()) if len(labels) else float("nan")
    return {
        "num_samples": int(len(labels)),
        "top1": topk_accuracy(logits, labels, 1),
        "top5": topk_accuracy(logits, labels, 5),
        "mean_class_accuracy": float(np.mean(present)) if present else float("nan"),
        "loss": loss,
        "per_class": per_class,
        "confusion": cm.tolist(),
        "class_names": class_names,
    }


def format_metrics(metrics: dict[str, Any], per_class: bool = True) -> str:
    """A human-readable table of the metrics."""
    lines = [f"samples {metrics['num_samples']}  top-1 {100 * metrics['top1']:.2f}%  "
             f"top-5 {100 * metrics['top5']:.2f}%  mean-class {100 * metrics['mean_class_accuracy']:.2f}%  "
             f"loss {metrics['loss']:.4f}"]
    if per_class:
        cm = np.asarray(metrics["confusion"])
        width = max([5] + [len(n) for n in metrics["class_names"]])
        lines.append(f"{'class':<{width}}  {'n':>5}  {'acc':>7}  most confused with")
        for i, name in enumerate(metrics["class_names"]):
            acc = metrics["per_class"][name]
            row = cm[i].copy()
            row[i] = 0
            worst = f"{metrics['class_names'][int(row.argmax())]} ({int(row.max())})" if row.max() > 0 else "-"
            acc_s = f"{100 * acc:6.2f}%" if acc is not None else "     - "
            lines.append(f"{name:<{width}}  {int(cm[i].sum()):>5}  {acc_s}  {worst}")
    return "\n".join(lines)


def save_confusion_plot(metrics: dict[str, Any], path: str | Path, title: str = "") -> Path:
    """Row-normalised confusion matrix as an image (numbers in the cells for up to 30 classes)."""
    plt = pyplot()

    cm = np.asarray(metrics["confusion"], dtype=np.float64)
    names = metrics["class_names"]
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    k = len(names)
    size = max(5.0, min(0.45 * k + 2, 30.0))
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    fontsize = 8 if k <= 30 else 4
    ax.set_xticklabels(names, rotation=90, fontsize=fontsize)
    ax.set_yticklabels(names, fontsize=fontsize)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 30:
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(title or f"top-1 {100 * metrics['top1']:.2f}%  ({metrics['num_samples']} samples)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------
# Prediction over a split (any backend)


def clip_indices(length: int, spec: InputSpec, clips: int) -> list[np.ndarray | None]:
    """Frame indices of each test clip. clips=1: None (prepare_clip's own deterministic sampling).
    uniform: `clips` phase-shifted uniform grids over the clip; center: `clips` evenly spaced windows."""
    if clips <= 1:
        return [None]
    if length <= 0:
        return [None] * clips
    out = []
    for k in range(clips):
        if spec.sampling == "uniform":
            grid = (np.arange(spec.frames) + (k + 0.5) / clips) * length / spec.frames
            out.append(np.clip(np.floor(grid).astype(np.int64), 0, length - 1))
        elif length <= spec.frames:
            out.append(None)  # a short clip has one window; prepare_clip pads it
        else:
            start = int(round(k * (length - spec.frames) / (clips - 1)))
            out.append(np.arange(start, start + spec.frames))
    return out


def prepare_test_clips(sample: np.ndarray, spec: InputSpec, clips: int = 1) -> np.ndarray:
    """(clips, C, T, V, M) model inputs of one raw (M, T, V, C) sample."""
    sample = np.asarray(sample, dtype=np.float32)
    if sample.ndim == 3:
        sample = sample[None]
    length = valid_length(sample)
    out = []
    for idx in clip_indices(length, spec, clips):
        # a window of exactly spec.frames frames passes through prepare_clip's sampling unchanged
        out.append(prepare_clip(sample if idx is None else sample[:, idx], spec))
    return np.stack(out)


def predict_split(predict_fn: PredictFn, split: Any, spec: InputSpec, batch_size: int = 32, clips: int = 1,
                  pad_last: bool = False, progress: bool = True, desc: str = "predict") -> np.ndarray:
    """(N, num_classes) logits of every sample of `split` (a SkeletonSplit), preprocessed exactly as `spec`
    says; with clips > 1 the logits of `clips` temporal clips per sample are averaged.

    predict_fn maps a float32 array (B, C, T, V, M), B <= batch_size, to (B, num_classes) logits.
    pad_last=True always calls it with exactly batch_size rows (zero padding, padded rows dropped) for
    engines built with a fixed batch size."""
    if split.layout != spec.layout:
        raise ValueError(f"data set {getattr(split, 'name', '')!r} uses layout {split.layout!r} but the model "
                         f"expects {spec.layout!r}")
    if batch_size < 1 or clips < 1:
        raise ValueError(f"batch_size and clips must be >= 1, got {batch_size}, {clips}")
    n = len(split)
    samples_per_batch = max(1, batch_size // clips)
    logits: list[np.ndarray] = []
    bar = None
    if progress:
        bar = tqdm(total=n, desc=desc, unit="clip", leave=False, dynamic_ncols=True)
    for start in range(0, n, samples_per_batch):
        ids = range(start, min(start + samples_per_batch, n))
        batch = np.concatenate([prepare_test_clips(split.sample(i), spec, clips) for i in ids])
        rows = len(batch)
        if pad_last and rows < batch_size:
            batch = np.concatenate([batch, np.zeros((batch_size - rows,) + batch.shape[1:], np.float32)])
        out = np.asarray(predict_fn(np.ascontiguousarray(batch, dtype=np.float32)), dtype=np.float32)
        if out.ndim != 2 or len(out) < rows:
            raise ValueError(f"predict_fn returned shape {out.shape} for a batch of {len(batch)}")
        logits.append(out[:rows].reshape(len(ids), clips, -1).mean(axis=1))
        if bar is not None:
            bar.update(len(ids))
    if bar is not None:
        bar.close()
    if not logits:
        return np.zeros((0, len(split.class_names)), dtype=np.float32)
    return np.concatenate(logits)


def torch_predict_fn(model: Any, device: str = "cpu", batch_size: int | None = None) -> PredictFn:
    """A predict_fn running a PyTorch model in eval mode without gradients (in chunks of batch_size rows)."""
    import torch

    model = model.to(device).eval()

    def predict(x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        step = batch_size or max(len(x), 1)
        outs = []
        with torch.inference_mode():
            for s in range(0, len(x), step):
                outs.append(model(torch.from_numpy(x[s:s + step]).to(device)).float().cpu().numpy())
        if not outs:
            return np.zeros((0, model.cfg.num_classes), np.float32)
        return np.concatenate(outs)

    return predict


def torch_logits(model: Any, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """(N, K) logits of a PyTorch model on preprocessed clips x (N, C, T, V, M)."""
    return torch_predict_fn(model, batch_size=batch_size)(x)


# ---------------------------------------------------------------------------------------------
# Data set arguments: one `--data NAME:SPLIT` vocabulary for every command


def parse_data_arg(data: str, default_split: str = "train") -> tuple[str, str]:
    """'nw_ucla:test' -> ('nw_ucla', 'test'); a bare name means its `default_split`. Names that carry a colon
    themselves (custom:DIR, mediapipe:ntu25, synthetic:coco17) take the split after a last ':<split>'."""
    data = data.strip()
    name, sep, split = data.rpartition(":")
    if sep and name and split in SPLIT_NAMES:
        return name, split
    if not data:
        raise ValueError("--data must be NAME:SPLIT (e.g. nw_ucla:test), got an empty value")
    return data, default_split


def load_named_split(name: str, split: str, root: str | Path | None = None, **validation: Any) -> SkeletonSplit:
    """core.data.load_split with errors that name the data set; raises ValueError / FileNotFoundError.
    `validation` (val_fraction, val_seed) draws the validation slice of a data set without its own."""
    if root is not None and not Path(root).exists():
        raise FileNotFoundError(f"data root {root} does not exist")
    try:
        return load_split(name, split, root=root, **validation)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"data set {name}:{split}: {exc}") from exc
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"data set {name}:{split}: {exc}") from exc


def load_data_split(data: str, layout: str | None = None, root: str | Path | None = None,
                    default_split: str = "train", ckpt: dict[str, Any] | None = None) -> SkeletonSplit:
    """A SkeletonSplit from a `--data NAME:SPLIT` value; 'synthetic' builds motions for the model's `layout`.
    With a checkpoint, NAME:val is the validation slice that checkpoint was trained with (its fraction and seed)."""
    name, split = parse_data_arg(data, default_split)
    if name == "synthetic" and layout and layout != "ntu25":
        name = f"synthetic:{layout}"  # synthetic motions are generated for the model's layout
    return load_named_split(name, split, root, **validation_recipe(ckpt))


def validation_recipe(ckpt: dict[str, Any] | None) -> dict[str, Any]:
    """The (val_fraction, val_seed) a checkpoint's validation slice was drawn with; {} for the defaults."""
    v = ((ckpt or {}).get("train") or {}).get("validation") or {}
    if v.get("fraction") is None or v.get("seed") is None:
        return {}
    return {"val_fraction": float(v["fraction"]), "val_seed": int(v["seed"])}


def check_split_matches(split: SkeletonSplit, layout: str, class_names: list[str], data: str, model: str) -> None:
    """A data set can score a model only with the same layout and classes; ValueError naming both."""
    if split.layout != layout:
        raise ValueError(f"{data} uses layout {split.layout!r}, the model {model} expects {layout!r}")
    if list(split.class_names) != list(class_names):
        raise ValueError(f"{data} has {len(split.class_names)} classes {list(split.class_names)[:5]}..., the model "
                         f"{model} was trained on {len(class_names)} classes {list(class_names)[:5]}...")
