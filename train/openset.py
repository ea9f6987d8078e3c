"""Teach a checkpoint to say "unknown": choose the open-set threshold on validation clips and store it in the
checkpoint, so every artifact exported from it (ONNX, TFLite, ... via core.artifact) and the edge loop use it.

    python -m train.openset --ckpt runs/nw_ucla/last_small_jvb/best.pt --data nw_ucla:val
    python -m train.openset --ckpt best.pt --data nw_ucla:val --score max_logit --keep 0.95 --out best_openset.pt

The rule (core.openset) is a body test (bone lengths that stay steady; its limit keeps 99 % of the validation clips)
and a classifier score with the largest threshold that, together, keep at least --keep of the validation clips
(in-distribution by definition). --score auto (the default) picks the score (energy, max_logit, max_softmax) with
the best AUROC between the validation clips and generated outliers (the toolkit's procedural actions, random-walk
and Gaussian motion; seeds of their own, not the ones benchmarks.openset scores). Everything is chosen on
validation clips: a test split is refused (the test split is scored, never used to choose anything). Without --out
the checkpoint is rewritten in place (atomically); the entry is `ckpt["openset"]` = {kind, threshold, temperature,
keep, body_max, layout, data, clips, kept, chosen_by}.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np

from core.checkpoint import atomic_torch_save, build_model, input_spec, load_checkpoint
from core.cli import ArgumentParser, BadInput, positive_int, run_cli
from core.evaluation import check_split_matches, load_data_split, parse_data_arg, predict_split, torch_predict_fn
from core.openset import DEFAULT_KEEP, OUTLIER_KINDS, SCORES, OpenSet, auroc, mean_pose, outlier_split

PROG = "python -m train.openset"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", required=True, help="a checkpoint written by python -m train.fit")
    p.add_argument("--data", required=True, help="the VALIDATION split NAME:SPLIT (e.g. nw_ucla:val)")
    p.add_argument("--score", default="auto", choices=("auto",) + SCORES,
                   help="classifier score (auto: the best on validation clips vs generated outliers)")
    p.add_argument("--keep", type=float, default=DEFAULT_KEEP,
                   help=f"share of validation clips to keep as known ({DEFAULT_KEEP})")
    p.add_argument("--temperature", type=float, default=1.0, help="energy temperature (1)")
    p.add_argument("--out", default=None, help="write a new checkpoint here (default: update --ckpt in place)")
    p.add_argument("--root", default=None, help="data root, if not the data set's default")
    p.add_argument("--batch", type=positive_int, default=32)
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda, ...")
    return p.parse_args(argv)


def choose(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    _, split_name = parse_data_arg(args.data)
    if split_name != "val":  # the test split is only scored; training clips would make every score look known
        raise BadInput(f"--data {args.data}: the threshold is chosen on validation clips (NAME:val), not on the "
                       f"{split_name} split")
    if not 0 < args.keep <= 1:
        raise BadInput(f"--keep must be in (0, 1], got {args.keep}")
    if args.temperature <= 0:
        raise BadInput(f"--temperature must be > 0, got {args.temperature}")
    ckpt = load_checkpoint(args.ckpt)
    model = build_model(ckpt, args.ckpt)
    spec = input_spec(ckpt)
    split = load_data_split(args.data, layout=spec.layout, root=args.root, ckpt=ckpt)
    check_split_matches(split, spec.layout, ckpt["class_names"], args.data, args.ckpt)
    if len(split) == 0:
        raise BadInput(f"--data {args.data}: no clips")
    predict = torch_predict_fn(model, args.device)
    logits = predict_split(predict, split, spec, args.batch, progress=sys.stderr.isatty(), desc="validation")
    chosen_by: dict[str, Any] = {}
    kind = args.score
    if kind == "auto":  # generated outliers (seeds 101..): pick the score that tells them from the validation clips
        pose = mean_pose(split)
        outliers = [outlier_split(k, spec.layout, spec.persons, pose, n=48, seed=101 + i)
                    for i, k in enumerate(OUTLIER_KINDS)]
        out_logits = [predict_split(predict, o, spec, args.batch, progress=False) for o in outliers]
        for k in SCORES:
            rule = OpenSet.fit(logits, split.data, spec.layout, k, args.keep, args.data, args.temperature)
            out_scores = np.concatenate([rule.scores(z, o.data) for z, o in zip(out_logits, outliers)])
            chosen_by[k] = auroc(rule.scores(logits, split.data), out_scores)
        kind = max(SCORES, key=lambda k: chosen_by[k])
    rule = OpenSet.fit(logits, split.data, spec.layout, kind, args.keep, args.data, args.temperature)
    ckpt["openset"] = {**rule.to_dict(), "chosen_by": {"auroc_vs_generated_outliers": chosen_by} if chosen_by
                       else "--score"}
    out = args.out or args.ckpt
    atomic_torch_save(ckpt, out)
    top1 = float((logits.argmax(1) == split.labels).mean())
    scores = rule.scores(logits, split.data)
    picked = (" (auto: AUROC vs generated outliers " + ", ".join(f"{k} {v:.3f}" for k, v in chosen_by.items()) + ")"
              if chosen_by else "")
    print(f"{args.ckpt} on {args.data} ({len(split)} clips, top-1 {100 * top1:.1f} %): {kind}{picked}; threshold "
          f"{rule.threshold:.4f}, body test <= {rule.body_max if rule.body_max is None else round(rule.body_max, 4)}; "
          f"keeps {100 * rule.kept:.1f} % (asked {100 * args.keep:g} %); finite score range "
          f"{np.min(scores[np.isfinite(scores)]):.3f} .. {np.max(scores):.3f}")
    print(f"wrote {out} (openset: {rule.kind} >= {rule.threshold:.4f}; exports made from it carry it)")
    return {"openset": ckpt["openset"], "out": str(out), "val_top1": top1}


def main(argv: list[str] | None = None) -> int:
    return run_cli(choose, PROG, argv)


if __name__ == "__main__":
    sys.exit(main())
