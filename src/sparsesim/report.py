"""Sweep reports: a self-contained directory with ``report.md``, ``index.html`` and PNG figures.

:func:`write_report` reads a sweep directory (``sweep.json`` and the point files, so a
partial sweep can be reported too), sums each point's rows into one summary row, and draws:
speedup against the sparsity setting (per feature kind) or against the swept axis, the
stacked energy breakdown, utilization, the Pareto front of energy, latency and area, a
roofline view with achieved cycles next to the MAC and DRAM-bandwidth bounds, and the
per-layer cycles of the fastest design. Every report names the energy table it used.

Choice of views (written into the report as well): the x axis is the sparsity setting when
several are swept, else the first swept axis; colours are dataflows; a second axis with at
most four values becomes the line style; every further axis is held at its first value.
Points of a ``random`` axis group are drawn as scatter plots without slicing.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sparsesim.hardware.memory import memory_model_of_record
from sparsesim.simulation.columns import fmt_value
from sparsesim.simulation.columns import is_numeric as _numeric
from sparsesim.simulation.columns import ordered as _ordered
from sparsesim.plots import pretty
from sparsesim.simulation.results import ADDITIVE
from sparsesim.sweeps import SweepDir, collect_results, read_meta
from sparsesim.core.atomic import replace_dir, temp_dir
from sparsesim.core.errors import InputError
from sparsesim.core.outputs import check_output_path
from sparsesim import plots
from sparsesim.hardware.energy import energy_table
from sparsesim.plots import pareto_mask

MAX_FACETS = 6
MAX_BARS = 40
MAX_STYLE_VALUES = 4
MAX_TABLE_ROWS = 20


@dataclass(frozen=True, slots=True)
class Dim:
    """One swept dimension of a report: a label, the summary column and its kind."""

    label: str
    column: str
    kind: str  # grid, zip or random
    values: tuple

    @property
    def short(self) -> str:
        """The first path only (a zip group is named by its first path)."""
        return self.label.split(" (with")[0]


@dataclass(frozen=True, slots=True)
class Section:
    """One section of the report, rendered to Markdown and HTML alike."""

    title: str
    paragraphs: tuple[str, ...] = ()
    figure: str | None = None
    table: tuple[tuple[str, ...], ...] = ()  # header row first
    notes: tuple[str, ...] = field(default=())


# ---------------------------------------------------------------------------------------------
# data


def point_summary(rows, meta: dict):
    """One row per point: additive fields and ``energy_pj.*`` summed over the point's rows,
    ratios recomputed from the sums, constant columns (config, sweep labels, area) kept."""
    additive = [c for c in ADDITIVE if c in rows.columns] + ["bound_cycles"]
    additive += [c for c in rows.columns if c.startswith("energy_pj.")]
    additive = list(dict.fromkeys(additive))
    constant = [c for c in rows.columns if c not in additive and (
        c.startswith(("cfg.", "area_um2", "sweep_")) or c in ("energy_table", "accel", "run_id", "workload"))]
    grouped = rows.groupby("point_id", sort=False)
    summary = grouped[additive].sum().join(grouped[constant].first())
    summary["layers"] = grouped.size()
    summary = summary.reset_index()
    cycles = summary["cycles"].clip(lower=1)
    summary["speedup"] = summary["dense_cycles"] / cycles
    # inf where no MAC is effectual (as a row's work_ratio), not the dense count over 1
    summary["work_ratio"] = (summary["macs_dense"] / summary["macs_effectual"].clip(lower=1)).where(
        summary["macs_effectual"] > 0, float("inf"))
    summary["bound_speedup"] = summary["dense_cycles"] / summary["bound_cycles"].clip(lower=1)
    pes = summary["cfg.array.rows"] * summary["cfg.array.cols"]
    summary["utilization"] = summary["macs_effectual"] / (cycles * pes)
    summary["latency_ms"] = summary["latency_s"] * 1e3
    summary["energy_uj"] = summary["energy_pj"] / 1e6
    summary["area_mm2"] = summary["area_um2"] / 1e6
    summary["edp_uj_ms"] = summary["energy_uj"] * summary["latency_ms"]
    info = pd.DataFrame([{"point_id": p["point_id"], "index": p["index"],
                          "sparsity_kinds": "+".join(p.get("sparsity_kinds", [])) or "dense"}
                         for p in meta["points"]])
    summary = summary.merge(info, on="point_id", how="left").sort_values("index", kind="stable")
    return summary.reset_index(drop=True)


def _column(path: str) -> str:
    return "sweep_sparsity" if path == "sparsity" else f"cfg.{path}"


def sweep_dims(meta: dict, summary) -> list[Dim]:
    """The dimensions that actually vary among the finished points, in spec order."""
    dims = []
    for group in meta.get("groups", []):
        paths = group["paths"]
        kind = group["kind"]
        if kind == "zip":
            col = _column(paths[0])
            label = paths[0] if len(paths) == 1 else f"{paths[0]} (with {', '.join(paths[1:])})"
            candidates = [(label, col)]
        else:
            candidates = [(p, _column(p)) for p in paths]
        for label, col in candidates:
            if col in summary.columns:
                values = _ordered(summary[col])
                if len(values) > 1:
                    if _numeric(values):
                        values = sorted(values)
                    dims.append(Dim(label, col, kind, tuple(values)))
    return dims


def _fmt(value) -> str:
    """Swept values in labels and tables: four significant digits."""
    return fmt_value(value, 4)


def _fmt_dim(dim: Dim, value) -> str:
    """A swept value for labels: byte sizes in KiB/MiB, numbers to four digits."""
    if dim.short.endswith("_bytes") and _numeric([value]):
        kib = float(value) / 1024
        return f"{kib / 1024:.3g} MiB" if kib >= 1024 else f"{kib:.3g} KiB"
    return _fmt(value)


@dataclass(frozen=True, slots=True)
class View:
    """How the point summaries map onto the axes of the line figures."""

    data: object  # the (sliced, possibly faceted) summary frame
    x: str
    x_label: str
    x_order: tuple
    facet: str | None
    style: str | None
    scatter: bool
    fixed: tuple[tuple[str, str], ...]  # (dimension, value) held constant
    sparse: bool  # some point runs a sparsity feature


def make_view(summary, dims: list[Dim]) -> View:
    """Pick x, style, facets and the slice for the line figures (see the module docstring)."""
    data = summary.copy()
    sparse = bool((data["sweep_sparsity"] != "dense").any())
    by_col = {d.column: d for d in dims}
    primary = by_col.get("sweep_sparsity") or (dims[0] if dims else None)
    if primary is None:
        x, x_label, order, scatter = "sweep_dataflow", "dataflow", tuple(_ordered(data["sweep_dataflow"])), False
    else:
        x, x_label, order, scatter = primary.column, primary.label, primary.values, primary.kind == "random"
    rest = [d for d in dims if d is not primary]
    style, style_dim = None, None
    fixed: list[tuple[str, str]] = []
    if not scatter:
        for d in rest:
            if style is None and d.kind != "random" and len(d.values) <= MAX_STYLE_VALUES:
                style, style_dim = d.column, d
                continue
            data = data[data[d.column] == d.values[0]]
            fixed.append((d.short, _fmt_dim(d, d.values[0])))
    data = data.copy()
    facet_parts = []
    if data["sweep_workload"].nunique() > 1:
        facet_parts.append("sweep_workload")
    if x == "sweep_sparsity":
        # one panel per feature kind; the dense points are the baseline of every panel
        kinds = [k for k in _ordered(data["sparsity_kinds"]) if k != "dense"]
        if len(kinds) > 1:
            dense = data[data["sparsity_kinds"] == "dense"]
            data = pd.concat([pd.concat([dense.assign(feature=k), data[data["sparsity_kinds"] == k].assign(feature=k)])
                              for k in kinds], ignore_index=True)
            facet_parts.append("feature")
    facet = None
    if facet_parts:
        data["facet"] = data[facet_parts].astype(str).agg(" | ".join, axis=1)
        keep = _ordered(data["facet"])[:MAX_FACETS]
        data = data[data["facet"].isin(keep)]
        facet = "facet"
    if style is not None:
        data[style] = data[style].map(lambda v: _fmt_dim(style_dim, v))
    return View(data=data, x=x, x_label=x_label, x_order=tuple(order), facet=facet, style=style, scatter=scatter,
                fixed=tuple(fixed), sparse=sparse)


def _relative_speedup(view: View):
    """Speedup of each point over one common baseline per panel, so that the lines of a panel
    compare in absolute terms: the point at the first x value with the first dataflow (and
    the first line style) of the plan, or, for random samples, the slowest point of the panel.

    Returns the frame with a ``rel_speedup`` column and a phrase naming the baseline.
    """
    data = view.data.copy()
    panels = data[view.facet] if view.facet else np.zeros(len(data))
    data["_panel"] = np.asarray(panels)
    if view.scatter:
        data["rel_speedup"] = data.groupby("_panel")["cycles"].transform("max") / data["cycles"]
        return data, "the slowest sample"
    first_x, first_df = view.x_order[0], _ordered(data["sweep_dataflow"])[0]
    base = data[(data[view.x] == first_x) & (data["sweep_dataflow"] == first_df)]
    what = (first_df if view.x == "sweep_dataflow"
            else f"{first_df} at {view.x_label.split(' (with')[0]} = {_fmt(first_x)}")
    if view.style:
        first_style = _ordered(data[view.style])[0]
        base = base[base[view.style] == first_style]
        what += f", {pretty(view.style)} = {first_style}"
    base = base.drop_duplicates("_panel").set_index("_panel")["cycles"]
    data["rel_speedup"] = data["_panel"].map(base) / data["cycles"]
    return data, what


# ---------------------------------------------------------------------------------------------
# the report


REPORT_FILES = ("report.md", "index.html", "summary.csv", "speedup.png", "energy_breakdown.png", "utilization.png",
                "pareto.png", "roofline.png", "cycles_by_layer.png")
"""Every file :func:`write_report` may write; ``--overwrite`` replaces a directory holding only these."""


def write_report(sweep_dir: Path, out_dir: Path, overwrite: bool = False) -> Path:
    """Write the report of ``sweep_dir`` into ``out_dir``; returns the path of ``report.md``.

    ``out_dir`` must not exist, be empty, or (with ``overwrite``) hold an earlier report and
    nothing else (replacing it deletes the directory, so a file of the user's is refused by
    name); it may not be or hold ``sweep_dir``. The report is built in a temporary sibling
    directory and moved into place when complete.
    """
    sweep_dir, out_dir = Path(sweep_dir), Path(out_dir)
    check_output_path(out_dir, field="--out", kind="dir", inputs=[("DIR", sweep_dir)], replaces_dir=True)
    meta = read_meta(sweep_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        if not overwrite:
            raise InputError(f"--out: {out_dir} exists; pass --overwrite to replace the report in it")
        if not (out_dir / "report.md").exists():
            raise InputError(f"--out: {out_dir} is not empty and holds no report.md; refusing to replace it")
        foreign = sorted(p.name for p in out_dir.iterdir() if p.name not in REPORT_FILES)
        if foreign:
            raise InputError(f"--out: {out_dir} holds {foreign[0]!r}, which is not part of a report; refusing to "
                             "replace the directory (move it out first)")
    rows = collect_results(sweep_dir)
    if rows.empty or "cycles" not in rows.columns:
        raise InputError(f"{sweep_dir}: no finished points yet; run `sparsesim sweep` first")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir(out_dir)
    try:
        sections = build_sections(meta, rows, sweep_dir, tmp)
        title = f"Sweep report: {meta['name']}"
        (tmp / "report.md").write_text(render_markdown(title, sections))
        (tmp / "index.html").write_text(render_html(title, sections))
        (tmp / "summary.csv").write_text(point_summary(rows, meta).to_csv(index=False))
        replace_dir(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out_dir / "report.md"


def build_sections(meta: dict, rows, sweep_dir: Path, fig_dir: Path) -> list[Section]:
    """Draw every figure into ``fig_dir`` and return the report's sections."""
    summary = point_summary(rows, meta)
    dims = sweep_dims(meta, summary)
    view = make_view(summary, dims)
    tables = _ordered(summary["energy_table"])
    sources = []
    for name in tables:
        try:
            sources.append(f"`{name}` ({energy_table(name).source})")
        except InputError:
            sources.append(f"`{name}`")
    table_text = ", ".join(sources)
    sections = [_overview(meta, summary, dims, sweep_dir, table_text)]
    fixed_note = ("Axes held fixed in these figures: " + ", ".join(f"{k} = {v}" for k, v in view.fixed) + "."
                  if view.fixed else "")
    title_suffix = f" ({meta['name']})"

    # speedup
    if view.sparse:
        data, y, ylabel, bound = view.data, "speedup", "speedup over dense (×)", "bound_speedup"
        text = ("Speedup = dense cycles / cycles of the same hardware and dataflow with the sparsity "
                "features on; the dashed line of the same colour is the bound no design can beat: dense "
                "cycles over max(effectual MACs / PEs, DRAM bytes / bandwidth), summed over the layers.")
    else:
        data, baseline = _relative_speedup(view)
        y, bound, ylabel = "rel_speedup", None, "speedup (×)"
        text = ("No sparsity feature is switched on, so speedup is measured between design points: cycles of "
                f"one baseline point per panel ({baseline}) over the cycles of each point; higher is faster.")
    plots.plot_lines(data, fig_dir / "speedup.png", x=view.x, y=y, series="sweep_dataflow", facet=view.facet,
                     style=view.style, bound=bound, x_order=view.x_order, scatter=view.scatter,
                     title=("Speedup over dense" if view.sparse else f"Speedup over {baseline}") + title_suffix,
                     xlabel=view.x_label, ylabel=ylabel, reference=1.0, logy=None if not view.sparse else False)
    sections.append(Section("Speedup", tuple(p for p in (text, fixed_note) if p), "speedup.png"))

    # energy breakdown
    sections.append(_energy_section(view, summary, dims, fig_dir, table_text, title_suffix))

    # utilization
    plots.plot_lines(view.data, fig_dir / "utilization.png", x=view.x, y="utilization", series="sweep_dataflow",
                     facet=view.facet, style=view.style, x_order=view.x_order, scatter=view.scatter, percent=True,
                     logy=False, title="PE utilization" + title_suffix, xlabel=view.x_label,
                     ylabel="utilization (%)")
    sections.append(Section("Utilization", tuple(p for p in (
        "Utilization = effectual MACs / (cycles × PEs), in percent, over all layers of the workload.",
        fixed_note) if p),
        "utilization.png"))

    # pareto
    sections.append(_pareto_section(summary, dims, fig_dir, title_suffix))

    # roofline and per-layer cycles of the fastest design
    sections.extend(_roofline_sections(view, summary, rows, dims, fig_dir, title_suffix, fixed_note))
    mapping = _mapping_section(rows)
    if mapping is not None:
        sections.append(mapping)
    sections.append(_notes(meta, summary, table_text))
    return sections


