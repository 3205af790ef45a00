"""SwiGLU gate sparsity coupling (act_policy site swiglu_gate): which neurons die, what up,
down and the predictor are charged, from a hand-worked MLP and from captured decoders."""

from __future__ import annotations

import json

import numpy as np
import pytest

import sparsesim
from sparsesim.hardware.presets import load_accel
from sparsesim.cli.main import main
from sparsesim.simulation.run import simulate_rows
from sparsesim.core.errors import InputError
from sparsesim.workloads.gemm import Phase
from sparsesim.workloads.ops import Linear, Workload


class Tensors:
    """A TensorSource over fixed arrays, one dict per op."""

    def __init__(self, per_op):
        self.per_op = per_op

    def tensors(self, index):
        return self.per_op[index]


# The hand-worked MLP: d = 2, d_ff = 4, two tokens. gate = x . W_gate^T is
#   token 0: [ 2,  0, 0.1, -1]
#   token 1: [ 0, -3, 0,   -1]
# silu of it: token 0 [1.7616, 0, 0.0525, -0.2689], token 1 [0, -0.1423, 0, -0.2689]
# relu of it: token 0 [2, 0, 0.1, 0],               token 1 [0, 0, 0, 0]
X = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
W_GATE = np.array([[2.0, 0.0], [0.0, -3.0], [0.1, 0.0], [-1.0, -1.0]], dtype=np.float32)
W_UP = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]], dtype=np.float32)
W_DOWN = np.arange(1.0, 9.0, dtype=np.float32).reshape(2, 4)
H = np.ones((2, 4), dtype=np.float32)  # down's recorded input: every element nonzero


def mlp(meta=None, names=("gate_proj", "up_proj", "down_proj")):
    gate = Linear(name=f"model.layers.0.mlp.{names[0]}", tokens=2, in_features=2, out_features=4)
    up = Linear(name=f"model.layers.0.mlp.{names[1]}", tokens=2, in_features=2, out_features=4)
    down = Linear(name=f"model.layers.0.mlp.{names[2]}", tokens=2, in_features=4, out_features=2)
    tensors = [{"input": X, "weight": W_GATE}, {"input": X, "weight": W_UP}, {"input": H, "weight": W_DOWN}]
    return Workload("mlp", (gate, up, down), (Phase.PREFILL,), source=Tensors(tensors), meta=meta or {})


def linear(x, w, name="l"):
    op = Linear(name=name, tokens=x.shape[0], in_features=x.shape[1], out_features=w.shape[0])
    return Workload("one", (op,), (Phase.PREFILL,), source=Tensors([{"input": x, "weight": w}]))


def cfg(*sparsity, burst=1):
    # a 4x4 array, no fold overlap, ideal DRAM: os cycles are ceil(M/4)ceil(N/4)(K + 4 + 4 - 2);
    # int8 weights, by default fetched byte by byte (the hand-worked rows are 2 bytes long)
    sets = ["array.rows=4", "array.cols=4", "array.fold_overlap=false", "dram.ideal=true", f"dram.burst_bytes={burst}"]
    return load_accel("edge32", sets, {"sparsity": list(sparsity)})


def gate_policy(**extra):
    return {"kind": "act_policy", "method": "threshold", "site": "swiglu_gate", **extra}


def by_role(rows):
    return {r["mlp_role"]: r for r in rows}


