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
from sparsesim.sparsity.base import state_groups
from sparsesim.simulation.engine import best_of, check_dataflow, make_row, op_phases, repeat_rows, run_gemm
from sparsesim.simulation.replay import Replay
from sparsesim.simulation.system import system_rows
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


def simulate_rows(workload: Workload, cfg: AccelConfig, dataflow: str, *, progress: bool = True,
                  client=None) -> list[dict]:
    """Simulate every op of ``workload`` in each of its phases; one row per (op, phase).

    The features are checked against the hardware here, where they meet it, so a config
    built without :func:`~sparsesim.simulation.assemble.build_config` is checked all the same.

    ``progress``: log progress lines for replays of real tensors (callers that run many small
    internal simulations, such as the reference validator, switch it off).

    ``client``: a Dask client; a dense run's ops are then split over its cluster, with the
    same rows as in one process, and so is a sparse replay, in groups of the ops that share run
    state (:func:`~sparsesim.sparsity.base.state_groups`): one op each for zero skipping and an
    activation policy at ``site: input``, a layer's time steps for delta, a layer's passes for
    the gated-MLP coupling. N:M's pruning-unit timeline spans every op: it runs in one process.
    """
    if cfg.system.chips > 1:  # one chip's share of the work, and the collectives between chips
        return system_rows(workload, cfg, lambda part: _chip_rows(part, cfg, dataflow, progress, client))
    return _chip_rows(workload, cfg, dataflow, progress, client)


def _chip_rows(workload: Workload, cfg: AccelConfig, dataflow: str, progress: bool, client=None) -> list[dict]:
    """:func:`simulate_rows` on one chip (a dense run split by op over ``client``'s cluster)."""
    check_dataflow(cfg, dataflow)
    table = config_energy_table(cfg)
    check_table_supports(table, cfg)
    features = parse_features(cfg.sparsity)
    check_hardware(features, cfg)
    label = feature_labels(features)
    for f in features:
        for warning in f.run_warnings(features):
            log.warning(warning)
    if features and client is not None and len(workload.ops) > 1:
        groups = state_groups(workload, features)
        if len(groups) > 1:
            return repeat_rows(workload, _on_cluster(client, workload, cfg, dataflow, replay_rows, groups))
        log.info("the replay runs in one process: %s", unsplittable(workload, features))
    if features:
        if progress and workload.source is not None:  # real tensors: the replay reads them all, which can take minutes
            pairs = sum(len(op_phases(workload, i)) for i in range(len(workload.ops)))
            about = f"{len(workload.ops)} ops, {pairs} (op, phase) GEMMs, {label} on {cfg.name}, dataflow {dataflow}"
            workload = dataclasses.replace(
                workload, source=_ReplayProgress(workload.source, workload.name, len(workload.ops), about))
        return repeat_rows(workload, Replay(workload, cfg, dataflow, features, table).rows())
    if client is not None and len(workload.ops) > 1:
        return repeat_rows(workload, _on_cluster(client, workload, cfg, dataflow, dense_rows))
    return repeat_rows(workload, dense_rows(workload, cfg, dataflow, range(len(workload.ops))))


def dense_rows(workload: Workload, cfg: AccelConfig, dataflow: str, indices) -> list[dict]:
    """The rows of ops ``indices`` of ``workload`` on one chip, dense, before the ``repeat``
    scaling: each (op, phase) depends on nothing but itself, so any split of the ops gives the
    same rows."""
    table = config_energy_table(cfg)
    label = feature_labels(parse_features(cfg.sparsity))
    rows = []
    for index in indices:
        op = workload.ops[index]
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
    return rows


def replay_rows(workload: Workload, cfg: AccelConfig, dataflow: str, indices) -> list[dict]:
    """The sparse replay's rows of ops ``indices`` of ``workload``, before the ``repeat`` scaling
    (every feature op-local: each op's rows are those of the whole replay)."""
    features = parse_features(cfg.sparsity)
    table = config_energy_table(cfg)
    return Replay(workload, cfg, dataflow, features, table).rows(indices)


def _on_cluster(client, workload: Workload, cfg: AccelConfig, dataflow: str, rows_of, groups=None) -> list[dict]:
    """``rows_of(workload, cfg, dataflow, indices)`` (:func:`dense_rows` or :func:`replay_rows`)
    of every op, split by op over the Dask cluster of ``client``, the rows put back in op order.

    ``groups``: ops that must stay together (:func:`~sparsesim.sparsity.base.state_groups`);
    default one op each. The groups are dealt into four chunks per worker thread: one op each
    round-robin (neighbouring decode steps cost alike, so the chunks balance), larger groups
    the heaviest first to the lightest chunk (by their GEMMs' MACs)."""
    threads = sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()) or 1
    groups = [[i] for i in range(len(workload.ops))] if groups is None else groups
    n = min(len(groups), 4 * threads)
    chunks: list[list[int]] = [[] for _ in range(n)]
    if all(len(g) == 1 for g in groups):
        for j, g in enumerate(groups):
            chunks[j % n] += g
    else:
        def macs(group: list[int]) -> int:
            return sum(g.count * g.M * g.N * g.K for i in group
                       for g in (workload.ops[i].gemm(p) for p in op_phases(workload, i)))

        load = [0] * n
        for weight, g in sorted(((macs(g), g) for g in groups), key=lambda wg: -wg[0]):
            j = load.index(min(load))
            chunks[j] += g
            load[j] += weight
    chunks = [sorted(c) for c in chunks if c]
    shared = client.scatter(workload, broadcast=True)
    futures = [client.submit(rows_of, shared, cfg, dataflow, c, pure=False) for c in chunks]
    parts = client.gather(futures)
    by_op: list[list[dict]] = [[] for _ in workload.ops]
    for chunk, rows in zip(chunks, parts):
        it = iter(rows)
        for index in chunk:
            by_op[index] = [next(it) for _ in op_phases(workload, index)]
    return [row for rows in by_op for row in rows]


def unsplittable(workload: Workload, features) -> str | None:
    """Why a replay of ``workload`` with ``features`` cannot be split over a cluster, or None:
    its ops all share one run state (:func:`~sparsesim.sparsity.base.state_groups`), either a
    feature's whole-run state (N:M's pruning-unit timeline: the key ``()`` on every op) or a
    per-layer state of a workload that is one layer."""
    stateful = [f.kind for f in features if not f.op_local()]
    if not stateful or len(state_groups(workload, features)) > 1:
        return None
    whole = [f.kind for f in features if all(k == () for k in f.state_keys(workload))]
    if whole:
        return (f"a sparse replay with {', '.join(whole)} runs in one process (one run state spans all its ops); "
                "the cluster splits dense runs and replays whose state is per op or per layer (zero_skip, "
                "act_policy, delta)")
    return (f"{' and '.join(stateful)} keep{'s its' if len(stateful) == 1 else ' their'} run state per layer, and "
            f"every op of {workload.name} shares one: nothing to split over the cluster")

