"""``sparsesim codesign``'s bad inputs: one ``error:`` line each, exit 2, before any model is loaded."""

from __future__ import annotations

import pytest

from sparsesim.cli.main import main


@pytest.mark.parametrize("argv, message", [
    (["codesign"], "give --sparsity SETTING"),
    (["codesign", "--sparsity", "nm:2:4", "--out", "x.txt"], "--out: x.txt: expected a .parquet or .csv"),
    (["codesign", "--sparsity", "nm:2:4", "--mode", "prefill", "--gen-len", "4"], "--gen-len: only with --mode decode"),
    (["codesign", "--sparsity", "nm:2:4", "--eval-tokens", "-1"], "--eval-tokens: must be a positive number"),
    (["codesign", "--sparsity", "nm:5:4"], "N must be smaller than M"),
    (["codesign", "--sparsity", "nm:2:4", "--accel", "nope"], "--accel: unknown preset 'nope'"),
    (["codesign", "--sparsity", "act_policy:topk:0.5"], "needs ops=REGEX"),
    (["codesign", "--sparsity", "nm:2:4", "--model", "resnet18"], "'resnet18' is not a pretrained model"),
])
def test_bad_input_is_one_error_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_settings_file_errors_and_kept_inputs(tmp_path, capsys):
    bad = tmp_path / "settings.yaml"
    bad.write_text("settings: 3\n")
    assert main(["codesign", "--settings", str(bad)]) == 2
    assert "--settings: " in capsys.readouterr().err and bad.read_text() == "settings: 3\n"
    table = tmp_path / "out.csv"
    table.write_text("mine\n")
    assert main(["codesign", "--sparsity", "nm:2:4", "--out", str(table)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err and table.read_text() == "mine\n"
