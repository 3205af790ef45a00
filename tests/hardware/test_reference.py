"""The cycle-by-cycle reference array: hand-worked cases, outputs, SCALE-Sim's closed form, and
a sample of ``validate reference`` cases held against the fast model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sparsesim.dataflows import DATAFLOWS
from sparsesim.hardware.reference import ArraySpec, DeltaEncoder, ZeroLogic, nm_prune_columns, run_array, weight_slots
from sparsesim.validate import Case, closed_form_cycles, draw_case, run_case
from sparsesim.workloads.gemm import Phase


def _run(a, b, df, R, C, overlap, nm=None, zeros=ZeroLogic(), lanes="systolic", window=4):
    spec = ArraySpec(rows=R, cols=C, dataflow=DATAFLOWS.get(df).kind, fold_overlap=overlap, lanes=lanes,
                     sync_window_steps=window)
    return run_array(np.asarray(a), weight_slots(np.asarray(b), nm), np.asarray(b).shape[1], spec, zeros)


def _ints(rng, shape, density=1.0):
    return rng.integers(-5, 6, shape) * (rng.random(shape) < density)


# ---------------------------------------------------------------- hand-worked dense cases


def test_os_2x2_one_fold():
    """os, 2x2 array, M = N = 2, K = 3: one fold. A[i, k] meets B[k, j] in PE(i, j) at cycle
    k + i + j, so the last MAC is PE(1, 1)'s k = 2 at cycle 2 + 1 + 1 = 4: 5 cycles (cycles
    0..4), K + R + C - 2 = 3 + 2 + 2 - 2 = 5. One fold: overlap changes nothing."""
    a, b = np.arange(1, 7).reshape(2, 3), np.arange(1, 7).reshape(3, 2)
    for overlap in (False, True):
        run = _run(a, b, "os", 2, 2, overlap)
        assert run.cycles == 5
        assert run.out.tolist() == [[22, 28], [49, 64]]
        assert run.macs_performed == 12 and run.macs_gated == 0 and run.rf_accesses == 36


def test_os_2x2_two_folds():
    """os, 2x2, M = 4, N = 2: two folds (rows 0-1, rows 2-3).

    K = 3. Without overlap each fold is 3 + 2 + 2 - 2 = 5 cycles: 10. With overlap the second
    fold enters right behind the first, max(K, R) = 3 cycles later, and drains: 3 + 3 + 2 = 8.
    K = 1: without overlap 2 x (1 + 2) = 6; with overlap the output block swap through the
    2-deep chain spaces the folds by max(1, 2) = 2: 2 + 1 + 2 = 5.
    """
    rng = np.random.default_rng(1)
    for k, expect in ((3, (10, 8)), (1, (6, 5))):
        a, b = _ints(rng, (4, k)), _ints(rng, (k, 2))
        for overlap, cycles in zip((False, True), expect):
            run = _run(a, b, "os", 2, 2, overlap)
            assert run.cycles == cycles, (k, overlap)
            assert np.array_equal(run.out, a @ b)


def test_ws_2x2_two_folds():
    """ws, 2x2, M = 3, N = 2, K = 4: K is cut into two row blocks of 2 (two folds).

    Without overlap a fold is preload (2: one block row per cycle down the chain), stream
    M = 3, drain R + C - 2 = 2: 7 cycles, 14 in all (SCALE-Sim: 2 x (3 + 4 + 2 - 2) = 14). With
    overlap: preload 2, the second block preloads while the first streams, so the second fold
    starts max(3, 2) = 3 cycles later, at 5, and ends 3 + 2 = 5 cycles after that: 10.
    """
    rng = np.random.default_rng(2)
    a, b = _ints(rng, (3, 4)), _ints(rng, (4, 2))
    for overlap, cycles in ((False, 14), (True, 10)):
        run = _run(a, b, "ws", 2, 2, overlap)
        assert run.cycles == cycles
        assert np.array_equal(run.out, a @ b)  # partial sums of both K blocks added in the buffer


def test_is_2x2_two_folds():
    """is, 2x2, M = 2, N = 3, K = 4: A (K x M) stationary in two row blocks, B streams N = 3.
    Same arithmetic as ws with N streamed: 14 cycles without overlap, 10 with."""
    rng = np.random.default_rng(3)
    a, b = _ints(rng, (2, 4)), _ints(rng, (4, 3))
    for overlap, cycles in ((False, 14), (True, 10)):
        run = _run(a, b, "is", 2, 2, overlap)
        assert run.cycles == cycles
        assert np.array_equal(run.out, a @ b)


@pytest.mark.parametrize("df", ["os", "ws", "is"])
def test_dense_matches_scalesim_closed_form_and_product(df):
    """Dense, no overlap: SCALE-Sim v3's closed form (docs/design.md section 3.2) on shapes with ragged edges,
    square and non-square arrays; the outputs are A @ B exactly."""
    rng = np.random.default_rng(4)
    for R, C, M, N, K in ((1, 1, 3, 2, 5), (3, 5, 7, 11, 4), (4, 2, 9, 3, 10), (8, 8, 17, 9, 13), (2, 7, 1, 15, 1)):
        a, b = _ints(rng, (M, K), 0.7), _ints(rng, (K, N), 0.7)
        run = _run(a, b, df, R, C, False)
        assert run.cycles == closed_form_cycles(df, M, N, K, R, C)
        assert np.array_equal(run.out, a @ b)
        assert run.macs_performed == M * N * K  # no zero detection: every MAC runs


# ---------------------------------------------------------------- sparse hand-worked cases


def test_os_lockstep_input_skipping():
    """os on a 2x1 array, M = 2, N = 1, K = 4. Column k = 1 of A is zero in both rows, so that
    step is skipped; k = 3 is zero only in row 0, so it runs (row 1 needs it) and row 0 gates
    it. 3 steps: 3 + 2 + 1 - 2 = 4 cycles; 2 x 3 = 6 MAC slots: 5 performed, 1 gated."""
    a = np.array([[1, 0, 2, 0], [3, 0, 4, 5]])
    b = np.array([[1], [2], [3], [4]])
    run = _run(a, b, "os", 2, 1, False, zeros=ZeroLogic(skip_a=True, detect_a=True))
    assert run.fold_steps == (3,) and run.cycles == 4
    assert (run.macs_performed, run.macs_gated, run.rf_accesses) == (5, 1, 15)
    assert np.array_equal(run.out, a @ b)


def test_is_nm_weight_skipping_on_packed_slots():
    """is on a 2x1 array, M = 1, K = 4 at 2:4: one group, so two slot rows; N = 3 weight columns
    stream. Column 0 keeps [1, 0, 0, 0] (slot 0 holds the 1, slot 1 pads with 0), column 1 is
    all zero (its step is skipped: no slot of the fold is nonzero), column 2 keeps 2 and 3.
    Two steps: preload 2 + 2 + (2 + 1 - 2) = 5 cycles; 2 x 2 slots: 3 performed, 1 gated (the
    padding). Outputs: 1 x 1 = 1, 0, 2 x 2 + 3 x 3 = 13 (indices select A[0, 1] and A[0, 2])."""
    a = np.array([[1, 2, 3, 4]])
    b = np.array([[1, 0, 0], [0, 0, 2], [0, 0, 3], [0, 0, 0]])
    run = _run(a, b, "is", 2, 1, False, nm=(2, 4), zeros=ZeroLogic(skip_b=True, detect_b=True))
    assert run.fold_steps == (2,) and run.cycles == 5
    assert (run.macs_performed, run.macs_gated) == (3, 1)
    assert run.out.tolist() == [[1, 0, 13]]


def test_decoupled_lanes_and_sync_window():
    """Rows 0 and 1 have work in disjoint halves of K = 4 (A = [[1,1,0,0],[0,0,1,1]]).
    Lockstep: every step has work for some row: 4 steps. Decoupled with a window of 2: each
    window costs its busiest lane, 2 + 2 = 4. Window 4: both lanes do their 2 steps side by
    side: 2 steps, 2 + 2 + 1 - 2 = 3 cycles, and no idle slot."""
    a = np.array([[1, 1, 0, 0], [0, 0, 1, 1]])
    b = np.array([[1], [2], [3], [4]])
    z = ZeroLogic(skip_a=True, detect_a=True)
    assert _run(a, b, "os", 2, 1, False, zeros=z).fold_steps == (4,)
    assert _run(a, b, "os", 2, 1, False, zeros=z, lanes="decoupled", window=2).fold_steps == (4,)
    wide = _run(a, b, "os", 2, 1, False, zeros=z, lanes="decoupled", window=4)
    assert wide.fold_steps == (2,) and wide.cycles == 3
    assert (wide.macs_performed, wide.macs_gated) == (4, 0)
    assert np.array_equal(wide.out, a @ b)


def test_nm_multiplexer_picks_by_index():
    """2:4 on a 1x1 os array: the column [0, 5, 0, 7] keeps positions 1 and 3, so the PE
    multiplies 5 and 7 by the activations the indices select, A[0, 1] = 2 and A[0, 3] = 4:
    2 x 5 + 4 x 7 = 38, in 2 slot cycles instead of 4."""
    a = np.array([[1, 2, 3, 4]])
    b = np.array([[0], [5], [0], [7]])
    run = _run(a, b, "os", 1, 1, False, nm=(2, 4))
    assert run.out.tolist() == [[38]] and run.cycles == 2


def test_nm_selection_ties_and_short_groups():
    """The n largest magnitudes per group, ties to the lower index; a short last group keeps
    min(n, length); K = 6 at 2:4 compacts to 2 + 2 = 4 slots, K = 5 to 2 + 1 = 3."""
    col = np.array([[3], [-3], [3], [1], [0], [2]])
    assert nm_prune_columns(col, 2, 4)[:, 0].tolist() == [3, -3, 0, 0, 0, 2]
    assert weight_slots(col, (2, 4)).slots == 4
    assert weight_slots(col[:5], (2, 4)).slots == 3
    assert weight_slots(col[:2], (2, 4)).slots == 2 and weight_slots(col[:2], (2, 4)).m == 1  # K <= n: dense


@pytest.mark.parametrize("df", ["os", "ws", "is"])
def test_nm_outputs_are_the_pruned_product(df):
    rng = np.random.default_rng(5)
    for n, m in ((1, 4), (2, 4), (2, 8)):
        a, b = _ints(rng, (9, 13), 0.8), _ints(rng, (13, 6), 0.9)
        for overlap in (False, True):
            run = _run(a, b, df, 3, 2, overlap, nm=(n, m))
            assert np.array_equal(run.out, a @ nm_prune_columns(b, n, m))


def test_delta_accumulates_what_was_sent():
    """theta = 0: the accumulated output equals x_t . B at every step (exact for integers). A
    repeated input sends nothing: on a 1x2 os array with M = 3 the three one-row folds stream
    no step, so they are spaced max(0, R) = 1 apart and the last drains R + C - 2 = 1: 3 cycles."""
    rng = np.random.default_rng(6)
    b = _ints(rng, (5, 2))
    x0 = _ints(rng, (3, 5), 0.7)
    x1 = x0 + _ints(rng, x0.shape, 0.3)
    enc = DeltaEncoder(x0.shape, 2, 0.0)
    for x in (x0, x1, x1):
        run = _run(enc.encode(x), b, "os", 1, 2, True, zeros=ZeroLogic(skip_a=True, detect_a=True))
        assert np.array_equal(enc.accumulate(run.out), x @ b)
    assert run.fold_steps == (0, 0, 0) and run.cycles == 3
    assert run.macs_performed == 0 and run.macs_gated == 0


# ---------------------------------------------------------------- the validator


def test_validate_sample_agrees():
    """A sample of ``sparsesim validate reference`` cases: the fast model agrees exactly."""
    outcomes = [run_case(draw_case(11, i)) for i in range(120)]
    bad = [o.as_dict() for o in outcomes if not o.agree]
    assert not bad, bad[:3]
    assert all(o.values_ok for o in outcomes)
    kinds = {f.split(":")[0] for o in outcomes for f in o.case.features}
    assert kinds == {"nm", "zero_skip", "delta"}
    assert any(o.closed_form_ok for o in outcomes)


def test_validate_bdwp_bwd_data_case():
    """bwd_data under BDWP: B is the dense W pruned along output features (K of dY . W)."""
    rng = np.random.default_rng(7)
    w = (rng.integers(-4, 5, (12, 7))).astype(np.float32)  # 12 output features (K), 7 inputs (N)
    dy = (rng.integers(-4, 5, (5, 12))).astype(np.float32)
    case = Case(0, "os", 3, 2, True, "systolic", 4, Phase.BWD_DATA, 5, 7, 12, ("nm:2:4",),
                (np.zeros((5, 7), np.float32),), w, dy)
    out = run_case(case)
    assert out.agree and out.values_ok
    assert out.reference_events["macs_performed"] == 5 * 7 * 6  # 12 -> 6 slots per output


def test_validator_flags_a_wrong_fast_model(monkeypatch):
    """A fast model one cycle off must be reported as a disagreement."""
    import sparsesim.validate as v

    real = v.fast_rows
    monkeypatch.setattr(v, "fast_rows", lambda case: [dict(r, compute_cycles=r["compute_cycles"] + 1) for r in real(case)])
    out = v.run_case(draw_case(0, 0))
    assert not out.agree and "cycles" in out.problems[0]


def test_draws_are_deterministic():
    a, b = draw_case(3, 17), draw_case(3, 17)
    assert dataclasses.astuple(a)[:12] == dataclasses.astuple(b)[:12]
    assert all(np.array_equal(x, y) for x, y in zip(a.inputs + (a.weight, a.grad), b.inputs + (b.weight, b.grad)))
