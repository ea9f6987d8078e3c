"""Supervised training of any LAST variant on any prepared data set, on one CPU or many GPUs.

    python -m train.fit --config configs/nw_ucla_last_large.yaml
    python -m train.fit --config configs/nw_ucla_last_large.yaml --resume          # continue a killed run
    python -m train.fit --config configs/synthetic.yaml model.variant=last_nano schedule.epochs=5
    torchrun --nproc_per_node 4 -m train.fit --config configs/ntu60_xsub.yaml     # DDP, one process per GPU

Outputs in output_dir: config.yaml (resolved), last.pt, best.pt, metrics.csv / metrics.jsonl, tb/ (TensorBoard),
confusion.png / confusion.json (best epoch), curves.png, summary.json, train.log.
"""
from __future__ import annotations

import sys
from typing import Any

from core.cli import run_cli
# the building blocks live in train.trainer (shared with train.distill and train.pretrain); re-exported here
from train.trainer import (Dist, FitError, Logger, NonFiniteLossError, Trainer, amp_dtype,  # noqa: F401
                           check_model_matches_data, evaluate_model, load_data, lr_factor, make_model,
                           make_optimizer, make_spec, plot_curves, rng_state, run_trainer, seed_everything,
                           parse_args, set_rng_state, shard_indices, trainer_main)


def run(cfg: dict[str, Any], resume: str | None = None, stop_after_epochs: int | None = None,
        overwrite: bool = False) -> dict[str, Any]:
    """Train as configured; returns the summary (best metrics, epochs, wall time, paths)."""
    return run_trainer(Trainer, cfg, resume, stop_after_epochs, overwrite)


# ---------------------------------------------------------------------------------------------
# Command line


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    return trainer_main(Trainer, argv, prog="python -m train.fit", description="Train a LAST model.")


if __name__ == "__main__":
    # ConfigError / CheckpointError: exit 2 (bad input); FitError, NaN loss: exit 1 (core.cli)
    sys.exit(run_cli(main, "python -m train.fit"))
