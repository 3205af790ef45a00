"""N:M weight selection is never free: pre-generation and pruning on the fly, by hand.

The pruning unit of the ``sat`` preset has 32 lanes; a lane selects the top N of one group of
M weights in M cycles (``training.pregen_lanes``). Selecting ``G`` groups therefore takes
``ceil(G / 32) * M`` cycles. Memory is ideal in these cases so that cycles are the array's and
the pruning unit's alone.
"""

from __future__ import annotations

import pytest

from sparsesim.hardware.presets import load_accel
from sparsesim.simulation.run import simulate_rows
from sparsesim.workloads.gemm import PHASES, Phase
from sparsesim.workloads.ops import Linear, Workload

NM = [{"kind": "nm", "n": 2, "m": 8}]


def sat(*sets):
    return load_accel("sat", ["dram.ideal=true", *sets], {"sparsity": NM})


def select_cycles(rows: int, length: int, m: int = 8, lanes: int = 32) -> int:
    """Cycles to select the survivors of ``rows`` rows of ``length`` weights, grouped by m."""
    groups = rows * -(-length // m)
    return -(-groups // lanes) * m


def total(rows) -> int:
    return sum(r["cycles"] for r in rows)


def step(*ops):
    return Workload("t", tuple(ops), PHASES)


def test_selection_by_hand():
    # a 1024x1024 weight: both copies hold 1024 rows of 128 groups: 2 * 131072 / 32 * 8 cycles
    assert select_cycles(1024, 1024) * 2 == 65_536


def test_overlapped_pregeneration_is_not_free_when_nothing_can_hide_it():
    # One layer with a big weight and a batch of 4: its GEMMs are far shorter than selecting
    # both copies, and nothing runs after its weight update before its next forward pass.
    wl = step(Linear(name="fc", tokens=4, in_features=1024, out_features=1024))
    gemms = total(simulate_rows(wl, sat("training.charge_pregen=false"), "os"))
    overlapped = simulate_rows(wl, sat(), "os")
    select = 2 * select_cycles(1024, 1024)
    assert gemms < select
    # an overlapped run takes at least the longer of the two; here the selection is exposed whole
    assert total(overlapped) >= max(gemms, select)
    assert total(overlapped) == gemms + select
    bw = [r for r in overlapped if r["phase"] == "bwd_weight"][0]
    assert bw["overhead_cycles"] == select
    assert bw["pregen_select_cycles"] == select


def test_the_pruning_unit_is_one_resource_shared_by_all_layers():
    # Two such layers: the unit selects one layer's copies after the other, so the step takes
    # at least both selections; a per-layer max(GEMM, selection) would count one.
    a = Linear(name="a", tokens=4, in_features=1024, out_features=1024)
    b = Linear(name="b", tokens=4, in_features=1024, out_features=1024)
    gemm_rows = simulate_rows(step(a, b), sat("training.charge_pregen=false"), "os")
    rows = simulate_rows(step(a, b), sat(), "os")
    select = 2 * select_cycles(1024, 1024)
    assert total(rows) >= 2 * select
    # Execution order: fwd a, fwd b, bwd b (release b's job), bwd a (release a's job). b's job
    # starts at its release; a's waits for the unit and finishes 2 selections after b's release;
    # a's next forward pass, first in the next step, waits for it.
    by = {(r["name"], r["phase"]): r["cycles"] for r in gemm_rows}
    release_b = by["a", "fwd"] + by["b", "fwd"] + by["b", "bwd_data"] + by["b", "bwd_weight"]
    assert total(rows) == release_b + 2 * select


def test_pregeneration_hides_behind_work_that_is_at_least_as_long():
    # Layer "big" (big weight, short GEMMs) runs last; the long GEMMs of layer "long" (small
    # weight, many tokens) run after big's weight update and before big's next forward pass,
    # and are longer than big's selection: only long's own selection, which nothing follows,
    # is exposed.
    long = Linear(name="long", tokens=16384, in_features=64, out_features=64)
    big = Linear(name="big", tokens=4, in_features=1024, out_features=1024)
    gemm_rows = simulate_rows(step(long, big), sat("training.charge_pregen=false"), "os")
    rows = simulate_rows(step(long, big), sat(), "os")
    by = {(r["name"], r["phase"]): r["cycles"] for r in gemm_rows}
    window = by["long", "bwd_data"] + by["long", "bwd_weight"] + by["long", "fwd"]
    assert window >= 2 * select_cycles(1024, 1024)
    small = 2 * select_cycles(64, 64)
    assert small == 256
    assert total(rows) == total(gemm_rows) + small


def test_serialized_pregeneration_adds_its_selection():
    wl = step(Linear(name="fc", tokens=4, in_features=1024, out_features=1024))
    gemms = total(simulate_rows(wl, sat("training.charge_pregen=false"), "os"))
    rows = simulate_rows(wl, sat("training.pregen_overlap=false"), "os")
    assert total(rows) == gemms + 2 * select_cycles(1024, 1024)


@pytest.mark.parametrize("phase", ["fwd", "bwd_data"])
def test_pruning_on_the_fly_pays_the_selection_on_every_load(phase):
    # Without pre-generation the fwd and bwd_data GEMMs load dense weights and select N of M
    # while loading: each GEMM takes at least the selection of its 1024 x 128 groups.
    wl = step(Linear(name="fc", tokens=4, in_features=1024, out_features=1024))
    rows = {r["phase"]: r for r in simulate_rows(wl, sat("training.pregen=false"), "os")}
    free = {r["phase"]: r for r in simulate_rows(wl, sat("training.pregen=false", "training.charge_pregen=false"), "os")}
    one_copy = select_cycles(1024, 1024)
    assert one_copy == 32_768
    assert free[phase]["cycles"] < one_copy  # the GEMM alone is shorter than the selection
    assert rows[phase]["cycles"] >= one_copy
    assert rows[phase]["stall_cycles"] > 0
    groups = 1024 * 128
    assert rows[phase]["events"]["pregen_ops"] == groups * 8 * 3  # M compares of log2(M) bits each
    assert rows[phase]["energy_breakdown_pj"]["nm_pregen"] > 0
    assert rows["bwd_weight"]["events"]["pregen_ops"] == 0  # dense phase: nothing to select
