"""Faults survived, tested by really killing processes (SIGKILL: no handler, no finally block runs) and by
really filling the disk (RLIMIT_FSIZE: every write past the limit fails with EFBIG, as on a full disk):

- a training killed while it overwrites a checkpoint leaves the previous checkpoint loadable;
- an NTU build killed while parsing, or while writing its result, resumes to the arrays of an uninterrupted build;
- the NW-UCLA cache killed while being written is rebuilt, never read half-written;
- an export that runs out of disk is a named error and leaves no half-file (an earlier good artifact stays).

LAST_FAULT_FIGURES=<file.json> writes the faults injected and what was lost."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from backend_checker import backend_checker
from core.checkpoint import atomic_torch_save, load_checkpoint, load_model

REPO = Path(__file__).resolve().parents[1]
FIGURES: dict[str, dict[str, int]] = defaultdict(lambda: {"faults_injected": 0, "lost_or_half_written": 0})

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")


@pytest.fixture(scope="module", autouse=True)
def figures_file():
    yield
    out = os.environ.get("LAST_FAULT_FIGURES")
    if out:
        Path(out).write_text(json.dumps({
            "command": f"LAST_FAULT_FIGURES={out} python -m pytest -q -p no:cacheprovider tests/test_faults.py",
            "faults": dict(sorted(FIGURES.items()))}, indent=1) + "\n")


def run_until_marker(code: str, marker: Path, timeout_s: float = 300.0) -> str:
    """Run `code` in a fresh interpreter; SIGKILL it as soon as it creates `marker` (the fault point)."""
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + timeout_s
    while not marker.exists():
        if proc.poll() is not None:
            pytest.fail(f"the process ended before the fault point:\n{proc.stdout.read().decode()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the fault point was not reached in time")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return marker.read_text()


# ---- a training killed while it writes a checkpoint ----------------------------------------------------------
TRAIN_KILLED_IN_SAVE = """
    import io, os, sys, time
    from pathlib import Path
    import torch
    out, marker = Path({out!r}), Path({marker!r})
    real_save = torch.save

    def save(obj, f, *args, **kwargs):  # core.checkpoint writes '.<name>.<random>.tmp', then renames it
        target = out / Path(f.name).name[1:].rsplit(".", 2)[0]
        if target.exists():  # overwriting a good checkpoint: write half of the new one, then get killed
            buf = io.BytesIO()
            real_save(obj, buf, *args, **kwargs)
            f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
            f.flush()
            os.fsync(f.fileno())
            marker.write_text(target.name)
            time.sleep(600)
        return real_save(obj, f, *args, **kwargs)

    torch.save = save
    from train.fit import main
    main(["--config", "configs/synthetic.yaml", "data.frames=16", "model.variant=last_lite_nano",
          "schedule.epochs=3", "schedule.warmup_epochs=0", "optim.batch_size=32", "train.threads=1",
          "data.num_workers=0", "output_dir=" + str(out)])
"""


@pytest.mark.slow  # one epoch of a tiny synthetic training in a subprocess: ~15 s here
def test_training_killed_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path):
    out, marker = tmp_path / "run", tmp_path / "killed"
    victim = run_until_marker(TRAIN_KILLED_IN_SAVE.format(out=str(out), marker=str(marker)), marker)
    FIGURES["checkpoint_write_killed"]["faults_injected"] += 1
    half = list(out.glob(f".{victim}.*.tmp"))
    assert len(half) == 1 and half[0].stat().st_size > 0  # it really died inside the write
    ckpt = load_checkpoint(out / victim)  # the previous checkpoint, whole
    model, _ = load_model(out / victim)
    assert ckpt["train"]["epoch"] >= 1 and model.cfg.num_classes == len(ckpt["class_names"])
    assert all(load_checkpoint(p)["format"] for p in out.glob("*.pt"))  # every visible checkpoint is whole
    atomic_torch_save(ckpt, out / victim)  # the next write of that file clears the half-written temporary
    assert not list(out.glob(f".{victim}.*.tmp"))
    assert load_checkpoint(out / victim)["train"]["epoch"] == ckpt["train"]["epoch"]


# ---- an NTU build killed mid-way -----------------------------------------------------------------------------
BUILD_KILLED = """
    import time
    from pathlib import Path
    import core.data.ntu as ntu
    import core.data.store as store
    marker, point = Path({marker!r}), {point!r}
    real_chunk, real_finish, done = ntu._work_chunk, store.finish_prepared, []

    def chunk(args):  # killed after three chunks of four files
        result = real_chunk(args)
        done.append(1)
        if point == "parsing" and len(done) == 3:
            marker.write_text("parsing")
            time.sleep(600)
        return result

    def finish(*args, **kwargs):  # killed after data.npy is in place, before the manifest
        marker.write_text("finishing")
        time.sleep(600)

    ntu._work_chunk, store.finish_prepared = chunk, finish
    ntu.build([{src!r}], {out!r}, frames=20, workers=1, chunk=4, progress=False, missing={missing!r})
