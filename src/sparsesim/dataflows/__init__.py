"""How an op's GEMM is tiled and scheduled on the array; one file per dataflow.

Importing the package registers every dataflow in :data:`DATAFLOWS`. ``best`` is not a
dataflow but a choice among them per op, made by :mod:`sparsesim.simulation.engine`. Each
systolic dataflow carries its :class:`DataflowKind` (``DATAFLOWS.get(name).kind``): the facts
the mapper, the reference twin, validation and the figures ask of it. Every dataflow names the
array kind it runs on (:mod:`.array_kind`, ``array.kind``).
"""

from sparsesim.dataflows import input_stationary, output_stationary, weight_stationary  # noqa: F401  (register)
from sparsesim.dataflows import eyeriss_v2  # noqa: F401  (register)
from sparsesim.dataflows import dstc  # noqa: F401  (registers the dstc kind and its dataflow)
from sparsesim.dataflows import sigma  # noqa: F401  (register the sigma array kind)
from sparsesim.dataflows.array_kind import ARRAY_KINDS, ArrayKind, array_kind
from sparsesim.dataflows.base import DATAFLOWS, Dataflow, Plan, SystolicDataflow
from sparsesim.hardware.dataflow_kind import DataflowKind


def display_order(array_kind: str | None = None) -> list[str]:
    """Names of the registered dataflows in the order figures and tables show them (each
    dataflow's ``rank``, then its name); only those of ``array_kind`` when it is given."""
    names = [n for n in DATAFLOWS.names() if array_kind is None or DATAFLOWS.get(n).array_kind == array_kind]
    return sorted(names, key=lambda n: (DATAFLOWS.get(n).rank, n))


__all__ = ["ARRAY_KINDS", "ArrayKind", "array_kind", "DATAFLOWS", "Dataflow", "DataflowKind", "Plan",
           "SystolicDataflow", "display_order"]
