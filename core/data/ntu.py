"""NTU RGB+D 60/120 from the raw ``.skeleton`` files: parser, denoising, official splits and a
parallel, resumable builder that writes a prepared directory (see core.data.store).

    python -m core.data.ntu --root /data/nturgb+d_skeletons [/data/nturgbd_skeletons_s018_to_s032] \\
        --out runs/data/ntu120 --workers 2
    python -m core.data.ntu --check-splits      # split counts from ../shared/data/ntu/*_available_names.txt

File format: frame count; per frame a body count; per body a 10-value info line (body ID first), a
joint count and one line of 12 values per joint (x y z depthX depthY colorX colorY orientation(4)
trackingState). LF and CRLF are accepted. Errors name the file and the 1-based line.

Denoising follows CTR-GCN's ``get_raw_denoised_data.py`` / pyskl's ``ntu_preproc.py``: frames without
bodies are dropped; bodies are tracked by ID; with more than one body, bodies seen in <= 11 frames
are dropped, then bodies whose frames are mostly "spread" noise (x-range > 0.8 * y-range in
>= 69.754 % of their frames); the rest are ordered by motion (the sum of coordinate variances) and
assigned to at most two actors by non-overlapping frame intervals; frames where no actor remains are
dropped. (Unlike the reference code, a body's frames keep their true frame positions even when its ID
skips a frame, and the second actor's interval starts empty instead of at frame 0.)
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from core.cli import ArgumentParser, run_cli
from core.data.checks import skipped_report
from core.data.paths import data_root, shared_root
from core.data.prepared import SkeletonSplit

NTU120_CLASSES = (
    'drink water', 'eat meal/snack', 'brushing teeth', 'brushing hair', 'drop', 'pickup', 'throw', 'sitting down',
    'standing up (from sitting position)', 'clapping', 'reading', 'writing', 'tear up paper', 'wear jacket',
    'take off jacket', 'wear a shoe', 'take off a shoe', 'wear on glasses', 'take off glasses', 'put on a hat/cap',
    'take off a hat/cap', 'cheer up', 'hand waving', 'kicking something', 'reach into pocket',
    'hopping (one foot jumping)', 'jump up', 'make a phone call/answer phone', 'playing with phone/tablet',
    'typing on a keyboard', 'pointing to something with finger', 'taking a selfie', 'check time (from watch)',
    'rub two hands together', 'nod head/bow', 'shake head', 'wipe face', 'salute', 'put the palms together',
    'cross hands in front (say stop)', 'sneeze/cough', 'staggering', 'falling', 'touch head (headache)',
    'touch chest (stomachache/heart pain)', 'touch back (backache)', 'touch neck (neckache)',
    'nausea or vomiting condition', 'use a fan (with hand or paper)/feeling warm', 'punching/slapping other person',
    'kicking other person', 'pushing other person', 'pat on back of other person',
    'point finger at the other person', 'hugging other person', 'giving something to other person',
    "touch other person's pocket", 'handshaking', 'walking towards each other', 'walking apart from each other',
    'put on headphone', 'take off headphone', 'shoot at the basket', 'bounce ball', 'tennis bat swing',
    'juggling table tennis balls', 'hush (quite)', 'flick hair', 'thumb up', 'thumb down', 'make ok sign',
    'make victory sign', 'staple book', 'counting money', 'cutting nails', 'cutting paper (using scissors)',
    'snapping fingers', 'open bottle', 'sniff (smell)', 'squat down', 'toss a coin', 'fold paper', 'ball up paper',
    'play magic cube', 'apply cream on face', 'apply cream on hand back', 'put on bag', 'take off bag',
    'put something into a bag', 'take something out of a bag', 'open a box', 'move heavy objects', 'shake fist',
    'throw up cap/hat', 'hands up (both hands)', 'cross arms', 'arm circles', 'arm swings', 'running on the spot',
    'butt kicks (kick backward)', 'cross toe touch', 'side kick', 'yawn', 'stretch oneself', 'blow nose',
    'hit other person with something', 'wield knife towards other person',
    'knock over other person (hit with body)', "grab other person's stuff", 'shoot at other person with a gun',
    'step on foot', 'high-five', 'cheers and drink', 'carry something with other person',
    'take a photo of other person', 'follow other person', "whisper in other person's ear",
    'exchange things with other person', 'support somebody with hand',
    'finger-guessing game (playing rock-paper-scissors)',
)

# the public training subjects / cameras of the official protocols
NTU60_XSUB_TRAIN_SUBJECTS = (1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38)
NTU120_XSUB_TRAIN_SUBJECTS = NTU60_XSUB_TRAIN_SUBJECTS + (
    45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86, 89, 91, 92, 93, 94,
    95, 97, 98, 100, 103)
NTU60_XVIEW_TRAIN_CAMERAS = (2, 3)
BENCHMARKS = ("ntu60-xsub", "ntu60-xview", "ntu120-xsub", "ntu120-xset")
EXPECTED_COUNTS = {"ntu60-xsub": (40091, 16487), "ntu60-xview": (37646, 18932),
                   "ntu120-xsub": (63026, 50919), "ntu120-xset": (54468, 59477)}

NUM_JOINTS = 25
VALUES_PER_JOINT = 12
BODY_INFO_VALUES = 10
NOISE_LENGTH = 11  # bodies seen in <= this many frames are noise
NOISE_SPREAD_RATIO = 0.8  # a frame is "spread" when x-range > 0.8 * y-range
NOISE_SPREAD_FRACTION = 0.69754  # ... in at least this fraction of the body's frames
NAME_PATTERN = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")


class SkeletonFormatError(ValueError):
    """A malformed .skeleton file; the message is 'file:line: what is wrong'."""


# ----------------------------------------------------------------------------------------------- names and splits

def parse_name(name: str) -> dict[str, int]:
    """'S001C002P003R002A013' -> {'setup': 1, 'camera': 2, 'subject': 3, 'replication': 2, 'action': 13}."""
    m = NAME_PATTERN.search(name)
    if not m:
        raise ValueError(f"{name!r} is not an NTU sample name (SsssCcccPpppRrrrAaaa)")
    return dict(zip(("setup", "camera", "subject", "replication", "action"), map(int, m.groups())))


def in_ntu60(name: str) -> bool:
    p = parse_name(name)
    return p["setup"] <= 17 and p["action"] <= 60


def is_train(name: str, benchmark: str) -> bool:
    p = parse_name(name)
    if benchmark in ("ntu60-xsub", "ntu120-xsub"):
        subjects = NTU60_XSUB_TRAIN_SUBJECTS if benchmark == "ntu60-xsub" else NTU120_XSUB_TRAIN_SUBJECTS
        return p["subject"] in subjects
    if benchmark == "ntu60-xview":
        return p["camera"] in NTU60_XVIEW_TRAIN_CAMERAS
    if benchmark == "ntu120-xset":
        return p["setup"] % 2 == 0
    raise ValueError(f"unknown NTU benchmark {benchmark!r}; choose from {', '.join(BENCHMARKS)}")


def split_indices(names: list[str], benchmark: str, split: str) -> np.ndarray:
    """Indices of `names` in the benchmark's train/test split (NTU-60 benchmarks keep only NTU-60 samples)."""
    if split not in ("train", "test"):
        raise ValueError(f"unknown NTU split {split!r}; choose train or test (val: a slice of train)")
    want_train = split == "train"
    keep = []
    for i, n in enumerate(names):
        if benchmark.startswith("ntu60") and not in_ntu60(n):
            continue
        if is_train(n, benchmark) == want_train:
            keep.append(i)
    return np.asarray(keep, dtype=np.int64)