def _mapping_section(rows) -> Section | None:
    """DRAM bytes each layer moved against its two bounds (the mapper's columns), largest gap
    first; None for results written before the mapper existed."""
    need = ("dram_bytes", "dram_lower_bound_bytes", "dram_compulsory_bytes", "mapping")
    if rows.empty or any(c not in rows.columns for c in need):
        return None
    data = rows.copy()
    data["gap"] = data["dram_bytes"] / data["dram_lower_bound_bytes"].clip(lower=1) - 1.0
    data = data.sort_values(["gap", "dram_bytes"], ascending=False, kind="stable")
    header = ("workload", "dataflow", "layer", "phase", "DRAM MB", "lower bound MB", "compulsory MB",
              "above bound", "mapping")
    table = tuple((str(r["workload"]), str(r["dataflow"]), str(r["name"]), str(r["phase"]), f"{r['dram_bytes'] / 1e6:.3g}",
                   f"{r['dram_lower_bound_bytes'] / 1e6:.3g}", f"{r['dram_compulsory_bytes'] / 1e6:.3g}",
                   f"{r['gap']:.1%}", str(r["mapping"])) for _, r in data.head(MAX_TABLE_ROWS).iterrows())
    total, bound = float(data["dram_bytes"].sum()), float(data["dram_lower_bound_bytes"].sum())
    at_bound = int((data["gap"] <= 1e-9).sum())
    legacy = int(data["mapping"].astype(str).str.startswith("legacy").sum())
    text = (f"Over all {len(data)} rows the accelerators moved {total / 1e6:.4g} MB to and from DRAM against a "
            f"communication lower bound of {bound / 1e6:.4g} MB ({total / max(bound, 1) - 1:.1%} above it); "
            f"{at_bound} rows sit on their bound. The bound is the larger of the compulsory bytes (each operand "
            "once, the output once) and the I/O bound of blocked matrix multiplication for the buffers as "
            f"partitioned (docs/mapper.md). {legacy} rows kept the legacy schedule because it beat every searched "
            f"nest. The table lists the {min(len(data), MAX_TABLE_ROWS)} rows furthest above their bound.")
    return Section("Mapping: DRAM bytes against their bounds", (text,), None, (header,) + table)


