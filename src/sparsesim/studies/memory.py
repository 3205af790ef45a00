"""Case study: how much of a weight-fetch saving survives as time and energy on DRAM with banks and rows.

Weight-fetch skipping (``zero_skip`` with ``weight_fetch``) does not read the weight rows behind
dead activations; a compressed operand (N:M values plus their indices) reads fewer bytes. On a
bandwidth-only memory each byte not read is time and energy saved. On a DRAM with banks and row
buffers it need not be: the bytes still read lie in the same rows as before (a skipped row of
the weight leaves a hole in a DRAM row that is opened all the same), so activates, which cost
time under tFAW/tRRD and most of the energy, fall by less than the bytes.

This study measures it on the masks of a trained model. SmolLM2-135M runs one window of
``WINDOW`` tokens of the built-in evaluation text with a CATS policy at its gated MLPs
(thresholds calibrated on the calibration text, as ``sparsesim codesign`` calibrates them); at
each of the window's last ``POSITIONS`` positions, every layer's ``down`` projection input is
one decode GEMV's activation (a causal model computes at position ``t`` of a prefill what a
decode step at ``t`` computes), and its zeros are the rows of ``down``'s weight (``K = d_ff``
rows of ``N = d_model`` weights) that need not be fetched. For each such pass, each DRAM
standard, weight layout and fetch granule, the weight's burst addresses
(:func:`~sparsesim.dataflows.sparse.weight_gather_bursts`) go through the ``banked`` model's
controller (:meth:`~sparsesim.hardware.memory.banked.BankedDram.serve`), all requested at once
(a decode GEMV is bound by its weight stream), and the time is the last burst's arrival. Beside
it, three references: the dense stream; the same number of bursts read as one contiguous run
(``packed``: what a replay with ``dram.model: banked`` charges today, whose schedules move
contiguous bytes); and the bandwidth-only model (the standard's peak and one unloaded row miss).
The same counts of i.i.d. masks (each pass's live count, placed at random, seeded) separate the
real masks' locality from their density.

Energy is priced per event only where the standard's file gives event energies (DDR4-3200); the
others price bytes per bit, so their energy saving is their byte saving by construction, and
the report says so rather than repeating it. Every sentence of the report is computed from the
table. Three jobs, one function each: :func:`compute`, :func:`plot`, :func:`write`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sparsesim import plots
from sparsesim.dataflows.sparse import weight_gather_bursts
from sparsesim.hardware.memory import memory_model
from sparsesim.hardware.memory.streams import limits
from sparsesim.hardware.presets import load_accel
from sparsesim.studies.common import STUDIES, Study, md_table, write_report

log = logging.getLogger(__name__)

STANDARDS = ("HBM3", "LPDDR5_6400", "DDR4_3200")
LAYOUTS = ("k_major", "n_major")
GRANULES = (32, 64, 128, 256)
"""Fetch granules, bytes: the accelerator requests (and skips) aligned pieces of this size."""
SPARSITIES = (0.5, 0.7)
PRESET = "edge32"  # its element size (1 B) and clock; its own DRAM is replaced by each standard
WINDOW = 1024
POSITIONS = 16
CALIB_TOKENS = 2048
SEED = 0


def cats(sparsity: float) -> str:
    """The CATS setting, as ``run`` and ``codesign`` take it."""
    return f"act_policy:threshold:0:site=swiglu_gate:calibrate=prefill:sparsity={sparsity:g}"


def label(sparsity: float) -> str:
    """A CATS setting's name in the table."""
    return f"CATS {sparsity:.0%}"


@dataclass(frozen=True)
class Masks:
    """Live rows of ``down``'s weight per decode pass: ``live[setting]`` is ``(passes, K)`` bool."""

    live: dict[str, np.ndarray]
    n_cols: int  # N of the weight: d_model
    doc: dict


