"""The validation protocol (a fixed, stratified validation slice of the training split chooses; the test split is
scored once) and paired differences with their interval (core.stats)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from core.data import load_split
from core.data.splits import names_digest, stratified_indices, validation_indices
from core.stats import clopper_pearson, mcnemar_exact_p, paired_difference, paired_from_correct, seed_summary, verdict
from tests.conftest import REPO


# ---------------------------------------------------------------------------------------------
# the slice


def _names_labels(n: int = 300, classes: int = 7, seed: int = 3) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    return [f"clip_{i:04d}" for i in range(n)], labels


def test_validation_slice_is_stratified_disjoint_and_independent_of_order():
    names, labels = _names_labels()
    fit, val = validation_indices(names, labels, 0.1, 0)
    assert not set(fit) & set(val) and len(fit) + len(val) == len(names)
    for c in np.unique(labels):  # 10 % of every class, rounded, at least one
        members = int(np.sum(labels == c))
        assert int(np.sum(labels[val] == c)) == max(1, int(round(0.1 * members)))
    # the same clips whatever order the data set was loaded in
    perm = np.random.default_rng(0).permutation(len(names))
    _, val2 = validation_indices([names[i] for i in perm], labels[perm], 0.1, 0)
    assert sorted(names[i] for i in val) == sorted(names[perm[i]] for i in val2)
    # another seed or fraction draws other clips
    assert set(validation_indices(names, labels, 0.1, 1)[1]) != set(val)
    assert len(validation_indices(names, labels, 0.2, 0)[1]) > len(val)
    with pytest.raises(ValueError, match="fraction"):
        validation_indices(names, labels, 1.0)
    with pytest.raises(ValueError, match="repeats"):
        validation_indices(["a", "a"], np.array([0, 0]))


def test_a_single_clip_class_stays_in_training():
    fit, val = validation_indices(["a", "b", "c", "d"], np.array([0, 0, 0, 1]), 0.5, 0)
    assert 3 in fit and 3 not in val and len(val) == 2


def test_validation_slice_is_identical_in_another_process():
    names, labels = _names_labels()
    here = names_digest([names[i] for i in validation_indices(names, labels)[1]])
    code = ("import numpy as np, sys; sys.path.insert(0, '.'); from tests.test_validation import _names_labels; "
            "from core.data.splits import validation_indices, names_digest; n, l = _names_labels(); "
            "print(names_digest([n[i] for i in validation_indices(n, l)[1]]))")
    other = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert other.stdout.strip() == here


def test_stratified_indices_follow_class_proportions():
    labels = np.array([0] * 50 + [1] * 30 + [2] * 20)
    idx = stratified_indices(labels, 10, seed=0)
    assert np.bincount(labels[idx]).tolist() == [5, 3, 2]
    assert np.array_equal(idx, stratified_indices(labels, 10, seed=0))
    assert len(stratified_indices(labels, 0)) == 0 and len(stratified_indices(labels, 500)) == 100


def test_synthetic_has_its_own_validation_split():
    val = load_split("synthetic", "val")
    assert val.info["validation"]["source"].endswith("(the data set's own)")
    assert not set(val.names) & set(load_split("synthetic", "test").names)


def test_nw_ucla_gets_a_validation_slice_of_the_training_views(shared_dir):
    root = shared_dir / "data" / "nw_ucla" / "all_sqe"
    train, val, test = (load_split("nw_ucla", s, root=root) for s in ("train", "val", "test"))
    assert val.info["validation"]["source"] == "slice of nw_ucla-train" and len(val) == 102
    assert set(val.names) <= set(train.names) and not set(val.names) & set(test.names)
    assert all("_v03" not in n for n in val.names)  # from views 1 and 2 only
    assert np.bincount(val.labels).min() >= 9  # every one of the ten classes
    assert val.info["validation"]["digest"] == names_digest(load_split("nw_ucla", "val", root=root).names)


# ---------------------------------------------------------------------------------------------
# the trainer: chooses on validation, scores test once, warns when told to choose on test


TINY = ["data.name=synthetic", "data.frames=16", "data.num_workers=0", "model.variant=last_nano",
        "optim.batch_size=16", "schedule.epochs=2", "schedule.warmup_epochs=0", "train.threads=1",
        "train.deterministic=false"]


def _evaluated_clips(run):
    """run() with the trainer's evaluate_model watched: (its result, the clip names of every evaluation)."""
    import train.trainer as trainer_module

    seen: list[list[str]] = []
    original = trainer_module.evaluate_model

    def spy(model, split, *args, **kwargs):
        seen.append(list(split.names))
        return original(model, split, *args, **kwargs)

    trainer_module.evaluate_model = spy
    try:
        return run(), seen
    finally:
        trainer_module.evaluate_model = original


