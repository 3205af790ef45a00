"""Zero-skipping MACs on unstructured zeros (Eyeriss gating; Cnvlutin/SparTen/SCNN skipping).

A MAC whose operand is zero is ineffectual. ``gating`` keeps the cycle but saves the
multiply's energy (Eyeriss v1); ``skipping`` removes the cycle, but only where every PE that
moves in lockstep with it can skip too: on a systolic array that is the whole fold's slice of
the streamed operand, on the decoupled-lane array (``array.lanes: decoupled``) each PE row
runs ahead on its own queue and all rows meet every ``array.sync_window_steps`` steps, so a
window costs its busiest lane. The cycles come from the real masks, never from densities.

With skipping, the targeted operands are kept compressed (nonzero values plus a
1-bit-per-element bitmap) in DRAM and SRAM when that is smaller than dense; the bitmap is
charged as metadata. Gating keeps them dense unless ``compress: true``, so that gating alone
changes energy, never cycles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from sparsesim.hardware.config import _param
from sparsesim.sparsity.base import FEATURES, NO_EFFECTS, Feature, GemmEffects, OperandEffects
from sparsesim.core.errors import InputError

TARGETS = ("input", "weight", "grad", "both")


@dataclass(frozen=True, slots=True, kw_only=True)
class ZeroSkipConfig(Feature):
    kind: ClassVar[str] = "zero_skip"
    order: ClassVar[int] = 20
    examples: ClassVar[tuple[str, ...]] = ("zero_skip:input:skipping", "zero_skip:both:gating",
                                           "zero_skip:weight:skipping", "zero_skip:grad:skipping:weight_fetch=false")
    neutral: ClassVar[str | None] = "zero_skip:both:skipping"
    target: str = _param("whose zeros: input (X), weight (W), grad (dY), or both GEMM operands",
                         default="input", choices=TARGETS)
    action: str = _param("gating keeps the cycle and saves energy; skipping removes the cycle",
                         default="skipping", choices=("gating", "skipping"))
    compress: str = _param("store targeted operands as values + bitmap when smaller: auto (yes for "
                           "skipping, no for gating, so gating changes energy only), true, false",
                           default="auto", choices=("auto", "true", "false"))
    weight_fetch: bool = _param("skip the weight rows behind activations that are zero in every row of the "
                                "GEMM: not fetched from DRAM (at dram.burst_bytes granularity), not read from "
                                "SRAM; the skip bitmap that drives the gather is charged", default=True)

    @classmethod
    def from_cli(cls, fields: list[str]) -> dict:
        if len(fields) != 2:
            raise InputError("expected zero_skip:TARGET:ACTION, e.g. zero_skip:input:skipping")
        return {"kind": "zero_skip", "target": fields[0], "action": fields[1]}

    def label(self) -> str:
        return f"zs-{self.target}-{self.action}" + ("" if self.weight_fetch else "-nofetch")

    @property
    def compressed(self) -> bool:
        """Whether targeted operands are stored compressed (values + bitmap)."""
        return self.action == "skipping" if self.compress == "auto" else self.compress == "true"

    def roles(self, operand_roles: tuple[str, str]) -> tuple[bool, bool]:
        """Which GEMM operands (A, B) this feature acts on, given their tensor roles."""
        if self.target == "both":
            return True, True
        return operand_roles[0] == self.target, operand_roles[1] == self.target

    def zero_roles(self) -> tuple[str, ...]:
        return ("input", "weight", "grad") if self.target == "both" else (self.target,)

    def effects(self, phase, roles: tuple[str, str]) -> GemmEffects:
        """Each targeted operand: aware; skipped with ``skipping``; compressed as :attr:`compressed`
        says. Skipping the activations (A) with ``weight_fetch`` also skips the dense weight rows
        behind their all-zero columns."""
        on_a, on_b = self.roles(roles)
        if not (on_a or on_b):
            return NO_EFFECTS
        skipping = self.action == "skipping"
        a = OperandEffects(aware=True, skip=skipping, compress=self.compressed,
                           fetch_skip=skipping and self.weight_fetch) if on_a else OperandEffects()
        b = OperandEffects(aware=True, skip=skipping, compress=self.compressed) if on_b else OperandEffects()
        return GemmEffects(a, b)


FEATURES.add("zero_skip", ZeroSkipConfig)