def read_name_list(path: str | Path) -> list[str]:
    return [n.strip() for n in Path(path).read_text(encoding="utf-8").split() if n.strip()]


def check_splits(shared: Path | None = None) -> dict[str, tuple[int, int]]:
    """Split counts from the available-name lists in ../shared/data/ntu (no data set needed)."""
    folder = (shared or shared_root()) / "data" / "ntu"
    out = {}
    for bench in BENCHMARKS:
        names = read_name_list(folder / f"{bench.split('-')[0]}_available_names.txt")
        out[bench] = (len(split_indices(names, bench, "train")), len(split_indices(names, bench, "test")))
    return out


# ----------------------------------------------------------------------------------------------------- parser

@dataclass
class Body:
    body_id: str
    frames: list[int] = field(default_factory=list)  # valid-frame indices where the body appears
    joints: list[np.ndarray] = field(default_factory=list)  # (25, 3) per appearance

    def array(self) -> np.ndarray:
        return np.stack(self.joints).astype(np.float32)  # (F, 25, 3)


@dataclass
class RawSkeleton:
    name: str
    num_frames: int  # as declared in the file
    bodies: dict[str, Body]
    valid_frames: int  # frames with at least one body
    bodies_per_frame: list[int]
    path: str = ""  # the file, for error messages


