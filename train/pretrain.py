"""MaskCLR self-supervised pretraining of a LAST encoder on the training split (no labels, no test split).

    python -m train.pretrain --config configs/nw_ucla_pretrain_maskclr.yaml model.variant=last_nano
    python -m train.fit --config configs/nw_ucla_last_small.yaml model.init=runs/pretrain/nw_ucla_last_small/best.pt

MaskCLR here is the design notes' recipe: every clip gives two augmented views; each view is masked graph-aware
(whole body parts of the layout: arms, legs, torso) and in time (one contiguous block of frames), together
`pretrain.mask_ratio` (0.5-0.75, drawn per clip) of the (frame, joint) cells; the encoder sees the masked view and
  loss = recon_weight * MSE(decoder(features), joints) on the masked, present joints
       + contrast_weight * NT-Xent(projection of view 1's pooled embedding, of view 2's; temperature 0.07).
The decoder and projection head exist only in training: best.pt / last.pt hold a plain LAST model (its
classifier untouched) that `model.init=` loads. (A CVPR 2024 paper also named MaskCLR is a different,
supervised method: attention-guided masking for robust recognition.)
"""
from __future__ import annotations

import sys
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from core.cli import run_cli
from core.data.dataset import SkeletonDataset
from core.layouts import Layout, get_layout
from train.trainer import FitError, Splits, Trainer, load_data, run_trainer, trainer_main


# ---------------------------------------------------------------------------------------------
# Masking


def maskclr_mask(layout: str | Layout, frames: int, ratio: float, part_share: float,
                 rng: np.random.Generator) -> tuple[np.ndarray, list[str], tuple[int, int]]:
    """(mask (T, V) bool, True = hidden; masked part names; (start, length) of the masked frame block).

    Whole body parts are hidden in every frame until about 1 - (1 - ratio)**part_share of the joints are gone
    (parts in random order, a part that would overshoot is skipped), then one contiguous block of frames is
    hidden for every joint, sized so the union covers `ratio` of the cells (up to one frame's rounding)."""
    layout = get_layout(layout)
    v = layout.num_joints
    parts = dict(layout.parts) or {f"joint_{j}": (j,) for j in range(v)}
    mask = np.zeros((frames, v), dtype=bool)
    target = 1.0 - (1.0 - ratio) ** part_share
    chosen: list[str] = []
    hidden: set[int] = set()
    if part_share > 0:
        for name in rng.permutation(sorted(parts)):
            joints = set(parts[name])
            grown = len(hidden | joints) / v
            if grown <= target + 1e-9 or (not chosen and grown <= ratio + 1e-9):
                chosen.append(str(name))
                hidden |= joints
    mask[:, sorted(hidden)] = True
    spatial = len(hidden) / v
    temporal = 1.0 - (1.0 - ratio) / (1.0 - spatial) if spatial < 1 else 0.0
    length = int(np.clip(round(max(temporal, 0.0) * frames), 0, frames))
    start = int(rng.integers(0, frames - length + 1))
    mask[start:start + length] = True
    return mask, chosen, (start, length)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """SimCLR's normalised-temperature cross-entropy: each embedding's positive is the other view of its clip,
    the other 2N - 2 embeddings of the batch are negatives."""
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    n = len(z1)
    sim = z @ z.t() / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


# ---------------------------------------------------------------------------------------------
# Data and heads


class TwoViewDataset(Dataset):
    """(view 1, view 2, label, index): two independently seeded augmentations (crop + transforms) of a clip.
    The label is carried for the loader's shape only; the pretraining loss never reads it."""

    def __init__(self, first: SkeletonDataset, second: SkeletonDataset):
        self.first, self.second = first, second

    def __len__(self) -> int:
        return len(self.first)

    def __getitem__(self, i: int):
        x1, y = self.first[i]
        x2, _ = self.second[i]
        return x1, x2, y, i

    def set_epoch(self, epoch: int) -> None:
        self.first.set_epoch(epoch)
        self.second.set_epoch(epoch)


class MaskCLRHeads(nn.Module):
    """Reconstruction decoder (features upsampled to the input's T, then 1x1 convs to coordinates) and the
    contrastive projection head (2-layer MLP on the pooled embedding)."""

    def __init__(self, channels: int, in_channels: int, proj_dim: int):
        super().__init__()
        hidden = max(channels // 2, 32)
        self.decoder = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
                                     nn.Conv2d(hidden, in_channels, 1))
        self.projector = nn.Sequential(nn.Linear(channels, channels), nn.BatchNorm1d(channels), nn.ReLU(inplace=True),
                                       nn.Linear(channels, proj_dim))

    def reconstruct(self, feat: torch.Tensor, frames: int, joints: int) -> torch.Tensor:
        """(N*M, C, T', V) -> (N*M, C_in, T, V)."""
        feat = F.interpolate(feat, size=(frames, joints), mode="bilinear", align_corners=False)
        return self.decoder(feat)


