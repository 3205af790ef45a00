"""One run, assembled: the one path from a config mapping, a workload and a dataflow to checked,
stamped result rows and their total.

The Python API (:func:`sparsesim.api.simulate`, and so ``sparsesim run``), a sweep's points
(:func:`sparsesim.sweeps.runner.run_point`) and the case studies
(:func:`sparsesim.studies.common.run_workload`) all run through the two functions here, so
they cannot drift apart; they differ only in where the config mapping comes from (a preset,
a file, a sweep point) and in what they hand back (a ``Result``, a frame with sweep columns).

- :func:`build_config` builds the :class:`~sparsesim.hardware.config.AccelConfig` and checks
  the sparsity features against the hardware. This is where features and hardware meet, so
  the check lives here and not in :mod:`sparsesim.hardware`, which never imports features.
- :func:`assemble_run` simulates (dense through the engine, sparse through the replay:
  :func:`~sparsesim.simulation.run.simulate_rows`), checks and stamps every row with the
  run's identity (:func:`~sparsesim.simulation.results.stamp`) and returns an
  :class:`AssembledRun` whose ``total`` sums them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sparsesim.hardware.config import AccelConfig, apply_overrides, build
from sparsesim.simulation.engine import run_id
from sparsesim.simulation.results import stamp, to_frame, total_row
from sparsesim.simulation.run import simulate_rows
from sparsesim.simulation.system import footprint_warning
from sparsesim.sparsity import check_hardware, parse_features
from sparsesim.workloads.gemm import Phase
from sparsesim.workloads.ops import Workload

log = logging.getLogger(__name__)


def build_config(data: dict, overrides: Sequence[tuple[str, Any]] = ()) -> AccelConfig:
    """The validated config of mapping ``data`` with ``(dotted.key, value)`` ``overrides`` applied.

    Every key and value is checked (:func:`~sparsesim.hardware.config.build`), then the
    sparsity features against the hardware that must run them (an N:M ratio the MAC units do
    not support is refused here, before anything runs)."""
    cfg = build(AccelConfig, apply_overrides(data, list(overrides)))
    check_hardware(parse_features(cfg.sparsity), cfg)
    return cfg


@dataclass(frozen=True, slots=True, kw_only=True)
class AssembledRun:
    """The rows of one run, stamped, with the config that produced them.

    ``rows`` are the ``layers`` of ``sparsesim run --json`` (one per (op, phase), each scaled
    by its ``repeat``); :attr:`total` is its ``total`` and :meth:`to_frame` the table
    ``run --out`` writes."""

    rows: tuple[dict, ...]
    config: AccelConfig = field(repr=False)
    workload: str
    dataflow: str
    llm: dict | None = None  # an LLM's batch and lengths, a network's batch (throughput on a system of chips)

    @property
    def total(self) -> dict:
        """Sums over the rows, ratios recomputed from the sums (never averaged)."""
        return total_row(list(self.rows), self.config, self.llm)

    def to_frame(self):
        """The rows as a pandas DataFrame with ``energy_pj.*``, ``events.*`` and ``cfg.*`` columns."""
        return to_frame(list(self.rows), self.config)


def assemble_run(workload: Workload, cfg: AccelConfig, dataflow: str, *, accel_label: str | None = None,
                 progress: bool = True, client=None) -> AssembledRun:
    """Simulate every op of ``workload`` on ``cfg`` with ``dataflow`` (a name or ``best``).

    ``accel_label`` names the design in each row's ``accel`` field (default the config's
    name; the API adds its ``--set`` overrides). ``progress``: log progress lines while a
    replay of real tensors runs (see :func:`~sparsesim.simulation.run.simulate_rows`).
    ``client``: a Dask client over whose cluster a dense run's ops are split (same rows)."""
    rows = simulate_rows(workload, cfg, dataflow, progress=progress, client=client)  # checks the split first
    warning = footprint_warning(cfg, workload.meta.get("llm"), Phase.DECODE in workload.phases)
    if warning:
        log.warning(warning)
    stamped = stamp(rows, cfg, run_id(cfg, dataflow), workload.name, accel_label=accel_label)
    return AssembledRun(rows=tuple(stamped), config=cfg, workload=workload.name, dataflow=dataflow,
                        llm=workload.meta.get("llm") or workload.meta.get("network"))
