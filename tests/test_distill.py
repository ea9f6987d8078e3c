"""Distillation, offline teacher files, weight EMA, MaskCLR pretraining: losses against hand-computed values,
masking geometry, clear errors, and tiny end-to-end runs on synthetic data (one thread, a few seconds each)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from core.checkpoint import load_checkpoint, save_checkpoint
from core.data import load_split
from core.layouts import get_layout
from core.models.last import create_model
from core.spec import InputSpec
from train.config import ConfigError, load_config
from train.distill import (Connector, Projector, TeacherError, TeacherFile, feature_mimicry_loss, kd_loss,
                           logit_distill_loss, projector_loss)
from train.pretrain import maskclr_mask, nt_xent
from core.data.splits import stratified_fraction
from train.trainer import FitError, ModelEma

TINY = ["data.name=synthetic", "data.frames=24", "data.num_workers=0", "model.variant=last_nano",
        "optim.batch_size=16", "schedule.warmup_epochs=0", "schedule.name=cosine", "train.threads=1",
        "schedule.epochs=1"]


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------------------------------
# losses


def test_kd_loss_matches_hand_computed_value():
    s = np.array([[1.0, 2.0, 3.0], [0.5, 0.0, -0.5]])
    t = np.array([[3.0, 2.0, 1.0], [0.0, 1.0, 0.0]])
    tau = 2.0
    ps, pt = softmax(s / tau), softmax(t / tau)
    expected = tau ** 2 * np.mean(np.sum(pt * (np.log(pt) - np.log(ps)), axis=1))
    got = kd_loss(torch.tensor(s), torch.tensor(t), tau)
    assert float(got) == pytest.approx(expected, rel=1e-5)
    assert float(kd_loss(torch.tensor(t), torch.tensor(t), tau)) == pytest.approx(0.0, abs=1e-6)
    labels = torch.tensor([2, 1])
    ce = -np.mean(np.log(softmax(s)[[0, 1], [2, 1]]))
    total, ce_t, kd_t = logit_distill_loss(torch.tensor(s), torch.tensor(t), labels, alpha=0.3, tau=tau)
    assert float(ce_t) == pytest.approx(ce, rel=1e-5)
    assert float(total) == pytest.approx(0.3 * ce + 0.7 * expected, rel=1e-5)


def test_feature_mimicry_with_identity_connector_and_time_pooling():
    student = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(1, 2, 4, 3)  # T=4
    teacher = torch.ones(1, 2, 2, 3)  # T=2: the student is pooled over frame pairs
    connector = Connector(2, 2).eval()
    with torch.no_grad():
        connector[0].weight.copy_(torch.eye(2).reshape(2, 2, 1, 1))
    bn_scale = 1 / math.sqrt(1 + connector[1].eps)  # eval BN with default statistics
    pooled = student.numpy().reshape(1, 2, 2, 2, 3).mean(axis=3) * bn_scale
    expected = np.mean((pooled - 1.0) ** 2)
    got = feature_mimicry_loss([student], [teacher], torch.nn.ModuleList([connector]))
    assert float(got.detach()) == pytest.approx(expected, rel=1e-5)


def test_projector_losses_hand_computed():
    pred = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    target = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    assert float(projector_loss(pred, target, "mse")) == pytest.approx(np.mean([0, 1, 0, 1]))
    assert float(projector_loss(pred, target, "cosine")) == pytest.approx(np.mean([1 - 1 / math.sqrt(2), 0.0]),
                                                                          rel=1e-5)
    pn = pred.numpy() / np.linalg.norm(pred.numpy(), axis=1, keepdims=True)
    tn = target.numpy() / np.linalg.norm(target.numpy(), axis=1, keepdims=True)
    logits = pn @ tn.T / 0.5
    expected = -np.mean(np.log(softmax(logits)[[0, 1], [0, 1]]))
    assert float(projector_loss(pred, target, "infonce", temperature=0.5)) == pytest.approx(expected, rel=1e-5)
    assert Projector(8, 5, "mlp").eval()(torch.zeros(3, 8)).shape == (3, 5)


def test_nt_xent_hand_computed():
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z2 = torch.tensor([[0.5, 0.5], [0.2, 1.0]])
    z = np.concatenate([z1.numpy(), z2.numpy()]).astype(np.float64)
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    sim = z @ z.T / 0.5
    np.fill_diagonal(sim, -np.inf)
    pos = [2, 3, 0, 1]
    expected = -np.mean([sim[i, pos[i]] - np.log(np.exp(sim[i]).sum()) for i in range(4)])
    assert float(nt_xent(z1, z2, 0.5)) == pytest.approx(expected, rel=1e-5)


def test_weight_ema_follows_decay_with_warmup():
    model = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = ModelEma(model, decay=0.9)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)  # step 0: decay min(0.9, 1/10) = 0.1
    assert float(ema.module.weight[0, 0]) == pytest.approx(0.9)
    for _ in range(200):
        ema.update(model)
    assert ema.current_decay() == pytest.approx(0.9)
    assert float(ema.module.weight[0, 0]) == pytest.approx(1.0, abs=1e-6)


# ---------------------------------------------------------------------------------------------
# MaskCLR masking


@pytest.mark.parametrize("layout", ["kinect20", "ntu25"])
def test_masking_hides_whole_parts_and_one_block_at_the_ratio(layout):
    lay = get_layout(layout)
    frames = 52
    rng = np.random.default_rng(0)
    for _ in range(200):
        ratio = rng.uniform(0.5, 0.75)
        mask, parts, (start, length) = maskclr_mask(lay, frames, ratio, 0.5, rng)
        assert parts, "at least one body part is hidden"
        spatial = np.all(mask, axis=0)  # joints hidden in every frame
        for name in parts:
            assert spatial[list(lay.parts[name])].all(), name
        part_joints = sorted({j for name in parts for j in lay.parts[name]})
        assert np.flatnonzero(spatial).tolist() == part_joints or length == frames
        visible_rows = np.flatnonzero(~mask[:, ~spatial].any(axis=1)) if (~spatial).any() else []
        rows = np.flatnonzero(mask[:, ~spatial].all(axis=1))
        assert rows.tolist() == list(range(start, start + length)), "one contiguous block of frames"
        assert len(visible_rows) == frames - length
        assert abs(mask.mean() - ratio) <= 1 / frames + 1e-9


def test_masking_share_extremes():
    rng = np.random.default_rng(1)
    mask, parts, (_, length) = maskclr_mask("kinect20", 40, 0.6, 0.0, rng)  # time only
    assert not parts and length == 24 and mask.mean() == pytest.approx(0.6)
    mask, parts, (_, length) = maskclr_mask("kinect20", 40, 0.6, 1.0, rng)  # parts first, the block tops up
    assert len(parts) >= 2 and abs(mask.mean() - 0.6) <= 1 / 40


# ---------------------------------------------------------------------------------------------
# teacher files


def write_npz(path: Path, names: list[str], dim: int = 6, classes: int = 8) -> Path:
    rng = np.random.default_rng(0)
    np.savez(path, names=np.array(names), logits=rng.normal(size=(len(names), classes)).astype(np.float32),
             features=rng.normal(size=(len(names), dim)).astype(np.float32))
    return path


def test_teacher_file_missing_names_give_clear_error_extra_names_are_unused(tmp_path):
    names = [f"clip_{i:03d}" for i in range(10)]
    tf = TeacherFile(write_npz(tmp_path / "t.npz", names[2:] + ["stranger_a", "stranger_b", "stranger_c"]))
    with pytest.raises(TeacherError) as err:
        tf.rows_for(names, "nw_ucla train split")
    msg = str(err.value)
    assert "holds 11 samples" in msg and "the nw_ucla train split 10" in msg
    assert "2 sample(s) of the nw_ucla train split missing" in msg and "clip_000" in msg
    rows = TeacherFile(write_npz(tmp_path / "ok.npz", names[::-1] + ["validation_clip"])).rows_for(names)
    assert rows.tolist() == list(range(9, -1, -1))  # a file written for more clips (the validation slice) is fine


def test_teacher_file_reads_cross_modal_layouts(tmp_path):
    # one array per sample name: a feature vector or per-frame features (averaged over frames)
    np.savez(tmp_path / "per_name.npz", a=np.ones(4, np.float32), b=np.arange(8, dtype=np.float32).reshape(2, 4))
    tf = TeacherFile(tmp_path / "per_name.npz")
    assert tf.logits is None and tf.feature_dim == 4
    np.testing.assert_allclose(tf.features[tf.rows_for(["b", "a"])], [[2, 3, 4, 5], [1, 1, 1, 1]])
    np.savez(tmp_path / "frames.npz", names=np.array(["a", "b"]), features=np.zeros((2, 5, 3), np.float32))
    assert TeacherFile(tmp_path / "frames.npz").feature_dim == 3
    np.savez(tmp_path / "empty.npz", names=np.array(["a"]))
    with pytest.raises(TeacherError, match="neither `logits` nor `features`"):
        TeacherFile(tmp_path / "empty.npz")


# ---------------------------------------------------------------------------------------------
# end to end on synthetic data


def synthetic_teacher(path: Path, variant: str = "last_small", streams=("joint", "velocity", "bone"),
                      layout: str = "ntu25", classes: list[str] | None = None) -> Path:
    torch.manual_seed(1)
    classes = classes or list(load_split("synthetic", "train").class_names)
    model = create_model(variant, num_classes=len(classes), layout=layout, streams=streams).eval()
    return save_checkpoint(path, model, InputSpec(layout=layout, frames=24, streams=streams), classes)


def plain_keys(ckpt: dict) -> set[str]:
    cfg = ckpt["model"]["config"]
    return set(create_model(ckpt["model"]["variant"], **{k: cfg[k] for k in ("num_classes", "layout", "streams")})
               .state_dict())


def test_live_teacher_distillation_leaves_a_plain_student_that_exports(tmp_path):
    from train.distill import run

    teacher = synthetic_teacher(tmp_path / "teacher.pt")
    out = tmp_path / "kd"
    summary = run(load_config(None, TINY + [f"output_dir={out}", f"distill.teacher={teacher}",
                                            "distill.feature_weight=0.1", "train.ema_decay=0.9"]))
    assert summary["finished"] and summary["epochs"] == 1
    rows = (out / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    values = dict(zip(header, rows[1].split(",")))
    assert float(values["kd"]) > 0 and float(values["feat"]) > 0 and values["ema_top1"]
    best = load_checkpoint(out / "best.pt")
    assert set(best["state_dict"]) == plain_keys(best), "connector / projector weights leaked into the student"
    assert "connectors.0.0.weight" in load_checkpoint(out / "last.pt")["resume"]["extras"]
    assert set(load_checkpoint(out / "ema.pt")["state_dict"]) == plain_keys(best)

    from converters.onnx import export, op_counts

    plain = create_model("last_nano", num_classes=best["num_classes"], layout="ntu25").eval()
    plain_ckpt = save_checkpoint(tmp_path / "plain.pt", plain, InputSpec(layout="ntu25", frames=24),
                                 best["class_names"])
    distilled = export(out / "best.pt", tmp_path / "onnx_kd")
    reference = export(plain_ckpt, tmp_path / "onnx_plain")
    assert distilled.status == "ok", distilled.message
    assert reference.status == "ok", reference.message
    assert op_counts(distilled.path) == op_counts(reference.path)


def test_teacher_mismatch_stops_before_training(tmp_path):
    from train.distill import run

    other_layout = synthetic_teacher(tmp_path / "kinect.pt", layout="kinect20", classes=None)
    with pytest.raises(TeacherError, match=r"kinect\.pt uses layout 'kinect20' but the student \(last_nano on "
                                           r"synthetic\) uses 'ntu25'"):
        run(load_config(None, TINY + [f"output_dir={tmp_path / 'a'}", f"distill.teacher={other_layout}"]))
    other_classes = synthetic_teacher(tmp_path / "five.pt", classes=["a", "b", "c", "d", "e"])
    with pytest.raises(TeacherError, match=r"five\.pt has 5 classes .* student \(last_nano on synthetic\) has 8"):
        run(load_config(None, TINY + [f"output_dir={tmp_path / 'b'}", f"distill.teacher={other_classes}"]))
    assert not (tmp_path / "a" / "last.pt").exists() and not (tmp_path / "b" / "last.pt").exists()


def test_offline_teacher_file_round_trip(tmp_path):
    from train.distill import run
    from train.teacher import write_teacher

    teacher = synthetic_teacher(tmp_path / "teacher.pt")
    npz = write_teacher(["--ckpt", str(teacher), "--data", "synthetic:train", "--out", str(tmp_path), "--stages"])
    data = np.load(npz)
    split = load_split("synthetic", "train")
    assert data["logits"].shape == (len(split), 8) and data["features"].shape == (len(split), 128)
    assert [f"stage_{i}" in data for i in range(3)] == [True] * 3
    assert list(data["names"]) == list(split.names)
    out = tmp_path / "kd_file"
    summary = run(load_config(None, TINY + [f"output_dir={out}", f"distill.teacher_file={npz}",
                                            "distill.projector_weight=0.5", "distill.projector_loss=infonce"]))
    assert summary["finished"]
    best = load_checkpoint(out / "best.pt")
    assert set(best["state_dict"]) == plain_keys(best)
    # with 10 % of the labels the file's targets cover every training clip: all of them are distilled
    low = run(load_config(None, TINY + [f"output_dir={tmp_path / 'low'}", f"distill.teacher_file={npz}",
                                        "data.label_fraction=0.1"]))
    assert low["train_clips"] == len(split)
    assert f"{len(split) - 16} unlabelled clips distilled" in (tmp_path / "low" / "train.log").read_text()


def test_pretrained_checkpoint_initialises_a_fine_tune(tmp_path):
    from train.fit import run as fit_run
    from train.pretrain import run as pretrain_run

    out = tmp_path / "pre"
    summary = pretrain_run(load_config(None, TINY + [f"output_dir={out}"]))
    assert summary["finished"] and summary["val_top1"] is None  # no validation split, no labels
    pre = load_checkpoint(out / "best.pt")
    assert set(pre["state_dict"]) == plain_keys(pre), "decoder / projection head leaked into the encoder"
    lines = (out / "train.log").read_text()
    assert "no validation split" in lines and "recon" in lines and "contrast" in lines
    tuned = tmp_path / "tuned"
    fit_run(load_config(None, TINY + [f"output_dir={tuned}", f"model.init={out / 'best.pt'}",
                                      "optim.lr=1e-12", "schedule.name=constant", "optim.weight_decay=0"]))
    after = load_checkpoint(tuned / "last.pt")["state_dict"]
    fresh = create_model("last_nano", num_classes=8, layout="ntu25").state_dict()
    key = "stages.1.blocks.0.gcn.conv.weight"
    torch.testing.assert_close(after[key], pre["state_dict"][key], rtol=1e-4, atol=1e-6)
    assert not torch.allclose(after[key], fresh[key])


def test_low_label_subset_is_stratified_and_fixed():
    labels = np.repeat(np.arange(5), [10, 20, 30, 40, 50])
    keep = stratified_fraction(labels, 0.1, seed=0)
    assert np.bincount(labels[keep]).tolist() == [1, 2, 3, 4, 5]
    assert keep.tolist() == stratified_fraction(labels, 0.1, seed=0).tolist()
    assert keep.tolist() != stratified_fraction(labels, 0.1, seed=1).tolist()


def test_config_base_inheritance(tmp_path):
    (tmp_path / "base.yaml").write_text("model:\n  variant: last_small\noptim:\n  lr: 0.002\n  batch_size: 16\n")
    (tmp_path / "child.yaml").write_text("_base_: base.yaml\noptim:\n  lr: 0.001\n")
    cfg = load_config(tmp_path / "child.yaml", ["schedule.epochs=3", "schedule.warmup_epochs=1"])
    assert (cfg["model"]["variant"], cfg["optim"]["lr"], cfg["optim"]["batch_size"]) == ("last_small", 0.001, 16)
    (tmp_path / "loop.yaml").write_text("_base_: loop.yaml\n")
    with pytest.raises(ConfigError, match="_base_ cycle"):
        load_config(tmp_path / "loop.yaml")
    (tmp_path / "orphan.yaml").write_text("_base_: missing.yaml\n")
    with pytest.raises(ConfigError, match=r"missing\.yaml: config file not found \(_base_ of"):
        load_config(tmp_path / "orphan.yaml")


def test_distill_needs_exactly_one_teacher(tmp_path):
    from train.distill import run

    with pytest.raises(FitError, match="exactly one of distill.teacher"):
        run(load_config(None, TINY + [f"output_dir={tmp_path / 'x'}"]))


def test_forward_intermediates_taps_stages_timm_style():
    model = create_model("last_nano", num_classes=4, layout="ntu25").eval()
    x = torch.randn(2, 3, 24, 25, 2)
    final, feats = model.forward_intermediates(x)
    assert [f.shape[1] for f in feats] == [24, 48, 80] and final.shape[:3] == (2, 2, 80)
    torch.testing.assert_close(model.forward_head(final), model(x))
    only = model.forward_intermediates(x, indices=[-1], intermediates_only=True, stop_early=True)
    torch.testing.assert_close(only[0], feats[-1])
    with pytest.raises(ValueError, match="out of range"):
        model.forward_intermediates(x, indices=[3])


def test_typed_config_checks_value_types_and_suggests_keys():
    from train.config import TrainConfig

    cfg = load_config(None, ["optim.lr=1", "schedule.epochs=3", "schedule.warmup_epochs=1"])
    typed = TrainConfig.from_dict(cfg)
    assert typed.optim.lr == 1.0 and isinstance(typed.optim.lr, float) and typed.schedule.epochs == 3
    with pytest.raises(ConfigError, match=r"optim\.lr must be a number, got 'fast'"):
        load_config(None, ["optim.lr=fast"])
    with pytest.raises(ConfigError, match=r"schedule\.epochs must be an integer, got 2\.5"):
        load_config(None, ["schedule.epochs=2.5"])
    with pytest.raises(ConfigError, match=r"model\.streams must be a list"):
        load_config(None, ["model.streams=joint"])
    with pytest.raises(ConfigError, match=r"did you mean 'weight_decay'\?"):
        load_config(None, ["optim.weight_decy=0.1"])


def test_distill_resume_restores_connectors_and_ema(tmp_path):
    """Killed after one epoch and resumed: same metrics and weights (student, connectors, EMA) as one run."""
    import json

    from train.distill import run

    teacher = synthetic_teacher(tmp_path / "teacher.pt")
    args = TINY[:-1] + ["schedule.epochs=2", f"distill.teacher={teacher}", "distill.feature_weight=0.1",
                        "train.ema_decay=0.9"]
    run(load_config(None, args + [f"output_dir={tmp_path / 'ref'}"]))
    cfg = load_config(None, args + [f"output_dir={tmp_path / 'cut'}"])
    assert not run(cfg, stop_after_epochs=1)["finished"]
    assert run(cfg, resume="auto")["finished"]
    ref, cut = (load_checkpoint(tmp_path / d / "last.pt") for d in ("ref", "cut"))
    for part in ("extras", "ema"):
        for k, v in ref["resume"][part].items():
            torch.testing.assert_close(cut["resume"][part][k], v, rtol=1e-5, atol=1e-6, msg=f"{part}.{k}")
    rows = [[json.loads(x) for x in (tmp_path / d / "metrics.jsonl").read_text().splitlines()] for d in ("ref", "cut")]
    for a, b in zip(*rows):
        for key in ("train_loss", "kd", "feat", "val_top1", "ema_top1"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-7), (a["epoch"], key)


def test_distill_ddp_two_processes_gloo(tmp_path):
    import json
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    teacher = synthetic_teacher(tmp_path / "teacher.pt")
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(repo))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
           "train.distill", *TINY, "train.device=cpu", f"distill.teacher={teacher}", "distill.feature_weight=0.1",
           f"output_dir={out}"]
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["finished"]
    best = load_checkpoint(out / "best.pt")
    assert set(best["state_dict"]) == plain_keys(best)
    # DDP wraps the student and its connectors together; rank 0's checkpoint carries the connectors
    assert "connectors.0.0.weight" in load_checkpoint(out / "last.pt")["resume"]["extras"]


def test_cross_modal_teacher_file_drives_a_student_projector(shared_dir, tmp_path):
    """RGB -> skeleton end to end on the real NTU pair: a tiny random VideoMAE writes the teacher file through
    `python -m train.teacher --video-model`, the distillation reader finds the sample by name, and a student's
    projector learns from it (the loss falls)."""
    pytest.importorskip("train.video_teacher", reason="the cross-modal teacher (train/video_teacher.py) is absent")
    transformers = pytest.importorskip("transformers", reason="the optional 'video' extra (transformers) is absent")
    from core.data.ntu import read_skeleton
    from core.preprocess import prepare_clip
    from train.teacher import main as teacher_main

    name = "S001C001P001R001A001"
    ntu = shared_dir / "data" / "ntu"
    if not (ntu / f"{name}_rgb.avi").is_file():
        pytest.skip(f"the paired NTU sample is not in {ntu}")
    torch.manual_seed(0)
    config = transformers.VideoMAEConfig(image_size=32, patch_size=16, num_frames=4, tubelet_size=2, hidden_size=16,
                                         num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    model_dir = tmp_path / "videomae"
    transformers.VideoMAEModel(config).save_pretrained(model_dir)
    transformers.VideoMAEImageProcessor(size={"shortest_edge": 32},
                                        crop_size={"height": 32, "width": 32}).save_pretrained(model_dir)
    out = tmp_path / "rgb_teacher.npz"
    assert teacher_main(["--video-model", str(model_dir), "--videos", str(ntu), "--skeletons", str(ntu),
                         "--out", str(out), "--device", "cpu", "--no-progress"]) == 0
    tf = TeacherFile(out)
    target = torch.from_numpy(tf.features[tf.rows_for([name], "NTU pair")])
    assert target.shape == (1, 16)
    raw = read_skeleton(ntu / f"{name}.skeleton")
    joints = next(iter(raw.bodies.values())).array()[None]  # (M=1, T, 25, 3)
    x = torch.from_numpy(prepare_clip(joints, InputSpec(layout="ntu25", frames=24)))[None]
    student = create_model("last_nano", num_classes=60, layout="ntu25").eval()
    projector = Projector(student.num_features, tf.feature_dim, "mlp").eval()
    optim = torch.optim.Adam(projector.parameters(), lr=1e-2)
    with torch.no_grad():
        pooled = student.forward_head(student.forward_features(x), pre_logits=True)
    losses = []
    for _ in range(20):
        loss = projector_loss(projector(pooled), target, "mse")
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


# ---------------------------------------------------------------------------------------------
# consistent teachers: the cache of a live teacher's outputs per augmentation draw, ensembles, unlabelled clips


def test_teacher_cache_gives_the_teacher_the_students_exact_input(tmp_path):
    """The cache is filled by a live run and replayed by a second one; every replayed entry was computed from the
    very tensor the student gets (checked by fingerprint), and equals the live teacher's output on it."""
    import train.distill as distill
    from train.distill import DistillTrainer, LiveTeacher, input_fingerprint, run
    from train.trainer import Dist

    teacher = synthetic_teacher(tmp_path / "teacher.pt")
    cache = tmp_path / "cache"
    base = TINY + ["schedule.epochs=2", f"distill.teacher={teacher}", f"distill.teacher_cache={cache}"]
    first = run(load_config(None, base + [f"output_dir={tmp_path / 'a'}"]))
    assert first["finished"] and sorted(p.name for p in cache.glob("epoch_*.npz")) == ["epoch_0000.npz",
                                                                                        "epoch_0001.npz"]
    calls = []
    original = LiveTeacher.forward

    def counting(self, x, indices=None):
        calls.append(len(x))
        return original(self, x, indices)

    seen = []
    original_lookup = distill.TeacherCache.lookup

    def checking(self, idx, x):
        got = original_lookup(self, idx, x)
        if got is not None:  # the replayed logits are the teacher's on this very input
            live = original(trainer.teacher, x)[0]
            torch.testing.assert_close(got, live, rtol=1e-4, atol=1e-4)
            seen.append(len(x))
        return got

    LiveTeacher.forward, distill.TeacherCache.lookup = counting, checking
    try:
        cfg = load_config(None, base + [f"output_dir={tmp_path / 'b'}", "distill.alpha=0.7", "distill.tau=2"])
        trainer = DistillTrainer(cfg, Dist("cpu"))
        trainer.fit()
    finally:
        LiveTeacher.forward, distill.TeacherCache.lookup = original, original_lookup
    assert sum(seen) > 0 and calls == [], "a cached run must not run the teacher"
    assert trainer.cache.hits > 0 and trainer.cache.misses == 0

    # another seed draws other augmentations: the cache refuses it instead of serving another input
    with pytest.raises(TeacherError, match="written for another run.*seed"):
        run(load_config(None, base + [f"output_dir={tmp_path / 'c'}", "train.seed=5"]))
    # a tampered input fingerprint is caught
    z = dict(np.load(cache / "epoch_0000.npz"))
    z["fingerprint"] = z["fingerprint"] + 1.0
    np.savez(cache / "epoch_0000.npz", **z)
    with pytest.raises(TeacherError, match="scored another input"):
        run(load_config(None, base + [f"output_dir={tmp_path / 'd'}"]))
    assert input_fingerprint(torch.ones(2, 3, 4, 5, 1)).tolist() == [[60.0, 60.0], [60.0, 60.0]]


