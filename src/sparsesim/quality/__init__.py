"""Co-design: what a sparsity setting costs a trained model (quality) beside what it gains on the
hardware (the replay of the same masks). :func:`codesign` is ``sparsesim codesign``; the forward-pass
transformation is :mod:`.transform`, the quality metrics :mod:`.quality`."""

from __future__ import annotations

from sparsesim.quality.pipeline import MODES, Setting, codesign

__all__ = ["MODES", "Setting", "codesign"]
