"""Quantization-aware fine-tuning: a few epochs from a trained fp32 checkpoint with INT8 simulated where the Q/DQ
ONNX model quantizes (core.models.quant), distilled from the fp32 model itself.

    python -m train.qat --ckpt runs/nw_ucla/last_nano_jvb/best.pt                       # -> runs/nw_ucla/last_nano_jvb/qat
    python -m train.qat --ckpt best.pt --out runs/qat/nano schedule.epochs=6 optim.lr=5e-5
    python -m converters.int8 --ckpt runs/nw_ucla/last_nano_jvb/qat/best.pt --calib calib.npz

The run starts from the checkpoint's own training config (data, augmentation, batch) with these changes, each
overridable as section.key=value: schedule.epochs=4, no warm-up, one cosine cycle from optim.lr=1e-4; the loss is
distill.alpha=0.5 * CE + 0.5 * KD against the frozen fp32 checkpoint (distill.teacher, tau 4); BatchNorm statistics
frozen. Activation ranges follow the batches during qat.observe_epochs, then stay fixed; validation runs the
simulated INT8 model on the validation split (data.val_split=val: the checkpoint's validation slice, never the
test split), so best.pt is the best INT8 epoch there; the test split is scored once at the end.

best.pt / last.pt are ordinary LAST checkpoints (the fine-tuned fp32 weights, loadable everywhere) that also carry
`quantization`: the activation range of every quantized tensor. converters.int8 (onnxruntime quantizer) puts those
ranges into the same Q/DQ ONNX model it builds by calibration, so the exported model is the one trained here;
other quantizers (ModelOpt, LiteRT) calibrate on the fine-tuned weights as usual.

qat.placement=full simulates the full-integer LiteRT file instead (every tensor int8, core.models.quant): the
fallback for a checkpoint whose `converters.tflite --int8-method full` file loses accuracy after calibration alone.
Export its best.pt with the same command; the file's ranges are calibrated on the fine-tuned weights.

    python -m train.qat --ckpt runs/nw_ucla/last_nano/best.pt --out runs/qat/nano_full qat.placement=full
    python -m converters.tflite --ckpt runs/qat/nano_full/best.pt --precision int8 --int8-method full --calib calib.npz
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from core.checkpoint import CheckpointError, load_checkpoint, load_model
from core.cli import ArgumentParser, run_cli
from core.models.last import LAST
from core.models.quant import QMAX, QMIN, QuantSim
from core.spec import InputSpec
from train.config import ConfigError, load_config
from train.distill import DistillTrainer
from train.trainer import run_trainer

QAT_DEFAULTS = ["schedule.epochs=4", "schedule.warmup_epochs=0", "schedule.name=cosine", "optim.lr=1e-4",
                "distill.alpha=0.5", "distill.tau=4.0", "distill.alpha_end=null", "distill.feature_weight=0",
                "distill.projector_weight=0", "distill.teacher_file=null", "train.ema_decay=0",
                "train.test_clips=1", "data.val_split=val"]


class QATTrainer(DistillTrainer):
    loss_fields = ["ce", "kd"]

    def build_model(self, spec: InputSpec, num_classes: int) -> LAST:
        if float(self.cfg["train"]["ema_decay"]) > 0:  # a deep copy would keep calling the original's forwards
            raise ConfigError("train.qat: train.ema_decay must be 0 (a weight EMA of the fake-quantized model is "
                              "not supported)")
        model = super().build_model(spec, num_classes)  # model.init: the fp32 checkpoint's weights
        self.sim = QuantSim(model, float(self.cfg["qat"]["range_momentum"]), str(self.cfg["qat"]["placement"]))
        return model

    def build_extras(self) -> nn.Module | None:
        extras = super().build_extras() or nn.ModuleDict()
        extras["quant"] = self.sim  # no parameters; kept in last.pt's resume state with its ranges
        return extras

    def describe(self) -> str:
        return (f"; quantization-aware ({self.sim.placement} placement): {len(self.sim.keys)} INT8 activations "
                f"(ranges observed for {self.cfg['qat']['observe_epochs']} epoch(s)), per-channel INT8 weights, "
                f"BN frozen"
                + super().describe())

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        self.sim.observe(epoch < int(self.cfg["qat"]["observe_epochs"]))
        return super().train_epoch(epoch)

    def compute_loss(self, model, extras, batch):
        loss, logits, parts = super().compute_loss(model, extras, batch)
        return loss, logits, {k: parts[k] for k in self.loss_fields}

    def load_best(self) -> nn.Module:
        """best.pt with its trained ranges simulated: the INT8 model the validation chose, scored on the test split."""
        model, ckpt = load_model(self.best_path)
        sim = QuantSim(model, placement=ckpt["quantization"].get("placement", "qdq"))
        sim.load_ranges(ckpt["quantization"]["activation_amax"])
        sim.observe(False)
        return model

    def checkpoint_extra(self) -> dict[str, Any]:
        return {"quantization": {
            "method": "qat", "placement": self.sim.placement,
            "scheme": "int8 symmetric: activations per tensor, weights per output channel",
            "qmin": QMIN, "qmax": QMAX, "from": str(self.cfg["model"]["init"]),
            "activation_amax": self.sim.ranges()}}


def qat_config(ckpt: str, out: str | None, overrides: list[str]) -> dict[str, Any]:
    """The checkpoint's training config + the QAT defaults + the user's overrides."""
    try:
        trained = load_checkpoint(ckpt)
    except CheckpointError as exc:
        raise ConfigError(f"--ckpt: {exc}") from exc
    base = (trained.get("train") or {}).get("config")
    if not isinstance(base, dict):
        raise ConfigError(f"--ckpt {ckpt}: the checkpoint carries no training config (train.config), so the data "
                          f"and recipe to fine-tune with are unknown")
    base = {k: v for k, v in base.items() if k not in ("name", "output_dir")}
    name = f"{Path(ckpt).parent.name}_{Path(ckpt).stem}_qat"
    out = out or str(Path(ckpt).parent / "qat")
    fixed = [f"model.init={ckpt}", f"distill.teacher={ckpt}", f"name={name}", f"output_dir={out}"]
    return load_config(None, QAT_DEFAULTS + fixed + overrides, base=(base, f"{ckpt} (training config)"))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = ArgumentParser(prog="python -m train.qat", description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", required=True, help="the trained fp32 checkpoint to fine-tune (best.pt)")
    p.add_argument("--out", default=None, help="output folder (default: <checkpoint folder>/qat)")
    p.add_argument("overrides", nargs="*", metavar="section.key=value",
                   help="override any config key, e.g. schedule.epochs=6 optim.lr=5e-5 qat.observe_epochs=2")
    p.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    p.add_argument("--overwrite", action="store_true", help="start over even if --out holds a run")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    args = parse_args(argv)
    cfg = qat_config(args.ckpt, args.out, args.overrides)
    if args.print_config:
        print(yaml.safe_dump(cfg, sort_keys=False))
        return None
    return run_trainer(QATTrainer, cfg, resume="auto" if args.resume else None, overwrite=args.overwrite)


if __name__ == "__main__":
    # ConfigError / CheckpointError: exit 2 (bad input); FitError, NaN loss: exit 1 (core.cli)
    sys.exit(run_cli(main, "python -m train.qat"))
