"""Speed of the dense engine: simulated dense MACs per second of wall time.

Prints, for each dataflow, the time to plan and time (SimPy) a 1024x1024x1024 GEMM and
ResNet-50's whole layer list (fwd) on the 32x32 ``edge32`` preset, and the whole-process
time of ``sparsesim run --network resnet50`` for all three dataflows (start-up included;
target under 2 s). Run: ``python benchmarks/dense_engine.py``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from sparsesim.hardware.presets import load_accel
from sparsesim.dataflows import DATAFLOWS, display_order
from sparsesim.simulation.run import simulate_rows
from sparsesim.workloads.gemm import Phase
from sparsesim.workloads.networks import NETWORKS
from sparsesim.workloads.ops import Workload, gemm_op


def _rate(workload: Workload, cfg, dataflow: str, repeat: int = 3) -> tuple[float, float]:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        rows = simulate_rows(workload, cfg, dataflow)
        best = min(best, time.perf_counter() - t0)
    macs = sum(r["macs_dense"] for r in rows)
    return best, macs / best


def main() -> None:
    cfg = load_accel("edge32")
    cases = {
        "gemm 1024^3": Workload("gemm", (gemm_op("g", 1024, 1024, 1024),), (Phase.FWD,)),
        "resnet50 fwd": Workload("resnet50", tuple(NETWORKS.get("resnet50")(1)), (Phase.FWD,)),
    }
    print(f"{'workload':14s} {'dataflow':8s} {'seconds':>8s} {'dense MACs/s':>14s}")
    for label, wl in cases.items():
        for name in display_order("systolic"):
            seconds, rate = _rate(wl, cfg, name)
            print(f"{label:14s} {name:8s} {seconds:8.3f} {rate:14.3e}")
    exe = Path(sys.executable).with_name("sparsesim")
    t0 = time.perf_counter()
    for name in display_order("systolic"):
        subprocess.run([str(exe), "run", "--network", "resnet50", "--accel", "edge32", "--dataflow", name],
                       check=True, stdout=subprocess.DEVNULL)
    three = time.perf_counter() - t0
    print(f"whole process, resnet50 layer list, 3 dataflows (3 processes): {three:.2f} s (target < 2 s)")


if __name__ == "__main__":
    main()
