"""``sparsesim validate architectures``: every registered reference runs, its agreement is
printed, and a case outside its tolerance fails the command (a toy reference planted here)."""

from __future__ import annotations

import json

import pytest

from sparsesim.cli.main import main
from sparsesim.references import REFERENCES, Agreement, ReferenceCheck


class _Wrong(ReferenceCheck):
    name = "toy_wrong"
    array_kind = "systolic"
    source = "a planted disagreement"

    def run(self):
        return [Agreement("one", 100.0, 103.0, "cycles", 0.02), Agreement("two", 100.0, 101.0, "cycles", 0.02)]


def test_the_sparse_tensor_core_halves_the_dense_core(capsys):
    assert main(["validate", "architectures", "--only", "sparse_tensor_core", "--json"]) == 0
    (ref,) = json.loads(capsys.readouterr().out)["references"]
    cases = {c["case"]: c for c in ref["cases"]}
    assert len(cases) == 8 and all(c["agrees"] for c in cases.values())
    for shape in ("M128-K1152-N1024", "M512-K1024-N256", "M512-K128-N1024", "M512-K256-N1024"):
        M, K, N = (int(p[1:]) for p in shape.split("-"))
        dense, sparse = cases[f"{shape} dense"]["model"], cases[f"{shape} 2:4"]["model"]
        # by hand: 32 x 32 output stationary, folds overlapped: M*N/1024 folds of K cycles
        # (K/2 under 2:4), plus one fill and drain of R + C - 2 = 62 cycles
        assert dense == M * N * K // 1024 + 62
        assert sparse == M * N * (K // 2) // 1024 + 62


def test_a_disagreeing_case_fails_the_command(monkeypatch, capsys):
    monkeypatch.setitem(REFERENCES._items, _Wrong.name, _Wrong())
    assert main(["validate", "architectures", "--only", "toy_wrong"]) == 1
    out = capsys.readouterr()
    assert "toy_wrong [systolic]: 1/2 cases agree" in out.out
    assert "one: reference 100 cycles, model 103 (+3.00%, tolerance 2%)" in out.out
    assert out.err.strip() == "error: 1 cases disagree with their reference"


def test_an_unknown_reference_is_one_line(capsys):
    assert main(["validate", "architectures", "--only", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --only: unknown reference 'nope'") and "\n" not in err
