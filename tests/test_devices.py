import pytest

from devices import list_profiles, load_profile

RUNTIMES = {"tensorrt", "tflite", "coreml", "onnxruntime"}


def test_profiles_load_and_are_consistent():
    names = list_profiles()
    assert {"jetson_nano", "jetson_orin_nano", "raspberry_pi_5", "iphone"} <= set(names)
    for name in names:
        p = load_profile(name)
        assert p.name == name and p.runtime in RUNTIMES and p.precision in {"fp32", "fp16", "int8"}
        assert 0 < p.latency_budget_ms <= 33 and p.size_budget_mb > 0
        if not p.fast_int8:
            assert p.precision != "int8", f"{name}: no fast INT8, so it must not default to INT8"


def test_unknown_profile_and_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="unknown device profile 'toaster'"):
        load_profile("toaster")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nruntime: tflite\nbudget: 3\n")
    with pytest.raises(ValueError, match="unknown keys \\['budget'\\]"):
        load_profile(bad)
