"""Case-study prose follows the data: the same writer says opposite things of opposite tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sparsesim.studies import delta, llm_decode, sat
from sparsesim.studies.common import relation, span, trend


def test_prose_helpers():
    assert span([1.0, 1.5, 1.25]) == "1.00x to 1.50x"
    assert span([0.0123, 0.0123], ".1%", "") == "1.2%"
    assert trend([1, 2, 2, 3]) == "grows" and trend([3, 1]) == "falls" and trend([1, 1]) == "stays flat"
    assert trend([1, 3, 2]) == "is not monotonic"
    assert relation(1.0, 1.4) == "below" and relation(1.5, 1.4) == "above" and relation(1.41, 1.4) == "about equal to"


def _delta_summary(saving: float, err0: float) -> pd.DataFrame:
    rows = []
    for model in delta.MODELS:
        for i, theta in enumerate(delta.THRESHOLDS):
            rows.append({"model": model, "threshold": theta, "fired": 0.5 - 0.05 * i, "speedup": 1.0 + 0.1 * i,
                         "bound_speedup": 3.0, "compute_speedup": 1.2 + 0.1 * i, "compute_bound_speedup": 4.0,
                         "work_ratio": 2.0 + i, "energy_saving": saving, "state_share": 0.01,
                         "err_mean": (err0 if theta == 0 else 0.01 * i), "err_max": (err0 if theta == 0 else 0.1 * i),
                         "stall_cycles": 50, "cycles": 100, "state_on_chip": model != delta.MODELS[0],
                         "speedup_macs_only": 1.0 + (0.1 * i if saving < 0 else 0.02 * i),
                         "weight_skipped": 0.1 * i if saving > 0 else 0.5 * i / len(delta.THRESHOLDS),
                         "dram_bytes": 1e6 * (1 - 0.1 * i), "dram_bytes_macs_only": 1e6,
                         "compute_speedup_macs_only": 1.2 + 0.1 * i})
    return pd.DataFrame(rows)


def test_delta_text_is_computed_from_its_table():
    figs = {k: Path(f"{k}.png") for k in ("speedup", "error", "energy")}
    good = delta.write(delta.Data(pd.DataFrame(), _delta_summary(0.2, 0.0), 1), figs)
    bad = delta.write(delta.Data(pd.DataFrame(), _delta_summary(-0.03, 1e-3), 1), figs)
    assert "exactly zero" in good and "exactly zero" not in bad
    assert "1.00e-03" in bad
    assert "saves energy at every θ" in good and "costs energy" not in good
    assert "costs energy" in bad and "-3.0%" in bad
    # weight rows of unsent deltas: a gain where the speedups part, bytes that did not bound it where not
    assert "bytes not fetched are cycles saved" in good and "are cycles saved" not in bad
    assert "were not what bounded" in bad and "were not what bounded" not in good
    # the reason given follows the table: state kept in DRAM for one model, on chip for the other
    assert f"{delta.MODELS[0]} at θ = 0 to" in bad and "crosses DRAM every step" in bad
    assert "so little is skipped" in bad


# ---------------------------------------------------------------- llm-decode


def _llm_data(fetch: bool) -> llm_decode.Data:
    """Opposite tables: with ``fetch`` false the zeros save no weight bytes (DRAM bytes flat, effectual
    intensity falling, no burst skipped, CHESS idle in decode, dense decode at its DRAM bound, the
    predictor slower); with ``fetch`` true the opposite."""
    s = llm_decode.QUICK
    rows = []
    for preset in llm_decode.PRESETS:
        for phase in ("prefill", "decode"):
            dense = {"workload": s.relu_model, "source": "captured", "preset": preset, "config": "dense",
                     "target": None, "phase": phase, "speedup": 1.0, "bound_speedup": 3.0 if fetch else 1.02,
                     "act_zero": 0.0,
                     "down_zero": 0.0, "dram_ratio": 1.0, "dram_bound_ratio": 1.0, "fetch_bound_ratio": 0.0,
                     "skipped_ratio": 0.0, "stall_share": 0.1 if fetch else 0.5, "energy_saving": 0.0, "intensity": 20.0 if
                     phase == "prefill" else 1.0, "macs_per_cycle": 100.0 if phase == "prefill" else 10.0,
                     "weight_bytes_skipped": 0}
            rows.append(dense)
            rows.append({**dense, "config": "ReLU zeros", "act_zero": 0.15, "down_zero": 0.5,
                         "speedup": 1.4 if fetch else 1.01, "dram_ratio": 0.7 if fetch else 1.0,
                         "skipped_ratio": 0.3 if fetch else 0.0, "weight_bytes_skipped": 100 if fetch else 0})
            for t, z in ((0.5, 0.3), (0.9, 0.45)):
                rows.append({**dense, "workload": s.swiglu_model, "config": f"CATS {t:.0%}", "target": t,
                             "act_zero": z, "down_zero": t, "speedup": 1.0 + z,
                             "weight_bytes_skipped": 100 if fetch else 0})
            rows.append({**dense, "workload": s.swiglu_model, "config": "CATS 50% + predictor", "target": 0.5,
                         "act_zero": 0.3, "down_zero": 0.5,
                         "speedup": 1.6 if fetch else (0.9 if phase == "prefill" else 1.2)})
            chess_zero = 0.7 if (fetch or phase == "prefill") else 0.0
            rows.append({**dense, "workload": s.swiglu_model, "config": "CHESS 70%", "target": 0.7,
                         "act_zero": chess_zero, "down_zero": chess_zero, "speedup": 1.0 + chess_zero})
            rows.append({**dense, "workload": s.network, "source": "synthetic"})
            for act in s.sparsities:
                rows.append({**dense, "workload": s.network, "source": "synthetic", "config": f"i.i.d. {act:g}",
                             "target": act, "act_zero": act, "speedup": (1 + act) if fetch else 1.0,
                             "dram_ratio": (1 - act) if fetch else 1.0,
                             "fetch_bound_ratio": 1 - act if fetch else 0.0})
    summary = pd.DataFrame(rows)
    roof = []
    for preset in llm_decode.PRESETS:
        for config, intensity in (("dense", 1.0), ("ReLU zeros", 1.0 if fetch else 0.5)):
            roof.append({"workload": s.relu_model, "source": "captured", "preset": preset, "config": config,
                         "kind_of_op": "down", "intensity": intensity, "macs_per_cycle": 12.0,
                         "roof": 25.0, "of_roof": 0.5})
    burst = pd.DataFrame([{"workload": s.network, "config": f"{layout} {b} B", "layout": layout,
                           "burst_bytes": b, "weight_fetch": True, "skippable_share": 0.9,
                           "captured": (1.0 if layout == "k_major" else 0.5 / b) if fetch else 0.0,
                           "bitmap_per_skipped": 0.001, "bound_speedup": 3.0, "skip_bitmap_bytes": 1,
                           "weight_bytes_skipped": int((1000 if layout == "k_major" else 0) * fetch),
                           "speedup": (2.0 if layout == "k_major" else 1.1) if fetch else 1.05}
                          for layout in ("k_major", "n_major") for b in (64, 256)]
                         + [{"workload": s.network, "config": "no fetch", "layout": "k_major", "burst_bytes": 64,
                             "weight_fetch": False, "skippable_share": 0.9, "captured": 0.0,
                             "bitmap_per_skipped": 0.0, "speedup": 1.05, "bound_speedup": 3.0, "skip_bitmap_bytes": 0,
                             "weight_bytes_skipped": 0}])
    captured_rows = pd.DataFrame({"source": ["captured"], "kind_of_op": ["down" if fetch else "lm_head"]})
    return llm_decode.Data(captured_rows, summary, pd.DataFrame(roof), burst, s,
                           {"edge32": (1024, 25.6), "dc128": (16384, 600.0)})


def test_llm_decode_text_is_computed_from_its_tables():
    figs = {k: Path(f"{k}.png") for k in ("speedup", "bytes", "roofline_edge32", "roofline_dc128")}
    none = llm_decode.write(_llm_data(False), figs)
    some = llm_decode.write(_llm_data(True), figs)
    assert "No weight byte is skipped" in none and "No weight byte is skipped" not in some
    assert "Weight-fetch skipping leaves" in some
    # what paces dense decode follows its bound and stalls
    assert "it is bandwidth-bound" in none and "compute time sets its pace" not in none
    assert "compute time sets its pace" in some and "it is bandwidth-bound" not in some
    # the decode sweep: flat without fetch skipping, growing with it
    assert "With zeros the speedup stays flat with the sparsity" in none
    assert "With zeros the speedup grows with the sparsity, from 1.00x at 0% to 1.90x at 90%" in some
    assert "1.20x at 50%, below the 1.30x" in none and "1.60x at 50%, above the 1.30x" in some
    # the roofline: the zeros' weight rows still fetched, or not
    assert "as the zeros' weight rows are still fetched" in none and "go together" in some
    # CHESS idle in decode only when the table says so
    assert "no threshold is learnt there" in none and "no threshold is learnt there" not in some
    # bursts: the N-major loss and the fetch switch follow the table
    assert "with PyTorch's N-major layout 1% at 64 B (1.10x), 0% at 256 B (1.10x)" in some
    assert "falls as the burst grows" in some
    assert "stays flat as the burst grows" in none and "falls as the burst grows" not in none
    assert "gather bitmap costs" not in none
    assert "The gather bitmap costs 0.100% of the bytes it saves, and is read for nothing where nothing is " \
           "skipped (2 of 4 settings)" in some
    assert "Without fetch skipping the same zeros give 1.05x (below the 2.00x with it)" in some
    assert "Without fetch skipping the same zeros give 1.05x (about equal to the 1.05x with it)" in none
    assert "The slowest prefill is `llama_tiny` with CATS 50% + predictor on `edge32`, 0.90x: slower than dense, " \
           "as its predictor GEMMs cost more" in none
    assert "slower than dense" not in some
    assert "the LM head included" in none and "not the LM head" in some


def test_llm_decode_quick_end_to_end(tmp_path):
    """The quick study captures the tiny decoders and writes every table; its totals agree with
    hand counts: decode MACs from the decoder's shape, and the ReLU zeros from the trace itself."""
    import numpy as np

    from sparsesim.cli.main import main
    from sparsesim.workloads.llm_networks import DECODERS
    from sparsesim.workloads.trace import load_trace

    out, traces = tmp_path / "report", tmp_path / "traces"
    assert main(["study", "llm-decode", "--out", str(out), "--traces", str(traces), "--quick"]) == 0
    text = (out / "README.md").read_text()
    assert "random-init" in text and "i.i.d." in text
    summary = pd.read_csv(out / "summary.csv")
    s = llm_decode.QUICK
    shape = DECODERS.get(s.relu_model)
    # every op of a decode step: projections, LM head, and the attention over a cache of P + t + 1
    macs = sum(shape.macs_per_token(s.prompt_len + t + 1) for t in range(s.gen_len))
    dense = summary[(summary["workload"] == s.relu_model) & (summary["config"] == "dense")
                    & (summary["phase"] == "decode")]
    assert len(dense) == len(llm_decode.PRESETS) and (dense["macs_dense"] == macs).all()
    # the zero fraction of down_proj's decode inputs, counted in the trace's own tensors
    (trace,) = [p for p in traces.iterdir() if p.name.startswith(f"{s.relu_model}-")]
    tr = load_trace(trace)
    xs = [tr.operand(r, "input") for r in tr.ops if r.op.name.endswith("down_proj") and "decode" in map(str, r.phases)]
    zero = sum(int((x == 0).sum()) for x in xs) / sum(x.size for x in xs)
    relu = summary[(summary["workload"] == s.relu_model) & (summary["config"] == "ReLU zeros")
                   & (summary["phase"] == "decode")]
    assert np.allclose(relu["down_zero"], zero) and 0.2 < zero < 0.8
    assert (summary["speedup"] <= summary["bound_speedup"] + 1e-9).all()
    roof = pd.read_csv(out / "roofline.csv")
    assert (roof["macs_per_cycle"] <= roof["roof"] * (1 + 1e-9)).all()


