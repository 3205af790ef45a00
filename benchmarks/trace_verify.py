"""Cost of verifying a trace's checksums on replay: replay time with and without verification.

A replay checks each tensor file's SHA-256 once, before its first read
(:mod:`sparsesim.workloads.trace.reader`). This times whole replays of one trace with
``verify=True`` and ``verify=False``, dense and with input zero-skipping, and prints the
overhead. Target: under 10% of the replay time. Times are the process's CPU seconds (the
replay and the hashing are single-threaded, and CPU time is far less disturbed than wall time
by other work on a shared machine; wall seconds are printed too). Each setting runs once to
warm the kernels, the mapper's caches and the page cache, then ``--repeats`` times
interleaved, and the minimum of each is compared. The CPU time to hash the trace's files
alone, and its share of the unverified replay, is the overhead measured without the noise of
two replays.

Default trace: a MobileNetV2 training step (batch 1, CIFAR size) captured into a temporary
directory (needs torch); ``--trace DIR`` times an existing trace instead.
Run: ``python benchmarks/trace_verify.py [--trace DIR] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from sparsesim.hardware.presets import load_accel
from sparsesim.sparsity import cli_sparsity
from sparsesim.simulation.run import simulate_rows
from sparsesim.workloads.trace import load_trace
from sparsesim.workloads.trace.writer import sha256_file

FEATURES = {"dense": [], "zero_skip:input:skipping": ["zero_skip:input:skipping"]}


def replay_s(path: Path, cfg, verify: bool) -> tuple[float, float]:
    """CPU and wall seconds of one replay of ``path``."""
    c0, w0 = time.process_time(), time.perf_counter()
    simulate_rows(load_trace(path, verify=verify).workload(), cfg, "os")
    return time.process_time() - c0, time.perf_counter() - w0


def hash_s(path: Path) -> float:
    c0 = time.process_time()
    for f in sorted(path.glob("*.safetensors")):
        sha256_file(f)
    return time.process_time() - c0


def measure(path: Path, repeats: int) -> None:
    size = sum(f.stat().st_size for f in path.glob("*.safetensors"))
    trace = load_trace(path)
    hashing = min(hash_s(path) for _ in range(repeats))
    print(f"trace {path}: {len(trace.ops)} ops, {len(trace.file_bytes)} file(s), {size / 2**20:.1f} MiB; "
          f"hashing its files alone: {hashing:.3f} CPU s")
    print(f"  {'features':26s} {'verify CPU s':>13s} {'no-verify CPU s':>16s} {'overhead':>9s} {'hash share':>11s}"
          f" {'(wall s: verify / no-verify)':>30s}")
    for label, spec in FEATURES.items():
        cfg = load_accel("edge32", [], {"sparsity": cli_sparsity(spec)})
        replay_s(path, cfg, True), replay_s(path, cfg, False)  # warm-up, not counted
        on, off = [], []
        for _ in range(repeats):
            on.append(replay_s(path, cfg, True))
            off.append(replay_s(path, cfg, False))
        cpu_on, cpu_off = min(c for c, _ in on), min(c for c, _ in off)
        wall_on, wall_off = min(w for _, w in on), min(w for _, w in off)
        print(f"  {label:26s} {cpu_on:13.3f} {cpu_off:16.3f} {(cpu_on - cpu_off) / cpu_off:9.1%} "
              f"{hashing / cpu_off:11.1%} {wall_on:17.3f} / {wall_off:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", metavar="DIR", help="time this trace instead of capturing one")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if args.trace:
        measure(Path(args.trace), args.repeats)
        return
    from sparsesim.workloads.capture import capture_zoo

    with tempfile.TemporaryDirectory(prefix="trace_verify_") as tmp:
        path = capture_zoo("mobilenetv2", batch=1, out=Path(tmp) / "mnv2", progress=False)
        measure(path, args.repeats)


if __name__ == "__main__":
    main()
