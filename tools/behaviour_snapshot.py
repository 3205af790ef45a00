"""Record, or compare, every number a broad set of runs gives: the check that a refactor changed no behaviour.

Usage::

    python tools/behaviour_snapshot.py record OUT_DIR [--traces DIR]
    python tools/behaviour_snapshot.py compare OLD_DIR NEW_DIR

``record`` runs a fixed matrix through the public API only (``sparsesim.simulate``,
``sparsesim.sweep``, the ``sparsesim`` command for capture and ``validate``), so the same file
runs unchanged before and after a change of the package's internals. It covers the three
presets, the three dataflows and ``best``, every sparsity feature and their combinations,
the options that switch model paths (``dram.ideal``, decoupled lanes, no pre-generation,
serialized pre-generation, ``n_major`` weights, ``swiglu_gate`` coupling with a predictor and
prefill calibration), shape-only workloads (GEMMs, a topology, built-in networks, an LLM's
shapes), synthetic traces and captured ones (a video CNN and a GRU for delta, a tiny decoder
for the gated MLP), a small sweep, and ``validate reference``. Each case's result table is
written as CSV with every float in full precision (``repr``).

Traces are written under ``--traces`` (default ``OUT_DIR/traces``) and reused when they are
already there, so a second recording against the first one's traces compares the simulator
alone; the traces' own checksums are recorded too (``traces.txt``), which compares capture.

``compare`` prints every case and cell that differ, and exits 1 if any does.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

GEMMS = [(256, 256, 256), (1000, 300, 700), (64, 4096, 4096)]
PRESETS = ["edge32", "dc128", "sat"]
DATAFLOWS = ["os", "ws", "is", "best"]
FEATURES = {
    "dense": [],
    "nm24": ["nm:2:4"],
    "nm28": ["nm:2:8"],
    "zs_in_skip": ["zero_skip:input:skipping"],
    "zs_both_skip": ["zero_skip:both:skipping"],
    "zs_w_gate": ["zero_skip:weight:gating"],
    "zs_in_skip_nofetch": ["zero_skip:input:skipping:weight_fetch=false"],
    "nm24_zs_in": ["nm:2:4", "zero_skip:input:skipping"],
    "topk_zs": ["act_policy:topk:0.25", "zero_skip:input:skipping"],
    "thr_zs": ["act_policy:threshold:0.3", "zero_skip:input:skipping"],
    "chan_zs_gate": ["act_policy:channel_threshold:0.5", "zero_skip:input:gating"],
    "relu_inert": ["act_policy:relu"],
}
SETS = {
    "ideal": {"dram.ideal": True},
    "decoupled": {"array.lanes": "decoupled"},
    "nopregen": {"training.pregen": False},
    "serial_pregen": {"training.pregen_overlap": False},
    "n_major": {"dram.weight_layout": "n_major"},
    "small_bufs": {"buffers.in.size_bytes": 4096, "buffers.weight.size_bytes": 4096, "buffers.out.size_bytes": 4096},
}


def _sparsesim(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "sparsesim", *args], check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL)


def _traces(root: Path) -> dict[str, Path]:
    """Build (once) the traces the matrix replays; ``name -> directory``."""
    root.mkdir(parents=True, exist_ok=True)
    recipes = {
        "synth_gemm": ["trace", "synth", "--gemm", "512,256,384", "--gemm", "96,640,200", "--training",
                       "--input", "uniform:0.4", "--grad", "channel:0.5", "--weight", "uniform:0.7", "--seed", "3"],
        "synth_seq": ["trace", "synth", "--gemm", "64,128,256", "--time-steps", "5", "--change", "0.2",
                      "--input", "uniform:0.6", "--seed", "5"],
        "synth_topo": ["trace", "synth", "--topology", "configs/topologies/example.csv", "--training",
                       "--input", "block:0.5:4", "--seed", "7"],
        "video_cnn": ["trace", "capture", "--model", "video_cnn", "--mode", "infer", "--batch", "1", "--seed", "0"],
        "gru": ["trace", "capture", "--model", "gru", "--mode", "infer", "--batch", "2", "--seed", "0"],
        "resnet18_nm": ["trace", "capture", "--model", "resnet18", "--mode", "train", "--batch", "2", "--nm", "2:8",
                        "--seed", "0"],
        "llama_tiny": ["trace", "capture", "--model", "llama_tiny", "--mode", "decode", "--prompt-len", "8",
                       "--gen-len", "3", "--seed", "0"],
        "llama_tiny_relu": ["trace", "capture", "--model", "llama_tiny_relu", "--mode", "decode", "--prompt-len", "8",
                            "--gen-len", "3", "--seed", "0"],
    }
    out = {}
    for name, args in recipes.items():
        path = root / name
        if not (path / "header.json").exists() and not any(path.glob("*.json")):
            _sparsesim(*args, "--out", str(path))
        out[name] = path
    return out


def _cases(traces: dict[str, Path]):
    """``(name, workload spec factory, accel, dataflow, sparsity, sets)`` of every case."""
    import sparsesim as s

    for M, N, K in GEMMS:
        for preset in PRESETS:
            for df in DATAFLOWS:
                for fname in ("dense", "nm24", "zs_in_skip", "zs_both_skip", "nm24_zs_in"):
                    yield (f"gemm{M}x{N}x{K}-{preset}-{df}-{fname}", lambda M=M, N=N, K=K: s.gemm(M, N, K, training=True),
                           preset, df, FEATURES[fname], {})
    for fname, feats in FEATURES.items():
        yield f"topo-edge32-best-{fname}", lambda: s.topology("configs/topologies/example.csv", training=True), \
            "edge32", "best", feats, {}
    for sname, sets in SETS.items():
        for fname in ("dense", "nm24", "zs_both_skip", "nm24_zs_in"):
            yield f"topo-sat-best-{fname}-{sname}", lambda: s.topology("configs/topologies/example.csv", training=True), \
                "sat", "best", FEATURES[fname], sets
    yield "net-resnet18-sat-nm28", lambda: s.network("resnet18", training=True), "sat", "best", ["nm:2:8"], {}
    yield "net-mobilenetv2-edge32-zs", lambda: s.network("mobilenetv2"), "edge32", "best", ["zero_skip:both:skipping"], {}
    yield "net-bert-dc128-dense", lambda: s.network("bert"), "dc128", "best", [], {}
    yield "net-vit-dc128-ws-dense", lambda: s.network("vit"), "dc128", "ws", [], {}
    yield "net-llama2-dc128-dense", lambda: s.network("llama2_7b", prompt_len=16, gen_len=2), "dc128", "best", [], {}
    yield "net-mixtral-dc128-dense", lambda: s.network("mixtral_8x7b", prompt_len=8, gen_len=1), "dc128", "best", [], {}
    for tname in ("synth_gemm", "synth_topo"):
        for preset in ("edge32", "sat"):
            for fname in ("dense", "nm24", "zs_both_skip", "zs_w_gate", "nm24_zs_in", "topk_zs", "thr_zs",
                          "chan_zs_gate"):
                for df in ("os", "ws", "best"):
                    yield (f"{tname}-{preset}-{df}-{fname}", lambda t=traces[tname]: s.trace(t), preset, df,
                           FEATURES[fname], {})
    for tname in ("synth_seq", "video_cnn", "gru"):
        for theta in ("0", "0.05", "0.3"):
            for fetch in ("true", "false"):
                for df in ("os", "ws", "best"):
                    yield (f"{tname}-edge32-{df}-delta{theta}-fetch{fetch}", lambda t=traces[tname]: s.trace(t),
                           "edge32", df, [f"delta:{theta}:weight_fetch={fetch}"], {})
        yield (f"{tname}-edge32-best-delta-policy", lambda t=traces[tname]: s.trace(t), "edge32", "best",
               ["delta:0.1", "act_policy:threshold:0.2"], {})
    for fname, feats in (("nm28", ["nm:2:8"]), ("nm28_zs", ["nm:2:8", "zero_skip:both:skipping"]),
                         ("dense", []), ("zs_grad", ["zero_skip:grad:skipping"])):
        for sname, sets in (("", {}), ("nopregen", {"training.pregen": False}),
                            ("serial", {"training.pregen_overlap": False})):
            yield (f"resnet18_nm-sat-best-{fname}-{sname}", lambda: s.trace(traces["resnet18_nm"]), "sat", "best",
                   feats, sets)
    gate = "site=swiglu_gate"
    for tname in ("llama_tiny", "llama_tiny_relu"):
        for label, feats in (
                ("dense", []),
                ("zs", ["zero_skip:input:skipping"]),
                ("gate_thr", [f"act_policy:threshold:0.1:{gate}", "zero_skip:input:skipping"]),
                ("gate_cal", [f"act_policy:threshold:0.1:{gate}:calibrate=prefill:sparsity=0.6",
                              "zero_skip:input:skipping"]),
                ("gate_pred", [f"act_policy:topk:0.3:{gate}:predictor=lowrank", "zero_skip:input:skipping"]),
                ("gate_nm", [f"act_policy:threshold:0.05:{gate}", "nm:2:4"]),
                ("input_topk", ["act_policy:topk:0.5", "zero_skip:input:skipping"])):
            for df in ("os", "best"):
                yield (f"{tname}-dc128-{df}-{label}", lambda t=traces[tname]: s.trace(t), "dc128", df, feats,
                       {"array.nm_ratios": ["2:4", "2:8", "1:8", "1:4"]} if "nm" in label else {})


def _write(frame, path: Path) -> None:
    import pandas as pd

    frame = frame.reindex(sorted(frame.columns), axis=1)
    text = frame.astype(object).map(lambda v: repr(v) if isinstance(v, float) else v) \
        if hasattr(frame, "map") else frame.astype(object).applymap(repr)
    pd.DataFrame(text).to_csv(path, index=False)


def record(out: Path, traces_dir: Path | None) -> None:
    import sparsesim as s

    out.mkdir(parents=True, exist_ok=True)
    traces = _traces(traces_dir or out / "traces")
    lines = []
    for name, path in sorted(traces.items()):
        info = subprocess.run([sys.executable, "-m", "sparsesim", "trace", "info", str(path)],
                              capture_output=True, text=True)
        lines.append(f"## {name}\n{info.stdout.strip() if info.returncode == 0 else info.stderr.strip()}")
    (out / "traces.txt").write_text("\n".join(lines) + "\n")
    cases = out / "cases"
    cases.mkdir(exist_ok=True)
    n = 0
    for name, spec, accel, df, feats, sets in _cases(traces):
        try:
            res = s.simulate(spec(), accel=accel, dataflow=df, sparsity=feats, sets=sets or None)
            frame = res.to_pandas()
            frame["_total"] = json.dumps(res.total, sort_keys=True, default=repr)
        except s.InputError as exc:  # a refusal is behaviour too
            import pandas as pd

            frame = pd.DataFrame({"error": [str(exc)]})
        _write(frame, cases / f"{name}.csv")
        n += 1
    sweep_out = out / "sweep"
    frame = s.sweep("configs/sweeps/nm_sparsity.yaml", sweep_out, workers=1)
    _write(frame.drop(columns=[c for c in frame.columns if "time" in c or c.endswith("_s")], errors="ignore")
           .sort_values(list(frame.columns[:4])).reset_index(drop=True), cases / "sweep-nm_sparsity.csv")
    val = subprocess.run([sys.executable, "-m", "sparsesim", "validate", "reference", "--cases", "300", "--seed", "11",
                          "--json"], capture_output=True, text=True)
    report = json.loads(val.stdout) if val.returncode == 0 else {"error": val.stderr}
    for key in list(report):
        if "second" in key or key.endswith("_s"):
            report.pop(key)
    (cases / "validate-reference.json").write_text(json.dumps(report, indent=1, sort_keys=True, default=repr))
    print(f"{n + 2} cases -> {cases}")


def compare(old: Path, new: Path) -> int:
    import pandas as pd

    a, b = {p.name for p in (old / "cases").iterdir()}, {p.name for p in (new / "cases").iterdir()}
    bad = 0
    for name in sorted(a ^ b):
        print(f"only in one: {name}")
        bad += 1
    for name in sorted(a & b):
        pa, pb = old / "cases" / name, new / "cases" / name
        if pa.read_bytes() == pb.read_bytes():
            continue
        bad += 1
        if name.endswith(".csv"):
            fa, fb = pd.read_csv(pa, dtype=str), pd.read_csv(pb, dtype=str)
            cols = sorted(set(fa.columns) ^ set(fb.columns))
            if cols:
                print(f"{name}: columns only in one: {cols}")
            if len(fa) != len(fb):
                print(f"{name}: {len(fa)} rows -> {len(fb)}")
                continue
            for col in sorted(set(fa.columns) & set(fb.columns)):
                diff = fa[col].fillna("<na>") != fb[col].fillna("<na>")
                for i in diff[diff].index[:3]:
                    print(f"{name} row {i} {col}: {fa.at[i, col]} -> {fb.at[i, col]}")
        else:
            print(f"{name}: differs")
    ta, tb = (old / "traces.txt").read_text(), (new / "traces.txt").read_text()
    if ta != tb:
        print("traces.txt differs (capture changed)")
        bad += 1
    print(f"{len(a & b)} cases compared, {bad} differ")
    return 1 if bad else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("out", type=Path)
    r.add_argument("--traces", type=Path)
    c = sub.add_parser("compare")
    c.add_argument("old", type=Path)
    c.add_argument("new", type=Path)
    args = ap.parse_args()
    os.environ.setdefault("SPARSESIM_NO_PROGRESS", "1")
    if args.cmd == "record":
        record(args.out, args.traces)
        return 0
    return compare(args.old, args.new)


if __name__ == "__main__":
    sys.exit(main())
