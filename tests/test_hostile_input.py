"""Hostile input by the thousand (Hypothesis): every parser a user feeds gets random and mutated files.

The only outcomes allowed are a result or the project's named error (the documented exception type of that
parser, its message naming the file or argument); any other exception, a hang (the profile's deadline) or a
file left behind fails. The CI profile tries a few hundred cases per target; a thorough run tries thousands:

    HYPOTHESIS_PROFILE=thorough LAST_HOSTILE_FIGURES=docs/reliability_hostile.json \\
        python -m pytest -q -p no:cacheprovider tests/test_hostile_input.py

(LAST_HOSTILE_FIGURES writes the cases tried per target and their outcomes as JSON.)"""
from __future__ import annotations

import io
import json
import os
import platform
import shutil
import tempfile
import zipfile
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

hypothesis = pytest.importorskip("hypothesis", reason="pip install hypothesis (the dev extra)")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from converters.calib import load_calibration  # noqa: E402
from converters.common import InputError  # noqa: E402
from core.checkpoint import CheckpointError, checkpoint_dict, load_model  # noqa: E402
from core.cli import error_message  # noqa: E402
from core.data.custom import CustomFormatError, read_folder, read_sample  # noqa: E402
from core.data.mediapipe import load_mediapipe  # noqa: E402
from core.data.ntu import process_file  # noqa: E402
from core.data.ntu_synthetic import format_skeleton, standing_body  # noqa: E402
from core.data.nw_ucla import NWUCLAError, read_sample as read_nw_ucla  # noqa: E402
from core.models.last import create_model  # noqa: E402
from core.spec import InputSpec  # noqa: E402
from devices import PROFILE_DIR, ProfileError, load_profile  # noqa: E402
from train.config import ConfigError, load_config  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FIGURES: dict[str, Counter] = defaultdict(Counter)
FUZZ = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
WORK = Path(tempfile.mkdtemp(prefix="last_hostile_"))  # one file per target, rewritten by every case


@pytest.fixture(scope="module", autouse=True)
def figures_file():
    yield
    shutil.rmtree(WORK, ignore_errors=True)
    out = os.environ.get("LAST_HOSTILE_FIGURES")
    if out:
        profile = settings.default
        Path(out).write_text(json.dumps({
            "command": "HYPOTHESIS_PROFILE=" + os.environ.get("HYPOTHESIS_PROFILE", "ci") + " LAST_HOSTILE_FIGURES="
                       + out + " python -m pytest -q -p no:cacheprovider tests/test_hostile_input.py",
            "profile": os.environ.get("HYPOTHESIS_PROFILE", "ci"), "max_examples": profile.max_examples,
            "deadline_ms": profile.deadline.total_seconds() * 1000 if profile.deadline else None,
            "hypothesis": hypothesis.__version__, "python": platform.python_version(),
            "targets": {k: {"cases": sum(v.values()), **dict(sorted(v.items()))} for k, v in sorted(FIGURES.items())},
        }, indent=1) + "\n")


def expect_named(target: str, call, errors: tuple[type[BaseException], ...], *names: str):
    """call() returns (a result) or raises one of `errors` whose one-line message names one of `names`."""
    try:
        result = call()
    except errors as exc:
        message = error_message(exc)
        assert any(n in message for n in names), f"{type(exc).__name__} does not name {names}: {message}"
        FIGURES[target]["named_error"] += 1
        return None
    FIGURES[target]["result"] += 1
    return result


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


# ---- value strategies ----------------------------------------------------------------------------------------
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.text(max_size=12))
JSON_VALUES = st.recursive(SCALARS.filter(lambda v: not isinstance(v, int) or abs(v) < 2**63)
                           .filter(lambda v: not isinstance(v, float) or np.isfinite(v)),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=4), max_leaves=12)
YAML_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
DTYPES = st.sampled_from(["float32", "float64", "float16", "int8", "int64", "uint8", "bool", "complex64", "<U3"])


