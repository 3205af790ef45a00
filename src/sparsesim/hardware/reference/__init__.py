"""The slow, cycle-by-cycle reference model of the PE array (compute only, no memory).

It exists to check the fast fold-level model: each cycle it moves operand tokens from PE to
PE as the ``os``, ``ws`` and ``is`` systolic dataflows do, performs, gates or skips each MAC,
and accumulates real values, so it yields the GEMM's outputs beside its cycle count and MAC
events. ``sparsesim validate reference`` holds the two models to exact agreement.

* :mod:`.operands` -- operands as the feeders hold them: activation groups, N:M weight slots
  (values plus in-group indices), and the delta encoder.
* :mod:`.array` -- the array itself: feeders, fold sequencer, PEs.
"""

from sparsesim.hardware.reference.array import ArraySpec, ReferenceRun, ZeroLogic, run_array
from sparsesim.hardware.reference.operands import DeltaEncoder, WeightSlots, nm_prune_columns, weight_slots

__all__ = ["ArraySpec", "DeltaEncoder", "ReferenceRun", "WeightSlots", "ZeroLogic", "nm_prune_columns",
           "run_array", "weight_slots"]
