"""'Nothing I know': the open-set scores and rule (core.openset), train.openset writing the rule into a checkpoint
(chosen on validation clips, the test split refused), every exported artifact carrying it, and the edge loop
answering unknown for random motion while still naming the actions it knows."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from core.checkpoint import load_checkpoint
from core.openset import (OpenSet, auroc, body_unsteadiness, openset_scores, outlier_split, rejection,
                          rule_from_metadata, threshold_for)
from core.synthetic import synthetic_clip


def test_scores_auroc_and_threshold_by_hand():
    logits = np.array([[2.0, 0.0], [0.0, 0.0], [np.nan, 1.0]])
    np.testing.assert_allclose(openset_scores(logits, "energy")[:2], [np.log(np.exp(2) + 1), np.log(2)])
    np.testing.assert_allclose(openset_scores(logits, "max_logit")[:2], [2.0, 0.0])
    np.testing.assert_allclose(openset_scores(logits, "max_softmax")[:2], [np.exp(2) / (np.exp(2) + 1), 0.5])
    assert openset_scores(logits, "energy")[2] == -np.inf  # a non-finite logit is never known
    assert auroc([3, 4], [1, 2]) == 1.0 and auroc([1, 2], [3, 4]) == 0.0 and auroc([1, 2], [2, 1]) == 0.5
    scores = np.arange(1, 101, dtype=float)  # keep >= 95 of 100: threshold 6 keeps 6..100 (95 clips)
    assert threshold_for(scores, 0.95) == 6.0 and rejection(6.0, scores) == 0.05
    assert threshold_for(scores, 1.0) == 1.0
    with pytest.raises(ValueError, match="unknown open-set score"):
        openset_scores(logits, "entropy")


def test_body_test_separates_bodies_from_random_skeletons():
    body = np.stack([synthetic_clip(a, "ntu25", 48, seed=i)[0] for i, a in enumerate(("wave", "squat"))])[:, None]
    noise = np.random.default_rng(0).normal(0, 0.5, body.shape)
    steady, random = body_unsteadiness(body, "ntu25"), body_unsteadiness(noise, "ntu25")
    assert steady.max() < 0.15 < 0.3 < random.min()
    assert body_unsteadiness(np.zeros((1, 1, 10, 25, 3)), "ntu25")[0] == 0.0  # nobody: no evidence against it


def test_rule_keeps_the_asked_share_of_validation_clips_and_round_trips():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, (200, 5))
    clips = np.stack([synthetic_clip("walk_in_place", "ntu25", 32, seed=i)[0] for i in range(200)])[:, None]
    for kind in ("energy", "max_logit", "max_softmax"):
        rule = OpenSet.fit(logits, clips, "ntu25", kind, keep=0.95, data="x:val")
        assert rule.kept >= 0.95 and rule.known(logits, clips).mean() == pytest.approx(rule.kept)
        assert rule.body_max is not None and rule.layout == "ntu25"
        assert OpenSet.from_dict(rule.to_dict()) == rule
    assert rule_from_metadata({"openset": rule.to_dict()}) == rule
    assert rule_from_metadata({"openset": rule.to_dict()}, float("-inf")) is None  # turned off
    assert rule_from_metadata({}, 0.7).threshold == 0.7 and rule_from_metadata({}) is None
    known = rule.probabilities(logits[np.argmax(rule.scores(logits, clips))])
    assert known.sum() == pytest.approx(1.0, abs=1e-5)
    assert not rule.probabilities(logits[0], np.random.default_rng(2).normal(0, 0.5, clips[0].shape)).any()


# ---- train.openset on a tiny model, the artifact, the edge loop ---------------------------------------------------
@pytest.fixture(scope="module")
def openset_ckpt(tiny_checkpoint, tmp_path_factory):
    from train.openset import main
    path = tmp_path_factory.mktemp("openset") / "tiny_openset.pt"
    shutil.copy(tiny_checkpoint["ckpt"], path)
    assert main(["--ckpt", str(path), "--data", "synthetic:val"]) == 0
    return path


def test_train_openset_writes_the_rule_chosen_on_validation_clips(openset_ckpt, capsys):
    from train.openset import main
    rule = OpenSet.from_dict(load_checkpoint(openset_ckpt)["openset"])
    assert rule.data == "synthetic:val" and rule.kept >= 0.95 and rule.clips > 0 and rule.layout == "ntu25"
    entry = load_checkpoint(openset_ckpt)["openset"]
    assert set(entry["chosen_by"]["auroc_vs_generated_outliers"]) == {"energy", "max_logit", "max_softmax"}
    assert main(["--ckpt", str(openset_ckpt), "--data", "synthetic:test"]) == 2  # the test split only scores
    assert "validation clips" in capsys.readouterr().err
    assert main(["--ckpt", str(openset_ckpt), "--data", "synthetic:train"]) == 2  # nor on the clips it learned
    assert "not on the train split" in capsys.readouterr().err
    assert main(["--ckpt", str(openset_ckpt), "--data", "synthetic:val", "--keep", "1.5"]) == 2


def test_random_motion_is_rejected_and_known_actions_are_kept(openset_ckpt):
    from core.checkpoint import build_model, input_spec
    from core.evaluation import load_data_split, predict_split, torch_predict_fn
    ckpt = load_checkpoint(openset_ckpt)
    rule, spec = OpenSet.from_dict(ckpt["openset"]), input_spec(ckpt)
    predict = torch_predict_fn(build_model(ckpt))
    test = load_data_split("synthetic:test", layout=spec.layout)
    noise = outlier_split("random_gaussian", spec.layout, spec.persons, n=32, seed=5)
    kept = rule.known(predict_split(predict, test, spec, progress=False), test.data).mean()
    rejected = 1 - rule.known(predict_split(predict, noise, spec, progress=False), noise.data).mean()
    assert kept >= 0.85 and rejected == 1.0, (kept, rejected)


def test_exported_artifacts_carry_the_rule(openset_ckpt, tmp_path):
    pytest.importorskip("onnxruntime")
    from converters.onnx import main as onnx_main
    from core.artifact import read_artifact_metadata
    from core.runtime import load_runtime
    assert onnx_main(["--ckpt", str(openset_ckpt), "--out", str(tmp_path)]) == 0
    onnx_file = next(tmp_path.glob("*.onnx"))
    stored = load_checkpoint(openset_ckpt)["openset"]
    assert read_artifact_metadata(onnx_file)["openset"] == stored
    with load_runtime(onnx_file) as rt:
        assert OpenSet.from_dict(rt.metadata["openset"]) == OpenSet.from_dict(stored)
    with load_runtime(openset_ckpt) as rt:  # the checkpoint's own runtime too
        assert rt.metadata["openset"] == stored


def test_edge_loop_answers_unknown_for_random_motion(openset_ckpt):
    from edge.recognizer import ActionRecognizer, RunningMode
    rng = np.random.default_rng(3)
    noise = rng.normal(0, 0.5, (90, 25, 3)).astype(np.float32)
    wave = synthetic_clip("wave", "ntu25", 90, seed=4)[0]

    def run(frames, **kwargs):
        with ActionRecognizer.create_from_model_path(openset_ckpt, RunningMode.SKELETONS, skeleton_layout="ntu25",
                                                     **kwargs) as rec:
            assert rec.openset is not None or kwargs
            results = [rec.recognize_for_video(f[None], t * 1000 / 30) for t, f in enumerate(frames)]
        return results

    results = run(noise)
    assert any(r.classified for r in results)
    assert all(p.label == "unknown" for r in results for p in r.persons)
    assert not any(e.kind == "action_start" for r in results for e in r.events)
    labels = [p.label for r in run(wave) for p in r.persons if r.classified]
    assert "wave" in labels  # a known action is still named
    torch.manual_seed(0)
    without = run(noise, unknown_threshold=float("-inf"))  # the rule turned off: noise gets confident labels
    assert any(p.label != "unknown" for r in without for p in r.persons)
