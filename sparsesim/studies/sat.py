"""Case study: SAT-style N:M sparse training (Fang et al., IEEE TCAD 2023) on the ``sat`` preset.

Traces come from models *trained* with bidirectional N:M weight pruning at each ratio (the
capture keeps the forward weights N:M along input features and the backward-data weights N:M
along output features, with dense gradients and dense master weights). Every configuration
replays the same traces on the same hardware, so each number differs from the next by one
mechanism only.

Three jobs, one function each: :func:`compute` runs the replays and builds the tables,
:func:`plot` draws the figures, :func:`write` states what the tables show; every claim in the
text is computed from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sparsesim import plots
from sparsesim.accel.presets import load_accel
from sparsesim.studies.common import STUDIES, Study, md_table, phase_totals, run_trace, span, trace_for, write_report

MODELS = ("resnet18", "vgg16", "transformer")
RATIOS = ("2:4", "2:8", "1:8")
LADDER_RATIO = "2:8"
PUBLISHED_2_8 = 1.75  # SAT + BDWP at 2:8, average training speedup over dense on SAT (paper abstract)

# The ladder from the work ratio to the achieved speedup, one mechanism per rung (2:8).
LADDER = (
    ("+ array fill/drain,\nquantization", ("dram.ideal=true", "training.charge_pregen=false"), "best"),
    ("+ memory", ("training.charge_pregen=false",), "best"),
    ("+ pre-generation\n(= achieved)", (), "best"),
)
ABLATIONS = (
    ("SAT as configured", (), "best"),
    ("no interleave mapping (folds not overlapped)", ("array.fold_overlap=false",), "best"),
    ("no offline scheduling: os for every layer", (), "os"),
    ("no offline scheduling: ws for every layer", (), "ws"),
    ("no pre-generation: prune on the fly from dense weights", ("training.pregen=false",), "best"),
    ("pre-generation serialized after the weight update", ("training.pregen_overlap=false",), "best"),
)


def _nm(ratio: str) -> list[dict]:
    n, m = ratio.split(":")
    return [{"kind": "nm", "n": int(n), "m": int(m)}]


def _nm_slots(K: int, ratio: str) -> int:
    """MAC slots per output of an N:M reduction of length K (short last group included)."""
    n, m = (int(v) for v in ratio.split(":"))
    return (K // m) * n + min(n, K % m)


@dataclass(frozen=True, slots=True)
class Data:
    """What the study measured."""

    rows: pd.DataFrame  # every row of the dense and N:M runs
    step: pd.DataFrame  # per (model, ratio): step totals and per-phase speedups
    ladder: pd.DataFrame
    ablations: pd.DataFrame
    batch: int
    rows_per_fold: int


def compute(traces: Path, quick: bool) -> Data:
    """Replay every model dense and at every ratio, then the ladder and the ablations at 2:8."""
    batch = 4 if quick else 8
    runs = []
    for model in MODELS:
        dense = run_trace(trace_for(model, traces, mode="train", batch=batch), "sat", label="dense")
        dense["model"] = model
        runs.append(dense)
        for ratio in RATIOS:
            trace = trace_for(model, traces, mode="train", batch=batch, nm=ratio)
            frame = run_trace(trace, "sat", sparsity=_nm(ratio), label=ratio)
            frame["model"] = model
            runs.append(frame)
    df = pd.concat(runs, ignore_index=True)
    sparse = df[df["config"] != "dense"]
    step = phase_totals(sparse, ["model", "config"])
    per_phase = phase_totals(sparse, ["model", "config", "phase"])
    wide = per_phase.pivot_table(index=["model", "config"], columns="phase", values="speedup").reset_index()
    step = step.merge(wide, on=["model", "config"])
    pregen = sparse.groupby(["model", "config"], sort=False)["pregen_dram_bytes"].sum().rename("pregen_dram_bytes")
    step = step.merge(pregen.reset_index(), on=["model", "config"])

    n, m = (int(v) for v in LADDER_RATIO.split(":"))
    ladder_rows, ablation_rows = [], []
    for model in MODELS:
        trace = trace_for(model, traces, mode="train", batch=batch, nm=LADDER_RATIO)
        base = step[(step["model"] == model) & (step["config"] == LADDER_RATIO)].iloc[0]
        ladder_rows.append({"model": model, "rung": "work ratio: every\nphase N:M", "speedup": m / n})
        ladder_rows.append({"model": model, "rung": "work ratio: dense\ndW phase", "speedup": base["work_ratio"]})
        for label, sets, dataflow in LADDER:
            f = run_trace(trace, "sat", sets=sets, sparsity=_nm(LADDER_RATIO), dataflow=dataflow, label=label)
            ladder_rows.append({"model": model, "rung": label,
                                "speedup": f["dense_cycles"].sum() / f["cycles"].sum()})
        for label, sets, dataflow in ABLATIONS:
            f = run_trace(trace, "sat", sets=sets, sparsity=_nm(LADDER_RATIO), dataflow=dataflow, label=label)
            d = run_trace(trace, "sat", sets=sets, dataflow=dataflow, label="dense")
            ablation_rows.append({"model": model, "configuration": label,
                                  "sparse_cycles": int(f["cycles"].sum()), "dense_cycles": int(d["cycles"].sum()),
                                  "pregen_exposed_cycles": int(f["pregen_cycles"].fillna(0).sum()),
                                  "nm_select_cycles": int(f["nm_select_cycles"].fillna(0).sum()),
                                  "speedup_vs_dense_sat": base["dense_cycles"] / f["cycles"].sum()})
    return Data(df, step, pd.DataFrame(ladder_rows), pd.DataFrame(ablation_rows), batch,
                load_accel("sat").array.rows)


def plot(data: Data, out: Path) -> dict[str, Path]:
    """The report's figures."""
    df, step = data.rows, data.step
    sparse = df[df["config"] != "dense"]
    figs = {"speedup": plots.plot_speedup_bars(step, out / "speedup_by_model.png", x="model", group="config",
                                               title="SAT: training-step speedup of N:M over dense training")}
    for model in MODELS:
        layers = sparse[(sparse["model"] == model) & (sparse["config"] == LADDER_RATIO)]
        figs[f"layers_{model}"] = plots.plot_speedup_by_layer(
            layers, out / f"layers_{model}.png",
            title=f"{model}: per-layer speedup at {LADDER_RATIO} (achieved vs bound)")
    comps = plots.energy_components(df)
    energy = df.groupby(["model", "config"], sort=False)[[f"energy_pj.{c}" for c in comps]].sum()
    dense_total = energy.xs("dense", level="config").sum(axis=1)
    share = energy.div(dense_total, level="model", axis=0) * 100  # % of the model's dense step
    figs["energy"] = plots.plot_stacked_bars(
        [f"{m} / {c}" for m, c in share.index], comps, share.to_numpy(), out / "energy_breakdown.png",
        title="SAT training step: energy by component, relative to dense training",
        ylabel="energy (% of the dense training step)", legend_title=f"energy table: {df['energy_table'].iloc[0]}")
    figs["ladder"] = plots.plot_speedup_bars(data.ladder, out / "gap_ladder.png", x="rung", group="model",
                                             title=f"From the work ratio to the achieved step speedup at "
                                                   f"{LADDER_RATIO}, one mechanism at a time")
    return figs


