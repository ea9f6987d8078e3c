"""Training: config errors, metrics, a short synthetic run that learns, exact resume, 2-process gloo DDP."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from core.checkpoint import load_checkpoint, load_model
from core.data import load_split
from train.config import ConfigError, load_config
from core.evaluation import evaluate_logits, predict_split
from train.fit import FitError, NonFiniteLossError, lr_factor, run

REPO = Path(__file__).resolve().parents[1]

# tiny and fast: last_nano, 24 frames, 160 synthetic train clips, one thread
TINY = ["data.name=synthetic", "data.frames=24", "data.num_workers=0", "model.variant=last_nano",
        "optim.batch_size=16", "schedule.warmup_epochs=1", "schedule.name=cosine", "train.threads=1",
        "augment.rotate_prob=0.3"]
EPOCHS = 6


def tiny_config(out: Path, *extra: str) -> dict:
    return load_config(None, TINY + [f"schedule.epochs={EPOCHS}", f"output_dir={out}", *extra])


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("fit") / "run"
    summary = run(tiny_config(out))
    return out, summary


# ---------------------------------------------------------------------------------------------
# configuration and bad input


def test_unknown_config_key_names_file_and_key(tmp_path):
    bad = tmp_path / "exp.yaml"
    bad.write_text("optim:\n  lr: 0.001\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"exp\.yaml.*optim\.learning_rate"):
        load_config(bad)
    with pytest.raises(ConfigError, match=r"command line.*schedule\.epoch'"):
        load_config(None, ["schedule.epoch=3"])
    with pytest.raises(ConfigError, match="not valid YAML"):
        (tmp_path / "broken.yaml").write_text("optim: [unclosed\n")
        load_config(tmp_path / "broken.yaml")
    with pytest.raises(ConfigError, match="model.variant 'last_huge'"):
        load_config(None, ["model.variant=last_huge"])


def test_overrides_parse_yaml_values(tmp_path):
    cfg = load_config(REPO / "configs" / "nw_ucla_last_large.yaml",
                      ["optim.lr=3e-4", "model.streams=[joint,bone]", "schedule.epochs=7"])
    assert cfg["optim"]["lr"] == pytest.approx(3e-4)
    assert cfg["model"]["streams"] == ["joint", "bone"]
    assert cfg["schedule"]["epochs"] == 7
    assert cfg["model"]["variant"] == "last_large"


@pytest.mark.parametrize("override, message", [
    ("model.layout=kinect20", r"model\.layout is 'kinect20' but data set 'synthetic' uses layout 'ntu25'"),
    ("model.num_classes=5", r"model\.num_classes is 5 but data set 'synthetic' has 8 classes"),
    ("data.root=/nonexistent/nw_ucla", r"data\.root /nonexistent/nw_ucla does not exist"),
    ("data.name=no_such_set", r"cannot load data set 'no_such_set'"),
])
def test_bad_input_stops_before_training(tmp_path, override, message):
    out = tmp_path / "run"
    with pytest.raises(FitError, match=message):
        run(tiny_config(out, override))
    assert not (out / "last.pt").exists()


def test_nan_loss_stops_with_step_and_checkpoint(tmp_path, monkeypatch):
    import train.trainer as fit  # where the trainer looks the data up

    original = fit.load_data

    def poisoned(cfg):
        splits = original(cfg)
        splits.train.data = splits.train.data.copy()
        splits.train.data[:, 0, 3, 5, 0] = np.nan  # every clip: one NaN coordinate
        return splits

    monkeypatch.setattr(fit, "load_data", poisoned)
    out = tmp_path / "run"
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, step 1 .*Last good checkpoint: none written yet"):
        run(tiny_config(out))
    assert not (out / "last.pt").exists() and not (out / "best.pt").exists()


def test_existing_run_needs_resume_or_overwrite(trained):
    out, _ = trained
    with pytest.raises(FitError, match="--resume"):
        run(tiny_config(out))


# ---------------------------------------------------------------------------------------------
# metrics and prediction


def test_evaluate_logits_known_values():
    logits = np.array([[3, 2, 1, 0], [0, 3, 2, 1], [0, 1, 3, 2], [3, 0, 1, 2], [0, 1, 2, 3]], dtype=np.float32)
    labels = np.array([0, 1, 3, 0, 2])
    m = evaluate_logits(logits, labels, ["a", "b", "c", "d"])
    assert m["top1"] == pytest.approx(3 / 5)
    assert m["top5"] == pytest.approx(1.0)  # k is capped at the class count
    assert m["per_class"] == {"a": 1.0, "b": 1.0, "c": 0.0, "d": 0.0}
    assert m["mean_class_accuracy"] == pytest.approx(0.5)
    cm = np.array(m["confusion"])
    assert cm.sum() == 5 and cm[3, 2] == 1 and cm[2, 3] == 1 and cm[0, 0] == 2
    with pytest.raises(ValueError, match="class names"):
        evaluate_logits(logits, labels, ["a", "b"])


def test_predict_split_multiclip_and_fixed_batch():
    split = load_split("synthetic", "test")
    from core.spec import InputSpec

    spec = InputSpec(layout=split.layout, frames=16)
    calls = []

    def fixed_batch(x):  # an engine built for batch 8 only
        assert x.shape[0] == 8 and x.shape[1:] == (3, 16, 25, 1) and x.dtype == np.float32
        calls.append(len(x))
        return x[:, 0].reshape(len(x), -1).mean(1, keepdims=True) + np.arange(8, dtype=np.float32)

    one = predict_split(fixed_batch, split, spec, batch_size=8, clips=1, pad_last=True, progress=False)
    assert one.shape == (len(split), 8)
    three = predict_split(fixed_batch, split, spec, batch_size=8, clips=3, pad_last=True, progress=False)
    assert three.shape == (len(split), 8)
    assert not np.allclose(one, three)  # three phase-shifted clips see other frames
    assert len(calls) == -(-len(split) // 8) + -(-len(split) // (8 // 3))  # whole samples per call


def test_lr_schedule_warmup_and_restarts():
    sched = {"warmup_epochs": 5, "warmup_start_factor": 0.01, "name": "cosine_restarts", "T_0": 10,
             "T_mult": 2, "eta_min": 1e-6, "epochs": 80}
    assert lr_factor(0, sched, 1e-3) == pytest.approx(0.01)
    assert lr_factor(5, sched, 1e-3) == pytest.approx(1.0)
    assert lr_factor(15 - 1e-9, sched, 1e-3) == pytest.approx(1e-3, abs=1e-6)  # end of the first cycle
    assert lr_factor(15, sched, 1e-3) == pytest.approx(1.0)  # warm restart
    assert lr_factor(25, sched, 1e-3) == pytest.approx(0.5, abs=1e-3)  # middle of the 20-epoch cycle


def test_a_step_budget_gives_a_smaller_data_set_more_epochs_with_the_same_schedule_shape():
    from train.trainer import apply_step_budget
    recipe = {"warmup_epochs": 5, "warmup_start_factor": 0.01, "name": "cosine", "T_0": 10, "T_mult": 1,
              "eta_min": 1e-6, "epochs": 30, "steps": 30 * 57}  # NW-UCLA's 30 epochs of 57 steps
    full, small = dict(recipe), dict(recipe)
    apply_step_budget(full, 57)
    apply_step_budget(small, 6)  # a tenth of the clips
    assert (full["epochs"], full["warmup_epochs"]) == (30, 5)
    assert small["epochs"] == 285 and small["warmup_epochs"] == 48 and small["T_0"] == 95
    for frac in (0.1, 0.5, 0.9):  # the learning rate at the same fraction of the budget is the same
        assert lr_factor(frac * small["epochs"], small, 1e-3) == pytest.approx(
            lr_factor(frac * full["epochs"], full, 1e-3), abs=0.02)
    again = dict(small)
    apply_step_budget(again, 6)  # a resumed run resolves it again to the same values
    assert again == small


# ---------------------------------------------------------------------------------------------
# training that learns, resume, evaluation command


def test_short_run_learns_well_above_chance(trained):
    out, summary = trained
    chance = 1 / 8
    assert summary["finished"] and summary["epochs"] == EPOCHS
    assert summary["val_top1"] >= 0.5, f"validation top-1 {summary['val_top1']:.3f} vs chance {chance:.3f}"
    # chosen on the data set's own validation split, the test split scored once at that epoch and the last
    assert summary["chosen_on"] == "val" and summary["validation"]["clips"] == len(load_split("synthetic", "val"))
    assert summary["test_clips_scored"] == len(load_split("synthetic", "test")) and not summary["warnings"]
    assert 0.0 <= summary["test_top1_at_val_epoch"] <= 1.0 and 0.0 <= summary["test_top1_last_epoch"] <= 1.0
    for name in ("best.pt", "last.pt", "config.yaml", "metrics.csv", "metrics.jsonl", "curves.png",
                 "confusion.png", "confusion.json", "summary.json", "test_predictions.npz", "test_metrics.json",
                 "test_confusion.png"):
        assert (out / name).exists(), name
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, EPOCHS + 1))
    assert list((out / "tb").glob("events.out.tfevents.*"))
    model, ckpt = load_model(out / "best.pt")
    assert ckpt["metrics"]["top1"] == pytest.approx(summary["val_top1"])
    assert ckpt["train"]["validation"]["digest"] == summary["validation"]["digest"]
    assert ckpt["class_names"] == load_split("synthetic", "test").class_names
    assert "resume" not in ckpt and "resume" in load_checkpoint(out / "last.pt")


def test_resume_after_interruption_matches_uninterrupted(trained, tmp_path):
    ref_out, ref = trained
    out = tmp_path / "run"
    cfg = tiny_config(out)
    first = run(cfg, stop_after_epochs=EPOCHS // 2)  # "killed" half way
    assert not first["finished"] and first["epochs"] == EPOCHS // 2
    from train.fit import main

    # the command a user types; argparse would take the override for --resume's optional path
    resumed = main([*TINY, f"schedule.epochs={EPOCHS}", f"output_dir={out}", "--resume", "train.seed=0"])
    assert resumed["finished"] and resumed["epochs"] == EPOCHS
    ref_rows = [json.loads(x) for x in (ref_out / "metrics.jsonl").read_text().splitlines()]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    for a, b in zip(ref_rows, rows):
        for key in ("train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "lr"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-7), (a["epoch"], key)
    ref_sd = load_checkpoint(ref_out / "last.pt")["state_dict"]
    sd = load_checkpoint(out / "last.pt")["state_dict"]
    for k in ref_sd:
        torch.testing.assert_close(sd[k], ref_sd[k], rtol=1e-5, atol=1e-6, msg=k)


def test_evaluate_command_scores_checkpoint(trained, tmp_path, capsys):
    from train.evaluate import evaluate

    out, summary = trained
    metrics = evaluate(["--checkpoint", str(out / "best.pt"), "--data", "synthetic:test",
                    "--out", str(tmp_path / "eval")])
    assert metrics["top1"] == pytest.approx(summary["test_top1_at_val_epoch"])
    assert "top-1" in capsys.readouterr().out
    assert (tmp_path / "eval" / "metrics.json").exists() and (tmp_path / "eval" / "confusion.png").exists()
    multi = evaluate(["--checkpoint", str(out / "best.pt"), "--data", "synthetic", "--clips", "3", "--no-per-class"])
    assert 0.0 <= multi["top1"] <= 1.0 and multi["clips"] == 3


# ---------------------------------------------------------------------------------------------
# distributed


def test_ddp_two_processes_gloo(tmp_path):
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "train.fit", *TINY, "schedule.epochs=2", "train.device=cpu", "model.sync_bn=true",
           f"output_dir={out}"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shards = json.loads((out / "ddp_shards.json").read_text())
    a, b = (set(s) for s in shards["shards"])
    assert shards["world_size"] == 2 and a and b
    assert not a & b, "ranks saw overlapping samples"
    assert a | b == set(range(shards["dataset_size"]))
    assert "sync_bn ignored" in (out / "train.log").read_text()  # SyncBatchNorm is CUDA-only
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["finished"]
    model, ckpt = load_model(out / "best.pt")
    assert ckpt["train"]["world_size"] == 2
    assert model(torch.zeros(2, 3, 24, 25, 1)).shape == (2, 8)
    # validation metrics are over the whole split, not one rank's half
    n = len(load_split("synthetic", "val"))
    full = evaluate_logits(np.zeros((n, 8)), np.zeros(n, dtype=int), ckpt["class_names"])["num_samples"]
    assert ckpt["metrics"]["num_samples"] == full == len(load_split("synthetic", "val"))


def test_report_table_and_plot(trained, tmp_path, capsys):
    from train.report import main

    out, summary = trained
    table = main([str(out), str(tmp_path / "not_a_run"), "--out", str(tmp_path / "report")])
    assert "| last_nano | joint |" in table and f"{100 * summary['test_top1_at_val_epoch']:.2f}" in table
    assert "skipped" in capsys.readouterr().err
    assert (tmp_path / "report" / "report.png").stat().st_size > 0 and (tmp_path / "report" / "report.md").exists()
