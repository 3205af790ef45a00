"""Array kinds: the families of PE arrays a dataflow runs on, registered by name.

``array.kind`` selects one (default ``systolic``, the R x C systolic grid of ``os``/``ws``/``is``).
Each registered :class:`~sparsesim.dataflows.base.Dataflow` names the kind it runs on
(:attr:`~sparsesim.dataflows.base.Dataflow.array_kind`), so a config's kind decides which
dataflows ``--dataflow`` may name and which ``best`` chooses among; the kind itself says what
the rest of the simulator asks of the hardware beyond the dataflow: its peak MACs per cycle
(utilization and the MAC bound of every row), the checks of its own config keys, and the
silicon area it has beside its MAC units and operand buffers (:func:`area_um2`).

Adding a kind is one file that registers an :class:`ArrayKind` and its dataflows, plus its
import in :mod:`sparsesim.dataflows`.
"""

from __future__ import annotations

from sparsesim.core.errors import field_error
from sparsesim.core.registry import Registry
from sparsesim.hardware.config import AccelConfig
from sparsesim.hardware.energy import EnergyTable, area_breakdown_um2

SYSTOLIC = "systolic"


class ArrayKind:
    """One family of PE arrays. Subclasses set :attr:`name` and :attr:`summary` and may
    override :meth:`macs_per_cycle` and :meth:`check`."""

    name: str = ""
    summary: str = ""  # one line for `sparsesim list`

    def macs_per_cycle(self, cfg: AccelConfig) -> int:
        """Peak MACs per cycle of ``cfg``'s array (default: one per PE, ``rows x cols``)."""
        return cfg.array.pes

    def check(self, cfg: AccelConfig) -> None:
        """Refuse a config this kind cannot build (raise a field error naming the key)."""

    def extra_area_um2(self, cfg: AccelConfig, table: EnergyTable) -> dict[str, float]:
        """Silicon area of what the kind has beside its MAC units and the three operand buffers
        (networks, scratchpads, accumulation buffers), um^2 by component; default none."""
        return {}


class Systolic(ArrayKind):
    name = SYSTOLIC
    summary = "R x C systolic grid of MAC units (os, ws, is); every fold moves in lockstep or in decoupled lanes"


ARRAY_KINDS: Registry[ArrayKind] = Registry("array kind")
"""Every array kind, by name (``array.kind``)."""

ARRAY_KINDS.add(SYSTOLIC, Systolic())


def array_kind(cfg: AccelConfig) -> ArrayKind:
    """The registered kind of ``cfg``'s array (a field error naming ``array.kind`` if unknown)."""
    if cfg.array.kind not in ARRAY_KINDS:
        raise field_error("array.kind", f"unknown array kind {cfg.array.kind!r} "
                                        f"(choose from {', '.join(ARRAY_KINDS.names())})")
    return ARRAY_KINDS.get(cfg.array.kind)


def area_um2(cfg: AccelConfig, table: EnergyTable) -> dict[str, float]:
    """Silicon area of ``cfg`` by component, um^2: its MAC units (as many as its kind's peak
    MACs per cycle) and buffers, and what its kind adds."""
    kind = array_kind(cfg)
    return {**area_breakdown_um2(cfg, table, kind.macs_per_cycle(cfg)), **kind.extra_area_um2(cfg, table)}


def macs_per_cycle(cfg: AccelConfig) -> int:
    """Peak MACs per cycle of ``cfg``'s array, as its kind counts them."""
    return array_kind(cfg).macs_per_cycle(cfg)
