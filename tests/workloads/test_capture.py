"""PyTorch capture: completeness, in-place robustness, GEMM reconstruction, determinism, zoo."""

from __future__ import annotations

import numpy as np
import pytest

from sparsesim.core.errors import InputError
from sparsesim.workloads.gemm import PHASES, Phase
from sparsesim.workloads.ops import im2col
from sparsesim.workloads.trace import Operand, load_trace, validate

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from sparsesim.hardware.kernels import nm_prune_ref  # noqa: E402
from sparsesim.workloads.capture import MODELS, bdwp, capture_zoo, capture_module, prune_nm_  # noqa: E402
from sparsesim.workloads.capture.recorder import deterministic  # noqa: E402


class Tiny(nn.Module):
    """conv -> in-place ReLU -> strided conv -> in-place ReLU -> linear, plus a parameter matmul."""

    def __init__(self, inplace: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU(inplace=inplace)
        self.conv2 = nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False)
        self.fc = nn.Linear(6 * 4 * 4, 8)
        self.proj = nn.Parameter(torch.randn(8, 5) * 0.3)
        self.inplace = inplace

    def forward(self, x):
        x = self.relu(self.conv1(x))
        x = self.conv2(x)
        x = torch.relu_(x) if self.inplace else torch.relu(x)
        return self.fc(x.flatten(1)) @ self.proj


def _tiny_trace(tmp_path, mode="train", steps=1, seed=0, name="t", nm=None):
    """Capture ``Tiny``; with ``nm=(n, m)`` it trains with BDWP and an SGD update per step."""
    with deterministic(seed):
        model = Tiny()
        gen = torch.Generator().manual_seed(seed)
        batches = [((torch.randn(2, 3, 8, 8, generator=gen),), torch.randint(5, (2,), generator=gen))
                   for _ in range(steps)]
        reference = Tiny(inplace=False)
        reference.load_state_dict(model.state_dict())
        optimizer = None
        if nm:
            bdwp.install(model, *nm)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        path = capture_module(model, batches, tmp_path / name, mode=mode, optimizer=optimizer, progress=False)
    return load_trace(path), reference, batches


def test_train_capture_records_all_three_tensors(tmp_path):
    trace, _, _ = _tiny_trace(tmp_path)
    validate(trace)
    assert [(r.name, r.op.kind) for r in trace.ops] == [("conv1", "conv2d"), ("conv2", "conv2d"), ("fc", "linear"),
                                                        ("matmul0", "matmul")]
    for r in trace.ops:
        x, w, dy = trace.op_tensors(r)
        assert x.shape == r.op.input_shape and w.shape == r.op.weight_shape and dy.shape == r.op.output_shape
    # the image needs no gradient, so the first conv has no bwd_data; everything else has all phases
    assert trace.ops[0].phases == (Phase.FWD, Phase.BWD_WEIGHT)
    assert all(r.phases == PHASES for r in trace.ops[1:])
    assert trace.capture["mode"] == "train" and trace.capture["torch"] == torch.__version__


def test_infer_capture_has_forward_only(tmp_path):
    trace, _, _ = _tiny_trace(tmp_path, mode="infer")
    assert all(r.phases == (Phase.FWD,) and Operand.GRAD_OUTPUT not in r.tensors for r in trace.ops)


def _reference_run(reference, batch):
    """Outputs, output gradients and input gradients of every op of the non-in-place twin."""
    outs, ins = {}, {}

    def keep(name):
        def hook(module, args, out):
            out.retain_grad()
            if args[0].requires_grad:
                args[0].retain_grad()
            outs[name], ins[name] = out, args[0]
        return hook

    for name in ("conv1", "conv2", "fc"):
        getattr(reference, name).register_forward_hook(keep(name))
    (x,), y = batch
    logits = reference(x)
    F.cross_entropy(logits, y).backward()
    return outs, ins


