"""Decision latency and label flicker of the edge loop on replays whose action boundaries are known, per model and
per window / stride / smoothing setting, so a user can choose them from numbers.

    python -m benchmarks.decision --model runs/edge/synthetic_export/best_fp32.onnx --replay synthetic
    python -m benchmarks.decision --model runs/edge/pose33_export/best_fp32.onnx --replay mediapipe

Replays (one person, SKELETONS mode, the loop's own ActionRecognizer):
- synthetic: the procedural actions the model was trained on, ~3 s each (one 32-frame clip, the training length,
  three times), one after the other; every second change of action has 0.5 s with nobody in view between the two
  (a person stepping out and back in).
- mediapipe: the real MediaPipe recordings of the held-out test clips (core.data.mediapipe's seeded split), two
  clips of one sign back to back (2 s), then the next sign; every second change has 0.5 s with nobody between.
  Upper-body recordings: the body check is off (min_body_visibility 0); the window is 1 s (the clips are 1 s).

For each true action segment [onset, end): decision latency = the time of the first `action_start` of its action
after its onset (stream time of the window that decided), missed when none comes before the segment ends.
Flicker = action_start events that are not the first detection of a segment (a label that changes and changes
back, or a wrong action), per minute of stream. With several models, each row also gives the share of frames on
which it shows the first model's label (e.g. an INT8 file against its PyTorch checkpoint). Writes decision.json, a
markdown table and a timeline plot."""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.cli import ArgumentParser, BadInput, run_cli
from core.plots import pyplot
from core.runtime import load_runtime
from edge.recognizer import (ActionRecognizer, ActionRecognizerOptions, BaseOptions, PersonOptions, PoseOptions,
                             RunningMode, SmoothingOptions)

PROG = "python -m benchmarks.decision"
FPS = 30.0
GAP_S = 0.5
CLIP_FRAMES = 32  # the synthetic training clips' length (configs/synthetic.yaml data.frames)


@dataclass
class Replay:
    name: str
    frames: np.ndarray  # (T, V, C) one person; all-zero frames: nobody in view
    segments: list[tuple[str, float, float]]  # (action, onset s, end s)
    layout: str
    upper_body: bool = False


def _join(parts: list[tuple[str, np.ndarray]], name: str, layout: str, upper_body: bool = False) -> Replay:
    """Segments one after the other; before every second one (after the first) GAP_S of nobody."""
    frames, segments, t = [], [], 0
    for i, (action, clip) in enumerate(parts):
        if i and i % 2 == 0:
            gap = int(round(GAP_S * FPS))
            frames.append(np.zeros((gap,) + clip.shape[1:], np.float32))
            t += gap
        frames.append(clip.astype(np.float32))
        segments.append((action, t / FPS, (t + len(clip)) / FPS))
        t += len(clip)
    return Replay(name, np.concatenate(frames), segments, layout, upper_body)


def synthetic_replay(classes: list[str], layout: str, seconds: float = 3.0, rounds: int = 3, seed: int = 0) -> Replay:
    from core.synthetic import SYNTHETIC_ACTIONS, synthetic_clip
    actions = [c for c in classes if c in SYNTHETIC_ACTIONS]
    if len(actions) < 2:
        raise BadInput(f"--replay synthetic needs a model trained on synthetic actions; its classes are {classes}")
    rng = np.random.default_rng(seed)
    order: list[str] = []
    for _ in range(rounds):
        round_ = list(rng.permutation(actions))
        if order and round_[0] == order[-1]:
            round_ = round_[1:] + round_[:1]
        order += round_
    # a clip's motion spans 1.5-3 cycles whatever its length, so the segment repeats one clip of the training
    # length (its speed is the training clips' speed; one seed: the body stays where it is)
    repeats = max(1, int(round(seconds * FPS / CLIP_FRAMES)))
    parts = [(a, np.tile(synthetic_clip(a, layout, CLIP_FRAMES, seed=seed * 1000 + i)[0], (repeats, 1, 1)))
             for i, a in enumerate(order)]
    return _join(parts, "synthetic", layout)


