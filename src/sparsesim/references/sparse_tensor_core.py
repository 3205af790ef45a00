"""The 2:4 sparse tensor core against Sparseloop's model of it: dense and 2:4 cycles of four
ResNet-50 GEMMs on 1024 MACs (data: ``data/sparseloop_fig15_tc_stc.yaml``, with its source).

The ``sparse_tensor_core`` preset has the same 1024 MACs (one A100 SM) and runs each GEMM with
``dram.ideal`` (Sparseloop's counts are compute-bound), dense and with ``nm:2:4`` (weights
pruned 2:4 by magnitude on seeded synthetic tensors; the cycles depend on the pattern only).
"""

from __future__ import annotations

from importlib import resources

import yaml

from sparsesim.hardware.presets import load_accel
from sparsesim.references import REFERENCES, Agreement, ReferenceCheck
from sparsesim.simulation.run import simulate_rows
from sparsesim.sparsity import cli_sparsity
from sparsesim.workloads.gemm import Phase
from sparsesim.workloads.ops import Workload, gemm_op

DATA = "sparseloop_fig15_tc_stc.yaml"


class SparseTensorCore(ReferenceCheck):
    name = "sparse_tensor_core"
    array_kind = "systolic"
    source = "Sparseloop MICRO'22 artifact, fig15 TC/STC ref outputs"

    def run(self) -> list[Agreement]:
        data = yaml.safe_load(resources.files("sparsesim.references").joinpath("data", DATA).read_text())
        out = []
        for case in data["cases"]:
            M, K, N = case["M"], case["K"], case["N"]
            workload = Workload(f"M{M}-K{K}-N{N}", (gemm_op("gemm", M, N, K),), (Phase.FWD,))
            for label, spec, key in (("dense", [], "tc_cycles"), ("2:4", ["nm:2:4"], "stc_cycles")):
                cfg = load_accel("sparse_tensor_core", ["dram.ideal=true"], {"sparsity": cli_sparsity(spec)})
                (row,) = simulate_rows(workload, cfg, "os", progress=False)
                out.append(Agreement(f"M{M}-K{K}-N{N} {label}", float(case[key]), float(row["cycles"]), "cycles",
                                     case["tolerance"]))
        return out


REFERENCES.add(SparseTensorCore.name, SparseTensorCore())
