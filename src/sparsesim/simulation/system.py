"""A run on a system of several chips (``system.chips > 1``; docs/scale-out.md).

The workload is split (:func:`sparsesim.workloads.parallel.split_workload`): one chip's
GEMMs of each pipeline stage go through the single-chip engine (dense or sparse replay, so
sparsity applies to each shard), and every collective becomes a row of its own, costed on the
interconnect (:mod:`sparsesim.hardware.interconnect`). The collectives of tensor and expert
parallelism sit between an op and the next op that needs their result, so none of them
overlaps compute: each is on the critical path, as its row's ``cycles``.

:func:`system_totals` turns the rows into latency (the critical path of a batch through the
pipeline) and throughput, which a plain sum of the rows no longer gives once stages overlap:
with stage ``s`` busy ``T_s`` over a phase and ``m`` micro-batches, the phase takes
``sum_s T_s/m + (m-1) max_s T_s/m`` (the micro-batches enter one after another and the busiest
stage paces them; ``m = 1``: every stage in turn).
"""

from __future__ import annotations

import dataclasses
import math

from sparsesim.hardware.config import AccelConfig
from sparsesim.hardware.interconnect import collective_cost
from sparsesim.simulation.engine import REPEATED, op_phases
from sparsesim.workloads.ops import Workload
from sparsesim.workloads.llm_networks import DECODERS
from sparsesim.workloads.parallel import Collective, Split, chip_memory, split_network, split_workload


def split_of(cfg: AccelConfig) -> Split:
    s = cfg.system
    return Split(tp=s.tensor_parallel, pp=s.pipeline_parallel, dp=s.data_parallel, ep=s.expert_parallel,
                 micro_batches=s.micro_batches, element_bytes=cfg.array.element_bytes)


def chip_footprint(cfg: AccelConfig, llm: dict | None, decodes: bool) -> dict | None:
    """What one chip holds of a shape-only LLM run (``llm``: the workload's ``meta["llm"]``):
    :func:`~sparsesim.workloads.parallel.chip_memory` with the KV cache at the run's last
    position (the prompt, plus the generated tokens where the run ``decodes``), and, where
    ``dram.capacity_bytes`` states the chip's memory, that capacity and whether the footprint
    fits it. None for other workloads."""
    if not llm or "decoder" not in llm:
        return None
    shape = DECODERS.get(llm["decoder"], "network")
    context = llm["prompt_len"] + (llm["gen_len"] if decodes else 0)
    out = chip_memory(shape, split_of(cfg), llm["batch"], context)
    if cfg.dram.capacity_bytes:
        out["dram_capacity_bytes"] = cfg.dram.capacity_bytes
        out["fits"] = out["memory_bytes_per_chip"] <= cfg.dram.capacity_bytes
    return out


def footprint_warning(cfg: AccelConfig, llm: dict | None, decodes: bool) -> str | None:
    """The one-line warning of a run whose per-chip footprint exceeds ``dram.capacity_bytes``."""
    mem = chip_footprint(cfg, llm, decodes)
    if mem is None or mem.get("fits", True):
        return None
    return (f"{llm['decoder']} needs {mem['memory_bytes_per_chip'] / 2**30:.1f} GiB per chip "
            f"({mem['weight_bytes_per_chip'] / 2**30:.1f} GiB of weights, {mem['kv_cache_bytes_per_chip'] / 2**30:.1f} "
            f"GiB of KV cache) on {cfg.system.chips} chip(s), more than dram.capacity_bytes "
            f"({cfg.dram.capacity_bytes / 2**30:.1f} GiB); the timing assumes it fits")


def _subset(workload: Workload, keep: list[int]) -> Workload:
    meta = dict(workload.meta)
    for key in ("phases_by_op", "repeats", "stages"):
        if key in meta:
            meta[key] = tuple(meta[key][i] for i in keep)
    steps = None if workload.time_steps is None else tuple(workload.time_steps[i] for i in keep)
    return dataclasses.replace(workload, ops=tuple(workload.ops[i] for i in keep), time_steps=steps, meta=meta)


