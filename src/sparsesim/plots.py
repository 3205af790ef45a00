"""Figures (PNG) of result tables: the only module that imports matplotlib (docs/design.md section 2).

Every function takes a pandas DataFrame of result rows (:func:`sparsesim.simulation.results.to_frame`
columns) or of per-point summaries, writes one PNG and returns its path. Figures are drawn on
the Agg canvas through the object API (no pyplot, so no global figure state) inside one
``rc_context`` with readable font sizes. Axis labels carry units; colours are fixed per
dataflow so that every figure of a report agrees.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType

import numpy as np

from sparsesim.dataflows import DATAFLOWS, display_order
from sparsesim.simulation.columns import fmt_value as _fmt
from sparsesim.simulation.columns import is_numeric as _is_numeric
from sparsesim.simulation.columns import ordered as _ordered

STYLE = MappingProxyType({
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 9.5,
    "legend.framealpha": 0.9,
    "figure.titlesize": 13,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.dpi": 130,
    "savefig.bbox": "tight",
})
"""rcParams used for every figure (read-only)."""

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
"""Colours (matplotlib's tab10) handed out in order."""
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", ":", "-.")
ENERGY_COLORS = MappingProxyType({
    "mac": "#1f77b4", "mac_gated": "#aec7e8", "register_file": "#9467bd", "sram_a": "#2ca02c",
    "sram_b": "#98df8a", "sram_out": "#bcbd22", "metadata": "#e377c2", "delta_state": "#ff9896",
    "delta_encode": "#c5b0d5", "nm_pregen": "#ffbb78", "dram": "#d62728", "leakage": "#7f7f7f"})


def _figure(nrows: int = 1, ncols: int = 1, *, width: float = 7.5, height: float = 4.6, sharey: bool = False):
    """A figure with a grid of axes on the Agg canvas (no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols if ncols > 1 else width, height * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=sharey)
    return fig, axes


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def _rc():
    import matplotlib

    return matplotlib.rc_context(dict(STYLE))


def color_map(names: Sequence[str]) -> dict[str, str]:
    """A stable colour per name: dataflows in the registry's display order (then ``best``)
    first, then the rest in order."""
    first = [*display_order(), "best"]
    ordered = [n for n in first if n in names] + [n for n in names if n not in first]
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(dict.fromkeys(ordered))}


def series_label(name) -> str:
    """The legend text of a series: a registered dataflow's label, else the value itself."""
    return DATAFLOWS.get(name).label if isinstance(name, str) and name in DATAFLOWS else name


def _spans(values, ratio: float = 8.0) -> bool:
    """Whether positive ``values`` span at least ``ratio`` (worth a log axis)."""
    vals = [float(v) for v in values if v is not None and np.isfinite(v) and v > 0]
    return len(vals) > 1 and max(vals) / min(vals) >= ratio


def pretty(column: str) -> str:
    """A column name as a legend title: ``sweep_dataflow`` -> ``dataflow``, ``cfg.a.b`` -> ``a.b``."""
    for prefix in ("sweep_", "cfg."):
        if column.startswith(prefix):
            return column[len(prefix):]
    return column


def _label_panel(ax, xlabel: str, ylabel: str, facet_value) -> None:
    """Axis labels of one panel, titled by its facet value (if faceted)."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if facet_value is not None:
        ax.set_title(str(facet_value))


def _hide_unused(axes, used: int) -> None:
    """Hide the grid's panels past the ``used`` ones."""
    for ax in axes[used:]:
        ax.set_visible(False)


def plot_cycles_by_layer(df, path: str | Path, title: str, *, log: bool | None = None,
                         series: str = "dataflow") -> Path:
    """Cycles of every layer, one series per dataflow (or per ``series`` column); one panel
    per phase.

    ``df`` holds result rows (``name, phase, cycles`` and the ``series`` column); rows that
    share a layer, phase and series are summed. Grouped bars when there are few bars, lines
    with markers otherwise; a log y axis when cycles span two decades (or when ``log`` says so).
    """
    df = df.groupby(["phase", "name", series], sort=False, as_index=False)["cycles"].sum()
    df = df.rename(columns={series: "_series"})
    phases = _ordered(df["phase"])
    dataflows = _ordered(df["_series"])
    colors = color_map(dataflows)
    layers = _ordered(df["name"])
    use_bars = len(layers) * len(dataflows) <= 48
    if log is None:
        log = _spans(df["cycles"], 100.0)
    width = min(max(7.5, 0.32 * len(layers) * (len(dataflows) if use_bars else 1) + 2), 16)
    with _rc():
        fig, axes = _figure(len(phases), 1, width=width, height=3.9)
        for ax, phase in zip(axes[:, 0], phases):
            sub = df[df["phase"] == phase]
            x = np.arange(len(layers))
            for i, dfl in enumerate(dataflows):
                rows = sub[sub["_series"] == dfl].set_index("name").reindex(layers)
                if use_bars:
                    w = 0.8 / len(dataflows)
                    ax.bar(x + (i - (len(dataflows) - 1) / 2) * w, rows["cycles"], w, label=series_label(dfl),
                           color=colors[dfl])
                else:
                    ax.plot(x, rows["cycles"], marker=MARKERS[i % len(MARKERS)], ms=4, lw=1.4,
                            label=series_label(dfl), color=colors[dfl])
            ax.set_xticks(x, layers, rotation=60 if len(layers) > 6 else 0, ha="right" if len(layers) > 6 else "center",
                          fontsize=9 if len(layers) > 20 else 10)
            ax.set_ylabel("cycles")
            if log:
                ax.set_yscale("log")
            ax.set_title(f"phase {phase}" if len(phases) > 1 else "")
            ax.legend(title=pretty(series), loc="best")
            ax.grid(axis="x", visible=False)
        fig.suptitle(title)
        return _save(fig, path)


def energy_components(df) -> list[str]:
    """``energy_pj.*`` components of ``df`` that are nonzero somewhere, in table order."""
    comps = [c[len("energy_pj."):] for c in df.columns if c.startswith("energy_pj.")]
    return [c for c in comps if float(np.nansum(df[f"energy_pj.{c}"].to_numpy(dtype=float))) > 0]


def plot_energy_breakdown(df, path: str | Path, title: str, *, by: str | Sequence[str] = "name",
                          energy_table: str | None = None, normalize: bool = False) -> Path:
    """Stacked bars of energy by component (``energy_pj.*`` columns), one bar per ``by`` group.

    Rows sharing the ``by`` value(s) are summed, so ``by="name"`` gives energy per layer over
    phases and ``by="dataflow"`` one bar per dataflow. The y axis is in uJ (or a share of the
    total with ``normalize``); the energy table is named in the axis title when given.
    """
    by = [by] if isinstance(by, str) else list(by)
    comps = energy_components(df)
    cols = [f"energy_pj.{c}" for c in comps]
    grouped = df.groupby(by, sort=False)[cols].sum()
    labels = [" / ".join(_fmt(v) for v in (k if isinstance(k, tuple) else (k,))) for k in grouped.index]
    values = grouped.to_numpy(dtype=float) / 1e6  # pJ -> uJ
    if normalize:
        values = values / np.maximum(values.sum(axis=1, keepdims=True), 1e-30) * 100
    return plot_stacked_bars(labels, comps, values, path, title=title,
                             ylabel="share of energy (%)" if normalize else "energy (µJ)",
                             legend_title=f"energy table: {energy_table}" if energy_table else "component")


def plot_stacked_bars(labels: Sequence[str], components: Sequence[str], values: np.ndarray, path: str | Path, *,
                      title: str, ylabel: str, legend_title: str = "component", xlabel: str = "") -> Path:
    """Stacked bars: ``values[i, j]`` is component ``j`` of bar ``i``."""
    n = len(labels)
    long = max((len(s) for s in labels), default=0)
    rotate = n > 8 or long * n > 90
    width = min(max(7.0, 0.45 * n + 3.5), 16)
    with _rc():
        fig, axes = _figure(width=width, height=4.8)
        ax = axes[0, 0]
        bottom = np.zeros(n)
        x = np.arange(n)
        fallback = iter(PALETTE)
        for j, comp in enumerate(components):
            color = ENERGY_COLORS.get(comp) or next(fallback)
            ax.bar(x, values[:, j], 0.7, bottom=bottom, label=comp.replace("_", " "), color=color)
            bottom += values[:, j]
        ax.set_xticks(x, labels, rotation=45 if rotate else 0, ha="right" if rotate else "center",
                      fontsize=9 if n > 20 else 10)
        ax.set_ylabel(ylabel)
        if xlabel:
            ax.set_xlabel(xlabel)
        ax.grid(axis="x", visible=False)
        handles, names = ax.get_legend_handles_labels()
        ax.legend(handles[::-1], names[::-1], title=legend_title, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.set_title(title)
        return _save(fig, path)


def plot_lines(data, path: str | Path, *, x: str, y: str, series: str, title: str, xlabel: str, ylabel: str,
               facet: str | None = None, style: str | None = None, bound: str | None = None,
               x_order: Sequence | None = None, scatter: bool = False, percent: bool = False,
               logy: bool | None = None, reference: float | None = None) -> Path:
    """``y`` against ``x``, one colour per ``series`` value, one panel per ``facet`` value.

    ``style`` (few values) changes line style and marker; ``bound`` draws a second column as a
    thin dashed line of the same colour (a true bound, e.g. ``bound_speedup``); ``scatter`` draws markers
    only (for random samples). A categorical ``x`` keeps ``x_order`` (default: first seen).
    ``reference`` draws a horizontal line (e.g. speedup 1).
    """
    facets = _ordered(data[facet]) if facet else [None]
    series_vals = _ordered(data[series])
    colors = color_map([str(s) for s in series_vals])
    styles = _ordered(data[style]) if style else [None]
    xs = list(x_order) if x_order is not None else _ordered(data[x])
    numeric = _is_numeric(xs)
    logx = numeric and _spans(xs)
    if logy is None:
        logy = _spans(data[y], 50.0)
    ncols = min(len(facets), 3)
    nrows = math.ceil(len(facets) / ncols)
    with _rc():
        fig, axes = _figure(nrows, ncols, width=6.0 if ncols > 1 else 7.5, height=4.3, sharey=False)
        flat = axes.ravel()
        for ax, fval in zip(flat, facets):
            sub = data if facet is None else data[data[facet] == fval]
            for si, sval in enumerate(series_vals):
                for ti, tval in enumerate(styles):
                    part = sub[sub[series] == sval]
                    if style:
                        part = part[part[style] == tval]
                    if part.empty:
                        continue
                    if numeric:
                        part = part.sort_values(x)
                        xv = part[x].to_numpy(dtype=float)
                    else:
                        pos = {v: i for i, v in enumerate(xs)}
                        part = part.assign(_pos=part[x].map(pos)).sort_values("_pos")
                        xv = part["_pos"].to_numpy(dtype=float)
                    label = str(sval) if not style else f"{sval}, {_fmt(tval)}"
                    kw = dict(color=colors[str(sval)], marker=MARKERS[(ti if style else si) % len(MARKERS)])
                    yv = part[y].to_numpy(dtype=float) * (100 if percent else 1)
                    if scatter:
                        ax.scatter(xv, yv, s=22, alpha=0.8, label=label, color=kw["color"], marker=kw["marker"])
                    else:
                        ax.plot(xv, yv, lw=1.8, ms=5, ls=LINESTYLES[ti % len(LINESTYLES)], label=label, **kw)
                    if bound:
                        iv = part[bound].to_numpy(dtype=float) * (100 if percent else 1)
                        ax.plot(xv, iv, lw=1.0, ls=(0, (4, 3)), color=kw["color"], alpha=0.7)
            if reference is not None:
                ax.axhline(reference, color="0.4", lw=0.9, ls="-", zorder=0)
            if numeric:
                if logx:
                    ax.set_xscale("log", base=2)
                    ax.xaxis.set_major_formatter(_plain_formatter())
                if len(xs) <= 10 and not scatter:
                    ax.set_xticks([float(v) for v in xs], [_fmt(v) for v in xs])
                    ax.minorticks_off()
            else:
                ax.set_xticks(range(len(xs)), [_fmt(v) for v in xs], rotation=30 if len(xs) > 4 else 0,
                              ha="right" if len(xs) > 4 else "center")
            if logy:
                ax.set_yscale("log")
                _plain_log_y(ax, sub[y].to_numpy(dtype=float) * (100 if percent else 1))
            _label_panel(ax, xlabel, ylabel, fval)
        _hide_unused(flat, len(facets))
        handles, labels = flat[0].get_legend_handles_labels()
        if bound:
            from matplotlib.lines import Line2D

            handles.append(Line2D([], [], color="0.3", lw=1.0, ls=(0, (4, 3))))
            labels.append("bound (MAC and DRAM limits)")
        legend_title = pretty(series) if not style else f"{pretty(series)}, {pretty(style)}"
        if len(facets) > 1 or len(handles) > 8:
            fig.legend(handles, labels, title=legend_title, loc="outside lower center",
                       ncols=min(len(handles), 4 if style else 6))
        else:
            flat[0].legend(handles, labels, title=legend_title, loc="best")
        fig.suptitle(title)
        return _save(fig, path)


def _plain_formatter():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _pos: f"{v:g}")


def si(value: float) -> str:
    """``2500000`` -> ``2.5M``; small numbers as ``%g``."""
    for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:g}{suffix}"
    return f"{value:g}"


