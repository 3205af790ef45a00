"""energy.sram: SRAM energy and area against word width and banks, from the CACTI fit's file."""

from __future__ import annotations

import math
from importlib import resources

import numpy as np
import pytest
import yaml

from sparsesim import api
from sparsesim.core.errors import InputError
from sparsesim.hardware.energy import area_breakdown_um2, config_energy_table
from sparsesim.hardware.presets import load_accel

FIT = yaml.safe_load((resources.files("sparsesim.hardware") / "sram_fits" / "cacti7_45nm.yaml").read_text())
ONE_BANK = {f"buffers.{b}.{k}": v for b in "a b out".split() for k, v in (("banks", 1), ("word_bytes", 8))}


def test_the_fit_is_the_least_squares_of_its_points():
    pts = np.array(FIT["points"], dtype=float)
    assert len(pts) >= 100 and len({tuple(p[:3]) for p in pts}) == len(pts)
    x = np.column_stack([np.ones(len(pts)), np.log(pts[:, 0]), np.log(pts[:, 1]), np.log(pts[:, 2])])
    for column, key in ((3, "read_pj"), (4, "write_pj"), (5, "area_um2")):
        coef, *_ = np.linalg.lstsq(x, np.log(pts[:, column]), rcond=None)
        f = FIT["fit"][key]
        assert [f["const"], f["size_bytes"], f["word_bytes"], f["banks"]] == pytest.approx(coef, abs=1e-4), key
        rms = math.sqrt(np.mean((np.log(pts[:, column]) - x @ coef) ** 2))
        assert f["rms_log"] == pytest.approx(rms, abs=1e-3)
    # CACTI's capacity slope of a read, against Horowitz's curve (x4 capacity: x2 energy, 8 to 32 KiB;
    # x32: x5, 32 KiB to 1 MiB): two sources that share nothing agree on how an SRAM grows
    horowitz = (math.log(2) / math.log(4), math.log(5) / math.log(32))
    assert min(horowitz) - 0.05 < FIT["fit"]["read_pj"]["size_bytes"] < max(horowitz) + 0.05


def _parts(sets):
    res = api.simulate(api.gemm(128, 96, 64), accel="edge32", sets=sets)
    return res.rows[0]["energy_breakdown_pj"]


def test_one_bank_of_64_bit_words_prices_as_the_table():
    base, fitted = _parts(ONE_BANK), _parts({**ONE_BANK, "energy.sram": "cacti7_45nm"})
    assert fitted == pytest.approx(base, rel=1e-12)


def test_each_buffer_is_its_table_energy_times_the_fit_at_its_words_and_banks():
    """edge32: A and B 8 banks of 8 B, the output 16 banks of 32 B (read-modify-write: half
    reads, half writes). Worked from the file's exponents: per byte, (W/8)^b B^c 8/W."""
    base, fitted = _parts({}), _parts({"energy.sram": "cacti7_45nm"})
    r, w = FIT["fit"]["read_pj"], FIT["fit"]["write_pj"]
    ab = 8 ** r["banks"]  # 8-byte words: only the banks move it
    out = 0.5 * (4 ** r["word_bytes"] * 16 ** r["banks"] + 4 ** w["word_bytes"] * 16 ** w["banks"]) / 4
    assert fitted["sram_a"] == pytest.approx(base["sram_a"] * ab, rel=1e-9)
    assert fitted["sram_b"] == pytest.approx(base["sram_b"] * ab, rel=1e-9)
    assert fitted["sram_out"] == pytest.approx(base["sram_out"] * out, rel=1e-9)
    assert out < 1  # a 32-byte word costs less per byte than four 8-byte ones
    for part in ("mac", "dram", "register_file", "leakage"):
        assert fitted[part] == base[part]


def test_area_is_the_tables_times_the_fit():
    cfg, fitted = load_accel("edge32"), load_accel("edge32", ["energy.sram=cacti7_45nm"])
    a0, a1 = (area_breakdown_um2(c, config_energy_table(c)) for c in (cfg, fitted))
    f = FIT["fit"]["area_um2"]
    assert a1["sram_out"] == pytest.approx(a0["sram_out"] * 4 ** f["word_bytes"] * 16 ** f["banks"], rel=1e-9)
    assert a1["sram_a"] == pytest.approx(a0["sram_a"] * 8 ** f["banks"], rel=1e-9)
    assert a1["pe_array"] == a0["pe_array"]


def test_the_key_is_recorded_only_when_set():
    a = api.simulate(api.gemm(64, 64, 64), accel="edge32")
    b = api.simulate(api.gemm(64, 64, 64), accel="edge32", sets={"energy.sram": ""})
    c = api.simulate(api.gemm(64, 64, 64), accel="edge32", sets={"energy.sram": "cacti7_45nm"})
    assert a.rows[0]["run_id"] == b.rows[0]["run_id"] != c.rows[0]["run_id"]
    assert a.rows[0]["energy_pj"] == b.rows[0]["energy_pj"] != c.rows[0]["energy_pj"]
    assert "cfg.energy.sram" not in a.to_pandas() and set(c.to_pandas()["cfg.energy.sram"]) == {"cacti7_45nm"}


def test_bad_fits_are_one_line_naming_the_field(tmp_path):
    def err(value):
        with pytest.raises(InputError) as e:
            api.simulate(api.gemm(8, 8, 8), accel="edge32", sets={"energy.sram": value})
        assert "\n" not in str(e.value)
        return str(e.value)

    assert err("cacti").startswith("energy.sram: unknown SRAM fit 'cacti' (did you mean 'cacti7_45nm'?")
    assert err(str(tmp_path / "none.yaml")).startswith("energy.sram: no such file")
    broken = {**FIT, "fit": {**FIT["fit"], "read_pj": {k: v for k, v in FIT["fit"]["read_pj"].items() if k != "banks"}}}
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(broken))
    assert err(str(tmp_path / "a.yaml")).startswith("a.yaml:fit.read_pj: expected a mapping of const")
    extra = {**FIT, "fit": {**FIT["fit"], "leak_pj": FIT["fit"]["read_pj"]}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(extra))
    assert err(str(tmp_path / "c.yaml")).startswith("c.yaml:fit.leak_pj: unknown key")
    (tmp_path / "d.yaml").write_text(yaml.safe_dump({**FIT, "technology_nm": 45.7}))
    assert err(str(tmp_path / "d.yaml")).startswith("d.yaml:technology_nm: expected a whole number")
    assert err(str(tmp_path / "fit.txt")).startswith("energy.sram: ") and "nor a .yaml file" in err(str(tmp_path / "fit.txt"))
    nan = {**FIT, "points": [[4096, 8, 1, float("nan"), 1.0, 1.0]]}
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(nan))
    assert err(str(tmp_path / "b.yaml")).startswith("b.yaml:points[0]: expected a finite number")
