"""Weight stationary (``ws``): a ``K x N`` block of B sits in the PEs; A streams through M.

SCALE-Sim v3: ``ceil(K/R) * ceil(N/C) * (M + 2R + C - 2)`` cycles without fold overlap.
"""

from sparsesim.dataflows.base import DATAFLOWS, SystolicDataflow


class WeightStationary(SystolicDataflow):
    name = "ws"
    row_dim, col_dim, time_dim = "K", "N", "M"
    outer = "col"  # N blocks outside, K blocks inside: partial sums of one N block accumulate
    preload = True


DATAFLOWS.add("ws", WeightStationary())