def _overview(meta: dict, summary, dims: list[Dim], sweep_dir: Path, table_text: str) -> Section:
    spec = meta["spec"]
    total = len(meta["points"])
    failed_dir = SweepDir(sweep_dir).failed
    plan_ids = {p["point_id"] for p in meta["points"]}
    failures = []
    for path in sorted(failed_dir.glob("*.json")) if failed_dir.exists() else []:
        if path.stem in plan_ids:
            try:
                rec = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                rec = {"error": "unreadable failure record"}
            failures.append((path.stem, rec.get("workload", "?"), rec.get("dataflow", "?"),
                             f"{rec.get('error_type', '')}: {rec.get('error', '')}"))
    lines = [
        f"Spec `{meta.get('spec_path', '?')}` (hash `{meta['spec_hash'][:12]}`), base accelerator "
        f"`{Path(spec['base']['accel']).name}`, sparsesim {meta.get('sparsesim_version', '?')}; report generated "
        f"{_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}.",
        f"**Energy table:** {table_text}.",
        f"**Points:** {len(summary)} of {total} finished, {len(failures)} failed"
        + ("" if len(summary) + len(failures) == total else f", {total - len(summary) - len(failures)} not run yet")
        + ".",
        "**Swept:** " + ("; ".join(f"{d.label} ∈ {{{', '.join(_fmt_dim(d, v) for v in d.values[:8])}"
                                   f"{', …' if len(d.values) > 8 else ''}}} ({d.kind})" for d in dims) or "nothing")
        + f"; workloads: {', '.join(_ordered(summary['sweep_workload']))}; dataflows: "
        + f"{', '.join(_ordered(summary['sweep_dataflow']))}.",
    ]
    if spec.get("description"):
        lines.insert(0, spec["description"])
    table: tuple = ()
    if failures:
        table = (("failed point", "workload", "dataflow", "error"),) + tuple(failures[:MAX_TABLE_ROWS])
    return Section("Overview", tuple(lines), None, table)