def _sat_factors(small: dict, full: dict) -> pd.DataFrame:
    """Two models with their speedup made of the given factors (speedup = product, as measured)."""
    rows = []
    for group, model, f in (("small", "tiny", small), ("full", "huge", full)):
        rows.append({"group": group, "model": model, **f,
                     "speedup": f["work_ratio"] * f["array_efficiency"] * f["memory_efficiency"]})
    return pd.DataFrame(rows)


def test_sat_size_text_follows_its_table():
    narrow = {"work_ratio": 2.0, "array_efficiency": 0.6, "memory_efficiency": 0.9, "untouched_mac_share": 0.33,
              "weightless_mac_share": 0.0, "short_share": 0.7, "stall_share": 0.1, "median_k": 64,
              "energy_saving": 0.1, "pregen_share": 0.3}
    wide = {**narrow, "array_efficiency": 0.95, "short_share": 0.05, "median_k": 384, "energy_saving": 0.25,
            "pregen_share": 0.05}
    grows = sat.size_text(_sat_factors(narrow, wide), (("tiny", "huge"),), 32)
    falls = sat.size_text(_sat_factors(wide, narrow), (("tiny", "huge"),), 32)
    # 2 x 0.6 x 0.9 = 1.08 and 2 x 0.95 x 0.9 = 1.71: 1.71 / 1.08 - 1 = +58%
    assert "grows (1.08x -> 1.71x, +58%)" in grows and "falls (1.71x -> 1.08x, -37%)" in falls
    assert "array's share of the work saving, which rises by +58%" in grows
    assert "shorter than the 32-row array shrinks from 70% to 5%" in grows and "K = 64 -> 384" in grows
    assert "array's share of the work saving, which falls by -37%" in falls
    assert "Energy saved grows (10.0% -> 25.0%)" in grows and "shrinks from 30% to 5% of the DRAM bytes" in grows
    assert "Energy saved falls (25.0% -> 10.0%)" in falls and "grows from 5% to 30% of the DRAM bytes" in falls
    assert "shorter than the 32-row array grows from 5% to 70%" in falls
    # a factor whose explaining share moves the other way is not explained by it
    stalled = {**narrow, "memory_efficiency": 0.5, "stall_share": 0.05}
    odd = sat.size_text(_sat_factors(narrow, stalled), (("tiny", "huge"),), 32)
    assert "memory and pre-generation, which falls" in odd and "the stalls does not explain it (10% -> 5%)" in odd
    same = sat.size_text(_sat_factors(narrow, {**narrow, "memory_efficiency": 0.91}), (("tiny", "huge"),), 32)
    assert "stays about the same" in same and "No factor moves by more than 2%" in same


