"""The GEMM-level engine shared by dense simulation and sparse replay.

For one GEMM the dataflow plans the folds and tiles (:mod:`sparsesim.dataflows`), the memory model
times the load/compute/store pipeline (:mod:`sparsesim.hardware.memory`) and the energy table prices
the event counts (:mod:`sparsesim.hardware.energy`); :func:`make_row` turns the outcome into a result row.
``best`` picks, per op and phase, the registered dataflow with the fewest cycles.
:mod:`sparsesim.simulation.run` (dense) and :mod:`sparsesim.simulation.replay` (sparse) both build on this module,
which imports neither.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sparsesim.hardware.config import AccelConfig, to_dict
from sparsesim.hardware.energy import EnergyTable, config_energy_table, energy_breakdown_pj
from sparsesim.hardware.schedule import EventCounts, TileSchedule, back_to_back
from sparsesim.hardware.memory import DRAM_ENERGY_COLUMNS, memory_model
from sparsesim.dataflows import DATAFLOWS
from sparsesim.dataflows.array_kind import array_kind, macs_per_cycle
from sparsesim.dataflows.base import Dataflow
from sparsesim.dataflows.sparse import SparseWork
from sparsesim.simulation import multicore
from sparsesim.simulation.results import work_ratio
from sparsesim.core.errors import arg_error, field_error
from sparsesim.workloads.gemm import Gemm, Phase
from sparsesim.workloads.ops import Op, Workload

BEST = "best"


def dataflow_choices() -> list[str]:
    """Names accepted by ``--dataflow``: every registered dataflow plus ``best``."""
    return DATAFLOWS.names() + [BEST]


def run_id(cfg: AccelConfig, dataflow: str) -> str:
    """A short stable hash of everything that defines a run's hardware, features and mapping.

    Keys added to the config after this scheme existed are declared ``recorded_at_default=False``
    (:func:`sparsesim.hardware.config._param`): :func:`~sparsesim.hardware.config.to_dict` omits
    them at their default, so a config that does not set them keeps the id it always had."""
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
    memory: dict = field(default_factory=dict)  # the mapping used, its DRAM bounds, the memory model's counts


def memory_columns(plans: list) -> dict:
    """Row columns of the mapper (:mod:`sparsesim.mapping`) for the plans of one (op,
    phase), one per repetition: the nest used, as text, and the DRAM bytes it cannot go below."""
    texts = sorted({p.mapping for p in plans})
    return {
        "mapping": texts[0] if len(texts) == 1 else " | ".join(texts),
        "dram_compulsory_bytes": sum(p.dram_compulsory_bytes for p in plans),
        "dram_lower_bound_bytes": sum(p.dram_lower_bound_bytes for p in plans),
        "psum_spill_bytes": sum(p.psum_spill_bytes for p in plans),
    }


def time_schedule(schedule: TileSchedule, cfg: AccelConfig) -> tuple[int, int, int, dict]:
    """``(cycles, compute_cycles, stall_cycles, columns)`` of a tile schedule under ``cfg``'s memory
    model; ``columns`` are the model's own row columns (none for ``simple``)."""
    timing, columns = memory_model(cfg).time_with_columns(schedule)
    return timing.total_cycles, timing.compute_cycles, timing.stall_cycles, columns


@dataclass(frozen=True, slots=True, kw_only=True)
class SideWork:
    """Work beside a GEMM's own that its timing must include.

    ``read_bytes``/``write_bytes``: DRAM traffic beside the GEMM's (delta state, overlapped
    N:M pre-generation); ``spread`` shares it out over the tiles in proportion to their
    compute time (background traffic competing for bandwidth), otherwise reads come before
    the first tile and writes after the last (state brought in and out).
    ``select_cycles``: busy time of the pruning unit on this GEMM's weight stream when N:M
    weights are pruned while loading (no pre-generation). The unit is one more pipeline stage
    between DRAM and the weight buffer: the first tile cannot start before its weights are
    selected and the last tile computes after the last selection, so the GEMM takes at least
    ``select_cycles`` plus its last tile and epilogue; any shortfall is a stall.
    """

    read_bytes: int = 0
    write_bytes: int = 0
    spread: bool = False
    select_cycles: int = 0


def with_side_traffic(schedule: TileSchedule, side: SideWork) -> TileSchedule:
    """``schedule`` with ``side``'s DRAM traffic added to its tiles."""
    nbytes = (side.read_bytes, side.write_bytes)
    if not any(nbytes):
        return schedule
    load = schedule.load_bytes.copy()
    store = schedule.store_bytes.copy()
    if side.spread:
        share = schedule.compute_cycles / max(int(schedule.compute_cycles.sum()), 1)
        load += np.floor(share * nbytes[0]).astype(np.int64)
        store += np.floor(share * nbytes[1]).astype(np.int64)
        load[0] += nbytes[0] - int(np.floor(share * nbytes[0]).sum())
        store[-1] += nbytes[1] - int(np.floor(share * nbytes[1]).sum())
    else:
        load[0] += nbytes[0]
        store[-1] += nbytes[1]
    return dataclasses.replace(schedule, load_bytes=load, store_bytes=store)


