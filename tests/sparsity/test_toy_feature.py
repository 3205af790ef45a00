"""A feature defined and registered here, in a test file, runs through ``sparsesim.simulate``
with no existing file edited: the replay composes what it declares (its operand effects, a
side charge, a column, its per-run state) as it does the built-in features'."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

import sparsesim
from sparsesim.core.errors import InputError
from sparsesim.hardware.config import _param
from sparsesim.hardware.schedule import EventCounts
from sparsesim.sparsity import FEATURES
from sparsesim.sparsity.base import Feature, FeatureRun, GemmEffects, OperandEffects, SideCharge
from sparsesim.workloads.gemm import Phase
from sparsesim.workloads.ops import Linear, Workload


@dataclass(frozen=True, slots=True, kw_only=True)
class PlainInputSkip(Feature):
    """Skip the input activations' zeros, stored dense, weights fetched whole; a per-row
    "zero detector" charge of ``ops_per_row`` encoder operations."""

    kind: ClassVar[str] = "toy_skip"
    order: ClassVar[int] = 50
    columns: ClassVar[dict] = {"toy_rows_seen": None}
    examples: ClassVar[tuple[str, ...]] = ("toy_skip:3",)
    neutral: ClassVar[str | None] = "toy_skip:0"
    ops_per_row: int = _param("encoder operations charged per row", default=0, minimum=0, maximum=1 << 20)

    @classmethod
    def from_cli(cls, fields: list[str]) -> dict:
        if len(fields) != 1:
            raise InputError("expected toy_skip:OPS")
        return {"kind": "toy_skip", "ops_per_row": int(fields[0])}

    def label(self) -> str:
        return f"toy{self.ops_per_row}"

    def zero_roles(self) -> tuple[str, ...]:
        return ("input",)

    def effects(self, phase, roles) -> GemmEffects:
        if roles[0] != "input":
            return GemmEffects()
        return GemmEffects(a=OperandEffects(aware=True, skip=True))

    def start(self, run) -> FeatureRun:
        return _Counter(self, run)


class _Counter(FeatureRun):
    """Per-run state: how many rows this run has charged."""

    def __init__(self, config, run) -> None:
        super().__init__(config, run)
        self.seen = 0

    def side(self, row) -> SideCharge | None:
        if not self.acts(row):
            return None
        self.seen += 1
        row.extra["toy_rows_seen"] = self.seen
        return SideCharge(counts=EventCounts(encode_ops=self.config.ops_per_row))


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(FEATURES._items, "toy_skip", PlainInputSkip)  # registered for this test only
    return PlainInputSkip


BUILT_IN_EQUIVALENT = {"kind": "zero_skip", "target": "input", "action": "skipping", "compress": "false",
                       "weight_fetch": False}
"""The built-in feature declaring the same effects as the toy one."""


class _Tensors:
    """One linear layer whose inputs are zero in every other input feature (skippable K steps)."""

    def __init__(self, op: Linear) -> None:
        rng = np.random.default_rng(3)
        self.x = rng.integers(1, 5, (op.tokens, op.in_features)).astype(np.float32)
        self.x[:, ::2] = 0
        self.w = rng.integers(1, 5, (op.out_features, op.in_features)).astype(np.float32)

    def tensors(self, index: int, roles=None) -> dict:
        return {"input": self.x, "weight": self.w, "grad": None}


def _layer(tokens: int, fin: int, fout: int) -> Workload:
    op = Linear(name="layer", tokens=tokens, in_features=fin, out_features=fout)
    return Workload("toy", (op,), (Phase.FWD,), None, _Tensors(op))


def test_toy_feature_changes_the_numbers_as_declared(toy):
    workload = _layer(96, 80, 64)
    dense = sparsesim.simulate(workload, accel="edge32", dataflow="os").to_pandas()
    ours = sparsesim.simulate(workload, accel="edge32", dataflow="os", sparsity=["toy_skip:3"]).to_pandas()
    same = sparsesim.simulate(workload, accel="edge32", dataflow="os", sparsity=[BUILT_IN_EQUIVALENT]).to_pandas()
    row, twin = ours.iloc[0], same.iloc[0]
    assert row["cycles"] < dense.iloc[0]["cycles"]  # the synthetic inputs' zeros are skipped
    assert row["cycles"] == twin["cycles"] and row["macs_effectual"] == twin["macs_effectual"]
    assert row["events.encode_ops"] == 3 and twin["events.encode_ops"] == 0
    assert row["features_active"] == "toy_skip" and row["toy_rows_seen"] == 1
    assert row["sparsity"] == "toy3"


def test_toy_feature_composes_with_built_in_ones(toy):
    workload = _layer(64, 64, 48)
    both = sparsesim.simulate(workload, accel="edge32", dataflow="os", sparsity=["nm:2:4", "toy_skip:1"]).to_pandas()
    nm = sparsesim.simulate(workload, accel="edge32", dataflow="os", sparsity=["nm:2:4"]).to_pandas()
    assert both.iloc[0]["features_active"] == "nm+toy_skip"
    assert both.iloc[0]["cycles"] <= nm.iloc[0]["cycles"]
    assert "toy_rows_seen" in nm.columns  # every registered feature's columns are in every replay row
    assert nm.iloc[0]["toy_rows_seen"] is None or nm["toy_rows_seen"].isna().all()


def test_toy_run_state_is_per_run(toy):
    workload = sparsesim.gemm(32, 32, 32)
    for _ in range(2):  # a second run starts again from its own counter
        rows = sparsesim.simulate(workload, accel="edge32", dataflow="os", sparsity=["toy_skip:0"]).to_pandas()
        assert rows["toy_rows_seen"].tolist() == list(range(1, len(rows) + 1))
