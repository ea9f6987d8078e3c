"""Why a checkpoint decides as it does: one self-contained report (report.md + PNGs + report.json) over a split.

    python -m train.explain --ckpt runs/nw_ucla/last_nano/best.pt --data nw_ucla:test --out runs/explain/nano \
        --teacher runs/nw_ucla/last_large_jvb/best.pt

What it shows:
  * joint x time importance (core.explain: Grad-CAM on the last stage, integrated gradients on the input, and the
    last linear-attention block where the variant has one) of the most confident right and wrong clips and of one
    clip per class, as heatmaps and on the skeleton itself at the frames that mattered most, with class and
    confidence; and the mean joint importance of every class;
  * the feature space: t-SNE of the pooled features coloured by class; with --teacher the teacher's beside it
    and how alike the two are (linear CKA, k-NN agreement);
  * where it fails: per-class accuracy, the most confused pairs with example clips, accuracy by clip length and
    by what the clip names tell (NW-UCLA aAA_sSS_eEE_vVV: subject and view; NTU: setup, camera, subject).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from core import explain
from core.checkpoint import input_spec, load_model
from core.cli import ArgumentParser, BadInput, positive_int, run_cli
from core.data import nw_ucla, ntu
from core.evaluation import (check_split_matches, evaluate_logits, load_data_split, predict_split,
                             prepare_test_clips, save_confusion_plot, torch_predict_fn)
from core.layouts import get_layout
from core.markdown import table_head
from core.plots import pyplot, save_figure
from core.spec import InputSpec

PROG = "python -m train.explain"
METHOD_TITLES = {"gradcam": "Grad-CAM (last stage)", "integrated_gradients": "integrated gradients (input)",
                 "attention": "attention (last block)"}
NAME_PROPERTIES = ("subject", "view", "setup", "camera")  # what a clip name can say about the recording


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = ArgumentParser(prog=PROG, description="Explain a LAST checkpoint on a data set split: joint x time "
                       "importance, feature space (and a teacher's), where it fails. Writes report.md, PNGs and "
                       "report.json to --out.")
    p.add_argument("--ckpt", "--checkpoint", dest="ckpt", required=True, help="a checkpoint (.pt) to explain")
    p.add_argument("--data", required=True, help="NAME:SPLIT (e.g. nw_ucla:test, synthetic:test)")
    p.add_argument("--out", required=True, help="folder for report.md, report.json and the PNGs")
    p.add_argument("--teacher", default=None, help="a second checkpoint (e.g. the distillation teacher) whose "
                   "feature space is drawn beside the student's and compared with it")
    p.add_argument("--examples", type=positive_int, default=2,
                   help="most confident right and most confident wrong clips drawn (each; default 2)")
    p.add_argument("--clips", type=positive_int, default=1,
                   help="temporal clips per sample averaged for the scores, as in train.evaluate (attribution "
                        "explains the first)")
    p.add_argument("--methods", default="integrated_gradients,gradcam,attention",
                   help=f"attribution methods, comma-separated, from {', '.join(explain.GRADIENT_METHODS)}; the "
                        "first picks the key frames and colours the skeletons (attention is skipped for variants "
                        "without it)")
    p.add_argument("--class-clips", type=positive_int, default=20,
                   help="most confident right clips per class averaged into the class importance (20)")
    p.add_argument("--ig-steps", type=positive_int, default=16, help="integrated-gradients steps (16)")
    p.add_argument("--max-points", type=positive_int, default=1500,
                   help="clips in the feature-space plot and similarity numbers (a fixed random subset beyond it)")
    p.add_argument("--split", default="test", help="split when --data names none (default: test)")
    p.add_argument("--root", default=None, help="data root, if not the data set's default")
    p.add_argument("--batch", "--batch-size", dest="batch", type=positive_int, default=32)
    p.add_argument("--device", default="cpu", help="torch device for the forward passes (attribution runs there too)")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads for torch (default: its own)")
    args = p.parse_args(argv)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in args.methods if m not in explain.GRADIENT_METHODS]
    if unknown or not args.methods:
        p.error(f"--methods: unknown {unknown or 'none given'}; choose from {', '.join(explain.GRADIENT_METHODS)}")
    return args


# ---------------------------------------------------------------------------------------------
# Data and forward passes


def model_inputs(split: Any, spec: InputSpec, index: np.ndarray | list[int]) -> np.ndarray:
    """(n, C, T, V, M) of the chosen clips, each preprocessed as the model's spec says (first test clip)."""
    return np.stack([prepare_test_clips(split.sample(int(i)), spec, 1)[0] for i in index])


