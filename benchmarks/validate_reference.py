"""Speed of ``sparsesim validate reference``: cases per second, and where the time goes.

Draws 200 cases (seed 0) and times the cycle-by-cycle reference and the fast model apart,
printing cases per second, the simulated reference cycles x PEs per second, and the
projected time of the full ``--cases 2000`` run (target: a few minutes).
Run: ``python benchmarks/validate_reference.py``.
"""

from __future__ import annotations

import time

from sparsesim.hardware.reference import ArraySpec, DeltaEncoder, run_array, weight_slots
from sparsesim.validate import _operands, draw_case, fast_rows, zero_logic

CASES = 200


def main() -> None:
    cases = [draw_case(0, i) for i in range(CASES)]
    t_fast = t_ref = 0.0
    pe_cycles = 0
    for case in cases:
        t0 = time.perf_counter()
        fast_rows(case)
        t_fast += time.perf_counter() - t0
        zeros, nm = zero_logic(case)
        spec = ArraySpec(rows=case.rows, cols=case.cols, dataflow=case.dataflow, fold_overlap=case.fold_overlap,
                         lanes=case.lanes, sync_window_steps=case.sync_window_steps)
        delta = next((float(f.split(":")[1]) for f in case.features if f.startswith("delta")), None)
        encoder = None
        t0 = time.perf_counter()
        for x in case.inputs:
            a, b = _operands(case, x.astype("int64"))
            if delta is not None:
                encoder = encoder or DeltaEncoder(a.shape, b.shape[1], delta)
                a = encoder.encode(a)
            run = run_array(a, weight_slots(b, nm), b.shape[1], spec, zeros)
            pe_cycles += run.cycles * case.rows * case.cols
        t_ref += time.perf_counter() - t0
    total = t_fast + t_ref
    print(f"{CASES} cases: reference {t_ref:.1f} s ({pe_cycles / t_ref / 1e6:.2f} M PE-cycles/s), "
          f"fast model {t_fast:.1f} s; {CASES / total:.1f} cases/s; "
          f"projected --cases 2000: {2000 / CASES * total:.0f} s")


if __name__ == "__main__":
    main()
