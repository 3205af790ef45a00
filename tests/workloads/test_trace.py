"""Trace format: round trips, the atomic writer, and every kind of corruption the loader rejects."""

from __future__ import annotations

import json
import pickle
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sparsesim.core.errors import InputError
from sparsesim.workloads.gemm import PHASES, Phase
from sparsesim.workloads.ops import Conv2d, Linear, Matmul
from sparsesim.workloads.trace import TraceWriter, load_trace, validate
from sparsesim.workloads.trace.format import bf16_bits_to_float32, float32_to_bf16_bits
from sparsesim.workloads.trace.header import read_header

CONV = Conv2d(name="conv", batch=2, in_channels=3, out_channels=4, in_h=6, in_w=6, kernel_h=3, kernel_w=3,
              pad_h=1, pad_w=1)
LINEAR = Linear(name="fc", tokens=5, in_features=7, out_features=3)
MATMUL = Matmul(name="mm", batch=2, m=4, n=5, k=6)


def _tensors(op, rng):
    return {"input": rng.standard_normal(op.input_shape, dtype=np.float32),
            "weight": rng.standard_normal(op.weight_shape, dtype=np.float32),
            "grad_output": rng.standard_normal(op.output_shape, dtype=np.float32)}


def write_trace(path, dtype="fp32", ops=(CONV, LINEAR, MATMUL), seed=0, checksums=True, overwrite=False):
    rng = np.random.default_rng(seed)
    data = {}
    with TraceWriter(path, capture={"model": "test"}, storage_dtype=dtype, checksums=checksums,
                     overwrite=overwrite) as w:
        for op in ops:
            names = {}
            for role, x in _tensors(op, rng).items():
                names[role] = w.add_tensor(f"{op.name}.{role}", x)
                data[names[role]] = x
            w.add_op(op, tensors=names)
    return data


def test_round_trip_fp32_is_exact(tmp_path):
    data = write_trace(tmp_path / "t")
    trace = load_trace(tmp_path / "t")
    validate(trace)
    assert [r.op for r in trace.ops] == [CONV, LINEAR, MATMUL]
    assert all(r.phases == PHASES and r.step == 0 and r.time_step is None for r in trace.ops)
    for name, x in data.items():
        got = trace.tensor(name)
        assert got.dtype == np.float32 and np.array_equal(got, x)
    x, w, dy = trace.op_tensors(trace.ops[0])
    assert x.shape == CONV.input_shape and w.shape == CONV.weight_shape and dy.shape == CONV.output_shape
    assert not list(tmp_path.glob(".*"))  # no temporary directory left behind


@pytest.mark.parametrize("dtype, rtol", [("fp16", 1e-3), ("bf16", 8e-3)])
def test_round_trip_half_precision(tmp_path, dtype, rtol):
    data = write_trace(tmp_path / "t", dtype=dtype)
    trace = load_trace(tmp_path / "t")
    validate(trace)
    assert trace.storage.name == dtype
    for name, x in data.items():
        np.testing.assert_allclose(trace.tensor(name), x, rtol=rtol, atol=1e-3)


@settings(max_examples=50, deadline=None)
@given(arrays(np.float32, st.integers(1, 64),
              elements=st.floats(-(2.0**100), 2.0**100, width=32, allow_subnormal=False)))
def test_bf16_rounding_is_nearest(x):
    back = bf16_bits_to_float32(float32_to_bf16_bits(x))
    # bf16 keeps 8 significant bits: relative error at most 2**-9 after round-to-nearest
    assert np.all(np.abs(back - x) <= np.abs(x) * 2.0**-8)
    assert np.array_equal(bf16_bits_to_float32(float32_to_bf16_bits(back)), back)  # idempotent


def test_workload_from_trace(tmp_path):
    write_trace(tmp_path / "t")
    trace = load_trace(tmp_path / "t")
    wl = trace.workload()
    assert wl.ops == (CONV, LINEAR, MATMUL) and wl.phases == PHASES and wl.time_steps == (None,) * 3
    tensors = wl.source.tensors(1)
    assert tensors["input"].shape == LINEAR.input_shape and tensors["grad"].shape == LINEAR.output_shape
    assert trace.workload((Phase.FWD,)).phases == (Phase.FWD,)
    trace.tensor("fc.input")  # opens a file handle
    again = pickle.loads(pickle.dumps(wl))  # e.g. sent to a sweep worker
    assert np.array_equal(again.source.tensors(1)["input"], tensors["input"])


