"""The dual-side sparse tensor core against its paper's Fig. 21 (``validate architectures --only dstc_fig21``).

DSTC (Wang et al., ISCA 2021) Fig. 21 plots the latency of a 4096^3 GEMM against the densities
of A and B; the Sparseloop authors digitised it (``data/dstc_fig21.yaml`` says where from, and
states the tolerance). Each point is replayed on the ``dstc`` preset as it ships, with both
operands' zeros skipped (``zero_skip:both:skipping``) and uniformly random masks of the point's
densities (seeded), and compared as latency normalised to the dense run of the same machine.

The replay is a ``1024^3`` GEMM, not ``4096^3``: the cycle rule is a sum over output tiles (32 x
32) and over k of per-(tile, k) costs that depend only on that tile's masks, so with uniform
masks the normalised latency is a mean over (tile, k) samples, and a GEMM 4x smaller on each
side has the same tiles and only fewer samples (1024 x 1024 of them per operand side). The
drain per tile, the one term that does not scale with K, weighs 9 cycles per 8192 of a dense
tile instead of per 32768 (0.1 % against 0.03 %). docs/architectures/dstc.md gives both sizes'
numbers; ``size`` sets it.
"""

from __future__ import annotations

import dataclasses
from importlib import resources

import numpy as np
import yaml

from sparsesim.hardware.presets import load_accel
from sparsesim.references import REFERENCES, Agreement, ReferenceCheck
from sparsesim.simulation.run import simulate_rows
from sparsesim.sparsity import cli_sparsity
from sparsesim.workloads.gemm import Phase
from sparsesim.workloads.ops import Linear, Workload

DATA = "dstc_fig21.yaml"


class _RandomOperands:
    """The input (A, ``M x K``) and weight (``N x K``, so ``B = W^T``) of one linear layer with
    independent uniformly random nonzeros of the given densities."""

    def __init__(self, M: int, N: int, K: int, density_a: float, density_b: float, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.x = (rng.random((M, K), dtype=np.float32) < density_a).astype(np.float32)
        self.w = (rng.random((N, K), dtype=np.float32) < density_b).astype(np.float32)

    def tensors(self, index: int, roles=None) -> dict:
        return {"input": self.x, "weight": self.w}


def load_fig21() -> dict:
    """The digitised Fig. 21 points, their source and tolerance (``data/dstc_fig21.yaml``)."""
    text = resources.files("sparsesim.references").joinpath("data", DATA).read_text(encoding="utf-8")
    return yaml.safe_load(text)


def normalised_latency(size: int, density_a: float, density_b: float, seed: int = 0,
                       overrides: tuple[str, ...] = ()) -> tuple[float, dict]:
    """Cycles of a ``size^3`` GEMM on the ``dstc`` preset with both operands' zeros skipped,
    over the dense run of the same machine, and the row they come from."""
    op = Linear(name="gemm", tokens=size, in_features=size, out_features=size)
    workload = Workload("dstc-fig21", (op,), (Phase.FWD,), None,
                        _RandomOperands(size, size, size, density_a, density_b, seed))
    cfg = load_accel("dstc", list(overrides))
    cfg = dataclasses.replace(cfg, sparsity=tuple(cli_sparsity(["zero_skip:both:skipping"])))
    (row,) = simulate_rows(workload, cfg, "dstc", progress=False)
    return row["cycles"] / row["dense_cycles"], row


class DstcFig21(ReferenceCheck):
    name = "dstc_fig21"
    array_kind = "dstc"
    source = "DSTC (Wang et al., ISCA 2021) Fig. 21 as digitised in Sparseloop's artifact (data/dstc_fig21.yaml)"
    size = 1024  # the replayed GEMM's M = N = K (see the module docstring)
    seed = 0

    def run(self) -> list[Agreement]:
        data = load_fig21()
        dense = next(p[2] for p in data["points"] if (p[0], p[1]) == (1.0, 1.0))
        out = []
        for da, db, latency in data["points"]:
            if (da, db) == (1.0, 1.0):  # the normalisation itself: 1 on both sides by construction
                continue
            model, _ = normalised_latency(self.size, da, db, self.seed)
            out.append(Agreement(f"A {da:g} B {db:g}", latency / dense, model, "latency / dense", data["tolerance"]))
        return out


REFERENCES.add(DstcFig21.name, DstcFig21())
