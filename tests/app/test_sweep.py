"""Sweeps: spec validation, the Dask runner, resume, failures, kills and external clusters."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sparsesim.sweeps import SweepDir, connect, load_spec, plan_sweep, run_sweep
from sparsesim.core.errors import InputError

REPO = Path(__file__).resolve().parents[2]
SWEEPS = REPO / "configs" / "sweeps"
BIN = Path(sys.executable).parent

TINY = {
    "name": "tiny",
    "base": {"accel": "edge32", "set": {"array.fold_overlap": False}},
    "axes": {"array.rows": [8, 16], "array.cols": [8, 16]},
    "workloads": [{"gemm": [[64, 48, 32], [33, 17, 100]], "phases": "training"}],
    "dataflows": ["os", "ws"],
}  # 2 x 2 configs x 2 dataflows = 8 points of 6 rows each


def write_spec(tmp_path: Path, data: dict, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_cli(argv: list[str]) -> int:
    """``sparsesim ...`` through the real CLI when it has the sweep commands, else through a
    parser built the same way (same InputError -> exit 2 contract)."""
    from sparsesim.cli import main as cli
    from sparsesim.cli.sweep import add_sweep_commands

    parser = cli.build_parser()
    choices = next(a for a in parser._actions if a.dest == "command").choices
    if "sweep" in choices:
        return cli.main(argv)
    parser = cli._Parser(prog="sparsesim")
    add_sweep_commands(parser.add_subparsers(dest="command", required=True, parser_class=cli._Parser))
    try:
        args = parser.parse_args(argv)
        return args.func(args)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def rows_of(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "results.parquet")


def assert_complete(out: Path, plan) -> None:
    df = rows_of(out)
    assert set(df["point_id"]) == {p.point_id for p in plan.points}
    assert not df.duplicated(["point_id", "name", "phase"]).any()
    files = sorted(p.stem for p in SweepDir(out).points.glob("*.parquet"))
    assert files == sorted(p.point_id for p in plan.points)


# ------------------------------------------------------------------------------------------
# plan and validation (no cluster)


def test_plan_expands_grid_zip_random_and_ids_are_stable(tmp_path):
    spec = {**TINY, "axes": [
        {"kind": "zip", "values": {"array.rows": [8, 16, 32], "array.cols": [8, 16, 32]}},
        {"kind": "grid", "values": {"buffers.a.size_bytes": [65536, 131072]}},
        {"kind": "random", "samples": 3, "values": {"dram.bandwidth_bytes_per_cycle": {"min": 4, "max": 64.0,
                                                                                        "log": True}}}]}
    plan = plan_sweep(spec, tmp_path / "s.yaml")
    assert len(plan.points) == plan.count == 3 * 2 * 3 * 2
    assert len({p.point_id for p in plan.points}) == len(plan.points)
    again = plan_sweep(spec, tmp_path / "s.yaml")
    assert [p.point_id for p in again.points] == [p.point_id for p in plan.points]
    assert again.spec_hash == plan.spec_hash
    # random samples depend on the seed only
    other = plan_sweep({**spec, "seed": 1}, tmp_path / "s.yaml")
    assert other.spec_hash != plan.spec_hash
    bws = {p.config["dram"]["bandwidth_bytes_per_cycle"] for p in plan.points}
    assert len(bws) == 3 and all(4 <= b <= 64 for b in bws)
    # the id hashes the resolved config: the same point spelled another way has the same id
    a = plan_sweep({**TINY, "axes": {"array.rows": [8]}}, tmp_path / "s.yaml").points[0]
    b = plan_sweep({**TINY, "base": {"accel": "edge32", "set": {"array.fold_overlap": False, "array.rows": 8}},
                    "axes": {}}, tmp_path / "s.yaml").points[0]
    assert a.point_id == b.point_id


def test_sparsity_list_becomes_the_config_key(tmp_path):
    spec = {**TINY, "axes": {}, "dataflows": ["os"],
            "sparsity": ["dense", [{"kind": "nm", "target": "weight", "n": 2, "m": 4}]]}
    plan = plan_sweep(spec, tmp_path / "s.yaml")
    assert [p.config["sparsity"] for p in plan.points] == [[], [{"kind": "nm", "target": "weight", "n": 2, "m": 4}]]
    assert plan.points[0].sparsity == "dense" and plan.points[1].sparsity != "dense"


@pytest.mark.parametrize("change, message", [
    ({"axes": {"array.row": [8]}}, "did you mean 'array.rows'"),
    ({"axes": {"array.rows": ["big"]}}, "array.rows: expected an integer"),
    ({"axes": {"array.rows": 8}}, "expected a list of values"),
    ({"axes": [{"kind": "zip", "values": {"array.rows": [8, 16], "array.cols": [8]}}]}, "one length"),
    ({"axes": [{"kind": "grdi", "values": {"array.rows": [8]}}]}, "did you mean 'grid'"),
    ({"axes": [{"kind": "random", "samples": 0, "values": {"array.rows": [8]}}]}, "no points"),
    ({"workloads": []}, "no points"),
    ({"dataflows": []}, "no points"),
    ({"dataflows": ["ow"]}, "unknown dataflow"),
    ({"workloads": [{"network": "resnet81"}]}, "did you mean 'resnet18'"),
    ({"workloads": [{"topology": "missing.csv"}]}, "no such file"),
    ({"workloads": [{"trace": "nowhere"}]}, "not a trace directory"),
    ({"base": "edge23"}, "did you mean 'edge32'"),
    ({"axess": {}}, "did you mean 'axes'"),
])
def test_bad_specs_exit_2_with_one_line(tmp_path, capsys, change, message):
    spec = write_spec(tmp_path, {**TINY, **change})
    assert run_cli(["sweep", str(spec), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and message in err, err
    assert not (tmp_path / "out").exists()  # nothing ran, nothing written


def test_every_example_spec_validates():
    specs = sorted(SWEEPS.glob("*.yaml"))
    assert len(specs) >= 3
    for spec in specs:
        plan = load_spec(spec)
        assert 0 < len(plan.points) <= 200, spec


def test_no_example_spec_claims_a_running_time():
    # the claims were measured nowhere (bandwidth.yaml said 20 s and took 83 s on an idle
    # machine, issue 16); a sweep's time depends on the machine, and the runner prints an ETA
    import re

    claim = re.compile(r"\b\d+(\.\d+)?\s*(s|sec|seconds?|min|minutes?|h|hours?)\b")
    for spec in sorted(SWEEPS.glob("*.yaml")):
        comments = [line for line in spec.read_text().splitlines() if line.lstrip().startswith("#")]
        assert not [c for c in comments if claim.search(c)], spec


HUGE_RANDOM = {**TINY, "axes": [{"kind": "random", "samples": 1_000_000_000,
                                  "values": {"dram.bandwidth_bytes_per_cycle": {"min": 4, "max": 64}}}],
               "workloads": [{"gemm": [8, 8, 8]}], "dataflows": ["os"]}
BUFFER_SIZES = [65536 + 1024 * i for i in range(63)]
HUGE_GRID = {**TINY, "axes": {"dram.bandwidth_bytes_per_cycle": list(range(1, 64)),
                              "dram.latency_cycles": list(range(1, 64)), "buffers.a.size_bytes": BUFFER_SIZES,
                              "buffers.b.size_bytes": BUFFER_SIZES},
             "workloads": [{"gemm": [8, 8, 8]}], "dataflows": ["os"]}  # 63**4 = 15,752,961 points


def in_capped_process(code: str, spec: dict, tmp_path: Path) -> dict:
    """Run ``code`` in a fresh interpreter whose address space is capped at 1 GiB above what the
    imports took (a regression then fails with MemoryError instead of eating the machine);
    ``code`` sees ``spec`` and ``path`` and leaves its findings in the dict ``found``."""
    spec_file = write_spec(tmp_path, spec, "capped.yaml")
    script = (
        "import json, resource, sys, time, tracemalloc\n"
        "import itertools\n"
        "from sparsesim.sweeps import load_spec, plan_sweep\n"
        "from sparsesim.core.errors import InputError\n"
        "from sparsesim.hardware.config import read_mapping\n"
        "vm = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmSize')) * 1024\n"
        "resource.setrlimit(resource.RLIMIT_AS, (vm + 2**30, vm + 2**30))\n"
        "from pathlib import Path\n"
        "path = Path(sys.argv[1]); spec = read_mapping(path); found = {}\n"
        + code + "\nprint(json.dumps(found))\n")
    proc = subprocess.run([sys.executable, "-c", script, str(spec_file)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


REFUSE = """
try:  # warm: the imports a first parse does
    plan_sweep({**spec, "max_points": 1}, path)