_ALLOWED = b"0123456789eE+-. \t\r\n"


def _int_line(lines: list[str], i: int, what: str, path: str) -> int:
    if i >= len(lines):
        raise SkeletonFormatError(f"{path}:{i + 1}: file ends where the {what} was expected (truncated)")
    text = lines[i].strip()
    try:
        value = int(text)
    except ValueError:
        raise SkeletonFormatError(f"{path}:{i + 1}: expected the {what} (an integer), found {text!r}") from None
    if value < 0:
        raise SkeletonFormatError(f"{path}:{i + 1}: negative {what} {value}")
    return value


def _check_joint_lines(lines: list[str], starts: list[int], path: str) -> list[str]:
    """The joint lines of every body block, each checked to hold exactly 12 numbers."""
    joint_lines: list[str] = []
    for s in starts:
        joint_lines.extend(lines[s:s + NUM_JOINTS])
    spaces = list(map(str.count, joint_lines, [" "] * len(joint_lines)))
    if spaces.count(VALUES_PER_JOINT - 1) != len(spaces):  # unusual spacing: check the real token counts
        for s in starts:
            for i in range(s, s + NUM_JOINTS):
                n = len(lines[i].split())
                if n != VALUES_PER_JOINT:
                    raise SkeletonFormatError(f"{path}:{i + 1}: joint line has {n} values, expected "
                                              f"{VALUES_PER_JOINT}")
        joint_lines = [" ".join(line.split()) for line in joint_lines]
    return joint_lines


def parse_skeleton_text(text: str | bytes, path: str = "<text>") -> RawSkeleton:
    """Parse the contents of one .skeleton file (bodies tracked by ID). Errors are 'file:line: ...'."""
    raw = text.encode("latin-1", "replace") if isinstance(text, str) else text
    if raw.translate(None, _ALLOWED):  # rare: find the line with the foreign character
        for i, line in enumerate(raw.splitlines()):
            bad = line.translate(None, _ALLOWED)
            if bad:
                raise SkeletonFormatError(f"{path}:{i + 1}: non-numeric character {bad[:1].decode('latin-1')!r} "
                                          f"in {line.decode('latin-1').strip()[:60]!r}")
    lines = raw.decode("ascii").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    num_frames = _int_line(lines, 0, "frame count", path)
    i, valid = 1, 0
    bodies: dict[str, Body] = {}
    per_frame: list[int] = []
    block_starts: list[int] = []
    appearances: list[tuple[str, int]] = []
    for _ in range(num_frames):
        num_bodies = _int_line(lines, i, "body count", path)
        i += 1
        per_frame.append(num_bodies)
        seen: set[str] = set()
        for _ in range(num_bodies):
            if i >= len(lines):
                raise SkeletonFormatError(f"{path}:{i + 1}: file ends where a body info line was expected "
                                          f"(truncated)")
            info = lines[i].split()
            if len(info) != BODY_INFO_VALUES:
                raise SkeletonFormatError(f"{path}:{i + 1}: body info line has {len(info)} values, expected "
                                          f"{BODY_INFO_VALUES}")
            if info[0] in seen:
                raise SkeletonFormatError(f"{path}:{i + 1}: body {info[0]} appears twice in one frame")
            seen.add(info[0])
            num_joints = _int_line(lines, i + 1, "joint count", path)
            if num_joints != NUM_JOINTS:
                raise SkeletonFormatError(f"{path}:{i + 2}: joint count {num_joints}, expected {NUM_JOINTS}")
            if i + 2 + num_joints > len(lines):
                raise SkeletonFormatError(f"{path}:{len(lines) + 1}: file ends inside the joint lines of body "
                                          f"{info[0]} (truncated)")
            block_starts.append(i + 2)
            appearances.append((info[0], valid))
            i += 2 + num_joints
        if num_bodies:
            valid += 1
    if i < len(lines):
        raise SkeletonFormatError(f"{path}:{i + 1}: unexpected data after the last of {num_frames} frames")
    joint_lines = _check_joint_lines(lines, block_starts, path)
    try:  # only x, y, z are used
        xyz = np.array([line.split(" ", 3)[:3] for line in joint_lines], dtype=np.float32)
    except ValueError:  # find the line: a malformed number, or odd spacing that hid a missing value
        for s in block_starts:
            for k in range(s, s + NUM_JOINTS):
                tokens = lines[k].split()
                if len(tokens) != VALUES_PER_JOINT:
                    raise SkeletonFormatError(f"{path}:{k + 1}: joint line has {len(tokens)} values, expected "
                                              f"{VALUES_PER_JOINT}") from None
                try:
                    np.array(tokens[:3], dtype=np.float32)
                except ValueError:
                    raise SkeletonFormatError(f"{path}:{k + 1}: malformed number in {lines[k].strip()!r}") from None
        raise SkeletonFormatError(f"{path}: malformed joint values") from None
    xyz = xyz.reshape(-1, NUM_JOINTS, 3)
    for (body_id, frame), joints in zip(appearances, xyz):
        body = bodies.setdefault(body_id, Body(body_id))
        body.frames.append(frame)
        body.joints.append(joints)
    return RawSkeleton(Path(path).stem, num_frames, bodies, valid, per_frame, str(path))