def _sat_row(phase: str, kind: str, K: int, macs: int, pruned: bool, dense_compute: int, compute: int) -> dict:
    return {"group": "full", "model": "m", "config": sat.LADDER_RATIO, "phase": phase, "kind": kind, "K": K,
            "features_active": "nm" if pruned else "", "macs_dense": macs, "macs_effectual": macs // 4 if pruned
            else macs, "dense_compute_cycles": dense_compute, "compute_cycles": compute,
            "dense_cycles": dense_compute + 10, "cycles": compute + 10, "stall_cycles": 10, "energy_pj": 1.0,
            "dense_energy_pj": 2.0, "dram_bytes": 1, "bound_cycles": 1, "mac_bound_cycles": 1,
            "pregen_dram_bytes": 0}


def test_sat_size_factors_by_hand():
    rows = pd.DataFrame([
        _sat_row("fwd", "linear", 256, 800, True, 100, 30),  # 2:8 of 256 -> 64 MAC slots: not short
        _sat_row("bwd_data", "linear", 64, 400, True, 60, 40),  # 2:8 of 64 -> 16 slots < 32 rows: short
        _sat_row("bwd_weight", "linear", 8, 600, False, 90, 90),
        _sat_row("fwd", "matmul", 16, 200, False, 50, 50),
    ])
    f = sat.size_factors(rows, sat._step(rows), 32).iloc[0]
    # dense MACs 2000, effectual 200 + 100 + 600 + 200 = 1100; dense compute 300, sparse compute 210;
    # dense cycles 340, sparse cycles 250 (each row adds 10 cycles of stall)
    assert f["work_ratio"] == 2000 / 1100
    assert abs(f["array_efficiency"] - (300 / 210) / (2000 / 1100)) < 1e-12
    assert abs(f["memory_efficiency"] - (340 / 250) / (300 / 210)) < 1e-12
    assert abs(f["speedup"] - 340 / 250) < 1e-12
    assert f["untouched_mac_share"] == 800 / 2000 and f["weightless_mac_share"] == 200 / 2000
    assert f["short_share"] == 60 / 160 and f["stall_share"] == 40 / 250
    assert f["median_k"] == (256 + 64) / 2  # the two pruned rows


