"""Activation sparsification policies applied to the input activations at replay time.

* ``relu``: the zeros as captured (nothing added; records the zero fraction).
* ``threshold``: zero every ``|x| < threshold`` (CATS, Lee et al. 2024, magnitude threshold
  on MLP activations).
* ``channel_threshold``: per input channel (feature), zero the ``sparsity`` fraction of
  smallest magnitudes, i.e. a per-channel threshold at that quantile (CHESS, channel-wise
  thresholds).
* ``topk``: per row (token / pixel), keep the ``keep_fraction`` largest magnitudes (the Lazy
  Neuron phenomenon paper, Li et al. ICLR 2023, top-k activations).

The fraction of activations zeroed by the policy and its label go into every result row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from sparsesim.accel.config import _param
from sparsesim.accel.sparsity.base import FEATURES
from sparsesim.workloads.errors import InputError, field_error

METHODS = ("relu", "threshold", "channel_threshold", "topk")


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivationPolicyConfig:
    kind: ClassVar[str] = "act_policy"
    method: str = _param("relu | threshold | channel_threshold | topk", default="relu", choices=METHODS)
    threshold: float = _param("magnitude threshold for method threshold", default=0.0, minimum=0.0, maximum=1e30)
    sparsity: float = _param("fraction zeroed per channel for channel_threshold", default=0.5,
                             minimum=0.0, maximum=1.0)
    keep_fraction: float = _param("fraction kept per row for topk", default=0.25, minimum=0.0, maximum=1.0)

    def __post_init__(self) -> None:
        if self.method == "topk" and self.keep_fraction <= 0.0:
            raise field_error("sparsity.act_policy.keep_fraction", "must be > 0 for topk")

    @classmethod
    def from_cli(cls, fields: list[str]) -> dict:
        if not fields:
            raise InputError("--sparsity: expected act_policy:METHOD[:VALUE], e.g. act_policy:topk:0.25")
        out: dict = {"kind": "act_policy", "method": fields[0]}
        if len(fields) > 2:
            raise InputError("--sparsity: act_policy takes at most one value")
        if len(fields) == 2:
            key = {"threshold": "threshold", "channel_threshold": "sparsity", "topk": "keep_fraction"}.get(fields[0])
            if key is None:
                raise InputError(f"--sparsity: act_policy:{fields[0]} takes no value")
            try:
                out[key] = float(fields[1])
            except ValueError:
                raise InputError(f"--sparsity: act_policy value must be a number, got {fields[1]!r}") from None
        return out

    def label(self) -> str:
        value = {"relu": "", "threshold": f"{self.threshold:g}", "channel_threshold": f"{self.sparsity:g}",
                 "topk": f"{self.keep_fraction:g}"}[self.method]
        return f"{self.method}{value}"

    def apply(self, x: np.ndarray, channel_axis: int) -> np.ndarray:
        """Return the sparsified activations (a new array; ``x`` is left alone)."""
        if self.method == "relu":
            return x
        mag = np.abs(x)
        if self.method == "threshold":
            return np.where(mag < self.threshold, 0, x).astype(x.dtype)
        if self.method == "channel_threshold":
            moved = np.moveaxis(mag, channel_axis, 0).reshape(x.shape[channel_axis], -1)
            thr = np.quantile(moved, self.sparsity, axis=1, method="higher") if self.sparsity > 0 else np.zeros(len(moved))
            shape = [1] * x.ndim
            shape[channel_axis] = -1
            keep = mag > thr.reshape(shape) if self.sparsity > 0 else np.ones_like(mag, dtype=bool)
            return np.where(keep, x, 0).astype(x.dtype)
        rows = np.moveaxis(x, channel_axis, -1)
        flat = rows.reshape(-1, rows.shape[-1])
        k = max(1, int(round(self.keep_fraction * flat.shape[1])))
        if k >= flat.shape[1]:
            return x
        idx = np.argpartition(-np.abs(flat), k - 1, axis=1)[:, :k]
        out = np.zeros_like(flat)
        np.put_along_axis(out, idx, np.take_along_axis(flat, idx, axis=1), axis=1)
        return np.moveaxis(out.reshape(rows.shape), -1, channel_axis)


FEATURES.add("act_policy", ActivationPolicyConfig)