def test_inference_trace_refuses_backward_phases(tmp_path):
    rng = np.random.default_rng(0)
    with TraceWriter(tmp_path / "t") as w:
        t = _tensors(LINEAR, rng)
        w.add_op(LINEAR, tensors={r: w.add_tensor(r, t[r]) for r in ("input", "weight")}, phases=(Phase.FWD,))
    trace = load_trace(tmp_path / "t")
    assert trace.workload().phases == (Phase.FWD,)
    with pytest.raises(InputError, match=r"manifest.json: ops\[0\].tensors: phase bwd_data needs grad_output"):
        trace.workload(PHASES)


def test_writer_refuses_existing_output_unless_overwrite(tmp_path):
    write_trace(tmp_path / "t", seed=1)
    with pytest.raises(InputError, match="already exists"):
        write_trace(tmp_path / "t")
    data = write_trace(tmp_path / "t", seed=2, overwrite=True)
    assert np.array_equal(load_trace(tmp_path / "t").tensor("fc.input"), data["fc.input"])
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not a trace directory; refusing"):
        write_trace(tmp_path / "notes", overwrite=True)
    assert (tmp_path / "notes" / "keep.txt").exists()


def test_writer_overwrite_replaces_only_what_a_writer_wrote(tmp_path):
    write_trace(tmp_path / "t", seed=1)
    (tmp_path / "t" / "tensors-00007.safetensors").write_bytes(b"")  # a shard of an older, longer trace
    write_trace(tmp_path / "t", seed=2, overwrite=True)
    (tmp_path / "t" / "NOTES.txt").write_text("mine")
    before = sorted(p.name for p in (tmp_path / "t").iterdir())
    with pytest.raises(InputError, match=r"^out: .*t holds 'NOTES.txt', which is not part of a trace; refusing"):
        write_trace(tmp_path / "t", seed=3, overwrite=True)
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == before
    assert (tmp_path / "t" / "NOTES.txt").read_text() == "mine"


def test_writer_leaves_nothing_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with TraceWriter(tmp_path / "t") as w:
            w.add_tensor("x", np.ones(3))
            raise RuntimeError("capture failed")
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_nan_and_fp16_overflow(tmp_path):
    with TraceWriter(tmp_path / "t", storage_dtype="fp16") as w:
        with pytest.raises(InputError, match=r"tensor 'a' holds NaN"):
            w.add_tensor("a", np.array([1.0, np.nan]))
        with pytest.raises(InputError, match=r"tensor 'b' holds Inf after conversion to fp16"):
            w.add_tensor("b", np.array([1e6]))
        w.abort()


def test_shards_split_large_traces(tmp_path):
    rng = np.random.default_rng(0)
    with TraceWriter(tmp_path / "t", shard_bytes=1000) as w:
        for op in (CONV, LINEAR):
            w.add_op(op, tensors={r: w.add_tensor(f"{op.name}.{r}", x) for r, x in _tensors(op, rng).items()})
    trace = load_trace(tmp_path / "t")
    assert len(trace.file_bytes) > 1
    validate(trace)


# ----------------------------------------------------------------------------- corruption
def _manifest(path):
    return json.loads((path / "manifest.json").read_text())


def _save_manifest(path, manifest):
    (path / "manifest.json").write_text(json.dumps(manifest))


def _load_and_validate(path):
    validate(load_trace(path), full=True)


def test_truncated_safetensors(tmp_path):
    write_trace(tmp_path / "t")
    f = next((tmp_path / "t").glob("*.safetensors"))
    size = f.stat().st_size
    f.write_bytes(f.read_bytes()[: size - 100])
    with pytest.raises(InputError, match=rf"{f.name}: truncated \(header says {size} bytes, file has {size - 100}\)"):
        _load_and_validate(tmp_path / "t")


def test_truncated_inside_header(tmp_path):
    write_trace(tmp_path / "t")
    f = next((tmp_path / "t").glob("*.safetensors"))
    f.write_bytes(f.read_bytes()[:20])
    with pytest.raises(InputError, match=rf"{f.name}: truncated \(header says \d+ bytes, file has 20\)"):
        _load_and_validate(tmp_path / "t")