# ---------------------------------------------------------------------------------------------
# Trainer


class PretrainTrainer(Trainer):
    loss_fields = ["recon", "contrast", "mask_ratio"]

    def load_splits(self) -> Splits:
        splits = load_data(self.cfg)  # the validation slice is left out: it chooses the fine-tuned epoch later
        # self-supervised: nothing is validated or scored here
        return Splits(splits.train, None, None, splits.validation, splits.warnings)

    def build_model(self, spec, num_classes):
        model = super().build_model(spec, num_classes)
        model.fc.requires_grad_(False)  # no labels: the classifier stays as initialised
        return model

    def build_extras(self) -> nn.Module:
        p = self.cfg["pretrain"]
        self.layout = get_layout(self.spec.layout)
        return MaskCLRHeads(self.model.num_features, self.spec.channels, int(p["proj_dim"]))

    def build_train_dataset(self) -> Dataset:
        crop = tuple(self.cfg["data"]["crop_ratio"]) if self.cfg["data"]["crop_ratio"] else (1.0, 1.0)
        views = [SkeletonDataset(self.train_split, self.spec, train=True, augment=dict(self.cfg["augment"]),
                                 seed=self.seed + k * 1_000_003, crop_ratio=crop) for k in (0, 1)]
        return TwoViewDataset(*views)

    def describe(self) -> str:
        p = self.cfg["pretrain"]
        return (f"; MaskCLR pretraining (no labels): mask ratio {p['mask_ratio']}, part share {p['part_share']}, "
                f"recon x{p['recon_weight']} + NT-Xent x{p['contrast_weight']} (t={p['temperature']})")

    def masks(self, idx: torch.Tensor, view: int, frames: int) -> tuple[torch.Tensor, float]:
        """(N, 1, T, V, 1) float keep-mask (1 = visible) for the batch, seeded per (seed, epoch, sample, view)."""
        p = self.cfg["pretrain"]
        lo, hi = (float(r) for r in p["mask_ratio"])
        epoch = self.train_ds.first.epoch
        out = []
        for i in idx.tolist():
            rng = np.random.default_rng((self.seed, epoch, int(i), view, 7))
            m, _, _ = maskclr_mask(self.layout, frames, rng.uniform(lo, hi), float(p["part_share"]), rng)
            out.append(m)
        hidden = torch.from_numpy(np.stack(out)).to(idx.device)
        return (~hidden).float()[:, None, :, :, None], float(hidden.float().mean())

    def compute_loss(self, model, extras, batch):
        x1, x2, _, idx = batch  # the label is never used
        p = self.cfg["pretrain"]
        n, c, t, v, m = x1.shape
        recon_terms, pooled, ratios = [], [], []
        for view, x in enumerate((x1, x2)):
            keep, ratio = self.masks(idx, view, t)
            ratios.append(ratio)
            final, _ = model.forward_intermediates(x * keep, indices=[])
            feat = final.reshape(n * m, *final.shape[2:])
            pred = extras.reconstruct(feat, t, v).reshape(n, m, c, t, v).permute(0, 2, 3, 4, 1)
            present = (x != 0).any(dim=1, keepdim=True).float()
            weight = (1.0 - keep) * present  # masked joints that exist (padding persons / frames are zero)
            err = ((pred.float() - x) ** 2 * weight).sum() / (weight.sum() * c).clamp_min(1.0)
            recon_terms.append(err)
            pooled.append(model.forward_head(final, pre_logits=True))
        recon = torch.stack(recon_terms).mean()
        contrast = nt_xent(extras.projector(pooled[0]), extras.projector(pooled[1]), float(p["temperature"]))
        loss = float(p["recon_weight"]) * recon + float(p["contrast_weight"]) * contrast
        return loss, None, {"recon": recon, "contrast": contrast,
                            "mask_ratio": torch.tensor(float(np.mean(ratios)), device=x1.device)}


def run(cfg: dict[str, Any], resume: str | None = None, stop_after_epochs: int | None = None,
        overwrite: bool = False) -> dict[str, Any]:
    return run_trainer(PretrainTrainer, cfg, resume, stop_after_epochs, overwrite)


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    return trainer_main(PretrainTrainer, argv, prog="python -m train.pretrain",
                        description="MaskCLR self-supervised pretraining (config section `pretrain`).")


if __name__ == "__main__":
    # ConfigError / CheckpointError: exit 2 (bad input); FitError: exit 1 (core.cli)
    sys.exit(run_cli(main, "python -m train.pretrain"))
