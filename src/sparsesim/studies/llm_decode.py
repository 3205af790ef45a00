"""Case study: activation sparsity in LLM decode, where a zero saves a weight row's DRAM bytes.

Decode is a matrix-vector product per sequence: every weight is read from DRAM once per
token and multiplied with one activation vector, so it runs on the bandwidth roof and a
zero activation is worth the weight row it would have fetched more than the MAC it skips.
This study measures that, dense against activation-sparse, on an edge and a datacenter
preset:

* captured decoders (``pydoc_relu_lm``, a byte-level ReLU decoder trained here on the corpus by
  the training-dynamics study, every layer recorded, and the trained SmolLM2-135M, a few layers
  recorded): the ReLU-fied
  FFN (ProSparse-style ``relu(gate) * up``), whose zeros are exact and where the data puts
  them, and SwiGLU with CATS thresholds (calibrated on the prompt's gate activations to a
  target sparsity), a Deja Vu-style predictor, and CHESS per-channel thresholds, all applied
  to the gate output (``act_policy`` with ``site: swiglu_gate``);
* the shape-only Llama-2-7B at a swept activation sparsity (synthetic i.i.d. zeros, the
  size that matters);
* prefill against decode, a roofline of the decode GEMVs, and what DRAM burst granularity
  (``dram.burst_bytes``), the weight layout (``dram.weight_layout``) and the gather bitmap take
  of the gain.

Three jobs, one function each: :func:`compute` runs the captures and replays and builds the
tables, :func:`plot` draws the figures, :func:`write` states what the tables show; every
claim in the text is computed from them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sparsesim import plots
from sparsesim.hardware.memory import memory_model
from sparsesim.hardware.presets import load_accel
from sparsesim.studies.common import (STUDIES, Study, llm_trace_for, md_table, provenance, relation, run_trace,
                                      run_workload, span, trend, write_report)
from sparsesim.workloads.gemm import Phase
from sparsesim.workloads.capture.pretrained import PRETRAINED
from sparsesim.workloads.capture.llm import TRAINED_RELU
from sparsesim.workloads.llm_networks import DECODERS, llm_workload

PRESETS = ("edge32", "dc128")
BURST_PRESET = "edge32"
FETCH_COLUMNS = ("weight_bytes_skipped", "weight_fetch_bound_bytes", "skip_bitmap_bytes")
"""Weight-fetch skipping's columns (empty where a run skips nothing: read as 0)."""
SUM_COLUMNS = ("cycles", "dense_cycles", "compute_cycles", "stall_cycles", "bound_cycles", "mac_bound_cycles",
               "bw_bound_cycles", "macs_dense", "macs_effectual", "dram_bytes", "dram_lower_bound_bytes",
               "energy_pj", "dense_energy_pj", "b_bytes", "a_elements", "a_zero_elements", "down_elements",
               "down_zero_elements") + FETCH_COLUMNS


@dataclass(frozen=True, slots=True, kw_only=True)
class Setup:
    """What the study runs (``quick``: the tiny decoders, for tests)."""

    relu_model: str
    swiglu_model: str
    layers: str | None  # op names of relu_model recorded by the capture (regular expression)
    swiglu_layers: str | None  # the same for swiglu_model
    prompt_len: int
    gen_len: int
    network: str  # shape-only decoder of the sparsity sweep
    net_prompt_len: int
    net_gen_len: int
    sparsities: tuple[float, ...]  # synthetic activation sparsity of the sweep
    targets: tuple[float, ...]  # CATS target sparsities (threshold = that quantile of |act(gate)|)
    chess: tuple[float, ...]  # CHESS per-channel sparsities
    bursts: tuple[int, ...]
    burst_sparsity: float  # synthetic sparsity of the network in the burst table


FULL = Setup(relu_model="pydoc_relu_lm", swiglu_model="smollm2_135m", layers=None,
             swiglu_layers=r"layers\.(0|15|29)\.", prompt_len=64,
             gen_len=8, network="llama2_7b", net_prompt_len=128, net_gen_len=4,
             sparsities=(0.0, 0.5, 0.7, 0.9, 0.95), targets=(0.5, 0.7, 0.9), chess=(0.7,),
             bursts=(64, 256, 1024), burst_sparsity=0.9)
QUICK = Setup(relu_model="llama_tiny_relu", swiglu_model="llama_tiny", layers=None, swiglu_layers=None, prompt_len=8,
              gen_len=3,
              network="llama_tiny", net_prompt_len=8, net_gen_len=2, sparsities=(0.0, 0.5, 0.9), targets=(0.5, 0.9),
              chess=(0.7,), bursts=(64, 256), burst_sparsity=0.9)


