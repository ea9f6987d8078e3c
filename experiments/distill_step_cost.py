"""Training cost of each path as a ratio to plain supervised training, measured interleaved in one process
(timing on a shared CPU drifts 2x, ratios inside one interleaved run do not).

    python -m experiments.distill_step_cost --variant last_nano --teacher runs/nw_ucla/last_base_jvb/best.pt

One optimiser step each (batch 16, T=52, kinect20, one thread) of: scratch (CE), KD from a teacher file
(precomputed logits: no teacher forward), KD from the live teacher, live teacher + per-stage mimicry, and
MaskCLR (two masked views, decoder, NT-Xent); rounds interleave the arms; the median of each arm is reported.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from core.checkpoint import load_model
from core.models.last import create_model
from train.distill import Connector, feature_mimicry_loss, logit_distill_loss
from train.pretrain import MaskCLRHeads, maskclr_mask, nt_xent


def main(argv=None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", default="last_nano")
    p.add_argument("--teacher", required=True)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--batch", type=int, default=16)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    teacher, _ = load_model(args.teacher)
    teacher.requires_grad_(False).eval()
    layout, classes, frames = teacher.cfg.layout, teacher.cfg.num_classes, 52
    x = torch.randn(args.batch, 3, frames, teacher.num_joints, 1)
    y = torch.randint(0, classes, (args.batch,))
    t_logits = torch.randn(args.batch, classes)
    student = create_model(args.variant, num_classes=classes, layout=layout)
    connectors = torch.nn.ModuleList(Connector(s[0], t[0]) for s, t in zip(student.cfg.stages, teacher.cfg.stages))
    heads = MaskCLRHeads(student.num_features, 3, 128)
    params = list(student.parameters()) + list(connectors.parameters()) + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=1e-4)
    rng = np.random.default_rng(0)

    def step(loss: torch.Tensor) -> None:
        opt.zero_grad()
        loss.backward()
        opt.step()

    def scratch():
        step(torch.nn.functional.cross_entropy(student(x), y))

    def kd_file():
        step(logit_distill_loss(student(x), t_logits, y, 0.3, 4.0)[0])

    def kd_live():
        with torch.no_grad():
            tl = teacher(x)
        step(logit_distill_loss(student(x), tl, y, 0.3, 4.0)[0])

    def kd_live_mimicry():
        with torch.no_grad():
            tf, tfeats = teacher.forward_intermediates(x)
            tl = teacher.forward_head(tf)
        sf, sfeats = student.forward_intermediates(x)
        loss = logit_distill_loss(student.forward_head(sf), tl, y, 0.3, 4.0)[0]
        step(loss + 0.1 * feature_mimicry_loss(sfeats, tfeats, connectors))

    def maskclr():
        pooled, recon = [], []
        for _ in range(2):
            keep = torch.from_numpy(~np.stack([maskclr_mask(layout, frames, 0.6, 0.5, rng)[0]
                                               for _ in range(args.batch)])).float()[:, None, :, :, None]
            final, _ = student.forward_intermediates(x * keep, indices=[])
            pred = heads.reconstruct(final[:, 0], frames, x.shape[3])[..., None]
            recon.append((((pred - x) ** 2) * (1 - keep)).mean())
            pooled.append(student.forward_head(final, pre_logits=True))
        step(sum(recon) + nt_xent(heads.projector(pooled[0]), heads.projector(pooled[1]), 0.07))

    arms = {"scratch": scratch, "KD, teacher file": kd_file, "KD, live teacher": kd_live,
            "KD, live teacher + mimicry": kd_live_mimicry, "MaskCLR pretraining": maskclr}
    for fn in arms.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {k: [] for k in arms}
    for _ in range(args.rounds):
        for name, fn in arms.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["scratch"])
    print(f"| path ({args.variant} student, teacher {teacher.variant} {'+'.join(teacher.cfg.streams)}) | "
          f"ms / step (median of {args.rounds}) | x scratch |\n|---|---|---|")
    out = {}
    for name, ts in times.items():
        med = statistics.median(ts)
        out[name] = med / base
        print(f"| {name} | {1000 * med:.0f} | {med / base:.2f} |")
    return out


if __name__ == "__main__":
    main()
