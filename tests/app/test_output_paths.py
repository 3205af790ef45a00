"""Output paths of every writing command and API call: refused up front with one line, and
nothing the user had is replaced or deleted (issue 16, sections 2 and 4).

The tests run as root: a ``chmod 0555`` directory is writable then, so the read-only cases use
``/proc``, which refuses new files whatever its mode bits say.
"""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path

import pytest
import yaml

from sparsesim.cli.main import main

REPO = Path(__file__).resolve().parents[2]
TOPOLOGY = REPO / "configs" / "topologies" / "example.csv"
SPEC = {"name": "paths", "base": "edge32", "workloads": [{"gemm": [8, 8, 8]}], "dataflows": ["os"]}


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory) -> Path:
    """A finished one-point sweep directory, written by the sweep's own store without a cluster."""
    from sparsesim.sweeps import plan_sweep, prepare_out_dir, run_point
    from sparsesim.sweeps.store import meta_record, write_json, write_point

    root = tmp_path_factory.mktemp("sweep")
    plan = plan_sweep(SPEC, root / "spec.yaml")
    out = prepare_out_dir(plan, root / "sweep", False)
    for point in plan.points:
        write_point(out, point.point_id, run_point(point))
    listing = [p.describe() for p in plan.points]
    write_json(out.meta, meta_record(plan, listing, {"state": "complete", "done": len(listing),
                                                     "total": len(listing)}))
    return out.root


@pytest.fixture
def spec_file(tmp_path) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    return path


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err.strip()


# command: (argv before --out, output kind, (module, function) that starts the work)
COMMANDS = {
    "run": (lambda ctx: ["run", "--gemm", "8,8,8", "--accel", "edge32"], "file", ("sparsesim.api", "simulate")),
    "trace capture": (lambda ctx: ["trace", "capture", "--model", "gru", "--no-progress"], "dir",
                      ("sparsesim.workloads.capture", "capture_zoo")),
    "trace capture (LLM)": (lambda ctx: ["trace", "capture", "--model", "llama_tiny", "--no-progress"], "dir",
                            ("sparsesim.workloads.capture.llm", "capture_llm")),
    "sweep": (lambda ctx: ["sweep", str(ctx["spec"]), "--quiet"], "dir", ("sparsesim.sweeps", "run_sweep")),
    "report": (lambda ctx: ["report", str(ctx["sweep"])], "dir", ("sparsesim.report", "collect_results")),
    "trace synth": (lambda ctx: ["trace", "synth", "--gemm", "8,8,8"], "dir", ("sparsesim.workloads.trace.synthetic",
                                                                             "synthesize")),
    "trace import": (lambda ctx: ["trace", "import", "scalesim", str(TOPOLOGY)], "dir",
                     ("sparsesim.workloads.trace.importers", "import_trace")),
    "demo": (lambda ctx: ["demo"], "dir", ("sparsesim.demo", "_dense_dataflows")),
    "study": (lambda ctx: ["study", "zero-skip", "--quick"], "dir", None),
}

# case: (output path for a file, for a directory; what the one line says)
CASES = {
    "parent is a file": ("afile/x.csv", "afile/x", "afile is not a directory"),
    "wrong kind": ("d.parquet", "f.txt", None),
    "read-only file system": ("/proc/x.csv", "/proc/sparsesim_out/x", "cannot create files in /proc"),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("command", COMMANDS)
def test_bad_output_path_is_one_line_before_any_work(command, case, tmp_path, monkeypatch, capsys, sweep_dir,
                                                     spec_file):
    argv, kind, work = COMMANDS[command]
    monkeypatch.chdir(tmp_path)
    Path("afile").write_text("a file, not a directory")
    Path("d.parquet").mkdir()
    Path("f.txt").write_text("a file, not a directory")
    if work is not None:  # the work must never start
        def started(*args, **kwargs):
            raise AssertionError(f"{command}: work started before --out was checked")

        monkeypatch.setattr(importlib.import_module(work[0]), work[1], started)
    file_path, dir_path, reason = CASES[case]
    out = file_path if kind == "file" else dir_path
    if reason is None:
        reason = "is a directory; expected a file name" if kind == "file" else "exists and is not a directory"
    assert main([*argv({"spec": spec_file, "sweep": sweep_dir}), "--out", out]) == 2
    err = _err(capsys)
    assert err.startswith(f"error: --out: {out}") and reason in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "d.parquet", "f.txt", "spec.yaml"]
    assert not any(Path("d.parquet").iterdir())


