"""Bad input across every area a user touches: each case is one clean ``error:`` line.

Every case below is an input a new user can give (a flag, a config file, a ``--set``, a
sparsity string, a topology, a trace, an import or synth file, a capture, a sweep or report
spec, an output path, an API call). Each runs in its own empty directory, in process, and is
sorted into one class:

* ``clean``: exit code 2 and exactly one ``error:`` line on stderr that names what was wrong
  (the case's ``names``), no traceback; for the API, an ``InputError`` naming it;
* ``traceback``: exit code 1, a traceback, or an exception other than ``InputError``;
* ``silent``: accepted (exit code 0) although the input is wrong;
* ``hang``: still running after ``TIMEOUT_S`` seconds;
* ``data loss``: a file that was there before the command is gone or changed.

The test asserts that every case is clean. ``python tests/test_bad_inputs.py`` prints the
count of each class (for a closing note, or to measure another checkout's behaviour: run it
with that checkout's environment).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import signal
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

if __name__ == "__main__":  # run as a script: tests/app/ must not shadow the package
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

TIMEOUT_S = 60
"""A case still running after this long is a hang."""


class _Hang(BaseException):
    """Raised by the alarm; a BaseException so that no ``except Exception`` swallows it."""


@dataclasses.dataclass(frozen=True)
class Case:
    """One bad input: ``argv`` for the CLI, or ``api`` (a callable of the case directory)."""

    area: str
    what: str
    names: str  # a substring the error must contain: the field, flag or path at fault
    argv: tuple[str, ...] = ()
    api: Callable[[Path], object] | None = None
    files: dict[str, str | bytes] = dataclasses.field(default_factory=dict)  # written before the case
    setup: Callable[[Path], None] | None = None  # more preparation (a trace, a read-only file, ...)


# ---------------------------------------------------------------- fixtures the cases use
GOOD_YAML = "name: mine\narray: {rows: 8, cols: 8}\n"
FULL_YAML = (Path(__file__).resolve().parents[1] / "src" / "sparsesim" / "hardware" / "presets" / "edge32.yaml").read_text()
"""A complete config (edge32's), for cases whose fault is in one key of an otherwise valid file."""
TOPOLOGY_HEAD = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"
GOOD_TOPOLOGY = TOPOLOGY_HEAD + "conv1, 8, 8, 3, 3, 3, 8, 1,\n"
GOOD_SPEC = "name: s\nbase: edge32\naxes: {array.rows: [16, 32]}\nworkloads:\n  - {gemm: [[16, 16, 16]]}\ndataflows: [os]\n"


def _trace(d: Path, name: str = "t") -> Path:
    """A small valid trace (one 8x8x8 GEMM) written with the project's own synth command."""
    from sparsesim.cli.main import main

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["trace", "synth", "--gemm", "8,8,8", "--out", str(d / name)]) == 0
    return d / name


