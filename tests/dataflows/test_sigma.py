"""The sigma array kind: its cycle rule worked by hand on tiny GEMMs (dense closed form, folding,
packing, streamed-zero skipping, STONNE's ART collection rule), STONNE's structural properties,
the one-line refusals of its config, and a few stored STONNE cases (the full reference runs in
``sparsesim validate architectures --only sigma_stonne``)."""

from __future__ import annotations

import numpy as np
import pytest

from sparsesim.core.errors import InputError
from sparsesim.dataflows import DATAFLOWS
from sparsesim.dataflows.sigma import (Params, art_collection_cycles, art_output, iterations, reorder_vectors,
                                       stonne_overrides)
from sparsesim.dataflows.tiled import ArrayWork
from sparsesim.hardware.config import to_dict
from sparsesim.hardware.presets import load_accel
from sparsesim.references import REFERENCES
from sparsesim.references.sigma import drain_cycles, load_cases, model_cycles
from sparsesim.simulation.engine import check_dataflow
from sparsesim.workloads.gemm import Gemm


def _cfg(P: int = 64, *extra: str):
    """The sigma preset cut to one row of P multipliers, ideal DRAM."""
    return load_accel("sigma", ["array.rows=1", f"array.cols={P}", "dram.ideal=true", *extra])


def _cycles(df: str, gemm: Gemm, cfg, work=None) -> int:
    plan = DATAFLOWS.get(df).plan(gemm, cfg, work)
    return int(plan.schedule.compute_cycles.sum())


def _work(a: np.ndarray, b: np.ndarray) -> ArrayWork:
    """Both operands' zeros skipped (zero_skip:both:skipping), from their masks."""
    M, K = a.shape
    N = b.shape[1]
    eff = int(a.sum(axis=0, dtype=np.int64) @ b.sum(axis=1, dtype=np.int64))
    return ArrayWork(Gemm(M, N, K, 1, None), a.astype(np.uint8), b.astype(np.uint8), M * N * K, eff, True)


