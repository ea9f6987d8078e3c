"""The report a person reads: Markdown tables (measured rows, end to end, estimates kept apart) and three plots
(latency vs accuracy per variant and format, latency distribution, budget bars), plus the JSON result and the rows
as CSV. A run without a device profile (this machine, every format) has no budget, verdict or budget plot."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from benchmarks.edge import markdown as edge_markdown
from benchmarks.verdict import Verdict
from core.markdown import table_head
from core.plots import pyplot, save_figure
from devices import profile_from_dict

MEASURED_COLUMNS = ("model", "format", "precision", "status", "size", "load ms", "first ms", "p50 ms", "**p90 ms**",
                    "p99 ms", "mean ± std ms", "clips/s @batch", "RSS MB (model)", "top-1 %",
                    "Δ top-1 [95 % CI] (pts)", "fixed / broken", "accuracy", "max logit diff")


def _f(v: Any, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def size_text(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1024:.1f} KB" if n < 2**20 else f"{n / 2**20:.2f} MB"


def verdict_text(v: dict | None) -> str:
    if not v or v.get("classifier_ms") is None:
        return "-"
    return Verdict(**v).short()


def accuracy_cells(r: dict) -> list[str]:
    """Δ top-1 with its paired 95 % interval, the clips it fixed / broke against PyTorch fp32, and the verdict."""
    p = r.get("paired")
    if not p:
        return [_f(r.get("delta_top1"), "+.2f"), "-", "-"]
    return [f"{p['delta']:+.2f} [{p['low']:+.2f}, {p['high']:+.2f}]", f"+{p['fixed']} / -{p['broken']}",
            r.get("accuracy") or "-"]


def measured_table(rows: list[dict], with_verdict: bool = True) -> str:
    lines = table_head(MEASURED_COLUMNS + (("verdict",) if with_verdict else ()))
    for r in rows:
        lat = r.get("latency") or {}
        thr = (f"{r['throughput_per_s']:.0f} @{r['throughput_batch']}" if r.get("throughput_per_s") else "-")
        cells = [r["model"], r["format"], r["precision"], r["status"], size_text(r.get("size_bytes")),
                 _f(r.get("load_ms"), ".0f"),
                 _f(r.get("first_ms"), ".1f"), _f(lat.get("p50_ms")), f"**{_f(lat.get('p90_ms'))}**" if lat else "-",
                 _f(lat.get("p99_ms")), f"{lat['mean_ms']:.2f} ± {lat['std_ms']:.2f}" if lat else "-", thr,
                 (f"{r['peak_rss_mb']:.0f} (+{r['ram_mb']:.0f})" if r.get("peak_rss_mb") else "-"),
                 _f(None if r.get("top1") is None else 100 * r["top1"]), *accuracy_cells(r),
                 _f(r.get("max_logit_diff"), ".3g")]
        if with_verdict:
            cells.append(verdict_text(r.get("verdict")))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


CSV_COLUMNS = ("model", "variant", "format", "precision", "status", "size_bytes", "params", "gflops", "runtime",
               "load_ms", "first_ms", "p50_ms", "p90_ms", "p99_ms", "throughput_per_s", "throughput_batch",
               "peak_rss_mb", "top1", "clips", "delta_top1", "delta_low", "delta_high", "fixed", "broken", "accuracy",
               "max_logit_diff", "verdict", "path", "message")


def save_csv(rows: list[dict], path: Path) -> Path:
    """One line per row: the scalars, the latency percentiles and the paired difference flattened."""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            lat, p = r.get("latency") or {}, r.get("paired") or {}
            writer.writerow({**r, **{k: lat.get(k) for k in ("p50_ms", "p90_ms", "p99_ms")},
                             "delta_low": p.get("low"), "delta_high": p.get("high"), "fixed": p.get("fixed"),
                             "broken": p.get("broken"), "verdict": (r.get("verdict") or {}).get("status")})
    return path


def notes(rows: list[dict]) -> str:
    out = []
    for r in rows:
        if r["status"] != "ok" or r.get("commands"):
            msg = " ".join((r.get("message") or "").split())[:400]
            out.append(f"- **{r['model']} {r['format']} {r['precision']}** ({r['status']}): {msg}")
            out += [f"  - finish on the device: `{c}`" for c in r.get("commands", [])[:1]]
        if r.get("native"):
            n = r["native"]
            nums = ", ".join(f"{k[:-3]} {v:.3f} ms" for k, v in n.items() if k.endswith("_ms"))
            out.append(f"- **{r['model']} {r['format']} {r['precision']}**, measured by `{n['tool']}`: {nums}")
    return "\n".join(out)


def checkpoint_table(cks: list[dict]) -> str:
    if not cks:
        return ""
    head = ["model", "variant", "streams", "params", "GFLOPs", "top-1 % best epoch (epoch)",
            "top-1 % last epoch (epoch)"]
    lines = table_head(head)
    for c in cks:
        streams = "+".join(c["streams"]) if isinstance(c.get("streams"), list) else (c.get("streams") or "-")
        lines.append(f"| {c['model']} | {c['variant']} | {streams} | {c['params']:,} | {c['gflops']:.3f} | "
                     f"{_top1_at(c.get('train_top1_best'), c.get('epoch_best'))} | "
                     f"{_top1_at(c.get('train_top1_last'), c.get('epoch_last'))} |")
    return "\n".join(lines)


def _top1_at(top1: float | None, epoch: int | None) -> str:
    return "-" if top1 is None else f"{100 * top1:.2f}" + (f" ({epoch})" if epoch is not None else "")


def _p50_p90(stats: dict | None) -> str:
    return f"{stats['p50_ms']:.2f} / {stats['p90_ms']:.2f}" if stats else "-"


def e2e_table(e2e: list[dict]) -> str:
    """The edge loop on each video (benchmarks.edge's table: per-frame busy time and latency, drops, FPS)."""
    if not e2e:
        return ""
    return edge_markdown([{**r, "model": f"{r['model']} {r['format']} {r['precision']}"} for r in e2e])


def estimate_table(est: list[dict]) -> str:
    if not est:
        return ""
    head = ["device (estimate)", "runtime", "model", "precision", "estimated ms", "bound", "pose ms (profile)",
            "classifier budget ms", "verdict (estimate)", "constants"]
    lines = table_head(head)
    for e in est:
        v = e["verdict"]
        lines.append(f"| {e['profile']} | {e['runtime']} | {e['model']} | {e['precision']} | "
                     f"~{e['estimate']['latency_ms']:.2f} | {e['estimate']['bound']} | {v['pose_ms']:g} | "
                     f"{v['classifier_budget_ms']:.1f} | {verdict_text(v)} | "
                     f"{'calibrated' if str(e['calibrated']).startswith('yes') else 'default guesses'} |")
    return "\n".join(lines)


def budget_section(result: dict[str, Any]) -> list[str]:
    b = result["profile"]["budgets"]
    pose = result["pose"]
    pose_used = pose["measured_p90_ms"] if pose["measured_p90_ms"] is not None else pose["profile_ms"]
    units = result["profile"].get("units") or {}
    parallel = profile_from_dict(result["profile"]).parallel_units
    return ["## Budget", "",
            f"Frame {b['frame_ms']:g} ms; pose estimator "
            + (f"**{pose_used:.1f} ms p90 measured here** "
               f"(profile: {pose['profile_ms']:g} ms, {pose['profile_source']})"
               if pose["measured_p90_ms"] is not None else f"{pose_used:g} ms ({pose['profile_source']})")
            + (f"; pose and classifier run side by side (units: pose {units.get('pose', 'cpu')}, classifier "
               f"{units.get('classifier', '-')}), so each frame costs max(pose, classifier) "
               f"≤ **{b['frame_ms']:g} ms**"
               if parallel else f"; pose and classifier share one unit, so each frame costs pose + classifier: "
               f"classifier budget = {b['frame_ms']:g} − {pose_used:.1f} = **{b['frame_ms'] - pose_used:.1f} ms**")
            + f"; model ≤ {b['model_size_mb']:g} MB; RAM ≤ {b['ram_mb']:g} MB. Verdicts use p90s, and a measured "
            "pipelined loop's per-frame p90 where one ran (benchmarks.verdict).", ""]


def markdown(result: dict[str, Any], plots: dict[str, Path]) -> str:
    p = result["profile"]
    v = result["versions"]
    versions = ", ".join(f"{k} {val}" for k, val in v.items() if val)
    title = (f"# Benchmark on `{result['profile_name']}`: {p['description']}" if p else
             "# Every format on this machine (no device profile: no budget, no verdict)")
    tolerance = result.get("accuracy_tolerance", 1.0)
    lines = [title, "",
             f"`{result['command']}`", "",
             f"{result['created']}, preset `{result['preset']}`, {result['threads']} thread(s), "
             f"{result['machine']['cores']}-core {result['machine']['cpu']} ({result['machine']['machine']}); "
             f"{versions}.", "",
             *(budget_section(result) if p else []),
             "## Checkpoints", "", "Top-1 as recorded by training on the evaluation split (best.pt and last.pt); the "
             "tables below re-score every artifact.", "", checkpoint_table(result.get("checkpoints", [])), "",
             "## Artifacts, and measurements on this machine", "",
             f"Accuracy: each row against PyTorch fp32 on the same {result.get('data') or '-'} clips (paired): "
             f"Δ top-1 with its 95 % interval, the clips it fixed / broke, and `holds` (the whole interval above "
             f"-{tolerance:g} point), `loses` (below it) or `inconclusive` (more clips would decide).", "",
             *([] if not p or any(r.get("latency") for r in result["rows"]) else
               ["Nothing of this profile runs on this machine: the rows say what was built and checked; run the "
                "same command on the device to measure it. Its estimate is below.", ""]),
             measured_table(result["rows"], with_verdict=bool(p)), ""]
    n = notes(result["rows"])
    if n:
        lines += [n, ""]
    if result.get("e2e"):
        lines += ["## End to end: the edge loop on a real video", "", e2e_table(result["e2e"]), ""]
    if result.get("estimates"):
        lines += ["## Other devices: estimates, not measurements", "",
                  "From FLOPs and bytes against each profile's peak compute and bandwidth (`benchmarks.estimate`); "
                  "constants are per-profile guesses until `python -m benchmarks.calibrate` fits them from a run on "
                  "the device.", "", estimate_table(result["estimates"]), ""]
    if plots:
        lines += ["## Plots", ""] + [f"![{k}]({path.name})" for k, path in plots.items()] + [""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------


def plot_latency_vs_accuracy(rows: list[dict], path: Path) -> Path | None:
    pts = [r for r in rows if r.get("latency") and r.get("top1") is not None]
    if not pts:
        return None
    plt = pyplot()
    markers = {"pytorch": "o", "onnx": "s", "int8": "D", "tflite": "^", "coreml": "v", "trt": "P"}
    by_precision = {("tflite", "fp16"): "<", ("tflite", "int8"): "*", ("trt", "int8"): "X", ("trt", "fp32"): "p"}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    variants = sorted({r["model"] for r in pts})
    colors = {v: plt.cm.tab10(i % 10) for i, v in enumerate(variants)}
    shapes: dict[str, str] = {}
    for r in pts:
        shape = by_precision.get((r["format"], r["precision"]), markers.get(r["format"], "o"))
        shapes.setdefault(f"{r['format']} {r['precision']}", shape)
        ax.scatter(r["latency"]["p90_ms"], 100 * r["top1"], marker=shape, color=colors[r["model"]],
                   s=70 if shape == "*" else 45, edgecolor="k", linewidth=0.4)
    for label, shape in shapes.items():  # the legend: shapes in grey for formats, colours for variants
        ax.scatter([], [], marker=shape, color="0.6", edgecolor="k", linewidth=0.4, label=label)
    for v in variants:
        ax.scatter([], [], color=colors[v], label=v)
    ax.set_xlabel("batch-1 latency p90 (ms)")
    ax.set_ylabel("top-1 (%)")
    ax.set_title("latency vs accuracy per variant and format")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    return save_figure(fig, path, dpi=120)


def plot_distribution(rows: list[dict], path: Path) -> Path | None:
    pts = [r for r in rows if r.get("latency") and r["latency"].get("samples_ms")]
    if not pts:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(pts) + 2), 4.5))
    ax.boxplot([r["latency"]["samples_ms"] for r in pts], whis=(1, 99), showfliers=False)
    ax.set_xticks(range(1, len(pts) + 1))
    ax.set_xticklabels([f"{r['model']}\n{r['format']} {r['precision']}" for r in pts], fontsize=6, rotation=60,
                       ha="right")
    ax.set_ylabel("batch-1 latency (ms); whiskers p1-p99")
    ax.set_title("latency distribution (interleaved runs)")
    ax.grid(alpha=0.3, axis="y")
    return save_figure(fig, path, dpi=120)


