"""Each Numba kernel agrees with its NumPy twin (property tests)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sparsesim.hardware import kernels as k

masks = hnp.arrays(np.uint8, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=40),
                   elements=st.integers(0, 1))


@settings(max_examples=60, deadline=None)
@given(nz=masks, block=st.integers(1, 9))
def test_block_any(nz, block):
    starts = np.arange(0, nz.shape[0], block, dtype=np.int64)
    ends = np.minimum(starts + block, nz.shape[0])
    assert np.array_equal(k.block_any(nz, starts, ends), k.block_any_ref(nz, starts, ends))


@settings(max_examples=60, deadline=None)
@given(data=st.data(), t=st.integers(1, 30))
def test_lockstep_steps(data, t):
    a = data.draw(hnp.arrays(np.uint8, (data.draw(st.integers(1, 6)), t), elements=st.integers(0, 1)))
    b = data.draw(hnp.arrays(np.uint8, (data.draw(st.integers(1, 6)), t), elements=st.integers(0, 1)))
    cost = data.draw(hnp.arrays(np.int64, t, elements=st.integers(1, 8)))
    assert np.array_equal(k.lockstep_steps(a, b, cost), k.lockstep_steps_ref(a, b, cost))


@settings(max_examples=60, deadline=None)
@given(data=st.data(), block=st.integers(1, 8), window=st.integers(1, 12))
def test_decoupled_steps(data, block, window):
    lanes = data.draw(masks)
    col = data.draw(hnp.arrays(np.uint8, (data.draw(st.integers(1, 4)), lanes.shape[1]), elements=st.integers(0, 1)))
    fast = k.decoupled_steps(lanes, block, col, window)
    assert np.array_equal(fast, k.decoupled_steps_ref(lanes, block, col, window))
    # window 1 is lockstep: a step costs one cycle if any lane of the block needs it
    starts = np.arange(0, lanes.shape[0], block, dtype=np.int64)
    ends = np.minimum(starts + block, lanes.shape[0])
    lock = k.lockstep_steps_ref(k.block_any_ref(lanes, starts, ends), col, np.ones(lanes.shape[1], dtype=np.int64))
    assert np.array_equal(k.decoupled_steps(lanes, block, col, 1), lock)
    assert (fast <= lock).all()  # decoupling never costs cycles


def nm_prune_brute(w: np.ndarray, n: int, m: int) -> np.ndarray:
    """Per row, per group of ``m`` consecutive entries (the last one may be short): keep the
    ``n`` largest magnitudes, the earlier entry on ties; plain Python, no shared code."""
    out = np.zeros_like(w)
    for r in range(w.shape[0]):
        for g0 in range(0, w.shape[1], m):
            group = list(range(g0, min(g0 + m, w.shape[1])))
            for j in sorted(group, key=lambda j: (-abs(float(w[r, j])), j))[:n]:
                out[r, j] = w[r, j]
    return out


@settings(max_examples=60, deadline=None)
@given(w=hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=24),
                    elements=st.one_of(st.floats(-4, 4, width=32), st.sampled_from([0.0, 1.0, -1.0, 2.0]))),
       nm=st.sampled_from([(1, 4), (2, 4), (1, 8), (2, 8), (4, 8), (1, 16)]))
def test_nm_prune(w, nm):
    n, m = nm
    fast, ref = k.nm_prune(w, n, m), k.nm_prune_ref(w, n, m)
    assert np.array_equal(fast, ref)
    assert np.array_equal(fast, nm_prune_brute(w, n, m))
    # whatever the tie rule: in every group the kept entries are unchanged, they are the
    # min(n, nonzeros) largest, and no dropped entry is larger than a kept one
    for r in range(w.shape[0]):
        for g0 in range(0, w.shape[1], m):
            src, got = w[r, g0:g0 + m], fast[r, g0:g0 + m]
            kept = got != 0
            assert np.array_equal(got[kept], src[kept])
            assert kept.sum() == min(n, np.count_nonzero(src))
            dropped = (src != 0) & ~kept
            if kept.any() and dropped.any():
                assert np.abs(src[kept]).min() >= np.abs(src[dropped]).max()


@settings(max_examples=60, deadline=None)
@given(x=hnp.arrays(np.float64, (5, 7), elements=st.floats(-3, 3)), theta=st.floats(0, 2))
def test_delta_step(x, theta):
    ref_a, ref_b = np.zeros(7), np.zeros(7)
    for t in range(x.shape[0]):
        assert np.array_equal(k.delta_step(x[t], ref_a, theta), k.delta_step_ref(x[t], ref_b, theta))
        assert np.array_equal(ref_a, ref_b)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), n_ops=st.integers(1, 3), n_folds=st.integers(1, 40))
def test_pack_tiles(data, n_ops, n_folds):
    loads = data.draw(hnp.arrays(np.int64, (n_ops, n_folds), elements=st.integers(0, 100)))
    caps = data.draw(hnp.arrays(np.int64, n_ops, elements=st.integers(1, 150)))
    starts = k.pack_tiles(loads, caps)
    assert np.array_equal(starts, k.pack_tiles_ref(loads, caps))
    # every tile fits its halves unless it is a single oversized fold, and tiles are maximal
    bounds = list(starts) + [n_folds]
    for a, b in zip(bounds, bounds[1:]):
        used = loads[:, a:b].sum(axis=1)
        assert b - a == 1 or (used <= caps).all()
        if b < n_folds:
            assert (used + loads[:, b] > caps).any()