def test_silu_threshold_kills_the_neurons_worked_by_hand():
    # |silu(gate)| >= 0.2: token 0 keeps neurons 0 and 3, token 1 keeps neuron 3; neurons 1, 2 die
    skipping = {"kind": "zero_skip", "target": "input", "action": "skipping"}
    rows = by_role(simulate_rows(mlp(), cfg(gate_policy(threshold=0.2, gate_act="silu"), skipping), "os"))
    gate, up, down = rows["gate"], rows["up"], rows["down"]
    for r in rows.values():
        assert r["gate_live_columns"] == 2 and r["gate_live_fraction"] == pytest.approx(3 / 8)
        assert r["gate_act"] == "silu" and "act_policy" in r["features_active"]
        assert r["policy"] == "threshold0.2-gate"
    # up runs as a GEMM with N = 2 (neurons 0 and 3): the same cycles and DRAM bytes as that Linear alone
    alone = simulate_rows(linear(X, W_UP[[0, 3]]), cfg(skipping), "os")[0]
    assert (up["M"], up["N"], up["K"]) == (2, 4, 2)  # the row keeps the op's shape
    assert up["cycles"] == alone["cycles"] == 1 * 1 * (2 + 4 + 4 - 2)
    assert up["dram_bytes"] == alone["dram_bytes"]
    # x has two nonzeros, each meeting the 2 live neurons; dense counts all 4 neurons
    assert up["macs_effectual"] == 2 * 2 and up["macs_dense"] == 2 * 4 * 2
    assert up["weight_bytes_skipped"] == 2 * 2 * 1  # two dead rows of K = 2 int8 weights
    assert up["weight_fetch_bound_bytes"] == 2 * 2 * 1
    assert up["events"]["metadata_b_bytes"] == 1  # the 4-neuron bitmap
    # the gate itself runs dense; its input is untouched
    assert gate["macs_effectual"] == 2 * 4 and gate["macs_dense"] == 16 and gate["cycles"] == gate["dense_cycles"]
    assert gate["predictor_cycles"] is None
    # down's input is h with the dead neurons zeroed: 5 of 8 elements, 3 MACs per output column kept
    assert down["act_zero_fraction"] == pytest.approx(5 / 8)
    assert down["policy_zeroed_fraction"] == pytest.approx(5 / 8)
    assert down["macs_effectual"] == 3 * 2
    h_hand = np.array([[1, 0, 0, 1], [0, 0, 0, 1]], dtype=np.float32)
    alone = simulate_rows(linear(h_hand, W_DOWN), cfg(skipping), "os")[0]
    assert down["cycles"] == alone["cycles"] and down["macs_effectual"] == alone["macs_effectual"]
    # neurons 1 and 2 are dead in both tokens: down's weight rows 1 and 2 (2 int8 weights each) are not fetched
    assert down["weight_bytes_skipped"] == alone["weight_bytes_skipped"] == 2 * 2


def test_dead_neuron_rows_save_only_whole_bursts():
    """With 64-byte bursts the whole 8-byte up weight is one burst that live rows share: nothing
    is skipped, and the narrowed GEMM reads the partial burst's other 4 bytes beside its own."""
    rows = by_role(simulate_rows(mlp(), cfg(gate_policy(threshold=0.2, gate_act="silu"), burst=64), "os"))
    alone = simulate_rows(linear(X, W_UP[[0, 3]]), cfg(burst=64), "os")[0]
    assert rows["up"]["weight_bytes_skipped"] == 0
    assert rows["up"]["dram_bytes"] == alone["dram_bytes"] + 4
    assert rows["up"]["weight_fetch_bound_bytes"] == 2 * 2


def test_relu_gate_keeps_its_natural_zeros_and_silu_has_almost_none():
    relu = by_role(simulate_rows(mlp(), cfg(gate_policy(method="relu", gate_act="relu")), "os"))
    assert relu["up"]["gate_live_columns"] == 2  # neurons 0 and 2 (token 0); token 1 is all dead
    assert relu["down"]["act_zero_fraction"] == pytest.approx(6 / 8)
    silu = by_role(simulate_rows(mlp(), cfg(gate_policy(method="relu", gate_act="silu")), "os"))
    assert silu["up"]["gate_live_columns"] == 4  # silu is zero only where gate is exactly 0 (three elements)
    assert silu["up"]["weight_bytes_skipped"] == 0
    assert silu["down"]["act_zero_fraction"] == pytest.approx(3 / 8)


def test_every_neuron_dead_runs_no_up():
    rows = by_role(simulate_rows(mlp(), cfg(gate_policy(threshold=100.0, gate_act="silu")), "os"))
    assert rows["up"]["cycles"] == 0 and rows["up"]["macs_effectual"] == 0
    assert rows["up"]["weight_bytes_skipped"] == 4 * 2
    assert rows["down"]["act_zero_fraction"] == 1.0
    # the row that does not run still has every column a replay row has
    assert set(rows["up"]) == set(rows["down"])
    assert rows["up"]["time_step"] is None and rows["up"]["pregen_cycles"] is None


def test_every_neuron_dead_under_n_m_counts_the_compressed_rows():
    # 2:4 pre-generated weights: a neuron row of K=2 keeps 2 values (groups no longer than n are
    # kept whole), so it is stored dense: 2 bytes; with K=8 at 2:4 it would be 4 values + indices
    nm = {"kind": "nm", "n": 2, "m": 4}
    rows = by_role(simulate_rows(mlp(), cfg(gate_policy(threshold=100.0, gate_act="silu"), nm), "os"))
    assert rows["up"]["weight_bytes_skipped"] == 4 * 2


