"""Many cores on a chip (sparsesim.simulation.multicore): one core is today's engine, the
partition search equals brute force on small GEMMs, and waves, L2 reuse and the K reduction
cost what a hand calculation says."""

import dataclasses
import itertools
import math

import pytest

from sparsesim import api
from sparsesim.core.errors import InputError
from sparsesim.dataflows import DATAFLOWS
from sparsesim.simulation import engine, multicore
from sparsesim.workloads.gemm import Gemm


def _cfg(cores: int, **sets):
    base = {"array.rows": 8, "array.cols": 8, "chip.cores": cores, "dram.bandwidth_bytes_per_cycle": 16.0,
            "dram.latency_cycles": 10}
    base.update(sets)
    return api.accel_config("edge32", sets=base)


def _timer(gemm: Gemm, df_name: str = "os"):
    df = DATAFLOWS.get(df_name)

    def timer(part, core):
        plan = df.plan(part.gemm(gemm), core)
        return engine._part_timing([plan] * part.reps, core)
    return timer


def test_one_core_is_todays_engine():
    """chip.cores: 1 takes the single-array path: rows equal the default's, no chip columns, same run id."""
    plain = api.simulate(api.gemm(96, 80, 72), accel="edge32")
    one = api.simulate(api.gemm(96, 80, 72), accel="edge32", sets={"chip.cores": 1})
    assert [{k: v for k, v in r.items() if k != "accel"} for r in one.rows] == \
        [{k: v for k, v in r.items() if k != "accel"} for r in plain.rows]  # the label names the --set
    assert "chip_partition" not in one.rows[0] and "l2" not in one.rows[0]["energy_breakdown_pj"]
    assert engine.run_id(api.accel_config("edge32", sets={"chip.cores": 1}), "os") == \
        engine.run_id(api.accel_config("edge32"), "os")


@pytest.mark.parametrize("shape", [(20, 12, 9, 1), (7, 30, 16, 3)])
def test_search_equals_brute_force(shape):
    """On small GEMMs every grid of part counts is a candidate: the branch-and-bound result has the
    cycles of the best of all grids, each timed exactly."""
    M, N, K, count = shape
    gemm = Gemm(M, N, K, count=count)
    cfg = _cfg(3, **{"chip.max_waves": 4})
    timer = _timer(gemm)
    limit = 3 * 4
    brute = []
    for grid in itertools.product(range(1, count + 1), range(1, M + 1), range(1, N + 1), range(1, min(K, 3) + 1)):
        if math.prod(grid) > limit:
            continue
        actual = tuple(len(multicore.cuts(total, p)) for total, p in zip((count, M, N, K), grid))
        if math.prod(actual) > limit:
            continue
        brute.append(multicore.evaluate(gemm, cfg, multicore.Partition(*actual), timer).cycles)
    found = multicore.search(gemm, cfg, timer, dims=("M", "N", "K"))
    assert found.cycles == min(brute)
    # the vectorized ranking computes the scalar bound, and every bound is a true lower bound
    grids, bounds, _ = multicore.ranked(gemm, cfg, dims=("M", "N", "K"))
    order, bounds = [multicore.Partition(*g) for g in grids.tolist()], bounds.tolist()
    assert sorted(order, key=lambda p: (p.count, p.M, p.N, p.K)) == \
        sorted(multicore.candidates(gemm, cfg), key=lambda p: (p.count, p.M, p.N, p.K))
    assert bounds == [multicore.lower_bound(gemm, p, cfg, dims=("M", "N", "K"))[0] for p in order]
    for p in multicore.candidates(gemm, cfg):
        cycles = multicore.evaluate(gemm, cfg, p, timer).cycles
        assert multicore.lower_bound(gemm, p, cfg)[0] <= cycles
        assert multicore.lower_bound(gemm, p, cfg, dims=("M", "N", "K"))[0] <= cycles  # os's folds


def test_wave_quantization():
    """Ideal memory: 4 parts on 4 cores take one part's time; 5 parts take two waves, the second
    holding the one part left over (by hand: wave time = its largest part's cycles)."""
    gemm = Gemm(64, 32, 48)
    cfg = _cfg(4, **{"dram.ideal": True})
    timer = _timer(gemm)
    single = dataclasses.replace(cfg, chip=dataclasses.replace(cfg.chip, cores=1))

    def alone(m):
        return engine.run_gemm(Gemm(m, 32, 48), single, "os").cycles

    four = multicore.evaluate(gemm, cfg, multicore.Partition(1, 4, 1, 1), timer)
    assert four.waves == 1 and four.cycles == alone(16)
    five = multicore.evaluate(gemm, cfg, multicore.Partition(1, 5, 1, 1), timer)
    # cuts of 64 into 5: 13, 13, 13, 13, 12
    assert multicore.cuts(64, 5) == ((0, 13), (13, 26), (26, 39), (39, 52), (52, 64))
    assert five.waves == 2 and five.cycles == alone(13) + alone(12)
    assert five.cycles > four.cycles


