"""How an op's GEMM is tiled and scheduled on the array; one file per dataflow.

Importing the package registers every dataflow in :data:`DATAFLOWS`. ``best`` is not a
dataflow but a choice among them per op, made by :mod:`sparsesim.simulation.engine`.
"""

from sparsesim.dataflows import input_stationary, output_stationary, weight_stationary  # noqa: F401  (register)
from sparsesim.dataflows.base import DATAFLOWS, Dataflow, Plan, SystolicDataflow

__all__ = ["DATAFLOWS", "Dataflow", "Plan", "SystolicDataflow"]
