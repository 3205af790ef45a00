"""The GEMM-level engine shared by dense simulation and sparse replay.

For one GEMM the dataflow plans the folds and tiles (:mod:`sparsesim.dataflows`), SimPy times the
load/compute/store pipeline (:mod:`sparsesim.accel.timing`) and the energy table prices the event
counts (:mod:`sparsesim.accel.energy`); :func:`make_row` turns the outcome into a result row.
``best`` picks, per op and phase, the registered dataflow with the fewest cycles.
:mod:`sparsesim.simulation` (dense) and :mod:`sparsesim.replay` (sparse) both build on this module,
which imports neither.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field

from sparsesim.accel.config import AccelConfig, to_dict
from sparsesim.accel.energy import EnergyTable, energy_breakdown_pj
from sparsesim.accel.schedule import EventCounts, TileSchedule, back_to_back
from sparsesim.accel.timing import simulate_tiles
from sparsesim.dataflows import DATAFLOWS
from sparsesim.workloads.errors import field_error
from sparsesim.workloads.gemm import Gemm, Phase
from sparsesim.workloads.ops import Op, Workload

BEST = "best"


def dataflow_choices() -> list[str]:
    """Names accepted by ``--dataflow``: every registered dataflow plus ``best``."""
    return DATAFLOWS.names() + [BEST]


def run_id(cfg: AccelConfig, dataflow: str) -> str:
    """A short stable hash of everything that defines a run's hardware, features and mapping."""
    blob = json.dumps({"accel": to_dict(cfg), "dataflow": dataflow}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class OpOutcome:
    """One (op, phase) planned and timed, all groups included."""

    dataflow: str
    cycles: int
    compute_cycles: int
    stall_cycles: int
    counts: EventCounts
    macs_dense: int
    macs_effectual: int
    folds: int
    tiles: int
    extra: dict = field(default_factory=dict)  # feature-specific result columns
    overhead_cycles: int = 0  # serialized work beside the array (e.g. N:M pre-generation)
    memory: dict = field(default_factory=dict)  # the mapping used and its DRAM bounds (memory_columns)


def memory_columns(plans: list) -> dict:
    """Row columns of the mapper (:mod:`sparsesim.dataflows.mapper`) for the plans of one (op,
    phase), one per repetition: the nest used, as text, and the DRAM bytes it cannot go below."""
    texts = sorted({p.mapping for p in plans})
    return {
        "mapping": texts[0] if len(texts) == 1 else " | ".join(texts),
        "dram_compulsory_bytes": sum(p.dram_compulsory_bytes for p in plans),
        "dram_lower_bound_bytes": sum(p.dram_lower_bound_bytes for p in plans),
        "psum_spill_bytes": sum(p.psum_spill_bytes for p in plans),
    }


def time_schedule(schedule: TileSchedule, cfg: AccelConfig) -> tuple[int, int, int]:
    """``(cycles, compute_cycles, stall_cycles)`` of a tile schedule under SimPy memory timing."""
    timing = simulate_tiles(schedule, bandwidth_bytes_per_cycle=cfg.dram.bandwidth_bytes_per_cycle,
                            latency_cycles=cfg.dram.latency_cycles, ideal=cfg.dram.ideal)
    return timing.total_cycles, timing.compute_cycles, timing.stall_cycles


def run_gemm(gemm: Gemm, cfg: AccelConfig, dataflow: str) -> OpOutcome:
    """Plan and time a dense ``gemm`` on ``cfg`` with one registered dataflow.

    The ``count`` repetitions (conv groups, bmm batch) are identical, so one is planned; they
    run back to back and are timed as one pipeline (the next one's loads overlap this one's
    compute).
    """
    plan = DATAFLOWS.get(dataflow, "--dataflow").plan(gemm, cfg)
    n = gemm.count
    cycles, compute, stall = time_schedule(back_to_back([plan.schedule] * n), cfg)
    return OpOutcome(plan.dataflow, cycles, compute, stall, plan.counts.scaled(n),
                     plan.macs_dense * n, plan.macs_effectual * n, plan.folds * n, len(plan.schedule) * n,
                     memory=memory_columns([plan] * n))


def supported_dataflows(cfg: AccelConfig) -> list[str]:
    """The registered dataflows this hardware's interconnect supports."""
    return [name for name in DATAFLOWS.names() if not cfg.array.dataflows or name in cfg.array.dataflows]


def check_dataflow(cfg: AccelConfig, dataflow: str) -> None:
    """Refuse an unknown dataflow, or one the configured array cannot run."""
    for name in cfg.array.dataflows:
        if name not in DATAFLOWS:
            raise field_error("array.dataflows", f"unknown dataflow {name!r} (choose from {', '.join(DATAFLOWS.names())})")
    if dataflow != BEST and dataflow not in DATAFLOWS:
        raise field_error("--dataflow", f"unknown dataflow {dataflow!r} (choose from {', '.join(dataflow_choices())})")
    if dataflow != BEST and dataflow not in supported_dataflows(cfg):
        raise field_error("--dataflow", f"{dataflow!r} is not supported by {cfg.name} "
                          f"(array.dataflows: {', '.join(cfg.array.dataflows)})")


def best_of(dataflow: str, attempt, cfg: AccelConfig) -> OpOutcome:
    """``attempt(name)`` for one dataflow, or for ``best`` the fastest of those the hardware
    supports (ties: name order) -- the per-layer, per-phase choice made before a run."""
    if dataflow != BEST:
        return attempt(dataflow)
    return min((attempt(name) for name in supported_dataflows(cfg)), key=lambda o: o.cycles)


def make_row(op: Op, phase: Phase, gemm: Gemm, out: OpOutcome, dense: OpOutcome, cfg: AccelConfig,
             table: EnergyTable, sparsity: str) -> dict:
    """The result row of one (op, phase): contract fields of DESIGN 3.1 and more."""
    counts = out.counts
    breakdown = energy_breakdown_pj(counts, cfg, out.cycles, table)
    dram_bytes = counts.dram_read_bytes + counts.dram_write_bytes
    pes = cfg.array.pes
    bw_bound = 0 if cfg.dram.ideal else math.ceil(dram_bytes / cfg.dram.bandwidth_bytes_per_cycle)
    mac_bound = math.ceil(out.macs_effectual / pes)
    return {
        "name": op.name,
        "kind": op.kind,
        "phase": str(phase),
        "M": gemm.M,
        "N": gemm.N,
        "K": gemm.K,
        "count": gemm.count,
        "dataflow": out.dataflow,
        "sparsity": sparsity,
        "cycles": out.cycles,
        "compute_cycles": out.compute_cycles,
        "stall_cycles": out.stall_cycles,
        "overhead_cycles": out.overhead_cycles,
        "dense_cycles": dense.cycles,
        "dense_compute_cycles": dense.compute_cycles,
        "speedup": dense.cycles / max(out.cycles, 1),
        "compute_speedup": dense.compute_cycles / max(out.compute_cycles, 1),
        "ideal_speedup": out.macs_dense / max(out.macs_effectual, 1),
        "bound_speedup": dense.cycles / max(mac_bound, bw_bound, 1),
        "mac_bound_cycles": mac_bound,
        "bw_bound_cycles": bw_bound,
        "bound_cycles": max(mac_bound, bw_bound),
        "utilization": out.macs_effectual / (max(out.cycles, 1) * pes),
        "macs_dense": out.macs_dense,
        "macs_effectual": out.macs_effectual,
        "folds": out.folds,
        "tiles": out.tiles,
        "dram_bytes": dram_bytes,
        "dram_read_bytes": counts.dram_read_bytes,
        "dram_write_bytes": counts.dram_write_bytes,
        "sram_bytes": counts.sram_a_bytes + counts.sram_b_bytes + counts.sram_out_bytes,
        "latency_s": out.cycles / cfg.clock_hz,  # seconds at the array clock
        "energy_pj": sum(breakdown.values()),
        "dense_energy_pj": (sum(breakdown.values()) if dense is out else
                            sum(energy_breakdown_pj(dense.counts, cfg, dense.cycles, table).values())),
        "energy_breakdown_pj": breakdown,
        "events": counts.as_dict(),
        **out.extra,
        **{"mapping": "", "dram_compulsory_bytes": 0, "dram_lower_bound_bytes": 0, "psum_spill_bytes": 0},
        **out.memory,
    }


def op_phases(workload: Workload, index: int) -> list[Phase]:
    """The phases simulated for op ``index``: the workload's, less those the op does not have
    (a trace's first layer has no input gradient, so no bwd_data)."""
    own = workload.meta.get("phases_by_op")
    allowed = own[index] if own is not None else workload.ops[index].phases
    return [p for p in workload.phases if p in allowed]