def mediapipe_replay(classes: list[str], seed: int = 0) -> Replay:
    from core.data.mediapipe import load_mediapipe
    test = load_mediapipe("test")
    if sorted(test.class_names) != sorted(classes):
        raise BadInput(f"--replay mediapipe needs a model trained on the MediaPipe recordings "
                       f"({', '.join(test.class_names)}); its classes are {classes}")
    by_class: dict[str, list[np.ndarray]] = {}
    for i in range(len(test)):
        by_class.setdefault(test.class_names[int(test.labels[i])], []).append(test.sample(i)[0])  # (T, V, C)
    rng = np.random.default_rng(seed)
    pairs = []
    for name, clips in by_class.items():
        pairs += [(name, np.concatenate(clips[k:k + 2])) for k in range(0, len(clips) - 1, 2)]
    order = [pairs[i] for i in rng.permutation(len(pairs))]
    for k in range(1, len(order)):  # no two segments of one sign in a row (the boundary would be invisible)
        if order[k][0] == order[k - 1][0]:
            swap = next((j for j in range(k + 1, len(order)) if order[j][0] != order[k - 1][0]), None)
            if swap is not None:
                order[k], order[swap] = order[swap], order[k]
    return _join(order, "mediapipe", test.layout, upper_body=True)


def replay_decisions(runtime, replay: Replay, window_s: float | None, stride_frames: int, alpha: float,
                     min_confidence: float = 0.5) -> dict[str, Any]:
    """Run the replay through the recognizer; the action events and the label on every frame."""
    options = ActionRecognizerOptions(
        base_options=BaseOptions(runtime=runtime), running_mode=RunningMode.SKELETONS, skeleton_layout=replay.layout,
        window_s=window_s, stride_s=stride_frames / runtime.spec.model_fps, min_confidence=min_confidence,
        pose_options=PoseOptions(min_body_visibility=0.0 if replay.upper_body else 0.5),
        person_options=PersonOptions(), smoothing_options=SmoothingOptions(alpha=alpha))
    starts: list[tuple[float, str]] = []
    labels: list[str] = []
    with ActionRecognizer(options) as rec:
        for t, frame in enumerate(replay.frames):
            people = frame[None] if np.abs(frame).sum() > 0 else None
            res = rec.recognize_for_video(people, t * 1000.0 / FPS)
            starts += [(e.time_s, e.action) for e in res.events if e.kind == "action_start"]
            labels.append(res.persons[0].label if res.persons else "")
        window = rec.window_size / rec.model_fps
    return {"starts": starts, "labels": labels, "window_s": window}


def score(replay: Replay, starts: list[tuple[float, str]]) -> dict[str, Any]:
    """Decision latency per segment, misses, flicker (extra action starts per minute)."""
    latencies: list[float | None] = []
    used: set[int] = set()
    for action, onset, end in replay.segments:
        hit = next((k for k, (t, a) in enumerate(starts) if a == action and onset <= t < end and k not in used), None)
        if hit is None:
            latencies.append(None)
        else:
            used.add(hit)
            latencies.append(starts[hit][0] - onset)
    found = [x for x in latencies if x is not None]
    minutes = len(replay.frames) / FPS / 60
    wrong = sum(1 for k, (t, a) in enumerate(starts) if k not in used and not any(
        a == s and o <= t < e for s, o, e in replay.segments))
    return {"segments": len(replay.segments), "detected": len(found), "missed": len(latencies) - len(found),
            "latency_s": latencies,
            "latency_p50_s": float(np.median(found)) if found else None,
            "latency_p90_s": float(np.percentile(found, 90)) if found else None,
            "latency_max_s": float(max(found)) if found else None,
            "within_0_5_s": sum(x <= 0.5 for x in found), "extra_starts": len(starts) - len(used),
            "wrong_starts": wrong, "flicker_per_min": (len(starts) - len(used)) / minutes}


def label_agreement(reference: list[str], labels: list[str]) -> float | None:
    """The share of frames on which either run shows a label where the two show the same one."""
    shown = [(a, b) for a, b in zip(reference, labels) if a or b]
    return sum(a == b for a, b in shown) / len(shown) if shown else None


