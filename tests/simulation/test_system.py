"""Systems of several chips (sparsesim.simulation.system, sparsesim.workloads.parallel):
Megatron sharding keeps the model's work, collectives sit where they belong, and the
pipeline's latency follows its hand formula."""

import math

import pytest

from sparsesim import api
from sparsesim.core.errors import InputError
from sparsesim.hardware.interconnect import collective_cost
from sparsesim.workloads.llm_networks import DECODERS, llm_workload
from sparsesim.workloads.parallel import stage_of

LINKS = {"system.interconnect.link_bandwidth_bytes_per_s": 5e10, "system.interconnect.links": 4,
         "system.interconnect.link_latency_s": 2e-6}


def _run(name="llama_tiny", batch=2, prompt=16, gen=3, **system):
    sets = {**LINKS, **{f"system.{k}": v for k, v in system.items()}}
    sets["system.chips"] = system.get("tensor_parallel", 1) * system.get("pipeline_parallel", 1) * \
        system.get("data_parallel", 1)
    return api.simulate(llm_workload(name, batch=batch, prompt_len=prompt, gen_len=gen), accel="edge32", sets=sets)


def _gemms(res):
    return [r for r in res.rows if r["dataflow"] != "interconnect"]


def test_tensor_parallel_keeps_the_work_and_adds_two_all_reduces_per_layer():
    one = api.simulate(llm_workload("llama_tiny", batch=2, prompt_len=16, gen_len=3), accel="edge32")
    tp = _run(tensor_parallel=2)
    # every projection, attention head and vocabulary column is on exactly one chip of the two
    assert 2 * sum(r["macs_dense"] for r in _gemms(tp)) == sum(r["macs_dense"] for r in one.rows)
    q = next(r for r in tp.rows if r["name"] == "model.layers.*.self_attn.q_proj" and r["phase"] == "prefill")
    o = next(r for r in tp.rows if r["name"] == "model.layers.*.self_attn.o_proj" and r["phase"] == "prefill")
    assert (q["N"], o["K"]) == (64 // 2, 64 // 2)  # column-parallel out, row-parallel in
    shape = DECODERS.get("llama_tiny")
    reduces = [r for r in tp.rows if r["kind"] == "all_reduce"]
    # o_proj and down_proj of every layer, prefill and each decode step
    assert sum(r["repeat"] for r in reduces) == 2 * shape.layers * (1 + 3)
    pre = next(r for r in reduces if r["phase"] == "prefill" and "o_proj" in r["name"])
    cost = collective_cost("all_reduce", 2 * 16 * 64 * 1, 2, api.accel_config("edge32", sets=LINKS).system.interconnect)
    assert pre["cycles"] == shape.layers * math.ceil(cost.seconds * 5e8)
    assert pre["collective_bytes"] == shape.layers * cost.bytes_sent
    assert all(r["chips"] == "0-1" and r["stage"] == 0 for r in tp.rows)
    assert tp.total["system"]["collective_s"] > 0
    # one stage, one micro-batch: the latency is every row in turn
    assert tp.total["latency_s"] == pytest.approx(sum(r["latency_s"] for r in tp.rows))


def test_stages_are_contiguous_and_balanced():
    assert [stage_of(i, 10, 3) for i in range(10)] == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert [stage_of(i, 4, 4) for i in range(4)] == [0, 1, 2, 3]


def test_pipeline_latency_by_hand():
    """2 stages, 2 micro-batches: each phase takes sum_s T_s/2 + (2-1) max_s T_s/2, where T_s is
    stage s's busy time over the phase; the activations go to stage 1 once per pass."""
    res = _run(pipeline_parallel=2, micro_batches=2, gen=2)
    sends = [r for r in res.rows if r["kind"] == "send_recv"]
    assert {r["stage"] for r in sends} == {0}
    assert sum(r["repeat"] for r in sends) == 2 * (1 + 2)  # micro-batches x (prefill + 2 decode steps)
    want = 0.0
    for phase in ("prefill", "decode"):
        busy = [sum(r["latency_s"] for r in res.rows if r["phase"] == phase and r["stage"] == s) for s in (0, 1)]
        want += sum(busy) / 2 + max(busy) / 2
    assert res.total["latency_s"] == pytest.approx(want)
    assert res.total["system"]["bubble_s"] > 0
    lm = [r for r in res.rows if r["name"].endswith("lm_head")]
    assert lm and all(r["stage"] == 1 and r["chips"] == "1" for r in lm)


def test_data_parallel_halves_each_replica_and_doubles_throughput():
    one = _run(batch=4)
    dp = _run(batch=4, data_parallel=2)
    q1 = next(r for r in one.rows if r["name"] == "model.layers.*.self_attn.q_proj" and r["phase"] == "prefill")
    q2 = next(r for r in dp.rows if r["name"] == "model.layers.*.self_attn.q_proj" and r["phase"] == "prefill")
    assert q2["M"] * 2 == q1["M"]
    assert not [r for r in dp.rows if r["dataflow"] == "interconnect"]  # inference: no collective between replicas
    assert dp.total["system"]["prefill_tokens_per_s"] == pytest.approx(4 * 16 / dp.total["system"]["prefill_latency_s"])


def test_expert_parallel_all_to_all():
    """Mixtral on 2 replicas with expert parallel 2: each holds 4 experts, fed by the tokens of both;
    a dispatch and a combine all-to-all per layer and pass, of tokens x top_k x dim bytes."""
    res = _run("mixtral_8x7b", batch=2, prompt=4, gen=1, data_parallel=2, expert_parallel=2)
    experts = {r["name"] for r in res.rows if ".experts." in r["name"]}
    assert experts  # aggregated over experts and layers
    a2a = [r for r in res.rows if r["kind"] == "all_to_all"]
    assert {r["name"].rsplit(".", 1)[1] for r in a2a} == {"dispatch", "combine"}
    shape = DECODERS.get("mixtral_8x7b")
    pre = [r for r in a2a if r["phase"] == "prefill"]
    cost = collective_cost("all_to_all", 1 * 4 * 2 * shape.dim * 1, 2,  # 4 tokens, top-2, int8
                           api.accel_config("edge32", sets=LINKS).system.interconnect)
    assert all(r["collective_bytes"] == shape.layers * cost.bytes_sent for r in pre)
    # replica 0's experts only, fed by both replicas' tokens: in prefill the balanced routing gives
    # it half of every expert assignment
    one = api.simulate(llm_workload("mixtral_8x7b", batch=2, prompt_len=4, gen_len=1), accel="edge32")
    mine = sum(r["macs_dense"] for r in res.rows if ".experts." in r["name"] and r["phase"] == "prefill")
    every = sum(r["macs_dense"] for r in one.rows if ".experts." in r["name"] and r["phase"] == "prefill")
    assert mine * 2 == every


@pytest.mark.parametrize("sets, field", [
    ({"system.chips": 4, "system.tensor_parallel": 2}, "system.chips"),
    ({"system.chips": 2, "system.tensor_parallel": 2, "system.interconnect.link_bandwidth_bytes_per_s": 0.0},
     "system.interconnect.link_bandwidth_bytes_per_s"),
    ({"system.chips": 2, "system.data_parallel": 2, "system.expert_parallel": 4}, "system.expert_parallel"),
])
def test_bad_system_configs(sets, field):
    base = {"system.interconnect.link_bandwidth_bytes_per_s": 1e9}
    with pytest.raises(InputError) as err:
        api.accel_config("edge32", sets={**base, **sets})
    assert field in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("system, field", [
    ({"tensor_parallel": 3}, "system.tensor_parallel"),
    ({"data_parallel": 2}, "system.data_parallel"),
    ({"pipeline_parallel": 5}, "system.pipeline_parallel"),
])
def test_splits_the_model_cannot_take(system, field):
    with pytest.raises(InputError) as err:
        _run(batch=1, **system)
    assert field in str(err.value)


def test_a_gemm_is_not_split_over_chips():  # a GEMM has no batch to split or layers to shard
    with pytest.raises(InputError) as err:
        api.simulate(api.gemm(64, 64, 64), accel="edge32",
                     sets={**LINKS, "system.chips": 2, "system.tensor_parallel": 2})
    assert "system.chips" in str(err.value) and "LLM" in str(err.value)


def _train(dp, bandwidth, latency=0.0):
    sets = {"system.chips": dp, "system.data_parallel": dp,
            "system.interconnect.link_bandwidth_bytes_per_s": bandwidth, "system.interconnect.link_latency_s": latency}
    return api.simulate(api.network("resnet18", batch=4, training=True), accel="edge32", sets=sets)


def test_data_parallel_training_overlaps_gradient_all_reduces_with_the_backward_pass():
    """Each replica runs batch/dp; after each layer's bwd_weight its weight gradient is all-reduced
    (S = weights x 1 byte, int8) beside the backward work of the layers before it."""
    one = api.simulate(api.network("resnet18", batch=2, training=True), accel="edge32")
    fast = _train(2, 1e15)
    gemm = [r for r in fast.rows if r["dataflow"] != "interconnect"]
    assert [r["cycles"] for r in gemm] == [r["cycles"] for r in one.rows]  # a replica is batch 2
    grads = [r for r in fast.rows if r["name"].endswith(".grad_all_reduce")]
    conv1 = next(r for r in grads if r["name"] == "conv1.grad_all_reduce")
    assert conv1["collective_bytes"] == 64 * 3 * 7 * 7  # 2(p-1)/p S at p = 2
    # fast links: every all-reduce hides behind the backward pass but the first layer's, which
    # starts when the backward pass ends
    assert all(r["cycles"] == 0 for r in grads if r is not conv1)
    assert conv1["cycles"] == conv1["collective_cycles"]
    # slow links: busy from the last layer's gradient on, so what shows is that start plus every
    # all-reduce, less the whole backward pass
    slow = _train(2, 1e7)
    grads = [r for r in slow.rows if r["name"].endswith(".grad_all_reduce")]
    back = [r for r in slow.rows if r["phase"] != "fwd" and r["dataflow"] != "interconnect"]
    last = back[-1]["name"]
    first_ready = sum(r["cycles"] for r in back if r["name"] == last)
    exposed = first_ready + sum(r["collective_cycles"] for r in grads) - sum(r["cycles"] for r in back)
    assert sum(r["cycles"] for r in grads) == exposed > 0
    assert slow.total["system"]["samples_per_s"] == pytest.approx(4 / slow.total["latency_s"])


def test_a_network_is_split_by_data_parallelism_only():
    with pytest.raises(InputError) as err:
        api.simulate(api.network("resnet18", batch=4, training=True), accel="edge32",
                     sets={**LINKS, "system.chips": 2, "system.tensor_parallel": 2})
    assert "system.tensor_parallel" in str(err.value)


def test_the_text_output_states_the_critical_path():
    import contextlib
    import io

    from sparsesim.cli.main import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["run", "--network", "llama2_7b", "--prompt-len", "16", "--gen-len", "2", "--accel", "dc128",
                     "--set", "system.chips=2", "--set", "system.tensor_parallel=2",
                     "--set", "system.interconnect.link_bandwidth_bytes_per_s=1e10"]) == 0
    last = buf.getvalue().strip().splitlines()[-1]
    assert last.startswith("# 2 chips: latency ") and "decode" in last and "tokens/s" in last