def gate_masks(quick: bool) -> Masks:
    """SmolLM2-135M's ``down`` inputs under CATS at each of :data:`SPARSITIES` (module docstring)."""
    import torch

    from sparsesim.quality.metrics import token_ids, windows
    from sparsesim.quality.pipeline import Setting
    from sparsesim.quality.transform import ForwardTransform, calibrate, gated_mlps
    from sparsesim.workloads.capture.pretrained import load_pretrained
    from sparsesim.workloads.corpus import corpus_part

    m = load_pretrained("smollm2_135m")
    ev_text, cal_text = corpus_part("eval"), corpus_part("calib")
    window = 256 if quick else WINDOW
    positions = 2 if quick else POSITIONS
    ids = windows(token_ids(m.tokenizer, ev_text.text), window, window)[0]
    cal = windows(token_ids(m.tokenizer, cal_text.text), window, 512 if quick else CALIB_TOKENS)
    mlps = gated_mlps(m.model)
    live: dict[str, np.ndarray] = {}
    n_cols = 0
    for s in SPARSITIES:
        setting = Setting.parse(cats(s))
        thresholds = calibrate(m.model, setting.policy, cal)
        seen: list[np.ndarray] = []

        def pre(_module, args):
            seen.append((args[0][0, -positions:, :] != 0).numpy())

        hooks = [mlp.down_proj.register_forward_pre_hook(pre) for mlp in mlps.values()]
        try:
            with ForwardTransform(m.model, setting.features, thresholds), torch.no_grad():
                m.model(ids)
        finally:
            for h in hooks:
                h.remove()
        live[label(s)] = np.concatenate(seen, axis=0)
        n_cols = next(iter(mlps.values())).down_proj.out_features
        log.info("%s: %d passes, %.1f%% of rows live", label(s), live[label(s)].shape[0],
                 100 * live[label(s)].mean())
    doc = {"model": m.record(), "eval_text": {"name": ev_text.name, "sha256": ev_text.sha256},
           "calib_text": {"name": cal_text.name, "sha256": cal_text.sha256}, "window": window,
           "positions": positions, "layers": len(mlps), "calib_tokens": sum(w.shape[1] for w in cal),
           "settings": {label(s): cats(s) for s in SPARSITIES}}
    return Masks(live, n_cols, doc)


def _memory(standard: str):
    cfg = load_accel(PRESET, ["dram.model=banked", f"dram.standard={standard}"])
    return cfg, memory_model(cfg)


def _serve(mem, bursts: np.ndarray):
    """Time (ns) and counts of reading ``bursts`` all requested at time 0."""
    n = bursts.size
    arrive, counts = mem.serve(bursts, np.zeros(n, dtype=bool), np.zeros(n))
    return (float(arrive.max()) if n else 0.0) * 1e9 / mem.clock_hz, counts


def _energy(mem, counts, reads: int) -> tuple[float, float]:
    """Energy of a read stream and its activates' part, pJ: per event where the standard prices
    events, else per bit (no activate part)."""
    if mem.std.prices_events:
        split = mem.event_energy_pj(counts, reads, 0)
        return float(sum(split.values())), float(split["dram_energy_act_pj"])
    return reads * mem.std.device_burst_bytes * 8 * mem.dram.energy_pj_per_bit, 0.0


def _imbalance(bursts: np.ndarray, channels: int) -> float:
    """The busiest channel's bursts over the mean channel's (1: even), under the default mapping,
    which deals consecutive bursts to channels in turn (channel = burst index mod channels)."""
    if bursts.size == 0:
        return 1.0
    per = np.bincount(bursts % channels, minlength=channels)
    return float(per.max() / per.mean())


def _iid(live: np.ndarray, seed: int) -> np.ndarray:
    """Each pass's live count at random rows (seeded): the same density without the real locality."""
    rng = np.random.default_rng(seed)
    out = np.zeros_like(live)
    for i, row in enumerate(live):
        out[i, rng.permutation(row.size)[: int(row.sum())]] = True
    return out


