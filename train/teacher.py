"""Teacher files for distillation, written once and read by the student's training.

    # cross-modal (RGB -> skeleton): a VideoMAE folder over the RGB videos paired with skeleton samples
    python -m train.teacher --video-model weights/videomae-base --videos /data/nturgb+d_rgb \\
        --skeletons /data/nturgb+d_skeletons --out rgb_teacher.npz [--per-frame] [--frames 16]
    # the same, keeping exactly the samples of the student's training split
    python -m train.teacher --video-model weights/videomae-base --videos /data/nturgb+d_rgb \\
        --data ntu60-xsub:train --out rgb_teacher.npz

Exit codes (core.cli): 0 written, 1 failed, 2 bad input (the message names the file or argument), 3 optional
backend missing (the message says what to install).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from core.cli import ArgumentParser, BadInput, run_cli
from core.evaluation import load_data_split
from train.evaluate import positive_int
from train.video_teacher import run_video_teacher, skeleton_names

PROG = "python -m train.teacher"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = ArgumentParser(prog=PROG, description="Write a teacher feature file (.npz) for distillation.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--video-model", metavar="DIR",
                        help="cross-modal teacher: a local transformers VideoMAE folder (config.json, weights, "
                             "preprocessor_config.json); never downloaded at run time")
    p.add_argument("--out", required=True, help="the .npz to write (or a folder: <folder>/rgb_teacher.npz)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--batch", type=positive_int, default=4, help="videos per forward pass (default 4)")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads for torch (default: torch's)")
    p.add_argument("--workers", type=positive_int, default=1,
                   help="threads decoding videos ahead of the model (default 1; decoding full-HD video is the "
                        "fixed cost per video)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    video = p.add_argument_group("cross-modal teacher (--video-model)")
    video.add_argument("--videos", metavar="DIR", help="folder of RGB videos, searched recursively; a video's "
                       "sample name is its stem without NTU's _rgb suffix (S001C001P001R001A001_rgb.avi)")
    video.add_argument("--skeletons", metavar="DIR", help="keep only videos whose sample name has a "
                       ".skeleton file here (default: every video)")
    video.add_argument("--data", metavar="NAME:SPLIT", help="or keep only the videos of this split's samples "
                       "(the student's training split, e.g. ntu60-xsub:train), so the file matches it exactly")
    video.add_argument("--root", default=None, help="data root for --data if not the data set's default")
    video.add_argument("--per-frame", action="store_true",
                       help="also store per-temporal-token features (frame_features, N x T' x D)")
    video.add_argument("--frames", type=positive_int, default=None,
                       help="frames sampled uniformly per video (default and only valid value: the model's "
                            "num_frames; given, it is checked)")
    args = p.parse_args(argv)
    if args.video_model and not args.videos:
        p.error("--video-model needs --videos DIR")
    if args.skeletons and args.data:
        p.error("--skeletons and --data both choose the samples; give one")
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
                             frames=args.frames, device=resolve_device(args.device), batch=args.batch,
                             progress=not args.no_progress, source=source, workers=args.workers)


def write_teacher(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    return run_video(args)


def main(argv: list[str] | None = None) -> int:
    """The command line: exit status 0 written, 1 failed, 2 bad input, 3 backend missing (core.cli)."""
    return run_cli(write_teacher, PROG, argv)


if __name__ == "__main__":
    sys.exit(main())
