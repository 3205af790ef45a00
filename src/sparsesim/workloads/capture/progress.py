"""Progress of a capture on stderr: a bar on a terminal, one line per stage otherwise.

A capture has stages (building the model, warm-up training, the captured steps, writing);
logs and CI output get one plain line as each starts, never a stream of ``\\r`` updates.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def stage(text: str, enabled: bool) -> None:
    """Announce a stage without steps (``capture gru: building the model``)."""
    if enabled:
        sys.stderr.write(f"{text}\n")
        sys.stderr.flush()


def steps(items: Iterable[T], *, desc: str, total: int, enabled: bool) -> Iterator[T]:
    """Iterate ``items`` with a tqdm bar on a terminal, or after one ``desc: N step(s)`` line."""
    if not enabled or total == 0:
        return iter(items)
    if sys.stderr.isatty():
        return iter(tqdm(items, desc=desc, total=total, unit="step", file=sys.stderr))
    stage(f"{desc}: {total} step{'s' if total != 1 else ''}", True)
    return iter(items)
