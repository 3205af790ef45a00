"""SRAM energy and area against word width and bank count, from a fit to CACTI points.

An energy table prices an SRAM access by capacity alone: its ``sram_pj_per_64b`` curve is the
energy of one 64-bit access, and ``sram_um2_per_bit`` the area of a bit. ``energy.sram`` names a
fit (a built-in under ``sram_fits/``, or a YAML file) of CACTI runs over capacity, word width
and banks (``tools/cacti_sram_fit.py``): ``log(value) = const + a log(size) + b log(word) +
c log(banks)``. The simulator takes from it only how the value moves with the word and the
banks, at the table's own capacity curve and node:

* energy of one access of a buffer of ``size`` bytes with words of ``W`` bytes in ``B`` banks:
  the table's 64-bit access at ``size`` times ``(W / 8) ** b_read * B ** c_read`` (reads; writes
  with the write fit's exponents); per byte, that over ``W``;
* area: the table's bits times per-bit area, times ``(W / 8) ** b_area * B ** c_area``.

At the fit's reference (8-byte words, one bank) both equal the table's. The fit is taken at
45 nm and its exponents are used at every node: the shape of a word's and a bank's cost is
assumed to move with the node as the energies do (docs/energy.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from sparsesim.core.errors import field_error
from sparsesim.hardware.config import read_mapping
from sparsesim.hardware.datafiles import builtin_names, read_builtin

FIT_KEYS = ("read_pj", "write_pj", "area_um2")
TERMS = ("const", "size_bytes", "word_bytes", "banks", "rms_log")
_KEYS = ("name", "source", "technology_nm", "fit", "points")
TABLE_WORD_BYTES = 8
"""An energy table's ``sram_pj_per_64b`` is one access of a 64-bit word in one bank."""


@dataclass(frozen=True, slots=True)
class Exponents:
    """One fitted quantity: ``log(value) = const + size log(size_bytes) + word log(word_bytes)
    + banks log(banks)``; ``rms_log``: the fit's rms error in log space."""

    const: float
    size_bytes: float
    word_bytes: float
    banks: float
    rms_log: float


@dataclass(frozen=True, slots=True)
class SramFit:
    """A fit of SRAM energy per access (pJ) and area (um^2) to capacity, word width and banks."""

    name: str
    source: str
    technology_nm: int
    read_pj: Exponents
    write_pj: Exponents
    area_um2: Exponents
    points: tuple  # ((size_bytes, word_bytes, banks, read_pj, write_pj, area_um2), ...)

    def factor(self, quantity: str, word_bytes: int, banks: int) -> float:
        """``quantity`` (read_pj, write_pj, area_um2) of ``banks`` banks of ``word_bytes`` words
        over the same of one bank of 8-byte words (the table's 64-bit access), at equal capacity."""
        e: Exponents = getattr(self, quantity)
        return (word_bytes / TABLE_WORD_BYTES) ** e.word_bytes * banks ** e.banks

    def pj_per_byte_factor(self, quantity: str, word_bytes: int, banks: int) -> float:
        """Energy per byte (read_pj or write_pj) of such a buffer over the table's per byte
        (its 64-bit access over 8): :meth:`factor` over the word's bytes, against 8."""
        return self.factor(quantity, word_bytes, banks) * TABLE_WORD_BYTES / word_bytes


def _number(value, where: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise field_error(where, f"expected a finite number, got {value!r}")
    if positive and value <= 0:
        raise field_error(where, f"must be > 0, got {value!r}")
    return float(value)


def _load(path: Path) -> SramFit:
    data = read_mapping(path)
    if not isinstance(data, dict):
        raise field_error(path.name, "expected a mapping with name, source, technology_nm, fit, points")
    for key in data:
        if key not in _KEYS:
            raise field_error(f"{path.name}:{key}", "unknown key")
    for key in _KEYS:
        if key not in data:
            raise field_error(f"{path.name}:{key}", "missing required key")
    if not isinstance(data["fit"], dict):
        raise field_error(f"{path.name}:fit", f"expected a mapping of {', '.join(FIT_KEYS)}")
    for key in data["fit"]:
        if key not in FIT_KEYS:
            raise field_error(f"{path.name}:fit.{key}", f"unknown key (choose from {', '.join(FIT_KEYS)})")
    fits = {}
    for key in FIT_KEYS:
        f = data["fit"].get(key)
        if not isinstance(f, dict) or set(f) != set(TERMS):
            raise field_error(f"{path.name}:fit.{key}", f"expected a mapping of {', '.join(TERMS)}")
        fits[key] = Exponents(**{t: _number(f[t], f"{path.name}:fit.{key}.{t}") for t in TERMS})
    points = data["points"]
    if not isinstance(points, list) or not points or any(not isinstance(p, list) or len(p) != 6 for p in points):
        raise field_error(f"{path.name}:points", "expected a list of [size_bytes, word_bytes, banks, read_pj, "
                                                 "write_pj, area_um2]")
    pts = tuple(tuple(_number(v, f"{path.name}:points[{i}]", positive=True) for v in p) for i, p in enumerate(points))
    node = _number(data["technology_nm"], f"{path.name}:technology_nm", positive=True)
    if node != int(node):
        raise field_error(f"{path.name}:technology_nm", f"expected a whole number of nm, got {data['technology_nm']!r}")
    return SramFit(name=str(data["name"]), source=str(data["source"]), technology_nm=int(node),
                   points=pts, **fits)


def sram_fit_names() -> list[str]:
    """Names of the built-in SRAM fits."""
    return builtin_names("sram_fits")


@cache
def sram_fit(name: str) -> SramFit:
    """The built-in fit ``name`` or the fit in YAML file ``name``."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        if not path.exists():
            raise field_error("energy.sram", f"no such file {name!r}")
        return _load(path)
    if path.suffix or path.parent != Path("."):
        raise field_error("energy.sram", f"{name!r} is neither a built-in SRAM fit ({', '.join(sram_fit_names())}) "
                                         "nor a .yaml file")
    return read_builtin("sram_fits", name, _load, field="energy.sram", kind="SRAM fit")
