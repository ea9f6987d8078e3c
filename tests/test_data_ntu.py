import json
from pathlib import Path

import numpy as np
import pytest

from core.cli import run_cli
from core.data import load_split
from core.data.ntu import (EXPECTED_COUNTS, SkeletonFormatError, build, check_splits, denoise, load_ntu,
                           parse_skeleton_text, read_skeleton, split_indices)
from core.data.ntu_synthetic import format_skeleton, spread_body, standing_body, write_skeleton
from core.data.store import load_prepared


def test_real_file_parses_to_103_frames_one_body(shared_dir):
    raw = read_skeleton(shared_dir / "data" / "ntu" / "S001C001P001R001A001.skeleton")
    assert raw.num_frames == raw.valid_frames == 103 and len(raw.bodies) == 1
    body = next(iter(raw.bodies.values()))
    assert body.body_id == "72057594037931101" and body.array().shape == (103, 25, 3)
    np.testing.assert_allclose(body.array()[0, 0], [0.2181153, 0.1725972, 3.785547], rtol=1e-6)
    x, info = denoise(raw)
    assert x.shape == (2, 103, 25, 3) and np.abs(x[1]).sum() == 0 and info["actors"] == 1


def test_official_split_counts_from_name_lists(shared_dir):
    counts = check_splits(shared_dir)
    assert counts == EXPECTED_COUNTS


def test_split_rules_on_names():
    names = ["S001C001P001R001A001", "S001C002P003R001A061", "S018C003P045R002A120", "S002C003P003R001A050"]
    assert split_indices(names, "ntu60-xsub", "train").tolist() == [0]  # A061 is not NTU-60; P003 tests
    assert split_indices(names, "ntu60-xview", "train").tolist() == [3]  # camera 3 trains
    assert split_indices(names, "ntu120-xsub", "train").tolist() == [0, 2]  # P045 is a training subject
    assert split_indices(names, "ntu120-xset", "train").tolist() == [2, 3]  # setups 18 and 2 are even


def _frames(*bodies, length):
    """bodies: (id, start, joints (F, 25, 3)) -> per-frame body lists."""
    return [[(bid, j[f - s]) for bid, s, j in bodies if 0 <= f - s < len(j)] for f in range(length)]


def test_two_actors_are_tracked_by_id_and_ordered_by_motion():
    rng = np.random.default_rng(0)
    calm = standing_body(30, rng)
    busy = standing_body(30, rng, offset=0.8)
    busy[:, :, 1] += np.linspace(0, 0.6, 30)[:, None]  # jumps: more motion
    frames = _frames(("111", 0, calm), ("222", 0, busy), length=30)
    for f in frames[::2]:
        f.reverse()  # body order inside a frame must not matter
    x, info = denoise(parse_skeleton_text(format_skeleton(frames)))
    assert x.shape == (2, 30, 25, 3) and info["actors"] == 2
    np.testing.assert_allclose(x[0], busy, atol=1e-5)
    np.testing.assert_allclose(x[1], calm, atol=1e-5)


def test_empty_frame_short_and_spread_bodies_are_dropped():
    rng = np.random.default_rng(1)
    main = standing_body(40, rng)
    frames = _frames(("1", 0, main), ("2", 5, standing_body(11, rng, 0.9)), ("3", 0, spread_body(40, rng)),
                     length=40)
    frames.insert(20, [])  # a frame with zero bodies
    raw = parse_skeleton_text(format_skeleton(frames))
    assert raw.num_frames == 41 and raw.valid_frames == 40 and len(raw.bodies) == 3
    x, info = denoise(raw)
    assert info["dropped_short"] == 1 and info["dropped_spread"] == 1 and info["actors"] == 1
    assert x.shape == (2, 40, 25, 3) and np.abs(x[1]).sum() == 0
    np.testing.assert_allclose(x[0], main, atol=1e-5)