def test_run_refuses_a_missing_directory_and_a_non_table_name(tmp_path, capsys):
    assert main(["run", "--gemm", "8,8,8", "--accel", "edge32", "--out", str(tmp_path / "no" / "x.csv")]) == 2
    assert f"directory {tmp_path / 'no'} does not exist" in _err(capsys)
    assert main(["run", "--gemm", "8,8,8", "--accel", "edge32", "--out", str(tmp_path / "x.txt")]) == 2
    assert "expected a .parquet or .csv file name" in _err(capsys)


def test_study_checks_its_trace_cache_too(tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    assert main(["study", "zero-skip", "--quick", "--out", str(tmp_path / "rep"),
                 "--traces", str(tmp_path / "afile" / "traces")]) == 2
    assert f"--traces: {tmp_path / 'afile' / 'traces'}: {tmp_path / 'afile'} is not a directory" in _err(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


# ---------------------------------------------------------------------------------------------
# an output that is one of the inputs


def test_run_never_overwrites_its_topology(tmp_path, capsys):
    topo = tmp_path / "topo.csv"
    shutil.copy(TOPOLOGY, topo)
    (tmp_path / "link.csv").symlink_to(topo)
    (tmp_path / "hard.csv").hardlink_to(topo)
    original = topo.read_bytes()
    for given, out in ((topo, topo), (tmp_path / "link.csv", topo), (tmp_path / "hard.csv", topo),
                       (topo, tmp_path / "sub" / ".." / "topo.csv")):
        (tmp_path / "sub").mkdir(exist_ok=True)
        assert main(["run", "--topology", str(given), "--accel", "edge32", "--out", str(out), "--overwrite"]) == 2
        err = _err(capsys)
        assert f"is the input --topology {given}" in err, err
    assert topo.read_bytes() == original


@pytest.mark.parametrize("command", ["trace import", "trace synth"])
def test_trace_output_never_replaces_a_directory_holding_the_input(command, tmp_path, capsys):
    trace = tmp_path / "t"
    assert main(["trace", "synth", "--gemm", "8,8,8", "--out", str(trace)]) == 0
    topo = trace / "topo.csv"
    shutil.copy(TOPOLOGY, topo)
    capsys.readouterr()
    argv = (["trace", "import", "scalesim", str(topo)] if command == "trace import"
            else ["trace", "synth", "--topology", str(topo)])
    assert main([*argv, "--out", str(trace), "--overwrite"]) == 2
    assert f"holds the input {'FILE' if command == 'trace import' else '--topology'} {topo}" in _err(capsys)
    assert topo.read_bytes() == TOPOLOGY.read_bytes()


def test_report_never_replaces_a_directory_holding_the_sweep(sweep_dir, tmp_path, capsys):
    parent = tmp_path / "work"
    shutil.copytree(sweep_dir, parent / "sweep")
    (parent / "report.md").write_text("an earlier report")
    assert main(["report", str(parent / "sweep"), "--out", str(parent), "--overwrite"]) == 2
    assert f"holds the input DIR {parent / 'sweep'}" in _err(capsys)
    assert (parent / "sweep" / "sweep.json").exists()
    assert main(["report", str(parent / "sweep"), "--out", str(parent / "sweep")]) == 2
    assert "is the input DIR" in _err(capsys)


def test_sweep_output_may_not_be_its_spec(spec_file, capsys):
    text = spec_file.read_text()
    assert main(["sweep", str(spec_file), "--out", str(spec_file), "--quiet"]) == 2
    assert f"--out: {spec_file} is the input spec" in _err(capsys)
    assert spec_file.read_text() == text


# ---------------------------------------------------------------------------------------------
# --overwrite replaces only what the tool wrote


TRACE_WRITERS = {
    "trace synth": ["trace", "synth", "--gemm", "8,8,8"],
    "trace import": ["trace", "import", "scalesim", str(TOPOLOGY)],
    "trace capture": ["trace", "capture", "--model", "gru", "--no-progress"],
    "trace capture (LLM)": ["trace", "capture", "--model", "llama_tiny", "--no-progress"],
}


@pytest.mark.parametrize("command", TRACE_WRITERS)
def test_overwrite_keeps_a_file_the_tool_did_not_write(command, tmp_path, capsys):
    trace = tmp_path / "t"
    assert main(["trace", "synth", "--gemm", "8,8,8", "--out", str(trace)]) == 0
    (trace / "NOTES.txt").write_text("mine")
    written = sorted(p.name for p in trace.iterdir())
    capsys.readouterr()
    assert main([*TRACE_WRITERS[command], "--out", str(trace), "--overwrite"]) == 2
    err = _err(capsys)
    assert f"--out: {trace} holds 'NOTES.txt', which is not part of a trace" in err, err
    assert sorted(p.name for p in trace.iterdir()) == written and (trace / "NOTES.txt").read_text() == "mine"


def test_overwrite_replaces_a_trace_holding_only_its_own_files(tmp_path, capsys):
    trace = tmp_path / "t"
    assert main(["trace", "synth", "--gemm", "8,8,8", "--out", str(trace)]) == 0
    assert main(["trace", "synth", "--gemm", "16,16,16", "--out", str(trace), "--overwrite"]) == 0
    assert "1 ops" in capsys.readouterr().out
    import sparsesim  # the replaced trace is the new one (16x16x16), not the old 8x8x8

    assert sparsesim.simulate(sparsesim.trace(trace), accel="edge32", dataflow="os").rows[0]["M"] == 16
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]  # no temporary or probe file left behind


def test_report_overwrite_keeps_a_file_the_report_did_not_write(sweep_dir, tmp_path, monkeypatch, capsys):
    import sparsesim.report

    rep = tmp_path / "rep"
    rep.mkdir()
    (rep / "report.md").write_text("an earlier report")
    (rep / "NOTES.txt").write_text("mine")
    monkeypatch.setattr(sparsesim.report, "build_sections", lambda *a: pytest.fail("the report was drawn"))
    assert main(["report", str(sweep_dir), "--out", str(rep), "--overwrite"]) == 2
    assert f"--out: {rep} holds 'NOTES.txt', which is not part of a report" in _err(capsys)
    assert (rep / "NOTES.txt").read_text() == "mine"


def test_resumed_sweep_deletes_only_its_own_temporary_files(sweep_dir, tmp_path):
    from sparsesim.sweeps import plan_sweep, prepare_out_dir

    root = tmp_path / "sweep"
    shutil.copytree(sweep_dir, root)
    (root / ".notes.tmp").write_text("mine")
    (root / ".results.parquet.0123456789ab.tmp").write_text("left by a killed writer")
    prepare_out_dir(plan_sweep(SPEC, sweep_dir.parent / "spec.yaml"), root, False)
    assert (root / ".notes.tmp").read_text() == "mine"
    assert not (root / ".results.parquet.0123456789ab.tmp").exists()


# ---------------------------------------------------------------------------------------------
# the Python API names its own argument


def test_api_sweep_names_out(spec_file, tmp_path):
    import sparsesim

    (tmp_path / "afile").write_text("")
    with pytest.raises(sparsesim.InputError, match=r"^out: .*afile/x: .*afile is not a directory$"):
        sparsesim.sweep(spec_file, tmp_path / "afile" / "x")
    with pytest.raises(sparsesim.InputError, match=r"^out: /proc/sparsesim_out/x: cannot create files in /proc"):
        sparsesim.sweep(spec_file, "/proc/sparsesim_out/x")


def test_api_capture_names_out_and_keeps_foreign_files(tmp_path):
    torch = pytest.importorskip("torch")
    import sparsesim

    model, batch = torch.nn.Linear(4, 2), torch.ones(2, 4)
    (tmp_path / "afile").write_text("")
    with pytest.raises(sparsesim.InputError, match=r"^out: .*afile/t: .*afile is not a directory$"):
        sparsesim.capture(model, batch, out=tmp_path / "afile" / "t", progress=False)
    trace = tmp_path / "t"
    assert main(["trace", "synth", "--gemm", "8,8,8", "--out", str(trace)]) == 0
    with pytest.raises(sparsesim.InputError, match=r"pass overwrite=True"):
        sparsesim.capture(model, batch, out=trace, progress=False)
    (trace / "NOTES.txt").write_text("mine")
    with pytest.raises(sparsesim.InputError, match=r"^out: .* holds 'NOTES.txt', which is not part of a trace"):
        sparsesim.capture(model, batch, out=trace, overwrite=True, progress=False)
    assert (trace / "NOTES.txt").read_text() == "mine"