def read_skeleton(path: str | Path) -> RawSkeleton:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SkeletonFormatError(f"{path}:0: cannot read: {e.strerror}") from None
    return parse_skeleton_text(data, str(path))


# -------------------------------------------------------------------------------------------------- denoising

def _motion(joints: np.ndarray) -> float:
    return float(np.sum(np.var(joints.reshape(-1, 3), axis=0)))


def _spread_frames(joints: np.ndarray) -> np.ndarray:
    """(F,) True where the body is 'spread' noise (wider in x than 0.8 x its height)."""
    x_range = np.ptp(joints[:, :, 0], axis=1)
    y_range = np.ptp(joints[:, :, 1], axis=1)
    return x_range > NOISE_SPREAD_RATIO * y_range


def denoise(raw: RawSkeleton, max_persons: int = 2) -> tuple[np.ndarray, dict[str, object]]:
    """RawSkeleton -> ((M=max_persons, T, 25, 3) float32, info). T = frames where an actor remains."""
    if raw.valid_frames == 0 or not raw.bodies:
        raise SkeletonFormatError(f"{raw.path or raw.name}: no body in any of the {raw.num_frames} frames")
    info: dict[str, object] = {"bodies": len(raw.bodies), "dropped_frames_no_body": raw.num_frames - raw.valid_frames}
    bodies = list(raw.bodies.values())
    if len(bodies) > 1:
        long_enough = [b for b in bodies if len(b.frames) > NOISE_LENGTH]
        info["dropped_short"] = len(bodies) - len(long_enough)
        # all bodies short: keep the longest rather than lose the sample (the reference code would crash)
        bodies = long_enough or [max(bodies, key=lambda b: len(b.frames))]
    motion = {b.body_id: _motion(b.array()) for b in bodies}
    if len(bodies) > 1:
        remaining = list(bodies)
        for b in bodies:
            if len(remaining) == 1:  # never drop the last body
                break
            joints = b.array()
            spread = _spread_frames(joints)
            if not spread.any():
                continue
            if spread.mean() >= NOISE_SPREAD_FRACTION:
                remaining.remove(b)
                continue
            motion[b.body_id] = min(motion[b.body_id], _motion(joints[~spread]))
        info["dropped_spread"] = len(bodies) - len(remaining)
        bodies = remaining
    bodies.sort(key=lambda b: motion[b.body_id], reverse=True)

    # the most-moving body is actor 1; every other body joins the first actor whose frame interval it
    # does not overlap (as in the reference code, sharing a single boundary frame counts as no overlap)
    out = np.zeros((max_persons, raw.valid_frames, NUM_JOINTS, 3), dtype=np.float32)
    intervals: list[tuple[int, int] | None] = [None] * max_persons
    for b in bodies:
        start, end = b.frames[0], b.frames[-1]
        for slot, iv in enumerate(intervals):
            if iv is None or min(iv[1], end) - max(iv[0], start) <= 0:
                out[slot, b.frames] = b.array()
                intervals[slot] = (start, end) if iv is None else (min(iv[0], start), max(iv[1], end))
                break
    present = np.abs(out).sum(axis=(0, 2, 3)) > 0
    info["dropped_frames_no_actor"] = int((~present).sum())
    out = out[:, present]
    info["actors"] = int(sum(iv is not None for iv in intervals))
    return out, info


# ---------------------------------------------------------------------------------------------------- builder

