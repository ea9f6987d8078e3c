import pytest
import torch

from core.checkpoint import CheckpointError, build_model, load_checkpoint, load_model, save_checkpoint
from core.models import create_model
from core.spec import InputSpec


def _save(tmp_path, **kw):
    model = create_model("last_nano", num_classes=3, layout="kinect20", streams=("joint", "bone")).eval()
    spec = InputSpec(layout="kinect20", frames=32, persons=1, window_frames=48, fps=30.0)
    path = save_checkpoint(tmp_path / "ckpt.pt", model, spec, ["a", "b", "c"], train={"epochs": 1},
                           metrics={"top1": 0.5}, **kw)
    return model, path


def test_round_trip_identical_outputs(tmp_path):
    model, path = _save(tmp_path)
    loaded, ckpt = load_model(path)
    assert ckpt["class_names"] == ["a", "b", "c"] and ckpt["model"]["variant"] == "last_nano"
    assert ckpt["input_spec"]["streams"] == ["joint", "bone"] and ckpt["input_spec"]["window_frames"] == 48
    x = torch.randn(2, 3, 32, 20, 1)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert not list(tmp_path.glob("*.tmp")), "atomic save leaves no temporary file"


def test_corrupt_file_is_named(tmp_path):
    _, path = _save(tmp_path)
    data = path.read_bytes()
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.pt"):
        load_checkpoint(bad)
    garbage = tmp_path / "garbage.pt"
    garbage.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.pt"):
        load_checkpoint(garbage)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_unknown_variant_and_newer_version(tmp_path):
    _, path = _save(tmp_path)
    ckpt = torch.load(path, weights_only=True)
    ckpt["model"]["variant"] = "last_gigantic"
    torch.save(ckpt, tmp_path / "unknown.pt")
    with pytest.raises(CheckpointError, match="unknown model variant 'last_gigantic'"):
        load_checkpoint(tmp_path / "unknown.pt")
    ckpt["model"]["variant"] = "last_nano"
    ckpt["format_version"] = 99
    torch.save(ckpt, tmp_path / "newer.pt")
    with pytest.raises(CheckpointError, match="newer.pt.*version 99"):
        load_checkpoint(tmp_path / "newer.pt")


class Evil:
    """Any pickled object: weights_only loading must refuse it."""


def test_pickled_objects_are_refused(tmp_path):
    torch.save({"format": "last-edge-checkpoint", "payload": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="evil.pt"):
        load_checkpoint(tmp_path / "evil.pt")


def test_state_dict_mismatch_is_named(tmp_path):
    _, path = _save(tmp_path)
    ckpt = load_checkpoint(path)
    ckpt["model"]["config"]["num_classes"] = 5
    with pytest.raises(CheckpointError, match="cannot rebuild"):
        build_model(ckpt, path)


def test_class_names_must_match(tmp_path):
    model = create_model("last_nano", num_classes=3)
    with pytest.raises(ValueError, match="2 class names"):
        save_checkpoint(tmp_path / "x.pt", model, InputSpec(), ["a", "b"])
