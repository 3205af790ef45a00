"""Operands as the reference array's feeders hold them.

* Activations are read in *groups* of ``m`` consecutive elements along the reduction
  dimension K (``m = 1`` without N:M): a sparse MAC unit multiplexes one of them by index.
* Weights ``B[K x N]`` are held as *slots*: for every column ``j`` and every group of ``m``
  rows, the ``n`` kept values plus their ``log2(m)``-bit positions in the group (SAT, Fang et
  al., IEEE TCAD 2023). The compacted reduction has ``(K // m) * n + min(n, K % m)`` slots. A
  group with fewer than ``n`` nonzeros stores its nonzeros first and pads with zero-valued
  slots, so slot ``t`` of a group is nonzero exactly when the group holds more than ``t``
  nonzeros (the packed layout the zero detectors see).
* N:M selection keeps the ``n`` largest magnitudes of each group; ties keep the lower index;
  a short last group keeps ``min(n, its length)``. It is written here independently of the
  fast model's kernels, from that definition.
* The delta encoder (Neil et al., Delta Networks, ICML 2017) keeps a reference state and
  sends ``x - ref`` where it is nonzero and at least the threshold in magnitude.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def nm_keep(values: list, n: int) -> list[int]:
    """Positions (ascending) of the ``n`` largest magnitudes in ``values``; ties: lower index."""
    order = sorted(range(len(values)), key=lambda p: (-abs(values[p]), p))
    return sorted(order[:n])


def nm_prune_columns(b: np.ndarray, n: int, m: int) -> np.ndarray:
    """``B[K x N]`` pruned N:M along K (axis 0), column by column (the sparse-semantics weights)."""
    k_len, n_cols = b.shape
    out = np.zeros_like(b)
    for j in range(n_cols):
        for g0 in range(0, k_len, m):
            group = [b[k, j] for k in range(g0, min(g0 + m, k_len))]
            for p in nm_keep(group, n):
                out[g0 + p, j] = b[g0 + p, j]
    return out


def compacted_k(k_len: int, n: int, m: int) -> int:
    """MAC slots per output under N:M: ``n`` per full group, ``min(n, rest)`` for a short one."""
    return (k_len // m) * n + min(n, k_len % m)


@dataclass(frozen=True, slots=True)
class WeightSlots:
    """``B`` as the sparse MAC units store it (see the module docstring).

    ``value[s][j]``/``index[s][j]``: weight of slot ``s`` in column ``j`` and the position, in
    its group, of the activation it multiplies. ``group[s]``: the group of slot ``s``;
    ``group_slots[g]``: the slots of group ``g``. Dense weights are ``n = m = 1``.
    """

    n: int
    m: int
    value: list[list]
    index: list[list[int]]
    group: list[int]
    group_slots: list[range]

    @property
    def slots(self) -> int:
        return len(self.group)


def weight_slots(b: np.ndarray, nm: tuple[int, int] | None) -> WeightSlots:
    """Store ``B[K x N]`` as slots, pruning it N:M along K first when ``nm = (n, m)``.

    When the compacted reduction would not be shorter than K (``K <= n``), the weights are
    kept dense: there is nothing for the multiplexer to compact.
    """
    k_len, n_cols = b.shape
    if nm is None or compacted_k(k_len, *nm) >= k_len:
        values = b.tolist()
        return WeightSlots(1, 1, values, [[0] * n_cols for _ in range(k_len)], list(range(k_len)),
                           [range(k, k + 1) for k in range(k_len)])
    n, m = nm
    pruned = nm_prune_columns(b, n, m)
    value, index, group, group_slots = [], [], [], []
    for g, g0 in enumerate(range(0, k_len, m)):
        length = min(m, k_len - g0)
        cost = min(n, length)
        cols_v, cols_i = [], []
        for j in range(n_cols):
            nonzero = [p for p in range(length) if pruned[g0 + p, j] != 0]
            pad = [p for p in range(length) if p not in nonzero][:cost - len(nonzero)]
            cols_v.append([pruned[g0 + p, j] if p in nonzero else 0 for p in nonzero + pad])
            cols_i.append(nonzero + pad)
        first = len(group)
        for t in range(cost):
            value.append([cols_v[j][t] for j in range(n_cols)])
            index.append([cols_i[j][t] for j in range(n_cols)])
            group.append(g)
        group_slots.append(range(first, first + cost))
    return WeightSlots(n, m, value, index, group, group_slots)


def activation_groups(a: np.ndarray, m: int) -> list[list[tuple]]:
    """``A[M x K]`` as ``[i][g]`` -> the ``m`` activations of group ``g`` of row ``i``
    (a short last group is padded with zeros, which no index ever selects)."""
    rows, k_len = a.shape
    groups = -(-k_len // m)
    padded = np.zeros((rows, groups * m), dtype=a.dtype)
    padded[:, :k_len] = a
    return [[tuple(padded[i, g * m:(g + 1) * m].tolist()) for g in range(groups)] for i in range(rows)]


class DeltaEncoder:
    """Delta encoding of one layer's input across time steps: state is the reference ``x_ref``
    and the output accumulator (``acc += W . delta`` per step)."""

    def __init__(self, shape: tuple[int, int], n_out: int, threshold: float) -> None:
        self.reference = np.zeros(shape, dtype=np.float64)
        self.accumulator = np.zeros((shape[0], n_out), dtype=np.float64)
        self.threshold = threshold

    def encode(self, x: np.ndarray) -> np.ndarray:
        """The deltas sent for input ``x``; the reference follows ``x`` only where one fired."""
        d = x.astype(np.float64) - self.reference
        fired = (d != 0) & (np.abs(d) >= self.threshold)
        self.reference[fired] = x[fired]
        return np.where(fired, d, 0.0)

    def accumulate(self, out: np.ndarray) -> np.ndarray:
        """Add one step's array output to the accumulator and return the accumulated output."""
        self.accumulator += out
        return self.accumulator.copy()