@dataclass(frozen=True, slots=True)
class Data:
    """What the study measured."""

    rows: pd.DataFrame  # every result row (captured decoders and the network sweep)
    summary: pd.DataFrame  # per (workload, preset, config, phase)
    roofline: pd.DataFrame  # per (workload, preset, config, op kind), decode only
    burst: pd.DataFrame  # per (workload, layout, burst), decode only, on BURST_PRESET (empty without bursts)
    setup: Setup
    peaks: dict  # preset -> (PEs, DRAM bytes per cycle)


def _zs(**extra) -> dict:
    return {"kind": "zero_skip", "target": "input", "action": "skipping", **extra}


def _gate(method: str, **extra) -> dict:
    """An activation policy on the gate output of each gated MLP block (``site: swiglu_gate``)."""
    return {"kind": "act_policy", "method": method, "site": "swiglu_gate", **extra}


def op_kind(name: str) -> str:
    """The role of a decoder op, from its Hugging Face name."""
    for pattern, kind in ((r"self_attn\.[qkvo]_proj", "attention proj"), (r"mlp\.(gate|up)_proj", "gate/up"),
                          (r"mlp\.down_proj", "down"), (r"self_attn\.matmul", "attention matmul"),
                          (r"lm_head", "lm_head")):
        if re.search(pattern, name):
            return kind
    return "other"


def _prepare(frame: pd.DataFrame, element_bytes: int) -> pd.DataFrame:
    """Fill the fetch columns, add each row's dense B bytes, its A zero counts and its op kind."""
    frame[list(FETCH_COLUMNS)] = frame[list(FETCH_COLUMNS)].fillna(0)
    reps = frame["count"] * frame["repeat"]
    frame["b_bytes"] = frame["K"] * frame["N"] * element_bytes * reps
    frame["a_elements"] = frame["M"] * frame["K"] * reps
    zero = frame["act_zero_fraction"].fillna(0.0) if "act_zero_fraction" in frame else 0.0
    frame["a_zero_elements"] = frame["a_elements"] * zero
    frame["kind_of_op"] = frame["name"].map(op_kind)
    down = frame["kind_of_op"] == "down"
    frame["down_elements"] = frame["a_elements"].where(down, 0)
    frame["down_zero_elements"] = frame["a_zero_elements"].where(down, 0)
    return frame