PartWork = Callable[[Dataflow, multicore.Part, Gemm], list[SparseWork]]
"""Sparse work of one part of a GEMM split over cores: the :class:`SparseWork` of each of the
part's repetitions, from the slices of the operands' masks the part covers."""


def run_gemm(gemm: Gemm, cfg: AccelConfig, dataflow: str,
             work: Callable[[Dataflow], list[SparseWork]] | None = None, side: SideWork = SideWork(),
             part_work: PartWork | None = None, k_align: int = 1, k_ratio: float = 1.0) -> OpOutcome:
    """Plan and time ``gemm`` on ``cfg`` with one registered dataflow: the one GEMM-level
    function of dense simulation and sparse replay.

    Dense (``work`` None): the ``count`` repetitions (conv groups, bmm batch) are identical, so
    one is planned. Sparse: ``work(dataflow)`` gives one :class:`SparseWork` per repetition
    (each with its own masks). Either way they run back to back and are timed as one pipeline
    (the next one's loads overlap this one's compute), with ``side`` work included.

    On a chip of several cores (``chip.cores > 1``) the GEMM is split over them
    (:mod:`sparsesim.simulation.multicore`); a sparse GEMM then needs ``part_work``, with K cut
    at multiples of ``k_align`` (N:M's group) and ``k_ratio`` MAC slots per reduction index.
    """
    df = DATAFLOWS.get(dataflow, "dataflow")
    if cfg.chip.cores > 1:
        return _run_chip_gemm(gemm, cfg, df, work, side, part_work, k_align, k_ratio)
    one = dataclasses.replace(gemm, count=1)  # one repetition; keeps the conv geometry
    if work is None:
        plan = df.plan(one, cfg)
        n = gemm.count
        schedule = back_to_back([plan.schedule] * n)
        counts = plan.counts.scaled(n)
        dense_macs, eff, folds = plan.macs_dense * n, plan.macs_effectual * n, plan.folds * n
        plans = [plan] * n
    else:
        plans = [df.plan(one, cfg, w) for w in work(df)]
        schedule = back_to_back([p.schedule for p in plans])
        counts = EventCounts()
        for p in plans:
            counts = counts + p.counts
        dense_macs = sum(p.macs_dense for p in plans)
        eff = sum(p.macs_effectual for p in plans)
        folds = sum(p.folds for p in plans)
    schedule = with_side_traffic(schedule, side)
    counts = counts + EventCounts(dram_read_bytes=side.read_bytes, dram_write_bytes=side.write_bytes)
    cycles, compute, stall, dram_columns = time_schedule(schedule, cfg)
    if side.select_cycles:
        tail = int(schedule.compute_cycles[-1]) + int(schedule.epilogue_cycles) if len(schedule) else 0
        short = side.select_cycles + tail - cycles
        if short > 0:
            cycles, stall = cycles + short, stall + short
    return OpOutcome(df.name, cycles, compute, stall, counts, dense_macs, eff, folds, len(schedule),
                     memory={**memory_columns(plans), **dram_columns})


def _stored_bytes(gemm: Gemm, elem: int, scale_a: float = 1.0, scale_b: float = 1.0) -> tuple[int, int, int]:
    """Stored bytes of one repetition's A, B and Out (A of a convolution: its feature-map
    footprint; ``scale_*``: a sparse work's stored size relative to dense)."""
    a = int(gemm.conv.footprint(gemm.M, gemm.K)) if gemm.conv is not None else gemm.M * gemm.K
    return (math.ceil(a * elem * scale_a), math.ceil(gemm.K * gemm.N * elem * scale_b), gemm.M * gemm.N * elem)


