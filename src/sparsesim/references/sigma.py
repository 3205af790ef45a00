"""SIGMA against STONNE: the ``sigma`` kind in its STONNE-compatible mode, on the same bitmaps as
stored STONNE runs (``data/sigma_stonne.csv``; where they came from and the tolerance: ``data/README.md``).

STONNE (github:stonne-simulator/stonne, MIT) models SIGMA cycle by cycle in its
``SIGMA_SPARSE_GEMM`` memory controller. Each stored case is one sparse GEMM whose bitmaps follow
from its seed (:func:`bitmaps`); STONNE padded every MK row and KN column to at least 3 set bits
(``generateBitMapFromDense``), which the compatible mode repeats (``sigma.min_cluster: 3``). Its
per-iteration drain was measured from the dense ``calibration`` cases alone, which are not compared.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from importlib import resources

import numpy as np

from sparsesim.dataflows import DATAFLOWS
from sparsesim.dataflows.sigma import stonne_overrides
from sparsesim.dataflows.tiled import ArrayWork
from sparsesim.hardware.config import AccelConfig
from sparsesim.hardware.presets import load_accel
from sparsesim.references import REFERENCES, Agreement, ReferenceCheck
from sparsesim.workloads.gemm import Gemm

STONNE_COMMIT = "22634b8b7668c2691bc2df8f612232d90839df20"
DATA = "sigma_stonne.csv"


@dataclass(frozen=True, slots=True)
class Case:
    """One stored STONNE run."""

    case: str
    group: str  # calibration (dense, measures the drain; not compared) or compared
    M: int
    N: int
    K: int
    ms_size: int
    dn_bw: int
    rn_bw: int
    dataflow: str  # MK_STA_KN_STR or MK_STR_KN_STA
    density_mk: float
    density_kn: float
    seed: int
    optimize: int  # STONNE -optimize (1: stationary vectors reordered, sigma.reorder)
    stonne_cycles: int


def bitmaps(M: int, N: int, K: int, density_mk: float, density_kn: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The rule every case's bitmaps follow (STONNE was fed exactly these, before its own padding):
    ``rng = numpy.random.default_rng(seed)``; MK = ``rng.random((M, K)) < density_mk``, then
    KN = ``rng.random((K, N)) < density_kn``, both row-major."""
    rng = np.random.default_rng(seed)
    mk = rng.random((M, K)) < density_mk
    kn = rng.random((K, N)) < density_kn
    return mk, kn


def load_cases() -> list[Case]:
    """The stored table (package data)."""
    text = resources.files("sparsesim.references").joinpath("data", DATA).read_text()
    rows = [r for r in csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))]
    ints = ("M", "N", "K", "ms_size", "dn_bw", "rn_bw", "seed", "optimize", "stonne_cycles")
    floats = ("density_mk", "density_kn")
    return [Case(**{k: int(v) if k in ints else float(v) if k in floats else v for k, v in r.items()}) for r in rows]


def stonne_config(case: Case, drain_cycles: int) -> AccelConfig:
    """The ``sigma`` preset in its STONNE-compatible mode with ``case``'s multipliers and bandwidths
    (one Flex-DPE row of ``ms_size`` multipliers), ideal DRAM and buffers that hold the whole GEMM."""
    return load_accel("sigma", ["array.rows=1", f"array.cols={case.ms_size}", "dram.ideal=true",
                                *stonne_overrides(drain_cycles, case.dn_bw, case.rn_bw, bool(case.optimize))])


def model_cycles(case: Case, drain_cycles: int) -> tuple[int, int]:
    """(cycles, iterations) of the STONNE-compatible model on ``case``'s bitmaps: both operands'
    zeros skipped (bitmap compressed), the dataflow STONNE ran, the on-chip cycles of the plan."""
    mk, kn = bitmaps(case.M, case.N, case.K, case.density_mk, case.density_kn, case.seed)
    gemm = Gemm(case.M, case.N, case.K, 1, None)
    eff = int(mk.astype(np.int64).sum(axis=0) @ kn.astype(np.int64).sum(axis=1))
    work = ArrayWork(gemm, mk.astype(np.uint8), kn.astype(np.uint8), case.M * case.N * case.K, eff, True)
    name = "sigma_sta_a" if case.dataflow == "MK_STA_KN_STR" else "sigma_sta_b"
    plan = DATAFLOWS.get(name).plan(gemm, stonne_config(case, drain_cycles), work)
    if len(plan.schedule.compute_cycles) != 1:
        raise AssertionError(f"{case.case}: the reference needs the GEMM in one block")
    return int(plan.schedule.compute_cycles.sum()), int(plan.folds)


DRAIN_PER_LOG2 = 1
"""The compatible mode's drain is ``log2(ms_size) + DRAIN_PER_LOG2 + log2(ms_size / dn_bw)`` cycles per
iteration, the rounded mean remainder of the dense calibration runs (data/README.md): 7 and 8 at
ms_size 64 and 128 with dn_bw = ms_size, one more with half the read ports (a level more in each port's tree)."""

TOLERANCE_CYCLES_PER_ITERATION = 4
"""A case agrees within this many cycles per iteration: the largest deviation of a calibration run's
per-iteration remainder from the drain constant (data/README.md). Chosen before any compared case ran."""


def drain_cycles(ms_size: int, dn_bw: int | None = None) -> int:
    """The compatible mode's per-iteration drain (see :data:`DRAIN_PER_LOG2`)."""
    ports = int(round(math.log2(ms_size // (dn_bw or ms_size))))
    return int(round(math.log2(ms_size))) + DRAIN_PER_LOG2 + ports


class StonneSigma(ReferenceCheck):
    name = "sigma_stonne"
    array_kind = "sigma"
    source = (f"STONNE (github:stonne-simulator/stonne@{STONNE_COMMIT[:8]}, MIT), SIGMA_SPARSE_GEMM controller, "
              "N_cycles of sparse GEMMs on stored bitmaps (src/sparsesim/references/data/sigma_stonne.csv)")

    def run(self) -> list[Agreement]:
        out = []
        for case in load_cases():
            if not case.group.startswith("compared"):
                continue
            model, iters = model_cycles(case, drain_cycles(case.ms_size, case.dn_bw))
            tol = TOLERANCE_CYCLES_PER_ITERATION * iters / case.stonne_cycles
            out.append(Agreement(case.case, float(case.stonne_cycles), float(model), "cycles", tol))
        return out


REFERENCES.add(StonneSigma.name, StonneSigma())