def pooled_features(model: Any, split: Any, spec: InputSpec, batch: int, device: str, desc: str
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, D) before the classifier, logits (N, K)) of every clip, one deterministic clip each."""
    model = model.to(device).eval()
    feats, logits = [], []
    with torch.inference_mode():
        for start in tqdm(range(0, len(split), batch), desc=desc, unit="batch", leave=False, dynamic_ncols=True):
            x = torch.from_numpy(model_inputs(split, spec, range(start, min(start + batch, len(split))))).to(device)
            pooled = model.forward_head(model.forward_features(x), pre_logits=True)
            feats.append(pooled.float().cpu().numpy())
            logits.append(model.fc(pooled).float().cpu().numpy())
    return np.concatenate(feats), np.concatenate(logits)


def softmax(logits: np.ndarray) -> np.ndarray:
    return np.exp(explain.log_softmax(logits)).astype(np.float32)


def attribution_maps(model: Any, x: np.ndarray, methods: list[str], ig_steps: int, device: str,
                     batch: int = 16) -> dict[str, np.ndarray]:
    """{method: (n, T, V)} for the predicted class of each clip (methods the model lacks are left out)."""
    model = model.to(device).eval()
    out: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(x), batch):
        xb = torch.from_numpy(x[start:start + batch]).to(device)
        for method in methods:
            kwargs = {"steps": ig_steps} if method == "integrated_gradients" else {}
            m = explain.importance_map(model, xb, method, **kwargs)
            if m is not None:
                out.setdefault(method, []).append(m)
    return {k: np.concatenate(v) for k, v in out.items()}


# ---------------------------------------------------------------------------------------------
# Where it fails


def name_properties(names: list[str]) -> dict[str, list[int]]:
    """Recording properties the clip names carry (NW-UCLA or NTU names), {} for names of neither kind."""
    for parse in (nw_ucla.parse_name, ntu.parse_name):
        try:
            parsed = [parse(n) for n in names]
        except ValueError:
            continue
        return {k: [p[k] for p in parsed] for k in NAME_PROPERTIES if k in parsed[0]}
    return {}


def length_bins(lengths: np.ndarray, bins: int = 4) -> list[str]:
    """Each clip's length as one of `bins` quantile ranges of the split, e.g. '25-35 frames' (inclusive)."""
    lengths = np.asarray(lengths)
    edges = np.unique(np.quantile(lengths, np.linspace(0, 1, bins + 1)).round().astype(int))
    if len(edges) < 2:
        return [f"{int(n)} frames" for n in lengths]
    k = np.clip(np.searchsorted(edges, lengths, side="right") - 1, 0, len(edges) - 2)
    labels = [f"{edges[i]}-{edges[i + 1] - 1} frames" for i in range(len(edges) - 2)]
    labels.append(f"{edges[-2]}-{edges[-1]} frames")
    return [labels[i] for i in k]


def accuracy_by(values: list[Any], correct: np.ndarray) -> list[dict[str, Any]]:
    """[{value, clips, top1}] per distinct value, in sorted order (lengths by their lower edge)."""
    def key(v: Any) -> Any:
        return int(str(v).split("-")[0]) if isinstance(v, str) and v.endswith("frames") else v
    rows = []
    for v in sorted(set(values), key=key):
        sel = np.array([x == v for x in values])
        rows.append({"value": v, "clips": int(sel.sum()), "top1": float(correct[sel].mean())})
    return rows


