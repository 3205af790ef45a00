"""SCALE-Sim topology parsing and the trace importers (scalesim, npz)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from sparsesim.core.errors import InputError
from sparsesim.workloads.gemm import PHASES, Phase
from sparsesim.workloads.trace.importers import IMPORTERS, import_trace
from sparsesim.workloads.ops import Conv2d
from sparsesim.workloads.topology import read_topology
from sparsesim.workloads.trace import load_trace, validate

GOLDEN = Path(__file__).parents[1] / "golden" / "scalesim_dense.csv"
CONV_HEADER = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"


def test_lowering_matches_scalesim_golden_mnk(tmp_path):
    """Every golden case: our M, N, K equal those SCALE-Sim itself derived (ceil output sizes)."""
    rows = [r for r in csv.DictReader(GOLDEN.open()) if r["dataflow"] == "os"]
    assert rows
    for r in rows:
        if r["kind"] == "conv":
            text = CONV_HEADER + (f"L0, {r['ifmap_h']}, {r['ifmap_w']}, {r['filter_h']}, {r['filter_w']}, "
                                  f"{r['channels']}, {r['num_filters']}, {r['stride']},\n")
        else:
            text = f"Layer, M, N, K,\nL0, {r['M']}, {r['N']}, {r['K']},\n"
        (tmp_path / "t.csv").write_text(text)
        (op,) = read_topology(tmp_path / "t.csv")
        g = op.gemm(Phase.FWD)
        assert (g.M, g.N, g.K) == (int(r["M"]), int(r["N"]), int(r["K"])), r["case"]


def test_conv_rows_stride_width_depthwise_and_duplicates(tmp_path):
    (tmp_path / "t.csv").write_text(CONV_HEADER + "# a comment\n\nConv1, 10, 12, 3, 3, 4, 8, 1, 2,\n"
                                    "Conv_DP, 8, 8, 3, 3, 16, 1, 1,\nConv1, 8, 8, 1, 1, 2, 2, 1\n")
    a, dw, dup = read_topology(tmp_path / "t.csv")
    # SCALE-Sim rounds output sizes up: out_w = ceil((12 - 3 + 2) / 2) = 6
    assert (a.in_h, a.in_w, a.stride_h, a.stride_w, a.pad_h, a.out_h, a.out_w) == (10, 12, 1, 2, 0, 8, 6)
    assert isinstance(dw, Conv2d) and dw.groups == 16 and dw.gemm(Phase.FWD).count == 16
    assert (dw.gemm(Phase.FWD).N, dw.gemm(Phase.FWD).K) == (1, 9)
    assert dup.name == "Conv1#2"


@pytest.mark.parametrize("body, message", [
    ("L0, 10, 10, 3, x, 4, 8, 1,\n", r"line 2, column 5 \(Filter Width\): expected a positive integer, got 'x'"),
    ("L0, 10, 10, 3, 3, 0, 8, 1,\n", r"line 2, column 6 \(Channels\): expected a positive integer, got 0"),
    ("L0, 10, 10, 3, 3, 4, 8,\n", r"line 2: expected 8 or 9 fields"),
    ("L0, 10, 10, 12, 3, 4, 8, 1,\n", r"line 2, column 4 \(Filter Height\): filter 12 is larger than the IFMAP"),
    ("", r"no layers after the header"),
])
def test_topology_errors_name_file_line_and_column(tmp_path, body, message):
    (tmp_path / "topo.csv").write_text(CONV_HEADER + body)
    with pytest.raises(InputError, match=message) as info:
        read_topology(tmp_path / "topo.csv")
    assert str(info.value).startswith(str(tmp_path / "topo.csv"))


def test_topology_header_and_file_errors(tmp_path):
    (tmp_path / "a.csv").write_text("Name, Foo, Bar\n")
    with pytest.raises(InputError, match=r"a.csv: line 1: unrecognised header"):
        read_topology(tmp_path / "a.csv")
    (tmp_path / "b.csv").write_text("Layer, M, N, K,\nG, 4, 5,\n")
    with pytest.raises(InputError, match=r"b.csv: line 2: expected 4 fields"):
        read_topology(tmp_path / "b.csv")
    (tmp_path / "c.csv").write_text("")
    with pytest.raises(InputError, match=r"c.csv: empty topology file"):
        read_topology(tmp_path / "c.csv")
    with pytest.raises(InputError, match=r"none.csv: no such file"):
        read_topology(tmp_path / "none.csv")


def test_import_scalesim(tmp_path):
    (tmp_path / "net.csv").write_text(CONV_HEADER + "Conv1, 10, 10, 3, 3, 4, 8, 1,\nConv2, 8, 8, 3, 3, 8, 8, 2,\n")
    trace = load_trace(import_trace("scalesim", tmp_path / "net.csv", tmp_path / "t", seed=1))
    validate(trace)
    assert [r.name for r in trace.ops] == ["Conv1", "Conv2"] and trace.ops[0].phases == (Phase.FWD,)
    x = trace.operand(trace.ops[0], "input")
    assert (x == 0).mean() == 0.5 and (x >= 0).all()  # ReLU-like
    assert trace.capture["source"] == "scalesim"
    trained = load_trace(import_trace("scalesim", tmp_path / "net.csv", tmp_path / "t2", training=True))
    assert trained.ops[0].phases == PHASES


def _npz_ops():
    return [{"name": "fc", "kind": "linear", "params": {"tokens": 6, "in_features": 4, "out_features": 3},
             "tensors": {"input": "x", "weight": "w"}}]


def test_import_npz_with_embedded_and_sidecar_manifest(tmp_path):
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 3, 4)), rng.standard_normal((3, 4))  # x: (batch, seq, features)
    manifest = json.dumps({"ops": _npz_ops(), "capture": {"model": "mine"}})
    np.savez(tmp_path / "a.npz", x=x, w=w, __manifest__=np.array(manifest))
    trace = load_trace(import_trace("npz", tmp_path / "a.npz", tmp_path / "ta"))
    assert trace.ops[0].phases == (Phase.FWD,)  # the phases whose tensors are given
    np.testing.assert_array_equal(trace.operand(trace.ops[0], "input"), x.reshape(6, 4).astype(np.float32))
    assert trace.capture["model"] == "mine" and trace.capture["source"] == "npz"
    np.savez(tmp_path / "b.npz", x=x, w=w)
    (tmp_path / "b.yaml").write_text("ops:\n" + "".join(f"  - {json.dumps(op)}\n" for op in _npz_ops()))
    trace = load_trace(import_trace("npz", tmp_path / "b.npz", tmp_path / "tb", dtype="bf16"))
    assert trace.storage.name == "bf16"


@pytest.mark.parametrize("arrays, message", [
    ({"x": np.ones((6, 4))}, r"a.json: ops\[0\].tensors.weight: names missing array 'w'"),
    ({"x": np.ones((5, 4)), "w": np.ones((3, 4))}, r"a.json: ops\[0\].tensors.input: array 'x' has shape \[5, 4\]"),
    ({"x": np.full((6, 4), np.nan), "w": np.ones((3, 4))}, r"a.npz: array 'x' holds NaN"),
    ({"x": np.ones((6, 4)), "w": np.array([[1, 2, None, 4]] * 3, dtype=object)}, r"a.npz: array 'w' cannot be loaded"),
])
def test_import_npz_errors(tmp_path, arrays, message):
    np.savez(tmp_path / "a.npz", **arrays)
    (tmp_path / "a.json").write_text(json.dumps({"ops": _npz_ops()}))
    with pytest.raises(InputError, match=message):
        import_trace("npz", tmp_path / "a.npz", tmp_path / "t")
    assert not (tmp_path / "t").exists()


def test_import_errors(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.ones(3))
    with pytest.raises(InputError, match=r"a.npz: no manifest"):
        import_trace("npz", tmp_path / "a.npz", tmp_path / "t")
    (tmp_path / "bad.npz").write_text("not a zip")
    with pytest.raises(InputError, match=r"bad.npz: not a readable .npz"):
        import_trace("npz", tmp_path / "bad.npz", tmp_path / "t")
    with pytest.raises(InputError, match=r"FORMAT: unknown import format 'scalsim' \(did you mean 'scalesim'\?\)"):
        import_trace("scalsim", tmp_path / "a.npz", tmp_path / "t")
    assert set(IMPORTERS.names()) == {"npz", "scalesim"}
