"""The mapper: search cost per GEMM, and DRAM bytes against both bounds.

Prints (1) the search's own cost per distinct GEMM of ResNet-50 (224x224, batch 1, fwd) on
``edge32`` for each dataflow (candidates, milliseconds of the fast search and of the per-nest
reference it must agree with), uncached, kernels compiled first; (2) per conv layer of
ResNet-18 (224x224, batch 1) on ``edge32`` and every dataflow, the DRAM bytes of the legacy
schedule and of the mapper, the compulsory bytes and the communication lower bound, and the
cycles of both; (3) the CPU seconds of a ResNet-50 training-step replay (zero-skipping, the
``benchmarks/sparse_replay.py`` part 2 workload) with ``mapper.policy=legacy`` and with the
search, its cache emptied first (a cold run: about 400 distinct searches), best of two
alternating runs after a warm-up. Run: ``python
benchmarks/mapper.py``.
"""

from __future__ import annotations

import math
import statistics
import time

from sparsesim.hardware.presets import load_accel
from sparsesim.dataflows import DATAFLOWS, display_order
from sparsesim.mapping import cost as mcost
from sparsesim.mapping import search as msearch
from sparsesim.mapping import space as mspace
from sparsesim.simulation.run import simulate_rows
from sparsesim.workloads.gemm import Phase
from sparsesim.workloads.networks import NETWORKS
from sparsesim.workloads.ops import Conv2d, Workload


def search_cost() -> None:
    cfg = load_accel("edge32")
    gemms = sorted({op.gemm(Phase.FWD) for op in NETWORKS.get("resnet50")(1)}, key=lambda g: (g.M, g.N, g.K))
    print(f"1. search cost per distinct GEMM, ResNet-50 fwd ({len(gemms)} GEMMs), edge32, uncached")
    print(f"   {'dataflow':8s} {'candidates':>10s} {'ms mean':>8s} {'ms max':>8s} {'reference ms mean':>18s}")
    for name in display_order("systolic"):
        msearch.search(mspace.NestSpace(DATAFLOWS.get(name).kind, gemms[0], cfg))  # compile (or load) the kernels
        times, ref_times, cands = [], [], []
        for g in gemms:
            space = mspace.NestSpace(DATAFLOWS.get(name).kind, g, cfg)
            t0 = time.process_time()
            msearch.search(space)
            times.append(1e3 * (time.process_time() - t0))
            cands.append(space.candidate_table()[0].size)
            space = mspace.NestSpace(DATAFLOWS.get(name).kind, g, cfg)
            t0 = time.process_time()
            msearch.search(space, reference=True)
            ref_times.append(1e3 * (time.process_time() - t0))
        print(f"   {name:8s} {statistics.mean(cands):10.0f} {statistics.mean(times):8.2f} {max(times):8.2f} "
              f"{statistics.mean(ref_times):18.2f}")


def bytes_vs_bounds() -> None:
    convs = tuple(op for op in NETWORKS.get("resnet18")(1) if isinstance(op, Conv2d))
    wl = Workload("resnet18", convs)
    print("\n2. ResNet-18 convs, 224x224, batch 1, edge32: DRAM MB (legacy, mapper, lower bound, compulsory)")
    for name in display_order("systolic"):
        new = simulate_rows(wl, load_accel("edge32"), name)
        old = simulate_rows(wl, load_accel("edge32", ["mapper.policy=legacy"]), name)
        print(f"   {name}: {'layer':18s} {'legacy':>7s} {'mapper':>7s} {'bound':>7s} {'compul':>7s} "
              f"{'old cyc':>9s} {'new cyc':>9s}  mapping")
        for n, o in zip(new, old):
            print(f"       {n['name']:18s} {o['dram_bytes'] / 1e6:7.2f} {n['dram_bytes'] / 1e6:7.2f} "
                  f"{n['dram_lower_bound_bytes'] / 1e6:7.2f} {n['dram_compulsory_bytes'] / 1e6:7.2f} "
                  f"{o['cycles']:9d} {n['cycles']:9d}  {n['mapping']}")
        tot = {k: sum(r[k] for r in new) for k in ("dram_bytes", "dram_lower_bound_bytes", "cycles")}
        print(f"       {'total':18s} {sum(r['dram_bytes'] for r in old) / 1e6:7.2f} {tot['dram_bytes'] / 1e6:7.2f} "
              f"{tot['dram_lower_bound_bytes'] / 1e6:7.2f} {sum(r['dram_compulsory_bytes'] for r in new) / 1e6:7.2f} "
              f"{sum(r['cycles'] for r in old):9d} {tot['cycles']:9d}  gap to bound "
              f"{100 * (tot['dram_bytes'] / tot['dram_lower_bound_bytes'] - 1):.1f}%")


def replay_cpu() -> None:
    from sparsesim.sparsity import cli_sparsity
    from sparsesim.workloads.gemm import PHASES

    ops = tuple(NETWORKS.get("resnet50")(1))
    train = Workload("resnet50", ops, PHASES)
    cfgs = {label: load_accel("edge32", sets, {"sparsity": cli_sparsity(["zero_skip:input:skipping"])})
            for label, sets in (("mapper.policy=legacy", ["mapper.policy=legacy"]), ("search (cold cache)", []))}
    for cfg in cfgs.values():  # load the kernels and lazy imports before timing either
        simulate_rows(Workload("warm", ops[:2], PHASES), cfg, "best")
    print("\n3. ResNet-50 training step replay, zero_skip:input:skipping, edge32, --dataflow best: CPU seconds, "
          "best of 2, alternating")
    best = {label: math.inf for label in cfgs}
    for _ in range(2):
        for label, cfg in cfgs.items():
            msearch._search_cached.cache_clear()
            t0 = time.process_time()
            simulate_rows(train, cfg, "best")
            best[label] = min(best[label], time.process_time() - t0)
    for label, seconds in best.items():
        print(f"   {label:22s} {seconds:6.2f} s")
    print(f"   search / legacy        {best['search (cold cache)'] / best['mapper.policy=legacy']:6.2f}")


if __name__ == "__main__":
    search_cost()
    bytes_vs_bounds()
    replay_cpu()