def test_inplace_relu_and_gradients_match_an_independent_run(tmp_path):
    trace, reference, batches = _tiny_trace(tmp_path)
    outs, ins = _reference_run(reference, batches[0])
    by_name = {r.name: r for r in trace.ops}
    for name in ("conv1", "conv2", "fc"):
        x, _, dy = trace.op_tensors(by_name[name])
        # the recorded input is what the op consumed, although an in-place ReLU ran after conv1
        np.testing.assert_allclose(x, ins[name].detach().reshape(x.shape).numpy(), rtol=1e-6, atol=1e-6)
        # dY is the gradient of the op's own output (before the in-place ReLU that follows it)
        np.testing.assert_allclose(dy, outs[name].grad.numpy(), rtol=1e-5, atol=1e-7)
    assert (trace.op_tensors(by_name["conv2"])[0] == 0).mean() > 0.2  # ReLU zeros are there


def test_gemms_rebuild_the_layer_outputs_and_gradients(tmp_path):
    trace, reference, batches = _tiny_trace(tmp_path)
    outs, ins = _reference_run(reference, batches[0])
    by_name = {r.name: r for r in trace.ops}
    for name in ("conv1", "conv2"):
        r = by_name[name]
        x, w, _ = trace.op_tensors(r)
        conv = r.op
        y = im2col(x, conv)[0] @ w.reshape(conv.out_channels, -1).T  # fwd GEMM, groups = 1
        y = y.reshape(conv.batch, conv.out_h, conv.out_w, conv.out_channels).transpose(0, 3, 1, 2)
        bias = getattr(reference, name).bias
        expected = outs[name].detach().numpy() - (0 if bias is None else bias.detach().numpy()[None, :, None, None])
        np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)
        # bwd_weight: dW = X^T . dY over (batch x output pixels)
        dy = trace.operand(r, "grad_output")
        dw = im2col(x, conv)[0].T @ dy.transpose(0, 2, 3, 1).reshape(-1, conv.out_channels)
        np.testing.assert_allclose(dw.T.reshape(w.shape), getattr(reference, name).weight.grad.numpy(),
                                   rtol=1e-4, atol=1e-6)
    x, w, dy = trace.op_tensors(by_name["fc"])
    np.testing.assert_allclose(x @ w.T + reference.fc.bias.detach().numpy(), outs["fc"].detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(dy @ w, ins["fc"].grad.numpy(), rtol=1e-5, atol=1e-7)  # bwd_data: dX = dY . W
    a, b, dy = trace.op_tensors(by_name["matmul0"])  # logits = fc(x) @ proj, proj a parameter
    np.testing.assert_allclose(a[0] @ b[0], (outs["fc"] @ reference.proj).detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a[0].T @ dy[0], reference.proj.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_same_seed_same_tensors(tmp_path):
    first, _, _ = _tiny_trace(tmp_path, name="a", steps=2)
    second, _, _ = _tiny_trace(tmp_path, name="b", steps=2)
    other, _, _ = _tiny_trace(tmp_path, name="c", steps=2, seed=1)
    assert first.tensor_names == second.tensor_names
    assert all(np.array_equal(first.tensor(n), second.tensor(n)) for n in first.tensor_names)
    assert not np.array_equal(first.tensor(first.tensor_names[0]), other.tensor(other.tensor_names[0]))


def test_zoo_capture_is_deterministic_and_records_time_steps(tmp_path):
    kw = dict(steps=1, batch=2, warmup_steps=2, progress=False)
    a = load_trace(capture_zoo("video_cnn", out=tmp_path / "a", **kw))
    b = load_trace(capture_zoo("video_cnn", out=tmp_path / "b", **kw))
    assert all(np.array_equal(a.tensor(n), b.tensor(n)) for n in a.tensor_names)
    conv1 = [r for r in a.ops if r.name == "conv1"]
    assert [r.time_step for r in conv1] == list(range(8))
    assert [r.time_step for r in a.ops if r.name == "fc"] == [None]  # runs once, after the frames
    wl = a.workload()
    assert wl.time_steps == tuple(r.time_step for r in a.ops)
    # the background is static: most of the first layer's input is unchanged between frames
    x0, x1 = a.operand(conv1[0], "input"), a.operand(conv1[1], "input")
    assert (x0 == x1).mean() > 0.8
    # one weight tensor per step, shared by all time steps
    assert len({r.tensors[Operand.WEIGHT] for r in conv1}) == 1


def test_transformer_attention_matmuls(tmp_path):
    trace = load_trace(capture_zoo("transformer", out=tmp_path / "t", batch=2, warmup_steps=1, progress=False))
    by_name = {r.name: r for r in trace.ops}
    scores, context = by_name["layers.0.attn.matmul0"], by_name["layers.0.attn.matmul1"]
    assert (scores.op.batch, scores.op.m, scores.op.k, scores.op.n) == (2 * 4, 16, 16, 16)
    q, kt, _ = trace.op_tensors(scores)
    probs = torch.softmax(torch.from_numpy(q @ kt) / 4.0, -1).numpy()  # head dim 16
    np.testing.assert_allclose(trace.operand(context, "input"), probs, rtol=1e-4, atol=1e-6)
    assert scores.phases == PHASES


def test_gru_time_steps_and_nm_weights(tmp_path):
    trace = load_trace(capture_zoo("gru", out=tmp_path / "g", batch=2, warmup_steps=2, nm="2:4", progress=False))
    steps = [r.time_step for r in trace.ops if r.name == "x2h"]
    assert steps == list(range(16))
    for r in trace.ops:
        w = trace.operand(r, "weight")
        groups = (w.reshape(w.shape[0], -1, 4) != 0).sum(-1)
        assert groups.max() <= 2, r.name
    assert trace.capture["nm"] == "2:4" and trace.capture["nm_mode"] == "bdwp"
    forward = load_trace(capture_zoo("gru", out=tmp_path / "f", batch=2, warmup_steps=2, nm="2:4",
                                     nm_mode="forward", progress=False))
    assert forward.capture["nm_mode"] == "forward"
    for r in forward.ops:
        w = forward.operand(r, "weight")
        assert (w.reshape(w.shape[0], -1, 4) != 0).sum(-1).max() <= 2, r.name
    # BDWP's dense master weights train differently from weights pruned in place
    h2h = [next(r for r in t.ops if r.name == "h2h") for t in (trace, forward)]
    assert not np.array_equal(trace.operand(h2h[0], "weight"), forward.operand(h2h[1], "weight"))


def test_prune_nm_handles_ragged_groups():
    conv = nn.Conv2d(3, 5, 3)  # reduction 27 = 6 groups of 4 + 3
    prune_nm_(conv, 1, 4)
    w = conv.weight.detach().reshape(5, -1)
    full = (w[:, :24].reshape(5, 6, 4) != 0).sum(-1)
    assert full.max() == 1 and ((w[:, 24:] != 0).sum(-1) <= 1).all()


def test_capture_zoo_input_errors_name_its_arguments(tmp_path):
    with pytest.raises(InputError, match=r"^model: unknown zoo model 'resnt18' \(did you mean 'resnet18'\?\)"):
        capture_zoo("resnt18", out=tmp_path / "x")
    with pytest.raises(InputError, match="^batch: must be a positive integer"):
        capture_zoo("gru", out=tmp_path / "x", batch=0)
    with pytest.raises(InputError, match="^dtype: unknown storage dtype 'fp8'"):
        capture_zoo("gru", out=tmp_path / "x", dtype="fp8")
    with pytest.raises(InputError, match=r"^nm: need 0 < N <= M"):
        capture_zoo("gru", out=tmp_path / "x", nm="4:2")
    with pytest.raises(InputError, match=r"^nm_mode: unknown mode 'both' \(choose from bdwp, forward\)"):
        capture_zoo("gru", out=tmp_path / "x", nm="2:4", nm_mode="both")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f").write_text("")
    with pytest.raises(InputError, match="already exists"):
        capture_zoo("gru", out=tmp_path / "x")


@pytest.mark.parametrize("flags, expected", [
    (["--batch", "0"], "error: --batch: must be a positive integer"),
    (["--steps", "0"], "error: --steps: must be a positive integer"),
    (["--warmup-steps", "-1"], "error: --warmup-steps: must be a non-negative integer"),
    (["--nm", "4:2"], "error: --nm: need 0 < N <= M"),
])
def test_trace_capture_names_its_flags_for_the_same_errors(capsys, tmp_path, flags, expected):
    from sparsesim.cli.main import main

    assert main(["trace", "capture", "--model", "gru", *flags, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(expected) and len(err.splitlines()) == 1, err
    assert not (tmp_path / "x").exists()


def test_zoo_catalogue_is_complete():
    assert MODELS.names() == sorted(["resnet18", "resnet50", "vgg16", "mobilenetv2", "transformer", "gru",
                                     "video_cnn", "vit", "bert", "silero_vad", "llama_tiny", "llama_tiny_relu",
                                     "llama_1b", "llama_1b_relu", "pydoc_relu_lm", "smollm2_135m"])


# ----------------------------------------------------------------------------- BDWP
def _max_group_nonzeros(rows: np.ndarray, m: int) -> int:
    """Largest count of nonzeros in a group of ``m`` consecutive entries along the last axis (ragged tail too)."""
    padded = np.zeros((*rows.shape[:-1], -(-rows.shape[-1] // m) * m), dtype=bool)
    padded[..., :rows.shape[-1]] = rows != 0
    return int(padded.reshape(*rows.shape[:-1], -1, m).sum(-1).max())


def _output_dim_rows(w: np.ndarray, groups: int) -> np.ndarray:
    """``w`` ([K, C/g, R, S] or [out, in]) as rows over the output channels of each group: [g, C/g*R*S, K/g]."""
    return w.reshape(groups, w.shape[0] // groups, -1).transpose(0, 2, 1)


def test_bdwp_masks_follow_the_nm_prune_ref_rule_ties_included():
    gen = torch.Generator().manual_seed(0)
    w = torch.randint(-2, 3, (8, 6, 3, 3), generator=gen).float()  # many ties; 8 outputs in 2 groups of 4
    for n, m in ((2, 4), (1, 4), (3, 8), (2, 5)):  # 5 leaves ragged groups along both axes
        fwd = bdwp.prune_input_features(w, n, m).numpy()
        np.testing.assert_array_equal(fwd.reshape(8, -1), nm_prune_ref(w.reshape(8, -1).numpy(), n, m))
        bwd = bdwp.prune_output_features(w, n, m, groups=2).numpy()
        cols = _output_dim_rows(w.numpy(), 2)
        expected = np.stack([nm_prune_ref(np.ascontiguousarray(c), n, m) for c in cols])
        np.testing.assert_array_equal(_output_dim_rows(bwd, 2), expected)
    assert (w != 0).float().mean() > 0.7  # the master itself was not touched


def test_bdwp_capture_records_nm_forward_weights_once_per_layer(tmp_path):
    dense, _, _ = _tiny_trace(tmp_path, name="dense")
    trace, _, _ = _tiny_trace(tmp_path, name="bdwp", steps=2, nm=(2, 4))
    validate(trace)
    names = [r.name for r in dense.ops]
    assert [r.name for r in trace.ops] == names * 2  # each layer once per step, not again for its inner F.conv2d
    for r in trace.ops:
        w = trace.operand(r, "weight")
        if r.op.kind == "matmul":  # a plain parameter matmul is not a conv or linear: dense
            assert (w != 0).all()
            continue
        assert _max_group_nonzeros(w.reshape(w.shape[0], -1), 4) <= 2, r.name
        assert r.phases == (dense.ops[names.index(r.name)].phases)  # dW still reaches the dense master
        x, _, dy = trace.op_tensors(r)
        assert x.shape == r.op.input_shape and dy.shape == r.op.output_shape
    # the forward really ran with W_fwd: fc's output rebuilt from the recorded tensors feeds matmul0
    by_name = {(r.name, r.step): r for r in trace.ops}
    x, w, _ = trace.op_tensors(by_name["fc", 0])
    bias = x @ w.T - trace.operand(by_name["matmul0", 0], "input")[0]
    np.testing.assert_allclose(bias, np.broadcast_to(bias[:1], bias.shape), atol=1e-5)


def _conv_case(groups=1):
    gen = torch.Generator().manual_seed(3)
    conv = nn.Conv2d(8, 12, 3, stride=2, padding=1, groups=groups)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen))
    x = torch.randn(2, 8, 9, 9, generator=gen, requires_grad=True)
    return conv, x, gen


@pytest.mark.parametrize("groups", [1, 2])
def test_bdwp_conv_gradients(groups):
    conv, x, gen = _conv_case(groups)
    master = conv.weight.detach().clone()
    bdwp.install(conv, 2, 4)
    y = conv(x)
    w_fwd, w_bwd = bdwp.prune_input_features(master, 2, 4), bdwp.prune_output_features(master, 2, 4, groups)
    np.testing.assert_allclose(y.detach(), F.conv2d(x.detach(), w_fwd, conv.bias.detach(), 2, 1, 1, groups),
                               rtol=1e-5, atol=1e-5)
    dy = torch.randn(y.shape, generator=gen)
    y.backward(dy)
    # W_bwd is N:M along the output channels of each group, for every (c, r, s)
    assert _max_group_nonzeros(_output_dim_rows(w_bwd.numpy(), groups), 4) <= 2
    assert _max_group_nonzeros(w_fwd.reshape(12, -1).numpy(), 4) <= 2
    expected_dx = torch.nn.grad.conv2d_input(x.shape, w_bwd, dy, 2, 1, 1, groups)
    np.testing.assert_allclose(x.grad, expected_dx, rtol=1e-5, atol=1e-5)
    dense_dx = torch.nn.grad.conv2d_input(x.shape, master, dy, 2, 1, 1, groups)
    fwd_dx = torch.nn.grad.conv2d_input(x.shape, w_fwd, dy, 2, 1, 1, groups)
    assert not torch.allclose(x.grad, dense_dx) and not torch.allclose(x.grad, fwd_dx)
    # the weight gradient is the dense one, from the same X and dY; the bias gradient too
    expected_dw = torch.nn.grad.conv2d_weight(x.detach(), master.shape, dy, 2, 1, 1, groups)
    np.testing.assert_allclose(conv.weight.grad, expected_dw, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(conv.bias.grad, dy.sum((0, 2, 3)), rtol=1e-5, atol=1e-5)
    assert (conv.weight.grad != 0).float().mean() > 0.99


def test_bdwp_linear_gradients():
    gen = torch.Generator().manual_seed(4)
    fc = nn.Linear(12, 10)  # 10 outputs: groups of 4 along `out` leave a ragged pair
    master = fc.weight.detach().clone()
    x = torch.randn(3, 5, 12, generator=gen, requires_grad=True)  # leading dims are tokens
    bdwp.install(fc, 2, 4)
    y = fc(x)
    dy = torch.randn(y.shape, generator=gen)
    y.backward(dy)
    w_fwd = torch.from_numpy(nm_prune_ref(master.numpy(), 2, 4))
    w_bwd = torch.from_numpy(nm_prune_ref(np.ascontiguousarray(master.numpy().T), 2, 4).T)
    assert _max_group_nonzeros(w_bwd.numpy().T, 4) <= 2
    np.testing.assert_allclose(y.detach(), x.detach() @ w_fwd.T + fc.bias.detach(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(x.grad, dy @ w_bwd, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fc.weight.grad, dy.reshape(-1, 10).T @ x.detach().reshape(-1, 12), rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(fc.bias.grad, dy.sum((0, 1)), rtol=1e-5, atol=1e-6)


def test_bdwp_keeps_master_weights_dense_and_recomputes_masks():
    conv, x, gen = _conv_case()
    fc = nn.Linear(12 * 5 * 5, 6)
    model = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), fc)
    assert bdwp.install(model, 2, 4) == ["0", "3"]
    before = [p.detach().clone() for p in (conv.weight, fc.weight)]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    F.cross_entropy(model(x), torch.tensor([1, 4])).backward()
    grads = [p.grad.clone() for p in (conv.weight, fc.weight)]
    optimizer.step()
    for old, grad, new in zip(before, grads, (conv.weight, fc.weight)):
        assert (new != 0).all()  # never pruned in place
        np.testing.assert_allclose(new.detach(), old - 0.1 * grad, rtol=1e-6, atol=1e-7)
        # weights the forward pruned away are updated too (straight-through dense dW)
        pruned = bdwp.prune_input_features(old, 2, 4) == 0
        assert (new[pruned] != old[pruned]).float().mean() > 0.5
    # the next forward prunes the updated weights afresh
    with torch.no_grad():
        conv.weight.mul_(-1.0).add_(torch.randn(conv.weight.shape, generator=gen))
        expected = F.conv2d(x, bdwp.prune_input_features(conv.weight, 2, 4), conv.bias, 2, 1)
        np.testing.assert_allclose(conv(x), expected, rtol=1e-5, atol=1e-5)
    bdwp.remove(model)
    with torch.no_grad():
        np.testing.assert_allclose(conv(x), F.conv2d(x, conv.weight, conv.bias, 2, 1), rtol=1e-6, atol=1e-6)


def test_bdwp_capture_is_deterministic(tmp_path):
    first, _, _ = _tiny_trace(tmp_path, name="a", steps=2, nm=(2, 4))
    second, _, _ = _tiny_trace(tmp_path, name="b", steps=2, nm=(2, 4))
    other, _, _ = _tiny_trace(tmp_path, name="c", steps=2, nm=(2, 4), seed=1)
    assert first.tensor_names == second.tensor_names
    assert all(np.array_equal(first.tensor(n), second.tensor(n)) for n in first.tensor_names)
    assert not np.array_equal(first.tensor(first.tensor_names[0]), other.tensor(other.tensor_names[0]))


def test_capture_cli_nm_options(tmp_path, capsys):
    from sparsesim.cli.main import main

    common = ["trace", "capture", "--model", "gru", "--batch", "2", "--warmup-steps", "1", "--no-progress"]
    assert main([*common, "--nm", "1:4", "--nm-mode", "forward", "--out", str(tmp_path / "f")]) == 0
    assert main([*common, "--nm", "1:4", "--out", str(tmp_path / "b")]) == 0
    assert [load_trace(tmp_path / d).capture["nm_mode"] for d in "fb"] == ["forward", "bdwp"]
    capsys.readouterr()
    assert main([*common, "--nm-mode", "forward", "--out", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err == "error: --nm-mode: only with --nm N:M\n"


@pytest.mark.parametrize("kw", [dict(kernel_size=3, stride=2, padding=1, groups=2), dict(kernel_size=4, padding="same"),
                                dict(kernel_size=3, padding="valid"), dict(kernel_size=3, padding=1,
                                                                           padding_mode="reflect")])
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # the dense twin's own warning
def test_bdwp_with_n_equal_m_is_dense_training(kw):
    gen = torch.Generator().manual_seed(5)
    conv = nn.Conv2d(4, 8, **kw)
    dense = nn.Conv2d(4, 8, **kw)
    dense.load_state_dict(conv.state_dict())
    bdwp.install(conv, 4, 4)
    x = torch.randn(2, 4, 7, 7, generator=gen, requires_grad=True)
    x_dense = x.detach().clone().requires_grad_()
    y, y_dense = conv(x), dense(x_dense)
    dy = torch.randn(y.shape, generator=gen)
    y.backward(dy)
    y_dense.backward(dy)
    for got, want in ((y, y_dense), (x.grad, x_dense.grad), (conv.weight.grad, dense.weight.grad),
                      (conv.bias.grad, dense.bias.grad)):
        np.testing.assert_allclose(got.detach(), want.detach(), rtol=1e-5, atol=1e-5)


def test_bdwp_trace_replays_both_pruned_copies_from_the_master(tmp_path):
    """The trace keeps the dense master beside W_fwd; replay regenerates W_fwd exactly and a
    W_bwd that is N:M along output features, so the declared mode holds in every phase."""
    from sparsesim.hardware.presets import load_accel
    from sparsesim.simulation.run import simulate_rows

    trace, _, _ = _tiny_trace(tmp_path, name="bdwp", nm=(2, 4))
    for r in trace.ops:
        if r.op.kind in ("conv2d", "linear"):
            master = trace.operand(r, "master_weight")
            assert master is not None and (master != 0).mean() > 0.9  # dense, never pruned in place
            w = trace.operand(r, "weight")
            fwd = bdwp.prune_input_features(torch.from_numpy(master), 2, 4).numpy()
            np.testing.assert_array_equal(w, fwd)  # the recorded W_fwd is the master, pruned
    cfg = load_accel("edge32", [], {"sparsity": [{"kind": "nm", "n": 2, "m": 4, "mode": "declared"}]})
    rows = simulate_rows(trace.workload(), cfg, "os")
    pruned = [r for r in rows if r["kind"] in ("conv2d", "linear") and r["phase"] in ("fwd", "bwd_data")]
    assert {r["phase"] for r in pruned} == {"fwd", "bwd_data"}
    for r in pruned:  # exactly N of every M weights kept along this phase's reduction (2 of a short group)
        kept = (r["K"] // 4) * 2 + min(2, r["K"] % 4)
        assert r["macs_effectual"] == r["count"] * r["M"] * r["N"] * kept, (r["name"], r["phase"])
