"""What every case study shares: trace capture with reuse, runs, and Markdown tables."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sparsesim.core.errors import InputError
from sparsesim.core.outputs import check_output_path
from sparsesim.core.registry import Registry
from sparsesim.hardware.config import parse_override
from sparsesim.hardware.presets import preset_mapping
from sparsesim.simulation.assemble import assemble_run, build_config
from sparsesim.workloads.capture import capture_zoo
from sparsesim.workloads.capture.llm import InferenceCapture, capture_llm
from sparsesim.workloads.gemm import Phase
from sparsesim.workloads.ops import Workload
from sparsesim.workloads.trace import load_trace


@dataclass(frozen=True, slots=True)
class Study:
    """A registered case study: ``run(out, traces, quick, **options) -> report path``.

    ``options`` names the extra keyword arguments ``run`` takes (``steps``, ``seed``); the
    command line passes only those, so a flag a study does not take is refused."""

    name: str
    summary: str
    run: Callable[..., Path]
    options: tuple[str, ...] = ()


log = logging.getLogger(__name__)

STUDIES: Registry[Study] = Registry("study")


def trace_for(model: str, traces: Path, *, mode: str, batch: int, steps: int = 1, nm: str | None = None,
              seed: int = 0, warmup_steps: int | None = None, image_size: int | None = None,
              layers: int | None = None, dtype: str = "fp32") -> Path:
    """Capture zoo ``model`` into ``traces/<key>`` once; later calls reuse the directory.

    ``image_size``, ``layers`` and ``dtype`` are :func:`capture_zoo`'s; they enter the cache key
    only when they differ from the defaults, so traces captured before they existed stay valid.
    """
    # nm_mode, the recorded master weight and the thread count (the tensors' last bits depend on it)
    # are part of what a cached trace must match
    settings = {"model": model, "mode": mode, "batch": batch, "steps": steps, "nm": nm, "seed": seed,
                "warmup": warmup_steps, "nm_mode": "bdwp+master" if nm else None, "threads": 1}
    extra = {"image_size": image_size, "layers": layers, "dtype": None if dtype == "fp32" else dtype}
    settings.update({k: v for k, v in extra.items() if v is not None})
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    size = f"-{image_size}" if image_size else ""
    path = traces / f"{model}{size}-{mode}-{nm.replace(':', 'of') if nm else 'dense'}-{key}"
    if (path / "manifest.json").exists():
        load_trace(path)  # structure check; tensors are validated as they are read
        return path
    traces.mkdir(parents=True, exist_ok=True)
    log.info("capturing %s (%s, batch %d, %s) into %s", model, mode, batch, f"N:M {nm}" if nm else "dense", path)
    return capture_zoo(model, steps=steps, batch=batch, out=path, mode=mode, nm=nm, seed=seed,
                       warmup_steps=warmup_steps, threads=1, progress=False, image_size=image_size, layers=layers,
                       dtype=dtype)


def llm_trace_for(model: str, traces: Path, *, prompt_len: int, gen_len: int, layers: str | None = None,
                  sample_steps: int = 1, seed: int = 0) -> Path:
    """Capture zoo decoder ``model``'s prefill and ``gen_len`` decode steps into ``traces/<key>``
    once (``layers``: regular expression of the op names recorded); later calls reuse it."""
    spec = InferenceCapture(mode="decode", prompt_len=prompt_len, gen_len=gen_len, layers=layers,
                            sample_steps=sample_steps, seed=seed)
    key = hashlib.sha256(json.dumps({"model": model, **spec.settings()}, sort_keys=True).encode()).hexdigest()[:10]
    path = traces / f"{model}-decode-p{prompt_len}g{gen_len}-{key}"
    if (path / "manifest.json").exists():
        load_trace(path)  # structure check; tensors are validated as they are read
        return path
    traces.mkdir(parents=True, exist_ok=True)
    log.info("capturing %s (prompt %d, %d decode steps, ops %s) into %s", model, prompt_len, gen_len,
             layers or "all", path)
    return capture_llm(out=path, spec=spec, model=model, progress=False)


def run_workload(workload: Workload, accel: str, *, sets: tuple[str, ...] = (), sparsity: list[dict] | None = None,
                 dataflow: str = "best"):
    """Simulate ``workload`` on preset ``accel`` with overrides and features: the result frame."""
    pairs = [parse_override(s) for s in sets] + ([("sparsity", sparsity)] if sparsity else [])
    cfg = build_config(preset_mapping(accel), pairs)
    log.info("simulating %s on %s%s, %s, dataflow %s", workload.name, accel, f" ({', '.join(sets)})" if sets else "",
             "+".join(f"{f.get('kind')}" for f in sparsity) if sparsity else "dense", dataflow)
    return assemble_run(workload, cfg, dataflow).to_frame()


def run_trace(trace: Path, accel: str, *, sets: tuple[str, ...] = (), sparsity: list[dict] | None = None,
              dataflow: str = "best", phases: tuple[Phase, ...] | None = None, label: str = ""):
    """Simulate ``trace`` on ``accel``; returns the result frame with a ``config`` column."""
    frame = run_workload(load_trace(trace).workload(phases), accel, sets=sets, sparsity=sparsity, dataflow=dataflow)
    frame["config"] = label or frame["sparsity"].iloc[0]
    return frame


def provenance(*frames) -> str:
    """The energy table(s) and DRAM model(s) of every result row of ``frames``, as a report line:
    ``energy_table`` of each row, and ``cfg.dram.model`` (``simple`` where unrecorded, its
    default) with ``cfg.dram.standard`` for the banked model."""
    import pandas as pd

    given = [f for f in frames if f is not None and len(f)]
    rows = pd.concat(given, ignore_index=True) if given else pd.DataFrame()
    if "energy_table" not in rows or rows["energy_table"].isna().all():
        return "**Energy table and DRAM model.** Not recorded: the rows hold no `energy_table`."
    tables = sorted(set(rows["energy_table"].dropna().astype(str)))
    model = rows["cfg.dram.model"].fillna("simple") if "cfg.dram.model" in rows else pd.Series(["simple"] * len(rows))
    standard = rows["cfg.dram.standard"].fillna("") if "cfg.dram.standard" in rows else pd.Series([""] * len(rows))
    drams = sorted({f"`{m}` ({s})" if m == "banked" and s else f"`{m}`" for m, s in zip(model, standard)})
    simple = " (a bandwidth and a fixed latency per transfer)" if drams == ["`simple`"] else ""
    return (f"**Energy table and DRAM model.** Energy: `{'`, `'.join(tables)}`; DRAM model: "
            f"{', '.join(drams)}{simple}, read from the result rows (`energy_table`, `cfg.dram.model`).")


def md_table(frame, columns: dict[str, str], formats: dict[str, str] | None = None) -> str:
    """A Markdown table of ``frame``'s ``columns`` (``{column: header}``)."""
    formats = formats or {}
    head = "| " + " | ".join(columns.values()) + " |"
    rule = "|" + "|".join("---" if i == 0 else "---:" for i in range(len(columns))) + "|"
    lines = [head, rule]
    for _, row in frame.iterrows():
        cells = []
        for col in columns:
            value = row[col]
            fmt = formats.get(col)
            cells.append(format(value, fmt) if fmt and value == value and value is not None else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def prepare_out(out: Path, overwrite: bool) -> None:
    """Refuse an output directory we cannot write, or one that holds something else without ``overwrite``.

    With ``overwrite`` the study writes its files over those of an earlier run and leaves
    every other file in ``out`` alone (nothing is deleted).
    """
    check_output_path(out, field="--out", kind="dir")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise InputError(f"--out: {out} is not empty; pass --overwrite to regenerate the report there")
    out.mkdir(parents=True, exist_ok=True)


def phase_totals(frame, by: list[str]):
    """Sum cycles per group and recompute speedups from the sums (never average ratios)."""
    cols = ["cycles", "dense_cycles", "compute_cycles", "dense_compute_cycles", "macs_dense", "macs_effectual",
            "energy_pj", "dense_energy_pj", "stall_cycles", "dram_bytes", "bound_cycles", "mac_bound_cycles"]
    g = frame.groupby(by, sort=False)[cols].sum().reset_index()
    g["speedup"] = g["dense_cycles"] / g["cycles"]
    g["compute_speedup"] = g["dense_compute_cycles"] / g["compute_cycles"]
    g["work_ratio"] = g["macs_dense"] / g["macs_effectual"]
    # rows run in sequence, so summed bounds bound the sums; compute time alone is bounded by the MACs
    g["bound_speedup"] = g["dense_cycles"] / g["bound_cycles"]
    g["compute_bound_speedup"] = g["dense_compute_cycles"] / g["mac_bound_cycles"]
    g["energy_saving"] = 1 - g["energy_pj"] / g["dense_energy_pj"]
    return g


# ---------------------------------------------------------------- prose from data
# Report sentences are built from the numbers they describe: these helpers turn numbers into
# the words a claim needs (a range, a direction, a comparison), so no sentence is fixed text
# that a different result could contradict.


def span(values, fmt: str = ".2f", unit: str = "x") -> str:
    """``"1.02x"`` or ``"1.02x to 1.70x"``: the range of ``values``."""
    lo, hi = float(min(values)), float(max(values))
    if format(lo, fmt) == format(hi, fmt):
        return f"{lo:{fmt}}{unit}"
    return f"{lo:{fmt}}{unit} to {hi:{fmt}}{unit}"


def trend(values, tol: float = 1e-9) -> str:
    """How a sequence moves: ``"grows"``, ``"falls"``, ``"stays flat"`` or ``"is not monotonic"``."""
    v = [float(x) for x in values]
    steps = [b - a for a, b in zip(v, v[1:])]
    if all(abs(s) <= tol for s in steps):
        return "stays flat"
    if all(s >= -tol for s in steps):
        return "grows"
    if all(s <= tol for s in steps):
        return "falls"
    return "is not monotonic"


def relation(a: float, b: float, rel: float = 0.05) -> str:
    """``a`` against ``b``: ``"above"``, ``"below"`` or ``"about equal to"`` (within ``rel``)."""
    if abs(a - b) <= rel * abs(b):
        return "about equal to"
    return "above" if a > b else "below"


def write_report(out: Path, text: str, tables: dict) -> Path:
    """Write ``tables`` (``{file name: frame}``) as CSV and ``text`` as ``README.md``; the report path."""
    for name, frame in tables.items():
        frame.to_csv(out / name, index=False)
    report = out / "README.md"
    report.write_text(text)
    return report