def _bar_label(row, view: View, style_fixed: bool) -> str:
    parts = []
    if view.x != "sweep_dataflow":
        parts.append(_fmt(row[view.x]))
    if view.style and not style_fixed:
        parts.append(str(row[view.style]))
    parts.append(str(row["sweep_dataflow"]))
    return " · ".join(parts)


def _energy_section(view: View, summary, dims, fig_dir: Path, table_text: str, suffix: str) -> Section:
    workload = _ordered(view.data["sweep_workload"])[0] if len(view.data) else _ordered(summary["sweep_workload"])[0]
    data = view.data[view.data["sweep_workload"] == workload]
    if "feature" in data.columns:
        data = data.drop_duplicates("point_id")
    style_note = ""
    if view.style and len(data) > MAX_BARS // 2:
        first_style = _ordered(data[view.style])[0]
        data = data[data[view.style] == first_style]
        style_note = f" ({pretty(view.style)} = {first_style})"
    sliced = not (view.scatter or len(data) > MAX_BARS)
    if sliced:
        how = "the design points of the figures above" + style_note
        pos = {v: i for i, v in enumerate(view.x_order)}
        data = data.assign(_pos=data[view.x].map(pos)).sort_values(["_pos", "index"], kind="stable")
        labels = [_bar_label(r, view, bool(style_note)) for _, r in data.iterrows()]
        parts = [view.x_label.split(" (with")[0]] if view.x != "sweep_dataflow" else []
        if view.style and not style_note:
            parts.append(pretty(view.style))
        xlabel = " · ".join(parts + ["dataflow"])
    else:
        style_note = ""
        data = summary[summary["sweep_workload"] == workload]
        data = data[_front(data)].sort_values("latency_s", kind="stable").head(MAX_TABLE_ROWS)
        how = "the Pareto-optimal design points, fastest first"
        labels = [" / ".join(_fmt_dim(d, r[d.column]) for d in dims) + f" · {r['sweep_dataflow']}"
                  for _, r in data.iterrows()]
        xlabel = " / ".join(d.short for d in dims) + " · dataflow"
        if not dims or max(len(lab) for lab in labels) > 32:  # too long to read: refer to the table
            labels = [f"#{r['index']} · {r['sweep_dataflow']}" for _, r in data.iterrows()]
            xlabel = "point # (see the Pareto table) · dataflow"
    comps = plots.energy_components(data)
    values = np.stack([data[f"energy_pj.{c}"].to_numpy(dtype=float) / 1e6 for c in comps], axis=1)
    plots.plot_stacked_bars(labels, comps, values, fig_dir / "energy_breakdown.png",
                            title=f"Energy breakdown, {workload}{style_note}{suffix}", ylabel="energy (µJ)",
                            legend_title=f"energy table: {', '.join(_ordered(summary['energy_table']))}",
                            xlabel=xlabel)
    text = (f"Energy per component summed over all layers of {workload}, for {how}. Energy table: {table_text}. "
            "Leakage is charged over the run's latency.")
    return Section("Energy breakdown", (text,), "energy_breakdown.png")


