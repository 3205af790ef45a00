"""The memory-system interface: what every DRAM model must do, and the registry they join.

A memory model stands between the accelerator's on-chip buffers and off-chip DRAM. The rest
of the simulator asks it four kinds of question and reads no ``dram.*`` field itself:

* **time** a tile schedule (:class:`~sparsesim.hardware.schedule.TileSchedule`: each tile's
  load bytes, compute cycles, store bytes; double-buffered operand and output buffers, see
  :mod:`sparsesim.hardware.timing`): :meth:`MemoryModel.time` is what a run uses,
  :meth:`MemoryModel.cycles` the same total for a search that scores many schedules;
* **bound** it: :meth:`MemoryModel.bound_cycles` (the fewest cycles that moving some bytes
  can take) and :meth:`MemoryModel.pipeline_bound_cycles` (a lower bound of a whole
  schedule from a few of its sums, for the mapper's branch and bound);
* **price** bytes: :meth:`MemoryModel.energy_pj`;
* the **layout** facts that make bytes: :attr:`~MemoryModel.burst_bytes` (access
  granularity) and :attr:`~MemoryModel.weight_layout`.

Contract (tests/hardware/test_memory_contract.py holds every registered model to it):

* ``time(s).total_cycles == compute + stall`` with ``compute == s.compute_total_cycles`` and
  ``stall >= 0``; ``cycles(s) == time(s).total_cycles`` exactly;
* a schedule never beats its bounds: ``time(s).total_cycles >= bound_cycles(bytes moved)``
  and ``>= pipeline_bound_cycles(...)`` of its sums;
* zero bytes cost zero: ``bound_cycles(0) == 0``, ``energy_pj(0, 0) == 0``; a schedule that
  moves no bytes takes its compute time; bounds and energy never decrease with bytes;
* ``dram.ideal`` makes memory free in time (``time`` gives the compute time, every bound is
  0 bytes' worth); the bytes still move, so ``energy_pj`` still prices them.

Adding a model is one file: subclass :class:`MemoryModel`, implement the hooks ``_time``,
``peak_bytes_per_cycle``, ``min_latency_cycles`` and ``energy_pj`` (``_cycles`` too if a fast
form exists, ``_time_with_columns`` if the model counts something rows should show), register
the class with ``@MEMORY_MODELS.register("name")`` and import the file in
:mod:`sparsesim.hardware.memory`; ``dram.model: name`` selects it. The default bounds use
only the peak bandwidth and the shortest latency, so they hold for any model that never moves
bytes faster than its peak nor returns them sooner than that latency.
"""

from __future__ import annotations

import abc
import math
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from sparsesim.core.registry import Registry
from sparsesim.hardware.schedule import TileSchedule
from sparsesim.hardware.timing import Timing

if TYPE_CHECKING:
    from sparsesim.hardware.config import AccelConfig, DramConfig

MEMORY_MODELS: Registry[type[MemoryModel]] = Registry("memory model")
"""Memory models by ``dram.model`` name; :func:`sparsesim.hardware.memory.memory_model` builds one."""

DRAM_ENERGY_COLUMNS = ("dram_energy_act_pj", "dram_energy_rdwr_pj", "dram_energy_io_pj", "dram_energy_refresh_pj",
                       "dram_energy_background_pj")
"""Row columns splitting the ``dram`` energy component over DRAM events, for a model that prices
events (``banked`` with a standard that gives event energies). Where a row has them, its ``dram``
component is their sum (:func:`sparsesim.hardware.energy.energy_breakdown_pj`); rows of other
models have none of them, and their ``dram`` component prices bytes."""


