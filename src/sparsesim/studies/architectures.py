"""Case study: the same sparse workloads on every array kind, at equal multipliers and equal SRAM.

Two workloads, both with real masks:

* **a real CNN**: ResNet-18 from the zoo, trained briefly on its synthetic task, one inference
  batch captured (its ReLU zeros are the activations' own), with its weights magnitude-pruned
  per layer to several densities (unstructured; the 2:4 tensor core prunes the dense weights
  2:4 instead, since that is the only pattern it can use);
* **a density grid**: one GEMM whose two operands have seeded random zeros at a grid of
  densities, where each family's response to each operand's sparsity shows alone.

Every architecture is a preset of its kind with the same number of multipliers
(:data:`MULTIPLIERS`), the same three operand buffers and the same DRAM (``edge32``'s), set
through ``--set`` overrides the table records; each one's dense machine runs the same workload,
and the systolic array's dense run is the common baseline. Three jobs, one function each:
:func:`compute`, :func:`plot`, :func:`write`; every claim in the text is computed from the tables.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sparsesim import plots
from sparsesim.hardware.presets import load_accel
from sparsesim.studies.common import (STUDIES, Study, md_table, phase_totals, provenance, run_workload, span,
                                      trace_for, write_report)
from sparsesim.workloads.gemm import Phase
from sparsesim.workloads.ops import Workload, gemm_op
from sparsesim.workloads.trace import load_trace

MULTIPLIERS = 384
"""Multipliers of every architecture: the published Eyeriss v2 (192 PEs of 2 MACs)."""

EQUAL = ("buffers.a.size_bytes=131072", "buffers.b.size_bytes=131072", "buffers.out.size_bytes=131072",
         "array.precision=int8", "clock_hz=1.0e9", "dram.bandwidth_bytes_per_cycle=16.0", "dram.latency_cycles=100",
         "dram.energy_pj_per_bit=20.0", "energy_table=horowitz45")
"""What every architecture shares: 3 x 128 KiB operand buffers (each keeps its preset's ports,
banks x word bytes, which are part of its design), int8 MACs at 1 GHz, and one DRAM channel of
16 B/cycle with 100 cycles of latency."""

SKIP_BOTH = [{"kind": "zero_skip", "target": "both", "action": "skipping"}]


@dataclass(frozen=True, slots=True)
class Arch:
    """One architecture of the comparison: a preset, the overrides that give it
    :data:`MULTIPLIERS` multipliers, and the features its sparse hardware runs."""

    label: str
    preset: str
    sets: tuple[str, ...]
    sparsity: tuple[dict, ...]
    uses_pruned_weights: bool = True  # False: it prunes the dense weights itself (2:4)


ARCHS = (
    Arch("systolic (lockstep)", "edge32", ("array.rows=16", "array.cols=24"), tuple(SKIP_BOTH)),
    Arch("systolic (decoupled lanes)", "edge32",
         ("array.rows=16", "array.cols=24", "array.lanes=decoupled", "array.sync_window_steps=16"), tuple(SKIP_BOTH)),
    Arch("Eyeriss v2", "eyeriss_v2", (), tuple(SKIP_BOTH)),
    Arch("SIGMA", "sigma", ("array.rows=3", "array.cols=128"), tuple(SKIP_BOTH)),
    Arch("DSTC", "dstc", ("array.rows=16", "array.cols=24", "dstc.tile_m=32", "dstc.tile_n=48"), tuple(SKIP_BOTH)),
    Arch("2:4 tensor core", "sparse_tensor_core", ("array.rows=16", "array.cols=24"),
         ({"kind": "nm", "n": 2, "m": 4},), uses_pruned_weights=False),
)  # the 2:4 core last: it has no place in the density grid, and the figures keep one colour per design
"""The architectures compared: each kind's preset, cut to :data:`MULTIPLIERS` (systolic and the
2:4 core 16 x 24; SIGMA 3 Flex-DPEs of 128 multipliers; DSTC a 16 x 24 grid accumulating a
32 x 48 output tile, two grid passes along each side); Eyeriss v2 is its published 192 PEs of
2 MACs."""

WEIGHT_DENSITIES = (1.0, 0.5, 0.25)
GRID_A = (1.0, 0.7, 0.5, 0.3, 0.1)
GRID_B = (1.0, 0.5, 0.25)
GRID_GEMM = (256, 256, 256)  # M, N, K


class _Pruned:
    """A tensor source whose weights are magnitude-pruned per tensor to ``density`` (the
    smallest magnitudes zeroed; ties broken by position, so the result is deterministic)."""

    def __init__(self, source, density: float) -> None:
        self.source, self.density = source, density

    def tensors(self, index: int, roles=None) -> dict:
        t = dict(self.source.tensors(index) if roles is None else self.source.tensors(index, roles))
        w = t.get("weight")
        if w is not None and self.density < 1.0:
            keep = int(round(self.density * w.size))
            order = np.argsort(-np.abs(w).ravel(), kind="stable")
            pruned = np.zeros(w.size, dtype=w.dtype)
            pruned[order[:keep]] = w.ravel()[order[:keep]]
            t["weight"] = pruned.reshape(w.shape)
        return t


class _Grid:
    """One GEMM's operands with seeded random zeros: A at ``density_a``, B at ``density_b``."""

    def __init__(self, op, density_a: float, density_b: float, seed: int) -> None:
        digest = hashlib.sha256(f"{seed}:{density_a}:{density_b}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        self.x = (rng.integers(1, 8, op.input_shape) * (rng.random(op.input_shape) < density_a)).astype(np.float32)
        self.w = (rng.integers(1, 8, op.weight_shape) * (rng.random(op.weight_shape) < density_b)).astype(np.float32)

    def tensors(self, index: int, roles=None) -> dict:
        return {"input": self.x, "weight": self.w}


@dataclass(frozen=True, slots=True)
class Data:
    """What the study measured."""

    cnn: pd.DataFrame  # per (architecture, weight density, machine): phase totals of the CNN
    grid: pd.DataFrame  # per (architecture, A density, B density): the GEMM's totals
    act_zero: float  # mean over the CNN's layers of the zero fraction of their input activations
    batch: int


def _arch_runs(workload: Workload, arch: Arch, sparse: bool) -> pd.DataFrame:
    sets = EQUAL + arch.sets
    return run_workload(workload, arch.preset, sets=sets, sparsity=list(arch.sparsity) if sparse else None)


def _totals(frame: pd.DataFrame, **labels) -> dict:
    g = phase_totals(frame.assign(_all=0), ["_all"]).iloc[0]
    out = {k: float(g[k]) for k in ("cycles", "dense_cycles", "compute_cycles", "dense_compute_cycles", "macs_dense",
                                    "macs_effectual", "energy_pj", "dram_bytes", "bound_cycles", "stall_cycles")}
    out["compute_speedup"] = out["dense_compute_cycles"] / max(out["compute_cycles"], 1.0)
    out["stall_share"] = out["stall_cycles"] / max(out["cycles"], 1.0)
    # what the rows were priced and timed with, for the report's provenance line
    recorded = {k: frame[k].iloc[0] for k in ("energy_table", "cfg.dram.model", "cfg.dram.standard") if k in frame}
    return {**labels, **out, **recorded}


def compute(traces: Path, quick: bool) -> Data:
    """Run every architecture on both workloads and tabulate."""
    batch = 2 if quick else 4
    trace = load_trace(trace_for("resnet18", traces, mode="infer", batch=batch))
    base = trace.workload((Phase.FWD,))
    if quick:
        keep = base.ops[:6]
        base = dataclasses.replace(base, ops=keep, meta={**base.meta, "records": base.meta["records"][:6]})
    cnn, act_zero = [], None
    for arch in ARCHS:
        dense = _arch_runs(base, arch, sparse=False)
        cnn.append(_totals(dense, arch=arch.label, kind=load_accel(arch.preset).array.kind, weight_density=1.0,
                           machine="dense"))
        for d in WEIGHT_DENSITIES:
            if not arch.uses_pruned_weights and d != 0.5:
                continue  # it runs its own 2:4 pruning of the dense weights: one setting, at density 0.5
            source = base.source if not arch.uses_pruned_weights else _Pruned(base.source, d)
            frame = _arch_runs(dataclasses.replace(base, source=source), arch, sparse=True)
            if act_zero is None:  # what the replay measured of the input activations, per layer
                act_zero = float(frame["act_zero_fraction"].dropna().mean())
            cnn.append(_totals(frame, arch=arch.label, kind=load_accel(arch.preset).array.kind, weight_density=d,
                               machine="sparse"))
    cnn = pd.DataFrame(cnn)
    baseline = float(cnn[(cnn["arch"] == ARCHS[0].label) & (cnn["machine"] == "dense")]["cycles"].iloc[0])
    cnn["speedup_vs_systolic_dense"] = baseline / cnn["cycles"]
    cnn["speedup_vs_own_dense"] = cnn["dense_cycles"] / cnn["cycles"]
    cnn["bound_speedup_vs_systolic_dense"] = baseline / cnn["bound_cycles"]
    cnn["utilization"] = cnn["macs_effectual"] / (cnn["cycles"] * MULTIPLIERS)

    M, N, K = GRID_GEMM if not quick else (64, 64, 64)
    op = gemm_op("gemm", M, N, K)
    grid = []
    for arch in ARCHS:
        if not arch.uses_pruned_weights:
            continue  # the grid's weights are unstructured: a 2:4 core cannot use them
        for db in GRID_B:
            for da in GRID_A:
                wl = Workload(f"gemm-{da}-{db}", (op,), (Phase.FWD,), None, _Grid(op, da, db, seed=0))
                frame = _arch_runs(wl, arch, sparse=True)
                grid.append(_totals(frame, arch=arch.label, density_a=da, density_b=db))
    grid = pd.DataFrame(grid)
    dense_sys = grid[grid["arch"] == ARCHS[0].label]["dense_cycles"].iloc[0]
    grid["speedup_vs_systolic_dense"] = dense_sys / grid["cycles"]
    grid["speedup_vs_own_dense"] = grid["dense_cycles"] / grid["cycles"]
    grid["utilization"] = grid["macs_effectual"] / (grid["cycles"] * MULTIPLIERS)
    return Data(cnn, grid, act_zero, batch)


def plot(data: Data, out: Path) -> dict[str, Path]:
    """The report's figures."""
    sparse = data.cnn[data.cnn["machine"] == "sparse"].copy()
    sparse["weight density"] = sparse["weight_density"].map(lambda d: f"{d:g}")
    figs = {"cnn": plots.plot_speedup_bars(sparse.rename(columns={"speedup_vs_systolic_dense": "speedup",
                                                                  "bound_speedup_vs_systolic_dense": "bound"}),
                                           out / "cnn_speedup.png", x="weight density", group="arch",
                                           title="ResNet-18 inference, real activations, pruned weights: "
                                                 "speedup over the dense systolic array",
                                           achieved="speedup", bound="bound")}
    g = data.grid.copy()
    g["B density"] = g["density_b"].map(lambda d: f"B density {d:g}")
    figs["grid"] = plots.plot_lines(g, out / "density_grid.png", x="density_a", y="speedup_vs_systolic_dense",
                                    series="arch", facet="B density", reference=1.0,
                                    title="One GEMM, random zeros: speedup over the dense systolic array",
                                    xlabel="A (activation) density", ylabel="speedup (x)")
    return figs


def write(data: Data, figs: dict[str, Path]) -> str:
    """The report text: every number and every comparison in it comes from ``data``."""
    cnn, grid = data.cnn, data.grid
    sparse = cnn[cnn["machine"] == "sparse"]
    cols = {"arch": "architecture", "kind": "array kind", "weight_density": "weight density",
            "machine": "machine", "cycles": "cycles", "speedup_vs_systolic_dense": "vs dense systolic",
            "speedup_vs_own_dense": "vs own dense", "compute_speedup": "vs own dense (compute)",
            "bound_speedup_vs_systolic_dense": "bound vs dense systolic", "utilization": "utilization",
            "stall_share": "stalls", "energy_pj": "energy (pJ)", "dram_bytes": "DRAM bytes"}
    fmt = {"cycles": ",.0f", "speedup_vs_systolic_dense": ".2f", "speedup_vs_own_dense": ".2f",
           "compute_speedup": ".2f", "stall_share": ".0%",
           "bound_speedup_vs_systolic_dense": ".2f", "utilization": ".1%", "energy_pj": ".3g",
           "dram_bytes": ",.0f", "weight_density": "g"}
    wins = []
    for d in WEIGHT_DENSITIES:
        at = sparse[sparse["weight_density"] == d].sort_values("cycles")
        if len(at) < 2:
            continue
        first, second = at.iloc[0], at.iloc[1]
        e = at.sort_values("energy_pj").iloc[0]
        wins.append(f"At weight density {d:g} the fastest is {first['arch']} "
                    f"({first['speedup_vs_systolic_dense']:.2f}x the dense systolic array, "
                    f"{first['cycles'] / second['cycles']:.2f} of the cycles of the next, {second['arch']}); "
                    f"the least energy is {e['arch']} ({e['energy_pj']:.3g} pJ).")
    gap = sparse.assign(gap=sparse["bound_speedup_vs_systolic_dense"] / sparse["speedup_vs_systolic_dense"])
    per_arch = gap.groupby("arch", sort=False)["gap"]
    gap_text = (f"How far each design stays below its bound (effectual MACs over {MULTIPLIERS} multipliers, and "
                "the DRAM bytes it moves over the channel), bound over achieved across the weight densities: "
                + "; ".join(f"{arch} {span(values)}" for arch, values in per_arch) + ".")
    waits = sparse.groupby("arch", sort=False)["stall_share"]
    stall_text = ("Share of the sparse runs' cycles the array waits for memory (DRAM, or a buffer's ports): "
                  + "; ".join(f"{arch} {span(v, '.0%', '')}" for arch, v in waits) + ".")
    held = sparse[sparse["compute_speedup"] > 1.5 * sparse["speedup_vs_own_dense"]]
    if len(held):
        worst = held.loc[(held["compute_speedup"] / held["speedup_vs_own_dense"]).idxmax()]
        stall_text += (f" Waiting hides most of a design's own skipping where its compute speedup is more than 1.5x "
                       f"its total ({', '.join(held['arch'].unique())}); the widest gap is {worst['arch']} at weight "
                       f"density {worst['weight_density']:g}: {worst['compute_speedup']:.2f}x in compute, "
                       f"{worst['speedup_vs_own_dense']:.2f}x in total.")
    grid_lines = []
    for arch in grid["arch"].unique():
        sub = grid[grid["arch"] == arch]
        lo = sub[(sub["density_a"] == min(GRID_A)) & (sub["density_b"] == min(GRID_B))].iloc[0]
        only_a = sub[(sub["density_a"] == min(GRID_A)) & (sub["density_b"] == 1.0)].iloc[0]
        only_b = sub[(sub["density_a"] == 1.0) & (sub["density_b"] == min(GRID_B))].iloc[0]
        grid_lines.append(f"{arch}: {only_a['speedup_vs_own_dense']:.2f}x over its dense machine with only A at "
                          f"density {min(GRID_A):g}, {only_b['speedup_vs_own_dense']:.2f}x with only B at "
                          f"{min(GRID_B):g}, {lo['speedup_vs_own_dense']:.2f}x with both "
                          f"(work ratio {lo['macs_dense'] / max(lo['macs_effectual'], 1):.1f}x).")
    pivot = grid.assign(cell=[f"{s:.2f} ({c:.2f})" for s, c in zip(grid["speedup_vs_own_dense"],
                                                                     grid["compute_speedup"])])
    pivot = pivot.pivot_table(index=["arch", "density_b"], columns="density_a", values="cell", aggfunc="first",
                              sort=False)
    pivot = pivot[sorted(pivot.columns, reverse=True)].reset_index()
    gcols = {"arch": "architecture", "density_b": "B density",
             **{d: f"A {d:g}" for d in pivot.columns if isinstance(d, float)}}
    gfmt = {"density_b": "g"}
    archs = "\n".join(f"- **{a.label}**: preset `{a.preset}` with `{' '.join(a.sets) or '-'}`, sparse hardware "
                      f"`{'+'.join(f['kind'] for f in a.sparsity)}`" for a in ARCHS)
    return f"""# Sparse architectures compared: the same real workloads at equal multipliers and SRAM

Regenerate: `sparsesim study architectures --out reports/architectures`.

**Architectures.** {MULTIPLIERS} int8 multipliers each (the published Eyeriss v2's count), the
same three 128 KiB operand buffers (each with its own preset's ports) and the same DRAM channel
(16 B/cycle, 100 cycles of latency), at 1 GHz (`{' '.join(EQUAL)}`):

{archs}

**Workloads.** ResNet-18 from the zoo (CIFAR-size input), trained briefly on its synthetic task
(not a trained ImageNet model: its activations are the zoo's), inference at batch {data.batch}:
on average {data.act_zero:.0%} of a layer's input activations are zero (ReLU). Its weights are
magnitude-pruned per layer to each density (unstructured); the 2:4 tensor core instead prunes the
dense weights 2:4 (density 0.5), the only pattern it can use. The density grid is one
{GRID_GEMM[0]}x{GRID_GEMM[1]}x{GRID_GEMM[2]} GEMM with seeded random zeros in each operand.
*vs dense systolic* is the dense systolic array's cycles over the design's; *vs own dense*,
the design's dense machine over its sparse one (*compute*: without memory stalls); *stalls*: the
share of the cycles the array waits for DRAM or for a buffer's ports; the *bound* is
the largest speedup the MAC count and the DRAM bytes allow.

{provenance(cnn, grid)}

## ResNet-18 inference

{md_table(cnn, cols, fmt)}

![cnn]({figs['cnn'].name})

{' '.join(wins)} {gap_text} {stall_text}

## Each operand's sparsity alone

{' '.join(grid_lines)}

Speedup over each design's own dense machine on the {GRID_GEMM[0]}x{GRID_GEMM[1]}x{GRID_GEMM[2]} GEMM, total
(compute only in brackets), by A and B density:

{md_table(pivot, gcols, gfmt)}

![grid]({figs['grid'].name})

The numbers are in `cnn.csv` and `density_grid.csv`; each architecture's own page is under
`docs/architectures/`.
"""


def run(out: Path, traces: Path, quick: bool) -> Path:
    data = compute(traces, quick)
    figs = plot(data, out)
    return write_report(out, write(data, figs), {"cnn.csv": data.cnn, "density_grid.csv": data.grid})


STUDIES.add("architectures", Study("architectures", "every array kind on the same sparse workloads, equal multipliers",
                                   run))
