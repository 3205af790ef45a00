"""The replay's cache of what it derives from shared weights changes no number, and is used."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sparsesim.hardware.energy import energy_table  # noqa: E402
from sparsesim.sparsity import parse_features  # noqa: E402
from sparsesim.api import accel_config  # noqa: E402
from sparsesim.simulation import replay as replay_module  # noqa: E402
from sparsesim.simulation.replay import WEIGHT_CACHE_BYTES, Replay  # noqa: E402
from sparsesim.workloads.capture.llm import InferenceCapture, capture_llm  # noqa: E402
from sparsesim.workloads.trace import load_trace  # noqa: E402


@pytest.fixture(scope="module")
def decode_trace(tmp_path_factory):
    spec = InferenceCapture(mode="decode", prompt_len=5, gen_len=4, batch=1)
    out = tmp_path_factory.mktemp("cache") / "relu"
    return capture_llm(out=out, spec=spec, model="llama_tiny_relu", progress=False)


class CountingSource:
    """The trace's tensor source, counting how often a weight is read."""

    def __init__(self, source):
        self.source = source
        self.weight_reads = 0

    def tensor_names(self, index):
        return self.source.tensor_names(index)

    def tensors(self, index, roles=None):
        out = self.source.tensors(index) if roles is None else self.source.tensors(index, roles)
        self.weight_reads += out["weight"] is not None
        return out


def replay(path, sparsity, dataflow, cache_bytes, monkeypatch=None):
    """Rows and weight reads; ``cache_bytes`` 0 and ``monkeypatch`` given: no cache at all (the
    timed outcomes are dropped as soon as they are stored)."""
    if monkeypatch is not None:
        monkeypatch.setattr(replay_module, "MAX_TIMED", 0)
    workload = load_trace(path).workload()
    source = CountingSource(workload.source)
    workload = type(workload)(workload.name, workload.ops, workload.phases, time_steps=workload.time_steps,
                              source=source, meta=workload.meta)
    cfg = accel_config("edge32", sparsity=sparsity)
    rows = Replay(workload, cfg, dataflow, parse_features(cfg.sparsity), energy_table(cfg.energy_table),
                  weight_cache_bytes=cache_bytes).rows()
    return rows, source.weight_reads


def same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("sparsity, dataflow", [
    (["zero_skip:input:skipping"], "best"),
    (["zero_skip:both:skipping"], "os"),  # B masks and the weights' stored density come from the cache
    (["nm:2:4", "zero_skip:input:gating"], "ws"),  # pruned weights' masks
    (["delta:0.05"], "is"),  # the delta error needs the weights themselves
])
def test_cached_replay_equals_uncached(decode_trace, sparsity, dataflow, monkeypatch):
    with monkeypatch.context() as patch:
        plain, reads_plain = replay(decode_trace, sparsity, dataflow, 0, patch)
    cached, reads_cached = replay(decode_trace, sparsity, dataflow, WEIGHT_CACHE_BYTES)
    tight, reads_tight = replay(decode_trace, sparsity, dataflow, 40_000)  # a few masks: evicts all the time
    assert len(plain) == len(cached) == len(tight) > 0
    for p, c, t in zip(plain, cached, tight):
        assert same(p, c) and same(p, t), p["name"]
    trace = load_trace(decode_trace)
    linear = [r for r in trace.ops if r.op.kind == "linear"]
    # what a row derives from a weight depends on the weight and the GEMM's shape (prefill or
    # decode, and its tokens)
    uses = {(r.tensors.get("weight"), r.phases, r.op.tokens) for r in linear}
    assert len({r.tensors.get("weight") for r in linear}) < len(uses) < len(linear)
    # uncached: every op reads its weight; cached: once per use (matmuls read their KV operand)
    assert reads_plain == len(trace.ops)
    assert reads_cached == len(trace.ops) - len(linear) + len(uses)
    assert reads_cached <= reads_tight <= reads_plain


def test_weight_masks_are_not_built_when_no_feature_reads_them(decode_trace):
    """Input zero-skipping never looks at the weights' zeros: the cache holds no arrays."""
    workload = load_trace(decode_trace).workload()
    cfg = accel_config("edge32", sparsity=["zero_skip:input:skipping"])
    run = Replay(workload, cfg, "os", parse_features(cfg.sparsity), energy_table(cfg.energy_table))
    run.rows()
    assert run.shared.entries and run.shared.held_bytes == 0
    assert all(e.masks is None and e.seen is None for e in run.shared.entries.values())
    assert np.isfinite([r["cycles"] for r in run.rows()]).all()


@pytest.mark.parametrize("sparsity", [
    ["act_policy:threshold:0.01:site=swiglu_gate", "zero_skip:input:skipping"],
    ["act_policy:topk:0.5:site=swiglu_gate:predictor=lowrank", "zero_skip:both:skipping"],
])
def test_swiglu_gate_coupling_cached_equals_uncached(decode_trace, sparsity, monkeypatch):
    """Gate and up weights are kept by name for the gate mask and the narrowed GEMMs."""
    with monkeypatch.context() as patch:
        plain, reads_plain = replay(decode_trace, sparsity, "os", 0, patch)
    cached, reads_cached = replay(decode_trace, sparsity, "os", WEIGHT_CACHE_BYTES)
    tight, _ = replay(decode_trace, sparsity, "os", 40_000)
    assert len(plain) == len(cached) == len(tight) > 0
    assert any(r["gate_live_columns"] is not None for r in plain)
    for p, c, t in zip(plain, cached, tight):
        assert same(p, c) and same(p, t), p["name"]
    trace = load_trace(decode_trace)
    mlp = [r for r in trace.ops if r.name.endswith(("gate_proj", "up_proj"))]
    # gate and up read each of their weights once (then kept); uncached, every op reads its own
    assert reads_plain == len(trace.ops)
    assert reads_cached <= len(trace.ops) - len(mlp) + len({r.tensors.get("weight") for r in mlp})


def test_the_cache_never_serves_a_weight_whose_file_changed(decode_trace, tmp_path):
    """The cache keeps what a replay derived from weights it read, and those reads verify the
    file first: a weight changed on disk is refused before anything is derived from it, by
    the cached replay and by a second replay of the same trace alike."""
    import shutil
    import struct

    from sparsesim.core.errors import InputError
    from sparsesim.workloads.trace.header import read_header

    copy = tmp_path / "relu"
    shutil.copytree(decode_trace, copy)
    assert len(replay(copy, ["zero_skip:both:skipping"], "os", WEIGHT_CACHE_BYTES)[0]) > 0
    name = next(r.tensors["weight"] for r in load_trace(copy).ops if r.op.kind == "linear")
    entry = load_trace(copy).entries[name]
    f = copy / entry.file
    raw = bytearray(f.read_bytes())
    (n,) = struct.unpack("<Q", raw[:8])
    at = 8 + n + entry.begin
    raw[at: at + 4] = struct.pack("<f", struct.unpack("<f", raw[at: at + 4])[0] + 1.0)
    f.write_bytes(bytes(raw))
    assert read_header(f)[0][name] == entry  # same layout: only the checksum tells
    for cache_bytes in (WEIGHT_CACHE_BYTES, 0):
        with pytest.raises(InputError, match=rf"^{f}: SHA-256 differs"):
            replay(copy, ["zero_skip:both:skipping"], "os", cache_bytes)
