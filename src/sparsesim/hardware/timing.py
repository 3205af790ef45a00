"""Memory timing in SimPy: DRAM channel, double-buffered operand buffers, tile pipeline.

This is the timing model of the ``simple`` memory model
(:class:`sparsesim.hardware.memory.channel.SimpleChannel`, whose ``time`` it is); the rest of
the simulator reaches it through :func:`sparsesim.hardware.memory.memory_model`, which also
gives the bounds and prices. Its fast twin, the recurrence
:func:`sparsesim.hardware.kernels.pipeline_cycles`, must agree with it exactly.

The model works at tile granularity, never per MAC. Three processes share one environment
created per run:

* :func:`dram_reader` fetches tile ``t`` into the free half of the operand buffers. With
  double buffering at most two tiles are resident, so it waits until tile ``t - 2`` has been
  consumed by the array.
* :func:`pe_array` computes tile ``t`` once its operands have arrived. Any cycle it spends
  waiting is a *stall*.
* :func:`dram_writer` writes tile ``t``'s outputs (and partial-sum spills) back. The output
  buffer is double-buffered too: tile ``t`` computes only once tile ``t - 2``'s store has left
  (back-pressure from a full output buffer).

SRAM ports: a tile may carry ``port_stall_cycles``, the cycles the array waits because the
buffers' banks cannot deliver what it reads and writes per cycle; they are stalls.

Reads and writes share the DRAM channel (a SimPy resource held for ``ceil(bytes /
bandwidth)`` cycles per transfer); the access latency is paid per transfer but pipelined, i.e.
it does not occupy the channel. With ``ideal=True`` memory is free and the answer is the
stall-free compute time, which is what SCALE-Sim v3 reports in its CALC bandwidth mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import simpy

from sparsesim.hardware.schedule import TileSchedule


@dataclass(frozen=True, slots=True)
class Timing:
    """Timing of one GEMM: ``total_cycles = compute_cycles + stall_cycles``."""

    total_cycles: int
    compute_cycles: int
    stall_cycles: int
    dram_busy_cycles: int  # cycles the DRAM channel spent transferring


def _transfer_cycles(nbytes: int, bandwidth_bytes_per_cycle: float) -> int:
    return math.ceil(nbytes / bandwidth_bytes_per_cycle) if nbytes > 0 else 0


def _arrive(env: simpy.Environment, latency: int, event: simpy.Event):
    """Data leaves the channel and arrives ``latency`` cycles later (requests are pipelined)."""
    yield env.timeout(latency)
    event.succeed()


def dram_reader(env: simpy.Environment, channel: simpy.Resource, sched: TileSchedule,
                bandwidth: float, latency: int, loaded: list[simpy.Event], consumed: list[simpy.Event]):
    """Fetch each tile's operands into the free buffer half."""
    for t, nbytes in enumerate(sched.load_bytes.tolist()):
        if t >= 2:
            yield consumed[t - 2]
        if nbytes:
            with channel.request() as req:
                yield req
                yield env.timeout(_transfer_cycles(nbytes, bandwidth))
            env.process(_arrive(env, latency, loaded[t]))
        else:
            loaded[t].succeed()


def pe_array(env: simpy.Environment, sched: TileSchedule, loaded: list[simpy.Event],
             consumed: list[simpy.Event], computed: list[simpy.Event], stored: list[simpy.Event]):
    """Compute tiles in order, each once its operands are on chip and its output half is free.

    A tile's outputs are ready for the store only when the array has drained them: the last
    tile's results leave after the epilogue (the last fold's fill/drain, and for ws/is its
    preload), so the final store never overlaps the drain (its operand buffers are free as
    soon as the streaming ends)."""
    last = len(sched) - 1
    ports = sched.ports.tolist()
    for t, cycles in enumerate(sched.compute_cycles.tolist()):
        yield loaded[t]
        if t >= 2:  # back-pressure: tile t writes the output half that tile t - 2's store frees
            yield stored[t - 2]
        yield env.timeout(cycles + ports[t])
        consumed[t].succeed()
        if t == last:
            yield env.timeout(sched.epilogue_cycles)
        computed[t].succeed()


def dram_writer(env: simpy.Environment, channel: simpy.Resource, sched: TileSchedule,
                bandwidth: float, latency: int, computed: list[simpy.Event], stored: list[simpy.Event]):
    """Write each tile's outputs back once the array has produced them; the output half is
    free again when the data has left it."""
    last = env.event().succeed()
    for t, nbytes in enumerate(sched.store_bytes.tolist()):
        yield computed[t]
        if nbytes:
            with channel.request() as req:
                yield req
                yield env.timeout(_transfer_cycles(nbytes, bandwidth))
            last = env.process(_arrive(env, latency, env.event()))
        stored[t].succeed()
    yield last


def simulate_tiles(sched: TileSchedule, *, bandwidth_bytes_per_cycle: float, latency_cycles: int,
                   ideal: bool = False) -> Timing:
    """Run the load/compute/store pipeline of one GEMM and return its timing."""
    compute = sched.compute_total_cycles
    if ideal or len(sched) == 0:
        return Timing(compute, compute, 0, 0)
    env = simpy.Environment()
    channel = simpy.Resource(env, capacity=1)
    n = len(sched)
    loaded = [env.event() for _ in range(n)]
    consumed = [env.event() for _ in range(n)]
    computed = [env.event() for _ in range(n)]
    stored = [env.event() for _ in range(n)]
    env.process(dram_reader(env, channel, sched, bandwidth_bytes_per_cycle, latency_cycles, loaded, consumed))
    array = env.process(pe_array(env, sched, loaded, consumed, computed, stored))
    writer = env.process(dram_writer(env, channel, sched, bandwidth_bytes_per_cycle, latency_cycles, computed, stored))
    env.run(until=simpy.AllOf(env, [array, writer]))
    total = int(math.ceil(env.now))
    busy = sum(_transfer_cycles(int(b), bandwidth_bytes_per_cycle) for b in sched.load_bytes.tolist())
    busy += sum(_transfer_cycles(int(b), bandwidth_bytes_per_cycle) for b in sched.store_bytes.tolist())
    return Timing(total, compute, total - compute, busy)
