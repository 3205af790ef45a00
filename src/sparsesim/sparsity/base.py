"""The sparsity-feature interface: one config dataclass per feature, registered by kind.

A feature is switched on per run, in the accelerator config's ``sparsity`` list
(``{kind: nm, n: 2, m: 4}``) or on the command line (``--sparsity nm:2:4``). Each feature
module declares its frozen config dataclass (validated by :func:`sparsesim.hardware.config.build`, so
unknown keys get a "did you mean"), how to read the short CLI form, and the operand
transformation it stands for; the replay engine composes the features.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

from sparsesim.core.registry import Registry


class FeatureConfig(Protocol):
    """What every feature config provides."""

    kind: ClassVar[str]

    @classmethod
    def from_cli(cls, fields: list[str]) -> dict:
        """The mapping for ``--sparsity KIND:field:field...`` (fields after the kind); bad fields
        raise :class:`InputError` saying why, without a field name (the caller prefixes its own:
        ``--sparsity``, the API's ``sparsity``, a sweep spec's key)."""

    def label(self) -> str:
        """A short human label, e.g. ``nm2:4`` (used in tables and plot legends)."""


FEATURES: Registry[type] = Registry("sparsity feature")
"""Every sparsity feature config class, by ``kind``."""

ROLES = ("input", "weight", "grad")
"""Tensor roles of an op: activations X, weights W, output gradients dY."""