@st.composite
def arrays(draw, shapes=None, max_dims: int = 5):
    """Small numeric (and string) arrays of odd shapes and dtypes, with NaN/inf/huge values sometimes."""
    shape = draw(shapes) if shapes is not None else tuple(draw(st.lists(st.integers(0, 4), max_size=max_dims)))
    dtype = np.dtype(draw(DTYPES))
    size = int(np.prod(shape)) if shape else 1
    if dtype.kind == "U":
        values = np.array(draw(st.lists(st.text(max_size=3), min_size=size, max_size=size)), dtype=dtype)
    else:
        fill = draw(st.sampled_from([0.0, 1.0, -1.0, np.nan, np.inf, 1e30, 0.5, -7.0]))
        with np.errstate(all="ignore"):
            values = np.full(size, fill).astype(dtype) if dtype.kind != "b" else np.full(size, bool(fill == fill))
            noise = draw(st.integers(0, 2**32 - 1))
            if dtype.kind in "fc":
                values = values + np.random.default_rng(noise).normal(0, 1, size).astype(dtype)
    return values.reshape(shape)


def mutate_bytes(data: bytes, draw) -> bytes:
    """Truncate, flip bits, overwrite or splice: the damage a disk, a transfer or an editor does."""
    kind = draw(st.sampled_from(["truncate", "flip", "overwrite", "splice", "duplicate"]))
    n = len(data)
    if kind == "truncate":
        return data[:draw(st.integers(0, max(0, n - 1)))]
    buf = bytearray(data)
    if kind == "flip":
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, n - 1))
            buf[i] ^= 1 << draw(st.integers(0, 7))
        return bytes(buf)
    i = draw(st.integers(0, n))
    chunk = draw(st.binary(min_size=1, max_size=32))
    if kind == "overwrite":
        buf[i:i + len(chunk)] = chunk
    elif kind == "splice":
        buf[i:i] = chunk
    else:
        j = draw(st.integers(i, min(n, i + 200)))
        buf[i:i] = data[i:j]
    return bytes(buf)


