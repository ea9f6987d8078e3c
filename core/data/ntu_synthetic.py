"""Write NTU-format .skeleton files: for tests (edge cases) and for measuring the builder's throughput
without the 114,000-file download.

    python -m core.data.ntu_synthetic --out runs/ntu_synth --count 2000 \
        [--like ../shared/data/ntu/S001C001P001R001A001.skeleton]
    python -m core.data.ntu --root runs/ntu_synth --out runs/data/ntu_synth --workers 2
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from core.data.ntu import NUM_JOINTS, read_skeleton

MAX_COUNT = 25_440  # distinct names from the (setup, camera, subject, replication, action) cycle below
# one frame = list of (body id, joints (25, 3) xyz or (25, 12) full lines)
Frame = Sequence[tuple[str, np.ndarray]]


def format_skeleton(frames: Sequence[Frame], newline: str = "\n") -> str:
    """The text of a .skeleton file; missing columns (depth/colour/orientation/state) are filled plausibly."""
    out = [str(len(frames))]
    for frame in frames:
        out.append(str(len(frame)))
        for body_id, joints in frame:
            out.append(f"{body_id} 0 1 1 1 1 0 0.02764709 0.05745083 2")
            out.append(str(len(joints)))
            for j in joints:
                if len(j) >= 12:
                    out.append(" ".join(f"{v:.7g}" for v in j[:12]))
                else:
                    x, y, z = j[:3]
                    out.append(f"{x:.7g} {y:.7g} {z:.7g} {256 + 100 * x:.4f} {212 - 100 * y:.4f} "
                               f"{960 + 300 * x:.3f} {540 - 300 * y:.3f} 0.1 0.2 0.9 0.1 2")
    return newline.join(out) + newline


def write_skeleton(path: str | Path, frames: Sequence[Frame], crlf: bool = False) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(format_skeleton(frames, "\r\n" if crlf else "\n").encode("ascii"))
    return path


def standing_body(frames: int, rng: np.random.Generator, offset: float = 0.0) -> np.ndarray:
    """(T, 25, 3) a plausible upright body (taller than wide) that sways a little."""
    base = np.zeros((NUM_JOINTS, 3))
    base[:, 1] = np.linspace(-0.8, 0.6, NUM_JOINTS)  # spread over 1.4 m of height
    base[:, 0] = rng.uniform(-0.25, 0.25, NUM_JOINTS) + offset
    base[:, 2] = 3.0
    sway = 0.05 * np.sin(np.linspace(0, 4 * np.pi, frames))[:, None, None]
    return base[None] + sway * np.array([1.0, 0.2, 0.0]) + rng.normal(0, 0.01, (frames, NUM_JOINTS, 3))


def spread_body(frames: int, rng: np.random.Generator) -> np.ndarray:
    """(T, 25, 3) 'spread' noise: much wider than tall (e.g. a chair or a wall detected as a body)."""
    body = np.zeros((frames, NUM_JOINTS, 3))
    body[..., 0] = rng.uniform(-1.0, 1.0, (frames, NUM_JOINTS))
    body[..., 1] = rng.uniform(-0.1, 0.1, (frames, NUM_JOINTS))
    body[..., 2] = 3.5
    return body


def make_dataset(out: str | Path, count: int, like: str | Path | None = None, seed: int = 0) -> list[Path]:
    """`count` files named like NTU samples; 1 in 4 has a second actor, 1 in 5 a short noisy body."""
    if count > MAX_COUNT:
        raise ValueError(f"--count {count} > {MAX_COUNT}: the generated sample names would repeat")
    rng = np.random.default_rng(seed)
    real = None
    if like:
        raw = read_skeleton(like)
        real = next(iter(raw.bodies.values())).array()
    paths = []
    for k in tqdm(range(count), desc="writing .skeleton", unit="file"):
        setup, camera, subject, rep, action = 1 + k % 32, 1 + k % 3, 1 + k % 106, 1 + k % 2, 1 + k % 120
        name = f"S{setup:03d}C{camera:03d}P{subject:03d}R{rep:03d}A{action:03d}"
        t = int(rng.integers(40, 160))
        main = (real[np.arange(t) % len(real)] + rng.normal(0, 0.005, (t, NUM_JOINTS, 3))) if real is not None \
            else standing_body(t, rng)
        bodies = {f"7205759403{k:07d}1": (0, main)}
        if k % 4 == 0:
            bodies[f"7205759403{k:07d}2"] = (0, standing_body(t, rng, offset=0.8))
        if k % 5 == 0:
            start = int(rng.integers(0, t - 8))
            bodies[f"7205759403{k:07d}3"] = (start, standing_body(8, rng, offset=-0.8))
        frames = [[(bid, b[f - s]) for bid, (s, b) in bodies.items() if 0 <= f - s < len(b)] for f in range(t)]
        paths.append(write_skeleton(Path(out) / f"{name}.skeleton", frames, crlf=k % 7 == 0))
    return paths


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m core.data.ntu_synthetic",
                                description="Write NTU-format .skeleton files (1-3 bodies, LF and CRLF).")
    p.add_argument("--out", required=True)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--like", default=None, help="a real .skeleton file whose main body is replicated")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    make_dataset(args.out, args.count, args.like, args.seed)
    print(f"wrote {args.count} files to {args.out}")


if __name__ == "__main__":
    main()
