"""LLM workloads end to end: shape-only Llama-2-7B, and capture plus replay of the ~1B decoder.

Each figure is one ``sparsesim`` process (the command line a user types), timed with its
peak resident set size:

1. ``run --network llama2_7b --prompt-len 2048 --gen-len 256 --dataflow best`` on ``dc128``:
   every prefill and decode row (aggregated rows with a repeat count, see
   ``workloads/llm_networks.py``) on every dataflow. Target < 30 s.
2. ``trace capture --model llama_1b --mode decode --prompt-len 128 --gen-len 32`` (fp16
   storage): target < 5 min and < 12 GB peak RSS.
3. ``run --trace`` of that trace on ``edge32`` with ``zero_skip:input:skipping``: target < 60 s.

Run: ``python benchmarks/llm.py [--skip-capture] [--workdir DIR]`` (capture needs torch and
about 2.3 GB of disk for the trace, kept in ``--workdir`` so reruns skip the capture).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from processes import timed_process


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-capture", action="store_true", help="only the shape-only Llama-2-7B run")
    ap.add_argument("--workdir", default="runs/bench-llm", help="where the 1B trace is kept (reruns reuse it)")
    ap.add_argument("--dtype", default="fp16")
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
    trace = work / f"llama_1b-decode-{args.dtype}"
    if not trace.exists():
        wall, rss, _ = timed_process(["trace", "capture", "--model", "llama_1b", "--mode", "decode", "--prompt-len",
                                      "128", "--gen-len", "32", "--dtype", args.dtype, "--out", str(trace),
                                      "--no-progress"])
        size_gb = sum(f.stat().st_size for f in trace.iterdir()) / 2**30
        print(f"  capture llama_1b (1.10B params), prompt 128 + 32 decode steps, {args.dtype}: "
              f"{wall:6.1f} s, peak {rss:.2f} GB, trace {size_gb:.2f} GiB   (target < 300 s, < 12 GB)")
    wall, rss, done = timed_process(["run", "--trace", str(trace), "--accel", "edge32",
                                     "--sparsity", "zero_skip:input:skipping", "--json"], args.timeout)
    state = "" if done else f" NOT FINISHED (stopped after {args.timeout:.0f} s)"
    print(f"  replay of that trace on edge32, zero_skip:input:skipping, best dataflow: "
          f"{wall:6.1f} s, peak {rss:.2f} GB{state}   (target < 60 s)")


if __name__ == "__main__":
    main()
