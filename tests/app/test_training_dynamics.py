"""The training-dynamics study: checkpoint schedule, activation-ratio rules, determinism, cache, errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from sparsesim.cli.main import main
from sparsesim.core.errors import InputError
from sparsesim.studies import training_dynamics as td

# a model small enough to train in well under a second
TINY = td.Settings(steps=6, dim=16, layers=1, heads=2, kv_heads=1, ffn_hidden=32, seq_len=16, batch=2, warmup_steps=2,
                   checkpoints=3, eval_tokens=64)


@pytest.fixture(scope="module")
def tiny_data():
    torch.set_num_threads(1)
    return td.compute(TINY, save=False)


def test_checkpoints_log_spaced():
    # 100 ** (k / 2) for k = 0, 1, 2 is 1, 10, 100
    assert td.checkpoint_steps(100, 3) == [1, 10, 100]
    steps = td.checkpoint_steps(400, 8)
    assert steps[0] == 1 and steps[-1] == 400 and steps == sorted(set(steps)) and len(steps) == 8
    assert td.checkpoint_steps(5, 1) == [5]


def test_relu_ratio_is_fraction_of_positive_gate_outputs():
    gate = torch.tensor([[-1.0, 0.0, 2.0], [3.0, -0.5, 0.1]])
    # relu keeps 2.0, 3.0 and 0.1 above zero: 3 of 6
    assert td.positive_fraction(torch.relu(gate)) == pytest.approx(0.5)


def test_cett_ratio_by_hand():
    eye2 = torch.eye(2)
    a = torch.tensor([[3.0, 4.0]])
    # output (3, 4), norm 5; dropping the smaller neuron leaves an error of norm 3: CETT 0.6, dropping both 1.0
    assert td.cett_ratio(a, eye2, 0.7) == pytest.approx(0.5)
    assert td.cett_ratio(a, eye2, 0.5) == pytest.approx(1.0)
    # zero neurons cost nothing: with outputs (0, 0, 3, 4) both zeros go at CETT 0.2, then 3 would cost 0.6
    assert td.cett_ratio(torch.tensor([[0.0, 0.0, 3.0, 4.0]]), torch.eye(4), 0.2) == pytest.approx(0.5)
    # the down weight's column norm scales a neuron's magnitude: column 0 doubled makes neuron 1 the smaller
    w = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    assert td.cett_ratio(torch.tensor([[1.0, 1.5]]), w, 0.7) == pytest.approx(0.5)  # error 1.5 / 2.5 = 0.6


def test_cett_never_keeps_more_than_the_positive_relu_outputs():
    g = torch.Generator().manual_seed(3)
    gate = torch.relu(torch.randn(64, 48, generator=g))
    a = gate * torch.randn(64, 48, generator=g)
    assert td.cett_ratio(a, torch.randn(8, 48, generator=g), 0.2) <= td.positive_fraction(gate)


def test_table_shape_and_tokens(tiny_data):
    t = tiny_data.table
    marks = td.checkpoint_steps(TINY.steps, TINY.checkpoints)
    assert len(t) == len(td.ACTIVATIONS) * len(marks)
    for act in td.ACTIVATIONS:
        rows = t[t["activation"] == act]
        assert list(rows["step"]) == marks
        assert list(rows["tokens_seen"]) == [m * TINY.batch * TINY.seq_len for m in marks]
        assert rows["tokens_seen"].is_monotonic_increasing
    assert {"layer0_ratio", "eval_perplexity", "activation_ratio"} <= set(t.columns)
    assert t[["activation_ratio", "positive_fraction", "cett_ratio"]].apply(lambda c: c.between(0, 1).all()).all()
    relu, silu = t[t["activation"] == "relu"], t[t["activation"] == "silu"]
    assert (relu["activation_ratio"] == relu["positive_fraction"]).all()
    assert (silu["activation_ratio"] == silu["cett_ratio"]).all()
    # a byte model before training predicts about uniformly: perplexity near the vocabulary, 256
    assert 100 < t["eval_perplexity"].iloc[0] < 400
    assert tiny_data.eval_tokens == (TINY.eval_tokens // TINY.seq_len) * TINY.seq_len


def test_deterministic(tiny_data):
    pd.testing.assert_frame_equal(td.compute(TINY, save=False).table, tiny_data.table)


def test_split_is_disjoint_and_never_calibration_text():
    from sparsesim.workloads.corpus import corpus_part

    train, held, sha = td.split_text()
    assert sha == corpus_part("eval").sha256
    held_paras = set(held.decode().split("\n\n"))
    assert not held_paras & set(train.decode().split("\n\n"))
    assert not held_paras & set(corpus_part("calib").text.split("\n\n"))


def test_trained_relu_decoder_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert td.cache_dir() == tmp_path / "sparsesim" / "training-dynamics"
    first = td.trained_relu_decoder(TINY)
    assert td.weights_path(TINY).exists()
    again = td.trained_relu_decoder(TINY)  # loaded, not trained
    tokens = torch.tensor([list(b"def f(x):")])
    with torch.no_grad():
        assert torch.equal(first(tokens, first.new_cache()), again(tokens, again.new_cache()))
    assert again.shape.ffn == "relu"


def _data(relu, silu) -> td.Data:
    rows = [td.Checkpoint(act, step, step * 10, r, r if act == "relu" else 0.9, r if act == "silu" else 0.1,
                          ppl, 1.0, (r,))
            for act, series in (("relu", relu), ("silu", silu)) for step, (r, ppl) in enumerate(series, 1)]
    return td.Data(table=td.to_frame(rows), settings=TINY, train_bytes=1, heldout_bytes=1, eval_tokens=1,
                   text_sha256="0" * 64, weights=None, params=1)


def test_prose_follows_the_table():
    text = td.write(_data([(0.5, 200), (0.4, 50), (0.3, 20)], [(0.2, 200), (0.3, 50), (0.35, 21)]))
    assert "activation ratio fell from 50.0% to 30.0%" in text and "rose from 20.0% to 35.0%" in text
    assert "holds at this scale over all checkpoints, and holds" in text
    text = td.write(_data([(0.5, 200), (0.6, 50), (0.7, 20)], [(0.2, 200), (0.3, 50), (0.35, 21)]))
    assert "does not hold at this scale over all checkpoints" in text


@pytest.mark.parametrize("kwargs, key", [({"steps": 0}, "steps"), ({"cett": 1.5}, "cett"), ({"heads": 3}, "heads"),
                                         ({"seed": -1}, "seed"), ({"lr": float("nan")}, "lr"),
                                         ({"eval_tokens": 4}, "eval_tokens")])
def test_bad_settings_one_line(kwargs, key):
    with pytest.raises(InputError) as err:
        td.Settings(**kwargs)
    assert str(err.value).startswith(f"{key}:") and "\n" not in str(err.value)


def test_bad_activation():
    with pytest.raises(InputError, match="^activation: unknown activation 'gelu'"):
        td.shape(TINY, "gelu")


def test_cli_refuses_options_a_study_does_not_take(tmp_path: Path, capsys):
    assert main(["study", "delta", "--out", str(tmp_path / "d"), "--steps", "3"]) == 2
    assert "--steps: study delta does not take it" in capsys.readouterr().err
    assert main(["study", "training-dynamics", "--out", str(tmp_path / "t"), "--steps", "0"]) == 2
    assert "--steps: must be a positive integer" in capsys.readouterr().err


def test_the_zoo_entry_is_the_studys_relu_model():
    from sparsesim.workloads.llm_networks import DECODERS

    zoo, trained = DECODERS.get("pydoc_relu_lm"), td.shape(td.Settings(), "relu")
    fields_of = ("vocab", "dim", "layers", "heads", "kv_heads", "ffn_hidden", "ffn", "params")
    assert [getattr(zoo, f) for f in fields_of] == [getattr(trained, f) for f in fields_of]
    assert zoo.name == trained.name


def test_trained_relu_capture_is_prompted_with_held_out_text_and_replays_its_relu_zeros(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    from sparsesim import api
    from sparsesim.workloads.capture.inference_spec import InferenceCapture
    from sparsesim.workloads.capture.llm import capture_trained_relu

    spec = InferenceCapture(mode="decode", prompt_len=12, gen_len=2)
    out = capture_trained_relu(tmp_path / "t", spec, overwrite=False, progress=False, settings=TINY)
    trace = api.load_trace(out)
    assert trace.capture["source"] == "trained" and trace.capture["mlp_act"] == "relu"
    assert trace.capture["trained"]["key"] == TINY.key()
    assert trace.capture["prompt"]["bytes"] == 12
    res = api.simulate(api.trace(out), accel="edge32",
                       sparsity=["act_policy:relu:site=swiglu_gate", "zero_skip:input:skipping"])
    downs = [r for r in res.rows if r.get("mlp_role") == "down"]
    # a trained ReLU gate: a real share of the neurons is off, neither none nor all
    assert downs and all(0 < r["gate_live_fraction"] < 1 for r in downs)