def _front(data) -> np.ndarray:
    return pareto_mask(data[["energy_pj", "latency_s", "area_um2"]].to_numpy(dtype=float))


def _pareto_section(summary, dims: list[Dim], fig_dir: Path, suffix: str) -> Section:
    data = summary.copy()
    data["pareto"] = False
    for wl in _ordered(data["sweep_workload"]):
        m = (data["sweep_workload"] == wl).to_numpy()
        data.loc[m, "pareto"] = _front(data[m])
    workloads = _ordered(data["sweep_workload"])[:4]
    shown = data[data["sweep_workload"].isin(workloads)]
    plots.plot_pareto(shown, fig_dir / "pareto.png", x="latency_ms", y="energy_uj", color="area_mm2",
                      marker="sweep_dataflow", front="pareto", facet="sweep_workload" if len(workloads) > 1 else None,
                      title="Energy, latency and area of every design point" + suffix, xlabel="latency (ms)",
                      ylabel="energy (µJ)", clabel="area (mm²): PE array + SRAM")
    header = ("#", "point", "workload", "dataflow") + tuple(d.short for d in dims) + (
        "latency (ms)", "energy (µJ)", "area (mm²)", "utilization")
    rows = []
    front = data[data["pareto"]].sort_values("latency_s", kind="stable")
    front = front.groupby("sweep_workload", sort=False).head(MAX_TABLE_ROWS)
    for _, r in front.iterrows():
        rows.append((str(r["index"]), r["point_id"][:10], r["sweep_workload"], r["sweep_dataflow"]) + tuple(
            _fmt_dim(d, r[d.column]) for d in dims) + (f"{r['latency_ms']:.4g}", f"{r['energy_uj']:.4g}",
                                                f"{r['area_mm2']:.4g}", f"{r['utilization']:.1%}"))
    n_front = int(data["pareto"].sum())
    text = (f"{n_front} of {len(data)} design points are Pareto-optimal in (energy, latency, area), per workload "
            f"(the table lists up to {MAX_TABLE_ROWS} per workload, fastest first; # is the point's index in the plan) "
            "(outlined in red); the red staircase is the two-dimensional energy-latency front. A design point is "
            "a configuration and a dataflow. Area is the MAC units, the three SRAM buffers and what the array "
            "kind adds (sparsesim.dataflows.array_kind.area_um2).")
    notes = () if len(workloads) == data["sweep_workload"].nunique() else (
        f"Only the first {len(workloads)} workloads are drawn; the table covers all.",)
    return Section("Pareto front: energy, latency, area", (text,) + notes, "pareto.png",
                   (header,) + tuple(rows) if rows else ())