def test_the_narrowed_up_skips_input_columns_only_where_whole_bursts_die():
    # up's live neuron rows are contiguous ([out, in]); a zero input of up is a strided column in
    # them: with 2-byte rows and 1-byte bursts a dead input frees its byte in every live row, with
    # 2-byte bursts nothing (every burst also holds the live input of the same row)
    x = np.array([[1.0, 0.0], [2.0, 0.0]], dtype=np.float32)  # input 1 of gate and up is zero
    wl = mlp()
    wl = type(wl)(wl.name, wl.ops, wl.phases, source=Tensors([{"input": x, "weight": W_GATE},
                                                              {"input": x, "weight": W_UP},
                                                              {"input": H, "weight": W_DOWN}]), meta=wl.meta)
    zs = {"kind": "zero_skip", "target": "input", "action": "skipping"}
    # gate = x . W_gate^T: token 0 [2, 0, 0.1, -1], token 1 [4, 0, 0.2, -2]; |silu| >= 0.1 keeps
    # neurons 0 and 3 in both tokens and neuron 2 in token 1 (silu(0.2) = 0.110): only 1 is dead
    fine = by_role(simulate_rows(wl, cfg(gate_policy(threshold=0.1, gate_act="silu"), zs, burst=1), "os"))
    coarse = by_role(simulate_rows(wl, cfg(gate_policy(threshold=0.1, gate_act="silu"), zs, burst=2), "os"))
    assert fine["up"]["gate_live_columns"] == 3
    assert fine["up"]["weight_bytes_skipped"] == 2 + 3 * 1  # the dead neuron row, then input 1 of each live one
    assert coarse["up"]["weight_bytes_skipped"] == 2  # the dead row is a whole 2-byte burst; no more


def test_predictor_is_charged_on_the_gate_row_and_narrows_the_gate():
    rows = by_role(simulate_rows(mlp(), cfg(gate_policy(threshold=0.2, gate_act="silu", predictor="lowrank",
                                                   predictor_rank=3)), "os"))
    gate = rows["gate"]
    assert gate["predictor_rank"] == 3
    assert gate["predictor_macs"] == 2 * 3 * 2 + 2 * 4 * 3  # tokens x d -> r, then r -> d_ff
    # the two dense GEMMs on the 4x4 array: (2 + 6) and (3 + 6) cycles, before the narrowed gate (2 + 6)
    assert gate["predictor_cycles"] == 8 + 9
    assert gate["cycles"] == 8 + 17
    narrowed = simulate_rows(linear(X, W_GATE[[0, 3]]), cfg(), "os")[0]
    predictor = [simulate_rows(linear(np.ones((2, k), np.float32), np.ones((n, k), np.float32)), cfg(), "os")[0]
                 for n, k in ((3, 2), (4, 3))]
    assert gate["predictor_dram_bytes"] == sum(p["dram_bytes"] for p in predictor)
    assert gate["dram_bytes"] == narrowed["dram_bytes"] + gate["predictor_dram_bytes"]
    assert gate["predictor_energy_pj"] == pytest.approx(sum(p["energy_pj"] for p in predictor))
    assert gate["macs_effectual"] == 2 * 2 * 2  # the gate's own work; the predictor's is its own column
    assert rows["up"]["predictor_cycles"] is None
    assert all(r["cycles"] >= r["bound_cycles"] for r in rows.values())


def test_rank_defaults_to_a_quarter_of_the_width_capped_at_1024():
    from sparsesim.sparsity.activation_policy import ActivationPolicyConfig

    policy = ActivationPolicyConfig(site="swiglu_gate", predictor="lowrank")
    assert [policy.rank_for(d) for d in (64, 4096, 8192, 2)] == [16, 1024, 1024, 1]


def test_the_activation_is_read_from_the_capture_settings_or_refused():
    rows = by_role(simulate_rows(mlp({"capture": {"mlp_act": "relu"}}), cfg(gate_policy(method="relu")), "os"))
    assert rows["up"]["gate_act"] == "relu" and rows["up"]["gate_live_columns"] == 2
    with pytest.raises(InputError, match=r"^sparsity\.act_policy\.gate_act: auto"):
        simulate_rows(mlp(), cfg(gate_policy(method="relu")), "os")
    with pytest.raises(InputError, match=r"^sparsity\.act_policy\.gate_act: .*'gelu'"):
        simulate_rows(mlp({"capture": {"mlp_act": "gelu"}}), cfg(gate_policy(method="relu")), "os")