def _per_layer_text(data: Data) -> str:
    """Which 2:8 rows N:M leaves dense, and which it prunes without a gain, and why."""
    rows = data.rows[(data.rows["config"] == LADDER_RATIO)]
    R = data.rows_per_fold
    dense_rows = rows[~rows["features_active"].str.contains("nm")]
    kinds = dense_rows.groupby(["kind", "phase"]).size()
    text = ("N:M leaves " + ", ".join(f"{count} {kind} {phase} rows" for (kind, phase), count in kinds.items())
            + " dense (weight-gradient GEMMs by BDWP's design, matmuls because they have no weights). "
            if len(dense_rows) else "N:M acts on every row. ")
    pruned = rows[rows["features_active"].str.contains("nm")]
    flat = pruned[pruned["compute_speedup"] < 1.1]
    if len(flat):
        floor = flat[[_nm_slots(int(k), LADDER_RATIO) < R for k in flat["K"]]]
        examples = "; ".join(f"{r['model']} {r['name']} {r['phase']} (K = {r['K']} -> "
                             f"{_nm_slots(int(r['K']), LADDER_RATIO)} MAC slots, {r['compute_speedup']:.2f}x)"
                             for _, r in flat.head(4).iterrows())
        text += (f"Of the {len(pruned)} pruned rows, {len(flat)} gain less than 1.1x in compute, e.g. {examples}. "
                 f"{len(floor)} of them have a compressed reduction shorter than the array's {R} rows: a fold "
                 f"cannot take fewer than the {R} cycles it needs to drain (os) or preload (ws) the array, so "
                 "the shorter reduction saves little or nothing.")
    else:
        text += f"Every one of the {len(pruned)} pruned rows gains at least 1.1x in compute."
    return text


