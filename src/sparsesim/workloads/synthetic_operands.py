"""Seeded synthetic tensors for shape-only workloads (``--gemm``, ``--network``, topologies).

Sparse features need real masks. When a workload has no trace, its tensors are drawn per op
from a generator seeded by the run's seed and the op's name, so the same config gives the
same numbers: activations ``ReLU(N(0, 1))`` (about half zeros, like post-ReLU feature maps),
weights ``N(0, 1/fan_in)`` (dense, as trained weights are), output gradients ``N(0, 1)`` with
the zeros a ReLU backward leaves (about half). With ``act_sparsity`` (shape-only LLM
workloads, ``run --act-sparsity``), activations are ``|N(0, 1)|`` with that fraction of zeros
at random positions instead.
"""

from __future__ import annotations

import hashlib

import numpy as np

from sparsesim.workloads.ops import Op


class SyntheticTensors:
    """A :class:`~sparsesim.workloads.ops.TensorSource` of seeded synthetic tensors."""

    def __init__(self, ops: tuple[Op, ...], seed: int, act_sparsity: float | None = None) -> None:
        self._ops = ops
        self._seed = seed
        self._act_sparsity = act_sparsity

    def tensors(self, index: int) -> dict[str, np.ndarray | None]:
        op = self._ops[index]
        digest = hashlib.sha256(f"{self._seed}:{index}:{op.name}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        if self._act_sparsity is None:
            x = np.maximum(rng.standard_normal(op.input_shape, dtype=np.float32), 0)
        else:
            x = np.abs(rng.standard_normal(op.input_shape, dtype=np.float32))
            x *= rng.random(op.input_shape, dtype=np.float32) >= self._act_sparsity
        fan_in = int(np.prod(op.weight_shape[1:])) if len(op.weight_shape) > 1 else op.weight_shape[0]
        w = (rng.standard_normal(op.weight_shape, dtype=np.float32) / np.sqrt(fan_in)).astype(np.float32)
        if op.kind == "matmul":
            w = np.maximum(w, 0)  # the second operand of a matmul is an activation too
        dy = rng.standard_normal(op.output_shape, dtype=np.float32)
        dy *= rng.random(op.output_shape, dtype=np.float32) < 0.5
        return {"input": x, "weight": w, "grad": dy}