def _plain_log_y(ax, values) -> None:
    """Label a log y axis with plain numbers (see :func:`_plain_log`)."""
    _plain_log(ax.yaxis, values)


def _plain_log(axis, values) -> None:
    """Label a log ``axis`` with plain numbers (2, 3, 5 between powers of ten when the data
    span less than two decades) instead of ``2 x 10^0``; large numbers as ``2M``."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    vals = [float(v) for v in values if np.isfinite(v) and v > 0]
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: si(v)))
    if vals and max(vals) / min(vals) < 100:
        def minor(v, _pos):
            lead = v / 10 ** math.floor(math.log10(v)) if v > 0 else 0
            return si(v) if round(lead, 6) in (2.0, 5.0) else ""

        axis.set_minor_formatter(FuncFormatter(minor))
    else:
        axis.set_minor_formatter(NullFormatter())


def pareto_mask(values: np.ndarray) -> np.ndarray:
    """Rows of ``values`` (n x objectives, all minimized) that no other row dominates."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        if not keep[i]:
            continue
        dominated = np.all(values <= values[i], axis=1) & np.any(values < values[i], axis=1)
        if dominated.any():
            keep[i] = False
    return keep


def plot_pareto(data, path: str | Path, *, x: str, y: str, color: str, marker: str, front: str, title: str,
                xlabel: str, ylabel: str, clabel: str, facet: str | None = None) -> Path:
    """Scatter of design points (``x`` vs ``y``, coloured by ``color``, marker by ``marker``);
    rows where ``front`` is true are outlined, and the 2-D front of ``x``/``y`` is drawn as a
    staircase. Axes go logarithmic when the values span more than a decade."""
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.lines import Line2D

    facets = _ordered(data[facet]) if facet else [None]
    kinds = _ordered(data[marker])
    mk = {k: MARKERS[i % len(MARKERS)] for i, k in enumerate(kinds)}
    cvals = data[color].to_numpy(dtype=float)
    norm = (LogNorm if _spans(cvals, 10.0) else Normalize)(vmin=np.nanmin(cvals), vmax=np.nanmax(cvals))
    ncols = min(len(facets), 2)
    nrows = math.ceil(len(facets) / ncols)
    with _rc():
        fig, axes = _figure(nrows, ncols, width=6.6 if ncols > 1 else 7.8, height=5.0)
        flat = axes.ravel()
        sc = None
        for ax, fval in zip(flat, facets):
            sub = data if facet is None else data[data[facet] == fval]
            for k in kinds:
                part = sub[sub[marker] == k]
                on = part[part[front].astype(bool)]
                sc = ax.scatter(part[x], part[y], c=part[color], cmap="viridis", norm=norm, marker=mk[k], s=30,
                                alpha=0.75, linewidths=0)
                ax.scatter(on[x], on[y], c=on[color], cmap="viridis", norm=norm, marker=mk[k], s=80,
                           edgecolors="#d62728", linewidths=1.6)
            two = sub[[x, y]].to_numpy(dtype=float)
            stair = two[pareto_mask(two)]
            stair = stair[np.argsort(stair[:, 0])]
            if len(stair) > 1:
                ax.step(stair[:, 0], stair[:, 1], where="post", color="#d62728", lw=1.0, alpha=0.6)
            if _spans(sub[x], 10.0):
                ax.set_xscale("log")
                _plain_log(ax.xaxis, sub[x])
            if _spans(sub[y], 10.0):
                ax.set_yscale("log")
                _plain_log(ax.yaxis, sub[y])
            _label_panel(ax, xlabel, ylabel, fval)
        _hide_unused(flat, len(facets))
        handles = [Line2D([], [], ls="", marker=mk[k], color="0.35", ms=7, label=str(k)) for k in kinds]
        handles.append(Line2D([], [], ls="", marker="o", mfc="none", mec="#d62728", mew=1.6, ms=9,
                              label="Pareto-optimal\n(energy, latency, area)"))
        handles.append(Line2D([], [], color="#d62728", lw=1.0, alpha=0.6, label="energy-latency front"))
        flat[0].legend(handles=handles, title=pretty(marker), loc="best")
        if sc is not None:
            fig.colorbar(sc, ax=list(flat[:len(facets)]), label=clabel, shrink=0.9)
        fig.suptitle(title)
        return _save(fig, path)


