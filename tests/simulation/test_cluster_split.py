"""A dense run split by op over a real Dask LocalCluster gives the rows of one process."""

import pytest

from sparsesim import api
from sparsesim.core.errors import InputError
from sparsesim.workloads.llm_networks import llm_workload


def test_split_over_two_workers_equals_one_process():
    workload = llm_workload("llama_tiny", batch=2, prompt_len=16, gen_len=5)
    sets = {"system.chips": 2, "system.tensor_parallel": 2, "system.interconnect.link_bandwidth_bytes_per_s": 5e10,
            "chip.cores": 2}
    one = api.simulate(workload, accel="edge32", sets=sets)
    split = api.simulate(workload, accel="edge32", sets=sets, workers=2)
    assert split.rows == one.rows
    assert split.total == one.total


def test_a_sparse_replay_is_not_split():
    with pytest.raises(InputError) as err:
        api.simulate(api.gemm(64, 64, 64), accel="edge32", sparsity=["nm:2:4"], workers=2)
    assert "workers" in str(err.value) and "one process" in str(err.value)


SPARSE = ["act_policy:topk:0.25", "zero_skip:input:skipping"]  # both op-local


def test_which_features_carry_state_from_op_to_op():
    from sparsesim.sparsity import cli_sparsity, parse_features

    local = {f.kind: f.op_local() for f in parse_features(cli_sparsity(SPARSE + ["nm:2:4", "delta:0.05"]))}
    assert local == {"act_policy": True, "zero_skip": True, "nm": False, "delta": False}
    (gated,) = parse_features([{"kind": "act_policy", "site": "swiglu_gate", "method": "threshold",
                                "threshold": 0.1}])
    assert not gated.op_local()


GATED = {"kind": "act_policy", "site": "swiglu_gate", "method": "threshold", "threshold": 0.1}


def test_state_is_kept_per_layer_by_delta_and_the_gated_mlp_and_per_run_by_nm():
    from sparsesim.sparsity import parse_features
    from sparsesim.sparsity.base import state_groups

    workload = llm_workload("llama_tiny", batch=1, prompt_len=8, gen_len=3, act_sparsity=0.5)
    names = [op.name for op in workload.ops]
    (delta,) = parse_features([{"kind": "delta", "threshold": 0.05}])
    groups = state_groups(workload, [delta])
    assert sorted(i for g in groups for i in g) == list(range(len(names)))
    assert all(len({names[i] for i in g}) == 1 for g in groups)  # one layer each ...
    assert len(groups) == len(set(names))  # ... and each layer once
    (gated,) = parse_features([GATED])
    blocks = [g for g in state_groups(workload, [gated]) if len(g) > 1]
    assert blocks and all({names[i].rsplit(".", 1)[1] for i in g} == {"gate_proj", "up_proj", "down_proj"}
                          for g in blocks)
    (nm,) = parse_features([{"kind": "nm", "n": 2, "m": 4}])
    assert state_groups(workload, [nm]) == [list(range(len(names)))]
    # features together: the union of their ties (a block's ops and each op's layer)
    both = [set(g) for g in state_groups(workload, [delta, gated])]
    for tie in groups + blocks:
        assert sum(set(tie) <= g for g in both) == 1
    assert len(both) < len(groups)  # the blocks join the layers of gate, up and down


