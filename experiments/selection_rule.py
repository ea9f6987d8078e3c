"""Which rule should choose the epoch? Decided on validation clips alone, by split-half: choose the epoch on one
random half of a run's validation clips, score the chosen epoch on the other half, repeat.

    python experiments/selection_rule.py runs/nw_ucla/* runs/grids/nw_ucla_kd/* --json docs/results/selection_rule.json

Rules: `top1` (best validation top-1, ties to the lower loss: the trainer's train.select=top1), `loss` (lowest
validation loss: train.select=loss), `last` (the last epoch), `significant` (the last epoch, unless the top-1 epoch
beats it on the choosing clips by an exact McNemar test at p < 0.05: train.select=significant). Every run that wrote val_predictions.npz (the
trainer saves each evaluated epoch's validation logits) takes part; the test split is never read.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from core.stats import mcnemar_exact_p  # noqa: E402

RULES = ("top1", "loss", "last", "significant")


def choose(logits: np.ndarray, labels: np.ndarray, rule: str) -> int:
    """Index of the epoch a rule picks from (E, N, K) logits of the clips it may look at."""
    if rule == "last":
        return len(logits) - 1
    if rule == "significant":
        best = choose(logits, labels, "top1")
        right = logits.argmax(2) == labels[None]
        fixed = int(np.sum(right[best] & ~right[-1]))
        broken = int(np.sum(~right[best] & right[-1]))
        return best if fixed > broken and mcnemar_exact_p(fixed, broken) < 0.05 else len(logits) - 1
    shifted = logits - logits.max(axis=2, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=2, keepdims=True))
    loss = -logp[:, np.arange(len(labels)), labels].mean(axis=1)
    if rule == "loss":
        return int(np.argmin(loss))
    top1 = (logits.argmax(2) == labels[None]).mean(axis=1)
    order = np.lexsort((loss, -top1))  # best top-1, then lower loss
    return int(order[0])


def split_half(logits: np.ndarray, labels: np.ndarray, repeats: int, seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    scores = {r: [] for r in RULES}
    n = len(labels)
    for _ in range(repeats):
        perm = rng.permutation(n)
        for a, b in ((perm[: n // 2], perm[n // 2:]), (perm[n // 2:], perm[: n // 2])):
            for rule in RULES:
                e = choose(logits[:, a], labels[a], rule)
                scores[rule].append(float((logits[e, b].argmax(1) == labels[b]).mean()))
    return {r: 100 * float(np.mean(v)) for r, v in scores.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python experiments/selection_rule.py", description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    rows = {}
    for run in args.runs:
        f = run / "val_predictions.npz"
        summary = run / "summary.json"
        if not f.is_file() or not summary.is_file() or not json.loads(summary.read_text()).get("finished"):
            continue  # a finished run's every epoch, not a run in progress
        with np.load(f, allow_pickle=False) as z:
            logits, labels = z["logits"], z["labels"]
        if len(logits) < 2:
            continue
        rows[str(run)] = split_half(logits, labels, args.repeats)
    if not rows:
        print("no run with val_predictions.npz", file=sys.stderr)
        return 2
    mean = {r: float(np.mean([v[r] for v in rows.values()])) for r in RULES}
    wins = {r: int(sum(max(v, key=v.get) == r for v in rows.values())) for r in RULES}
    print("| run | " + " | ".join(f"held-out half top-1, rule {r}" for r in RULES) + " |")
    print("|---|" + "---|" * len(RULES))
    for run, v in rows.items():
        print(f"| {Path(run).name} | " + " | ".join(f"{v[r]:.2f}" for r in RULES) + " |")
    print(f"| **mean of {len(rows)} runs** | " + " | ".join(f"**{mean[r]:.2f}**" for r in RULES) + " |")
    print(f"best rule per run: {wins}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"command": "python experiments/selection_rule.py " + " ".join(
            sys.argv[1:] if argv is None else argv), "runs": rows, "mean": mean, "wins": wins}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
