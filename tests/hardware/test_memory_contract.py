"""The contract every memory model keeps (:mod:`sparsesim.hardware.memory.base`), over every
registered model, and a toy model registered here that a run selects with ``dram.model=toy``
without any other file knowing it exists."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sparsesim
from sparsesim.cli.main import main
from sparsesim.core.errors import InputError
from sparsesim.hardware.config import AccelConfig, build, to_dict
from sparsesim.hardware.memory import MEMORY_MODELS, SimpleChannel, memory_model, memory_model_of_record
from sparsesim.hardware.presets import load_accel
from sparsesim.hardware.schedule import TileSchedule
from sparsesim.simulation.engine import run_id


@MEMORY_MODELS.register("toy")
class SlowReturnChannel(SimpleChannel):
    """A toy: the simple channel with every transfer's data arriving twice as late."""

    name = "toy"

    @property
    def latency_cycles(self) -> int:
        return 2 * self.dram.latency_cycles


MODELS = MEMORY_MODELS.names()
assert {"simple", "toy"} <= set(MODELS)


def model(name: str, *sets: str):
    return memory_model(load_accel("edge32", [f"dram.model={name}", *sets]))


@st.composite
def schedules(draw, max_tiles: int = 8):
    n = draw(st.integers(1, max_tiles))
    ints = st.lists(st.integers(0, 2000), min_size=n, max_size=n)
    load, store = np.array(draw(ints), dtype=np.int64), np.array(draw(ints), dtype=np.int64)
    compute = np.array(draw(st.lists(st.integers(0, 300), min_size=n, max_size=n)), dtype=np.int64)
    ports = np.array(draw(st.lists(st.integers(0, 20), min_size=n, max_size=n)), dtype=np.int64) \
        if draw(st.booleans()) else None
    return TileSchedule(load, compute, store, draw(st.integers(0, 100)), ports)


settings_ = settings(max_examples=60, deadline=None)
latencies = st.sampled_from(["dram.latency_cycles=0", "dram.latency_cycles=7", "dram.latency_cycles=100"])
bandwidths = st.sampled_from(["dram.bandwidth_bytes_per_cycle=1", "dram.bandwidth_bytes_per_cycle=25.6",
                              "dram.bandwidth_bytes_per_cycle=3.5"])


@pytest.mark.parametrize("name", MODELS)
@settings_
@given(sched=schedules(), lat=latencies, bw=bandwidths)
def test_timing_adds_up_and_never_beats_its_bounds(name, sched, lat, bw):
    mem = model(name, lat, bw)
    t = mem.time(sched)
    assert t.compute_cycles == sched.compute_total_cycles
    assert t.stall_cycles >= 0 and t.total_cycles == t.compute_cycles + t.stall_cycles
    assert mem.cycles(sched) == t.total_cycles  # the fast form is exact
    moved = int(sched.load_bytes.sum() + sched.store_bytes.sum())
    assert t.total_cycles >= mem.bound_cycles(moved)
    bound = mem.pipeline_bound_cycles(
        first_load_bytes=int(sched.load_bytes[0]), last_store_bytes=int(sched.store_bytes[-1]),
        read_bytes=int(sched.load_bytes.sum()), total_bytes=moved, fetches=int((sched.load_bytes > 0).sum()),
        compute_cycles=sched.compute_total_cycles, epilogue_cycles=sched.epilogue_cycles)
    assert isinstance(bound, int) and t.total_cycles >= bound


@pytest.mark.parametrize("name", MODELS)
def test_pipeline_bound_takes_arrays_of_candidates_alike(name):
    mem = model(name)
    first, last = np.array([0, 100, 5000]), np.array([64, 0, 10])
    reads, total, fetches = first * 3, first * 3 + last, np.array([0, 2, 7])
    vec = mem.pipeline_bound_cycles(first_load_bytes=first, last_store_bytes=last, read_bytes=reads,
                                    total_bytes=total, fetches=fetches, compute_cycles=900, epilogue_cycles=40)
    assert vec.dtype == np.int64
    for i in range(3):
        assert vec[i] == mem.pipeline_bound_cycles(
            first_load_bytes=int(first[i]), last_store_bytes=int(last[i]), read_bytes=int(reads[i]),
            total_bytes=int(total[i]), fetches=int(fetches[i]), compute_cycles=900, epilogue_cycles=40)


