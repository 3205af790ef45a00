"""The mapper's array-pass scoring (``mapper.score``, ``NestSpace.candidate_table``) against the
per-nest reference (``NestSpace.candidates``, ``NestSpace.traffic``, ``_cycles_bound``): the
same candidates, the same bound and bytes for each, and the same nest picked, on random
shapes, buffers, sparse sizes, dataflows and objectives."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from sparsesim.hardware.presets import load_accel
from sparsesim.dataflows import DATAFLOWS, display_order
from sparsesim.mapping import cost as mcost
from sparsesim.mapping import search as msearch
from sparsesim.mapping import space as mspace
from sparsesim.core.errors import InputError
from sparsesim.workloads.gemm import Gemm, Phase
from sparsesim.workloads.networks import NETWORKS
from sparsesim.workloads.ops import Conv2d

SYSTOLIC = sorted(display_order("systolic"))  # the dataflows of the systolic array kind


def _random_case(rng: random.Random):
    R, C = rng.choice([(4, 4), (4, 8), (8, 4)])
    sets = [f"array.rows={R}", f"array.cols={C}",
            f"buffers.a.size_bytes={rng.choice([64, 256, 1024, 8192])}",
            f"buffers.b.size_bytes={rng.choice([64, 256, 1024, 8192])}",
            f"buffers.out.size_bytes={rng.choice([128, 512, 2048, 16384])}",
            f"dram.bandwidth_bytes_per_cycle={rng.choice([1, 3, 4.5, 16])}",
            f"dram.latency_cycles={rng.choice([0, 5, 40])}",
            f"dram.ideal={rng.choice(['true', 'false', 'false'])}",
            f"array.fold_overlap={rng.choice(['true', 'true', 'false'])}",
            f"mapper.objective={rng.choice(['cycles', 'dram_bytes', 'energy'])}",
            f"mapper.cycles_tolerance={rng.choice([0, 0.01, 0.1])}",
            f"mapper.max_tiles={rng.choice([4, 64, 256])}",
            f"mapper.max_evaluations={rng.choice([1, 4, 50])}"]
    if rng.random() < 0.15:
        sets.append(f"mapper.tiles.{rng.choice('MNK')}={rng.choice([1, 4, 8, 12])}")
    cfg = load_accel("edge32", sets)
    gemm = Gemm(rng.randint(1, 90), rng.randint(1, 90), rng.randint(1, 90))
    scales = (rng.choice([1.0, 0.375, 0.625, 1.125]), rng.choice([1.0, 0.5, 0.625]))
    reserved = rng.choice([0, 0, 64])
    return cfg, gemm, scales, reserved


def _resnet_cases():
    """Conv GEMMs (feature-map A operand) of ResNet-18 at 224 on edge32, dense and compressed."""
    convs = [op for op in NETWORKS.get("resnet18")(1) if isinstance(op, Conv2d)][::5]
    cfgs = [load_accel("edge32"), load_accel("edge32", ["mapper.objective=energy"]),
            load_accel("edge32", ["mapper.objective=dram_bytes", "buffers.a.size_bytes=16384"]),
            # DRAM events priced (banked DDR4): the energy bound is the events' own
            load_accel("edge32", ["mapper.objective=energy", "dram.model=banked", "dram.standard=DDR4_3200"])]
    for i, op in enumerate(convs):
        for phase in (Phase.FWD, Phase.BWD_WEIGHT, Phase.BWD_DATA):
            yield cfgs[i % 4], op.gemm(phase), (1.0, 1.0) if i % 2 else (0.625, 0.75), 0


def _same_evaluation(space, m):
    """The Numba tile pass (``evaluate``) builds the schedule the NumPy reference builds."""
    for timed in (True, False):
        want, got = mcost._evaluate_reference(space, m, timed=timed), mcost.evaluate(space, m, timed=timed)
        for field in ("load_bytes", "compute_cycles", "store_bytes"):
            assert np.array_equal(getattr(got.schedule, field), getattr(want.schedule, field)), (m, field)
        assert got.schedule.epilogue_cycles == want.schedule.epilogue_cycles
        assert (got.traffic, got.counts, got.cycles, got.energy_pj) == \
            (want.traffic, want.counts, want.cycles, want.energy_pj), m


def test_evaluation_with_sparse_stream_lengths_matches_the_reference():
    """Per-fold stream lengths (the replay's real ones) go through the same tile pass."""
    rng = random.Random(7)
    gen = np.random.default_rng(7)
    checked = 0
    for _ in range(40):
        cfg, gemm, scales, reserved = _random_case(rng)
        if any((cfg.mapper.tiles.M, cfg.mapper.tiles.N, cfg.mapper.tiles.K)):
            continue
        df = DATAFLOWS.get(rng.choice(SYSTOLIC))
        R, C = cfg.array.rows, cfg.array.cols
        D = {"M": gemm.M, "N": gemm.N, "K": gemm.K}
        shape = (-(-D[df.row_dim] // R), -(-D[df.col_dim] // C))
        stream = gen.integers(0, D[df.time_dim] + 1, size=shape)
        space = mspace.NestSpace(df.kind, gemm, cfg, stream, scales[0], scales[1], reserved)
        for m in space.candidates()[::7]:
            _same_evaluation(space, m)
            checked += 1
    assert checked > 100


def _rows_by_nest(rows):
    return {r[3]: (r[0], r[1], r[2], r[4], r[5]) for r in rows}


def _check(df_name, cfg, gemm, scales, reserved):
    space = mspace.NestSpace(DATAFLOWS.get(df_name).kind, gemm, cfg, None, scales[0], scales[1], reserved)
    mc = cfg.mapper
    for d, t in (("M", mc.tiles.M), ("N", mc.tiles.N), ("K", mc.tiles.K)):
        if t:  # a pinned size the array cannot run is refused before the search (as mapper.choose does)
            probe = {x: space.D[x] for x in mspace.DIMS}
            probe[d] = min(t, space.D[d])
            try:
                space.check(mspace.Mapping(probe["M"], probe["N"], probe["K"], "MNK"))
            except InputError:
                return 0
    every = {d: space.all_tiles(d) for d in mspace.DIMS}
    small = math.prod(len(v) for v in every.values()) <= mspace.EXHAUSTIVE
    assert space._all_tiles_count_small() == (every if small else None)
    reference = msearch._rows_reference(space)
    fast = msearch._rows(space)
    assert _rows_by_nest(fast) == _rows_by_nest(reference), (df_name, gemm, scales)
    assert len(fast) == len(reference)
    for r in fast[::max(1, len(fast) // 12)]:
        _same_evaluation(space, r[3])
    want, got = msearch.search(space, reference=True), msearch.search(space)
    assert (want is None) == (got is None)
    if want is not None:
        assert got.mapping == want.mapping, (df_name, gemm, scales)
    return len(fast)


def test_array_scoring_picks_what_the_per_nest_reference_picks_on_random_cases():
    rng = random.Random(20261130)
    scored = 0
    for _ in range(150):
        cfg, gemm, scales, reserved = _random_case(rng)
        scored += _check(rng.choice(SYSTOLIC), cfg, gemm, scales, reserved)
    assert scored > 3000  # the cases are not all trivial


@pytest.mark.parametrize("df_name", SYSTOLIC)
def test_array_scoring_picks_what_the_per_nest_reference_picks_on_conv_layers(df_name):
    for cfg, gemm, scales, reserved in _resnet_cases():
        _check(df_name, cfg, gemm, scales, reserved)


def test_search_cache_key_drops_only_what_the_search_does_not_read():
    """Configs that differ in lane organisation, sync window, N:M ratios or dataflow list share
    one cache key, and searching each uncached gives the same nest; buffers stay in the key."""
    base = load_accel("edge32")
    other = load_accel("edge32", ["array.lanes=decoupled", "array.sync_window_steps=16",
                                  "array.nm_ratios=[\"1:4\"]", "array.dataflows=[ws]"])
    assert msearch.search_hardware(base) == msearch.search_hardware(other)
    bigger = load_accel("edge32", ["buffers.a.size_bytes=65536"])
    assert msearch.search_hardware(base) != msearch.search_hardware(bigger)
    gemms = [Gemm(300, 70, 500), Gemm(64, 2000, 96)] + [g for _, g, _, _ in _resnet_cases()][:6]
    for name in SYSTOLIC:
        for g in gemms:
            picks = [msearch.search(mspace.NestSpace(DATAFLOWS.get(name).kind, g, cfg, None, 0.625, 1.0))
                     for cfg in (base, other)]
            assert picks[0].mapping == picks[1].mapping
            assert (picks[0].cycles, picks[0].dram_bytes, picks[0].energy_pj) == \
                (picks[1].cycles, picks[1].dram_bytes, picks[1].energy_pj)
