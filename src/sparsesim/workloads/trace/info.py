"""A readable summary of a trace (``sparsesim trace info DIR``): shapes, sizes and sparsity.

Reads every tensor once. Zero fractions are exact counts of ``x == 0``. For sequence traces
the delta density of a layer's input at threshold θ is the fraction of elements with
``|x_t - x_{t-1}| >= θ`` over all pairs of consecutive time steps of the same layer in the
same step; an element that did not change at all is never counted, so θ = 0 gives the
fraction that changed (docs/design.md section 1: an unchanged element sends nothing even at θ = 0).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from sparsesim.workloads.gemm import ALL_PHASES, PHASES
from sparsesim.workloads.trace.format import Operand
from sparsesim.workloads.trace.reader import Trace

DELTA_THRESHOLDS: tuple[float, ...] = (0.0, 0.01, 0.05, 0.1)
_PHASE_LETTER = {"fwd": "F", "bwd_data": "D", "bwd_weight": "W", "prefill": "P", "decode": "G"}


def delta_density(prev: np.ndarray, now: np.ndarray, threshold: float) -> float:
    """Fraction of elements that changed by at least ``threshold`` (and changed at all)."""
    d = np.abs(now - prev)
    return float(((d >= threshold) & (d > 0)).mean())


def coverage_lines(capture: dict) -> list[str]:
    """What share of the model's forward MACs the trace's ops hold, and what was not recorded.

    Reads ``capture.coverage`` (written by PyTorch capture, see
    :mod:`sparsesim.workloads.trace.format`); traces written without it (imports, synthetic
    traces, older captures) say nothing or that it is unknown.
    """
    cov = capture.get("coverage")
    if not isinstance(cov, dict):
        return ["MAC coverage: unknown (not measured when this trace was captured)"] if "torch" in capture else []
    total, recorded = cov.get("macs_fwd_total", 0), cov.get("macs_fwd_recorded", 0)
    share = recorded / total if total else 1.0
    steps = cov.get("steps", 1)
    lines = [f"MAC coverage: {share:.1%} of the model's forward MACs are in the trace ({recorded:,} of {total:,} "
             f"over {steps} step{'s' if steps != 1 else ''})"]
    skipped = cov.get("skipped") or []
    if skipped:
        lines.append("not recorded (no GEMM lowering; their backward, in training, is missing too):")
        lines += [f"  {s['module']}: {s['function']}, {s['calls']} call{'s' if s['calls'] != 1 else ''}, "
                  f"{s['macs_fwd']:,} MACs ({s['macs_fwd'] / total:.1%})" for s in skipped]
    return lines


def _table(head: tuple[str, ...], rows: list[tuple[str, ...]], left: int = 2) -> list[str]:
    """Columns padded to width; the first ``left`` columns left-aligned, the rest right-aligned."""
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def fmt(row: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    return [fmt(head), "-" * (sum(widths) + 2 * (len(widths) - 1)), *(fmt(r) for r in rows)]


def _gemm_text(op, phase) -> str:
    g = op.gemm(phase)
    return f"{g.M}x{g.N}x{g.K}" + (f"*{g.count}" if g.count > 1 else "")


def _columns(phases) -> tuple:
    """The phases shown in the fwd, bwd_data and bwd_weight columns: an inference op's
    forward GEMM (prefill or decode) goes in the fwd column."""
    forward = next((p for p in phases if p.forward), PHASES[0])
    return (forward, *PHASES[1:])


def describe(trace: Trace) -> str:
    """The summary table of ``trace`` as text (several lines, no trailing newline)."""
    total_bytes = sum(trace.file_bytes.values())
    cap = trace.capture
    lines = [f"trace {trace.path}: schema {trace.manifest['schema_version']}, storage {trace.storage.name}, "
             f"{len(trace.file_bytes)} file(s), {total_bytes / 2**20:.2f} MiB",
             "capture: " + (", ".join(f"{k}={v}" for k, v in cap.items() if not isinstance(v, (dict, list)))
                            or "(no settings recorded)")]
    kinds = defaultdict(int)
    for r in trace.ops:
        kinds[r.op.kind] += 1
    lines.append(f"ops: {len(trace.ops)} ({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))}), "
                 f"{len(trace.entries)} tensors, steps {sorted({r.step for r in trace.ops})}")
    lines += coverage_lines(cap)
    lines.append("")

    zero: dict[str, float] = {}
    owned: set[str] = set()
    rows = []
    show_t = trace.is_sequence
    for r in trace.ops:
        own_bytes = 0
        for name in r.tensors.values():
            if name not in owned:  # a shared tensor (weights across time steps) counts once
                owned.add(name)
                own_bytes += trace.entries[name].nbytes
        fractions = []
        for role in (Operand.INPUT, Operand.WEIGHT, Operand.GRAD_OUTPUT):
            name = r.tensors.get(role)
            if name is None:
                fractions.append("-")
                continue
            if name not in zero:
                zero[name] = float((trace.tensor(name) == 0).mean())
            fractions.append(f"{zero[name]:.1%}")
        rows.append((r.name, r.op.kind, str(r.step), *(["-" if r.time_step is None else str(r.time_step)] * show_t),
                     "".join(_PHASE_LETTER[str(p)] for p in ALL_PHASES if p in r.phases),
                     *(_gemm_text(r.op, p) if p in r.phases else "-" for p in _columns(r.phases)),
                     f"{own_bytes / 1024:,.1f}", *fractions))
    head = ("op", "kind", "step", *(["t"] * show_t), "phases", "fwd MxNxK", "bwd_data MxNxK", "bwd_weight MxNxK",
            "KiB", "zero in", "zero w", "zero dY")
    lines += _table(head, rows)
    lines.append("phases: F fwd, D bwd_data, W bwd_weight, P prefill, G decode (its GEMM in the fwd column); MxNxK*c is c GEMMs (groups or batch); "
                 "KiB counts a shared tensor at its first op")

    if show_t:
        lines += ["", "delta density of each layer's input: fraction of elements with |x_t - x_{t-1}| >= θ "
                      "(and changed), over consecutive time steps"]
        layers = defaultdict(list)
        for r in trace.ops:
            if r.time_step is not None and Operand.INPUT in r.tensors:
                # an input that changes shape between steps (attention over a growing KV cache) has no delta
                layers[(r.name, r.step, r.op.input_shape)].append(r)
        drows = []
        for (name, step, _), recs in layers.items():
            recs.sort(key=lambda r: r.time_step)
            if len(recs) < 2:
                continue
            fired = np.zeros(len(DELTA_THRESHOLDS))
            prev = trace.operand(recs[0], Operand.INPUT)
            for r in recs[1:]:
                now = trace.operand(r, Operand.INPUT)
                fired += [delta_density(prev, now, th) for th in DELTA_THRESHOLDS]
                prev = now
            drows.append((name, str(step), str(len(recs)), *(f"{f / (len(recs) - 1):.1%}" for f in fired)))
        if drows:
            lines += _table(("layer", "step", "time steps", *(f"θ={th:g}" for th in DELTA_THRESHOLDS)), drows)
        else:
            lines.append("(no layer has two or more time steps)")
    return "\n".join(lines)
