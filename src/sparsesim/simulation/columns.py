"""Values of a result column as figures and reports show them: order, kind and short text.

Shared by :mod:`sparsesim.plots` (figures) and :mod:`sparsesim.report` (Markdown/HTML), so a
swept value is ordered and printed the same way in a legend and in a table.
"""

from __future__ import annotations

import numpy as np


def ordered(values) -> list:
    """Unique values in first-seen order."""
    return list(dict.fromkeys(values))


def is_numeric(values) -> bool:
    """Whether every value is a real number (booleans are not)."""
    return all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
               for v in values)


def fmt_value(value, digits: int = 6) -> str:
    """A value as short text: floats to ``digits`` significant digits, anything else as ``str``."""
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}g}"
    return str(value)
