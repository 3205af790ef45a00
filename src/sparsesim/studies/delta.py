"""Case study: delta (temporal) sparsity on a video CNN and a GRU as the threshold sweeps.

Sequence traces (a CNN over synthetic video whose frames share a static background, and a
GRU unrolled over time) are replayed with delta encoding at each threshold. Every row
reports the speedup over dense, the energy of the encoder and of the reference/accumulator
state, and the output error against the dense layer, so a user can choose the threshold.

Three jobs, one function each: :func:`compute` runs the replays and builds the table,
:func:`plot` draws the figures, :func:`write` states what the table shows; every claim in the
text is computed from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sparsesim import plots
from sparsesim.hardware.presets import load_accel
from sparsesim.studies.common import (STUDIES, Study, md_table, phase_totals, provenance, run_trace, span, trace_for,
                                      trend, write_report)
from sparsesim.workloads.gemm import Phase

THRESHOLDS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
MODELS = ("video_cnn", "gru")
PRESET = "edge32"


@dataclass(frozen=True, slots=True)
class Data:
    """What the study measured."""

    rows: pd.DataFrame  # every result row
    summary: pd.DataFrame  # per (model, threshold)
    batch: int


def compute(traces: Path, quick: bool) -> Data:
    """Replay both sequence traces at every threshold, with the weight rows of unsent deltas
    skipped (the default) and, for comparison, with MAC cycles skipped only, and tabulate."""
    runs, macs_only = [], []
    batch = 1 if quick else 2
    elem = load_accel(PRESET).array.element_bytes
    for model in MODELS:
        trace = trace_for(model, traces, mode="infer", batch=batch)
        for theta in THRESHOLDS:
            for fetch, into in ((True, runs), (False, macs_only)):
                f = run_trace(trace, PRESET, sparsity=[{"kind": "delta", "threshold": theta, "weight_fetch": fetch}],
                              dataflow="best", phases=(Phase.FWD,), label=f"{theta:g}")
                f["model"], f["threshold"] = model, theta
                into.append(f)
    df = pd.concat(runs, ignore_index=True)
    summary = phase_totals(df, ["model", "threshold"])
    # weight bytes per pass without skipping: every delta layer's B is its weight, K x N per group
    df["weight_bytes"] = df["K"] * df["N"] * df["count"] * elem
    weights = df.groupby(["model", "threshold"], sort=False)[["weight_bytes", "weight_bytes_skipped"]].sum()
    weights["weight_skipped"] = weights["weight_bytes_skipped"] / weights["weight_bytes"]
    summary = summary.merge(weights[["weight_skipped"]].reset_index(), on=["model", "threshold"])
    old = phase_totals(pd.concat(macs_only, ignore_index=True), ["model", "threshold"])
    summary = summary.merge(old[["model", "threshold", "speedup", "compute_speedup", "dram_bytes"]].rename(
        columns={"speedup": "speedup_macs_only", "compute_speedup": "compute_speedup_macs_only",
                 "dram_bytes": "dram_bytes_macs_only"}), on=["model", "threshold"])
    extra = df.groupby(["model", "threshold"], sort=False).agg(
        fired=("delta_fired_fraction", "mean"), err_max=("delta_err_max", "max"), err_mean=("delta_err_mean", "mean"),
        state_pj=("energy_pj.delta_state", "sum"), encode_pj=("energy_pj.delta_encode", "sum"),
        state_on_chip=("delta_state_on_chip", "all")).reset_index()
    summary = summary.merge(extra, on=["model", "threshold"])
    summary["state_share"] = (summary["state_pj"] + summary["encode_pj"]) / summary["energy_pj"]
    return Data(df, summary, batch)


def plot(data: Data, out: Path) -> dict[str, Path]:
    """The report's figures."""
    summary, df = data.summary, data.rows
    long = pd.concat([summary.assign(measure=name, speedup=summary[col]) for name, col in
                      (("achieved", "speedup"), ("MAC cycles skipped only", "speedup_macs_only"),
                       ("compute only", "compute_speedup"), ("bound", "bound_speedup"))])
    long["θ"] = long["threshold"].map(lambda t: f"{t:g}")
    figs = {
        "speedup": plots.plot_lines(long, out / "speedup_vs_threshold.png", x="θ", y="speedup", series="model",
                                    style="measure", x_order=[f"{t:g}" for t in THRESHOLDS], logy=True,
                                    reference=1.0, title="Delta sparsity: speedup over dense vs threshold",
                                    xlabel="threshold θ (activation units)", ylabel="speedup over dense (x, log)"),
        "error": plots.plot_lines(summary[summary["threshold"] > 0], out / "error_vs_threshold.png", x="threshold",
                                  y="err_mean", series="model", logy=True,
                                  title="Output error against the dense layer (mean |error|)",
                                  xlabel="threshold θ (activation units)", ylabel="mean absolute output error"),
    }
    energy = df[df["threshold"].isin([0.0, 0.05, 0.2])]
    energy = energy.groupby(["model", "threshold"], sort=False)[
        [c for c in df.columns if c.startswith("energy_pj.")]].sum().reset_index()
    figs["energy"] = plots.plot_energy_breakdown(energy, out / "energy_breakdown.png",
                                                 title="Delta sparsity: energy incl. encoder and state",
                                                 by=["model", "threshold"], energy_table=df["energy_table"].iloc[0])
    return figs