except InputError:
    pass
tracemalloc.start()
t0 = time.perf_counter()
try:
    plan_sweep(spec, path)
except InputError as exc:
    found["message"] = str(exc)
found["seconds"] = time.perf_counter() - t0
found["peak"] = tracemalloc.get_traced_memory()[1]
"""


@pytest.mark.parametrize("spec, count, shown", [
    (HUGE_RANDOM, "1,000,000,000 points", "axes[0] random 1,000,000,000 x workloads 1 x dataflows 1"),
    (HUGE_GRID, "15,752,961 points", "axes[0] grid 15,752,961 x workloads 1"),
], ids=["random-1e9", "grid-15.7M"])
def test_a_huge_spec_is_refused_at_once_with_its_count(tmp_path, capsys, spec, count, shown):
    found = in_capped_process(REFUSE, spec, tmp_path)
    message = found.get("message", "")
    assert count in message and shown in message and "above max_points 100,000" in message, found
    assert "set max_points: " in message
    # nothing was expanded: the memory says so; the time only guards against minutes of work
    # (a loaded 2-core machine can take a second or two for what takes 0.1 s idle)
    assert found["seconds"] < 10 and found["peak"] < 2 * 2**20, found
    # the command and the API refuse it with the same line, before anything is written
    spec_file = write_spec(tmp_path, spec)
    capsys.readouterr()
    assert run_cli(["sweep", str(spec_file), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and count in err, err
    import sparsesim

    with pytest.raises(InputError) as api:
        sparsesim.sweep(spec_file, tmp_path / "out")
    assert f"error: {api.value}\n" == err
    assert not (tmp_path / "out").exists()


LAZY = """
next(plan_sweep(spec, path).iter_points())  # warm: the imports a first point does
tracemalloc.start()
t0 = time.perf_counter()
plan = plan_sweep(spec, path)
first = [p.describe() for p in itertools.islice(plan.iter_points(), 10)]
found["seconds"] = time.perf_counter() - t0
found["peak"] = tracemalloc.get_traced_memory()[1]
found["count"] = plan.count
found["first"] = first
"""


def test_a_large_plan_builds_its_points_lazily_and_samples_do_not_depend_on_how_many(tmp_path):
    spec = {**HUGE_RANDOM, "max_points": 10_000_000,
            "axes": [{"kind": "random", "samples": 10_000_000, "values": {
                "dram.bandwidth_bytes_per_cycle": {"min": 4, "max": 64}, "array.rows": {"choices": [8, 16, 32]}}}]}
    found = in_capped_process(LAZY, spec, tmp_path)
    assert found["count"] == 10_000_000 and len(found["first"]) == 10
    assert found["peak"] < 4 * 2**20, found  # a few points, not ten million
    # the first ten of ten million samples are the ten samples of the same spec asking for ten
    small = plan_sweep({**spec, "axes": [{**spec["axes"][0], "samples": 10}]}, tmp_path / "s.yaml")
    assert [p.describe() for p in small.iter_points()] == found["first"]
    # the same spec and seed give the same points in the same order; another seed others
    again = plan_sweep({**spec, "axes": [{**spec["axes"][0], "samples": 10}]}, tmp_path / "s.yaml")
    assert [p.point_id for p in again.points] == [p.point_id for p in small.points]
    other = plan_sweep({**spec, "seed": 3, "axes": [{**spec["axes"][0], "samples": 10}]}, tmp_path / "s.yaml")
    assert [p.point_id for p in other.points] != [p.point_id for p in small.points]
    # a grid of 10 million points is lazy too
    grid = {**HUGE_GRID, "max_points": 16_000_000}
    found = in_capped_process(LAZY, grid, tmp_path)
    assert found["count"] == 63 ** 4 and found["peak"] < 4 * 2**20, found
    assert [p["axes"]["buffers.b.size_bytes"] for p in found["first"]] == BUFFER_SIZES[:10]  # last path fastest


def test_max_points_is_checked_and_raising_it_keeps_the_spec(tmp_path):
    spec = {**TINY, "max_points": 7}  # TINY has 8 points
    with pytest.raises(InputError, match=r"expands to 8 points \(axes\[0\] grid 4 x workloads 1 x dataflows 2\)"):
        plan_sweep(spec, tmp_path / "s.yaml")
    assert plan_sweep({**TINY, "max_points": 8}, tmp_path / "s.yaml").spec_hash == plan_sweep(
        TINY, tmp_path / "s.yaml").spec_hash  # raising the limit resumes the same sweep directory
    for bad in (0, -1, True, 2.5, "many"):
        with pytest.raises(InputError, match="max_points: expected a positive integer"):
            plan_sweep({**TINY, "max_points": bad}, tmp_path / "s.yaml")


def test_unreachable_scheduler_is_bad_input_and_quick(tmp_path, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    spec = write_spec(tmp_path, TINY)
    t0 = time.monotonic()
    code = run_cli(["sweep", str(spec), "--out", str(tmp_path / "out"), "--scheduler", f"tcp://127.0.0.1:{port}"])
    assert code == 2 and time.monotonic() - t0 < 20
    assert "--scheduler: cannot reach" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------
# running on the embedded cluster


def test_example_spec_end_to_end_and_rerun_computes_nothing(tmp_path, capsys):
    spec = SWEEPS / "array_buffer_resnet18.yaml"
    out = tmp_path / "sweep"
    capsys.readouterr()
    assert run_cli(["sweep", str(spec), "--out", str(out), "--workers", "2"]) == 0
    plan = load_spec(spec)
    assert_complete(out, plan)
    df = rows_of(out)
    assert len(df) == len(plan.points) * 21  # ResNet-18: 20 convs and fc, forward only
    # not a terminal: progress is a few whole lines (one per tenth of the points), no \r bar updates
    err = capsys.readouterr().err
    assert "\r" not in err
    progress = [line for line in err.splitlines() if "] sweep: " in line]
    assert progress[-1].endswith(f"sweep: {len(plan.points)}/{len(plan.points)} points")
    assert 5 <= len(progress) <= 11

    # the Python API resumes the same directory (nothing left to compute) and returns the table
    import sparsesim

    table = sparsesim.sweep(spec, out)
    pd.testing.assert_frame_equal(table.reset_index(drop=True), df.reset_index(drop=True))
    for col in ("point_id", "run_id", "cfg.array.rows", "cfg.buffers.a.size_bytes", "energy_pj.dram", "area_um2",
                "sweep_dataflow", "energy_table"):
        assert col in df.columns
    meta = json.loads((out / "sweep.json").read_text())
    assert meta["spec_hash"] == plan.spec_hash and meta["status"]["state"] == "complete"
    capsys.readouterr()
    assert run_cli(["sweep", str(spec), "--out", str(out), "--quiet"]) == 0
    assert "(0 computed now, 27 reused)" in capsys.readouterr().out
    assert len(rows_of(out)) == len(df)

    # report on the same directory (figures are looked at in test_report.py)
    rep = tmp_path / "report"
    assert run_cli(["report", str(out), "--out", str(rep)]) == 0
    assert (rep / "report.md").exists() and (rep / "index.html").exists()
    assert run_cli(["report", str(out), "--out", str(rep)]) == 2  # never silently overwritten
    assert run_cli(["report", str(out), "--out", str(rep), "--overwrite"]) == 0

    # every output follows the umask (atomic writes used to leave them 0600 / 0700)
    umask = os.umask(0)
    os.umask(umask)
    for path in (out / "sweep.json", out / "results.parquet", next((out / "points").iterdir()), rep / "report.md",
                 rep / "summary.csv"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path
    assert stat.S_IMODE(rep.stat().st_mode) == 0o777 & ~umask


def test_resume_computes_only_missing_points(tmp_path):
    plan = plan_sweep(TINY, write_spec(tmp_path, TINY))
    out = tmp_path / "out"
    first = run_sweep(plan, out, workers=2, progress=False)
    assert first.computed == len(plan.points) == 8
    before = rows_of(out)
    lost = [p.point_id for p in plan.points[2:5]]
    for pid in lost:
        SweepDir(out).point(pid).unlink()
    (out / "results.parquet").unlink()
    second = run_sweep(plan, out, workers=2, progress=False)
    assert (second.already_done, second.computed, second.failed) == (5, 3, ())
    after = rows_of(out)
    assert_complete(out, plan)
    assert len(after) == len(before) == 8 * 6
    key = ["point_id", "name", "phase"]
    pd.testing.assert_frame_equal(after.sort_values(key).reset_index(drop=True),
                                  before.sort_values(key).reset_index(drop=True))  # deterministic


def test_failing_point_is_recorded_and_the_rest_finish(tmp_path, capsys):
    broken = tmp_path / "broken_trace"
    broken.mkdir()
    (broken / "manifest.json").write_text("{ this is not a manifest")
    spec = write_spec(tmp_path, {**TINY, "axes": {"array.rows": [8, 16]},
                                 "workloads": [{"gemm": [64, 64, 64]}, {"trace": "broken_trace"}],
                                 "dataflows": ["os"]})
    out = tmp_path / "out"
    assert run_cli(["sweep", str(spec), "--out", str(out), "--workers", "2", "--quiet"]) == 1
    assert "2 points failed" in capsys.readouterr().err
    plan = load_spec(spec)
    good = [p.point_id for p in plan.points if p.workload.kind == "gemm"]
    bad = [p.point_id for p in plan.points if p.workload.kind == "trace"]
    assert set(rows_of(out)["point_id"]) == set(good)
    records = {pid: json.loads(SweepDir(out).failure(pid).read_text()) for pid in bad}
    assert all(r["attempts"] == 1 and r["error"] and r["traceback"] for r in records.values())
    # the next run retries only the failed points
    assert run_cli(["sweep", str(spec), "--out", str(out), "--quiet"]) == 1
    assert "(0 computed now, 2 reused), 2 failed" in capsys.readouterr().out
    assert all(json.loads(SweepDir(out).failure(pid).read_text())["attempts"] == 2 for pid in bad)


@pytest.mark.parametrize("quiet", [True, False], ids=["quiet", "progress"])
def test_a_failing_point_is_one_line_on_the_terminal_and_its_record_keeps_the_rest(tmp_path, quiet):
    broken = tmp_path / "broken_trace"
    broken.mkdir()
    (broken / "manifest.json").write_text("{ this is not a manifest")  # found only when a worker reads it
    spec = write_spec(tmp_path, {"name": "one-fails", "base": "edge32", "dataflows": ["os"],
                                 "workloads": [{"gemm": [16, 16, 16]}, {"trace": "broken_trace"}]})
    out = tmp_path / "out"
    proc = subprocess.run([str(BIN / "sparsesim"), "sweep", str(spec), "--out", str(out), "--workers", "1"]
                          + (["--quiet"] if quiet else []), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    (bad,) = [p.point_id for p in load_spec(spec).points if p.workload.kind == "trace"]
    # nothing from Dask's loggers, no traceback: one line for the point, one for the command
    assert "Traceback" not in proc.stderr and "distributed" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("# [")]  # progress lines
    assert len(lines) == 2, proc.stderr
    assert lines[0].startswith(f"warning: point {bad} (broken_trace fwd, os) failed: InputError: ")
    assert "not valid JSON" in lines[0]
    assert lines[1].startswith("error: 1 points failed")
    record = json.loads(SweepDir(out).failure(bad).read_text())
    assert record["error_type"] == "InputError" and "not valid JSON" in record["error"]
    assert "load_trace" in record["traceback"] and record["attempts"] == 1
    assert len(rows_of(out)) == 1  # the GEMM point finished


def test_different_spec_is_refused_unless_forced(tmp_path, capsys):
    out = tmp_path / "out"
    spec_a = write_spec(tmp_path, {**TINY, "dataflows": ["os"]}, "a.yaml")
    assert run_cli(["sweep", str(spec_a), "--out", str(out), "--workers", "2", "--quiet"]) == 0
    spec_b = write_spec(tmp_path, TINY, "b.yaml")
    capsys.readouterr()
    assert run_cli(["sweep", str(spec_b), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "different sweep spec" in err and "--force-new-spec" in err
    assert run_cli(["sweep", str(spec_b), "--out", str(out), "--workers", "2", "--quiet", "--force-new-spec"]) == 0
    assert "(4 computed now, 4 reused)" in capsys.readouterr().out  # the os points are reused
    assert_complete(out, load_spec(spec_b))
    # a directory that is not a sweep is never taken over
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    assert run_cli(["sweep", str(spec_b), "--out", str(stranger), "--quiet"]) == 2


def test_trace_workloads_are_read_by_the_workers(tmp_path):
    synthetic = pytest.importorskip("sparsesim.workloads.trace.synthetic")
    from sparsesim.workloads.gemm import Phase
    from sparsesim.workloads.ops import gemm_op

    sparse_input = synthetic.OperandSparsity(pattern="uniform", density=0.4)
    synthetic.synthesize([gemm_op("g0", 64, 48, 96), gemm_op("g1", 32, 64, 64)],
                         synthetic.SparsitySpec(input=sparse_input, phases=(Phase.FWD,)), tmp_path / "trace", seed=1)
    spec = write_spec(tmp_path, {"base": "edge32", "axes": {"array.rows": [8, 16]}, "dataflows": ["os"],
                                 "sparsity": ["dense", [{"kind": "zero_skip", "target": "input", "action": "skipping"}]],
                                 "workloads": [{"trace": "trace"}]})  # relative to the spec file
    plan = load_spec(spec)
    assert all(Path(p.workload.source).is_absolute() for p in plan.points)
    summary = run_sweep(plan, tmp_path / "out", workers=2, progress=False)
    assert summary.computed == 4 and not summary.failed
    df = rows_of(tmp_path / "out")
    assert set(df["sweep_sparsity"]) == {"dense", plan.points[-1].sparsity}


def test_workers_get_the_shared_numba_cache(tmp_path, monkeypatch):
    cache = tmp_path / "numba-cache"
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(cache))
    with connect(None, 1) as client:
        seen = client.run(lambda: os.environ.get("NUMBA_CACHE_DIR"))
    assert list(seen.values()) == [str(cache)] and cache.is_dir()


# ------------------------------------------------------------------------------------------
# kills and an external cluster


def test_sigkill_of_the_client_loses_only_in_flight_points(tmp_path):
    spec_data = {**TINY, "axes": {"array.rows": [8, 12, 16, 24, 32, 48], "array.cols": [8, 16, 32, 64]},
                 "workloads": [{"network": "resnet18", "phases": "training"}], "dataflows": ["os", "ws"]}
    spec = write_spec(tmp_path, spec_data)
    plan = load_spec(spec)
    out = tmp_path / "out"
    code = ("import sys; from sparsesim.sweeps import load_spec, run_sweep; "
            "run_sweep(load_spec(sys.argv[1]), sys.argv[2], workers=2, progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(spec), str(out)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = list((out / "points").glob("*.parquet")) if (out / "points").exists() else []
            if len(done) >= 5 or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the sweep finished before it could be killed; make it bigger"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        time.sleep(0.5)
        try:  # the cluster's worker processes live in the session we created for the client
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    written = len(list((out / "points").glob("*.parquet")))
    assert 5 <= written < len(plan.points)
    summary = run_sweep(plan, out, workers=2, progress=False)
    assert summary.already_done == written and summary.computed == len(plan.points) - written
    assert_complete(out, plan)
    assert not list(out.rglob(".*.tmp"))


def test_existing_scheduler_and_worker_from_the_dask_cli(tmp_path):
    sched_file = tmp_path / "scheduler.json"
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    procs = []
    try:
        procs.append(subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
                                       "--no-dashboard", "--scheduler-file", str(sched_file)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env))
        deadline = time.monotonic() + 30
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(sched_file.read_text())["address"]
        procs.append(subprocess.Popen([str(BIN / "dask"), "worker", address, "--nthreads", "1", "--nworkers", "1",
                                       "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      env=env, cwd=tmp_path))
        spec = write_spec(tmp_path, {**TINY, "axes": {"array.rows": [8, 16]}})
        out = tmp_path / "out"
        assert run_cli(["sweep", str(spec), "--out", str(out), "--scheduler", address, "--quiet"]) == 0
        assert_complete(out, load_spec(spec))
        assert run_cli(["sweep", str(spec), "--out", str(out), "--scheduler", address, "--workers", "2"]) == 2
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in reversed(procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_a_sweep_takes_the_llm_networks_and_their_settings(tmp_path):
    # the same WorkloadSpec as `run --network llama_tiny --prompt-len 8 --gen-len 2` and the API
    import sparsesim
    from sparsesim.sweeps.spec import _parse_workloads

    (spec,) = _parse_workloads([{"network": "llama_tiny", "prompt_len": 8, "gen_len": 2}], tmp_path, "s")
    assert spec == sparsesim.network("llama_tiny", prompt_len=8, gen_len=2)
    assert spec.label == "llama_tiny b1 p8 g2 prefill+decode"
    for bad, field in (({"network": "resnet18", "gen_len": 2}, "gen_len"), ({"gemm": [8, 8, 8], "prompt_len": 4}, "prompt_len"),
                       ({"network": "llama_tiny", "act_sparsity": 1.5}, "act_sparsity")):
        with pytest.raises(InputError, match=field):
            _parse_workloads([bad], tmp_path, "s")


def test_an_unverified_trace_workload_has_points_of_its_own(tmp_path):
    # sweep points are reused by id: a point replayed with `verify: false` (tampered bytes
    # trusted) must never stand in for a verified one, and verified ids stay what they were
    from sparsesim.cli.main import main

    assert main(["trace", "synth", "--gemm", "16,16,16", "--out", str(tmp_path / "t")]) == 0
    spec = {**TINY, "axes": {}, "dataflows": ["os"], "workloads": [{"trace": "t"}]}
    verified = plan_sweep(spec, tmp_path / "s.yaml").points
    explicit = plan_sweep({**spec, "workloads": [{"trace": "t", "verify": True}]}, tmp_path / "s.yaml").points
    trusted = plan_sweep({**spec, "workloads": [{"trace": "t", "verify": False}]}, tmp_path / "s.yaml").points
    assert verified[0].point_id == explicit[0].point_id != trusted[0].point_id
    assert verified[0].workload.verify and not trusted[0].workload.verify
    assert "verify" not in verified[0].workload.identity()
    for workload, message in (({"trace": "t", "verify": "no"}, r"workloads\[0\]\.verify: expected true or false"),
                              ({"gemm": [8, 8, 8], "verify": False}, r"workloads\[0\]\.verify: only trace workloads")):
        with pytest.raises(InputError, match=message):
            plan_sweep({**spec, "workloads": [workload]}, tmp_path / "s.yaml")
