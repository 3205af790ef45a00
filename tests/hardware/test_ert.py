"""Energy tables in Accelergy's ERT/ART form: the built-in copy of horowitz45 prices as horowitz45,
a hand-made ERT gives the numbers worked by hand, and a bad binding is one line naming its field."""

from __future__ import annotations

import copy

import pytest
import yaml

from sparsesim import gemm, network, simulate
from sparsesim.core.errors import InputError
from sparsesim.hardware.datafiles import read_builtin
from sparsesim.hardware.energy import _load_table, energy_table


def test_horowitz45_in_ert_form_prices_every_event_as_horowitz45():
    a, b = energy_table("horowitz45"), energy_table("horowitz45_ert")
    for p in a.mult_pj:
        assert b.mac_pj(p) == pytest.approx(a.mac_pj(p), rel=1e-12)
    assert (b.gated_mac_fraction, b.rf_pj_per_byte, b.encode_pj_per_op) == pytest.approx(
        (a.gated_mac_fraction, a.rf_pj_per_byte, a.encode_pj_per_op), rel=1e-12)
    for kib in (1, 8, 100, 512, 4096):
        assert b.sram_pj_per_byte(kib * 1024) == pytest.approx(a.sram_pj_per_byte(kib * 1024), rel=1e-12)
    # a whole run: every component of every row, and the area
    for sets in ({}, {"array.precision": "fp16"}):
        ra = simulate(network("resnet18"), accel="edge32", sets=sets)
        rb = simulate(network("resnet18"), accel="edge32", sets={**sets, "energy.table": "horowitz45_ert"})
        for x, y in zip(ra.rows, rb.rows):
            assert y["energy_table"] == "horowitz45_ert"
            assert set(y["energy_breakdown_pj"]) == set(x["energy_breakdown_pj"])
            for component, pj in x["energy_breakdown_pj"].items():
                assert y["energy_breakdown_pj"][component] == pytest.approx(pj, rel=1e-9), component
        assert rb.total["energy_pj"] == pytest.approx(ra.total["energy_pj"], rel=1e-9)


HAND = {
    "ERT": {"version": 0.4, "tables": [
        {"name": "sys.pe.mac", "actions": [{"name": "mac_random", "arguments": None, "energy": 0.5},
                                           {"name": "mac_gated", "arguments": None, "energy": 0.05}]},
        {"name": "sys.pe.rf", "actions": [{"name": "read", "energy": 0.08}]},
        {"name": "sys.small", "actions": [{"name": "read", "energy": 40.0}]},   # 128-bit access: 20 pJ / 64 b
        {"name": "sys.big", "actions": [{"name": "read", "energy": 80.0}]}]},   # 64-bit access
    "ART": {"version": 0.4, "tables": [{"name": "sys.pe.mac", "area": 300.0},
                                       {"name": "sys.big", "area": 4 * 1024 * 8 * 0.5}]},
    "sparsesim": {
        "name": "hand", "source": "a table worked by hand", "technology_nm": 22,
        "mac": {"int8": {"table": "sys.pe.mac", "action": "mac_random"}},
        "mac_gated": {"int8": {"table": "sys.pe.mac", "action": "mac_gated"}},
        "accumulator": {"int8": "int32"},
        "register_file": {"table": "sys.pe.rf", "action": "read", "bytes": 2},
        "sram": [{"table": "sys.small", "action": "read", "bits": 128, "capacity_kib": 2},
                 {"table": "sys.big", "action": "read", "bits": 64, "capacity_kib": 4}],
        "encode": 0.2, "leakage_uw_per_pe": 1.0,
        "area": {"mac": {"int8": "sys.pe.mac"}, "pe_overhead_um2": 50.0,
                 "sram": {"table": "sys.big", "capacity_kib": 4}}}}


