"""N:M structured weight sparsity, trained with bidirectional weight pruning (SAT-style).

In every group of ``m`` consecutive weights along a GEMM's reduction dimension at most ``n``
are nonzero. The hardware stores the ``n`` values plus ``ceil(log2 m)``-bit indices and each
sparse MAC unit multiplexes the matching ``n`` activations out of ``m``, so the reduction is
``m/n`` times shorter (Fang et al., IEEE TCAD 2023, arXiv 2309.13015; docs/design.md section 1).

Bidirectional weight pruning (BDWP): ``fwd`` uses the dense weights pruned N:M along the
input-feature dimension, ``bwd_data`` a second N:M pruning of the same dense weights along
the output-feature dimension (the reduction dimension of ``dY . W^T``), and ``bwd_weight``
stays dense. With ``bidirectional: false`` the backward-data GEMM reuses the forward mask,
which is not N:M along its reduction dimension, so it runs dense (the baseline SAT improves on).

``mode: prune`` prunes by magnitude at replay; ``mode: declared`` asserts the weights already
are N:M and refuses a group with more than ``n`` nonzeros.

Side work (:class:`NMRun`): with ``training.pregen`` (SAT's pre-generation) both compressed
copies are generated after each weight update (charged on the ``bwd_weight`` row; overlapped,
its selection is a job on the run's one pruning unit, placed by :func:`exposed_pregen` once
every row is timed); without it the weights stay dense in memory and are selected on the fly
while they stream into the weight buffer, for every fwd and bwd_data GEMM.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from sparsesim.hardware.config import _param
from sparsesim.hardware.kernels import nm_group_max_nonzeros, nm_prune
from sparsesim.hardware.schedule import EventCounts
from sparsesim.sparsity.base import FEATURES, Feature, FeatureRun, NMPattern, RowView, SideCharge
from sparsesim.core.errors import InputError, field_error
from sparsesim.workloads.gemm import PHASES, Phase
from sparsesim.workloads.lowering import weight_matrix
from sparsesim.workloads.ops import Conv2d, Linear

COLUMNS = {"pregen_cycles": None, "pregen_select_cycles": None, "pregen_dram_bytes": None, "nm_select_cycles": None}
"""``pregen_*``: pre-generation charged on a bwd_weight row (exposed cycles, pruning-unit cycles,
DRAM bytes); ``nm_select_cycles``: on-the-fly selection of a fwd or bwd_data row."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NMConfig(Feature):
    kind: ClassVar[str] = "nm"
    order: ClassVar[int] = 10
    columns: ClassVar[dict] = COLUMNS
    examples: ClassVar[tuple[str, ...]] = ("nm:2:4", "nm:1:8", "nm:2:4:bidirectional=false")
    n: int = _param("nonzeros kept per group", minimum=1, maximum=64)
    m: int = _param("group size along the reduction dimension", minimum=2, maximum=64)
    target: str = _param("tensor role pruned (weights only)", default="weight", choices=("weight",))
    mode: str = _param("prune by magnitude at replay, or verify weights declared N:M", default="prune",
                       choices=("prune", "declared"))
    bidirectional: bool = _param("prune bwd_data along output features too (BDWP)", default=True)

    def __post_init__(self) -> None:
        if self.n >= self.m:
            raise field_error("sparsity.nm.n", f"N must be smaller than M, got {self.n}:{self.m}")

    @classmethod
    def from_cli(cls, fields: list[str]) -> dict:
        if len(fields) not in (2, 3):
            raise InputError("expected nm:N:M[:declared], e.g. nm:2:4")
        try:
            out = {"kind": "nm", "n": int(fields[0]), "m": int(fields[1])}
        except ValueError:
            raise InputError(f"nm:N:M needs integers, got {':'.join(fields)!r}") from None
        if len(fields) == 3:
            out["mode"] = fields[2]
        return out

    def label(self) -> str:
        return f"nm{self.n}:{self.m}"

    @property
    def index_bits(self) -> int:
        """Bits of metadata per kept weight (position within its group)."""
        return max(1, math.ceil(math.log2(self.m)))

    def weight_pattern(self, op, phase: Phase) -> NMPattern | None:
        """fwd: N:M along input features; bwd_data: along output features with BDWP (without it
        the forward mask, which is not N:M along that reduction, so dense); bwd_weight: dense."""
        if not isinstance(op, (Conv2d, Linear)) or phase is Phase.BWD_WEIGHT:
            return None
        if phase.forward or self.bidirectional:
            return NMPattern(self.n, self.m, self.index_bits)
        return None

    def check_hardware(self, cfg) -> None:
        if f"{self.n}:{self.m}" not in cfg.array.nm_ratios:
            raise InputError(f"sparsity.nm: ratio {self.n}:{self.m} is not supported by this hardware "
                             f"(array.nm_ratios: {', '.join(cfg.array.nm_ratios) or 'none: it has no N:M MAC units'})")

    def start(self, run) -> NMRun:
        return NMRun(self, run)


FEATURES.add("nm", NMConfig)