def confused_pairs(labels: np.ndarray, pred: np.ndarray, confidence: np.ndarray, names: list[str],
                   class_names: list[str], top: int = 5, examples: int = 3) -> list[dict[str, Any]]:
    """The `top` (true, predicted) pairs with most mistakes, each with its most confident wrong clips."""
    wrong = np.flatnonzero(labels != pred)
    counts: dict[tuple[int, int], list[int]] = {}
    for i in wrong:
        counts.setdefault((int(labels[i]), int(pred[i])), []).append(int(i))
    ranked = sorted(counts.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:top]
    out = []
    for (t, p), idx in ranked:
        idx = sorted(idx, key=lambda i: -confidence[i])[:examples]
        out.append({"true": class_names[t], "predicted": class_names[p], "count": len(counts[(t, p)]),
                    "of_true": int((labels == t).sum()),
                    "examples": [{"index": i, "name": names[i], "confidence": float(confidence[i])} for i in idx]})
    return out


def choose_examples(labels: np.ndarray, pred: np.ndarray, confidence: np.ndarray, count: int,
                    num_classes: int) -> list[tuple[str, int]]:
    """(kind, clip index): the `count` most confident right and wrong clips, then one per class (its most
    confident right clip, or its most confident clip if none is right)."""
    right, wrong = np.flatnonzero(labels == pred), np.flatnonzero(labels != pred)
    chosen = [("best", int(i)) for i in right[np.argsort(-confidence[right], kind="stable")][:count]]
    chosen += [("worst", int(i)) for i in wrong[np.argsort(-confidence[wrong], kind="stable")][:count]]
    for c in range(num_classes):
        members = np.flatnonzero(labels == c)
        if not len(members):
            continue
        pool = members[pred[members] == c] if (pred[members] == c).any() else members
        chosen.append((f"class {c}", int(pool[np.argmax(confidence[pool])])))
    return chosen


# ---------------------------------------------------------------------------------------------
# Figures



