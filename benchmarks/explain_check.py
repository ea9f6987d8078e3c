"""Does an attribution point at the joints that move? Tiny LAST models are trained on the procedural actions of
core.synthetic, whose motion is confined to known joints (a wave moves the right forearm, a kick the right leg),
and every attribution method of core.explain is scored on held-out clips: per clip, the share of (moving joint,
still joint) pairs it ranks in the right order (an AUC: 1 = every moving joint above every still one, 0.5 =
chance), and the ratio of their mean importances.

    python -m benchmarks.explain_check --variants last_nano,last_lite_nano --seeds 0,1,2 --out runs/explain_check

A joint the action moves away from the standing pose and then holds (the raised elbow of a wave) counts as
neither moving nor still. tests/test_explain.py asserts the integrated-gradients numbers for seed 0.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.report import write_results
from core import explain
from core.cli import ArgumentParser, positive_int, run_cli
from core.data.dataset import SkeletonDataset
from core.markdown import table_head
from core.models.last import create_model
from core.spec import InputSpec
from core.synthetic import SYNTHETIC_ACTIONS, joint_motion, make_synthetic_split

PROG = "python -m benchmarks.explain_check"
FRAMES = 16  # model T; clips are generated at 2 x FRAMES frames
# actions whose motion is confined to some joints (squat and jump move the whole body; clap is a held pose)
LOCALISED = ("wave", "punch", "kick", "arm_circles", "walk_in_place")
METHOD_OPTIONS: dict[str, dict[str, Any]] = {
    "integrated_gradients": {"method": "integrated_gradients", "steps": 16},
    "integrated_gradients_4": {"method": "integrated_gradients", "steps": 4},
    "integrated_gradients_1": {"method": "integrated_gradients", "steps": 1},
    "gradcam": {"method": "gradcam"},
    "attention": {"method": "attention"},
    "occlusion": {"method": "occlusion", "mode": "both"},
    "occlusion_remove": {"method": "occlusion", "mode": "remove"},
}


def synthetic_tensors(per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Preprocessed synthetic ntu25 clips (N, C, FRAMES, V, 1) and labels."""
    spec = InputSpec(layout="ntu25", frames=FRAMES)
    data = SkeletonDataset(make_synthetic_split("ntu25", per_class=per_class, frames=2 * FRAMES, seed=seed), spec)
    return torch.stack([data[i][0] for i in range(len(data))]), torch.as_tensor(data.split.labels)


def train_tiny(variant: str, seed: int = 0, epochs: int = 20, per_class: int = 12
               ) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """A tiny model trained on the 8 synthetic actions, with jitter (0.05 torso lengths on every joint) so that
    no joint's sensor noise is a cue; and 4 held-out clips per action of another seed."""
    torch.manual_seed(seed)
    x, y = synthetic_tensors(per_class, seed=seed)
    model = create_model(variant, num_classes=len(SYNTHETIC_ACTIONS), layout="ntu25", dropout=0.0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), 32):
            idx = order[start:start + 32]
            jitter = 0.05 * torch.randn(x[idx].shape, generator=generator)
            loss = torch.nn.functional.cross_entropy(model(x[idx] + jitter), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    held_x, held_y = synthetic_tensors(4, seed=seed + 100)
    return model, held_x, held_y


def moving_and_still(action: str) -> tuple[np.ndarray, np.ndarray]:
    """(V,) masks: the joints the action moves, and the joints it leaves at the standing pose."""
    motion, displacement = joint_motion(action, "ntu25", 2 * FRAMES)
    return motion > 0.05, displacement == 0


def localisation(model: Any, x: torch.Tensor, y: torch.Tensor, method: str, **options: Any
                 ) -> dict[str, dict[str, float]] | None:
    """{action: {auc, ratio}} of one method on the held-out clips of every localised action (the true class
    explained); None when the model lacks the method (attention in a Lite variant)."""
    out = {}
    for action in LOCALISED:
        label = SYNTHETIC_ACTIONS.index(action)
        moving, still = moving_and_still(action)
        importance = explain.importance_map(model, x[y == label], method, target=label, **options)
        if importance is None:
            return None
        scores = explain.joint_scores(importance)
        auc = float(np.mean([(s[moving][:, None] > s[still][None, :]).mean() for s in scores]))
        ratio = float(scores[:, moving].mean() / max(scores[:, still].mean(), 1e-12))
        out[action] = {"auc": auc, "ratio": ratio}
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = ArgumentParser(prog=PROG, description="Score every attribution method on tiny models trained on "
                       "synthetic actions whose motion is confined to known joints.")
    p.add_argument("--variants", default="last_nano,last_lite_nano")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--methods", default=",".join(METHOD_OPTIONS), help=f"from {', '.join(METHOD_OPTIONS)}")
    p.add_argument("--epochs", type=positive_int, default=20)
    p.add_argument("--out", default=None, help="folder for explain_check.json and explain_check.md")
    args = p.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHOD_OPTIONS]
    if unknown:
        p.error(f"--methods: unknown {unknown}; choose from {', '.join(METHOD_OPTIONS)}")
    torch.set_num_threads(1)
    runs = []
    for variant in variants:
        for seed in seeds:
            start = time.time()
            model, x, y = train_tiny(variant, seed, args.epochs)
            with torch.no_grad():
                accuracy = float((model(x).argmax(1) == y).float().mean())
            print(f"{variant} seed {seed}: trained in {time.time() - start:.0f} s, held-out top-1 {accuracy:.2f}")
            for method in methods:
                found = localisation(model, x, y, **METHOD_OPTIONS[method])
                if found is not None:
                    runs.append({"variant": variant, "seed": seed, "method": method, "top1": accuracy,
                                 "actions": found})
    lines = table_head(["variant", "method", "seeds", "mean AUC (min over seeds)",
                        *[f"{a} AUC" for a in LOCALISED], "actions with ratio >= 1.5"])
    summary = []
    for variant in variants:
        for method in methods:
            rs = [r for r in runs if r["variant"] == variant and r["method"] == method]
            if not rs:
                continue
            means = [np.mean([a["auc"] for a in r["actions"].values()]) for r in rs]
            per_action = {a: np.mean([r["actions"][a]["auc"] for r in rs]) for a in LOCALISED}
            ratio_ok = sum(a["ratio"] >= 1.5 for r in rs for a in r["actions"].values())
            summary.append({"variant": variant, "method": method, "seeds": len(rs), "mean_auc": float(np.mean(means)),
                            "min_auc": float(np.min(means)), "per_action_auc": per_action,
                            "ratio_ok": ratio_ok, "ratio_total": len(rs) * len(LOCALISED)})
            lines.append(f"| {variant} | {method} | {len(rs)} | {np.mean(means):.2f} ({np.min(means):.2f}) | "
                         + " | ".join(f"{per_action[a]:.2f}" for a in LOCALISED)
                         + f" | {ratio_ok} of {len(rs) * len(LOCALISED)} |")
    table = "\n".join(lines)
    print(table)
    result = {"command": " ".join([PROG, *(argv if argv is not None else sys.argv[1:])]), "frames": FRAMES,
              "epochs": args.epochs, "summary": summary, "runs": runs}
    if args.out:
        write_results(Path(args.out), "explain_check", result, table)
    return result


if __name__ == "__main__":
    sys.exit(run_cli(main, PROG))