def test_sat_size_summary_follows_its_tables():
    def data(small_speedup: float, full_speedup: float) -> sat.Data:
        step = pd.DataFrame([{"model": "huge", "config": r, "speedup": full_speedup} for r in sat.RATIOS])
        small = pd.DataFrame([{"model": "tiny", "config": r, "speedup": small_speedup} for r in sat.RATIOS])
        factors = pd.DataFrame([{"group": "small", "model": "tiny", "speedup": small_speedup},
                                {"group": "full", "model": "huge", "speedup": full_speedup}])
        empty = pd.DataFrame()
        return sat.Data(empty, step, small, empty, empty, factors, empty, (("tiny", "huge"),), 32)

    up = sat._size_summary(data(1.2, 1.9))
    down = sat._size_summary(data(1.9, 1.2))
    assert "full-size models average **1.90x**, the small ones 1.20x" in up
    assert f"full-size average is above the paper's {sat.PUBLISHED_2_8}x and the small one below it" in up
    assert f"full-size average is below the paper's {sat.PUBLISHED_2_8}x and the small one above it" in down
    assert "the speedup grows in 1 of the 1 pairs" in up and "the speedup falls in 1 of the 1 pairs" in down


def test_a_study_refuses_a_reused_trace_whose_tensors_changed(tmp_path):
    # studies reuse the traces in --traces by their settings; a file changed since it was
    # captured is refused at replay, not turned into report figures
    import pytest

    from sparsesim.cli.main import main
    from sparsesim.studies.common import run_trace
    from sparsesim.core.errors import InputError

    out = tmp_path / "t"
    assert main(["trace", "synth", "--gemm", "16,16,16", "--out", str(out)]) == 0
    f = next(out.glob("*.safetensors"))
    raw = bytearray(f.read_bytes())
    raw[-1] ^= 0xFF  # a byte of the last tensor, size unchanged
    f.write_bytes(bytes(raw))
    with pytest.raises(InputError, match=rf"^{f}: SHA-256 differs"):
        run_trace(out, "edge32", dataflow="os")


