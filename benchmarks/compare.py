"""Merge benchmark runs from several devices into one table (and one plot).

    python -m benchmarks.compare runs/bench/x86_cpu/result.json jetson/result.json pi5/result.json --out runs/bench/all

One row per device x checkpoint x format x precision that was measured (estimates of each run are listed apart,
labelled, and only for devices that no run measured).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.report import size_text, verdict_text
from core.cli import ArgumentParser, BadInput, run_cli
from core.markdown import table_head

PROG = "python -m benchmarks.compare"


def load_results(paths: list[Path]) -> list[dict[str, Any]]:
    results = []
    for path in paths:
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise BadInput(f"{path}: no such file")
        except json.JSONDecodeError as exc:
            raise BadInput(f"{path}: not JSON (line {exc.lineno}: {exc.msg})")
        if data.get("tool") != "benchmarks.run" or "rows" not in data:
            raise BadInput(f"{path}: not a benchmarks.run result (no 'tool: benchmarks.run' / 'rows')")
        data["_file"] = str(path)
        results.append(data)
    return results


def merged_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for res in results:
        for r in res["rows"]:
            lat = r.get("latency") or {}
            rows.append({"device": res["profile_name"] or "host", "machine": res["machine"]["cpu"],
                         "variant": r.get("model", r["variant"]),
                         "format": r["format"], "precision": r["precision"], "status": r["status"],
                         "size": size_text(r.get("size_bytes")), "p50_ms": lat.get("p50_ms"),
                         "p90_ms": lat.get("p90_ms"), "top1": r.get("top1"), "verdict": verdict_text(r.get("verdict")),
                         "kind": "measured", "run": res["_file"]})
    measured_devices = {res["profile_name"] for res in results}
    seen = set()
    for res in results:
        for e in res.get("estimates", []):
            key = (e["profile"], e["variant"], e["ckpt"])
            if e["profile"] in measured_devices or key in seen:
                continue
            seen.add(key)
            rows.append({"device": e["profile"], "machine": "-", "variant": e.get("model", e["variant"]),
                         "format": e["runtime"],
                         "precision": e["precision"], "status": "estimate", "size": "-", "p50_ms": None,
                         "p90_ms": e["estimate"]["latency_ms"], "top1": None, "verdict": verdict_text(e["verdict"]),
                         "kind": "estimate", "run": res["_file"]})
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    def f(v, spec=".2f"):
        return "-" if v is None else format(v, spec)
    head = ["device", "model", "format", "precision", "status", "size", "p50 ms", "p90 ms", "top-1 %", "verdict"]
    lines = table_head(head)
    for kind in ("measured", "estimate"):
        for r in (r for r in rows if r["kind"] == kind):
            p90 = f(r["p90_ms"]) if kind == "measured" or r["p90_ms"] is None else f"~{r['p90_ms']:.2f} (estimate)"
            lines.append(f"| {r['device']} | {r['variant']} | {r['format']} | {r['precision']} | {r['status']} | "
                         f"{r['size']} | {f(r['p50_ms'])} | {p90} | "
                         f"{f(None if r['top1'] is None else 100 * r['top1'])} | {r['verdict']} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], path: Path) -> Path | None:
    pts = [r for r in rows if r["p90_ms"] is not None]
    if not pts:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, max(3, 0.25 * len(pts) + 1.5)))
    for i, r in enumerate(pts):
        est = r["kind"] == "estimate"
        ax.barh(i, r["p90_ms"], color="tab:orange" if est else "tab:blue", hatch="//" if est else None)
    ax.set_yticks(range(len(pts)))
    ax.set_yticklabels([f"{r['device']}: {r['variant']} {r['format']} {r['precision']}" for r in pts], fontsize=6)
    ax.invert_yaxis()
    ax.set_xlabel("classifier p90 ms (blue measured, hatched orange estimate)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("results", nargs="+", type=Path, help="result.json files of python -m benchmarks.run")
    p.add_argument("--out", type=Path, default=Path("runs/bench/compare"), help="output folder")
    args = p.parse_args(argv)
    results = load_results(args.results)
    rows = merged_rows(results)
    table = markdown(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compare.md").write_text(table)
    (args.out / "compare.json").write_text(json.dumps(rows, indent=1))
    made = plot(rows, args.out / "compare.png")
    print(table)
    print(f"wrote {args.out / 'compare.md'}, compare.json" + (f", {made}" if made else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, PROG, argv)


if __name__ == "__main__":
    sys.exit(main())
