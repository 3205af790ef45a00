"""``sparsesim trace ...`` end to end, and the ``trace info`` summary."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from sparsesim.cli.main import main
from sparsesim.workloads.gemm import Phase
from sparsesim.workloads.ops import Linear
from sparsesim.workloads.trace import TraceWriter, load_trace
from sparsesim.workloads.trace.info import describe


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_synth_info_validate(tmp_path, capsys):
    out_dir = str(tmp_path / "t")
    code, out, _ = _run(capsys, "trace", "synth", "--gemm", "64,32,48", "--gemm", "16,16,16", "--out", out_dir,
                        "--weight", "nm:2:4", "--training", "--dtype", "fp16")
    assert code == 0 and "wrote" in out
    code, out, _ = _run(capsys, "trace", "info", out_dir, "--validate")
    assert code == 0
    assert "gemm0" in out and "64x32x48" in out and "storage fp16" in out and "50.0%" in out
    code, out, _ = _run(capsys, "trace", "validate", out_dir)
    assert code == 0 and out.startswith("ok:")
    code, _, err = _run(capsys, "trace", "synth", "--gemm", "8,8,8", "--out", out_dir)
    assert code == 2 and "already exists" in err


def test_bad_input_is_one_error_line_exit_2(tmp_path, capsys):
    out_dir = tmp_path / "t"
    assert _run(capsys, "trace", "synth", "--gemm", "8,8,8", "--out", str(out_dir))[0] == 0
    f = next(out_dir.glob("*.safetensors"))
    f.write_bytes(f.read_bytes()[:-10])
    code, out, err = _run(capsys, "trace", "info", str(out_dir))
    assert code == 2 and out == ""
    assert err.startswith(f"error: {f}: truncated") and err.count("\n") == 1
    for argv in (["trace", "info", str(tmp_path)], ["trace", "synth", "--out", str(tmp_path / "x")],
                 ["trace", "synth", "--gemm", "8,8", "--out", str(tmp_path / "x")],
                 ["trace", "synth", "--network", "resnet18", "--weight", "nm:4:2", "--out", str(tmp_path / "x")],
                 ["trace", "import", "csv", "f.csv", "--out", str(tmp_path / "x")],
                 ["trace", "capture", "--model", "resnet18", "--dtype", "fp8"]):
        code, _, err = _run(capsys, *argv)
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, argv


def test_import_scalesim_cli(tmp_path, capsys):
    csv = tmp_path / "net.csv"
    csv.write_text("Layer, M, N, K,\nG1, 32, 16, 8,\n")
    code, out, _ = _run(capsys, "trace", "import", "scalesim", str(csv), "--out", str(tmp_path / "t"))
    assert code == 0
    assert load_trace(tmp_path / "t").ops[0].op.gemm(Phase.FWD).M == 32


def test_capture_without_torch_says_how_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    code, _, err = _run(capsys, "trace", "capture", "--model", "gru", "--out", str(tmp_path / "t"))
    assert code == 2
    assert err == "error: trace capture needs torch: pip install 'sparsesim[capture]'\n"


def test_capture_cli(tmp_path, capsys):
    pytest.importorskip("torch")
    code, out, _ = _run(capsys, "trace", "capture", "--model", "gru", "--batch", "2", "--warmup-steps", "1",
                        "--mode", "infer", "--dtype", "bf16", "--out", str(tmp_path / "g"), "--no-progress")
    assert code == 0 and "wrote" in out
    trace = load_trace(tmp_path / "g")
    assert trace.capture["mode"] == "infer" and trace.storage.name == "bf16"
    code, out, _ = _run(capsys, "trace", "info", str(tmp_path / "g"))
    assert "delta density" in out and "h2h" in out


def test_delta_density_in_info(tmp_path):
    op = Linear(name="cell", tokens=1, in_features=4, out_features=2)
    frames = [[0, 0, 0, 0], [0.5, 0, 0.02, 0], [0.5, 0.2, 0.02, 0]]
    with TraceWriter(tmp_path / "t") as w:
        weight = w.add_tensor("w", np.ones(op.weight_shape))
        for t, x in enumerate(frames):
            w.add_op(op, tensors={"input": w.add_tensor(f"x{t}", np.array([x])), "weight": weight},
                     phases=(Phase.FWD,), time_step=t)
    text = describe(load_trace(tmp_path / "t"))
    # pair 1 changes 2 of 4 (one by 0.02 < 0.05), pair 2 changes 1 of 4: means 37.5/37.5/25/25 %
    row = next(line for line in text.splitlines() if line.startswith("cell") and "37.5%" in line)
    assert row.split()[-4:] == ["37.5%", "37.5%", "25.0%", "25.0%"]
    assert "zero in" in text


def test_info_coverage_line_from_the_manifest():
    from sparsesim.workloads.trace.info import coverage_lines

    assert coverage_lines({"model": "imported"}) == []  # not a PyTorch capture: nothing to say
    assert coverage_lines({"torch": "2.1"}) == ["MAC coverage: unknown (not measured when this trace was captured)"]
    cov = {"steps": 2, "macs_fwd_total": 400, "macs_fwd_recorded": 300,
           "skipped": [{"module": "enc.rnn", "function": "torch.lstm", "calls": 2, "macs_fwd": 100}]}
    lines = coverage_lines({"coverage": cov})
    assert lines[0] == "MAC coverage: 75.0% of the model's forward MACs are in the trace (300 of 400 over 2 steps)"
    assert lines[2] == "  enc.rnn: torch.lstm, 2 calls, 100 MACs (25.0%)"


def test_a_trace_holding_nan_is_refused_the_same_way_on_every_path(tmp_path, capsys):
    # dense run, sparse run, trace info --validate and trace validate: one error line naming
    # the file and the tensor, exit 2 (a dense run never needed the values, but must not
    # report numbers for a trace that holds NaN)
    import struct

    from sparsesim.workloads.trace.header import read_header

    out_dir = tmp_path / "t"
    assert _run(capsys, "trace", "synth", "--gemm", "16,8,12", "--out", str(out_dir))[0] == 0
    f = next(out_dir.glob("*.safetensors"))
    entries, _ = read_header(f)
    name = next(n for n in entries if n.endswith("input"))
    (n,) = struct.unpack("<Q", f.read_bytes()[:8])
    raw = bytearray(f.read_bytes())
    raw[8 + n + entries[name].begin: 8 + n + entries[name].begin + 4] = struct.pack("<f", float("nan"))
    f.write_bytes(bytes(raw))
    # a trace written with the NaN in it: its checksum matches (a corrupted file is another error)
    import hashlib
    import json

    manifest = json.loads((out_dir / "manifest.json").read_text())
    manifest["files"][f.name]["sha256"] = hashlib.sha256(f.read_bytes()).hexdigest()
    (out_dir / "manifest.json").write_text(json.dumps(manifest))
    want = f"error: {f}: tensor {name!r} holds NaN\n"
    for argv in (["run", "--trace", str(out_dir), "--accel", "edge32", "--dataflow", "os"],
                 ["run", "--trace", str(out_dir), "--accel", "edge32", "--dataflow", "best", "--json"],
                 ["run", "--trace", str(out_dir), "--accel", "edge32", "--dataflow", "os",
                  "--sparsity", "zero_skip:input:skipping"],
                 ["trace", "info", str(out_dir), "--validate"],
                 ["trace", "validate", str(out_dir)]):
        code, out, err = _run(capsys, *argv)
        assert (code, out, err) == (2, "", want), argv


def test_inference_phases_synthesise_replay_and_refuse_unrecorded_ones(tmp_path, capsys):
    out_dir = str(tmp_path / "p")
    assert _run(capsys, "trace", "synth", "--gemm", "8,8,8", "--phases", "prefill", "--out", out_dir)[0] == 0
    code, out, err = _run(capsys, "run", "--trace", out_dir, "--accel", "edge32", "--json")
    assert code == 0 and [r["phase"] for r in json.loads(out)["layers"]] == ["prefill"]
    # a phase the trace did not record is an error, not an empty table
    code, out, err = _run(capsys, "run", "--trace", out_dir, "--accel", "edge32", "--phases", "fwd")
    assert (code, out) == (2, "") and err.startswith("error: --phases:") and "recorded prefill" in err


def test_llm_capture_without_a_model_or_with_own_model_flags_is_one_error(tmp_path, capsys):
    code, out, err = _run(capsys, "trace", "capture", "--mode", "decode", "--out", str(tmp_path / "x"))
    assert (code, out) == (2, "") and err.startswith("error: trace capture: give --model")
    code, out, err = _run(capsys, "trace", "capture", "--model", "llama_tiny", "--input-shape", "3,4",
                          "--out", str(tmp_path / "y"))
    assert (code, out) == (2, "") and err.startswith("error: --input-shape:")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def _overwrite_input(trace_dir):
    """Zero the input tensor's bytes in place (the file keeps its size and header)."""
    import struct

    from sparsesim.workloads.trace.header import read_header

    f = next(trace_dir.glob("*.safetensors"))
    entries, _ = read_header(f)
    entry = next(e for n, e in entries.items() if n.endswith("input"))
    raw = bytearray(f.read_bytes())
    (n,) = struct.unpack("<Q", raw[:8])
    raw[8 + n + entry.begin: 8 + n + entry.end] = bytes(entry.nbytes)
    f.write_bytes(bytes(raw))
    return f