def _write(tmp_path, data, name="t.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_hand_made_ert_gives_the_numbers_worked_by_hand(tmp_path):
    t = _load_table(_write(tmp_path, HAND))
    assert t.name == "hand" and t.technology_nm == 22
    assert t.mac_pj("int8") == 0.5
    assert t.gated_mac_fraction == pytest.approx(0.1)
    assert t.rf_pj_per_byte == pytest.approx(0.04)  # 0.08 pJ per 2-byte access
    assert t.sram_pj_per_64b == ((2.0, 20.0), (4.0, 80.0))
    # between the points, log-log: at 2.83 KiB (sqrt(2*4)) the geometric mean, 40 pJ / 64 b = 5 pJ/B
    assert t.sram_pj_per_byte(int(2 ** 1.5 * 1024)) == pytest.approx(40.0 / 8, rel=1e-3)
    assert t.sram_um2_per_bit == pytest.approx(0.5)
    assert (t.encode_pj_per_op, t.leakage_uw_per_pe, t.leakage_uw_per_kib_sram) == (0.2, 1.0, 0.0)
    assert t.mult_um2["int8"] + t.add_um2["int32"] + t.pe_overhead_um2 == 350.0
    # and a run prices its MACs with it: mac energy = MACs performed x 0.5 pJ
    r = simulate(gemm(64, 64, 64), accel="edge32", sets={"energy.table": str(tmp_path / "t.yaml")})
    assert r.rows[0]["energy_breakdown_pj"]["mac"] == pytest.approx(r.rows[0]["macs_effectual"] * 0.5)
    assert r.rows[0]["energy_table"].endswith("t.yaml")  # as given, as for a YAML table


def _broken(path_parts, value):
    data = copy.deepcopy(HAND)
    node = data
    for part in path_parts[:-1]:
        node = node[part]
    if value is KeyError:
        del node[path_parts[-1]]
    else:
        node[path_parts[-1]] = value
    return data


@pytest.mark.parametrize("parts, value, field", [
    (("sparsesim",), KeyError, "t.yaml:sparsesim: missing"),
    (("sparsesim", "mac", "int8", "table"), "sys.pe.mak", "t.yaml:sparsesim.mac.int8.table: no ERT table 'sys.pe.mak'"),
    (("sparsesim", "mac", "int8", "action"), "mac", "t.yaml:sparsesim.mac.int8.action: table 'sys.pe.mac' has no action"),
    (("sparsesim", "register_file", "bytes"), KeyError, "t.yaml:sparsesim.register_file: expected"),
    (("sparsesim", "colour"), "red", "t.yaml:sparsesim.colour: unknown key"),
    (("sparsesim", "accumulator"), {"fp16": "fp32"}, "t.yaml:sparsesim.accumulator.int8: missing"),
    (("sparsesim", "area", "mac"), {"int8": "sys.nothing"}, "t.yaml:sparsesim.area.mac.int8: no ART table"),
    (("sparsesim", "sram"), [], "t.yaml:sparsesim.sram: expected a list"),
    (("ERT", "tables", 0, "actions", 0, "energy"), float("nan"), "mac_random.energy: expected a non-negative number"),
])
def test_a_bad_binding_is_one_line_naming_the_field(tmp_path, parts, value, field):
    with pytest.raises(InputError) as err:
        _load_table(_write(tmp_path, _broken(parts, value)))
    message = str(err.value)
    assert field in message and "\n" not in message


def test_the_builtin_ert_is_listed_beside_the_yaml_tables():
    assert read_builtin("energy_tables", "horowitz45_ert", _load_table, field="energy_table",
                        kind="energy table").source.endswith("ERT/ART form")


@pytest.mark.parametrize("node", [32, 22, 16, 7, 5])
def test_energy_node_moves_an_ert_as_it_moves_horowitz45(node):
    """No derived file exists for an ERT: it is derived in memory by the same published factors,
    so horowitz45_ert at a node prices every component as horowitz45's derived file does."""
    sets = {"energy.node": node}
    ra = simulate(network("resnet18"), accel="edge32", sets=sets)
    rb = simulate(network("resnet18"), accel="edge32", sets={**sets, "energy.table": "horowitz45_ert"})
    assert ra.rows[0]["energy_table"] == f"horowitz45_n{node}"
    assert rb.rows[0]["energy_table"] == f"horowitz45_ert@{node}nm"
    for x, y in zip(ra.rows, rb.rows):
        for component, pj in x["energy_breakdown_pj"].items():
            # both sides rounded to six significant digits, MAC and add apart on one side only
            assert y["energy_breakdown_pj"][component] == pytest.approx(pj, rel=1e-5, abs=1e-9), component


def test_a_hand_made_ert_at_another_node_is_its_factors_times_the_table(tmp_path):
    from sparsesim.hardware.node_scaling import area_factor, energy_factor

    path = str(_write(tmp_path, HAND))  # technology_nm 22
    r22 = simulate(gemm(64, 64, 64), accel="edge32", sets={"energy.table": path})
    r7 = simulate(gemm(64, 64, 64), accel="edge32", sets={"energy.table": path, "energy.node": 7})
    assert r7.rows[0]["energy_table"] == f"{path}@7nm"
    t7 = energy_table(f"{path}@7nm")
    assert t7.name == f"{path}@7nm" and t7.technology_nm == 7 and t7.derivation["from_nm"] == 22
    assert t7.mac_pj("int8") == pytest.approx(0.5 * energy_factor(7, 22), rel=1e-5)
    assert t7.sram_um2_per_bit == pytest.approx(0.5 * area_factor(7, 22), rel=1e-5)
    mac22, mac7 = (r.rows[0]["energy_breakdown_pj"]["mac"] for r in (r22, r7))
    assert mac7 == pytest.approx(mac22 * energy_factor(7, 22), rel=1e-5)


def test_a_table_derived_in_memory_moves_on_from_its_base(tmp_path):
    path = str(_write(tmp_path, HAND))  # technology_nm 22
    derived = energy_table(f"{path}@7nm")
    assert derived.derivation["base"] == path  # the base as given, so it can be read again
    on = simulate(gemm(64, 64, 64), accel="edge32", sets={"energy.table": f"{path}@7nm", "energy.node": 16})
    direct = simulate(gemm(64, 64, 64), accel="edge32", sets={"energy.table": path, "energy.node": 16})
    assert on.rows[0]["energy_table"] == direct.rows[0]["energy_table"] == f"{path}@16nm"
    back = simulate(gemm(64, 64, 64), accel="edge32", sets={"energy.table": f"{path}@7nm", "energy.node": 22})
    assert back.rows[0]["energy_table"] == path


def test_a_table_without_its_node_cannot_move(tmp_path):
    data = copy.deepcopy(HAND)
    del data["sparsesim"]["technology_nm"]
    path = str(_write(tmp_path, data))
    with pytest.raises(InputError) as err:
        simulate(gemm(8, 8, 8), accel="edge32", sets={"energy.table": path, "energy.node": 7})
    assert str(err.value).startswith("energy.node: table 'hand' states no technology_nm")