def _ladder_text(ladder: pd.DataFrame) -> str:
    """The mechanisms ranked by what they cost, averaged over the models."""
    rungs = list(dict.fromkeys(ladder["rung"]))
    cost = {}
    for above, below in zip(rungs, rungs[1:]):
        drop = [float(ladder[(ladder["model"] == m) & (ladder["rung"] == above)]["speedup"].iloc[0]
                      - ladder[(ladder["model"] == m) & (ladder["rung"] == below)]["speedup"].iloc[0])
                for m in MODELS]
        cost[below.replace("\n", " ")] = drop
    why = {
        "work ratio: dense dW phase": "the weight-gradient GEMM stays dense under BDWP",
        "+ array fill/drain, quantization": "a fold still pays the array's fill and drain and edge folds use "
                                            "part of the array; both weigh more once N:M shortens the reduction",
        "+ memory": "sparse phases need the same activations in fewer cycles, so layers near their bandwidth "
                    "bound turn the saving into stalls",
        "+ pre-generation (= achieved)": "the pruning unit selects both compressed copies of every layer after "
                                         "its weight update and competes for DRAM bandwidth; what the following "
                                         "work cannot hide is exposed",
    }
    ranked = sorted(cost.items(), key=lambda kv: -sum(kv[1]) / len(kv[1]))
    lines = []
    for i, (rung, drops) in enumerate(ranked):
        mean = sum(drops) / len(drops)
        lead = "the largest loss, " if i == 0 else ""
        lines.append(f"- **{rung}** ({lead}{mean:.2f} speedup points on average; "
                     + ", ".join(f"{m} {d:.2f}" for m, d in zip(MODELS, drops)) + f"): {why.get(rung, '')}.")
    return "\n".join(lines)


def _ablation_text(ablations: pd.DataFrame) -> str:
    ref = ablations[ablations["configuration"] == ABLATIONS[0][0]].set_index("model")
    lost = []
    for label, _, _ in ABLATIONS[1:]:
        sub = ablations[ablations["configuration"] == label].set_index("model")
        lost.append(((ref["speedup_vs_dense_sat"] - sub["speedup_vs_dense_sat"]).mean(), label))
    lost.sort(reverse=True)
    text = ("Averaged over the models, taking one optimization away costs (speedup points against dense SAT): "
            + "; ".join(f"{label}: {drop:+.2f}".replace("+-", "-") for drop, label in lost)
            + ". A negative cost means the variant is as fast or faster here.")
    fly = ablations[ablations["configuration"] == ABLATIONS[4][0]].set_index("model")
    text += (" Pruning on the fly keeps the pruning unit busy for "
             + ", ".join(f"{m}: {int(fly.loc[m, 'nm_select_cycles']):,}" for m in MODELS)
             + " cycles of selection against the weight stream of the fwd and bwd_data GEMMs; overlapped "
               "pre-generation exposes "
             + ", ".join(f"{m}: {int(ref.loc[m, 'pregen_exposed_cycles']):,}" for m in MODELS)
             + " cycles that no work hides.")
    return text


