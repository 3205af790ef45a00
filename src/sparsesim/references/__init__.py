"""Published references the array kinds are held against, one file per reference, registered
in :data:`REFERENCES`; ``sparsesim validate architectures`` runs them.

A reference is data from outside this project (a paper's figure, another simulator's stored
output, a ground-truth table shipped with a paper's artifact) and the sparsesim runs that
reproduce its cases. :meth:`ReferenceCheck.run` returns one :class:`Agreement` per case:
the reference value, the model's, and the tolerance the comparison is held to, stated in the
reference's file beside where the data came from. Nothing in a reference is fitted to it.

Adding one is a file that registers a :class:`ReferenceCheck`, plus its import here.
"""

from __future__ import annotations

from dataclasses import dataclass

from sparsesim.core.registry import Registry


@dataclass(frozen=True, slots=True)
class Agreement:
    """One case of a reference: ``reference`` and ``model`` in ``unit``; the case agrees when
    they differ by at most ``tolerance`` of the reference (0: exactly equal)."""

    case: str
    reference: float
    model: float
    unit: str
    tolerance: float

    @property
    def error(self) -> float:
        """Relative error of the model against the reference."""
        return (self.model - self.reference) / self.reference if self.reference else float(self.model != 0)

    @property
    def agrees(self) -> bool:
        return abs(self.error) <= self.tolerance

    def as_dict(self) -> dict:
        return {"case": self.case, "reference": self.reference, "model": self.model, "unit": self.unit,
                "tolerance": self.tolerance, "error": self.error, "agrees": self.agrees}


class ReferenceCheck:
    """One published reference. Subclasses set :attr:`name`, :attr:`array_kind`,
    :attr:`source` (where the data comes from, citable) and implement :meth:`run`."""

    name: str = ""
    array_kind: str = ""
    source: str = ""

    def run(self) -> list[Agreement]:  # pragma: no cover - abstract
        raise NotImplementedError


REFERENCES: Registry[ReferenceCheck] = Registry("reference")
"""Every reference check, by name."""

__all__ = ["Agreement", "REFERENCES", "ReferenceCheck"]

from sparsesim.references import eyeriss_v2  # noqa: E402,F401  (register)
from sparsesim.references import sparse_tensor_core  # noqa: E402,F401  (register)
from sparsesim.references import dstc  # noqa: E402,F401  (registers dstc_fig21)
from sparsesim.references import sigma  # noqa: E402,F401  (register the SIGMA/STONNE reference)