def markdown(rows: list[dict]) -> str:
    head = ("| model | replay | window s | stride (frames) | EMA alpha | detected / segments | latency p50 / p90 / "
            "max s | within 0.5 s | extra starts (wrong action) | flicker / min | labels = first model's |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        f = "-" if r["latency_p50_s"] is None else \
            f"{r['latency_p50_s']:.2f} / {r['latency_p90_s']:.2f} / {r['latency_max_s']:.2f}"
        lines.append(f"| {r['model']} | {r['replay']} | {r['window_s']:.2f} | {r['stride']} | {r['alpha']:g} | "
                     f"{r['detected']} / {r['segments']} | {f} | {r['within_0_5_s']} | {r['extra_starts']} "
                     f"({r['wrong_starts']}) | {r['flicker_per_min']:.1f} | "
                     + ("-" if r.get("same_labels_as_first_model") is None
                        else f"{100 * r['same_labels_as_first_model']:.1f} %") + " |")
    return "\n".join(lines)


def plot(replay: Replay, run: dict, title: str, path: Path) -> None:
    plt = pyplot()
    names = sorted({a for a, _, _ in replay.segments})
    row = {n: i for i, n in enumerate(names)}
    fig, ax = plt.subplots(figsize=(11, 2.8))
    for action, onset, end in replay.segments:
        ax.broken_barh([(onset, end - onset)], (row[action] - 0.4, 0.8), color="0.85")
    t = np.arange(len(run["labels"])) / FPS
    y = [row.get(label, np.nan) for label in run["labels"]]
    ax.plot(t, y, "-", color="tab:blue", lw=1.5, label="label (smoothed)")
    for ts, action in run["starts"]:
        ax.plot([ts], [row.get(action, np.nan)], "v", color="tab:red", ms=6)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("stream time (s); grey: true action, red: action_start")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", nargs="+", required=True, help="artifacts (.pt/.onnx/.tflite/...)")
    p.add_argument("--replay", choices=("synthetic", "mediapipe"), required=True)
    p.add_argument("--window-s", type=float, nargs="+", default=[None],
                   help="window lengths (default: the model's; the mediapipe replay uses 1.0)")
    p.add_argument("--stride", type=int, nargs="+", default=[1, 4], help="model frames between classifications")
    p.add_argument("--alpha", type=float, nargs="+", default=[1.0, 0.5, 0.25], help="EMA weights (1: no smoothing)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/edge/decision", help="output folder (default: %(default)s)")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, plotted = [], False
    reference: dict[tuple, list[str]] = {}  # the first model's label on every frame, per setting
    for model in args.model:
        runtime = load_runtime(model, threads=1)
        classes = list(runtime.class_names)
        if args.replay == "synthetic":
            replay = synthetic_replay(classes, runtime.spec.layout, seed=args.seed)
        else:
            replay = mediapipe_replay(classes, seed=args.seed)
        windows = [1.0 if w is None and args.replay == "mediapipe" else w for w in args.window_s]
        for window_s, stride, alpha in itertools.product(windows, args.stride, args.alpha):
            run = replay_decisions(runtime, replay, window_s, stride, alpha)
            row = {"model": Path(model).parent.name + "/" + Path(model).name, "replay": replay.name,
                   "window_s": run["window_s"], "stride": stride, "alpha": alpha, **score(replay, run["starts"])}
            first = reference.setdefault((window_s, stride, alpha), run["labels"])
            row["same_labels_as_first_model"] = label_agreement(first, run["labels"])
            rows.append(row)
            print(markdown([row]).splitlines()[-1], flush=True)
            if not plotted and stride == 1 and alpha == 0.5:
                plot(replay, run, f"{row['model']} on the {replay.name} replay (window {run['window_s']:.2f} s, "
                     "stride 1, alpha 0.5)", out / f"timeline_{replay.name}.png")
                plotted = True
        runtime.close()
    (out / f"decision_{args.replay}.json").write_text(json.dumps(rows, indent=1))
    table = markdown(rows)
    (out / f"decision_{args.replay}.md").write_text(table + "\n")
    print(table)
    print(f"wrote {out / f'decision_{args.replay}.json'}, {out / f'decision_{args.replay}.md'}, "
          f"{out / f'timeline_{args.replay}.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, PROG))