def test_missing_tensor(tmp_path):
    write_trace(tmp_path / "t")
    m = _manifest(tmp_path / "t")
    m["ops"][1]["tensors"]["weight"] = "w3"
    _save_manifest(tmp_path / "t", m)
    with pytest.raises(InputError, match=r"manifest.json: ops\[1\].tensors.weight: names missing tensor 'w3'"):
        _load_and_validate(tmp_path / "t")


def test_shape_mismatch(tmp_path):
    write_trace(tmp_path / "t")
    m = _manifest(tmp_path / "t")
    m["ops"][0]["params"]["in_h"] = 8
    _save_manifest(tmp_path / "t", m)
    with pytest.raises(InputError, match=r"manifest.json: ops\[0\].tensors.input: tensor 'conv.input' in "
                                         r"tensors-00000.safetensors has shape \[2, 3, 6, 6\], but the op's params "
                                         r"give \[2, 3, 8, 6\]"):
        _load_and_validate(tmp_path / "t")


def _poke(path, tensor, value):
    """Overwrite the first element of ``tensor`` (float32) in place, leaving the file size alone."""
    f = next(path.glob("*.safetensors"))
    entries, _ = read_header(f)
    (n,) = struct.unpack("<Q", f.read_bytes()[:8])
    raw = bytearray(f.read_bytes())
    raw[8 + n + entries[tensor].begin: 8 + n + entries[tensor].begin + 4] = struct.pack("<f", value)
    f.write_bytes(bytes(raw))
    return f


@pytest.mark.parametrize("value, word", [(float("nan"), "NaN"), (float("inf"), "Inf"), (float("-inf"), "Inf")])
def test_nan_and_inf_are_rejected(tmp_path, value, word):
    write_trace(tmp_path / "t", checksums=False)
    f = _poke(tmp_path / "t", "fc.input", value)
    trace = load_trace(tmp_path / "t")  # structure is fine
    with pytest.raises(InputError, match=rf"{f.name}: tensor 'fc.input' holds {word}"):
        validate(trace)
    with pytest.raises(InputError, match=rf"{f.name}: tensor 'fc.input' holds {word}"):
        trace.tensor("fc.input")  # also on every read, validated or not


def test_checksum_mismatch(tmp_path):
    write_trace(tmp_path / "t")
    f = _poke(tmp_path / "t", "fc.input", 123.0)
    with pytest.raises(InputError, match=rf"{f.name}: SHA-256 differs"):
        _load_and_validate(tmp_path / "t")


def test_a_tensor_file_changed_in_place_is_refused_on_read(tmp_path):
    # same size, other bytes: the header and sizes still check out, only the checksum differs
    write_trace(tmp_path / "t")
    f = _poke(tmp_path / "t", "fc.input", 123.0)
    trace = load_trace(tmp_path / "t")  # no data read yet
    for name in ("fc.input", "conv.weight"):  # any tensor of the file, not only the changed one
        with pytest.raises(InputError, match=rf"^{f}: SHA-256 differs from manifest.json files.{f.name}.sha256"):
            trace.tensor(name)
    unverified = load_trace(tmp_path / "t", verify=False)
    assert unverified.tensor("fc.input").flat[0] == 123.0  # the bytes on disk, trusted


def test_each_file_is_hashed_once_per_trace_however_many_tensors_are_read(tmp_path, monkeypatch):
    from sparsesim.workloads.trace import reader

    rng = np.random.default_rng(0)
    with TraceWriter(tmp_path / "t", shard_bytes=1) as w:  # one file per tensor
        for op in (CONV, LINEAR, MATMUL):
            w.add_op(op, tensors={role: w.add_tensor(f"{op.name}.{role}", x) for role, x in _tensors(op, rng).items()})
    hashed = []
    real = reader.sha256_file
    monkeypatch.setattr(reader, "sha256_file", lambda path: hashed.append(path.name) or real(path))
    trace = load_trace(tmp_path / "t")
    assert len(trace.file_bytes) == 9 and hashed == []  # loading reads no data
    for _ in range(3):
        for r in trace.ops:
            trace.op_tensors(r)
    assert sorted(hashed) == sorted(trace.file_bytes)
    validate(trace)  # a full validation hashes every file itself, and its reads do not hash again
    assert sorted(hashed) == sorted(list(trace.file_bytes) * 2)
    again = pickle.loads(pickle.dumps(trace))  # another process reads the files itself: verified again
    again.tensor("fc.input")
    assert len(hashed) == 19
    hashed.clear()
    unverified = load_trace(tmp_path / "t", verify=False)
    for r in unverified.ops:
        unverified.op_tensors(r)
    assert hashed == []


