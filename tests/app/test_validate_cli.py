"""``sparsesim validate reference``: exit codes, the --json shape, determinism."""

from __future__ import annotations

import json

from sparsesim.cli.main import main

FIELDS = ("dataflow", "M", "N", "K", "rows", "cols", "fold_overlap", "features", "reference_cycles", "fast_cycles",
          "values_ok", "agree", "reference_events", "fast_events")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_cases_and_agreement(capsys):
    code, out, err = run(capsys, "validate", "reference", "--cases", "6", "--seed", "2", "--json")
    assert code == 0, err
    cases = json.loads(out)["cases"]
    assert len(cases) == 6
    for case in cases:
        assert set(FIELDS) <= set(case)
        assert case["agree"] and case["values_ok"] and case["reference_cycles"] == case["fast_cycles"]
        assert isinstance(case["features"], list)
    again = json.loads(run(capsys, "validate", "reference", "--cases", "6", "--seed", "2", "--json")[1])["cases"]
    assert again == cases  # same seed, same cases


def test_summary_line(capsys):
    code, out, _ = run(capsys, "validate", "reference", "--cases", "3", "--seed", "0")
    assert code == 0 and out.startswith("3/3 cases agree")


def test_disagreement_exits_1(capsys, monkeypatch):
    import sparsesim.validate as v

    real = v.fast_rows
    monkeypatch.setattr(v, "fast_rows", lambda case: [dict(r, compute_cycles=r["compute_cycles"] - 1) for r in real(case)])
    code, out, err = run(capsys, "validate", "reference", "--cases", "2", "--seed", "0")
    assert code == 1 and "0/2 cases agree" in out and err.startswith("error:")


def test_bad_count_is_input_error(capsys):
    code, _, err = run(capsys, "validate", "reference", "--cases", "0")
    assert code == 2 and err.startswith("error: --cases")