def plot_roofline(layers, path: str | Path, *, peak_macs_per_cycle: float, bandwidth_bytes_per_cycle: float,
                  title: str, bounds=None, bounds_x: str | None = None, bounds_xlabel: str = "",
                  bounds_scatter: bool = False, bounds_xticks: Sequence[str] | None = None,
                  series: str = "dataflow") -> Path:
    """A roofline of per-layer rows plus, optionally, achieved cycles against their bounds.

    Left: every row of ``layers`` at its operational intensity (effectual MACs per DRAM byte)
    and achieved throughput (effectual MACs per cycle), under the compute roof
    (``peak_macs_per_cycle``) and the bandwidth roof. Right (``bounds`` given, one row per
    design point with ``dataflow, cycles, mac_bound_cycles, bw_bound_cycles``): achieved
    cycles next to the MAC bound and the DRAM-bandwidth bound, against
    ``bounds_x`` (category positions 0, 1, ... labelled by ``bounds_xticks`` when given).
    Layers are coloured by ``series`` (the dataflow by default).
    """
    from matplotlib.lines import Line2D

    dataflows = _ordered(layers[series])
    colors = color_map(dataflows + (_ordered(bounds["dataflow"]) if bounds is not None else []))
    with _rc():
        fig, axes = _figure(1, 2 if bounds is not None else 1, width=6.4, height=4.8)
        ax = axes[0, 0]
        intensity = layers["macs_effectual"] / layers["dram_bytes"].clip(lower=1)
        achieved = layers["macs_effectual"] / layers["cycles"].clip(lower=1)
        lo = max(min(intensity.min(), peak_macs_per_cycle / bandwidth_bytes_per_cycle) / 3, 1e-3)
        hi = max(intensity.max(), peak_macs_per_cycle / bandwidth_bytes_per_cycle) * 3
        xs = np.geomspace(lo, hi, 200)
        ax.plot(xs, np.minimum(peak_macs_per_cycle, bandwidth_bytes_per_cycle * xs), color="0.15", lw=2,
                label="roof: min(PEs, BW × intensity)")
        for i, dfl in enumerate(dataflows):
            m = (layers[series] == dfl).to_numpy()
            ax.scatter(intensity[m], achieved[m], s=28, color=colors[dfl], marker=MARKERS[i % len(MARKERS)],
                       alpha=0.8, label=f"layers, {dfl}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        _plain_log(ax.xaxis, xs)
        _plain_log(ax.yaxis, list(achieved) + [peak_macs_per_cycle])
        ax.set_xlabel("operational intensity (effectual MAC / DRAM byte)")
        ax.set_ylabel("throughput (effectual MAC / cycle)")
        ax.set_title(f"roofline: {peak_macs_per_cycle:g} PEs, {bandwidth_bytes_per_cycle:.3g} B/cycle")
        ax.legend(loc="lower right")
        if bounds is not None:
            bx = axes[0, 1]
            for i, dfl in enumerate(_ordered(bounds["dataflow"])):
                part = bounds[bounds["dataflow"] == dfl]
                if bounds_scatter:
                    bx.scatter(part["bound_cycles"], part["cycles"], s=24, color=colors[dfl],
                               marker=MARKERS[i % len(MARKERS)], alpha=0.8, label=dfl)
                    continue
                part = part.sort_values(bounds_x)
                xv = part[bounds_x].to_numpy(dtype=float)
                bx.plot(xv, part["cycles"], color=colors[dfl], lw=1.8, marker="o", ms=5, label=f"achieved, {dfl}")
                bx.plot(xv, part["bw_bound_cycles"], color=colors[dfl], lw=1.1, ls=":")
                if i == 0:
                    bx.plot(xv, part["mac_bound_cycles"], color="0.15", lw=1.3, ls="--")
            if bounds_scatter:
                lim = [bounds[["bound_cycles", "cycles"]].min().min() * 0.8,
                       bounds[["bound_cycles", "cycles"]].max().max() * 1.2]
                bx.plot(lim, lim, color="0.15", lw=1.2, ls="--", label="achieved = bound")
                bx.set_xscale("log")
                bx.set_yscale("log")
                _plain_log(bx.xaxis, lim)
                _plain_log(bx.yaxis, lim)
                bx.set_xlabel("bound: max(MAC bound, bandwidth bound) (cycles)")
                bx.legend(title="dataflow", loc="upper left")
            else:
                xs_b = _ordered(bounds[bounds_x])
                if bounds_xticks is not None:
                    bx.set_xticks(range(len(bounds_xticks)), bounds_xticks, rotation=30 if len(bounds_xticks) > 4
                                  else 0, ha="right" if len(bounds_xticks) > 4 else "center")
                elif _is_numeric(xs_b) and _spans(xs_b):
                    bx.set_xscale("log", base=2)
                    bx.xaxis.set_major_formatter(_plain_formatter())
                if len(xs_b) <= 10 and bounds_xticks is None:
                    bx.set_xticks([float(v) for v in xs_b], [_fmt(v) for v in xs_b])
                    bx.minorticks_off()
                bx.set_yscale("log")
                _plain_log_y(bx, bounds[["cycles", "mac_bound_cycles", "bw_bound_cycles"]].to_numpy().ravel())
                bx.set_xlabel(bounds_xlabel)
                handles, labels = bx.get_legend_handles_labels()
                handles += [Line2D([], [], color="0.15", lw=1.3, ls="--"), Line2D([], [], color="0.4", lw=1.1, ls=":")]
                labels += ["MAC bound", "DRAM bandwidth bound"]
                bx.legend(handles, labels, loc="best")
            bx.set_ylabel("cycles (all layers)")
            bx.set_title("achieved vs bounds")
        fig.suptitle(title)
        return _save(fig, path)


def plot_speedup_bars(data, path: str | Path, *, x: str, group: str, title: str, achieved: str = "speedup",
                      bound: str = "bound_speedup") -> Path:
    """Grouped bars of ``achieved`` speedup per ``x`` value, one bar per ``group`` value, with the
    ``bound`` (a true bound: no bar may pass it) drawn as a black tick on each bar and a
    reference line at 1x (no change)."""
    xs = _ordered(data[x])
    groups = _ordered(data[group])
    colors = color_map([str(g) for g in groups])
    width = 0.8 / max(len(groups), 1)
    with _rc():
        fig, axes = _figure(width=min(max(7.0, 1.6 * len(xs) + 3.0), 15), height=4.6)
        ax = axes[0, 0]
        for j, g in enumerate(groups):
            sub = data[data[group] == g].set_index(x)
            pos = [i + (j - (len(groups) - 1) / 2) * width for i in range(len(xs))]
            vals = [float(sub[achieved].get(v, np.nan)) for v in xs]
            # a ratio over nothing (work_ratio with no effectual MAC) is inf: no bar, its value written
            ax.bar(pos, [v if np.isfinite(v) else np.nan for v in vals], width * 0.92, color=colors[str(g)],
                   label=str(g))
            for p, v in zip(pos, vals):
                if np.isfinite(v) or v == np.inf:
                    ax.annotate(f"{v:.2f}" if np.isfinite(v) else "inf", (p, v if np.isfinite(v) else 0),
                                ha="center", va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")
            if bound in sub:
                ids = [float(sub[bound].get(v, np.nan)) for v in xs]
                ax.scatter(pos, ids, marker="_", s=260, color="black", linewidths=2.2, zorder=3,
                           label="bound (MAC and DRAM limits)" if j == 0 else None)
        ax.axhline(1.0, color="0.3", lw=0.9, ls=":")
        ax.set_xticks(range(len(xs)), [str(v) for v in xs])
        ax.set_ylabel("speedup over dense (x)")
        ax.set_xlabel(pretty(x))
        ax.grid(axis="x", visible=False)
        ax.legend(title=pretty(group), loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.set_title(title)
        return _save(fig, path)


def plot_speedup_by_layer(df, path: str | Path, title: str) -> Path:
    """Per-layer achieved speedup (bars, one colour per phase) with its bound (black ticks).

    Rows are (layer, phase) result rows in network order; ``speedup`` and ``bound_speedup``
    (dense cycles over the MAC and DRAM bound, which no row beats) come from the rows themselves.
    """
    names = _ordered(df["name"])
    phases = _ordered(df["phase"])
    colors = {p: PALETTE[i] for i, p in enumerate(phases)}
    width = 0.8 / max(len(phases), 1)
    with _rc():
        fig, axes = _figure(width=min(max(8.0, 0.32 * len(names) * max(len(phases), 1) + 3), 18), height=4.8)
        ax = axes[0, 0]
        for j, phase in enumerate(phases):
            sub = df[df["phase"] == phase].set_index("name")
            pos = [i + (j - (len(phases) - 1) / 2) * width for i in range(len(names))]
            vals = [float(sub["speedup"].get(n, np.nan)) for n in names]
            ideals = [float(sub["bound_speedup"].get(n, np.nan)) for n in names]
            ax.bar(pos, vals, width * 0.9, color=colors[phase], label=f"{phase} achieved")
            ax.scatter(pos, ideals, marker="_", s=60, color="black", linewidths=1.6, zorder=3,
                       label="bound" if j == 0 else None)
        ax.axhline(1.0, color="0.3", lw=0.9, ls=":")
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8 if len(names) > 20 else 9)
        ax.set_ylabel("speedup over dense (x)")
        ax.grid(axis="x", visible=False)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.set_title(title)
        return _save(fig, path)


def plot_training_dynamics(df, path: str | Path, title: str) -> Path:
    """Activation ratio (left) and held-out perplexity (right) against the tokens seen, one line
    per ``activation``: the training-dynamics study's table (columns ``activation``,
    ``tokens_seen``, ``activation_ratio``, ``cett_ratio``, ``eval_perplexity``)."""
    with _rc():
        fig, axes = _figure(1, 2, width=6.0, height=4.4)
        left, right = axes[0]
        colors = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(dict.fromkeys(df["activation"]))}
        for name, g in df.groupby("activation", sort=False):
            g = g.sort_values("tokens_seen")
            c = colors[name]
            left.plot(g["tokens_seen"], g["activation_ratio"], marker="o", color=c, label=f"{name}: activation ratio")
            if name != "silu":  # the SiLU model's activation ratio is already its CETT ratio
                left.plot(g["tokens_seen"], g["cett_ratio"], marker=".", ls="--", color=c, label=f"{name}: CETT ratio")
            right.plot(g["tokens_seen"], g["eval_perplexity"], marker="o", color=c, label=name)
        left.set_xscale("log")
        left.set_xlabel("tokens seen (bytes, log)")
        left.set_ylabel("activation ratio (1 - sparsity)")
        left.set_ylim(0, 1)
        left.legend()
        right.set_xscale("log")
        right.set_yscale("log")
        right.set_xlabel("tokens seen (bytes, log)")
        right.set_ylabel("held-out perplexity per byte (log)")
        right.legend()
        from matplotlib.ticker import NullFormatter

        for axis in (left.xaxis, right.xaxis, right.yaxis):  # log minor labels crowd a short range
            axis.set_minor_formatter(NullFormatter())
        fig.suptitle(title)
        return _save(fig, path)


def plot_silicon(cases, path: str | Path, *, title: str, tolerance: float) -> Path:
    """The model against measured silicon: left, each kernel case's modelled latency (kernel plus
    harness, filled; kernel alone, hollow) over its measurement, with the ``tolerance`` band;
    right, the all-reduce's latency against message size, measured and modelled
    (:mod:`sparsesim.references.silicon` cases)."""
    kernels = [c for c in cases if c.group != "all_reduce"]
    collective = sorted((c for c in cases if c.group == "all_reduce"), key=lambda c: int(c.case.split()[0]))
    with _rc():
        fig, axes = _figure(1, 2 if collective and kernels else 1, width=5.6, height=4.6)
        panels = iter(axes[0])
        if kernels:
            ax = next(panels)
            groups = list(dict.fromkeys(c.group for c in kernels))
            colors = color_map(groups)
            lo = min(min(c.measured_s, c.kernel_s) for c in kernels) * 1e6 / 1.5
            hi = max(max(c.measured_s, c.model_s) for c in kernels) * 1e6 * 1.5
            line = np.geomspace(lo, hi, 50)
            ax.fill_between(line, line * (1 - tolerance), line * (1 + tolerance), color="0.88", lw=0,
                            label=f"within {100 * tolerance:g}%")
            ax.plot(line, line, color="0.4", lw=0.8)
            for i, g in enumerate(groups):
                mine = [c for c in kernels if c.group == g]
                x = [c.measured_s * 1e6 for c in mine]
                ax.scatter(x, [c.model_s * 1e6 for c in mine], color=colors[g], marker=MARKERS[i % len(MARKERS)],
                           s=28, label=f"{g}: kernel + harness", zorder=3)
                ax.scatter(x, [c.kernel_s * 1e6 for c in mine], facecolors="none", edgecolors=colors[g],
                           marker=MARKERS[i % len(MARKERS)], s=28, zorder=3)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlim(lo, hi)
            ax.set_ylim(lo, hi)
            ax.set_xlabel("measured latency (µs)")
            ax.set_ylabel("modelled latency (µs); hollow: kernel alone")
            ax.legend(fontsize=7, loc="upper left")
        if collective:
            ax = next(panels)
            size = [int(c.case.split()[0]) for c in collective]
            ax.plot(size, [c.measured_s * 1e6 for c in collective], marker="o", ms=3, label="measured")
            ax.plot(size, [c.model_s * 1e6 for c in collective], marker="x", ms=4, ls="--", label="model")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("all-reduce size per GPU (bytes)")
            ax.set_ylabel("latency (µs)")
            ax.legend(fontsize=8)
        fig.suptitle(title)
        return _save(fig, path)
