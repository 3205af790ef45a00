"""SCALE-Sim v3 ``.cfg`` files as ``--accel`` (src/sparsesim/hardware/scalesim_config.py).

The configs below are written here in the shapes SCALE-Sim's own examples take (all five
sections with ``key: value``; only the architecture and run presets, no final newline; the
lower-case keys and ``[network_presets]`` SCALE-Sim's own writer emits; the file
``tools/scalesim_golden/make_golden.py`` writes); the expected sizes are worked out by hand
from SCALE-Sim's units (1 kB = 1024 bytes, 1 word = 1 byte).
"""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest

import sparsesim
from sparsesim.hardware.presets import load_accel
from sparsesim.cli.main import main
from sparsesim.simulation.engine import run_gemm
from sparsesim.core.errors import InputError
from sparsesim.workloads.gemm import Gemm, Phase
from sparsesim.workloads.ops import Conv2d

REPO = Path(__file__).resolve().parents[2]
GOLDEN = list(csv.DictReader((REPO / "tests" / "golden" / "scalesim_dense.csv").open()))


def _make_golden():
    spec = importlib.util.spec_from_file_location("make_golden", REPO / "tools" / "scalesim_golden" / "make_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # only the standard library at import time; scalesim is imported per run
    return module


MAKE_GOLDEN = _make_golden()

FULL = """\
[general]
run_name = my_16x24_is

[architecture_presets]
ArrayHeight:    16
ArrayWidth:     24
IfmapSramSzkB:   96
FilterSramSzkB:  48
OfmapSramSzkB:   12
IfmapOffset:    0
FilterOffset:   5000000
OfmapOffset:    9000000
Bandwidth : 20
Dataflow : is
MemoryBanks:   2
ReadRequestBuffer: 64
WriteRequestBuffer: 64

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 20
IfmapSRAMBankNum: 4
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 20
FilterSRAMBankNum: 4
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport : false
SparseRep : csr
OptimizedMapping : false
BlockSize : 4
RandomNumberGeneratorSeed : 7

[run_presets]
InterfaceBandwidth: USER
UseRamulatorTrace: False
"""

MINIMAL = """\
[general]
run_name = tiny_ws

[architecture_presets]
ArrayHeight:    4
ArrayWidth:     4
IfmapSramSzkB:    1000
FilterSramSzkB:   200
OfmapSramSzkB:    1000
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Dataflow : ws
Bandwidth : 16
MemoryBanks: 1

[run_presets]
InterfaceBandwidth: CALC"""  # no final newline, as in some of SCALE-Sim's examples

WRITER = """\
[general]
run_name = written

[architecture_presets]
arrayheight = 8
arraywidth = 128
ifmapsramszkb = 1
filtersramszkb = 2
ofmapsramszkb = 3
ifmapoffset = 0
filteroffset = 10000000
ofmapoffset = 20000000
dataflow = os
bandwidth = 5,6,7

[network_presets]
topologycsvloc = "topologies/mine.csv"

[run_presets]
InterfaceBandwidth = USER
"""


def _cfg(tmp_path: Path, text: str, name: str = "scale.cfg") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _golden_cfg(tmp_path: Path, case: dict) -> Path:
    return _cfg(tmp_path, MAKE_GOLDEN.CONFIG_TEMPLATE.format(run_name="golden", rows=case["rows"], cols=case["cols"],
                                                             dataflow=case["dataflow"]))


# ------------------------------------------------------------------------------------------
# (a) what make_golden writes reads back as the hardware SCALE-Sim ran


def _gemm_of(case: dict) -> Gemm:
    if case["kind"] == "gemm":
        return Gemm(int(case["M"]), int(case["N"]), int(case["K"]))
    conv = Conv2d(name=case["case"], batch=1, in_channels=int(case["channels"]), out_channels=int(case["num_filters"]),
                  in_h=int(case["ifmap_h"]), in_w=int(case["ifmap_w"]), kernel_h=int(case["filter_h"]),
                  kernel_w=int(case["filter_w"]), stride_h=int(case["stride"]), stride_w=int(case["stride"]),
                  ceil_mode=True)
    return conv.gemm(Phase.FWD)


def test_cli_run_on_a_make_golden_cfg_gives_scalesims_cycles(tmp_path, capsys):
    case = next(c for c in GOLDEN if c["case"] == "gemm_100x70x50_a32x32" and c["dataflow"] == "os")
    cfg = _golden_cfg(tmp_path, case)
    assert main(["run", "--gemm", "100,70,50", "--accel", str(cfg), "--dataflow", "os",
                 "--set", "array.fold_overlap=false", "--json"]) == 0
    out = capsys.readouterr()
    total = json.loads(out.out)["total"]
    assert total["cycles"] == int(case["scalesim_total_cycles"]) + 1 == 1344  # ceil(100/32).ceil(70/32).(50+62)
    assert total["stall_cycles"] == 0
    assert out.err == ""  # CALC mode: nothing to warn about


def test_every_golden_case_through_a_make_golden_cfg(tmp_path):
    """All of tests/golden/scalesim_dense.csv: CALC is ideal memory, the ports never stall."""
    for case in GOLDEN:
        cfg = load_accel(str(_golden_cfg(tmp_path, case)), ["array.fold_overlap=false"])
        out = run_gemm(_gemm_of(case), cfg, case["dataflow"])
        assert (out.cycles, out.stall_cycles) == (int(case["cycles"]), 0), (case["case"], case["dataflow"])


def test_make_golden_cfg_maps_every_field(tmp_path):
    cfg = load_accel(str(_golden_cfg(tmp_path, {"rows": 12, "cols": 20, "dataflow": "ws"})))
    assert (cfg.name, cfg.array.rows, cfg.array.cols, cfg.array.dataflows) == ("golden", 12, 20, ("ws",))
    assert cfg.array.precision == "int8" and cfg.array.element_bytes == 1  # SCALE-Sim's 1-byte word
    assert [b.size_bytes for b in (cfg.buffers.a, cfg.buffers.b, cfg.buffers.out)] == [6144 * 1024] * 3
    assert cfg.dram.ideal  # InterfaceBandwidth = CALC
    assert cfg.array.fold_overlap  # not described by the file: this simulator's default


# ------------------------------------------------------------------------------------------
# (b) the shapes of SCALE-Sim's example configs


def test_full_user_mode_shape(tmp_path, capsys):
    cfg = load_accel(str(_cfg(tmp_path, FULL)))
    assert (cfg.name, cfg.array.rows, cfg.array.cols, cfg.array.dataflows) == ("my_16x24_is", 16, 24, ("is",))
    assert cfg.buffers.a.size_bytes == 96 * 1024 == 98304
    assert cfg.buffers.b.size_bytes == 48 * 1024 == 49152
    assert cfg.buffers.out.size_bytes == 12 * 1024 == 12288
    assert cfg.dram.bandwidth_bytes_per_cycle == 20.0 and not cfg.dram.ideal  # 20 one-byte words a cycle
    # SRAM ports: 24 banks (the wider edge) of 16 bytes
    assert (cfg.buffers.a.banks, cfg.buffers.a.word_bytes) == (24, 16)


def test_minimal_calc_shape(tmp_path):
    cfg = load_accel(str(_cfg(tmp_path, MINIMAL)))
    assert (cfg.name, cfg.array.rows, cfg.array.cols, cfg.array.dataflows) == ("tiny_ws", 4, 4, ("ws",))
    assert (cfg.buffers.a.size_bytes, cfg.buffers.b.size_bytes, cfg.buffers.out.size_bytes) == (1024000, 204800,
                                                                                                1024000)
    assert cfg.dram.ideal and cfg.dram.bandwidth_bytes_per_cycle == 16.0


def test_lower_case_keys_and_network_presets_as_scalesims_writer_emits(tmp_path, capsys):
    path = _cfg(tmp_path, WRITER)
    assert main(["run", "--gemm", "8,8,8", "--accel", str(path), "--json"]) == 0
    out = capsys.readouterr()
    rows = json.loads(out.out)["layers"]
    assert rows[0]["accel"] == "written" and rows[0]["dataflow"] == "os"  # `best` runs the cfg's dataflow
    cfg = load_accel(str(path))
    assert (cfg.array.rows, cfg.array.cols) == (8, 128)
    assert (cfg.buffers.a.size_bytes, cfg.buffers.b.size_bytes, cfg.buffers.out.size_bytes) == (1024, 2048, 3072)
    assert cfg.dram.bandwidth_bytes_per_cycle == 5.0  # the first of 5,6,7
    warnings = [line for line in out.err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 3 and len(out.err.splitlines()) == 3
    assert "Bandwidth: 3 values; the first (5 words a cycle)" in warnings[0]
    assert "InterfaceBandwidth USER" in warnings[1] and "stall cycles differ" in warnings[1]
    assert "network_presets.TopologyCsvLoc: ignored" in warnings[2] and "--topology" in warnings[2]


def test_run_name_missing_names_the_design_after_the_file(tmp_path):
    cfg = load_accel(str(_cfg(tmp_path, MINIMAL.replace("run_name = tiny_ws", ""), "edge_tpu_like.cfg")))
    assert cfg.name == "edge_tpu_like"


def test_layout_and_ramulator_switches_are_warned(tmp_path, capsys):
    text = FULL.replace("IfmapCustomLayout: False", "IfmapCustomLayout: True").replace(
        "UseRamulatorTrace: False", "UseRamulatorTrace: True")
    assert main(["run", "--gemm", "8,8,8", "--accel", str(_cfg(tmp_path, text))]) == 0
    err = capsys.readouterr().err
    assert "layout.IfmapCustomLayout: ignored: SRAM layouts and bank conflicts are not modelled" in err
    assert "run_presets.UseRamulatorTrace: ignored" in err


def test_other_dataflow_is_refused_until_the_limit_is_lifted(tmp_path, capsys):
    path = str(_cfg(tmp_path, MINIMAL))
    assert main(["run", "--gemm", "8,8,8", "--accel", path, "--dataflow", "os"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: --dataflow: 'os' is not supported by tiny_ws (array.dataflows: ws; "
                   "--set array.dataflows=[] allows every dataflow)")
    assert main(["run", "--gemm", "8,8,8", "--accel", path, "--dataflow", "os", "--set", "array.dataflows=[]"]) == 0


def test_set_overrides_apply_on_top_and_name_the_result(tmp_path, capsys):
    path = str(_cfg(tmp_path, MINIMAL))
    assert main(["run", "--gemm", "8,8,8", "--accel", path, "--set", "array.rows=8", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["layers"][0]
    assert row["accel"] == "tiny_ws (array.rows=8)"


def test_sweep_base_may_be_a_cfg(tmp_path):
    from sparsesim.sweeps import load_spec

    _cfg(tmp_path, MINIMAL)
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: s\nbase: {accel: scale.cfg}\naxes: {array.rows: [4, 8]}\n"
                    "workloads: [{gemm: [8, 8, 8]}]\ndataflows: [ws]\n")
    plan = load_spec(spec)
    assert [p.config["array"]["rows"] for p in plan.points] == [4, 8]
    assert plan.points[0].config["buffers"]["b"]["size_bytes"] == 204800


# ------------------------------------------------------------------------------------------
# (c) bad files: one line naming section.key


BAD = [
    (FULL.replace("[layout]", "[Layout]"), "[Layout]: unknown section (did you mean 'layout'?)"),
    (FULL + "[extras]\nfoo = 1\n", "[extras]: unknown section (choose from "),
    (FULL.replace("ArrayHeight:", "ArrayHieght:"),
     "architecture_presets.ArrayHieght: unknown key (did you mean 'ArrayHeight'?)"),
    (FULL.replace("MemoryBanks:   2", "OnChipMemoryBanks: 2"),
     "architecture_presets.OnChipMemoryBanks: unknown key (did you mean 'MemoryBanks'?)"),
    (FULL.replace("IfmapSramSzkB:   96", "IfmapSramSzkB:   96kB"),
     "architecture_presets.IfmapSramSzkB: expected an integer, got '96kB'"),
    (FULL.replace("IfmapSramSzkB:   96", "IfmapSramSzkB:   9.5"),
     "architecture_presets.IfmapSramSzkB: expected an integer, got '9.5'"),
    (FULL.replace("Bandwidth : 20", "Bandwidth : fast"), "architecture_presets.Bandwidth: expected a number"),
    (FULL.replace("Bandwidth : 20", "Bandwidth : 0"), "architecture_presets.Bandwidth: must be a positive number"),
    (FULL.replace("IfmapCustomLayout: False", "IfmapCustomLayout: maybe"),
     "layout.IfmapCustomLayout: expected True or False, got 'maybe'"),
    (FULL.replace("InterfaceBandwidth: USER", "InterfaceBandwidth: AUTO"),
     "run_presets.InterfaceBandwidth: 'AUTO' is not one of CALC, USER"),
    (FULL.replace("Dataflow : is", "Dataflow : rs"), "architecture_presets.Dataflow: 'rs' is not one of os, ws, is"),
    (FULL.replace("OfmapSramSzkB:   12\n", ""), "architecture_presets.OfmapSramSzkB: missing required key"),
    (FULL.replace("InterfaceBandwidth: USER\n", ""), "run_presets.InterfaceBandwidth: missing required key"),
    (FULL.replace("Bandwidth : 20\n", ""),
     "architecture_presets.Bandwidth: missing required key (run_presets.InterfaceBandwidth is USER)"),
    (FULL.replace("ArrayHeight:    16", "ArrayHeight:    0"), "architecture_presets.ArrayHeight: must be >= 1, got 0"),
    (FULL.replace("ArrayWidth:     24", "ArrayWidth:     -8"), "architecture_presets.ArrayWidth: must be >= 1, got -8"),
    (FULL.replace("OfmapSramSzkB:   12", "OfmapSramSzkB:   0"), "architecture_presets.OfmapSramSzkB: must be >= 1"),
    (FULL.replace("SparsitySupport : false", "SparsitySupport : true"),
     "sparsity.SparsitySupport: true is not read here"),
    (FULL.replace("ArrayWidth:     24", "ArrayWidth:     24\narraywidth: 32"),
     "architecture_presets.ArrayWidth given twice (keys ignore case)"),
    ("ArrayHeight = 8\n" + FULL, "line 1: a key before the first [section]"),
    (FULL.replace("MemoryBanks:   2", "MemoryBanks"),
     "line 15: expected `key = value` or `key: value`, got 'MemoryBanks'"),
]


@pytest.mark.parametrize("text, message", BAD, ids=[m.split(":")[0] + f"-{i}" for i, (_, m) in enumerate(BAD)])
def test_bad_cfg_is_one_line_naming_section_and_key(tmp_path, capsys, text, message):
    path = _cfg(tmp_path, text)
    assert main(["run", "--gemm", "8,8,8", "--accel", str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {path}: {message}"), err
    with pytest.raises(InputError) as exc:  # (d) the API refuses it with the same line
        sparsesim.simulate(sparsesim.gemm(8, 8, 8), accel=str(path))
    assert f"error: {exc.value}\n" == err


def test_missing_cfg_file_names_it(tmp_path, capsys):
    assert main(["run", "--gemm", "8,8,8", "--accel", str(tmp_path / "none.cfg")]) == 2
    assert capsys.readouterr().err == f"error: --accel: no such file {str(tmp_path / 'none.cfg')!r}\n"


# ------------------------------------------------------------------------------------------
# (d) the API reads a cfg as the command line does


def test_api_equals_cli(tmp_path, capsys):
    case = next(c for c in GOLDEN if c["case"] == "gemm_37x53x29_a12x20" and c["dataflow"] == "is")
    path = _golden_cfg(tmp_path, case)
    res = sparsesim.simulate(sparsesim.gemm(37, 53, 29), accel=str(path), dataflow="is",
                             sets={"array.fold_overlap": False})
    assert res.total["cycles"] == int(case["cycles"]) == 570  # ceil(29/12).ceil(37/20).(53+24+20-2) = 3.2.95
    assert main(["run", "--gemm", "37,53,29", "--accel", str(path), "--dataflow", "is",
                 "--set", "array.fold_overlap=false", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(res.to_json())
    assert sparsesim.accel_config(Path(path)) == load_accel(str(path))
