"""Offline teacher files: run a teacher once, distil from the file many times.

    python -m train.teacher --ckpt /work/ckpts/nw_ucla/last_base_jvb/best.pt --data nw_ucla:train --out teacher.npz
    python -m train.teacher --ckpt T.pt --data nw_ucla:train --out runs/teachers/ --stages    # + per-stage features
    python -m train.teacher --video-model DIR --videos DIR --out rgb_teacher.npz              # cross-modal (RGB)

A skeleton teacher file holds, per sample name, the logits and the pooled (pre-logits) features of the teacher
checkpoint on the test-time clip (the checkpoint's own preprocessing; `--clips N` averages N temporal clips), and
with `--stages` every stage's output pooled over time, joints and persons (`stage_<i>`). Keys: names, labels,
class_names, logits (N, K), features (N, D), [stage_<i> (N, C_i)], meta (JSON: checkpoint, variant, streams, data).
`--video-model` hands the command to train.video_teacher (the RGB -> skeleton path; optional extra).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.checkpoint import CheckpointError, input_spec, load_model
from train.evaluate import load_data_split, prepare_test_clips


class TeacherFileError(RuntimeError):
    pass


def parse_data(text: str) -> tuple[str, str]:
    name, _, split = text.partition(":")
    if not name or not split:
        raise TeacherFileError(f"--data {text!r} must look like NAME:SPLIT, e.g. nw_ucla:train")
    return name, split


@torch.no_grad()
def teacher_outputs(model: Any, split: Any, spec: Any, batch_size: int = 32, clips: int = 1, stages: bool = False,
                    progress: bool = True) -> dict[str, np.ndarray]:
    """logits, features [, stage_<i>] of every sample of `split` (clip-averaged)."""
    from tqdm import tqdm

    model.eval()
    n = len(split)
    out: dict[str, list[np.ndarray]] = {"logits": [], "features": []}
    per_batch = max(1, batch_size // clips)
    for start in tqdm(range(0, n, per_batch), desc="teacher", unit="batch", disable=not progress, leave=False):
        ids = range(start, min(start + per_batch, n))
        x = torch.from_numpy(np.concatenate([prepare_test_clips(split.sample(i), spec, clips) for i in ids]))
        final, feats = model.forward_intermediates(x, indices=None if stages else [])
        rows = {"logits": model.forward_head(final), "features": model.forward_head(final, pre_logits=True)}
        m = x.shape[-1]
        for i, f in enumerate(feats):
            rows[f"stage_{i}"] = f.reshape(-1, m, *f.shape[1:]).mean(dim=(3, 4)).mean(dim=1)
        for key, value in rows.items():
            out.setdefault(key, []).append(value.float().reshape(len(ids), clips, -1).mean(1).numpy())
    return {k: np.concatenate(v) if v else np.zeros((0, 0), np.float32) for k, v in out.items()}


def write_teacher_file(ckpt_path: str, data: str, out: str | Path, root: str | None = None, batch_size: int = 32,
                       clips: int = 1, stages: bool = False, threads: int | None = None) -> Path:
    if threads:
        torch.set_num_threads(threads)
    name, split_name = parse_data(data)
    model, ckpt = load_model(ckpt_path)
    spec = input_spec(ckpt)
    try:
        split = load_data_split(name, split_name, root)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        raise TeacherFileError(f"--data {data}: {exc}") from exc
    if split.layout != spec.layout:
        raise TeacherFileError(f"--data {data} uses layout {split.layout!r}, the teacher {ckpt_path} "
                               f"{spec.layout!r}")
    if list(split.class_names) != list(ckpt["class_names"]):
        raise TeacherFileError(f"--data {data} has {len(split.class_names)} classes, the teacher {ckpt_path} "
                               f"{len(ckpt['class_names'])}; class lists must match")
    outputs = teacher_outputs(model, split, spec, batch_size, clips, stages)
    out = Path(out)
    if out.is_dir() or not out.suffix:
        out = out / "teacher.npz"
    out.parent.mkdir(parents=True, exist_ok=True)
    top1 = float((outputs["logits"].argmax(1) == split.labels).mean()) if len(split) else 0.0
    meta = {"checkpoint": str(ckpt_path), "variant": model.variant, "streams": list(model.cfg.streams),
            "data": name, "split": split_name, "clips": clips, "top1_on_split": top1}
    np.savez(out, names=np.array(split.names), labels=split.labels, class_names=np.array(ckpt["class_names"]),
             meta=np.array(json.dumps(meta)), **outputs)
    print(f"{out}: {len(split)} samples of {name}:{split_name}, logits {outputs['logits'].shape[1]}, features "
          f"{outputs['features'].shape[1]}" + (", per-stage features" if stages else "")
          + f"; teacher top-1 on this split {100 * top1:.2f}%")
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m train.teacher", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", "--checkpoint", dest="ckpt", help="teacher checkpoint (a LAST best.pt)")
    p.add_argument("--data", help="NAME:SPLIT the student trains on, e.g. nw_ucla:train")
    p.add_argument("--root", default=None, help="data root if not the data set's default")
    p.add_argument("--out", required=True, help="output .npz (a folder gets teacher.npz)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--clips", type=int, default=1, help="temporal clips averaged per sample")
    p.add_argument("--stages", action="store_true", help="also store every stage's pooled features")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--video-model", default=None, help="cross-modal RGB teacher (see train.video_teacher)")
    return p.parse_known_args(argv)


def main(argv: list[str] | None = None) -> Path:
    args, rest = parse_args(argv)
    if args.video_model:
        try:
            from train import video_teacher
        except ImportError as exc:
            print(f"python -m train.teacher: error: the cross-modal teacher is not available ({exc})",
                  file=sys.stderr)
            sys.exit(3)
        return video_teacher.main(sys.argv[1:] if argv is None else argv)
    if rest:
        print(f"python -m train.teacher: error: unrecognized arguments: {' '.join(rest)}", file=sys.stderr)
        sys.exit(2)
    if not args.ckpt or not args.data:
        print("python -m train.teacher: error: --ckpt and --data are required (or --video-model)", file=sys.stderr)
        sys.exit(2)
    return write_teacher_file(args.ckpt, args.data, args.out, args.root, args.batch, args.clips, args.stages,
                              args.threads)


if __name__ == "__main__":
    try:
        main()
    except (TeacherFileError, CheckpointError) as exc:
        print(f"python -m train.teacher: error: {exc}", file=sys.stderr)
        sys.exit(2)
