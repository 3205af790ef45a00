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

from sparsesim.workloads.errors import field_error
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
    need = (x, w) if phase.forward else {Phase.BWD_DATA: (dy, w), Phase.BWD_WEIGHT: (x, dy)}[phase]
    if any(t is None for t in need):
        raise field_error(op.name, f"trace lacks the tensors of the {phase} phase")
    if isinstance(op, Matmul):
        a_in, b_in = x.reshape(op.input_shape), w.reshape(op.weight_shape)
        if phase.forward:
            return a_in, b_in
        d = dy.reshape(op.output_shape)
        if phase is Phase.BWD_DATA:
            return d, b_in.transpose(0, 2, 1)
        return a_in.transpose(0, 2, 1), d
    if phase is Phase.BWD_DATA:
        wm = weight_matrix(op, w)  # (g, Kg, CgRS): B = W_g, reduction over Kg
        return _grad_rows(op, dy), wm
    xa = im2col(x, op) if isinstance(op, Conv2d) else x.reshape(1, op.tokens, op.in_features)
    if phase.forward:
        return xa, weight_matrix(op, w).transpose(0, 2, 1)
    return xa.transpose(0, 2, 1), _grad_rows(op, dy)
