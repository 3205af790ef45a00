"""Buffers smaller than the array: every legal config runs, with a bound it does not beat.

The communication lower bound once counted only the buffers, not the data the PE array
itself holds, and a 64x64x64 GEMM with 64 B operand buffers on edge32 moved fewer DRAM bytes
than its "bound" (20,384 against 20,480) and crashed with ResultInvariantError.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

import sparsesim


def test_the_issue_reproduction_runs_and_keeps_its_bound():
    sets = {"buffers.a.size_bytes": 64, "buffers.b.size_bytes": 64, "buffers.out.size_bytes": 1024}
    total = sparsesim.simulate(sparsesim.gemm(64, 64, 64), accel="edge32", dataflow="os", sets=sets).total
    # by hand: 4 folds of 32x32; each streams a 32x64 A block and a 64x32 B block (2,048 B
    # each) that no buffer can keep, less the 32 B half of A's and 16 B of B's buffers that
    # stay across consecutive folds; outputs 64x64 written once
    assert total["dram_bytes"] == 4 * 2048 - 2 * 32 + 4 * 2048 - 2 * 16 + 4096
    assert total["dram_compulsory_bytes"] <= total["dram_lower_bound_bytes"] <= total["dram_bytes"]


@settings(max_examples=30, deadline=None)
@given(dims=st.tuples(*[st.sampled_from([1, 7, 33, 64, 100])] * 3),
       sizes=st.tuples(*[st.sampled_from([64, 96, 256, 1024])] * 3),
       side=st.sampled_from([4, 8, 32]), dataflow=st.sampled_from(["os", "ws", "is"]),
       sparsity=st.sampled_from([[], ["nm:2:4"], ["zero_skip:input:skipping"]]))
def test_tiny_buffers_never_break_an_invariant(dims, sizes, side, dataflow, sparsity):
    sets = {"buffers.a.size_bytes": sizes[0], "buffers.b.size_bytes": sizes[1], "buffers.out.size_bytes": sizes[2],
            "array.rows": side, "array.cols": side}
    # simulate checks every row (results.check_row) and raises on a broken invariant
    res = sparsesim.simulate(sparsesim.gemm(*dims), accel="edge32", dataflow=dataflow, sparsity=sparsity, sets=sets)
    assert res.total["dram_lower_bound_bytes"] <= res.total["dram_bytes"]