def test_second_actor_gap_frames_are_dropped_and_sequential_bodies_join_actor_one():
    rng = np.random.default_rng(2)
    a, b = standing_body(20, rng), standing_body(20, rng, 0.5)
    frames = _frames(("1", 0, a), ("2", 30, b), length=50)  # frames 20..29 have no body at all
    frames = [f for f in frames if f]  # the file then has 40 frames, ids differ
    x, info = denoise(parse_skeleton_text(format_skeleton(frames)))
    assert x.shape[1] == 40 and info["actors"] == 1  # b does not overlap a: same actor slot
    assert np.abs(x[1]).sum() == 0


def test_crlf_equals_lf(tmp_path):
    rng = np.random.default_rng(3)
    frames = _frames(("9", 0, standing_body(15, rng)), length=15)
    lf = read_skeleton(write_skeleton(tmp_path / "S001C001P001R001A001.skeleton", frames))
    crlf = read_skeleton(write_skeleton(tmp_path / "S001C001P001R001A002.skeleton", frames, crlf=True))
    np.testing.assert_array_equal(denoise(lf)[0], denoise(crlf)[0])


@pytest.mark.parametrize("corrupt,line,message", [
    (lambda ls: ls.__setitem__(4, " ".join(ls[4].split()[:11])), 5, "11 values, expected 12"),
    (lambda ls: ls.__setitem__(7, ls[7].replace("2", "x", 1)), 8, "non-numeric"),
    (lambda ls: ls.__setitem__(1, "one"), 2, "non-numeric character .o."),
    (lambda ls: ls.__setitem__(1, "2.5"), 2, "expected the body count"),
    (lambda ls: ls.__setitem__(2, "72057594037931101 0 1"), 3, "3 values, expected 10"),
    (lambda ls: ls.__setitem__(3, "24"), 4, "joint count 24"),
    (lambda ls: ls.__delitem__(slice(40, None)), 41, "truncated"),
])
def test_corrupt_files_name_file_and_line(tmp_path, corrupt, line, message):
    rng = np.random.default_rng(4)
    lines = format_skeleton(_frames(("7", 0, standing_body(3, rng)), length=3)).splitlines()
    corrupt(lines)
    path = tmp_path / "S001C001P001R001A003.skeleton"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SkeletonFormatError, match=f"S001C001P001R001A003.skeleton:{line}: .*{message}"):
        read_skeleton(path)


def _write_set(folder, rng):
    names = ["S001C001P001R001A001", "S001C002P003R001A002", "S002C002P001R002A060", "S018C003P045R001A110",
             "S019C001P046R001A005"]
    for k, n in enumerate(names):
        bodies = [(f"{k}1", 0, standing_body(20 + 7 * k, rng))]
        if k == 3:
            bodies.append((f"{k}2", 0, standing_body(20 + 7 * k, rng, 0.7)))
        write_skeleton(folder / f"{n}.skeleton", _frames(*bodies, length=20 + 7 * k), crlf=k == 1)
    (folder / "S001C003P001R001A001.skeleton").write_text("3\n1\nbroken\n")  # corrupt: reported, skipped
    (folder / "S001C001P001R002A001.skeleton").write_text("2\n0\n0\n")  # missing skeleton: no body at all
    return names


