"""Full-size CNN end to end: ResNet-50 at 224x224, batch 8, one training step, then two replays.

Each figure is one ``sparsesim`` process, timed with its own peak resident set size:

1. ``trace capture --model resnet50 --image-size 224 --batch 8 --steps 1 --warmup-steps 0
   --dtype fp16``: forward, backward and update with every conv/linear input, weight and
   output gradient recorded. Target < 5 min and < 8 GB.
2. ``run --trace ... --accel sat --sparsity nm:2:8 --training`` (BDWP replay of all three
   phases). Target < 60 s.
3. ``run --trace ... --accel edge32 --sparsity zero_skip:input:skipping --training``.
   Target < 60 s.

A replay still running after ``--timeout`` seconds is stopped and reported as such.
Run: ``python benchmarks/full_size.py [--workdir DIR]`` (needs torch; the trace is about
1.5 GB and is kept in ``--workdir`` for reruns, which then skip the capture).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from processes import timed_process


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default="runs/bench-full-size", help="where the trace is kept")
    ap.add_argument("--timeout", type=float, default=900.0, help="stop a replay after this many seconds")
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    trace = work / "resnet50-224-train"
    print(f"ResNet-50 at 224x224, batch 8, one training step, {os.cpu_count()} CPUs")
    if not trace.exists():
        wall, rss, _ = timed_process(["trace", "capture", "--model", "resnet50", "--image-size", "224", "--batch", "8",
                                      "--steps", "1", "--warmup-steps", "0", "--dtype", "fp16", "--out", str(trace),
                                      "--no-progress"])
        size_gb = sum(f.stat().st_size for f in trace.iterdir()) / 2**30
        print(f"  capture: {wall:6.1f} s, peak {rss:.2f} GB, trace {size_gb:.2f} GiB   (target < 300 s, < 8 GB)")
    for accel, feature in (("sat", "nm:2:8"), ("edge32", "zero_skip:input:skipping")):
        wall, rss, done = timed_process(["run", "--trace", str(trace), "--accel", accel, "--sparsity", feature,
                                         "--training", "--json"], args.timeout)
        state = "" if done else f" NOT FINISHED (stopped after {args.timeout:.0f} s)"
        print(f"  replay on {accel}, {feature}, all three phases, best dataflow: {wall:6.1f} s, "
              f"peak {rss:.2f} GB{state}   (target < 60 s)")


if __name__ == "__main__":
    main()
