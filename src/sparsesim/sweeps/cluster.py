"""The Dask cluster a sweep runs on: an embedded ``LocalCluster`` or an existing scheduler.

:func:`connect` yields a client and closes what it opened. Every worker points Numba's
compile cache at one shared directory (:func:`numba_cache_dir`), so a kernel is compiled once
per machine rather than once per worker process and run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sparsesim.core.errors import arg_error

CONNECT_TIMEOUT_S = 5.0
"""How long ``--scheduler`` may take to answer before the address is reported unreachable."""
WORKER_WAIT_S = 30.0
"""How long to wait for an existing cluster with no workers to get one."""


def numba_cache_dir() -> Path:
    """Numba's compile cache shared by every worker and run: ``$NUMBA_CACHE_DIR`` if set, else
    ``$XDG_CACHE_HOME/sparsesim/numba`` (``~/.cache/sparsesim/numba``)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return Path(os.environ["NUMBA_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sparsesim" / "numba"


def _numba_cache_plugin(cache_dir: str | None):
    """A worker plugin pointing Numba's cache at ``cache_dir`` (or the worker's own default)."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class NumbaCache(WorkerPlugin):
        """Sets ``NUMBA_CACHE_DIR`` on each worker, including workers that join later."""

        name = "sparsesim-numba-cache"

        def __init__(self, path: str | None) -> None:
            self.path = path

        def setup(self, worker) -> None:
            path = self.path or str(numba_cache_dir())
            try:
                Path(path).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                logging.getLogger(__name__).warning("numba cache %s unusable on worker (%s)", path, exc)
                return
            os.environ["NUMBA_CACHE_DIR"] = path
            if "numba" in sys.modules:  # already imported: make it re-read the environment
                from numba.core import config as numba_config

                numba_config.reload_config()

    return NumbaCache(cache_dir)


def default_workers() -> int:
    """Cores available to this process."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return os.cpu_count() or 1


@contextlib.contextmanager
def connect(scheduler: str | None, workers: int | None,
            connect_timeout_s: float = CONNECT_TIMEOUT_S) -> Iterator[Any]:
    """A Dask client: to the cluster at ``scheduler`` (address or scheduler file), or to an
    embedded ``LocalCluster`` of ``workers`` single-threaded processes (default: one per core)."""
    from distributed import Client, LocalCluster

    cache = numba_cache_dir()
    if scheduler is None:
        n = workers or default_workers()
        cache.mkdir(parents=True, exist_ok=True)
        # distributed's own log lines (a lost worker, a slow event loop) would reach the terminal
        # from the scheduler, nannies and workers; the runner records and reports every failed
        # point itself, so only critical ones get through
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0",
                               silence_logs=logging.CRITICAL, env={"NUMBA_CACHE_DIR": str(cache)})
        try:
            client = Client(cluster)
            try:
                client.register_plugin(_numba_cache_plugin(str(cache)))
                yield client
            finally:
                client.close()
        finally:
            cluster.close()
        return
    if workers is not None:
        raise arg_error("workers", f"applies to the embedded cluster only; the cluster at {scheduler} "
                                   "has its own workers")
    kwargs: dict[str, Any]
    if Path(scheduler).is_file():
        kwargs = {"scheduler_file": scheduler}
    else:
        kwargs = {"address": scheduler if "://" in scheduler else f"tcp://{scheduler}"}
    try:
        client = Client(timeout=connect_timeout_s, **kwargs)
    except (OSError, TimeoutError) as exc:
        raise arg_error("scheduler", f"cannot reach {scheduler} within {connect_timeout_s:g} s "
                         f"({type(exc).__name__})") from None
    except ValueError as exc:
        raise arg_error("scheduler", f"bad address {scheduler!r} ({exc})") from None
    try:
        try:
            client.wait_for_workers(1, timeout=WORKER_WAIT_S)
        except TimeoutError:
            raise arg_error("scheduler", f"the cluster at {scheduler} has no workers "
                             f"(waited {WORKER_WAIT_S:g} s)") from None
        # workers elsewhere use their own user cache directory
        client.register_plugin(_numba_cache_plugin(None))
        yield client
    finally:
        client.close()