# ---- NTU .skeleton text ----------------------------------------------------------------------------------------
def _valid_skeleton(frames: int, bodies: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    tracks = [standing_body(frames, rng, offset=0.6 * b) for b in range(bodies)]
    return format_skeleton([[(f"7205{b}", tracks[b][t]) for b in range(bodies)] for t in range(frames)]).encode()


@st.composite
def skeleton_files(draw) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=400))
    valid = _valid_skeleton(draw(st.integers(1, 14)), draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    if draw(st.booleans()):  # token-level damage: a count or a number replaced by something else
        lines = valid.decode().splitlines()
        k = draw(st.integers(0, len(lines) - 1))
        tokens = lines[k].split() or [""]
        tokens[draw(st.integers(0, len(tokens) - 1))] = draw(st.sampled_from(
            ["-1", "0", "999999999", "1e999", "nan", "-inf", "", "3.5", "25", "0x1f", "1,5", "١"]))
        lines[k] = " ".join(tokens)
        return "\n".join(lines).encode("utf-8")
    return mutate_bytes(valid, draw)


@FUZZ
@given(skeleton_files())
def test_ntu_skeleton_files(data):
    path = WORK / "S001C001P001R001A001.skeleton"
    path.write_bytes(data)
    x, length, error = process_file(str(path), frames=16)
    if error:
        assert x is None and path.name in error and "\n" not in error, error
        FIGURES["ntu_skeleton"]["named_error"] += 1
    else:
        assert x.shape[1:] == (16, 25, 3) and 0 < length <= 16
        FIGURES["ntu_skeleton"]["result"] += 1


# ---- custom .npz samples + manifest --------------------------------------------------------------------------
@st.composite
def custom_samples(draw) -> dict[str, np.ndarray]:
    shapes = st.one_of(st.tuples(st.integers(0, 2), st.integers(0, 3), st.sampled_from([25, 24, 0]),
                                 st.integers(0, 4)),
                       st.tuples(st.integers(0, 3), st.sampled_from([25, 3]), st.integers(1, 3)),
                       st.lists(st.integers(0, 3), max_size=5).map(tuple))
    sample = {"keypoint": draw(arrays(shapes))} if draw(st.integers(0, 7)) else {}
    if draw(st.booleans()):
        sample["keypoint_score"] = draw(arrays())
    if draw(st.booleans()):
        sample["label"] = draw(arrays(st.sampled_from([(), (1,), (2,), (0,)])))
    if draw(st.booleans()):
        sample["frame_dir"] = draw(arrays(st.sampled_from([(), (2,)])))
    return sample


@FUZZ
@given(custom_samples(), st.floats(0, 1), st.booleans(), st.floats(0, 1))
def test_custom_npz_samples(sample, threshold, score_channel, max_missing):
    path = WORK / "sample.npz"
    np.savez(path, **sample)
    result = expect_named("custom_npz", lambda: read_sample(path, "ntu25", None, None, threshold, score_channel,
                                                           None, max_missing), (CustomFormatError,), str(path))
    if result is not None:
        assert result.keypoint.ndim == 4 and np.isfinite(result.keypoint).all() and isinstance(result.label, int)


@FUZZ
@given(st.one_of(JSON_VALUES, st.fixed_dictionaries(
    {"layout": st.sampled_from(["ntu25", "kinect20", "nope", ""]) | JSON_VALUES},
    optional={"samples": st.lists(st.fixed_dictionaries({"file": st.sampled_from(["ok.npz", "missing.npz", "../x",
                                                                                   "sub", ""]) | JSON_VALUES},
                                                         optional={"label": JSON_VALUES, "split": JSON_VALUES})
                                  | JSON_VALUES, max_size=4),
              "class_names": JSON_VALUES, "joint_order": JSON_VALUES, "max_missing": JSON_VALUES})),
       st.binary(max_size=40))
def test_custom_manifests(manifest, garbage):
    src = WORK / "custom"
    src.mkdir(exist_ok=True)
    (src / "sub").mkdir(exist_ok=True)
    np.savez(src / "ok.npz", keypoint=standing_body(6, np.random.default_rng(0))[None].astype(np.float32), label=0)
    text = json.dumps(manifest) if garbage[:1] != b"!" else garbage.decode("latin-1")
    (src / "manifest.json").write_text(text, encoding="latin-1" if garbage[:1] == b"!" else "utf-8")
    expect_named("custom_manifest", lambda: read_folder(src, verbose=False), (CustomFormatError,), str(src))


# ---- MediaPipe .npz ------------------------------------------------------------------------------------------
@st.composite
def mediapipe_files(draw) -> dict[str, np.ndarray]:
    n = draw(st.integers(0, 5))
    pose_shapes = st.one_of(st.just((n, 4, 33, 4)), st.tuples(st.just(n), st.integers(0, 3), st.sampled_from([33, 25]),
                                                               st.integers(2, 5)), st.lists(st.integers(0, 3),
                                                                                            max_size=5).map(tuple))
    out = {}
    if draw(st.integers(0, 7)):
        out["pose"] = draw(arrays(pose_shapes))
    if draw(st.integers(0, 7)):
        out["label"] = draw(st.one_of(arrays(st.just((n,))), arrays(st.sampled_from([(), (n + 1,), (n, 2)])),
                                      st.lists(st.integers(-3, 4), min_size=n, max_size=n).map(np.array)))
    for key, shapes in (("classes", st.sampled_from([(0,), (1,), (3,), (5,)])), ("names", st.just((n,))),
                        ("lengths", st.sampled_from([(n,), (), (n + 2,)]))):
        if draw(st.booleans()):
            out[key] = draw(arrays(shapes))
    return out


@FUZZ
@given(mediapipe_files(), st.sampled_from(["train", "test", "all"]))
def test_mediapipe_npz(arrays_in, split):
    path = WORK / "mediapipe.npz"
    np.savez(path, **arrays_in)
    result = expect_named("mediapipe_npz", lambda: load_mediapipe(split, path), (ValueError,), str(path))
    if result is not None:
        assert len(result.data) == len(result.labels) == len(result.lengths) == len(result.names)
        assert ((result.labels >= 0) & (result.labels < len(result.class_names))).all()
        assert ((result.lengths >= 1) & (result.lengths <= result.data.shape[2])).all()


# ---- NW-UCLA json --------------------------------------------------------------------------------------------
@FUZZ
@given(st.one_of(JSON_VALUES, st.fixed_dictionaries(
    {"skeletons": st.one_of(JSON_VALUES, arrays(st.sampled_from([(3, 20, 3), (0, 20, 3), (2, 19, 3), (2, 20)]))
                            .map(lambda a: a.tolist() if a.dtype.kind in "fiub" else a.tolist())),
     "label": st.one_of(JSON_VALUES, st.integers(-2, 12), st.floats())},
    optional={"file_name": JSON_VALUES})), st.booleans())
def test_nw_ucla_json(document, raw):
    path = WORK / "a01_s01_e01_v01.json"
    try:
        text = json.dumps(document, allow_nan=True)
    except (TypeError, ValueError):
        text = str(document)
    path.write_text(text[: len(text) // 2] if raw else text)
    result = expect_named("nw_ucla_json", lambda: read_nw_ucla(path), (NWUCLAError,), str(path))
    if result is not None:
        name, skel, label = result
        assert isinstance(name, str) and skel.shape[1:] == (20, 3) and 0 <= label < 10 and np.isfinite(skel).all()


# ---- YAML configs and key=value overrides --------------------------------------------------------------------
CONFIG_KEYS = ["data.name", "data.frames", "model.variant", "model.streams", "optim.lr", "optim.batch_size",
               "schedule.epochs", "schedule.name", "train.threads", "augment.rotate", "name", "output_dir", "nope.key"]


@FUZZ
@given(st.one_of(st.text(max_size=200), st.dictionaries(st.sampled_from(CONFIG_KEYS), YAML_VALUES, max_size=4)
                 .map(lambda d: yaml.safe_dump(_nest(d)))),
       st.lists(st.one_of(st.text(max_size=30), st.tuples(st.sampled_from(CONFIG_KEYS), st.text(max_size=12))
                          .map("=".join)), max_size=3))
def test_configs_and_overrides(text, overrides):
    path = WORK / "config.yaml"
    path.write_text(text)
    result = expect_named("config", lambda: load_config(path, overrides), (ConfigError,), str(path), "command line",
                          "config:")
    if result is not None:
        assert isinstance(result["optim"]["lr"], float) and result["schedule"]["epochs"] >= 1


def _nest(flat: dict) -> dict:
    out: dict = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {}) if isinstance(node.get(p, {}), dict) else {}
        node[leaf] = value
    return out


# ---- checkpoints: truncated, bit-flipped, wrong format version, wrong contents -------------------------------
def _checkpoint_bytes(**changes) -> bytes:
    torch.manual_seed(0)
    model = create_model("last_lite_nano", num_classes=3, layout="ntu25")
    ckpt = checkpoint_dict(model, InputSpec(layout="ntu25", frames=16), ["a", "b", "c"])
    for key, value in changes.items():
        if value is _DELETE:
            ckpt.pop(key, None)
        else:
            ckpt[key] = value
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    return buf.getvalue()


_DELETE = object()
GOOD_CHECKPOINT = _checkpoint_bytes()
TORCH_SAFE = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(),
                                    st.text(max_size=8)),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                      max_size=3), max_leaves=6)


