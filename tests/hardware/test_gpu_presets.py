"""The a100 and h100 presets against what their specifications imply (no measured data is
used): a large GEMM cannot beat the tensor cores' peak and should come within 25% of it; a
decode GEMV cannot beat the HBM bandwidth and should come within 25% of it; 2:4 sparsity
runs faster than dense but not beyond its 2x peak."""

import json
import subprocess
import sys

import pytest

from sparsesim import api

# [preset file] dense bf16 peak MACs/s and HBM bytes/s, from the specifications the presets cite
PEAK = {"a100": (108 * 1024 * 1.41e9, 1555e9), "h100": (132 * 2048 * 1.83e9, 3.35e12)}


@pytest.mark.parametrize("accel", ["a100", "h100"])
def test_large_gemm_within_a_quarter_of_the_tensor_core_peak(accel):
    M = N = K = 4096
    t = api.simulate(api.gemm(M, N, K), accel=accel).total["latency_s"]
    floor = M * N * K / PEAK[accel][0]
    assert floor <= t <= 1.25 * floor


@pytest.mark.parametrize("accel", ["a100", "h100"])
def test_decode_gemv_within_a_quarter_of_the_hbm_bandwidth(accel):
    M, N, K = 1, 8192, 8192
    t = api.simulate(api.gemm(M, N, K), accel=accel).total["latency_s"]
    floor = (M * K + K * N + M * N) * 2 / PEAK[accel][1]
    assert floor <= t <= 1.25 * floor


def test_the_int8_a100_runs_at_twice_the_bf16_rate():
    """[WP] 624 dense INT8 TOPS: a 4096^3 int8 GEMM within 25% of it, and faster than bf16."""
    M = N = K = 4096
    int8 = api.simulate(api.gemm(M, N, K), accel="a100_int8").total["latency_s"]
    floor = M * N * K / (108 * 2048 * 1.41e9)
    assert floor <= int8 <= 1.25 * floor
    assert int8 < api.simulate(api.gemm(M, N, K), accel="a100").total["latency_s"]


def test_sparse_tensor_core_speeds_up_within_its_peak():
    dense = api.simulate(api.gemm(2048, 2048, 2048), accel="a100")
    sparse = api.simulate(api.gemm(2048, 2048, 2048), accel="a100", sparsity=["nm:2:4"])
    assert dense.total["latency_s"] / 2 <= sparse.total["latency_s"] < dense.total["latency_s"]


def test_cli_gives_the_latency():
    out = subprocess.run([sys.executable, "-m", "sparsesim", "run", "--gemm", "1024,1024,1024", "--accel", "a100",
                          "--json"], capture_output=True, text=True, check=True)
    total = json.loads(out.stdout)["total"]
    assert total["latency_s"] == pytest.approx(total["cycles"] / 1.41e9)
    assert total["latency_s"] >= 1024 ** 3 / PEAK["a100"][0]