def test_a_tensor_file_overwritten_in_place_is_refused_unless_no_verify(tmp_path, capsys):
    # issue 16: the overwritten input replayed silently and showed a speedup it does not have
    out_dir = tmp_path / "t"
    assert _run(capsys, "trace", "synth", "--gemm", "64,64,64", "--input", "uniform:0.9", "--out", str(out_dir))[0] == 0
    run = ("run", "--trace", str(out_dir), "--accel", "edge32", "--dataflow", "os",
           "--sparsity", "zero_skip:input:skipping", "--json")
    code, out, _ = _run(capsys, *run)
    speedup = json.loads(out)["total"]["speedup"]
    f = _overwrite_input(out_dir)
    want = (f"error: {f}: SHA-256 differs from manifest.json files.{f.name}.sha256 (file corrupted or changed "
            "since it was written)\n")
    for argv in (run, run[:-3], ("trace", "info", str(out_dir)), ("trace", "info", str(out_dir), "--validate"),
                 ("trace", "validate", str(out_dir))):
        assert _run(capsys, *argv) == (2, "", want), argv
    code, out, err = _run(capsys, *run, "--no-verify")  # the user's choice: the bytes on disk
    assert (code, err) == (0, "") and json.loads(out)["total"]["speedup"] > speedup
    code, out, err = _run(capsys, "trace", "info", str(out_dir), "--no-verify")
    assert (code, err) == (0, "") and "100.0%" in out  # the zeroed input
    code, out, err = _run(capsys, "trace", "info", str(out_dir), "--no-verify", "--validate")
    assert (code, out, err) == (2, "", "error: --no-verify: not with --validate, which checks every checksum\n")
    code, out, err = _run(capsys, "run", "--gemm", "8,8,8", "--accel", "edge32", "--no-verify")
    assert (code, out, err) == (2, "", "error: --no-verify: only with --trace (it skips the trace files' checksums)\n")


