"""LLM inference capture: the Llama-style zoo decoders, Hugging Face models, prefill/decode traces."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import sparsesim  # noqa: E402
from sparsesim.cli.main import main  # noqa: E402
from sparsesim.workloads.capture.llama import build  # noqa: E402
from sparsesim.workloads.capture.llm import InferenceCapture, capture_llm, estimate_bytes  # noqa: E402
from sparsesim.core.errors import InputError  # noqa: E402
from sparsesim.workloads.gemm import Phase  # noqa: E402
from sparsesim.workloads.llm_networks import DECODERS, inference_ops  # noqa: E402
from sparsesim.workloads.trace import load_trace  # noqa: E402

TINY_CONFIG = {"model_type": "llama", "vocab_size": 96, "hidden_size": 32, "intermediate_size": 48,
               "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
               "max_position_embeddings": 64, "hidden_act": "silu"}


@pytest.fixture(scope="module")
def tiny_decode(tmp_path_factory):
    spec = InferenceCapture(mode="decode", prompt_len=6, gen_len=3, batch=2)
    out = tmp_path_factory.mktemp("llm") / "tiny"
    return capture_llm(out=out, spec=spec, model="llama_tiny", progress=False), spec


def test_llama_family_shapes():
    tiny = build(DECODERS.get("llama_tiny"), torch.Generator().manual_seed(0))
    attn = tiny.model.layers[0].self_attn
    assert attn.q_proj.weight.shape == (4 * 16, 64)  # 4 query heads of 16
    assert attn.k_proj.weight.shape == attn.v_proj.weight.shape == (2 * 16, 64)  # 2 KV heads (GQA)
    assert sum(p.numel() for p in tiny.parameters()) == DECODERS.get("llama_tiny").params
    relu = build(DECODERS.get("llama_tiny_relu"), torch.Generator().manual_seed(0))
    x = torch.randn(5, 64)
    for model, zeros in ((tiny, False), (relu, True)):
        mlp = model.model.layers[0].mlp
        hidden = mlp.act(mlp.gate_proj(x)) * mlp.up_proj(x)
        assert bool((hidden == 0).any()) is zeros  # relu(gate) * up is exactly sparse, silu is not
        assert torch.allclose(mlp(x), mlp.down_proj(hidden))


def test_kv_cache_decode_equals_recomputing_the_whole_sequence():
    model = build(DECODERS.get("llama_tiny"), torch.Generator().manual_seed(1))
    tokens = torch.randint(256, (2, 9), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        cache = model.new_cache()
        model(tokens[:, :6], cache)
        for t in range(6, 9):
            incremental = model(tokens[:, t:t + 1], cache)
        full = model(tokens, model.new_cache())
    assert cache.length == 9
    assert torch.allclose(incremental, full, atol=1e-5)


def test_decode_trace_phases_steps_and_cache_lengths(tiny_decode):
    path, spec = tiny_decode
    trace = load_trace(path)
    shape = DECODERS.get("llama_tiny")
    expected = list(inference_ops(shape, batch=2, prompt_len=6, gen_len=3, attention="grouped"))
    got = [(r.op, r.phases, r.time_step, r.step) for r in trace.ops]
    assert got == [(x.op, (x.phase,), x.time_step, 0) for x in expected]
    for r in trace.ops:
        if r.phases == (Phase.DECODE,) and r.op.kind == "linear":
            assert r.op.tokens == 2  # one row per sequence
        if r.name.endswith("matmul0") and r.time_step is not None:
            # (batch * kv_heads) GEMMs, 2 query heads per group as rows, cache at prompt + t + 1
            assert (r.op.batch, r.op.m, r.op.k, r.op.n) == (2 * 2, 2, 16, 6 + r.time_step + 1)
            assert trace.operand(r, "weight").shape == (4, 16, 6 + r.time_step + 1)


def test_zoo_capture_records_the_mlp_activation(tiny_decode):
    assert load_trace(tiny_decode[0]).capture["mlp_act"] == "silu"


def test_weights_are_stored_once(tiny_decode):
    path, spec = tiny_decode
    trace = load_trace(path)
    linears = [r for r in trace.ops if r.op.kind == "linear"]
    by_name: dict[str, set[str]] = {}
    for r in linears:
        by_name.setdefault(r.name, set()).add(r.tensors["weight"])
    assert all(len(names) == 1 for names in by_name.values())  # prefill and every step share one tensor
    weight_tensors = {n for names in by_name.values() for n in names}
    shape = DECODERS.get("llama_tiny")
    stored = sum(trace.entries[n].nbytes for n in weight_tensors)
    assert stored == 4 * (shape.params - shape.vocab * shape.dim - (2 * shape.layers + 1) * shape.dim)
    # the estimate checked by --max-bytes is exact for these tensors
    assert sum(e.nbytes for e in trace.entries.values()) == estimate_bytes(shape, spec, "grouped")


def test_replay_of_a_decode_trace_has_prefill_and_decode_rows(tiny_decode, capsys):
    path, _ = tiny_decode
    assert main(["run", "--trace", str(path), "--accel", "edge32", "--sparsity", "zero_skip:input:skipping",
                 "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["layers"]
    assert {r["phase"] for r in rows} == {"prefill", "decode"}
    assert len(rows) == len(load_trace(path).ops)
    # every row says its decode step, sparse or dense, as the trace recorded it
    steps = [r.time_step for r in load_trace(path).ops]
    assert [r["time_step"] for r in rows] == steps and set(steps) - {None} == {0, 1, 2}
    assert main(["run", "--trace", str(path), "--accel", "edge32", "--json"]) == 0
    assert [r["time_step"] for r in json.loads(capsys.readouterr().out)["layers"]] == steps


def test_relu_decoder_down_proj_inputs_are_sparse(tmp_path):
    spec = InferenceCapture(mode="prefill", prompt_len=8, gen_len=0, layers=r"down_proj")
    path = capture_llm(out=tmp_path / "relu", spec=spec, model="llama_tiny_relu", progress=False)
    trace = load_trace(path)
    assert [r.name for r in trace.ops] == ["model.layers.0.mlp.down_proj", "model.layers.1.mlp.down_proj"]
    assert all(r.phases == (Phase.PREFILL,) for r in trace.ops)
    zeros = [float((trace.operand(r, "input") == 0).mean()) for r in trace.ops]
    assert all(0.3 < z < 0.7 for z in zeros)


def test_layers_and_sample_steps_capture_a_subset(tmp_path):
    spec = InferenceCapture(mode="decode", prompt_len=4, gen_len=5, layers=r"layers\.1\.self_attn\.q_proj",
                            sample_steps=2, dtype="fp16")
    trace = load_trace(capture_llm(out=tmp_path / "sub", spec=spec, model="llama_tiny", progress=False))
    assert {r.name for r in trace.ops} == {"model.layers.1.self_attn.q_proj"}
    assert [r.time_step for r in trace.ops] == [None, 0, 2, 4]
    assert trace.storage.name == "fp16"


def test_max_bytes_refuses_before_capturing(tmp_path, capsys):
    out = tmp_path / "big"
    code = main(["trace", "capture", "--model", "llama_tiny", "--mode", "decode", "--prompt-len", "8", "--gen-len",
                 "4", "--max-bytes", "100K", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: --max-bytes:")
    estimate = estimate_bytes(DECODERS.get("llama_tiny"), InferenceCapture(prompt_len=8, gen_len=4), "grouped")
    assert f"{estimate:,} bytes" in err[0]
    assert not out.exists()


def test_mode_checks():
    with pytest.raises(InputError, match="^gen_len: "):
        InferenceCapture(mode="prefill", gen_len=3)
    with pytest.raises(InputError, match="^layers: "):
        InferenceCapture(layers="(")


def _tiny_hf(tmp_path):
    config = tmp_path / "tiny_llama.json"
    config.write_text(json.dumps(TINY_CONFIG))
    return config


def test_hf_config_capture_names_ops_by_module(tmp_path):
    transformers = pytest.importorskip("transformers")
    out = tmp_path / "hf"
    assert main(["trace", "capture", "--hf-config", str(_tiny_hf(tmp_path)), "--mode", "decode", "--prompt-len", "5",
                 "--gen-len", "2", "--out", str(out), "--no-progress"]) == 0
    trace = load_trace(out)
    names = [r.name for r in trace.ops]
    assert "model.layers.0.mlp.down_proj" in names and "model.layers.1.self_attn.matmul1" in names
    assert "lm_head" in names
    from sparsesim.workloads.capture.hf import decoder_shape

    shape = decoder_shape(transformers.AutoConfig.for_model(**TINY_CONFIG), "tiny")
    expected = list(inference_ops(shape, batch=1, prompt_len=5, gen_len=2, attention="repeated"))
    assert [(r.op, r.phases, r.time_step) for r in trace.ops] == [(x.op, (x.phase,), x.time_step) for x in expected]
    # the MLP activation is recorded, so swiglu_gate coupling finds the blocks by module name and knows it is SiLU
    assert trace.capture["mlp_act"] == "silu"
    rows = sparsesim.simulate(sparsesim.trace(out), accel="edge32", dataflow="os",
                              sparsity=["act_policy:topk:0.25:site=swiglu_gate"]).to_pandas()
    ups = rows[rows["mlp_role"] == "up"]
    assert len(ups) == 2 * 3 and (ups["gate_act"] == "silu").all()
    assert (ups[ups["phase"] == "decode"]["gate_live_columns"] == 12).all()  # top 25% of 48 neurons, one token


def test_hf_directory_capture_is_offline(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(**{k: v for k, v in TINY_CONFIG.items() if k != "model_type"})
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config)
    model.save_pretrained(tmp_path / "model")
    out = tmp_path / "trace"
    assert main(["trace", "capture", "--hf", str(tmp_path / "model"), "--mode", "prefill", "--prompt-len", "4",
                 "--out", str(out), "--no-progress"]) == 0
    trace = load_trace(out)
    q = next(r for r in trace.ops if r.name == "model.layers.0.self_attn.q_proj")
    w = trace.operand(q, "weight")
    assert np.allclose(w, model.model.layers[0].self_attn.q_proj.weight.detach().numpy())
    assert {r.phases for r in trace.ops} == {(Phase.PREFILL,)}


def test_list_shows_llm_names(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("llama_tiny", "llama_tiny_relu", "llama_1b", "llama_1b_relu", "llama2_7b", "llama3_8b",
                 "mixtral_8x7b"):
        assert name in out
    assert "6.74B params" in out


def test_delta_replay_over_decode_steps(tiny_decode, capsys):
    path, _ = tiny_decode
    assert main(["run", "--trace", str(path), "--accel", "edge32", "--sparsity", "delta:0", "--phases", "decode",
                 "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["layers"]
    assert {r["phase"] for r in rows} == {"decode"} and {r["time_step"] for r in rows} == {0, 1, 2}
    assert all(r["delta_err_max"] == 0.0 for r in rows)  # theta = 0 reproduces the dense outputs
    # the first decode step starts from a zero reference: every nonzero input fires
    first = [r for r in rows if r["time_step"] == 0 and r["kind"] == "linear"]
    assert all(r["delta_fired_fraction"] == pytest.approx(1 - r["act_zero_fraction"]) for r in first)
