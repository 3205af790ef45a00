"""Output stationary (``os``): each PE accumulates one output; A and B stream through K.

SCALE-Sim v3: ``ceil(M/R) * ceil(N/C) * (K + R + C - 2)`` cycles without fold overlap.
"""

from sparsesim.dataflows.base import DATAFLOWS, DataflowKind, SystolicDataflow


class OutputStationary(SystolicDataflow):
    kind = DataflowKind(name="os", label="os", rank=0, row_dim="M", col_dim="N", time_dim="K",
                        outer="row")  # M blocks outside: the A row block stays on chip while N blocks pass


DATAFLOWS.add("os", OutputStationary())