def _energy_cost_text(rows, model: str) -> str:
    """Where delta encoding costs ``model`` energy, and the reason the table shows: its state
    kept in DRAM (``state_on_chip`` false), or too few unchanged inputs to skip."""
    where = (f"{model} at θ = {rows['threshold'].min():g} to {rows['threshold'].max():g} "
             f"({span(rows['energy_saving'], '.1%', '')} energy saved)")
    if not rows["state_on_chip"].all():
        return f"{where}, whose reference and accumulator state does not fit on chip and crosses DRAM every step"
    return f"{where}, where {span(rows['fired'], '.0%', '')} of the inputs fire, so little is skipped"


def _fetch_text(s: pd.DataFrame, model: str) -> str:
    """What skipping the weight rows of unsent deltas did for ``model`` at the largest θ,
    against skipping MAC cycles only, and why, from its row: fewer bytes where the weights'
    traffic bounded it, fewer folds where the dead rows left the array's work."""
    hi = s.sort_values("threshold").iloc[-1]
    gain = hi["speedup"] / hi["speedup_macs_only"]
    bytes_cut = 1 - hi["dram_bytes"] / hi["dram_bytes_macs_only"]
    compute_gain = hi["compute_speedup"] / hi["compute_speedup_macs_only"]
    head = (f"`{model}` at θ = {hi['threshold']:g}: {hi['fired']:.0%} of the deltas fire; skipping MAC cycles "
            f"only gives {hi['speedup_macs_only']:.2f}x, skipping the weight rows of unsent deltas too gives "
            f"{hi['speedup']:.2f}x")
    bytes_text = (f"{hi['weight_skipped']:.0%} of the weight bytes are not fetched and DRAM traffic falls "
                  f"{bytes_cut:.0%} ({hi['dram_bytes_macs_only'] / 1e6:.2f} MB to {hi['dram_bytes'] / 1e6:.2f} MB)")
    if hi["weight_skipped"] < 0.05:
        return (f"{head}: little changes, as only {hi['weight_skipped']:.0%} of the weight bytes are behind "
                "inputs that no sequence of the batch sent.")
    if gain <= 1.01:
        return f"{head}: {bytes_text}, but its cycles barely move, so the bytes saved were not what bounded it."
    why = []
    if bytes_cut >= 0.1:
        why.append(f"memory stalls are {hi['stall_cycles'] / hi['cycles']:.0%} of its cycles, so bytes not "
                   "fetched are cycles saved")
    if compute_gain > 1.01:
        why.append(f"the dead rows also leave the array's folds (compute time {compute_gain:.2f}x shorter than "
                   "with MAC cycles skipped only)")
    if bytes_cut < 0.1:
        why.insert(0, "the weights are a small part of its traffic")
    return f"{head}: {bytes_text}; " + ", and ".join(why) + "."


def _model_text(s: pd.DataFrame, model: str) -> str:
    """What the table says about one model, sentence by sentence from its rows."""
    s = s.sort_values("threshold")
    lo, hi = s.iloc[0], s.iloc[-1]
    text = (f"`{model}`: at θ = {lo['threshold']:g}, {lo['fired']:.0%} of the input elements fire and the "
            f"compute time drops {lo['compute_speedup']:.2f}x; at θ = {hi['threshold']:g}, {hi['fired']:.0%} fire "
            f"and it drops {hi['compute_speedup']:.2f}x. The achieved speedup goes from {lo['speedup']:.2f}x to "
            f"{hi['speedup']:.2f}x ({trend(s['speedup'], 0.005)} with θ), its bound from "
            f"{lo['bound_speedup']:.2f}x to {hi['bound_speedup']:.2f}x.")
    stalls = s["stall_cycles"] / s["cycles"]
    text += (f" Memory stalls are {span(stalls, '.0%', '')} of its cycles, and the achieved speedup is "
             f"{span(s['speedup'] / s['compute_speedup'], '.0%', '')} of the compute-only one.")
    return text