def test_some_ops_of_a_replay_are_their_rows_in_the_whole_replay():
    from sparsesim.hardware.energy import config_energy_table
    from sparsesim.simulation.replay import Replay
    from sparsesim.sparsity import parse_features

    workload = llm_workload("llama_tiny", batch=2, prompt_len=8, gen_len=3, act_sparsity=0.5)
    cfg = api.accel_config("edge32", sparsity=SPARSE)
    features, table = parse_features(cfg.sparsity), config_energy_table(cfg)
    whole = Replay(workload, cfg, "best", features, table).rows()
    keep = list(range(1, len(workload.ops), 3))  # every third op
    some = Replay(workload, cfg, "best", features, table).rows(keep)
    from sparsesim.simulation.engine import op_phases

    starts, n = [], 0
    for i in range(len(workload.ops)):
        starts.append(n)
        n += len(op_phases(workload, i))
    expected = [whole[starts[i] + k] for i in keep for k in range(len(op_phases(workload, i)))]
    assert some == expected and len(some) >= 8
    nm = api.accel_config("edge32", sparsity=["nm:2:4"])
    with pytest.raises(ValueError, match="must hold every op that shares run state"):
        Replay(workload, nm, "best", parse_features(nm.sparsity), table).rows(keep)
    # delta: whole layers (all their time steps) replay as in the whole run; part of one is refused
    from sparsesim.sparsity.base import state_groups

    dcfg = api.accel_config("edge32", sparsity=["delta:0.05"])
    dfeatures = parse_features(dcfg.sparsity)
    whole = Replay(workload, dcfg, "best", dfeatures, table).rows()
    groups = [g for g in state_groups(workload, dfeatures) if len(g) > 1]
    keep = sorted(groups[0] + groups[-1])
    some = Replay(workload, dcfg, "best", dfeatures, table).rows(keep)
    assert some == [whole[starts[i] + k] for i in keep for k in range(len(op_phases(workload, i)))]
    assert any(r["delta_fired_fraction"] < 1 for r in some)  # a later step sent only what changed
    with pytest.raises(ValueError, match="must hold every op that shares run state"):
        Replay(workload, dcfg, "best", dfeatures, table).rows(keep[1:])


def test_an_op_local_replay_split_over_two_workers_equals_one_process():
    workload = llm_workload("llama_tiny", batch=2, prompt_len=16, gen_len=4, act_sparsity=0.5)
    one = api.simulate(workload, accel="edge32", sparsity=SPARSE)
    split = api.simulate(workload, accel="edge32", sparsity=SPARSE, workers=2)
    assert any(r["weight_bytes_skipped"] > 0 for r in one.rows)  # the replay did skip
    assert split.rows == one.rows
    assert split.total == one.total


def test_a_replay_with_state_names_the_feature_that_keeps_it_in_one_process():
    workload = llm_workload("llama_tiny", batch=1, prompt_len=8, gen_len=2)
    with pytest.raises(InputError) as err:
        api.simulate(workload, accel="edge32", sparsity=["zero_skip:input:skipping", "nm:2:4"], workers=2)
    assert str(err.value).startswith("workers: a sparse replay with nm runs in one process")


def test_a_replay_of_one_layer_with_per_layer_state_says_there_is_nothing_to_split():
    with pytest.raises(InputError) as err:
        api.simulate(api.gemm(64, 64, 64), accel="edge32", sparsity=["delta:0.05"], workers=2)
    assert str(err.value) == ("workers: delta keeps its run state per layer, and every op of gemm shares "
                              "one: nothing to split over the cluster")


@pytest.mark.parametrize("sparsity", [["delta:0.05"], [GATED]], ids=["delta", "gated_mlp"])
def test_a_replay_with_per_layer_state_split_over_two_workers_equals_one_process(sparsity):
    workload = llm_workload("llama_tiny", batch=2, prompt_len=16, gen_len=4, act_sparsity=0.5)
    one = api.simulate(workload, accel="edge32", sparsity=sparsity)
    split = api.simulate(workload, accel="edge32", sparsity=sparsity, workers=2)
    assert split.rows == one.rows
    assert split.total == one.total


def test_a_run_warning_is_given_once_in_the_users_process_when_the_replay_is_split(caplog):
    workload = llm_workload("llama_tiny", batch=1, prompt_len=8, gen_len=2, act_sparsity=0.5)
    with caplog.at_level("WARNING"):
        api.simulate(workload, accel="edge32", sparsity=["act_policy:topk:0.25"], workers=2)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "no switched-on feature acts on those zeros" in warnings[0]
