"""Activation policies zero exactly what they say, checked against brute force on small tensors.

The brute force walks each channel (or row) in plain Python, sorts its elements by
``(|x|, position)`` and counts: it shares no code with the NumPy implementation. Integer-valued
activations make ties common, so the tie rule is exercised too.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsesim.sparsity.activation_policy import ActivationPolicyConfig


def _lines(x: np.ndarray, axis: int) -> list[list[tuple[int, ...]]]:
    """The element positions of ``x`` grouped by their index along ``axis``, each group in
    row-major order of the remaining axes."""
    axis = axis % x.ndim
    groups: list[list[tuple[int, ...]]] = [[] for _ in range(x.shape[axis])]
    for pos in np.ndindex(*x.shape):
        groups[pos[axis]].append(pos)
    return groups


def channel_threshold_brute(x: np.ndarray, s: float, axis: int) -> np.ndarray:
    """Per channel: zero the floor(s * n) smallest magnitudes, lowest position first on ties."""
    out = x.copy()
    for positions in _lines(x, axis):
        n = len(positions)
        k = math.floor(s * n + 1e-9)
        order = sorted(range(n), key=lambda i: (abs(float(x[positions[i]])), i))
        for i in order[:k]:
            out[positions[i]] = 0
    return out


def topk_brute(x: np.ndarray, keep: float, axis: int) -> np.ndarray:
    """Per row (all channels of one pixel/token): keep the ceil(keep * n) largest magnitudes
    (at least one), lowest channel first on ties; zero the rest."""
    moved = np.moveaxis(x, axis, -1)
    out = np.zeros_like(moved)
    for pos in np.ndindex(*moved.shape[:-1]):
        row = moved[pos]
        n = row.shape[0]
        k = max(1, math.ceil(keep * n - 1e-9))
        order = sorted(range(n), key=lambda i: (-abs(float(row[i])), i))
        for i in order[:k]:
            out[pos + (i,)] = row[i]
    return np.moveaxis(out, -1, axis)


def threshold_brute(x: np.ndarray, thr: float) -> np.ndarray:
    out = x.copy()
    for pos in np.ndindex(*x.shape):
        if abs(float(x[pos])) < thr:
            out[pos] = 0
    return out


tensors = st.tuples(st.integers(0, 2**31 - 1), st.sampled_from([(2, 3, 4, 4), (1, 5, 3, 2), (6, 7), (3, 1), (2, 10)]),
                    st.booleans())


def _draw(seed: int, shape: tuple, ties: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if ties:  # few distinct magnitudes, both signs, and some zeros (ReLU-like)
        return rng.integers(-3, 4, shape).astype(np.float32)
    return (rng.standard_normal(shape) * (rng.random(shape) < 0.8)).astype(np.float32)


@settings(max_examples=60, deadline=None)
@given(t=tensors, s=st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.7, 0.99, 1.0]))
def test_channel_threshold_zeroes_exactly_the_asked_fraction_per_channel(t, s):
    seed, shape, ties = t
    x = _draw(seed, shape, ties)
    axis = 1 if x.ndim == 4 else -1
    got = ActivationPolicyConfig(method="channel_threshold", sparsity=s).apply(x, axis)
    want = channel_threshold_brute(x, s, axis)
    assert np.array_equal(got, want)
    # never fewer zeros than the channel had, never more than it had or was asked for
    for positions in _lines(x, axis):
        n = len(positions)
        own = sum(1 for p in positions if x[p] == 0)
        zeros = sum(1 for p in positions if got[p] == 0)
        assert zeros == max(own, math.floor(s * n + 1e-9))


def test_channel_threshold_two_rows_at_30_percent_zero_nothing():
    # the case: a channel of 2 elements at s = 0.3 asks for floor(0.6) = 0 zeros;
    # a quantile threshold with `mag > thr` zeroed both
    x = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)  # 2 rows (tokens), 2 channels
    got = ActivationPolicyConfig(method="channel_threshold", sparsity=0.3).apply(x, -1)
    assert np.array_equal(got, x)
    got = ActivationPolicyConfig(method="channel_threshold", sparsity=0.5).apply(x, -1)
    assert np.array_equal(got, np.array([[0.0, 0.0], [3.0, 4.0]], dtype=np.float32))


@settings(max_examples=60, deadline=None)
@given(t=tensors, keep=st.sampled_from([0.01, 0.2, 0.25, 0.5, 0.7, 1.0]))
def test_topk_keeps_exactly_the_largest_per_row(t, keep):
    seed, shape, ties = t
    x = _draw(seed, shape, ties)
    axis = 1 if x.ndim == 4 else -1
    got = ActivationPolicyConfig(method="topk", keep_fraction=keep).apply(x, axis)
    assert np.array_equal(got, topk_brute(x, keep, axis))


@settings(max_examples=60, deadline=None)
@given(t=tensors, thr=st.sampled_from([0.0, 0.5, 1.0, 2.0, 10.0]))
def test_threshold_zeroes_exactly_the_small_magnitudes(t, thr):
    seed, shape, ties = t
    x = _draw(seed, shape, ties)
    got = ActivationPolicyConfig(method="threshold", threshold=thr).apply(x, 1 if x.ndim == 4 else -1)
    assert np.array_equal(got, threshold_brute(x, thr))


@pytest.mark.parametrize("method", ["threshold", "channel_threshold", "topk"])
def test_policies_leave_their_input_alone(method):
    x = np.arange(-6, 6, dtype=np.float32).reshape(3, 4)
    before = x.copy()
    ActivationPolicyConfig(method=method).apply(x, -1)
    assert np.array_equal(x, before)