def chips_of(stage: int, cfg: AccelConfig) -> str:
    """The chips of replica 0 whose work a row of ``stage`` stands for (chip ``(replica * pp +
    stage) * tp + rank``)."""
    tp = cfg.system.tensor_parallel
    first = stage * tp
    return str(first) if tp == 1 else f"{first}-{first + tp - 1}"


def collective_row(op: Collective, phase, cfg: AccelConfig, template: dict, label: str) -> dict:
    """The row of one collective on one chip of its group: its time on the links (all on the
    critical path), the bytes the chip sends, and their energy."""
    cost = collective_cost(op.collective, op.nbytes, op.group, cfg.system.interconnect)
    cycles = math.ceil(cost.seconds * cfg.clock_hz)
    row = {key: 0 for key in REPEATED}
    row.update({
        "name": op.name, "kind": op.collective, "phase": str(phase), "M": None, "N": None, "K": None, "count": 1,
        "dataflow": "interconnect", "sparsity": label, "cycles": cycles, "dense_cycles": cycles,
        "stall_cycles": cycles,  # the chip's arrays wait on the links
        "speedup": 1.0, "compute_speedup": 1.0, "work_ratio": 1.0, "bound_speedup": 1.0,
        "bw_bound_cycles": cycles, "bound_cycles": cycles, "utilization": 0.0,
        "latency_s": cycles / cfg.clock_hz, "energy_pj": cost.energy_pj, "dense_energy_pj": cost.energy_pj,
        "energy_breakdown_pj": {**{k: 0.0 for k in template["energy_breakdown_pj"]}, "interconnect": cost.energy_pj},
        "events": {k: 0 for k in template["events"]}, "mapping": "",
        "collective_bytes": cost.bytes_sent, "collective_group": op.group, "collective_algorithm": cost.algorithm,
        "collective_steps": cost.steps, "collective_cycles": cycles,
    })
    for key, value in template.items():  # the feature columns every row carries, at their defaults
        row.setdefault(key, None if not isinstance(value, (int, float)) or isinstance(value, bool) else 0)
    return row


def system_rows(workload: Workload, cfg: AccelConfig, chip_rows) -> list[dict]:
    """The rows of ``workload`` on ``cfg``'s system: ``chip_rows(workload)`` simulates one
    chip's GEMMs (the single-chip path); collectives are costed here. Rows in op order, each
    with its ``stage`` and ``chips``, scaled by their ``repeat``."""
    if "network" in workload.meta and "llm" not in workload.meta:
        split = split_network(workload, split_of(cfg))
        repeats = tuple(1 for _ in split.ops)
        split = dataclasses.replace(split, meta={**split.meta, "repeats": repeats})
    else:
        split = split_workload(workload, split_of(cfg))
    gemms = [i for i, op in enumerate(split.ops) if not isinstance(op, Collective)]
    rows = chip_rows(_subset(split, gemms))
    if not rows:
        return rows
    template = rows[0]
    label = template["sparsity"]
    by_op = {}
    it = iter(rows)
    for i in gemms:
        by_op[i] = [next(it) for _ in op_phases(split, i)]
    repeats = split.meta["repeats"]
    stages = split.meta["stages"]
    out = []
    for i, op in enumerate(split.ops):
        if isinstance(op, Collective):
            found = []
            for phase in op_phases(split, i):
                row = collective_row(op, phase, cfg, template, label)
                k = repeats[i]
                row["repeat"] = k
                for key in (*REPEATED, "collective_bytes", "collective_cycles"):
                    row[key] = row[key] * k
                row["energy_breakdown_pj"] = {n: v * k for n, v in row["energy_breakdown_pj"].items()}
                row["time_step"] = None if split.time_steps is None else split.time_steps[i]
                found.append(row)
        else:
            found = by_op[i]
            for row in found:
                row["energy_breakdown_pj"] = {**row["energy_breakdown_pj"], "interconnect": 0.0}
                row.setdefault("collective_bytes", 0)
        for row in found:
            row["stage"] = stages[i]
            row["chips"] = chips_of(stages[i], cfg)
        out += found
    _overlap_gradients(out, split, cfg)
    return out


