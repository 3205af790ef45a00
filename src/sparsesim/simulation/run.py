""":func:`simulate_rows`: compose a workload, an accelerator config and a dataflow into result rows.

One row per (op, phase), not yet stamped with the run's identity (:mod:`.assemble` does that,
for every caller that assembles a whole run). Dense runs go through the GEMM-level engine (:mod:`sparsesim.simulation.engine`)
directly; with sparsity features switched on, real (or seeded synthetic) tensors are replayed
through them by :mod:`sparsesim.simulation.replay`, and every row keeps the dense run of the same op on the
same hardware beside it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field

from sparsesim.hardware.config import AccelConfig
from sparsesim.hardware.energy import check_table_supports, config_energy_table
from sparsesim.sparsity import check_hardware, feature_labels, parse_features
from sparsesim.simulation.engine import best_of, check_dataflow, make_row, op_phases, repeat_rows, run_gemm
from sparsesim.simulation.replay import Replay
from sparsesim.workloads.ops import TensorSource, Workload

log = logging.getLogger(__name__)

PROGRESS_AFTER_S = 10.0
"""A trace replay still running after this many seconds logs a line at every further tenth of its ops."""


@dataclass(slots=True)
class _ReplayProgress:
    """The trace's tensor source, logging what is being replayed once the replay has run for
    :data:`PROGRESS_AFTER_S`, then ``replaying NAME: i/n ops`` at every tenth of the ops. Short
    replays stay quiet, so a command that fails early prints only its ``error:`` line."""

    source: TensorSource
    name: str
    total: int
    about: str  # what the first line says beside the name: ops, GEMMs, features, hardware
    start_s: float = field(default_factory=time.monotonic)
    announced: bool = False

    def tensor_names(self, index: int) -> dict | None:
        names = getattr(self.source, "tensor_names", None)
        return None if names is None else names(index)

    def tensors(self, index: int, roles: frozenset[str] | None = None) -> dict:
        if time.monotonic() - self.start_s >= PROGRESS_AFTER_S:
            if not self.announced:
                self.announced = True
                log.info("replaying %s: %s", self.name, self.about)
            step = -(-self.total // 10)
            if index and index % step == 0:
                log.info("replaying %s: %d/%d ops", self.name, index, self.total)
        return self.source.tensors(index) if roles is None else self.source.tensors(index, roles)


def simulate_rows(workload: Workload, cfg: AccelConfig, dataflow: str, *, progress: bool = True) -> list[dict]:
    """Simulate every op of ``workload`` in each of its phases; one row per (op, phase).

    The features are checked against the hardware here, where they meet it, so a config
    built without :func:`~sparsesim.simulation.assemble.build_config` is checked all the same.

    ``progress``: log progress lines for replays of real tensors (callers that run many small
    internal simulations, such as the reference validator, switch it off).
    """
    check_dataflow(cfg, dataflow)
    table = config_energy_table(cfg)
    check_table_supports(table, cfg)
    features = parse_features(cfg.sparsity)
    check_hardware(features, cfg)
    label = feature_labels(features)
    if features:
        if progress and workload.source is not None:  # real tensors: the replay reads them all, which can take minutes
            pairs = sum(len(op_phases(workload, i)) for i in range(len(workload.ops)))
            about = f"{len(workload.ops)} ops, {pairs} (op, phase) GEMMs, {label} on {cfg.name}, dataflow {dataflow}"
            workload = dataclasses.replace(
                workload, source=_ReplayProgress(workload.source, workload.name, len(workload.ops), about))
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
            row = make_row(op, phase, gemm, out, out, cfg, table, label)
            # the sequence frame or decode step, as the replay's rows carry it
            row["time_step"] = None if workload.time_steps is None else workload.time_steps[index]
            rows.append(row)
    return repeat_rows(workload, rows)

