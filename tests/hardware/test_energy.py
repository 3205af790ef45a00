"""Energy and area: per-event counts times a swappable table."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparsesim.hardware.energy import area_breakdown_um2, energy_breakdown_pj, energy_table
from sparsesim.hardware.presets import load_accel
from sparsesim.hardware.schedule import EventCounts
from sparsesim.core.errors import InputError

TABLE = Path(__file__).parents[2] / "src" / "sparsesim" / "hardware" / "energy_tables" / "horowitz45.yaml"


def test_sram_energy_grows_with_capacity_and_matches_horowitz_points():
    t = energy_table("horowitz45")
    assert t.sram_pj_per_byte(8 * 1024) * 8 == pytest.approx(10.0)
    assert t.sram_pj_per_byte(32 * 1024) * 8 == pytest.approx(20.0)
    assert t.sram_pj_per_byte(1024 * 1024) * 8 == pytest.approx(100.0)
    sizes = [2**k for k in range(10, 26)]
    energies = [t.sram_pj_per_byte(s) for s in sizes]
    assert all(a < b for a, b in zip(energies, energies[1:]))


def test_breakdown_is_counts_times_table():
    cfg = load_accel("edge32")
    t = energy_table("horowitz45")
    counts = EventCounts(macs_performed=1000, macs_gated=500, dram_read_bytes=64, dram_write_bytes=64)
    e = energy_breakdown_pj(counts, cfg, cycles=0, table=t)
    assert e["mac"] == pytest.approx(1000 * (0.2 + 0.1))  # int8 multiply + int32 add
    assert e["mac_gated"] == pytest.approx(500 * 0.3 * t.gated_mac_fraction)
    assert e["dram"] == pytest.approx(128 * 8 * cfg.dram.energy_pj_per_bit)
    assert e["leakage"] == 0.0
    slow = energy_breakdown_pj(counts, cfg, cycles=10**6, table=t)
    assert slow["leakage"] > 0 and slow["mac"] == e["mac"]
    # leakage is proportional to time
    assert energy_breakdown_pj(counts, cfg, 2 * 10**6, t)["leakage"] == pytest.approx(2 * slow["leakage"])


def test_tables_are_swappable_files_and_validated(tmp_path):
    text = TABLE.read_text().replace("name: horowitz45", "name: doubled").replace("int8: 0.2,", "int8: 0.4,")
    f = tmp_path / "doubled.yaml"
    f.write_text(text)
    cfg = load_accel("edge32", [f"energy_table={f}"])
    t = energy_table(cfg.energy_table)
    assert t.name == "doubled" and t.mac_pj("int8") == pytest.approx(0.5)
    bad = tmp_path / "bad.yaml"
    bad.write_text(text + "\nmult_pJ: {}\n")
    with pytest.raises(InputError, match="mult_pJ"):
        energy_table(str(bad))
    with pytest.raises(InputError, match="horowitz45"):
        energy_table("horowitz54")


def test_area_grows_with_array_and_buffers():
    t = energy_table("horowitz45")
    small = area_breakdown_um2(load_accel("edge32"), t)
    big = area_breakdown_um2(load_accel("edge32", ["array.rows=64", "buffers.a.size_bytes=1048576"]), t)
    assert big["pe_array"] == pytest.approx(2 * small["pe_array"])
    assert big["sram_a"] == pytest.approx(4 * small["sram_a"])
    assert big["sram_b"] == small["sram_b"]
