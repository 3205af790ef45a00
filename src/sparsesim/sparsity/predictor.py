"""A trained low-rank neuron predictor (Deja Vu, Liu et al., ICML 2023, its MLP sparsity predictor)
as a file a trace carries, read the same way by the replay and by the quality forward pass.

Per gated MLP block the predictor is two linear maps, ``d -> r -> d_ff``, that estimate the gate's
pre-activation, ``g~ = (x A^T) B^T`` for a row ``x`` (the block's input), and per-neuron thresholds
``t``: a neuron is predicted live when ``|act(g~)| > t``, the test the policy applies to the exact
gate output. ``act_policy ... predictor=trained`` uses it: the gate runs
only the predicted neurons, and a neuron lives when it is predicted *and* the policy keeps it, so
a live neuron the predictor misses is zeroed (its mistakes cost quality) and a neuron it predicts
that the policy then drops costs gate work for nothing.

The file is safetensors (``F32``), keys ``{block}.A`` ``[r, d]``, ``{block}.B`` ``[d_ff, r]``,
``{block}.t`` ``[d_ff]``, ``block`` as the trace names its MLP ops' block
(``model.layers.3.mlp``), and the activation in its metadata (``act``: ``silu`` or ``relu``). A trace names it in its capture settings,
``capture.predictors[label] = {"file": ..., "sha256": ..., "rank": r}``, keyed by the policy's
label (:meth:`~sparsesim.sparsity.activation_policy.ActivationPolicyConfig.label`); ``sparsesim
codesign`` trains it on calibration text and writes it beside the trace's tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sparsesim.core.errors import InputError, field_error

FIELD = "sparsity.act_policy.predictor"


@dataclass(frozen=True)
class BlockPredictor:
    """One block's predictor: ``A`` ``[r, d]``, ``B`` ``[d_ff, r]``, thresholds ``t`` ``[d_ff]``
    (float32), and the MLP's activation ``act``."""

    A: np.ndarray
    B: np.ndarray
    t: np.ndarray
    act: str

    @property
    def rank(self) -> int:
        return int(self.A.shape[0])

    def predict(self, x: np.ndarray) -> np.ndarray:
        """``(M, d_ff)`` bool: the neurons predicted live for each row of ``x`` (``..., d``), in float32
        with the products in the order the quality forward computes them."""
        from sparsesim.sparsity.gate_coupling import activation

        a = np.asarray(x, dtype=np.float32).reshape(-1, self.A.shape[1])
        return np.abs(activation(self.act, (a @ self.A.T) @ self.B.T)) > self.t


@dataclass(frozen=True)
class Predictors:
    """The predictors of every block of a model, by block name."""

    blocks: dict[str, BlockPredictor]

    @property
    def rank(self) -> int:
        return next(iter(self.blocks.values())).rank

    def predict(self, block: str, x: np.ndarray) -> np.ndarray:
        try:
            return self.blocks[block].predict(x)
        except KeyError:
            raise field_error(FIELD, f"trained: the predictor has no block {block!r}") from None

    def save(self, path: Path) -> None:
        from safetensors.numpy import save_file

        tensors = {}
        for name, p in self.blocks.items():
            tensors.update({f"{name}.A": p.A, f"{name}.B": p.B, f"{name}.t": p.t})
        acts = {p.act for p in self.blocks.values()}
        save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}, str(path),
                  metadata={"act": acts.pop()})

    @classmethod
    def load(cls, path: Path) -> Predictors:
        """Read and check a predictor file: every block has its three tensors, of matching shapes,
        all finite; anything else is refused naming the file and the key."""
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="numpy") as f:
                act = (f.metadata() or {}).get("act")
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError, ValueError) as exc:
            raise InputError(f"{path}: not a readable predictor file ({str(exc).splitlines()[0][:120]})") from None
        if act not in ("silu", "relu"):
            raise InputError(f"{path}: metadata act: expected silu or relu, got {act!r}")
        names = sorted({k.rsplit(".", 1)[0] for k in tensors})
        if not names:
            raise InputError(f"{path}: the predictor file holds no block")
        blocks = {}
        for name in names:
            parts = {}
            for part in ("A", "B", "t"):
                t = tensors.get(f"{name}.{part}")
                if t is None:
                    raise InputError(f"{path}: {name}.{part}: missing")
                if t.dtype != np.float32 or not np.isfinite(t).all():
                    raise InputError(f"{path}: {name}.{part}: must be finite float32")
                parts[part] = t
            A, B, t = parts["A"], parts["B"], parts["t"]
            if A.ndim != 2 or B.ndim != 2 or t.ndim != 1 or B.shape[1] != A.shape[0] or t.shape[0] != B.shape[0]:
                raise InputError(f"{path}: {name}: shapes A {A.shape}, B {B.shape}, t {t.shape} do not chain "
                                 "(expected A [r, d], B [d_ff, r], t [d_ff])")
            blocks[name] = BlockPredictor(A, B, t, act)
        if len({p.rank for p in blocks.values()}) != 1:
            raise InputError(f"{path}: its blocks have different ranks")
        return cls(blocks)


def trace_predictors(workload, label: str) -> Predictors:
    """The trained predictor ``workload``'s trace carries for the policy labelled ``label``, its
    file checked against the SHA-256 the capture settings record."""
    from sparsesim.workloads.trace.writer import sha256_file

    record = ((workload.meta.get("capture") or {}).get("predictors") or {}).get(label)
    where = workload.meta.get("path")
    if record is None or where is None:
        raise field_error(FIELD, f"trained needs a trace that carries a trained predictor for {label} "
                                 "(capture.predictors; sparsesim codesign trains one and writes it); "
                                 "predictor=lowrank models one that recalls perfectly")
    path = Path(where) / str(record.get("file", ""))
    if not path.is_file():
        raise InputError(f"{path}: the trace's predictor file is missing (capture.predictors.{label}.file)")
    if sha256_file(path) != record.get("sha256"):
        raise InputError(f"{path}: SHA-256 differs from capture.predictors.{label}.sha256 (file corrupted or "
                         "replaced)")
    return Predictors.load(path)