class MemoryModel(abc.ABC):
    """One off-chip memory system configured by a config's ``dram`` section (and clock).

    Instances are immutable and cheap: :func:`sparsesim.hardware.memory.memory_model` makes one
    per question, so a model keeps no state between schedules.
    """

    __slots__ = ("dram", "clock_hz")
    name: ClassVar[str] = ""

    def __init__(self, dram: DramConfig, clock_hz: float) -> None:
        self.dram = dram
        self.clock_hz = clock_hz  # the array clock: a model with timings in ns converts with it

    @classmethod
    def from_config(cls, cfg: AccelConfig) -> MemoryModel:
        """The model of ``cfg`` (its ``dram`` section and ``clock_hz``)."""
        return cls(cfg.dram, cfg.clock_hz)

    # ------------------------------------------------------------ facts

    @property
    def ideal(self) -> bool:
        """Infinite bandwidth, zero latency: memory never stalls the array (``dram.ideal``)."""
        return self.dram.ideal

    @property
    def burst_bytes(self) -> int:
        """Access granularity: DRAM moves whole bursts of this many bytes."""
        return self.dram.burst_bytes

    @property
    def weight_layout(self) -> str:
        """How weights lie in DRAM: ``k_major`` or ``n_major`` (see ``dram.weight_layout``)."""
        return self.dram.weight_layout

    @property
    @abc.abstractmethod
    def peak_bytes_per_cycle(self) -> float:
        """The most bytes a cycle the model ever moves (the roofline's bandwidth roof)."""

    @property
    @abc.abstractmethod
    def min_latency_cycles(self) -> int:
        """The fewest cycles from a transfer leaving the channel to its data arriving."""

    # ------------------------------------------------------------ timing

    def time(self, schedule: TileSchedule) -> Timing:
        """Timing of the tile pipeline of ``schedule`` (what a run reports)."""
        compute = schedule.compute_total_cycles
        if self.ideal or len(schedule) == 0:
            return Timing(compute, compute, 0, 0)
        return self._time(schedule)

    def time_with_columns(self, schedule: TileSchedule) -> tuple[Timing, dict]:
        """:meth:`time` and the model's own result columns for that schedule (a row-level
        count such as a DRAM's activations); none by default, so a model that has none adds
        no column to any row. Override :meth:`_time_with_columns` to add some."""
        if self.ideal or len(schedule) == 0:
            return self.time(schedule), {}
        return self._time_with_columns(schedule)

    def _time_with_columns(self, schedule: TileSchedule) -> tuple[Timing, dict]:
        """Hook: :meth:`_time` and its columns, in one pass where the model can."""
        return self._time(schedule), {}

    def cycles(self, schedule: TileSchedule) -> int:
        """``time(schedule).total_cycles``, by the model's fast form where it has one."""
        if self.ideal or len(schedule) == 0:
            return schedule.compute_total_cycles
        return self._cycles(schedule)

    @abc.abstractmethod
    def _time(self, schedule: TileSchedule) -> Timing:
        """Hook: time a non-empty schedule on non-ideal memory."""

    def _cycles(self, schedule: TileSchedule) -> int:
        """Hook: the total of :meth:`_time`; override with a faster exact form."""
        return self._time(schedule).total_cycles

    # ------------------------------------------------------------ bounds

    def bound_cycles(self, nbytes: int) -> int:
        """The fewest cycles moving ``nbytes`` can take: ``ceil(nbytes / peak)``, 0 if ideal."""
        if self.ideal or nbytes <= 0:
            return 0
        return math.ceil(nbytes / self.peak_bytes_per_cycle)

    def pipeline_bound_cycles(self, *, first_load_bytes, last_store_bytes, read_bytes, total_bytes, fetches,
                              compute_cycles, epilogue_cycles):
        """A lower bound of :meth:`time` for a schedule known by a few sums (scalars or arrays
        of candidates alike; arrays give an int64 array, scalars an int).

        ``first_load_bytes``: the first tile's load; ``last_store_bytes``: the last tile's
        store; ``read_bytes``/``total_bytes``: all loads / all loads and stores;
        ``fetches``: the number of tiles that load; ``compute_cycles``: the schedule's compute
        total, epilogue included; ``epilogue_cycles``: the last tile's drain.

        Three limits: the array cannot start before the first tile's operands arrive and the
        last store follows the last compute (drain included); the channel is busy for every
        byte; and with double buffering tile ``t`` loads only after tile ``t - 2`` is
        consumed, so the loads, latencies and computes of every other tile form a chain, and
        the longer of the two chains is at least their mean."""
        if self.ideal:
            return _int_like(np.broadcast_to(np.asarray(compute_cycles, dtype=np.int64), np.shape(first_load_bytes)))
        bw, lat = self.peak_bytes_per_cycle, self.min_latency_cycles
        first, last = np.asarray(first_load_bytes), np.asarray(last_store_bytes)
        chain = (np.where(first > 0, np.ceil(first / bw).astype(np.int64) + lat, 0) + compute_cycles
                 + np.where(last > 0, np.ceil(last / bw).astype(np.int64) + lat, 0))
        pairs = (np.asarray(read_bytes) / bw + np.asarray(fetches) * lat + compute_cycles - epilogue_cycles) / 2
        busy = np.ceil(np.asarray(total_bytes) / bw).astype(np.int64)
        return _int_like(np.maximum(np.maximum(chain, busy), np.floor(pairs).astype(np.int64)))

    # ------------------------------------------------------------ price

    @abc.abstractmethod
    def energy_pj(self, read_bytes: int, write_bytes: int) -> float:
        """DRAM energy of moving ``read_bytes`` in and ``write_bytes`` out, pJ."""

    @property
    def prices_events(self) -> bool:
        """Whether a schedule's DRAM energy is priced from its events (the model's
        ``DRAM_ENERGY_COLUMNS``) rather than from its bytes by :meth:`energy_pj`."""
        return False

    def schedule_energy(self, schedule: TileSchedule) -> tuple[int, float]:
        """``(cycles, DRAM pJ)`` of ``schedule`` as its result row prices them: the events'
        energy where the model prices events, otherwise the bytes' (:meth:`energy_pj`)."""
        if self.prices_events and not self.ideal and len(schedule):
            timing, columns = self._time_with_columns(schedule)
            if DRAM_ENERGY_COLUMNS[0] in columns:
                return timing.total_cycles, float(sum(columns[c] for c in DRAM_ENERGY_COLUMNS))
            cycles = timing.total_cycles
        else:
            cycles = self.cycles(schedule)
        return cycles, self.energy_pj(int(np.sum(schedule.load_bytes)), int(np.sum(schedule.store_bytes)))

    def energy_bound_pj(self, read_bytes: int, write_bytes: int, cycles: int) -> float:
        """A lower bound of :meth:`schedule_energy`'s DRAM pJ for any schedule that reads
        ``read_bytes``, writes ``write_bytes`` and takes at least ``cycles``; the bytes' price
        where bytes are what is priced."""
        return self.energy_pj(read_bytes, write_bytes)


def _int_like(value: np.ndarray):
    """A 0-d result as a Python int, an array as int64."""
    return int(value) if value.ndim == 0 else value.astype(np.int64)
