"""Weight rows skipped behind all-zero activation columns (``sparse.weight_fetch_skip``):
hand-worked decode GEMVs at 64 B bursts, and a byte-by-byte brute force on random masks that
also checks the fetched bytes never go below the bound."""

from __future__ import annotations

import numpy as np
import pytest

from sparsesim.dataflows.sparse import weight_fetch_skip


def _vector(zeros, k=8):
    """Which of ``k`` reduction indices have a live activation: all but ``zeros``."""
    live = np.ones(k, dtype=bool)
    live[list(zeros)] = False
    return live


def test_contiguous_zeros_skip_whole_rows():
    # M=1, K=8, N=64, fp16: each row of B is 128 B = 2 bursts; zeros at k=2..5 skip 4 rows
    got = weight_fetch_skip(_vector(range(2, 6)), 64, 2, 64)
    assert got.skipped_bytes == 4 * 128
    assert got.bound_bytes == 4 * 128  # the 4 live rows must still come in
    assert got.bitmap_bytes == 1  # 8 rows, one bit each, one span


def test_scattered_zeros_save_the_same_when_rows_span_whole_bursts():
    assert weight_fetch_skip(_vector([0, 2, 4, 6]), 64, 2, 64).skipped_bytes == 4 * 128


def test_rows_shorter_than_a_burst():
    # N=16, fp16: a row is 32 B, half a burst. Scattered zeros leave a live row in every
    # burst (rows 2j and 2j+1 share burst j): nothing saved. Contiguous k=2..5 free bursts 1, 2.
    assert weight_fetch_skip(_vector([0, 2, 4, 6]), 16, 2, 64).skipped_bytes == 0
    assert weight_fetch_skip(_vector(range(2, 6)), 16, 2, 64).skipped_bytes == 2 * 64


def test_no_zeros_saves_nothing():
    got = weight_fetch_skip(np.ones(10, dtype=bool), 7, 2, 64)
    assert got.skipped_bytes == 0
    assert got.bound_bytes == 10 * 7 * 2


def _brute(live, n, e, burst, layout="k_major"):
    """Byte by byte: a burst is fetched when any byte of B in it belongs to a live row."""
    K = live.size
    total = K * n * e

    def owner(byte):  # the reduction index k of the element holding this byte
        element = byte // e
        return element // n if layout == "k_major" else element % K
    skipped = 0
    for start in range(0, total, burst):
        owners = {owner(b) for b in range(start, min(start + burst, total))}
        if not any(live[k] for k in owners):
            skipped += min(start + burst, total) - start
    return skipped, total


@pytest.mark.parametrize("layout", ["k_major", "n_major"])
@pytest.mark.parametrize("seed", range(40))
def test_brute_force_and_bound(seed, layout):
    rng = np.random.default_rng(seed)
    K, n = int(rng.integers(1, 13)), int(rng.integers(1, 40))
    e = int(rng.choice([1, 2, 4]))
    burst = int(rng.choice([1, 16, 32, 64, 128]))
    live = rng.random(K) < rng.choice([0.2, 0.5, 0.9])
    if rng.random() < 0.3:
        live[rng.integers(0, K):] = False  # a contiguous dead tail
    got = weight_fetch_skip(live, n, e, burst, layout)
    skipped, dense = _brute(live, n, e, burst, layout)
    assert got.skipped_bytes == skipped and got.dense_bytes == dense
    assert dense - got.skipped_bytes >= got.bound_bytes
    if burst == 1:  # byte granularity: the bound is reached
        assert dense - got.skipped_bytes == got.bound_bytes


def test_n_major_scattered_zeros_save_nothing_contiguous_ones_save_bursts():
    # PyTorch [out, in] layout: an output's K=64 int8 weights are one 64 B burst. Half the
    # inputs dead, scattered: every burst still holds a live input, nothing is skipped. The
    # first 32 dead and K=128 (two bursts per output): the first burst of each of the N=10
    # outputs is skipped.
    scattered = _vector(range(0, 64, 2), k=64)
    assert weight_fetch_skip(scattered, 10, 1, 64, "n_major").skipped_bytes == 0
    # k_major with 10 B rows: a 64 B burst spans 6-7 rows, always one live among them
    assert weight_fetch_skip(scattered, 10, 1, 64, "k_major").skipped_bytes == 0
    head = _vector(range(0, 64), k=128)
    got = weight_fetch_skip(head, 10, 1, 64, "n_major")
    assert got.skipped_bytes == 10 * 64
    assert got.dense_bytes == 128 * 10
    assert got.skipped_bytes / got.dense_bytes == 0.5


def test_n_major_rows_not_burst_aligned():
    # K=3 int8 weights per output, 4-byte bursts: outputs straddle bursts. Input 2 dead only:
    # bytes 2, 5, 8, 11 are dead, never a whole burst. Inputs 1, 2 dead: bytes (1,2) (4,5)
    # (7,8) (10,11); with output n's dead bytes 3n+1, 3n+2 a burst [4j, 4j+4) is dead only if
    # all four are, never (a live byte 3n in every burst). All dead: everything skipped.
    a = np.ones(3, dtype=bool)
    a[2] = False
    assert weight_fetch_skip(a, 4, 1, 4, "n_major").skipped_bytes == 0
    a[1] = False
    assert weight_fetch_skip(a, 4, 1, 4, "n_major").skipped_bytes == 0
    a[0] = False
    assert weight_fetch_skip(a, 4, 1, 4, "n_major").skipped_bytes == 12
