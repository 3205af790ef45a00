"""The public Python API: same numbers as the CLI, one exception type, a runnable README example."""

from __future__ import annotations

import inspect
import json
import math
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import sparsesim
from sparsesim.cli.main import main
from sparsesim.workload_args import WorkloadSpec

REPO = Path(__file__).resolve().parents[2]


def cli_json(capsys, *argv) -> dict:
    code = main(["run", *argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def api_json(res) -> dict:
    return json.loads(res.to_json())


@pytest.fixture(scope="module")
def small_trace(tmp_path_factory) -> Path:
    """A two-layer synthetic training trace with ReLU-like inputs (real tensors to replay)."""
    out = tmp_path_factory.mktemp("trace") / "t"
    code = main(["trace", "synth", "--gemm", "64,48,32", "--gemm", "40,24,48", "--training", "--input", "uniform:0.5",
                 "--out", str(out)])
    assert code == 0
    return out


CASES = {
    "dense": (["--gemm", "100,200,300", "--gemm", "64,64,64", "--accel", "edge32", "--dataflow", "ws"],
              lambda: dict(workload=WorkloadSpec(kind="gemm", source="gemm", gemms=((100, 200, 300), (64, 64, 64))),
                           accel="edge32", dataflow="ws")),
    "nm": (["--gemm", "256,128,64", "--accel", "edge32", "--dataflow", "ws", "--sparsity", "nm:2:4",
            "--set", "array.rows=16"],
           lambda: dict(workload=sparsesim.gemm(256, 128, 64), accel="edge32", dataflow="ws", sparsity=["nm:2:4"],
                        sets={"array.rows": 16})),
    "zero_skip": (["--gemm", "96,64,80", "--accel", "edge32", "--dataflow", "os", "--training",
                   "--sparsity", "zero_skip:input:skipping"],
                  lambda: dict(workload=sparsesim.gemm(96, 64, 80, training=True), accel="edge32", dataflow="os",
                               sparsity=[{"kind": "zero_skip", "target": "input", "action": "skipping"}])),
    "network": (["--network", "mobilenetv2", "--batch", "2", "--accel", "dc128", "--dataflow", "best",
                 "--set", "array.fold_overlap=false"],
                lambda: dict(workload=sparsesim.network("mobilenetv2", batch=2), accel="dc128", dataflow="best",
                             sets={"array.fold_overlap": False})),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_cli_json_and_api_give_identical_numbers(capsys, case):
    argv, api_args = CASES[case]
    assert api_json(sparsesim.simulate(**api_args())) == cli_json(capsys, *argv)


def test_trace_through_cli_and_api_is_identical(capsys, small_trace):
    cli = cli_json(capsys, "--trace", str(small_trace), "--accel", "sat", "--sparsity", "nm:2:8")
    res = sparsesim.simulate(sparsesim.trace(small_trace), accel="sat", sparsity=["nm:2:8"])
    assert api_json(res) == cli
    # a trace replays every phase it recorded (three here), not only fwd
    assert {(r["name"], r["phase"]) for r in res.rows} == {
        (n, p) for n in ("gemm0", "gemm1") for p in ("fwd", "bwd_data", "bwd_weight")}
    assert res.rows[0]["accel"] == "sat"
    # the same trace opened with load_trace and passed as a built Workload gives the same rows
    built = sparsesim.load_trace(small_trace).workload()
    assert sparsesim.simulate(built, accel="sat", sparsity=["nm:2:8"]).rows == res.rows


def test_dense_gemm_matches_the_scalesim_formula():
    """Independent check: without fold overlap and with ideal DRAM, os is ceil(M/R)ceil(N/C)(K+R+C-2)."""
    M, N, K, R, C = 300, 200, 100, 16, 32
    res = sparsesim.simulate(sparsesim.gemm(M, N, K), accel="edge32", dataflow="os",
                             sets={"array.rows": R, "array.fold_overlap": False, "dram.ideal": True})
    assert res.total["cycles"] == math.ceil(M / R) * math.ceil(N / C) * (K + R + C - 2)
    assert res.total["macs_dense"] == M * N * K
    df = res.to_pandas()
    assert len(df) == 1 and df.loc[0, "cfg.array.rows"] == R and df.loc[0, "cycles"] == res.total["cycles"]


def test_accel_as_file_or_config_object_gives_the_same_numbers(tmp_path):
    from sparsesim.hardware.config import to_dict

    cfg = sparsesim.accel_config("edge32", sets={"array.cols": 8})
    path = tmp_path / "mine.yaml"
    import yaml

    path.write_text(yaml.safe_dump(to_dict(cfg)))
    wl = sparsesim.gemm(70, 50, 90)
    by_name = sparsesim.simulate(wl, accel="edge32", sets={"array.cols": 8}, dataflow="is").total
    by_object = sparsesim.simulate(wl, accel=cfg, dataflow="is").total
    by_file = sparsesim.simulate(wl, accel=path, dataflow="is").total
    assert by_name == by_object == by_file
    assert by_name["cycles"] != sparsesim.simulate(wl, accel="edge32", dataflow="is").total["cycles"]


def test_sets_show_in_the_accel_field(capsys):
    doc = cli_json(capsys, "--gemm", "64,64,64", "--accel", "edge32", "--set", "array.rows=16",
                   "--set", "dram.ideal=true")
    assert doc["layers"][0]["accel"] == "edge32 (array.rows=16, dram.ideal=True)"
    assert cli_json(capsys, "--gemm", "64,64,64", "--accel", "edge32")["layers"][0]["accel"] == "edge32"


@pytest.mark.parametrize("call, cli_argv", [
    (lambda: sparsesim.simulate(sparsesim.gemm(4, 4, 4), accel="edge33"), ["--gemm", "4,4,4", "--accel", "edge33"]),
    (lambda: sparsesim.simulate(sparsesim.gemm(4, 4, 4), accel="edge32", sets={"array.rowz": 4}),
     ["--gemm", "4,4,4", "--accel", "edge32", "--set", "array.rowz=4"]),
    (lambda: sparsesim.simulate(sparsesim.gemm(4, 4, 4), accel="edge32", sparsity=["nm:3:5"]),
     ["--gemm", "4,4,4", "--accel", "edge32", "--sparsity", "nm:3:5"]),
    (lambda: sparsesim.simulate(sparsesim.gemm(4, 4, 4), accel="edge32", sparsity=["bogus:1"]),
     ["--gemm", "4,4,4", "--accel", "edge32", "--sparsity", "bogus:1"]),
    (lambda: sparsesim.simulate(sparsesim.gemm(4, 4, 4), accel="x.json"), ["--gemm", "4,4,4", "--accel", "x.json"]),
    (lambda: sparsesim.simulate(sparsesim.network("resnet19"), accel="edge32"),
     ["--network", "resnet19", "--accel", "edge32"]),
])
def test_errors_are_input_errors_with_the_cli_message(capsys, call, cli_argv):
    with pytest.raises(sparsesim.InputError) as info:
        call()
    assert main(["run", *cli_argv]) == 2
    err = capsys.readouterr().err
    cli_name, cli_rest = err.strip().removeprefix("error: ").split(": ", 1)
    api_name, api_rest = str(info.value).split(": ", 1)
    assert cli_rest == api_rest  # the same reason, word for word
    # a config field is named alike; an argument of the API is named as the command line's flag
    assert cli_name in (api_name, "--" + api_name.rsplit(".", 1)[-1].replace("_", "-"))


def test_api_input_errors_name_the_argument():
    with pytest.raises(sparsesim.InputError, match=r"^gemm\.K: must be a positive integer, got 0$"):
        sparsesim.gemm(4, 4, 0)
    with pytest.raises(sparsesim.InputError, match=r"^network\.batch:"):
        sparsesim.network("resnet18", batch=0)
    with pytest.raises(sparsesim.InputError, match=r"^trace: .*no manifest\.json"):
        sparsesim.trace("/nonexistent/trace")
    with pytest.raises(sparsesim.InputError, match=r"^gemm\.phases: unknown phase 'bwd'"):
        sparsesim.gemm(4, 4, 4, phases=["bwd"])
    assert issubclass(sparsesim.InputError, ValueError)


def test_import_is_cheap_and_never_imports_torch():
    code = ("import sys, sparsesim; sparsesim.gemm(4, 4, 4); "
            "print(sorted(m for m in ('torch', 'pandas', 'matplotlib', 'distributed') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_sparsesim_simulate_is_the_function_even_after_submodule_imports():
    import sparsesim.simulation.run  # noqa: F401
    import sparsesim.sweeps  # noqa: F401

    assert callable(sparsesim.simulate) and callable(sparsesim.sweep)
    assert inspect.signature(sparsesim.simulate).parameters["accel"].kind is inspect.Parameter.KEYWORD_ONLY


# ---------------------------------------------------------------------------------------------
# the README's Python example


def readme_python_blocks() -> list[str]:
    text = (REPO / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_python_example_runs(tmp_path, monkeypatch):
    blocks = readme_python_blocks()
    assert blocks, "README has no ```python block"
    assert any("sparsesim.simulate(" in b for b in blocks)
    monkeypatch.chdir(tmp_path)
    ran = 0
    for block in blocks:
        namespace: dict = {"__name__": "readme"}
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - our own README
        ran += 1
        res = namespace.get("res")
        if res is not None:
            assert res.total["cycles"] > 0 and len(res.to_pandas()) == len(res.rows)
    assert ran == len(blocks)


def test_capture_wrapper_calls_the_capture_package(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    path = sparsesim.capture(model, torch.randn(8, 32), out=tmp_path / "mine", mode="train")
    res = sparsesim.simulate(sparsesim.trace(path), accel="edge32", dataflow="os")
    names = {r["name"] for r in res.rows}
    assert len(names) == 2 and {r["phase"] for r in res.rows} == {"fwd", "bwd_data", "bwd_weight"}
    assert {(r["M"], r["N"], r["K"]) for r in res.rows if r["phase"] == "fwd"} == {(8, 16, 32), (8, 4, 16)}


# ---------------------------------------------------------------------------------------------
# files follow the umask


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_outputs_follow_the_umask(tmp_path, umask, mode):
    """Result tables, traces and reports get ``0666 & ~umask`` (directories ``0777 & ~umask``)."""
    code = (
        "import os, sys; os.umask(int(sys.argv[1], 8)); from sparsesim.cli.main import main; "
        "d = sys.argv[2]; "
        "assert main(['run', '--gemm', '16,16,16', '--accel', 'edge32', '--out', d + '/r.parquet']) == 0; "
        "assert main(['run', '--gemm', '16,16,16', '--accel', 'edge32', '--out', d + '/r.csv']) == 0; "
        "assert main(['trace', 'synth', '--gemm', '8,8,8', '--out', d + '/trace']) == 0")
    subprocess.run([sys.executable, "-c", code, f"{umask:o}", str(tmp_path)], check=True, capture_output=True)
    for name in ("r.parquet", "r.csv", "trace/manifest.json"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == mode, name
    assert stat.S_IMODE(os.stat(tmp_path / "trace").st_mode) == 0o777 & ~umask
    shards = list((tmp_path / "trace").glob("*.safetensors"))
    assert shards and all(stat.S_IMODE(p.stat().st_mode) == mode for p in shards)
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_atomic_helpers_follow_the_umask(tmp_path):
    from sparsesim.core.atomic import atomic_write_text, replace_dir, temp_dir

    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        d = temp_dir(tmp_path / "rep")
        (d / "f").write_text("y")
        replace_dir(d, tmp_path / "rep")
        d2 = temp_dir(tmp_path / "rep")
        (d2 / "g").write_text("z")
        replace_dir(d2, tmp_path / "rep")  # replaces the existing directory whole
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "rep").stat().st_mode) == 0o750
    assert sorted(p.name for p in (tmp_path / "rep").iterdir()) == ["g"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "rep"]


def test_capture_forwards_to_the_capture_package(monkeypatch, tmp_path):
    """The wrapper itself (without torch): arguments reach capture_model unchanged, its path comes back."""
    from sparsesim.workloads import capture as capture_package

    calls = []

    def fake(model, inputs, *, out, mode="train", **options):
        calls.append((model, inputs, out, mode, options))
        return Path(out)

    monkeypatch.setattr(capture_package, "capture_model", fake)
    assert sparsesim.capture("m", ["batch"], out=tmp_path / "t", mode="infer", steps=2) == tmp_path / "t"
    assert calls == [("m", ["batch"], tmp_path / "t", "infer", {"steps": 2})]


def test_llm_network_settings_of_the_wrong_type_are_input_errors():
    with pytest.raises(sparsesim.InputError, match=r"^act_sparsity: "):
        sparsesim.simulate(sparsesim.network("llama_tiny", act_sparsity="0.5"), accel="edge32")