def resample(x: np.ndarray, frames: int) -> tuple[np.ndarray, int]:
    """(M, T, V, C) -> (M, frames, V, C): uniform sampling when longer, zero padding when shorter."""
    length = x.shape[1]
    out = np.zeros((x.shape[0], frames) + x.shape[2:], dtype=np.float32)
    if length > frames:
        idx = np.floor(np.linspace(0, length, frames, endpoint=False)).astype(np.int64)
        out[:] = x[:, idx]
        return out, frames
    out[:, :length] = x
    return out, length


def process_file(path: str, frames: int, persons: int = 2) -> tuple[np.ndarray | None, int, str]:
    """Parse + denoise + resample one file -> (array (M, frames, 25, 3), valid length, error message)."""
    try:
        x, _ = denoise(read_skeleton(path), persons)
    except SkeletonFormatError as e:
        return None, 0, str(e)
    if x.shape[1] == 0:
        return None, 0, f"{path}:0: no frame left after denoising"
    out, length = resample(x, frames)
    return out, length, ""


def _work_chunk(args: tuple[list[tuple[int, str]], int, int]) -> list[tuple[int, np.ndarray | None, int, str]]:
    items, frames, persons = args
    return [(i, *process_file(p, frames, persons)) for i, p in items]


def find_skeleton_files(roots: Iterable[str | Path]) -> dict[str, Path]:
    """{sample name: path} of every *.skeleton under the roots (recursively), sorted by name."""
    found: dict[str, Path] = {}
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"NTU skeleton folder not found: {root} (the unpacked nturgb+d_skeletons "
                                    f"folder(s) of the NTU RGB+D download)")
        for f in root.rglob("*.skeleton"):
            if NAME_PATTERN.fullmatch(f.stem):
                found.setdefault(f.stem, f)
    return dict(sorted(found.items()))


def default_missing_list() -> Path | None:
    """The list of NTU120 samples with missing skeletons in the shared data, when there is a shared folder."""
    try:
        return shared_root() / "data" / "ntu" / "ntu120_missing.txt"
    except FileNotFoundError:
        return None


class NoUsableSamplesError(ValueError):
    """A build in which every file was skipped: nothing to train on (the message names the reason)."""


SOURCES_FILE = "sources.tsv"  # per source file: name, size, mtime_ns, "ok" or the reason it was skipped


def _file_stats(files: dict[str, Path]) -> dict[str, tuple[int, int]]:
    """{name: (size in bytes, mtime in ns)}: what tells a rebuild that a file changed."""
    stats = {}
    for name, path in files.items():
        st = path.stat()
        stats[name] = (int(st.st_size), int(st.st_mtime_ns))
    return stats


def _fingerprint(stats: dict[str, tuple[int, int]], frames: int, persons: int, dtype: str) -> str:
    h = hashlib.sha1(f"{frames}:{persons}:{dtype}:".encode())
    h.update("\n".join(f"{n} {size} {mtime}" for n, (size, mtime) in stats.items()).encode())
    return h.hexdigest()[:16]


def _read_sources(out: Path) -> dict[str, tuple[int, int, str]]:
    f = out / SOURCES_FILE
    if not f.is_file():
        return {}
    rows = {}
    for line in f.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t", 3)
        if len(parts) == 4 and parts[1].isdigit() and parts[2].isdigit():
            rows[parts[0]] = (int(parts[1]), int(parts[2]), parts[3])
    return rows


def _previous_build(out: Path, frames: int, persons: int, dtype: str
                    ) -> tuple[dict[str, tuple[int, int, str]], dict[str, int], np.ndarray | None, np.ndarray | None]:
    """What a finished build in `out` with the same settings can lend to this one: its per-file records,
    {name: row}, its data (memory-mapped) and lengths; empty when there is none."""
    try:
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
        build_info = manifest.get("build", {})
        if (build_info.get("frames"), build_info.get("persons"), build_info.get("dtype")) != (frames, persons, dtype):
            return {}, {}, None, None
        sources = _read_sources(out)
        names = (out / "names.txt").read_text(encoding="utf-8").splitlines()
        data = np.load(out / "data.npy", mmap_mode="r")
        lengths = np.load(out / "lengths.npy")
    except (OSError, ValueError):
        return {}, {}, None, None
    if not sources or not len(names) == len(data) == len(lengths):
        return {}, {}, None, None
    return sources, {n: i for i, n in enumerate(names)}, data, lengths


