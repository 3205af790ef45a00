"""The command line contract: exit codes, one-line errors, --json shape, safe outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sparsesim.cli.main import main

CONTRACT = ("name", "phase", "M", "N", "K", "dataflow", "cycles", "stall_cycles", "dense_cycles", "speedup",
            "utilization", "macs_dense", "macs_effectual", "dram_bytes", "energy_pj", "energy_breakdown_pj")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_has_the_contract_fields(capsys):
    code, out, err = run(capsys, "run", "--gemm", "100,200,300", "--gemm", "64,64,64", "--accel", "edge32",
                         "--dataflow", "ws", "--json", "--training")
    assert code == 0, err
    doc = json.loads(out)
    assert set(doc) == {"layers", "total"}
    assert len(doc["layers"]) == 6
    for row in doc["layers"] + [doc["total"]]:
        for key in CONTRACT:
            assert key in row, key
        assert isinstance(row["cycles"], int) and isinstance(row["energy_breakdown_pj"], dict)
        assert row["energy_pj"] == pytest.approx(sum(row["energy_breakdown_pj"].values()))
    assert doc["total"]["cycles"] == sum(r["cycles"] for r in doc["layers"])


def test_scalesim_mode_from_the_command_line(capsys):
    code, out, _ = run(capsys, "run", "--gemm", "300,200,100", "--accel", "edge32", "--dataflow", "ws",
                       "--set", "array.fold_overlap=false", "--set", "dram.ideal=true", "--json")
    assert code == 0
    row = json.loads(out)["layers"][0]
    R = C = 32
    assert row["cycles"] == -(-100 // R) * -(-200 // C) * (300 + 2 * R + C - 2)


@pytest.mark.parametrize("argv, field", [
    (["--gemm", "0,4,4"], "--gemm[0].M"),
    (["--gemm", "4,4"], "--gemm[0]"),
    (["--gemm", "4,x,4"], "--gemm[0].N"),
    (["--gemm", "4,4,4", "--set", "array.rowz=4"], "array.rowz"),
    (["--gemm", "4,4,4", "--set", "array.rows=-1"], "array.rows"),
    (["--gemm", "4,4,4", "--set", "array.rows=abc"], "array.rows"),
    (["--gemm", "4,4,4", "--set", "array.fold_overlap=maybe"], "array.fold_overlap"),
    (["--gemm", "4,4,4", "--set", "dram.bandwidth_bytes_per_cycle=0"], "dram.bandwidth_bytes_per_cycle"),
    (["--gemm", "4,4,4", "--set", "norows"], "--set"),
    (["--gemm", "4,4,4", "--dataflow", "xs"], "--dataflow"),
    (["--gemm", "4,4,4", "--accel", "edge33"], "edge32"),
    (["--gemm", "4,4,4", "--sparsity", "nm:4:2"], "sparsity"),
    (["--gemm", "4,4,4", "--sparsity", "nm:3:7"], "sparsity.nm"),
    (["--gemm", "4,4,4", "--sparsity", "delta:-0.1"], "threshold"),
    (["--gemm", "4,4,4", "--sparsity", "zero_skip:input:skip"], "action"),
    (["--gemm", "4,4,4", "--sparsity", "act_policy:topk:2"], "keep_fraction"),
    (["--gemm", "4,4,4", "--sparsity", "delta:0.1"], "time axis"),
    (["--network", "resnet5"], "resnet50"),
    (["--gemm", "2000000,2000000,4"], "folds"),
    (["--gemm", "100000,100000,10000", "--sparsity", "nm:2:4"], "sparse replay"),
    (["--topology", "/nonexistent/x.csv"], "x.csv"),
])
def test_bad_input_is_one_line_exit_2(capsys, argv, field):
    if "--accel" not in argv:
        argv = argv + ["--accel", "edge32"]
    code, out, err = run(capsys, "run", *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert field in lines[0]
    assert "Traceback" not in err


def test_bad_config_file_names_the_key(capsys, tmp_path):
    cfg = tmp_path / "a.yaml"
    cfg.write_text("name: x\narray: {rows: 8, colls: 8}\nbuffers: {a: {size_bytes: 1024}, b: {size_bytes: 1024}, "
                   "out: {size_bytes: 1024}}\ndram: {bandwidth_bytes_per_cycle: 8}\n")
    code, _, err = run(capsys, "run", "--gemm", "4,4,4", "--accel", str(cfg))
    assert code == 2 and "array.colls" in err and "did you mean 'cols'" in err
    cfg.write_text("array: [1, 2\n")
    code, _, err = run(capsys, "run", "--gemm", "4,4,4", "--accel", str(cfg))
    assert code == 2 and "a.yaml" in err and len(err.strip().splitlines()) == 1


def test_out_file_written_whole_and_never_overwritten(capsys, tmp_path):
    out = tmp_path / "r.parquet"
    code, _, _ = run(capsys, "run", "--network", "resnet18", "--accel", "edge32", "--dataflow", "os", "--out", str(out))
    assert code == 0
    df = pd.read_parquet(out)
    assert len(df) == 21 and df["run_id"].nunique() == 1
    assert {"cfg.array.rows", "cfg.dram.bandwidth_bytes_per_cycle", "energy_pj.dram", "energy_table"} <= set(df)
    before = out.read_bytes()
    code, _, err = run(capsys, "run", "--gemm", "4,4,4", "--accel", "edge32", "--out", str(out))
    assert code == 2 and "exists" in err and out.read_bytes() == before
    # bad input after the output was named: nothing written, nothing left behind
    out2 = tmp_path / "r2.csv"
    code, _, _ = run(capsys, "run", "--gemm", "4,4,0", "--accel", "edge32", "--out", str(out2))
    assert code == 2 and not out2.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["r.parquet"]


def test_same_config_same_numbers_and_run_id(capsys):
    argv = ["run", "--gemm", "200,100,300", "--accel", "edge32", "--sparsity", "zero_skip:input:skipping", "--json"]
    a = json.loads(run(capsys, *argv)[1])
    b = json.loads(run(capsys, *argv)[1])
    assert a == b
    c = json.loads(run(capsys, *argv[:-1], "--set", "seed=7", "--json")[1])
    assert c["layers"][0]["run_id"] != a["layers"][0]["run_id"]


def test_list_names_every_registry(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0
    for name in ("edge32", "dc128", "sat", "os", "ws", "is", "best", "nm", "zero_skip", "delta", "act_policy",
                 "horowitz45", "resnet50", "video_cnn", "gru", "transformer", "zero-skip"):
        assert f"  {name} " in out


def test_console_script_exit_codes():
    exe = Path(sys.executable).with_name("sparsesim")
    ok = subprocess.run([str(exe), "run", "--gemm", "8,8,8", "--accel", "edge32"], capture_output=True, text=True)
    assert ok.returncode == 0 and "gemm0" in ok.stdout
    bad = subprocess.run([str(exe), "run", "--gemm", "8,8,8"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--accel" in bad.stderr
