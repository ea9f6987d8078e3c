"""Every command in the README, given a missing file, a bad value or an unknown name, prints ONE line
`<prog>: error: ...` on stderr and exits with the documented status (core.cli: 2 bad input).

The commands run in-process through their real `__main__` block (runpy), so the wiring is what users get."""
from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

from core.cli import console_main

MISSING = "/nonexistent/x"
CASES = [
    # (module, argv, what the one line must mention)
    ("core.models", ["--variants", "last_smal", "--no-latency"], "did you mean 'last_small'"),
    ("core.models", ["--frames", "many"], "--frames"),
    ("core.mapping", ["mediapipe33", "ntu26"], "ntu26"),
    ("core.layouts", ["kinect21"], "kinect21"),
    ("core.data.ntu", ["--root", MISSING, "--out", MISSING], "/nonexistent"),
    ("core.data.custom", ["--src", MISSING, "--out", MISSING], "/nonexistent"),
    ("train.fit", ["--config", f"{MISSING}.yaml"], "x.yaml"),
    ("train.fit", ["--config", "configs/synthetic.yaml", "model.varaint=last_nano"], "did you mean 'variant'"),
    ("train.fit", ["--config", "configs/synthetic.yaml", "model.variant=last_smal"], "did you mean 'last_small'"),
    ("train.evaluate", ["--ckpt", f"{MISSING}.pt", "--data", "synthetic:test"], "x.pt"),
    ("train.evaluate", ["--ckpt", f"{MISSING}.pt", "--data", "synthetic:test", "--clips", "0"], "--clips"),
    ("train.report", [MISSING], "/nonexistent/x"),
    ("train.teacher", ["--ckpt", f"{MISSING}.pt", "--data", "synthetic:train", "--out", MISSING], "x.pt"),
    ("train.distill", ["--config", "configs/synthetic.yaml", f"distill.teacher={MISSING}.pt"], "x.pt"),
    ("train.distill", ["--config", "configs/synthetic.yaml", "distill.tua=2"], "did you mean 'tau'"),
    ("train.pretrain", ["--config", "configs/synthetic.yaml", "pretrain.mask_ratio=[0.9,0.2]"], "mask_ratio"),
    ("converters", ["--ckpt", f"{MISSING}.pt", "--formats", "onnx"], "x.pt"),
    ("converters", ["--ckpt", f"{MISSING}.pt", "--formats", "onxx"], "did you mean 'onnx'"),
    ("converters.calib", ["--ckpt", f"{MISSING}.pt", "--data", "nw_ucla:train"], "x.pt"),
    ("converters.onnx", ["--ckpt", f"{MISSING}.pt"], "x.pt"),
    ("converters.onnx", ["--ckpt", f"{MISSING}.pt", "--batch", "-3"], "--batch"),
    ("converters.int8", ["--ckpt", f"{MISSING}.pt", "--calib", f"{MISSING}.npz"], "x.pt"),
    ("converters.trt", ["--ckpt", f"{MISSING}.pt", "--precision", "int4"], "int4"),
    ("converters.tflite", ["--ckpt", f"{MISSING}.pt"], "x.pt"),
    ("converters.coreml", ["--ckpt", f"{MISSING}.pt"], "x.pt"),
    ("edge.run", ["--skeletons", f"{MISSING}.npz", "--model", f"{MISSING}.pt", "--headless"], "/nonexistent/x"),
    ("edge.run", ["--skeletons", f"{MISSING}.npz", "--model", f"{MISSING}.pt", "--stride-s", "0"], "--stride-s"),
    ("edge.run", ["--skeletons", f"{MISSING}.npz", "--model", f"{MISSING}.pt", "--realtime", "--speed", "0"],
     "--speed"),
    ("edge.bench", ["--videos", f"{MISSING}.mp4"], "python -m benchmarks.edge"),
    ("edge.extract", ["--videos", MISSING, "--out", MISSING], "/nonexistent/x"),
    ("edge.record", ["--label", "wave", "--clips", "0"], "--clips"),
    ("benchmarks.run", ["--profile", "x86_cpu", "--ckpt", f"{MISSING}.pt"], "x.pt"),
    ("benchmarks.run", ["--profile", "jetson_nan", "--ckpt", f"{MISSING}.pt"], "did you mean 'jetson_nano'"),
    ("benchmarks.run", ["--profile", "x86_cpu", "--ckpt", f"{MISSING}.pt", "--preset", "slow"], "--preset"),
    ("benchmarks.compare", [f"{MISSING}.json"], "x.json"),
    ("benchmarks.edge", ["--videos", f"{MISSING}.mp4", "--model", f"{MISSING}.onnx"], "x.mp4"),
    ("benchmarks.decision", ["--model", f"{MISSING}.onnx", "--replay", "synthetic"], "x.onnx"),
    ("benchmarks.calibrate", [f"{MISSING}.json"], "x.json"),
    ("benchmarks.tflite_int8", ["--ckpt", f"{MISSING}.pt"], "x.pt"),
    ("benchmarks.delegates", ["--profile", "android_snapdragon", f"{MISSING}.tflite"], "x.tflite"),
    ("benchmarks.openset", ["--ckpt", f"{MISSING}.pt"], "x.pt"),
    ("benchmarks.multi_person", ["--videos", MISSING, "--pose-model", f"{MISSING}.task"], "/nonexistent/x"),
    ("benchmarks.pose_budget", ["--video", f"{MISSING}.mp4", "--pose-model", f"{MISSING}.task"], "x.mp4"),
    ("benchmarks.two_person", ["--video", f"{MISSING}.mp4", "--pose-model", f"{MISSING}.task"], "x.mp4"),
    ("benchmarks.explain_cost", ["--ckpt", f"{MISSING}.pt"], "x.pt"),
    ("train.openset", ["--ckpt", f"{MISSING}.pt", "--data", "nw_ucla:val"], "x.pt"),
    ("train.explain", ["--ckpt", f"{MISSING}.pt", "--data", "nw_ucla:test", "--out", MISSING], "x.pt"),
]


def run_module(module: str, argv: list[str]) -> int:
    old = sys.argv
    sys.argv = [module, *argv]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=False)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = old
    return 0


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    return lines[0]


@pytest.mark.parametrize("module,argv,mention", CASES, ids=[f"{m}-{i}" for i, (m, _, _) in enumerate(CASES)])
def test_bad_input_is_one_line_and_exit_2(module, argv, mention, capsys, monkeypatch):
    monkeypatch.chdir(__file__.rsplit("/tests/", 1)[0])  # configs/ is read relative to the repository
    code = run_module(module, argv)
    line = one_error_line(capsys.readouterr().err)
    assert code == 2, (code, line)
    prog = "python -m " + module
    assert line.startswith(f"{prog}: error: "), line
    assert mention in line, line
    # bad input writes nothing: no output folder appears for a command that refused to run
    assert not Path(MISSING).parent.exists(), f"{module} created {Path(MISSING).parent} on bad input"


def test_console_script_dispatches_and_rejects_unknown_commands(capsys):
    assert console_main(["modles"]) == 2
    assert "did you mean 'models'" in one_error_line(capsys.readouterr().err)
    assert console_main(["models", "--variants", "last_nano", "--no-latency"]) == 0
    assert "last_nano" in capsys.readouterr().out
    assert console_main(["--help"]) == 0
    assert "python -m train.fit" in capsys.readouterr().out
