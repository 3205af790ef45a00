"""Input stationary (``is``): a ``K x M`` block of A sits in the PEs; B streams through N.

SCALE-Sim v3: ``ceil(K/R) * ceil(M/C) * (N + 2R + C - 2)`` cycles without fold overlap.
"""

from sparsesim.dataflows.base import DATAFLOWS, DataflowKind, SystolicDataflow


class InputStationary(SystolicDataflow):
    kind = DataflowKind(name="is", label="is", rank=2, row_dim="K", col_dim="M", time_dim="N",
                        outer="col")  # M blocks outside, K blocks inside: partial sums of one M block accumulate


DATAFLOWS.add("is", InputStationary())
