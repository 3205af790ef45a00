"""Scale-out: LLM prefill and decode on systems of chips, per parallel strategy.

``sparsesim study scale-out --out reports/scale-out``. Shape-only Llama-2-7B, Llama-2-70B and
Mixtral-8x7B (docs/scale-out.md) on ``dc128`` chips (one 128x128 core, with the a100
preset's NVLink links), ``a100`` chips (108 SM cores) and ``h100`` chips (132), split by tensor,
pipeline, data and expert parallelism; then the same with 50% activation sparsity
(``zero_skip:input:skipping`` on the shape-only model's synthetic operands) on ``dc128``
chips. Every number in the prose is computed from the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sparsesim import plots
from sparsesim.hardware.config import parse_override
from sparsesim.hardware.presets import preset_mapping
from sparsesim.simulation.assemble import assemble_run, build_config
from sparsesim.simulation.system import chip_footprint
from sparsesim.studies.common import STUDIES, Study, log, md_table, provenance, write_report
from sparsesim.workloads.llm_networks import llm_workload

NVLINK = ("system.interconnect.topology=switch", "system.interconnect.link_bandwidth_bytes_per_s=2.5e10",
          "system.interconnect.links=12", "system.interconnect.link_latency_s=3.4e-6",
          "system.interconnect.algorithm=auto")
"""The a100 preset's links (12 NVLink-3 links of 25 GB/s a direction, NCCL's 3.4 us a step), given
to the dc128 chips, which have none of their own."""

ACCELS = ("dc128", "a100", "h100")
SPARSE = "zero_skip:input:skipping"


@dataclass(frozen=True, slots=True)
class Strategy:
    label: str
    tp: int = 1
    pp: int = 1
    dp: int = 1
    ep: int = 1
    batch: int = 1

    @property
    def chips(self) -> int:
        return self.tp * self.pp * self.dp

    def sets(self) -> tuple[str, ...]:
        return (f"system.chips={self.chips}", f"system.tensor_parallel={self.tp}",
                f"system.pipeline_parallel={self.pp}", f"system.data_parallel={self.dp}",
                f"system.expert_parallel={self.ep}")


STRATEGIES = {
    "llama2_7b": (Strategy("1 chip"), Strategy("TP2", tp=2), Strategy("TP4", tp=4), Strategy("TP8", tp=8),
                  Strategy("PP2", pp=2), Strategy("PP4", pp=4)),
    "llama2_70b": (Strategy("TP4", tp=4), Strategy("TP8", tp=8), Strategy("TP4xPP2", tp=4, pp=2),
                   Strategy("TP2xPP4", tp=2, pp=4)),
    "mixtral_8x7b": (Strategy("TP4", tp=4), Strategy("TP8", tp=8),
                     Strategy("DP8xEP8 (batch 8)", dp=8, ep=8, batch=8)),
}
SPARSE_RUNS = {"llama2_7b": ("1 chip", "TP2", "TP4", "TP8"), "llama2_70b": ("TP4", "TP8")}


def _run(model: str, accel: str, s: Strategy, prompt: int, gen: int, act: float | None) -> dict:
    pairs = [parse_override(t) for t in (*s.sets(), *(NVLINK if accel == "dc128" and s.chips > 1 else ()))]
    if act is not None:
        pairs.append(("sparsity", [{"kind": "zero_skip", "target": "input", "action": "skipping"}]))
    cfg = build_config(preset_mapping(accel), pairs)
    workload = llm_workload(model, batch=s.batch, prompt_len=prompt, gen_len=gen, act_sparsity=act)
    log.info("scale-out: %s on %s, %s%s", model, accel, s.label, f", act sparsity {act}" if act else "")
    run = assemble_run(workload, cfg, "best")
    frame = run.to_frame()
    total = run.total
    sysinfo = total.get("system", {})
    decode = frame[frame["phase"] == "decode"]
    coll = decode[decode["dataflow"] == "interconnect"]["latency_s"].sum()
    busy = decode["latency_s"].sum()
    prefill_s = sysinfo.get("prefill_latency_s", frame[frame["phase"] == "prefill"]["latency_s"].sum())
    decode_s = sysinfo.get("decode_latency_s", busy)
    memory = chip_footprint(cfg, workload.meta["llm"], decodes=gen > 0)
    return {
        "model": model, "accel": accel, "strategy": s.label, "chips": s.chips, "tp": s.tp, "pp": s.pp, "dp": s.dp,
        "ep": s.ep, "batch": s.batch, "act_sparsity": act or 0.0, "prompt_len": prompt, "gen_len": gen,
        "prefill_latency_s": prefill_s, "decode_latency_s": decode_s,
        "decode_ms_per_token": 1e3 * decode_s / gen,
        "prefill_tokens_per_s": s.batch * prompt / prefill_s, "decode_tokens_per_s": s.batch * gen / decode_s,
        "decode_collective_share": coll / busy if busy else 0.0,
        "bubble_s": sysinfo.get("bubble_s", 0.0),
        "collective_bytes": float(sysinfo.get("collective_bytes", 0)),
        "energy_pj": float(frame["energy_pj"].sum()),
        "memory_gib_per_chip": memory["memory_bytes_per_chip"] / 2 ** 30,
        "fits": {True: "yes", False: "no"}.get(memory.get("fits"), "unstated"),
        "energy_table": frame["energy_table"].iloc[0],
        "cfg.dram.model": frame["cfg.dram.model"].iloc[0] if "cfg.dram.model" in frame else "simple",
    }


def compute(quick: bool) -> pd.DataFrame:
    prompt, gen = (128, 4) if quick else (512, 32)
    models = ("llama2_7b",) if quick else tuple(STRATEGIES)
    accels = ("dc128", "a100") if quick else ACCELS
    rows = []
    for model in models:
        strategies = STRATEGIES[model][:3] if quick else STRATEGIES[model]
        for accel in accels:
            for s in strategies:
                rows.append(_run(model, accel, s, prompt, gen, None))
        for s in strategies:
            if s.label in SPARSE_RUNS.get(model, ()):
                rows.append(_run(model, "dc128", s, prompt, gen, 0.5))
    return pd.DataFrame(rows)


def plot(frame: pd.DataFrame, out: Path) -> list[str]:
    dense = frame[(frame["act_sparsity"] == 0) & (frame["pp"] == 1) & (frame["dp"] == 1)]
    plots.plot_lines(dense, out / "decode_vs_chips.png", x="chips", y="decode_ms_per_token", series="accel",
                     facet="model", logy=True, title="Decode latency per token against tensor-parallel chips",
                     xlabel="chips (tensor parallel)", ylabel="decode, ms per token")
    plots.plot_lines(dense, out / "collective_share.png", x="chips", y="decode_collective_share", series="accel",
                     facet="model", percent=True, logy=False,
                     title="Share of decode time in collectives against tensor-parallel chips",
                     xlabel="chips (tensor parallel)", ylabel="collectives, % of decode time")
    return ["decode_vs_chips.png", "collective_share.png"]


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def write(frame: pd.DataFrame, figures: list[str]) -> str:
    dense = frame[frame["act_sparsity"] == 0]
    prompt, gen = int(frame["prompt_len"].iloc[0]), int(frame["gen_len"].iloc[0])
    lines = []
    for (model, accel), g in dense.groupby(["model", "accel"], sort=False):
        tp = g[(g["pp"] == 1) & (g["dp"] == 1)].sort_values("chips")
        best = g.loc[g["decode_ms_per_token"].idxmin()]
        text = (f"{model} on {accel}: the fastest decode is {best['strategy']} at "
                f"{best['decode_ms_per_token']:.2f} ms per token ({best['decode_tokens_per_s']:.0f} tokens/s)")
        if len(tp) >= 2:
            a, b = tp.iloc[0], tp.iloc[-1]
            gain = a["decode_ms_per_token"] / b["decode_ms_per_token"]
            text += (f"; from {a['strategy']} to {b['strategy']} ({b['chips'] / a['chips']:.0f}x the chips) decode "
                     f"gets {gain:.2f}x faster while the collectives' share of it goes from "
                     f"{_pct(a['decode_collective_share'])} to {_pct(b['decode_collective_share'])}")
            over = tp[tp["decode_collective_share"] >= 0.5]
            text += (f"; collectives take half of decode or more from {over.iloc[0]['strategy']} on" if len(over)
                     else "; collectives stay under half of decode up to the largest split")
        for _, p in g[g["pp"] > 1].iterrows():
            same = g[(g["pp"] == 1) & (g["chips"] == p["chips"]) & (g["dp"] == 1)]
            if len(same):
                q = same.iloc[0]
                text += (f"; {p['strategy']} ({p['chips']} chips, one micro-batch, its stages in turn) decodes at "
                         f"{p['decode_ms_per_token']:.2f} ms per token against {q['strategy']}'s "
                         f"{q['decode_ms_per_token']:.2f}")
        lines.append(text + ".")
    gpu = []
    for model, g in dense[dense["strategy"] == "TP8"].groupby("model", sort=False):
        by = {r["accel"]: r for _, r in g.iterrows()}
        if {"a100", "h100"} <= set(by):
            gpu.append(f"{model}, TP8: h100 decodes {by['a100']['decode_ms_per_token'] / by['h100']['decode_ms_per_token']:.2f}x "
                       f"as fast as a100 and prefills {by['h100']['prefill_tokens_per_s'] / by['a100']['prefill_tokens_per_s']:.2f}x "
                       f"as fast" + (f"; dc128 chips decode at {by['dc128']['decode_ms_per_token']:.2f} ms per token "
                                      f"against a100's {by['a100']['decode_ms_per_token']:.2f}" if "dc128" in by else "")
                       + ".")
    sparse_lines = []
    sp = frame[frame["act_sparsity"] > 0]
    for _, r in sp.iterrows():
        d = dense[(dense["model"] == r["model"]) & (dense["accel"] == r["accel"]) & (dense["strategy"] == r["strategy"])]
        if not len(d):
            continue
        d = d.iloc[0]
        sparse_lines.append(
            f"{r['model']} {r['strategy']} on {r['accel']}: 50% activation sparsity makes decode "
            f"{d['decode_ms_per_token'] / r['decode_ms_per_token']:.2f}x faster ({d['decode_ms_per_token']:.2f} -> "
            f"{r['decode_ms_per_token']:.2f} ms per token) and prefill "
            f"{d['prefill_latency_s'] / r['prefill_latency_s']:.2f}x; collectives go from "
            f"{_pct(d['decode_collective_share'])} to {_pct(r['decode_collective_share'])} of decode.")
    trends = []
    for model, g in sp.groupby("model", sort=False):
        gains = []
        for _, r in g.sort_values("chips").iterrows():
            d = dense[(dense["model"] == model) & (dense["accel"] == r["accel"]) & (dense["strategy"] == r["strategy"])]
            if len(d):
                gains.append((r["strategy"], d.iloc[0]["decode_ms_per_token"] / r["decode_ms_per_token"]))
        if len(gains) >= 2:
            (a, ga), (b, gb) = gains[0], gains[-1]
            last = g.sort_values("chips").iloc[-1]
            d = dense[(dense["model"] == model) & (dense["accel"] == last["accel"])
                      & (dense["strategy"] == last["strategy"])].iloc[0]
            same = "the same" if d["collective_bytes"] == last["collective_bytes"] else "different"
            trends.append(f"{model}: the decode gain of sparsity {'falls' if gb < ga else 'does not fall'} from "
                          f"{ga:.2f}x ({a}) to {gb:.2f}x ({b}); at {b} the collectives move {same} bytes dense "
                          f"and sparse ({d['collective_bytes'] / 1e9:.2f} and {last['collective_bytes'] / 1e9:.2f} GB "
                          "per chip over the run), since they carry the layers' outputs.")
    trend_line = "\n".join("- " + t for t in trends)
    stated = dense[dense["fits"] != "unstated"]
    misfits = stated[stated["fits"] == "no"]
    fit_line = (f"{len(misfits)} of the {len(stated)} dense runs on chips that state their capacity do not fit it: "
                + "; ".join(f"{r['model']} {r['strategy']} on {r['accel']} ({r['memory_gib_per_chip']:.1f} GiB per chip)"
                            for _, r in misfits.iterrows()) + "." if len(misfits)
                else f"Every one of the {len(stated)} dense runs on chips that state their capacity fits it.")
    table = frame.sort_values(["act_sparsity", "model", "accel", "chips"], kind="stable")
    cols = {"model": "model", "accel": "chips of", "strategy": "split", "chips": "chips",
            "act_sparsity": "act. sparsity", "prefill_latency_s": "prefill (s)", "decode_ms_per_token": "decode ms/token",
            "prefill_tokens_per_s": "prefill tok/s", "decode_tokens_per_s": "decode tok/s",
            "decode_collective_share": "collectives (decode)", "bubble_s": "bubble (s)",
            "memory_gib_per_chip": "GiB/chip", "fits": "fits"}
    fmt = {"act_sparsity": ".1f", "prefill_latency_s": ".4f", "decode_ms_per_token": ".3f",
           "prefill_tokens_per_s": ".0f", "decode_tokens_per_s": ".1f", "decode_collective_share": ".1%",
           "bubble_s": ".4f", "memory_gib_per_chip": ".1f"}
    figs = "\n\n".join(f"![{f}]({f})" for f in figures)
    return f"""# Scale-out: LLM inference across chips and parallel strategies

