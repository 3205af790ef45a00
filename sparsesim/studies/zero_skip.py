"""Case study: zero-skipping MACs on a ReLU CNN, systolic dataflows vs decoupled lanes.

The same captured ResNet-18 trace (ReLU activations, ReLU-masked gradients) is replayed with
gating and with skipping on every dataflow, on the systolic array (all PEs of a fold in
lockstep) and on the decoupled-lane array at several synchronization windows. The gap
between the ideal (dense MACs / effectual MACs) and the achieved speedup is the cost of
lockstep: a step is skipped only when the whole fold's slice is zero.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sparsesim import plots
from sparsesim.studies.common import STUDIES, Study, md_table, phase_totals, run_trace, trace_for
from workloads.gemm import Phase

WINDOWS = (1, 4, 16, 64, 256)


def _zs(target: str, action: str) -> list[dict]:
    return [{"kind": "zero_skip", "target": target, "action": action}]


def run(out: Path, traces: Path, quick: bool) -> Path:
    batch = 4 if quick else 8
    trace = trace_for("resnet18", traces, mode="train", batch=batch)
    settings = {"inference": ((Phase.FWD,), "input"), "training": (None, "both")}
    runs = []
    for setting, (phases, target) in settings.items():
        for dataflow in ("os", "ws", "is"):
            for lanes, windows in (("systolic", (1,)), ("decoupled", WINDOWS)):
                for window in windows:
                    sets = (f"array.lanes={lanes}", f"array.sync_window_steps={window}")
                    f = run_trace(trace, "edge32", sets=sets, sparsity=_zs(target, "skipping"), dataflow=dataflow,
                                  phases=phases, label=f"{lanes}" + (f" w={window}" if lanes == "decoupled" else ""))
                    f["setting"], f["lanes"], f["window"] = setting, lanes, window
                    runs.append(f)
            g = run_trace(trace, "edge32", sparsity=_zs(target, "gating"), dataflow=dataflow, phases=phases,
                          label="gating")
            g["setting"], g["lanes"], g["window"] = setting, "systolic", 0
            runs.append(g)
    df = pd.concat(runs, ignore_index=True)
    summary = phase_totals(df, ["setting", "dataflow", "config", "lanes", "window"])
    summary.to_csv(out / "summary.csv", index=False)

    skip = summary[summary["config"] != "gating"].copy()
    skip["window_label"] = skip.apply(lambda r: "lockstep" if r["lanes"] == "systolic" else f"{r['window']}", axis=1)
    figs = {}
    dec = skip[skip["lanes"] == "decoupled"]
    figs["window"] = plots.plot_lines(dec, out / "speedup_vs_window.png", x="window", y="speedup", series="dataflow",
                                      facet="setting", ideal="ideal_speedup", reference=1.0,
                                      title="Decoupled lanes: speedup vs synchronization window (dashed: ideal)",
                                      xlabel="sync window (streamed steps)", ylabel="speedup over dense (x)")
    inf = df[(df["setting"] == "inference") & (df["config"] == "systolic") & (df["dataflow"] == "ws")]
    figs["layers"] = plots.plot_speedup_by_layer(inf, out / "layers_ws_inference.png",
                                                 title="ResNet-18 inference, ws, lockstep skipping: per layer")
    gate = df[(df["config"] == "gating") & (df["setting"] == "inference") & (df["dataflow"] == "ws")]
    lock = df[(df["config"] == "systolic") & (df["setting"] == "inference") & (df["dataflow"] == "ws")]
    both = pd.concat([gate.assign(config="gating"), lock.assign(config="skipping (lockstep)")])
    energy = both.groupby("config", sort=False)[[c for c in df.columns if c.startswith("energy_pj.")]].sum()
    figs["energy"] = plots.plot_energy_breakdown(energy.reset_index(), out / "energy_gating_vs_skipping.png",
                                                 title="ResNet-18 inference on ws: energy, gating vs skipping",
                                                 by="config", energy_table=df["energy_table"].iloc[0])

    table = summary.copy()
    table["design"] = table.apply(
        lambda r: "gating" if r["config"] == "gating" else
        ("systolic (lockstep)" if r["lanes"] == "systolic" else f"decoupled, window {r['window']}"), axis=1)
    cols = {"setting": "setting", "dataflow": "dataflow", "design": "design", "speedup": "speedup",
            "compute_speedup": "compute-only", "ideal_speedup": "ideal", "energy_saving": "energy saved"}
    fmt = {"speedup": ".2f", "compute_speedup": ".2f", "ideal_speedup": ".2f", "energy_saving": ".1%"}
    act = df[(df["setting"] == "inference")]["act_zero_fraction"].dropna().mean()
    best = skip.loc[skip.groupby("setting")["speedup"].idxmax()]
    text = f"""# Zero-skipping on a ReLU CNN: systolic dataflows vs decoupled lanes

Regenerate: `sparsesim study zero-skip --out reports/zero-skip`.

**Workload.** ResNet-18 from the zoo, trained briefly on its synthetic task, one training step
captured at batch {batch}. Inference replays the fwd phase and skips zero *activations*;
training replays all three phases and skips zeros of *both* operands (ReLU activations in
fwd and bwd_weight, ReLU-masked output gradients in bwd_data and bwd_weight; weights are
dense). On average {act:.0%} of the input activations of a layer are zero.

**Hardware.** `edge32` (32x32 int8). *Gating* keeps every cycle and clock-gates the multiply
(Eyeriss v1). *Skipping* on the systolic array removes a streamed step only when every PE of
the fold can skip it (os: the fold's 32 rows of A or 32 columns of B are zero at that k; ws:
the 32 activations entering the rows are all zero; is: likewise for B). The *decoupled*
array gives each PE row its own operand queue (Cnvlutin/SparTen-like); rows meet every
*window* streamed steps, so each window costs its busiest row.

## Achieved vs ideal

{md_table(table, cols, fmt)}

![window]({figs['window'].name})

**Why the systolic array gains so little.** A ReLU zero is a property of one element; a
lockstep step needs 32 of them at once. With activations zero independently at rate p, a step
is free with probability about p^32, which is nothing for p around one half. The zeros that do
line up are structured: whole channels that a ReLU shuts off, and the padding of the first
rows, which is why ws (its 32 lanes are 32 input channels of the same pixel) gains more than
os. Decoupled lanes recover most of the ideal as the window grows, because load imbalance
between rows averages out over a long window: the best design here reaches
{', '.join(f"{r['speedup']:.2f}x ({r['setting']}, {r['dataflow']}, window {r['window']})" for _, r in best.iterrows())}.
Such queues cost area and, on a real array, a crossbar to keep the rows' partial sums apart,
which this model does not charge.

**Gating** never changes cycles (by construction) and saves the multiply energy of the
ineffectual MACs; with int8 MACs at 45 nm the MAC is a small share of the total, so the saving
is a few percent, dominated by SRAM and DRAM.

![energy]({figs['energy'].name})

![layers]({figs['layers'].name})

**Compared with published accelerators.** Cnvlutin (Albericio et al., ISCA 2016) reports
about 1.4x on average for skipping zero activations in CNN inference with per-lane
decoupling; this replay's decoupled design at a long window is in that range, while the
lockstep systolic array, which no zero-skipping paper proposes, stays near 1x.
"""
    report = out / "README.md"
    report.write_text(text)
    return report


STUDIES.add("zero-skip", Study("zero-skip", "zero-skipping on a ReLU CNN: systolic vs decoupled lanes", run))
