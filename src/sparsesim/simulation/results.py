"""The result table (docs/design.md section 3.4): one row per (run, op, phase), fixed schema, checked.

Rows from :func:`sparsesim.simulation.run.simulate_rows` are checked for the engine's invariants, then
stamped with the run's identity (``run_id``, preset name, energy table) and the flattened
config (``cfg.*`` columns). Files are written atomically (temporary file, then rename; with the user's umask) and an
existing file is never replaced unless the caller says so.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from sparsesim.hardware.config import AccelConfig, flatten, to_dict
from sparsesim.hardware.energy import energy_table_name
from sparsesim.core.atomic import atomic_write
from sparsesim.core.errors import InputError
from sparsesim.core.outputs import check_output_path
from sparsesim.dataflows.array_kind import macs_per_cycle

ADDITIVE = ("cycles", "compute_cycles", "stall_cycles", "overhead_cycles", "dense_cycles", "dense_compute_cycles", "mac_bound_cycles", "bw_bound_cycles", "bound_cycles",
            "macs_dense", "macs_effectual", "folds", "tiles", "dram_bytes", "dram_read_bytes", "dram_write_bytes",
            "sram_bytes", "latency_s", "energy_pj", "dram_compulsory_bytes", "dram_lower_bound_bytes",
            "psum_spill_bytes")
"""Row fields that add up across ops and phases."""


def work_ratio(macs_dense: int, macs_effectual: int) -> float:
    """``macs_dense / macs_effectual``; ``inf`` when no MAC is effectual (an all-zero operand that
    zero-skipping removes whole), not the dense count over 1 that would read as a real ratio."""
    if macs_effectual:
        return macs_dense / macs_effectual
    return math.inf if macs_dense else 1.0


class ResultInvariantError(AssertionError):
    """The engine produced a row that breaks an invariant: a bug, never bad input."""


def check_row(row: dict) -> None:
    """Assert the engine's output invariants on one row."""
    problems = []
    if not 0 <= row["macs_effectual"] <= row["macs_dense"]:
        problems.append("macs_effectual outside [0, macs_dense]")
    if not 0.0 <= row["utilization"] <= 1.0 + 1e-12:
        problems.append(f"utilization {row['utilization']} outside [0, 1]")
    if row["stall_cycles"] < 0 or row["cycles"] != row["compute_cycles"] + row["stall_cycles"] + row["overhead_cycles"]:
        problems.append("cycles != compute_cycles + stall_cycles + overhead_cycles")
    if row["cycles"] < row["bound_cycles"]:
        problems.append(f"cycles {row['cycles']} below the bound {row['bound_cycles']} (MAC and DRAM bounds)")
    if not row.get("dram_compulsory_bytes", 0) <= row.get("dram_lower_bound_bytes", 0) <= row["dram_bytes"]:
        problems.append("dram_bytes below the DRAM lower bound (or the bound below the compulsory bytes)")
    for key in ("cycles", "compute_cycles", "stall_cycles", "dense_cycles", "dram_bytes"):
        if not isinstance(row[key], int):
            problems.append(f"{key} is not a whole number")
    if problems:
        raise ResultInvariantError(f"{row['name']}/{row['phase']}: " + "; ".join(problems))