def _part_timing(plans: list, core: AccelConfig, works: list | None = None) -> multicore.PartTiming:
    """One part's plans (one per repetition; ``works``: their sparse work) run back to back on
    a core and timed there."""
    elem = core.array.element_bytes
    if works is None:
        one = _stored_bytes(plans[0].gemm, elem)
        stored = tuple(v * len(plans) for v in one)
    else:
        each = [_stored_bytes(w.gemm, elem, w.scale_a, w.scale_b) for w in works]
        stored = tuple(sum(col) for col in zip(*each))
    schedule = back_to_back([p.schedule for p in plans])
    # the memory model's fast twin (its event recurrence, held equal to the SimPy timing by
    # tests/hardware/test_memory_model.py): a chip times thousands of parts
    cycles, compute = memory_model(core).cycles(schedule), schedule.compute_total_cycles
    counts = EventCounts()
    for p in plans:
        counts = counts + p.counts
    return multicore.PartTiming(cycles, compute, counts, sum(p.macs_dense for p in plans),
                                sum(p.macs_effectual for p in plans), sum(p.folds for p in plans), len(schedule),
                                counts.dram_read_bytes + counts.dram_write_bytes, plans[0].mapping,
                                sum(p.psum_spill_bytes for p in plans), stored)


def _run_chip_gemm(gemm: Gemm, cfg: AccelConfig, df: Dataflow, work, side: SideWork, part_work: PartWork | None,
                   k_align: int, k_ratio: float) -> OpOutcome:
    """:func:`run_gemm` on a chip of ``chip.cores`` cores: the partition search, each part
    planned by ``df`` on its core."""
    if work is not None and part_work is None:
        raise field_error("chip.cores", "this sparse work cannot be split over cores (no per-part work)")
    cache: dict = {}

    def timer(part: multicore.Part, core: AccelConfig) -> multicore.PartTiming:
        if part_work is None:  # dense: parts of one shape on equally shared links time alike
            key = (part.m[1] - part.m[0], part.n[1] - part.n[0], part.k[1] - part.k[0], part.reps,
                   core.dram.bandwidth_bytes_per_cycle)
            found = cache.get(key)
            if found is None:
                plan = df.plan(part.gemm(gemm), core)
                found = cache[key] = _part_timing([plan] * part.reps, core)
            return found
        sub = part.gemm(gemm)
        works = part_work(df, part, sub)
        return _part_timing([df.plan(sub, core, w) for w in works], core, works)

    chip = multicore.search(gemm, cfg, timer, k_align, k_ratio, side.read_bytes, side.write_bytes,
                            dense=part_work is None, dims=(df.row_dim, df.col_dim, df.time_dim))
    cycles, stall = chip.cycles, chip.cycles - chip.compute_cycles
    if side.select_cycles and side.select_cycles > cycles:
        cycles, stall = side.select_cycles, stall + side.select_cycles - cycles
    return OpOutcome(df.name, cycles, chip.compute_cycles, stall, chip.counts, chip.macs_dense, chip.macs_effectual,
                     chip.folds, chip.tiles, memory=chip.columns)


def supported_dataflows(cfg: AccelConfig) -> list[str]:
    """The registered dataflows of this hardware's array kind that its interconnect supports."""
    return [name for name in DATAFLOWS.names() if DATAFLOWS.get(name).array_kind == cfg.array.kind
            and (not cfg.array.dataflows or name in cfg.array.dataflows)]


def check_dataflow(cfg: AccelConfig, dataflow: str) -> None:
    """Refuse an unknown dataflow, or one the configured array cannot run (another array
    kind's, or one its ``array.dataflows`` leaves out); refuse an unknown array kind, or a
    config its kind cannot build."""
    array_kind(cfg).check(cfg)
    for name in cfg.array.dataflows:
        if name not in DATAFLOWS:
            raise field_error("array.dataflows", f"unknown dataflow {name!r} (choose from {', '.join(DATAFLOWS.names())})")
    if dataflow != BEST and dataflow not in DATAFLOWS:
        raise arg_error("dataflow", f"unknown dataflow {dataflow!r} (choose from {', '.join(dataflow_choices())})")
    if dataflow != BEST and DATAFLOWS.get(dataflow).array_kind != cfg.array.kind:
        own = [n for n in DATAFLOWS.names() if DATAFLOWS.get(n).array_kind == cfg.array.kind]
        raise arg_error("dataflow", f"{dataflow!r} runs on a {DATAFLOWS.get(dataflow).array_kind} array, and "
                                    f"{cfg.name} is a {cfg.array.kind} array (its dataflows: "
                                    f"{', '.join(own + [BEST])})")
    if not supported_dataflows(cfg):
        raise field_error("array.dataflows", f"none of {', '.join(cfg.array.dataflows)} runs on a "
                                             f"{cfg.array.kind} array")
    if dataflow != BEST and dataflow not in supported_dataflows(cfg):
        raise arg_error("dataflow", f"{dataflow!r} is not supported by {cfg.name} "
                                    f"(array.dataflows: {', '.join(cfg.array.dataflows)}; "
                                    "--set array.dataflows=[] allows every dataflow)")