def test_builder_reports_skips_and_writes_loadable_splits(tmp_path):
    rng = np.random.default_rng(5)
    names = _write_set(tmp_path / "raw", rng)
    missing = tmp_path / "missing.txt"
    missing.write_text("S019C001P046R001A005\n")
    summary = build([tmp_path / "raw"], tmp_path / "built", frames=32, workers=2, missing=missing, chunk=2,
                    progress=False)
    assert summary["built"] == 4 and summary["excluded_missing"] == 1 and len(summary["skipped"]) == 2
    assert any("S001C003P001R001A001.skeleton:3" in s for s in summary["skipped"])
    assert any("S001C001P001R002A001" in s and "no body" in s for s in summary["skipped"])
    built = load_prepared(tmp_path / "built")
    assert built.names == names[:4] and built.data.shape == (4, 2, 32, 25, 3)
    assert built.lengths.tolist() == [20, 27, 32, 32]  # 34 and 41 frames resampled to 32
    assert built.labels.tolist() == [0, 1, 59, 109] and built.data.dtype == np.float16
    assert np.abs(np.asarray(built.data[3], dtype=np.float32)[1]).sum() > 0  # the second actor
    manifest = json.loads((tmp_path / "built" / "manifest.json").read_text())
    assert manifest["build"]["skipped"] == summary["skipped"]
    train = load_split("ntu120-xsub", "train", root=tmp_path / "built")
    assert train.names == ["S001C001P001R001A001", "S002C002P001R002A060", "S018C003P045R001A110"]
    test60 = load_ntu("ntu60-xsub", "test", tmp_path / "built")
    assert test60.names == ["S001C002P003R001A002"] and test60.num_classes == 60
    assert test60.sample(0).shape == (2, 27, 25, 3)


def test_builder_resumes_after_an_interruption(tmp_path, monkeypatch):
    import core.data.ntu as ntu
    rng = np.random.default_rng(6)
    _write_set(tmp_path / "raw", rng)
    reference = build([tmp_path / "raw"], tmp_path / "fresh", frames=24, workers=1, chunk=1, progress=False,
                      )
    calls = {"n": 0}
    real = ntu.process_file

    def flaky(path, frames, persons=2):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(path, frames, persons)

    monkeypatch.setattr(ntu, "process_file", flaky)
    with pytest.raises(KeyboardInterrupt):
        build([tmp_path / "raw"], tmp_path / "resumed", frames=24, workers=1, chunk=1, progress=False)
    assert not (tmp_path / "resumed" / "manifest.json").exists()
    calls["n"] = -100
    summary = build([tmp_path / "raw"], tmp_path / "resumed", frames=24, workers=1, chunk=1, progress=False)
    assert summary["resumed"] and calls["n"] == -100 + summary["files"] - 3
    again = build([tmp_path / "raw"], tmp_path / "resumed", frames=24, workers=1, chunk=1, progress=False)
    assert again["up_to_date"] and calls["n"] == -100 + summary["files"] - 3  # nothing parsed twice
    a, b = load_prepared(tmp_path / "fresh"), load_prepared(tmp_path / "resumed")
    assert a.names == b.names and reference["built"] == summary["built"]
    np.testing.assert_array_equal(np.asarray(a.data), np.asarray(b.data))


