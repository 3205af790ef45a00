"""PyTorch capture: completeness, in-place robustness, GEMM reconstruction, determinism, zoo."""

from __future__ import annotations

import numpy as np
import pytest

from workloads.errors import InputError
from workloads.gemm import PHASES, Phase
from workloads.ops import im2col
from workloads.trace import Operand, load_trace, validate

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from workloads.capture import MODELS, capture_model, capture_module, prune_nm_  # noqa: E402
from workloads.capture.recorder import deterministic  # noqa: E402


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


def _tiny_trace(tmp_path, mode="train", steps=1, seed=0, name="t"):
    with deterministic(seed):
        model = Tiny()
        gen = torch.Generator().manual_seed(seed)
        batches = [((torch.randn(2, 3, 8, 8, generator=gen),), torch.randint(5, (2,), generator=gen))
                   for _ in range(steps)]
        reference = Tiny(inplace=False)
        reference.load_state_dict(model.state_dict())
        path = capture_module(model, batches, tmp_path / name, mode=mode, progress=False)
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
    a = load_trace(capture_model("video_cnn", out=tmp_path / "a", **kw))
    b = load_trace(capture_model("video_cnn", out=tmp_path / "b", **kw))
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
    trace = load_trace(capture_model("transformer", out=tmp_path / "t", batch=2, warmup_steps=1, progress=False))
    by_name = {r.name: r for r in trace.ops}
    scores, context = by_name["layers.0.attn.matmul0"], by_name["layers.0.attn.matmul1"]
    assert (scores.op.batch, scores.op.m, scores.op.k, scores.op.n) == (2 * 4, 16, 16, 16)
    q, kt, _ = trace.op_tensors(scores)
    probs = torch.softmax(torch.from_numpy(q @ kt) / 4.0, -1).numpy()  # head dim 16
    np.testing.assert_allclose(trace.operand(context, "input"), probs, rtol=1e-4, atol=1e-6)
    assert scores.phases == PHASES


def test_gru_time_steps_and_nm_weights(tmp_path):
    trace = load_trace(capture_model("gru", out=tmp_path / "g", batch=2, warmup_steps=2, nm="2:4", progress=False))
    steps = [r.time_step for r in trace.ops if r.name == "x2h"]
    assert steps == list(range(16))
    for r in trace.ops:
        w = trace.operand(r, "weight")
        groups = (w.reshape(w.shape[0], -1, 4) != 0).sum(-1)
        assert groups.max() <= 2, r.name
    assert trace.capture["nm"] == "2:4"


def test_prune_nm_handles_ragged_groups():
    conv = nn.Conv2d(3, 5, 3)  # reduction 27 = 6 groups of 4 + 3
    prune_nm_(conv, 1, 4)
    w = conv.weight.detach().reshape(5, -1)
    full = (w[:, :24].reshape(5, 6, 4) != 0).sum(-1)
    assert full.max() == 1 and ((w[:, 24:] != 0).sum(-1) <= 1).all()


def test_capture_model_input_errors(tmp_path):
    with pytest.raises(InputError, match=r"--model: unknown model 'resnt18' \(did you mean 'resnet18'\?\)"):
        capture_model("resnt18", out=tmp_path / "x")
    with pytest.raises(InputError, match="batch: must be a positive integer"):
        capture_model("gru", out=tmp_path / "x", batch=0)
    with pytest.raises(InputError, match="dtype: unknown storage dtype 'fp8'"):
        capture_model("gru", out=tmp_path / "x", dtype="fp8")
    with pytest.raises(InputError, match=r"nm: need 0 < N <= M"):
        capture_model("gru", out=tmp_path / "x", nm="4:2")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f").write_text("")
    with pytest.raises(InputError, match="already exists"):
        capture_model("gru", out=tmp_path / "x")


def test_zoo_catalogue_is_complete():
    assert MODELS.names() == sorted(["resnet18", "resnet50", "vgg16", "mobilenetv2", "transformer", "gru",
                                     "video_cnn"])
