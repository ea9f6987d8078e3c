"""Data set report: split sizes, class balance and clip lengths as a markdown table and a plot.

    python -m core.data.report nw_ucla --out runs/reports/data_nw_ucla
    python -m core.data.report ntu60-xsub --root runs/data/ntu120 --splits train test
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from core.data import load_split
from core.data.prepared import SkeletonSplit
from core.plots import pyplot, save_figure


def balance_table(splits: dict[str, SkeletonSplit]) -> str:
    first = next(iter(splits.values()))
    counts = {s: sp.class_counts() for s, sp in splits.items()}
    head = "| class | " + " | ".join(splits) + " |"
    rows = [head, "|---|" + "---|" * len(splits)]
    for c, name in enumerate(first.class_names):
        rows.append(f"| {c} {name} | " + " | ".join(str(counts[s][c]) for s in splits) + " |")
    rows.append("| **total** | " + " | ".join(str(len(sp)) for sp in splits.values()) + " |")
    rows.append("| frames min / mean / max | " + " | ".join(
        f"{sp.lengths.min()} / {sp.lengths.mean():.1f} / {sp.lengths.max()}" for sp in splits.values()) + " |")
    return "\n".join(rows)


def plot_report(splits: dict[str, SkeletonSplit], path: Path, title: str) -> Path:
    plt = pyplot()

    first = next(iter(splits.values()))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [2, 1]})
    width = 0.8 / len(splits)
    x = np.arange(first.num_classes)
    for k, (s, sp) in enumerate(splits.items()):
        ax1.bar(x + k * width, sp.class_counts(), width, label=f"{s} ({len(sp)})")
        ax2.hist(sp.lengths, bins=30, alpha=0.6, label=s)
    ax1.set_xticks(x + width * (len(splits) - 1) / 2)
    ax1.set_xticklabels(first.class_names if first.num_classes <= 20 else [str(i) for i in x],
                        rotation=45 if first.num_classes <= 20 else 90, ha="right", fontsize=8)
    ax1.set_ylabel("clips")
    ax1.set_title(f"{title}: class balance")
    ax1.legend()
    ax2.set_xlabel("valid frames per clip")
    ax2.set_title("clip lengths")
    ax2.legend()
    return save_figure(fig, path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m core.data.report", description=__doc__.split("\n")[0])
    p.add_argument("dataset", help="a load_split name: nw_ucla, mediapipe, synthetic, ntu60-xsub, custom:<dir>, ...")
    p.add_argument("--root", default=None, help="where the data set lives (see load_split)")
    p.add_argument("--splits", nargs="+", default=["train", "test"])
    p.add_argument("--out", default=None,
                   help="folder for report.md and balance.png (default runs/reports/data_<name>)")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    splits = {s: load_split(args.dataset, s, args.root) for s in args.splits}
    seconds = time.perf_counter() - t0
    safe = args.dataset.replace(":", "_").replace("/", "_")
    out = Path(args.out or Path("runs") / "reports" / f"data_{safe}")
    table = balance_table(splits)
    png = plot_report(splits, out / "balance.png", args.dataset)
    first = next(iter(splits.values()))
    text = (f"# {args.dataset}\n\nlayout {first.layout}, {first.num_classes} classes, data "
            f"{tuple(first.data.shape[1:])} per clip; loaded in {seconds:.2f} s\n\n{table}\n\n![balance]({png.name})\n")
    (out / "report.md").write_text(text, encoding="utf-8")
    print(text)
    print(f"wrote {out / 'report.md'} and {png}")


if __name__ == "__main__":
    main()