def _fit(tmp_path, *overrides):
    from train.config import load_config
    from train.trainer import Dist, Trainer

    cfg = load_config(None, TINY + [f"output_dir={tmp_path}"] + list(overrides))
    trainer = Trainer(cfg, Dist("cpu"))
    summary, seen = _evaluated_clips(trainer.fit)
    return trainer, summary, seen


def test_trainer_chooses_on_validation_and_scores_test_once(tmp_path):
    trainer, summary, seen = _fit(tmp_path)
    val, test = load_split("synthetic", "val"), load_split("synthetic", "test")
    # every epoch evaluated the validation clips; the test clips exactly twice at the end (chosen and last epoch)
    assert [s for s in seen if s == val.names] == [val.names] * 2
    assert [s for s in seen if s == test.names] == [test.names] * 2 and len(seen) == 4
    assert seen[-2:] == [test.names, test.names]
    assert summary["chosen_on"] == "val" and not summary["warnings"]
    log = (tmp_path / "train.log").read_text()
    assert "choose the epoch" in log and "WARNING" not in log
    saved = np.load(tmp_path / "test_predictions.npz")
    assert list(saved["names"]) == test.names and saved["logits_at_val_epoch"].shape == (len(test), 8)


def test_custom_folder_without_val_split_gets_a_fixed_slice(tmp_path):
    from core.synthetic import make_synthetic_split

    folder = tmp_path / "custom"
    folder.mkdir()
    split = make_synthetic_split("coco17", per_class=6, seed=0)
    for i in range(len(split)):
        np.savez(folder / f"{split.names[i]}.npz", keypoint=split.sample(i), label=int(split.labels[i]))
    (folder / "manifest.json").write_text(json.dumps({"layout": "coco17", "class_names": split.class_names}))
    train = load_split(f"custom:{folder}", "train")
    val = load_split(f"custom:{folder}", "val")
    assert val.info["validation"]["source"].startswith("slice of") and set(val.names) < set(train.names)
    trainer, summary, seen = _fit(tmp_path / "run", f"data.name=custom:{folder}")
    assert summary["validation"]["digest"] == val.info["validation"]["digest"]
    assert summary["train_clips"] == len(train) - len(val)
    assert not set(trainer.train_split.names) & set(val.names)
    assert summary["test_clips_scored"] == len(load_split(f"custom:{folder}", "test"))


def test_choosing_on_the_test_split_warns_in_log_and_summary(tmp_path):
    _, summary, seen = _fit(tmp_path, "data.val_split=test")
    assert summary["warnings"] and "optimistic" in summary["warnings"][0]
    assert "WARNING" in (tmp_path / "train.log").read_text()
    assert "test_top1_at_val_epoch" not in summary  # the split it chose on is not scored again as "test"


def test_early_stopping_on_validation(tmp_path):
    _, summary, _ = _fit(tmp_path, "schedule.epochs=30", "train.early_stop_patience=1", "optim.lr=1e-7")
    assert summary["stopped_early"] and summary["epochs"] < 30 and summary["finished"]
    assert "test_top1_at_val_epoch" in summary


# ---------------------------------------------------------------------------------------------
# paired differences


def test_clopper_pearson_known_values():
    # reference values of the exact interval (Beta quantiles)
    assert clopper_pearson(3, 10) == pytest.approx((0.066739511, 0.652452850), abs=1e-8)
    assert clopper_pearson(0, 10) == pytest.approx((0.0, 0.308497108), abs=1e-8)
    assert clopper_pearson(10, 10) == pytest.approx((0.691502892, 1.0), abs=1e-8)
    assert mcnemar_exact_p(0, 6) == pytest.approx(2 * 0.5 ** 6)
    assert mcnemar_exact_p(5, 5) == 1.0


def test_paired_difference_counts_and_interval():
    ref = np.ones(100, bool)
    ref[:10] = False  # 90 right
    cand = ref.copy()
    cand[:4] = True  # fixes 4
    cand[50:52] = False  # breaks 2
    d = paired_from_correct(ref, cand)
    assert (d.fixed, d.broken, d.n) == (4, 2, 100)
    assert d.delta == pytest.approx(2.0) and d.low < 0 < d.high and d.low > -6 and d.high < 6
    assert verdict(d, 1.0) == "inconclusive"  # 6 discordant clips of 100 cannot rule out a 1-point loss
    same = paired_from_correct(ref, ref)
    assert (same.low, same.high, verdict(same)) == (0.0, 0.0, "holds")
    worse = paired_from_correct(np.ones(1000, bool), np.r_[np.zeros(100, bool), np.ones(900, bool)])
    assert verdict(worse, 1.0) == "loses" and worse.high < -1.0
    logits_ref = np.eye(3)[[0, 1, 2, 0]]
    logits_cand = np.eye(3)[[0, 1, 1, 1]]
    d2 = paired_difference(np.array([0, 1, 2, 1]), logits_ref, logits_cand)
    assert (d2.fixed, d2.broken) == (1, 1)
    with pytest.raises(ValueError, match="same clips"):
        paired_difference(np.zeros(3), np.zeros(3), np.zeros(4))


