"""Supervised training of any LAST variant on any prepared data set, on one CPU or many GPUs.

    python -m train.fit --config configs/nw_ucla_last_large.yaml
    python -m train.fit --config configs/nw_ucla_last_large.yaml --resume          # continue a killed run
    python -m train.fit --config configs/synthetic.yaml model.variant=last_nano schedule.epochs=5
    torchrun --nproc_per_node 4 -m train.fit --config configs/ntu60_xsub.yaml     # DDP, one process per GPU

Outputs in output_dir: config.yaml (resolved), last.pt, best.pt, metrics.csv / metrics.jsonl, tb/ (TensorBoard),
confusion.png / confusion.json (best epoch), curves.png, summary.json, train.log.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from core.cli import ArgumentParser, run_cli
from train.config import load_config
# the building blocks live in train.trainer (shared with train.distill and train.pretrain); re-exported here
from train.trainer import (Dist, FitError, Logger, NonFiniteLossError, Trainer, amp_dtype,  # noqa: F401
                           check_model_matches_data, evaluate_model, load_data, lr_factor, make_model,
                           make_optimizer, make_spec, plot_curves, rng_state, run_trainer, seed_everything,
                           set_rng_state, shard_indices)


def run(cfg: dict[str, Any], resume: str | None = None, stop_after_epochs: int | None = None,
        overwrite: bool = False) -> dict[str, Any]:
    """Train as configured; returns the summary (best metrics, epochs, wall time, paths)."""
    return run_trainer(Trainer, cfg, resume, stop_after_epochs, overwrite)


# ---------------------------------------------------------------------------------------------
# Command line


def parse_args(argv: list[str] | None = None, prog: str = "python -m train.fit",
               description: str = "Train a LAST model.") -> argparse.Namespace:
    """The command line shared by train.fit, train.distill and train.pretrain."""
    p = ArgumentParser(
        prog=prog,
        description=description + " Settings: defaults <- --config YAML <- section.key=value overrides.",
        epilog="examples:\n  python -m train.fit --config configs/nw_ucla_last_large.yaml\n"
               "  python -m train.fit --config configs/synthetic.yaml model.variant=last_nano schedule.epochs=5\n"
               "  torchrun --nproc_per_node 2 -m train.fit --config configs/synthetic.yaml train.device=cpu",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=None, help="experiment YAML (see configs/)")
    p.add_argument("overrides", nargs="*", metavar="section.key=value",
                   help="override any config key, e.g. optim.lr=5e-4 schedule.epochs=30 model.streams=[joint,bone]")
    p.add_argument("--resume", nargs="?", const="auto", default=None, metavar="CHECKPOINT",
                   help="continue from output_dir/last.pt (or the given last.pt) with its optimizer, scheduler, "
                        "scaler and RNG state")
    p.add_argument("--stop-after-epochs", type=int, default=None, metavar="N",
                   help="train at most N epochs in this invocation, then save and exit (time-sliced jobs)")
    p.add_argument("--overwrite", action="store_true", help="start over even if output_dir holds a run")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    args = p.parse_args(argv)
    if args.resume not in (None, "auto") and "=" in args.resume and not Path(args.resume).exists():
        # "--resume schedule.epochs=30": argparse took the override for the optional checkpoint path
        args.overrides.append(args.resume)
        args.resume = "auto"
    return args


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    args = parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    if args.print_config:
        import yaml

        print(yaml.safe_dump(cfg, sort_keys=False))
        return None
    return run(cfg, resume=args.resume, stop_after_epochs=args.stop_after_epochs, overwrite=args.overwrite)


if __name__ == "__main__":
    # ConfigError / CheckpointError: exit 2 (bad input); FitError, NaN loss: exit 1 (core.cli)
    sys.exit(run_cli(main, "python -m train.fit"))
