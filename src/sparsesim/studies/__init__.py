"""Case studies: each regenerates one curated report under ``reports/`` with one command.

``sparsesim study NAME --out reports/NAME`` captures (or reuses) the traces it needs, runs
the configurations, and writes ``README.md`` with its figures and a CSV of the numbers.
One file per study, registered in :data:`STUDIES`.
"""

from __future__ import annotations

from sparsesim.studies.common import STUDIES
from sparsesim.studies import (architectures, codesign, delta, llm_decode, memory, sat,  # noqa: F401  (register)
                               scale_out, training_dynamics, zero_skip)

__all__ = ["STUDIES"]
