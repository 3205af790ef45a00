"""LLM workloads end to end: shape-only Llama-2-7B, and capture plus replay of the ~1B decoder.

Each figure is one ``sparsesim`` process (the command line a user types), timed with its
peak resident set size:

1. ``run --network llama2_7b --prompt-len 2048 --gen-len 256 --dataflow best`` on ``dc128``:
   every prefill and decode row (aggregated rows with a repeat count, see
   ``src/sparsesim/workloads/llm_networks.py``) on every dataflow. Target < 30 s.
2. ``trace capture --model llama_1b --mode decode --prompt-len 128 --gen-len 32`` (fp16
   storage): target < 5 min and < 12 GB peak RSS.
3. ``run --trace`` of that trace on ``edge32`` with ``zero_skip:input:skipping``: target < 60 s.
4. With ``--relu``: the same capture and replay of ``llama_1b_relu`` (ProSparse-style
   ``relu(gate) * up``), whose down projections see exact zeros, so weight rows are skipped in
   decode and the replay maps one GEMM per distinct set of live rows; prints the decode
   speedup and the weight bytes skipped beside the time.

Run: ``python benchmarks/llm.py [--skip-capture] [--relu] [--workdir DIR]`` (capture needs
torch and about 2.3 GB of disk per trace, kept in ``--workdir`` so reruns skip the capture).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from processes import timed_process


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-capture", action="store_true", help="only the shape-only Llama-2-7B run")
    ap.add_argument("--workdir", default="runs/bench-llm", help="where the 1B trace is kept (reruns reuse it)")
    ap.add_argument("--dtype", default="fp16")
    ap.add_argument("--relu", action="store_true", help="also capture and replay llama_1b_relu")
    ap.add_argument("--timeout", type=float, default=900.0, help="stop the replay after this many seconds")
    args = ap.parse_args()
    print(f"sparsesim LLM benchmarks, {os.cpu_count()} CPUs")
    wall, rss, _ = timed_process(["run", "--network", "llama2_7b", "--prompt-len", "2048", "--gen-len", "256",
                                  "--accel", "dc128", "--dataflow", "best", "--json"])
    print(f"  shape-only llama2_7b, prompt 2048 + 256 decode steps, dc128, best of all dataflows: "
          f"{wall:6.1f} s, peak {rss:.2f} GB   (target < 30 s)")
    if args.skip_capture:
        return
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    for model in ("llama_1b", "llama_1b_relu") if args.relu else ("llama_1b",):
        trace = work / f"{model}-decode-{args.dtype}"
        if not trace.exists():
            wall, rss, _ = timed_process(["trace", "capture", "--model", model, "--mode", "decode", "--prompt-len",
                                          "128", "--gen-len", "32", "--dtype", args.dtype, "--out", str(trace),
                                          "--no-progress"])
            size_gb = sum(f.stat().st_size for f in trace.iterdir()) / 2**30
            print(f"  capture {model} (1.10B params), prompt 128 + 32 decode steps, {args.dtype}: "
                  f"{wall:6.1f} s, peak {rss:.2f} GB, trace {size_gb:.2f} GiB   (target < 300 s, < 12 GB)")
        result = work / f"{model}-replay.json"
        wall, rss, done = timed_process(["run", "--trace", str(trace), "--accel", "edge32",
                                         "--sparsity", "zero_skip:input:skipping", "--json"], args.timeout,
                                        stdout_path=str(result))
        state = "" if done else f" NOT FINISHED (stopped after {args.timeout:.0f} s)"
        print(f"  replay of the {model} trace on edge32, zero_skip:input:skipping, best dataflow: "
              f"{wall:6.1f} s, peak {rss:.2f} GB{state}   (target < 60 s)")
        if done:
            decode = [r for r in json.loads(result.read_text())["layers"] if r["phase"] == "decode"]
            dense = sum(r["dense_cycles"] for r in decode)
            print(f"    decode: {dense / sum(r['cycles'] for r in decode):.2f}x over dense, "
                  f"{sum(r['weight_bytes_skipped'] for r in decode) / 1e9:.2f} GB of weights not fetched")


if __name__ == "__main__":
    main()