def test_teacher_ensemble_averages_logits(tmp_path):
    from train.distill import EnsembleTeacher, LiveTeacher, run

    a = synthetic_teacher(tmp_path / "a.pt")
    torch.manual_seed(7)
    classes = list(load_split("synthetic", "train").class_names)
    other = create_model("last_nano", num_classes=8, layout="ntu25", streams=("joint",)).eval()
    b = save_checkpoint(tmp_path / "b.pt", other, InputSpec(layout="ntu25", frames=24, streams=("joint",)), classes)
    spec = InputSpec(layout="ntu25", frames=24)
    members = [LiveTeacher(p, "ntu25", classes, "student", spec) for p in (a, b)]
    ensemble = EnsembleTeacher(members)
    x = torch.randn(3, 3, 24, 25, 1)
    want = (members[0](x)[0] + members[1](x)[0]) / 2
    torch.testing.assert_close(ensemble(x)[0], want)
    summary = run(load_config(None, TINY + [f"output_dir={tmp_path / 'run'}", f"distill.teacher={a}",
                                            f"distill.teacher_ensemble=[{b}]"]))
    assert summary["finished"]
    assert "last_small+last_nano" in (tmp_path / "run" / "train.log").read_text()


def test_kd_with_a_label_fraction_trains_on_the_unlabelled_clips(tmp_path):
    from train.distill import DistillTrainer
    from train.trainer import Dist

    teacher = synthetic_teacher(tmp_path / "teacher.pt")
    cfg = load_config(None, TINY + [f"output_dir={tmp_path / 'run'}", f"distill.teacher={teacher}",
                                    "data.label_fraction=0.25"])
    trainer = DistillTrainer(cfg, Dist("cpu"))
    summary = trainer.fit()
    train = load_split("synthetic", "train")
    assert summary["train_clips"] == len(train) and int(trainer.labelled.sum()) == 8 * 5  # 25 % of 20 per class
    labels = [trainer.train_ds[i][1] for i in range(len(trainer.train_ds))]
    assert labels.count(-1) == len(train) - 40 and all(l >= 0 for l, k in zip(labels, trainer.labelled) if k)
    # without distill.unlabelled only the labelled clips are seen
    cfg2 = load_config(None, TINY + [f"output_dir={tmp_path / 'run2'}", f"distill.teacher={teacher}",
                                     "data.label_fraction=0.25", "distill.unlabelled=false"])
    assert DistillTrainer(cfg2, Dist("cpu")).fit()["train_clips"] == 40


def test_masked_cross_entropy_ignores_unlabelled_rows():
    from train.distill import masked_cross_entropy

    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [5.0, -5.0]])
    full = masked_cross_entropy(logits[:2], torch.tensor([0, 1]))
    assert float(masked_cross_entropy(logits, torch.tensor([0, 1, -1]))) == pytest.approx(float(full))
    assert float(masked_cross_entropy(logits, torch.tensor([-1, -1, -1]))) == 0.0
