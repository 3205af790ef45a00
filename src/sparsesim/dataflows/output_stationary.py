"""Output stationary (``os``): each PE accumulates one output; A and B stream through K.

SCALE-Sim v3: ``ceil(M/R) * ceil(N/C) * (K + R + C - 2)`` cycles without fold overlap.
"""

from sparsesim.dataflows.base import DATAFLOWS, SystolicDataflow


class OutputStationary(SystolicDataflow):
    name = "os"
    row_dim, col_dim, time_dim = "M", "N", "K"
    outer = "row"  # M blocks outside: the A row block stays on chip while N blocks pass
    preload = False


DATAFLOWS.add("os", OutputStationary())
