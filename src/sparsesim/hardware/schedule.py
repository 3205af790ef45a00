"""What a dataflow hands to the hardware model: a tile schedule and per-event counts.

``accel`` never imports ``dataflows``; dataflows build these plain records and the timing
(:mod:`sparsesim.hardware.timing`) and energy (:mod:`sparsesim.hardware.energy`) models consume them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np


@dataclass(frozen=True, slots=True)
class TileSchedule:
    """The load -> compute -> store pipeline of one GEMM, one entry per tile.

    A tile is a run of consecutive folds whose new operand data fits in half of each
    (double-buffered) operand buffer. ``compute_cycles[t]`` is the array time of tile ``t``
    when it never waits for memory; ``epilogue_cycles`` is the array fill/drain that remains
    after the last tile (so ``compute_cycles.sum() + epilogue_cycles`` is the stall-free
    compute time of the GEMM).
    """

    load_bytes: np.ndarray  # int64 per tile, DRAM -> on-chip buffers (operands, psum re-reads)
    compute_cycles: np.ndarray  # int64 per tile
    store_bytes: np.ndarray  # int64 per tile, on-chip -> DRAM (outputs, psum spills)
    epilogue_cycles: int
    port_stall_cycles: np.ndarray | None = None  # int64 per tile: the array waits for SRAM ports

    @property
    def ports(self) -> np.ndarray:
        """Per-tile SRAM-port stall cycles (zeros when the ports keep up)."""
        return self.port_stall_cycles if self.port_stall_cycles is not None else np.zeros(len(self), dtype=np.int64)

    @property
    def compute_total_cycles(self) -> int:
        return int(self.compute_cycles.sum()) + int(self.epilogue_cycles)

    def __len__(self) -> int:
        return int(self.compute_cycles.size)


def back_to_back(schedules: list[TileSchedule]) -> TileSchedule:
    """One schedule for GEMMs that run one after another on the array (conv groups, a bmm's
    batch): the next GEMM's first tile loads while the current one computes, and each GEMM's
    own fill/drain epilogue stays on the array before the next one starts."""
    if len(schedules) == 1:
        return schedules[0]
    compute = []
    for i, sched in enumerate(schedules):
        cycles = sched.compute_cycles.copy()
        if i < len(schedules) - 1 and cycles.size:
            cycles[-1] += sched.epilogue_cycles
        compute.append(cycles)
    ports = None if all(s.port_stall_cycles is None for s in schedules) else np.concatenate([s.ports for s in schedules])
    return TileSchedule(np.concatenate([s.load_bytes for s in schedules]), np.concatenate(compute),
                        np.concatenate([s.store_bytes for s in schedules]), schedules[-1].epilogue_cycles, ports)


@dataclass(frozen=True, slots=True)
class EventCounts:
    """Counts of energy-relevant events of one GEMM (all ``count`` repetitions included).

    Accesses are in elements of the operand precision unless the name says bytes.
    """

    macs_performed: int = 0  # multiplies that ran (dense or effectual, by the datapath)
    macs_gated: int = 0  # MAC slots clock-gated because an operand was zero (cycle kept)
    rf_accesses: int = 0  # PE register-file/pipeline-register accesses
    accumulator_rmw: int = 0  # of which accumulator read-modify-writes (priced at accumulator width)
    sram_a_bytes: int = 0  # bytes read from + written to the A buffer
    sram_b_bytes: int = 0  # bytes read from + written to the B buffer
    sram_out_bytes: int = 0  # bytes read from + written to the output buffer
    dram_read_bytes: int = 0
    dram_write_bytes: int = 0
    metadata_a_bytes: int = 0  # sparse-format index/bitmap bytes read from the A buffer
    metadata_b_bytes: int = 0  # sparse-format index/bitmap bytes read from the B buffer
    delta_state_bytes: int = 0  # delta reference/accumulator state read + written on chip
    encode_ops: int = 0  # delta-encoding subtract/compare operations
    pregen_ops: int = 0  # N:M pre-generation magnitude comparisons

    def scaled(self, factor: int) -> EventCounts:
        """Every count multiplied by ``factor`` (for ``count`` repeated GEMMs)."""
        return EventCounts(**{f.name: getattr(self, f.name) * factor for f in fields(self)})

    def __add__(self, other: EventCounts) -> EventCounts:
        return EventCounts(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def as_dict(self) -> dict[str, int]:
        return {f.name: int(getattr(self, f.name)) for f in fields(self)}
