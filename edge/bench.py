"""Measure the edge loop on video files (headless): per-stage latency p50/p90/p99 and end-to-end FPS for
each video x model, written as a markdown table, a JSON file and a plot.

    python -m edge.bench --videos ../shared/data/video/*.mp4 --model runs/edge/synthetic_mp33/best.pt \\
        runs/edge/export/best_int8.onnx --pose-model ../shared/models/pose_landmarker_full.task --out runs/edge/bench
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from edge.errors import EdgeError

STAGES = ("capture", "pose", "track", "preprocess", "classify", "smoothing", "draw", "frame")


def bench_one(video: Path, model: Path, pose_model: Path, threads: int, stride_s: float | None,
              max_frames: int | None, out_video: Path | None, events: Path | None) -> dict:
    from edge.capture import VideoFileSource
    from edge.events import EventWriter
    from edge.overlay import VideoSink
    from edge.recognizer import ActionRecognizer, ActionRecognizerOptions
    from edge.run import EdgeRunner, load_runtime_or_fail, rss_mb
    runtime = load_runtime_or_fail(str(model), threads)
    source = VideoFileSource(video, max_frames)
    sink = VideoSink(out_video, source.fps, source.size) if out_video else None
    writer = EventWriter(events)
    sequence: list[str] = []  # the bench compares label sequences between models: it keeps them, the library not
    try:
        options = ActionRecognizerOptions(runtime=runtime, pose_model_path=pose_model, stride_s=stride_s)
        with ActionRecognizer.create_from_options(options) as recognizer:
            runner = EdgeRunner(recognizer, writer)
            rss0 = rss_mb()
            started = time.perf_counter()
            result = runner.run(source, sink, on_result=lambda frame, res: sequence.extend(
                p.label for p in res.persons if res.classified))
            wall = time.perf_counter() - started
    finally:
        source.close()
        writer.close()
        if sink:
            sink.close()
    return {"video": video.name, "size": list(source.size), "model": model.name, "runtime": runtime.name,
            "frames": result.frames,
            "frames_with_person": result.frames_with_person, "classifications": result.classifications,
            "events": writer.count, "wall_s": wall, "fps_wall": result.frames / wall if wall else 0.0,
            "latency": result.latency, "rss_start_mb": rss0, "rss_end_mb": result.rss_end_mb,
            "labels": sorted(set(sequence)), "label_sequence": sequence, "error": result.error}


def agreement(rows: list[dict]) -> str:
    """Per video: the fraction of classifications whose smoothed label equals the first model's."""
    first_model = rows[0]["model"]
    ref = {r["video"]: r["label_sequence"] for r in rows if r["model"] == first_model}
    lines = [f"| video | model | classifications | same label as {first_model} |", "|---|---|---|---|"]
    for r in rows:
        base, seq = ref.get(r["video"], []), r["label_sequence"]
        if r["model"] == first_model or not seq:
            continue
        same = sum(a == b for a, b in zip(base, seq)) / max(len(base), len(seq))
        lines.append(f"| {r['video']} | {r['model']} | {len(seq)} | {same:.3f} |")
    return "\n".join(lines)


def markdown(rows: list[dict]) -> str:
    head = "| video | model (runtime) | frames (person) | " + " | ".join(
        f"{s} p50/p90/p99 ms" for s in STAGES if s != "frame") + " | frame p50/p99 ms | FPS |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lat = r["latency"]
        cells = []
        for s in STAGES[:-1]:
            v = lat.get(s)
            cells.append(f"{v['p50_ms']:.2f} / {v['p90_ms']:.2f} / {v['p99_ms']:.2f}" if v else "-")
        fr = lat.get("frame", {})
        frame = f"{fr['p50_ms']:.1f} / {fr['p99_ms']:.1f}" if fr else "-"
        lines.append(f"| {r['video']} | {r['model']} ({r['runtime']}) | {r['frames']} ({r['frames_with_person']}) | "
                     + " | ".join(cells) + f" | {frame} | {r['fps_wall']:.1f} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    stages = [s for s in STAGES[:-1] if any(s in r["latency"] for r in rows)]
    fig, ax = plt.subplots(figsize=(min(14, max(6, 0.8 * len(rows) + 2)), 5))
    bottom = np.zeros(len(rows))
    for s in stages:
        # mean per frame: a stage that runs every S frames (classify) contributes its mean / S
        vals = np.array([r["latency"].get(s, {}).get("mean_ms", 0.0) * r["latency"].get(s, {}).get("count", 0)
                         / max(r["frames"], 1) for r in rows])
        ax.bar(range(len(rows)), vals, bottom=bottom, label=s)
        bottom += vals
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([f"{Path(r['video']).stem}\n{r['model']}" for r in rows], fontsize=6, rotation=60,
                       ha="right")
    ax.set_ylabel("ms per frame (mean)")
    ax.set_title("edge loop: time per frame by stage")
    ax.axhline(1000 / 30, color="k", ls="--", lw=0.8, label="30 FPS budget")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edge.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", nargs="+", required=True, help="video files")
    p.add_argument("--model", nargs="+", required=True, help="one or more artifacts (.pt/.onnx/.tflite/...)")
    p.add_argument("--pose-model", help="MediaPipe .task (default: $LAST_POSE_MODEL, cache, download)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--stride-s", type=float, help="seconds between classifications (default: 4 model frames)")
    p.add_argument("--max-frames", type=int)
    p.add_argument("--out", default="runs/edge/bench", help="output folder (default: %(default)s)")
    p.add_argument("--no-video", action="store_true", help="do not write overlay videos")
    args = p.parse_args(argv)
    from tqdm import tqdm

    from edge.pose import resolve_pose_model
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        pose_model = resolve_pose_model(args.pose_model)
        jobs = [(Path(v), Path(m)) for m in args.model for v in args.videos]
        for video, model in tqdm(jobs, desc="edge bench", unit="run"):
            stem = f"{video.stem}__{model.stem}"
            rows.append(bench_one(video, model, pose_model, args.threads, args.stride_s, args.max_frames,
                                  None if args.no_video else out / f"{stem}.mp4", out / f"{stem}.jsonl"))
    except EdgeError as exc:
        print(f"edge.bench: error: {exc}", file=sys.stderr)
        return 1
    table = markdown(rows)
    if len(args.model) > 1:
        table += "\n\n" + agreement(rows)
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    (out / "report.md").write_text(table + "\n")
    plot(rows, out / "latency.png")
    print(table)
    for r in rows:
        if r["frames_with_person"] == 0:
            print(f"{r['video']}: no person detected in any of the {r['frames']} frames")
        if r["error"]:
            print(f"{r['video']}: {r['error']}")
    print(f"wrote {out / 'report.md'}, {out / 'results.json'}, {out / 'latency.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
