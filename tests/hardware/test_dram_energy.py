"""Energy per DRAM event of the banked model (docs/memory.md "Energy"): the DDR4_3200 standard's
event energies from its cited IDD values by Micron's TN-40-07 method, a transfer's split worked
by hand, and the rule that only rows of a standard with event energies change their ``dram``
component (simple rows and standards without a source keep bytes x dram.energy_pj_per_bit)."""

from __future__ import annotations

import numpy as np
import pytest

from sparsesim.hardware.config import to_dict
from sparsesim.hardware.memory import DRAM_ENERGY_COLUMNS, memory_model
from sparsesim.hardware.presets import load_accel
from sparsesim.hardware.schedule import TileSchedule
from sparsesim.simulation.run import simulate_rows
from sparsesim.workloads.gemm import Phase
from sparsesim.workloads.networks import NETWORKS
from sparsesim.workloads.ops import Workload


def banked(*sets: str):
    return memory_model(load_accel("edge32", ["dram.model=banked", *sets]))


def test_ddr4_event_energies_follow_tn_40_07_from_the_cited_idd_values():
    """Micron 4 Gb x8 DDR4-2400 (DRAMSys memspec): VDD 1.2 V, IDD0 60.75 mA, IDD2N 38.25, IDD3N 44,
    IDD4R 184.5, IDD4W 168.75, IDD5B 118, VPP 2.5 V, IPP0 4.05 mA; tCK 0.833 ns, tRC 55, tRAS 39,
    tBL 4, tRFC1 313 tCK. Eight devices make the x64 channel. By hand (per device):
    activate = 1.2 (60.75 x 45.815 - 44 x 32.487 - 38.25 x 13.328) + 2.5 x 4.05 x 45.815
    = 1012.8 + 463.9 = 1476.7 pJ; read burst 1.2 x 140.5 x 3.332 = 561.8 pJ; write burst
    1.2 x 124.75 x 3.332 = 498.8 pJ; refresh 1.2 x 74 x 260.729 = 23152.7 pJ; standby 1.2 x 44 = 52.8 mW."""
    tck = 0.833
    trc, tras, tbl, trfc = 55 * tck, 39 * tck, 4 * tck, 313 * tck
    s = banked().std
    assert s.prices_events
    assert s.e_activate_pj == pytest.approx(8 * (1.2 * (60.75 * trc - 44 * tras - 38.25 * (trc - tras))
                                                 + 2.5 * 4.05 * trc), abs=0.1)
    assert s.e_read_burst_pj == pytest.approx(8 * 1.2 * (184.5 - 44) * tbl, abs=0.1)
    assert s.e_write_burst_pj == pytest.approx(8 * 1.2 * (168.75 - 44) * tbl, abs=0.1)
    assert s.e_refresh_pj == pytest.approx(8 * 1.2 * (118 - 44) * trfc, abs=0.1)
    assert s.background_mw == pytest.approx(8 * 1.2 * 44)
    # a row activate costs about 0.18 pJ per bit of its 8 KB row, a read burst 8.8 pJ per bit moved
    assert s.e_activate_pj / (8192 * 8) == pytest.approx(0.180, abs=0.001)
    assert s.e_read_burst_pj / 512 == pytest.approx(8.78, abs=0.01)


