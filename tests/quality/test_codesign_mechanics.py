"""Co-design on a tiny model: the forward-pass transformation, the metrics by hand, the mask check."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs torch (pip install 'sparsesim[capture]')")

from sparsesim.core.errors import InputError  # noqa: E402
from sparsesim.quality import Setting, codesign  # noqa: E402
from sparsesim.quality.metrics import evaluate, token_ids, windows  # noqa: E402
from sparsesim.quality.pipeline import mask_check  # noqa: E402
from sparsesim.quality.transform import ForwardTransform, MaskLog, calibrate  # noqa: E402
from sparsesim.workloads.corpus import corpus_part  # noqa: E402

CATS = "act_policy:threshold:0:site=swiglu_gate:calibrate=prefill:sparsity=0.5"


def test_windows_and_perplexity_by_hand(tiny_llama):
    _, model, tokenizer = tiny_llama
    ids = token_ids(tokenizer, corpus_part("eval").text)[:21]
    parts = windows(ids, 8)
    # 21 tokens in windows of 8: 8 + 8 + 5 tokens, predicting 7 + 7 + 4 next tokens
    assert [w.shape[1] for w in parts] == [8, 8, 5]
    ev = evaluate(model, parts)
    assert ev.predictions == 18
    with torch.no_grad():
        losses = [float(model(input_ids=w, labels=w).loss) for w in parts]
    assert ev.perplexity == pytest.approx(math.exp((7 * losses[0] + 7 * losses[1] + 4 * losses[2]) / 18), rel=1e-12)
    one = evaluate(model, [ids.unsqueeze(0)])  # one window: exactly transformers' exp(loss)
    with torch.no_grad():
        assert one.perplexity == pytest.approx(math.exp(float(model(ids.unsqueeze(0), labels=ids.unsqueeze(0)).loss)),
                                               rel=1e-12)
    assert ev.agreement(ev) == 1.0
    assert [w.shape[1] for w in windows(ids[:17], 8)] == [8, 8]  # a 1-token tail predicts nothing: dropped
    with pytest.raises(InputError, match="context: must be an integer >= 2"):
        windows(ids, 1)


def test_calibrated_thresholds_zero_the_asked_fraction_of_the_calibration_text(tiny_llama):
    _, model, tokenizer = tiny_llama
    calib = windows(token_ids(tokenizer, corpus_part("calib").text), 64, 256)
    policy = Setting.parse(CATS).policy
    thresholds = calibrate(model, policy, calib)
    assert set(thresholds) == {"model.layers.0.mlp", "model.layers.1.mlp"}
    log = MaskLog()
    with ForwardTransform(model, Setting.parse(CATS).features, thresholds, log=log), torch.no_grad():
        for w in calib:
            model(input_ids=w)
    # |h| > t with t the k-th smallest magnitude, k = floor(0.5 n): exactly half of layer 0 live on
    # that text (n = 256 tokens x 48 neurons, ties aside). Layer 1 was calibrated on the dense
    # model's activations, and now sees those of a sparsified layer 0: about half.
    live = {name: np.average(f, weights=[w.shape[1] for w in calib]) for name, f in log.gate_live.items()}
    assert live["model.layers.0.mlp"] == pytest.approx(0.5, abs=1 / (256 * 48))
    assert live["model.layers.1.mlp"] == pytest.approx(0.5, abs=0.05)


def test_nm_transform_prunes_every_linear_2_of_4_and_restores_the_model(tiny_llama):
    _, model, _ = tiny_llama
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    head = model.lm_head.weight
    with ForwardTransform(model, Setting.parse("nm:2:4").features):
        for name, m in model.named_modules():
            if isinstance(m, torch.nn.Linear):
                groups = (m.weight != 0).reshape(m.weight.shape[0], -1, 4).sum(-1)
                assert int(groups.max()) <= 2, name
        assert model.lm_head.weight is not model.model.embed_tokens.weight  # the head is untied...
        assert torch.equal(model.model.embed_tokens.weight, before["model.embed_tokens.weight"])  # ...the lookup dense
    assert model.lm_head.weight is head
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]), n


def test_codesign_replays_the_masks_the_quality_run_made(tiny_llama, tmp_path):
    folder, _, _ = tiny_llama
    topk = "act_policy:topk:0.5:ops=down_proj+zero_skip:input:skipping"
    doc = codesign(None, hf_dir=folder, settings=[CATS, "nm:2:4", topk],
                   accels=["edge32"], mode="decode", prompt_len=12, gen_len=2, context=64, eval_tokens=256,
                   calib_tokens=256, work_dir=tmp_path / "traces", keep_traces=True)
    rows = doc["settings"]
    assert [r["sparsity"] for r in rows] == ["dense", CATS, "nm:2:4",
                                             "act_policy:topk:0.5:ops=down_proj+zero_skip:input:skipping"]
    dense = rows[0]
    assert dense["speedup"] == 1.0 and dense["energy_saved"] == 0.0
    assert dense["quality"]["value"] == dense["quality"]["dense"]
    for r in rows[1:]:
        # every Linear call of the prefill and both decode steps compared: 2 layers x 7 + lm_head, 3 passes
        assert r["mask_check"] == {"ops_compared": 3 * (2 * 7 + 1), "max_abs_diff": 0.0}
        assert r["quality"]["dense"] == dense["quality"]["value"]
        assert r["quality"]["value"] != dense["quality"]["value"]
        assert r["quality"]["tokens"] == 256 and r["quality"]["predictions"] == 252  # 4 windows of 64
        assert 0 < r["act_zero_fraction"] < 1
    nm = rows[2]
    # 2:4 halves every Linear's K (the attention matmuls keep theirs): fewer cycles, half the MACs or fewer
    assert nm["speedup"] > 1.0
    assert nm["total"]["macs_effectual"] < dense["total"]["macs_effectual"]
    # the trace carries the thresholds fixed on the calibration text, under the policy's label
    manifest = json.loads((tmp_path / "traces" / "setting1" / "manifest.json").read_text())
    recorded = manifest["capture"]["gate_thresholds"]
    assert list(recorded) == [Setting.parse(CATS).policy.label()]
    assert set(recorded[Setting.parse(CATS).policy.label()]) == {"model.layers.0.mlp", "model.layers.1.mlp"}
    assert manifest["capture"]["gate_calibration"]["name"] == "pydoc:calib"


def test_mask_check_fails_when_the_two_paths_diverge():
    log = MaskLog()
    log.zero_fractions["a"].extend([0.25, 0.5])
    rows = [{"kind": "linear", "name": "a", "act_zero_fraction": 0.25},
            {"kind": "linear", "name": "a", "act_zero_fraction": 0.5}]
    assert mask_check(log, rows) == {"ops_compared": 2, "max_abs_diff": 0.0}
    with pytest.raises(InputError, match="mask check failed: a's input zero fraction differs by 0.0001"):
        mask_check(log, [rows[0], {**rows[1], "act_zero_fraction": 0.5001}])
    with pytest.raises(InputError, match="a ran 2 times in the forward pass but has 1 replay rows"):
        mask_check(log, rows[:1])


@pytest.mark.parametrize("setting, message", [
    ("act_policy:topk:0.5", "needs ops=REGEX"),
    ("act_policy:threshold:0.1:site=swiglu_gate:predictor=lowrank", "recalls perfectly by definition"),
    ("act_policy:threshold:0.1:site=swiglu_gate:predictor=trained", "predictor=trained needs calibrate=prefill"),
    ("delta:0.1", "delta encoding is the sequence model's"),
    ("nm:2:4:mode=declared", "nm mode must be prune"),
])
def test_settings_the_forward_cannot_mirror_are_refused_before_any_model_work(setting, message, tmp_path):
    with pytest.raises(InputError, match=message):
        codesign(None, hf_dir=tmp_path / "not-there", settings=[setting], accels=["edge32"])


def test_codesign_takes_the_users_own_model_file(tiny_llama, tmp_path):
    folder, _, _ = tiny_llama
    source = tmp_path / "mine.py"
    source.write_text(f"""
