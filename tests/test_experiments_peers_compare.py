"""experiments.peers_compare: in-run ratios of two peer-harness result files."""
import json

import pytest

from experiments import peers_compare


def fake_run(last_ms: float, ref_ms: float, b16_ms: float, date: str) -> dict:
    def timing(ms):
        return {"median": ms}
    model = {"family": "LAST", "flops": 0.5e9, "timing": {"ort1": timing(last_ms), "eager1": timing(2 * last_ms),
                                                         "ort2": timing(last_ms)}, "b16": timing(b16_ms)}
    ref = {"family": "peer", "flops": 0.7e9, "timing": {"ort1": timing(ref_ms), "eager1": timing(ref_ms),
                                                       "ort2": timing(ref_ms)}}
    return {"env": {"date": date}, "gemm_peak": {"ort1": 100.0}, "models": {"EfficientGCN-B0": ref, "last_x": model},
            "ort_profile": {"last_x": {"types": [{"op": "Conv", "share": 0.6}, {"op": "MatMul", "share": 0.2}]}}}


def test_ratios_are_in_run(tmp_path):
    before, after = fake_run(4.0, 12.0, 64.0, "d0"), fake_run(2.0, 16.0, 16.0, "d1")
    m = peers_compare.metrics(after, "last_x", "EfficientGCN-B0")
    assert m["ort1_vs_ref"] == pytest.approx(8.0)  # 16 / 2, the other run's times play no part
    assert m["eager_vs_ref"] == pytest.approx(4.0)
    assert m["peak_share"] == pytest.approx(0.5e9 / 2e-3 / 1e9 / 100.0)
    assert m["b16_gain"] == pytest.approx((16 / 16e-3) / (1e3 / 2.0))
    for name, res in (("b.json", before), ("a.json", after)):
        (tmp_path / name).write_text(json.dumps(res))
    out = tmp_path / "cmp"
    assert peers_compare.main([str(tmp_path / "b.json"), str(tmp_path / "a.json"), "--out", str(out)]) == 0
    md = (out / "compare.md").read_text()
    assert "3.00× → **8.00×**" in md and "Conv 60%" in md
    assert (out / "compare.png").stat().st_size > 1000


def test_unknown_reference_is_one_clear_error(tmp_path, capsys):
    (tmp_path / "r.json").write_text(json.dumps(fake_run(1.0, 2.0, 8.0, "d")))
    with pytest.raises(SystemExit) as exc:
        peers_compare.main([str(tmp_path / "r.json"), str(tmp_path / "r.json"), "--reference", "ST-GCN"])
    assert exc.value.code == 2 and "--reference 'ST-GCN' is not in" in capsys.readouterr().err


def test_unreadable_results_file_is_bad_input(tmp_path, capsys):
    from core.cli import run_cli
    code = run_cli(peers_compare.main, "peers_compare", [str(tmp_path / "missing.json"), str(tmp_path / "b.json")])
    assert code == 2 and "cannot read harness results" in capsys.readouterr().err