@st.composite
def checkpoint_files(draw) -> bytes:
    kind = draw(st.sampled_from(["bytes", "fields", "zip-member"]))
    if kind == "bytes":
        return mutate_bytes(GOOD_CHECKPOINT, draw)
    if kind == "fields":
        key = draw(st.sampled_from(["format", "format_version", "model", "state_dict", "input_spec", "class_names",
                                    "layout", "num_classes"]))
        value = draw(st.one_of(TORCH_SAFE, st.just(_DELETE), st.sampled_from([2, 0, -1, "1", 1.0])))
        return _checkpoint_bytes(**{key: value})
    # a member of the zip replaced: the pickle, a tensor's storage, the version record
    src = zipfile.ZipFile(io.BytesIO(GOOD_CHECKPOINT))
    names = src.namelist()
    victim = draw(st.sampled_from(names))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for name in names:
            data = src.read(name)
            dst.writestr(name, mutate_bytes(data, draw) if name == victim and data else data)
    return out.getvalue()


@settings(FUZZ, max_examples=max(20, settings.default.max_examples // 3))  # each case rebuilds a model
@given(checkpoint_files())
def test_checkpoints(data):
    path = WORK / "model.pt"
    path.write_bytes(data)
    result = expect_named("checkpoint", lambda: load_model(path), (CheckpointError,), str(path))
    if result is not None:
        model, ckpt = result
        with torch.no_grad():
            out = model(torch.zeros(1, 3, 16, 25, 2))
        assert out.shape == (1, model.cfg.num_classes)


# ---- calibration files ---------------------------------------------------------------------------------------
CALIB_CKPT = {"input_spec": InputSpec(layout="ntu25", frames=16).to_dict(), "layout": "ntu25",
              "model": {"config": {"in_channels": 3}}}


@FUZZ
@given(st.one_of(st.binary(max_size=60).map(lambda b: {"__raw__": b}), st.fixed_dictionaries(
    {"x": st.one_of(arrays(st.one_of(st.just((2, 3, 16, 25, 1)), st.lists(st.integers(0, 3), max_size=6).map(tuple))),
                    st.integers(0, 2**32 - 1).map(lambda seed: np.random.default_rng(seed).normal(
                        size=(2, 3, 16, 25, 1)).astype(np.float32)))},
    optional={"input_spec": st.one_of(st.text(max_size=20), st.just(json.dumps(CALIB_CKPT["input_spec"])),
                                      JSON_VALUES.map(json.dumps)).map(np.array),
              "labels": arrays()})))
def test_calibration_files(content):
    path = WORK / "calib.npz"
    if "__raw__" in content:
        path.write_bytes(content["__raw__"])
    else:
        np.savez(path, **content)
    result = expect_named("calibration", lambda: load_calibration(path, CALIB_CKPT), (InputError,), str(path))
    if result is not None:
        assert result.dtype == np.float32 and result.shape[1:] == (3, 16, 25, 1) and np.isfinite(result).all()


# ---- device profiles -----------------------------------------------------------------------------------------
PROFILE = yaml.safe_load((PROFILE_DIR / "x86_cpu.yaml").read_text())


def _leaf_paths(node, prefix=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaf_paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _leaf_paths(v, prefix + (i,))
    yield prefix


PROFILE_PATHS = [p for p in _leaf_paths(PROFILE) if p]


@st.composite
def profile_texts(draw) -> str:
    if draw(st.integers(0, 5)) == 0:
        return draw(st.text(max_size=200))
    data = json.loads(json.dumps(PROFILE))
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(PROFILE_PATHS))
        node = data
        try:
            for step in where[:-1]:
                node = node[step]
            if draw(st.integers(0, 3)) == 0 and isinstance(node, dict):
                node.pop(where[-1], None)
            else:
                node[where[-1]] = draw(YAML_VALUES)
        except (KeyError, IndexError, TypeError):
            pass  # an earlier mutation changed the tree
    return yaml.safe_dump(data)


@FUZZ
@given(profile_texts())
def test_device_profiles(text):
    path = WORK / "device.yaml"
    path.write_text(text)
    result = expect_named("device_profile", lambda: load_profile(path), (ProfileError,), str(path))
    if result is not None:
        assert result.latency_budget_ms > 0 and result.classifier_budget_ms() == result.classifier_budget_ms()


def test_no_parser_left_a_file_behind():
    """The parsers only read: the work folder holds exactly the files the cases wrote."""
    written = {"S001C001P001R001A001.skeleton", "sample.npz", "custom", "mediapipe.npz", "a01_s01_e01_v01.json",
               "config.yaml", "model.pt", "calib.npz", "device.yaml"}
    assert leftovers(WORK, written) == []
    assert leftovers(WORK / "custom", {"manifest.json", "ok.npz", "sub"}) == [] if (WORK / "custom").exists() else True
