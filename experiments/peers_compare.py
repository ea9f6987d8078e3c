"""Side by side: two runs of the peer latency harness (../shared/bench/peers/bench_peers.py --json), e.g. the
LAST code before and after a change, as ratios against a reference peer measured in the same run (absolute
times on a shared machine are not comparable between runs; in-run ratios are).

    python -m experiments.peers_compare runs/peers/before.json runs/peers/after.json --out runs/peers/compare

Prints a Markdown report (per model: GFLOPs, ORT 1-thread and eager latency, speed-up over the reference peer,
share of the in-run ORT GEMM peak, batch-16 gain, the ORT profile's top op types) and writes
compare.md + compare.png under --out.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.cli import ArgumentParser, BadInput, run_cli
from core.plots import pyplot


def load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BadInput(f"cannot read harness results {path}: {exc}") from exc


def metrics(res: dict, name: str, reference: str) -> dict:
    """In-run numbers of one model: times (ms), ratios against the reference peer, GEMM-peak share, b16 gain."""
    m, ref = res["models"][name], res["models"][reference]
    t, tr = m["timing"], ref["timing"]
    peak = res["gemm_peak"]["ort1"]
    out = {"gflops": m["flops"] / 1e9, "ort1_ms": t["ort1"]["median"], "eager_ms": t["eager1"]["median"],
           "ort1_vs_ref": tr["ort1"]["median"] / t["ort1"]["median"],
           "eager_vs_ref": tr["eager1"]["median"] / t["eager1"]["median"],
           "peak_share": m["flops"] / (t["ort1"]["median"] / 1e3) / 1e9 / peak}
    if "b16" in m:
        out["b16_gain"] = (16 / (m["b16"]["median"] / 1e3)) / (1e3 / t["ort2"]["median"])
    return out


def top_ops(res: dict, name: str, n: int = 4) -> str:
    prof = res.get("ort_profile", {}).get(name)
    if not prof:
        return "–"
    return ", ".join(f"{t['op']} {100 * t['share']:.0f}%" for t in prof["types"][:n])


def report(before: dict, after: dict, reference: str, labels: tuple[str, str]) -> str:
    lb, la = labels
    names = [n for n in after["models"] if n in before["models"]]
    L = [f"Reference peer: {reference} (ratios > 1: faster than it, in the same run). {lb}: run of "
         f"{before['env']['date']}; {la}: run of {after['env']['date']}. In-run ORT 1-thread GEMM peak "
         f"{before['gemm_peak']['ort1']:.0f} / {after['gemm_peak']['ort1']:.0f} GFLOP/s.", "",
         f"| model | GFLOPs {lb} → {la} | ORT 1t ms {lb} → {la} | ORT 1t vs {reference} | % of GEMM peak "
         f"| batch-16 gain (ORT 2t) | eager 1t vs {reference} |", "|---|---|---|---|---|---|---|"]
    for n in names:
        b, a = metrics(before, n, reference), metrics(after, n, reference)
        b16 = f"{b['b16_gain']:.2f}× → {a['b16_gain']:.2f}×" if "b16_gain" in a and "b16_gain" in b else "–"
        L.append(f"| {n} | {b['gflops']:.3f} → {a['gflops']:.3f} | {b['ort1_ms']:.2f} → {a['ort1_ms']:.2f} | "
                 f"{b['ort1_vs_ref']:.2f}× → **{a['ort1_vs_ref']:.2f}×** | {100 * b['peak_share']:.0f}% → "
                 f"**{100 * a['peak_share']:.0f}%** | {b16} | {b['eager_vs_ref']:.2f}× → **{a['eager_vs_ref']:.2f}×** |")
    L += ["", f"ORT kernel time by op type (1 thread, top 4), {lb} → {la}:", ""]
    L += ["| model | " + lb + " | " + la + " |", "|---|---|---|"]
    for n in names:
        if n in after.get("ort_profile", {}):
            L.append(f"| {n} | {top_ops(before, n)} | {top_ops(after, n)} |")
    return "\n".join(L)


def plot(before: dict, after: dict, reference: str, labels: tuple[str, str], path: Path) -> None:
    plt = pyplot()
    import numpy as np
    names = [n for n, m in after["models"].items() if m["family"] == "LAST" and n in before["models"]]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    x = np.arange(len(names))
    for ax, key, title in ((axes[0], "ort1_vs_ref", f"ORT 1 thread: speed-up over {reference}"),
                           (axes[1], "eager_vs_ref", f"PyTorch eager 1 thread: speed-up over {reference}")):
        for i, (res, label) in enumerate(((before, labels[0]), (after, labels[1]))):
            ax.bar(x + (i - 0.5) * 0.38, [metrics(res, n, reference)[key] for n in names], 0.38, label=label)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks(x, [n.replace("last_", "") for n in names], rotation=30)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = ArgumentParser(prog="python -m experiments.peers_compare", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before", type=Path, help="bench_peers.py --json of the first run")
    ap.add_argument("after", type=Path, help="bench_peers.py --json of the second run")
    ap.add_argument("--reference", default="EfficientGCN-B0", help="peer the ratios are taken against")
    ap.add_argument("--labels", default="before,after")
    ap.add_argument("--out", type=Path, help="folder for compare.md and compare.png")
    args = ap.parse_args(argv)
    before, after = load(args.before), load(args.after)
    labels = tuple(args.labels.split(",", 1))
    for res, path in ((before, args.before), (after, args.after)):
        if args.reference not in res["models"]:
            ap.error(f"--reference {args.reference!r} is not in {path} (models: {', '.join(res['models'])})")
    md = report(before, after, args.reference, labels)
    print(md)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "compare.md").write_text(md + "\n")
        plot(before, after, args.reference, labels, args.out / "compare.png")
        print(f"wrote {args.out / 'compare.md'} and {args.out / 'compare.png'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, "python -m experiments.peers_compare"))