def test_l2_serves_a_shared_operand_once():
    """N split over 4 cores: without an L2 each core reads all of A from DRAM; behind an L2 that
    holds the GEMM, DRAM sees A and B once (M*K + K*N int8 bytes) and writes Out once."""
    M, N, K = 32, 64, 40
    gemm = Gemm(M, N, K)
    p = multicore.Partition(1, 1, 4, 1)
    bare = multicore.evaluate(gemm, _cfg(4), p, _timer(gemm))
    assert bare.counts.dram_read_bytes == 4 * M * K + K * N
    assert bare.columns["l2_bytes"] == 0
    cfg = _cfg(4, **{"chip.l2.size_bytes": 1 << 20, "chip.l2.bandwidth_bytes_per_cycle": 64.0})
    shared = multicore.evaluate(gemm, cfg, p, _timer(gemm))
    assert shared.counts.dram_read_bytes == M * K + K * N
    assert shared.counts.dram_write_bytes == M * N
    assert shared.columns["l2_bytes"] == 4 * M * K + K * N + M * N  # what the cores moved over their links


def test_k_split_reduction_by_hand():
    """K in 2 parts on 2 cores, no L2: the M x N partial sums (4-byte accumulators) are written and
    read once over DRAM, 2 * M * N * 4 bytes at 16 B/cycle after the wave."""
    M, N, K = 16, 16, 64
    gemm = Gemm(M, N, K)
    out = multicore.evaluate(gemm, _cfg(2), multicore.Partition(1, 1, 1, 2), _timer(gemm))
    red = 2 * M * N * 4
    assert out.columns["reduction_cycles"] == math.ceil(red / 16.0)
    one = multicore.evaluate(gemm, _cfg(2), multicore.Partition(1, 1, 1, 1), _timer(gemm))
    # each core reads its A and B halves and writes its partial Out; then the reduction's bytes
    assert out.counts.dram_read_bytes + out.counts.dram_write_bytes == M * K + K * N + 2 * M * N + red
    # the cores' accumulations are those of the unsplit GEMM, plus one add per output element
    assert out.counts.accumulator_rmw == one.counts.accumulator_rmw + M * N
    assert out.counts.rf_accesses == one.counts.rf_accesses + M * N


def test_chip_rows_count_every_core():
    """Utilization and the MAC bound use all cores' PEs; leakage and area count every core."""
    res = api.simulate(api.gemm(512, 512, 512), accel="edge32", sets={"chip.cores": 4})
    row = res.rows[0]
    assert row["mac_bound_cycles"] == math.ceil(512 ** 3 / (4 * 32 * 32))
    assert row["cycles"] >= row["bound_cycles"]
    assert 0 < row["utilization"] <= 1
    assert row["chip_cores_active"] == 4
    one = api.simulate(api.gemm(512, 512, 512), accel="edge32")
    assert row["cycles"] < one.rows[0]["cycles"]


def test_sparse_parts_keep_the_features():
    """N:M on 4 cores: each part's K compacted like the whole GEMM's, the MACs performed equal the
    one-core run's, and the chip is faster than its own dense run."""
    sets = {"chip.cores": 4, "chip.l2.size_bytes": 1 << 22, "chip.l2.bandwidth_bytes_per_cycle": 256.0}
    one = api.simulate(api.gemm(128, 128, 256), accel="edge32", sparsity=["nm:2:4"])
    four = api.simulate(api.gemm(128, 128, 256), accel="edge32", sparsity=["nm:2:4"], sets=sets)
    assert four.rows[0]["macs_effectual"] == one.rows[0]["macs_effectual"]
    assert four.rows[0]["cycles"] < four.rows[0]["dense_cycles"]
    assert four.rows[0]["dram_read_bytes"] <= api.simulate(api.gemm(128, 128, 256), accel="edge32",
                                                           sets=sets).rows[0]["dram_read_bytes"]


@pytest.mark.parametrize("sets, field", [
    ({"chip.l2.size_bytes": 1 << 20, "chip.l2.bandwidth_bytes_per_cycle": 64.0}, "chip.l2.size_bytes"),
    ({"chip.cores": 4, "chip.l2.size_bytes": 1 << 20}, "chip.l2.bandwidth_bytes_per_cycle"),
    ({"chip.cores": 4, "dram.model": "banked"}, "chip.cores"),
    ({"chip.cores": 0}, "chip.cores"),
    ({"chip.partition": "diagonal"}, "chip.partition"),
])
def test_bad_chip_configs(sets, field):
    with pytest.raises(InputError) as err:
        api.accel_config("edge32", sets=sets)
    message = str(err.value)
    assert field in message and "\n" not in message