def _roofline_sections(view: View, summary, rows, dims, fig_dir: Path, suffix: str, fixed_note: str) -> list[Section]:
    workload = _ordered(summary["sweep_workload"])[0]
    cands = summary[summary["sweep_workload"] == workload]
    best = cands.loc[cands["latency_s"].idxmin()]
    cfg_cols = [c for c in summary.columns if c.startswith("cfg.")]
    same = cands[(cands[cfg_cols].astype(str) == best[cfg_cols].astype(str)).all(axis=1)]
    layers = rows[rows["point_id"].isin(same["point_id"])]
    cores = best["cfg.chip.cores"] if "cfg.chip.cores" in best.index and best["cfg.chip.cores"] == best["cfg.chip.cores"] \
        else 1  # a design of several cores: their PEs together (the column is absent, or NaN, at one core)
    peak = float(best["cfg.array.rows"] * best["cfg.array.cols"] * cores)
    bw = float(memory_model_of_record(best).peak_bytes_per_cycle)
    design = ", ".join(f"{d.short} = {_fmt_dim(d, best[d.column])}" for d in dims) or "the base design"
    bounds = view.data[view.data["sweep_workload"] == workload]
    if "feature" in bounds.columns:
        bounds = bounds.drop_duplicates("point_id")
    bounds = bounds.assign(dataflow=bounds["sweep_dataflow"])
    x_is_cat = not _numeric(list(view.x_order))
    bx = view.x
    if x_is_cat:
        pos = {v: i for i, v in enumerate(view.x_order)}
        bounds = bounds.assign(_x=bounds[view.x].map(pos))
        bx = "_x"
    if view.style:
        first_style = _ordered(bounds[view.style])[0]
        bounds = bounds[bounds[view.style] == first_style]
    plots.plot_roofline(layers, fig_dir / "roofline.png", peak_macs_per_cycle=peak, bandwidth_bytes_per_cycle=bw,
                        title=f"Roofline of the fastest design and bounds, {workload}{suffix}", bounds=bounds,
                        bounds_x=bx, bounds_xlabel=view.x_label, bounds_scatter=view.scatter,
                        bounds_xticks=[_fmt(v) for v in view.x_order] if x_is_cat else None,
                        series="sweep_dataflow")
    text = (f"Left: each layer (GEMM and phase) of {workload} on the fastest design ({design}) for every "
            "dataflow swept, at its operational intensity; the roof is min(PEs, DRAM bandwidth × intensity). "
            "Right: total cycles achieved against the MAC bound (effectual MACs / PEs) and the "
            "DRAM-bandwidth bound (DRAM bytes / bandwidth) of each point.")
    if view.scatter:
        text = text.replace("Right: total cycles achieved against",
                            "Right: total cycles achieved against max(") .replace("of each point.",
                                                                                 ") of each point; the dashed "
                                                                                 "diagonal is achieved = bound.")
    if view.style:
        text += f" The right panel shows {pretty(view.style)} = {first_style}."
    out = [Section("Roofline and bounds", tuple(p for p in (text, fixed_note) if p), "roofline.png")]
    plots.plot_cycles_by_layer(layers, fig_dir / "cycles_by_layer.png", series="sweep_dataflow",
                               title=f"Cycles per layer, fastest design, {workload}")
    out.append(Section("Cycles per layer of the fastest design",
                       (f"{workload} on {design}: cycles of each layer for every dataflow swept at that design.",),
                       "cycles_by_layer.png"))
    return out


