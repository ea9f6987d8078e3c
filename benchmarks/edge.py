"""Measure the edge loop on video files (headless), frame by frame: for every video x model, the FPS sustained,
dropped frames, the share of frames classified (of those with a window due), and p50/p90/p99 of each frame's busy
time and of its latency from capture to pose done, to classified and to its events; a markdown table, JSON, plots
(per-stage time per frame, and the stage timeline of one video).

    python -m benchmarks.edge --videos ../shared/data/video/*.mp4 --model runs/edge/export/best_fp32.onnx \\
        --pose-model ../shared/models/pose_landmarker_full.task --out runs/edge/bench
    python -m benchmarks.edge --videos ../shared/data/video/ta_chi.mp4 --model best.onnx --loop sync   # compare
    python -m benchmarks.edge --pose-speed --videos ../shared/data/video/*.mp4 --out runs/edge/pose_bundles
    python -m benchmarks.edge --untrained configs/nw_ucla_last_small_jvb.yaml --out runs/edge/untrained/last_small_jvb

By default each video is played at its own frame rate, like a camera (--realtime): frames the loop has no time for
are dropped and counted, which is what a user of a 30 fps camera sees. --offline processes every frame as fast as
it can instead. --pose-speed times the MediaPipe pose bundles (lite / full / heavy) that can be found here and
says how to bring the others. --untrained writes a checkpoint of a training config's model without training it
(its speed is the trained model's; its labels mean nothing)."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.cli import ArgumentParser, run_cli
from core.plots import pyplot
from edge.errors import EdgeError

PROG = "python -m benchmarks.edge"
STAGES = ("capture", "pose", "track", "preprocess", "classify", "smoothing", "draw")
TIMELINE_FRAMES = 90  # frames of the stage timeline plot (3 s at 30 fps)


def bench_one(video: Path, model: Path, pose_model: Path, threads: int = 1, stride_s: float | None = None,
              max_frames: int | None = None, out_video: Path | None = None, events: Path | None = None,
              pipelined: bool = True, realtime: bool = True, timeline: bool = False,
              pose_variant: str = "full", stride_frames: int | None = None) -> dict[str, Any]:
    """One video through the edge loop (edge.run's runner); the row of the table, with per-frame records when
    `timeline` (time.perf_counter() of capture / pose done / classified / event, relative to the first capture).
    stride_frames: classify every Nth frame of this video (converted with its own frame rate; overrides stride_s)."""
    from edge.capture import CameraSource, VideoFileSource
    from edge.events import EventWriter
    from edge.overlay import VideoSink
    from edge.recognizer import ActionRecognizerOptions, BaseOptions
    from edge.run import load_runtime_or_fail, make_runner, rss_mb
    probe = VideoFileSource(video)  # one clear line for a bad file before anything starts
    fps = probe.fps
    probe.close()
    if stride_frames is not None:
        stride_s = stride_frames / fps
    runtime = load_runtime_or_fail(str(model), threads)
    writer = EventWriter(events)
    sequence: list[str] = []  # the bench compares label sequences between models: it keeps them, the library not
    frames: list[tuple[float, ...]] = []

    def keep(frame, res) -> None:
        if res.classified:
            sequence.extend(p.label for p in res.persons)
        if timeline:
            t = res.times_s
            frames.append((frame.index, frame.captured_at, t.get("pose_done", np.nan), t.get("classified", np.nan),
                           time.perf_counter()))

    source = sink = None
    try:
        options = ActionRecognizerOptions(base_options=BaseOptions(runtime=runtime, pose_model_path=pose_model,
                                                                   pose_variant=pose_variant), stride_s=stride_s)
        runner, recognizer = make_runner(options, writer, pipelined)
        with recognizer:
            source = (CameraSource(str(video), max_frames, end_is_eof=True) if realtime
                      else VideoFileSource(video, max_frames))
            sink = VideoSink(out_video, source.fps, source.size) if out_video else None
            rss0 = rss_mb()
            started = time.perf_counter()
            result = runner.run(source, sink, on_result=keep, realtime=realtime)
            wall = time.perf_counter() - started
            fps_source = source.fps
    finally:
        for closable in (source, writer, sink):
            if closable is not None:
                closable.close()
    row = {"video": video.name, "size": list(source.size), "model": f"{model.parent.name}/{model.name}", "runtime": runtime.name, "loop":
           "pipelined" if pipelined else "synchronous", "realtime": realtime, "fps_source": fps_source,
           "frames": result.frames, "frames_with_person": result.frames_with_person,
           "classifications": result.classifications, "events": writer.count, "wall_s": wall,
           "fps_wall": result.frames / wall if wall else 0.0, "latency": result.latency, "stats": result.stats,
           "rss_start_mb": rss0, "rss_end_mb": result.rss_end_mb, "labels": sorted(set(sequence)),
           "label_sequence": sequence, "error": result.error, "load_avg_1min": os.getloadavg()[0]}
    if timeline and frames:
        base = frames[0][1]
        row["timeline"] = [[i] + [round((x - base) * 1e3, 3) if x == x else None for x in rest]
                           for i, *rest in frames]  # frame, capture, pose_done, classified, event (ms)
    return row


def _pct(row: dict, path: tuple[str, ...]) -> str:
    value: Any = row
    for key in path:
        value = (value or {}).get(key)
    if not value:
        return "-"
    return f"{value['p50_ms']:.1f} / {value['p90_ms']:.1f} / {value['p99_ms']:.1f}"


def markdown(rows: list[dict]) -> str:
    head = ("| video | model (runtime) | loop | frames (dropped) | FPS | frames classified | busy p50/p90/p99 ms | "
            "capture→pose p50/p90/p99 | capture→classified p50/p90/p99 | capture→event p50/p90/p99 | "
            "pose p50/p90/p99 | classify p50/p90/p99 |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        s = r["stats"]
        share = f"{s['classified_share']:.1%}" if s.get("classified_share") is not None else "-"
        lines.append(f"| {r['video']} | {r['model']} ({r['runtime']}) | {r['loop']} | {s['captured']} "
                     f"({s['dropped']}, {s['dropped_share']:.1%}) | {s['fps'] or 0:.1f} | {share} | "
                     f"{_pct(s, ('busy_ms',))} | {_pct(s, ('latency_ms', 'pose_done'))} | "
                     f"{_pct(s, ('latency_ms', 'classified'))} | {_pct(s, ('latency_ms', 'event'))} | "
                     f"{_pct(s, ('stages_ms', 'pose'))} | {_pct(s, ('stages_ms', 'classify'))} |")
    return "\n".join(lines)


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


def _pyplot():
    plt = pyplot()
    return plt


def plot_stages(rows: list[dict], path: Path) -> None:
    """Mean time per frame by stage (a stage that runs on some frames contributes its mean x count / frames)."""
    plt = _pyplot()
    stages = [s for s in STAGES if any(s in r["latency"] for r in rows)]
    fig, ax = plt.subplots(figsize=(min(14, max(6, 0.8 * len(rows) + 2)), 5))
    bottom = np.zeros(len(rows))
    for s in stages:
        vals = np.array([r["latency"].get(s, {}).get("mean_ms", 0.0) * r["latency"].get(s, {}).get("count", 0)
                         / max(r["frames"], 1) for r in rows])
        ax.bar(range(len(rows)), vals, bottom=bottom, label=s)
        bottom += vals
    ax.scatter(range(len(rows)), [r["stats"]["busy_ms"]["p90_ms"] if r["stats"].get("busy_ms") else np.nan
                                  for r in rows], color="k", marker="_", s=200, zorder=3, label="busy p90")
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([f"{Path(r['video']).stem}\n{r['model']}\n{r['loop']}" for r in rows], fontsize=6,
                       rotation=60, ha="right")
    ax.set_ylabel("ms per frame")
    ax.set_title("edge loop: time per frame by stage (bars: mean; -: busiest thread's p90)")
    ax.axhline(1000 / 30, color="k", ls="--", lw=0.8, label="30 FPS frame")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_timeline(row: dict, path: Path, frames: int = TIMELINE_FRAMES) -> None:
    """The stages of each frame on a time axis (top: the first `frames` frames; bottom: every frame's latency)."""
    plt = _pyplot()
    tl = row["timeline"]
    fig, (ax, bx) = plt.subplots(2, 1, figsize=(11, 6.5), gridspec_kw={"height_ratios": [1.3, 1]})
    lanes = {"pose": 2, "classify": 1, "event": 0}
    for index, capture, pose, classified, event in tl[:frames]:
        ax.broken_barh([(capture, pose - capture)], (lanes["pose"] - 0.35, 0.7), color="tab:blue", alpha=0.6)
        if classified is not None:
            ax.broken_barh([(pose, classified - pose)], (lanes["classify"] - 0.35, 0.7), color="tab:orange",
                           alpha=0.6)
        ax.plot([event], [lanes["event"]], "k|", ms=8)
    period = 1000 / row["fps_source"]
    last = tl[min(frames, len(tl)) - 1][1]
    for k in range(int(last / period) + 2):
        ax.axvline(k * period, color="0.85", lw=0.5, zorder=0)
    ax.set_yticks([2, 1, 0], ["capture→pose done", "pose done→classified", "events out"])
    ax.set_xlabel("ms since the first frame was captured (grey lines: the camera's frame period)")
    ax.set_title(f"{row['video']}, {row['model']} ({row['runtime']}), {row['loop']} loop: the first "
                 f"{min(frames, len(tl))} frames")
    idx = [t[0] for t in tl]
    for col, name, colour in ((2, "pose done", "tab:blue"), (3, "classified", "tab:orange"), (4, "event", "k")):
        ys = [(t[col] - t[1]) if t[col] is not None else np.nan for t in tl]
        bx.plot(idx, ys, ".", ms=3, color=colour, label=f"capture → {name}")
    bx.axhline(period, color="k", ls="--", lw=0.8, label=f"frame ({period:.1f} ms)")
    bx.set_xlabel("frame")
    bx.set_ylabel("latency from capture (ms)")
    bx.legend(fontsize=7, ncol=4)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def pose_speed(videos: list[Path], pose_model: str | None, frames: int | None) -> list[dict[str, Any]]:
    """Pose Landmarker time per frame (VIDEO mode, one thread of the caller) for each bundle found here."""
    from edge.capture import VideoFileSource
    from edge.errors import PoseModelError
    from edge.pose import POSE_VARIANTS, MediaPipePose, resolve_pose_model, verify_pose_model
    from core.timing import summarize
    rows = []
    for variant in POSE_VARIANTS:
        try:
            path = resolve_pose_model(pose_model if variant == "full" else None, variant, download=False)
        except PoseModelError as exc:
            rows.append({"variant": variant, "status": "not here", "how": str(exc)})
            continue
        times: list[float] = []
        found = 0
        for video in videos:
            source = VideoFileSource(video, frames)
            with MediaPipePose(path, mode="video") as pose:
                for frame in source:
                    started = time.perf_counter()
                    people = pose.detect(frame.image, int(frame.time_s * 1000))
                    times.append((time.perf_counter() - started) * 1e3)
                    found += bool(people)
            source.close()
        s = summarize(times[10:] or times, keep_samples=False)
        rows.append({"variant": variant, "status": "ok", "path": str(path),
                     "verified": verify_pose_model(path, variant),
                     "frames": len(times), "frames_with_person": found, "p50_ms": s.p50_ms, "p90_ms": s.p90_ms,
                     "p99_ms": s.p99_ms, "mean_ms": s.mean_ms})
    return rows


def untrained(config: str, overrides: list[str], out: Path) -> Path:
    """The model a training config would train, saved untrained (speed measurements before training ends)."""
    from core.checkpoint import save_checkpoint
    from train.config import load_config
    from train.trainer import load_data, make_model, make_spec
    cfg = load_config(config, overrides)
    train, _ = load_data(cfg)
    spec = make_spec(cfg, train)
    model = make_model(cfg, spec, train.num_classes).eval()
    return save_checkpoint(out / "best.pt", model, spec, list(train.class_names),
                           metrics={"untrained": True}, extra={"untrained_from": str(config)})


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", nargs="+", help="video files")
    p.add_argument("--model", nargs="+", help="one or more artifacts (.pt/.onnx/.tflite/...)")
    p.add_argument("--pose-model", help="MediaPipe .task (default: $LAST_POSE_MODEL, cache, download)")
    p.add_argument("--pose-variant", default="full", choices=("lite", "full", "heavy"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--stride-s", type=float, help="seconds between classifications (default: every model frame)")
    p.add_argument("--loop", choices=("pipelined", "sync", "both"), default="pipelined")
    p.add_argument("--offline", action="store_true", help="every frame as fast as possible (default: the "
                   "video's own frame rate, frames the loop has no time for dropped, like a camera)")
    p.add_argument("--max-frames", type=int)
    p.add_argument("--out", default="runs/edge/bench", help="output folder (default: %(default)s)")
    p.add_argument("--video-out", action="store_true", help="also write the overlay videos")
    p.add_argument("--timeline", help="VIDEO:MODEL (file names) whose stage timeline is plotted (default: the first)")
    p.add_argument("--pose-speed", action="store_true", help="time the pose bundles found here instead")
    p.add_argument("--untrained", metavar="CONFIG", help="write CONFIG's model untrained to --out/best.pt and stop "
                   "(key=value overrides after --)")
    p.add_argument("overrides", nargs="*", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.untrained:
        path = untrained(args.untrained, args.overrides, out)
        print(f"untrained checkpoint: {path}")
        return 0
    if not args.videos:
        p.error("--videos is required")
    videos = [Path(v) for v in args.videos]
    for v in videos:
        if not v.is_file():
            p.error(f"--videos: no such file {v}")
    if args.pose_speed:
        rows = pose_speed(videos, args.pose_model, args.max_frames)
        (out / "pose_bundles.json").write_text(json.dumps(rows, indent=1))
        print("| bundle | frames (person) | pose p50 / p90 / p99 ms |\n|---|---|---|")
        for r in rows:
            if r["status"] == "ok":
                print(f"| {r['variant']} | {r['frames']} ({r['frames_with_person']}) | {r['p50_ms']:.1f} / "
                      f"{r['p90_ms']:.1f} / {r['p99_ms']:.1f} |")
            else:
                print(f"| {r['variant']} | not here: {r['how']} | - |")
        print(f"wrote {out / 'pose_bundles.json'}")
        return 0
    if not args.model:
        p.error("--model is required")
    from tqdm import tqdm

    from edge.pose import resolve_pose_model
    loops = {"pipelined": [True], "sync": [False], "both": [True, False]}[args.loop]
    pick = args.timeline.split(":") if args.timeline else [videos[0].name, Path(args.model[0]).name]
    rows = []
    try:
        pose_model = resolve_pose_model(args.pose_model, args.pose_variant)
        jobs = [(v, Path(m), lp) for m in args.model for lp in loops for v in videos]
        for video, model, pipelined in tqdm(jobs, desc="edge bench", unit="run"):
            stem = f"{video.stem}__{model.stem}__{'pipelined' if pipelined else 'sync'}"
            rows.append(bench_one(video, model, pose_model, args.threads, args.stride_s, args.max_frames,
                                  out / f"{stem}.mp4" if args.video_out else None, out / f"{stem}.jsonl",
                                  pipelined, not args.offline, timeline=True, pose_variant=args.pose_variant))
    except EdgeError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    table = markdown(rows)
    if len(args.model) > 1:
        table += "\n\n" + agreement(rows)
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    (out / "report.md").write_text(table + "\n")
    plot_stages(rows, out / "latency.png")
    chosen = next((r for r in rows if [r["video"], Path(r["model"]).name] == pick and "timeline" in r),
                  next((r for r in rows if "timeline" in r), None))
    if chosen is not None:
        plot_timeline(chosen, out / "timeline.png")
    print(table)
    for r in rows:
        if r["frames_with_person"] == 0:
            print(f"{r['video']}: no person detected in any of the {r['frames']} frames")
        if r["error"]:
            print(f"{r['video']}: {r['error']}")
    print(f"wrote {out / 'report.md'}, {out / 'results.json'}, {out / 'latency.png'}, {out / 'timeline.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, PROG))
