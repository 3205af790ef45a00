"""The contract every registered sparsity feature keeps (as tests/dataflows/test_contract.py is
for dataflows): its CLI form and label round-trip, its config refuses unknown keys, its
declared effects are consistent, its columns appear in every replay row, its per-run state is
its own, and at its neutral setting it changes no cycle of a GEMM whose operands hold no zeros."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sparsesim.core.errors import InputError
from sparsesim.hardware.config import build, to_dict
from sparsesim.hardware.presets import load_accel
from sparsesim.simulation.run import simulate_rows
from sparsesim.sparsity import FEATURES, cli_sparsity, feature_labels, parse_features
from sparsesim.sparsity.base import Feature, GemmEffects
from sparsesim.workloads.gemm import PHASES
from sparsesim.workloads.lowering import OPERAND_ROLES
from sparsesim.workloads.ops import Linear, Workload

KINDS = FEATURES.names()


def _parsed(text: str):
    (feature,) = parse_features(tuple(cli_sparsity([text])))
    return feature


class _Frames:
    """Two frames of one linear layer, every input element nonzero and changed between them,
    and nonzero weights and gradients: operands without zeros (and deltas without zeros)."""

    def __init__(self, op: Linear) -> None:
        rng = np.random.default_rng(5)
        x0 = rng.integers(1, 6, (op.tokens, op.in_features)).astype(np.float32)
        self.inputs = (x0, x0 + 1)
        self.weight = rng.integers(1, 4, (op.out_features, op.in_features)).astype(np.float32)
        self.grad = rng.integers(1, 4, (op.tokens, op.out_features)).astype(np.float32)

    def tensors(self, index: int, roles=None) -> dict:
        return {"input": self.inputs[index], "weight": self.weight, "grad": self.grad}


def _run(sparsity: list[str], phases=PHASES[:1]) -> list[dict]:
    op = Linear(name="layer", tokens=24, in_features=40, out_features=36)
    workload = Workload("contract", (op, op), tuple(phases), (0, 1), _Frames(op))
    extra = {"sparsity": cli_sparsity(sparsity)} if sparsity else None
    cfg = load_accel("edge32", ["array.rows=8", "array.cols=8", "dram.ideal=true"], extra)
    return simulate_rows(workload, cfg, "os", progress=False)


def test_every_feature_is_a_feature_with_examples():
    for kind in KINDS:
        cls = FEATURES.get(kind)
        assert issubclass(cls, Feature) and cls.kind == kind and isinstance(cls.order, int)
        assert cls.examples, f"{kind}: no --sparsity examples to run the contract on"


@pytest.mark.parametrize("kind", KINDS)
def test_cli_and_config_round_trip(kind):
    cls = FEATURES.get(kind)
    for text in cls.examples:
        feature = _parsed(text)
        assert type(feature) is cls
        again = build(cls, to_dict(feature), "sparsity[0]")  # the config mapping builds the same feature
        assert again == feature and again.label() == feature.label() == feature_labels((feature,))
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(feature, dataclasses.fields(feature)[0].name, None)  # frozen: run state lives elsewhere


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_keys_are_refused_naming_the_field(kind):
    item = {**cli_sparsity([FEATURES.get(kind).examples[0]])[0], "bogus_key": 1}
    with pytest.raises(InputError, match=r"sparsity\[0\]\.bogus_key: unknown key"):
        parse_features((item,))


@pytest.mark.parametrize("kind", KINDS)
def test_effects_are_consistent(kind):
    for text in FEATURES.get(kind).examples:
        feature = _parsed(text)
        for phase in PHASES:
            roles = OPERAND_ROLES[phase]
            effects = feature.effects(phase, roles)
            assert isinstance(effects, GemmEffects)
            for side, role in ((effects.a, roles[0]), (effects.b, roles[1])):
                assert side.aware or not side.skip, f"{text} {phase}: skipping without detecting zeros"
                assert side.skip or not side.fetch_skip, f"{text} {phase}: weight fetch skipping without skipping"
                assert not side or role in feature.zero_roles(), f"{text} {phase}: acts on {role} zeros undeclared"
            assert not effects.b.fetch_skip, "fetch skipping is driven by A's zeros"
            assert (effects | effects) == effects and (effects | GemmEffects()) == effects


@pytest.mark.parametrize("kind", KINDS)
def test_rows_carry_every_declared_column(kind):
    feature = _parsed(FEATURES.get(kind).examples[0])
    rows = _run([FEATURES.get(kind).examples[0]], phases=_phases(feature))
    for row in rows:
        for other in KINDS:  # every registered feature's columns, so that runs' rows align
            missing = set(FEATURES.get(other).columns) - set(row)
            assert not missing, f"{kind} run: columns of {other} missing: {sorted(missing)}"
        assert row["features_active"] != "none" or row["phase"] != "fwd", "a feature acting on no fwd row"


def _phases(feature):
    """Forward only for a feature that re-encodes a sequence's inputs (delta), else all phases."""
    return PHASES[:1] if feature.encodes_input else PHASES


@pytest.mark.parametrize("kind", [k for k in KINDS if FEATURES.get(k).neutral])
def test_neutral_setting_leaves_dense_cycles(kind):
    feature = _parsed(FEATURES.get(kind).neutral)
    phases = _phases(feature)
    dense = _run([], phases)
    sparse = _run([FEATURES.get(kind).neutral], phases)
    assert [r["cycles"] for r in sparse] == [r["cycles"] for r in dense]
    assert [r["cycles"] for r in sparse] == [r["dense_cycles"] for r in sparse]
    assert all(r["macs_effectual"] == r["macs_dense"] for r in sparse)


@pytest.mark.parametrize("kind", KINDS)
def test_run_state_belongs_to_the_run(kind):
    """Two runs of the same feature object give the same rows: nothing of a run stays behind
    (not in the frozen config, not in a module)."""
    feature = _parsed(FEATURES.get(kind).examples[0])
    first, second = _run([FEATURES.get(kind).examples[0]], _phases(feature)), \
        _run([FEATURES.get(kind).examples[0]], _phases(feature))
    assert first == second