def total_row(rows: list[dict], cfg: AccelConfig, llm: dict | None = None) -> dict:
    """The ``total`` object of ``--json``: sums, and ratios recomputed from the sums. On a
    system of several chips ``latency_s`` is the critical path through the pipeline and
    ``system`` holds it with the throughput (:func:`sparsesim.simulation.system.system_totals`;
    ``llm``: the LLM workload's batch and lengths)."""
    total: dict = {"name": "total", "phase": "all", "dataflow": ",".join(sorted({r["dataflow"] for r in rows}))}
    for dim in ("M", "N", "K"):
        total[dim] = None
    for key in ADDITIVE:
        total[key] = sum(r[key] for r in rows)
    cycles = total["cycles"] or 1
    total["speedup"] = total["dense_cycles"] / cycles
    total["compute_speedup"] = total["dense_compute_cycles"] / max(total["compute_cycles"], 1)
    total["work_ratio"] = work_ratio(total["macs_dense"], total["macs_effectual"])
    # ops run one after another, so the sum of the rows' bounds bounds the total
    total["bound_speedup"] = total["dense_cycles"] / max(total["bound_cycles"], 1)
    total["utilization"] = total["macs_effectual"] / (cycles * macs_per_cycle(cfg) * cfg.chip.cores)
    keys = rows[0]["energy_breakdown_pj"].keys() if rows else ()
    total["energy_breakdown_pj"] = {k: sum(r["energy_breakdown_pj"][k] for r in rows) for k in keys}
    if cfg.system.chips > 1 and rows:
        from sparsesim.simulation.system import system_totals

        total["system"] = system_totals(rows, cfg, llm)
        total["latency_s"] = total["system"]["latency_s"]
    return total


def stamp(rows: list[dict], cfg: AccelConfig, run_id: str, workload: str, *, accel_label: str | None = None) -> list[dict]:
    """Check rows and add the run's identity to each (returns new dicts).

    ``accel_label`` names the design in the ``accel`` field (default the config's name); the
    API passes the name plus the ``--set`` overrides, e.g. ``edge32 (array.rows=16)``.
    """
    for row in rows:
        check_row(row)
    ident = {"run_id": run_id, "workload": workload, "accel": accel_label or cfg.name,
             "energy_table": energy_table_name(cfg)}
    return [{**ident, **row} for row in rows]


def to_frame(rows: list[dict], cfg: AccelConfig):
    """A pandas DataFrame with ``energy_pj.*``, ``events.*`` and ``cfg.*`` columns flattened."""
    import pandas as pd

    flat_cfg = {f"cfg.{k}": v for k, v in flatten(to_dict(cfg)).items()}
    records = []
    for row in rows:
        rec = {k: v for k, v in row.items() if k not in ("energy_breakdown_pj", "events")}
        rec.update({f"energy_pj.{k}": v for k, v in row["energy_breakdown_pj"].items()})
        rec.update({f"events.{k}": v for k, v in row.get("events", {}).items()})
        rec.update(flat_cfg)
        records.append(rec)
    return pd.DataFrame.from_records(records)


def check_writable(path: Path, overwrite: bool, *, field: str = "--out", inputs=()) -> None:
    """Refuse a table file we may not write, before any work is done.

    ``inputs``: the run's ``(flag, path)`` inputs, which the table may not replace
    (:func:`sparsesim.core.outputs.check_output_path`).
    """
    if path.suffix not in (".parquet", ".csv"):
        raise InputError(f"{field}: {path}: expected a .parquet or .csv file name")
    check_output_path(path, field=field, kind="file", inputs=inputs, parent_must_exist=True)
    if path.exists() and not overwrite:
        raise InputError(f"{field}: {path} exists; pass --overwrite to replace it")


def write_table(frame, path: Path) -> None:
    """Write ``frame`` as Parquet or CSV atomically (a reader never sees half a file)."""
    if path.suffix == ".parquet":
        atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))
    else:
        atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))


def to_json(rows: list[dict], total: dict) -> str:
    """``{"layers": [...], "total": {...}}`` (docs/design.md section 3.1).

    A number that is not finite (``work_ratio`` when no MAC is effectual is ``inf``) is written
    as ``null``: JSON has no Infinity, and strict parsers refuse Python's bare ``Infinity``.
    """
    return json.dumps(_finite({"layers": rows, "total": total}), indent=1, default=_json_default, allow_nan=False)


def _finite(value):
    """``value`` with every non-finite float (Python or NumPy) replaced by ``None``."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) or (hasattr(value, "dtype") and getattr(value.dtype, "kind", "") == "f"
                                    and getattr(value, "ndim", 1) == 0):
        return None if not math.isfinite(float(value)) else value
    return value


def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
