"""TensorRT converter: the no-TensorRT path (everything up to the engine, the exact commands, exit status 3)
and the logic that does not need TensorRT (precision per device, shape profiles, cache keys, trtexec)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from converters import trt
from backend_checker import backend_available

HAVE_TRT = backend_available("tensorrt")
pytestmark = pytest.mark.tensorrt



@pytest.mark.slow  # 14 s measured on the shared 2-core machine
@pytest.mark.skipif(HAVE_TRT, reason="TensorRT is installed: the no-TensorRT path does not apply")
def test_no_tensorrt_path_prepares_everything_and_prints_commands(tiny_checkpoint, tmp_path, capsys):
    code = trt.main(["--ckpt", str(tiny_checkpoint["ckpt"]), "--precision", "int8",
                     "--calib", str(tiny_checkpoint["calib"]),
                     "--quantizer", "ort", "--out", str(tmp_path), "--quiet"])
    assert code == 3  # documented: backend missing, the rest was built
    out = capsys.readouterr().out
    assert "TensorRT is not installed" in out
    qdq = tmp_path / "tiny_int8_b1.onnx"
    assert qdq.is_file()
    assert f"trtexec --onnx={qdq} --saveEngine={tmp_path / 'tiny_int8_b1.engine'}" in out
    assert "--stronglyTyped" in out and "--int8" in out
    plan = json.loads((tmp_path / "tiny_int8_b1.engine.build.json").read_text())
    assert plan["precision"] == "int8" and plan["int8_mode"] == "explicit"
    assert plan["commands"]["python"].startswith("python -m converters.trt --ckpt")
    assert plan["profile"] == [[1, 3, 16, 25, 1]] * 3
    assert not (tmp_path / "tiny_int8_b1.engine").exists()  # no fake engine


@pytest.mark.skipif(HAVE_TRT, reason="TensorRT is installed")
def test_no_tensorrt_fp16_dynamic_prepares_fp16_onnx_for_trt11(tiny_checkpoint, tmp_path, held_out):
    res = trt.export(tiny_checkpoint["ckpt"], tmp_path, "fp16", dynamic=(1, 4, 8))
    assert res.status == "missing-backend" and res.exit_code == 3
    assert "--minShapes=skeleton:1x3x16x25x1" in res.extra["trtexec_trt10"]
    assert "--maxShapes=skeleton:8x3x16x25x1" in res.extra["trtexec_trt10"]
    assert "--fp16" in res.extra["trtexec_trt10"]
    half = tmp_path / "tiny_fp16.onnx"
    assert f"--onnx={half}" in res.extra["trtexec_trt11"] and "--fp16" not in res.extra["trtexec_trt11"]
    # the fp16 graph TensorRT 11 would build from is valid and close to fp32 in onnxruntime
    from core.runtime import load_runtime
    x, _ = held_out(per_class=2)
    a = load_runtime(half).predict(x)
    b = load_runtime(tmp_path / "tiny_fp32.onnx").predict(x)
    assert np.abs(a - b).max() < 0.05 * max(1.0, np.abs(b).max())


def test_jetson_nano_gets_fp16_instead_of_int8():
    nano, orin = trt.device_profile("jetson_nano"), trt.device_profile("jetson_orin_nano")
    assert trt.resolve_precision("int8", nano)[0] == "fp16"
    assert trt.resolve_precision("int8", orin) == ("int8", "")
    assert trt.resolve_precision("fp32", nano) == ("fp32", "")
    assert trt.resolve_precision("int8", None) == ("int8", "")
    with pytest.raises(trt.InputError, match="--profile"):
        trt.device_profile("toaster")


def test_trtexec_of_jetpack_4_has_workspace_not_mempoolsize():
    plan = trt.ShapePlan((1, 3, 16, 25, 1), 1)
    old = trt.trtexec_command(Path("m.onnx"), Path("m.engine"), plan, "fp16", 8, 512, trt_minor_version=2)
    new = trt.trtexec_command(Path("m.onnx"), Path("m.engine"), plan, "fp16", 8, 512, trt_minor_version=6)
    assert "--workspace=512" in old and not any(c.startswith("--memPoolSize") for c in old)
    assert "--memPoolSize=workspace:512M" in new and trt.trt_version("8.2") == (8, 2)
    assert trt.trt_version("10.3.0") == (10, 3) and trt.trt_version("unknown") == (0, 0)


def test_calibration_cache_key_covers_data_batch_version_device():
    x = np.random.default_rng(0).standard_normal((8, 3, 4, 5, 1)).astype(np.float32)
    key = trt.calibration_cache_key(x, 4, "10.3.0", "Orin")
    assert key == trt.calibration_cache_key(x.copy(), 4, "10.3.0", "Orin")
    others = {trt.calibration_cache_key(x, 2, "10.3.0", "Orin"), trt.calibration_cache_key(x, 4, "8.6.2", "Orin"),
              trt.calibration_cache_key(x, 4, "10.3.0", "Xavier"), trt.calibration_cache_key(x + 1e-3, 4, "10.3.0", "Orin")}
    assert key not in others and len(others) == 4


def test_trtexec_command_per_version_and_dynamic_parsing():
    plan = trt.ShapePlan((1, 3, 64, 20, 1), 1, 1, 1, 1)
    t10 = trt.trtexec_command(trt.Path("m.onnx"), trt.Path("m.engine"), plan, "int8", 10, 512)
    t11 = trt.trtexec_command(trt.Path("m.onnx"), trt.Path("m.engine"), plan, "int8", 11, 512)
    assert "--int8" in t10 and "--stronglyTyped" not in t10 and "--memPoolSize=workspace:512M" in t10
    assert "--stronglyTyped" in t11 and "--int8" not in t11 and "--fp16" not in t11
    assert not any(a.startswith("--minShapes") for a in t10)  # fixed batch: the ONNX shape is the engine shape
    assert trt.parse_dynamic("1,8,32") == (1, 8, 32)
    for bad in ("8,1,32", "1,2", "a,b,c", "0,1,2"):
        with pytest.raises(argparse.ArgumentTypeError):
            trt.parse_dynamic(bad)


def test_toposort_restores_producer_order():
    import onnx
    from onnx import TensorProto, helper
    a = helper.make_node("Relu", ["x"], ["a"], name="a")
    b = helper.make_node("Neg", ["a"], ["b"], name="b")
    c = helper.make_node("Abs", ["b"], ["y"], name="c")
    graph = helper.make_graph([c, a, b], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    trt.toposort(graph)
    assert [n.name for n in graph.node] == ["a", "b", "c"]
    onnx.checker.check_model(helper.make_model(graph))


class FakeTensorRT:
    """Stands in for the tensorrt module (not installable here) to run build_engine's call sequence with the
    TensorRT 10/11 names it uses; records what the builder was asked for."""

    class Logger:
        WARNING, ERROR = 2, 1

        def __init__(self, level):
            self.level = level

    class NetworkDefinitionCreationFlag:
        EXPLICIT_BATCH, STRONGLY_TYPED = 0, 1

    class BuilderFlag:
        FP16, INT8 = "FP16", "INT8"

    class MemoryPoolType:
        WORKSPACE = "WORKSPACE"

    def __init__(self, version: str):
        self.__version__ = version
        self.calls: dict = {"flags": set()}
        fake = self

        class Network:
            num_layers = 42

        class Config:
            def set_memory_pool_limit(self, pool, size):
                fake.calls["workspace"] = (pool, size)

            def set_flag(self, flag):
                fake.calls["flags"].add(flag)

            def add_optimization_profile(self, profile):
                fake.calls["profile"] = profile.shapes

        class Profile:
            def set_shape(self, name, lo, opt, hi):
                self.shapes = (name, lo, opt, hi)

        class Builder:
            def __init__(self, logger):
                pass

            def create_network(self, flags):
                fake.calls["network_flags"] = flags
                return Network()

            def create_builder_config(self):
                return Config()

            def create_optimization_profile(self):
                return Profile()

            def build_serialized_network(self, network, config):
                return b"serialized-engine"

        class OnnxParser:
            num_errors = 0

            def __init__(self, network, logger):
                pass

            def parse_from_file(self, path):
                fake.calls["parsed"] = path
                return True

        self.Builder, self.OnnxParser = Builder, OnnxParser


@pytest.mark.parametrize("version,strongly_typed", [("10.3.0", False), ("11.0.0", True)])
def test_build_engine_call_sequence_with_a_stand_in_tensorrt(tmp_path, version, strongly_typed):
    fake = FakeTensorRT(version)
    plan = trt.ShapePlan((4, 3, 16, 25, 1), None, 1, 4, 8)
    engine = tmp_path / "m.engine"
    info = trt.build_engine(fake, tmp_path / "m.onnx", engine, plan, "int8", "explicit", 256)
    assert engine.read_bytes() == b"serialized-engine"
    assert info["strongly_typed"] is strongly_typed and info["network_layers"] == 42
    assert fake.calls["profile"] == ("skeleton", (1, 3, 16, 25, 1), (4, 3, 16, 25, 1), (8, 3, 16, 25, 1))
    assert fake.calls["workspace"] == ("WORKSPACE", 256 << 20)
    # TensorRT 11: strongly typed, no precision flags (they were removed); 10: INT8 + FP16 flags
    assert fake.calls["flags"] == (set() if strongly_typed else {"INT8", "FP16"})
    assert fake.calls["network_flags"] == (1 << 1 if strongly_typed else 0)
    if strongly_typed:
        with pytest.raises(trt.InputError, match="TensorRT 11 removed implicit INT8"):
            trt.build_engine(fake, tmp_path / "m.onnx", engine, plan, "int8", "implicit", 256)
