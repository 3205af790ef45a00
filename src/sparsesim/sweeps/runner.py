"""Running a sweep: the points missing from the output directory, computed on a Dask cluster.

:func:`run_sweep` builds every point of a :class:`~sparsesim.sweeps.spec.SweepPlan` once to
validate it (keeping only its summary), then builds the missing ones again as a bounded window
of futures takes them (:mod:`.cluster`), stores each as it completes (:mod:`.store`) and
rebuilds ``results.parquet`` at the end. :func:`run_point` is the work of one point on a
worker; :func:`attempt_point` turns what it raises into a recorded failure. Progress goes to
stderr: a bar on a terminal, else a line every tenth of the points (:mod:`sparsesim.progress`).
"""

from __future__ import annotations

import datetime as _dt
import itertools
import logging
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sparsesim.dataflows.array_kind import area_um2
from sparsesim.hardware.energy import config_energy_table
from sparsesim.progress import counter
from sparsesim.simulation.assemble import assemble_run, build_config
from sparsesim.simulation.results import write_table
from sparsesim.sweeps.cluster import CONNECT_TIMEOUT_S, connect
from sparsesim.sweeps.spec import Point, SweepPlan
from sparsesim.sweeps.store import (SweepDir, collect_results, meta_record, prepare_out_dir, record_failure, write_json,
                                    write_point)
from sparsesim.workload_args import build_workload
from sparsesim.core.errors import arg_error

log = logging.getLogger(__name__)


def run_point(point: Point):
    """Simulate one point and return its rows as a DataFrame (``to_frame`` plus sweep columns).

    Runs on a worker: it rebuilds the config from the plain mapping and reads any trace or
    topology file from the (shared) path itself, so no arrays travel through the scheduler.
    """
    cfg = build_config(point.config)
    workload = build_workload(point.workload)
    frame = assemble_run(workload, cfg, point.dataflow).to_frame()
    area = area_um2(cfg, config_energy_table(cfg))
    extra = {"point_id": point.point_id, "sweep_workload": point.workload.label,
             "sweep_dataflow": point.dataflow, "sweep_sparsity": point.sparsity,
             "area_um2": float(sum(area.values()))}
    extra.update({f"area_um2.{k}": float(v) for k, v in area.items()})
    for key, value in extra.items():
        frame[key] = value
    front = ["point_id", "sweep_workload", "sweep_dataflow", "sweep_sparsity"]
    return frame[front + [c for c in frame.columns if c not in front]]


@dataclass(frozen=True, slots=True)
class PointFailure:
    """What a point raised on its worker, returned as the task's result."""

    error: str
    message: str
    traceback: str


def attempt_point(point: Point):
    """:func:`run_point`, or the :class:`PointFailure` it raised.

    The task a worker runs: a point's exception becomes its result, so Dask neither logs it
    on the worker (a multi-line "Compute Failed" on the terminal) nor re-raises it here, and
    the client records it in ``failed/`` like any other outcome.
    """
    try:
        return run_point(point)
    except Exception as exc:  # not swallowed: recorded in failed/<id>.json and logged in one line
        return PointFailure(type(exc).__name__, str(exc), traceback.format_exc())


@dataclass(frozen=True, slots=True, kw_only=True)
class SweepSummary:
    """What a run of :func:`run_sweep` did."""

    out_dir: Path
    total: int
    already_done: int
    computed: int
    failed: tuple[str, ...]
    elapsed_s: float
    results_path: Path

    @property
    def missing(self) -> int:
        return self.total - self.already_done - self.computed