def best_of(dataflow: str, attempt, cfg: AccelConfig) -> OpOutcome:
    """``attempt(name)`` for one dataflow, or for ``best`` the best of those the hardware
    supports by ``mapper.objective`` -- the per-layer, per-phase choice made before a run:
    ``cycles`` the fastest; ``energy`` the least energy of the GEMM (its row's breakdown
    without the features' side charges), then the fewer cycles; ``dram_bytes`` the fewest DRAM
    bytes, then the fewer cycles. Ties: name order."""
    if dataflow != BEST:
        return attempt(dataflow)
    outs = [attempt(name) for name in supported_dataflows(cfg)]
    objective = cfg.mapper.objective
    if objective == "energy":
        table = config_energy_table(cfg)
        return min(outs, key=lambda o: (sum(energy_breakdown_pj(o.counts, cfg, o.cycles, table, o.memory).values()),
                                        o.cycles))
    if objective == "dram_bytes":
        return min(outs, key=lambda o: (o.counts.dram_read_bytes + o.counts.dram_write_bytes, o.cycles))
    return min(outs, key=lambda o: o.cycles)


def make_row(op: Op, phase: Phase, gemm: Gemm, out: OpOutcome, dense: OpOutcome, cfg: AccelConfig,
             table: EnergyTable, sparsity: str) -> dict:
    """The result row of one (op, phase): contract fields of docs/design.md section 3.1 and more."""
    counts = out.counts
    breakdown = energy_breakdown_pj(counts, cfg, out.cycles, table, out.memory)
    dram_bytes = counts.dram_read_bytes + counts.dram_write_bytes
    pes = macs_per_cycle(cfg) * cfg.chip.cores  # peak MACs per cycle of the chip
    bw_bound = memory_model(cfg).bound_cycles(dram_bytes)
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
        # the work ratio is not a limit: fold quantization of the dense baseline can let a row
        # beat it; the bound (cycles >= bound_cycles, checked) is one
        "work_ratio": work_ratio(out.macs_dense, out.macs_effectual),
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
                            sum(energy_breakdown_pj(dense.counts, cfg, dense.cycles, table, dense.memory).values())),
        "energy_breakdown_pj": breakdown,
        "events": counts.as_dict(),
        # weight fetch skipping (sparse replay; 0 where not computed, e.g. the dense engine)
        "weight_bytes_skipped": 0, "weight_fetch_bound_bytes": 0, "skip_bitmap_bytes": 0,
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


REPEATED = ("cycles", "compute_cycles", "stall_cycles", "overhead_cycles", "dense_cycles", "dense_compute_cycles",
            "mac_bound_cycles", "bw_bound_cycles", "bound_cycles", "macs_dense", "macs_effectual", "folds", "tiles",
            "dram_bytes", "dram_read_bytes", "dram_write_bytes", "sram_bytes", "latency_s", "energy_pj",
            "dense_energy_pj", "dram_compulsory_bytes", "dram_lower_bound_bytes", "psum_spill_bytes",
            "weight_bytes_skipped", "weight_fetch_bound_bytes", "skip_bitmap_bytes")
"""Row fields that are per instance and scale with a row's ``repeat`` count."""

REPEATED_OPTIONAL = ("predictor_macs", "predictor_cycles", "predictor_dram_bytes", "predictor_energy_pj",
                     "l2_bytes", "reduction_cycles", *DRAM_ENERGY_COLUMNS)
"""Per-instance fields that only some rows have a value for (None elsewhere): scaled where set."""


def repeat_rows(workload: Workload, rows: list[dict]) -> list[dict]:
    """Give each row its op's ``repeat`` (``workload.meta["repeats"]``, default 1) and scale
    the per-instance fields by it: a row then stands for ``repeat`` identical (op, phase)
    instances run one after another (identical layers, or decode steps, of a shape-only LLM).
    Ratios (speedup, utilization) are those of one instance, which equal those of the sum.

    ``rows`` are in :func:`op_phases` order, one per (op, phase), as both engines emit them.
    """
    repeats = workload.meta.get("repeats")
    if repeats is None:
        for row in rows:
            row["repeat"] = 1
        return rows
    counts = [repeats[i] for i in range(len(workload.ops)) for _ in op_phases(workload, i)]
    if len(counts) != len(rows):
        raise AssertionError(f"{len(rows)} rows for {len(counts)} (op, phase) pairs")
    for row, k in zip(rows, counts):
        row["repeat"] = k
        if k == 1:
            continue
        for key in REPEATED:
            row[key] = row[key] * k
        for key in REPEATED_OPTIONAL:
            if row.get(key) is not None:
                row[key] = row[key] * k
        row["energy_breakdown_pj"] = {name: v * k for name, v in row["energy_breakdown_pj"].items()}
        row["events"] = {name: v * k for name, v in row["events"].items()}
    return rows
