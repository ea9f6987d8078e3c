"""Merge benchmark runs from several devices into one table (and one plot).

    python -m benchmarks.compare runs/bench/x86_cpu/result.json jetson/result.json pi5/result.json --out runs/bench/all

One row per device x checkpoint x format x precision that was measured (estimates of each run are listed apart,
labelled, and only for devices that no run measured: a device whose run timed nothing, e.g. a jetson_nano profile
run on an x86 machine, keeps its rows and its estimate). Below the table, one budget line per device: frame, the
pose estimator's time at the input resolution (`--resolution WxH`; benchmarks.pose_budget: measured at that
resolution, else the profile's figure for it, else the profile's single figure, each labelled) and what is left for
the classifier; with --resolution the verdicts are judged against that budget.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.pose_budget import parse_resolution, pose_ms_at, resolution_text
from benchmarks.report import size_text, verdict_text
from benchmarks.verdict import judge
from core.cli import ArgumentParser, BadInput, run_cli
from core.markdown import table_head
from core.plots import pyplot, save_figure
from devices import load_profile

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


def _rejudge(verdict: dict | None, budgets: dict[str, Any], pose_ms: float, size_mb: float | None,
             ram_mb: float | None, kind: str) -> dict | None:
    """The run's verdict judged again against `pose_ms` (the pose time at the chosen input resolution)."""
    if not verdict or verdict.get("classifier_ms") is None:
        return verdict
    explicit = budgets.get("classifier_ms")
    return judge(verdict["classifier_ms"], float(budgets["frame_ms"]), pose_ms, size_mb,
                 float(budgets["model_size_mb"]), ram_mb, float(budgets["ram_mb"]),
                 None if explicit is None else float(explicit), kind).to_dict()


def budget_lines(results: list[dict[str, Any]], resolution: tuple[int, int] | None) -> list[dict[str, Any]]:
    """One line per device (every result's own device, then the devices only estimated): frame, pose at the
    resolution and its source, what is left for the classifier."""
    out, seen = [], set()
    for res in results:
        own = [(res["profile_name"], res["profile"]["budgets"], res)] if res.get("profile") else []
        for name, budgets, result in own + [(e["profile"], None, None) for e in res.get("estimates", [])]:
            if name in seen:
                continue
            if result is None:  # an estimated device: its profile's figures
                profile = load_profile(name)
                result = {"profile": {"budgets": profile.budgets}}
                budgets = profile.budgets
            seen.add(name)
            pose, source = pose_ms_at(result, resolution)
            frame = float(budgets["frame_ms"])
            out.append({"device": name, "frame_ms": frame, "pose_ms": pose, "pose_source": source,
                        "classifier_budget_ms": float(budgets.get("classifier_ms") or frame - pose)})
    return out


def merged_rows(results: list[dict[str, Any]], resolution: tuple[int, int] | None = None) -> list[dict[str, Any]]:
    rows = []
    for res in results:
        pose = pose_ms_at(res, resolution)[0] if resolution is not None and res.get("profile") else None
        for r in res["rows"]:
            lat = r.get("latency") or {}
            verdict = r.get("verdict")
            if pose is not None and res.get("profile"):
                size_mb = r["size_bytes"] / 2**20 if r.get("size_bytes") else None
                verdict = _rejudge(verdict, res["profile"]["budgets"], pose, size_mb, r.get("ram_mb"), "measured")
            rows.append({"device": res["profile_name"] or "host", "machine": res["machine"]["cpu"],
                         "variant": r.get("model", r["variant"]),
                         "format": r["format"], "precision": r["precision"], "status": r["status"],
                         "size": size_text(r.get("size_bytes")), "p50_ms": lat.get("p50_ms"),
                         "p90_ms": lat.get("p90_ms"), "top1": r.get("top1"), "verdict": verdict_text(verdict),
                         "kind": "measured", "run": res["_file"]})
    # a device counts as measured only where some row was timed: a profile run on another machine (nothing
    # runnable there) keeps its estimate
    measured_devices = {res["profile_name"] for res in results if any(r.get("latency") for r in res["rows"])}
    seen = set()
    for res in results:
        for e in res.get("estimates", []):
            key = (e["profile"], e["variant"], e["ckpt"])
            if e["profile"] in measured_devices or key in seen:
                continue
            seen.add(key)
            verdict = e["verdict"]
            if resolution is not None:
                budgets = load_profile(e["profile"]).budgets
                pose = pose_ms_at({"profile": {"budgets": budgets}}, resolution)[0]
                verdict = _rejudge(verdict, budgets, pose, e.get("size_mb"), None, "estimate")
            rows.append({"device": e["profile"], "machine": "-", "variant": e.get("model", e["variant"]),
                         "format": e["runtime"],
                         "precision": e["precision"], "status": "estimate", "size": "-", "p50_ms": None,
                         "p90_ms": e["estimate"]["latency_ms"], "top1": None, "verdict": verdict_text(verdict),
                         "kind": "estimate", "run": res["_file"]})
    return rows


def budget_markdown(lines: list[dict[str, Any]], resolution: tuple[int, int] | None) -> str:
    where = f"at {resolution_text(resolution)}" if resolution else "(each run's own)"
    out = table_head(["device", "frame ms", f"pose ms {where}", "pose time from", "left for the classifier ms"])
    for b in lines:
        out.append(f"| {b['device']} | {b['frame_ms']:.1f} | {b['pose_ms']:.1f} | {b['pose_source']} | "
                   f"{b['classifier_budget_ms']:.1f}{' (pose alone misses the frame)' if b['classifier_budget_ms'] <= 0 else ''} |")
    return "\n".join(out) + "\n"


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
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, max(3, 0.25 * len(pts) + 1.5)))
    for i, r in enumerate(pts):
        est = r["kind"] == "estimate"
        ax.barh(i, r["p90_ms"], color="tab:orange" if est else "tab:blue", hatch="//" if est else None)
    ax.set_yticks(range(len(pts)))
    ax.set_yticklabels([f"{r['device']}: {r['variant']} {r['format']} {r['precision']}" for r in pts], fontsize=6)
    ax.invert_yaxis()
    ax.set_xlabel("classifier p90 ms (blue measured, hatched orange estimate)")
    return save_figure(fig, path, dpi=120)


def _main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("results", nargs="+", type=Path, help="result.json files of python -m benchmarks.run")
    p.add_argument("--out", type=Path, default=Path("runs/bench/compare"), help="output folder")
    p.add_argument("--resolution", help="the camera's frame size WxH (e.g. 1920x1080): budgets and verdicts use "
                                        "the pose time at it (default: each run's own pose figure)")
    args = p.parse_args(argv)
    resolution = parse_resolution(args.resolution) if args.resolution else None
    results = load_results(args.results)
    rows = merged_rows(results, resolution)
    budgets = budget_lines(results, resolution)
    table = markdown(rows) + "\n" + budget_markdown(budgets, resolution)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compare.md").write_text(table)
    (args.out / "compare.json").write_text(json.dumps({"rows": rows, "budgets": budgets, "resolution":
                                                       args.resolution}, indent=1))
    made = plot(rows, args.out / "compare.png")
    print(table)
    print(f"wrote {args.out / 'compare.md'}, compare.json" + (f", {made}" if made else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, PROG, argv)


if __name__ == "__main__":
    sys.exit(main())