def _notes(meta: dict, summary, table_text: str) -> Section:
    best_rows = []
    for wl in _ordered(summary["sweep_workload"]):
        sub = summary[summary["sweep_workload"] == wl]
        for what, col in (("lowest latency", "latency_ms"), ("lowest energy", "energy_uj"),
                          ("lowest energy-delay", "edp_uj_ms")):
            r = sub.loc[sub[col].idxmin()]
            best_rows.append((wl, what, r["point_id"][:10], r["sweep_dataflow"], r["sweep_sparsity"],
                              f"{r['latency_ms']:.4g}", f"{r['energy_uj']:.4g}", f"{r['area_mm2']:.4g}"))
    header = ("workload", "best by", "point", "dataflow", "sparsity", "latency (ms)", "energy (µJ)", "area (mm²)")
    paragraphs = (
        "Totals are sums over every layer and phase of a workload; latency = cycles / clock.",
        f"Energy and area come from the energy table {table_text}; area covers the PE array and the SRAM "
        "buffers only (no sparse-format multiplexers or index storage).",
        "The full per-point table is `summary.csv` beside this report; the per-layer rows are in the "
        "sweep directory's `results.parquet`.",
    )
    return Section("Best points and notes", paragraphs, None, (header,) + tuple(best_rows))


# ---------------------------------------------------------------------------------------------
# rendering


