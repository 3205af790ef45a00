"""``study architectures``: its weight pruning and density grid by hand, and its text computed
from its tables (a made-up table whose winner differs from the real one's)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sparsesim.studies import architectures as A
from sparsesim.workloads.ops import gemm_op


class _One:
    def __init__(self, w):
        self.w = w

    def tensors(self, index, roles=None):
        return {"input": None, "weight": self.w}


def test_pruning_keeps_the_largest_magnitudes():
    w = np.array([[0.5, -3.0, 1.0, 2.0], [-0.1, 4.0, 0.0, -2.5]], dtype=np.float32)
    half = A._Pruned(_One(w), 0.5).tensors(0)["weight"]
    # the four largest |w|: 4.0, -3.0, -2.5, 2.0
    assert np.array_equal(half, np.array([[0, -3.0, 0, 2.0], [0, 4.0, 0, -2.5]], dtype=np.float32))
    assert A._Pruned(_One(w), 1.0).tensors(0)["weight"] is w


def test_the_grid_has_the_densities_it_names():
    op = gemm_op("g", 200, 150, 100)
    g = A._Grid(op, 0.3, 0.5, seed=0)
    assert abs(np.count_nonzero(g.x) / g.x.size - 0.3) < 0.01
    assert abs(np.count_nonzero(g.w) / g.w.size - 0.5) < 0.02
    again = A._Grid(op, 0.3, 0.5, seed=0)
    assert np.array_equal(g.x, again.x) and np.array_equal(g.w, again.w)


def _cnn_row(arch, d, machine, cycles, energy, bound):
    return {"arch": arch, "kind": "systolic", "weight_density": d, "machine": machine, "cycles": cycles,
            "dense_cycles": 1000.0, "compute_cycles": cycles, "macs_dense": 8.0e5, "macs_effectual": 4.0e5,
            "energy_pj": energy, "dram_bytes": 10.0, "bound_cycles": bound, "stall_cycles": 0.0,
            "speedup_vs_systolic_dense": 1000.0 / cycles, "speedup_vs_own_dense": 1000.0 / cycles,
            "bound_speedup_vs_systolic_dense": 1000.0 / bound, "utilization": 0.5, "compute_speedup": 1.0,
            "dense_compute_cycles": 1000.0, "stall_share": 0.1 if arch == "P" else 0.3}


def test_the_text_follows_the_tables():
    cnn = pd.DataFrame([_cnn_row("P", 1.0, "dense", 1000.0, 9.0, 900.0), _cnn_row("Q", 1.0, "dense", 1000.0, 9.0, 900.0)]
                       + [_cnn_row("P", d, "sparse", 800.0, 5.0, 400.0) for d in A.WEIGHT_DENSITIES]
                       + [_cnn_row("Q", d, "sparse", 500.0, 6.0, 400.0) for d in A.WEIGHT_DENSITIES])
    grid = pd.DataFrame([{"arch": a, "density_a": da, "density_b": db, "cycles": 100.0, "dense_cycles": 100.0 * s,
                          "macs_dense": 1000.0, "macs_effectual": 1000.0 * da * db, "utilization": 0.5, "compute_speedup": s,
                          "speedup_vs_own_dense": s, "speedup_vs_systolic_dense": s}
                         for a, s in (("P", 1.5), ("Q", 2.5)) for da in A.GRID_A for db in A.GRID_B])
    figs = {"cnn": Path("cnn_speedup.png"), "grid": Path("density_grid.png")}
    text = A.write(A.Data(cnn, grid, 0.42, 4), figs)
    # Q is faster (500 vs 800 cycles: 0.62 of P's), P uses less energy
    assert "At weight density 0.5 the fastest is Q (2.00x the dense systolic array, 0.62 of the cycles of the " \
           "next, P); the least energy is P (5 pJ)." in text
    # bound 1000/400 = 2.5x: P reaches 1.25x (gap 2.00x), Q 2.00x (gap 1.25x)
    assert "bound over achieved across the weight densities: P 2.00x; Q 1.25x." in text
    assert "Q: 2.50x over its dense machine with only A at density 0.1" in text
    assert "on average 42% of a layer's input activations are zero" in text
    assert "Waiting hides" not in text  # no design's compute speedup passes 1.5x its total
    assert "| Q | 0.25 | 2.50 (2.50) |" in text  # the grid's pivot: one row per design and B density
    assert "waits for memory (DRAM, or a buffer's ports): P 10%; Q 30%." in text
    held = cnn.assign(compute_speedup=[3.0 if (a, m) == ("Q", "sparse") else 1.0 for a, m in zip(cnn["arch"],
                                                                                               cnn["machine"])])
    text = A.write(A.Data(held, grid, 0.42, 4), figs)
    # Q: 3.00x in compute against 1000/500 = 2.00x in total, which is not above 1.5x: none is held
    assert "Waiting hides" not in text
    held.loc[(held["arch"] == "Q") & (held["weight_density"] == 0.25), "compute_speedup"] = 4.0
    text = A.write(A.Data(held, grid, 0.42, 4), figs)
    assert ("its total (Q); the widest gap is Q at weight density 0.25: 4.00x in compute, 2.00x in total."
            in text)