def test_a_file_without_a_recorded_checksum_is_read_with_one_warning(tmp_path, caplog):
    # TraceWriter(checksums=False) writes no sha256: nothing to verify against, so the data
    # are read (schema 1 makes the field optional) and the log says they were not verified
    data = write_trace(tmp_path / "t", checksums=False)
    trace = load_trace(tmp_path / "t")
    with caplog.at_level("WARNING", logger="sparsesim"):
        for name, x in data.items():
            assert np.array_equal(trace.tensor(name), x)
    f = next((tmp_path / "t").glob("*.safetensors"))
    assert [r.getMessage() for r in caplog.records] == [
        f"{f}: manifest.json files.{f.name} records no sha256; its data are read unverified"]


@pytest.mark.parametrize("value", [123, "abc", "A" * 64, ["0" * 64]])
def test_a_malformed_checksum_is_refused_without_reading_data(tmp_path, value):
    write_trace(tmp_path / "t")
    m = _manifest(tmp_path / "t")
    name = next(iter(m["files"]))
    m["files"][name]["sha256"] = value
    _save_manifest(tmp_path / "t", m)
    with pytest.raises(InputError, match=rf"manifest.json: files.{name}.sha256: expected 64 lowercase hex digits"):
        load_trace(tmp_path / "t")


@pytest.mark.parametrize("version", [2, 0, "1", None])
def test_unknown_schema_version(tmp_path, version):
    write_trace(tmp_path / "t")
    m = _manifest(tmp_path / "t")
    m["schema_version"] = version
    _save_manifest(tmp_path / "t", m)
    with pytest.raises(InputError, match=r"manifest.json: schema_version: unsupported"):
        _load_and_validate(tmp_path / "t")


def test_not_a_trace_directory(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"empty: not a trace directory"):
        load_trace(tmp_path / "empty")
    with pytest.raises(InputError, match=r"nowhere: no such directory"):
        load_trace(tmp_path / "nowhere")


@pytest.mark.parametrize("edit, message", [
    (lambda m: m["ops"][0].update(kind="conv3d"),
     r"ops\[0\].kind: unknown op kind 'conv3d' \(did you mean 'conv2d'\?\)"),
    (lambda m: m["ops"][0]["params"].update(strid_h=1), r"ops\[0\].params: unknown field 'strid_h'"),
    (lambda m: m["ops"][0]["params"].pop("in_w"), r"ops\[0\].params: missing field 'in_w'"),
    (lambda m: m["ops"][0]["params"].update(batch=0), r"ops\[0\].params: conv.batch: must be a positive integer"),
    (lambda m: m["ops"][2].update(phases=["fwd", "bwd"]), r"ops\[2\].phases\[1\]: unknown phase 'bwd'"),
    (lambda m: m["ops"][2]["tensors"].pop("grad_output"), r"ops\[2\].tensors: phase bwd_data needs tensor"),
    (lambda m: m["ops"][1].update(step=-1), r"ops\[1\].step: expected an integer >= 0"),
    (lambda m: m.update(storage_dtype="fp8"), r"storage_dtype: unknown 'fp8'"),
    (lambda m: m["files"][next(iter(m["files"]))].update(bytes=1), r"size \d+ bytes, but manifest.json files"),
    (lambda m: m.update(ops=[]), r"ops: empty"),
])
def test_manifest_errors_name_file_and_field(tmp_path, edit, message):
    write_trace(tmp_path / "t")
    m = _manifest(tmp_path / "t")
    edit(m)
    _save_manifest(tmp_path / "t", m)
    with pytest.raises(InputError, match=message) as info:
        _load_and_validate(tmp_path / "t")
    assert str(info.value).startswith(str(tmp_path / "t")) and "\n" not in str(info.value)


def test_bad_json_manifest(tmp_path):
    write_trace(tmp_path / "t")
    (tmp_path / "t" / "manifest.json").write_text("{not json")
    with pytest.raises(InputError, match=r"manifest.json: not valid JSON"):
        load_trace(tmp_path / "t")


def test_missing_tensor_file(tmp_path):
    write_trace(tmp_path / "t")
    f = next((tmp_path / "t").glob("*.safetensors"))
    f.unlink()
    with pytest.raises(InputError, match=rf"{f.name}: missing \(listed in manifest.json files\)"):
        load_trace(tmp_path / "t")