# --- a port of CTR-GCN's get_raw_denoised_data.py as an oracle (only the second actor's initial interval
# is None instead of [0, 0], the one deviation core.data.ntu documents)
def _reference_denoise(frames):
    bodies, valid = {}, -1
    for frame in frames:
        if not frame:
            continue
        valid += 1
        for bid, joints in frame:
            if bid not in bodies:
                bodies[bid] = {"joints": joints[None], "interval": [valid]}
            else:
                b = bodies[bid]
                b["joints"] = np.vstack((b["joints"], joints[None]))
                b["interval"].append(b["interval"][-1] + 1)
    num_frames = valid + 1
    if len(bodies) > 1:
        for b in bodies.values():
            b["motion"] = np.sum(np.var(b["joints"].reshape(-1, 3), axis=0))

    def one_actor(b):
        out = np.zeros((num_frames, 150), dtype=np.float32)
        out[b["interval"][0]:b["interval"][-1] + 1, :75] = b["joints"].reshape(-1, 75)
        return out

    if len(bodies) == 1:
        return one_actor(next(iter(bodies.values())))
    for bid in list(bodies):
        if len(bodies[bid]["interval"]) <= 11:
            del bodies[bid]
    if len(bodies) > 1:
        for bid in list(bodies):
            if len(bodies) == 1:
                break
            j = bodies[bid]["joints"]
            ok = [i for i in range(len(j)) if np.ptp(j[i, :, 0]) <= 0.8 * np.ptp(j[i, :, 1])]
            noise = len(j) - len(ok)
            if noise == 0:
                continue
            if noise / len(j) >= 0.69754:
                del bodies[bid]
            else:
                bodies[bid]["motion"] = min(bodies[bid]["motion"], np.sum(np.var(j[ok].reshape(-1, 3), axis=0)))
    if not bodies:
        return None  # the reference code crashes here; core.data.ntu keeps the longest body instead
    order = sorted(bodies.items(), key=lambda kv: kv[1]["motion"], reverse=True) if len(bodies) > 1 \
        else list(bodies.items())
    if len(order) == 1:
        joints = one_actor(order[0][1])
    else:
        joints = np.zeros((num_frames, 150), dtype=np.float32)
        actor1 = order[0][1]
        start1, end1 = actor1["interval"][0], actor1["interval"][-1]
        joints[start1:end1 + 1, :75] = actor1["joints"].reshape(-1, 75)
        start2 = end2 = None
        for _, actor in order[1:]:
            start, end = actor["interval"][0], actor["interval"][-1]
            if min(end1, end) - max(start1, start) <= 0:
                joints[start:end + 1, :75] = actor["joints"].reshape(-1, 75)
                start1, end1 = min(start, start1), max(end, end1)
            elif start2 is None or min(end2, end) - max(start2, start) <= 0:
                joints[start:end + 1, 75:] = actor["joints"].reshape(-1, 75)
                start2 = start if start2 is None else min(start, start2)
                end2 = end if end2 is None else max(end, end2)
    return joints[joints.sum(axis=1) != 0]