def build(roots: list[str | Path], out: str | Path, frames: int = 100, persons: int = 2, dtype: str = "float16",
          workers: int | None = None, ntu60_only: bool = False, missing: str | Path | None = None,
          limit: int | None = None, chunk: int = 16, progress: bool = True, force: bool = False) -> dict[str, object]:
    """Build (or resume, or update) a prepared NTU directory. Returns the manifest's build summary.

    Every source file is recorded by size and modification time: re-running parses only the files that are
    new or changed since the last finished build (a corrupt file that was replaced is picked up) and reuses
    the rest; `force` parses everything again. Raises NoUsableSamplesError when every file is skipped."""
    from multiprocessing import get_context

    from tqdm import tqdm

    from core.data.store import finish_prepared

    out = Path(out)
    files = find_skeleton_files(roots)
    excluded: list[str] = []
    missing_path = Path(missing) if missing else default_missing_list()
    if missing_path is not None and missing_path.is_file():
        missing_names = set(read_name_list(missing_path))
        excluded = [n for n in files if n in missing_names]
        files = {n: p for n, p in files.items() if n not in missing_names}
    elif missing:
        raise FileNotFoundError(f"missing-skeleton list not found: {missing_path}")
    if ntu60_only:
        files = {n: p for n, p in files.items() if in_ntu60(n)}
    if limit:
        files = dict(list(files.items())[:limit])
    names = list(files)
    if not names:
        raise FileNotFoundError(f"no NTU .skeleton files (SsssCcccPpppRrrrAaaa.skeleton) under {list(map(str, roots))}")
    n, t = len(names), int(frames)
    out.mkdir(parents=True, exist_ok=True)
    state_file, partial = out / "build_state.json", out / "data.partial.npy"
    status_file, skipped_file = out / "status.partial.npy", out / "skipped.partial.txt"
    stats = _file_stats(files)
    fingerprint = _fingerprint(stats, t, persons, dtype)
    if not force and (out / "manifest.json").is_file() and (out / "data.npy").is_file():
        previous = json.loads((out / "manifest.json").read_text(encoding="utf-8")).get("build", {})
        if previous.get("fingerprint") == fingerprint:  # same files, unchanged, same settings: nothing to do
            return {**previous, "up_to_date": True}
    resume = False
    if not force and state_file.is_file() and partial.is_file() and status_file.is_file():
        resume = json.loads(state_file.read_text()).get("fingerprint") == fingerprint
    reused = 0
    if resume:
        data = np.load(partial, mmap_mode="r+")
        status = np.load(status_file, mmap_mode="r+")  # -1 to do, -2 skipped, >= 0 valid length
    else:
        old_sources, old_rows, old_data, old_lengths = ({}, {}, None, None) if force else \
            _previous_build(out, t, persons, dtype)
        for f in (out / "manifest.json", skipped_file):
            f.unlink(missing_ok=True)
        state_file.write_text(json.dumps({"fingerprint": fingerprint, "frames": t, "persons": persons,
                                          "dtype": dtype, "count": n}))
        data = np.lib.format.open_memmap(partial, mode="w+", dtype=np.dtype(dtype), shape=(n, persons, t, 25, 3))
        status = np.lib.format.open_memmap(status_file, mode="w+", dtype=np.int32, shape=(n,))
        status[:] = -1
        with open(skipped_file, "w", encoding="utf-8") as skipped_log:
            for i, name in enumerate(names):  # unchanged files keep their row (or their skip reason)
                record = old_sources.get(name)
                if record is None or record[:2] != stats[name]:
                    continue
                if record[2] == "ok" and name in old_rows:
                    data[i] = old_data[old_rows[name]]
                    status[i] = old_lengths[old_rows[name]]
                    reused += 1
                elif record[2] != "ok":
                    status[i] = -2
                    skipped_log.write(f"{name}\t{record[2]}\n")
                    reused += 1
        del old_data
    todo = [(i, str(files[names[i]])) for i in np.flatnonzero(status[:] == -1)]
    workers = max(1, workers or os.cpu_count() or 1)
    chunks = [(todo[k:k + chunk], t, persons) for k in range(0, len(todo), chunk)]
    t0 = time.perf_counter()
    done_now = 0
    with open(skipped_file, "a", encoding="utf-8") as skipped_log, \
            tqdm(total=n, initial=n - len(todo), unit="file", desc="NTU", disable=not progress) as bar:
        ctx = get_context("spawn" if sys.platform == "win32" else "fork")
        pool = ctx.Pool(workers) if workers > 1 and len(chunks) > 1 else None
        try:
            results = pool.imap_unordered(_work_chunk, chunks) if pool else map(_work_chunk, chunks)
            for k, chunk_results in enumerate(results):
                for i, arr, length, error in chunk_results:
                    if arr is None:  # the reason reaches the log before the row is marked: a kill between
                        skipped_log.write(f"{names[i]}\t{' '.join(error.split())}\n")  # the two re-parses it
                        skipped_log.flush()
                        status[i] = -2
                    else:
                        data[i] = arr
                        status[i] = length
                done_now += len(chunk_results)
                bar.update(len(chunk_results))
                if k % 50 == 49:  # a crash loses at most the last few hundred files
                    data.flush()
                    status.flush()
                    skipped_log.flush()
                    bar.set_postfix(files_per_s=f"{done_now / (time.perf_counter() - t0):.0f}")
        finally:
            if pool:
                pool.close()
                pool.join()
            data.flush()
            status.flush()
    elapsed = time.perf_counter() - t0
    rate = done_now / elapsed if elapsed > 0 else float("nan")

    status_now = np.array(status)
    keep = np.flatnonzero(status_now >= 0)
    reasons = dict(line.split("\t", 1) for line in skipped_file.read_text(encoding="utf-8").splitlines()
                   if "\t" in line)
    skipped = [reasons.get(names[i], f"{files[names[i]]}: skipped") for i in np.flatnonzero(status_now == -2)]
    kept_names = [names[i] for i in keep]
    del data, status
    final = out / "data.npy"
    if not len(keep):  # nothing to train on: no manifest, no data; the reasons stay in skipped.txt
        for f in (partial, status_file, state_file, final):
            f.unlink(missing_ok=True)
        (out / "skipped.txt").write_text("".join(f"{r}\n" for r in skipped), encoding="utf-8")
        skipped_file.unlink(missing_ok=True)
        raise NoUsableSamplesError(
            f"no usable sample: all {n} file{'s were' if n > 1 else ' was'} skipped ({skipped[0]}"
            + (f"; all {n} reasons in {out / 'skipped.txt'})" if n > 1 else ")"))
    if len(keep) == n:
        os.replace(partial, final)
    else:  # compact: copy the good rows (chunked, so memory stays small) into a new file, then rename it, so
        # a process still reading the previous data.npy keeps its (old) file
        compact = out / "data.compact.npy"
        src = np.load(partial, mmap_mode="r")
        dst = np.lib.format.open_memmap(compact, mode="w+", dtype=src.dtype, shape=(len(keep),) + src.shape[1:])
        for a in range(0, len(keep), 4096):
            dst[a:a + 4096] = src[keep[a:a + 4096]]
        dst.flush()
        del src, dst
        os.replace(compact, final)
        partial.unlink()
    labels = np.array([parse_name(nm)["action"] - 1 for nm in kept_names], dtype=np.int64)
    only60 = all(in_ntu60(nm) for nm in kept_names)
    classes = list(NTU120_CLASSES[:60] if only60 else NTU120_CLASSES)
    benchmarks = [b for b in BENCHMARKS if b.startswith("ntu60") or not only60]
    splits = {f"{b}_{s}": split_indices(kept_names, b, s) for b in benchmarks for s in ("train", "test")}
    summary = {"files": n, "built": int(len(keep)), "skipped": skipped, "excluded_missing": len(excluded),
               "frames": t, "persons": persons, "dtype": dtype, "workers": workers,
               "parsed_this_run": done_now, "reused_from_previous_build": reused,
               "seconds_this_run": round(elapsed, 2), "files_per_second_this_run": round(rate, 1),
               "resumed": resume, "forced": force, "roots": [str(r) for r in roots], "fingerprint": fingerprint}
    (out / SOURCES_FILE).write_text("".join(
        f"{nm}\t{stats[nm][0]}\t{stats[nm][1]}\t{'ok' if status_now[i] >= 0 else reasons.get(nm, 'skipped')}\n"
        for i, nm in enumerate(names)), encoding="utf-8")
    finish_prepared(out, status_now[keep], labels, kept_names, classes, "ntu25", splits, fps=30.0,
                    coordinates="world", source="NTU RGB+D .skeleton (core.data.ntu)",
                    extra={"build": summary, "benchmarks": benchmarks})
    status_file.unlink(missing_ok=True)
    skipped_file.unlink(missing_ok=True)
    state_file.unlink(missing_ok=True)
    (out / "skipped.txt").unlink(missing_ok=True)
    return summary


