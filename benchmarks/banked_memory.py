"""Speed of the banked DRAM model: a full ResNet-50 dense ``best`` run (every layer's mapper
search and timing) on ``edge32`` with ``dram.model: banked`` (each standard) against the
``simple`` channel. Issue 19's target: under 3 s. Run: ``python benchmarks/banked_memory.py``.

The first banked run compiles the Numba kernel (cached on disk afterwards); each line is the
best of ``REPEAT`` runs.
"""

from __future__ import annotations

import time

from sparsesim.hardware.presets import load_accel
from sparsesim.simulation.run import simulate_rows
from sparsesim.workloads.gemm import Phase
from sparsesim.workloads.networks import NETWORKS
from sparsesim.workloads.ops import Workload

REPEAT = 2


def _best_seconds(workload: Workload, sets: list[str]) -> tuple[float, int]:
    cfg = load_accel("edge32", sets)
    best, cycles = float("inf"), 0
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        rows = simulate_rows(workload, cfg, "best")
        best = min(best, time.perf_counter() - t0)
        cycles = sum(int(r["cycles"]) for r in rows)
    return best, cycles


def main() -> None:
    wl = Workload("resnet50", tuple(NETWORKS.get("resnet50")(1)), (Phase.FWD,))
    simple, simple_cycles = _best_seconds(wl, [])
    print(f"{'memory model':28s} {'seconds':>8s} {'x simple':>9s} {'cycles':>12s}")
    print(f"{'simple':28s} {simple:8.3f} {1.0:9.2f} {simple_cycles:12d}")
    for standard in ("DDR4_3200", "LPDDR5_6400", "HBM2E", "HBM3"):
        seconds, cycles = _best_seconds(wl, ["dram.model=banked", f"dram.standard={standard}"])
        print(f"{'banked ' + standard:28s} {seconds:8.3f} {seconds / simple:9.2f} {cycles:12d}"
              f"  ({'under' if seconds < 3 else 'OVER'} the 3 s target)")


if __name__ == "__main__":
    main()