def totals(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Sums per group and the ratios recomputed from the sums (never averaged ratios)."""
    g = frame.groupby(by, sort=False)[list(SUM_COLUMNS)].sum().reset_index()
    g["speedup"] = g["dense_cycles"] / g["cycles"]
    g["bound_speedup"] = g["dense_cycles"] / g["bound_cycles"]
    g["act_zero"] = g["a_zero_elements"] / g["a_elements"]
    g["down_zero"] = g["down_zero_elements"] / g["down_elements"].where(g["down_elements"] > 0)
    g["stall_share"] = g["stall_cycles"] / g["cycles"]
    g["intensity"] = g["macs_effectual"] / g["dram_bytes"].clip(lower=1)
    g["macs_per_cycle"] = g["macs_effectual"] / g["cycles"].clip(lower=1)
    return g


def compute(traces: Path, quick: bool) -> Data:
    """Capture the decoders, replay every configuration, and tabulate."""
    s = QUICK if quick else FULL
    peaks, ebytes = {}, {}
    for preset in PRESETS:
        cfg = load_accel(preset)
        peaks[preset] = (cfg.array.rows * cfg.array.cols, memory_model(cfg).peak_bytes_per_cycle)
        ebytes[preset] = cfg.array.element_bytes
    runs = []

    def tag(frame, **labels):
        frame = _prepare(frame, ebytes[labels["preset"]])
        for key, value in labels.items():
            frame[key] = value
        runs.append(frame)

    # captured decoders: real zero patterns (both trained where FULL)
    relu = llm_trace_for(s.relu_model, traces, prompt_len=s.prompt_len, gen_len=s.gen_len, layers=s.layers)
    swiglu = llm_trace_for(s.swiglu_model, traces, prompt_len=s.prompt_len, gen_len=s.gen_len,
                           layers=s.swiglu_layers)
    # "ReLU zeros" skips them in down's input only; "+ gate" also narrows up to the live neurons
    configs = [(s.relu_model, relu, "dense", None, None), (s.relu_model, relu, "ReLU zeros", None, [_zs()]),
               (s.relu_model, relu, "ReLU zeros + gate", None, [_gate("relu"), _zs()]),
               (s.swiglu_model, swiglu, "dense", None, None)]
    # CATS and CHESS fix their thresholds offline: here per layer (CATS) or per channel (CHESS)
    # from the prompt's gate outputs, then applied to every decode step (calibrate: prefill);
    # "per GEMM" counts the fraction within each GEMM instead, as an uncalibrated policy does
    def cats(t, **extra):
        return _gate("threshold", sparsity=t, calibrate="prefill", **extra)

    configs += [(s.swiglu_model, swiglu, f"CATS {t:.0%}", t, [cats(t), _zs()]) for t in s.targets]
    mid = s.targets[len(s.targets) // 2]
    configs.append((s.swiglu_model, swiglu, f"CATS {mid:.0%} + predictor", mid,
                    [cats(mid, predictor="lowrank"), _zs()]))
    for c in s.chess:
        configs.append((s.swiglu_model, swiglu, f"CHESS {c:.0%}", c,
                        [_gate("channel_threshold", sparsity=c, calibrate="prefill"), _zs()]))
        configs.append((s.swiglu_model, swiglu, f"CHESS {c:.0%} per GEMM", c,
                        [_gate("channel_threshold", sparsity=c), _zs()]))
    for preset in PRESETS:
        for model, trace, label, target, sparsity in configs:
            f = run_trace(trace, preset, sparsity=sparsity, dataflow="best", label=label)
            tag(f, workload=model, source="captured", preset=preset, target=target)

    # the shape-only network at swept synthetic sparsity (i.i.d. zeros in every op's input); its
    # prefill, the costly part of a sparse replay, only dense and at the burst table's sparsity.
    # Each phase is its own workload, so the decode operands drawn at a sparsity are the same in
    # the sweep and in the burst table (the seeded draws follow the workload's op order).
    def network(act, phase):
        return llm_workload(s.network, prompt_len=s.net_prompt_len, gen_len=s.net_gen_len, act_sparsity=act,
                            phases=(phase,))

    for preset in PRESETS:
        for phase in (Phase.PREFILL, Phase.DECODE):
            tag(run_workload(network(None, phase), preset, dataflow="best").assign(config="dense"),
                workload=s.network, source="synthetic", preset=preset, target=None)
        for act in s.sparsities:
            for phase in (Phase.PREFILL, Phase.DECODE) if act == s.burst_sparsity else (Phase.DECODE,):
                f = run_workload(network(act, phase), preset, sparsity=[_zs()], dataflow="best")
                tag(f.assign(config=f"i.i.d. {act:g}"), workload=s.network, source="synthetic", preset=preset,
                    target=act)
    df = pd.concat(runs, ignore_index=True)
    by = ["workload", "source", "preset", "config", "target", "phase"]
    summary = totals(df.assign(target=df["target"].fillna(-1.0)), by)
    summary["target"] = summary["target"].where(summary["target"] >= 0)
    same = ["workload", "source", "preset", "phase"]
    dense = summary[summary["config"] == "dense"][same + ["dram_bytes", "energy_pj"]]
    summary = summary.merge(dense.rename(columns={"dram_bytes": "dense_dram_bytes", "energy_pj": "dense_run_pj"}),
                            on=same)
    summary["dram_ratio"] = summary["dram_bytes"] / summary["dense_dram_bytes"]
    summary["dram_bound_ratio"] = summary["dram_lower_bound_bytes"] / summary["dense_dram_bytes"]
    # a dense run skips nothing and reports no fetch bound: not applicable there
    sparse = summary["config"] != "dense"
    summary["fetch_bound_ratio"] = (summary["weight_fetch_bound_bytes"] / summary["b_bytes"]).where(sparse)
    summary["skipped_ratio"] = (summary["weight_bytes_skipped"] / summary["b_bytes"]).where(sparse)
    summary["energy_saving"] = 1 - summary["energy_pj"] / summary["dense_run_pj"]

    decode = df[df["phase"] == str(Phase.DECODE)]
    roofline = totals(decode, ["workload", "source", "preset", "config", "kind_of_op"])
    roofline["roof"] = [min(peaks[p][0], peaks[p][1] * i) for p, i in zip(roofline["preset"], roofline["intensity"])]
    roofline["of_roof"] = roofline["macs_per_cycle"] / roofline["roof"]
    roofline["peak"] = [peaks[p][0] for p in roofline["preset"]]

    # burst granularity, weight layout and fetch skipping itself, decode only, on one preset
    net_decode = network(s.burst_sparsity, Phase.DECODE)
    variants = [(layout, b, True) for layout in ("k_major", "n_major") for b in s.bursts]
    variants.append(("k_major", s.bursts[0], False))
    burst_runs = []
    for workload in (s.relu_model, s.network):
        for layout, b, fetch in variants:
            sets = (f"dram.burst_bytes={b}", f"dram.weight_layout={layout}")
            sparsity = [_zs(weight_fetch=fetch)]
            label = f"{layout} {b} B" + ("" if fetch else ", no fetch skipping")
            if workload == s.relu_model:
                f = run_trace(relu, BURST_PRESET, sets=sets, sparsity=sparsity, phases=(Phase.DECODE,), label=label)
            else:
                f = run_workload(net_decode, BURST_PRESET, sets=sets, sparsity=sparsity).assign(config=label)
            f = _prepare(f, ebytes[BURST_PRESET])
            f["workload"], f["layout"], f["burst_bytes"], f["weight_fetch"] = workload, layout, b, fetch
            burst_runs.append(f)
    burst = totals(pd.concat(burst_runs, ignore_index=True), ["workload", "config", "layout", "burst_bytes",
                                                              "weight_fetch"])
    skippable = burst["b_bytes"] - burst["weight_fetch_bound_bytes"]
    burst["skippable_share"] = skippable / burst["b_bytes"]
    burst["captured"] = burst["weight_bytes_skipped"] / skippable.clip(lower=1)
    # the bitmap's bytes per byte it saves (none saved: not a ratio)
    saved = burst["weight_bytes_skipped"]
    burst["bitmap_per_skipped"] = (burst["skip_bitmap_bytes"] / saved.clip(lower=1)).where(saved > 0)
    return Data(df, summary, roofline, burst, s, peaks)


def plot(data: Data, out: Path) -> dict[str, Path]:
    """The report's figures."""
    sweep = data.summary[(data.summary["source"] == "synthetic") & (data.summary["config"] != "dense")
                         & (data.summary["phase"] == str(Phase.DECODE))].copy()
    long = pd.concat([sweep.assign(measure=name, value=sweep[col]) for name, col in
                      (("achieved", "speedup"), ("bound", "bound_speedup"))])
    figs = {
        "speedup": plots.plot_lines(long, out / "speedup_vs_sparsity.png", x="target", y="value", series="preset",
                                    style="measure", reference=1.0,
                                    title=f"{data.setup.network} decode: speedup over dense vs activation sparsity",
                                    xlabel="activation sparsity (synthetic, i.i.d.)", ylabel="speedup over dense (x)"),
    }
    bytes_long = pd.concat([sweep.assign(measure=name, value=sweep[col]) for name, col in
                            (("DRAM bytes", "dram_ratio"), ("DRAM lower bound", "dram_bound_ratio"),
                             ("weight fetch bound", "fetch_bound_ratio"))])
    figs["bytes"] = plots.plot_lines(bytes_long, out / "dram_vs_sparsity.png", x="target", y="value",
                                     series="preset", style="measure", logy=False,
                                     title=f"{data.setup.network} decode: DRAM bytes vs activation sparsity",
                                     xlabel="activation sparsity (synthetic, i.i.d.)",
                                     ylabel="fraction of the dense bytes")
    for preset in PRESETS:
        layers = data.rows[(data.rows["phase"] == str(Phase.DECODE)) & (data.rows["preset"] == preset)
                           & (data.rows["workload"] == data.setup.relu_model)]
        figs[f"roofline_{preset}"] = plots.plot_roofline(
            layers.assign(series=layers["config"]), out / f"roofline_{preset}.png", series="series",
            peak_macs_per_cycle=data.peaks[preset][0], bandwidth_bytes_per_cycle=data.peaks[preset][1],
            title=f"{data.setup.relu_model} decode GEMVs on {preset}")
    return figs


# ---------------------------------------------------------------- prose from data


def _pick(frame: pd.DataFrame, **where) -> pd.DataFrame:
    for key, value in where.items():
        frame = frame[frame[key] == value]
    return frame


def _fetch_text(summary: pd.DataFrame) -> str:
    """Whether weight-fetch skipping acted in the captured decoders' decode, from the skipped
    bytes in their rows (the sentence closes their section)."""
    sparse = summary[(summary["config"] != "dense") & (summary["phase"] == str(Phase.DECODE))
                     & (summary["source"] == "captured")]
    if not (sparse["weight_bytes_skipped"] > 0).any():
        return ("No weight byte is skipped in any run (`weight_bytes_skipped` is 0 throughout): in this "
                "build a zero activation saves MAC cycles and activation bytes, never the weight row's "
                "fetch, so decode stays where dense decode is.")
    return (f"Weight-fetch skipping leaves {span(1 - sparse['skipped_ratio'], '.0%', '')} of the decode "
            "weight bytes to fetch across the captured decoders' sparse runs.")


def _pace_text(dense: pd.Series, what: str) -> str:
    """What sets the pace of a dense decode total: DRAM bandwidth or the array's compute time."""
    b, stalls = float(dense["bound_speedup"]), float(dense["stall_share"])
    if b < 1.1:
        return (f"Dense, {what} runs within {b:.2f}x of its bound with {stalls:.0%} of its cycles stalled on "
                "DRAM: it is bandwidth-bound, so only fewer bytes make it faster.")
    if stalls < 0.25:
        return (f"Dense, {what} takes {b:.2f}x its bound and stalls only {stalls:.0%} of its cycles: the array's "
                "compute time sets its pace (a GEMV streams one row through each weight fold, which still pays "
                "the fold's fill and drain), so skipped MAC steps and cut folds make it faster as well.")
    return (f"Dense, {what} takes {b:.2f}x its bound with {stalls:.0%} of its cycles stalled: neither DRAM "
            "bandwidth nor the MACs alone set its pace (short GEMVs pay DRAM latency and the array's fill "
            "and drain).")


def _sweep_text(summary: pd.DataFrame, network: str) -> str:
    parts = []
    for preset in PRESETS:
        s = _pick(summary, source="synthetic", preset=preset, phase=str(Phase.DECODE))
        dense, s = s[s["config"] == "dense"], s[s["config"] != "dense"].sort_values("target")
        if s.empty or dense.empty:
            continue
        lo, hi = s.iloc[0], s.iloc[-1]
        parts.append(
            _pace_text(dense.iloc[0], f"`{network}` decode on `{preset}`")
            + f" With zeros the speedup {trend(s['speedup'], 0.005)} with the sparsity, from "
            f"{lo['speedup']:.2f}x at {lo['target']:.0%} to {hi['speedup']:.2f}x at {hi['target']:.0%} "
            f"(bound {lo['bound_speedup']:.2f}x to {hi['bound_speedup']:.2f}x); the DRAM bytes go from "
            f"{lo['dram_ratio']:.0%} to {hi['dram_ratio']:.0%} of dense, against a weight-fetch bound of "
            f"{lo['fetch_bound_ratio']:.0%} to {hi['fetch_bound_ratio']:.0%} of the weight bytes.")
    return " ".join(parts)


def _captured_text(summary: pd.DataFrame, setup: Setup) -> str:
    paragraphs = []
    for preset in PRESETS:
        parts = []
        paragraphs.append(parts)
        d = _pick(summary, source="captured", preset=preset, phase=str(Phase.DECODE))
        dense = _pick(d, workload=setup.relu_model, config="dense")
        if not dense.empty:
            parts.append(_pace_text(dense.iloc[0], f"the captured layers' decode on `{preset}`"))
        for config, what in (("ReLU zeros", "skipping them in `down`'s input"),
                             ("ReLU zeros + gate", "Computing `up` for the live neurons only as well (gate coupling)")):
            relu = _pick(d, workload=setup.relu_model, config=config)
            if relu.empty:
                continue
            r = relu.iloc[0]
            lead = (f"The ReLU decoder's `down` inputs are {r['down_zero']:.0%} zeros; " if config == "ReLU zeros"
                    else "")
            parts.append(f"{lead}{what} gives {r['speedup']:.2f}x (bound {r['bound_speedup']:.2f}x) and moves "
                         f"{r['dram_ratio']:.0%} of the dense DRAM bytes.")
        sw = d[d["workload"] == setup.swiglu_model]
        cats = sw[sw["config"].str.startswith("CATS") & ~sw["config"].str.contains("predictor")].sort_values("target")
        if not cats.empty:
            parts.append(f"SwiGLU with CATS thresholds for {span(cats['target'], '.0%', '')} target sparsity zeroes "
                         f"{span(cats['down_zero'], '.0%', '')} of `down`'s decode inputs and gives "
                         f"{span(cats['speedup'])} (bound {span(cats['bound_speedup'])}), moving "
                         f"{span(cats['dram_ratio'], '.0%', '')} of the dense bytes.")
        for _, p in sw[sw["config"].str.contains("predictor")].iterrows():
            base = cats[cats["target"] == p["target"]]
            if not base.empty:
                b = float(base["speedup"].iloc[0])
                parts.append(f"A low-rank predictor that picks the live neurons before the gate (Deja Vu) makes it "
                             f"{p['speedup']:.2f}x at {p['target']:.0%}, {relation(p['speedup'], b, 0.01)} the "
                             f"{b:.2f}x of the same threshold with the gate computed dense.")
        for _, c in sw[sw["config"].str.startswith("CHESS")].iterrows():
            pre = _pick(summary, source="captured", preset=preset, phase=str(Phase.PREFILL), config=c["config"],
                        workload=setup.swiglu_model)
            pre_zero = float(pre["down_zero"].iloc[0]) if not pre.empty else float("nan")
            if c["down_zero"] < 0.5 * c["target"] and pre_zero >= 0.5 * c["target"]:
                parts.append(f"{c['config']} zeroes {pre_zero:.0%} of `down`'s prefill inputs but only "
                             f"{c['down_zero']:.0%} in decode: its per-channel quantile is taken over the "
                             "tokens of one GEMM, and a decode GEMV has one token per channel, so no "
                             f"threshold is learnt there ({c['speedup']:.2f}x).")
            else:
                parts.append(f"{c['config']} zeroes {c['down_zero']:.0%} of `down`'s decode inputs and gives "
                             f"{c['speedup']:.2f}x.")
    return "\n\n".join(" ".join(parts) for parts in paragraphs if parts)


def _phase_text(summary: pd.DataFrame, peaks: dict) -> str:
    parts = []
    for (workload, preset), g in summary[summary["config"] == "dense"].groupby(["workload", "preset"], sort=False):
        pre, dec = _pick(g, phase=str(Phase.PREFILL)), _pick(g, phase=str(Phase.DECODE))
        if pre.empty or dec.empty:
            continue
        p, d = pre.iloc[0], dec.iloc[0]
        ridge = peaks[preset][0] / peaks[preset][1]
        parts.append(f"`{workload}` on `{preset}` (ridge {ridge:.0f}): prefill {p['intensity']:.1f} MACs/byte "
                     f"({relation(p['intensity'], ridge, 0.1)} the ridge) at {p['macs_per_cycle']:.0f} MACs/cycle, "
                     f"decode {d['intensity']:.2f} MACs/byte at {d['macs_per_cycle']:.1f}")
    sparse = summary[(summary["config"] != "dense")]
    gains = []
    for phase in (str(Phase.PREFILL), str(Phase.DECODE)):
        g = sparse[sparse["phase"] == phase]
        if not g.empty:
            gains.append(f"{phase} {span(g['speedup'])}")
    text = ("Dense, " + "; ".join(parts) + ". Prefill reuses each weight over the prompt's tokens, decode once "
            "per sequence. Across the sparse runs the speedup is " + ", ".join(gains) + ".")
    # a weight row stays in DRAM only when its input is zero in every row of the GEMM
    both = sparse[sparse["source"] == "captured"].pivot_table(index=["workload", "preset", "config"],
                                                              columns="phase", values="fetch_bound_ratio")
    if {str(Phase.PREFILL), str(Phase.DECODE)} <= set(both.columns) and not both.empty:
        pre, dec = both[str(Phase.PREFILL)], both[str(Phase.DECODE)]
        text += (f" A weight row stays in DRAM only when its input is zero for every token of the GEMM: in the "
                 f"captured decoders' prefill that leaves {span(pre, '.0%', '')} of the weight bytes to fetch, "
                 f"in decode {span(dec, '.0%', '')}.")
    pre = sparse[sparse["phase"] == str(Phase.PREFILL)]
    if not pre.empty:
        worst = pre.loc[pre["speedup"].idxmin()]
        if worst["speedup"] < 1.0:
            text += (f" The slowest prefill is `{worst['workload']}` with {worst['config']} on `{worst['preset']}`, "
                     f"{worst['speedup']:.2f}x: slower than dense"
                     + (", as its predictor GEMMs cost more than the few neurons dead for every prompt token save."
                        if "predictor" in worst["config"] else "."))
    return text


def _roofline_text(roofline: pd.DataFrame, peaks: dict, relu_model: str) -> str:
    gemv = roofline[(roofline["kind_of_op"] != "attention matmul") & (roofline["config"] == "dense")]
    parts = []
    for preset in PRESETS:
        r = gemv[gemv["preset"] == preset]
        if r.empty:
            continue
        pes, bw = peaks[preset]
        ridge = pes / bw
        below = bool((r["intensity"] < ridge).all())
        parts.append(f"On `{preset}` ({pes} PEs, {bw:g} B/cycle, ridge at {ridge:.0f} MACs/byte) the dense decode "
                     f"projections sit at {span(r['intensity'], '.2f', '')} MACs/byte, "
                     + ("all below the ridge, under the bandwidth roof" if below else
                        "some at or above the ridge")
                     + f"; they reach {span(r['of_roof'], '.0%', '')} of their roof "
                     f"({span(r['macs_per_cycle'], '.1f', '')} MACs/cycle of {pes}).")
        down = roofline[(roofline["preset"] == preset) & (roofline["kind_of_op"] == "down")
                        & (roofline["workload"] == relu_model) & (roofline["source"] == "captured")]
        d, z = _pick(down, config="dense"), _pick(down, config="ReLU zeros")
        if d.empty or z.empty:
            continue
        before, after = float(d["intensity"].iloc[0]), float(z["intensity"].iloc[0])
        parts.append(f"Skipping the ReLU zeros moves `down` from {before:.2f} to {after:.2f} effectual MACs/byte"
                     + (": fewer MACs over the same bytes, as the zeros' weight rows are still fetched."
                        if after < 0.9 * before else
                        ": the MACs and the weight bytes of the zeros go together."))
    return " ".join(parts)


def _burst_text(burst: pd.DataFrame) -> str:
    parts = []
    for workload, g in burst.groupby("workload", sort=False):
        on = g[g["weight_fetch"]]
        k = on[on["layout"] == "k_major"].sort_values("burst_bytes")
        n = on[on["layout"] == "n_major"].sort_values("burst_bytes")
        def each(rows):
            return ", ".join(f"{c:.0%} at {b:g} B ({x:.2f}x)" for c, b, x in
                             zip(rows["captured"], rows["burst_bytes"], rows["speedup"]))

        text = (f"`{workload}`: {k['skippable_share'].iloc[0]:.0%} of the decode weight bytes sit behind zero "
                f"activations. With the K-major layout the bursts skip, of those bytes, {each(k)}")
        if not n.empty:
            text += (f"; with PyTorch's N-major layout {each(n)}: a share that {trend(n['captured'], 0.005)} as "
                     "the burst grows, since a burst is skipped only when every input feature it covers is dead")
        saving = on[on["weight_bytes_skipped"] > 0]
        idle = on[(on["weight_bytes_skipped"] == 0) & (on["skip_bitmap_bytes"] > 0)]
        text += "."
        if not saving.empty:
            text += f" The gather bitmap costs {span(saving['bitmap_per_skipped'], '.3%', '')} of the bytes it saves"
            text += (f", and is read for nothing where nothing is skipped ({len(idle)} of {len(on)} settings)."
                     if not idle.empty else ".")
        off = g[~g["weight_fetch"]]
        if not off.empty:
            o = off.iloc[0]
            text += (f" Without fetch skipping the same zeros give {o['speedup']:.2f}x "
                     f"({relation(o['speedup'], float(k['speedup'].iloc[0]), 0.01)} the "
                     f"{float(k['speedup'].iloc[0]):.2f}x with it).")
        parts.append(text)
    return " ".join(parts)


def write(data: Data, figs: dict[str, Path]) -> str:
    """The report text: every number and every comparison in it comes from ``data``."""
    s, summary = data.setup, data.summary
    cols = {"workload": "workload", "preset": "preset", "config": "zeros", "phase": "phase",
            "act_zero": "input zeros", "down_zero": "down input zeros", "speedup": "speedup", "bound_speedup": "bound", "dram_ratio": "DRAM / dense",
            "dram_bound_ratio": "DRAM bound / dense", "fetch_bound_ratio": "weight fetch bound",
            "skipped_ratio": "weight bytes skipped", "stall_share": "stalls", "energy_saving": "energy saved"}
    fmt = {"act_zero": ".1%", "down_zero": ".1%", "speedup": ".2f", "bound_speedup": ".2f", "dram_ratio": ".1%",
           "dram_bound_ratio": ".1%", "fetch_bound_ratio": ".1%", "skipped_ratio": ".1%", "stall_share": ".0%",
           "energy_saving": ".1%"}
    captured = summary[summary["source"] == "captured"]
    sweep = summary[(summary["source"] == "synthetic") & (summary["phase"] == str(Phase.DECODE))]
    roof_cols = {"workload": "workload", "preset": "preset", "config": "zeros", "kind_of_op": "ops",
                 "intensity": "MACs/byte", "macs_per_cycle": "MACs/cycle", "roof": "roof", "of_roof": "of roof"}
    roof_fmt = {"intensity": ".2f", "macs_per_cycle": ".1f", "roof": ".1f", "of_roof": ".0%"}
    roof = data.roofline[data.roofline["config"].isin(["dense", "ReLU zeros"])
                         | data.roofline["config"].str.startswith("i.i.d. 0.9")]
    beaten = summary[summary["speedup"] > summary["bound_speedup"] + 1e-9]
    bound_text = ("No achieved speedup passes its bound." if beaten.empty else
                  f"{len(beaten)} totals pass their bound: a defect of the simulator.")
    burst_table = md_table(data.burst, {"workload": "workload", "layout": "layout", "burst_bytes": "burst (B)",
                                            "weight_fetch": "fetch skipping", "skippable_share": "skippable",
                                            "captured": "skipped of skippable", "bitmap_per_skipped": "bitmap / skipped",
                                        "speedup": "speedup", "bound_speedup": "bound"},
                           {"skippable_share": ".1%", "captured": ".1%", "bitmap_per_skipped": ".2%",
                            "speedup": ".2f", "bound_speedup": ".2f"})
    layers = f"the ops matching `{s.layers}`" if s.layers else "every op"
    swiglu_layers = f"the ops matching `{s.swiglu_layers}`" if s.swiglu_layers else "every op"
    trained = s.swiglu_model in PRETRAINED
    swiglu_text = (f"`{s.swiglu_model}` (SwiGLU), a **trained** model ({PRETRAINED.get(s.swiglu_model).summary}) "
                   f"prompted with real text (the built-in corpus' evaluation part), recorded: {swiglu_layers}"
                   if trained else f"`{s.swiglu_model}` (SwiGLU), **random-init**, recorded: {swiglu_layers}")
    relu_text = (f"`{s.relu_model}` (ReLU-fied FFN `relu(gate) * up`), a **trained** model "
                 f"({DECODERS.get(s.relu_model).params:,} parameters: the byte-level ReLU decoder that "
                 "`sparsesim study training-dynamics` trains on the corpus' evaluation part except its held-out "
                 "paragraphs), prompted with the first bytes of those held-out paragraphs"
                 if s.relu_model == TRAINED_RELU else
                 f"`{s.relu_model}` (ProSparse-style ReLU-fied FFN `relu(gate) * up`), **random-init** (its zero "
                 "patterns are those of random weights, not of a trained model), seeded random prompt")
    head = (data.rows[data.rows["source"] == "captured"]["kind_of_op"] == "lm_head").any()
    layers += (" (the LM head included)" if head else
               " (not the LM head, so the totals are those of decoder layers)")
    roofs = "\n\n".join(f"![roofline {p}]({figs[f'roofline_{p}'].name})" for p in PRESETS)

    return f"""# Activation sparsity in LLM decode: dense vs sparse on an edge and a datacenter preset

Regenerate: `sparsesim study llm-decode --out reports/llm-decode`.

{provenance(data.rows)}

**Why decode.** A decode step multiplies every weight with one activation vector per
sequence (a GEMV): each weight byte brought from DRAM serves one MAC per sequence, so a zero
activation can save the weight row it multiplies, not only the MAC.

**Workloads.** *Captured*: {relu_text}, recorded: {layers}; and {swiglu_text}; both prompt {s.prompt_len} tokens then {s.gen_len} decode steps,
batch 1. *Shape-only*: `{s.network}`, prompt
{s.net_prompt_len} tokens and {s.net_gen_len} decode steps, with synthetic activations whose
zeros are drawn i.i.d. at the given sparsity in every op's input: scattered zeros are a
pessimistic pattern (a trained ReLU model's zeros cluster in neurons that stay off across
tokens, which bursts and tiles can exploit).

**Configurations.** Every sparse run skips zero inputs (`zero_skip:input:skipping`), which
also leaves the weight rows behind inputs that are zero in every row of a GEMM in DRAM
(`weight_fetch`, in the presets' default weight layout and DRAM bursts). *ReLU zeros*: the captured zeros, in `down`'s
input. *+ gate*: the ReLU's zeros also narrow `up` to the live neurons (`act_policy: relu`,
`site: swiglu_gate`). *CATS p*: a magnitude threshold on `|act(gate)|` (Lee et al. 2024) at the
gate (`site: swiglu_gate`: `up` computes the live neurons only, `down`'s input holds the
zeros), fixed per layer to zero the fraction p of the prompt's gate outputs and applied to
every decode step (`calibrate: prefill`);
*+ predictor*: a Deja Vu-style low-rank predictor picks the live neurons before the gate, so
the gate GEMM too runs only them (the predictor's GEMMs charged). *CHESS p*: per-channel
thresholds fixed likewise to zero the fraction p of each gate channel over the prompt
(`method: channel_threshold`, `calibrate: prefill`); *per GEMM*: the fraction counted within
each GEMM instead (`calibrate: none`). Each run
is timed on `edge32` and `dc128` with `--dataflow best`; *bound* is dense cycles over
max(effectual MACs / PEs, DRAM lower bound / bandwidth). *Input zeros*: over every op's input;
*down input zeros*: over `down`'s. *Weight fetch bound*: the bytes of weight rows whose
activation is nonzero, as a fraction of the weight bytes.

## Captured decoders

{md_table(captured, cols, fmt)}

{_captured_text(summary, s)}

{_fetch_text(summary)} {bound_text}

## `{s.network}` decode vs activation sparsity

{md_table(sweep, cols, fmt)}

![speedup]({figs['speedup'].name})

![bytes]({figs['bytes'].name})

{_sweep_text(summary, s.network)}

## Prefill vs decode

{_phase_text(summary, data.peaks)}

## Roofline of the decode GEMVs

Effectual MACs per DRAM byte against effectual MACs per cycle, per op kind (`roofline.csv` has
every configuration).

{md_table(roof, roof_cols, roof_fmt)}

{roofs}

{_roofline_text(data.roofline, data.peaks, s.relu_model)}

## Where burst granularity and the gather bitmap eat the gain

On `{BURST_PRESET}`, decode only; the shape-only network at {s.burst_sparsity:.0%} i.i.d. sparsity.

{burst_table}

{_burst_text(data.burst)}
"""


def run(out: Path, traces: Path, quick: bool) -> Path:
    data = compute(traces, quick)
    figs = plot(data, out)
    tables = {"summary.csv": data.summary, "roofline.csv": data.roofline, "burst.csv": data.burst}
    return write_report(out, write(data, figs), tables)


STUDIES.add("llm-decode", Study("llm-decode", "activation-sparse LLM decode: weight bytes, roofline, bursts", run))