def prune_rows(w2d: np.ndarray, cfg: NMConfig, where: str) -> np.ndarray:
    """Apply N:M along the last axis of ``w2d`` (prune, or verify if declared)."""
    if cfg.mode == "declared":
        worst = nm_group_max_nonzeros(w2d, cfg.m)
        if worst > cfg.n:
            raise InputError(f"{where}: declared {cfg.n}:{cfg.m} but a group holds {worst} nonzeros "
                             f"(use mode: prune to prune at replay)")
        return w2d
    return nm_prune(np.ascontiguousarray(w2d, dtype=np.float32), cfg.n, cfg.m)


class NMRun(FeatureRun):
    """N:M in one run: the pruned weights each phase sees, selection and pre-generation costs."""

    config: NMConfig

    def weights(self, op, phase: Phase, w: np.ndarray, master: np.ndarray | None):
        """The weights this phase sees, and ``(n, m, index_bits)`` if B is N:M along K.

        ``master`` is the dense weight a BDWP-trained trace recorded beside the pruned forward
        weight ``w``; both N:M copies are generated from it, as SAT's pre-generation does
        (re-pruning the forward copy along output features would prune twice). Without it,
        ``w`` is the dense weight.
        """
        nm = self.config
        if not isinstance(op, (Conv2d, Linear)) or phase is Phase.BWD_WEIGHT:
            return w, None
        pattern = NMPattern(nm.n, nm.m, nm.index_bits, not self.run.cfg.training.pregen)
        where = f"{op.name}.weight"
        if phase.forward and nm.mode == "declared":
            wm = weight_matrix(op, w)
            prune_rows(wm.reshape(-1, wm.shape[2]), nm, where)  # verifies, refuses non-N:M
            return w, pattern
        dense = w if master is None else master
        wm = weight_matrix(op, dense)  # (g, out per group, reduction per group)
        g, kout, red = wm.shape
        # The backward copy is always generated by pruning (pre-generation); `declared` is a
        # claim about the forward weights only.
        prune = dataclasses.replace(nm, mode="prune") if master is not None or phase is Phase.BWD_DATA else nm
        if phase.forward or not nm.bidirectional:
            fwd = prune_rows(wm.reshape(g * kout, red), prune, where).reshape(w.shape)
            # without BDWP, bwd_data reuses the fwd mask, which is not N:M along output features
            return fwd, (pattern if phase.forward else None)
        t = np.ascontiguousarray(wm.transpose(0, 2, 1)).reshape(g * red, kout)
        bwd = prune_rows(t, prune, where).reshape(g, red, kout).transpose(0, 2, 1)
        return np.ascontiguousarray(bwd).reshape(w.shape), pattern

    def acts(self, row: RowView) -> bool:
        return row.pattern is not None

    def side(self, row: RowView) -> SideCharge | None:
        training = self.run.cfg.training
        if row.pattern is not None and row.pattern.stored_dense and training.charge_pregen:
            return self._on_the_fly(row.op, row.phase, row.extra)
        if row.phase is Phase.BWD_WEIGHT and row.weight is not None and training.pregen \
                and training.charge_pregen and isinstance(row.op, (Conv2d, Linear)):
            return self._pregen(row.op, row.weight, row.extra)
        return None

    def stored_weight_ratio(self, length: int) -> float:
        """Below 1 where N:M pre-generation stores a weight row compressed (values and indices)."""
        nm = self.config
        if not self.run.cfg.training.pregen:
            return 1.0
        kept = (length // nm.m) * nm.n + min(nm.n, length % nm.m)
        if kept >= length:
            return 1.0
        elem = self.run.cfg.array.element_bytes
        return kept * (elem + nm.index_bits / 8.0) / (length * elem)

    def settle(self, pending: list) -> list[tuple[int, dict]] | None:
        jobs = [p.jobs.get(self.config.kind, 0) for p in pending]
        if not any(jobs):
            return None
        return [(e, {"pregen_cycles": e} if e else {}) for e in exposed_pregen(pending, jobs)]

    def _select_cycles(self, groups: int) -> int:
        """Cycles of the pruning unit for ``groups`` groups of M: each of its lanes selects the
        top N of one group in M cycles (``training.pregen_lanes``; SAT reading note, assumption 7
        in ``sat.yaml``)."""
        return -(-groups // self.run.cfg.training.pregen_lanes) * self.config.m

    def _copy_groups(self, op, phase: Phase) -> tuple[int, int]:
        """``(groups, kept weights)`` of the N:M copy a phase uses: fwd groups along input
        features, bwd_data along output features (rows x groups along the reduction)."""
        nm = self.config
        g, kout, red = weight_matrix(op, np.empty(op.weight_shape, dtype=np.float32)).shape
        rows, length = (g * kout, red) if phase.forward else (g * red, kout)
        return rows * -(-length // nm.m), rows * ((length // nm.m) * nm.n + min(nm.n, length % nm.m))

    def _selection_ops(self, groups: int) -> int:
        """Magnitude comparisons of selecting ``groups`` groups: M per group, log2(M) bits each."""
        return groups * self.config.m * max(1, int(np.ceil(np.log2(self.config.m))))

    def _on_the_fly(self, op, phase: Phase, extra: dict) -> SideCharge:
        """Pruning while loading (``training.pregen: false``): the GEMM loads the dense weights
        and the pruning unit selects N of every M as they stream into the weight buffer, for
        every fwd and bwd_data GEMM. Charged: the unit's comparisons (energy) and its busy time
        against the weight stream (a stall where it is the slower stage). Each weight is
        selected once per GEMM; a weight block that the dataflow refetches would be selected
        again, which this charge leaves out (it is a lower bound on the selection work).
        """
        groups, _ = self._copy_groups(op, phase)
        cycles = self._select_cycles(groups)
        extra["nm_select_cycles"] = cycles
        return SideCharge(select_cycles=cycles, counts=EventCounts(pregen_ops=self._selection_ops(groups)))

    def _pregen(self, op, w: np.ndarray, extra: dict) -> SideCharge:
        """SAT pre-generation after the weight update: read the dense weights once, select the
        N:M survivors along both directions, write both compressed copies (values + indices).

        Serialized, it adds ``max(selection cycles, transfer cycles)`` after the weight update.
        Overlapped (default), its DRAM traffic competes with this GEMM's, and its selection is a
        job for the pruning unit, which the run places on its timeline once every row is timed:
        it hides only behind the work that follows it (see :func:`exposed_pregen`).
        """
        nm, cfg = self.config, self.run.cfg
        elem = cfg.array.element_bytes
        groups_fwd, kept_fwd = self._copy_groups(op, Phase.FWD)
        groups_bwd, kept_bwd = self._copy_groups(op, Phase.BWD_DATA) if nm.bidirectional else (0, 0)
        groups = groups_fwd + groups_bwd
        reads = w.size * elem
        writes = int((kept_fwd + kept_bwd) * (elem + nm.index_bits / 8.0))
        select = self._select_cycles(groups)
        counts = EventCounts(pregen_ops=self._selection_ops(groups), sram_b_bytes=reads + writes)
        extra["pregen_dram_bytes"] = reads + writes
        extra["pregen_select_cycles"] = select
        if cfg.training.pregen_overlap:
            extra["pregen_cycles"] = 0  # set by the run's timeline
            return SideCharge(read_bytes=reads, write_bytes=writes, spread=True, counts=counts, job_cycles=select)
        cycles = max(select, self.run.transfer_cycles(reads + writes))
        extra["pregen_cycles"] = cycles
        counts = counts + EventCounts(dram_read_bytes=reads, dram_write_bytes=writes)
        return SideCharge(counts=counts, overhead_cycles=cycles)


def exposed_pregen(pending: list, jobs: list[int]) -> list[int]:
    """Cycles of overlapped pre-generation that no work hides, per row (charged to the
    bwd_weight row whose weight update released the job; ``jobs[i]``: row ``i``'s job cycles).

    The pruning unit is one resource shared by all layers. The rows run in execution order:
    every fwd in op order, then the backward pass in reverse op order (bwd_data, then
    bwd_weight). A layer's job is released when its bwd_weight row ends; the unit takes jobs in
    release order, one at a time. The workload is one training step of a steady state of
    identical steps: a layer's copies must be ready when the next step first uses them (its
    fwd, else its bwd_data, else the next step's start), and the array waits for them there.
    So a job hides only behind the work that runs between its release and that use, and only
    as much of it as is at least as long. A multi-step workload is treated as one long step.
    """
    order = [i for i, p in enumerate(pending) if p.phase.forward]
    backward = [i for i, p in enumerate(pending) if not p.phase.forward]
    by_op: dict[str, list[int]] = {}
    for i in backward:
        by_op.setdefault(pending[i].op.name, []).append(i)
    seen = []
    for i in reversed(backward):
        name = pending[i].op.name
        if name not in seen:
            seen.append(name)
    for name in seen:  # ops in reverse order, each op's backward rows in phase order
        order += sorted(by_op[name], key=lambda i: PHASES.index(pending[i].phase))
    clock, unit_free = 0, 0
    done: dict[int, int] = {}  # row index of the releasing bwd_weight -> job completion time
    for i in order:
        clock += pending[i].out.cycles
        if jobs[i]:
            unit_free = max(unit_free, clock) + jobs[i]
            done[i] = unit_free
    step = clock
    first_use: dict[str, int] = {}  # layer -> first row of the next step that reads its copies
    for i in order:
        if pending[i].phase is not Phase.BWD_WEIGHT:
            first_use.setdefault(pending[i].op.name, i)
    waits: dict[int, list[int]] = {}  # row of the next step -> jobs it waits for
    for job in done:
        waits.setdefault(first_use.get(pending[job].op.name, order[0]), []).append(job)
    exposed = [0] * len(pending)
    clock = step
    for i in order:  # the next step, waiting where a copy is late
        for job in waits.get(i, ()):
            if done[job] > clock:
                exposed[job] += done[job] - clock
                clock = done[job]
        clock += pending[i].out.cycles
    return exposed
