"""One error policy for every command of the toolkit, and the `last-edge` console script.

Every `python -m ...` command runs its `main` through `run_cli`, which turns the project's known errors into
one line, `<prog>: error: <message>`, and a documented exit status:

    0  ok
    1  failed (the run started and something went wrong; the message says what)
    2  bad input: a missing file, a bad value, an unknown name (argparse's own usage errors are 2 too)
    3  a backend is missing here (the message says what to install, or where it runs)

Unknown names (variants, config keys, data sets) suggest the closest valid one (`did_you_mean`).
"""
from __future__ import annotations

import argparse
import difflib
import os
import runpy
import sys
from pathlib import Path
from typing import Any, Callable, Iterable

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_BACKEND_MISSING = 0, 1, 2, 3
EXIT_CODES_HELP = ("exit status: 0 ok, 1 failed, 2 bad input (missing file, bad value, unknown name), "
                   "3 backend missing here (the message says what to install)")


class BadInput(ValueError):
    """Bad user input (argument, file, name); the message names it. Exit status 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the toolkit's error policy: a usage error is one `prog: error: ...` line, exit status 2,
    and the exit codes are listed in --help."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("epilog", EXIT_CODES_HELP)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (--help for usage)\n")


def require_files(*paths: Path) -> None:
    """Bad input (one line naming it) for the first path that is not an existing file."""
    for path in paths:
        if not Path(path).is_file():
            raise BadInput(f"{path}: no such file")


def positive_int(value: str) -> int:
    """argparse type: an integer >= 1 (the error names the bad value)."""
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """' (did you mean "x"?)' for the closest of `choices`, or '' when nothing is close."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def exit_code_for(exc: BaseException) -> int | None:
    """The documented exit status of a known error, None for an unexpected one (a bug: keep its traceback)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "BackendMissing" in names:
        return EXIT_BACKEND_MISSING
    if names & {"FileNotFoundError", "NotADirectoryError", "IsADirectoryError", "PermissionError", "ValueError",
                "KeyError", "CheckpointError", "ConfigError", "BadInput", "InputError"}:
        return EXIT_BAD_INPUT
    if names & {"RuntimeError", "OSError"}:
        return EXIT_FAILED
    return None


def error_message(exc: BaseException) -> str:
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " ".join(lines) if lines else type(exc).__name__


def run_cli(main: Callable[..., Any], prog: str, argv: list[str] | None = None) -> int:
    """Run `main(argv)`; a known error becomes one `prog: error: ...` line and its exit status.

    main may return an int exit status, None (0) or anything else (0)."""
    try:
        result = main(argv)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except SystemExit:
        raise
    except Exception as exc:
        code = exit_code_for(exc)
        if code is None or os.environ.get("LAST_TRACEBACK"):
            raise
        print(f"{prog}: error: {error_message(exc)}", file=sys.stderr)
        return code
    return result if isinstance(result, int) and not isinstance(result, bool) else EXIT_OK


# ----------------------------------------------------------------------------------------------------------
# `last-edge <command> ...`: the same commands as `python -m <module> ...` (which stay), under one name.
# The table names modules as strings and runs them with runpy, so core imports none of them.

COMMANDS: dict[str, tuple[str, str]] = {
    "models": ("core.models", "the LAST variants: parameters, FLOPs, size, CPU latency"),
    "layouts": ("core.layouts", "skeleton layouts and their joint orders"),
    "ntu": ("core.data.ntu", "build NTU RGB+D 60/120 from raw .skeleton files"),
    "import": ("core.data.custom", "import your own skeleton files as a data set"),
    "train": ("train.fit", "supervised training (YAML config + key=value overrides)"),
    "evaluate": ("train.evaluate", "score a checkpoint on a data set split"),
    "explain": ("train.explain", "why a checkpoint decides: joint importance, feature space, failures"),
    "report": ("train.report", "table and plot of finished training runs"),
    "teacher": ("train.teacher", "write a teacher file (logits/features) for distillation"),
    "distill": ("train.distill", "knowledge distillation from a teacher"),
    "pretrain": ("train.pretrain", "MaskCLR self-supervised pretraining"),
    "export": ("converters", "convert to several formats at once (each verified against PyTorch)"),
    "calib": ("converters.calib", "draw a calibration set for INT8"),
    "onnx": ("converters.onnx", "checkpoint -> ONNX"),
    "int8": ("converters.int8", "checkpoint -> INT8 Q/DQ ONNX"),
    "trt": ("converters.trt", "checkpoint -> TensorRT engine"),
    "tflite": ("converters.tflite", "checkpoint -> TFLite (LiteRT)"),
    "coreml": ("converters.coreml", "checkpoint -> Core ML"),
    "run": ("edge.run", "the real-time loop: camera / video / skeletons -> actions"),
    "extract": ("edge.extract", "videos -> MediaPipe skeleton data set"),
    "record": ("edge.record", "record your own action clips from a camera"),
    "bench": ("benchmarks.run", "every format measured here (accuracy, latency, size), or judged on a device profile"),
    "compare": ("benchmarks.compare", "merge benchmark results of several devices"),
    "calibrate": ("benchmarks.calibrate", "fit a device profile's estimate constants from a measured run"),
}


def console_main(argv: list[str] | None = None) -> int:
    """Entry point of the `last-edge` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        width = max(map(len, COMMANDS))
        print("usage: last-edge <command> [args ...]   (each is also `python -m <module> ...`)\n\ncommands:")
        for name, (module, what) in COMMANDS.items():
            print(f"  {name:<{width}}  {what}  [python -m {module}]")
        print(f"\n{EXIT_CODES_HELP}")
        return EXIT_OK if argv else EXIT_BAD_INPUT
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"last-edge: error: unknown command {name!r}{did_you_mean(name, COMMANDS)}; "
              f"`last-edge --help` lists them", file=sys.stderr)
        return EXIT_BAD_INPUT
    module = COMMANDS[name][0]
    sys.argv = [f"last-edge {name}", *rest]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            print(f"last-edge: error: {name}: module {module} is not part of this installation", file=sys.stderr)
            return EXIT_FAILED
        raise
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
        return exc.code if isinstance(exc.code, int) else (EXIT_OK if exc.code is None else EXIT_FAILED)
    return EXIT_OK
