"""Cost of the sweep runner itself: plan construction, per-point overhead and a 200-point ResNet-18 sweep.

0. Plan construction (no cluster): time and traced memory peak (``tracemalloc``) of refusing a
   spec of a billion random samples (counted, never drawn), of planning a ten-million-point grid
   with ``max_points`` raised and building its first 1,000 points (lazy: the peak does not grow
   with the plan), and the cost of building one point (resolving and validating its config).
1. 50 trivial points (one 8x8x8 GEMM, 50 DRAM latencies): pure ``simulate_rows()`` time in this
   process against the wall time of ``run_sweep`` with 2 workers, the start-up of the embedded
   Dask cluster measured on its own, so the runner's per-point overhead (futures, scheduling,
   pickling, atomic Parquet write) shows; plus the time of a rerun that finds every point done.
2. 200 points over ResNet-18's layers (training step, 63 GEMMs per point): 5 square arrays x
   5 DRAM bandwidths x 2 A-buffer sizes x 4 dataflows, with 2 workers (target: under 10
   minutes), against the same points simulated serially in this process.

Run: ``python benchmarks/sweep_overhead.py [--workers 2] [--skip-serial] [--plan-only]``.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
import tracemalloc
from pathlib import Path

from sparsesim.hardware.config import AccelConfig, build
from sparsesim.simulation.run import simulate_rows
from sparsesim.sweeps import connect, plan_sweep, run_sweep
from sparsesim.workload_args import build_workload
from sparsesim.core.errors import InputError

TRIVIAL = {
    "name": "overhead-trivial",
    "base": "edge32",
    "axes": {"dram.latency_cycles": list(range(50))},
    "workloads": [{"gemm": [8, 8, 8]}],
    "dataflows": ["os"],
}

RESNET = {
    "name": "overhead-resnet18",
    "base": "edge32",
    "axes": [
        {"kind": "zip", "values": {"array.rows": [8, 16, 32, 64, 128], "array.cols": [8, 16, 32, 64, 128]}},
        {"kind": "grid", "values": {"dram.bandwidth_bytes_per_cycle": [4, 8, 16, 32, 64],
                                    "buffers.a.size_bytes": [65536, 1048576]}},
    ],
    "workloads": [{"network": "resnet18", "batch": 1, "phases": "training"}],
    "dataflows": ["os", "ws", "is", "best"],
}


BILLION = {
    "name": "plan-billion",
    "base": "edge32",
    "axes": [{"kind": "random", "samples": 1_000_000_000,
              "values": {"dram.bandwidth_bytes_per_cycle": {"min": 4, "max": 64}}}],
    "workloads": [{"gemm": [8, 8, 8]}],
    "dataflows": ["os"],
}

TEN_MILLION = {
    "name": "plan-ten-million",
    "base": "edge32",
    "max_points": 10_000_000,
    "axes": {"dram.latency_cycles": list(range(1, 101)), "dram.bandwidth_bytes_per_cycle": list(range(1, 101)),
             "buffers.a.size_bytes": [65536 + 1024 * i for i in range(250)]},
    "workloads": [{"gemm": [8, 8, 8]}],
    "dataflows": ["os", "ws", "is", "best"],
}


def _traced(fn):
    """``fn()``'s result, wall seconds and traced memory peak in bytes."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        result = fn()
    finally:
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return result, seconds, peak


