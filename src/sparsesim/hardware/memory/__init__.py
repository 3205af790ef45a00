"""Memory models: the off-chip memory system as an extension point (one file per model).

:class:`~sparsesim.hardware.memory.base.MemoryModel` states the contract (time a tile
schedule, bound and price its bytes, the layout facts); each implementation registers itself
in :data:`MEMORY_MODELS` from its own file, and ``dram.model`` picks one by name.
:func:`memory_model` is the one way the rest of the simulator reaches DRAM facts.

Registered here: ``simple`` (:mod:`~sparsesim.hardware.memory.channel`, bandwidth and latency) and
``banked`` (:mod:`~sparsesim.hardware.memory.banked`, channels, bank groups, banks and rows of a
DRAM standard).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from sparsesim.hardware.config import AccelConfig, DramConfig, build
from sparsesim.hardware.memory import banked as _banked  # noqa: F401  (registers "banked")
from sparsesim.hardware.memory import channel as _channel  # noqa: F401  (registers "simple")
from sparsesim.hardware.memory.base import DRAM_ENERGY_COLUMNS, MEMORY_MODELS, MemoryModel
from sparsesim.hardware.memory.channel import SimpleChannel

__all__ = ["DRAM_ENERGY_COLUMNS", "MEMORY_MODELS", "MemoryModel", "SimpleChannel", "memory_model", "memory_model_of_record"]


def memory_model(cfg: AccelConfig) -> MemoryModel:
    """The memory model ``cfg.dram.model`` names, configured by ``cfg``; an unknown name is an
    :class:`~sparsesim.core.errors.InputError` naming ``dram.model``."""
    return MEMORY_MODELS.get(cfg.dram.model, "dram.model").from_config(cfg)


def memory_model_of_record(record: Mapping[str, Any], prefix: str = "cfg.") -> MemoryModel:
    """The memory model of a result row, from its flattened ``cfg.dram.*`` and ``cfg.clock_hz``
    columns (a report reads tables, not configs). A key the row lacks, or holds as NaN (a
    ``recorded_at_default=False`` key in a table mixing rows that set it and rows that do not),
    takes its default."""
    def plain(value: Any) -> Any:
        return value.item() if hasattr(value, "item") else value

    def present(value: Any) -> bool:
        return not (isinstance(value, float) and math.isnan(value))

    head = f"{prefix}dram."
    data: dict[str, Any] = {}
    for key, v in record.items():
        if key.startswith(head) and present(plain(v)):
            *parents, leaf = key[len(head):].split(".")  # a section of dram (dram.banked.*) nests
            node = data
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = plain(v)
    dram = build(DramConfig, data, "dram")
    clock = plain(record.get(f"{prefix}clock_hz", AccelConfig.__dataclass_fields__["clock_hz"].default))
    return MEMORY_MODELS.get(dram.model, "dram.model")(dram, float(clock))