def test_denoising_matches_the_reference_algorithm_on_random_scenes():
    rng = np.random.default_rng(7)
    checked_multi = 0
    for _ in range(150):
        length = int(rng.integers(15, 60))
        bodies = []
        for b in range(int(rng.integers(1, 5))):
            start = int(rng.integers(0, length - 3))
            span = int(rng.integers(3, length - start + 1))
            kind = rng.random()
            joints = spread_body(span, rng) if kind < 0.2 else standing_body(span, rng, offset=float(b))
            if 0.2 <= kind < 0.3:  # partly spread: kept, motion from its clean frames
                joints[: span // 3] = spread_body(span // 3, rng)
            joints[..., 1] += rng.uniform(0, 0.5) * np.sin(np.linspace(0, 6, span))[:, None]  # varied motion
            bodies.append((f"{b}", start, joints.astype(np.float32)))
        frames = _frames(*bodies, length=length)
        # round-trip through the file format so both see identical float32 values
        raw = parse_skeleton_text(format_skeleton(frames))
        frames = [[(bid, body.array()[body.frames.index(k)]) for bid, body in raw.bodies.items() if k in body.frames]
                  for k in range(raw.valid_frames)]
        ours, _ = denoise(raw)
        ref = _reference_denoise(frames)
        if ref is None:  # every body short: the longest is kept
            longest = max(raw.bodies.values(), key=lambda body: len(body.frames))
            np.testing.assert_array_equal(ours[0], longest.array())
            continue
        expect = np.stack([ref[:, :75].reshape(-1, 25, 3), ref[:, 75:].reshape(-1, 25, 3)])
        assert ours.shape == expect.shape
        np.testing.assert_array_equal(ours, expect)
        checked_multi += len(raw.bodies) > 1
    assert checked_multi > 80


def test_rebuild_picks_up_a_fixed_file_and_force_parses_everything(tmp_path, capsys, monkeypatch):
    import core.data.ntu as ntu
    rng = np.random.default_rng(8)
    names = _write_set(tmp_path / "raw", rng)  # 5 good, 1 corrupt, 1 without bodies
    fixed = tmp_path / "raw" / "S001C003P001R001A001.skeleton"
    empty_list = tmp_path / "missing.txt"  # not ../shared's list: every file here counts
    empty_list.write_text("")
    first = build([tmp_path / "raw"], tmp_path / "built", frames=24, workers=1, missing=empty_list, progress=False)
    assert first["built"] == 5 and len(first["skipped"]) == 2 and first["parsed_this_run"] == 7
    before = load_prepared(tmp_path / "built", mmap=False)
    assert "S001C003P001R001A001" not in before.names
    same = build([tmp_path / "raw"], tmp_path / "built", frames=24, workers=1, missing=empty_list, progress=False)
    assert same["up_to_date"]

    write_skeleton(fixed, _frames(("91", 0, standing_body(30, rng)), length=30))  # the corrupt file is replaced
    calls = []
    real = ntu.process_file

    def counting(path, frames, persons=2):
        calls.append(Path(path).stem)
        return real(path, frames, persons)

    monkeypatch.setattr(ntu, "process_file", counting)
    again = build([tmp_path / "raw"], tmp_path / "built", frames=24, workers=1, missing=empty_list,
                  progress=False)
    assert calls == ["S001C003P001R001A001"]  # only the changed file is parsed
    assert again["built"] == 6 and again["parsed_this_run"] == 1 and again["reused_from_previous_build"] == 6
    assert len(again["skipped"]) == 1 and "no body" in again["skipped"][0]  # the unchanged bad file stays out
    after = load_prepared(tmp_path / "built")
    assert after.names == sorted(names[:5] + ["S001C003P001R001A001"])
    for name in before.names:  # reused rows are the same data
        np.testing.assert_array_equal(np.asarray(after.data[after.names.index(name)]),
                                      np.asarray(before.data[before.names.index(name)]))
    assert after.lengths[after.names.index("S001C003P001R001A001")] == 24
    calls.clear()
    ntu.main(["--root", str(tmp_path / "raw"), "--out", str(tmp_path / "built"), "--frames", "24",
              "--workers", "1", "--missing", str(empty_list), "--force"])
    assert len(calls) == 7  # --force parses every file again
    out = capsys.readouterr().out
    assert "built 6 of 7 samples" in out and "skipped 1" in out and "0 unchanged files reused" in out
    assert "skipped 1 of 7 files:\n  " in out and "S001C001P001R002A001" in out


def test_a_build_with_no_usable_file_fails_naming_the_reason(tmp_path, capsys):
    from core.data.ntu import NoUsableSamplesError, main
    raw = tmp_path / "raw"
    raw.mkdir()
    lines = format_skeleton(_frames(("7", 0, standing_body(3, np.random.default_rng(9))), length=3)).splitlines()
    (raw / "S001C001P001R001A001.skeleton").write_text("\n".join(lines[:40]) + "\n")  # truncated
    empty_list = tmp_path / "missing.txt"
    empty_list.write_text("")
    code = run_cli(main, "python -m core.data.ntu", ["--root", str(raw), "--out", str(tmp_path / "built"),
                                                     "--workers", "1", "--missing", str(empty_list)])
    full = capsys.readouterr().err
    err = full.split("\n")[-2]  # the last line (above it: the progress bar)
    assert code == 2 and full.count(": error: ") == 1 and full.endswith("\n")
    assert err.startswith("python -m core.data.ntu: error: no usable sample: all 1 file was skipped (")
    assert "S001C001P001R001A001.skeleton:41: " in err and "truncated" in err
    assert not (tmp_path / "built" / "manifest.json").exists() and not (tmp_path / "built" / "data.npy").exists()
    with pytest.raises(NoUsableSamplesError, match="all 1 file was skipped"):  # the library raises, too
        build([raw], tmp_path / "built", workers=1, missing=empty_list, progress=False)
    code = run_cli(main, "python -m core.data.ntu", ["--root", str(tmp_path / "nowhere"), "--out", str(tmp_path)])
    assert code == 2 and "NTU skeleton folder not found" in capsys.readouterr().err