def render_markdown(title: str, sections: list[Section]) -> str:
    """The report as Markdown, figures referenced by relative file name."""
    out = [f"# {title}", ""]
    for s in sections:
        out += [f"## {s.title}", ""]
        for p in s.paragraphs:
            out += [p, ""]
        if s.figure:
            out += [f"![{s.title}]({s.figure})", ""]
        if s.table:
            head, *body = s.table
            out.append("| " + " | ".join(head) + " |")
            out.append("|" + "|".join("---" for _ in head) + "|")
            out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in body]
            out.append("")
    return "\n".join(out)


def _inline(text: str) -> str:
    """Escape ``text`` and turn Markdown ``**bold**`` and backticks into HTML."""
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def render_html(title: str, sections: list[Section]) -> str:
    """The same report as one HTML page embedding the PNG files beside it."""
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
        "line-height:1.45;color:#222}img{max-width:100%;border:1px solid #ddd}table{border-collapse:collapse;"
        "font-size:.9em;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}"
        "th{background:#f3f3f3}code{background:#f3f3f3;padding:0 .2em}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>"]
    for s in sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2>")
        parts += [f"<p>{_inline(p)}</p>" for p in s.paragraphs]
        if s.figure:
            parts.append(f'<p><img src="{html.escape(s.figure)}" alt="{html.escape(s.title)}"></p>')
        if s.table:
            head, *body = s.table
            parts.append("<table><tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in head) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in body]
            parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