def test_no_mlp_blocks_is_an_error_naming_the_field():
    with pytest.raises(InputError, match=r"^sparsity\.act_policy\.site: swiglu_gate needs gated MLP blocks"):
        simulate_rows(mlp(names=("gate", "up", "down")), cfg(gate_policy(gate_act="silu")), "os")
    with pytest.raises(InputError, match=r"^sparsity\.act_policy\.predictor: applies only with site"):
        simulate_rows(mlp(), cfg({"kind": "act_policy", "method": "threshold", "predictor": "lowrank"}), "os")


def test_cli_without_mlp_blocks_prints_one_error_line(capsys):
    code = main(["run", "--gemm", "4,4,4", "--accel", "edge32", "--sparsity",
                 "act_policy:threshold:0.1:site=swiglu_gate"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("error: sparsity.act_policy.site: swiglu_gate needs gated MLP blocks")
    assert main(["run", "--gemm", "4,4,4", "--accel", "edge32", "--sparsity", "act_policy:threshold:0.1:sight=x"]) == 2
    assert "sight: unknown key" in capsys.readouterr().err


# ---------------------------------------------------------------- captured decoders
@pytest.fixture(scope="module")
def relu_trace(tmp_path_factory):
    pytest.importorskip("torch")
    from sparsesim.workloads.capture.llm import InferenceCapture, capture_llm

    out = tmp_path_factory.mktemp("gate") / "relu"
    return capture_llm(out=out, spec=InferenceCapture(mode="decode", prompt_len=4, gen_len=1),
                       model="llama_tiny_relu", progress=False)


def test_relu_decoder_coupling_matches_the_recorded_zeros(relu_trace, capsys):
    """With the ReLU decoder and no added sparsity, the live neurons are exactly the nonzero
    columns of down's recorded input h = relu(gate) * up (read straight from the trace)."""
    manifest = json.loads((relu_trace / "manifest.json").read_text())
    assert manifest["capture"]["mlp_act"] == "relu"
    assert main(["run", "--trace", str(relu_trace), "--accel", "edge32", "--dataflow", "os",
                 "--sparsity", "act_policy:relu:site=swiglu_gate", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["layers"]
    trace = sparsesim.load_trace(relu_trace)
    downs = [r for r in trace.ops if r.name.endswith("mlp.down_proj")]
    ups = [r for r in rows if r["name"].endswith("mlp.up_proj")]
    coupled_downs = [r for r in rows if r["name"].endswith("mlp.down_proj")]
    assert len(ups) == len(downs) == 4  # 2 layers x (prefill + 1 decode step)
    for record, up, down in zip(downs, ups, coupled_downs):
        h = trace.operand(record, "input").reshape(-1, record.op.in_features)
        assert up["gate_act"] == "relu"
        assert up["gate_live_columns"] == int((h != 0).any(axis=0).sum())
        assert down["act_zero_fraction"] == pytest.approx(float((h == 0).mean()))
    assert all(r["mlp_role"] is None for r in rows if ".mlp." not in r["name"])


def test_python_api_matches_the_cli_and_mapping_equals_string(relu_trace, capsys):
    spec = "act_policy:threshold:0.01:site=swiglu_gate:predictor=lowrank:predictor_rank=8"
    assert main(["run", "--trace", str(relu_trace), "--accel", "edge32", "--dataflow", "os",
                 "--sparsity", spec, "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    api = sparsesim.simulate(sparsesim.trace(relu_trace), accel="edge32", dataflow="os", sparsity=[spec])
    mapping = sparsesim.simulate(sparsesim.trace(relu_trace), accel="edge32", dataflow="os",
                                 sparsity=[{"kind": "act_policy", "method": "threshold", "threshold": 0.01,
                                            "site": "swiglu_gate", "predictor": "lowrank", "predictor_rank": 8}])
    assert api.total["cycles"] == cli["total"]["cycles"] == mapping.total["cycles"]
    frame = api.to_pandas()
    gates = frame[frame["mlp_role"] == "gate"]
    assert len(gates) == 4 and (gates["predictor_rank"] == 8).all()
    assert list(gates["cycles"]) == [r["cycles"] for r in cli["layers"] if r["mlp_role"] == "gate"]


def test_shape_only_decoder_scales_the_predictor_charge_by_repeat():
    """A shape-only LLM network's rows stand for ``repeat`` instances; the predictor columns
    scale with it like the row's cycles (tiny decoder: d = 64, d_ff = 176, rank 16)."""
    from sparsesim.workloads.llm_networks import llm_workload

    workload = llm_workload("llama_tiny", prompt_len=4, gen_len=3)
    rows = simulate_rows(workload, cfg(gate_policy(threshold=0.05, predictor="lowrank")), "os")
    gate = next(r for r in rows if r["mlp_role"] == "gate" and r["phase"] == "decode")
    assert gate["gate_act"] == "silu"  # from the decoder's name
    assert gate["repeat"] == 2 * 3  # layers x decode steps
    # one token: 1 x 64 -> 16 (ceil(16/4) = 4 column folds of 64 + 6) and 1 x 16 -> 176 (44 folds of 16 + 6)
    assert gate["predictor_cycles"] == 6 * (4 * 70 + 44 * 22)
    assert gate["predictor_macs"] == 6 * (64 * 16 + 16 * 176)


def _toml(data: dict, prefix: str = "") -> str:
    """A preset mapping as TOML (scalars and sub-tables; ``sparsity`` as an array of tables)."""
    def value(v):
        return json.dumps(v) if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else repr(v)

    lines = [f"{k} = {value(v)}" for k, v in data.items() if not isinstance(v, (dict, list))]
    for k, v in data.items():
        if isinstance(v, dict):
            lines += ["", f"[{prefix}{k}]", _toml(v, f"{prefix}{k}.")]
        elif isinstance(v, list):
            for item in v:
                lines += ["", f"[[{prefix}{k}]]", _toml(item)]
    return "\n".join(lines)


def test_yaml_and_toml_accel_files_equal_the_cli_string(relu_trace, tmp_path, capsys):
    import yaml

    from sparsesim.hardware.presets import preset_mapping

    feature = {"kind": "act_policy", "method": "topk", "keep_fraction": 0.3, "site": "swiglu_gate",
               "gate_act": "relu"}
    data = {**preset_mapping("edge32"), "sparsity": [feature]}
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / "a.toml").write_text(_toml(data))
    totals = []
    for accel, extra in ((str(tmp_path / "a.yaml"), []), (str(tmp_path / "a.toml"), []),
                         ("edge32", ["--sparsity", "act_policy:topk:0.3:site=swiglu_gate:gate_act=relu"])):
        assert main(["run", "--trace", str(relu_trace), "--accel", accel, "--dataflow", "os", *extra, "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert {r["gate_act"] for r in out["layers"] if r["mlp_role"]} == {"relu"}
        totals.append(out["total"]["cycles"])
    assert totals[0] == totals[1] == totals[2]


# ---------------------------------------------------------------- calibrated thresholds
PREFILL_X = np.array([[1, 5, 2, 8], [2, 6, 4, 7], [3, 7, 6, 6], [4, 8, 8, 5]], dtype=np.float32)
DECODE_X = np.array([[2.5, 6, 5, 9]], dtype=np.float32)


def prefill_then_decode(passes=("prefill", "decode")):
    """One layer (d = d_ff = 4, W_gate = I, ReLU: the gate output is the input) over a 4-token
    prefill and one decode step."""
    ops, tensors, steps, phases = [], [], [], []
    for phase in passes:
        x = PREFILL_X if phase == "prefill" else DECODE_X
        for role in ("gate", "up", "down"):
            ops.append(Linear(name=f"model.layers.0.mlp.{role}_proj", tokens=x.shape[0], in_features=4,
                              out_features=4))
            tensors.append({"input": x if role != "down" else np.ones_like(x), "weight": np.eye(4, dtype=np.float32)})
            steps.append(None if phase == "prefill" else 0)
            phases.append((Phase(phase),))
    meta = {"phases_by_op": tuple(phases), "capture": {"mlp_act": "relu"}}
    return Workload("cal", tuple(ops), tuple(Phase(p) for p in passes), time_steps=tuple(steps),
                    source=Tensors(tensors), meta=meta)


def live_columns(rows, phase):
    return next(r["gate_live_columns"] for r in rows if r["mlp_role"] == "up" and r["phase"] == phase)


def test_chess_thresholds_calibrated_on_prefill_act_in_decode():
    # per channel, the 2nd smallest of 4 prefill values: [2, 6, 4, 6]; the decode token
    # [2.5, 6, 5, 9] keeps every neuron but 1 (6 is not above 6)
    rows = simulate_rows(prefill_then_decode(), cfg({"kind": "act_policy", "method": "channel_threshold",
                                                "sparsity": 0.5, "site": "swiglu_gate", "calibrate": "prefill"}), "os")
    assert live_columns(rows, "decode") == 3
    assert next(r for r in rows if r["mlp_role"] == "down" and r["phase"] == "prefill")["act_zero_fraction"] == 0.5
    assert rows[0]["policy"] == "channel_threshold0.5cal-gate"
    # uncalibrated, a one-token GEMM has floor(0.5 * 1) = 0 elements to zero per channel
    plain = simulate_rows(prefill_then_decode(), cfg({"kind": "act_policy", "method": "channel_threshold",
                                                 "sparsity": 0.5, "site": "swiglu_gate"}), "os")
    assert live_columns(plain, "decode") == 4


def test_cats_threshold_calibrated_on_prefill():
    # the 8th smallest of the 16 prefill values is 5: prefill keeps the 8 above it, decode keeps 6 and 9
    rows = simulate_rows(prefill_then_decode(), cfg({"kind": "act_policy", "method": "threshold", "sparsity": 0.5,
                                                "site": "swiglu_gate", "calibrate": "prefill"}), "os")
    gates = {r["phase"]: r for r in rows if r["mlp_role"] == "gate"}
    assert gates["prefill"]["gate_live_fraction"] == 0.5
    assert gates["decode"]["gate_live_fraction"] == 0.5 and gates["decode"]["gate_live_columns"] == 2


def test_calibration_needs_a_prefill_pass_and_a_threshold_method():
    with pytest.raises(InputError, match=r"^sparsity\.act_policy\.calibrate: prefill: model\.layers\.0\.mlp has "
                                         r"decode rows before any prefill"):
        simulate_rows(prefill_then_decode(("decode",)), cfg({"kind": "act_policy", "method": "threshold",
                                                        "site": "swiglu_gate", "calibrate": "prefill"}), "os")
    with pytest.raises(InputError, match=r"^sparsity\.act_policy\.calibrate: applies only with"):
        simulate_rows(mlp(), cfg({"kind": "act_policy", "method": "topk", "site": "swiglu_gate", "calibrate": "prefill"}),
                 "os")


def test_ops_of_an_incomplete_block_are_named_in_a_warning(caplog):
    wl = mlp()
    orphan = Linear(name="model.layers.1.mlp.up_proj", tokens=2, in_features=2, out_features=4)
    wl = Workload(wl.name, (*wl.ops, orphan), wl.phases,
                  source=Tensors([{"input": X, "weight": W_GATE}, {"input": X, "weight": W_UP},
                                  {"input": H, "weight": W_DOWN}, {"input": X, "weight": W_UP}]))
    with caplog.at_level("WARNING", logger="sparsesim"):
        rows = simulate_rows(wl, cfg(gate_policy(threshold=0.1, gate_act="silu")), "os")
    assert "1 MLP op(s) outside a complete gate/up/down block" in caplog.text
    assert "model.layers.1.mlp.up_proj" in caplog.text
    assert rows[3]["mlp_role"] is None and rows[1]["mlp_role"] == "up"


def test_mixtral_experts_are_coupled_by_their_w1_w3_w2_names():
    import math

    import sparsesim

    wl = sparsesim.network("mixtral_8x7b", phases=["decode"], prompt_len=4, gen_len=1, act_sparsity=0.5)
    rows = sparsesim.simulate(wl, accel="edge32", dataflow="ws",
                              sparsity=["act_policy:topk:0.3:site=swiglu_gate"]).rows
    roles = {r["name"].rsplit(".", 1)[-1]: r for r in rows if ".experts." in r["name"]}
    assert {k: r["mlp_role"] for k, r in roles.items()} == {"w1": "gate", "w3": "up", "w2": "down"}
    # top-k keeps ceil(0.3 x 14336) neurons of the one token an expert sees in a decode step
    assert roles["w3"]["gate_live_columns"] == math.ceil(0.3 * 14336)
    assert roles["w3"]["weight_bytes_skipped"] > 0.65 * 14336 * 4096 * roles["w3"]["repeat"]
