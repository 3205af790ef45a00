"""The scale-out study's quick mode: its table and the prose computed from it."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from sparsesim.workloads.llm_networks import DECODERS


def test_scale_out_quick(tmp_path):
    from sparsesim.cli.main import main

    out = tmp_path / "report"
    assert main(["study", "scale-out", "--out", str(out), "--quick"]) == 0
    frame = pd.read_csv(out / "scale_out.csv")
    text = (out / "README.md").read_text()
    dense = frame[frame["act_sparsity"] == 0]
    one = dense[(dense["accel"] == "a100") & (dense["chips"] == 1)].iloc[0]
    # one a100 decoding Llama-2-7B at batch 1 streams its bf16 weights once per token at 1555 GB/s
    weights = 2 * DECODERS.get("llama2_7b").active_params_per_token
    assert one["decode_ms_per_token"] == pytest.approx(1e3 * weights / 1555e9, rel=0.15)
    # the prose's tensor-parallel gain is the table's ratio
    for accel in ("dc128", "a100"):
        g = dense[(dense["accel"] == accel) & (dense["pp"] == 1)].sort_values("chips")
        gain = g.iloc[0]["decode_ms_per_token"] / g.iloc[-1]["decode_ms_per_token"]
        m = re.search(rf"llama2_7b on {accel}:.*?decode gets ([0-9.]+)x faster", text)
        assert m and float(m.group(1)) == pytest.approx(gain, abs=0.006)
    # a split adds collectives; one chip has none
    assert (dense[dense["chips"] == 1]["decode_collective_share"] == 0).all()
    assert (dense[dense["chips"] > 1]["decode_collective_share"] > 0).all()
    # activation sparsity makes decode faster on every split it runs
    for _, r in frame[frame["act_sparsity"] > 0].iterrows():
        d = dense[(dense["accel"] == r["accel"]) & (dense["strategy"] == r["strategy"])].iloc[0]
        assert r["decode_ms_per_token"] < d["decode_ms_per_token"]
    # Llama-2-7B fits one 40 GiB a100 (about 12.6 GiB of bf16 weights); dc128 states no capacity
    assert set(dense[dense["accel"] == "a100"]["fits"]) == {"yes"}
    assert set(dense[dense["accel"] == "dc128"]["fits"]) == {"unstated"}
    assert one["memory_gib_per_chip"] == pytest.approx(2 * DECODERS.get("llama2_7b").params / 2 ** 30, rel=0.01)
    stated = len(dense[dense["fits"] != "unstated"])
    assert f"Every one of the {stated} dense runs on chips that state their capacity fits it." in text
    assert "Energy table and DRAM model" in text and (out / "decode_vs_chips.png").stat().st_size > 10_000