@pytest.mark.parametrize("name", MODELS)
@settings_
@given(a=st.integers(0, 10**9), b=st.integers(0, 10**9))
def test_zero_bytes_cost_zero_and_more_bytes_never_cost_less(name, a, b):
    mem = model(name)
    assert mem.bound_cycles(0) == 0 and mem.energy_pj(0, 0) == 0
    assert 0 <= mem.bound_cycles(a) <= mem.bound_cycles(a + b)
    assert 0 <= mem.energy_pj(a, 0) <= mem.energy_pj(a, b)


@pytest.mark.parametrize("name", MODELS)
@settings_
@given(sched=schedules())
def test_a_schedule_that_moves_nothing_takes_its_compute_time(name, sched):
    sched = TileSchedule(np.zeros(len(sched), dtype=np.int64), sched.compute_cycles,
                         np.zeros(len(sched), dtype=np.int64), sched.epilogue_cycles)
    assert model(name).time(sched).total_cycles == sched.compute_total_cycles


@pytest.mark.parametrize("name", MODELS)
@settings_
@given(sched=schedules())
def test_ideal_memory_is_free_in_time_but_its_bytes_are_priced(name, sched):
    mem, real = model(name, "dram.ideal=true"), model(name, "dram.ideal=false")
    compute = sched.compute_total_cycles
    t = mem.time(sched)
    assert (t.total_cycles, t.compute_cycles, t.stall_cycles) == (compute, compute, 0)
    assert mem.cycles(sched) == compute and mem.bound_cycles(12345) == 0
    assert mem.pipeline_bound_cycles(first_load_bytes=100, last_store_bytes=100, read_bytes=500, total_bytes=600,
                                     fetches=3, compute_cycles=compute, epilogue_cycles=0) == compute
    assert mem.energy_pj(1000, 24) == real.energy_pj(1000, 24) > 0


@pytest.mark.parametrize("name", MODELS)
def test_the_factory_builds_the_named_model_from_the_config(name):
    cfg = load_accel("dc128", [f"dram.model={name}"])
    mem = memory_model(cfg)
    assert isinstance(mem, MEMORY_MODELS.get(name)) and mem.name == name
    assert (mem.burst_bytes, mem.weight_layout, mem.clock_hz) == (cfg.dram.burst_bytes, cfg.dram.weight_layout,
                                                                  cfg.clock_hz)
    assert mem.peak_bytes_per_cycle > 0 and mem.min_latency_cycles >= 0


