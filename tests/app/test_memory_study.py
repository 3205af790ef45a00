"""The memory study's gather streams and savings, against hand cases and the replay's own byte count."""

from __future__ import annotations

import numpy as np
import pytest

from sparsesim.dataflows.sparse import weight_fetch_skip, weight_gather_bursts
from sparsesim.studies import memory


def test_gather_bursts_by_hand():
    # K=4 rows of N=8 one-byte weights, k_major: row k is bytes [8k, 8k+8)
    live = np.array([1, 0, 0, 1], dtype=bool)
    assert weight_gather_bursts(live, 8, 1, 8, 8, "k_major").tolist() == [0, 3]
    # granules of 4 B served by 8 B bursts: each live row's two granules are one burst
    assert weight_gather_bursts(live, 8, 1, 4, 8, "k_major").tolist() == [0, 3]
    # a 16 B granule covers rows 0-1 and rows 2-3: both hold a live row
    assert weight_gather_bursts(live, 8, 1, 16, 8, "k_major").tolist() == [0, 1, 2, 3]
    # n_major, K=8 inputs of N=2 outputs: output n is bytes [8n, 8n+8); inputs 4-7 dead
    live = np.array([1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)
    assert weight_gather_bursts(live, 2, 1, 4, 4, "n_major").tolist() == [0, 2]
    # two-byte elements: output n is bytes [16n, 16n+16), inputs 4-7 are its bytes 8-15
    assert weight_gather_bursts(live, 2, 2, 8, 8, "n_major").tolist() == [0, 2]


@pytest.mark.parametrize("layout", ["k_major", "n_major"])
@pytest.mark.parametrize("granule", [16, 32, 96, 256])
def test_gather_reads_what_fetch_skipping_counts(layout, granule):
    """The bursts read are the dense bytes less what the replay counts as skipped."""
    rng = np.random.default_rng(granule)
    for density in (0.05, 0.5, 0.95):
        live = rng.random(300) < density
        live[:40] = False  # a long dead run, so n_major saves something too
        b = weight_gather_bursts(live, 24, 1, granule, granule, layout)
        w = weight_fetch_skip(live, 24, 1, granule, layout)
        total = live.size * 24
        read = sum(min((j + 1) * granule, total) - j * granule for j in b)
        assert read == w.dense_bytes - w.skipped_bytes


def _brute_bursts(live, n_cols, e, granule, dev, layout):
    """Byte by byte: a granule is read when any of its bytes belongs to a live row; a read byte's burst is read."""
    K = live.size
    total = K * n_cols * e
    out = set()
    for start in range(0, total, granule):
        span = range(start, min(start + granule, total))
        rows = [(o // e) // n_cols if layout == "k_major" else (o // e) % K for o in span]
        if any(live[r] for r in rows):
            out.update(o // dev for o in span)
    return sorted(out)


def test_gather_bursts_against_byte_by_byte():
    rng = np.random.default_rng(5)
    for _ in range(150):
        K, N = int(rng.integers(1, 30)), int(rng.integers(1, 12))
        e, g, dev = (int(rng.choice(c)) for c in ([1, 2, 4], [1, 4, 8, 16, 64], [4, 8, 32]))
        live = rng.random(K) < rng.random()
        for layout in ("k_major", "n_major"):
            assert weight_gather_bursts(live, N, e, g, dev, layout).tolist() == \
                _brute_bursts(live, N, e, g, dev, layout), (K, N, e, g, dev, layout)


def test_bad_gather_arguments_are_refused():
    with pytest.raises(ValueError, match="granule_bytes"):
        weight_gather_bursts(np.ones(4, dtype=bool), 8, 1, 0, 8)
    with pytest.raises(ValueError, match="layout"):
        weight_gather_bursts(np.ones(4, dtype=bool), 8, 1, 8, 8, "row_major")


def _masks(live: np.ndarray) -> memory.Masks:
    doc = {"model": {"model": "m", "params": 1}, "eval_text": {"name": "e"}, "calib_text": {"name": "c"},
           "window": 8, "positions": live.shape[0], "layers": 1, "calib_tokens": 8, "settings": {}}
    return memory.Masks({memory.label(0.5): live}, 64, doc)


def test_savings_by_construction():
    K = 256
    dense = np.ones((1, K), dtype=bool)
    prefix = np.zeros((1, K), dtype=bool)
    prefix[0, : K // 4] = True  # the first quarter of the rows: in k_major one contiguous run
    f = memory.compute(_masks(np.concatenate([dense, prefix])), standards=("HBM3", "DDR4_3200"), granules=(64,))
    k = f[(f["layout"] == "k_major") & (f["masks"] == "SmolLM2")]
    assert len(k) == 2
    # one dense pass and one reading a quarter: 3/8 of the bytes saved
    assert np.allclose(k["bytes_saved"], 3 / 8)
    # a live prefix in k_major is a contiguous run: its gather is the packed run exactly
    assert np.allclose(k["gather_ns"], k["packed_ns"])
    # a run that reads less takes less time, but no more is saved than the bytes
    assert ((k["time_saved"] > 0) & (k["time_saved"] <= k["bytes_saved"] + 1e-9)).all()
    # priced per bit, energy follows the bytes; priced per event (DDR4), it does not exactly
    hbm = k[k["standard"] == "HBM3"].iloc[0]
    ddr = k[k["standard"] == "DDR4_3200"].iloc[0]
    assert hbm["energy_priced"] == "per bit" and hbm["energy_saved"] == pytest.approx(hbm["bytes_saved"])
    assert ddr["energy_priced"] == "per event" and ddr["act_energy_pj"] > 0
    assert 0 < ddr["energy_saved"] < 1 and ddr["energy_saved"] != pytest.approx(ddr["bytes_saved"], abs=1e-6)
    # the 2:4-compressed weight reads half the values plus 2 bits of index per kept value
    c = f[f["setting"] == "2:4 compressed"]
    assert np.allclose(c["bytes_saved"], 1 - (0.5 + 0.5 * 2 / 8))


def test_report_sentences_come_from_the_table(tmp_path):
    rng = np.random.default_rng(3)
    live = rng.random((3, 128)) < 0.5
    f = memory.compute(_masks(live), standards=("LPDDR5_6400",), granules=(32, 128))
    text = memory.write(_masks(live).doc, f, memory.plot(f, tmp_path))
    r = f[(f["masks"] == "SmolLM2") & (f["layout"] == "k_major") & (f["granule_bytes"] == 32)].iloc[0]
    assert f"saves {r['bytes_saved']:.1%} of the bytes and {r['time_saved']:.1%} of the time" in text
    assert "LPDDR5_6400 give no event energies" in text
    assert (tmp_path / "savings_vs_granule.png").stat().st_size > 10_000
