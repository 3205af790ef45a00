"""The banked DRAM model (:mod:`sparsesim.hardware.memory.banked`) against hand calculations from
each standard's parameters, and its keys: ``dram.standard`` sets organisation and timing
together, one ``dram.banked`` key overrides one parameter, existing configs keep their run ids.

All times below are worked in DRAM clocks (tCK) and converted at the array clock of the test's
preset (edge32: 500 MHz, so one DDR4-3200 tCK of 0.625 ns is 0.3125 array cycles)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sparsesim
from sparsesim.core.errors import InputError
from sparsesim.hardware.config import to_dict
from sparsesim.hardware.memory import memory_model, memory_model_of_record
from sparsesim.hardware.memory.banked import BankedDram, _pipeline, _serve, standard_names
from sparsesim.hardware.presets import load_accel
from sparsesim.hardware.schedule import TileSchedule
from sparsesim.simulation.engine import run_id

STANDARDS = ("DDR4_3200", "LPDDR5_6400", "HBM2E", "HBM3")
CONFIG = Path(__file__).parent / "configs" / "edge32_hbm3.yaml"


def banked(*sets: str, accel: str = "edge32") -> BankedDram:
    mem = memory_model(load_accel(accel, ["dram.model=banked", *sets]))
    assert isinstance(mem, BankedDram)
    return mem


def ck_cycles(mem: BankedDram, n_ck: float) -> float:
    """``n_ck`` DRAM clocks in array cycles."""
    return n_ck * mem.std.t_ck_ps * 1e-12 * mem.clock_hz


def address(mem: BankedDram, *, row: int, bank: int, group: int, channel: int = 0, column: int = 0) -> int:
    """Burst address of a location under the default mapping row:bank:column:group:channel."""
    s = mem.std
    per_row = s.row_bytes // s.device_burst_bytes
    return (((row * s.banks_per_group + bank) * per_row + column) * s.bank_groups + group) * s.channels + channel


def test_the_four_standards_ship_with_their_peaks():
    """Peak = channels x bus bits x 2 transfers per tCK / 8: DDR4-3200 x64: 64/8 B x 3.2 GT/s =
    25.6 GB/s; LPDDR5-6400 4 x16: 4 x 2 B x 6.4 GT/s = 51.2 GB/s; HBM2E 16 x 64 bit x 3.2 GT/s =
    409.6 GB/s; HBM3 32 x 32 bit x 6.4 GT/s = 819.2 GB/s."""
    assert set(STANDARDS) <= set(standard_names())
    peaks = {name: banked(f"dram.standard={name}").std.peak_bytes_per_ns for name in STANDARDS}
    assert peaks == pytest.approx({"DDR4_3200": 25.6, "LPDDR5_6400": 51.2, "HBM2E": 409.6, "HBM3": 819.2})
    # edge32 runs at 500 MHz: 25.6 GB/s is 51.2 B per array cycle (the bound's roof)
    assert banked("dram.standard=DDR4_3200").peak_bytes_per_cycle == pytest.approx(51.2)


@pytest.mark.parametrize("name", STANDARDS)
def test_a_sequential_stream_reaches_90_percent_of_peak_with_refresh(name):
    """A 16 MB read in one transfer. By hand: the data bus needs bursts x tBL / channels; each
    channel is also closed for tRFC at every refresh, so time >= busy + refreshes per channel x
    tRFC, and the efficiency is at most about 1 - tRFC/tREFI (DDR4 350/7800 = 4.5 %, LPDDR5
    210/3906 = 5.4 %, HBM2E 350/3900 = 9.0 %, HBM3 260/3900 = 6.7 %): at least 90 % is left."""
    mem = banked(f"dram.standard={name}")
    nbytes = 16 << 20
    c = mem.counts(TileSchedule(np.array([nbytes]), np.array([1]), np.array([0]), 0))
    s = mem.std
    bursts = nbytes // s.device_burst_bytes
    assert c.bursts == bursts
    busy = ck_cycles(mem, bursts * s.t_bl_ck / s.channels)
    refs_per_channel = c.refreshes / s.channels
    assert refs_per_channel >= 1  # the stream is long enough to pay refresh
    assert c.total_cycles >= busy + refs_per_channel * s.t_rfc_ns * mem.clock_hz * 1e-9
    efficiency = nbytes / mem.peak_bytes_per_cycle / c.total_cycles
    share = s.t_rfc_ns / s.t_refi_ns
    # what is lost beside refresh is small: after each refresh the channel precharges (tRP) and
    # re-opens its rows (tRCD + CL before data flows again), about 50 tCK of the next interval
    assert 0.97 * (1 - share) <= efficiency <= 1 - 0.9 * share
    # HBM2E's all-bank refresh alone takes 9.0 % (its real controllers refresh per bank, REFSB,
    # which this model does not have), so its ceiling is 91.0 % and it reaches 89.6 %
    if name != "HBM2E":
        assert efficiency >= 0.90
    # every row of the stream is opened once (a refresh may close a few early): hit rate near
    # 1 - 1 / bursts per row
    per_row = s.row_bytes // s.device_burst_bytes
    assert c.row_hit_rate <= 1 - 1 / per_row + 1e-12 and c.row_hit_rate > 0.9


def test_random_reads_to_distinct_rows_are_limited_by_tfaw_and_trrd():
    """DDR4-3200, 400 reads of 64 B, each to a new row, all requested at once, dealt over the 4
    bank groups in turn (and the 4 banks of each). Every read needs an activate: consecutive ones
    are in other bank groups, so tRRD_S = 4 tCK apart, and four must fit a tFAW of 34 tCK; the
    limit is max(tRRD_S, tFAW / 4) = 8.5 tCK per read, i.e. 64 B / (8.5 x 0.625 ns) = 12.05 GB/s
    (47 % of the 25.6 GB/s peak). A bank is reused every 16 reads = 136 tCK >= tRC 74, and a bank
    group every 4 = 34 tCK >= tRRD_L 8, so neither binds. Measured over reads 100..399 (steady
    state): 300 x 8.5 = 2550 tCK."""
    mem = banked("dram.standard=DDR4_3200")
    n = 400
    addr = np.array([address(mem, row=i, bank=(i // 4) % 4, group=i % 4) for i in range(n)])
    arrive, c = mem.serve(addr, np.zeros(n, dtype=bool), np.zeros(n))
    assert c.activations == n and c.row_hits == 0
    span = arrive[n - 1] - arrive[100]
    assert span == pytest.approx(ck_cycles(mem, 300 * 8.5), rel=0.01)
    # with tFAW out of the way, tRRD_S and the data bus allow a read every 4 tCK, but then each of
    # the 16 banks is reactivated every 16 x 4 = 64 tCK < tRC = 74: tRC / 16 = 4.625 tCK a read binds
    arrive2, _ = banked("dram.standard=DDR4_3200", "dram.banked.t_faw_ck=1").serve(
        addr, np.zeros(n, dtype=bool), np.zeros(n))
    assert arrive2[n - 1] - arrive2[100] == pytest.approx(ck_cycles(mem, 300 * 74 / 16), rel=0.01)
    # and with tRC short too, tRRD_S = tBL = 4 tCK a read
    arrive3, _ = banked("dram.standard=DDR4_3200", "dram.banked.t_faw_ck=1", "dram.banked.t_rc_ck=60",
                        "dram.banked.t_ras_ck=30").serve(addr, np.zeros(n, dtype=bool), np.zeros(n))
    assert arrive3[n - 1] - arrive3[100] == pytest.approx(ck_cycles(mem, 300 * 4), rel=0.01)


@pytest.mark.parametrize("name", STANDARDS)
def test_latency_of_a_row_hit_and_of_a_row_miss(name):
    """One read at a time, far apart (no queueing, before the first refresh): to a closed bank
    tRCD + CL + tBL; to the open row CL + tBL (a hit); to another row of that bank tRP + tRCD + CL
    + tBL (a miss: precharge, activate, read). DDR4-3200: 22 + 22 + 4 = 48, 22 + 4 = 26 and 22 +
    22 + 22 + 4 = 70 tCK; HBM3: 31 + 20 + 2 = 53, 22 and 26 + 31 + 20 + 2 = 79 tCK."""
    mem = banked(f"dram.standard={name}")
    s = mem.std
    gap = ck_cycles(mem, 1000)  # far beyond tRAS / tRC; far below tREFI
    assert 3 * gap < s.t_refi_ns * mem.clock_hz * 1e-9
    addr = np.array([address(mem, row=5, bank=1, group=2), address(mem, row=5, bank=1, group=2, column=3),
                     address(mem, row=9, bank=1, group=2)])
    req = np.array([0.0, gap, 2 * gap])
    arrive, c = mem.serve(addr, np.zeros(3, dtype=bool), req)
    lat = arrive - req
    assert lat[0] == pytest.approx(ck_cycles(mem, s.t_rcd_ck + s.t_cl_ck + s.t_bl_ck))
    assert lat[1] == pytest.approx(ck_cycles(mem, s.t_cl_ck + s.t_bl_ck))
    assert lat[2] == pytest.approx(ck_cycles(mem, s.t_rp_ck + s.t_rcd_ck + s.t_cl_ck + s.t_bl_ck))
    assert (c.activations, c.row_hits) == (2, 1)
    assert mem.min_latency_cycles <= min(lat)  # the bounds' latency is never above a real one


@pytest.mark.parametrize("name", ["DDR4_3200", "HBM3"])
def test_refresh_costs_its_trfc_over_trefi_share(name):
    """The same 16 MB stream with refresh and with tREFI pushed beyond the stream (1 ms): the
    difference is the refreshes' tRFC each (per channel, all channels refresh alike), plus at
    most re-opening the rows a refresh closed (tRP + tFAW for the activates + tRCD + CL, small beside
    tRFC). As a share of
    the time, that is tRFC / tREFI: DDR4 4.5 %, HBM3 6.7 % (to within 15 % of itself)."""
    sched = TileSchedule(np.array([16 << 20]), np.array([1]), np.array([0]), 0)
    mem = banked(f"dram.standard={name}")
    s = mem.std
    with_ref = mem.counts(sched)
    without = banked(f"dram.standard={name}", "dram.banked.t_refi_ns=1000000").counts(sched)
    assert without.refreshes == 0 and with_ref.refreshes > 0
    refs = with_ref.refreshes / s.channels
    rfc = s.t_rfc_ns * mem.clock_hz * 1e-9
    extra = with_ref.total_cycles - without.total_cycles
    reopen = ck_cycles(mem, s.t_rp_ck + s.t_rcd_ck + s.t_cl_ck + s.t_faw_ck)  # precharge, four activates, CL
    assert refs * rfc - 1 <= extra <= refs * (rfc + reopen) + 1
    assert extra / with_ref.total_cycles == pytest.approx(s.t_rfc_ns / s.t_refi_ns, rel=0.15)


def test_the_row_bank_column_mapping_keeps_a_row_in_one_bank_and_pays_tccd_l():
    """row:bank:group:channel:column on DDR4: a stream stays in one bank for a whole 8 KB row (128
    bursts), so its bursts are one bank group's, tCCD_L = 8 tCK apart instead of tBL = 4: half the
    peak (the default mapping deals bursts over bank groups and gets above 90 %)."""
    sched = TileSchedule(np.array([4 << 20]), np.array([1]), np.array([0]), 0)
    mem = banked("dram.banked.address_mapping=row:bank:group:channel:column")
    c = mem.counts(sched)
    efficiency = (4 << 20) / mem.peak_bytes_per_cycle / c.total_cycles
    assert 0.45 <= efficiency <= 0.5
    assert c.activations == (4 << 20) // 8192  # one per row
    assert banked().counts(sched).total_cycles < 0.53 * c.total_cycles


def test_the_standard_sets_everything_and_one_key_overrides_one_parameter():
    hbm3 = banked("dram.standard=HBM3")
    assert (hbm3.std.channels, hbm3.std.bank_groups, hbm3.std.banks_per_group) == (32, 4, 4)
    assert (hbm3.std.t_ck_ps, hbm3.std.t_cl_ck, hbm3.std.t_rcd_ck, hbm3.std.t_rp_ck, hbm3.std.t_rc_ck) == (
        625.0, 20, 31, 26, 72)  # the numbers issue 19 quotes from Ramulator 2's HBM3 preset
    assert (hbm3.std.t_ccd_s_ck, hbm3.std.t_ccd_l_ck, hbm3.std.t_faw_ck) == (2, 4, 24)
    slow = banked("dram.standard=HBM3", "dram.banked.t_rcd_ck=40")
    assert slow.std.t_rcd_ck == 40 and slow.std.t_cl_ck == 20 and slow.std.channels == 32
    few = banked("dram.standard=HBM3", "dram.banked.channels=8")
    assert few.std.peak_bytes_per_ns == pytest.approx(819.2 / 4)


def test_bad_standards_and_keys_are_refused_naming_the_key():
    with pytest.raises(InputError, match=r"^dram.standard: unknown DRAM standard 'HBM4' \(did you mean"):
        banked("dram.standard=HBM4")
    with pytest.raises(InputError, match=r"^dram.banked.row_bytes: 1000 B is not a whole number of 64 B bursts"):
        banked("dram.banked.row_bytes=1000")
    with pytest.raises(InputError, match=r"^dram.banked.t_rfc_ns: "):
        banked("dram.banked.t_rfc_ns=9000")
    with pytest.raises(InputError, match=r"^dram.banked.address_mapping: 'row:column' is not one of"):
        banked("dram.banked.address_mapping=row:column")
    with pytest.raises(InputError, match=r"^dram.banked.t_cl: no such config field"):
        banked("dram.banked.t_cl=3")


def test_existing_configs_keep_their_run_ids_and_a_chosen_standard_is_recorded():
    cfg = load_accel("edge32")
    assert run_id(cfg, "os") == "aec7ef9a5288a28a"  # as before dram.standard / dram.banked existed
    assert "standard" not in to_dict(cfg)["dram"] and "banked" not in to_dict(cfg)["dram"]
    hbm = load_accel("edge32", ["dram.model=banked", "dram.standard=HBM3", "dram.banked.t_rcd_ck=40"])
    d = to_dict(hbm)["dram"]
    assert d["standard"] == "HBM3" and d["banked"]["t_rcd_ck"] == 40
    assert run_id(hbm, "os") != run_id(load_accel("edge32", ["dram.model=banked", "dram.standard=HBM3"]), "os")


def test_a_whole_run_with_an_opted_in_config_file_and_its_row_gives_back_the_model():
    """tests/hardware/configs/edge32_hbm3.yaml is edge32 with dram.model: banked on HBM3 (an
    opted-in variant; the preset itself keeps the simple model)."""
    wl = sparsesim.gemm(256, 256, 256)
    res = sparsesim.simulate(wl, accel=str(CONFIG), dataflow="best")
    base = sparsesim.simulate(wl, accel="edge32", dataflow="best")
    assert res.total["macs_dense"] == base.total["macs_dense"]
    assert res.total["cycles"] >= res.total["compute_cycles"] > 0
    row = res.to_pandas().iloc[0]
    assert row["cfg.dram.model"] == "banked" and row["cfg.dram.standard"] == "HBM3"
    mem = memory_model_of_record(row)
    assert isinstance(mem, BankedDram) and mem.std.t_rcd_ck == 31 and mem.std.channels == 32


@st.composite
def schedules(draw, max_tiles: int = 6):
    n = draw(st.integers(1, max_tiles))
    ints = st.lists(st.integers(0, 50_000), min_size=n, max_size=n)
    compute = np.array(draw(st.lists(st.integers(0, 3000), min_size=n, max_size=n)), dtype=np.int64)
    return TileSchedule(np.array(draw(ints), dtype=np.int64), compute, np.array(draw(ints), dtype=np.int64),
                        draw(st.integers(0, 100)))


@settings(max_examples=25, deadline=None)
@given(sched=schedules(), name=st.sampled_from(STANDARDS))
def test_the_kernel_and_its_plain_python_form_agree(sched, name):
    mem = banked(f"dram.standard={name}")
    assert mem.counts(sched) == mem.counts(sched, kernel=_pipeline.py_func)
    addr = np.array([0, 5, 77, 1 << 20, 3])
    req = np.array([0.0, 1.0, 1.0, 50.0, 60.0])
    fast, slow = mem.serve(addr, addr % 2 == 1, req), mem.serve(addr, addr % 2 == 1, req, kernel=_serve.py_func)
    assert np.array_equal(fast[0], slow[0]) and fast[1] == slow[1]


@settings(max_examples=25, deadline=None)
@given(sched=schedules(), name=st.sampled_from(STANDARDS))
def test_every_burst_is_a_row_hit_or_opens_a_row_and_a_row_serves_at_most_its_bursts(sched, name):
    """Bursts = ceil(bytes / burst) per transfer; each burst either hits an open row or is the
    first after an activate; the streams never come back to a row they left, so an activate
    serves at most the row's bursts: activations >= ceil(bursts of each stream / bursts per row)."""
    mem = banked(f"dram.standard={name}")
    s = mem.std
    c = mem.counts(sched)
    per = s.device_burst_bytes
    reads = int(sum(-(-int(b) // per) for b in sched.load_bytes))
    writes = int(sum(-(-int(b) // per) for b in sched.store_bytes))
    assert c.bursts == reads + writes
    assert c.row_hits + c.activations == c.bursts
    per_row = s.row_bytes // per
    assert c.activations >= -(-reads // per_row) + -(-writes // per_row)


def test_rows_report_activations_and_the_row_hit_rate_and_simple_rows_gain_no_column():
    """A 256^3 GEMM: every row of banked has its DRAM counts, with hits <= bursts, the rate their
    ratio, and at least one activate per row-bytes of bursts moved (a stream opens each row it
    crosses). The simple model's rows keep exactly their columns."""
    wl = sparsesim.gemm(256, 256, 256)
    frame = sparsesim.simulate(wl, accel="edge32", dataflow="ws", sets={"dram.model": "banked"}).to_pandas()
    plain = sparsesim.simulate(wl, accel="edge32", dataflow="ws").to_pandas()
    row = frame.iloc[0]
    assert 0 < row["dram_row_hits"] <= row["dram_bursts"]
    assert row["dram_row_hit_rate"] == pytest.approx(row["dram_row_hits"] / row["dram_bursts"])
    mem = banked()
    assert row["dram_bursts"] >= row["dram_bytes"] / mem.std.device_burst_bytes
    assert row["dram_activations"] >= row["dram_bursts"] * mem.std.device_burst_bytes / mem.std.row_bytes
    assert not any(c.startswith("dram_") and c not in ("dram_bytes", "dram_read_bytes", "dram_write_bytes",
                                                       "dram_compulsory_bytes", "dram_lower_bound_bytes")
                   for c in plain.columns)
    assert memory_model(load_accel("edge32")).time_with_columns(
        TileSchedule(np.array([100]), np.array([5]), np.array([10]), 0))[1] == {}


def test_the_command_line_lists_the_standards(capsys):
    from sparsesim.cli.main import main
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "DRAM standards (dram.standard" in out
    assert "HBM3         32 ch x 4 groups x 4 banks, 1024 B rows, 32 B bursts, 819.2 GB/s" in out


def test_a_row_with_one_banked_key_set_rebuilds_that_key():
    """``cfg.dram.banked.t_rcd_ck`` is a flattened column; the record nests it back."""
    frame = sparsesim.simulate(sparsesim.gemm(64, 64, 64), accel="edge32", dataflow="os",
                               sets={"dram.model": "banked", "dram.banked.t_rcd_ck": 40}).to_pandas()
    assert frame.iloc[0]["cfg.dram.banked.t_rcd_ck"] == 40
    mem = memory_model_of_record(frame.iloc[0])
    assert isinstance(mem, BankedDram) and mem.std.t_rcd_ck == 40 and mem.std.t_cl_ck == 22
