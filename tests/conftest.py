"""Session fixtures shared by every test area: the real data (../shared) and one tiny checkpoint.

The tiny checkpoint is a LAST last_nano that classifies synthetic motions without a training loop (too slow for
CI on 2 cores): BatchNorm statistics are estimated from the data, the attention and dynamic-adjacency branches are
switched on, and the classifier is a closed-form ridge regression on the pooled features. Its logits have real
class structure, which is what INT8 and parity checks need. It is built once per session (`tiny_checkpoint`)."""
from __future__ import annotations

import os
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch

from converters.calib import build_calibration, save_calibration
from core.checkpoint import load_checkpoint, save_checkpoint
from core.data.dataset import SkeletonDataset
from core.models.last import create_model
from core.spec import InputSpec
from core.synthetic import SYNTHETIC_ACTIONS, make_synthetic_split

REPO = Path(__file__).resolve().parents[1]

try:  # property-based tests (tests/test_hostile_input.py): a few hundred cases per target in CI, thousands with
    # HYPOTHESIS_PROFILE=thorough; the deadline catches a parser that hangs (generous: the CI machine is shared)
    from hypothesis import settings as _hypothesis_settings
    _hypothesis_settings.register_profile("ci", max_examples=150, deadline=60_000, database=None, print_blob=True)
    _hypothesis_settings.register_profile("thorough", max_examples=1000, deadline=20_000, database=None,
                                          print_blob=True)
    _hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
except ImportError:
    pass
SHARED = Path(os.environ.get("LAST_SHARED", REPO.parent / "shared")).resolve()
TINY_FRAMES = 16  # T of the tiny checkpoint


def pytest_report_header(config) -> list[str]:
    """Which CPU kernels the numbers of this run came from (tolerances are derived for any x86-64 CPU)."""
    from benchmarks.run import cpu_features
    forced = {k: os.environ[k] for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA") if k in os.environ}
    return [f"cpu features: {' '.join(cpu_features()) or 'unknown'}; torch dispatch: "
            f"{torch.backends.cpu.get_cpu_capability()}" + (f"; forced {forced}" if forced else "")]


@pytest.fixture(autouse=True)
def denormals_as_ieee():
    """Every test starts with IEEE subnormals: command-line mains called in-process flush them to zero for speed, a
    process-wide setting by design, which would leak into the next test."""
    torch.set_flush_denormal(False)
    yield


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The project's real data (../shared); tests that need it skip when it is absent."""
    if not (SHARED / "data").is_dir():
        pytest.skip(f"real data not found at {SHARED} (set LAST_SHARED to its location)")
    return SHARED


# ---- the tiny checkpoint ----------------------------------------------------------------------------------

def tiny_clips(per_class: int, seed: int, streams: tuple[str, ...] = ("joint",)) -> tuple[torch.Tensor, np.ndarray]:
    """Synthetic ntu25 clips preprocessed like the tiny checkpoint's input: (x (N, C, T, V, M), labels)."""
    spec = InputSpec(layout="ntu25", frames=TINY_FRAMES, streams=streams)
    split = make_synthetic_split("ntu25", per_class=per_class, frames=32, seed=seed)
    data = SkeletonDataset(split, spec, train=False)
    return torch.stack([data[i][0] for i in range(len(data))]), split.labels


def build_tiny_checkpoint(path: Path, variant: str = "last_nano", seed: int = 0, branch_gain: float = 0.5,
                          streams: tuple[str, ...] = ("joint",)) -> Path:
    torch.manual_seed(seed)
    x, y = tiny_clips(per_class=12, seed=seed, streams=streams)
    model = create_model(variant, num_classes=len(SYNTHETIC_ACTIONS), layout="ntu25", dropout=0.0, streams=streams)
    for m in model.modules():
        if hasattr(m, "proj") and hasattr(m, "qkv"):  # attention starts as identity: make it contribute
            torch.nn.init.constant_(m.proj[1].weight, branch_gain)
        if getattr(m, "adaptive", False):
            torch.nn.init.constant_(m.alpha, branch_gain)
    for m in model.modules():  # cumulative BN statistics from one pass over the data
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        model(x)
        model.eval()
        feats = model.forward_head(model.forward_features(x), pre_logits=True).double()
        feats = torch.cat([feats, torch.ones(len(feats), 1, dtype=torch.float64)], 1)
        target = torch.nn.functional.one_hot(torch.as_tensor(y), len(SYNTHETIC_ACTIONS)).double() * 4 - 2
        gram = feats.T @ feats
        ridge = 0.1 * gram.diagonal().mean() * torch.eye(feats.shape[1], dtype=torch.float64)
        w = torch.linalg.solve(gram + ridge, feats.T @ target)
        model.fc.weight.copy_(w[:-1].T.float())
        model.fc.bias.copy_(w[-1].float())
        acc = float((model(x).argmax(1).numpy() == y).mean())
    spec = InputSpec(layout="ntu25", frames=TINY_FRAMES, streams=streams)
    return save_checkpoint(path, model, spec, list(SYNTHETIC_ACTIONS), metrics={"train_top1": acc})


@pytest.fixture(scope="session")
def tiny_frames() -> int:
    return TINY_FRAMES


@lru_cache(maxsize=None)
def _held_out(per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = tiny_clips(per_class, seed)
    return x.numpy(), y


@pytest.fixture(scope="session")
def held_out():
    """held_out(per_class=6, seed=5) -> (x, labels): synthetic clips of another seed than the tiny checkpoint's,
    preprocessed like its input (clips no calibration or fit saw)."""
    def make(per_class: int = 6, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
        x, y = _held_out(per_class, seed)
        return x.copy(), y.copy()
    return make


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> dict[str, Path]:
    """{root, ckpt, ckpt_int8, calib}: the tiny checkpoint, its INT8 twin and a calibration file, once per session
    (building them is the slow part)."""
    root = tmp_path_factory.mktemp("tiny_checkpoint")
    ckpt = build_tiny_checkpoint(root / "tiny.pt")
    # a random network with strong attention / dynamic-adjacency branches is chaotic: any INT8 rounding
    # flips its predictions (measured: agreement 0.2 at gain 0.5, 0.64 at 0.1, 0.99 at 0; a trained
    # NW-UCLA last_small keeps 0.95-0.96), so the INT8 accuracy test uses the branches as initialised
    ckpt_int8 = build_tiny_checkpoint(root / "tiny_int8.pt", branch_gain=0.0)
    split = make_synthetic_split("ntu25", per_class=20, frames=32, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 160 clips: the 20 % held back to verify INT8 is 32 clips
        arrays = build_calibration(load_checkpoint(ckpt), split, num=160)
    return {"root": root, "ckpt": ckpt, "ckpt_int8": ckpt_int8, "calib": save_calibration(root / "calib.npz", arrays)}
