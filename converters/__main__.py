"""All formats at once: convert a checkpoint to every requested format, score each artifact on a real
evaluation split, and print and save one table (markdown, CSV, JSON and a plot).

    python -m converters --ckpt runs/nw_ucla/last_small/best.pt --formats onnx,int8,trt,tflite,coreml \\
        --data nw_ucla:test

Columns: format, precision, status (ok / exported-not-verifiable-here / failed / missing-backend, with the
reason), file size, top-1, delta top-1 vs PyTorch fp32 (points), max |logit diff| vs PyTorch fp32 on the
split, and batch-1 latency on this CPU (median of interleaved runs, so every row sees the same machine load).
A missing backend is a row with the install hint, never a crash. INT8 needs a calibration set: --calib FILE,
or one is drawn from --calib-data (default: the train split of --data's data set).
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from converters import formats
from converters.calib import load_calibration, load_data_split, make_calibration_file, parse_data_arg
from core.data.splits import stratified_indices
from converters.common import (BackendMissing, ExportResult, InputError, artifact_size, cpu_count, default_out_dir,
                               format_size, setup_logging, write_json)
from converters.formats import FORMATS
from converters.verify import verification_inputs
from core.checkpoint import input_spec, load_model
from core.cli import ArgumentParser, run_cli
from core.evaluation import check_split_matches, evaluate_logits, predict_split
from core.runtime import load_runtime, runtime_kind
from core.markdown import table_head
from core.stats import PairedDifference, paired_difference, verdict
from core.timing import interleaved

log = logging.getLogger("converters")

PROG = "python -m converters"
ALL_FORMATS = tuple(FORMATS)
ACCURACY_TOLERANCE = 1.0  # points: "holds" when the whole 95 % interval of Δ top-1 lies above -1


@dataclass
class Row:
    format: str
    precision: str
    status: str
    path: Path | None = None
    size_bytes: int | None = None
    top1: float | None = None
    delta_top1: float | None = None  # points vs PyTorch fp32
    max_logit_diff: float | None = None
    latency_ms: float | None = None
    paired: PairedDifference | None = None  # vs PyTorch fp32 on the same clips: discordant counts, 95 % interval
    scored_with: str = ""
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_result(cls, r: ExportResult) -> "Row":
        return cls(r.format, r.precision, r.status, r.path, r.size_bytes, message=r.message, extra=dict(r.extra))

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in ("format", "precision", "status", "size_bytes", "top1", "delta_top1",
                                           "max_logit_diff", "latency_ms", "scored_with", "message")}
        d["path"] = str(self.path) if self.path else None
        d["paired"] = self.paired.to_dict() if self.paired else None
        d["verdict"] = verdict(self.paired, ACCURACY_TOLERANCE) if self.paired else None
        return d


# ----------------------------------------------------------------------------------------------------------
# Converting

def run_export(fmt: str, precision: str, ckpt: Path, out_dir: Path, calib: Path | None, batch: int | None,
               **opts: Any) -> ExportResult:
    """One converter call through the format table; every failure becomes a result, never an exception."""
    try:
        return formats.export(fmt, ckpt, out_dir, precision, calib=calib, batch=batch, **opts)
    except BackendMissing as exc:
        return ExportResult(fmt, precision, None, "missing-backend", str(exc))
    except InputError as exc:
        return ExportResult(fmt, precision, None, "failed", f"bad input: {exc}")
    except Exception as exc:  # one broken converter must not take the table down
        log.debug("export %s %s failed", fmt, precision, exc_info=True)
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        return ExportResult(fmt, precision, None, "failed", f"{type(exc).__name__}: {first}")


# ----------------------------------------------------------------------------------------------------------
# Scoring

def scoring_predictor(path: Path, threads: int | None) -> tuple[Callable[[np.ndarray], np.ndarray] | None, str, str]:
    """(predict function, what runs it, why not) for an artifact, through core.runtime (a CoreML package off
    macOS runs in the numpy MIL evaluator, which checks the numbers but says nothing about speed)."""
    # ONNX Runtime's idle threads busy-wait by default, which would slow every other runtime timed beside it
    opts = {"spinning": False} if runtime_kind(path) == "onnxruntime" else {}
    try:
        rt = load_runtime(path, threads=threads, **opts)
        return rt.predict, rt.name, ""
    except BackendMissing as exc:
        return None, "", str(exc)
    except Exception as exc:  # e.g. the MIL evaluator meets an op it does not implement
        return None, "", f"{type(exc).__name__}: {exc}"


def predict_split_fn(predict: Callable[[np.ndarray], np.ndarray], split, spec, desc: str) -> np.ndarray:
    return predict_split(predict, split, spec, batch_size=32, clips=1, progress=True, desc=desc)


def top1(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(evaluate_logits(logits, labels)["top1"])


def interleaved_latency(predictors: dict[str, Callable[[np.ndarray], np.ndarray]], x: np.ndarray, runs: int = 30,
                        warmup: int = 3) -> dict[str, float]:
    """Median batch-1 latency (ms) per predictor, measured round-robin (core.timing.interleaved) so machine-load
    drift hits all alike."""
    stats = interleaved({k: (lambda fn=fn: fn(x)) for k, fn in predictors.items()}, warmup=warmup, runs=runs)
    return {k: s.p50_ms for k, s in stats.items()}


def limit_split(split, limit: int | None, seed: int = 0):
    if not limit or limit >= len(split):
        return split
    return split.subset(stratified_indices(split.labels, limit, seed))


# ----------------------------------------------------------------------------------------------------------
# Reporting

def _fmt(v: Any, spec: str = "") -> str:
    if v is None:
        return "-"
    return format(v, spec) if spec else str(v)


def markdown_table(rows: list[Row], title: str = "") -> str:
    head = ["format", "precision", "status", "size", "top-1 %", "Δ top-1 [95 % CI] (pts)", "fixed / broken",
            f"accuracy (±{ACCURACY_TOLERANCE:g})", "max logit diff", "CPU latency ms", "scored with"]
    lines = ([f"{title}", ""] if title else []) + table_head(head)
    for r in rows:
        p = r.paired
        delta = f"{p.delta:+.2f} [{p.low:+.2f}, {p.high:+.2f}]" if p else _fmt(r.delta_top1, "+.2f")
        cells = [r.format, r.precision, r.status, format_size(r.size_bytes),
                 _fmt(None if r.top1 is None else 100 * r.top1, ".2f"), delta,
                 f"+{p.fixed} / -{p.broken}" if p else "-", verdict(p, ACCURACY_TOLERANCE) if p else "-",
                 _fmt(r.max_logit_diff, ".3g"), _fmt(r.latency_ms, ".2f"), r.scored_with or "-"]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"- **{r.format} {r.precision}** ({r.status}): {r.message.replace(chr(10), ' ')}" for r in rows
             if r.message]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def save_csv(rows: list[Row], path: Path) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0].to_dict()))
        writer.writeheader()
        for r in rows:
            writer.writerow(r.to_dict())
    return path


def save_plot(rows: list[Row], path: Path, title: str = "") -> Path | None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib not installed: no plot (pip install matplotlib)")
        return None
    labels = [f"{r.format}\n{r.precision}" for r in rows]
    colors = {"ok": "tab:green", "exported-not-verifiable-here": "tab:orange", "failed": "tab:red",
              "missing-backend": "tab:gray"}
    fig, axes = plt.subplots(1, 3, figsize=(max(12, 1.4 * len(rows)), 4.5), constrained_layout=True)
    panels = ((axes[0], "top1", "top-1 (%)", 100.0), (axes[1], "latency_ms", "latency (ms, batch 1)", 1.0),
              (axes[2], "size_bytes", "size (KB)", 1 / 1024))
    for ax, key, ylabel, scale in panels:
        vals = [(getattr(r, key) or 0) * scale for r in rows]
        bars = ax.bar(range(len(rows)), vals, color=[colors.get(r.status, "tab:blue") for r in rows])
        for b, r, v in zip(bars, rows, vals):
            ax.text(b.get_x() + b.get_width() / 2, v, "-" if getattr(r, key) is None else f"{v:.1f}",
                    ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels(labels, fontsize=7)
        ax.set_ylabel(ylabel)
    ref = rows[0].top1
    if ref is not None:
        axes[0].axhline(100 * ref, color="k", lw=0.8, ls="--")
        axes[0].set_ylim(max(0, 100 * ref - 25), 100.5)
    fig.suptitle(title or "formats", fontsize=10)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="exit status: 0 table written (rows may still be failed/missing; see the "
                                       "table), 2 bad input (checkpoint, data set, calibration file, arguments)")
    p.add_argument("--list-formats", action="store_true", help="print the format table (Markdown) and exit")
    p.add_argument("--ckpt", type=Path, help="LAST checkpoint (.pt)")
    p.add_argument("--formats", default=",".join(ALL_FORMATS),
                   help=f"comma-separated subset of {','.join(ALL_FORMATS)} (default: all)")
    p.add_argument("--data", default=None, help="evaluation split <dataset>:<split>, e.g. nw_ucla:test "
                                                "(without it, artifacts are converted and verified but not scored)")
    p.add_argument("--calib", type=Path, default=None, help="calibration .npz (python -m converters.calib)")
    p.add_argument("--calib-data", default=None, help="draw the calibration set from this split "
                                                      "(default: <dataset of --data>:train)")
    p.add_argument("--calib-num", type=int, default=500, help="calibration clips to draw (default 500)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default runs/export/<ckpt stem>)")
    p.add_argument("--batch", type=int, default=1, help="fixed batch of the edge artifacts (TRT/TFLite/CoreML; "
                                                         "ONNX models keep a dynamic batch)")
    p.add_argument("--int8-quantizers", default="auto",
                   help="Q/DQ INT8 rows: auto (the better of onnxruntime/ModelOpt), or a list such as ort,modelopt "
                        "for one row each")
    p.add_argument("--trt-precision", choices=("fp32", "fp16", "int8"), default="int8")
    p.add_argument("--tflite-precisions", default=",".join(FORMATS["tflite"].table_precisions))
    p.add_argument("--coreml-precisions", default=",".join(FORMATS["coreml"].table_precisions))
    p.add_argument("--limit", type=int, default=None, help="score on a stratified subset of N clips (quick runs)")
    p.add_argument("--threads", type=int, default=None,
                   help=f"CPU threads per runtime (default: the backend's own, here up to {cpu_count()}); use 1 on a "
                        "busy machine, where multi-threaded PyTorch stalls")
    p.add_argument("--latency-runs", type=int, default=30, help="timed batch-1 runs per format (0: skip)")
    p.add_argument("--quiet", action="store_true")
    return p.parse_args(argv)


def format_rows(formats: list[str], args: argparse.Namespace) -> list[tuple[str, str, dict[str, Any]]]:
    """(format, precision, converter options) per table row."""
    rows: list[tuple[str, str, dict[str, Any]]] = []
    for fmt in formats:
        if fmt == "int8":
            quantizers = [q for q in args.int8_quantizers.split(",") if q]
            rows += [("int8", "int8" if len(quantizers) == 1 else f"int8/{q}", {"quantizer": q}) for q in quantizers]
            continue
        if fmt == "trt":
            precisions: tuple[str, ...] = (args.trt_precision,)
        elif fmt == "tflite":
            precisions = tuple(p for p in args.tflite_precisions.split(",") if p)
        elif fmt == "coreml":
            precisions = tuple(p for p in args.coreml_precisions.split(",") if p)
        else:
            precisions = FORMATS[fmt].table_precisions
        rows += [(fmt, p, {}) for p in precisions]
    return rows


def run(args: argparse.Namespace) -> tuple[list[Row], Path]:
    requested = [f.strip() for f in args.formats.split(",") if f.strip()]
    for fmt in requested:
        try:
            formats.get_format(fmt)
        except InputError as exc:
            raise InputError(f"--formats: {exc}") from None
    model, ckpt = load_model(args.ckpt)
    spec = input_spec(ckpt)
    out_dir = args.out or default_out_dir(args.ckpt)
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = format_rows(requested, args)

    split = None
    if args.data:
        split = limit_split(load_data_split(args.data, layout=ckpt["layout"]), args.limit)
        try:
            check_split_matches(split, ckpt["layout"], ckpt["class_names"], f"--data {args.data}", str(args.ckpt))
        except ValueError as exc:
            raise InputError(str(exc)) from None
    calib = args.calib
    if calib is None and any(FORMATS[fmt].needs_calibration(precision.split("/")[0]) for fmt, precision, _ in plan):
        source = args.calib_data or (f"{parse_data_arg(args.data)[0]}:train" if args.data else None)
        if source is None:
            raise InputError("INT8 rows need a calibration set: pass --calib FILE, --calib-data <dataset>:train "
                             "or --data")
        calib = make_calibration_file(args.ckpt, source, args.calib_num,
                                      out_dir / f"calib_{source.replace(':', '_')}_{args.calib_num}.npz")
    elif calib is not None:
        load_calibration(calib, ckpt)  # a bad file fails now, with its name, not in the middle of the table

    rows = [Row("pytorch", "fp32", "ok", Path(args.ckpt), artifact_size(args.ckpt), message="reference")]
    fp32_onnx: Path | None = None
    for fmt, label, row_opts in plan:
        log.info("== %s %s", fmt, label)
        precision = label.split("/")[0]
        opts: dict[str, Any] = dict(row_opts)
        batch: int | None = args.batch
        if fmt == "trt" and precision == "int8":
            opts["quantizer"] = args.int8_quantizers.split(",")[0]
        if FORMATS[fmt].dynamic_batch:
            batch = None  # ONNX models keep a dynamic batch
            if fmt == "int8" and fp32_onnx is not None:
                opts["fp32_onnx"] = fp32_onnx
        result = run_export(fmt, precision, args.ckpt, out_dir, calib, batch, **opts)
        if fmt == "onnx" and result.status == "ok":
            fp32_onnx = result.path
        result.precision = label
        rows.append(Row.from_result(result))
        log.info("%s", result.summary())

    predictors: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    ref_logits = None
    for i, row in enumerate(rows):
        if row.path is None or not row.path.exists():
            continue
        predict, runner, why = scoring_predictor(row.path, args.threads)
        if predict is None:
            if row.status == "ok":
                row.status = "exported-not-verifiable-here"
            row.message = f"{row.message}; not scored: {why}" if row.message else f"not scored: {why}"
            continue
        row.scored_with = runner
        if split is not None:
            try:
                logits = predict_split_fn(predict, split, spec, f"{row.format} {row.precision}")
            except Exception as exc:
                if runner != "numpy MIL evaluator":  # the real runtime failing is a failure; our evaluator is not
                    row.status = "failed"
                row.message += f"; not scored: {type(exc).__name__}: {str(exc)[:300]}"
                continue
            row.top1 = top1(logits, split.labels)
            if i == 0:
                ref_logits = logits
            if ref_logits is not None:
                row.delta_top1 = 100 * (row.top1 - rows[0].top1)
                row.max_logit_diff = float(np.abs(logits - ref_logits).max())
                if i > 0:
                    row.paired = paired_difference(split.labels, ref_logits, logits)
        if runner != "numpy MIL evaluator":  # its speed says nothing about CoreML's
            predictors[str(i)] = predict

    if args.latency_runs > 0 and predictors:
        x1 = verification_inputs(ckpt, calib, count=1)[0][:1]
        log.info("latency: %d interleaved batch-1 runs of %d runtimes (fresh process)", args.latency_runs,
                 len(predictors))
        paths = {key: str(rows[int(key)].path) for key in predictors}
        for key, ms in latency_in_fresh_process(paths, x1, out_dir, args.latency_runs, args.threads).items():
            rows[int(key)].latency_ms = ms
    return rows, out_dir


LATENCY_SCRIPT = """
import json, sys
import numpy as np
from core.runtime import load_runtime, runtime_kind
from converters.__main__ import interleaved_latency
a = json.loads(sys.argv[1])
x = np.load(a["x"])
runtimes = {k: load_runtime(p, threads=a["threads"], **({"spinning": False} if runtime_kind(p) == "onnxruntime" else {}))
            for k, p in a["paths"].items()}