def compute(masks: Masks, standards=STANDARDS, granules=GRANULES, seed: int = SEED) -> pd.DataFrame:
    """One row per (setting, mask source, standard, layout, granule), sums over the passes; plus a
    row per standard for the 2:4-compressed weight (values and 2-bit indices, two streams)."""
    rows = []
    for standard in standards:
        cfg, mem = _memory(standard)
        e = cfg.array.element_bytes
        dev = mem.std.device_burst_bytes
        lim = limits(mem.std)
        packed: dict[int, tuple] = {}
        dense_of: dict[tuple, tuple] = {}  # (layout, granule) -> the dense pass: the same for every setting

        def bw_ns(nbytes: int) -> float:
            return lim.closed_ns + nbytes / lim.peak_gb_s

        for label, live in masks.live.items():
            K = live.shape[1]
            for source, lv in (("SmolLM2", live), ("i.i.d.", _iid(live, seed))):
                # the i.i.d. masks only where skipping saves bytes: k_major, one burst per request
                layouts = LAYOUTS if source == "SmolLM2" else ("k_major",)
                for layout in layouts:
                    # a granule below the device burst moves the whole burst: it is the burst's row
                    for g in [g for g in granules if g >= dev] if source == "SmolLM2" else [dev]:
                        if (layout, g) not in dense_of:
                            d = weight_gather_bursts(np.ones(K, dtype=bool), masks.n_cols, e, g, dev, layout)
                            t, c = _serve(mem, d)
                            dense_of[layout, g] = (d, t, c, *_energy(mem, c, d.size))
                        dense, t_dense, c_dense, e_dense, act_dense = dense_of[layout, g]
                        acc = dict.fromkeys(("bursts", "t", "t_packed", "t_bw", "acts", "hits", "energy",
                                             "energy_act", "energy_packed", "imbalance"), 0.0)
                        for row in lv:
                            b = weight_gather_bursts(row, masks.n_cols, e, g, dev, layout)
                            t, c = _serve(mem, b)
                            if b.size not in packed:  # a contiguous run depends on its length alone
                                packed[b.size] = _serve(mem, np.arange(b.size, dtype=np.int64))
                            tp, cp = packed[b.size]
                            acc["bursts"] += b.size
                            acc["t"] += t
                            acc["t_packed"] += tp
                            acc["t_bw"] += bw_ns(b.size * dev)
                            acc["acts"] += c.activations
                            acc["hits"] += c.row_hits
                            energy, act = _energy(mem, c, b.size)
                            acc["energy"] += energy
                            acc["energy_act"] += act
                            acc["energy_packed"] += _energy(mem, cp, b.size)[0]
                            acc["imbalance"] += _imbalance(b, mem.std.channels)
                        passes = lv.shape[0]
                        rows.append({
                            "setting": label, "masks": source, "channels": mem.std.channels, "standard": standard,
                            "peak_gb_s": lim.peak_gb_s, "t_refi_ns": mem.std.t_refi_ns,
                            "layout": layout,
                            "granule_bytes": g, "device_burst_bytes": dev, "passes": passes,
                            "live_fraction": float(lv.mean()),
                            "dense_bytes": passes * dense.size * dev, "read_bytes": int(acc["bursts"]) * dev,
                            "dense_ns": passes * t_dense, "gather_ns": acc["t"], "packed_ns": acc["t_packed"],
                            "bw_dense_ns": passes * bw_ns(dense.size * dev), "bw_ns": acc["t_bw"],
                            "dense_activations": passes * c_dense.activations, "activations": int(acc["acts"]),
                            "dense_row_hit_rate": c_dense.row_hit_rate,
                            "row_hit_rate": acc["hits"] / max(acc["bursts"], 1),
                            "dense_channel_imbalance": _imbalance(dense, mem.std.channels),
                            "channel_imbalance": acc["imbalance"] / passes,
                            "dense_energy_pj": passes * e_dense, "energy_pj": acc["energy"],
                            "dense_act_energy_pj": passes * act_dense, "act_energy_pj": acc["energy_act"],
                            "packed_energy_pj": acc["energy_packed"],
                            "energy_priced": "per event" if mem.std.prices_events else "per bit"})
        # 2:4 compressed: half the values plus 2 bits of index per kept value, two regions read side by side
        K, N = next(iter(masks.live.values())).shape[1], masks.n_cols
        dense = np.arange(-(-K * N * e // dev), dtype=np.int64)
        values = np.arange(-(-(K // 2) * N * e // dev), dtype=np.int64)
        index = np.arange(-(-(K // 2) * N * 2 // 8 // dev), dtype=np.int64) + 4 * dense.size
        order = np.argsort(np.concatenate([values / values.size, index / index.size]), kind="stable")
        stream = np.concatenate([values, index])[order]
        t_dense, c_dense = _serve(mem, dense)
        t, c = _serve(mem, stream)
        e_dense, act_dense = _energy(mem, c_dense, dense.size)
        e_stream, act_stream = _energy(mem, c, stream.size)
        rows.append({"setting": "2:4 compressed", "masks": "-", "channels": mem.std.channels,
                     "peak_gb_s": lim.peak_gb_s, "t_refi_ns": mem.std.t_refi_ns,
                     "standard": standard, "layout": "-",
                     "granule_bytes": dev, "device_burst_bytes": dev, "passes": 1, "live_fraction": 0.5,
                     "dense_bytes": dense.size * dev, "read_bytes": stream.size * dev, "dense_ns": t_dense,
                     "gather_ns": t, "packed_ns": _serve(mem, np.arange(stream.size, dtype=np.int64))[0],
                     "bw_dense_ns": bw_ns(dense.size * dev), "bw_ns": bw_ns(stream.size * dev),
                     "dense_activations": c_dense.activations, "activations": c.activations,
                     "dense_row_hit_rate": c_dense.row_hit_rate, "row_hit_rate": c.row_hit_rate,
                     "dense_channel_imbalance": _imbalance(dense, mem.std.channels),
                     "channel_imbalance": _imbalance(stream, mem.std.channels),
                     "dense_energy_pj": e_dense, "energy_pj": e_stream, "dense_act_energy_pj": act_dense,
                     "act_energy_pj": act_stream, "packed_energy_pj": float("nan"),
                     "energy_priced": "per event" if mem.std.prices_events else "per bit"})
    f = pd.DataFrame(rows)
    f["bytes_saved"] = 1 - f["read_bytes"] / f["dense_bytes"]
    f["time_saved"] = 1 - f["gather_ns"] / f["dense_ns"]
    f["packed_time_saved"] = 1 - f["packed_ns"] / f["dense_ns"]
    f["bw_time_saved"] = 1 - f["bw_ns"] / f["bw_dense_ns"]
    f["energy_saved"] = 1 - f["energy_pj"] / f["dense_energy_pj"]
    f["activations_saved"] = 1 - f["activations"] / f["dense_activations"]
    # time beyond the data bus's own (bytes at the standard's peak), per pass: row opens not hidden
    bus = f["peak_gb_s"]
    f["dense_overhead_ns"] = (f["dense_ns"] - f["dense_bytes"] / bus) / f["passes"]
    f["overhead_ns"] = (f["gather_ns"] - f["read_bytes"] / bus) / f["passes"]
    return f


def plot(frame: pd.DataFrame, out: Path) -> list[str]:
    """Savings against fetch granule, per standard (k_major, SmolLM2 masks, CATS 50%)."""
    sub = frame[(frame["setting"] == label(SPARSITIES[0])) & (frame["masks"] == "SmolLM2")
                & (frame["layout"] == "k_major")]
    long = pd.concat([sub.assign(measure=name, value=sub[col]) for name, col in
                      (("bytes", "bytes_saved"), ("time (banks and rows)", "time_saved"),
                       ("time (packed)", "packed_time_saved"), ("energy", "energy_saved"))])
    plots.plot_lines(long, out / "savings_vs_granule.png", x="granule_bytes", y="value", series="measure",
                     facet="standard", logy=False, percent=True,
                     title="Weight-fetch skipping on SmolLM2-135M decode (CATS 50%, k_major): what survives",
                     xlabel="fetch granule (bytes)", ylabel="saved (% of dense)")
    return ["savings_vs_granule.png"]


def _at(frame, **where):
    for k, v in where.items():
        frame = frame[frame[k] == v]
    return frame.iloc[0] if len(frame) else None


def write(doc: dict, frame: pd.DataFrame, figures: list[str]) -> str:
    lines = []
    base = label(SPARSITIES[0])
    for standard in frame["standard"].unique():
        r = _at(frame, setting=base, masks="SmolLM2", standard=standard, layout="k_major",
                granule_bytes=int(frame[frame["standard"] == standard]["device_burst_bytes"].iloc[0]))
        if r is None:
            continue
        kept = r["time_saved"] / r["bytes_saved"] if r["bytes_saved"] > 0 else float("nan")
        lines.append(
            f"{standard}, k_major, one burst ({r['granule_bytes']} B) per request: skipping saves "
            f"{r['bytes_saved']:.1%} of the bytes and {r['time_saved']:.1%} of the time "
            f"({kept:.0%} of the byte saving); read as one contiguous run, as a replay charges it today, the "
            f"same bursts would save {r['packed_time_saved']:.1%}, and the bandwidth-only model says "
            f"{r['bw_time_saved']:.1%}. Activates fall by {r['activations_saved']:.1%}"
            + (" (the bursts still read lie in the DRAM rows a dense pass opens)"
               if r['activations_saved'] < r['bytes_saved'] / 2 else "")
            + f", the row-hit rate goes from {r['dense_row_hit_rate']:.1%} to {r['row_hit_rate']:.1%}"
            + (f", and the busiest of the {r['channels']} channels carries {r['channel_imbalance']:.2f}x the mean "
               f"channel's bursts ({r['dense_channel_imbalance']:.2f}x dense)" if r['channels'] > 1 else "")
            + f". Beyond its data bus's own time (its bytes "
            f"at the peak) a pass spends {r['dense_overhead_ns']:.0f} ns dense and {r['overhead_ns']:.0f} ns "
            f"skipping.")
    n = frame[(frame["setting"] == base) & (frame["masks"] == "SmolLM2") & (frame["layout"] == "n_major")]
    if len(n):
        lines.append(f"n_major (PyTorch's [out, in] layout): at most {n['bytes_saved'].max():.1%} of the bytes are "
                     f"saved at any granule and standard, since a burst is skipped only when every input it "
                     f"covers is dead.")
    k = frame[(frame["setting"] == base) & (frame["masks"] == "SmolLM2") & (frame["layout"] == "k_major")]
    for standard in k["standard"].unique():
        g = k[k["standard"] == standard].sort_values("granule_bytes")
        lo, hi = g.iloc[0], g.iloc[-1]
        lines.append(f"{standard}: from {lo['granule_bytes']} B to {hi['granule_bytes']} B granules the byte saving "
                     f"goes from {lo['bytes_saved']:.1%} to {hi['bytes_saved']:.1%} and the time saving from "
                     f"{lo['time_saved']:.1%} to {hi['time_saved']:.1%}.")
    for standard in frame["standard"].unique():
        real = _at(frame, setting=base, masks="SmolLM2", standard=standard, layout="k_major",
                   granule_bytes=int(frame[frame["standard"] == standard]["device_burst_bytes"].iloc[0]))
        iid = _at(frame, setting=base, masks="i.i.d.", standard=standard, layout="k_major",
                  granule_bytes=int(frame[frame["standard"] == standard]["device_burst_bytes"].iloc[0]))
        if real is not None and iid is not None:
            lines.append(f"{standard}: the same live counts placed at random save {iid['bytes_saved']:.1%} of the "
                         f"bytes and {iid['time_saved']:.1%} of the time, against the real masks' "
                         f"{real['bytes_saved']:.1%} and {real['time_saved']:.1%}.")
    ev = frame[(frame["energy_priced"] == "per event") & (frame["setting"] == base) & (frame["masks"] == "SmolLM2")
               & (frame["layout"] == "k_major")]
    for r in ev[ev["granule_bytes"] == ev["device_burst_bytes"]].itertuples():
        lines.append(f"{r.standard} prices events (activates, bursts, refresh, background): at {r.granule_bytes} B "
                     f"granules skipping saves {r.energy_saved:.1%} of the DRAM energy against {r.bytes_saved:.1%} "
                     f"of the bytes; a contiguous run of the same bursts would save "
                     f"{1 - r.packed_energy_pj / r.dense_energy_pj:.1%}. Activates are "
                     f"{r.dense_act_energy_pj / r.dense_energy_pj:.1%} of a dense pass's DRAM energy and "
                     f"{r.act_energy_pj / r.energy_pj:.1%} of a skipping one's.")
    per_bit = sorted(frame[frame["energy_priced"] == "per bit"]["standard"].unique())
    if per_bit:
        lines.append(f"{', '.join(per_bit)} give no event energies in their files: their energy is priced per bit, "
                     f"so their energy saving equals their byte saving and is not a finding.")
    for r in frame[frame["setting"] == "2:4 compressed"].itertuples():
        lines.append(f"{r.standard}: a 2:4-compressed weight (values and 2-bit indices, two streams) reads "
                     f"{r.bytes_saved:.1%} fewer bytes and takes {r.time_saved:.1%} less time than dense "
                     f"({r.activations_saved:.1%} fewer activates).")
    shown = frame[frame["masks"] != "i.i.d."]
    settings = "; ".join(f"{k}: `{v}`" for k, v in doc.get("settings", {}).items())
    table = md_table(shown, {"setting": "setting", "standard": "standard", "layout": "layout",
                             "granule_bytes": "granule B", "bytes_saved": "bytes saved",
                             "time_saved": "time saved", "packed_time_saved": "packed",
                             "bw_time_saved": "bandwidth-only", "activations_saved": "activates saved",
                             "row_hit_rate": "row hits", "energy_saved": "energy saved"},
                     {"bytes_saved": ".1%", "time_saved": ".1%", "packed_time_saved": ".1%",
                      "bw_time_saved": ".1%", "activations_saved": ".1%", "row_hit_rate": ".3f",
                      "energy_saved": ".1%"})
    figs = "\n".join(f"![{f}]({f})" for f in figures)
    dense_pass = frame.assign(ns=frame["dense_ns"] / frame["passes"]).groupby("standard")["ns"].max()
    refi = frame.groupby("standard")["t_refi_ns"].first()
    short = [f"{std}'s dense pass is {ns:,.0f} ns against tREFI {refi[std]:,.0f} ns" for std, ns in dense_pass.items()
             if ns < refi[std]]
    short = "; ".join(short) if short else "no standard's dense pass is that short"
    return f"""# Memory: how much of a weight-fetch saving survives on DRAM with banks and rows

Regenerate with `sparsesim study memory --out reports/memory`.

**Masks.** {doc['model']['model']} ({doc['model']['params']:,} parameters, its Q4_1 GGUF weights dequantized to
fp32), one window of {doc['window']:,} tokens of `{doc['eval_text']['name']}`, CATS at the gated MLPs with
thresholds calibrated on {doc['calib_tokens']:,} tokens of `{doc['calib_text']['name']}`; the `down` projection input
at the window's last {doc['positions']} positions of each of its {doc['layers']} layers, one decode GEMV each.
**Settings.** {settings}.
**Weight.** `down`'s weight, {PRESET}'s element size (1 B); dead inputs' rows are not fetched.
**DRAM.** The `banked` model of each standard (`dram.model: banked`, `dram.standard`), all of a pass's bursts
requested at once, address mapping `row:bank:column:group:channel`; `packed` reads the same number of bursts as
one contiguous run; bandwidth-only is the standard's peak plus one unloaded row miss. Each pass starts on an idle
DRAM at time 0, its refresh timed from there, so a pass shorter than tREFI takes none: {short}. Energy table: DRAM only
(the on-chip side does not change with the layout).

- {(chr(10) + '- ').join(lines)}

{figs}

{table}
"""


def run(out: Path, traces: Path, quick: bool) -> Path:
    masks = gate_masks(quick)
    frame = compute(masks, granules=GRANULES[:2] if quick else GRANULES)
    figures = plot(frame, out)
    return write_report(out, write(masks.doc, frame, figures), {"memory.csv": frame})


STUDIES.add("memory", Study("memory", "what weight-fetch skipping and compressed operands save on DRAM with "
                                      "banks and rows (SmolLM2-135M masks, HBM3, LPDDR5, DDR4)", run))
