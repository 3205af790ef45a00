"""``simple``: one DRAM channel with a sustained bandwidth and a fixed, pipelined latency.

Today's memory model, the default of every preset. Reads and writes share one channel; a
transfer holds it for ``ceil(bytes / dram.bandwidth_bytes_per_cycle)`` cycles and its data
arrive ``dram.latency_cycles`` later (requests are pipelined, so the latency does not occupy
the channel). Every byte costs ``dram.energy_pj_per_bit`` per bit, read or written.

The timing exists in two forms that must agree exactly, one the reference of the other:

* the **model** is the SimPy simulation of the tile pipeline,
  :func:`sparsesim.hardware.timing.simulate_tiles` (DRAM reader, PE array, DRAM writer as
  processes): :meth:`SimpleChannel.time`, what every run reports;
* its **fast twin** is the event recurrence :func:`sparsesim.hardware.kernels.pipeline_cycles`
  (Numba, with ``pipeline_cycles.py_func`` as its plain-Python form):
  :meth:`SimpleChannel.cycles`, which the mapper uses to score thousands of candidate nests.

tests/hardware/test_memory_model.py holds the twin, compiled and plain, to the SimPy model on
random schedules (hypothesis), through this class.
"""

from __future__ import annotations

from sparsesim.hardware.kernels import pipeline_cycles
from sparsesim.hardware.memory.base import MEMORY_MODELS, MemoryModel
from sparsesim.hardware.schedule import TileSchedule
from sparsesim.hardware.timing import Timing, simulate_tiles


@MEMORY_MODELS.register("simple")
class SimpleChannel(MemoryModel):
    """A bandwidth-and-latency channel (``dram.bandwidth_bytes_per_cycle``, ``dram.latency_cycles``)."""

    __slots__ = ()
    name = "simple"

    @property
    def bandwidth_bytes_per_cycle(self) -> float:
        """Sustained bandwidth of the channel, bytes per array cycle."""
        return self.dram.bandwidth_bytes_per_cycle

    @property
    def latency_cycles(self) -> int:
        """Cycles from a transfer leaving the channel to its data arriving."""
        return self.dram.latency_cycles

    @property
    def peak_bytes_per_cycle(self) -> float:
        return self.bandwidth_bytes_per_cycle

    @property
    def min_latency_cycles(self) -> int:
        return self.latency_cycles

    def _time(self, schedule: TileSchedule) -> Timing:
        return simulate_tiles(schedule, bandwidth_bytes_per_cycle=self.bandwidth_bytes_per_cycle,
                              latency_cycles=self.latency_cycles)

    def _cycles(self, schedule: TileSchedule) -> int:
        return int(pipeline_cycles(schedule.load_bytes, schedule.compute_cycles + schedule.ports,
                                   schedule.store_bytes, float(self.bandwidth_bytes_per_cycle),
                                   int(self.latency_cycles), int(schedule.epilogue_cycles)))

    def energy_pj(self, read_bytes: int, write_bytes: int) -> float:
        return (read_bytes + write_bytes) * 8 * self.dram.energy_pj_per_bit
