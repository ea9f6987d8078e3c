"""Compare finished training runs: a Markdown table and a plot (accuracy curves, accuracy vs size).

    python -m train.report runs/nw_ucla/last_large runs/nw_ucla/last_small --out runs/nw_ucla/report
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from core.cli import ArgumentParser, BadInput, run_cli
from core.markdown import table_head
from core.plots import pyplot, save_figure


def load_run(run_dir: str | Path) -> dict[str, Any]:
    """summary.json + metrics.jsonl of one output_dir."""
    run_dir = Path(run_dir)
    summary_path, metrics_path = run_dir / "summary.json", run_dir / "metrics.jsonl"
    if not summary_path.is_file() or not metrics_path.is_file():
        raise FileNotFoundError(f"{run_dir}: no summary.json / metrics.jsonl (not a train.fit output_dir, "
                                f"or the run has not finished an epoch)")
    summary = json.loads(summary_path.read_text())
    if "val_top1" not in summary:
        raise ValueError(f"{summary_path}: written by an older toolkit (no validation protocol); train it again")
    history = []
    for n, line in enumerate(metrics_path.read_text().splitlines(), 1):
        try:
            history.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{metrics_path}:{n}: not JSON ({exc})") from exc
    summary["history"] = history
    summary["dir"] = str(run_dir)
    return summary


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def markdown_table(runs: list[dict[str, Any]]) -> str:
    """One row per run: the epoch chosen on the validation split, and the test split scored at that epoch and at
    the last one (a run that chose on the test split is flagged)."""
    clips = sorted({k for r in runs for k in r if k.startswith("test_top1_at_val_epoch_") and k.endswith("clips")})
    head = ["variant", "streams", "params (M)", "epochs", "wall time", "chosen epoch", "val top-1",
            "test top-1 (chosen epoch)", "test top-5 (chosen epoch)", "test top-1 (last epoch)"] + [
        f"test top-1 (chosen, {k[len('test_top1_at_val_epoch_'):-len('clips')]} clips)" for k in clips]
    lines = table_head(head)
    for r in runs:
        epochs = f"{r['epochs']}" + ("" if r.get("finished") else f" of {r['planned_epochs']} (unfinished)")
        wall = r["wall_seconds"]
        chosen = f"{r['best_epoch']} ({r.get('chosen_on') or '-'})"
        if r.get("warnings"):
            chosen += " ⚠ chosen on the test split"
        row = [r["variant"], "+".join(r["streams"]), f"{r['params'] / 1e6:.3f}", epochs,
               f"{wall / 3600:.2f} h" if wall >= 3600 else f"{wall / 60:.1f} min", chosen, pct(r.get("val_top1")),
               pct(r.get("test_top1_at_val_epoch")), pct(r.get("test_top5_at_val_epoch")),
               pct(r.get("test_top1_last_epoch"))] + [pct(r.get(k)) for k in clips]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def plot_runs(runs: list[dict[str, Any]], path: Path) -> Path:
    plt = pyplot()

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.5))
    for r in runs:
        label = f"{r['variant']} ({'+'.join(r['streams'])})"
        ep = [h["epoch"] for h in r["history"] if h.get("val_top1") is not None]
        ax1.plot(ep, [100 * h["val_top1"] for h in r["history"] if h.get("val_top1") is not None], label=label)
        score = r.get("test_top1_at_val_epoch")
        if score is not None:
            ax2.scatter(r["params"] / 1e6, 100 * score, s=60)
            ax2.annotate(label, (r["params"] / 1e6, 100 * score), textcoords="offset points", xytext=(5, 5))
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("validation top-1 (%)")
    ax1.grid(alpha=0.3)
    ax1.legend()
    ax2.set_xscale("log")
    ax2.set_xlabel("parameters (M)")
    ax2.set_ylabel("test top-1 at the chosen epoch (%)")
    ax2.grid(alpha=0.3)
    return save_figure(fig, path, dpi=110)


PROG = "python -m train.report"


def main(argv: list[str] | None = None) -> str:
    p = ArgumentParser(prog=PROG, description="Table (Markdown) and plot comparing train.fit output directories.")
    p.add_argument("runs", nargs="+", help="output_dir of each run")
    p.add_argument("--out", default=None, help="folder for report.md and report.png")
    args = p.parse_args(argv)
    runs, skipped = [], []
    for d in args.runs:
        try:
            runs.append(load_run(d))
        except (FileNotFoundError, ValueError) as exc:
            skipped.append(str(exc))
    if not runs:
        raise BadInput(f"no readable runs: {'; '.join(skipped)}")
    for msg in skipped:
        print(f"skipped: {msg}", file=sys.stderr)
    table = markdown_table(runs)
    print(table)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.md").write_text(table + "\n")
        plot_runs(runs, out / "report.png")
        print(f"wrote {out / 'report.md'} and {out / 'report.png'}")
    return table


if __name__ == "__main__":
    sys.exit(run_cli(main, PROG))
