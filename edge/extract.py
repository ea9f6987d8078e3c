"""Your own actions: a folder of videos -> a skeleton data set seen through the same pose estimator as the loop.

    python -m edge.extract --videos my_videos/ --out runs/data/my_set          # labels = sub-folder names
    python -m edge.extract --videos clips/ --labels labels.csv --out runs/data/my_set --workers 2
    python -m core.data.custom --src runs/data/my_set --out runs/data/my_set_prepared   # optional: check + import
    python -m train.fit --config configs/synthetic.yaml data.name=custom:runs/data/my_set model.variant=last_nano

Every video runs through MediaPipe Pose (VIDEO mode, the loop's settings), people get ids from the loop's tracker,
and the skeletons are resampled to --fps, so the data set has one frame rate whatever the cameras recorded. The
output is the project's custom format (core/data/custom.py): one .npz per sample with keypoint (M, T, 33, 3) =
MediaPipe world landmarks in the loop's camera axes (metres, y up), keypoint_score (M, T, 33) = visibility, and a
manifest.json (layout mediapipe33, class names, fps, coordinates world, samples, skipped videos).

Labels: the video's sub-folder under --videos (my_videos/wave/a.mp4 -> wave), or a CSV with columns file,label
(file relative to --videos). Resumable: every finished video leaves a record in <out>/.extract/, a rerun only does
the rest (--overwrite starts over). An unreadable video or one without a person is reported and skipped."""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from core.cli import EXIT_BAD_INPUT, EXIT_FAILED, ArgumentParser
from core.data.custom import save_sample
from core.data.paths import unsafe_path_part
from core.layouts import get_layout
from core.mapping import mediapipe_world_to_camera
from edge.errors import EdgeError
from edge.tracking import SkeletonTracker, torso_joints
from edge.window import TimeResampler

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
RECORDS = ".extract"
PROG = "python -m edge.extract"


def find_videos(root: Path, labels_csv: Path | None) -> list[tuple[Path, str]]:
    """(video, label) pairs, sorted; labels from the CSV or from each video's sub-folder."""
    if not root.is_dir():
        raise EdgeError(f"--videos {root}: not a folder")
    videos = sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
    if labels_csv is not None:
        if not labels_csv.is_file():
            raise EdgeError(f"--labels {labels_csv}: file not found")
        table: dict[str, str] = {}
        with labels_csv.open(newline="", encoding="utf-8") as fh:
            for number, row in enumerate(csv.reader(fh), 1):
                if not row or row[0].strip().lower() in ("file", "#") or row[0].startswith("#"):
                    continue
                if len(row) < 2 or not row[1].strip():
                    raise EdgeError(f"--labels {labels_csv}:{number}: expected 'file,label', got {','.join(row)!r}")
                label = row[1].strip()
                why = unsafe_path_part(label)
                if why:  # the label becomes a folder under --out
                    raise EdgeError(f"--labels {labels_csv}:{number}: label {label!r} {why}")
                table[row[0].strip()] = label
        pairs = []
        for v in videos:
            rel = v.relative_to(root).as_posix()
            label = table.get(rel, table.get(v.name))
            if label is not None:
                pairs.append((v, label))
        missing = sorted(set(table) - {v.relative_to(root).as_posix() for v, _ in pairs} - {v.name for v, _ in pairs})
        if missing:
            raise EdgeError(f"--labels {labels_csv}: {len(missing)} listed file(s) not found under {root}, "
                            f"e.g. {missing[0]}")
        return pairs
    pairs = []
    for v in videos:
        rel = v.relative_to(root)
        if len(rel.parts) < 2:
            raise EdgeError(f"--videos {root}: {rel} is not in a label sub-folder (put it in {root}/<label>/ "
                            "or pass --labels file.csv)")
        pairs.append((v, rel.parts[0]))
    return pairs


def _record_path(out: Path, root: Path, video: Path) -> Path:
    key = hashlib.sha1(video.relative_to(root).as_posix().encode()).hexdigest()[:16]
    return out / RECORDS / f"{key}.json"