# ---------------------------------------------------------------- what a chip holds (dram.capacity_bytes)

def _split(tp=1, pp=1, dp=1, ep=1, element_bytes=2):
    from sparsesim.workloads.parallel import Split

    return Split(tp=tp, pp=pp, dp=dp, ep=ep, micro_batches=1, element_bytes=element_bytes)


@pytest.mark.parametrize("name", ["llama2_7b", "llama2_70b", "mixtral_8x7b", "llama_tiny"])
def test_one_chip_holds_every_parameter_once(name):
    from sparsesim.workloads.parallel import chip_memory

    shape = DECODERS.get(name)
    mem = chip_memory(shape, _split(), batch=1, context=1)
    assert mem["weight_bytes_per_chip"] == 2 * shape.params


def test_shards_and_the_kv_cache_by_hand():
    from sparsesim.workloads.parallel import chip_memory

    shape = DECODERS.get("llama2_70b")  # d 8192, 80 layers, 64 heads / 8 KV heads of 128, FFN 28672
    d, hd, f, v = 8192, 128, 28672, 32000
    mem = chip_memory(shape, _split(tp=8), batch=4, context=4608)
    per_layer = 2 * d * 8 * hd + 2 * d * 1 * hd + 3 * d * (f // 8) + 2 * d  # 8 query heads, 1 KV head per chip
    assert mem["weight_bytes_per_chip"] == 2 * (80 * per_layer + 2 * (v // 8) * d + d)
    assert mem["kv_cache_bytes_per_chip"] == 2 * 80 * 2 * 1 * hd * 4608 * 4  # K and V, 4 sequences
    # 16-way: 8 KV heads cannot be split 16 ways, so each chip keeps one, replicated
    assert chip_memory(shape, _split(tp=16), batch=4, context=4608)["kv_cache_bytes_per_chip"] == \
        mem["kv_cache_bytes_per_chip"]
    # 2 pipeline stages of 40 layers, 2 replicas of the batch: the last stage holds the head
    staged = chip_memory(shape, _split(pp=2, dp=2), batch=4, context=100)
    full = 2 * d * 64 * hd + 2 * d * 8 * hd + 3 * d * f + 2 * d
    assert staged["weight_bytes_per_chip"] == 2 * (40 * full + v * d + d)
    assert staged["kv_cache_bytes_per_chip"] == 2 * 40 * 2 * 8 * hd * 100 * 2
    # expert parallel 4: each chip keeps 2 of Mixtral's 8 experts and the whole router
    mix = DECODERS.get("mixtral_8x7b")
    ep = chip_memory(mix, _split(ep=4), batch=1, context=1)["weight_bytes_per_chip"]
    one = chip_memory(mix, _split(), batch=1, context=1)["weight_bytes_per_chip"]
    assert one - ep == 2 * 32 * 6 * 3 * 4096 * 14336


def test_a_system_run_reports_its_footprint_and_warns_when_it_does_not_fit(caplog):
    wl = llm_workload("llama2_70b", batch=1, prompt_len=8, gen_len=1)
    sets = {"system.chips": 2, "system.tensor_parallel": 2}
    with caplog.at_level("WARNING"):
        res = api.simulate(wl, accel="a100", sets=sets)
    system = res.total["system"]
    assert system["dram_capacity_bytes"] == 40 * 2 ** 30 and system["fits"] is False
    assert system["memory_bytes_per_chip"] == system["weight_bytes_per_chip"] + system["kv_cache_bytes_per_chip"]
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning.startswith("llama2_70b needs 64.2 GiB per chip") and "dram.capacity_bytes (40.0 GiB)" in warning
    caplog.clear()
    with caplog.at_level("WARNING"):
        res = api.simulate(llm_workload("llama2_7b", batch=1, prompt_len=8, gen_len=1), accel="a100", sets=sets)
    assert res.total["system"]["fits"] is True and not caplog.records


def test_a_tied_head_is_on_both_end_stages_and_a_prefill_keeps_only_the_prompt():
    import dataclasses

    from sparsesim.simulation.system import chip_footprint
    from sparsesim.workloads.parallel import chip_memory

    tied = dataclasses.replace(DECODERS.get("llama2_7b"), tie_embeddings=True)
    d, v = tied.dim, tied.vocab
    one = chip_memory(tied, _split(), batch=1, context=1)["weight_bytes_per_chip"]
    assert one == 2 * tied.params  # one stage: the tied matrix once
    two = chip_memory(tied, _split(pp=2), batch=1, context=1)["weight_bytes_per_chip"]
    per_layer = (tied.params - v * d - d) // tied.layers
    assert two == 2 * (16 * per_layer + d + v * d)  # the last stage runs the head: it holds the matrix too
    cfg = api.accel_config("a100", sets={"system.chips": 2, "system.tensor_parallel": 2})
    llm = {"decoder": "llama2_7b", "batch": 8, "prompt_len": 128, "gen_len": 4096}
    kv = {decodes: chip_footprint(cfg, llm, decodes)["kv_cache_bytes_per_chip"] for decodes in (False, True)}
    assert kv[False] * (128 + 4096) == kv[True] * 128  # a prefill-only run holds the prompt's cache alone


def test_an_impossible_split_is_refused_before_any_footprint_warning(caplog):
    wl = llm_workload("llama2_70b", batch=1, prompt_len=8, gen_len=1)
    with caplog.at_level("WARNING"), pytest.raises(InputError, match="system.tensor_parallel"):
        api.simulate(wl, accel="a100", sets={"system.chips": 3, "system.tensor_parallel": 3})
    assert not caplog.records
