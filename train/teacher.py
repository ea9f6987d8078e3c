"""Teacher files for distillation: run a teacher once, distil from the file many times.

    python -m train.teacher --ckpt runs/nw_ucla/last_base_jvb/best.pt --data nw_ucla:train --out teacher.npz
    python -m train.teacher --ckpt T.pt --data nw_ucla:train --out runs/teachers/ --stages    # + per-stage features
    # cross-modal (RGB -> skeleton): a local VideoMAE folder over the RGB videos paired with skeleton samples
    python -m train.teacher --video-model weights/videomae-base --videos /data/nturgb+d_rgb \
        --skeletons /data/nturgb+d_skeletons --out rgb_teacher.npz [--per-frame] [--frames 16]
    python -m train.teacher --video-model weights/videomae-base --videos /data/nturgb+d_rgb \
        --data ntu60-xsub:train --out rgb_teacher.npz          # exactly the samples of the student's split

A skeleton teacher file holds, per sample name, the logits and the pooled (pre-logits) features of the teacher
checkpoint on the test-time clip (the checkpoint's own preprocessing; `--clips N` averages N temporal clips), and
with `--stages` every stage's output pooled over time, joints and persons (`stage_<i>`). Keys: names, labels,
class_names, logits (N, K), features (N, D), [stage_<i> (N, C_i)], meta_json (JSON: checkpoint, variant, streams, data).
`--video-model` runs train.video_teacher (the RGB -> skeleton path, the optional `video` extra): names, features
(N, D), [frame_features (N, T', D)], meta_json. train.distill reads either file (distill.teacher_file).
Exit codes (core.cli): 0 written, 1 failed, 2 bad input (the message names the file or argument), 3 optional
backend missing (the message says what to install).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from core.checkpoint import input_spec, load_model
from core.cli import ArgumentParser, BadInput, positive_int, run_cli
from core.evaluation import check_split_matches, load_data_split, parse_data_arg, prepare_test_clips
from train.video_teacher import run_video_teacher, skeleton_names

PROG = "python -m train.teacher"


@torch.no_grad()
def teacher_outputs(model: Any, split: Any, spec: Any, batch_size: int = 32, clips: int = 1, stages: bool = False,
                    progress: bool = True, device: str = "cpu") -> dict[str, np.ndarray]:
    """logits, features [, stage_<i>] of every sample of `split` (clip-averaged)."""
    model = model.to(device).eval()
    n = len(split)
    out: dict[str, list[np.ndarray]] = {"logits": [], "features": []}
    per_batch = max(1, batch_size // clips)
    for start in tqdm(range(0, n, per_batch), desc="teacher", unit="batch", disable=not progress, leave=False):
        ids = range(start, min(start + per_batch, n))
        x = torch.from_numpy(np.concatenate([prepare_test_clips(split.sample(i), spec, clips) for i in ids])).to(device)
        final, feats = model.forward_intermediates(x, indices=None if stages else [])
        rows = {"logits": model.forward_head(final), "features": model.forward_head(final, pre_logits=True)}
        m = x.shape[-1]
        for i, f in enumerate(feats):
            rows[f"stage_{i}"] = f.reshape(-1, m, *f.shape[1:]).mean(dim=(3, 4)).mean(dim=1)
        for key, value in rows.items():
            out.setdefault(key, []).append(value.float().reshape(len(ids), clips, -1).mean(1).cpu().numpy())
    return {k: np.concatenate(v) if v else np.zeros((0, 0), np.float32) for k, v in out.items()}


def write_teacher_file(ckpt_path: str, data: str, out: str | Path, root: str | None = None, batch_size: int = 32,
                       clips: int = 1, stages: bool = False, device: str = "cpu", progress: bool = True) -> Path:
    name, split_name = parse_data_arg(data)
    model, ckpt = load_model(ckpt_path)
    spec = input_spec(ckpt)
    split = load_data_split(data, layout=spec.layout, root=root)  # ValueError / FileNotFoundError naming --data
    check_split_matches(split, spec.layout, ckpt["class_names"], f"--data {data}", f"the teacher {ckpt_path}")
    outputs = teacher_outputs(model, split, spec, batch_size, clips, stages, progress, device)
    out = Path(out)
    if out.is_dir() or not out.suffix:
        out = out / "teacher.npz"
    out.parent.mkdir(parents=True, exist_ok=True)
    top1 = float((outputs["logits"].argmax(1) == split.labels).mean()) if len(split) else 0.0
    meta = {"checkpoint": str(ckpt_path), "variant": model.variant, "streams": list(model.cfg.streams),
            "data": name, "split": split_name, "clips": clips, "top1_on_split": top1}
    np.savez(out, names=np.array(split.names), labels=split.labels, class_names=np.array(ckpt["class_names"]),
             meta_json=np.array(json.dumps(meta)), **outputs)
    print(f"{out}: {len(split)} samples of {name}:{split_name}, logits {outputs['logits'].shape[1]}, features "
          f"{outputs['features'].shape[1]}" + (", per-stage features" if stages else "")
          + f"; teacher top-1 on this split {100 * top1:.2f}%")
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = ArgumentParser(prog=PROG, description="Write a teacher file (.npz) for distillation.",
                       epilog=__doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--ckpt", "--checkpoint", dest="ckpt", metavar="CHECKPOINT",
                        help="skeleton teacher: a LAST checkpoint (logits + pooled features per sample)")
    source.add_argument("--video-model", metavar="DIR",
                        help="cross-modal teacher: a local transformers VideoMAE folder (config.json, weights, "
                             "preprocessor_config.json); never downloaded at run time")
    p.add_argument("--out", required=True, help="the .npz to write (a folder: <folder>/teacher.npz, or "
                   "<folder>/rgb_teacher.npz for --video-model)")
    p.add_argument("--data", metavar="NAME:SPLIT", help="the student's training split, e.g. nw_ucla:train "
                   "(required with --ckpt; with --video-model it keeps exactly this split's videos)")
    p.add_argument("--root", default=None, help="data root if not the data set's default")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--batch", type=positive_int, default=None, help="samples per forward pass (default 32; videos 4)")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads for torch (default: torch's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    skel = p.add_argument_group("skeleton teacher (--ckpt)")
    skel.add_argument("--clips", type=positive_int, default=1, help="temporal clips averaged per sample (default 1)")
    skel.add_argument("--stages", action="store_true", help="also store every stage's pooled features")
    video = p.add_argument_group("cross-modal teacher (--video-model)")
    video.add_argument("--videos", metavar="DIR", help="folder of RGB videos, searched recursively; a video's "
                       "sample name is its stem without NTU's _rgb suffix (S001C001P001R001A001_rgb.avi)")
    video.add_argument("--skeletons", metavar="DIR", help="keep only videos whose sample name has a "
                       ".skeleton file here (default: every video, or those of --data)")
    video.add_argument("--per-frame", action="store_true",
                       help="also store per-temporal-token features (frame_features, N x T' x D)")
    video.add_argument("--frames", type=positive_int, default=None,
                       help="frames sampled uniformly per video (default and only valid value: the model's "
                            "num_frames; given, it is checked)")
    video.add_argument("--workers", type=positive_int, default=1,
                       help="threads decoding videos ahead of the model (default 1; decoding full-HD video is the "
                            "fixed cost per video)")
    args = p.parse_args(argv)
    if args.video_model and not args.videos:
        p.error("--video-model needs --videos DIR")
    if args.video_model and args.skeletons and args.data:
        p.error("--skeletons and --data both choose the samples; give one")
    if args.ckpt and not args.data:
        p.error("--ckpt needs --data NAME:SPLIT (the split the student trains on)")
    return args


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def run_video(args: argparse.Namespace) -> dict[str, Any]:
    names, source = None, None
    if args.skeletons:
        names, source = skeleton_names(args.skeletons), f"--skeletons {args.skeletons}"
    elif args.data:
        names, source = list(load_data_split(args.data, root=args.root).names), f"--data {args.data}"
    out = Path(args.out)
    if out.is_dir() or not out.suffix:
        out = out / "rgb_teacher.npz"
    if out.suffix != ".npz":
        raise BadInput(f"--out {args.out}: give a .npz file or a folder")
    return run_video_teacher(args.video_model, args.videos, out, names=names, per_frame=args.per_frame,
                             frames=args.frames, device=resolve_device(args.device), batch=args.batch or 4,
                             progress=not args.no_progress, source=source, workers=args.workers)


def write_teacher(argv: list[str] | None = None) -> Path | dict[str, Any]:
    """Write the teacher file; returns its path (skeleton teacher) or its metadata (video teacher)."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.video_model:
        return run_video(args)
    return write_teacher_file(args.ckpt, args.data, args.out, args.root, args.batch or 32, args.clips, args.stages,
                              device=resolve_device(args.device), progress=not args.no_progress)


def main(argv: list[str] | None = None) -> int:
    """The command line: exit status 0 written, 1 failed, 2 bad input, 3 backend missing (core.cli)."""
    return run_cli(write_teacher, PROG, argv)


if __name__ == "__main__":
    sys.exit(main())