def test_codesign_text_is_computed_from_its_table():
    import pandas as pd

    from sparsesim.studies.codesign import pareto, write

    def row(family, target, accel, ppl, speedup, agree=0.9):
        return {"family": family, "target_sparsity": target, "sparsity": f"{family}{target}", "accel": accel,
                "perplexity": ppl, "dense_perplexity": 10.0, "ppl_increase": ppl / 10.0 - 1,
                "next_token_agreement": agree, "act_zero_fraction": 0.2, "speedup": speedup, "energy_saved": 0.1,
                "cycles": 1, "energy_pj": 1.0, "dram_bytes": 1, "ops_mask_checked": 3}

    def frame(chess_ppl):
        rows = []
        for accel in ("edge32", "dc128"):
            rows += [row("dense", 0.0, accel, 10.0, 1.0, 1.0), row("CATS", 0.5, accel, 12.0, 1.2),
                     row("CHESS", 0.5, accel, chess_ppl, 1.1), row("one-shot 2:4", 0.5, accel, 50.0, 1.5)]
        return pd.DataFrame(rows)

    doc = {"calib_text": {"name": "pydoc:calib"}, "text": {"name": "pydoc:eval", "tokens": 4096, "sha256": "ab" * 32},
           "model": {"params": 1, "sha256": "cd" * 32}, "context": 1024, "prompt_len": 128, "gen_len": 8}
    better = write(doc, frame(11.0), {"calib_tokens": 2048}, [])
    worse = write(doc, frame(30.0), {"calib_tokens": 2048}, [])
    assert "from 10.00 to 12.00 (+20.0%)" in better and "changes at 10.0% of the positions" in better
    assert "does not hold up as well" in better  # +20% perplexity is not within 1-2%
    assert "loses less than CATS at 1 of 1" in better and "loses less than CATS at 0 of 1" in worse
    assert "multiplies perplexity by 5.0" in better
    assert "fastest setting is one-shot 2:4 at 50% (1.50x" in better
    # CHESS at 11.0 and 1.1x is beaten by nothing faster and better, so it is on the front; at 30.0 CATS beats it
    assert "CHESS 50%" in better.split("Pareto front holds")[1].split("\n")[0]
    assert list(pareto(frame(30.0).query("accel == 'edge32'"))["family"]) == ["dense", "CATS", "one-shot 2:4"]
    # the trained predictor's sentences come from its rows: recall, perplexity and speed against CATS alone
    pred = frame(11.0)
    extra = [row("CATS", 0.3, "edge32", 11.0, 1.1)]
    for target, ppl, speed, recall in ((0.3, 11.5, 1.05, 0.9), (0.5, 15.0, 1.3, 0.8)):
        extra.append({**row("CATS + predictor r144", target, "edge32", ppl, speed), "predictor_recall": recall})
    text = write(doc, pd.concat([pred, pd.DataFrame(extra)], ignore_index=True), {"calib_tokens": 2048}, [])
    assert "rank 144 recalls 80.0% of the neurons CATS keeps" in text and "perplexity is 15.00 against CATS's 12.00" in text
    assert ("recalls 90.0% at 30% (perplexity 11.50 against 11.00, 1.05x against 1.10x); 80.0% at 50%" in text
            and "faster than the gate computed dense at 1 of 2" in text)