print(json.dumps(interleaved_latency({k: rt.predict for k, rt in runtimes.items()}, x, a["runs"])))
"""


def latency_in_fresh_process(paths: dict[str, str], x: np.ndarray, work_dir: Path, runs: int,
                             threads: int | None) -> dict[str, float]:
    """Interleaved latency measured in a new interpreter that loads only the runtimes (the converters leave
    the scoring process with JAX, coremltools and litert-torch and their thread pools loaded).

    Use --threads 1 on a shared machine: with 2 threads on 2 busy cores, PyTorch's OpenMP barriers stall
    (measured here: last_small 628 ms per clip with 2 threads vs 5.5 ms with 1, while a training job ran)."""
    x_file = work_dir / ".latency_input.npy"
    np.save(x_file, x)
    try:
        done = subprocess.run([sys.executable, "-c", LATENCY_SCRIPT, json.dumps(
            {"paths": paths, "x": str(x_file), "runs": runs, "threads": threads})], capture_output=True, text=True)
    finally:
        x_file.unlink(missing_ok=True)
    if done.returncode != 0:
        log.warning("latency measurement failed: %s", (done.stderr or "").strip().splitlines()[-1:])
        return {}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list_formats:
        print(formats.markdown_table(), end="")
        return 0
    if args.ckpt is None:
        raise InputError("--ckpt is required (a LAST checkpoint .pt)")
    setup_logging(args.quiet)
    rows, out_dir = run(args)
    title = (f"{Path(args.ckpt).name} on {args.data or 'no evaluation split'}"
             + (f" (stratified {args.limit} clips)" if args.limit else "") + f", {cpu_count()}-core CPU")
    table = markdown_table(rows, f"### {title}")
    stem = out_dir / "formats_table"
    stem.with_suffix(".md").write_text(table + f"\ncommand: `python -m converters {' '.join(argv or sys.argv[1:])}`\n")
    save_csv(rows, stem.with_suffix(".csv"))
    write_json(stem.with_suffix(".json"), {"title": title, "rows": [r.to_dict() for r in rows],
                                           "extra": {f"{r.format}_{r.precision}": r.extra for r in rows}})
    plot = save_plot(rows, stem.with_suffix(".png"), title)
    print(table)
    print(f"saved {stem.with_suffix('.md')}, .csv, .json" + (f", {plot}" if plot else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    """The command line: exit status 0 ok, 1 failed, 2 bad input, 3 backend missing (core.cli)."""
    return run_cli(_main, PROG, argv)


if __name__ == "__main__":
    sys.exit(main())
