"""Evaluate a CoreML .mlpackage in numpy (no macOS needed) and compare it with its checkpoint.

    python -m converters.mil_eval runs/export/best/best_fp16.mlpackage --ckpt best.pt --calib calib.npz --ranges

The evaluator itself is core.mil_eval (it is also the `.mlpackage` runtime off macOS).
"""
from __future__ import annotations

import sys

import numpy as np

from converters.common import load_export_model
from converters.verify import compare_logits, verification_inputs
from core.cli import ArgumentParser, run_cli
from core.evaluation import torch_logits
from core.mil_eval import load

PROG = "python -m converters.mil_eval"


def _main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("mlpackage", help="the .mlpackage to evaluate")
    parser.add_argument("--ckpt", help="checkpoint to compare against (PyTorch fp32)")
    parser.add_argument("--calib", help="calibration .npz (python -m converters.calib): compare on its real clips")
    parser.add_argument("--samples", type=int, default=8, help="clips to compare (default 8)")
    parser.add_argument("--ranges", action="store_true", help="print max|x| per op and flag fp16 overflow")
    args = parser.parse_args(argv)
    program = load(args.mlpackage)
    print(f"{program.path}: opset {program.opset}, inputs {program.inputs}, outputs {program.outputs}")
    print("ops:", ", ".join(f"{k} {v}" for k, v in sorted(program.op_counts().items())))
    shape = program.inputs[program.input_name][0]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.samples * shape[0],) + tuple(shape[1:])).astype(np.float32)
    if args.ckpt:
        model, ckpt = load_export_model(args.ckpt)
        x, source = verification_inputs(ckpt, args.calib, count=args.samples * shape[0])
        stats = compare_logits(torch_logits(model, x), program.predict(x))
        print(f"vs PyTorch fp32 on {stats['samples']} clips ({source}): max |logit diff| "
              f"{stats['max_abs_diff']:.3g}, top-1 agreement {stats['top1_agreement']:.3f}")
    if args.ranges:
        trace = program.ranges(x)
        worst = sorted(trace, key=lambda r: -np.nan_to_num(r.max_abs, nan=np.inf))[:15]
        print(f"{'op output':48s} {'type':14s} {'dtype':8s} {'max|x|':>10s}  nonfinite")
        for r in worst:
            flag = "  FP16 OVERFLOW" if r.fp16_overflow else ""
            print(f"{r.op[:48]:48s} {r.type:14s} {r.dtype:8s} {r.max_abs:10.3g}  {r.nonfinite}{flag}")
        bad = [r for r in trace if r.fp16_overflow]
        print(f"{len(bad)} op(s) overflow fp16" if bad else "no fp16 overflow")


def main(argv: list[str] | None = None) -> int:
    """The command line: exit status 0 ok, 1 failed, 2 bad input, 3 backend missing (core.cli)."""
    return run_cli(_main, PROG, argv)


if __name__ == "__main__":
    sys.exit(main())