def test_a_transfer_split_by_hand():
    """One 8 KB read then one 8 KB write, on DDR4: each is 128 bursts of 64 B dealt over the 4 bank
    groups, so 4 activates each (one row per group; the write stream's rows are other rows of the
    same banks, so 4 more activates) and 124 + 124 row hits; no refresh before tREFI. Energy: 8
    activates x 11813.8, 128 read bursts x 4494.2 + 128 write bursts x 3990.4, standby 422.4 mW over
    the pipeline's time (at 500 MHz, 2 ns a cycle)."""
    mem = banked()
    sched = TileSchedule(np.array([8192]), np.array([1]), np.array([8192]), 0)
    timing, cols = mem.time_with_columns(sched)
    assert (cols["dram_activations"], cols["dram_bursts"], cols["dram_refreshes"]) == (8, 256, 0)
    assert cols["dram_energy_act_pj"] == pytest.approx(8 * 11813.8)
    assert cols["dram_energy_rdwr_pj"] == pytest.approx(128 * 4494.2 + 128 * 3990.4)
    assert cols["dram_energy_refresh_pj"] == 0 and cols["dram_energy_io_pj"] == 0
    assert cols["dram_energy_background_pj"] == pytest.approx(422.4e-3 * timing.total_cycles * 2e-9 * 1e12)
    # one key overrides one energy: I/O at 2 pJ/bit adds 256 bursts x 512 bits x 2 pJ
    _, io = banked("dram.banked.io_pj_per_bit=2").time_with_columns(sched)
    assert io["dram_energy_io_pj"] == pytest.approx(256 * 512 * 2)
    assert io["dram_energy_act_pj"] == cols["dram_energy_act_pj"]


def test_poor_locality_pays_activates():
    """The same 1 MB read under row:bank:group:channel:column (a row stays in one bank group) and
    the default mapping: both open each 8 KB row of each lane once, so the activate energy is the
    same per row opened; the default mapping opens 4 rows per 32 KB (one per group), i.e. the same
    128 rows for 1 MB, but finishes sooner, so its standby energy is lower."""
    sched = TileSchedule(np.array([1 << 20]), np.array([1]), np.array([0]), 0)
    _, dflt = banked().time_with_columns(sched)
    _, coarse = banked("dram.banked.address_mapping=row:bank:group:channel:column").time_with_columns(sched)
    assert dflt["dram_activations"] == coarse["dram_activations"] == (1 << 20) // 8192
    assert dflt["dram_energy_act_pj"] == pytest.approx(128 * 11813.8)
    assert dflt["dram_energy_background_pj"] < 0.6 * coarse["dram_energy_background_pj"]


def _rows(*sets: str):
    ops = tuple(NETWORKS.get("resnet50")(1))[:3]
    return simulate_rows(Workload("resnet50_head", ops, (Phase.FWD,)), load_accel("edge32", list(sets)), "os")


def test_rows_keep_their_component_names_and_only_event_priced_rows_change():
    simple, ddr4, hbm3 = _rows(), _rows("dram.model=banked"), _rows("dram.model=banked", "dram.standard=HBM3")
    names = set(simple[0]["energy_breakdown_pj"])
    for rows in (ddr4, hbm3):
        assert all(set(r["energy_breakdown_pj"]) == names for r in rows)
    for r in simple + hbm3:  # bytes x 20 pJ/bit (edge32), no split columns
        assert not any(c in r for c in DRAM_ENERGY_COLUMNS)
        assert r["energy_breakdown_pj"]["dram"] == pytest.approx(r["dram_bytes"] * 8 * 20.0)
    for r in ddr4:
        split = sum(r[c] for c in DRAM_ENERGY_COLUMNS)
        assert r["energy_breakdown_pj"]["dram"] == pytest.approx(split)
        assert r["energy_pj"] == pytest.approx(sum(r["energy_breakdown_pj"].values()))
        assert r["dram_energy_act_pj"] == pytest.approx(r["dram_activations"] * 11813.8)


def test_the_energy_keys_are_not_recorded_at_their_default():
    cfg = load_accel("edge32", ["dram.model=banked", "dram.banked.t_rcd_ck=40"])
    recorded = to_dict(cfg)["dram"]["banked"]
    assert recorded["t_rcd_ck"] == 40  # a set section is recorded with its older keys, as before
    new = ("e_activate_pj", "e_read_burst_pj", "e_write_burst_pj", "io_pj_per_bit", "e_refresh_pj", "background_mw")
    assert not any(k in recorded for k in new)  # so its run id is what it was before these keys existed
    assert to_dict(load_accel("edge32", ["dram.model=banked", "dram.banked.io_pj_per_bit=2"]))["dram"]["banked"][
        "io_pj_per_bit"] == 2