def write(data: Data, figs: dict[str, Path]) -> str:
    """The report text: every number and every comparison in it comes from ``data``."""
    df, step = data.rows, data.step
    cols = {"model": "model", "config": "N:M", "fwd": "fwd", "bwd_data": "bwd_data", "bwd_weight": "bwd_weight",
            "speedup": "step speedup", "bound_speedup": "bound", "compute_speedup": "compute-only",
            "work_ratio": "work ratio (MACs)", "energy_saving": "energy saved"}
    fmt = {k: ".2f" for k in ("fwd", "bwd_data", "bwd_weight", "speedup", "bound_speedup", "compute_speedup",
                              "work_ratio")}
    fmt["energy_saving"] = ".1%"
    mean_2_8 = step[step["config"] == "2:8"]["speedup"].mean()
    equal = {r: 3 / (2 * int(r.split(":")[0]) / int(r.split(":")[1]) + 1) for r in RATIOS}
    measured = {r: step[step["config"] == r]["work_ratio"] for r in RATIOS}
    beaten = step[step["speedup"] > step["bound_speedup"] + 1e-9]
    low = step[step["energy_saving"] < 0.05]
    energy_note = ("Where the saving is small or negative ("
                   + ", ".join(f"{r['model']} {r['config']}: {r['energy_saving']:.1%}, pre-generation "
                               f"{r['pregen_dram_bytes'] / r['dram_bytes']:.0%} of the DRAM bytes"
                               for _, r in low.iterrows())
                   + "), the pre-generation traffic (reading the dense weights and writing two compressed "
                     "copies after every update: it scales with the weights, not with the batch) and the index "
                     "bits weigh against what the MACs save.") if len(low) else \
        f"Every configuration saves at least 5% ({span(step['energy_saving'], '.1%', '')})."
    capture = f"batch {data.batch}, one training step after brief training on the model's synthetic task"
    ladder = data.ladder
    return f"""# SAT-style N:M sparse training, reproduced

Regenerate: `sparsesim study sat --out reports/sat` (captures its traces into `runs/traces`,
then replays them).

**Hardware.** The `sat` preset (`configs/presets/sat.yaml`): a 32x32 fp16 array at 200 MHz
whose PEs multiplex N of every M activations by the weights' indices, switchable between
output- and weight-stationary dataflows, 2 MiB per operand buffer, 192 B/cycle of DRAM, and a
32-lane pruning unit, shared by all layers, that pre-generates both compressed weight copies
after each layer's weight update. Every assumption about the paper's hardware is written down
in that file with what it changes. Energy uses `{df['energy_table'].iloc[0]}` (45 nm ASIC
numbers): read the energy columns as relative, not as the paper's FPGA power.

**Workloads.** {', '.join(MODELS)} from the zoo ({capture}). For each ratio the model is
trained with bidirectional weight pruning (BDWP) at that ratio, so the traces hold the
activations and gradients of an N:M-trained network, not masks applied afterwards. Dense
training on the same hardware is the baseline (same shapes, so its cycles do not depend on the
data); `--dataflow best` is SAT's offline scheduling (per layer and phase, os or ws).

## Training-step speedup of sparse over dense training on SAT

*bound*: dense cycles over max(effectual MACs / PEs, DRAM bytes / bandwidth) summed over the
layers, which no achieved speedup can pass ({'none does' if beaten.empty else f'{len(beaten)} rows do: a defect'}).
*work ratio*: dense MACs over effectual MACs, how much less work there is (not a limit).

{md_table(step, cols, fmt)}

The weight-gradient GEMM stays dense under BDWP, so with three equal phases the work ratio of
a step would be `3 / (2 N/M + 1)`: {', '.join(f'{v:.2f}x at {r}' for r, v in equal.items())}. Measured from the
real MAC counts it is {'; '.join(f'{span(v)} at {r}' for r, v in measured.items())}. The paper
reports an average of {PUBLISHED_2_8}x at 2:8 over its models; this reproduction gives
**{mean_2_8:.2f}x** on average over {', '.join(MODELS)}, {mean_2_8 / PUBLISHED_2_8 - 1:+.0%} against the
published figure (different models, input sizes and an assumed array and memory).

![speedup]({figs['speedup'].name})

## Per layer

Each bar is one layer and phase at {LADDER_RATIO}; the black tick is its bound. {_per_layer_text(data)}

""" + "\n".join(f"![{m}]({figs[f'layers_{m}'].name})\n" for m in MODELS) + f"""
## Energy

![energy]({figs['energy'].name})

Each bar is relative to the same model's dense training step. N:M removes MACs and weight
bytes of the two pruned phases; the dense weight-gradient phase, activation and partial-sum
traffic and leakage do not shrink, and the pre-generation (`nm_pregen`, plus its DRAM
traffic) is new. The energy saved is {span(step['energy_saving'], '.1%', '')} across the
table. {energy_note} Offline scheduling picks each layer's dataflow for cycles, not energy.

## Where the gap between the work ratio and the achieved speedup goes ({LADDER_RATIO})

Each rung adds one mechanism to the one above it; the drop from rung to rung is that
mechanism's cost.

{md_table(ladder.assign(rung=ladder["rung"].str.replace(chr(10), " ")),
          {'model': 'model', 'rung': 'mechanism', 'speedup': 'step speedup'}, {'speedup': '.2f'})}

![ladder]({figs['ladder'].name})

{_ladder_text(ladder)}

## What each dataflow optimization is worth ({LADDER_RATIO})

{md_table(data.ablations, {'model': 'model', 'configuration': 'configuration', 'sparse_cycles': 'sparse cycles',
                           'dense_cycles': 'dense cycles (same config)',
                           'pregen_exposed_cycles': 'exposed pre-generation',
                           'nm_select_cycles': 'on-the-fly selection',
                           'speedup_vs_dense_sat': 'speedup vs dense SAT'},
          {'speedup_vs_dense_sat': '.2f'})}

{_ablation_text(data.ablations)}

## Assumptions that matter most here

See `configs/presets/sat.yaml` for all of them. The paper's PE, array size, buffers and
bandwidth are not available to us. The pruning unit (32 lanes, M cycles per group) is one
resource: overlapped pre-generation of a layer hides only behind the work that runs between
its weight update and the next use of its copies, and its DRAM traffic competes with the
layer's weight-gradient GEMM. Pruning on the fly selects each weight once per GEMM (a
refetched weight block would be selected again; that is not charged). The weight update itself
(elementwise, identical for dense and sparse training) is not modelled in either.
"""


def run(out: Path, traces: Path, quick: bool) -> Path:
    data = compute(traces, quick)
    figs = plot(data, out)
    return write_report(out, write(data, figs), {"speedup_by_model.csv": data.step, "gap_ladder.csv": data.ladder,
                                                 "ablations.csv": data.ablations})


STUDIES.add("sat", Study("sat", "SAT-style N:M sparse training: speedup, energy, gap to the work ratio", run))