import transformers
def make():
    folder = {str(folder)!r}
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager")
    return {{"model": model, "tokenizer": transformers.AutoTokenizer.from_pretrained(folder)}}
def bare():
    return transformers.AutoModelForCausalLM.from_pretrained({str(folder)!r})
""")
    common = dict(settings=[CATS], accels=["edge32"], mode="prefill", prompt_len=12, context=64, eval_tokens=128,
                  calib_tokens=128)
    mine = codesign(f"{source}:make", **common)
    theirs = codesign(None, hf_dir=folder, **common)
    assert mine["model"]["source"] == "user" and mine["model"]["model"] == f"{source}:make"
    # the same weights and tokenizer through either door: the same numbers
    for a, b in zip(mine["settings"], theirs["settings"]):
        assert a["quality"]["value"] == b["quality"]["value"] and a["total"]["cycles"] == b["total"]["cycles"]
    with pytest.raises(InputError, match="return a dict with 'model' and 'tokenizer'"):
        codesign(f"{source}:bare", **common)
    with pytest.raises(InputError, match="has no 'nope'"):
        codesign(f"{source}:nope", **common)


def test_codesign_train_mode_fine_tunes_nm_with_bdwp_and_replays_the_training_step(tiny_llama, tmp_path):
    folder, _, _ = tiny_llama
    doc = codesign(None, hf_dir=folder, settings=["nm:2:4"], accels=["edge32"], mode="train", prompt_len=32,
                   train_steps=3, lr=1e-3, context=64, eval_tokens=128, work_dir=tmp_path / "t", keep_traces=True)
    dense, nm = doc["settings"]
    assert doc["mode"] == "train" and doc["train_steps"] == 3
    assert dense["quality"]["value"] == dense["quality"]["dense"] and dense["speedup"] == 1.0
    # fine-tuning moved the model off its pretrained weights: a different perplexity
    assert dense["quality"]["value"] != dense["quality"]["pretrained"]
    assert nm["quality"]["dense"] == dense["quality"]["value"] and nm["quality"]["value"] != dense["quality"]["value"]
    # every Linear of the training trace (2 layers x 7 + lm_head), its forward weight equal in both paths
    assert nm["mask_check"]["ops_compared"] == dense["mask_check"]["ops_compared"] == 2 * 7 + 1
    import json

    manifest = json.loads((tmp_path / "t" / "setting1" / "manifest.json").read_text())
    assert manifest["capture"]["nm"] == "2:4" and manifest["capture"]["nm_mode"] == "bdwp"
    # the training step replayed: forward, backward-data and backward-weight rows; 2:4 halves the
    # effectual MACs of the Linear GEMMs of fwd and bwd_data (BDWP; the head's 301 output features end
    # in a partial group of 1, so its bwd_data keeps 152 of 301), bwd_weight stays dense
    from sparsesim import api

    res = api.simulate(api.trace(tmp_path / "t" / "setting1"), accel="edge32", sparsity=["nm:2:4"])
    lin = [r for r in res.rows if r["kind"] == "linear"]
    assert {r["phase"] for r in lin} == {"fwd", "bwd_data", "bwd_weight"}
    for r in lin:
        if r["phase"] == "bwd_weight":
            assert r["macs_effectual"] == r["macs_dense"]
        else:
            assert r["macs_effectual"] <= r["macs_dense"] * 152 / 301
    assert nm["total"]["macs_effectual"] < dense["total"]["macs_effectual"]
    with pytest.raises(InputError, match="--mode train applies N:M"):
        codesign(None, hf_dir=folder, settings=[CATS], accels=["edge32"], mode="train")
    with pytest.raises(InputError, match="train_steps: must be an integer >= 1"):
        codesign(None, hf_dir=folder, settings=["nm:2:4"], accels=["edge32"], mode="train", train_steps=0)
