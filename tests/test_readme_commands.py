"""The README's shell commands run, in the order a reader meets them.

Every ``sparsesim ...`` line of the README's plain code blocks is collected (backslash
continuations joined) and run in one scratch directory, in order, so a command that needs
what an earlier one made (a trace, a sweep) finds it. A command is left out only when it
matches :data:`NOT_RUN`, each entry with its reason (the user's own files, minutes of work,
another machine); the test also fails when an entry of :data:`NOT_RUN` no longer matches any
README line, so the list cannot go stale. The Python blocks run in ``tests/app/test_api.py``.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]

NOT_RUN = {
    r"--image-size 224": "a full-size ImageNet capture: minutes and gigabytes",
    r"llama_1b_relu": "a 1B-parameter decoder: minutes",
    r"mynet\.py|mypkg\.models|layers\.csv|tensors\.npz|llama_config\.json|path/to/saved_model":
        "the user's own model or file, which the README only names",
    r"traces/mine( |$)": "reads the trace of the user's own model, captured from a file above",
    r"--scheduler tcp://": "a Dask scheduler on another machine",
    r"^sparsesim codesign ": "minutes of SmolLM2 work (tests/quality runs the pipeline on a tiny model and the real one)",
    r"^sparsesim study ": "regenerates a curated report: minutes (tests/app/test_studies.py runs --quick)",
    r"sweep configs/sweeps/bandwidth\.yaml": "64 points, over a minute (tests/app/test_sweep.py runs sweeps)",
    r"^sparsesim report runs/bw": "needs the bandwidth sweep above",
    r"validate reference --cases 2000": "2,000 cases: half a minute (tests/app/test_validate_cli.py runs it small)",
    r"--nm 2:8 --out traces/r18-2of8": "N:M-trained warm-up: a minute",
    r"--prompt-len 2048 --gen-len 256": "a 2,048-token prompt on the 7B shape: tens of seconds",
    r"validate silicon --plot": "every measured case: about 25 s (tests/app/test_validate_silicon.py runs groups)",
    r"llama2_70b --prompt-len 4096": "the 70B shape on 8 chips of 108 cores: most of a minute "
                                      "(benchmarks/scale_out.py times it)",
}


def readme_commands() -> list[str]:
    """Every ``sparsesim`` command of the README's plain (shell) code blocks, in order."""
    commands, block, lang = [], False, ""
    pending = ""
    for line in (REPO / "README.md").read_text().splitlines():
        if line.startswith("```"):
            block, lang = (not block), line[3:].strip()
            continue
        if not block or lang:
            continue
        text = pending + line.strip()
        if text.endswith("\\"):
            pending = text[:-1] + " "
            continue
        pending = ""
        text = text.split("  #")[0].strip()
        for part in text.split(";"):
            part = part.strip()
            if part.startswith("sparsesim "):
                commands.append(part)
    return commands


def _skipped(cmd: str) -> str | None:
    for pattern, reason in NOT_RUN.items():
        if re.search(pattern, cmd):
            return reason
    return None


def test_every_not_run_entry_still_matches_a_readme_command():
    commands = readme_commands()
    stale = [p for p in NOT_RUN if not any(re.search(p, c) for c in commands)]
    assert not stale, f"NOT_RUN entries matching no README command: {stale}"


def test_readme_commands_run_in_order(tmp_path):
    from sparsesim.cli.main import main

    (tmp_path / "configs").symlink_to(REPO / "configs")  # the README's paths are relative to a checkout
    ran = []
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for cmd in readme_commands():
            if _skipped(cmd):
                continue
            argv = shlex.split(cmd)[1:]
            argv = [a for a in argv if a != "[--json]"]
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    rc = main(argv)
                except SystemExit as e:  # --version and --help exit through argparse
                    rc = int(e.code or 0)
            assert rc == 0, f"`{cmd}` exited {rc}: {err.getvalue()[-500:]}"
            ran.append(cmd)
    finally:
        os.chdir(cwd)
    assert len(ran) >= 15, ran
