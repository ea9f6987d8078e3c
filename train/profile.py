"""Where a training epoch goes: data pipeline, forward, backward, optimiser and evaluation, measured on the real
data and model of a config, plus the heaviest operators (torch.profiler).

    python -m train.profile --config configs/nw_ucla_last_small_jvb.yaml            # 20 measured steps
    python -m train.profile --config configs/nw_ucla_last_small_jvb.yaml --steps 40 train.threads=2

The phases are timed in one process, step after step, so a busy machine slows every phase alike: read the
shares and the per-epoch estimate (steps per epoch x the step, + the validation clips x the evaluation cost per
clip) as ratios, and compare two settings inside one run of this command rather than across runs.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np
import torch

from core.cli import ArgumentParser, run_cli
from core.data.dataset import SkeletonDataset
from core.evaluation import predict_split, torch_predict_fn
from core.markdown import table_head
from train.config import load_config
from train.trainer import load_data, make_model, make_optimizer, make_spec

PROG = "python -m train.profile"


def profile(cfg: dict[str, Any], steps: int, warmup: int = 3) -> dict[str, Any]:
    if cfg["train"]["threads"]:
        torch.set_num_threads(int(cfg["train"]["threads"]))
    splits = load_data(cfg)
    spec = make_spec(cfg, splits.train)
    crop = tuple(cfg["data"]["crop_ratio"]) if cfg["data"]["crop_ratio"] else (1.0, 1.0)
    ds = SkeletonDataset(splits.train, spec, train=True, augment=dict(cfg["augment"]), seed=0, crop_ratio=crop)
    batch = int(cfg["optim"]["batch_size"])
    model = make_model(cfg, spec, splits.train.num_classes).train()
    opt = make_optimizer([model], cfg["optim"])
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=float(cfg["optim"]["label_smoothing"]))
    times: dict[str, list[float]] = {"data": [], "forward": [], "backward": [], "optimizer": []}
    rng = np.random.default_rng(0)
    for step in range(warmup + steps):
        idx = rng.choice(len(ds), size=batch, replace=False)
        t0 = time.perf_counter()
        items = [ds[int(i)] for i in idx]
        x = torch.stack([a for a, _ in items])
        y = torch.tensor([b for _, b in items])
        t1 = time.perf_counter()
        loss = loss_fn(model(x), y)
        t2 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), float(cfg["optim"]["clip_grad"]) or 1e9)
        t3 = time.perf_counter()
        opt.step()
        t4 = time.perf_counter()
        if step >= warmup:
            for key, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                times[key].append(dt)
    model.eval()
    val = splits.val
    t0 = time.perf_counter()
    predict_split(torch_predict_fn(model), val, spec, batch_size=batch, progress=False)
    eval_per_clip = (time.perf_counter() - t0) / max(len(val), 1)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        model.train()
        for _ in range(3):
            loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:12]
    total_ops = sum(e.self_cpu_time_total for e in prof.key_averages()) or 1
    med = {k: float(np.median(v)) for k, v in times.items()}
    step_s = sum(med.values())
    steps_per_epoch = max(len(ds) // batch, 1)
    epoch = {"train": steps_per_epoch * step_s, "evaluation": len(val) * eval_per_clip}
    return {"config": cfg["name"], "variant": cfg["model"]["variant"], "streams": cfg["model"]["streams"],
            "threads": torch.get_num_threads(), "batch": batch, "train_clips": len(ds), "val_clips": len(val),
            "steps_per_epoch": steps_per_epoch, "median_s": med, "step_s": step_s,
            "eval_per_clip_s": eval_per_clip, "epoch_s": epoch,
            "ops": [(e.key, 100 * e.self_cpu_time_total / total_ops) for e in ops]}


def compare_compiled(cfg: dict[str, Any], steps: int) -> dict[str, Any]:
    """Eager vs torch.compile training steps of the same model, interleaved step by step in this process (so
    machine load hits both alike); the compile time is reported separately."""
    if cfg["train"]["threads"]:
        torch.set_num_threads(int(cfg["train"]["threads"]))
    splits = load_data(cfg)
    spec = make_spec(cfg, splits.train)
    ds = SkeletonDataset(splits.train, spec, train=True, augment=dict(cfg["augment"]), seed=0)
    batch = int(cfg["optim"]["batch_size"])
    loss_fn = torch.nn.CrossEntropyLoss()
    runners = {}
    for name in ("eager", "compiled"):
        torch.manual_seed(0)
        model = make_model(cfg, spec, splits.train.num_classes).train()
        runners[name] = (torch.compile(model) if name == "compiled" else model, make_optimizer([model], cfg["optim"]))
    rng = np.random.default_rng(0)
    batches = []
    for _ in range(4):
        items = [ds[int(i)] for i in rng.choice(len(ds), size=batch, replace=False)]
        batches.append((torch.stack([a for a, _ in items]), torch.tensor([b for _, b in items])))

    def step(name: str, k: int) -> float:
        model, opt = runners[name]
        x, y = batches[k % len(batches)]
        t0 = time.perf_counter()
        loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - t0

    t0 = time.perf_counter()
    step("compiled", 0)
    step("compiled", 1)
    compile_s = time.perf_counter() - t0
    step("eager", 0)
    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    for k in range(steps):
        for name in (("eager", "compiled") if k % 2 == 0 else ("compiled", "eager")):
            times[name].append(step(name, k))
    med = {k: float(np.median(v)) for k, v in times.items()}
    return {"compile_s": compile_s, "median_step_s": med, "speedup": med["eager"] / med["compiled"]}


def report(r: dict[str, Any]) -> str:
    step, epoch = r["step_s"], r["epoch_s"]
    total = epoch["train"] + epoch["evaluation"]
    lines = [f"{r['config']}: {r['variant']} ({'+'.join(r['streams'])}), batch {r['batch']}, {r['threads']} "
             f"thread(s); {r['train_clips']} training clips ({r['steps_per_epoch']} steps), {r['val_clips']} "
             f"validation clips", ""]
    lines += table_head(["phase", "per step / clip (ms)", "per epoch (s)", "share of the epoch"])
    for key, v in r["median_s"].items():
        per_epoch = v * r["steps_per_epoch"]
        lines.append(f"| {key} | {1000 * v:.1f} | {per_epoch:.1f} | {100 * per_epoch / total:.1f} % |")
    lines.append(f"| evaluation (per validation clip) | {1000 * r['eval_per_clip_s']:.2f} | {epoch['evaluation']:.1f} "
                 f"| {100 * epoch['evaluation'] / total:.1f} % |")
    lines.append(f"| **epoch** | {1000 * step:.1f} per step | **{total:.1f}** | 100 % |")
    lines += ["", "Heaviest operators of a training step (share of the profiled CPU time): "
              + ", ".join(f"{name} {share:.1f} %" for name, share in r["ops"])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="training YAML")
    p.add_argument("overrides", nargs="*", metavar="section.key=value")
    p.add_argument("--steps", type=int, default=20, help="measured training steps (after 3 warm-up steps)")
    p.add_argument("--compare-compile", action="store_true",
                   help="also time torch.compile against eager, interleaved (compiling takes minutes on a CPU)")
    args = p.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    result = profile(cfg, args.steps)
    print(report(result))
    if args.compare_compile:
        c = compare_compiled(cfg, args.steps)
        result["compile"] = c
        print(f"\ntorch.compile: compiling took {c['compile_s']:.0f} s; median step eager "
              f"{1000 * c['median_step_s']['eager']:.0f} ms, compiled {1000 * c['median_step_s']['compiled']:.0f} ms "
              f"({c['speedup']:.2f}x, interleaved)")
    return result


if __name__ == "__main__":
    sys.exit(run_cli(main, PROG))
