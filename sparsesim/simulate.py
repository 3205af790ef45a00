"""``simulate()``: compose a workload, an accelerator config and a dataflow into result rows.

One row per (op, phase). For each GEMM the dataflow plans the folds and tiles
(:mod:`dataflows`), SimPy times the load/compute/store pipeline (:mod:`accel.timing`) and the
energy table prices the event counts (:mod:`accel.energy`). ``best`` picks, per op and phase,
the registered dataflow with the fewest cycles.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

from accel.config import AccelConfig, to_dict
from accel.energy import EnergyTable, check_table_supports, energy_breakdown_pj, energy_table
from accel.timing import simulate_tiles
from dataflows import DATAFLOWS, Plan
from workloads.errors import field_error
from workloads.gemm import Gemm, Phase
from workloads.ops import Op, Workload

BEST = "best"


def dataflow_choices() -> list[str]:
    """Names accepted by ``--dataflow``: every registered dataflow plus ``best``."""
    return DATAFLOWS.names() + [BEST]


def run_id(cfg: AccelConfig, dataflow: str) -> str:
    """A short stable hash of everything that defines a run's hardware and mapping."""
    blob = json.dumps({"accel": to_dict(cfg), "dataflow": dataflow}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class GemmOutcome:
    """A planned and timed GEMM (all ``count`` repetitions)."""

    plan: Plan
    cycles: int
    compute_cycles: int
    stall_cycles: int


def run_gemm(gemm: Gemm, cfg: AccelConfig, dataflow: str) -> GemmOutcome:
    """Plan and time ``gemm`` on ``cfg`` with one registered dataflow.

    The ``count`` repetitions (conv groups, bmm batch) run back to back; each is timed alike,
    so the totals are one repetition's times ``count``.
    """
    plan = DATAFLOWS.get(dataflow, "--dataflow").plan(gemm, cfg)
    timing = simulate_tiles(plan.schedule, bandwidth_bytes_per_cycle=cfg.dram.bandwidth_bytes_per_cycle,
                            latency_cycles=cfg.dram.latency_cycles, ideal=cfg.dram.ideal)
    n = gemm.count
    return GemmOutcome(plan, timing.total_cycles * n, timing.compute_cycles * n, timing.stall_cycles * n)


def best_gemm(gemm: Gemm, cfg: AccelConfig, dataflow: str) -> GemmOutcome:
    """``run_gemm`` for one dataflow, or the fastest of all for ``best`` (ties: name order)."""
    if dataflow != BEST:
        return run_gemm(gemm, cfg, dataflow)
    outcomes = [run_gemm(gemm, cfg, name) for name in DATAFLOWS.names()]
    return min(outcomes, key=lambda o: o.cycles)


def simulate_op(op: Op, phase: Phase, cfg: AccelConfig, dataflow: str, table: EnergyTable) -> dict:
    """One result row for ``op`` in ``phase``."""
    gemm = op.gemm(phase)
    out = best_gemm(gemm, cfg, dataflow)
    plan = out.plan
    n = gemm.count
    counts = plan.counts.scaled(n)
    macs_dense = plan.macs_dense * n
    macs_eff = plan.macs_effectual * n
    breakdown = energy_breakdown_pj(counts, cfg, out.cycles, table)
    dram_bytes = counts.dram_read_bytes + counts.dram_write_bytes
    pes = cfg.array.pes
    bw_bound = 0 if cfg.dram.ideal else math.ceil(dram_bytes / cfg.dram.bandwidth_bytes_per_cycle)
    mac_bound = math.ceil(macs_eff / pes)
    dense_cycles = out.cycles  # dense engine: sparse features replace this with the dense re-run
    return {
        "name": op.name,
        "kind": op.kind,
        "phase": str(phase),
        "M": gemm.M,
        "N": gemm.N,
        "K": gemm.K,
        "count": n,
        "dataflow": plan.dataflow,
        "cycles": out.cycles,
        "compute_cycles": out.compute_cycles,
        "stall_cycles": out.stall_cycles,
        "dense_cycles": dense_cycles,
        "speedup": dense_cycles / out.cycles,
        "ideal_speedup": macs_dense / max(macs_eff, 1),
        "mac_bound_cycles": mac_bound,
        "bw_bound_cycles": bw_bound,
        "bound_cycles": max(mac_bound, bw_bound),
        "utilization": macs_eff / (out.cycles * pes),
        "macs_dense": macs_dense,
        "macs_effectual": macs_eff,
        "folds": plan.folds * n,
        "tiles": len(plan.schedule) * n,
        "dram_bytes": dram_bytes,
        "dram_read_bytes": counts.dram_read_bytes,
        "dram_write_bytes": counts.dram_write_bytes,
        "sram_bytes": counts.sram_a_bytes + counts.sram_b_bytes + counts.sram_out_bytes,
        "latency_s": out.cycles / cfg.clock_hz,
        "energy_pj": sum(breakdown.values()),
        "energy_breakdown_pj": breakdown,
        "events": counts.as_dict(),
    }


def simulate(workload: Workload, cfg: AccelConfig, dataflow: str) -> list[dict]:
    """Simulate every op of ``workload`` in each of its phases; one row per (op, phase)."""
    if dataflow != BEST and dataflow not in DATAFLOWS:
        raise field_error("--dataflow", f"unknown dataflow {dataflow!r} (choose from {', '.join(dataflow_choices())})")
    table = energy_table(cfg.energy_table)
    check_table_supports(table, cfg)
    rows = []
    for op in workload.ops:
        for phase in workload.phases:
            if phase in op.phases:
                rows.append(simulate_op(op, phase, cfg, dataflow, table))
    return rows
