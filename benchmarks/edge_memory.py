"""Does the edge loop stay flat however long it runs? Replays a skeleton stream (two people doing synthetic
actions, leaving and coming back, so ids, windows and actions come and go) through ActionRecognizer in SKELETONS
mode, pipelined (default) or synchronous, and records along the way RSS, the number of live Python objects and,
per stretch between two measurements, the p50/p99 of each frame's latency (hand-in to result) and the share of
windows classified.

    python -m benchmarks.edge_memory --ckpt runs/edge/export/last_small_jvb/best_fp32.onnx --frames 100000 \
        --speed 2 --out runs/edge/long_run

--speed F paces the replay at F times its 30 fps, like a camera (frames the loop has no time for are dropped and
counted); without it every frame is processed as fast as possible. Prints a table and writes memory.json and
memory.png to --out."""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from core.plots import pyplot
from core.runtime import load_runtime
from core.synthetic import synthetic_clip
from edge.recognizer import ActionRecognizer, ActionRecognizerOptions, BaseOptions, RunningMode
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
    p = argparse.ArgumentParser(prog="python -m benchmarks.edge_memory", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", required=True, help="a model checkpoint or export (its layout is used)")
    p.add_argument("--frames", type=int, default=100_000)
    p.add_argument("--warmup", type=int, default=2_000, help="frames before the first measurement")
    p.add_argument("--points", type=int, default=20, help="measurements along the run")
    p.add_argument("--persons", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/bench/edge_memory")
    p.add_argument("--loop", choices=("pipelined", "sync"), default="pipelined")
    p.add_argument("--speed", type=float, help="pace the replay at this many times 30 fps (default: as fast as "
                   "possible, every frame)")
    args = p.parse_args(argv)
    runtime = load_runtime(args.ckpt, threads=args.threads)
    pipelined = args.loop == "pipelined"
    latencies: list[float] = []  # this stretch's per-frame latency (ms), cleared at every measurement
    counts = {"classified": 0, "dropped_windows": 0, "events": 0, "results": 0}

    def on_result(res, image, ts) -> None:
        latencies.append((time.perf_counter() - res.times_s["submitted"]) * 1e3)
        counts["classified"] += res.classified
        counts["dropped_windows"] += res.classifications_dropped
        counts["events"] += len(res.events)
        counts["results"] += 1

    rec = ActionRecognizer.create_from_options(ActionRecognizerOptions(
        base_options=BaseOptions(runtime=runtime), running_mode=RunningMode.SKELETONS,
        skeleton_layout=runtime.spec.layout, max_persons=args.persons,
        result_callback=on_result if pipelined else None))
    data = stream(rec.spec.layout)
    fps = 30.0
    every = max(1, (args.frames - args.warmup) // args.points)
    rows = []
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    partial = out / "memory_partial.json"
    started = time.perf_counter()
    for t in tqdm(range(args.frames), unit="frame", desc="replay", dynamic_ncols=True):
        if args.speed:
            delay = started + t / (fps * args.speed) - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        people = np.asarray([x for x in data[t % len(data)] if np.abs(x).sum() > 0])
        if pipelined:
            rec.recognize_async(people, t * 1000.0 / fps, block=not args.speed)
        else:
            on_result(rec.recognize_for_video(people, t * 1000.0 / fps), None, t)
        if (t + 1 >= args.warmup and (t + 1 - args.warmup) % every == 0) or t + 1 == args.frames:
            if t + 1 == args.frames:
                rec.flush()
            measuring = time.perf_counter()
            gc.collect()
            lat = np.asarray(latencies) if latencies else np.zeros(1)
            rows.append({"frames": t + 1, "rss_mb": rss_mb(), "objects": len(gc.get_objects()),
                         "tracks": len(rec.tracker.tracks), "subjects": len(rec.subjects),
                         "latency_p50_ms": float(np.percentile(lat, 50)),
                         "latency_p99_ms": float(np.percentile(lat, 99)),
                         "results": counts["results"], "dropped_frames": rec.dropped_frames,
                         "classified": counts["classified"], "dropped_windows": counts["dropped_windows"],
                         "load_avg_1min": os.getloadavg()[0]})
            latencies.clear()
            partial.write_text(json.dumps(rows))  # a run stopped early still leaves its measurements
            started += time.perf_counter() - measuring  # the pacing resumes where it was (no burst of frames)
    wall = time.perf_counter() - started
    rec.close()
    first, last = rows[0], rows[-1]
    classified, events = counts["classified"], counts["events"]
    summary = {"frames": args.frames, "loop": args.loop, "speed": args.speed, "model": str(args.ckpt),
               "classifications": classified, "classifications_dropped": counts["dropped_windows"],
               "dropped_frames": rec.dropped_frames, "events": events, "person_ids": rec.tracker.next_id,
               "wall_s": wall, "rss_first_mb": first["rss_mb"], "rss_last_mb": last["rss_mb"],
               "rss_growth_mb": last["rss_mb"] - first["rss_mb"], "objects_growth": last["objects"] - first["objects"],
               "latency_p99_ms_first": first["latency_p99_ms"], "latency_p99_ms_last": last["latency_p99_ms"],
               "latency_p99_ms_max": max(r["latency_p99_ms"] for r in rows), "rows": rows}
    (out / "memory.json").write_text(json.dumps(summary, indent=1))
    print("| frames | RSS MB | Python objects | tracks | people classified | latency p50 / p99 ms (stretch) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for i in sorted(set(np.linspace(0, len(rows) - 1, min(len(rows), 7)).round().astype(int).tolist())):
        r = rows[i]
        print(f"| {r['frames']:,} | {r['rss_mb']:.1f} | {r['objects']:,} | {r['tracks']} | {r['subjects']} | "
              f"{r['latency_p50_ms']:.1f} / {r['latency_p99_ms']:.1f} |")
    pace = f"paced at {args.speed:g}x" if args.speed else "unpaced"
    print(f"{args.frames:,} frames ({args.loop}, {pace}) "
          f"in {wall:.0f} s, {classified:,} classifications ({counts['dropped_windows']:,} windows skipped), "
          f"{rec.dropped_frames:,} frames dropped, {events:,} events, {rec.tracker.next_id:,} person ids; RSS "
          f"{first['rss_mb']:.1f} -> {last['rss_mb']:.1f} MB ({summary['rss_growth_mb']:+.1f} MB) from frame "
          f"{first['frames']:,} to {last['frames']:,}, Python objects {summary['objects_growth']:+,}; per-frame "
          f"latency p99 {first['latency_p99_ms']:.1f} ms in the first stretch, {last['latency_p99_ms']:.1f} ms in "
          f"the last, {summary['latency_p99_ms_max']:.1f} ms at most")
    try:
        plt = pyplot()
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.2))
        ax.plot([r["frames"] for r in rows], [r["rss_mb"] for r in rows], marker="o")
        ax.set_xlabel("frames replayed")
        ax.set_ylabel("RSS (MB)")
        ax.set_ylim(0, max(r["rss_mb"] for r in rows) * 1.2)
        ax.set_title("memory over a long replay")
        bx.plot([r["frames"] for r in rows], [r["latency_p99_ms"] for r in rows], marker="o", label="p99")
        bx.plot([r["frames"] for r in rows], [r["latency_p50_ms"] for r in rows], marker=".", label="p50")
        bx.set_xlabel("frames replayed")
        bx.set_ylabel("per-frame latency (ms)")
        bx.set_ylim(0, max(r["latency_p99_ms"] for r in rows) * 1.2)
        bx.set_title(f"per-frame latency per stretch ({args.loop})")
        bx.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "memory.png", dpi=110)
        print(f"plot: {out / 'memory.png'}")
    except ImportError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
