"""``sparsesim validate silicon``: the a100_80gb preset against LLMCompass's measured A100
latencies. The data file is read as published, the cases are the shapes the artifact ran, the
collective is its ring/tree formula by hand, and large GEMMs land within the stated tolerance."""

from __future__ import annotations

import json

import pytest

from sparsesim.cli.main import main
from sparsesim.hardware.presets import load_accel
from sparsesim.references import silicon
from sparsesim.workloads.ops import Linear


def test_the_data_file_holds_the_artifact_measurements():
    data = silicon.load_data()
    assert data["preset"] == "a100_80gb" and data["tolerance"] == pytest.approx(0.109)
    mm = {(M, N, K): t for M, N, K, t in data["matmul"]}
    assert len(mm) == 20 and len(data["all_reduce"]) == 32 and len(data["gpt3_layer"]["ops"]) == 6
    # the artifact's own TFLOPS column for two rows (277.5532 and 290.5223), from its latency
    assert 2 * 8192 ** 3 / mm[(8192, 8192, 8192)] / 1e12 == pytest.approx(277.5532, rel=1e-4)
    assert 2 * 16384 * 12288 * 12288 / mm[(16384, 12288, 12288)] / 1e12 == pytest.approx(290.5223, rel=1e-4)
    sizes = [s for s, _ in data["all_reduce"]]
    assert sizes == [8 * 2 ** i for i in range(32)]


def test_the_gpt3_layer_shard_has_the_artifacts_shapes():
    layer = silicon.load_data()["gpt3_layer"]
    qkv, qk, av, wo, w1, w2 = silicon.gpt3_layer_ops(layer, decode=False)
    # d 12288, 96 heads over 4 GPUs: 24 heads of 128 per GPU, batch 8 x 2048 tokens
    assert (qkv.tokens, qkv.in_features, qkv.out_features) == (16384, 12288, 3072)
    assert (qk.batch, qk.m, qk.k, qk.n) == (192, 2048, 128, 2048)
    assert (av.batch, av.m, av.k, av.n) == (192, 2048, 2048, 128)
    assert (wo.in_features, wo.out_features, w1.out_features, w2.in_features) == (3072, 12288, 12288, 12288)
    _, qk, av, *_ = silicon.gpt3_layer_ops(layer, decode=True)
    assert (qk.m, qk.n, av.k) == (1, 3073, 3073)


def test_the_all_reduce_is_the_ring_or_tree_by_hand():
    cases = {c.case: c for c in silicon.run(["all_reduce"])}
    a, B, p = 3.4e-6, 12 * 25e9, 4  # a100: NCCL step latency, 12 NVLink links of 25 GB/s
    big = 17179869184
    assert cases[f"{big} B"].kernel_s == pytest.approx(2 * (p - 1) * (a + big / (p * B)), rel=1e-12)  # ring
    assert cases["8 B"].kernel_s == pytest.approx(2 * 2 * a + 2 * 8 / B, rel=1e-12)  # tree: 2 log2(4) steps
    assert all(c.harness_s == 0 for c in cases.values())


def test_large_gemms_are_within_the_tolerance_and_above_the_math_floor():
    data = silicon.load_data()
    cfg = load_accel(data["preset"])
    shapes = [(8192, 8192, 8192), (16384, 12288, 12288)]
    measured = {(M, N, K): t for M, N, K, t in data["matmul"]}
    ops = [Linear(name="g", tokens=M, in_features=K, out_features=N) for M, N, K in shapes]
    for (M, N, K), kernel in zip(shapes, silicon.kernel_seconds(ops, cfg)):
        assert kernel >= 2 * M * N * K / 312e12  # no faster than 312 dense TFLOPS
        assert abs(kernel / measured[(M, N, K)] - 1) <= data["tolerance"]


def test_the_command_reports_json_and_draws(tmp_path, capsys):
    png = tmp_path / "fig" / "silicon.png"
    assert main(["validate", "silicon", "--group", "all_reduce", "--json", "--plot", str(png)]) == 0
    out = json.loads(capsys.readouterr().out)
    (group,) = out["groups"]
    assert group["group"] == "all_reduce" and group["cases"] == 32 == len(out["cases"])
    assert group["within"] == sum(c["within"] for c in out["cases"])
    assert png.stat().st_size > 10_000


@pytest.mark.parametrize("args, message", [
    (["--group", "matmull"], "error: --group: unknown group 'matmull' (did you mean 'matmul'?)"),
    (["--plot", "/proc/nope/x.png"], "error: --plot:"),
])
def test_bad_arguments_are_one_line(capsys, args, message):
    assert main(["validate", "silicon", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(message) and "\n" not in err
