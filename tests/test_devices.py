import pytest
import yaml

from devices import PROFILE_DIR, ProfileError, list_profiles, load_profile

REQUIRED = {"jetson_nano", "jetson_orin_nano", "jetson_agx_orin", "raspberry_pi_4", "raspberry_pi_5",
            "android_snapdragon", "iphone", "x86_cpu"}


def test_required_profiles_load_and_are_consistent():
    names = set(list_profiles())
    assert REQUIRED <= names
    for name in names:
        p = load_profile(name)
        assert p.name == name and p.runtime in {"tensorrt", "tflite", "coreml", "onnxruntime"}
        assert p.precision in p.precisions and p.latency_budget_ms == pytest.approx(33.3, abs=0.1)
        assert p.size_budget_mb > 0 and p.budgets["pose_source"] and p.peak_gflops(p.precision)[0] > 0
        if not p.fast_int8:
            assert p.precision != "int8", f"{name}: no fast INT8, so it must not default to INT8"


def test_jetson_nano_is_tensorrt_8_2_rules():
    p = load_profile("jetson_nano")
    assert p.runtime_info["version"] == "8.2" and p.max_opset == 13 and p.precision == "fp16"
    assert "LayerNormalization" not in p.onnx["supported_ops"] and "Conv" in p.onnx["supported_ops"]
    assert load_profile("jetson_agx_orin").max_opset == 17 and load_profile("jetson_orin_nano").max_opset >= 17


def _write(tmp_path, data, name="board.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def good():
    return yaml.safe_load((PROFILE_DIR / "raspberry_pi_5.yaml").read_text())


def test_a_users_own_profile_loads_by_path(tmp_path, good):
    good["name"] = "my_board"
    assert load_profile(_write(tmp_path, good)).name == "my_board"


@pytest.mark.parametrize("mutate, field, problem", [
    (lambda d: d["budgets"].pop("pose_ms"), "budgets.pose_ms", "missing required field"),
    (lambda d: d["cpu"].update(cores="four"), "cpu.cores", "expected int"),
    (lambda d: d.update(budget=3), "budget", "unknown field"),
    (lambda d: d.update(precision="int4"), "precision", "is not a precision"),
    (lambda d: d["accelerators"][0]["peak_gflops"].update(fp16=-1), "accelerators[0].peak_gflops.fp16",
     "positive number"),
    (lambda d: d["estimate"].update(compute_efficiency=2), "estimate.compute_efficiency", "(0, 1]"),
    (lambda d: d.update(fast_int8=False), "precision", "without fast INT8"),
    (lambda d: d["runtime"].update(name="openvino"), "runtime.name", "is not a runtime"),
    (lambda d: d["runtime"].update(name="tensorrt"), "onnx", "max_opset"),
])
def test_schema_errors_name_the_file_and_field(tmp_path, good, mutate, field, problem):
    mutate(good)
    path = _write(tmp_path, good)
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    message = str(info.value)
    assert f"{path}: {field}:" in message and problem in message


def test_unknown_profile_and_bad_yaml(tmp_path):
    with pytest.raises(FileNotFoundError, match="unknown device profile 'toaster'"):
        load_profile("toaster")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ncpu: {cores: 4\n")
    with pytest.raises(ProfileError, match=r"bad.yaml: line \d+"):
        load_profile(bad)
