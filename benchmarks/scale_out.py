"""Scale-out: shape-only Llama-2-70B on 8 chips with tensor parallel 8, and A100 GEMMs.

Each figure is one ``sparsesim`` process (the command line a user types), timed with its
peak resident set size:

1. ``run --network llama2_70b --prompt-len 4096 --gen-len 512`` with ``system.chips=8``,
   ``system.tensor_parallel=8``, every phase, on ``a100`` chips (108 cores each) in one
   process and with ``--workers 2`` (the ops split over an embedded Dask cluster), and on
   ``dc128`` chips with the a100 preset's NVLink figures. Target < 60 s.
2. ``run --gemm M,N,K --accel a100 --json`` for large square and LLM-shaped GEMMs: the
   latency beside the tensor cores' peak (312 dense bf16 TFLOPS) and the HBM time (1555 GB/s),
   the floors the preset's specifications give.
3. A sparse replay split over the cluster: ``llama2_7b`` on one ``dc128`` chip, prompt 128 + 16
   decode steps, 50% zero activations skipped (``zero_skip:input:skipping``), in one process and
   with ``--workers 2``; the totals must be equal.

Run: ``python benchmarks/scale_out.py``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from processes import timed_process

SYSTEM = ["--set", "system.chips=8", "--set", "system.tensor_parallel=8"]
NVLINK = ["--set", "system.interconnect.topology=switch", "--set", "system.interconnect.link_bandwidth_bytes_per_s=2.5e10",
          "--set", "system.interconnect.links=12", "--set", "system.interconnect.link_latency_s=3.4e-6",
          "--set", "system.interconnect.algorithm=auto"]
GEMMS = [(8192, 8192, 8192), (4096, 4096, 4096), (2048, 8192, 28672), (2048, 28672, 8192), (1, 8192, 8192),
         (16, 8192, 28672)]


def main() -> None:
    print(f"sparsesim scale-out benchmarks, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        for accel, extra, label in (("a100", [], "a100 chips, one process"),
                                    ("a100", ["--workers", "2"], "a100 chips, --workers 2"),
                                    ("dc128", NVLINK, "dc128 chips, NVLink as a100's")):
            out = Path(tmp) / "out.json"
            wall, rss, _ = timed_process(["run", "--network", "llama2_70b", "--prompt-len", "4096", "--gen-len", "512",
                                          "--accel", accel, *SYSTEM, *extra, "--json"], stdout_path=str(out))
            system = json.loads(out.read_text())["total"]["system"]
            print(f"  llama2_70b TP8, prompt 4096 + 512 decode steps, {label}: {wall:6.1f} s, peak {rss:.2f} GB "
                  f"(target < 60 s); latency {system['latency_s']:.3f} s, decode "
                  f"{system['decode_tokens_per_s']:.1f} tokens/s, collectives {system['collective_share']:.1%}")
        replay = ["run", "--network", "llama2_7b", "--prompt-len", "128", "--gen-len", "16", "--accel", "dc128",
                  "--act-sparsity", "0.5", "--sparsity", "zero_skip:input:skipping", "--json"]
        totals = []
        for extra, label in (([], "one process"), (["--workers", "2"], "--workers 2")):
            out = Path(tmp) / "replay.json"
            wall, rss, _ = timed_process([*replay, *extra], stdout_path=str(out))
            totals.append(json.loads(out.read_text())["total"])
            print(f"  llama2_7b zero-skip replay on dc128, prompt 128 + 16 decode steps, {label}: {wall:6.1f} s, "
                  f"peak {rss:.2f} GB; {totals[-1]['cycles']} cycles")
        print(f"  the two replays' totals are {'equal' if totals[0] == totals[1] else 'DIFFERENT'}")
        for M, N, K in GEMMS:
            out = Path(tmp) / "gemm.json"
            wall, _, _ = timed_process(["run", "--gemm", f"{M},{N},{K}", "--accel", "a100", "--json"],
                                       stdout_path=str(out))
            total = json.loads(out.read_text())["total"]
            math_s = 2 * M * N * K / 312e12
            hbm_s = (M * K + K * N + M * N) * 2 / 1555e9
            floor = max(math_s, hbm_s)
            print(f"  a100 GEMM {M}x{N}x{K}: {total['latency_s'] * 1e6:9.1f} us, {total['latency_s'] / floor:.3f}x "
                  f"its floor ({'math' if math_s >= hbm_s else 'HBM'} {floor * 1e6:.1f} us); {wall:.1f} s to simulate")


if __name__ == "__main__":
    main()
