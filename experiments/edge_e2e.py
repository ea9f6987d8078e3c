"""The "your own actions" path end to end, measured: videos -> edge.extract -> train.fit (mediapipe33) ->
converters.onnx -> the edge library / edge.run, on real data.

    python -m experiments.edge_e2e --out runs/e2e                   # both parts below (~10 min on 2 busy cores)

Part A, the shared real videos (../shared/data/video: tai chi, clean and jerk, skateboarding, ~10 s each, and a
first-person climbing video with nobody in it). With one video per action, a clip-level accuracy would be
meaningless, so each video is cut into 1 s clips by time: the first 70 % of each video trains, the last 30 %
tests. The figure answers "after seeing the first 7 s of these three people, is the model right about their last
3 s?"; it says nothing about other people doing these actions. The exported model then runs on every video
through edge.run, and the share of its classifications in each video's held-out last 30 % that name the video's
action is reported too.

Part B, real MediaPipe recordings (../shared/data/mediapipe/pose33_sequences.npz: 90 one-second clips of three
signs): train on the seeded stratified split's 72 training clips, export to ONNX, and replay each of the 18 test
clips through ActionRecognizer (SKELETONS mode, the ONNX model); the label at the clip's end is its prediction.

Every step is a real command (printed as it runs); results go to <out>/e2e.json, a markdown table, and a plot."""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from core.data import load_split
from core.data.paths import shared_root
from core.plots import pyplot
from edge.events import read_events
from edge.recognizer import ActionRecognizer, ActionRecognizerOptions, BaseOptions, PoseOptions, RunningMode

PY = sys.executable


