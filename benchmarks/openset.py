"""How well does a model say "nothing I know"? Open-set scores of a checkpoint on its in-distribution test clips
against clips of actions it was never trained on (other data sets mapped to its layout) and random motion: AUROC per
score, and the share rejected at the threshold stored in the checkpoint (chosen on validation clips by
`python -m train.openset`).

    python -m benchmarks.openset --ckpt runs/openset/last_small_jvb/best.pt --data nw_ucla:test \\
        --videos ../shared/data/video --pose-model pose_landmarker_full.task --out runs/openset/last_small_jvb

Out-of-distribution sets (all mapped to the model's layout with core.mapping, y up as the edge loop feeds them):
- `mediapipe`: the shared MediaPipe Holistic recordings (signs: hello, iloveyou, thanks), every clip;
- `videos`: MediaPipe Pose world landmarks of the shared single-person videos (tai chi, clean and jerk,
  skateboarding; --videos), cut into 2 s clips;
- `ntu`: the shared real NTU RGB+D .skeleton file (drink water), one clip;
- `synthetic`: the toolkit's procedural actions (wave, clap, squat, jump, punch, kick, arm circles, walk in place);
- `random_gaussian`: every joint of every frame drawn from N(0, 0.5 m);
- `random_walk`: a human mean pose (of the validation clips) whose joints drift as independent random walks.
The last three are generated with other seeds than the ones train.openset's --score auto looked at (same
generators, so they are the optimistic rows; "pooled, other data sets" leaves them out). The rule comes from the
checkpoint (its kind; the other scores' thresholds are chosen on the same validation clips, with the same body
test): the test split only scores it. Writes openset.md, openset.json and openset.png (score histograms with the
threshold)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.report import pyplot, write_results
from core.checkpoint import build_model, input_spec, load_checkpoint
from core.cli import ArgumentParser, BadInput, run_cli
from core.data.paths import shared_root
from core.data.prepared import SkeletonSplit
from core.evaluation import check_split_matches, load_data_split, predict_split, torch_predict_fn
from core.mapping import convert_layout, mediapipe_world_to_camera
from core.markdown import table_head
from core.openset import SCORES, OpenSet, auroc, body_unsteadiness, mean_pose, outlier_split, rejection
from core.plots import save_figure

PROG = "python -m benchmarks.openset"
VIDEO_CLIP_S = 2.0
REAL_SETS = ("mediapipe", "ntu", "videos")  # recorded actions of other data sets


def _split(data: np.ndarray, name: str, layout: str, lengths: np.ndarray | None = None) -> SkeletonSplit:
    """Unlabelled clips (N, M, T, V, C) as a SkeletonSplit (label 0: out-of-distribution clips have none)."""
    n = len(data)
    lengths = lengths if lengths is not None else np.full(n, data.shape[2], np.int64)
    return SkeletonSplit(data.astype(np.float32), lengths.astype(np.int64), np.zeros(n, np.int64),
                         [f"{name}_{i:04d}" for i in range(n)], ["unknown"], layout, fps=30.0, name=name)


def _persons(x: np.ndarray, persons: int) -> np.ndarray:
    """(N, M', T, V, C) -> (N, persons, T, V, C): extra people dropped, missing ones all zero."""
    out = np.zeros((x.shape[0], persons) + x.shape[2:], np.float32)
    k = min(persons, x.shape[1])
    out[:, :k] = x[:, :k]
    return out


def mediapipe_recordings(shared: Path, layout: str, persons: int) -> SkeletonSplit:
    from core.data.mediapipe import load_mediapipe
    rec = load_mediapipe("all", shared / "data" / "mediapipe" / "pose33_sequences.npz")
    data = mediapipe_world_to_camera(rec.data)  # image axes (y down) -> the loop's camera axes (y up)
    return _split(_persons(convert_layout(data, "mediapipe33", layout), persons), "mediapipe", layout, rec.lengths)


def ntu_clip(shared: Path, layout: str, persons: int) -> SkeletonSplit:
    from core.data.ntu import denoise, read_skeleton
    x, _ = denoise(read_skeleton(shared / "data" / "ntu" / "S001C001P001R001A001.skeleton"), persons)
    return _split(convert_layout(x[None], "ntu25", layout), "ntu", layout)


def video_clips(videos: Path, pose_model: Path, layout: str, persons: int, cache: Path) -> SkeletonSplit:
    """MediaPipe Pose world landmarks (the loop's camera axes) of every video in `videos`, in 2 s clips."""
    from edge.extract import read_skeletons
    from edge.pose import MediaPipePose
    clips = []
    for video in sorted(videos.glob("*.mp4")):
        path = cache / f"{video.stem}.world.npy"
        if path.is_file():
            data = np.load(path, allow_pickle=False)
        else:
            with MediaPipePose(pose_model, mode="video", num_poses=1) as pose:
                data, _, _ = read_skeletons(video, pose, 1, 30.0)  # (1, T, 33, 4)
            cache.mkdir(parents=True, exist_ok=True)
            np.save(path, data)
        step = int(VIDEO_CLIP_S * 30)
        for s in range(0, data.shape[1] - step + 1, step):
            clip = data[:, s:s + step, :, :3]
            if (np.abs(clip).sum(axis=(0, 2, 3)) > 0).mean() >= 0.75:  # a person in most frames
                clips.append(clip)
    if not clips:
        raise BadInput(f"--videos {videos}: no clip with a person")
    data = convert_layout(np.stack(clips), "mediapipe33", layout)
    return _split(_persons(data, persons), "videos", layout)


def score_table(logits: dict[str, np.ndarray], clips: dict[str, np.ndarray], val_logits: np.ndarray,
                val_clips: np.ndarray, rule: OpenSet, layout: str) -> dict[str, Any]:
    """AUROC of every score (in-distribution = 'test'; the body test applied to all) and the share rejected at the
    thresholds chosen on the validation clips (the stored rule for its own kind)."""
    rules = {k: rule if k == rule.kind else OpenSet.fit(val_logits, val_clips, layout, k, rule.keep, rule.data,
                                                        rule.temperature) for k in SCORES}
    scores = {name: {k: rules[k].scores(z, clips[name]) for k in SCORES} for name, z in logits.items()}
    body = {name: float((body_unsteadiness(clips[name], layout) > rule.body_max).mean())
            if rule.body_max is not None else 0.0 for name in logits}
    ood = [n for n in logits if n != "test"]
    groups = {n: [n] for n in ood}
    groups["pooled, other data sets"] = [n for n in ood if n in REAL_SETS]
    groups["pooled, all"] = ood
    rows = {}
    for name, members in groups.items():
        s = {k: np.concatenate([scores[m][k] for m in members]) for k in SCORES}
        rows[name] = {"clips": int(len(s[rule.kind])),
                      "auroc": {k: auroc(scores["test"][k], s[k]) for k in SCORES},
                      "rejected": {k: rejection(rules[k].threshold, s[k]) for k in SCORES},
                      "body_test_rejected": float(np.mean([body[m] for m in members for _ in range(len(logits[m]))]))}
    kept = {k: 1.0 - rejection(rules[k].threshold, scores["test"][k]) for k in SCORES}
    return {"thresholds": {k: rules[k].threshold for k in SCORES}, "test_kept": kept, "sets": rows,
            "test_body_rejected": body["test"], "scores": {n: scores[n][rule.kind].tolist() for n in logits}}


def markdown(result: dict[str, Any]) -> str:
    kind = result["rule"]["kind"]
    t = result["table"]
    lines = [f"{result['ckpt']}: {result['data']} top-1 {100 * result['test_top1']:.1f} % "
             f"({result['test_clips']} clips); stored rule: body test <= {result['rule']['body_max']}, {kind} >= "
             f"{result['rule']['threshold']:.4f} (chosen on "
             f"{result['rule']['data']}, {result['rule']['clips']} clips, keeps {100 * result['rule']['kept']:.1f} "
             f"%): keeps {100 * t['test_kept'][kind]:.1f} % of the test clips, top-1 on those kept "
             f"{100 * result['kept_top1']:.1f} %", ""]
    mark = {k: f"{k} (stored)" if k == kind else k for k in SCORES}
    lines += table_head(["out-of-distribution set", "clips", "body test rejects"] + [f"AUROC {mark[k]}" for k in
                                                                                  SCORES] +
                        [f"rejected, {mark[k]}" for k in SCORES])
    for name, r in t["sets"].items():
        lines.append(f"| {name} | {r['clips']} | {100 * r['body_test_rejected']:.1f} % | " +
                     " | ".join(f"{r['auroc'][k]:.3f}" for k in SCORES) + " | " +
                     " | ".join(f"{100 * r['rejected'][k]:.1f} %" for k in SCORES) + " |")
    lines.append(f"| in-distribution test clips **kept** | {result['test_clips']} | "
                 f"{100 * t['test_body_rejected']:.1f} % rejected | " + " | ".join("" for _ in SCORES) + " | " +
                 " | ".join(f"{100 * t['test_kept'][k]:.1f} %" for k in SCORES) + " |")
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> Path:
    plt = pyplot()
    scores = result["table"]["scores"]
    fig, ax = plt.subplots(figsize=(8, 4))
    finite = np.concatenate([np.asarray(v)[np.isfinite(v)] for v in scores.values()])
    bins = np.linspace(finite.min(), finite.max(), 50)
    for name, s in scores.items():
        s = np.asarray(s)
        shown = s[np.isfinite(s)]
        if not shown.size:
            continue
        ax.hist(shown, bins=bins, histtype="step" if name != "test" else "stepfilled", alpha=0.9 if name !=
                "test" else 0.35, density=True, linewidth=1.2,
                label=f"{name} ({shown.size}; {s.size - shown.size} failed the body test)")
    ax.axvline(result["rule"]["threshold"], color="k", linestyle="--", label="threshold (validation)")
    ax.set_xlabel(f"{result['rule']['kind']} score (higher = more like the training actions)")
    ax.set_ylabel("density")
    ax.set_title(f"{Path(result['ckpt']).parent.name}: in-distribution test vs other actions and random motion",
                 fontsize=9)
    ax.legend(fontsize=7)
    return save_figure(fig, path, dpi=120)


def _main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", required=True, type=Path, help="a checkpoint with an open-set rule (train.openset)")
    p.add_argument("--data", default="nw_ucla:test", help="in-distribution split to score (nw_ucla:test)")
    p.add_argument("--val", default=None, help="validation split for the other scores' thresholds (default: the "
                                               "one the stored rule was chosen on)")
    p.add_argument("--shared", type=Path, default=None,
                   help="folder with data/mediapipe, data/ntu (default: $LAST_SHARED, else the nearest shared/)")
    p.add_argument("--videos", type=Path, help="folder of single-person videos (MediaPipe -> the model's layout)")
    p.add_argument("--pose-model", type=Path, help="MediaPipe pose_landmarker .task, for --videos")
    p.add_argument("--out", type=Path, default=Path("runs/openset"))
    args = p.parse_args(argv)
    ckpt = load_checkpoint(args.ckpt)
    rule = OpenSet.from_dict(ckpt.get("openset"))
    if rule is None:
        raise BadInput(f"--ckpt {args.ckpt}: no open-set rule; run python -m train.openset --ckpt {args.ckpt} "
                       "--data NAME:val first")
    if args.videos and not args.pose_model:
        raise BadInput("--videos needs --pose-model")
    spec = input_spec(ckpt)
    model = build_model(ckpt, args.ckpt)
    predict = torch_predict_fn(model)
    test = load_data_split(args.data, layout=spec.layout, ckpt=ckpt)
    check_split_matches(test, spec.layout, ckpt["class_names"], args.data, str(args.ckpt))
    val = load_data_split(args.val or rule.data, layout=spec.layout, ckpt=ckpt)
    pose = mean_pose(val)
    try:
        shared = args.shared or shared_root()
    except FileNotFoundError as exc:
        raise BadInput(f"--shared: {exc}") from exc
    sets = [mediapipe_recordings(shared, spec.layout, spec.persons), ntu_clip(shared, spec.layout, spec.persons)]
    if args.videos:
        sets.append(video_clips(args.videos, args.pose_model, spec.layout, spec.persons, args.out / "videos"))
    sets += [outlier_split(k, spec.layout, spec.persons, pose, n=96, seed=7 + i)  # train.openset's are 101..
             for i, k in enumerate(("synthetic", "random_gaussian", "random_walk"))]
    logits = {"test": predict_split(predict, test, spec, progress=False)}
    clips = {"test": test.data}
    for s in sets:
        logits[s.name] = predict_split(predict, s, spec, progress=False)
        clips[s.name] = s.data
    val_logits = predict_split(predict, val, spec, progress=False)
    table = score_table(logits, clips, val_logits, val.data, rule, spec.layout)
    known = rule.known(logits["test"], test.data)
    correct = logits["test"].argmax(1) == test.labels
    result = {"tool": "benchmarks.openset", "command": f"{PROG} " + " ".join(argv if argv is not None else
                                                                          sys.argv[1:]),
              "ckpt": str(args.ckpt), "data": args.data, "rule": rule.to_dict(), "test_clips": len(test),
              "test_top1": float(correct.mean()), "kept_top1": float(correct[known].mean()) if known.any() else 0.0,
              "table": table}
    args.out.mkdir(parents=True, exist_ok=True)
    text = markdown(result)
    made = plot(result, args.out / "openset.png")
    print(text)
    write_results(args.out, "openset", result, text, [made])
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, PROG, argv)


if __name__ == "__main__":
    sys.exit(main())
