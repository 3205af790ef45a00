"""Rough edges of the command line a new user hits: help, version, config file errors, examples."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sparsesim import __version__
from sparsesim.cli.main import main

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_bare_command_prints_help_and_exits_0():
    done = subprocess.run([BIN / "sparsesim"], capture_output=True, text=True)
    assert done.returncode == 0
    assert done.stdout.startswith("usage: sparsesim") and "run" in done.stdout and "sweep" in done.stdout
    assert done.stderr == ""


def test_version():
    done = subprocess.run([BIN / "sparsesim", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == f"sparsesim {__version__}"


def test_run_help_says_traces_replay_every_recorded_phase(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "a --trace replays every phase it recorded" in text
    assert "fewest cycles" in text and "energy" in text  # what best optimizes


@pytest.mark.parametrize("name", ["x.json", "x.ini"])
def test_accel_file_of_another_type_is_refused(capsys, tmp_path, name):
    (tmp_path / name).write_text("{}")
    assert main(["run", "--gemm", "4,4,4", "--accel", str(tmp_path / name)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --accel: ") and "only YAML (.yaml, .yml), TOML (.toml) or SCALE-Sim (.cfg)" in err
    assert len(err.splitlines()) == 1


def test_malformed_yaml_names_the_line(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: mine\narray:\n  rows: 8\n  cols: 8\n  precision: int8: fp16\n")
    assert main(["run", "--gemm", "4,4,4", "--accel", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {bad}: malformed YAML: line 5, column ")


def test_malformed_toml_names_the_line(capsys, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "mine"\n[array]\nrows = = 8\n')
    assert main(["run", "--gemm", "4,4,4", "--accel", str(bad)]) == 2
    assert "malformed TOML" in (err := capsys.readouterr().err) and "line 3" in err


def test_example_topology_has_the_shapes_of_its_rows(capsys):
    """The shipped example, checked against the GEMM shapes worked out by hand from its rows
    (M = output pixels, N = filters, K = C.R.S; SCALE-Sim rounds the output size up)."""
    assert main(["run", "--topology", str(REPO / "configs/topologies/example.csv"), "--accel", "edge32",
                 "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["layers"]
    shapes = {r["name"]: (r["M"], r["N"], r["K"]) for r in rows}
    assert shapes == {"conv1": (32 * 32, 32, 3 * 9), "conv2": (16 * 16, 64, 32 * 9), "conv3_DP": (16 * 16, 1, 9),
                      "conv3_pw": (16 * 16, 128, 64), "conv4": (8 * 8, 128, 128 * 9)}


def test_example_topology_is_package_data():
    from importlib.resources import files

    assert (files("sparsesim.workloads") / "topologies" / "example.csv").is_file()


def test_replay_of_a_long_trace_reports_progress_in_lines(capsys, tmp_path, monkeypatch):
    import sparsesim.simulation.run

    monkeypatch.setattr(sparsesim.simulation.run, "PROGRESS_AFTER_S", 0.0)  # as if every op took long
    gemms = [a for i in range(20) for a in ("--gemm", f"{8 + i},8,8")]
    assert main(["trace", "synth", *gemms, "--input", "uniform:0.5", "--out", str(tmp_path / "t")]) == 0
    capsys.readouterr()
    assert main(["run", "--trace", str(tmp_path / "t"), "--accel", "edge32", "--dataflow", "os",
                 "--sparsity", "zero_skip:input:skipping", "--json"]) == 0
    out, err = capsys.readouterr()
    assert len(json.loads(out)["layers"]) == 20  # stdout stays pure JSON
    lines = err.splitlines()
    assert "\r" not in err and all(line.startswith("# [") for line in lines)
    assert "replaying gemm: 20 ops, 20 (op, phase) GEMMs" in lines[0]
    assert [line.split("replaying gemm: ")[1] for line in lines[1:]] == [f"{i}/20 ops" for i in range(2, 20, 2)]


def test_a_short_replay_is_quiet(capsys, tmp_path):
    # progress starts only once a replay has run PROGRESS_AFTER_S, so a short one (or one that
    # fails at once on bad input) leaves stderr to its result or its one error line
    assert main(["trace", "synth", "--gemm", "16,8,8", "--gemm", "8,8,16", "--out", str(tmp_path / "t")]) == 0
    capsys.readouterr()
    assert main(["run", "--trace", str(tmp_path / "t"), "--accel", "edge32", "--sparsity", "nm:2:4"]) == 0
    assert capsys.readouterr().err == ""


# --- conflicting flags of `run` (issue 16, 3): refused with one line naming both, before any work

EXAMPLE = str(REPO / "configs/topologies/example.csv")
NM24 = "sparsity=[{kind: nm, n: 2, m: 4}]"


@pytest.fixture
def fwd_trace(tmp_path, capsys):
    """A one-GEMM trace that recorded fwd only."""
    assert main(["trace", "synth", "--gemm", "16,8,8", "--out", str(tmp_path / "t")]) == 0
    capsys.readouterr()
    return str(tmp_path / "t")


@pytest.mark.parametrize("flags, named", [
    (["--gemm", "8,8,8", "--training", "--phases", "fwd"], ["--training:", "--phases"]),
    (["--gemm", "8,8,8", "--batch", "4"], ["--batch:", "--gemm"]),
    (["--topology", EXAMPLE, "--batch", "4"], ["--batch:", "--topology"]),
    (["--trace", "TRACE", "--batch", "2"], ["--batch:", "--trace"]),
    (["--gemm", "8,8,8", "--phases", "prefill"], ["--phases:", "prefill is not a phase of a GEMM"]),
    (["--topology", EXAMPLE, "--phases", "prefill"], ["--phases:", "prefill is not a phase of a topology"]),
    (["--network", "resnet18", "--phases", "decode,fwd"], ["--phases:", "decode is not a phase of resnet18"]),
    (["--gemm", "8,8,8", "--phases", "decode,fwd"], ["--phases:", "decode is not a phase of a GEMM"]),
    (["--network", "llama_tiny", "--phases", "decode,fwd"], ["--phases:", "fwd is not a phase of llama_tiny"]),
    (["--network", "llama_tiny", "--training"], ["--training:", "llama_tiny is an LLM network"]),
    (["--trace", "TRACE", "--phases", "fwd,prefill"], ["--phases:", "recorded fwd, not prefill"]),
    (["--gemm", "8,8,8", "--set", NM24, "--sparsity", "nm:2:8"], ["--sparsity:", "--set sparsity="]),
])
def test_conflicting_run_flags_are_refused_naming_both(capsys, fwd_trace, flags, named):
    flags = [fwd_trace if f == "TRACE" else f for f in flags]
    assert main(["run", *flags, "--accel", "edge32"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1, err
    assert err.startswith(f"error: {named[0]}") and all(n in err for n in named[1:]), err


def test_a_phase_given_twice_runs_once(capsys):
    # the meaning the API and sweep specs already give it: each phase once, in the order first given
    assert main(["run", "--gemm", "8,8,8", "--accel", "edge32", "--phases", "bwd_data,fwd,bwd_data", "--json"]) == 0
    assert [r["phase"] for r in json.loads(capsys.readouterr().out)["layers"]] == ["bwd_data", "fwd"]


@pytest.mark.parametrize("call, prefix", [
    (lambda s: s.simulate(s.gemm(8, 8, 8, phases=["prefill"]), accel="edge32"), "phases: prefill is not a phase"),
    (lambda s: s.simulate(s.network("llama_tiny", phases=["decode", "fwd"]), accel="edge32"),
     "phases: fwd is not a phase of llama_tiny"),
    (lambda s: s.network("llama_tiny", training=True), "network.training: llama_tiny is an LLM network"),
    (lambda s: s.network("resnet18", prompt_len=4), "network.prompt_len: only for the LLM networks"),
    (lambda s: s.simulate(s.gemm(8, 8, 8), accel="edge32", sparsity=["nm:2:8"], sets={"sparsity": []}),
     "sparsity: given twice"),
])
def test_the_api_refuses_the_same_conflicts_in_its_own_names(call, prefix):
    import sparsesim

    with pytest.raises(sparsesim.InputError) as caught:
        call(sparsesim)
    assert str(caught.value).startswith(prefix)


# --- misleading messages (issue 16, 3)

@pytest.mark.parametrize("flags, expected", [
    (["--gemm", "-8,8,8"], "error: --gemm[0].M: must be a positive integer, got -8"),
    (["--gemm", "8,8,8", "--gemm", "-1,2,3"], "error: --gemm[1].M: must be a positive integer, got -1"),
    (["--network", "resnet18", "--batch", "-2"], "error: --batch: must be a positive integer, got -2"),
    (["--network", "llama_tiny", "--act-sparsity", "-.5"], "error: --act-sparsity: must be a number in [0, 1)"),
])
def test_a_value_that_starts_with_a_minus_is_the_flags_value(capsys, flags, expected):
    # argparse alone reads "-8,8,8" as an unknown flag and says "--gemm: expected one argument"
    assert main(["run", *flags, "--accel", "edge32"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(expected) and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("sparsity, expected", [
    ("act_policy:magic:0.1", "error: --sparsity: act_policy: unknown policy 'magic' "
                             "(policies: relu, threshold, channel_threshold, topk)"),
    ("act_policy:thresold:0.1", "error: --sparsity: act_policy: unknown policy 'thresold' (did you mean 'threshold'?"),
    ("act_policy:magic", "error: --sparsity: act_policy: unknown policy 'magic'"),
])
def test_an_unknown_act_policy_is_named_as_such(capsys, sparsity, expected):
    assert main(["run", "--gemm", "8,8,8", "--accel", "edge32", "--sparsity", sparsity]) == 2
    err = capsys.readouterr().err
    assert err.startswith(expected) and len(err.splitlines()) == 1, err


def _user_model_without_inputs(s, tmp_path):
    import torch

    return s.capture(torch.nn.Linear(4, 4), None, out=tmp_path / "c")


@pytest.mark.parametrize("call, prefix", [
    (lambda s, t: s.simulate(s.network("llama_tiny", prompt_len=0), accel="edge32"), "prompt_len: must be an integer"),
    (lambda s, t: s.simulate(s.network("llama_tiny", act_sparsity=2.0), accel="edge32"), "act_sparsity: must be"),
    (lambda s, t: s.simulate(s.gemm(8, 8, 8), accel="edge33"), "accel: unknown preset 'edge33'"),
    (lambda s, t: s.simulate(s.gemm(8, 8, 8), accel="x.json"), "accel: x.json: only YAML"),
    (lambda s, t: s.simulate(s.gemm(8, 8, 8), accel="edge32", dataflow="xx"), "dataflow: unknown dataflow 'xx'"),
    (lambda s, t: s.simulate(s.gemm(8, 8, 8), accel="edge32", sets=["array.rows=4"]), "sets: expected a mapping"),
    (lambda s, t: s.simulate(s.gemm(8, 8, 8), accel="edge32", sparsity="act_policy:magic:0.1"),
     "sparsity: act_policy: unknown policy 'magic'"),
    (lambda s, t: s.simulate(s.gemm(8, 8, 8), accel="edge32", sparsity="nm:2"), "sparsity: expected nm:N:M"),
    (lambda s, t: s.sweep(REPO / "configs/sweeps/array_buffer_resnet18.yaml", t / "sw", workers=0),
     "workers: must be a positive integer"),
    (_user_model_without_inputs, "input_shape: required when no inputs are given"),
])
def test_api_errors_name_the_api_arguments_not_cli_flags(tmp_path, call, prefix):
    import sparsesim

    with pytest.raises(sparsesim.InputError) as caught:
        call(sparsesim, tmp_path)
    assert str(caught.value).startswith(prefix)


@pytest.mark.parametrize("flags, expected", [
    (["--network", "llama_tiny", "--prompt-len", "0"], "error: --prompt-len: must be an integer >= 1"),
    (["--network", "llama_tiny", "--act-sparsity", "2"], "error: --act-sparsity: must be a number in [0, 1)"),
    (["--gemm", "8,8,8", "--accel", "edge33"], "error: --accel: unknown preset 'edge33'"),
    (["--gemm", "8,8,8", "--sparsity", "nm:2"], "error: --sparsity: expected nm:N:M"),
    (["--gemm", "8,8,8", "--set", "array.dataflows=[os]", "--dataflow", "ws"], "error: --dataflow: 'ws' is not"),
])
def test_the_cli_names_its_flags_for_the_same_errors(capsys, flags, expected):
    argv = ["run", *flags] + ([] if "--accel" in flags else ["--accel", "edge32"])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(expected) and len(err.splitlines()) == 1, err


def test_a_sweep_spec_names_its_own_keys_not_run_flags(tmp_path):
    from sparsesim.sweeps import load_spec
    from sparsesim.core.errors import InputError

    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\nbase: edge32\nworkloads: [{gemm: [8, 8, 8]}]\ndataflows: [os]\n"
                    "sparsity: [\"act_policy:magic:0.1\"]\n")
    with pytest.raises(InputError) as caught:
        load_spec(spec)
    assert "sparsity[0]: act_policy: unknown policy 'magic'" in str(caught.value)
    assert "--sparsity" not in str(caught.value)


# --- an activation policy whose zeros nothing acts on (issue 16, 3)

def _run_json(capsys, *flags):
    assert main(["run", "--gemm", "64,64,64", "--accel", "edge32", "--dataflow", "os", *flags, "--json"]) == 0
    out, err = capsys.readouterr()
    return json.loads(out), err


@pytest.mark.parametrize("extra", [[], ["--sparsity", "zero_skip:weight:skipping"]])
def test_act_policy_alone_warns_and_says_so_in_the_row(capsys, extra):
    dense, _ = _run_json(capsys)
    doc, err = _run_json(capsys, "--sparsity", "act_policy:threshold:0.1", *extra)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: act_policy threshold0.1 zeroes input activations, "
                                                   "but no switched-on feature acts on those zeros"), err
    (row,) = doc["layers"]
    assert row["policy_inert"] is True and row["policy_zeroed_fraction"] > 0
    if not extra:  # what the warning claims: the costs are the dense run's
        for key in ("cycles", "dram_bytes", "energy_pj"):
            assert row[key] == dense["layers"][0][key]


@pytest.mark.parametrize("acting", ["zero_skip:input:skipping", "zero_skip:both:gating"])
def test_act_policy_with_a_feature_on_its_zeros_is_quiet(capsys, acting):
    doc, err = _run_json(capsys, "--sparsity", "act_policy:threshold:0.1", "--sparsity", acting)
    assert err == "" and doc["layers"][0]["policy_inert"] is False


def test_a_gate_coupled_policy_is_not_inert(capsys):
    # at site swiglu_gate the policy narrows `up` itself, so it changes the costs alone
    assert main(["run", "--network", "llama_tiny", "--phases", "decode", "--prompt-len", "4", "--gen-len", "1",
                 "--accel", "edge32", "--sparsity", "act_policy:threshold:0.1:site=swiglu_gate", "--json"]) == 0
    out, err = capsys.readouterr()
    assert "warning" not in err
    assert all(r["policy_inert"] is None for r in json.loads(out)["layers"])


# --- work_ratio when no MAC is effectual (issue 16, 3)

# threshold 1e9 zeroes every input activation; zero-skipping then skips every MAC
NO_WORK = ["--gemm", "64,64,64", "--accel", "edge32", "--sparsity", "act_policy:threshold:1e9",
           "--sparsity", "zero_skip:input:skipping"]


def _strict_json(text: str):
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_work_ratio_with_no_effectual_mac_is_inf_in_the_table_and_null_in_json(capsys):
    assert main(["run", *NO_WORK, "--json"]) == 0
    doc = _strict_json(capsys.readouterr().out)
    assert doc["layers"][0]["macs_effectual"] == 0 == doc["total"]["macs_effectual"]
    assert doc["layers"][0]["work_ratio"] is None and doc["total"]["work_ratio"] is None
    assert main(["run", *NO_WORK]) == 0
    table = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith(("gemm0", "total"))]
    assert [cells[-3] for cells in table] == ["inf", "inf"]  # the columns end with work, DRAM_KiB, energy_uJ


def test_work_ratio_with_no_effectual_mac_is_inf_from_python():
    import math

    import sparsesim

    res = sparsesim.simulate(sparsesim.gemm(64, 64, 64), accel="edge32",
                             sparsity=["act_policy:threshold:1e9", "zero_skip:input:skipping"])
    assert res.rows[0]["work_ratio"] == math.inf == res.total["work_ratio"]
    assert _strict_json(res.to_json())["total"]["work_ratio"] is None


def test_json_writes_every_non_finite_number_as_null():
    import numpy as np

    from sparsesim.simulation.results import to_json

    doc = _strict_json(to_json([{"a": np.float64("inf"), "b": [float("nan"), 1.5], "c": np.int64(3)}],
                               {"a": float("-inf")}))
    assert doc == {"layers": [{"a": None, "b": [None, 1.5], "c": 3}], "total": {"a": None}}


def test_a_sweep_summary_has_an_inf_work_ratio_where_no_mac_is_effectual():
    import pandas as pd

    from sparsesim.report import point_summary
    from sparsesim.simulation.results import ADDITIVE

    rows = pd.DataFrame([{**{k: 1 for k in ADDITIVE}, "macs_dense": 100, "macs_effectual": eff, "point_id": p,
                          "cfg.array.rows": 2, "cfg.array.cols": 2, "area_um2": 1.0}
                         for p, eff in (("a", 0), ("b", 25))])
    meta = {"points": [{"point_id": "a", "index": 0}, {"point_id": "b", "index": 1}]}
    assert point_summary(rows, meta)["work_ratio"].tolist() == [float("inf"), 4.0]


def test_speedup_bars_draw_an_inf_ratio_without_a_warning(tmp_path):
    import warnings

    import pandas as pd

    from sparsesim.plots import plot_speedup_bars

    data = pd.DataFrame({"x": ["a", "b"], "g": ["s", "s"], "work_ratio": [2.0, float("inf")],
                         "bound_speedup": [3.0, 3.0]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert plot_speedup_bars(data, tmp_path / "b.png", x="x", group="g", title="t",
                                 achieved="work_ratio").is_file()