def test_the_api_verifies_a_trace_unless_told_not_to(tmp_path, capsys):
    import sparsesim

    out_dir = tmp_path / "t"
    assert _run(capsys, "trace", "synth", "--gemm", "16,16,16", "--out", str(out_dir))[0] == 0
    f = _overwrite_input(out_dir)
    with pytest.raises(sparsesim.InputError, match=rf"^{f}: SHA-256 differs"):
        sparsesim.simulate(sparsesim.trace(out_dir), accel="edge32", dataflow="os")
    trace = sparsesim.load_trace(out_dir)
    with pytest.raises(sparsesim.InputError, match=rf"^{f}: SHA-256 differs"):
        trace.op_tensors(trace.ops[0])
    res = sparsesim.simulate(sparsesim.trace(out_dir, verify=False), accel="edge32", dataflow="os")
    assert res.total["cycles"] > 0
    unverified = sparsesim.load_trace(out_dir, verify=False)
    assert not unverified.op_tensors(unverified.ops[0])[0].any()  # the zeroed input, as on disk
    for call, field in ((lambda: sparsesim.trace(out_dir, verify="no"), "trace.verify"),
                        (lambda: sparsesim.load_trace(out_dir, verify=0), "load_trace.verify")):
        with pytest.raises(sparsesim.InputError, match=rf"^{field}: expected True or False"):
            call()


def test_a_trace_without_checksums_replays_with_a_warning_and_validate_says_so(tmp_path, capsys):
    out_dir = tmp_path / "t"
    assert _run(capsys, "trace", "synth", "--gemm", "16,16,16", "--out", str(out_dir))[0] == 0
    manifest = json.loads((out_dir / "manifest.json").read_text())
    (name, listed), = manifest["files"].items()
    del listed["sha256"]
    (out_dir / "manifest.json").write_text(json.dumps(manifest))
    code, out, err = _run(capsys, "run", "--trace", str(out_dir), "--accel", "edge32", "--dataflow", "os")
    assert code == 0 and "gemm0" in out
    assert [line for line in err.splitlines() if not line.startswith("#")] == [
        f"warning: {out_dir / name}: manifest.json files.{name} records no sha256; its data are read unverified"]
    code, out, _ = _run(capsys, "trace", "validate", str(out_dir))
    assert code == 0 and out.rstrip().endswith("; 1 file(s) record no sha256, their bytes were not checked")
