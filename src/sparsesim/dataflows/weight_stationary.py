"""Weight stationary (``ws``): a ``K x N`` block of B sits in the PEs; A streams through M.

SCALE-Sim v3: ``ceil(K/R) * ceil(N/C) * (M + 2R + C - 2)`` cycles without fold overlap.
"""

from sparsesim.dataflows.base import DATAFLOWS, DataflowKind, SystolicDataflow


class WeightStationary(SystolicDataflow):
    kind = DataflowKind(name="ws", label="ws", rank=1, row_dim="K", col_dim="N", time_dim="M",
                        outer="col")  # N blocks outside, K blocks inside: partial sums of one N block accumulate


DATAFLOWS.add("ws", WeightStationary())
