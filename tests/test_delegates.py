"""benchmarks.delegates: device profiles' delegate rules place the ops of a known graph (fall-back ops named with
their reason), per-op vs prefix partitioning, dtype and rank rules, schema errors, the command line."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from backend_checker import require_backend
from benchmarks.delegates import GraphOp, benchmark_rows, delegate_report, main, profile_reports
from benchmarks.run import Row
from benchmarks.verdict import Verdict, judge
from devices import ProfileError, load_profile, profile_from_dict

RULE = {"name": "npu", "kind": "npu", "artifact": "tflite", "dtypes": ["int8"], "partition": "per_op",
        "max_rank": 4, "ops": {"CONV_2D": None, "ADD": None, "DIV": ["float32"]}, "sources": ["doc"]}


def _graph(*ops: tuple[str, str, int]) -> tuple[str, list[GraphOp]]:
    return "tflite", [GraphOp(i, op, [dtype], rank, rank) for i, (op, dtype, rank) in enumerate(ops)]


def test_per_op_rules_name_each_fallback_and_count_segments():
    graph = _graph(("CONV_2D", "int8", 4), ("DIV", "int8", 4), ("ADD", "int8", 4), ("CONV_2D", "int8", 5),
                   ("BATCH_MATMUL", "int8", 3), ("ADD", "int8", 4))
    r = delegate_report("m.tflite", RULE, graph)
    assert (r.on_accelerator, r.ops, r.segments, r.status) == (3, 6, 3, "partial")
    assert r.fallback == {"DIV": 1, "CONV_2D": 1, "BATCH_MATMUL": 1}
    assert "int8 not supported" in r.reasons["DIV"] and "rank 5 > 4" == r.reasons["CONV_2D"]
    assert r.reasons["BATCH_MATMUL"] == "not in its supported ops" and r.first_fallback == "DIV (op #1)"


def test_prefix_partition_sends_everything_after_the_first_unsupported_op_to_the_cpu():
    rule = {**RULE, "partition": "prefix"}
    r = delegate_report("m.tflite", rule, _graph(("CONV_2D", "int8", 4), ("BATCH_MATMUL", "int8", 3),
                                                 ("ADD", "int8", 4)))
    assert (r.on_accelerator, r.segments) == (1, 1)
    assert r.reasons["ADD"].startswith("after the first unsupported op (BATCH_MATMUL")


def test_weights_that_are_activations_fall_back_where_the_rule_wants_constants():
    rule = {**RULE, "ops": {**RULE["ops"], "FULLY_CONNECTED": None}, "constant_weights": ["FULLY_CONNECTED"]}
    ops = [GraphOp(0, "FULLY_CONNECTED", ["int8"], 2, 2, weights_constant=False),
           GraphOp(1, "FULLY_CONNECTED", ["int8"], 2, 2, weights_constant=True)]
    r = delegate_report("m.tflite", rule, ("tflite", ops))
    assert r.on_accelerator == 1 and r.reasons["FULLY_CONNECTED"] == "its weights are an activation, not a constant"


def test_a_float_file_does_not_run_on_an_integer_delegate_and_other_formats_do_not_apply():
    r = delegate_report("m.tflite", RULE, _graph(("CONV_2D", "float32", 4), ("ADD", "float32", 4)))
    assert r.status == "none" and "float32 not supported" in r.reasons["CONV_2D"]
    assert delegate_report("m.onnx", RULE, ("onnx", [])).status == "not applicable"


@pytest.fixture(scope="module")
def known_int8_graph(tmp_path_factory):
    """A full-integer .tflite of a known graph: conv -> relu -> x @ x^T (two activations) -> / (1 + sigmoid)."""
    require_backend("tflite")  # skips here without litert-torch / ai-edge-quantizer
    from converters import full_int8
    from converters.tflite import convert_fp32

    class Known(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 1)

        def forward(self, x):
            y = torch.relu(self.conv(x)).reshape(2, 4, -1)  # (2, 4, 48)
            z = torch.matmul(y, y.transpose(1, 2))  # BATCH_MATMUL of two activations (batch 2)
            return z / (1.0 + torch.sigmoid(z))  # LOGISTIC, ADD, DIV

    root = tmp_path_factory.mktemp("known")
    torch.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((16, 3, 8, 6)).astype(np.float32)
    float_path = convert_fp32(Known().eval(), x[:1], root / "known_fp32.tflite")
    path = root / "known_int8.tflite"
    full_int8.quantize(float_path, x, path, "minmax")
    return path


def test_profile_reports_name_the_fallback_ops_of_a_known_graph(known_int8_graph):
    from converters.tflite import describe
    assert describe(known_int8_graph)["float_op_types"] == []  # every op int8: only the rules decide
    edge_tpu = {r.delegate: r for r in profile_reports(known_int8_graph, load_profile("raspberry_pi_4"))}
    (coral,) = edge_tpu.values()
    assert coral.fallback.get("BATCH_MATMUL") == 1 and coral.reasons["BATCH_MATMUL"] == "not in its supported ops"
    assert coral.on_accelerator > 0 and coral.segments == 1  # the conv before it maps, everything after does not
    assert "DIV" in coral.fallback and coral.reasons["DIV"].startswith(("after the first", "not in its"))
    phone = {r.delegate.split(" ")[0]: r for r in profile_reports(known_int8_graph, load_profile("android_snapdragon"))}
    assert "BATCH_MATMUL" not in phone["Qualcomm"].fallback and "DIV" not in phone["Qualcomm"].fallback
    assert phone["Android"].fallback.get("DIV") == 1 and "int8 not supported" in phone["Android"].reasons["DIV"]


def test_command_line_prints_the_table_and_rejects_bad_input(known_int8_graph, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["--profile", "android_snapdragon", str(known_int8_graph), "--json", str(out)]) == 0
    assert "falls back" in capsys.readouterr().out and out.is_file()
    assert main(["--profile", "x86_cpu", str(known_int8_graph)]) == 2
    assert "names no accelerator delegate" in capsys.readouterr().err
    assert main(["--profile", "android_snapdragon", str(tmp_path / "missing.tflite")]) == 2


def test_delegate_schema_errors_name_the_field():
    data = copy.deepcopy(load_profile("android_snapdragon").raw)
    data["delegates"][0]["partition"] = "sometimes"
    data["delegates"][1]["ops"]["DIV"] = ["float64"]
    with pytest.raises(ProfileError) as err:
        profile_from_dict(data, "p.yaml")
    assert "delegates[0].partition: 'sometimes'" in str(err.value) and "delegates[1].ops.DIV" in str(err.value)


def test_benchmark_run_hook_puts_the_placement_into_the_verdict(known_int8_graph):
    row = Row(ckpt="m/best.pt", model="m", variant="last_nano", format="tflite", precision="int8", status="ok",
              path=str(known_int8_graph))
    row.verdict = judge(5.0, 33.3, 15.0).to_dict()
    reports = benchmark_rows([row], load_profile("android_snapdragon"))
    assert [r["delegate"].split(" ")[0] for r in reports] == ["Qualcomm", "Android"]
    text = Verdict(**row.verdict).short()
    assert "delegate Android NNAPI" in text and "DIV" in text  # the fall-back op is named in the verdict
    assert benchmark_rows([row], load_profile("x86_cpu")) == []  # a profile without delegates adds nothing
