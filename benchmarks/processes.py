"""Timing one ``sparsesim`` command as its own process, with that process's peak RSS (Linux).

Shared by the end-to-end benchmarks (``llm.py``, ``full_size.py``), which import it from
their own directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time


def timed_process(argv: list[str], timeout_s: float | None = None,
                  stdout_path: str | None = None) -> tuple[float, float, bool]:
    """``(wall seconds, peak RSS in GB, finished)`` of ``sparsesim ARGV``, and a line on stdout
    with its CPU seconds (user + system), which a loaded machine inflates less than wall time.
    The command's own output goes to ``stdout_path`` if given, else nowhere.

    A process still running after ``timeout_s`` is killed (``finished`` False). A process
    that fails ends the benchmark with its stderr.
    """
    t0 = time.perf_counter()
    with tempfile.TemporaryFile(mode="w+") as err:
        out = open(stdout_path, "w") if stdout_path else subprocess.DEVNULL
        try:
            proc = subprocess.Popen([sys.executable, "-m", "sparsesim", *argv], stdout=out, stderr=err)
        finally:
            if stdout_path:
                out.close()  # the child holds its own copy
        finished = True
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)  # this child's own rusage
            if pid:
                break
            if timeout_s is not None and time.perf_counter() - t0 > timeout_s:
                os.kill(proc.pid, signal.SIGKILL)
                finished = False
                _, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.2)
        wall = time.perf_counter() - t0
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        if finished and code != 0:
            err.seek(0)
            raise SystemExit(f"failed ({code}): sparsesim {' '.join(argv)}\n{err.read()}")
    print(f"    [{wall:.1f} s wall, {usage.ru_utime + usage.ru_stime:.1f} s CPU] sparsesim {' '.join(argv)}")
    return wall, usage.ru_maxrss / 2**20, finished