def test_an_unknown_model_is_refused_naming_the_key(capsys):
    with pytest.raises(InputError, match=r"dram.model: unknown memory model 'bankd'"):
        memory_model(load_accel("edge32", ["dram.model=bankd"]))
    assert main(["run", "--gemm", "32,32,32", "--accel", "edge32", "--set", "dram.model=bankd"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: dram.model: unknown memory model 'bankd'")


# ---------------------------------------------------------------- the simple channel by hand


def test_simple_channel_prices_every_bit_alike():
    mem = model("simple")  # edge32: 20 pJ per bit
    assert mem.energy_pj(100, 28) == 128 * 8 * 20.0
    assert mem.bound_cycles(256) == 10  # ceil(256 / 25.6)
    assert mem.bound_cycles(257) == 11


def test_one_tile_by_hand_and_the_toy_pays_each_latency_twice():
    """One tile: load 100 B, compute 50, epilogue 5, store 40 B at 10 B/cycle, latency 100.
    Simple: 10 (load) + 100 (latency) + 50 + 5 + 4 (store) + 100 (latency) = 269. The toy's
    data arrive 200 cycles after a transfer: 10 + 200 + 50 + 5 + 4 + 200 = 469."""
    sched = TileSchedule(np.array([100]), np.array([50]), np.array([40]), 5)
    sets = ("dram.bandwidth_bytes_per_cycle=10", "dram.latency_cycles=100")
    assert model("simple", *sets).time(sched).total_cycles == 269
    assert model("toy", *sets).time(sched).total_cycles == 469
    assert model("toy", *sets).cycles(sched) == 469


# ---------------------------------------------------------------- the toy selected by a run


def test_a_run_selects_the_toy_by_its_name_and_pays_its_latency():
    """32x32x32 on edge32 (os) is one tile: its load's and its store's latency are both exposed,
    so twice the latency (100 -> 200 cycles) adds exactly 2 x 100 cycles, as a run of the simple
    channel with dram.latency_cycles=200 says too."""
    wl = sparsesim.gemm(32, 32, 32)
    base = sparsesim.simulate(wl, accel="edge32", dataflow="os")
    toy = sparsesim.simulate(wl, accel="edge32", dataflow="os", sets={"dram.model": "toy"})
    slow = sparsesim.simulate(wl, accel="edge32", dataflow="os", sets={"dram.latency_cycles": 200})
    assert base.total["tiles"] == 1
    assert toy.total["cycles"] == base.total["cycles"] + 2 * 100 == slow.total["cycles"]
    assert toy.total["dram_bytes"] == base.total["dram_bytes"]
    frame = toy.to_pandas()
    assert (frame["cfg.dram.model"] == "toy").all() and "cfg.dram.model" not in base.to_pandas()


def test_the_command_line_selects_the_toy_with_set(capsys):
    args = ["run", "--gemm", "32,32,32", "--accel", "edge32", "--dataflow", "os", "--json"]
    assert main(args) == 0
    base = json.loads(capsys.readouterr().out)["total"]["cycles"]
    assert main(args + ["--set", "dram.model=toy"]) == 0
    assert json.loads(capsys.readouterr().out)["total"]["cycles"] == base + 200


# ---------------------------------------------------------------- identity of existing configs


def test_the_run_id_of_a_config_that_does_not_choose_a_model_is_unchanged():
    """``aec7ef9a5288a28a`` is edge32's ``os`` run id from before ``dram.model`` existed (the
    behaviour snapshot's): a key declared ``recorded_at_default=False`` at its default is left
    out of the record; choosing ``simple`` explicitly is the same hardware, so the same id."""
    cfg = load_accel("edge32")
    assert run_id(cfg, "os") == "aec7ef9a5288a28a"
    assert run_id(load_accel("edge32", ["dram.model=simple"]), "os") == "aec7ef9a5288a28a"
    toy = load_accel("edge32", ["dram.model=toy"])
    assert run_id(toy, "os") != run_id(cfg, "os")
    assert "model" not in to_dict(cfg)["dram"] and to_dict(toy)["dram"]["model"] == "toy"
    assert build(AccelConfig, to_dict(toy)) == toy and build(AccelConfig, to_dict(cfg)) == cfg


@pytest.mark.parametrize("name", MODELS)
def test_a_result_row_gives_back_its_memory_model(name):
    """Reports read tables: the row's ``cfg.dram.*`` columns rebuild the model it ran with."""
    frame = sparsesim.simulate(sparsesim.gemm(64, 64, 64), accel="sat", dataflow="ws",
                               sets={"dram.model": name}).to_pandas()
    mem = memory_model_of_record(frame.iloc[0])
    want = memory_model(load_accel("sat", [f"dram.model={name}"]))
    assert type(mem) is type(want) and mem.dram == want.dram and mem.clock_hz == want.clock_hz
    assert mem.peak_bytes_per_cycle == want.peak_bytes_per_cycle
    if isinstance(want, SimpleChannel):  # sat's dram.bandwidth_bytes_per_cycle (the banked model's is its standard's)
        assert mem.peak_bytes_per_cycle == 192.0