def _trace_with(edit: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        edit(_trace(d))
    return setup


def _manifest_edit(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(t: Path) -> None:
        m = json.loads((t / "manifest.json").read_text())
        change(m)
        (t / "manifest.json").write_text(json.dumps(m))
    return edit


def _tensor_files(t: Path) -> list[Path]:
    return sorted(p for p in t.iterdir() if p.suffix == ".safetensors")


def _truncate(t: Path) -> None:
    f = _tensor_files(t)[0]
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def _overwrite_bytes(t: Path) -> None:
    """Flip the last bytes of a tensor file, size unchanged (the payload, not the header)."""
    f = _tensor_files(t)[0]
    data = bytearray(f.read_bytes())
    data[-8:] = bytes(b ^ 0x5A for b in data[-8:])
    f.write_bytes(bytes(data))


def _nan_npz(d: Path) -> None:
    x = np.ones((4, 8), np.float32)
    x[0, 0] = np.nan
    np.savez(d / "nan.npz", **{"fc.input": x, "fc.weight": np.ones((8, 8), np.float32)})


def _file_as_parent(d: Path) -> None:
    (d / "afile").write_text("mine\n")


def _dir_as_file(d: Path) -> None:
    (d / "d.parquet").mkdir()
    (d / "d.csv").mkdir()


def _capture_dir_with_notes(d: Path) -> None:
    _trace(d, "cap")
    (d / "cap" / "NOTES.txt").write_text("my notes\n")


def _sim(**kw):
    import sparsesim

    wl = kw.pop("workload", None)
    return lambda d: sparsesim.simulate(wl(d) if wl else sparsesim.gemm(8, 8, 8), **{"accel": "edge32", **kw})


def _cases() -> list[Case]:
    import sparsesim

    R = ("run", "--accel", "edge32", "--dataflow", "os")
    G = R + ("--gemm", "8,8,8")
    T = ("trace", "synth", "--out", "syn")
    cases: list[Case] = []

    def add(area, what, names, *argv, **kw):
        cases.append(Case(area, what, names, tuple(argv), **kw))

    # --- run flags
    add("run flags", "negative M", "M", *R, "--gemm", "-8,8,8")
    add("run flags", "zero N", "N", *R, "--gemm", "8,0,8")
    add("run flags", "two dimensions", "--gemm", *R, "--gemm", "8,8")
    add("run flags", "four dimensions", "--gemm", *R, "--gemm", "8,8,8,8")
    add("run flags", "letters", "--gemm", *R, "--gemm", "a,b,c")
    add("run flags", "absurd size", "M", *R, "--gemm", "99999999999999,8,8")
    add("run flags", "unknown preset", "nosuch", "run", "--accel", "nosuch", "--gemm", "8,8,8")
    add("run flags", "missing config file", "missing.yaml", "run", "--accel", "missing.yaml", "--gemm", "8,8,8")
    add("run flags", "config of another type", "cfg.txt", "run", "--accel", "cfg.txt", "--gemm", "8,8,8",
        files={"cfg.txt": GOOD_YAML})
    add("run flags", "unknown dataflow", "--dataflow", "run", "--accel", "edge32", "--dataflow", "xs", "--gemm", "8,8,8")
    add("run flags", "no workload", "--trace", "run", "--accel", "edge32")
    add("run flags", "two workloads", "--network", *G, "--network", "resnet18")
    add("run flags", "unknown network", "nosuch", *R, "--network", "nosuch")
    add("run flags", "batch zero", "batch", *R, "--network", "resnet18", "--batch", "0")
    add("run flags", "batch with a GEMM", "--batch", *G, "--batch", "4")
    add("run flags", "training and phases", "--training", *G, "--training", "--phases", "fwd")
    add("run flags", "unknown phase", "phase", *G, "--phases", "fwdd")
    add("run flags", "empty phases", "phase", *G, "--phases", "")
    add("run flags", "prefill on a GEMM", "prefill", *G, "--phases", "prefill")
    add("run flags", "prefill on a CNN", "prefill", *R, "--network", "resnet18", "--phases", "prefill")
    add("run flags", "decode and fwd", "fwd", *R, "--network", "llama2_7b", "--phases", "decode,fwd")
    add("run flags", "negative prompt", "prompt", *R, "--network", "llama2_7b", "--prompt-len", "-1")
    add("run flags", "act sparsity above 1", "act", *R, "--network", "llama2_7b", "--act-sparsity", "1.5")
    add("run flags", "prompt length on a GEMM", "--prompt-len", *G, "--prompt-len", "16")
    add("run flags", "unknown flag", "--nosuch", *G, "--nosuch")

    # --- --set
    add("--set", "unknown key", "array.rowz", *G, "--set", "array.rowz=4")
    add("--set", "no value", "array.rows", *G, "--set", "array.rows")
    add("--set", "zero rows", "array.rows", *G, "--set", "array.rows=0")
    add("--set", "letters for rows", "array.rows", *G, "--set", "array.rows=abc")
    add("--set", "fractional rows", "array.rows", *G, "--set", "array.rows=2.5")
    add("--set", "not a bool", "array.fold_overlap", *G, "--set", "array.fold_overlap=maybe")
    add("--set", "negative bandwidth", "dram.bandwidth_bytes_per_cycle", *G, "--set",
        "dram.bandwidth_bytes_per_cycle=-1")
    add("--set", "NaN bandwidth", "dram.bandwidth_bytes_per_cycle", *G, "--set",
        "dram.bandwidth_bytes_per_cycle=nan")
    add("--set", "a section as a value", "array", *G, "--set", "array=4")
    add("--set", "unknown precision", "array.precision", *G, "--set", "array.precision=int3")
    add("--set", "impossible array", "array", *G, "--set", "array.rows=1000000", "--set", "array.cols=1000000")
    add("--set", "buffer too small", "buffers.a.size_bytes", *G, "--set", "buffers.a.size_bytes=1")
    add("--set", "a key twice", "array.rows", *G, "--set", "array.rows=4", "--set", "array.rows=8")
    add("--set", "sparsity twice", "sparsity", *G, "--set", "sparsity=[{kind: nm, n: 2, m: 4}]",
        "--sparsity", "nm:2:8")

    # --- config files
    add("config files", "unknown key", "arrya", "run", "--accel", "c.yaml", "--gemm", "8,8,8",
        files={"c.yaml": "name: mine\narrya: {rows: 4}\n"})
    add("config files", "unknown nested key", "array.rowz", "run", "--accel", "c.yaml", "--gemm", "8,8,8",
        files={"c.yaml": "name: mine\narray: {rowz: 4}\n"})
    add("config files", "malformed YAML", "c.yaml", "run", "--accel", "c.yaml", "--gemm", "8,8,8",
        files={"c.yaml": "name: mine\narray: {rows: 4\n"})
    add("config files", "malformed TOML", "c.toml", "run", "--accel", "c.toml", "--gemm", "8,8,8",
        files={"c.toml": "name = \"mine\"\n[array\nrows = 4\n"})
    add("config files", "a list at the top", "c.yaml", "run", "--accel", "c.yaml", "--gemm", "8,8,8",
        files={"c.yaml": "- name: mine\n"})
    add("config files", "empty file", "c.yaml", "run", "--accel", "c.yaml", "--gemm", "8,8,8", files={"c.yaml": ""})
    add("config files", "wrong type", "array.rows", "run", "--accel", "c.yaml", "--gemm", "8,8,8",
        files={"c.yaml": "name: mine\narray: {rows: four}\n"})
    add("config files", "NaN clock", "clock_hz", "run", "--accel", "c.yaml", "--gemm", "8,8,8",
        files={"c.yaml": FULL_YAML.replace("clock_hz: 5.0e+8", "clock_hz: .nan")})
    add("config files", "bad sparsity kind", "kind", "run", "--accel", "c.yaml", "--gemm", "8,8,8",
        files={"c.yaml": FULL_YAML + "sparsity: [{kind: nmm, n: 2, m: 4}]\n"})
    add("config files", "N above M", "n", "run", "--accel", "c.yaml", "--gemm", "8,8,8",
        files={"c.yaml": FULL_YAML + "sparsity: [{kind: nm, n: 5, m: 4}]\n"})
    add("config files", "binary garbage", "c.yaml", "run", "--accel", "c.yaml", "--gemm", "8,8,8",
        files={"c.yaml": b"\xff\xfe\x00garbage\x00"})

    # --- sparsity strings
    for text, names in (("nm:5:4", "nm"), ("nm:0:4", "sparsity[0].n"), ("nm:2", "nm"), ("nm:a:b", "nm"),
                        ("nm:2:4:7", "mode"),
                        ("nm:2:4:nosuch=1", "nosuch"), ("zero_skip:inputs:skipping", "inputs"),
                        ("zero_skip:input:skip", "skip"), ("zero_skip:input:skipping:weight_fetch=maybe", "weight_fetch"),
                        ("delta:-1", "threshold"), ("delta:nan", "threshold"), ("delta:abc", "delta"),
                        ("act_policy:magic:0.1", "magic"), ("act_policy:topk:1.5", "keep_fraction"),
                        ("act_policy:threshold:-1", "threshold"), ("nosuch:1", "nosuch"), ("", "sparsity")):
        add("sparsity strings", repr(text), names, *G, "--sparsity", text)
    add("sparsity strings", "same feature twice", "nm", *G, "--sparsity", "nm:2:4", "--sparsity", "nm:2:8")

    # --- topologies
    for what, text, names in (
            ("empty file", "", "t.csv"),
            ("header only", TOPOLOGY_HEAD, "t.csv"),
            ("wrong header", "a,b,c\n1,2,3\n", "t.csv"),
            ("letters", TOPOLOGY_HEAD + "conv1, x, 8, 3, 3, 3, 8, 1,\n", "IFMAP Height"),
            ("negative size", TOPOLOGY_HEAD + "conv1, -8, 8, 3, 3, 3, 8, 1,\n", "IFMAP Height"),
            ("zero stride", TOPOLOGY_HEAD + "conv1, 8, 8, 3, 3, 3, 8, 0,\n", "Strides"),
            ("kernel larger than input", TOPOLOGY_HEAD + "conv1, 2, 2, 3, 3, 3, 8, 1,\n", "Filter Height"),
            ("missing fields", TOPOLOGY_HEAD + "conv1, 8, 8, 3,\n", "line 2"),
    ):
        add("topologies", what, names, *R, "--topology", "t.csv", files={"t.csv": text})
    add("topologies", "missing file", "nope.csv", *R, "--topology", "nope.csv")
    add("topologies", "binary garbage", "t.csv", *R, "--topology", "t.csv", files={"t.csv": b"\xff\xfe\x00\x81"})

    # --- traces
    add("traces", "not a directory", "nodir", *R, "--trace", "nodir")
    add("traces", "no manifest", "manifest.json", *R, "--trace", "empty", setup=lambda d: (d / "empty").mkdir())
    add("traces", "manifest not JSON", "manifest.json", *R, "--trace", "t",
        setup=_trace_with(lambda t: (t / "manifest.json").write_text("{not json")))
    add("traces", "manifest binary garbage", "manifest.json", *R, "--trace", "t",
        setup=_trace_with(lambda t: (t / "manifest.json").write_bytes(b"\xff\xfe\x00\x81")))
    add("traces", "unknown schema version", "schema_version", *R, "--trace", "t",
        setup=_trace_with(_manifest_edit(lambda m: m.update(schema_version=999))))
    add("traces", "missing tensor file", "safetensors", *R, "--trace", "t",
        setup=_trace_with(lambda t: _tensor_files(t)[0].unlink()))
    add("traces", "truncated tensor file", "safetensors", *R, "--trace", "t", setup=_trace_with(_truncate))
    add("traces", "bytes overwritten, size unchanged", "safetensors", *R, "--trace", "t",
        setup=_trace_with(_overwrite_bytes))
    add("traces", "op shape inconsistent", "t", *R, "--trace", "t",
        setup=_trace_with(_manifest_edit(lambda m: m["ops"][0].update(in_features=9))))
    add("traces", "op of unknown kind", "kind", *R, "--trace", "t",
        setup=_trace_with(_manifest_edit(lambda m: m["ops"][0].update(kind="conv7d"))))
    add("traces", "phase not recorded", "bwd_weight", *R, "--trace", "t", "--phases", "bwd_weight",
        setup=_trace_with(lambda t: None))
    add("traces", "info of a non-trace", "nodir", "trace", "info", "nodir")
    add("traces", "validate a truncated trace", "safetensors", "trace", "validate", "t", setup=_trace_with(_truncate))

    # --- import and synth
    add("trace import", "unknown format", "FORMAT", "trace", "import", "nosuch", "f.npz", "--out", "o")
    add("trace import", "missing file", "f.npz", "trace", "import", "npz", "f.npz", "--out", "o")
    add("trace import", "not an npz", "f.npz", "trace", "import", "npz", "f.npz", "--out", "o",
        files={"f.npz": "hello"})
    add("trace import", "NaN in a tensor", "nan", "trace", "import", "npz", "nan.npz", "--out", "o", setup=_nan_npz)
    add("trace import", "scalesim topology with letters", "IFMAP Height", "trace", "import", "scalesim", "t.csv",
        "--out", "o", files={"t.csv": TOPOLOGY_HEAD + "conv1, x, 8, 3, 3, 3, 8, 1,\n"})
    add("trace synth", "density above 1", "--input", *T, "--gemm", "8,8,8", "--input", "uniform:1.5")
    add("trace synth", "unknown pattern", "--input", *T, "--gemm", "8,8,8", "--input", "speckled:0.5")
    add("trace synth", "N above M", "--weight", *T, "--gemm", "8,8,8", "--weight", "nm:5:4")
    add("trace synth", "zero dimension", "M", *T, "--gemm", "0,8,8")
    add("trace synth", "zero time steps", "time_steps", *T, "--gemm", "8,8,8", "--time-steps", "0")
    add("trace synth", "change above 1", "change", *T, "--gemm", "8,8,8", "--time-steps", "2", "--change", "2")
    add("trace synth", "no workload", "--gemm", *T)
    add("trace synth", "training and phases", "--training", *T, "--gemm", "8,8,8", "--training", "--phases", "fwd")
    add("trace synth", "batch with a GEMM", "--batch", *T, "--gemm", "8,8,8", "--batch", "4")
    add("trace synth", "batch zero", "--batch", *T, "--network", "resnet18", "--batch", "0")

    # --- capture (every refusal comes before torch does any work)
    C = ("trace", "capture", "--out", "cap")
    add("capture", "unknown zoo model", "nosuch", *C, "--model", "nosuch")
    add("capture", "missing model file", "nofile.py", *C, "--model", "nofile.py:Net", "--input-shape", "3,8,8")
    add("capture", "zero steps", "--steps", *C, "--model", "transformer", "--steps", "0")
    add("capture", "zero batch", "--batch", *C, "--model", "transformer", "--batch", "0")
    add("capture", "N above M", "--nm", *C, "--model", "transformer", "--nm", "5:4")
    add("capture", "input shape letters", "--input-shape", *C, "--model", "m.py:Net", "--input-shape", "a,b",
        files={"m.py": "import torch\nclass Net(torch.nn.Linear):\n    def __init__(self):\n"
                       "        super().__init__(4, 4)\n"})
    add("capture", "missing HF directory", "nohf", *C, "--hf", "nohf", "--mode", "prefill")
    add("capture", "HF config binary garbage", "c.json", *C, "--hf-config", "c.json", "--mode", "prefill",
        files={"c.json": b"\xff\xfe\x00\x81"})
    add("capture", "missing HF config", "none.json", *C, "--hf-config", "none.json", "--mode", "prefill")
    add("capture", "zero prompt", "--prompt-len", *C, "--model", "llama_tiny", "--mode", "prefill",
        "--prompt-len", "0")
    add("capture", "no model", "--model", "trace", "capture", "--out", "cap")

    # --- sweep and report specs
    S = ("sweep", "s.yaml", "--out", "sw", "--workers", "1")
    add("sweep specs", "missing spec", "s.yaml", *S)
    add("sweep specs", "malformed YAML", "s.yaml", *S, files={"s.yaml": "name: [\n"})
    add("sweep specs", "binary garbage", "s.yaml", *S, files={"s.yaml": b"\xff\xfe\x00\x81"})
    add("sweep specs", "unknown top-level key", "workload", *S,
        files={"s.yaml": GOOD_SPEC.replace("workloads:", "workload:")})
    add("sweep specs", "unknown axis path", "array.rowz", *S,
        files={"s.yaml": GOOD_SPEC.replace("array.rows", "array.rowz")})
    add("sweep specs", "negative samples", "samples", *S,
        files={"s.yaml": GOOD_SPEC.replace("axes: {array.rows: [16, 32]}",
                                           "axes: [{kind: random, samples: -1, values: {array.rows: [16, 32]}}]")})
    add("sweep specs", "a billion samples", "max_points", *S,
        files={"s.yaml": GOOD_SPEC.replace("axes: {array.rows: [16, 32]}",
                                           "axes: [{kind: random, samples: 1000000000, "
                                           "values: {array.rows: [16, 32]}}]")})
    add("sweep specs", "a grid of 15.7 M points", "max_points", *S,
        files={"s.yaml": GOOD_SPEC.replace(
            "axes: {array.rows: [16, 32]}",
            "axes: {array.rows: [" + ",".join(str(8 + i) for i in range(250)) + "], "
            "buffers.a.size_bytes: [" + ",".join(str(65536 + 64 * i) for i in range(250)) + "], "
            "dram.bandwidth_bytes_per_cycle: [" + ",".join(str(1 + i) for i in range(251)) + "]}")})
    add("sweep specs", "zip of unequal lengths", "zip", *S,
        files={"s.yaml": GOOD_SPEC.replace("axes: {array.rows: [16, 32]}",
                                           "axes: [{kind: zip, values: {array.rows: [16, 32], array.cols: [16]}}]")})
    add("sweep specs", "bad value in an axis", "array.rows", *S,
        files={"s.yaml": GOOD_SPEC.replace("[16, 32]", "[16, -32]")})
    add("sweep specs", "unknown dataflow", "dataflows", *S, files={"s.yaml": GOOD_SPEC.replace("[os]", "[xs]")})
    add("sweep specs", "zero workers", "--workers", "sweep", "s.yaml", "--out", "sw", "--workers", "0",
        files={"s.yaml": GOOD_SPEC})
    add("report", "not a sweep directory", "nodir", "report", "nodir", "--out", "rep")
    add("report", "a trace is not a sweep", "t", "report", "t", "--out", "rep", setup=_trace_with(lambda t: None))

    # --- output paths (checked before any work)
    for out, names, what in (("afile/x.csv", "afile", "parent is a file"), ("d.parquet", "d.parquet", "a directory"),
                             ("x.txt", "x.txt", "unknown suffix")):
        add("output paths", f"run --out: {what}", names, *G, "--out", out, setup=_file_as_parent
            if "afile" in out else _dir_as_file)
    add("output paths", "run --out on a read-only file system", "/proc", *G, "--out", "/proc/sparsesim/x.csv")
    add("output paths", "sweep --out: parent is a file", "afile", "sweep", "s.yaml", "--out", "afile/sw",
        "--workers", "1", files={"s.yaml": GOOD_SPEC}, setup=_file_as_parent)
    add("output paths", "sweep --out on a read-only file system", "/proc", "sweep", "s.yaml", "--out",
        "/proc/sparsesim/sw", "--workers", "1", files={"s.yaml": GOOD_SPEC})
    add("output paths", "trace synth --out: parent is a file", "afile", "trace", "synth", "--gemm", "8,8,8",
        "--out", "afile/t", setup=_file_as_parent)
    add("output paths", "trace synth --out on a read-only file system", "/proc", "trace", "synth", "--gemm",
        "8,8,8", "--out", "/proc/sparsesim/t")
    add("output paths", "trace import --out: parent is a file", "afile", "trace", "import", "scalesim", "t.csv",
        "--out", "afile/t", files={"t.csv": GOOD_TOPOLOGY}, setup=_file_as_parent)
    add("output paths", "trace capture --out: parent is a file", "afile", "trace", "capture", "--model", "transformer",
        "--out", "afile/t", setup=_file_as_parent)
    add("output paths", "report --out: parent is a file", "afile", "report", "t", "--out", "afile/r",
        setup=lambda d: (_file_as_parent(d), _trace(d)))

    # --- data loss (the files the user had must survive)
    add("data loss", "run --out onto its own topology", "t.csv", *R, "--topology", "t.csv", "--out", "t.csv",
        "--overwrite", files={"t.csv": GOOD_TOPOLOGY})
    add("data loss", "run --out onto an existing file", "r.csv", *G, "--out", "r.csv", files={"r.csv": "mine\n"})
    add("data loss", "capture --overwrite into a directory with the user's files", "NOTES.txt", "trace", "capture",
        "--model", "transformer", "--out", "cap", "--overwrite", setup=_capture_dir_with_notes)
    add("data loss", "synth --out onto an existing directory", "syn", *T, "--gemm", "8,8,8",
        setup=lambda d: ((d / "syn").mkdir(), (d / "syn" / "mine.txt").write_text("x")))

    # --- the Python API (names its own arguments, not CLI flags)
    api = [
        ("gemm with a negative M", "M", lambda d: sparsesim.gemm(-1, 2, 3)),
        ("unknown preset", "nosuch", _sim(accel="nosuch")),
        ("unknown dataflow", "dataflow", _sim(dataflow="xs")),
        ("N above M", "nm", _sim(sparsity=["nm:5:4"])),
        ("unknown --set key", "no.key", _sim(sets={"no.key": 1})),
        ("sets value of a wrong type", "array.rows", _sim(sets={"array.rows": "four"})),
        ("sparsity not a list", "sparsity", _sim(sparsity="nm:2:4:x")),
        ("trace that does not exist", "nodir", lambda d: sparsesim.trace(d / "nodir")),
        ("network that does not exist", "nosuch", lambda d: sparsesim.network("nosuch")),
        ("topology that does not exist", "nope.csv", lambda d: sparsesim.topology(d / "nope.csv")),
        ("network with batch 0", "batch", lambda d: sparsesim.network("resnet18", batch=0)),
        ("gemm with an unknown phase", "phases", lambda d: sparsesim.gemm(8, 8, 8, phases=["fwdd"])),
        ("sweep of a missing spec", "nope.yaml", lambda d: sparsesim.sweep(d / "nope.yaml", d / "sw")),
        ("load_trace of a missing directory", "nodir", lambda d: sparsesim.load_trace(d / "nodir")),
    ]
    for what, names, fn in api:
        cases.append(Case("API", what, names, api=fn))
    return cases


# ---------------------------------------------------------------- running a case
def _snapshot(d: Path) -> dict[str, str]:
    out = {}
    for p in d.rglob("*"):
        if p.is_file() and not p.is_symlink():
            out[str(p.relative_to(d))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def run_case(case: Case, root: Path) -> tuple[str, str]:
    """``(class, detail)`` of one case, run in a fresh directory under ``root``."""
    from sparsesim.core.errors import InputError

    d = Path(tempfile.mkdtemp(dir=root))
    for name, text in case.files.items():
        (d / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    if case.setup is not None:
        case.setup(d)
    before = _snapshot(d)
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()

    def alarm(signum, frame):
        raise _Hang()

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(TIMEOUT_S)
    rc: int | None = None
    exc: BaseException | None = None
    try:
        os.chdir(d)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            if case.api is not None:
                case.api(d)
                rc = 0
            else:
                from sparsesim.cli.main import main

                rc = main(list(case.argv))
    except _Hang:
        return "hang", f"still running after {TIMEOUT_S} s"
    except InputError as e:
        exc = e
    except SystemExit as e:  # argparse's --help and the like
        rc = int(e.code or 0)
    except Exception as e:  # noqa: BLE001 - sorting exceptions is this harness's job
        exc = e
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        os.chdir(cwd)
    after = _snapshot(d)
    lost = [name for name, digest in before.items() if after.get(name) != digest]
    if lost:
        return "data loss", f"changed or removed: {', '.join(sorted(lost))}"
    text = err.getvalue()
    if case.api is not None:
        if exc is None:
            return "silent", "accepted"
        if not isinstance(exc, InputError):
            return "traceback", f"{type(exc).__name__}: {exc}"
        msg = str(exc)
        if "\n" in msg.strip() or case.names.lower() not in msg.lower():
            return "unclear", msg
        return "clean", msg
    if exc is not None:
        return "traceback", f"{type(exc).__name__}: {exc}"
    if rc == 0:
        return "silent", "exit 0"
    if rc != 2 or "Traceback" in text:
        return "traceback", text.strip().splitlines()[-1] if text.strip() else f"exit {rc}"
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    if len(errors) != 1 or case.names.lower() not in errors[0].lower():
        return "unclear", " | ".join(errors) or text.strip()
    return "clean", errors[0]


CASES = _cases()


@pytest.mark.parametrize("case", CASES, ids=[f"{c.area}: {c.what}" for c in CASES])
def test_bad_input_is_one_clean_line(case, tmp_path):
    kind, detail = run_case(case, tmp_path)
    assert kind == "clean", f"{kind}: {detail}"


def test_every_area_is_covered():
    areas = {c.area for c in CASES}
    assert areas >= {"run flags", "--set", "config files", "sparsity strings", "topologies", "traces",
                     "trace import", "trace synth", "capture", "sweep specs", "report", "output paths",
                     "data loss", "API"}


def main() -> int:
    """Print each case's class and the counts (``python tests/test_bad_inputs.py``)."""
    counts: Counter = Counter()
    with tempfile.TemporaryDirectory() as root:
        for case in CASES:
            kind, detail = run_case(case, Path(root))
            counts[kind] += 1
            print(f"{kind:10s} {case.area}: {case.what}: {detail[:150]}")
    print(", ".join(f"{k} {v}" for k, v in sorted(counts.items())), f"(of {len(CASES)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