def test_codesign_sequence_text_is_computed_from_its_table():
    import pandas as pd

    from sparsesim.studies import codesign

    frame = pd.DataFrame([
        {"threshold": 0.0, "chunks": 100, "decision_agreement": 1.0, "prob_err_mean": 0.0, "prob_err_max": 0.0,
         "fired_fraction": 0.8, "ops_mask_checked": 8, "accel": "edge32", "cycles": 800, "dense_cycles": 1000,
         "speedup": 1.25, "energy_pj": 7.0, "energy_saved": 0.3, "dram_bytes": 10},
        {"threshold": 0.1, "chunks": 100, "decision_agreement": 0.93, "prob_err_mean": 0.07, "prob_err_max": 0.9,
         "fired_fraction": 0.25, "ops_mask_checked": 8, "accel": "edge32", "cycles": 500, "dense_cycles": 1000,
         "speedup": 2.0, "energy_pj": 4.0, "energy_saved": 0.6, "dram_bytes": 5}])
    doc = {"silero_vad": "6.2.3", "audio": {"sentences": 2, "text": "pydoc:eval", "espeak_ng": "1.51", "samples": 512,
                                            "sample_rate_hz": 16000, "samples_sha256": "ab" * 32}}
    text = codesign.write_sequence(doc, frame)
    assert "delta at theta 0.1: 75.0% of the GEMM inputs are not sent" in text
    assert "matches the dense model's at 93.00% of the 100 chunks" in text
    assert "edge32 runs 2.00x faster than dense (60.0% less energy)" in text
    assert "the lowest agreement here is 93.00%, at theta 0.1" in text
    # the table has as many cells per row as headers (no stray pipe in a header)
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len({line.count("|") for line in table}) == 1


def test_provenance_names_every_energy_table_and_dram_model_of_the_rows():
    import pandas as pd

    from sparsesim.studies.common import provenance

    simple = pd.DataFrame({"energy_table": ["horowitz45", "horowitz45"]})
    assert "Energy: `horowitz45`; DRAM model: `simple` (a bandwidth" in provenance(simple)
    banked = pd.DataFrame({"energy_table": ["horowitz45_n7"], "cfg.dram.model": ["banked"],
                           "cfg.dram.standard": ["HBM3"]})
    line = provenance(simple, banked)
    assert "Energy: `horowitz45`, `horowitz45_n7`; DRAM model: `banked` (HBM3), `simple`, read from" in line
    assert "Not recorded" in provenance(pd.DataFrame({"cycles": [1]})) and "Not recorded" in provenance()
