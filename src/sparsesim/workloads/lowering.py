"""Real tensors to GEMM operands: ``A[M x K]`` and ``B[K x N]`` per group, per phase.

The shapes agree with :meth:`workloads.ops.Conv2d.gemm` and friends (the table in
:mod:`sparsesim.workloads.ops`). Tensor roles: ``input`` (X), ``weight`` (W, or the second operand of
a matmul), ``grad`` (dY, the gradient of the op's output).

============  ==================  ==================
phase         A (role)            B (role)
============  ==================  ==================
fwd           X       (input)     W^T     (weight)
bwd_data      dY      (grad)      W       (weight)
bwd_weight    X^T     (input)     dY      (grad)
prefill       X       (input)     W^T     (weight)
decode        X       (input)     W^T     (weight)
============  ==================  ==================
"""

from __future__ import annotations

import numpy as np

from sparsesim.core.errors import field_error
from sparsesim.workloads.gemm import Phase
from sparsesim.workloads.ops import Conv2d, Linear, Matmul, Op, im2col

OPERAND_ROLES: dict[Phase, tuple[str, str]] = {
    Phase.FWD: ("input", "weight"),
    Phase.BWD_DATA: ("grad", "weight"),
    Phase.BWD_WEIGHT: ("input", "grad"),
    Phase.PREFILL: ("input", "weight"),  # inference phases are forward GEMMs
    Phase.DECODE: ("input", "weight"),
}
"""Tensor role of the A and B operands in each phase."""


def weight_matrix(op: Op, w: np.ndarray) -> np.ndarray:
    """Weights as ``(groups, out_features_per_group, reduction_per_group)``: rows are filters.

    N:M pruning along the fwd reduction (input features) works on the last axis of this;
    along the bwd_data reduction (output features) on the middle axis.
    """
    if isinstance(op, Conv2d):
        g = op.groups
        return w.reshape(g, op.out_channels // g, -1)
    if isinstance(op, Linear):
        return w.reshape(1, op.out_features, op.in_features)
    raise field_error(op.name, "only conv2d and linear ops have weights")


def _grad_rows(op: Op, dy: np.ndarray) -> np.ndarray:
    """dY as ``(groups, pixels_or_tokens, out_features_per_group)``."""
    if isinstance(op, Conv2d):
        g = op.groups
        n, k, p, q = dy.shape
        return dy.reshape(n, g, k // g, p, q).transpose(1, 0, 3, 4, 2).reshape(g, n * p * q, k // g)
    if isinstance(op, Linear):
        return dy.reshape(1, op.tokens, op.out_features)
    return dy  # matmul: (batch, m, n)


def gemm_operands(op: Op, phase: Phase, x: np.ndarray | None, w: np.ndarray | None,
                  dy: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """``(A, B)`` stacked over groups: shapes ``(count, M, K)`` and ``(count, K, N)``.

    ``w`` is already the weight this phase sees (N:M pruned along its reduction if asked).
    """
    return a_operand(op, phase, x, dy), b_operand(op, phase, w, dy)


def _require(op: Op, phase: Phase, tensor: np.ndarray | None) -> None:
    if tensor is None:
        raise field_error(op.name, f"trace lacks the tensors of the {phase} phase")


def a_operand(op: Op, phase: Phase, x: np.ndarray | None, dy: np.ndarray | None) -> np.ndarray:
    """The A operand of :func:`gemm_operands` alone (it never depends on the weight), for a
    replay that already holds what it needs of B."""
    _require(op, phase, dy if phase is Phase.BWD_DATA else x)
    if isinstance(op, Matmul):
        if phase is Phase.BWD_DATA:
            return dy.reshape(op.output_shape)
        a_in = x.reshape(op.input_shape)
        return a_in if phase.forward else a_in.transpose(0, 2, 1)
    if phase is Phase.BWD_DATA:
        return _grad_rows(op, dy)
    xa = im2col(x, op) if isinstance(op, Conv2d) else x.reshape(1, op.tokens, op.in_features)
    return xa if phase.forward else xa.transpose(0, 2, 1)


def b_operand(op: Op, phase: Phase, w: np.ndarray | None, dy: np.ndarray | None) -> np.ndarray:
    """The B operand of :func:`gemm_operands` alone."""
    _require(op, phase, dy if phase is Phase.BWD_WEIGHT else w)
    if isinstance(op, Matmul):
        if phase is Phase.BWD_WEIGHT:
            return dy.reshape(op.output_shape)
        b_in = w.reshape(op.weight_shape)
        return b_in if phase.forward else b_in.transpose(0, 2, 1)
    if phase is Phase.BWD_DATA:
        return weight_matrix(op, w)  # (g, Kg, CgRS): B = W_g, reduction over Kg
    if phase.forward:
        return weight_matrix(op, w).transpose(0, 2, 1)
    return _grad_rows(op, dy)
