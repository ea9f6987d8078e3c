"""Score a checkpoint on a data set split: top-1, top-5, per-class accuracy, confusion matrix.

    python -m train.evaluate --ckpt runs/nw_ucla/last_large/best.pt --data nw_ucla:test --clips 5

The scoring itself lives in core.evaluation (the same code scores every exported format); this is its command
line. Exit status: 0 ok, 1 failed, 2 bad input (missing file, bad value, unknown data set).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from core.checkpoint import input_spec, load_model
from core.cli import ArgumentParser, positive_int, run_cli
from core.evaluation import (check_split_matches, evaluate_logits, format_metrics, load_data_split, predict_split,
                             save_confusion_plot, torch_predict_fn)

PROG = "python -m train.evaluate"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = ArgumentParser(prog=PROG,
                                description="Score a LAST checkpoint on a data set split and print top-1, "
                                            "top-5, per-class accuracy and the confusion matrix.")
    p.add_argument("--ckpt", "--checkpoint", dest="ckpt", required=True,
                   help="a checkpoint written by python -m train.fit")
    p.add_argument("--data", required=True, help="NAME:SPLIT for core.data.load_split (e.g. nw_ucla:test, "
                                                   "ntu60-xsub:test, synthetic:test); a bare NAME uses --split")
    p.add_argument("--split", default="test", help="split when --data names none (default: test)")
    p.add_argument("--root", default=None, help="data root, if not the data set's default")
    p.add_argument("--batch", "--batch-size", dest="batch", type=positive_int, default=32)
    p.add_argument("--clips", type=positive_int, default=1, help="temporal clips per sample; logits are averaged")
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1 ...")
    p.add_argument("--out", default=None, help="folder for metrics.json and confusion.png")
    p.add_argument("--no-per-class", action="store_true", help="print only the summary line")
    return p.parse_args(argv)


def evaluate(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    model, ckpt = load_model(args.ckpt)
    spec = input_spec(ckpt)
    split = load_data_split(args.data, layout=spec.layout, root=args.root, default_split=args.split)
    check_split_matches(split, spec.layout, ckpt["class_names"], args.data, args.ckpt)
    logits = predict_split(torch_predict_fn(model, args.device), split, spec, args.batch, args.clips)
    metrics = evaluate_logits(logits, split.labels, ckpt["class_names"])
    metrics.update(checkpoint=str(args.ckpt), data=args.data, clips=args.clips)
    print(f"{args.ckpt} on {args.data} ({args.clips} clip{'s' if args.clips > 1 else ''})")
    print(format_metrics(metrics, per_class=not args.no_per_class))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        save_confusion_plot(metrics, out / "confusion.png")
        print(f"wrote {out / 'metrics.json'} and {out / 'confusion.png'}")
    return metrics


def main(argv: list[str] | None = None) -> int:
    """The command line: exit status 0 ok, 1 failed, 2 bad input (core.cli)."""
    return run_cli(evaluate, PROG, argv)


if __name__ == "__main__":
    sys.exit(main())
