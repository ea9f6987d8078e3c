"""Several formats at once: convert a checkpoint to every requested format (each verified by its converter against
PyTorch) and print one line per artifact.

    python -m converters --ckpt runs/nw_ucla/last_small/best.pt --formats onnx,int8,trt,tflite,coreml \\
        --calib-data nw_ucla:train
    python -m converters --list-formats

Scoring every format on a data split, timing it and the table with plots are a measurement, made by
`python -m benchmarks.run --ckpt ... --data NAME:SPLIT` (the same format options). A missing backend is a line with
the install hint, never a crash. INT8 needs a calibration set: --calib FILE, or one is drawn from --calib-data.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from converters import formats
from converters.calib import load_calibration, make_calibration_file, parse_data_arg
from converters.common import ExportResult, InputError, default_out_dir, setup_logging, write_json
from core.checkpoint import Checkpoint
from core.cli import EXIT_BACKEND_MISSING, EXIT_FAILED, EXIT_OK, ArgumentParser, run_cli

PROG = "python -m converters"
# the scoring options of the all-formats table this command was: accepted, and answered with the new spelling
MOVED_TO_BENCHMARKS = ("data", "limit", "threads", "latency_runs")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="exit status: 0 every artifact ok (or exported, not verifiable here), 1 one failed, "
                              "2 bad input (checkpoint, calibration file, arguments), 3 a backend is missing here")
    p.add_argument("--list-formats", action="store_true", help="print the format table (Markdown) and exit")
    p.add_argument("--ckpt", type=Path, help="LAST checkpoint (.pt)")
    formats.add_plan_args(p)
    p.add_argument("--calib", type=Path, default=None, help="calibration .npz (python -m converters.calib)")
    p.add_argument("--calib-data", default=None, help="draw the calibration set from this NAME:SPLIT, e.g. "
                                                      "nw_ucla:train")
    p.add_argument("--calib-num", type=int, default=500, help="calibration clips to draw (default 500)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default runs/export/<ckpt stem>)")
    p.add_argument("--batch", type=int, default=1, help="fixed batch of the edge artifacts (TRT/TFLite/CoreML; "
                                                         "ONNX models keep a dynamic batch)")
    p.add_argument("--quiet", action="store_true")
    for name in MOVED_TO_BENCHMARKS:  # hidden: they name python -m benchmarks.run
        p.add_argument(f"--{name.replace('_', '-')}", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def benchmark_spelling(args: argparse.Namespace) -> str:
    """The one line that names where scoring and timing went, with this call's options in the new spelling."""
    words = ["python", "-m", "benchmarks.run", "--ckpt", str(args.ckpt)]
    for name in ("formats", "data", "calib", "calib_data", "int8_quantizers", "trt_precision", "tflite_precisions",
                 "coreml_precisions", "limit", "threads", "out"):
        value = getattr(args, name)
        if value is not None and not (name == "int8_quantizers" and value == "auto"):
            words += [f"--{name.replace('_', '-')}", str(value)]
    return f"{PROG}: scoring and timing moved: {shlex.join(words)}"


def calibration_for(args: argparse.Namespace, plan: list[formats.Planned], checkpoint: Checkpoint,
                    out_dir: Path) -> Path | None:
    """--calib (checked now, so a bad file fails with its name before any export), or a set drawn from
    --calib-data (the old --data's train split when only that is given), or None when no row needs one."""
    if args.calib is not None:
        load_calibration(args.calib, checkpoint.data)
        return args.calib
    if not any(row.needs_calibration for row in plan):
        return None
    source = args.calib_data or (f"{parse_data_arg(args.data)[0]}:train" if args.data else None)
    if source is None:
        raise InputError("INT8 rows need a calibration set: pass --calib FILE or --calib-data <dataset>:train")
    return make_calibration_file(checkpoint, source, args.calib_num,
                                 out_dir / f"calib_{source.replace(':', '_')}_{args.calib_num}.npz")


def export_all(checkpoint: Checkpoint, plan: list[formats.Planned], out_dir: Path, calib: Path | None,
               batch: int) -> list[ExportResult]:
    """Every planned row through the format table, the checkpoint read once; an INT8 row reuses the fp32 ONNX an
    earlier row of this run built."""
    results: list[ExportResult] = []
    fp32_onnx: Path | None = None
    for row in plan:
        opts: dict[str, Any] = dict(row.options)
        if fp32_onnx is not None and "fp32_onnx" in formats.FORMATS[row.format].options:
            opts["fp32_onnx"] = fp32_onnx
        result = formats.try_export(row.format, checkpoint, out_dir, row.precision, calib=calib, batch=batch, **opts)
        if row.format == "onnx" and result.ok:
            fp32_onnx = result.path
        result.precision = row.label
        results.append(result)
        print(result.summary(), flush=True)
    return results


def exit_status(results: list[ExportResult]) -> int:
    statuses = {r.status for r in results}
    if "failed" in statuses:
        return EXIT_FAILED
    return EXIT_BACKEND_MISSING if "missing-backend" in statuses else EXIT_OK


def _main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list_formats:
        print(formats.markdown_table(), end="")
        return EXIT_OK
    if args.ckpt is None:
        raise InputError("--ckpt is required (a LAST checkpoint .pt)")
    setup_logging(args.quiet)
    requested = [f.strip() for f in (args.formats or ",".join(formats.FORMATS)).split(",") if f.strip()]
    try:
        plan = formats.plan(requested, formats.precisions_from_args(args), formats.quantizers_from_args(args))
    except InputError as exc:
        raise InputError(f"--formats: {exc}") from None
    checkpoint = Checkpoint(args.ckpt)
    out_dir = args.out or default_out_dir(args.ckpt)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = export_all(checkpoint, plan, out_dir, calibration_for(args, plan, checkpoint, out_dir), args.batch)
    write_json(out_dir / "exports.json", {"ckpt": str(args.ckpt), "results": [r.to_dict() for r in results]})
    print(f"saved {out_dir / 'exports.json'}")
    if any(getattr(args, name) is not None for name in MOVED_TO_BENCHMARKS):
        print(benchmark_spelling(args), file=sys.stderr)
    return exit_status(results)


def main(argv: list[str] | None = None) -> int:
    """The command line: exit status 0 ok, 1 failed, 2 bad input, 3 backend missing (core.cli)."""
    return run_cli(_main, PROG, argv)


if __name__ == "__main__":
    sys.exit(main())
