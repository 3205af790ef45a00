"""Dataflow identity: every registered dataflow's kind states its facts, and a new dataflow is
one class with a kind (a toy one registered here reaches the mapper, the engine, the reference
twin and validation without touching any of them)."""

from __future__ import annotations

import numpy as np
import pytest

from sparsesim.dataflows import DATAFLOWS, DataflowKind, SystolicDataflow, display_order
from sparsesim.hardware.dataflow_kind import OPERAND_DIMS
from sparsesim.hardware.presets import load_accel
from sparsesim.hardware.reference import ArraySpec, ZeroLogic, run_array, weight_slots
from sparsesim.simulation.engine import run_gemm
from sparsesim.validate import closed_form_cycles
from sparsesim.workloads.gemm import Gemm

SYSTOLIC = sorted(display_order("systolic"))  # the dataflows of the systolic array kind


@pytest.mark.parametrize("name", SYSTOLIC)
def test_kind_states_its_facts(name):
    kind = DATAFLOWS.get(name).kind
    assert kind.name == name
    assert set(OPERAND_DIMS[kind.stationary]) == {kind.row_dim, kind.col_dim}
    assert kind.time_dim not in OPERAND_DIMS[kind.stationary]
    assert kind.preload == (kind.stationary != "Out")
    assert kind.reduction_in_time == (kind.stationary == "Out")  # K streams only when outputs stay
    assert kind.stationary not in kind.zero_skippable and kind.zero_skippable
    assert kind.outer_dim in (kind.row_dim, kind.col_dim)
    hash(kind)  # the mapper's search cache keys on it


@pytest.mark.parametrize("name", SYSTOLIC)
def test_closed_form_is_the_scalesim_count(name):
    """docs/design.md section 3.2: folds x (preload + streamed + R + C - 2), without overlap."""
    kind = DATAFLOWS.get(name).kind
    for (M, N, K), (R, C) in (((7, 5, 3), (2, 3)), ((64, 33, 17), (8, 4)), ((1, 1, 1), (1, 1))):
        d = {"M": M, "N": N, "K": K}
        folds = -(-d[kind.row_dim] // R) * -(-d[kind.col_dim] // C)
        want = folds * ((R if kind.preload else 0) + d[kind.time_dim] + R + C - 2)
        assert kind.closed_form_cycles(M, N, K, R, C) == want == closed_form_cycles(name, M, N, K, R, C)


def test_display_order_keeps_the_figures_colours():
    assert display_order()[:3] == ["os", "ws", "is"]
    assert sorted(display_order()) == DATAFLOWS.names()


def test_kind_refuses_a_bad_mapping():
    with pytest.raises(ValueError, match="permutation"):
        DataflowKind(name="x", label="x", rank=9, row_dim="M", col_dim="M", time_dim="K", outer="row")
    with pytest.raises(ValueError, match="outer"):
        DataflowKind(name="x", label="x", rank=9, row_dim="M", col_dim="N", time_dim="K", outer="diagonal")


class _ColumnOuterOutputStationary(SystolicDataflow):
    """A toy dataflow: output stationary with the N blocks as the outer fold loop."""

    kind = DataflowKind(name="toy_os_col", label="toy", rank=99, row_dim="M", col_dim="N", time_dim="K",
                        outer="col")


@pytest.fixture
def toy(monkeypatch):
    """The toy dataflow registered for one test (the registry is restored afterwards)."""
    df = _ColumnOuterOutputStationary()
    monkeypatch.setitem(DATAFLOWS._items, df.name, df)
    return df


def test_a_new_dataflow_is_one_class(toy):
    rng = np.random.default_rng(3)
    M, N, K, R, C = 9, 7, 5, 4, 3
    gemm = Gemm(M, N, K)
    cfg = load_accel("edge32", ["array.rows=4", "array.cols=3", "array.fold_overlap=false"])
    # the fast model: the mapper plans it, the engine runs it by name
    plan = toy.plan(gemm, cfg)
    assert plan.schedule.compute_total_cycles == toy.kind.closed_form_cycles(M, N, K, R, C)
    out = run_gemm(gemm, cfg, toy.name)
    assert out.compute_cycles == toy.compute_cycles(gemm, R, C, False)
    # the reference twin takes the same kind and agrees, values included
    a, b = rng.integers(-3, 4, (M, K)), rng.integers(-3, 4, (K, N))
    for overlap in (False, True):
        spec = ArraySpec(rows=R, cols=C, dataflow=toy.kind, fold_overlap=overlap)
        ref = run_array(a, weight_slots(b, None), N, spec, ZeroLogic())
        assert ref.cycles == toy.compute_cycles(gemm, R, C, overlap)
        assert np.array_equal(ref.out, a @ b)
    assert closed_form_cycles(toy.name, M, N, K, R, C) == toy.kind.closed_form_cycles(M, N, K, R, C)
    assert display_order("systolic")[-1] == toy.name