def plan_figures(root: Path) -> None:
    """Section 0: what planning costs, in time and memory."""
    next(plan_sweep({**TEN_MILLION, "max_points": 10_000_000}, root / "warm.yaml").iter_points())  # imports

    def refuse() -> str:
        try:
            plan_sweep(BILLION, root / "billion.yaml")
        except InputError as exc:
            return str(exc)
        raise AssertionError("a billion points were accepted")

    message, seconds, peak = _traced(refuse)
    print(f"refusing 1e9 random samples: {seconds * 1e3:.0f} ms, peak {peak / 2**10:.0f} KiB ({message})")
    plan, seconds, peak = _traced(lambda: plan_sweep(TEN_MILLION, root / "ten-million.yaml"))
    print(f"planning {plan.count:,} grid points (max_points raised): {seconds * 1e3:.0f} ms, "
          f"peak {peak / 2**10:.0f} KiB")
    for k in (10, 1000):
        _, _, peak = _traced(lambda: sum(1 for _ in itertools.islice(plan.iter_points(), k)))
        t0 = time.perf_counter()  # timed apart: tracing slows every allocation
        sum(1 for _ in itertools.islice(plan.iter_points(), k))
        seconds = time.perf_counter() - t0
        print(f"  building its first {k:,} points: {seconds:.2f} s ({seconds / k * 1e3:.2f} ms/point: each config "
              f"resolved and validated, shared by its 4 dataflows), peak {peak / 2**10:.0f} KiB")


def serial_seconds(plan) -> float:
    """Pure simulate_rows() time of every point, one after another in this process."""
    total = 0.0
    for point in plan.points:
        cfg = build(AccelConfig, point.config)
        workload = build_workload(point.workload)
        t0 = time.perf_counter()
        simulate_rows(workload, cfg, point.dataflow)
        total += time.perf_counter() - t0
    return total


def _warm() -> None:
    """Import what a point needs, on a worker."""
    import sparsesim.simulation.run  # noqa: F401
    import sparsesim.sweeps  # noqa: F401


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--skip-serial", action="store_true", help="skip the serial run of the 200 points")
    ap.add_argument("--plan-only", action="store_true", help="only section 0, plan construction")
    args = ap.parse_args()
    n = args.workers

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        plan_figures(root)
        if args.plan_only:
            return
        t0 = time.perf_counter()
        with connect(None, n):
            pass
        startup = time.perf_counter() - t0

        plan = plan_sweep(TRIVIAL, root / "trivial.yaml")
        serial_seconds(plan)  # warm imports and caches
        pure = serial_seconds(plan)
        t0 = time.perf_counter()
        run_sweep(plan, root / "trivial", workers=n, progress=False)
        wall = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = run_sweep(plan, root / "trivial", workers=n, progress=False)
        rerun = time.perf_counter() - t0
        assert again.computed == 0
        k = len(plan.points)
        per_point = (wall - startup) / k
        # the same points on a cluster that is already up and has imported the simulator
        with connect(None, n) as client:
            client.run(_warm)
            address = client.scheduler.address
            t0 = time.perf_counter()
            run_sweep(plan, root / "trivial-warm", scheduler=address, progress=False)
            warm = time.perf_counter() - t0
        print(f"embedded cluster start + stop ({n} workers): {startup:.2f} s")
        print(f"{k} trivial points: simulate_rows() {pure / k * 1e3:.2f} ms/point serial")
        print(f"  cold sweep (cluster start, worker imports): {wall:.2f} s wall = "
              f"{per_point * 1e3:.1f} ms/point after the cluster start")
        print(f"  warm cluster: {warm:.2f} s wall = {warm / k * 1e3:.1f} ms/point; runner overhead ~ "
              f"{(warm / k - pure / k / n) * 1e3:.1f} ms/point with {n} workers")
        print(f"  rerun with every point done (no cluster started): {rerun:.2f} s")

        plan = plan_sweep(RESNET, root / "resnet.yaml")
        t0 = time.perf_counter()
        summary = run_sweep(plan, root / "resnet", workers=n, progress=False)
        wall = time.perf_counter() - t0
        assert summary.computed == len(plan.points) and not summary.failed
        print(f"{len(plan.points)} ResNet-18 training points, {n} workers: {wall:.1f} s wall "
              f"({len(plan.points) / wall:.1f} points/s, 63 GEMMs each)")
        if not args.skip_serial:
            serial = serial_seconds(plan)
            print(f"same points simulated serially in-process: {serial:.1f} s "
                  f"(parallel efficiency {serial / wall / n:.0%} of {n} workers)")


if __name__ == "__main__":
    main()
