"""The sparsity-feature interface: what a feature declares, and the run-time state it keeps.

A feature is switched on per run, in the accelerator config's ``sparsity`` list
(``{kind: nm, n: 2, m: 4}``) or on the command line (``--sparsity nm:2:4``). Each feature is one
module holding a frozen config dataclass that subclasses :class:`Feature` and registers itself
in :data:`FEATURES` (validated by :func:`sparsesim.hardware.config.build`, so unknown keys get a
"did you mean"). The config declares, per GEMM phase, what the feature does to the operands
(:meth:`Feature.effects`, composed as the OR over features), its result columns with their
defaults (:attr:`Feature.columns`) and its run-level checks; :meth:`Feature.start` creates the
per-run state (a :class:`FeatureRun`), whose hooks transform tensors and charge the side work.

The replay (:class:`sparsesim.simulation.replay.Replay`) composes features without naming any:
for each (op, phase) it calls, for every feature in :attr:`Feature.order`,
:meth:`FeatureRun.activations` then :meth:`FeatureRun.encode` on the input activations,
:meth:`FeatureRun.weights` on the weights, composes the :class:`GemmEffects`, maps the GEMM
(:func:`sparsesim.dataflows.sparse.sparse_work`), and adds every :meth:`FeatureRun.side`
charge. A feature that replays whole ops its own way (the ``swiglu_gate`` coupling) claims
them with :meth:`FeatureRun.claims` and calls back into the replay through :class:`ReplayCore`.
Every hook has a neutral default, so a feature overrides only what it does.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple, Protocol

import numpy as np

from sparsesim.core.registry import Registry
from sparsesim.hardware.schedule import EventCounts

ROLES = ("input", "weight", "grad")
"""Tensor roles of an op: activations X, weights W, output gradients dY."""


@dataclass(frozen=True, slots=True)
class OperandEffects:
    """What the switched-on features do with one GEMM operand's zeros (A or B).

    ``aware``: its zeros are detected (gated or skipped), so they count as ineffectual MACs;
    ``skip``: its zeros may remove cycles (implies ``aware``); ``compress``: it is stored as
    values plus a 1-bit-per-element bitmap where that is smaller than dense; ``fetch_skip`` (A
    only): the rows of a dense weight B behind A's all-zero columns are not fetched (implies
    ``skip``). Composition is the OR, field by field.
    """

    aware: bool = False
    skip: bool = False
    compress: bool = False
    fetch_skip: bool = False

    def __or__(self, other: OperandEffects) -> OperandEffects:
        return OperandEffects(*(getattr(self, f.name) or getattr(other, f.name) for f in dataclasses.fields(self)))

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) for f in dataclasses.fields(self))


@dataclass(frozen=True, slots=True)
class GemmEffects:
    """The effects on both operands of one GEMM ``Out = A . B`` (see :data:`ROLES` for the
    tensor role each operand holds in a phase: :data:`sparsesim.workloads.lowering.OPERAND_ROLES`)."""

    a: OperandEffects = field(default_factory=OperandEffects)
    b: OperandEffects = field(default_factory=OperandEffects)

    def __or__(self, other: GemmEffects) -> GemmEffects:
        return GemmEffects(self.a | other.a, self.b | other.b)

    def __bool__(self) -> bool:
        return bool(self.a) or bool(self.b)


NO_EFFECTS = GemmEffects()


class NMPattern(NamedTuple):
    """B is N:M along the GEMM's reduction dimension: ``n`` of every ``m`` kept, ``index_bits``
    of metadata per kept weight; ``stored_dense``: kept dense in memory and pruned while loading
    (no pre-generation), else stored compressed (values plus indices)."""

    n: int
    m: int
    index_bits: int
    stored_dense: bool = False


@dataclass(frozen=True, slots=True)
class SideCharge:
    """Work a feature adds beside one (op, phase)'s GEMM.

    ``read_bytes``/``write_bytes``: DRAM traffic beside the GEMM's (``spread``: competing over
    its tiles, else reads before the first tile and writes after the last); ``select_cycles``:
    pruning-unit busy time on the GEMM's weight stream; ``counts``: energy events;
    ``overhead_cycles``: serialized cycles after the GEMM; ``out_reserved_bytes``: output-buffer
    bytes held by the feature's state (the GEMM is mapped around them); ``job_cycles``: a job
    the feature places on the run's timeline once every row is timed (:meth:`FeatureRun.settle`).
    """

    read_bytes: int = 0
    write_bytes: int = 0
    spread: bool = False
    select_cycles: int = 0
    counts: EventCounts = field(default_factory=EventCounts)
    overhead_cycles: int = 0
    out_reserved_bytes: int = 0
    job_cycles: int = 0


@dataclass(slots=True)
class RowView:
    """What the replay knows of one (op, phase) when it asks the features for their side work.

    ``extra`` is the row's result columns, which a feature fills in (its own columns only).
    ``x``: the input activations after :meth:`FeatureRun.activations` (None where the phase
    has none); ``x_seen``: what the GEMM sees of them after :meth:`FeatureRun.encode`;
    ``weight``: the op's weights as read (None when not read); ``b_seen``: the weights this
    phase sees (only where a feature's :meth:`FeatureRun.keeps_b_seen` asked for them);
    ``a_masks``: A's nonzero masks per group; ``pattern``: B's N:M pattern, if any.
    """

    index: int
    op: object
    phase: object
    roles: tuple[str, str]
    gemm: object
    effects: GemmEffects
    pattern: NMPattern | None
    x: np.ndarray | None
    x_seen: np.ndarray | None
    weight: np.ndarray | None
    b_seen: np.ndarray | None
    a_masks: list
    extra: dict


class ReplayCore(Protocol):
    """What a feature may use of the run it is part of (the replay implements it).

    The memory system is asked through :meth:`transfer_cycles` and :meth:`fetch_skip`, so
    that no feature reads DRAM parameters itself.
    """

    cfg: object  # the AccelConfig
    table: object  # the EnergyTable
    workload: object
    features: tuple  # every switched-on feature config, in :attr:`Feature.order`

    def transfer_cycles(self, nbytes: int) -> int:
        """Cycles to move ``nbytes`` to or from DRAM alone (0 with ideal memory)."""

    def fetch_skip(self, live: np.ndarray, n_cols: int, layout: str):
        """:func:`~sparsesim.dataflows.sparse.weight_fetch_skip` of a weight on this hardware."""

    def tensors(self, index: int, roles: frozenset[str] | None = None) -> dict:
        """Op ``index``'s tensors (all, or ``roles``) from the workload's source."""

    def shared_weight(self, index: int) -> str | None:
        """The stored name of op ``index``'s weight when other ops share it, else None."""

    def weight_cache(self):
        """A new bounded least-recently-used store of arrays (``get(key)``, ``put(key, array)``)."""

    def op_phase(self, index: int, op, phase, tensors: dict, key: tuple | None, extra_read_bytes: int = 0,
                 layout: str | None = None):
        """The replay's own step for one (op, phase): a pending row (``.op, .phase, .out, .dense``)."""

    def pending(self, op, phase, out, dense):
        """A pending row for an outcome a feature computed itself."""

    def dense_of(self, gemm):
        """The dense run (an OpOutcome) of ``gemm`` on this hardware and dataflow."""

    def idle(self, index: int, dense, counts: EventCounts):
        """An OpOutcome of op ``index`` that runs no GEMM: no cycles, only ``counts``."""

    def stored_weight_ratio(self, length: int) -> float:
        """Stored bytes of a weight row of ``length`` reduction elements over its dense bytes."""


class FeatureRun:
    """A feature's state for one run (created by :meth:`Feature.start`); every hook is neutral
    here. Per-run state (delta references, calibrated thresholds) lives in the subclass's
    instance, never in the frozen config and never in a module."""

    def __init__(self, config: Feature, run: ReplayCore) -> None:
        self.config = config
        self.run = run

    def activations(self, op, phase, x: np.ndarray, extra: dict) -> np.ndarray:
        """The input activations after this feature (an activation policy zeroes some); called
        for each phase with input activations as A (fwd-like and bwd_weight)."""
        return x

    def encode(self, op, phase, x: np.ndarray, extra: dict) -> np.ndarray:
        """What the GEMM sees of the activations ``x`` (delta encoding sends their change)."""
        return x

    def weights(self, op, phase, w: np.ndarray, master: np.ndarray | None) -> tuple[np.ndarray, NMPattern | None]:
        """The weights phase ``phase`` sees, and B's N:M pattern along K if this feature gives one.
        ``master``: the dense weight a trace recorded beside a pruned ``w`` (else None)."""
        return w, None

    def keeps_b_seen(self, phase) -> bool:
        """Whether :meth:`side` needs the weights this phase sees (``RowView.b_seen``)."""
        return False

    def acts(self, row: RowView) -> bool:
        """Whether the feature acts on this row (its kind then appears in ``features_active``)."""
        return bool(self.config.effects(row.phase, row.roles))

    def side(self, row: RowView) -> SideCharge | None:
        """The work the feature adds beside this row's GEMM, filling in its columns of ``row.extra``."""
        return None

    def stored_weight_ratio(self, length: int) -> float:
        """Stored bytes of a weight row of ``length`` reduction elements over its dense bytes."""
        return 1.0

    def settle(self, pending: list) -> list[tuple[int, dict]] | None:
        """Once every row is timed (``pending``, in replay order, each with ``.op, .phase, .out``
        and ``.jobs``, the :attr:`SideCharge.job_cycles` by feature kind): per row, the cycles its
        jobs add that no work hides and the columns that say so; None when it placed no job."""
        return None

    def claims(self, index: int) -> bool:
        """Whether the feature replays op ``index`` itself (:meth:`tensors` and :meth:`replay`)."""
        return False

    def tensors(self, index: int) -> dict | None:
        """The tensors of a claimed op (the feature may keep weights between ops); None: read
        them as for any op."""
        return None

    def replay(self, index: int, op, phase, tensors: dict, key: tuple | None):
        """One (op, phase) of a claimed op: a pending row, built with the :class:`ReplayCore` calls."""
        raise NotImplementedError


class Feature:
    """What every feature config provides (its frozen dataclass subclasses this).

    ``kind`` names it in configs and on the command line; ``order`` places it in the
    composition (and in ``features_active``): lower first. ``columns``: the result columns it
    fills in, with their value on rows it does not act on; every sparse replay row carries the
    columns of every registered feature. ``examples``: ``--sparsity`` settings of it (the
    contract suite runs them); ``neutral``: a setting that changes no cycle on operands without
    zeros (None: it has none, as N:M, which always prunes).
    """

    __slots__ = ()
    kind: ClassVar[str]
    order: ClassVar[int] = 100
    columns: ClassVar[dict] = {}
    examples: ClassVar[tuple[str, ...]] = ()
    neutral: ClassVar[str | None] = None
    encodes_input: ClassVar[bool] = False  # the GEMM sees a re-encoding of the inputs (not the inputs)

    @classmethod
    def from_cli(cls, fields: list[str]) -> dict:
        """The mapping for ``--sparsity KIND:field:field...`` (fields after the kind); bad fields
        raise :class:`InputError` saying why, without a field name (the caller prefixes its own:
        ``--sparsity``, the API's ``sparsity``, a sweep spec's key)."""
        raise NotImplementedError

    def label(self) -> str:
        """A short human label, e.g. ``nm2:4`` (used in tables and plot legends)."""
        raise NotImplementedError

    def effects(self, phase, roles: tuple[str, str]) -> GemmEffects:
        """What the feature does with the zeros of the GEMM operands (A, B) of ``phase``, whose
        tensor roles are ``roles``."""
        return NO_EFFECTS

    def zero_roles(self) -> tuple[str, ...]:
        """The tensor roles whose zeros the feature acts on in some phase."""
        return ()

    def weight_pattern(self, op, phase) -> NMPattern | None:
        """B's N:M pattern along K that the feature gives op ``op`` in ``phase`` (None: none)."""
        return None

    def check_hardware(self, cfg) -> None:
        """Refuse hardware that cannot run the feature (raise :class:`InputError`)."""

    def check_workload(self, workload) -> None:
        """Refuse a workload the feature cannot replay (raise :class:`InputError`)."""

    def start(self, run: ReplayCore) -> FeatureRun:
        """The feature's state for one run."""
        return FeatureRun(self, run)

    def run_warnings(self, features: tuple) -> tuple[str, ...]:
        """What a user should hear once per run about this setting beside the switched-on
        ``features`` (all of them, this one too); logged by the run before any op is replayed,
        in the process the user reads, however the ops are split."""
        return ()

    def op_local(self) -> bool:
        """Whether this setting's run carries nothing from one op to the next, so that the ops of a
        replay can be replayed apart (split over a cluster) with the same rows. True where the
        feature keeps :meth:`start`'s stateless run; a feature with its own run state is not,
        unless it says so for the settings where that state is per op."""
        return type(self).start is Feature.start

    def state_keys(self, workload) -> list:
        """Per op of ``workload``, the key of the run state this setting carries between ops:
        ops with the same key (not None) read and change one state, so they are replayed in one
        process, in op order; ops of different keys, or None, may be replayed apart with the
        same rows. Default: None for every op where :meth:`op_local`, else the whole-run key
        ``()`` for all of them (one state, as a shared unit's timeline is)."""
        return [None if self.op_local() else ()] * len(workload.ops)


def state_groups(workload, features) -> list[list[int]]:
    """The ops of ``workload`` in groups that share no run state under ``features``: ops joined
    by an equal :meth:`Feature.state_keys` key of any feature are in one group (union-find),
    each group in op order, groups ordered by their first op. One op per group when every
    feature is op-local."""
    parent = list(range(len(workload.ops)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for f in features:
        first: dict = {}
        for index, key in enumerate(f.state_keys(workload)):
            if key is None:
                continue
            other = first.setdefault(key, index)
            a, b = root(index), root(other)
            if a != b:
                parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for index in range(len(workload.ops)):
        groups.setdefault(root(index), []).append(index)
    return list(groups.values())


FeatureConfig = Feature  # the name earlier code used for the interface

FEATURES: Registry[type] = Registry("sparsity feature")
"""Every sparsity feature config class, by ``kind``."""