def default_built_root() -> Path:
    for name in ("ntu120", "ntu60"):
        if (data_root() / name / "manifest.json").is_file():
            return data_root() / name
    return data_root() / "ntu120"


def load_ntu(benchmark: str, split: str = "train", root: str | Path | None = None) -> SkeletonSplit:
    """One official split from a directory written by `python -m core.data.ntu` (memory-mapped)."""
    from core.data.store import load_prepared, read_manifest

    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown NTU benchmark {benchmark!r}; choose from {', '.join(BENCHMARKS)}")
    root = Path(root) if root else default_built_root()
    if not (root / "manifest.json").is_file():
        raise FileNotFoundError(f"no built NTU data set at {root}: build it with python -m core.data.ntu --root "
                                f"<nturgb+d_skeletons folder(s)> --out {root}")
    manifest = read_manifest(root)
    if benchmark not in manifest.get("benchmarks", []):
        raise ValueError(f"{root} holds {manifest.get('benchmarks')} but not {benchmark} (built from NTU-60 "
                         f"files only?)")
    names = (root / "names.txt").read_text(encoding="utf-8").splitlines()
    index = split_indices(names, benchmark, split)
    out = load_prepared(root, index=index, name=f"{benchmark}-{split}")
    if benchmark.startswith("ntu60"):
        out.class_names = list(NTU120_CLASSES[:60])
    return out


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(
        prog="python -m core.data.ntu",
        description="Build NTU RGB+D 60/120 from the raw .skeleton files into a memory-mappable prepared "
                    "directory (parallel, resumable), or check the official split counts.")
    p.add_argument("--root", nargs="+", help="folder(s) holding the .skeleton files (searched recursively)")
    p.add_argument("--out", default=None, help="output directory (default: runs/data/ntu120 or ntu60)")
    p.add_argument("--frames", type=int, default=100, help="fixed T: longer clips are resampled uniformly, "
                                                          "shorter ones zero-padded (default 100; NTU max is 300)")
    p.add_argument("--persons", type=int, default=2, help="actors kept per sample (default 2)")
    p.add_argument("--dtype", choices=("float16", "float32"), default="float16")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--ntu60", action="store_true", help="only the NTU-60 samples (S001-S017, A001-A060)")
    p.add_argument("--missing", default=None, help="list of samples to exclude (default: "
                                                   "../shared/data/ntu/ntu120_missing.txt when present)")
    p.add_argument("--limit", type=int, default=None, help="build only the first N files (a quick trial)")
    p.add_argument("--force", action="store_true",
                   help="parse every file again (by default only files that are new or changed in size or "
                        "modification time since the last build are parsed)")
    p.add_argument("--check-splits", action="store_true",
                   help="print the split counts from ../shared/data/ntu/ntu{60,120}_available_names.txt")
    args = p.parse_args(argv)
    if args.check_splits:
        print("| benchmark | train | test | expected |\n|---|---|---|---|")
        for bench, (tr, te) in check_splits().items():
            exp = EXPECTED_COUNTS[bench]
            print(f"| {bench} | {tr} | {te} | {exp[0]} / {exp[1]} {'ok' if (tr, te) == exp else 'MISMATCH'} |")
        return
    if not args.root:
        p.error("--root is required to build (or use --check-splits)")
    out = args.out or str(data_root() / ("ntu60" if args.ntu60 else "ntu120"))
    # a missing folder or no usable file (NoUsableSamplesError) is bad input, exit 2; an unwritable output is
    # exit 1 (run_cli)
    summary = build(args.root, out, args.frames, args.persons, args.dtype, args.workers, args.ntu60,
                    args.missing, args.limit, force=args.force)
    if summary.get("up_to_date"):
        print(f"{out} is already built from these {summary['files']} files, unchanged since, with the same "
              f"settings; nothing to do (--force parses them again)")
        return
    skipped = len(summary["skipped"])
    print(f"built {summary['built']} of {summary['files']} samples into {out}"
          + (f", skipped {skipped}" if skipped else "")
          + f" ({summary['parsed_this_run']} file{'' if summary['parsed_this_run'] == 1 else 's'} parsed at {summary['files_per_second_this_run']} files/s, "
            f"{summary['seconds_this_run']} s, {summary['workers']} workers; {summary['reused_from_previous_build']} "
            f"unchanged files reused from the previous build); excluded {summary['excluded_missing']} with "
            f"missing skeletons")
    if skipped:
        print(skipped_report(summary["skipped"], summary["files"], full_list=f"{out}/manifest.json"))

if __name__ == "__main__":
    sys.exit(run_cli(main, "python -m core.data.ntu"))
