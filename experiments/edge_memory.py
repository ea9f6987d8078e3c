"""Does the edge library's memory stay flat however long it runs? Replays a skeleton stream (two people doing
synthetic actions, leaving and coming back, so ids, windows and actions come and go) through ActionRecognizer in
SKELETONS mode and records RSS and the number of live Python objects along the way.

    python -m experiments.edge_memory --ckpt runs/e2e/pose33/best.pt --frames 100000 --out runs/bench/edge_memory

Prints a table (frames, RSS MB, Python objects) and writes memory.json and memory.png to --out."""
from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from core.runtime import load_runtime
from core.synthetic import synthetic_clip
from edge.recognizer import ActionRecognizer, ActionRecognizerOptions, RunningMode
from edge.run import rss_mb


def stream(layout: str, seconds_gap: float = 1.5, fps: float = 30.0) -> np.ndarray:
    """(T, 2, V, 3): person A waves then squats, person B jumps then waves, both leave for a while."""
    gap = np.zeros((int(seconds_gap * fps), 1) + synthetic_clip("wave", layout, 1)[0].shape[1:], np.float32)
    a = np.concatenate([synthetic_clip("wave", layout, 90, seed=1)[0][:, None], gap,
                        synthetic_clip("squat", layout, 90, seed=2)[0][:, None], gap])
    b = np.concatenate([synthetic_clip("jump", layout, 120, seed=3)[0][:, None],
                        synthetic_clip("wave", layout, 60, seed=4)[0][:, None], gap, gap])
    a[..., 0] -= 1.0
    b[..., 0] += 1.0
    return np.concatenate([a, b[:len(a)]], axis=1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.edge_memory", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", required=True, help="a model checkpoint or export (its layout is used)")
    p.add_argument("--frames", type=int, default=100_000)
    p.add_argument("--warmup", type=int, default=2_000, help="frames before the first measurement")
    p.add_argument("--points", type=int, default=20, help="measurements along the run")
    p.add_argument("--persons", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/bench/edge_memory")
    args = p.parse_args(argv)
    runtime = load_runtime(args.ckpt, threads=args.threads)
    rec = ActionRecognizer.create_from_options(ActionRecognizerOptions(
        runtime=runtime, running_mode=RunningMode.SKELETONS, skeleton_layout=runtime.spec.layout,
        max_persons=args.persons))
    data = stream(rec.spec.layout)
    fps = rec.model_fps
    every = max(1, (args.frames - args.warmup) // args.points)
    rows, events, classified = [], 0, 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    partial = out / "memory_partial.json"
    started = time.perf_counter()
    for t in tqdm(range(args.frames), unit="frame", desc="replay", dynamic_ncols=True):
        people = [x for x in data[t % len(data)] if np.abs(x).sum() > 0]
        res = rec.recognize_for_video(np.asarray(people), t * 1000.0 / fps)
        events += len(res.events)
        classified += res.classified
        if (t + 1 >= args.warmup and (t + 1 - args.warmup) % every == 0) or t + 1 == args.frames:
            gc.collect()
            rows.append({"frames": t + 1, "rss_mb": rss_mb(), "objects": len(gc.get_objects()),
                         "tracks": len(rec.tracker.tracks), "subjects": len(rec.subjects)})
            partial.write_text(json.dumps(rows))  # a run stopped early still leaves its measurements
    wall = time.perf_counter() - started
    rec.close()
    first, last = rows[0], rows[-1]
    summary = {"frames": args.frames, "classifications": classified, "events": events, "person_ids": rec.tracker.next_id,
               "wall_s": wall, "rss_first_mb": first["rss_mb"], "rss_last_mb": last["rss_mb"],
               "rss_growth_mb": last["rss_mb"] - first["rss_mb"], "objects_growth": last["objects"] - first["objects"],
               "rows": rows}
    (out / "memory.json").write_text(json.dumps(summary, indent=1))
    print("| frames | RSS MB | Python objects | tracks | people classified |")
    print("|---:|---:|---:|---:|---:|")
    for i in sorted(set(np.linspace(0, len(rows) - 1, min(len(rows), 7)).round().astype(int).tolist())):
        r = rows[i]
        print(f"| {r['frames']:,} | {r['rss_mb']:.1f} | {r['objects']:,} | {r['tracks']} | {r['subjects']} |")
    print(f"{args.frames:,} frames in {wall:.0f} s, {classified:,} classifications, {events:,} events, "
          f"{rec.tracker.next_id:,} person ids; RSS {first['rss_mb']:.1f} -> {last['rss_mb']:.1f} MB "
          f"({summary['rss_growth_mb']:+.1f} MB) from frame {first['frames']:,} to {last['frames']:,}, Python objects "
          f"{summary['objects_growth']:+,}")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6, 3.2))
        ax.plot([r["frames"] for r in rows], [r["rss_mb"] for r in rows], marker="o")
        ax.set_xlabel("frames replayed")
        ax.set_ylabel("RSS (MB)")
        ax.set_ylim(0, max(r["rss_mb"] for r in rows) * 1.2)
        ax.set_title("ActionRecognizer memory over a long replay")
        fig.tight_layout()
        fig.savefig(out / "memory.png", dpi=110)
        print(f"plot: {out / 'memory.png'}")
    except ImportError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
