"""Capturing the user's own model: CLI and Python agree, errors, decompositions, coverage, determinism.

The models captured from the CLI are defined in ``user_models.py`` next to this file and named
as ``--model <that file>:NAME``, as a user would.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from sparsesim.cli.main import main
from sparsesim.workloads.gemm import Phase
from sparsesim.workloads.trace import load_trace

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from sparsesim.workloads.capture import capture_model  # noqa: E402


def _load_user_models():
    """``user_models.py`` as its own module (tests import with ``--import-mode=importlib``)."""
    spec = importlib.util.spec_from_file_location("user_models", Path(__file__).with_name("user_models.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


user_models = _load_user_models()
from sparsesim.workloads.capture.decompose import DECOMPOSITIONS, NOT_LOWERED  # noqa: E402

HERE = str(Path(user_models.__file__))
make_model = user_models.make_model


class Unlowered(nn.Module):
    """A grouped transposed conv (not lowered) before a linear."""

    def __init__(self) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(4, 4, 3, groups=2)
        self.fc = nn.Linear(4 * 7 * 7, 2)

    def forward(self, x):
        return self.fc(self.up(x).flatten(1))


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _tensors(trace) -> dict[str, bytes]:
    return {n: trace.tensor(n).tobytes() for n in trace.tensor_names}


def _rows(path):
    from sparsesim.hardware.presets import load_accel
    from sparsesim.simulation.run import simulate_rows

    cfg = load_accel("edge32", [], {"sparsity": [{"kind": "zero_skip", "target": "input", "action": "skipping"}]})
    with load_trace(path) as trace:
        return simulate_rows(trace.workload(), cfg, "os")


def test_cli_and_python_capture_give_identical_traces_and_rows(tmp_path, capsys):
    code, out, err = _run(capsys, "trace", "capture", "--model", f"{HERE}:make_model", "--input-shape", "3,8,8",
                          "--batch", "2", "--out", str(tmp_path / "cli"))
    assert code == 0, err
    assert "MAC coverage: 100.0%" in out
    # one line per stage on a non-terminal stderr, no carriage returns
    assert "building the model" in err and "1 step" in err and "\r" not in err
    # Python: the model built under the same seed, the batch drawn as the CLI documents it
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = make_model()
    x = torch.randn((2, 3, 8, 8), generator=torch.Generator().manual_seed(0))
    path = capture_model(model, x, out=tmp_path / "py", progress=False)
    cli, py = load_trace(tmp_path / "cli"), load_trace(path)
    assert [r.name for r in cli.ops] == [r.name for r in py.ops]
    assert _tensors(cli) == _tensors(py)
    rows_cli, rows_py = _rows(tmp_path / "cli"), _rows(path)
    assert rows_cli == rows_py and len(rows_cli) == 3 * len(cli.ops) - 1  # the first conv has no bwd_data
    # the replay saw the real zeros: zero-skipping the ReLU outputs does save MACs
    assert sum(r["macs_effectual"] for r in rows_cli) < sum(r["macs_dense"] for r in rows_cli)
    cap = cli.capture
    assert cap["model"] == f"{HERE}:make_model" and cap["input_shape"] == [3, 8, 8] and cap["batch"] == 2
    assert cap["loss"] == "cross_entropy against random targets of 5 classes"
    assert cap["threads"] == 1 and cap["deterministic_algorithms"] is True
    names = [r.name for r in cli.ops]
    assert names == ["conv", "rows", "sdpa0.scores", "sdpa0.context", "einsum0", "fc"]
    rows = next(r.op for r in cli.ops if r.name == "rows")  # conv1d as a conv2d of height 1
    assert (rows.in_h, rows.in_w, rows.kernel_h, rows.kernel_w, rows.pad_w) == (1, 8, 1, 3, 1)


def test_captured_attention_operands_are_the_attention_of_torch(tmp_path):
    with torch.random.fork_rng():
        torch.manual_seed(3)
        model = make_model()
    x = torch.randn(2, 3, 8, 8)
    trace = load_trace(capture_model(model, x, out=tmp_path / "t", mode="infer", progress=False))
    by_name = {r.name: r for r in trace.ops}
    q, kt, _ = trace.op_tensors(by_name["sdpa0.scores"])
    probs, v, _ = trace.op_tensors(by_name["sdpa0.context"])
    # torch's fused attention from the recorded Q, K, V equals P.V from the recorded P
    fused = F.scaled_dot_product_attention(*(torch.from_numpy(t) for t in (q, kt.transpose(0, 2, 1), v)))
    np.testing.assert_allclose(probs @ v, fused.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    assert by_name["sdpa0.scores"].op.batch == 2 and by_name["sdpa0.scores"].op.k == 8  # 4 tokens of 8 features


def test_two_captures_are_byte_identical_whatever_the_callers_threads(tmp_path):
    previous = torch.get_num_threads()
    paths = []
    try:
        for i, caller_threads in enumerate((1, 2)):
            torch.set_num_threads(caller_threads)
            with torch.random.fork_rng():
                torch.manual_seed(0)
                model = make_model()
            x = torch.randn((4, 3, 8, 8), generator=torch.Generator().manual_seed(1))
            paths.append(capture_model(model, x, out=tmp_path / f"c{i}", steps=2, progress=False))
            assert torch.get_num_threads() == caller_threads  # restored
        two = capture_model(make_model(), x, out=tmp_path / "two", threads=2, progress=False)
    finally:
        torch.set_num_threads(previous)
    files = [sorted(p.glob("*.safetensors")) for p in paths]
    assert [f.name for f in files[0]] == [f.name for f in files[1]]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(*files))
    assert load_trace(paths[0]).capture["threads"] == 1 and load_trace(two).capture["threads"] == 2


def test_cli_threads_flag_is_recorded(tmp_path, capsys):
    code, _, err = _run(capsys, "trace", "capture", "--model", f"{HERE}:make_model", "--input-shape", "3,8,8",
                        "--batch", "1", "--threads", "2", "--mode", "infer", "--dtype", "bf16", "--out",
                        str(tmp_path / "t"), "--no-progress")
    assert code == 0, err
    trace = load_trace(tmp_path / "t")
    assert trace.capture["threads"] == 2 and trace.storage.name == "bf16"
    assert all(r.phases == (Phase.FWD,) for r in trace.ops)


def test_dict_form_token_inputs_and_custom_loss(tmp_path, capsys):
    code, _, err = _run(capsys, "trace", "capture", "--model", f"{HERE}:make_dict", "--batch", "3", "--steps", "2",
                        "--warmup-steps", "1", "--out", str(tmp_path / "d"), "--no-progress")
    assert code == 0, err
    trace = load_trace(tmp_path / "d")
    cap = trace.capture
    assert cap["input"] == "inputs(batch_size, generator)" and cap["loss"] == "loss(output, inputs)"
    assert cap["optimizer"] == "Adam" and cap["warmup_steps"] == 1 and cap["steps"] == 2
    fc = [r for r in trace.ops if r.op.kind == "linear"]
    assert [r.step for r in fc] == [0, 1] and fc[0].op.tokens == 3 and fc[0].op.in_features == 24
    # --input-dtype long draws token ids below --vocab; the output (3, 5, 4) gets the mean-square loss
    code, _, err = _run(capsys, "trace", "capture", "--model", f"{HERE}:make_tokens", "--input-shape", "5",
                        "--input-dtype", "long", "--vocab", "7", "--batch", "3", "--out", str(tmp_path / "t"),
                        "--no-progress")
    assert code == 0, err
    trace = load_trace(tmp_path / "t")
    assert trace.capture["loss"] == "mean of the squared output" and trace.capture["vocab"] == 7
    assert trace.ops[0].op.tokens == 15


def test_bdwp_training_of_a_user_model(tmp_path):
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))
    x = torch.randn(4, 8)
    trace = load_trace(capture_model(model, x, out=tmp_path / "n", nm="2:4", warmup_steps=2, progress=False))
    for r in trace.ops:
        w = trace.operand(r, "weight")
        assert ((w.reshape(w.shape[0], -1, 4) != 0).sum(-1) <= 2).all()  # N:M along input features
        assert "master_weight" in {str(k) for k in r.tensors}
    assert trace.capture["nm"] == "2:4" and trace.capture["nm_layers"] == 2
    assert "forward" not in model[0].__dict__  # BDWP's forward is removed after the capture


def test_coverage_lists_work_that_is_not_lowered(tmp_path, capsys):
    model = Unlowered()
    x = torch.randn(2, 4, 5, 5)
    path = capture_model(model, x, out=tmp_path / "u", progress=False)
    cov = load_trace(path).capture["coverage"]
    up = 2 * 4 * 5 * 5 * 2 * 3 * 3  # each input element scatters into the 2 filters of its group x 3x3 taps
    fc = 2 * 196 * 2
    assert cov["macs_fwd_recorded"] == fc and cov["macs_fwd_total"] == fc + up
    assert cov["skipped"] == [{"module": "up", "function": "torch.conv_transpose2d", "calls": 1, "macs_fwd": up}]
    code, out, _ = _run(capsys, "trace", "info", str(path))
    assert code == 0
    assert f"MAC coverage: {fc / (fc + up):.1%} of the model's forward MACs" in out
    assert f"up: torch.conv_transpose2d, 1 call, {up:,} MACs" in out


def test_multi_head_attention_is_recorded_in_full(tmp_path):
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    x = torch.randn(3, 5, 8)
    trace = load_trace(capture_model(layer, x, out=tmp_path / "m", progress=False))
    cov = trace.capture["coverage"]
    assert cov["skipped"] == [] and cov["macs_fwd_recorded"] == cov["macs_fwd_total"]
    tokens = 15
    want = tokens * 24 * 8 + 2 * (3 * 2 * 5 * 5 * 4) + tokens * 8 * 8 + tokens * 16 * 8 * 2  # by hand
    assert cov["macs_fwd_total"] == want
    assert [r.name for r in trace.ops] == ["self_attn.in_proj", "self_attn.scores", "self_attn.context",
                                           "self_attn.out_proj", "linear1", "linear2"]


def _identity_record(kind, func, name, args, kwargs):
    return func(*args, **kwargs)


@pytest.mark.parametrize("case", ["conv3d", "conv3d_grouped", "conv1d", "conv_transpose2d", "sdpa_causal", "sdpa_gqa",
                                  "einsum", "einsum_sum", "baddbmm", "mha_masks", "lstm", "gru", "rnn_relu"])
def test_decompositions_compute_what_torch_computes(case):
    gen = torch.Generator().manual_seed(0)

    def r(*shape):
        return torch.randn(*shape, generator=gen)

    run = {d.label: d.run for d in DECOMPOSITIONS.values()}
    if case.startswith("conv3d"):
        groups = 2 if case.endswith("grouped") else 1
        x, w, b = r(2, 4, 5, 6, 7), r(6, 4 // groups, 3, 2, 3), r(6)
        kw = dict(stride=(1, 2, 1), padding=(1, 0, 1), dilation=(2, 1, 1), groups=groups)
        want, got = F.conv3d(x, w, b, **kw), run["conv3d"](_identity_record, "c", (x, w, b), kw)
    elif case == "conv1d":
        x, w = r(2, 4, 11), r(6, 2, 3)
        kw = dict(stride=2, padding=2, dilation=2, groups=2)
        want, got = F.conv1d(x, w, None, **kw), run["conv1d"](_identity_record, "c", (x, w), kw)
    elif case == "conv_transpose2d":
        x, w, b = r(2, 4, 5, 6), r(4, 3, 3, 2), r(3)
        kw = dict(stride=(2, 3), padding=1, output_padding=(1, 2), dilation=(1, 2))
        want, got = F.conv_transpose2d(x, w, b, **kw), run["conv_transpose2d"](_identity_record, "c", (x, w, b), kw)
    elif case.startswith("sdpa"):
        kv_heads = 4 if case == "sdpa_causal" else 2  # 2 key/value heads for 4 query heads: grouped-query
        q, k, v = r(2, 4, 6, 8), r(2, kv_heads, 6, 8), r(2, kv_heads, 6, 8)
        kw = dict(is_causal=True) if case == "sdpa_causal" else dict(enable_gqa=True, scale=0.2)
        want, got = F.scaled_dot_product_attention(q, k, v, **kw), run["sdpa"](_identity_record, "s", (q, k, v), kw)
    elif case == "einsum":
        a, b = r(2, 3, 4, 5), r(5, 3, 6)
        want = torch.einsum("bhik,khj->bhji", a, b)
        got = run["einsum"](_identity_record, "e", ("bhik,khj->bhji", a, b), {})
    elif case == "einsum_sum":  # l appears only in the first operand: summed out before the GEMM
        a, b = r(2, 3, 4, 5), r(5, 3, 7)
        want = torch.einsum("ijkl,ljm->imk", a, b)
        got = run["einsum"](_identity_record, "e", ("ijkl,ljm->imk", a, b), {})
    elif case == "baddbmm":
        i, b1, b2 = r(3, 4, 5), r(3, 4, 6), r(3, 6, 5)
        want = torch.baddbmm(i, b1, b2, beta=0.5, alpha=2.0)
        got = run["baddbmm"](_identity_record, "b", (i, b1, b2), dict(beta=0.5, alpha=2.0))
    else:
        from torch.overrides import TorchFunctionMode

        class Lower(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                if func in (F.multi_head_attention_forward, torch.lstm, torch.gru, torch.rnn_relu):
                    return DECOMPOSITIONS[func].run(_identity_record, "m", args, kwargs or {})
                return func(*args, **(kwargs or {}))

        if case == "mha_masks":
            module = nn.MultiheadAttention(8, 2)
            x = r(5, 3, 8)  # (L, N, E)
            mask = torch.rand(5, 5, generator=gen) > 0.6
            mask.fill_diagonal_(False)
            padding = torch.zeros(3, 5, dtype=torch.bool)
            padding[1, -1] = True
            kw = dict(attn_mask=mask, key_padding_mask=padding)
            inputs = (x, x, x)
        else:
            cls = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn_relu": nn.RNN}[case]
            extra = dict(nonlinearity="relu") if case == "rnn_relu" else dict(num_layers=2, bidirectional=True)
            module = cls(4, 5, batch_first=True, **extra)
            inputs, kw = (r(3, 6, 4),), {}
        want = module(*inputs, **kw)
        with Lower():
            got = module(*inputs, **kw)
        want, got = torch.cat([t.flatten() for t in torch.utils._pytree.tree_leaves(want)]), \
            torch.cat([t.flatten() for t in torch.utils._pytree.tree_leaves(got)])
    assert got is not NOT_LOWERED
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_einsum_that_is_not_a_gemm_is_left_to_torch():
    run = {d.label: d.run for d in DECOMPOSITIONS.values()}["einsum"]
    assert run(_identity_record, "e", ("ii->i", torch.ones(3, 3)), {}) is NOT_LOWERED
    assert run(_identity_record, "e", ("ij,jk,kl->il", *(torch.ones(2, 2),) * 3), {}) is NOT_LOWERED


def test_conv3d_is_recorded_as_its_im2col_gemm(tmp_path):
    model = nn.Sequential(nn.Conv3d(2, 4, (2, 3, 3), padding=(0, 1, 1)))
    x = torch.randn(1, 2, 3, 5, 5)
    trace = load_trace(capture_model(model, x, out=tmp_path / "c", mode="infer", progress=False))
    (rec,) = trace.ops
    # output 1 x 2 x 5 x 5 pixels, each reducing over 2 channels x 2 x 3 x 3 taps, 4 filters
    assert (rec.op.kind, rec.op.tokens, rec.op.in_features, rec.op.out_features) == ("linear", 50, 36, 4)
    cols, w, _ = trace.op_tensors(rec)
    y = model[0](x).detach() - model[0].bias.detach().view(1, 4, 1, 1, 1)
    np.testing.assert_allclose(cols @ w.T, y.permute(0, 2, 3, 4, 1).reshape(50, 4).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("argv, message", [
    (["--model", "nowhere/net.py:make"], "error: --model: nowhere/net.py: no such file"),
    (["--model", "nowhere/net.py"], "error: --model: nowhere/net.py: name the model in it, as nowhere/net.py:NAME"),
    (["--model", f"{HERE}:make_modl"], "error: --model: {HERE} has no 'make_modl' (did you mean 'make_model'?)"),
    (["--model", f"{HERE}:make_broken"], "error: --model: {HERE}:make_broken() raised ValueError: no weights here"),
    (["--model", "no_such_pkg.models:make"], "error: --model: no module named 'no_such_pkg.models'"),
    (["--model", f"{HERE}:make_model"], "error: --input-shape: required: make_model returns no 'inputs'"),
    (["--model", f"{HERE}:make_model", "--input-shape", "3,x"], "error: --input-shape: expected positive integers"),
    (["--model", f"{HERE}:make_model", "--input-shape", "3,8,8", "--steps", "0"],
     "error: --steps: must be a positive integer, got 0"),
    (["--model", f"{HERE}:make_model", "--input-shape", "3,8,8", "--input-dtype", "long"],
     "error: --vocab: required with input dtype long"),
    (["--model", f"{HERE}:make_model", "--input-shape", "3,8,8", "--threads", "0"],
     "error: --threads: must be a positive integer, got 0"),
    (["--model", f"{HERE}:make_tuple_output", "--input-shape", "4"],
     "error: --model: make_tuple_output: the default loss needs one floating-point tensor as the model's output, "
     "got tuple"),
    (["--model", f"{HERE}:make_model", "--input-shape", "5,8,8"], "error: --model: make_model: the captured step "
                                                                    "raised RuntimeError"),
    (["--model", "gru", "--input-shape", "3"], "error: --input-shape: only with --model FILE.py:NAME"),
    (["--model", "gru", "--steps", "0"], "error: --steps: must be a positive integer, got 0"),
])
def test_bad_input_is_one_error_line_naming_the_flag(tmp_path, capsys, argv, message):
    code, _, err = _run(capsys, "trace", "capture", *argv, "--out", str(tmp_path / "t"), "--no-progress")
    assert code == 2
    assert err.startswith(message.replace("{HERE}", HERE)) and err.count("\n") == 1, err


def test_existing_output_names_overwrite(tmp_path, capsys):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "f").write_text("")
    code, _, err = _run(capsys, "trace", "capture", "--model", f"{HERE}:make_model", "--input-shape", "3,8,8",
                        "--out", str(tmp_path / "t"))
    assert code == 2 and "already exists (pass --overwrite to replace it)" in err


def test_sequence_model_records_time_steps(tmp_path):
    class Loop(nn.Module):
        def __init__(self):
            super().__init__()
            self.cell = nn.Linear(3, 3)

        def forward(self, x):  # (batch, time, 3)
            h = torch.zeros_like(x[:, 0])
            for t in range(x.shape[1]):
                h = torch.tanh(self.cell(x[:, t] + h))
            return h

    trace = load_trace(capture_model(Loop(), torch.randn(2, 4, 3), out=tmp_path / "s", sequence=True,
                                     progress=False))
    assert [(r.name, r.time_step) for r in trace.ops] == [("cell", t) for t in range(4)]
    assert trace.capture["loss"] == "cross_entropy against random targets of 3 classes"  # h is [batch, 3]


def test_conv_transpose2d_is_recorded_as_its_scatter_gemm(tmp_path):
    model = nn.Sequential(nn.ConvTranspose2d(4, 3, 3, stride=2))
    x = torch.randn(1, 4, 5, 5)
    trace = load_trace(capture_model(model, x, out=tmp_path / "c", mode="infer", progress=False))
    (rec,) = trace.ops
    # each of the 25 input pixels (4 channels) scatters into 3 filters x 3x3 taps
    assert (rec.op.kind, rec.op.tokens, rec.op.in_features, rec.op.out_features) == ("linear", 25, 4, 27)
    rows, w, _ = trace.op_tensors(rec)
    np.testing.assert_allclose(rows, x[0].permute(1, 2, 0).reshape(25, 4).numpy())
    np.testing.assert_allclose(w, model[0].weight.detach().reshape(4, 27).T.numpy())
    # adding each pixel's 3x3 patch of scattered outputs, by hand, gives the layer's output
    cols = (rows @ w.T).reshape(5, 5, 3, 3, 3)  # (h, w, k, r, s)
    y = np.zeros((3, 11, 11), dtype=np.float32)
    for h in range(5):
        for v in range(5):
            y[:, 2 * h:2 * h + 3, 2 * v:2 * v + 3] += cols[h, v]
    want = model[0](x).detach()[0] - model[0].bias.detach().view(3, 1, 1)
    np.testing.assert_allclose(y, want.numpy(), rtol=1e-5, atol=1e-5)


class Tagger(nn.Module):
    def __init__(self, proj_size: int = 0):
        super().__init__()
        self.rnn = nn.LSTM(4, 6, batch_first=True, proj_size=proj_size)
        self.fc = nn.Linear(proj_size or 6, 2)

    def forward(self, x):
        return self.fc(self.rnn(x)[0][:, -1])


def test_an_lstm_is_unrolled_into_time_steps(tmp_path):
    model = Tagger()
    x = torch.randn(2, 5, 4)
    trace = load_trace(capture_model(model, x, out=tmp_path / "l", sequence=True, progress=False))
    cov = trace.capture["coverage"]
    # 10 tokens, each through the 4 gates' input (4 -> 24) and hidden (6 -> 24) GEMMs, then the classifier
    assert cov["skipped"] == [] and cov["macs_fwd_total"] == 10 * (24 * 4 + 24 * 6) + 2 * 6 * 2
    ih = [r for r in trace.ops if r.name == "rnn.l0.ih"]
    assert [r.time_step for r in ih] == list(range(5)) and ih[0].op.tokens == 2
    np.testing.assert_allclose(trace.operand(ih[3], "input"), x[:, 3].numpy())  # x_t is the input at step t
    hh = [r for r in trace.ops if r.name == "rnn.l0.hh"]
    assert not trace.operand(hh[0], "input").any()  # h_0 = 0


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
def test_an_lstm_with_projections_is_never_dropped_silently(tmp_path):
    trace = load_trace(capture_model(Tagger(proj_size=3), torch.randn(2, 5, 4), out=tmp_path / "l", progress=False))
    (skipped,) = trace.capture["coverage"]["skipped"]
    # per token: gates from the input (4 -> 24) and the projected state (3 -> 24), projection 6 -> 3
    assert skipped["module"] == "rnn" and skipped["macs_fwd"] == 10 * (24 * 4 + 24 * 3 + 3 * 6)


def test_model_from_an_importable_module(tmp_path, capsys, monkeypatch):
    package = tmp_path / "src" / "mynets"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "models.py").write_text("import torch\n\nMODEL = torch.nn.Sequential(torch.nn.Linear(6, 4))\n")
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    code, _, err = _run(capsys, "trace", "capture", "--model", "mynets.models:MODEL", "--input-shape", "6",
                        "--batch", "3", "--out", str(tmp_path / "t"), "--no-progress")
    assert code == 0, err
    trace = load_trace(tmp_path / "t")
    assert trace.capture["model"] == "mynets.models:MODEL"
    assert trace.capture["loss"] == "cross_entropy against random targets of 4 classes"  # output (3, 4)
    (op,) = (r.op for r in trace.ops)
    assert (op.tokens, op.in_features, op.out_features) == (3, 6, 4)


def test_strict_refuses_work_it_cannot_record(tmp_path, capsys):
    source = tmp_path / "up.py"
    source.write_text("import torch\n\ndef make():\n    return torch.nn.ConvTranspose2d(4, 4, 3, groups=2)\n")
    code, _, err = _run(capsys, "trace", "capture", "--model", f"{source}:make", "--input-shape", "4,5,5",
                        "--batch", "2", "--strict", "--out", str(tmp_path / "t"), "--no-progress")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: --strict: <top>: torch.conv_transpose2d does 3,600 forward MACs")  # 200 x 2 x 3 x 3
    assert not (tmp_path / "t").exists()