@pytest.mark.parametrize("seed", range(6))
def test_array_evaluation_equals_the_loop(seed):
    """evaluate_dense (array passes over the parts) gives evaluate's outcome exactly, behind an
    L2 that holds the GEMM, one that holds a wave's buffers only, one too small for either, and
    without an L2."""
    import numpy as np

    rng = np.random.default_rng(seed)
    gemm = Gemm(int(rng.integers(1, 90)), int(rng.integers(1, 90)), int(rng.integers(1, 90)),
                count=int(rng.integers(1, 4)))
    for l2 in (0, 1 << 22, 6000, 300):
        sets = {"chip.l2.size_bytes": l2, "chip.l2.bandwidth_bytes_per_cycle": 40.0} if l2 else {}
        cfg = _cfg(int(rng.integers(2, 7)), **sets, **{"buffers.a.size_bytes": 1024, "buffers.b.size_bytes": 1024})
        timer = _timer(gemm, "ws")
        for p in multicore.candidates(gemm, cfg)[:: max(1, len(multicore.candidates(gemm, cfg)) // 25)]:
            a = multicore.evaluate(gemm, cfg, p, timer)
            b = multicore.evaluate_dense(gemm, cfg, p, timer)
            assert a == b, (l2, p)


def test_search_of_small_gemms_is_exact_on_random_shapes():
    """Every dimension at most SMALL: the search is not budgeted, so it finds what timing every
    candidate finds."""
    import numpy as np

    rng = np.random.default_rng(11)
    for _ in range(8):
        gemm = Gemm(*(int(rng.integers(1, 64)) for _ in range(3)), count=int(rng.integers(1, 4)))
        cfg = _cfg(int(rng.integers(2, 6)), **{"chip.max_waves": 3})
        timer = _timer(gemm, "ws")
        dims = ("K", "N", "M")  # ws: K on the rows, N on the columns, M streamed
        found = multicore.search(gemm, cfg, timer, dims=dims)
        every = multicore.search(gemm, cfg, timer, dims=dims, exhaustive=True)
        assert found.cycles == every.cycles


def test_bounds_hold_with_an_unaligned_k_and_on_strided_convolutions():
    """N:M's K alignment past K itself (K = 30, groups of 4) and a stride-2 1x1 convolution (its
    input footprint larger than what its parts read): the ranked bounds equal the scalar ones and
    never exceed the cycles they bound."""
    from sparsesim.workloads.ops import Conv2d
    from sparsesim.workloads.gemm import Phase

    cfg = _cfg(4, **{"array.fold_overlap": True})
    gemm = Gemm(256, 256, 30, count=2)
    grids, bounds, _ = multicore.ranked(gemm, cfg, k_align=4, dims=("M", "N", "K"))
    timer = _timer(gemm)
    for g, b in list(zip(grids.tolist(), bounds.tolist()))[:40]:
        p = multicore.Partition(*g)
        assert b == multicore.lower_bound(gemm, p, cfg, k_align=4, dims=("M", "N", "K"))[0]
        assert b <= multicore.evaluate(gemm, cfg, p, timer, k_align=4).cycles
    conv = Conv2d(name="down", batch=1, in_channels=64, out_channels=128, in_h=56, in_w=56, kernel_h=1, kernel_w=1,
                  stride_h=2, stride_w=2, pad_h=0, pad_w=0).gemm(Phase.FWD)
    timer = _timer(conv)
    for p in multicore.candidates(conv, cfg)[::7]:
        assert multicore.lower_bound(conv, p, cfg, dims=("M", "N", "K"))[0] <= multicore.evaluate(conv, cfg, p, timer).cycles


@pytest.mark.parametrize("l2", [0, 1 << 20])
def test_the_link_bound_holds_and_ranks_the_partitions_that_move_fewer_bytes_first(l2):
    """Every part reads its A and B slices and writes its Out slice over the cores' shared link (the
    L2's, or the DRAM's without one), so ``parts_N |A| + parts_M |B| + parts_K |Out|`` bytes at
    that bandwidth bound every partition; on a link-bound chip the bound then ranks first a
    partition the exhaustive search finds best, within the default budget."""
    gemm = Gemm(40, 40, 24)
    sets = {"chip.l2.size_bytes": l2, "chip.l2.bandwidth_bytes_per_cycle": 4.0, "chip.l2.latency_cycles": 20}
    cfg = _cfg(4, **{"chip.max_waves": 2, **(sets if l2 else {"dram.bandwidth_bytes_per_cycle": 4.0})})
    timer = _timer(gemm)
    bound_by_link = 0
    for p in multicore.candidates(gemm, cfg):
        cycles = multicore.evaluate(gemm, cfg, p, timer).cycles
        bound, mac = multicore.lower_bound(gemm, p, cfg, dims=("M", "N", "K"))
        assert bound <= cycles, p
        a, b, out = 40 * 24, 24 * 40, 40 * 40  # int8 elements: bytes
        link = math.ceil((p.N * a + p.M * b + p.K * out) / 4.0)
        assert bound >= link
        bound_by_link += link > mac
    assert bound_by_link > 0  # the link term decides some partitions' bound
    best = multicore.search(gemm, cfg, timer, dims=("M", "N", "K"), exhaustive=True)
    assert multicore.search(gemm, cfg, timer, dims=("M", "N", "K")).cycles == best.cycles