def run_sweep(plan: SweepPlan, out_dir: str | Path, *, scheduler: str | None = None, workers: int | None = None,
              force_new_spec: bool = False, progress: bool = True,
              connect_timeout_s: float = CONNECT_TIMEOUT_S, out_field: str = "out") -> SweepSummary:
    """Compute every point of ``plan`` missing from ``out_dir``, then rebuild ``results.parquet``.

    Every point is built (and its config validated) once before anything is written, then built
    again as it is submitted, so no list of points with their configs is ever held. Points run
    as Dask futures, consumed with ``as_completed``; each finished point is written atomically
    as it completes, a point that raises is recorded in ``failed/`` and the others go on.
    Progress (points done/total, failures, ETA) goes to stderr when ``progress``.
    ``out_field`` names ``out_dir`` in messages (``--out`` for the command line).
    """
    if workers is not None and workers < 1:
        raise arg_error("workers", f"must be a positive integer, got {workers}")
    if workers is not None and scheduler is not None:
        raise arg_error("workers", f"applies to the embedded cluster only; the cluster at {scheduler} "
                                   "has its own workers")
    start = time.monotonic()
    if plan.count >= 1000:
        log.info("sweep %s: checking the configs of %d points", plan.name, plan.count)
    # a first pass builds (and so validates) every point before the directory is touched or a
    # cluster started; only each point's summary is kept, never its config
    listing = [p.describe() for p in plan.iter_points()]
    ids = [d["point_id"] for d in listing]
    total = len(ids)
    out = prepare_out_dir(plan, Path(out_dir), force_new_spec, out_field)
    done = {pid for pid in ids if out.point(pid).exists()}
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    write_json(out.meta, meta_record(plan, listing, {"state": "running", "started": started,
                                                       "done": len(done), "total": total}))
    failed: list[str] = []
    computed = 0
    if len(done) < total:
        log.info("sweep %s: %d of %d points to compute (spec hash %s) -> %s", plan.name, total - len(done), total,
                 plan.spec_hash[:12], out.root)
        # the second pass builds the points again as the window of futures takes them
        todo = (p for p in plan.iter_points() if p.point_id not in done)
        with connect(scheduler, workers, connect_timeout_s) as client:
            computed, failed = _compute(client, todo, out, total, len(done), progress)
    frame = collect_results(out.root, ids)
    write_table(frame, out.results)
    finished = len(done) + computed
    write_json(out.meta, meta_record(plan, listing, {
        "state": "complete" if finished == total else "incomplete", "started": started,
        "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "done": finished, "failed": len(failed), "total": total}))
    return SweepSummary(out_dir=out.root, total=total, already_done=len(done), computed=computed,
                        failed=tuple(failed), elapsed_s=time.monotonic() - start, results_path=out.results)


def _compute(client, todo: Iterator[Point], out: SweepDir, total: int, done: int, progress: bool) -> tuple[int, list]:
    """Submit ``todo`` through a bounded window of futures (taking points from it only as the
    window frees) and persist each as it completes."""
    from distributed import as_completed

    threads = sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()) or 1
    window = max(8, 4 * threads)  # keeps every worker busy; a kill loses at most this many
    by_key: dict[str, Point] = {}
    queue = todo

    def submit(point: Point):
        fut = client.submit(attempt_point, point, key=f"sparsesim-point-{point.point_id}", pure=False)
        by_key[fut.key] = point
        return fut

    failed: list[str] = []
    computed = 0
    bar = counter(log, total=total, initial=done, desc="sweep", unit="points", enabled=progress)
    try:
        ac = as_completed([submit(p) for p in itertools.islice(queue, window)])
        for fut in ac:
            point = by_key.pop(fut.key)
            result = fut.result() if fut.status == "finished" else None
            if isinstance(result, PointFailure):
                record_failure(out, point, result.error, result.message, result.traceback)
                failed.append(point.point_id)
            elif fut.status == "finished":
                write_point(out, point.point_id, result)
                computed += 1
            else:  # the task itself failed: its worker died, or the result did not reach us
                _record_failure(out, point, fut)
                failed.append(point.point_id)
            fut.release()
            bar.update(1, failed=len(failed))
            nxt = next(queue, None)
            if nxt is not None:
                ac.add(submit(nxt))
    finally:
        bar.close()
    return computed, failed


def _record_failure(out: SweepDir, point: Point, fut) -> None:
    """Record why a future did not finish (a lost worker's error, or a cancellation by the scheduler)."""
    if fut.status == "error":
        exc = fut.exception()
        tb = "".join(traceback.format_exception(type(exc), exc, fut.traceback()))
        error, message = type(exc).__name__, str(exc)
    else:  # cancelled: the scheduler dropped the task (lost cluster); not the point's fault
        error, message, tb = "Cancelled", f"task {fut.status}", ""
    record_failure(out, point, error, message, tb)
