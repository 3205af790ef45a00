"""Progress of long work on stderr, through :mod:`logging` (library code never prints).

Library modules log one INFO line per stage (``log.info("capturing resnet18 ...")``) on their
own ``sparsesim.*`` logger. Nothing shows unless a handler is installed: the command line
installs one with :func:`show_progress`, which writes ``# [  12 s] capturing resnet18 ...``
to stderr (the time since the command started) and warnings as ``warning: ...``; a script
or notebook calls it itself, or configures :mod:`logging` as it likes.

Counted work (a sweep's points) uses :func:`counter`: a ``tqdm`` bar when stderr is a
terminal, and otherwise a line at every tenth of the total, so a log file or CI output gets
a handful of lines instead of thousands of ``\\r`` updates.
"""

from __future__ import annotations

import logging
import sys
import time

from tqdm import tqdm

ROOT = "sparsesim"
"""The logger every module's logger descends from."""

_HANDLER_NAME = "sparsesim-progress"


class _StderrHandler(logging.StreamHandler):
    """A handler writing to whatever ``sys.stderr`` is at the time (test capture swaps it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.set_name(_HANDLER_NAME)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it; the property always reads sys.stderr
        pass


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            return f"warning: {message}"
        return f"# [{record.relativeCreated / 1000:5.0f} s] {message}"


def show_progress(level: int = logging.INFO) -> None:
    """Send ``sparsesim`` progress lines (``level`` and up) to stderr; calling again only sets the level."""
    logger = logging.getLogger(ROOT)
    logger.setLevel(level)
    if not any(h.get_name() == _HANDLER_NAME for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(_Formatter())
        logger.addHandler(handler)
        logger.propagate = False


class _LogCounter:
    """A counter that logs ``desc: done/total`` at every tenth of ``total`` and at the end."""

    def __init__(self, log: logging.Logger, total: int, initial: int, desc: str, unit: str) -> None:
        self.log, self.total, self.n, self.desc, self.unit = log, total, initial, desc, unit
        self.failed = 0
        self.start = time.monotonic()
        self.start_n = initial
        self.step = max(1, -(-total // 10))  # ceil: at most ten lines plus the last
        self.next_report = (initial // self.step + 1) * self.step

    def update(self, n: int = 1, failed: int | None = None) -> None:
        self.n += n
        if failed is not None:
            self.failed = failed
        if self.n >= self.next_report or self.n >= self.total:
            self.next_report = (self.n // self.step + 1) * self.step
            self._report()

    def _report(self) -> None:
        elapsed = time.monotonic() - self.start
        rate = (self.n - self.start_n) / elapsed if elapsed > 0 else 0.0
        eta = f", about {(self.total - self.n) / rate:.0f} s left" if rate > 0 and self.n < self.total else ""
        failed = f", {self.failed} failed" if self.failed else ""
        self.log.info("%s: %d/%d %s%s%s", self.desc, self.n, self.total, self.unit, failed, eta)

    def close(self) -> None:
        pass


class _BarCounter:
    """A ``tqdm`` bar on stderr (terminals only)."""

    def __init__(self, total: int, initial: int, desc: str, unit: str) -> None:
        self.bar = tqdm(total=total, initial=initial, file=sys.stderr, unit=unit, desc=desc, dynamic_ncols=True,
                        smoothing=0.05, postfix={"failed": 0})

    def update(self, n: int = 1, failed: int | None = None) -> None:
        if failed is not None:
            self.bar.set_postfix(failed=failed, refresh=False)
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()


class _Silent:
    def update(self, n: int = 1, failed: int | None = None) -> None:
        pass

    def close(self) -> None:
        pass


def counter(log: logging.Logger, *, total: int, initial: int = 0, desc: str, unit: str, enabled: bool = True):
    """A progress counter with ``update(n, failed=None)`` and ``close()``: a bar on a terminal,
    progress lines through ``log`` otherwise, nothing when not ``enabled``."""
    if not enabled:
        return _Silent()
    if sys.stderr.isatty():
        return _BarCounter(total, initial, desc, unit)
    return _LogCounter(log, total, initial, desc, unit)
