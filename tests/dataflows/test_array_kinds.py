"""Array kinds: the contract every registered kind beyond the systolic grid keeps, run on each
of its presets, and a toy kind registered here that reaches ``run``, ``best``, the replay and
the result table through the seam alone (:mod:`sparsesim.dataflows.array_kind`).

The contract, on real masks replayed through ``zero_skip``: dense operands reduce to the
dense run exactly; gating never changes cycles; skipping never beats the row's bound nor the
dense run; the effectual MACs are the exact count of both-nonzero products; with
``dram.ideal`` nothing stalls; ``best`` chooses among the kind's own dataflows, and a
systolic dataflow is refused with one line naming ``--dataflow``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sparsesim.core.errors import InputError
from sparsesim.dataflows import ARRAY_KINDS, DATAFLOWS, ArrayKind, Dataflow
from sparsesim.dataflows.array_kind import SYSTOLIC, area_um2, macs_per_cycle
from sparsesim.hardware.energy import area_breakdown_um2, energy_table
from sparsesim.dataflows.tiled import array_work, choose_nest, dense_work, tiled_plan
from sparsesim.hardware.presets import load_accel, preset_names
from sparsesim.hardware.schedule import EventCounts
from sparsesim.simulation.run import simulate_rows
from sparsesim.sparsity import cli_sparsity
from sparsesim.workloads.gemm import Phase
from sparsesim.workloads.ops import Linear, Workload


class _Tensors:
    """One linear layer's tensors with a chosen zero fraction of input and weight (seeded)."""

    def __init__(self, op: Linear, zeros_x: float, zeros_w: float, seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        self.x = rng.integers(1, 6, (op.tokens, op.in_features)).astype(np.float32)
        self.w = rng.integers(1, 4, (op.out_features, op.in_features)).astype(np.float32)
        self.x[rng.random(self.x.shape) < zeros_x] = 0
        self.w[rng.random(self.w.shape) < zeros_w] = 0

    def tensors(self, index: int, roles=None) -> dict:
        return {"input": self.x, "weight": self.w}


def _rows(cfg, sparsity: list[str], zeros_x: float, zeros_w: float, dataflow: str = "best",
          shape=(40, 48, 72)) -> tuple[list[dict], _Tensors]:
    M, N, K = shape
    op = Linear(name="layer", tokens=M, in_features=K, out_features=N)
    src = _Tensors(op, zeros_x, zeros_w)
    workload = Workload("kind-contract", (op,), (Phase.FWD,), None, src)
    cfg = dataclasses.replace(cfg, sparsity=tuple(cli_sparsity(sparsity)))
    return simulate_rows(workload, cfg, dataflow, progress=False), src


# ---------------------------------------------------------------- a toy kind, registered per test
class _ToyKind(ArrayKind):
    name = "toy_dot"
    summary = "toy: 2 multipliers per PE, each effectual product one slot, per 8 x 8 x 8 block"

    def macs_per_cycle(self, cfg) -> int:
        return 2 * cfg.array.pes

    def extra_area_um2(self, cfg, table) -> dict[str, float]:
        return {"crossbar": 10.0 * cfg.array.pes}


class _ToyDataflow(Dataflow):
    """Every 8 x 8 x 8 block takes ceil(effectual products / P) cycles (zeros of skipped
    operands removed, streamed ones kept)."""

    name = "toy_dot"
    array_kind = "toy_dot"

    def work(self, gemm, cfg, masks, effects, **options):
        return array_work(gemm, cfg, masks, effects, **options)

    def plan(self, gemm, cfg, work=None):
        work = dense_work(gemm) if work is None else work
        nest = choose_nest(gemm, cfg, work, (8, 8, 8))
        P = 2 * cfg.array.pes
        cycles = []
        M, N, K = work.gemm.M, work.gemm.N, work.gemm.K
        a_all = np.ones((M, K), dtype=np.int64) if work.a is None else work.a.astype(np.int64)
        b_all = np.ones((K, N), dtype=np.int64) if work.b is None else work.b.astype(np.int64)
        for m0, m1, n0, n1, k0, k1 in nest.blocks:  # the nest's blocks are made of 8 x 8 x 8 ones
            c = 0
            for i in range(m0, m1, 8):
                for j in range(n0, n1, 8):
                    for k in range(k0, k1, 8):
                        pairs = a_all[i:i + 8, k:k + 8].sum(axis=0) @ b_all[k:k + 8, j:j + 8].sum(axis=1)
                        c += -(-int(pairs) // P)
            cycles.append(c)
        counts = EventCounts(macs_performed=work.macs_effectual if work.zero_aware else work.macs_dense)
        return tiled_plan(self.name, gemm, cfg, work, nest, np.array(cycles), counts)


@pytest.fixture
def toy(monkeypatch):
    kind, df = _ToyKind(), _ToyDataflow()
    monkeypatch.setitem(ARRAY_KINDS._items, kind.name, kind)
    monkeypatch.setitem(DATAFLOWS._items, df.name, df)
    return load_accel("edge32", ["array.kind=toy_dot", "array.rows=4", "array.cols=4", "dram.ideal=true"])


def _kind_configs() -> list:
    """Every preset of a non-systolic kind, with ideal DRAM (the on-chip model alone)."""
    out = []
    for name in preset_names():
        cfg = load_accel(name)
        if cfg.array.kind != SYSTOLIC:
            out.append(pytest.param(name, id=name))
    return out


def _check_contract(cfg) -> None:
    own = [n for n in DATAFLOWS.names() if DATAFLOWS.get(n).array_kind == cfg.array.kind]
    assert own, f"{cfg.array.kind}: no dataflow runs on it"
    # dense operands: zero skipping of both reduces to the dense run, exactly
    (row,), _ = _rows(cfg, ["zero_skip:both:skipping"], 0.0, 0.0)
    assert row["cycles"] == row["dense_cycles"] and row["macs_effectual"] == row["macs_dense"]
    assert row["dataflow"] in own
    # half the inputs and a third of the weights zero
    (gate,), _ = _rows(cfg, ["zero_skip:both:gating"], 0.5, 0.3)
    assert gate["cycles"] == gate["dense_cycles"]
    (skip,), src = _rows(cfg, ["zero_skip:both:skipping"], 0.5, 0.3)
    exact = int(((src.x != 0).astype(np.int64) @ (src.w != 0).T.astype(np.int64)).sum())
    assert skip["macs_effectual"] == exact == gate["macs_effectual"]
    assert skip["bound_cycles"] <= skip["cycles"] <= skip["dense_cycles"]
    assert skip["stall_cycles"] == 0  # dram.ideal
    assert skip["dram_bytes"] >= skip["dram_lower_bound_bytes"]
    assert skip["dram_bytes"] < row["dram_bytes"]  # compressed operands move fewer bytes
    # same inputs, same numbers
    again, _ = _rows(cfg, ["zero_skip:both:skipping"], 0.5, 0.3)
    assert again[0]["cycles"] == skip["cycles"] and again[0]["energy_pj"] == skip["energy_pj"]
    # its area: as many MAC units as its peak MACs per cycle, its buffers, and what it adds
    table = energy_table(cfg.energy_table)
    area, base = area_um2(cfg, table), area_breakdown_um2(cfg, table)
    assert area["pe_array"] == pytest.approx(base["pe_array"] * macs_per_cycle(cfg) / cfg.array.pes)
    assert sum(area.values()) >= sum(base.values()) - base["pe_array"]
    # a dataflow of another kind is refused in one line naming the flag
    with pytest.raises(InputError, match=r"^dataflow: 'os' runs on a systolic array"):
        _rows(cfg, [], 0.0, 0.0, dataflow="os")


def test_a_new_array_kind_is_one_registration(toy):
    _check_contract(toy)
    (row,), src = _rows(toy, ["zero_skip:both:skipping"], 0.5, 0.3)
    # the toy's own rule, by hand over its 8 x 8 x 8 blocks of the 40 x 48 x 72 GEMM on 32 multipliers
    a, b = (src.x != 0).astype(np.int64), (src.w != 0).T.astype(np.int64)
    want = 0
    for m0 in range(0, 40, 8):
        for n0 in range(0, 48, 8):
            for k0 in range(0, 72, 8):
                blk = a[m0:m0 + 8, k0:k0 + 8].sum(axis=0) @ b[k0:k0 + 8, n0:n0 + 8].sum(axis=1)
                want += -(-int(blk) // 32)
    assert row["compute_cycles"] == want
    assert row["utilization"] == pytest.approx(row["macs_effectual"] / (row["cycles"] * 32))
    assert row["mac_bound_cycles"] == -(-row["macs_effectual"] // 32)
    # its area: 32 MAC units (not 16 PEs' worth) and its own crossbar
    table = energy_table(toy.energy_table)
    area = area_um2(toy, table)
    assert area["pe_array"] == pytest.approx(2 * area_breakdown_um2(toy, table)["pe_array"])
    assert area["crossbar"] == 160.0


def test_an_unknown_kind_is_one_line():
    cfg = load_accel("edge32", ["array.kind=banana"])
    with pytest.raises(InputError, match=r"^array.kind: unknown array kind 'banana' \(choose from .*systolic"):
        _rows(cfg, [], 0.0, 0.0)


def test_systolic_configs_keep_their_records():
    """``array.kind`` was added after run ids existed: at its default it is not recorded."""
    from sparsesim.hardware.config import to_dict

    assert "kind" not in to_dict(load_accel("edge32"))["array"]
    assert to_dict(load_accel("edge32", ["array.kind=systolic"])) == to_dict(load_accel("edge32"))


@pytest.mark.parametrize("preset", _kind_configs())
def test_every_kind_keeps_the_contract(preset):
    _check_contract(load_accel(preset, ["dram.ideal=true"]))
