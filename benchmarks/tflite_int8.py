"""Full-integer vs convolutions-only INT8 LiteRT files, per checkpoint: integer-op share, size, Δ top-1 against
PyTorch fp32 with its 95 % interval on the validation and the test split, and CPU latency in the LiteRT
interpreter (1 thread, batch 1, the two files timed interleaved).

    python -m benchmarks.tflite_int8 --ckpt runs/nw_ucla/last_small_jvb/best.pt runs/nw_ucla/last_nano_jvb/best.pt \\
        --out docs/results/tflite_full_int8.json

For every checkpoint: a 500-clip calibration set from nw_ucla:train (converters.calib), then
`converters.tflite --precision int8` with --int8-method aeq-compute and full; the full file's range rule is
chosen on the validation clips (the checkpoint's own validation split, never the test split), both files are then
scored on nw_ucla:val and nw_ucla:test (core.stats.paired_difference: fixed / broken clips, exact interval).
Results are written after every checkpoint, so an interrupted run keeps what it measured. With --reuse DIR, a
file already exported from the same checkpoint under DIR (its sidecar names the method and the checkpoint's
metrics) is scored and timed instead of exported again; the row records where it came from and how it was
calibrated.
"""
from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from converters import tflite
from converters.calib import build_calibration, load_data_split, save_calibration
from converters.common import load_export_model
from converters.verify import score_on_split
from core.artifact import read_artifact_metadata
from core.checkpoint import load_checkpoint
from core.cli import ArgumentParser, BadInput, run_cli
from core.markdown import table_head
from core.timing import interleaved
from core.runtime import load_runtime

PROG = "python -m benchmarks.tflite_int8"
METHODS = ("aeq-compute", "full")
SPLITS = ("nw_ucla:val", "nw_ucla:test")


def find_export(ck: dict[str, Any], name: str, method: str, folders: list[Path]) -> Path | None:
    """A LiteRT INT8 file under folders/<checkpoint name>/ exported with `method` from this very checkpoint (the
    sidecar's metrics equal the checkpoint's: epoch, top-1 and loss to the last bit)."""
    for folder in folders:
        for path in sorted((folder / name).rglob("*.tflite")):
            meta = read_artifact_metadata(path)
            if (meta.get("precision") == "int8" and meta.get("int8_method") == method
                    and meta.get("metrics") == dict(ck.get("metrics", {}))):
                return path
    return None


def describe_file(path: Path) -> dict[str, Any]:
    """A file's row fields: its op census from the interpreter, calibration and range rule from its sidecar."""
    meta = read_artifact_metadata(path)
    info = tflite.describe(path)
    return {"path": str(path), "size_bytes": path.stat().st_size, "calibration": meta.get("calibration"),
            **{k: info[k] for k in ("integer_ops", "compute_ops", "float_op_types", "input_dtype", "output_dtype")},
            "range_rule": meta.get("range_rule"), "range_candidates": meta.get("range_candidates")}