def key_frames(importance: np.ndarray, count: int = 4) -> list[int]:
    """The `count` frames where a (T, V) map is largest, at least T / (2 count) frames apart, in time order."""
    total = importance.sum(axis=1)
    gap = max(1, len(total) // (2 * count))
    picked: list[int] = []
    for t in np.argsort(-total, kind="stable"):
        if all(abs(int(t) - p) >= gap for p in picked):
            picked.append(int(t))
        if len(picked) == count:
            break
    return sorted(picked)


def front_view(pose: np.ndarray) -> np.ndarray:
    """(V, >=2) canonical coordinates (x = the body's right, y = up) -> (V, 2) as seen from the front."""
    return np.stack([-pose[:, 0], pose[:, 1]], axis=1)


def draw_pose(ax: Any, pose: np.ndarray, layout: str, scores: np.ndarray, cmap: str = "YlOrRd") -> None:
    """One skeleton (front view) with its joints coloured and sized by scores in [0, 1]."""
    plt = pyplot()
    xy = front_view(pose)
    present = np.abs(pose).sum(axis=1) > 0
    for a, b in get_layout(layout).edges:
        if present[a] and present[b]:
            ax.plot(xy[[a, b], 0], xy[[a, b], 1], color="0.6", lw=1.5, zorder=1)
    s = np.clip(scores, 0, 1)
    ax.scatter(xy[present, 0], xy[present, 1], c=s[present], cmap=plt.get_cmap(cmap), vmin=0, vmax=1,
               s=12 + 70 * s[present], edgecolors="0.3", linewidths=0.4, zorder=2)
    ax.set_aspect("equal")
    ax.axis("off")


def plot_example(path: Path, x: np.ndarray, maps: dict[str, np.ndarray], layout: str, title: str) -> Path:
    """Heatmaps (joints x frames) of every method above the skeleton at the key frames of the first method.
    x: (C, T, V, M) model input; maps: {method: (T, V)}."""
    plt = pyplot()
    joints = get_layout(layout).joints
    methods = list(maps)
    frames = key_frames(maps[methods[0]])
    fig = plt.figure(figsize=(3.2 * max(len(methods), 2) + 0.6, 6.6), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.15, 1])
    for k, (ax, method) in enumerate(zip(np.atleast_1d(top.subplots(1, len(methods))), methods)):
        m = maps[method] / max(float(maps[method].max()), 1e-12)
        ax.imshow(m.T, aspect="auto", cmap="YlOrRd", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(METHOD_TITLES.get(method, method), fontsize=8)
        ax.set_xlabel("frame", fontsize=7)
        ax.set_yticks(range(len(joints)))
        ax.set_yticklabels(joints if k == 0 else [], fontsize=5)
        ax.tick_params(axis="x", labelsize=6)
        for t in frames:
            ax.axvline(t, color="tab:blue", lw=0.6, alpha=0.7)
    pose = x[:3, :, :, 0].transpose(1, 2, 0)  # (T, V, 3) of the first person
    first = maps[methods[0]] / max(float(maps[methods[0]].max()), 1e-12)
    for ax, t in zip(np.atleast_1d(bottom.subplots(1, len(frames))), frames):
        draw_pose(ax, pose[t], layout, first[t])
        ax.set_title(f"frame {t}", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def plot_class_importance(path: Path, scores: dict[str, np.ndarray], poses: np.ndarray, layout: str,
                          class_names: list[str]) -> Path:
    """Per class: the mean joint importance on a typical pose of the class (first method), and a classes x
    joints heatmap per method. scores: {method: (K, V) in [0, 1]}; poses: (K, V, 3)."""
    plt = pyplot()
    k = len(class_names)
    methods = list(scores)
    cols = min(k, 5)
    rows = -(-k // cols)
    fig = plt.figure(figsize=(2.1 * cols + 3.6 * len(methods), 2.6 * rows + 0.4))
    grid = fig.add_gridspec(rows, cols + len(methods), width_ratios=[1] * cols + [1.7] * len(methods))
    first = scores[methods[0]]
    for c in range(k):
        ax = fig.add_subplot(grid[c // cols, c % cols])
        draw_pose(ax, poses[c], layout, first[c])
        ax.set_title(class_names[c], fontsize=8)
    joints = get_layout(layout).joints
    for j, method in enumerate(methods):
        ax = fig.add_subplot(grid[:, cols + j])
        ax.imshow(scores[method].T, aspect="auto", cmap="YlOrRd", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks(range(k))
        ax.set_xticklabels(class_names, rotation=90, fontsize=6)
        ax.set_yticks(range(len(joints)))
        ax.set_yticklabels(joints if j == 0 else [], fontsize=6)
        ax.set_title(METHOD_TITLES.get(method, method), fontsize=8)
    fig.suptitle(f"mean joint importance per class ({METHOD_TITLES.get(methods[0], methods[0])} on the skeletons)",
                 fontsize=9)
    return save_figure(fig, path, dpi=80)


def plot_feature_space(path: Path, embeddings: dict[str, np.ndarray], labels: np.ndarray, class_names: list[str],
                       subtitle: str) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(embeddings), figsize=(5.2 * len(embeddings) + 1.8, 5.0), squeeze=False)
    cmap = plt.get_cmap("tab10" if len(class_names) <= 10 else "tab20")
    for ax, (name, y) in zip(axes[0], embeddings.items()):
        for c, cname in enumerate(class_names):
            sel = labels == c
            ax.scatter(y[sel, 0], y[sel, 1], s=7, color=cmap(c % cmap.N), label=cname, alpha=0.8, linewidths=0)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if len(class_names) <= 20:
        axes[0, -1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, markerscale=2, frameon=False)
    fig.suptitle(subtitle, fontsize=9)
    return save_figure(fig, path, dpi=80)


def plot_failures(path: Path, per_class: dict[str, float | None], by_property: dict[str, list[dict[str, Any]]],
                  overall: float) -> Path:
    plt = pyplot()
    by_property = {k: rows for k, rows in by_property.items() if len(rows) > 1}  # one value: nothing to compare
    panels = 1 + len(by_property)
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.8), squeeze=False)
    ax = axes[0, 0]
    names = list(per_class)
    acc = [100 * (per_class[n] if per_class[n] is not None else np.nan) for n in names]
    ax.barh(range(len(names)), acc, color="tab:blue")
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=7)
    ax.invert_yaxis()
    ax.axvline(100 * overall, color="k", lw=0.8, ls="--")
    ax.set_xlim(0, 100)
    ax.set_xlabel("top-1 (%)", fontsize=8)
    ax.set_title("per class (dashed: overall)", fontsize=9)
    for ax, (prop, rows) in zip(axes[0, 1:], by_property.items()):
        labels = [str(r["value"]) for r in rows]
        ax.bar(range(len(rows)), [100 * r["top1"] for r in rows], color="tab:orange")
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels(labels, rotation=45 if len(rows) > 4 else 0, ha="right" if len(rows) > 4 else "center",
                           fontsize=7)
        ax.axhline(100 * overall, color="k", lw=0.8, ls="--")
        ax.set_ylim(0, 100)
        ax.set_title(f"by {prop}", fontsize=9)
        for i, r in enumerate(rows):
            ax.text(i, 2, str(r["clips"]), ha="center", fontsize=6, color="white")
    return save_figure(fig, path, dpi=80)


# ---------------------------------------------------------------------------------------------
# The report


def feature_space(student: np.ndarray, labels: np.ndarray, class_names: list[str], teacher: np.ndarray | None,
                  student_name: str, teacher_name: str | None, max_points: int, out: Path) -> dict[str, Any]:
    """t-SNE plot(s) and the similarity numbers over the same clips (a fixed subset beyond max_points)."""
    index = np.arange(len(labels))
    if len(index) > max_points:
        index = np.sort(np.random.default_rng(0).choice(index, max_points, replace=False))
    k = 10
    result: dict[str, Any] = {"clips": int(len(index)), "k": k,
                              "knn_accuracy": {student_name: explain.knn_accuracy(student[index], labels[index], k)}}
    embeddings = {student_name: explain.tsne(student[index])}
    subtitle = f"t-SNE of pooled features, {len(index)} clips; k-NN ({k}) accuracy {student_name} " \
               f"{100 * result['knn_accuracy'][student_name]:.1f}%"
    if teacher is not None:
        result["knn_accuracy"][teacher_name] = explain.knn_accuracy(teacher[index], labels[index], k)
        result["linear_cka"] = explain.linear_cka(student[index], teacher[index])
        result["knn_agreement"] = explain.knn_agreement(student[index], teacher[index], k)
        result["knn_agreement_chance"] = k / (len(index) - 1)
        embeddings[teacher_name] = explain.tsne(teacher[index])
        subtitle = (f"t-SNE of pooled features, {len(index)} clips: linear CKA {result['linear_cka']:.3f}, "
                    f"{k}-NN agreement {100 * result['knn_agreement']:.1f}% (chance "
                    f"{100 * result['knn_agreement_chance']:.1f}%)")
    plot_feature_space(out / "feature_space.png", embeddings, labels[index], class_names, subtitle)
    return result


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def markdown_report(r: dict[str, Any]) -> str:
    m = r["metrics"]
    lines = [f"# Why {r['variant']} decides as it does on {r['data']}", "",
             f"Checkpoint `{r['checkpoint']}` ({r['variant']}, streams {'+'.join(r['streams'])}), "
             f"{m['num_samples']} clips, top-1 {pct(m['top1'])}, mean-class {pct(m['mean_class_accuracy'])} "
             f"({r['clips']} clip{'s' if r['clips'] > 1 else ''} per sample). Written by `{r['command']}` in "
             f"{r['seconds']:.0f} s.", "",
             "## Joint x time importance", "",
             "Every map explains the predicted class. " + " ".join(
                 f"**{METHOD_TITLES[k]}**: {v}" for k, v in r["method_notes"].items()), "",
             "Heatmaps: joints (rows) x frames (columns), red = important, pale = not, each map scaled to its own "
             "maximum; blue lines mark the frames drawn below them (where the first map is largest), with "
             "the joints coloured and sized by that map.", ""]
    if r.get("skipped_methods"):
        lines += [f"Not available for this variant: {', '.join(r['skipped_methods'])}.", ""]
    lines += ["![class importance](class_importance.png)", "",
              *table_head(["clip", "kind", "true", "predicted", "confidence", "figure"])]
    for e in r["examples"]:
        lines.append(f"| {e['name']} | {e['kind']} | {e['true']} | {e['predicted']} | {e['confidence']:.2f} | "
                     f"[{e['figure']}]({e['figure']}) |")
    lines += [""] + [f"![{e['kind']}: {e['name']}]({e['figure']})" for e in r["examples"]
                     if e["kind"] in ("best", "worst")] + [""]
    f = r["feature_space"]
    lines += ["## Feature space", "", "![feature space](feature_space.png)", "",
              *table_head(["model", f"{f['k']}-NN accuracy (leave one out)"])]
    lines += [f"| {name} | {pct(acc)} |" for name, acc in f["knn_accuracy"].items()]
    if "linear_cka" in f:
        lines += ["", f"Student vs teacher over the same {f['clips']} clips: linear CKA **{f['linear_cka']:.3f}** "
                      f"(1 = the same geometry up to rotation and scale), {f['k']}-NN agreement "
                      f"**{pct(f['knn_agreement'])}** (the share of each clip's {f['k']} nearest neighbours the two "
                      f"spaces have in common; chance {pct(f['knn_agreement_chance'])})."]
    lines += ["", "## Where it fails", "", "![failures](failures.png)", "", "![confusion](confusion.png)", "",
              "Most confused pairs:", "", *table_head(["true", "predicted as", "clips", "most confident examples"])]
    for p in r["confused_pairs"]:
        ex = ", ".join(f"{e['name']} ({e['confidence']:.2f})" for e in p["examples"])
        lines.append(f"| {p['true']} | {p['predicted']} | {p['count']} of {p['of_true']} | {ex} |")
    if not r["confused_pairs"]:
        lines.append("| - | - | 0 | every clip right |")
    for prop, rows in r["by_property"].items():
        if len(rows) == 1:
            lines += ["", f"Every clip has {prop} {rows[0]['value']}."]
            continue
        lines += ["", f"Accuracy by {prop}:", "", *table_head([prop, "clips", "top-1"])]
        lines += [f"| {row['value']} | {row['clips']} | {pct(row['top1'])} |" for row in rows]
    return "\n".join(lines) + "\n"


def explain_checkpoint(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    started = time.time()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    model, ckpt = load_model(args.ckpt)  # bad input before anything is written
    spec = input_spec(ckpt)
    class_names = list(ckpt["class_names"])
    if set(args.methods) == {"attention"} and explain.last_attention_module(model) is None:  # nothing to draw
        raise BadInput(f"--methods attention: {args.ckpt} is a {model.variant} without attention; use "
                       f"integrated_gradients or gradcam")
    split = load_data_split(args.data, layout=spec.layout, root=args.root, default_split=args.split, ckpt=ckpt)
    check_split_matches(split, spec.layout, class_names, args.data, args.ckpt)
    teacher = teacher_spec = None
    if args.teacher:
        teacher, teacher_ckpt = load_model(args.teacher)
        teacher_spec = input_spec(teacher_ckpt)
        check_split_matches(split, teacher_spec.layout, list(teacher_ckpt["class_names"]), args.data, args.teacher)
    print(f"{args.ckpt} ({model.variant}) on {args.data}: {len(split)} clips")
    out.mkdir(parents=True, exist_ok=True)

    features, logits = pooled_features(model, split, spec, args.batch, args.device, "features")
    if args.clips > 1:
        logits = predict_split(torch_predict_fn(model, args.device), split, spec, args.batch, args.clips)
    metrics = evaluate_logits(logits, split.labels, class_names)
    save_confusion_plot(metrics, out / "confusion.png")
    probs = softmax(logits)
    pred, labels = probs.argmax(axis=1), split.labels
    confidence = probs.max(axis=1)
    print(f"top-1 {100 * metrics['top1']:.2f}%")

    # joint x time importance: chosen clips, then every class's most confident right clips
    layout = spec.layout
    examples = []
    (out / "examples").mkdir(exist_ok=True)
    chosen = choose_examples(labels, pred, confidence, args.examples, len(class_names))
    x = model_inputs(split, spec, [i for _, i in chosen])
    maps = attribution_maps(model, x, args.methods, args.ig_steps, args.device)
    skipped = [m for m in args.methods if m not in maps]
    for row, (kind, i) in enumerate(tqdm(chosen, desc="examples", leave=False, dynamic_ncols=True)):
        figure = f"examples/{kind.replace(' ', '_')}_{split.names[i]}.png"
        title = (f"{split.names[i]} ({kind}): true {class_names[labels[i]]}, predicted {class_names[pred[i]]} "
                 f"{confidence[i]:.2f}")
        plot_example(out / figure, x[row], {m: v[row] for m, v in maps.items()}, layout, title)
        examples.append({"kind": kind, "index": i, "name": split.names[i], "true": class_names[labels[i]],
                         "predicted": class_names[pred[i]], "confidence": float(confidence[i]), "figure": figure,
                         "joint_importance": {m: explain.joint_scores(v[row:row + 1])[0].round(4).tolist()
                                              for m, v in maps.items()}})
    class_scores: dict[str, np.ndarray] = {m: np.zeros((len(class_names), split.num_joints)) for m in maps}
    poses = np.zeros((len(class_names), split.num_joints, 3), np.float32)
    for c in tqdm(range(len(class_names)), desc="class importance", leave=False, dynamic_ncols=True):
        members = np.flatnonzero((labels == c) & (pred == c))
        if not len(members):
            continue
        members = members[np.argsort(-confidence[members], kind="stable")][:args.class_clips]
        xc = model_inputs(split, spec, members)
        mc = attribution_maps(model, xc, list(maps), args.ig_steps, args.device)
        for m, v in mc.items():
            s = explain.joint_scores(v).mean(axis=0)
            class_scores[m][c] = s / max(float(s.max()), 1e-12)
        poses[c] = xc[0, :3, xc.shape[2] // 2, :, 0].T  # the middle frame of its most confident clip
    plot_class_importance(out / "class_importance.png", class_scores, poses, layout, class_names)

    # feature space
    teacher_features = None
    student_name = f"student {model.variant}" if teacher is not None else model.variant
    teacher_name = f"teacher {teacher.variant}" if teacher is not None else None
    if teacher is not None:
        teacher_features, _ = pooled_features(teacher, split, teacher_spec, args.batch, args.device, "teacher")
    space = feature_space(features, labels, class_names, teacher_features, student_name, teacher_name,
                          args.max_points, out)

    # where it fails
    correct = (pred == labels).astype(np.float64)
    by_property = {"length": accuracy_by(length_bins(split.lengths), correct)}
    by_property.update({k: accuracy_by(v, correct) for k, v in name_properties(split.names).items()})
    plot_failures(out / "failures.png", metrics["per_class"], by_property, metrics["top1"])

    report = {
        "variant": model.variant, "checkpoint": str(args.ckpt), "data": args.data,
        "streams": list(model.cfg.streams), "clips": args.clips, "teacher": args.teacher,
        "command": " ".join(["python -m train.explain", *(argv if argv is not None else sys.argv[1:])]),
        "metrics": metrics, "methods": list(maps), "skipped_methods": skipped,
        "method_notes": {m: NOTES[m] for m in maps},
        "examples": examples, "class_importance": {m: v.round(4).tolist() for m, v in class_scores.items()},
        "feature_space": space, "confused_pairs": confused_pairs(labels, pred, confidence, split.names, class_names),
        "by_property": by_property, "seconds": time.time() - started,
    }
    (out / "report.json").write_text(json.dumps(report, indent=1))
    (out / "report.md").write_text(markdown_report(report))
    print(f"wrote {out / 'report.md'} ({len(examples)} example figures, {time.time() - started:.0f} s)")
    return report


NOTES = {
    "gradcam": "the class's gradient-weighted feature map of the last stage (joints are mixed by the graph "
               "convolutions before it, most in the full variants, whose adjacency is learned);",
    "integrated_gradients": "how much each joint's motion moved the class score (baseline: the same clip with "
                            "every joint held at its mean position), summed over x, y, z;",
    "attention": "the attention each frame receives in the deepest linear-attention block, times its value's "
                 "norm.",
}


def main(argv: list[str] | None = None) -> int:
    """The command line: exit status 0 ok, 1 failed, 2 bad input (core.cli)."""
    return run_cli(explain_checkpoint, PROG, argv)


if __name__ == "__main__":
    sys.exit(main())
