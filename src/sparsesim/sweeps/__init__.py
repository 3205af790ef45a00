"""Design-space sweeps: a YAML spec becomes a validated plan, run on a Dask cluster, resumably.

One module per job: :mod:`.spec` parses and expands a spec into a :class:`SweepPlan` (no
I/O besides reading the spec and hashing the files it names), :mod:`.store` owns the output
directory, :mod:`.cluster` connects to Dask, and :mod:`.runner` computes the missing points.
``sparsesim.sweep(spec, out)`` (:mod:`sparsesim.api`) and the ``sweep`` command drive it.

The package is ``sweeps`` (plural) because ``sparsesim.sweep`` is the public API function.
"""

from sparsesim.sweeps.cluster import CONNECT_TIMEOUT_S, WORKER_WAIT_S, connect, default_workers, numba_cache_dir
from sparsesim.sweeps.runner import SweepSummary, run_point, run_sweep
from sparsesim.sweeps.spec import (AXIS_KINDS, DEFAULT_MAX_POINTS, FORMAT_VERSION, SPEC_KEYS, WORKLOAD_KINDS, AxisGroup,
                                   Distribution, Point, SweepPlan, WorkloadSpec, load_spec, plan_sweep, sparsity_label)
from sparsesim.sweeps.store import SweepDir, collect_results, prepare_out_dir, read_meta

__all__ = ["AXIS_KINDS", "CONNECT_TIMEOUT_S", "DEFAULT_MAX_POINTS", "FORMAT_VERSION", "SPEC_KEYS", "WORKER_WAIT_S",
           "WORKLOAD_KINDS", "AxisGroup", "Distribution", "Point", "SweepDir", "SweepPlan", "SweepSummary",
           "WorkloadSpec", "collect_results", "connect", "default_workers", "load_spec", "numba_cache_dir",
           "plan_sweep", "prepare_out_dir", "read_meta", "run_point", "run_sweep", "sparsity_label"]