def measure_checkpoint(ckpt: Path, work: Path, calib_num: int, rounds: int,
                       reuse: list[Path] | None = None) -> dict[str, Any]:
    ck = load_checkpoint(ckpt)
    name = ckpt.parent.name
    work.mkdir(parents=True, exist_ok=True)
    calib = work / f"{name}_nw_ucla_train_{calib_num}.npz"
    found = {m: find_export(ck, name, m, reuse or []) for m in METHODS}
    if not calib.exists() and not all(found.values()):
        save_calibration(calib, build_calibration(ck, load_data_split("nw_ucla:train", ck["layout"]), calib_num))
    row: dict[str, Any] = {"checkpoint": name, "variant": ck["model"]["variant"],
                           "streams": list(ck["input_spec"].get("streams", ["joint"])), "methods": {}}
    model = None
    for method in METHODS:
        if found[method] is not None:
            entry = {"status": "ok", "message": f"reused {found[method]}", "export_seconds": None,
                     **describe_file(found[method])}
        else:
            start = time.perf_counter()
            result = tflite.export(ckpt, work / name, "int8", calib=calib, int8_method=method,
                                   verify_samples=10_000, calib_samples=400)
            entry = {"status": result.status, "message": result.message,
                     "export_seconds": round(time.perf_counter() - start, 1),
                     **(describe_file(result.path) if result.path is not None else {})}
        if entry.get("path"):
            if model is None:
                model, _ = load_export_model(ckpt)
            for split in SPLITS:
                scored = score_on_split(tflite.predict_fn(entry["path"], threads=1), model, ck, split)
                entry[split] = {k: scored[k] for k in ("eval_clips", "top1_fp32", "top1", "eval_agreement",
                                                       "eval_paired")}
        row["methods"][method] = entry
    files = {m: e["path"] for m, e in row["methods"].items() if e.get("path")}
    if files:
        runtimes = {m: load_runtime(p, threads=1) for m, p in files.items()}
        x = {m: np.random.default_rng(0).standard_normal([1, *rt.input_shape[1:]]).astype(np.float32) * 0.3
             for m, rt in runtimes.items()}
        stats = interleaved({m: (lambda rt=rt, xm=x[m]: rt.predict(xm)) for m, rt in runtimes.items()}, warmup=5,
                            runs=10 * rounds)
        for m, st in stats.items():
            values = sorted(st.samples_ms)
            row["methods"][m]["latency_ms"] = {"median": st.p50_ms, "p10": values[len(values) // 10],
                                               "p90": st.p90_ms, "runs": st.count}
        for rt in runtimes.values():
            rt.close()
    return row


def markdown(rows: list[dict[str, Any]]) -> str:
    """The docs table: one line per checkpoint and method."""
    lines = table_head(["checkpoint", "INT8 method", "integer ops", "I/O", "size KB", "Δ top-1 val [95 %]",
                         "Δ top-1 test [95 %]", "LiteRT CPU ms (1 thread)"])
    for row in rows:
        for method, e in row["methods"].items():
            if not e.get("path"):
                lines.append(f"| {row['checkpoint']} | {method} | {e['status']}: {e['message'][:80]} |||||| ")
                continue
            cells = []
            for split in SPLITS:
                p = e[split]["eval_paired"]
                cells.append(f"{p['delta']:+.2f} [{p['low']:+.2f}, {p['high']:+.2f}] "
                             f"({100 * e[split]['top1_fp32']:.2f} → {100 * e[split]['top1']:.2f})")
            lat = e.get("latency_ms", {})
            lines.append(f"| {row['checkpoint']} | {method}{' (' + e['range_rule'] + ')' if e.get('range_rule') else ''}"
                         f" | {e['integer_ops']}/{e['compute_ops']} ({100 * e['integer_ops'] / e['compute_ops']:.0f} %)"
                         f" | {e['input_dtype']}→{e['output_dtype']} | {e['size_bytes'] / 1024:.0f} | {cells[0]} | "
                         f"{cells[1]} | {lat.get('median', float('nan')):.2f} |")
    return "\n".join(lines)


def _main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", nargs="+", type=Path, required=True, help="NW-UCLA checkpoints")
    p.add_argument("--out", type=Path, default=Path("runs/tflite_int8/results.json"), help="results JSON")
    p.add_argument("--work", type=Path, default=Path("runs/tflite_int8"), help="calibration sets and exports")
    p.add_argument("--calib-num", type=int, default=500)
    p.add_argument("--rounds", type=int, default=30, help="interleaved timing rounds (10 runs each)")
    p.add_argument("--reuse", nargs="+", type=Path, default=None, metavar="DIR",
                   help="score and time files already exported from the same checkpoint under DIR/<checkpoint "
                        "folder name>/ instead of exporting again (e.g. the INT8-defaults study's folder)")
    p.add_argument("--append", action="store_true",
                   help="keep the rows of other checkpoints already in --out (a checkpoint measured again is replaced)")
    args = p.parse_args(argv)
    for ckpt in args.ckpt:
        if not ckpt.is_file():
            raise BadInput(f"--ckpt: no such file {ckpt}")
    result: dict[str, Any] = {"tool": PROG, "command": f"{PROG} " + " ".join(argv if argv is not None else sys.argv[1:]),
                              "machine": {"cpu": platform.processor() or platform.machine(),
                                          "python": platform.python_version()},
                              "created": time.strftime("%Y-%m-%d %H:%M:%S"), "rows": []}
    if args.append and args.out.is_file():
        before = json.loads(args.out.read_text())
        again = {c.parent.name for c in args.ckpt}
        result["rows"] = [r for r in before.get("rows", []) if r.get("checkpoint") not in again]
        result["command"] = before.get("command", "") + "; " + result["command"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for ckpt in args.ckpt:
        print(f"{ckpt} ...", file=sys.stderr, flush=True)
        result["rows"].append(measure_checkpoint(ckpt, args.work, args.calib_num, args.rounds, args.reuse))
        args.out.write_text(json.dumps(result, indent=1))
        print(markdown(result["rows"][-1:]), flush=True)
    args.out.with_suffix(".md").write_text(markdown(result["rows"]) + "\n")
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, PROG, argv)


if __name__ == "__main__":
    sys.exit(main())