_POSE_MODEL: str | None = None  # set in each worker process


def _worker_init(pose_model: str) -> None:
    global _POSE_MODEL
    _POSE_MODEL = pose_model


def read_skeletons(video: Path, pose, persons: int, fps: float, max_frames: int | None = None
                   ) -> tuple[np.ndarray, int, int]:
    """A video -> (M, T, 33, 4) camera-axes world landmarks + visibility at `fps`, frames read, frames with a
    person. Raises EdgeError when OpenCV cannot decode it."""
    import cv2
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise EdgeError("OpenCV cannot open it (not a video, or a codec this OpenCV build lacks)")
    src_fps = float(cap.get(cv2.CAP_PROP_FPS) or 0)
    src_fps = src_fps if 1 <= src_fps <= 240 else 30.0
    tracker = SkeletonTracker(max_persons=persons, max_tracks=4 * persons, anchor_joints=torso_joints(get_layout(
        "mediapipe33")))
    resampler = TimeResampler(fps, max_gap_s=0.25)
    slots: list[int | None] = [None] * persons  # person id per sample slot; freed when the tracker drops the id
    samples: list[np.ndarray] = []
    frames = with_person = 0
    try:
        while max_frames is None or frames < max_frames:
            ok, image = cap.read()
            if not ok or image is None:
                break
            t = frames / src_fps
            people = pose.detect(image, int(round(t * 1000)))
            frames += 1
            frame = None
            if people:
                with_person += 1
                ids = tracker.update([p.track_points for p in people], t, [p.world[:, 3] for p in people])
                slots = [pid if pid in tracker.tracks else None for pid in slots]
                for pid in ids:
                    if pid is not None and pid not in slots and None in slots:
                        slots[slots.index(None)] = pid
                frame = np.zeros((persons, 33, 4), np.float32)
                for pid, p in zip(ids, people):
                    if pid is not None and pid in slots:
                        frame[slots.index(pid), :, :3] = mediapipe_world_to_camera(p.world[:, :3])
                        frame[slots.index(pid), :, 3] = p.world[:, 3]
            for _, sample in resampler.push(t, frame):
                samples.append(sample if sample is not None else np.zeros((persons, 33, 4), np.float32))
    finally:
        cap.release()
    if frames == 0:
        raise EdgeError("no frame could be decoded (unreadable or empty video)")
    return np.stack(samples, axis=1), frames, with_person