"""

PREPARED_FILES = ("data.npy", "lengths.npy", "labels.npy", "names.txt")


@pytest.fixture(scope="module")
def ntu_sources(tmp_path_factory):
    from core.data.ntu import build
    from core.data.ntu_synthetic import make_dataset
    root = tmp_path_factory.mktemp("ntu_faults")
    make_dataset(root / "src", 24, seed=3)
    (root / "src" / "S001C001P001R001A001.skeleton").write_text("3\n1\n")  # a truncated file: skipped, recorded
    (root / "missing.txt").write_text("")
    reference = build([root / "src"], root / "reference", frames=20, workers=1, chunk=4, progress=False,
                      missing=root / "missing.txt")
    assert reference["files"] == 24 and reference["built"] == 23 and len(reference["skipped"]) == 1
    return root


@pytest.mark.parametrize("point", ["parsing", "finishing"])
def test_ntu_build_killed_midway_resumes_to_the_same_arrays(point, ntu_sources, tmp_path):
    from core.data.ntu import build
    out, marker = tmp_path / "built", tmp_path / "killed"
    run_until_marker(BUILD_KILLED.format(marker=str(marker), point=point, src=str(ntu_sources / "src"), out=str(out),
                                         missing=str(ntu_sources / "missing.txt")), marker)
    FIGURES[f"ntu_build_killed_while_{point}"]["faults_injected"] += 1
    assert not (out / "manifest.json").exists()  # nothing claims to be a finished data set
    summary = build([ntu_sources / "src"], out, frames=20, workers=1, chunk=4, progress=False,
                    missing=ntu_sources / "missing.txt")
    if point == "parsing":
        assert summary["resumed"] and summary["parsed_this_run"] < 25  # the rows done before the kill were kept
    reference = ntu_sources / "reference"
    for name in PREPARED_FILES + tuple(p.name for p in reference.glob("split_*.npy")):
        if name.endswith(".npy"):
            same = np.array_equal(np.load(out / name), np.load(reference / name))
        else:
            same = (out / name).read_text() == (reference / name).read_text()
        FIGURES[f"ntu_build_killed_while_{point}"]["lost_or_half_written"] += not same
        assert same, name
    assert summary["skipped"] == json.loads((reference / "manifest.json").read_text())["build"]["skipped"]
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in reference.iterdir())


# ---- the NW-UCLA cache killed while it is written -------------------------------------------------------------
CACHE_KILLED = """
    import time
    from pathlib import Path
    import numpy as np
    import core.data.nw_ucla as nw
    marker, real_savez = Path({marker!r}), np.savez

    def savez(file, **arrays):  # half of the cache file, then killed
        real_savez(file, **arrays)
        data = Path(file).read_bytes()
        Path(file).write_bytes(data[: len(data) // 2])
        marker.write_text("cache")
        time.sleep(600)

    nw.np.savez = savez
    nw.load_arrays({root!r}, cache={cache!r}, verbose=False)
"""


def test_nw_ucla_cache_killed_while_written_is_rebuilt_the_same(tmp_path):
    from core.data.nw_ucla import load_arrays
    root, cache, marker = tmp_path / "all_sqe", tmp_path / "cache", tmp_path / "killed"
    root.mkdir()
    rng = np.random.default_rng(0)
    for k in range(12):
        name = f"a{1 + k % 6:02d}_s{1 + k % 3:02d}_e{k:02d}_v0{1 + k % 3}"
        (root / f"{name}.json").write_text(json.dumps({"file_name": name, "label": 1 + k % 10,
                                                       "skeletons": rng.normal(size=(5 + k, 20, 3)).tolist()}))
    run_until_marker(CACHE_KILLED.format(marker=str(marker), root=str(root), cache=str(cache)), marker)
    FIGURES["nw_ucla_cache_write_killed"]["faults_injected"] += 1
    assert not list(cache.glob("nw_ucla_v2_*[0-9a-f].npz"))  # only the half temporary exists
    fresh = load_arrays(root, cache=False, verbose=False)
    for attempt in ("rebuilt", "from the cache"):
        got = load_arrays(root, cache=cache, verbose=False)
        same = all(np.array_equal(got[k], fresh[k]) for k in fresh)
        FIGURES["nw_ucla_cache_write_killed"]["lost_or_half_written"] += not same
        assert same, attempt
    assert len(list(cache.glob("nw_ucla_v2_*[0-9a-f].npz"))) == 1


# ---- a full disk during an export ----------------------------------------------------------------------------
FULL_DISK = """
    import resource, signal, sys
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as ENOSPC would
    resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
    from converters.onnx import main
    sys.exit(main(["--ckpt", {ckpt!r}, "--out", {out!r}, "--quiet"]))
"""


@backend_checker("onnxruntime")
def test_export_on_a_full_disk_is_a_named_error_and_leaves_no_half_file(tiny_checkpoint, tmp_path):
    from converters.onnx import export
    from core.runtime import load_runtime
    good = export(tiny_checkpoint["ckpt"], tmp_path / "kept", "fp32", verify_samples=4)
    assert good.ok
    good_bytes = good.path.read_bytes()
    kept = sorted(p.name for p in (tmp_path / "kept").iterdir())
    # the graph does not fit; the graph fits but the metadata rewrite and sidecar do not
    for out, before, limit in ((tmp_path / "kept", kept, len(good_bytes) // 3),
                               (tmp_path / "empty", [], len(good_bytes) - 200)):
        done = subprocess.run([sys.executable, "-c", textwrap.dedent(FULL_DISK.format(
            limit=limit, ckpt=str(tiny_checkpoint["ckpt"]), out=str(out)))], cwd=REPO, capture_output=True,
            text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        FIGURES["export_disk_full"]["faults_injected"] += 1
        said = done.stdout + done.stderr
        assert done.returncode == 1 and "Traceback" not in said, said[-2000:]
        assert "[failed] onnx fp32" in said and ("File too large" in said or "cannot write" in said), said
        left = sorted(p.name for p in out.iterdir()) if out.exists() else []
        FIGURES["export_disk_full"]["lost_or_half_written"] += left != before
        assert left == before  # no half-file, no staging folder, no stray sidecar
    assert good.path.read_bytes() == good_bytes  # the earlier good artifact is untouched and still runs
    with load_runtime(good.path) as rt:
        assert rt.predict(np.zeros(rt.metadata["input_shape"][1:], np.float32)[None]).shape[0] == 1


def test_a_killed_export_leaves_only_a_hidden_staging_folder_that_the_next_export_removes(tiny_checkpoint, tmp_path):
    """SIGKILL in the middle of an export: out/ gets no artifact, only a hidden .export-<pid>-* folder, which the
    next export into the same folder clears (its process is gone)."""
    marker = tmp_path / "killed"
    code = f"""
        import time
        from pathlib import Path
        import converters.onnx as o
        real = o.finalize

        def finalize(path, *args, **kwargs):  # the graph is written, the metadata not yet
            Path({str(marker)!r}).write_text(str(path))
            time.sleep(600)

        o.finalize = finalize
        o.export({str(tiny_checkpoint['ckpt'])!r}, {str(tmp_path / 'out')!r}, "fp32", verify_samples=4)
    """
    run_until_marker(code, marker)
    FIGURES["export_killed"]["faults_injected"] += 1
    left = [p.name for p in (tmp_path / "out").iterdir()]
    assert len(left) == 1 and left[0].startswith(".export-")  # nothing a runtime or glob('*.onnx') would pick up
    from converters.onnx import export
    assert export(tiny_checkpoint["ckpt"], tmp_path / "out", "fp32", verify_samples=4).ok
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".export-")]
    shutil.rmtree(tmp_path / "out")