def write(data: Data, figs: dict[str, Path]) -> str:
    """The report text: every number and every comparison in it comes from ``data``."""
    summary = data.summary
    cols = {"model": "model", "threshold": "θ", "fired": "fired", "speedup": "speedup",
            "speedup_macs_only": "MACs only", "weight_skipped": "weights skipped", "bound_speedup": "bound", "compute_speedup": "compute-only", "compute_bound_speedup": "compute bound",
            "work_ratio": "work ratio", "energy_saving": "energy saved", "state_share": "state+encoder share",
            "err_mean": "mean |err|", "err_max": "max |err|"}
    fmt = {"fired": ".1%", "speedup": ".2f", "speedup_macs_only": ".2f", "weight_skipped": ".1%", "bound_speedup": ".2f", "compute_speedup": ".2f",
           "compute_bound_speedup": ".2f", "work_ratio": ".2f", "energy_saving": ".1%", "state_share": ".1%",
           "err_mean": ".2e", "err_max": ".2e"}
    exact = summary[summary["threshold"] == 0.0]
    exact_text = ("At θ = 0 the output error is exactly zero for every model (the accumulated deltas equal "
                  "the dense outputs), and every element that does not change is already skipped."
                  if (exact["err_max"] == 0.0).all() else
                  f"At θ = 0 the largest output error is {exact['err_max'].max():.2e}.")
    per_model = "\n\n".join(_model_text(summary[summary["model"] == m], m) for m in MODELS)

    state = summary["state_share"]
    costs = summary[summary["energy_saving"] < 0]
    energy_text = (f"The encoder and the reference/accumulator state take {span(state, '.1%', '')} of the energy. "
                   + (f"Delta encoding costs energy overall in {len(costs)} of {len(summary)} settings: "
                      + "; ".join(_energy_cost_text(costs[costs["model"] == m], m)
                                  for m in MODELS if (costs["model"] == m).any()) + "."
                      if len(costs) else
                      f"It saves energy at every θ ({span(summary['energy_saving'], '.1%', '')})."))
    err_trends = {m: trend(summary[summary["model"] == m].sort_values("threshold")["err_mean"]) for m in MODELS}
    words = set(err_trends.values())
    err_text = ("The mean output error " + (f"{words.pop()} with θ for every model" if len(words) == 1 else
                                            "; ".join(f"{w} with θ for `{m}`" for m, w in err_trends.items()))
                + ": choose the largest θ whose error the application tolerates.")
    beaten = summary[summary["speedup"] > summary["bound_speedup"] + 1e-9]
    bound_text = ("No achieved speedup passes its bound." if beaten.empty else
                  f"{len(beaten)} rows pass their bound: a defect of the simulator.")
    fetch_text = " ".join(_fetch_text(summary[summary["model"] == m], m) for m in MODELS)
    gap = (f"The work ratio (dense MACs / effectual MACs: {span(summary['work_ratio'])}) is how much less "
           "work there is, not a limit: the fold structure and memory decide what a zero can save.")

    return f"""# Delta (temporal) sparsity: video CNN and GRU

Regenerate: `sparsesim study delta --out reports/delta`.

{provenance(data.rows)}

**Workloads.** `video_cnn`: three convs applied per frame to synthetic video (moving objects
over a static background, so consecutive frames are mostly the same). `gru`: a GRU cell
unrolled over its time steps with Linear layers. Both trained briefly on their synthetic
tasks, then captured in inference (batch {data.batch}) with the time axis kept.

**Mechanism.** Per layer, `d = x_t - x_ref` is sent where `d != 0` and `|d| >= θ`, `x_ref`
follows only where it fired, and the output accumulates `W . d` (Delta Networks, Neil et al.
ICML 2017). The sparse GEMM on `d` is zero-skipping with the dataflow's lockstep rules
(`--dataflow best` on `{PRESET}`). Charged per step: a subtract and a compare per input element,
the reference read and written, the accumulator read-modify-written; on chip when they fit in
the output buffer's free half, else in DRAM (`state_on_chip` in `summary.csv`). The output
error is that of the accumulated deltas actually sent against the dense layer.

## Speedup, state overhead and output error

*bound*: dense cycles over max(effectual MACs / PEs, DRAM bytes / bandwidth), which the
achieved speedup cannot pass; *compute bound*: the same for compute-only cycles (MACs alone).

{md_table(summary, cols, fmt)}

![speedup]({figs['speedup'].name})

![error]({figs['error'].name})

![energy]({figs['energy'].name})

**Reading it.** {exact_text} {bound_text} {gap}

{per_model}

*MACs only*: the same run with `weight_fetch: false`, where an unsent delta saves only its MAC
cycles; *weights skipped*: the share of the weight bytes (one pass per layer and step) not
fetched because every sequence of the batch left that input unsent, as DeltaRNN and
EdgeDRNN skip the weight columns of inputs that did not fire. A systolic step is free only
when the deltas of all lanes of the fold are zero at once.

{fetch_text}

{energy_text} {err_text}
"""


def run(out: Path, traces: Path, quick: bool) -> Path:
    data = compute(traces, quick)
    figs = plot(data, out)
    return write_report(out, write(data, figs), {"summary.csv": data.summary})


STUDIES.add("delta", Study("delta", "delta sparsity on a video CNN and a GRU as the threshold sweeps", run))