def plot_budget(result: dict[str, Any], path: Path) -> Path | None:
    """Classifier latency per row against what the frame leaves it after pose (its budget)."""
    measured = [r for r in result["rows"] if r.get("latency")]
    est = result.get("estimates") or []
    if not measured and not est:
        return None
    plt = pyplot()
    bars = [(f"{r['model']} {r['format']} {r['precision']}", r["latency"]["p90_ms"],
             r["verdict"]["classifier_budget_ms"], False) for r in measured]
    bars += [(f"{e['profile']}: {e['model']} {e['precision']}", e["estimate"]["latency_ms"],
              e["verdict"]["classifier_budget_ms"], True) for e in est]
    fig, ax = plt.subplots(figsize=(8, max(3, 0.3 * len(bars) + 1.5)))
    top = max(max(b[1] for b in bars), max(b[2] for b in bars), 1.0) * 1.15
    for i, (label, cls, budget, is_est) in enumerate(bars):
        ax.barh(i, cls, color="tab:orange" if is_est else "tab:blue", hatch="//" if is_est else None)
        if budget > 0:
            ax.plot([budget, budget], [i - 0.4, i + 0.4], color="k", lw=2)
        else:
            ax.text(top * 0.98, i, "pose alone exceeds the frame", ha="right", va="center", fontsize=6, color="tab:red")
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    handles = [Patch(color="tab:blue", label="classifier p90, measured here"),
               Patch(facecolor="tab:orange", hatch="//", label="classifier, estimate"),
               Line2D([], [], color="k", lw=2, label="budget: frame (pose in parallel) or frame - pose")]
    ax.set_xlim(0, top)
    ax.set_yticks(range(len(bars)))
    ax.set_yticklabels([b[0] for b in bars], fontsize=6)
    ax.invert_yaxis()
    ax.set_xlabel("ms per classification")
    ax.set_title("classifier vs its budget per frame")
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return save_figure(fig, path, dpi=120)


