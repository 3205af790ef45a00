"""Synthetic traces: seeded operands with a chosen sparsity structure, written as a normal trace.

They let a study control exactly where zeros fall, which real traces do not: uniform
(unstructured) zeros, N:M structured weights along the forward reduction dimension (SAT's
forward pruning), whole channels, or square blocks. Values are ``|N(0, 1)|`` for activations
(ReLU-like, non-negative; the second operand of a matmul is an activation too), ``N(0,
1/fan_in)`` for weights and ``N(0, 1)`` for output gradients, each multiplied by its mask.

With ``time_steps`` the input becomes a sequence in which a ``change`` fraction of elements
is redrawn from one time step to the next (the rest stay bit-identical), for delta-sparsity
studies. Every tensor's generator derives from ``(seed, step, op index, operand)`` through
:class:`numpy.random.SeedSequence`, so traces are reproducible and one op's tensors do not
depend on the others.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sparsesim.core.errors import InputError, field_error
from sparsesim.workloads.gemm import ALL_PHASES, PHASES, Phase
from sparsesim.workloads.ops import Conv2d, Linear, Matmul, Op
from sparsesim.core.registry import suggest
from sparsesim.workloads.trace.format import PHASE_OPERANDS, Operand
from sparsesim.workloads.trace.writer import TraceWriter

PATTERNS = ("dense", "uniform", "nm", "channel", "block")


@dataclass(frozen=True, slots=True, kw_only=True)
class OperandSparsity:
    """Where the zeros of one operand fall.

    ``density`` is the kept fraction of elements (``uniform``), of channels (``channel``: input
    and gradient channels, or whole weight filters / output features) or of ``block`` x
    ``block`` tiles (``block``: over H x W for conv activations, else over the operand's matrix).
    ``nm`` (weights only) keeps the ``n`` largest of every ``m`` consecutive weights along the
    forward reduction (input features, in im2col order for conv). Counts are exact:
    ``round(density * total)`` elements, channels or blocks are kept.
    """

    pattern: str = "dense"
    density: float = 1.0
    n: int = 0
    m: int = 0
    block: int = 4

    def __post_init__(self) -> None:
        if self.pattern not in PATTERNS:
            raise field_error("pattern", f"unknown sparsity pattern {self.pattern!r}{suggest(self.pattern, PATTERNS)}")
        if not 0.0 <= self.density <= 1.0:
            raise field_error("density", f"must be in [0, 1], got {self.density}")
        if self.pattern == "nm" and not 0 < self.n <= self.m:
            raise field_error("nm", f"need 0 < N <= M, got {self.n}:{self.m}")
        if self.block < 1:
            raise field_error("block", f"must be a positive integer, got {self.block}")

    @classmethod
    def parse(cls, text: str, field: str) -> OperandSparsity:
        """``dense``, ``uniform:0.3``, ``channel:0.5``, ``block:0.3[:8]`` or ``nm:2:4``."""
        parts = [p.strip() for p in text.split(":")]
        try:
            if parts[0] == "dense" and len(parts) == 1:
                return cls()
            if parts[0] in ("uniform", "channel") and len(parts) == 2:
                return cls(pattern=parts[0], density=float(parts[1]))
            if parts[0] == "block" and len(parts) in (2, 3):
                return cls(pattern="block", density=float(parts[1]), block=int(parts[2]) if len(parts) == 3 else 4)
            if parts[0] == "nm" and len(parts) == 3:
                return cls(pattern="nm", n=int(parts[1]), m=int(parts[2]))
        except ValueError as exc:
            raise InputError(f"{field}: {exc}") from None
        raise field_error(field, f"expected dense, uniform:D, channel:D, block:D[:B] or nm:N:M, got {text!r}")

    def label(self) -> str:
        if self.pattern == "nm":
            return f"nm:{self.n}:{self.m}"
        if self.pattern == "block":
            return f"block:{self.density:g}:{self.block}"
        return self.pattern if self.pattern == "dense" else f"{self.pattern}:{self.density:g}"


@dataclass(frozen=True, slots=True, kw_only=True)
class SparsitySpec:
    """Sparsity of each operand plus the trace's extent (phases, steps, time steps)."""

    input: OperandSparsity = field(default_factory=OperandSparsity)
    weight: OperandSparsity = field(default_factory=OperandSparsity)
    grad_output: OperandSparsity = field(default_factory=OperandSparsity)
    phases: tuple[Phase, ...] = PHASES  # gradients are generated only if a backward phase is listed
    steps: int = 1
    time_steps: int | None = None  # None: not a sequence
    change: float = 0.1  # fraction of input elements redrawn between consecutive time steps

    def __post_init__(self) -> None:
        for name in ("input", "grad_output"):
            if getattr(self, name).pattern == "nm":
                raise field_error(name, "nm sparsity applies to weights only")
        if self.steps < 1:
            raise field_error("steps", f"must be a positive integer, got {self.steps}")
        if self.time_steps is not None and self.time_steps < 1:
            raise field_error("time_steps", f"must be a positive integer, got {self.time_steps}")
        if not 0.0 <= self.change <= 1.0:
            raise field_error("change", f"must be in [0, 1], got {self.change}")
        if not self.phases:
            raise field_error("phases", "empty")


def _channel_axis(op: Op, operand: Operand) -> int:
    if operand is Operand.WEIGHT:
        return -1 if isinstance(op, Matmul) else 0  # matmul B (batch, k, n): its n columns
    return 1 if isinstance(op, Conv2d) else -1


def _blocks_view(op: Op, operand: Operand, shape: tuple[int, ...]) -> tuple[int, int, int]:
    """The operand as (batch of matrices, rows, cols) for block masks."""
    if isinstance(op, Conv2d):
        if operand is Operand.WEIGHT:
            return 1, shape[0], math.prod(shape[1:])
        return shape[0] * shape[1], shape[2], shape[3]
    if isinstance(op, Linear):
        return 1, shape[0], shape[1]
    return shape


def _exact(count: int, density: float, rng: np.random.Generator) -> np.ndarray:
    """A boolean vector of ``count`` with exactly ``round(density * count)`` True, at random."""
    keep = np.zeros(count, dtype=bool)
    keep[rng.permutation(count)[: round(density * count)]] = True
    return keep


def _nm_mask(op: Op, w: np.ndarray, n: int, m: int) -> np.ndarray:
    """Keep the n largest |w| in every m consecutive weights along the forward reduction."""
    rows = np.swapaxes(w, 1, 2) if isinstance(op, Matmul) else w.reshape(w.shape[0], -1)
    flat = np.abs(rows).reshape(-1, rows.shape[-1])
    red = flat.shape[1]
    padded = np.pad(flat, ((0, 0), (0, -red % m)), constant_values=-1.0)  # padding never beats a weight
    groups = padded.reshape(flat.shape[0], -1, m)
    order = np.argsort(-groups, axis=2, kind="stable")[:, :, :n]
    keep = np.zeros(groups.shape, dtype=bool)
    np.put_along_axis(keep, order, True, axis=2)
    keep = keep.reshape(flat.shape[0], -1)[:, :red].reshape(rows.shape)
    return np.swapaxes(keep, 1, 2) if isinstance(op, Matmul) else keep.reshape(w.shape)


def _mask(op: Op, operand: Operand, values: np.ndarray, spec: OperandSparsity,
          rng: np.random.Generator) -> np.ndarray:
    shape = values.shape
    if spec.pattern == "dense":
        return np.ones(shape, dtype=bool)
    if spec.pattern == "uniform":
        return _exact(values.size, spec.density, rng).reshape(shape)
    if spec.pattern == "nm":
        return _nm_mask(op, values, spec.n, spec.m)
    if spec.pattern == "channel":
        axis = _channel_axis(op, operand) % len(shape)
        keep = _exact(shape[axis], spec.density, rng)
        return np.broadcast_to(keep.reshape([-1 if i == axis else 1 for i in range(len(shape))]), shape).copy()
    b, r, c = _blocks_view(op, operand, shape)
    size = spec.block
    tiles = _exact(b * -(-r // size) * -(-c // size), spec.density, rng).reshape(b, -(-r // size), -(-c // size))
    return tiles.repeat(size, axis=1).repeat(size, axis=2)[:, :r, :c].reshape(shape)


def _values(op: Op, operand: Operand, rng: np.random.Generator) -> np.ndarray:
    shape = {Operand.INPUT: op.input_shape, Operand.WEIGHT: op.weight_shape,
             Operand.GRAD_OUTPUT: op.output_shape}[operand]
    x = rng.standard_normal(shape, dtype=np.float32)
    if operand is Operand.INPUT or (operand is Operand.WEIGHT and isinstance(op, Matmul)):
        return np.abs(x)
    if operand is Operand.WEIGHT:
        return x / np.float32(math.sqrt(math.prod(shape[1:])))
    return x


def _rng(seed: int, step: int, index: int, operand: Operand, t: int = 0) -> np.random.Generator:
    role = list(Operand).index(operand)
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(step, index, role, t)))


def _sequence(op: Op, index: int, step: int, spec: SparsitySpec, seed: int) -> list[np.ndarray]:
    """Input tensors for each time step: a ``change`` fraction redrawn between consecutive steps."""
    rng = _rng(seed, step, index, Operand.INPUT)
    values = _values(op, Operand.INPUT, rng)
    mask = _mask(op, Operand.INPUT, values, spec.input, rng)
    frames = [values * mask]
    for t in range(1, spec.time_steps or 1):
        rng = _rng(seed, step, index, Operand.INPUT, t)
        fresh = _values(op, Operand.INPUT, rng)
        # unstructured zeros move with the data; structured ones (channels, blocks) stay put
        fresh_mask = _mask(op, Operand.INPUT, fresh, spec.input, rng) if spec.input.pattern == "uniform" else mask
        changed = _exact(fresh.size, spec.change, rng).reshape(fresh.shape)
        frames.append(np.where(changed, fresh * fresh_mask, frames[-1]))
    return frames


def synthesize(ops: Sequence[Op], spec: SparsitySpec, out: Path | str, *, seed: int = 0, dtype: str = "fp32",
               name: str = "synthetic", settings: dict | None = None, overwrite: bool = False) -> Path:
    """Write a trace of ``ops`` with operands drawn per ``spec``; returns its path.

    ``settings`` adds to (or overrides) the capture settings recorded in the manifest.
    """
    if not ops:
        raise InputError("synth: no ops given")
    names = [op.name for op in ops]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise InputError(f"synth: op name {duplicate!r} appears twice; op names must be unique")
    phases = tuple(p for p in ALL_PHASES if p in spec.phases)
    needed = {o for p in phases for o in PHASE_OPERANDS[p]}
    recorded = {"model": name, "source": "synthetic", "seed": seed, "dtype": dtype, "input": spec.input.label(),
                "weight": spec.weight.label(), "grad_output": spec.grad_output.label(),
                "phases": [str(p) for p in phases], "steps": spec.steps, "time_steps": spec.time_steps,
                "change": spec.change, **(settings or {})}
    with TraceWriter(out, capture=recorded, storage_dtype=dtype, overwrite=overwrite) as writer:
        for step in range(spec.steps):
            for index, op in enumerate(ops):
                prefix = f"s{step}/{op.name}"
                rng = _rng(seed, step, index, Operand.WEIGHT)
                w = _values(op, Operand.WEIGHT, rng)
                weight = writer.add_tensor(f"{prefix}/weight", w * _mask(op, Operand.WEIGHT, w, spec.weight, rng))
                frames = _sequence(op, index, step, spec, seed) if Operand.INPUT in needed else []
                for t in range(spec.time_steps or 1):
                    tag = prefix if spec.time_steps is None else f"{prefix}/t{t}"
                    tensors = {Operand.WEIGHT: weight}
                    if frames:
                        tensors[Operand.INPUT] = writer.add_tensor(f"{tag}/input", frames[t])
                    if Operand.GRAD_OUTPUT in needed:
                        rng = _rng(seed, step, index, Operand.GRAD_OUTPUT, t)
                        g = _values(op, Operand.GRAD_OUTPUT, rng)
                        tensors[Operand.GRAD_OUTPUT] = writer.add_tensor(
                            f"{tag}/grad_output", g * _mask(op, Operand.GRAD_OUTPUT, g, spec.grad_output, rng))
                    writer.add_op(op, tensors=tensors, phases=phases, step=step,
                                  time_step=None if spec.time_steps is None else t)
    return Path(out)
