"""One place assembles a run (simulation/assemble.py): the API and the case studies get the same
rows from it, and the features are checked against the hardware where the two meet."""

from __future__ import annotations

import pytest

import sparsesim
from sparsesim.core.errors import InputError
from sparsesim.hardware.presets import load_accel, preset_mapping
from sparsesim.simulation.assemble import assemble_run, build_config
from sparsesim.simulation.run import simulate_rows
from sparsesim.studies.common import run_workload
from sparsesim.workload_args import build_workload

NARROW = [("array.nm_ratios", ["2:4"])]  # MAC units that support 2:4 only
UNSUPPORTED = [{"kind": "nm", "n": 2, "m": 8}]


def test_api_and_studies_assemble_the_same_rows():
    spec = sparsesim.gemm(64, 48, 40)
    api = sparsesim.simulate(spec, accel="edge32", dataflow="ws", sparsity=["zero_skip:input:skipping"],
                             sets={"array.rows": 16})
    frame = run_workload(build_workload(spec), "edge32", sets=("array.rows=16",), dataflow="ws",
                         sparsity=[{"kind": "zero_skip", "target": "input", "action": "skipping"}])
    assert frame["cycles"].tolist() == [r["cycles"] for r in api.rows]
    assert frame["run_id"].tolist() == [r["run_id"] for r in api.rows]
    run = assemble_run(build_workload(spec), api.config, "ws")
    assert [r["energy_pj"] for r in run.rows] == [r["energy_pj"] for r in api.rows]
    assert run.total == api.total


def test_features_are_checked_against_the_hardware_above_the_hardware_layer():
    cfg = load_accel("edge32", [], {**dict(NARROW), "sparsity": UNSUPPORTED})  # the hardware alone: builds
    assert cfg.array.nm_ratios == ("2:4",)
    message = r"^sparsity\.nm: ratio 2:8 is not supported by this hardware"
    with pytest.raises(InputError, match=message):
        build_config(preset_mapping("edge32"), [*NARROW, ("sparsity", UNSUPPORTED)])
    with pytest.raises(InputError, match=message):
        simulate_rows(build_workload(sparsesim.gemm(8, 8, 8)), cfg, "os")
    with pytest.raises(InputError, match=message):
        sparsesim.accel_config("edge32", sparsity=["nm:2:8"], sets=dict(NARROW))
