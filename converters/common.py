"""The contract every converter follows, so `python -m converters.<fmt>` behaves the same for every format.

Every format module exposes

    export(ckpt, out_dir, precision, calib=None, batch=1, **opts) -> ExportResult

(batch=None means a dynamic batch), writes its artifact with the toolkit metadata (core.artifact), never
crashes on a missing backend (status "missing-backend" with the install hint) and raises InputError /
CheckpointError for bad input, which export_main turns into a one-line message.

Exit status of every `python -m converters.<fmt>` command (see EXIT_CODES):
    0  ok, or exported-not-verifiable-here (the artifact exists; it cannot be run on this machine)
    1  failed (the message says why)
    2  bad input: command line, checkpoint or calibration file
    3  missing-backend: the backend is not installed here; what could be built was built and the
       message says how to finish (e.g. the trtexec command to run on the device)
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import functools
import inspect
import io
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from core.checkpoint import CheckpointError, load_model
from core.cli import (EXIT_BACKEND_MISSING, EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, ArgumentParser, error_message,
                      positive_int)
from core.layouts import get_layout
from core.runtime import BackendMissing, require  # noqa: F401  (re-exported: the converters' lazy importer)

STATUSES = ("ok", "exported-not-verifiable-here", "failed", "missing-backend")
EXIT_CODES = {"ok": EXIT_OK, "exported-not-verifiable-here": EXIT_OK, "failed": EXIT_FAILED,
              "missing-backend": EXIT_BACKEND_MISSING}

log = logging.getLogger("converters")


class InputError(ValueError):
    """Bad user input (argument, calibration file, data set): the message names it."""


@dataclass
class ExportResult:
    format: str
    precision: str
    path: Path | None
    status: str
    message: str = ""
    size_bytes: int | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        if self.path is not None:
            self.path = Path(self.path)
            if self.size_bytes is None and self.path.exists():
                self.size_bytes = artifact_size(self.path)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path) if self.path is not None else None
        return d

    def summary(self) -> str:
        size = f", {format_size(self.size_bytes)}" if self.size_bytes else ""
        where = f" -> {self.path}" if self.path is not None else ""
        msg = f"\n  {self.message}" if self.message else ""
        return f"[{self.status}] {self.format} {self.precision}{where}{size}{msg}"


def artifact_size(path: str | Path) -> int:
    """Bytes of a file, or of every file under a directory artifact (.mlpackage)."""
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def format_size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def missing_backend(fmt: str, precision: str, exc: Exception, path: Path | None = None, **extra: Any) -> ExportResult:
    return ExportResult(fmt, precision, path, "missing-backend", str(exc), extra=extra)


def default_out_dir(ckpt: str | Path) -> Path:
    return Path("runs") / "export" / Path(ckpt).stem


def artifact_stem(ckpt: str | Path, precision: str, batch: int | None) -> str:
    """File stem of an export: <ckpt stem>_<precision>[_b<batch>] (no suffix for a dynamic batch)."""
    stem = f"{Path(ckpt).stem}_{precision}"
    return stem if batch is None else f"{stem}_b{batch}"


def parse_batch(value: str) -> int | None:
    """--batch N (a fixed batch) or --batch dynamic."""
    if value.lower() in ("dynamic", "none", "0"):
        return None
    try:
        return positive_int(value)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (or 'dynamic')") from None


def add_export_args(parser: argparse.ArgumentParser, precisions: tuple[str, ...],
                    default_precision: str = "fp32", default_batch: int | None = 1) -> argparse.ArgumentParser:
    """The one signature every converter command shares."""
    parser.add_argument("--ckpt", required=True, type=Path, help="LAST checkpoint (.pt) to convert")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: runs/export/<checkpoint stem>)")
    parser.add_argument("--precision", choices=precisions, default=default_precision,
                        help=f"numeric precision of the artifact (default: {default_precision})")
    parser.add_argument("--calib", type=Path, default=None,
                        help="calibration set .npz from python -m converters.calib (needed for INT8; "
                             "also used to verify the artifact on real inputs)")
    parser.add_argument("--batch", type=parse_batch, default=default_batch,
                        help=f"fixed batch size, or 'dynamic' (default: {default_batch or 'dynamic'})")
    parser.add_argument("--quiet", action="store_true", help="only print the result line")
    return parser


def add_verification_args(parser: argparse.ArgumentParser, verify_samples: int, calib_samples: int,
                          tool: str) -> None:
    """The options of the converters that score their artifact themselves (TFLite, CoreML)."""
    parser.add_argument("--calib-samples", type=int, default=calib_samples,
                        help=f"calibration clips used for quantised precisions (default {calib_samples})")
    parser.add_argument("--verify-samples", type=int, default=verify_samples,
                        help=f"clips compared with PyTorch (default {verify_samples})")
    parser.add_argument("--eval-data", default=None,
                        help="also score top-1 on a real split, NAME:SPLIT, e.g. nw_ucla:test (artifact vs PyTorch fp32)")
    parser.add_argument("--verbose", action="store_true", help=f"show {tool}'s own progress output")


def verification_opts(args: argparse.Namespace) -> dict[str, Any]:
    return {"calib_samples": args.calib_samples, "verify_samples": args.verify_samples, "quiet": not args.verbose,
            "eval_data": args.eval_data}


# ----------------------------------------------------------------------------------------------------------
# Staged writes: an export builds in a hidden folder inside --out and moves its files in only when it ends, so a
# full disk, a crash or a kill never leaves half an artifact that a later run would take for a good one.

STAGE_PREFIX = ".export-"
DISK_FULL = (errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC))


def staged_export(fmt: str, reuse: tuple[str, ...] = ()
                  ) -> Callable[[Callable[..., ExportResult]], Callable[..., ExportResult]]:
    """Decorator for a format's export(ckpt, out_dir, precision, ...): runs it in a staging folder on the same
    file system and publishes its files into out_dir with os.replace (artifacts first, sidecars last). Writing
    fails (disk full, file too large, quota): a 'failed' result naming out_dir and the reason, and nothing of
    this export in out_dir (an earlier good artifact there stays as it was). `reuse`: glob patterns of files in
    out_dir the export may read back (e.g. a calibration cache), hard-linked (or copied) into the stage."""
    def wrap(export_fn: Callable[..., ExportResult]) -> Callable[..., ExportResult]:
        signature = inspect.signature(export_fn)

        @functools.wraps(export_fn)
        def staged(ckpt: str | Path, out_dir: str | Path, *args: Any, **kwargs: Any) -> ExportResult:
            out_dir = Path(out_dir)
            precision = signature.bind(ckpt, out_dir, *args, **kwargs).arguments.get(
                "precision", signature.parameters["precision"].default)
            try:
                out_dir.mkdir(parents=True, exist_ok=True)
                remove_dead_stages(out_dir)
                stage = Path(tempfile.mkdtemp(prefix=f"{STAGE_PREFIX}{os.getpid()}-", dir=out_dir))
                for pattern in reuse:
                    for old in out_dir.glob(pattern):
                        try:
                            os.link(old, stage / old.name)
                        except OSError:
                            shutil.copy2(old, stage / old.name)
            except OSError as exc:
                return write_failed(fmt, precision, out_dir, exc)
            try:
                result = export_fn(ckpt, stage, *args, **kwargs)
                publish(stage, out_dir)
            except OSError as exc:
                if exc.errno not in DISK_FULL:
                    raise
                return write_failed(fmt, precision, out_dir, exc)
            finally:
                shutil.rmtree(stage, ignore_errors=True)
            return relocated(result, stage, out_dir)
        return staged
    return wrap


def reraise_if_disk_full(exc: BaseException) -> None:
    """In an exporter's catch-all: a write that failed for lack of space is not a conversion failure (whose
    files may be kept for inspection); re-raise it so staged_export discards everything written."""
    if isinstance(exc, OSError) and exc.errno in DISK_FULL:
        raise exc


def write_failed(fmt: str, precision: str, out_dir: Path, exc: OSError) -> ExportResult:
    return ExportResult(fmt, precision, None, "failed", f"cannot write to {out_dir}: {exc.strerror or exc} "
                        f"(nothing of this export was left there)")


def publish(stage: Path, out_dir: Path) -> None:
    """Move every entry of `stage` into out_dir, replacing what is there (folders such as .mlpackage too)."""
    entries = sorted(p for p in stage.iterdir() if not p.name.startswith(STAGE_PREFIX))
    for entry in sorted(entries, key=lambda p: p.name.endswith(".json")):  # sidecars last
        target = out_dir / entry.name
        if entry.is_dir() and target.is_dir():
            old = stage / f"{STAGE_PREFIX}replaced-{entry.name}"
            os.replace(target, old)
        os.replace(entry, target)


def relocated(result: ExportResult, stage: Path, out_dir: Path) -> ExportResult:
    """The result with the staging folder replaced by out_dir in its path, message and extra strings."""
    def fix(value: Any) -> Any:
        if isinstance(value, Path):
            return out_dir / value.relative_to(stage) if value.is_relative_to(stage) else value
        if isinstance(value, dict):
            return {k: fix(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(fix(v) for v in value)
        return value.replace(str(stage), str(out_dir)) if isinstance(value, str) else value
    result.path = fix(result.path) if result.path is not None else None
    result.message = fix(result.message)
    result.extra = {k: fix(v) for k, v in result.extra.items()}
    return result


def remove_dead_stages(out_dir: Path) -> None:
    """Staging folders of exports that were killed (their process is gone)."""
    for stage in out_dir.glob(f"{STAGE_PREFIX}*-*"):
        pid = stage.name[len(STAGE_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(stage, ignore_errors=True)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to someone else, or the platform cannot tell
        return True
    return True


def setup_logging(quiet: bool = False) -> None:
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s", stream=sys.stderr)


def export_main(export_fn: Callable[..., ExportResult], argv: list[str] | None = None, *, fmt: str,
                precisions: tuple[str, ...], default_precision: str = "fp32",
                default_batch: int | None = 1, description: str | None = None,
                add_args: Callable[[argparse.ArgumentParser], None] | None = None,
                opts_from_args: Callable[[argparse.Namespace], dict[str, Any]] | None = None) -> int:
    """Parse the shared arguments, run export_fn, print the result (and a JSON line), return the exit status.

    add_args adds format-specific options; opts_from_args maps them to export_fn keyword options."""
    epilog = ("exit status: 0 ok / exported-not-verifiable-here, 1 failed, 2 bad input (arguments, checkpoint, "
              "calibration file), 3 backend missing here (what could be built was built; the message says how "
              "to finish)")
    parser = ArgumentParser(prog=f"python -m converters.{fmt}", description=description, epilog=epilog)
    add_export_args(parser, precisions, default_precision, default_batch)
    if add_args is not None:
        add_args(parser)
    args = parser.parse_args(argv)
    setup_logging(args.quiet)
    out_dir = args.out or default_out_dir(args.ckpt)
    opts = opts_from_args(args) if opts_from_args is not None else {}
    start = time.perf_counter()
    try:
        result = export_fn(args.ckpt, out_dir, args.precision, calib=args.calib, batch=args.batch, **opts)
    except (CheckpointError, InputError, FileNotFoundError) as exc:
        print(f"{parser.prog}: error: {error_message(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BackendMissing as exc:  # a converter should return this, but never crash on it
        result = missing_backend(fmt, args.precision, exc)
    result.extra.setdefault("seconds", round(time.perf_counter() - start, 2))
    print(result.summary())
    if not args.quiet:
        print(json.dumps(result.to_dict(), default=_json_default))
    return result.exit_code


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def write_json(path: str | Path, obj: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, default=_json_default))
    return path


# ----------------------------------------------------------------------------------------------------------
# Inputs every converter needs: the model, and real clips to verify (and calibrate) with

def load_export_model(ckpt: str | Path):
    """(model in eval mode, checkpoint dict); raises CheckpointError naming the file."""
    return load_model(ckpt)


def input_shape(ckpt: dict[str, Any], batch: int) -> tuple[int, int, int, int, int]:
    spec = ckpt["input_spec"]
    return (batch, int(ckpt["model"]["config"]["in_channels"]), int(spec["frames"]),
            get_layout(ckpt["layout"]).num_joints, int(spec["persons"]))


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@contextlib.contextmanager
def quiet_output(enabled: bool = True, stderr: bool = False):
    """Silence a backend's progress prints on stdout (and its progress bars on stderr with stderr=True)."""
    if not enabled:
        yield
        return
    with contextlib.redirect_stdout(io.StringIO()), \
            (contextlib.redirect_stderr(io.StringIO()) if stderr else contextlib.nullcontext()):
        yield
