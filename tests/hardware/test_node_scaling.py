"""Energy tables at other technology nodes: Stillmaker & Baas factors, derived files, energy.node."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from sparsesim.core.errors import InputError
from sparsesim.hardware.config import AccelConfig, build, read_mapping, to_dict
from sparsesim.hardware.energy import (area_breakdown_um2, config_energy_table, energy_breakdown_pj, energy_table,
                                       energy_table_name)
from sparsesim.hardware.node_scaling import area_factor, energy_factor
from sparsesim.hardware.presets import load_accel
from sparsesim.hardware.schedule import EventCounts
from sparsesim.simulation.engine import run_id

REPO = Path(__file__).resolve().parents[2]
TABLES = REPO / "src" / "sparsesim" / "hardware" / "energy_tables"

# Hand calculation of the paper's HP energy polynomials E(V) = a V^2 + b V + c at V = 0.9 (V^2 = 0.81),
# coefficients of nodeScale.py's depCoeffDict rows HP45/HP32/HP20/HP16/HP7:
#   E45 = 1.018*0.81 - 0.3107*0.9 + 0.1539    = 0.82458  - 0.27963  + 0.1539  = 0.69885
#   E32 = 0.8367*0.81 - 0.4341*0.9 + 0.1701   = 0.677727 - 0.39069  + 0.1701  = 0.457137
#   E20 = 0.373*0.81 - 0.1582*0.9 + 0.04104   = 0.30213  - 0.14238  + 0.04104 = 0.20079
#   E16 = 0.2958*0.81 - 0.1241*0.9 + 0.03024  = 0.239598 - 0.11169  + 0.03024 = 0.158148
#   E7  = 0.1776*0.81 - 0.09097*0.9 + 0.02447 = 0.143856 - 0.081873 + 0.02447 = 0.086453
#   E22 = (1/6) E32 + (5/6) E20 = (0.457137 + 5 * 0.20079) / 6 = 1.461087 / 6 = 0.2435145
# 5 nm, beyond the paper: E7 * sqrt(5/7), area(7) * 5/7.
E45 = 0.69885
HAND_ENERGY = {32: 0.457137 / E45, 22: 0.2435145 / E45, 16: 0.158148 / E45, 7: 0.086453 / E45,
               5: 0.086453 / E45 * math.sqrt(5 / 7)}
# Area from 45 nm (the paper's table, nodeScale.py areaDict['45']); 22 nm: (0.46 + 5 * 0.21) / 6.
HAND_AREA = {32: 0.46, 22: 1.51 / 6, 16: 0.19, 7: 0.059, 5: 0.059 * 5 / 7}

ENERGY_KEYS = ("mult_pj", "add_pj", "rf_pj_per_byte", "encode_pj_per_op", "leakage_uw_per_pe",
               "leakage_uw_per_kib_sram")
AREA_KEYS = ("mult_um2", "add_um2", "pe_overhead_um2", "sram_um2_per_bit")


def _times(value, f):
    return {k: v * f for k, v in value.items()} if isinstance(value, dict) else value * f


@pytest.mark.parametrize("node", sorted(HAND_ENERGY))
def test_factors_are_the_papers(node):
    assert energy_factor(node) == pytest.approx(HAND_ENERGY[node], rel=1e-12)
    assert area_factor(node) == pytest.approx(HAND_AREA[node], rel=1e-12)
    # a step through an intermediate node composes: 45 -> 16 -> 7 is 45 -> 7
    assert energy_factor(7, 16) * energy_factor(16) == pytest.approx(energy_factor(7))


@pytest.mark.parametrize("node", sorted(HAND_ENERGY))
def test_each_derived_table_is_the_45nm_table_times_the_published_factors(node):
    base = read_mapping(TABLES / "horowitz45.yaml")
    derived = read_mapping(TABLES / f"horowitz45_n{node}.yaml")
    ef, af = HAND_ENERGY[node], HAND_AREA[node]
    assert derived["technology_nm"] == node and derived["name"] == f"horowitz45_n{node}"
    assert derived["derivation"]["base"] == "horowitz45" and derived["derivation"]["vdd_v"] == 0.9
    for key in ENERGY_KEYS:  # six significant digits in the file
        assert derived[key] == pytest.approx(_times(base[key], ef), rel=1e-5), key
    for key in AREA_KEYS:
        assert derived[key] == pytest.approx(_times(base[key], af), rel=1e-5), key
    assert [p[0] for p in derived["sram_pj_per_64b"]] == [p[0] for p in base["sram_pj_per_64b"]]
    assert [p[1] for p in derived["sram_pj_per_64b"]] == pytest.approx(
        [p[1] * ef for p in base["sram_pj_per_64b"]], rel=1e-5)
    assert derived["accumulator"] == base["accumulator"]
    assert derived["gated_mac_fraction"] == base["gated_mac_fraction"]
    keys = set(base) | {"derivation"}
    assert set(derived) == keys  # every key of the base is in the derived table, nothing else


def test_built_in_derived_files_are_the_tools_output(tmp_path):
    import runpy

    tool = runpy.run_path(str(REPO / "tools" / "derive_node_tables.py"))
    base = read_mapping(TABLES / "horowitz45.yaml")
    for node in HAND_ENERGY:
        written = tool["write"](base, node, tmp_path)
        assert written.read_text() == (TABLES / written.name).read_text(), "rerun tools/derive_node_tables.py"


def test_breakdown_keeps_its_components_and_scales_on_chip_parts_only():
    counts = EventCounts(macs_performed=1000, macs_gated=100, rf_accesses=3000, accumulator_rmw=1000,
                         sram_a_bytes=512, sram_b_bytes=256, sram_out_bytes=128, dram_read_bytes=64,
                         dram_write_bytes=64)
    cfg45 = load_accel("edge32")
    e45 = energy_breakdown_pj(counts, cfg45, 10**6, config_energy_table(cfg45))
    a45 = area_breakdown_um2(cfg45, config_energy_table(cfg45))
    for node in HAND_ENERGY:
        cfg = load_accel("edge32", [f"energy.node={node}"])
        e = energy_breakdown_pj(counts, cfg, 10**6, config_energy_table(cfg))
        assert list(e) == list(e45)
        for part in e:
            # DRAM is another chip: the memory model prices it, the node does not move it
            want = e45[part] if part == "dram" else e45[part] * HAND_ENERGY[node]
            assert e[part] == pytest.approx(want, rel=1e-5), (node, part)
        a = area_breakdown_um2(cfg, config_energy_table(cfg))
        assert list(a) == list(a45)
        assert all(a[k] == pytest.approx(a45[k] * HAND_AREA[node], rel=1e-5) for k in a)


def test_energy_node_resolves_tables_and_keeps_existing_records():
    base = load_accel("edge32")
    assert "energy" not in to_dict(base)  # run ids of configs that do not set it are unchanged
    assert energy_table_name(base) == "horowitz45"
    assert energy_table_name(load_accel("edge32", ["energy.node=45"])) == "horowitz45"
    cfg7 = load_accel("edge32", ["energy.node=7"])
    assert to_dict(cfg7)["energy"] == {"node": 7} and build(AccelConfig, to_dict(cfg7)) == cfg7
    # the behaviour snapshot's edge32 os run id, from before the energy section existed
    assert run_id(base, "os") == "aec7ef9a5288a28a" and run_id(cfg7, "os") != run_id(base, "os")
    assert energy_table_name(cfg7) == "horowitz45_n7"
    # a derived table moves to another node through its base
    assert energy_table_name(load_accel("edge32", ["energy.table=horowitz45_n7", "energy.node=16"])) == "horowitz45_n16"
    assert energy_table_name(load_accel("edge32", ["energy.table=horowitz45_n7", "energy.node=45"])) == "horowitz45"
    assert energy_table_name(load_accel("edge32", ["energy.table=horowitz45_n7"])) == "horowitz45_n7"
    assert energy_table_name(load_accel("edge32", ["energy_table=horowitz45_n22"])) == "horowitz45_n22"


def test_energy_node_bad_inputs_name_the_key(tmp_path):
    with pytest.raises(InputError, match="energy.node"):
        load_accel("edge32", ["energy.node=10"])
    with pytest.raises(InputError, match="energy.table"):
        load_accel("edge32", ["energy.table=horowitz45_n7", "energy_table=horowitz45_n16"])
    text = (TABLES / "horowitz45.yaml").read_text()
    nodeless = tmp_path / "nodeless.yaml"
    nodeless.write_text(text.replace("name: horowitz45", "name: nodeless").replace("technology_nm: 45\n", ""))
    with pytest.raises(InputError, match="energy.node"):
        config_energy_table(load_accel("edge32", [f"energy.table={nodeless}", "energy.node=7"]))
    custom = tmp_path / "custom.yaml"
    custom.write_text(text.replace("name: horowitz45", "name: custom"))
    assert config_energy_table(load_accel("edge32", [f"energy.table={custom}", "energy.node=45"])).name == "custom"
    # no derived file of a user's table: it is derived in memory, as the built-in files are
    moved = config_energy_table(load_accel("edge32", [f"energy.table={custom}", "energy.node=7"]))
    builtin = energy_table("horowitz45_n7")
    assert moved.name == f"{custom}@7nm" and moved.technology_nm == 7
    assert (moved.mult_pj, moved.sram_pj_per_64b, moved.mult_um2) == (builtin.mult_pj, builtin.sram_pj_per_64b,
                                                                      builtin.mult_um2)
    assert energy_table("horowitz45_n5").technology_nm == 5


@pytest.mark.parametrize("sets, field", [(["energy.table=nope"], "energy.table"), (["energy_table=nope"], "energy_table"),
                                         (["energy.table=nope@7nm"], "energy.table"),
                                         (["energy.table=nope", "energy.node=7"], "energy.table")])
def test_an_unknown_table_is_reported_under_the_key_that_named_it(sets, field):
    with pytest.raises(InputError) as err:
        config_energy_table(load_accel("edge32", sets))
    assert str(err.value).startswith(f"{field}: unknown energy table 'nope'")