def write_report(result: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    plots: dict[str, Path] = {}
    try:
        for name, fn in (("latency vs accuracy", lambda p: plot_latency_vs_accuracy(result["rows"], p)),
                         ("latency distribution", lambda p: plot_distribution(result["rows"], p)),
                         ("budget", lambda p: plot_budget(result, p) if result["profile"] else None)):
            made = fn(out_dir / (name.replace(" ", "_") + ".png"))
            if made:
                plots[name] = made
    except ImportError:  # matplotlib missing: tables only
        pass
    json_path = out_dir / "result.json"
    json_path.write_text(json.dumps(result, indent=1, default=str))
    csv_path = save_csv(result["rows"], out_dir / "result.csv")
    md = out_dir / "report.md"
    md.write_text(markdown(result, plots))
    return {"markdown": md, "json": json_path, "csv": csv_path, **{k: v for k, v in plots.items()}}


def write_results(out: Path, stem: str, result: dict[str, Any], table: str, also: list[Path | None] = ()) -> None:
    """<out>/<stem>.json (the data) and <stem>.md (the table); prints what was written (with `also`: plots)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1))
    (out / f"{stem}.md").write_text(table if table.endswith("\n") else table + "\n")
    extra = "".join(f", {p}" for p in also if p is not None)
    print(f"wrote {out / f'{stem}.json'}, {out / f'{stem}.md'}{extra}")
