"""``simulate()``: compose a workload, an accelerator config and a dataflow into result rows.

One row per (op, phase). Dense runs go through the GEMM-level engine (:mod:`sparsesim.engine`)
directly; with sparsity features switched on, real (or seeded synthetic) tensors are replayed
through them by :mod:`sparsesim.replay`, and every row keeps the dense run of the same op on the
same hardware beside it.
"""

from __future__ import annotations

from sparsesim.accel.config import AccelConfig
from sparsesim.accel.energy import check_table_supports, energy_table
from sparsesim.accel.sparsity import feature_labels, parse_features
from sparsesim.engine import best_of, check_dataflow, make_row, op_phases, repeat_rows, run_gemm
from sparsesim.replay import Replay
from sparsesim.workloads.ops import Workload


def simulate(workload: Workload, cfg: AccelConfig, dataflow: str) -> list[dict]:
    """Simulate every op of ``workload`` in each of its phases; one row per (op, phase)."""
    check_dataflow(cfg, dataflow)
    table = energy_table(cfg.energy_table)
    check_table_supports(table, cfg)
    features = parse_features(cfg.sparsity)
    label = feature_labels(features)
    if features:
        return repeat_rows(workload, Replay(workload, cfg, dataflow, features, table).rows())
    rows = []
    for index, op in enumerate(workload.ops):
        for phase in op_phases(workload, index):
            gemm = op.gemm(phase)
            out = best_of(dataflow, lambda name, g=gemm: run_gemm(g, cfg, name), cfg)
            rows.append(make_row(op, phase, gemm, out, out, cfg, table, label))
    return repeat_rows(workload, rows)