# ---------------------------------------------------------------- dense closed forms, by hand
def test_dense_closed_form_stationary_a_and_b():
    # P = 64, K = 16 <= P: floor(64/16) = 4 rows per iteration.
    # sigma_sta_a, M=20, N=10: ceil(20/4) = 5 iterations; drain -1 -> 3 + log2(64) = 9.
    #   serial: 5 x (1 config + ceil(64/64)=1 load + N=10 streamed + 9 drain) = 5 x 21 = 105
    #   overlapped: first load 2 + 5 x max(10, 2) + one drain 9 = 61
    # sigma_sta_b: the 10 columns of B are stationary, 4 per iteration -> 3 iterations, M=20 streamed:
    #   serial: 3 x (1 + 1 + 20 + 9) = 93; overlapped: 2 + 3 x 20 + 9 = 71
    g = Gemm(20, 10, 16, 1, None)
    serial = _cfg(64, "sigma.overlap_iterations=false")
    assert _cycles("sigma_sta_a", g, serial) == 105
    assert _cycles("sigma_sta_b", g, serial) == 93
    assert _cycles("sigma_sta_a", g, _cfg(64)) == 61
    assert _cycles("sigma_sta_b", g, _cfg(64)) == 71
    # the formula in general: ceil(M / floor(P/K)) x (2 + N + drain), serial
    for M, N, K in ((7, 3, 5), (33, 12, 64), (1, 1, 1), (50, 9, 21)):
        want = -(-M // (64 // K)) * (2 + N + 9)
        assert _cycles("sigma_sta_a", Gemm(M, N, K, 1, None), serial) == want


def test_a_vector_wider_than_the_array_folds():
    # K = 150 > P = 64: 1 + ceil((150 - 64) / 63) = 3 passes per row; M = 2 rows -> 6 iterations,
    # serial: 6 x (1 + 1 + N=5 + 9) = 96 (the psum enters beside the vector: still 1 cycle per vector)
    serial = _cfg(64, "sigma.overlap_iterations=false")
    assert _cycles("sigma_sta_a", Gemm(2, 5, 150, 1, None), serial) == 96
    plan = DATAFLOWS.get("sigma_sta_a").plan(Gemm(2, 5, 150, 1, None), serial)
    assert plan.folds == 6


def test_packing_whole_vectors_in_order_and_reordered():
    # nonzeros per stationary vector 30, 40, 20, 70 on P = 64:
    # in order: [30] (30 + 40 > 64), [40, 20], [70] folded over 1 + ceil(6/63) = 2 passes -> 4 iterations
    p = Params.of(_cfg(64))
    sizes = [30, 40, 20, 70]
    mask = np.zeros((4, 100), dtype=bool)
    for i, z in enumerate(sizes):
        mask[i, :z] = True
    it = iterations(mask, p)
    assert it.mapped.tolist() == [30, 60, 64, 6] and it.folded.tolist() == [False, False, False, True]
    # STONNE's -optimize order for 30, 40, 20, 24: largest fitting first -> [40, 24], [30, 20]: 2 iterations
    assert reorder_vectors(np.array([30, 40, 20, 24]), 64).tolist() == [1, 3, 0, 2]
    mask = np.zeros((4, 64), dtype=bool)
    for i, z in enumerate([30, 40, 20, 24]):
        mask[i, :z] = True
    assert iterations(mask, p).mapped.size == 3
    assert iterations(mask, Params.of(_cfg(64, "sigma.reorder=true"))).mapped.tolist() == [64, 50]


def test_streamed_zeros_skipped_or_sent():
    # P = 64, A 4 x 8 dense (one iteration of 32 mapped), B 8 x 6 whose columns 0..2 are all zero.
    # paper (skip): only the 3 vectors with an effectual product stream: 1 + 1 + 3 + 9 = 14 (serial)
    # STONNE-like (sent): all 6 stream: 1 + 1 + 6 + 9 = 17
    a = np.ones((4, 8), dtype=bool)
    b = np.ones((8, 6), dtype=bool)
    b[:, :3] = False
    serial = "sigma.overlap_iterations=false"
    assert _cycles("sigma_sta_a", Gemm(4, 6, 8, 1, None), _cfg(64, serial), _work(a, b)) == 14
    assert _cycles("sigma_sta_a", Gemm(4, 6, 8, 1, None), _cfg(64, serial, "sigma.skip_streaming_zeros=false"),
                   _work(a, b)) == 17


def test_limited_distribution_bandwidth():
    # benes, dn_bandwidth 16 on P = 64: one row of K = 40 dense -> 40 needed elements per vector,
    # ceil(40/16) = 3 cycles per vector; load 1 + ceil(40/16) = 4; serial: 4 + N=5 x 3 + 9 = 28
    cfg = _cfg(64, "sigma.overlap_iterations=false", "sigma.dn_bandwidth=16")
    assert _cycles("sigma_sta_a", Gemm(1, 5, 40, 1, None), cfg) == 28
    # tree (STONNE), 16 ports of 4 multipliers: each port's 4 multipliers need 4 distinct k ->
    # 4 cycles per vector; load 1 + min(40, 4) = 5; serial: 5 + 5 x 4 + 9 = 34
    cfg = _cfg(64, "sigma.overlap_iterations=false", "sigma.dn_bandwidth=16", "sigma.distribution=tree")
    assert _cycles("sigma_sta_a", Gemm(1, 5, 40, 1, None), cfg) == 34


def test_stonne_art_collection_rule_by_hand():
    # P = 8: clusters of 2 on multipliers [0,1], [2,3], [4,5]. Level 2 (the leaves' parents, 4
    # switches): [0,1] ends alone at switch 0; [2,3] at switch 1 (its right span is empty);
    # [4,5] at switch 2. Switches 1 and 2 are a forwarding pair and share one bus line.
    assert [art_output(s, 2, 8) for s in (0, 2, 4)] == [(2, 0), (2, 1), (2, 2)]
    assert art_collection_cycles([2, 2], 8, 8) == 1
    assert art_collection_cycles([2, 2, 2], 8, 8) == 2
    # one cluster over all 8 leaves ends at the root
    assert art_output(0, 8, 8) == (0, 0)


# ---------------------------------------------------------------- properties
def test_stonne_mode_cycles_ignore_streaming_density():
    """STONNE sends streamed zeros: its cycles follow the stationary bitmap alone (memo 1.3)."""
    rng = np.random.default_rng(3)
    a = rng.random((24, 40)) < 0.4
    cfg = _cfg(64, *stonne_overrides(drain_cycles(64), 64, 64))
    g = Gemm(24, 30, 40, 1, None)
    got = {_cycles("sigma_sta_a", g, cfg, _work(a, rng.random((40, 30)) < d)) for d in (0.05, 0.5, 1.0)}
    assert len(got) == 1
    # the paper-like default skips them: sparser streaming never costs more, and can cost less
    paper = [_cycles("sigma_sta_a", g, _cfg(64), _work(a, rng.random((40, 30)) < d)) for d in (0.02, 1.0)]
    assert paper[0] < paper[1]


def test_sparser_stationary_never_slower_and_within_bounds():
    rng = np.random.default_rng(5)
    g = Gemm(40, 24, 56, 1, None)
    b = np.ones((56, 24), dtype=bool)
    for df in ("sigma_sta_a", "sigma_sta_b"):
        dense = _cycles(df, g, _cfg(64))
        for d in (1.0, 0.6, 0.3, 0.1):
            a = rng.random((40, 56)) < d
            w = _work(a, b) if df == "sigma_sta_a" else _work(b.T.copy(), a.T.copy())
            c = _cycles(df, Gemm(w.gemm.M, w.gemm.N, w.gemm.K, 1, None), _cfg(64), w)
            assert -(-w.macs_effectual // 64) <= c <= dense


def test_config_refusals_name_the_key():
    with pytest.raises(InputError, match=r"^array.nm_ratios: "):
        check_dataflow(load_accel("sigma", ["array.nm_ratios=['2:4']"]), "best")
    with pytest.raises(InputError, match=r"^array.lanes: "):
        check_dataflow(load_accel("sigma", ["array.lanes=decoupled"]), "best")
    with pytest.raises(InputError, match=r"^sigma.dn_bandwidth: "):
        check_dataflow(_cfg(64, "sigma.dn_bandwidth=128"), "best")
    with pytest.raises(InputError, match=r"^sigma.dn_bandwidth: "):
        check_dataflow(_cfg(64, "sigma.distribution=tree", "sigma.dn_bandwidth=48"), "best")
    with pytest.raises(InputError, match=r"^array.cols: "):
        check_dataflow(_cfg(48, "sigma.reduction=art"), "best")
    with pytest.raises(InputError, match=r"^sigma.distribution: "):
        load_accel("sigma", ["sigma.distribution=crossbar"])


def test_sigma_keys_are_not_recorded_on_other_presets():
    assert "sigma" not in to_dict(load_accel("edge32"))
    # at its defaults (the paper-like preset) the section is left out; set away from them it is recorded
    assert "sigma" not in to_dict(load_accel("sigma"))
    assert to_dict(load_accel("sigma", ["sigma.min_cluster=3"]))["sigma"]["min_cluster"] == 3


# ---------------------------------------------------------------- against stored STONNE runs
def test_a_few_stored_stonne_cases_agree():
    """One compared case per (shape, ms_size), the stated tolerance (references/data/README.md)."""
    cases = [c for c in load_cases() if c.group == "compared"]
    assert len(cases) == 168 and REFERENCES.get("sigma_stonne").array_kind == "sigma"
    seen = set()
    for c in cases:
        key = (c.M, c.N, c.K, c.ms_size)
        if key in seen or c.density_mk not in (0.3, 0.6):
            continue
        seen.add(key)
        model, iters = model_cycles(c, drain_cycles(c.ms_size, c.dn_bw))
        assert abs(model - c.stonne_cycles) <= 4 * iters, c.case
    assert len(seen) == 12