def run(cmd: list[str], log: Path) -> float:
    """Run a command, echo it, keep its output in `log`; returns its wall time. Raises on failure."""
    print("$ " + " ".join(shlex.quote(str(c)) for c in cmd), flush=True)
    started = time.perf_counter()
    with log.open("a") as fh:
        fh.write("$ " + " ".join(map(str, cmd)) + "\n")
        fh.flush()
        proc = subprocess.run([str(c) for c in cmd], stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise SystemExit(f"edge_e2e: error: command failed ({proc.returncode}), see {log}")
    return time.perf_counter() - started


def onnx_in(folder: Path) -> Path:
    found = sorted(folder.glob("*fp32*.onnx")) or sorted(folder.glob("*.onnx"))
    if not found:
        raise SystemExit(f"edge_e2e: error: no .onnx written in {folder}")
    return found[0]


def summary_of(run_dir: Path) -> dict:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    best = max(rows, key=lambda r: r["val_top1"])
    return {"epochs": len(rows), "best_epoch": best["epoch"], "best_top1": best["val_top1"],
            "last_top1": rows[-1]["val_top1"]}


def part_a(out: Path, pose_model: Path, epochs: int, log: Path) -> dict:
    videos = out / "videos"
    sources = sorted((shared_root() / "data" / "video").glob("*.mp4"))
    for v in sources:
        (videos / v.stem).mkdir(parents=True, exist_ok=True)
        link = videos / v.stem / v.name
        if not link.exists():
            link.symlink_to(v.resolve())
    data, train_dir, export_dir = out / "data", out / "videos_model", out / "videos_export"
    times = {"extract_s": run([PY, "-m", "edge.extract", "--videos", videos, "--out", data, "--pose-model", pose_model,
                               "--workers", "1", "--segment-s", "1", "--holdout-tail", "0.3", "--no-progress"], log)}
    times["train_s"] = run([PY, "-m", "train.fit", "--config", "configs/synthetic.yaml", f"data.name=custom:{data}",
                            "data.frames=30", "data.num_workers=0", "model.variant=last_nano", "optim.batch_size=8",
                            f"schedule.epochs={epochs}", f"output_dir={train_dir}", "train.threads=1",
                            "--overwrite"], log)
    times["export_s"] = run([PY, "-m", "converters.onnx", "--ckpt", train_dir / "best.pt", "--out", export_dir], log)
    model = onnx_in(export_dir)
    manifest = json.loads((data / "manifest.json").read_text())
    rows = []
    for v in sources:
        events = out / "videos_run" / f"{v.stem}.jsonl"
        events.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        run([PY, "-m", "edge.run", "--video", v, "--model", model, "--pose-model", pose_model, "--headless",
             "--events", events, "--no-progress"], log)
        wall = time.perf_counter() - t0
        evs = read_events(events)
        end = evs[-1]
        duration = end["frames"] / 30.0
        starts = [(e["time"], e["action"]) for e in evs if e["event"] == "action_start"]
        # the action in force at each moment of the held-out tail, from the start/end events
        spans = [(e["start"], e["time"], e["action"]) for e in evs if e["event"] == "action_end"]
        tail_from = 0.7 * duration
        covered = sum(max(0.0, min(b, duration) - max(a, tail_from)) for a, b, act in spans if act == v.stem)
        other = sum(max(0.0, min(b, duration) - max(a, tail_from)) for a, b, act in spans if act != v.stem)
        rows.append({"video": v.name, "class": v.stem if v.stem in manifest["class_names"] else None,
                     "frames": end["frames"], "frames_with_person": end["frames_with_person"],
                     "classifications": end["classifications"], "actions_started": starts,
                     "tail_s": duration - tail_from, "tail_right_s": covered, "tail_wrong_s": other,
                     "fps": end.get("fps"), "wall_s": wall})
    test = load_split(f"custom:{data}", "test")
    train = load_split(f"custom:{data}", "train")
    return {"manifest_samples": len(manifest["samples"]), "skipped": manifest["skipped"],
            "classes": manifest["class_names"], "train_clips": len(train), "test_clips": len(test),
            "train": summary_of(train_dir), "model": str(model), "videos": rows, "times": times}


def part_b(out: Path, epochs: int, log: Path) -> dict:
    train_dir, export_dir = out / "pose33_model", out / "pose33_export"
    times = {"train_s": run([PY, "-m", "train.fit", "--config", "configs/synthetic.yaml", "data.name=mediapipe",
                             "data.frames=30", "data.num_workers=0", "model.variant=last_nano", "optim.batch_size=8",
                             f"schedule.epochs={epochs}", f"output_dir={train_dir}", "train.threads=1",
                             "--overwrite"], log)}
    times["export_s"] = run([PY, "-m", "converters.onnx", "--ckpt", train_dir / "best.pt", "--out", export_dir], log)
    model = onnx_in(export_dir)
    test = load_split("mediapipe", "test")
    right = right_raw = 0
    confusion = np.zeros((len(test.class_names),) * 2, int)
    options = ActionRecognizerOptions(base_options=BaseOptions(model_path=model), running_mode=RunningMode.SKELETONS,
                                      window_s=1.0, pose_options=PoseOptions(min_body_visibility=0.0))  # upper body
    started = time.perf_counter()
    for i in range(len(test)):
        clip = test.sample(i)  # (M, T, 33, C)
        with ActionRecognizer.create_from_options(options) as rec:
            last = None
            for t in range(clip.shape[1]):
                res = rec.recognize_for_video(clip[:, t], t * 1000.0 / 30)
                if res.classified:
                    last = res.persons[0]
        truth = int(test.labels[i])
        predicted = test.class_names.index(last.label) if last is not None and last.label in test.class_names else -1
        raw = int(np.argmax(last.probabilities)) if last is not None else -1
        right += predicted == truth
        right_raw += raw == truth
        if raw >= 0:
            confusion[truth, raw] += 1
    times["replay_s"] = time.perf_counter() - started
    return {"test_clips": len(test), "train": summary_of(train_dir), "model": str(model),
            "api_top1": right / len(test), "api_argmax_top1": right_raw / len(test),
            "confusion": confusion.tolist(), "classes": list(test.class_names), "times": times}


def report(result: dict, out: Path) -> str:
    lines = ["| data | train / test clips | best epoch top-1 (epoch) | last epoch top-1 | through the edge library / loop |",
             "|---|---|---|---|---|"]
    if "videos" in result:
        a = result["videos"]
        tail = sum(r["tail_right_s"] for r in a["videos"] if r["class"])
        total = sum(r["tail_s"] for r in a["videos"] if r["class"])
        lines.append(f"| shared videos, 1 s clips, split by time | {a['train_clips']} / {a['test_clips']} | "
                     f"{a['train']['best_top1']:.3f} ({a['train']['best_epoch']}) | {a['train']['last_top1']:.3f} | "
                     f"edge.run on the ONNX model: the right action in force {tail:.1f} s of the {total:.1f} s "
                     f"held-out tails ({tail / total:.0%}) |")
    if "pose33" in result:
        b = result["pose33"]
        n = b["test_clips"]
        lines.append(f"| MediaPipe recordings (3 signs) | {90 - n} / {n} | {b['train']['best_top1']:.3f} "
                     f"({b['train']['best_epoch']}) | {b['train']['last_top1']:.3f} | ActionRecognizer + ONNX: "
                     f"{b['api_top1']:.3f} (smoothed label), {b['api_argmax_top1']:.3f} (argmax) |")
    text = "\n".join(lines)
    if "videos" in result:
        text += "\n\n| video | frames (with person) | classifications | actions started (time s, action) |\n|---|---|---|---|\n"
        text += "\n".join(f"| {r['video']} | {r['frames']} ({r['frames_with_person']}) | {r['classifications']} | "
                          + ", ".join(f"{t:.1f} {a}" for t, a in r["actions_started"]) + " |"
                          for r in result["videos"]["videos"])
    (out / "e2e.md").write_text(text + "\n")
    try:
        plt = pyplot()
        bars = []
        if "videos" in result:
            a = result["videos"]
            bars += [("videos: best", a["train"]["best_top1"]), ("videos: last", a["train"]["last_top1"])]
        if "pose33" in result:
            b = result["pose33"]
            bars += [("signs: best", b["train"]["best_top1"]), ("signs: last", b["train"]["last_top1"]),
                     ("signs: library", b["api_top1"])]
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.bar([k for k, _ in bars], [v for _, v in bars])
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("top-1 on held-out clips")
        ax.set_title("extract -> train -> export -> run (last_nano, mediapipe33)")
        plt.setp(ax.get_xticklabels(), rotation=20, ha="right", fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "e2e.png", dpi=110)
    except ImportError:
        pass
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.edge_e2e", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/e2e")
    p.add_argument("--pose-model", default=None, help="default: pose_landmarker_full.task of the shared data")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--only", choices=("videos", "pose33"), help="run one part")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "commands.log"
    result: dict = {}
    if args.only in (None, "videos"):
        result["videos"] = part_a(out, Path(args.pose_model or shared_root() / "models" / "pose_landmarker_full.task"),
                                   args.epochs, log)
    if args.only in (None, "pose33"):
        result["pose33"] = part_b(out, args.epochs, log)
    (out / "e2e.json").write_text(json.dumps(result, indent=1))
    print(report(result, out))
    print(f"wrote {out / 'e2e.json'}, {out / 'e2e.md'}, {out / 'e2e.png'}; commands and their output: {log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