def _overlap_gradients(rows: list[dict], split: Workload, cfg: AccelConfig) -> None:
    """Data-parallel training: the backward pass runs the layers last to first, and a layer's
    gradient all-reduce starts once its ``bwd_weight`` is done and the links are free, beside
    the backward work of the layers before it. Each all-reduce row keeps its whole time on the
    links as ``collective_cycles``; its ``cycles`` become the part of it after the backward pass
    has ended, the only part on the critical path."""
    grads = [r for r in rows if r.get("dataflow") == "interconnect" and r["name"].endswith(".grad_all_reduce")]
    if not grads:
        return
    backward = [r for r in rows if r["phase"] in ("bwd_data", "bwd_weight") and r.get("dataflow") != "interconnect"]
    order = []  # (op name, its backward cycles, its gradient row), last layer first
    names = {}
    for r in backward:
        names.setdefault(r["name"], 0)
        names[r["name"]] += r["cycles"]
    by_grad = {r["name"][:-len(".grad_all_reduce")]: r for r in grads}
    for name in reversed(list(names)):
        order.append((names[name], by_grad.get(name)))
    t = free = 0
    spans = []
    for cycles, grad in order:
        t += cycles
        if grad is not None:
            start = max(free, t)
            free = start + grad["collective_cycles"]
            spans.append((grad, start, free))
    end = t
    for grad, start, finish in spans:
        exposed = max(0, finish - max(start, end))
        grad["cycles"] = grad["stall_cycles"] = grad["bound_cycles"] = grad["bw_bound_cycles"] = exposed
        grad["dense_cycles"] = exposed
        grad["latency_s"] = exposed / cfg.clock_hz


def system_totals(rows: list[dict], cfg: AccelConfig, llm: dict | None) -> dict:
    """Latency, throughput and where the time goes, of a system run's rows (see the module
    docstring); ``llm``: the workload's batch and lengths (``meta["llm"]``)."""
    s = cfg.system
    m = s.micro_batches
    phases: dict[str, dict[int, float]] = {}
    for row in rows:
        phases.setdefault(row["phase"], {}).setdefault(row.get("stage", 0), 0.0)
        phases[row["phase"]][row.get("stage", 0)] += row["cycles"] / cfg.clock_hz
    latency = {}
    bubble = 0.0
    for phase, busy in phases.items():
        per = [t / m for t in busy.values()]
        latency[phase] = sum(per) + (m - 1) * max(per)
        bubble += latency[phase] - max(busy.values())
    collective_s = sum(r["latency_s"] for r in rows if r.get("dataflow") == "interconnect")
    link_s = sum(r.get("collective_cycles") or 0 for r in rows) / cfg.clock_hz
    busy_s = sum(r["latency_s"] for r in rows)
    out = {"chips": s.chips, "tensor_parallel": s.tensor_parallel, "pipeline_parallel": s.pipeline_parallel,
           "data_parallel": s.data_parallel, "expert_parallel": s.expert_parallel, "micro_batches": m,
           "latency_s": sum(latency.values()), "bubble_s": bubble, "collective_s": collective_s,
           "collective_link_s": link_s,
           "collective_share": collective_s / busy_s if busy_s else 0.0,
           "collective_bytes": sum(r.get("collective_bytes") or 0 for r in rows)}
    for phase, seconds in latency.items():
        out[f"{phase}_latency_s"] = seconds
    out.update(chip_footprint(cfg, llm, "decode" in phases) or {})
    if llm is not None and "prompt_len" not in llm:  # a training network: samples through a step
        out["samples_per_s"] = llm["batch"] / out["latency_s"] if out["latency_s"] else 0.0
    elif llm is not None:
        if "prefill" in latency:
            out["prefill_tokens_per_s"] = llm["batch"] * llm["prompt_len"] / latency["prefill"]
        if "decode" in latency and llm["gen_len"]:
            out["decode_tokens_per_s"] = llm["batch"] * llm["gen_len"] / latency["decode"]
    return out
