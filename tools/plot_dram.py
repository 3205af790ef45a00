"""Draw the banked DRAM model's bandwidth and latency against the closed forms of each standard.

Run: ``python tools/plot_dram.py [OUTDIR]`` (default ``docs/``). Writes ``memory_bandwidth.png``
(sequential, strided and random streams, flooded, against the peak, the refresh ceiling, the
row-miss rate and each stride's own bound) and ``memory_latency.png`` (median latency against
offered load for sequential, row-stride and random streams, against CL + tBL and tRP + tRCD +
CL + tBL), and prints the numbers docs/memory.md quotes. The points come from
:mod:`sparsesim.hardware.memory.streams`, which tests/hardware/test_dram_streams.py checks
against the same limits. A script and not a ``sparsesim validate`` subcommand: it draws curated
docs figures from the model alone (no config, no run), while ``validate`` runs checks that exit
non-zero on disagreement; the checks themselves are the test.
"""

from __future__ import annotations

import sys
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sparsesim.hardware.memory import memory_model
from sparsesim.hardware.memory.streams import LOADS, standard_figures
from sparsesim.hardware.presets import load_accel

STANDARDS = ("DDR4_3200", "LPDDR5_6400", "HBM2E", "HBM3")
KIND_COLOURS = {"sequential": "#1f77b4", "strided": "#2ca02c", "random": "#d62728"}


def _figures():
    for name in STANDARDS:
        mem = memory_model(load_accel("edge32", ["dram.model=banked", f"dram.standard={name}"]))
        yield mem, standard_figures(mem, name)


def _grid() -> tuple[Figure, list]:
    fig = Figure(figsize=(12, 8.5), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, list(fig.subplots(2, 2).flat)


def main(outdir: str = "docs") -> None:
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    data = list(_figures())
    fig, axes = _grid()
    for ax, (mem, f) in zip(axes, data):
        lim = f.limits
        seq, rnd, strided = f.bandwidth[0], f.bandwidth[1], f.bandwidth[2:]
        xs = [p.stride_bytes for p in strided]
        ax.plot(xs, [p.bandwidth_gb_s for p in strided], "o-", color=KIND_COLOURS["strided"],
                label="strided, measured")
        ax.plot(xs, [p.bound_gb_s for p in strided], "--", color=KIND_COLOURS["strided"], alpha=0.6,
                label="stride's closed-form bound")
        ax.plot([xs[0]], [seq.bandwidth_gb_s], "s", ms=9, mfc="none", color=KIND_COLOURS["sequential"],
                label="sequential, measured")
        ax.plot([xs[-1] * 2], [rnd.bandwidth_gb_s], "D", color=KIND_COLOURS["random"], label="random bursts, measured")
        ax.axhline(lim.peak_gb_s, color="k", lw=1, label=f"peak {lim.peak_gb_s:.1f}")
        ax.axhline(lim.refresh_ceiling_gb_s, color="k", ls=":", lw=1,
                   label=f"refresh ceiling {lim.refresh_ceiling_gb_s:.1f}")
        ax.axhline(lim.row_miss_gb_s, color=KIND_COLOURS["random"], ls="-.", lw=1,
                   label=f"row-miss rate {lim.row_miss_gb_s:.1f}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("stride (bytes); random at the right")
        ax.set_ylabel("GB/s")
        ax.set_title(f"{f.name}: {mem.std.device_burst_bytes} B bursts")
        ax.legend(fontsize=7, loc="lower left")
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle("banked DRAM bandwidth (flooded reads, whole refresh intervals) against the closed forms")
    fig.savefig(out / "memory_bandwidth.png", dpi=110)

    fig, axes = _grid()
    for ax, (mem, f) in zip(axes, data):
        lim = f.limits
        for kind, points in f.latency.items():
            label = kind if kind != "strided" else "row stride (each read a new row)"
            ax.plot([p.bandwidth_gb_s for p in points], [p.median_latency_ns for p in points], "o-",
                    color=KIND_COLOURS[kind], label=f"{label}, median")
            ax.plot([p.bandwidth_gb_s for p in points], [p.mean_latency_ns for p in points], "x:",
                    color=KIND_COLOURS[kind], alpha=0.6, label=f"{label}, mean")
        ax.axhline(lim.hit_ns, color="k", lw=1, label=f"hit CL + tBL = {lim.hit_ns:.2f} ns")
        ax.axhline(lim.miss_ns, color="k", ls="--", lw=1, label=f"miss tRP + tRCD + CL + tBL = {lim.miss_ns:.2f} ns")
        ax.axhline(lim.closed_ns, color="k", ls=":", lw=1,
                   label=f"closed bank tRCD + CL + tBL = {lim.closed_ns:.2f} ns")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"achieved GB/s (offered {', '.join(f'{q:g}' for q in LOADS)} of each flood)")
        ax.set_ylabel("latency, ns")
        ax.set_title(f.name)
        ax.legend(fontsize=7, loc="upper left")
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle("banked DRAM latency against offered load, and the closed-form hit and miss latencies")
    fig.savefig(out / "memory_latency.png", dpi=110)

    print("| standard | peak | refresh ceiling | sequential | row-miss rate | random | row stride | row stride bound |"
          " hit ns (formula) | miss ns (formula) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for mem, f in data:
        lim, (seq, rnd) = f.limits, f.bandwidth[:2]
        row = f.latency["strided"][0]
        flood_row = next(p for p in f.bandwidth[2:] if p.stride_bytes == row.stride_bytes)
        print(f"| {f.name} | {lim.peak_gb_s:.1f} | {lim.refresh_ceiling_gb_s:.1f} | {seq.bandwidth_gb_s:.1f} | "
              f"{lim.row_miss_gb_s:.1f} | {rnd.bandwidth_gb_s:.1f} | {flood_row.bandwidth_gb_s:.2f} | "
              f"{flood_row.bound_gb_s:.2f} | {f.unloaded_ns[1]:.2f} ({lim.hit_ns:.2f}) | "
              f"{f.unloaded_ns[2]:.2f} ({lim.miss_ns:.2f}) |")
    print()
    print("| standard | stream | " + " | ".join(f"{q:g} load: GB/s, median ns, mean ns" for q in LOADS) + " |")
    for _, f in data:
        for kind, points in f.latency.items():
            print(f"| {f.name} | {kind} | " + " | ".join(
                f"{p.bandwidth_gb_s:.1f}, {p.median_latency_ns:.1f}, {p.mean_latency_ns:.1f}" for p in points) + " |")


if __name__ == "__main__":
    main(*sys.argv[1:])
