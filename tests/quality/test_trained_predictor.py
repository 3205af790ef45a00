"""The trained low-rank predictor: its closed-form fit by hand, its file, and the codesign run in
which its misses zero live neurons in both the quality forward and the replay."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs torch (pip install 'sparsesim[capture]')")

from sparsesim.core.errors import InputError  # noqa: E402
from sparsesim.quality import Setting, codesign  # noqa: E402
from sparsesim.quality.metrics import token_ids, windows  # noqa: E402
from sparsesim.quality.transform import ForwardTransform, MaskLog, calibrate, fit_predictors  # noqa: E402
from sparsesim.sparsity.gate_coupling import activation  # noqa: E402
from sparsesim.sparsity.predictor import BlockPredictor, Predictors  # noqa: E402
from sparsesim.workloads.corpus import corpus_part  # noqa: E402

CATS = "act_policy:threshold:0:site=swiglu_gate:calibrate=prefill:sparsity=0.5"
TRAINED = CATS + ":predictor=trained"


@pytest.fixture(scope="module")
def fitted(tiny_llama):
    _, model, tokenizer = tiny_llama
    calib = windows(token_ids(tokenizer, corpus_part("calib").text), 64, 256)
    policy = Setting.parse(CATS).policy
    thresholds = calibrate(model, policy, calib)
    return model, calib, thresholds


def test_full_rank_fit_is_the_gate_itself_and_low_rank_is_least_squares(fitted):
    model, calib, thresholds = fitted
    block = "model.layers.0.mlp"
    mlp = model.model.layers[0].mlp
    xs = []
    handle = mlp.register_forward_pre_hook(lambda m, a: xs.append(a[0].detach().reshape(-1, 32).double().numpy()))
    with torch.no_grad():
        for w in calib:
            model(input_ids=w)
    handle.remove()
    x = np.concatenate(xs)
    w = mlp.gate_proj.weight.detach().double().numpy()
    full = fit_predictors(model, thresholds, calib, 32).blocks[block]  # rank d: A^T B^T = W^T exactly
    assert np.allclose(full.A.T.astype(np.float64) @ full.B.T, w.T, atol=1e-4)
    assert np.array_equal(full.t, np.full(48, thresholds[block][0], dtype=np.float32))
    # rank 4: the residual on the calibration inputs is no larger than that of the plain SVD of W
    # (the best rank-4 fit of W itself, blind to how the inputs fall), and equals the input-weighted
    # optimum: the sum of the squared singular values of L^T W^T past the 4th
    low = fit_predictors(model, thresholds, calib, 4).blocks[block]
    assert low.rank == 4 and low.A.shape == (4, 32) and low.B.shape == (48, 4)
    resid = np.linalg.norm(x @ w.T - x @ (low.A.T.astype(np.float64) @ low.B.T)) ** 2
    u, s, vt = np.linalg.svd(w, full_matrices=False)
    plain = np.linalg.norm(x @ w.T - x @ (u[:, :4] * s[:4] @ vt[:4]).T) ** 2
    sv = np.linalg.svd(np.linalg.cholesky(x.T @ x).T @ w.T, compute_uv=False)
    assert resid <= plain * (1 + 1e-6)
    assert resid == pytest.approx(float((sv[4:] ** 2).sum()), rel=1e-3)
    with pytest.raises(InputError, match="predictor_rank: 33 is not within 1..32"):
        fit_predictors(model, thresholds, calib, 33)


def test_predict_by_hand():
    # d 2, r 1, d_ff 3, ReLU: g~ = (x . [1, 1]) * [1, -1, 2]; live where |relu(g~)| > t
    p = BlockPredictor(np.array([[1.0, 1.0]], np.float32), np.array([[1.0], [-1.0], [2.0]], np.float32),
                       np.array([0.5, 0.0, 3.0], np.float32), "relu")
    got = p.predict(np.array([[1.0, 0.0], [2.0, 0.0]], np.float32))
    assert got.tolist() == [[True, False, False], [True, False, True]]
    silu = BlockPredictor(p.A, p.B, np.zeros(3, np.float32), "silu")
    assert silu.predict(np.array([[1.0, 0.0]], np.float32)).tolist() == [[True, True, True]]  # silu(-1) < 0: live
    assert activation("silu", np.float32(-1.0)) < 0


def test_predictor_file_round_trip_and_bad_files(tmp_path, fitted):
    model, calib, thresholds = fitted
    preds = fit_predictors(model, thresholds, calib, 8)
    path = tmp_path / "p.safetensors"
    preds.save(path)
    back = Predictors.load(path)
    assert set(back.blocks) == set(preds.blocks) and back.rank == 8
    for name, p in preds.blocks.items():
        assert np.array_equal(back.blocks[name].B, p.B) and back.blocks[name].act == "silu"
    from safetensors.numpy import save_file

    bad = tmp_path / "bad.safetensors"
    save_file({"m.A": np.ones((2, 3), np.float32), "m.B": np.ones((4, 2), np.float32),
               "m.t": np.array([0, 0, 0, np.nan], np.float32)}, str(bad), metadata={"act": "silu"})
    with pytest.raises(InputError, match="m.t: must be finite float32"):
        Predictors.load(bad)
    save_file({"m.A": np.ones((2, 3), np.float32), "m.B": np.ones((4, 3), np.float32),
               "m.t": np.zeros(4, np.float32)}, str(bad), metadata={"act": "silu"})
    with pytest.raises(InputError, match="do not chain"):
        Predictors.load(bad)
    bad.write_bytes(b"\x00" * 5)
    with pytest.raises(InputError, match="not a readable predictor file"):
        Predictors.load(bad)


def test_codesign_trained_predictor_misses_cost_quality_and_the_replay_sees_the_same_masks(tiny_llama, tmp_path):
    folder, _, _ = tiny_llama
    rank4 = TRAINED + ":predictor_rank=4"
    doc = codesign(None, hf_dir=folder, settings=[CATS, rank4], accels=["edge32"], mode="decode",
                   prompt_len=12, gen_len=2, context=64, eval_tokens=256, calib_tokens=256,
                   work_dir=tmp_path / "traces", keep_traces=True)
    dense, cats, pred = doc["settings"]
    assert pred["sparsity"] == rank4
    assert pred["mask_check"] == {"ops_compared": 3 * (2 * 7 + 1), "max_abs_diff": 0.0}
    # a rank-4 predictor of a 48-neuron gate misses live neurons, which are zeroed: more zeros
    # than CATS alone, and a quality differing from it
    recall = pred["quality"]["predictor_recall"]
    assert 0 < recall < 1 and pred["quality"]["predictor_rank"] == 4
    assert pred["act_zero_fraction"] > cats["act_zero_fraction"]
    assert pred["quality"]["value"] != cats["quality"]["value"]
    # the trace carries the predictor, checked by its SHA-256; the replay's gate rows run the
    # predicted neurons and charge the predictor's two GEMMs at its rank
    trace = tmp_path / "traces" / "setting2"
    label = Setting.parse(rank4).policy.label()
    record = json.loads((trace / "manifest.json").read_text())["capture"]["predictors"][label]
    assert record["rank"] == 4 and (trace / record["file"]).is_file()
    from sparsesim import api

    res = api.simulate(api.trace(trace), accel="edge32", sparsity=rank4.split("+"))
    gates = [r for r in res.rows if r.get("mlp_role") == "gate"]
    assert gates and all(r["predictor_rank"] == 4 and 0 <= r["predictor_recall"] <= 1 for r in gates)
    assert all(r["predictor_macs"] == r["M"] * 4 * (32 + 48) for r in gates)
    ups = {(r["name"].replace("up_proj", ""), r["phase"]): r for r in res.rows if r.get("mlp_role") == "up"}
    for g in gates:  # up runs the live neurons, a subset of those the gate ran
        assert ups[(g["name"].replace("gate_proj", ""), g["phase"])]["gate_live_columns"] <= g["predictor_live_columns"]
    # a corrupted predictor file is refused, naming it
    (trace / record["file"]).write_bytes((trace / record["file"]).read_bytes()[:-4] + b"\x00\x00\x00\x01")
    with pytest.raises(InputError, match="SHA-256 differs from capture.predictors"):
        api.simulate(api.trace(trace), accel="edge32", sparsity=rank4.split("+"))
    # a trace without a predictor cannot replay predictor=trained
    with pytest.raises(InputError, match="trained needs a trace that carries a trained predictor"):
        api.simulate(api.trace(tmp_path / "traces" / "setting1"), accel="edge32", sparsity=rank4.split("+"))


def test_forward_transform_needs_the_predictors(tiny_llama):
    _, model, _ = tiny_llama
    with pytest.raises(InputError, match="needs the fitted predictors"):
        ForwardTransform(model, Setting.parse(TRAINED).features, {"model.layers.0.mlp": np.zeros(1)}, log=MaskLog())
