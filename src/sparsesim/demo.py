"""``sparsesim demo``: the built-in demonstration, in a fresh run directory.

1. Dense dataflows: ResNet-50's layer list (224x224, batch 1) on ``edge32`` and ``dc128``
   with os, ws, is and best: cycles, utilization, DRAM traffic and energy per layer.
2. The headline comparison on real tensors: a ResNet-18 training step captured from PyTorch
   (trained with 2:8 bidirectional N:M pruning) replayed dense, with N:M on the ``sat``
   preset and with zero-skipping; a video CNN's frames replayed dense and with delta encoding.

Writes ``results.parquet``, ``headline.csv``, ``summary.md`` and PNG figures; returns the
summary text for the CLI to print. Traces go to ``<run>/traces`` and are reused on rerun.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from pathlib import Path

import pandas as pd

from sparsesim.dataflows import display_order
from sparsesim.studies.common import phase_totals, run_workload, trace_for
from sparsesim.core.errors import InputError
from sparsesim.workloads.gemm import Phase
from sparsesim.workloads.networks import NETWORKS
from sparsesim.workloads.ops import Workload
from sparsesim import plots
from sparsesim.workloads.trace import load_trace

log = logging.getLogger(__name__)

ZS = [{"kind": "zero_skip", "target": "both", "action": "skipping"}]
DECOUPLED = ("array.lanes=decoupled", "array.sync_window_steps=16")
HEADLINE = (
    # (workload, trace key, preset, --set overrides, sparsity, label)
    ("resnet18 training step", "train", "sat", (), None, "dense"),
    ("resnet18 training step", "train", "sat", (), [{"kind": "nm", "n": 2, "m": 8}], "N:M 2:8 (BDWP, SAT)"),
    ("resnet18 training step", "train", "sat", (), ZS, "zero-skip both, lockstep array"),
    ("resnet18 training step", "train", "sat", DECOUPLED, ZS, "zero-skip both, decoupled lanes (w=16)"),
    ("video_cnn inference", "video", "edge32", (), None, "dense"),
    ("video_cnn inference", "video", "edge32", (), [{"kind": "delta", "threshold": 0.0}], "delta θ=0 (exact)"),
    ("video_cnn inference", "video", "edge32", (), [{"kind": "delta", "threshold": 0.05}], "delta θ=0.05"),
)


def _dense_dataflows(out: Path) -> tuple[pd.DataFrame, str]:
    modes = (*display_order("systolic"), "best")  # the presets' own kind
    log.info("demo 1/3: dense dataflows, ResNet-50 layers on edge32 and dc128 with %s and best",
             ", ".join(modes[:-1]))
    ops = tuple(NETWORKS.get("resnet50")(1))
    wl = Workload("resnet50", ops, (Phase.FWD,))
    frames = [run_workload(wl, preset, dataflow=df) for preset in ("edge32", "dc128") for df in modes]
    for f, df in zip(frames, modes * 2):
        f["dataflow_mode"] = df
    data = pd.concat(frames, ignore_index=True)
    table = data.groupby(["accel", "dataflow_mode"], sort=False).agg(
        cycles=("cycles", "sum"), stall=("stall_cycles", "sum"), macs=("macs_dense", "sum"),
        dram_mib=("dram_bytes", "sum"), energy_uj=("energy_pj", "sum"), pes=("cfg.array.rows", "first"))
    table["dram_mib"] /= 2**20
    table["energy_uj"] /= 1e6
    table["utilization"] = table["macs"] / (table["cycles"] * table["pes"] ** 2)
    for preset in ("edge32", "dc128"):
        sub = data[(data["accel"] == preset) & (data["dataflow_mode"] != "best")]
        plots.plot_cycles_by_layer(sub, out / f"resnet50_{preset}_cycles_by_layer.png",
                                   title=f"ResNet-50 on {preset}: cycles per layer and dataflow")
    lines = ["| preset | dataflow | cycles | stall cycles | utilization | DRAM (MiB) | energy (µJ) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for (preset, df), r in table.iterrows():
        lines.append(f"| {preset} | {df} | {int(r['cycles']):,} | {int(r['stall']):,} | {r['utilization']:.1%} | "
                     f"{r['dram_mib']:.1f} | {r['energy_uj']:,.0f} |")
    return data, "\n".join(lines)


def _headline(out: Path) -> tuple[pd.DataFrame, str]:
    traces = out / "traces"
    log.info("demo 2/3: capturing a ResNet-18 training step (2:8 BDWP) and video CNN frames into %s "
             "(reused when present)", traces)
    paths = {"train": trace_for("resnet18", traces, mode="train", batch=4, nm="2:8", warmup_steps=10),
             "video": trace_for("video_cnn", traces, mode="infer", batch=1, warmup_steps=10)}
    frames = []
    log.info("demo 3/3: replaying the traces in %d configurations", len(HEADLINE))
    for workload, key, preset, sets, sparsity, label in HEADLINE:
        f = run_workload(load_trace(paths[key]).workload(), preset, sets=sets, sparsity=sparsity)
        f["workload"], f["preset"], f["config"] = workload, preset, label
        frames.append(f)
    data = pd.concat(frames, ignore_index=True)
    head = phase_totals(data, ["workload", "preset", "config"])
    errors = data.groupby(["workload", "preset", "config"], sort=False)["delta_err_max"].max()
    head["max_output_error"] = errors.to_numpy()
    head.to_csv(out / "headline.csv", index=False)
    plots.plot_speedup_bars(head, out / "headline_speedup.png", x="workload", group="config",
                            title="Headline: speedup over dense on the same hardware (black tick: bound)")
    lines = ["| workload | preset | configuration | cycles | speedup | bound | work ratio | energy saved | max output error |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for _, r in head.iterrows():
        err = "" if pd.isna(r["max_output_error"]) else f"{r['max_output_error']:.2e}"
        lines.append(f"| {r['workload']} | {r['preset']} | {r['config']} | {r['cycles']:,} | {r['speedup']:.2f}x | "
                     f"{r['bound_speedup']:.2f}x | {r['work_ratio']:.2f}x | {r['energy_saving']:.1%} | {err} |")
    return data, "\n".join(lines)


def run_demo(out: Path | None) -> str:
    """Run the demonstration into ``out`` (default ``runs/demo-<time>``); return the summary."""
    out = out or Path("runs") / f"demo-{datetime.now():%Y%m%d-%H%M%S}"
    if out.exists() and any(p.name != "traces" for p in out.iterdir()):
        raise InputError(f"--out: {out} already holds a run; choose a new directory")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    dense, dense_md = _dense_dataflows(out)
    parts = [f"# sparsesim demo ({out})", "", "## 1. Dense dataflows: ResNet-50 layer list, batch 1 (fwd)", "",
             dense_md, "", "Figures: `resnet50_edge32_cycles_by_layer.png`, `resnet50_dc128_cycles_by_layer.png`."]
    try:
        import torch  # noqa: F401
    except ImportError:
        torch = None
    if torch is None:
        parts += ["", "## 2. Headline on real tensors: skipped (needs torch: pip install 'sparsesim[capture]')"]
        frames = [dense]
    else:
        sparse, head_md = _headline(out)
        parts += ["", "## 2. Headline: real PyTorch tensors, dense vs N:M vs zero-skip vs delta", "", head_md, "",
                  "ResNet-18 (CIFAR-size input, batch 4) trained with 2:8 bidirectional N:M pruning; one training "
                  "step captured and replayed on the `sat` preset (`--dataflow best`). The video CNN's frames are "
                  "replayed on `edge32`. Figure: `headline_speedup.png`."]
        frames = [dense, sparse]
    pd.concat(frames, ignore_index=True).to_parquet(out / "results.parquet", index=False)
    parts += ["", f"Results table: `results.parquet`. Took {time.perf_counter() - t0:.0f} s."]
    text = "\n".join(parts) + "\n"
    (out / "summary.md").write_text(text)
    return text
