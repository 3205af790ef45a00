"""Speed of sparse replay: simulated dense-equivalent MACs per second, and peak memory.

1. A 1024x1024x1024 GEMM with real masks (ReLU-like activations, about half zeros) on the
   32x32 ``edge32`` array, for zero-skipping (systolic and decoupled lanes) and 2:4 N:M,
   each dataflow. Target: at least 1e9 dense-equivalent MACs per second per core.
2. A full ResNet-50 training step (fwd, bwd_data, bwd_weight of all 54 layers at 224x224,
   batch 1, the tensor sizes of a real trace) with each feature. Target: under 60 s each.
   ``--trace DIR`` replays a captured trace instead of seeded synthetic tensors.

The replay runs single-threaded (one core). Run: ``python benchmarks/sparse_replay.py``.
"""

from __future__ import annotations

import argparse
import resource
import time

from sparsesim.hardware.presets import load_accel
from sparsesim.sparsity import cli_sparsity
from sparsesim.simulation.run import simulate_rows
from sparsesim.workloads.gemm import PHASES, Phase
from sparsesim.workloads.networks import NETWORKS
from sparsesim.workloads.ops import Workload, gemm_op

FEATURES = {
    "zero_skip (systolic)": (["zero_skip:input:skipping"], []),
    "zero_skip (decoupled)": (["zero_skip:input:skipping"], ["array.lanes=decoupled"]),
    "nm 2:4 (BDWP)": (["nm:2:4"], []),
    "act_policy topk + skip": (["act_policy:topk:0.25", "zero_skip:input:skipping"], []),
}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", help="replay this trace for part 2 instead of synthetic tensors")
    args = parser.parse_args()

    gemm = Workload("gemm1024", (gemm_op("g", 1024, 1024, 1024),), (Phase.FWD,))
    print("1. 1024^3 GEMM, real masks, edge32 (32x32)")
    print(f"   {'feature':24s} {'dataflow':8s} {'seconds':>8s} {'dense-equiv MAC/s':>18s} {'speedup':>8s}")
    for label, (spec, sets) in FEATURES.items():
        cfg = load_accel("edge32", sets, {"sparsity": cli_sparsity(spec)})
        for dataflow in ("os", "ws", "is"):
            simulate_rows(gemm, cfg, dataflow)  # compile kernels once (Numba cache)
            t0 = time.perf_counter()
            row = simulate_rows(gemm, cfg, dataflow)[0]
            dt = time.perf_counter() - t0
            print(f"   {label:24s} {dataflow:8s} {dt:8.3f} {row['macs_dense'] / dt:18.3e} {row['speedup']:7.2f}x")

    if args.trace:
        from pathlib import Path

        from sparsesim.workloads.trace import load_trace

        train = load_trace(Path(args.trace)).workload(PHASES)
        what = f"trace {args.trace}"
    else:
        train = Workload("resnet50", tuple(NETWORKS.get("resnet50")(1)), PHASES)
        what = "ResNet-50 layer list, 224x224, batch 1, seeded synthetic tensors"
    print(f"2. training step (fwd, bwd_data, bwd_weight): {what}")
    print(f"   {'feature':24s} {'seconds':>8s} {'dense-equiv MAC/s':>18s} {'speedup':>8s} {'peak MiB':>9s}")
    for label, (spec, sets) in FEATURES.items():
        cfg = load_accel("edge32", sets, {"sparsity": cli_sparsity(spec)})
        t0 = time.perf_counter()
        rows = simulate_rows(train, cfg, "best")
        dt = time.perf_counter() - t0
        macs = sum(r["macs_dense"] for r in rows)
        speedup = sum(r["dense_cycles"] for r in rows) / sum(r["cycles"] for r in rows)
        print(f"   {label:24s} {dt:8.1f} {macs / dt:18.3e} {speedup:7.2f}x {peak_rss_mib():9.0f}")


if __name__ == "__main__":
    main()
