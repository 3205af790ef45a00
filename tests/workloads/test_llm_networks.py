"""Shape-only LLM networks: parameter counts, prefill/decode GEMMs, MoE routing, repeat rows."""

from __future__ import annotations

import json

import pytest

from sparsesim.hardware.presets import load_accel
from sparsesim.cli.main import main
from sparsesim.simulation.run import simulate_rows
from sparsesim.workloads.gemm import Phase
from sparsesim.workloads.llm_networks import DECODERS, inference_ops, llm_workload
from sparsesim.workloads.ops import Linear, Matmul


@pytest.mark.parametrize("name, published", [
    ("llama2_7b", 6_738_415_616),  # Llama 2 paper / model card
    ("llama3_8b", 8_030_261_248),  # Meta-Llama-3-8B model card
    ("mixtral_8x7b", 46_702_792_704),  # Mixtral-8x7B safetensors index total
    ("llama_1b", 1_100_048_384),  # TinyLlama-1.1B
])
def test_parameter_counts_match_the_published_models(name, published):
    assert DECODERS.get(name).params == published


def _macs(items, phase, kind=None, step=None):
    return sum(x.op.gemm(x.phase).macs for x in items
               if x.phase is phase and (kind is None or isinstance(x.op, kind)) and (step is None or x.time_step == step))


@pytest.mark.parametrize("name", ["llama2_7b", "llama3_8b"])
def test_projection_macs_are_the_weights_per_token(name):
    s = DECODERS.get(name)
    batch, prompt, gen = 2, 5, 3
    items = list(inference_ops(s, batch=batch, prompt_len=prompt, gen_len=gen))
    norms = (2 * s.layers + 1) * s.dim
    matrices = s.params - s.vocab * s.dim - norms  # every GEMM weight (LM head included, embedding lookup not)
    # a decode token multiplies every weight once: 2 * params FLOPs, i.e. params MACs, per token
    assert _macs(items, Phase.DECODE, Linear, step=1) == batch * matrices
    # prefill: every token through every layer, the LM head for the last token only
    head = s.vocab * s.dim
    assert _macs(items, Phase.PREFILL, Linear) == batch * prompt * (matrices - head) + batch * head
    # attention: Q.K^T and P.V over the cache, heads x head_dim x length each
    for t in range(gen):
        assert _macs(items, Phase.DECODE, Matmul, step=t) == s.layers * batch * 2 * s.dim * (prompt + t + 1)
    assert _macs(items, Phase.PREFILL, Matmul) == s.layers * batch * 2 * s.dim * prompt * prompt


def test_grouped_and_repeated_attention_differ_in_shape_not_in_macs():
    s = DECODERS.get("llama3_8b")  # 32 query heads share 8 KV heads
    grouped = [x.op for x in inference_ops(s, batch=3, prompt_len=4, gen_len=1) if x.time_step == 0]
    repeated = [x.op for x in inference_ops(s, batch=3, prompt_len=4, gen_len=1, attention="repeated")
                if x.time_step == 0]
    g = next(op for op in grouped if op.name == "model.layers.0.self_attn.matmul0")
    r = next(op for op in repeated if op.name == "model.layers.0.self_attn.matmul0")
    assert (g.batch, g.m, g.k, g.n) == (3 * 8, 4, 128, 5)  # 4 query heads per group as rows, cache of 5
    assert (r.batch, r.m, r.k, r.n) == (3 * 32, 1, 128, 5)
    assert sum(o.gemm(Phase.DECODE).macs for o in grouped) == sum(o.gemm(Phase.DECODE).macs for o in repeated)


def test_mixtral_routes_each_token_to_two_experts_balanced():
    s = DECODERS.get("mixtral_8x7b")
    items = list(inference_ops(s, batch=1, prompt_len=8, gen_len=4))
    layer0 = [x for x in items if x.op.name.startswith("model.layers.0.block_sparse_moe.experts.")]
    prefill = [x.op for x in layer0 if x.phase is Phase.PREFILL and x.op.name.endswith(".w1")]
    assert len(prefill) == 8 and all(op.tokens == 2 for op in prefill)  # 8 tokens x 2 / 8 experts
    used = []
    for t in range(4):
        w1 = [x.op for x in layer0 if x.time_step == t and x.op.name.endswith(".w1")]
        assert len(w1) == 2 and all(op.tokens == 1 for op in w1)  # one token, top-2
        used += [op.name for op in w1]
    assert len(set(used)) == 8  # four steps of top-2 touch every expert once
    # per decode token: attention projections, router, 2 of 8 experts, LM head
    expected = s.layers * (s.attention_params + s.dim * 8 + 2 * 3 * s.dim * s.ffn_hidden) + s.vocab * s.dim
    assert _macs(items, Phase.DECODE, Linear, step=2) == expected == s.active_params_per_token


def test_aggregated_rows_add_up_to_the_unaggregated_run():
    cfg = load_accel("edge32")
    kw = dict(batch=2, prompt_len=6, gen_len=3)
    full = simulate_rows(llm_workload("llama_tiny", aggregate=False, **kw), cfg, "best")
    agg = simulate_rows(llm_workload("llama_tiny", **kw), cfg, "best")
    assert len(agg) < len(full)
    for key in ("cycles", "macs_dense", "dram_bytes", "stall_cycles"):
        assert sum(r[key] for r in agg) == sum(r[key] for r in full), key
    assert pytest.approx(sum(r["energy_pj"] for r in agg)) == sum(r["energy_pj"] for r in full)
    down = [r for r in agg if r["name"] == "model.layers.*.mlp.down_proj" and r["phase"] == "decode"]
    assert len(down) == 1 and down[0]["repeat"] == 2 * 3  # layers x decode steps


def test_run_network_cli_gives_prefill_and_decode_rows(capsys):
    assert main(["run", "--network", "llama_tiny", "--prompt-len", "8", "--gen-len", "2", "--batch", "2",
                 "--accel", "edge32", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {r["phase"] for r in out["layers"]} == {"prefill", "decode"}
    s = DECODERS.get("llama_tiny")
    hand = sum(x.op.gemm(x.phase).macs for x in inference_ops(s, batch=2, prompt_len=8, gen_len=2))
    assert out["total"]["macs_dense"] == hand


def test_act_sparsity_reaches_the_synthetic_operands(capsys):
    assert main(["run", "--network", "llama_tiny", "--prompt-len", "4", "--gen-len", "1", "--phases", "decode",
                 "--act-sparsity", "0.75", "--accel", "edge32", "--sparsity", "zero_skip:input:skipping",
                 "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["layers"]
    linear = [r for r in rows if r["kind"] == "linear"]
    assert {r["phase"] for r in rows} == {"decode"}
    zero = sum(r["act_zero_fraction"] * r["M"] * r["K"] for r in linear) / sum(r["M"] * r["K"] for r in linear)
    assert 0.65 < zero < 0.85


def test_llm_flags_refused_for_other_networks(capsys):
    assert main(["run", "--network", "resnet18", "--gen-len", "4", "--accel", "edge32"]) == 2
    assert "--gen-len" in capsys.readouterr().err