Regenerate: `sparsesim study scale-out --out reports/scale-out`. Shape-only decoders (docs/scale-out.md),
prompt {prompt} tokens then {gen} decode steps, batch 1 unless the split says otherwise. Chips: `dc128` (one
128x128 bf16 core, 24 MiB SRAM, 600 B/cycle HBM-class DRAM, given the a100 preset's NVLink links), `a100`
(108 SM cores, 40 MB L2, 1555 GB/s) and `h100` (132 SM cores, 50 MB L2, 3.35 TB/s); the GPU figures come from
their specifications (sources in the preset files), not from measurements. Splits: tensor parallel (TP,
Megatron-style, an all-reduce after each row-parallel projection), pipeline parallel (PP, one micro-batch), data
and expert parallel (DP, EP: Mixtral's experts over the replicas, all-to-all dispatch and combine). "GiB/chip" is
what one chip holds of the weights and the KV cache at the last position; "fits" compares it with the preset's
HBM capacity (`dram.capacity_bytes`: a100 40 GiB, h100 80 GiB; dc128 states none: "unstated"). A run that does
not fit is timed as if it did. "Collectives (decode)" is the share of the decode rows' time spent in collective
rows; every collective here is on the critical path.

{fit_line}

{provenance(frame)}

## Dense

- {(chr(10) + '- ').join(lines)}

{chr(10).join('- ' + g for g in gpu)}

## With activation sparsity (dc128 chips)

{chr(10).join('- ' + s for s in sparse_lines) or 'No sparse runs in this mode.'}

{trend_line}

{figs}

## All runs

{md_table(table, cols, fmt)}
"""


def run(out: Path, traces: Path, quick: bool) -> Path:
    frame = compute(quick)
    figures = plot(frame, out)
    return write_report(out, write(frame, figures), {"scale_out.csv": frame})


STUDIES.add("scale-out", Study("scale-out", "LLM prefill and decode latency and throughput across chips and "
                                            "parallel strategies (7B, 70B, Mixtral; dc128, a100, h100)", run))
