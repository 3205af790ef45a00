"""Speed and size of trace capture: one ResNet-18 training step at batch 8, fp16 storage.

Prints the wall time of the capture (model build, the captured forward/backward/update
step, conversion and writing, with no warm-up training), the end-to-end time of
``capture_zoo`` with the model's default warm-up, the trace's size on disk, and the time
to load and fully validate it. Targets: capture under 60 s, trace under 1 GB.
Run: ``python benchmarks/trace_capture.py`` (needs torch).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from sparsesim.workloads.capture import MODELS, capture_zoo
from sparsesim.workloads.trace import load_trace, validate


def _timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--dtype", default="fp16")
    ap.add_argument("--threads", type=int, default=1, help="PyTorch threads of the capture (default 1, as the CLI)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="trace_capture_") as tmp:
        common = dict(steps=1, batch=args.batch, mode="train", dtype=args.dtype, threads=args.threads, progress=False,
                      overwrite=True)
        capture_s, path = _timed(lambda: capture_zoo(args.model, out=Path(tmp) / "cold", warmup_steps=0, **common))
        size_mb = sum(f.stat().st_size for f in path.iterdir()) / 1e6
        load_s, trace = _timed(lambda: load_trace(path))
        validate_s, _ = _timed(lambda: validate(trace, full=True))
        warm = MODELS.get(args.model).warmup_steps
        e2e_s, _ = _timed(lambda: capture_zoo(args.model, out=Path(tmp) / "warm", **common))
    print(f"{args.model} training step, batch {args.batch}, {args.dtype} storage, torch {torch.__version__}, "
          f"{args.threads} thread(s) of {torch.get_num_threads()} available")
    print(f"  capture (build + 1 step + write):  {capture_s:7.2f} s   (target < 60 s)")
    print(f"  size on disk:                      {size_mb:7.1f} MB  (target < 1000 MB), "
          f"{len(trace.ops)} ops, {len(trace.entries)} tensors")
    print(f"  load_trace / validate(full):       {load_s:7.2f} s / {validate_s:.2f} s")
    print(f"  capture_zoo with {warm} warm-up steps: {e2e_s:7.2f} s")


if __name__ == "__main__":
    main()