def segments(length: int, seg: int | None) -> list[tuple[int, int]]:
    """[start, end) chunks of `seg` frames (a last chunk shorter than half of it is dropped); whole clip if None."""
    if not seg or seg >= length:
        return [(0, length)]
    out = [(s, min(s + seg, length)) for s in range(0, length, seg)]
    return [(s, e) for s, e in out if e - s >= max(1, seg // 2)]


def extract_one(job: dict[str, Any]) -> dict[str, Any]:
    """One video -> its sample files and a record (ok, or skipped with the reason). Runs in a worker."""
    video, out, root = Path(job["video"]), Path(job["out"]), Path(job["root"])
    record: dict[str, Any] = {"video": video.relative_to(root).as_posix(), "label": job["label"], "samples": []}
    from edge.pose import MediaPipePose
    try:
        # a fresh landmarker per video: in VIDEO mode MediaPipe carries its tracking state from frame to frame,
        # and the last person of the previous video must not be looked for in this one
        with MediaPipePose(_POSE_MODEL, mode="video", num_poses=job["persons"]) as pose:
            data, frames, with_person = read_skeletons(video, pose, job["persons"], job["fps"], job["max_frames"])
    except EdgeError as exc:
        record.update(status="skipped", reason=str(exc))
        return record
    except Exception as exc:  # a decoder or MediaPipe failure on one file must not stop the other videos
        record.update(status="skipped", reason=f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:160]}")
        return record
    record.update(frames=frames, frames_with_person=with_person)
    present = np.abs(data[..., :3]).sum(axis=(0, 2, 3)) > 0
    if present.sum() < job["min_frames"]:
        record.update(status="skipped", reason=f"no person: seen in {with_person} of {frames} frames "
                                                f"(needs {job['min_frames']} at {job['fps']:g} fps)")
        return record
    seg = int(round(job["segment_s"] * job["fps"])) if job["segment_s"] else None
    chunks = [(s, e) for s, e in segments(data.shape[1], seg) if present[s:e].sum() >= max(1, (e - s) // 2)]
    if not chunks:  # a person in too few frames of every segment: nothing is written, so the video is skipped
        span = f"{job['segment_s']:g} s segment" if seg else "the clip"
        record.update(status="skipped", reason=f"no usable segment: a person in {int(present.sum())} of "
                                                f"{data.shape[1]} frames at {job['fps']:g} fps, but in fewer than "
                                                f"half of every {span}")
        return record
    n_test = int(np.ceil(len(chunks) * job["holdout_tail"])) if job["holdout_tail"] and len(chunks) > 1 else 0
    stem = video.relative_to(root).with_suffix("").as_posix().replace("/", "__")
    for k, (s, e) in enumerate(chunks):
        name = f"{stem}" if len(chunks) == 1 and not seg else f"{stem}__{s / job['fps']:07.2f}s"
        rel = Path("samples") / job["label"] / f"{name}.npz"
        clip = data[:, s:e]
        save_sample(out / rel, clip[..., :3], 0, keypoint_score=clip[..., 3], frame_dir=name)
        entry = {"file": rel.as_posix(), "class": job["label"], "start_s": s / job["fps"],
                 "frames": int(e - s)}
        if job["holdout_tail"]:
            entry["split"] = "test" if k >= len(chunks) - n_test else "train"
        record["samples"].append(entry)
    record["status"] = "ok"
    return record


def write_manifest(out: Path, records: list[dict[str, Any]], fps: float) -> dict[str, Any]:
    ok = [r for r in records if r["status"] == "ok" and r["samples"]]  # a video that gave nothing is skipped
    class_names = sorted({r["label"] for r in ok})
    samples = []
    for r in sorted(ok, key=lambda r: r["video"]):
        for s in r["samples"]:
            entry = {"file": s["file"], "label": class_names.index(s["class"]), "video": r["video"],
                     "start_s": s["start_s"]}
            if "split" in s:
                entry["split"] = s["split"]
            samples.append(entry)
    manifest = {"layout": "mediapipe33", "class_names": class_names, "fps": fps, "coordinates": "world",
                "source": "python -m edge.extract (MediaPipe Pose world landmarks, camera axes, visibility)",
                "samples": samples,
                "skipped": [{"video": r["video"], "reason": r.get("reason") or "no sample written"}
                            for r in sorted(records, key=lambda r: r["video"]) if r not in ok]}
    tmp = out / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, out / "manifest.json")
    return manifest


def extract(videos: Path, out: Path, pose_model: Path, labels_csv: Path | None = None, workers: int = 1,
            fps: float = 30.0, persons: int = 1, segment_s: float | None = None, holdout_tail: float = 0.0,
            min_frames: int = 8, overwrite: bool = False, progress: bool = True,
            max_frames: int | None = None) -> dict[str, Any]:
    """Extract every video under `videos` into `out`; returns the manifest (with 'skipped')."""
    pairs = find_videos(videos, labels_csv)
    if not pairs:
        raise EdgeError(f"--videos {videos}: no video files ({', '.join(VIDEO_SUFFIXES)})")
    (out / RECORDS).mkdir(parents=True, exist_ok=True)
    records, todo = [], []
    for video, label in pairs:
        rec_path = _record_path(out, videos, video)
        if rec_path.is_file() and not overwrite:
            records.append(json.loads(rec_path.read_text()))
            continue
        todo.append({"video": str(video), "out": str(out), "root": str(videos), "label": label, "fps": fps,
                     "persons": persons, "segment_s": segment_s, "holdout_tail": holdout_tail,
                     "min_frames": min_frames, "max_frames": max_frames})
    bar = None
    if progress and todo:
        from tqdm import tqdm
        bar = tqdm(total=len(todo), unit="video", desc="extract", dynamic_ncols=True)
    done_before = len(records)

    def finish(record: dict[str, Any]) -> None:
        path = _record_path(out, videos, videos / record["video"])
        path.write_text(json.dumps(record))  # after its samples: a killed run redoes only unfinished videos
        records.append(record)
        if bar is not None:
            bar.update(1)
            if record["status"] != "ok":
                bar.write(f"skipped {record['video']}: {record['reason']}")

    try:
        if workers <= 1 or len(todo) <= 1:
            _worker_init(str(pose_model))
            for job in todo:
                finish(extract_one(job))
        else:
            import multiprocessing as mp
            ctx = mp.get_context("spawn")  # MediaPipe's threads do not survive fork
            with ctx.Pool(min(workers, len(todo)), _worker_init, (str(pose_model),)) as pool:
                for record in pool.imap_unordered(extract_one, todo):
                    finish(record)
    finally:
        if bar is not None:
            bar.close()
    manifest = write_manifest(out, records, fps)
    manifest["resumed"] = done_before
    return manifest


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", required=True, help="folder of videos (labels = sub-folder names unless --labels)")
    p.add_argument("--out", required=True, help="data set folder to write (custom format + manifest.json)")
    p.add_argument("--labels", help="CSV with columns file,label (file relative to --videos)")
    p.add_argument("--pose-model", help="MediaPipe pose_landmarker .task (default: $LAST_POSE_MODEL, cache, download)")
    p.add_argument("--workers", type=int, default=max(1, min(4, (os.cpu_count() or 2) // 2)),
                   help="videos processed in parallel, one MediaPipe per process (default: half the cores, <= 4)")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate of the data set: every video is resampled "
                   "to it (30; the model records it and the loop resamples to it)")
    p.add_argument("--persons", type=int, default=1, help="people per sample (1)")
    p.add_argument("--segment-s", type=float, help="cut each video into clips of this many seconds (default: one "
                   "sample per video)")
    p.add_argument("--holdout-tail", type=float, default=0.0, help="with --segment-s: the last fraction of each "
                   "video's clips becomes the test split (a split by time; default: none, the trainer splits)")
    p.add_argument("--min-frames", type=int, default=8, help="skip videos with fewer frames with a person (8)")
    p.add_argument("--max-frames", type=int, help="read at most this many frames of each video")
    p.add_argument("--overwrite", action="store_true", help="redo videos already extracted")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.fps <= 0 or args.workers < 1 or args.persons < 1 or not 0 <= args.holdout_tail < 1:
        print(f"{PROG}: error: --fps must be > 0, --workers and --persons >= 1, --holdout-tail in [0, 1)",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        from edge.pose import resolve_pose_model
        find_videos(Path(args.videos), Path(args.labels) if args.labels else None)  # bad input before any download
        pose_model = resolve_pose_model(args.pose_model)
        manifest = extract(Path(args.videos), Path(args.out), pose_model, Path(args.labels) if args.labels else None,
                           args.workers, args.fps, args.persons, args.segment_s, args.holdout_tail, args.min_frames,
                           args.overwrite, progress=not args.no_progress and sys.stderr.isatty(),
                           max_frames=args.max_frames)
    except EdgeError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    counts = Counter(manifest["class_names"][s["label"]] for s in manifest["samples"])
    videos_ok = len({s["video"] for s in manifest["samples"]})
    inputs = videos_ok + len(manifest["skipped"])  # every input video is either used or listed as skipped
    print(f"{args.out}: {len(manifest['samples'])} samples from {videos_ok} of {inputs} videos "
          f"({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}), {len(manifest['skipped'])} skipped; "
          f"mediapipe33 world landmarks at {args.fps:g} fps"
          + (f"; {manifest['resumed']} videos already done" if manifest["resumed"] else ""))
    for s in manifest["skipped"]:
        print(f"skipped {s['video']}: {s['reason']}")
    if not manifest["samples"]:
        print(f"{PROG}: error: no video gave a sample", file=sys.stderr)
        return EXIT_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
