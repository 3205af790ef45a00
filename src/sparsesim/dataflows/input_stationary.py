"""Input stationary (``is``): a ``K x M`` block of A sits in the PEs; B streams through N.

SCALE-Sim v3: ``ceil(K/R) * ceil(M/C) * (N + 2R + C - 2)`` cycles without fold overlap.
"""

from sparsesim.dataflows.base import DATAFLOWS, SystolicDataflow


class InputStationary(SystolicDataflow):
    name = "is"
    row_dim, col_dim, time_dim = "K", "M", "N"
    outer = "col"  # M blocks outside, K blocks inside: partial sums of one M block accumulate
    preload = True


DATAFLOWS.add("is", InputStationary())
