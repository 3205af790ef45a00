"""Synthetic traces: the requested sparsity structure is really there, exactly and reproducibly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsesim.core.errors import InputError
from sparsesim.workloads.gemm import PHASES, Phase
from sparsesim.workloads.ops import Conv2d, Linear, Matmul
from sparsesim.workloads.trace.synthetic import OperandSparsity, SparsitySpec, synthesize
from sparsesim.workloads.trace import load_trace, validate
from sparsesim.workloads.trace.info import describe

CONV = Conv2d(name="conv", batch=2, in_channels=6, out_channels=8, in_h=9, in_w=9, kernel_h=3, kernel_w=3,
              pad_h=1, pad_w=1)
DW = Conv2d(name="dw", batch=1, in_channels=8, out_channels=8, in_h=6, in_w=6, kernel_h=3, kernel_w=3, groups=8)
LINEAR = Linear(name="fc", tokens=6, in_features=20, out_features=10)
MATMUL = Matmul(name="mm", batch=3, m=5, n=6, k=12)
OPS = (CONV, DW, LINEAR, MATMUL)


def _reduction_rows(op, w):
    """Weights as rows over the forward reduction (input features), one row per output."""
    if isinstance(op, Matmul):
        return np.swapaxes(w, 1, 2).reshape(-1, op.k)
    return w.reshape(w.shape[0], -1)


def _is_nm(rows, n, m):
    red = rows.shape[1]
    padded = np.pad(rows != 0, ((0, 0), (0, -red % m)))
    return (padded.reshape(rows.shape[0], -1, m).sum(-1) <= n).all()


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 4), extra=st.integers(0, 4), seed=st.integers(0, 2**16))
def test_nm_weights_are_nm_along_the_reduction(tmp_path_factory, n, extra, seed):
    m = n + extra
    out = tmp_path_factory.mktemp("nm") / "t"
    spec = SparsitySpec(weight=OperandSparsity(pattern="nm", n=n, m=m), phases=(Phase.FWD,))
    trace = load_trace(synthesize(OPS, spec, out, seed=seed))
    for r in trace.ops:
        rows = _reduction_rows(r.op, trace.operand(r, "weight"))
        assert _is_nm(rows, n, m), r.name
        full_groups = rows.shape[1] // m
        # exactly n kept per full group (random normal weights have no exact zeros)
        kept = (rows[:, : full_groups * m].reshape(rows.shape[0], -1, m) != 0).sum(-1)
        assert (kept == n).all()


@pytest.mark.parametrize("pattern", ["uniform", "channel", "block"])
def test_densities_are_exact(tmp_path, pattern):
    sp = OperandSparsity(pattern=pattern, density=0.5, block=2)
    spec = SparsitySpec(input=sp, grad_output=sp)
    trace = load_trace(synthesize((CONV, LINEAR), spec, tmp_path / "t", seed=3))
    conv = trace.ops[0]
    x = trace.operand(conv, "input")
    dy = trace.operand(conv, "grad_output")
    if pattern == "uniform":
        assert (x != 0).sum() == round(0.5 * x.size)
    if pattern == "channel":  # whole input channels are zero or nonzero, 3 of 6 kept
        alive = (x != 0).any(axis=(0, 2, 3))
        assert alive.sum() == 3 and ((x != 0).all(axis=(0, 2, 3)) == alive).all()
        assert (dy != 0).any(axis=(0, 2, 3)).sum() == 4
    if pattern == "block":  # 2x2 spatial tiles; 9x9 maps have 5x5 tiles (ragged edge)
        tiles = np.pad(x != 0, ((0, 0), (0, 0), (0, 1), (0, 1))).reshape(2, 6, 5, 2, 5, 2)
        assert (tiles.any(axis=(3, 5)) == tiles[:, :, :, 0, :, 0]).all()  # a tile is all or nothing
        assert tiles[:, :, :, 0, :, 0].sum() == round(0.5 * 2 * 6 * 25)


def test_same_seed_same_trace_and_other_seed_differs(tmp_path):
    spec = SparsitySpec(input=OperandSparsity(pattern="uniform", density=0.3))
    a = load_trace(synthesize(OPS, spec, tmp_path / "a", seed=7))
    b = load_trace(synthesize(OPS, spec, tmp_path / "b", seed=7))
    c = load_trace(synthesize(OPS, spec, tmp_path / "c", seed=8))
    assert all(np.array_equal(a.tensor(n), b.tensor(n)) for n in a.tensor_names)
    assert not np.array_equal(a.tensor(a.tensor_names[0]), c.tensor(c.tensor_names[0]))
    assert a.ops[0].phases == PHASES


def test_sequence_changes_only_the_requested_fraction(tmp_path):
    spec = SparsitySpec(input=OperandSparsity(pattern="uniform", density=0.5), time_steps=4, change=0.2,
                        phases=(Phase.FWD,))
    trace = load_trace(synthesize((LINEAR,), spec, tmp_path / "t", seed=1))
    assert [r.time_step for r in trace.ops] == [0, 1, 2, 3]
    frames = [trace.operand(r, "input") for r in trace.ops]
    for prev, now in zip(frames, frames[1:]):
        assert (prev != now).mean() <= 0.2  # a redrawn element may land on its old value (zero)
        assert (prev != now).mean() > 0.05
    text = describe(trace)
    assert "delta density" in text and "θ=0.05" in text
    validate(trace)


@pytest.mark.parametrize("text, message", [
    ("uniform", "expected dense, uniform:D"),
    ("uniform:x", "could not convert"),
    ("uniform:1.5", "density: must be in"),
    ("nm:3:2", "nm: need 0 < N <= M"),
    ("stripes:0.5", "expected dense"),
])
def test_spec_parse_errors(text, message):
    with pytest.raises(InputError, match=message):
        OperandSparsity.parse(text, "--weight")


def test_nm_only_for_weights():
    with pytest.raises(InputError, match="input: nm sparsity applies to weights only"):
        SparsitySpec(input=OperandSparsity(pattern="nm", n=2, m=4))
