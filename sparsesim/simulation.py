"""``simulate()``: compose a workload, an accelerator config and a dataflow into result rows.

One row per (op, phase). Dense runs go through the GEMM-level engine (:mod:`sparsesim.engine`)
directly; with sparsity features switched on, real (or seeded synthetic) tensors are replayed
through them by :mod:`sparsesim.replay`, and every row keeps the dense run of the same op on the
same hardware beside it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field

from sparsesim.accel.config import AccelConfig
from sparsesim.accel.energy import check_table_supports, energy_table
from sparsesim.accel.sparsity import feature_labels, parse_features
from sparsesim.engine import best_of, check_dataflow, make_row, op_phases, repeat_rows, run_gemm
from sparsesim.replay import Replay
from sparsesim.workloads.ops import TensorSource, Workload

log = logging.getLogger(__name__)

PROGRESS_AFTER_S = 10.0
"""A trace replay still running after this many seconds logs a line at every further tenth of its ops."""


@dataclass(frozen=True, slots=True)
class _ReplayProgress:
    """The trace's tensor source, logging ``replaying NAME: i/n ops`` at every tenth of the ops
    once the replay has run for :data:`PROGRESS_AFTER_S` (short replays stay quiet)."""

    source: TensorSource
    name: str
    total: int
    start_s: float = field(default_factory=time.monotonic)

    def tensors(self, index: int) -> dict:
        step = -(-self.total // 10)
        if index and index % step == 0 and time.monotonic() - self.start_s >= PROGRESS_AFTER_S:
            log.info("replaying %s: %d/%d ops", self.name, index, self.total)
        return self.source.tensors(index)


def simulate(workload: Workload, cfg: AccelConfig, dataflow: str, *, progress: bool = True) -> list[dict]:
    """Simulate every op of ``workload`` in each of its phases; one row per (op, phase).

    ``progress``: log progress lines for replays of real tensors (callers that run many small
    internal simulations, such as the reference validator, switch it off).
    """
    check_dataflow(cfg, dataflow)
    table = energy_table(cfg.energy_table)
    check_table_supports(table, cfg)
    features = parse_features(cfg.sparsity)
    label = feature_labels(features)
    if features:
        if progress and workload.source is not None:  # real tensors: the replay reads them all, which can take minutes
            pairs = sum(len(op_phases(workload, i)) for i in range(len(workload.ops)))
            log.info("replaying %s: %d ops, %d (op, phase) GEMMs, %s on %s, dataflow %s", workload.name,
                     len(workload.ops), pairs, label, cfg.name, dataflow)
            workload = dataclasses.replace(
                workload, source=_ReplayProgress(workload.source, workload.name, len(workload.ops)))
        return repeat_rows(workload, Replay(workload, cfg, dataflow, features, table).rows())
    rows = []
    for index, op in enumerate(workload.ops):
        if workload.source is not None and op_phases(workload, index):
            # A dense run needs only the shapes, but a trace that holds NaN/Inf is refused on
            # every path alike: reading the op's tensors checks them (the replay reads them too).
            workload.source.tensors(index)
        for phase in op_phases(workload, index):
            gemm = op.gemm(phase)
            out = best_of(dataflow, lambda name, g=gemm: run_gemm(g, cfg, name), cfg)
            rows.append(make_row(op, phase, gemm, out, out, cfg, table, label))
    return repeat_rows(workload, rows)
