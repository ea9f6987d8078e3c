"""A synthetic replay file for demos and the headless main job: procedural actions separated by gaps with
nobody in view, so a replay shows action starts, ends, a lost person and a window reset.

    python -m edge.demo --out runs/edge/demo_replay.npz --layout mediapipe33 --actions wave,squat,jump
    python -m edge.run --skeletons runs/edge/demo_replay.npz --model runs/train/<name>/best.pt --headless \\
        --events runs/edge/demo_events.jsonl
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def make_replay(actions: list[str], layout: str = "mediapipe33", frames_per_action: int = 64, gap: int = 40,
                seed: int = 0) -> np.ndarray:
    """(1, T, V, 3) camera-space skeletons: each action for `frames_per_action` frames, `gap` empty frames
    between actions."""
    from core.synthetic import SYNTHETIC_ACTIONS, synthetic_clip
    unknown = [a for a in actions if a not in SYNTHETIC_ACTIONS]
    if unknown:
        raise ValueError(f"unknown synthetic actions {unknown}; choose from {', '.join(SYNTHETIC_ACTIONS)}")
    parts = []
    for i, action in enumerate(actions):
        clip = synthetic_clip(action, layout, frames_per_action, seed=seed * 1000 + i)
        if i:
            parts.append(np.zeros((1, gap) + clip.shape[2:], np.float32))
        parts.append(clip)
    return np.concatenate(parts, axis=1).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edge.demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/edge/demo_replay.npz", help="output .npz (default: %(default)s)")
    p.add_argument("--layout", default="mediapipe33", help="skeleton layout of the model you will replay into")
    p.add_argument("--actions", default="wave,squat,jump", help="comma-separated synthetic actions")
    p.add_argument("--frames", type=int, default=64, help="frames per action (64)")
    p.add_argument("--gap", type=int, default=40, help="empty frames between actions (40)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fps", type=float, default=30.0)
    args = p.parse_args(argv)
    try:
        from core.layouts import get_layout
        get_layout(args.layout)
        x = make_replay([a.strip() for a in args.actions.split(",") if a.strip()], args.layout, args.frames,
                        args.gap, args.seed)
    except (KeyError, ValueError) as exc:
        print(f"edge.demo: error: {str(exc).strip(chr(39))}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, pose=x, fps=args.fps, layout=args.layout)
    print(f"{out}: {x.shape[1]} frames of {args.layout} ({args.actions}, {args.gap}-frame gaps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