def test_seed_summary():
    s = seed_summary([80.0, 82.0, 84.0])
    assert s["mean"] == pytest.approx(82.0) and s["std"] == pytest.approx(2.0) and s["values"] == [80.0, 82.0, 84.0]


# ---------------------------------------------------------------------------------------------
# what chooses INT8 settings and the QAT epoch reads only validation clips


def test_int8_verifies_and_chooses_on_the_checkpoints_validation_clips(tmp_path):
    from converters.calib import build_calibration, quantization_clips, save_calibration
    from core.checkpoint import load_checkpoint

    trainer, summary, _ = _fit(tmp_path / "run")
    ckpt = load_checkpoint(tmp_path / "run" / "best.pt")
    train, val, test = (load_split("synthetic", s) for s in ("train", "val", "test"))
    calib = save_calibration(tmp_path / "calib.npz", build_calibration(ckpt, train, num=100))
    clips = quantization_clips(calib, ckpt)  # what every INT8 choice (auto, verification) is made on
    assert clips.verify_names == list(val.names) and "validation split" in clips.verified_on
    assert not set(clips.verify_names) & set(test.names) and not set(clips.calibrate_names) & set(val.names)
    # a checkpoint whose data set cannot be loaded here falls back to held-out calibration clips
    ckpt["train"]["data"] = "no_such_data_set"
    fallback = quantization_clips(calib, ckpt)
    assert set(fallback.verify_names) <= set(train.names) and "held-out" in fallback.verified_on


def test_qat_chooses_its_epoch_on_validation_clips(tmp_path):
    from train.qat import main as qat_main

    _fit(tmp_path / "fp32")
    summary, seen = _evaluated_clips(lambda: qat_main(["--ckpt", str(tmp_path / "fp32" / "best.pt"), "--out",
                                                       str(tmp_path / "qat"), "schedule.epochs=2"]))
    val, test = load_split("synthetic", "val"), load_split("synthetic", "test")
    assert summary["chosen_on"] == "val"
    assert seen[:2] == [val.names, val.names]  # every epoch: validation clips only
    assert seen[2:] == [test.names, test.names]  # the test split: scored once at the end


def test_every_epochs_validation_logits_are_kept_and_loss_selection(tmp_path):
    _, summary, _ = _fit(tmp_path / "a", "schedule.epochs=3", "train.select=loss")
    z = np.load(tmp_path / "a" / "val_predictions.npz")
    val = load_split("synthetic", "val")
    assert z["epochs"].tolist() == [1, 2, 3] and z["logits"].shape == (3, len(val), 8)
    assert list(z["names"]) == list(val.names)
    rows = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert summary["best_epoch"] == 1 + int(np.argmin([r["val_loss"] for r in rows]))


def test_significant_selection_keeps_the_last_epoch_unless_beaten_on_validation(tmp_path):
    from core.checkpoint import load_checkpoint

    _, summary, _ = _fit(tmp_path / "s", "schedule.epochs=3", "train.select=significant")
    sel = summary["selection"]
    z = np.load(tmp_path / "s" / "val_predictions.npz")
    right = z["logits"].argmax(2) == z["labels"][None]
    if sel["best_top1_epoch"] != 3:
        b, l = right[sel["best_top1_epoch"] - 1], right[2]
        assert (sel["best_right_last_wrong"], sel["best_wrong_last_right"]) == (int(np.sum(b & ~l)),
                                                                               int(np.sum(~b & l)))
    assert summary["best_epoch"] == sel["kept"] == load_checkpoint(tmp_path / "s" / "best.pt")["train"]["epoch"]
    if sel["kept"] == 3:
        assert summary["test_top1_at_val_epoch"] == summary["test_top1_last_epoch"]


def test_reselect_applies_the_significant_rule_to_a_finished_run(tmp_path):
    from core.checkpoint import load_checkpoint
    from train.reselect import main as reselect_main

    _, before, _ = _fit(tmp_path / "r", "schedule.epochs=3", "train.select=top1")
    (result,) = reselect_main([str(tmp_path / "r")])
    after = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert after["selection"]["rule"] == "significant" and after["best_epoch"] == result["kept"]
    assert load_checkpoint(tmp_path / "r" / "best.pt")["train"]["epoch"] == result["kept"]
    if result["kept"] == 3 and before["best_epoch"] != 3:
        assert after["test_top1_at_val_epoch"] == before["test_top1_last_epoch"]
        assert not any(k.endswith("clips") for k in after if k.startswith("test_top"))
    assert reselect_main([str(tmp_path / "r")])[0]["skipped"] == "already chosen by this rule"
    from core.cli import BadInput
    with pytest.raises(BadInput, match="no summary.json"):  # a mistyped folder is named, not skipped in silence
        reselect_main([str(tmp_path / "r"), str(tmp_path / "typo")])
