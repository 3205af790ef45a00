"""The trace format: manifest schema, operand roles, storage dtypes, op (de)serialisation.

A trace is a directory::

    manifest.json            schema_version, capture settings, ops, files
    tensors-00000.safetensors
    tensors-00001.safetensors ...

``manifest.json`` (schema_version 1)::

    {"schema_version": 1,
     "storage_dtype": "fp32" | "fp16" | "bf16",
     "capture": {...free-form settings: model, steps, batch, dtype, seed, mode, nm, torch...},
     "ops": [{"name": "layer1.0.conv1", "kind": "conv2d" | "linear" | "matmul",
              "step": 0, "time_step": null | 0, 1, ...,
              "params": {the Conv2d/Linear/Matmul fields except name},
              "tensors": {"input": NAME, "weight": NAME, "grad_output": NAME},
              "phases": ["fwd", "bwd_data", "bwd_weight"] | ["prefill"] | ["decode"]}, ...],
     "files": {"tensors-00000.safetensors": {"bytes": 123, "sha256": "..."}}}

``files`` gives each tensor file's size and the hex SHA-256 of its bytes; ``sha256`` is optional
(``TraceWriter(checksums=False)`` leaves it out). Readers check the size on load and the
checksum, where recorded, before their first read from the file
(:mod:`sparsesim.workloads.trace.reader`).

``capture`` is free-form (readers must not rely on a key being there), but PyTorch captures
write these keys: ``model`` (zoo name, or ``FILE.py:NAME`` / ``package.module:NAME`` / class
name for the user's own model), ``mode``, ``steps``, ``batch``, ``dtype``, ``seed``,
``warmup_steps``, ``nm``, ``nm_mode``, ``sequence``, ``torch`` (version), ``threads`` (intra-op
threads the capture ran with) and ``deterministic_algorithms``; own models also ``input``
(how batches were made), ``input_shape``, ``input_dtype``, ``vocab``, ``loss`` (the loss used,
e.g. ``cross_entropy against random targets of 10 classes``) and ``optimizer``. And
``coverage``, how much of the model's forward GEMM work the ops hold, counted independently
at the aten level (:mod:`sparsesim.workloads.capture.coverage`)::

    "coverage": {"steps": 1, "macs_fwd_total": 44880, "macs_fwd_recorded": 28496,
                 "macs_fwd_counted_in_recorded_calls": 28496,
                 "skipped": [{"module": "mha", "function": "torch.nn.functional.multi_head_attention_forward",
                              "calls": 1, "macs_fwd": 16384}]}

``skipped`` lists every torch function that did GEMM work the recorder could not lower, so
a trace never drops work silently; ``sparsesim trace info`` prints the share. Traces
without ``coverage`` (imports, synthetic traces, older captures) stay valid: nothing in
``capture`` is required, and ``schema_version`` is unchanged.

Tensors have the canonical shapes of :mod:`sparsesim.workloads.ops`: ``input`` is ``op.input_shape``
(NCHW for conv, ``(tokens, in)`` for linear, ``(batch, m, k)`` for matmul), ``weight`` is
``op.weight_shape`` (the second operand of a matmul, often an activation) and
``grad_output`` is ``op.output_shape`` (dY, the gradient of the op's output). Several ops may
name the same tensor (a weight shared by the time steps of a recurrent layer).

LLM inference traces (``trace capture --mode prefill|decode``) use the phases ``prefill`` and
``decode`` (forward GEMMs; they need ``input`` and ``weight``). All their ops are in step 0;
a ``decode`` op's ``time_step`` is its decode step (0 for the first generated token), a
``prefill`` op's is null. A projection's weight is stored once per trace and every op that
uses it, prefill and each decode step, names that one tensor (``s0/<op>#0/weight``); so a
trace of G decode steps holds the weights once plus the activations of G + 1 forward passes.
The attention matmuls of a decode step read the KV cache at its length then: ``q . K^T`` is
``(batch*heads, 1, head_dim) x (head_dim, prompt + t + 1)``. Older readers reject these
phases by name; readers of this version accept every older trace unchanged.

Storage: ``fp32`` and ``fp16`` use safetensors' ``F32``/``F16``. NumPy has no bfloat16, and
safetensors' NumPy API cannot read ``BF16``, so ``bf16`` tensors are stored as their raw bit
patterns with dtype ``U16`` (the upper half of the float32 bits, rounded to nearest even);
``storage_dtype`` in the manifest and ``sparsesim.storage_dtype`` in each file's metadata say
so. Reads always return float32.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

import numpy as np

from sparsesim.core.errors import InputError
from sparsesim.workloads.gemm import ALL_PHASES, PHASES, Phase
from sparsesim.workloads.ops import Conv2d, Linear, Matmul, Op
from sparsesim.core.registry import Registry, suggest

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
TENSOR_FILE_SUFFIX = ".safetensors"
METADATA_STORAGE_KEY = "sparsesim.storage_dtype"


class Operand(str, Enum):
    """The tensors an op record may name (keys of ``ops[i].tensors``)."""

    INPUT = "input"  # X, the first GEMM operand
    WEIGHT = "weight"  # W, or the second operand of a matmul
    GRAD_OUTPUT = "grad_output"  # dY, gradient of the op's output
    MASTER_WEIGHT = "master_weight"  # BDWP training: the dense weight both N:M copies are pruned from

    def __str__(self) -> str:
        return self.value


OPERANDS: tuple[Operand, ...] = tuple(Operand)

PHASE_OPERANDS: dict[Phase, tuple[Operand, Operand]] = {
    Phase.FWD: (Operand.INPUT, Operand.WEIGHT),
    Phase.BWD_DATA: (Operand.GRAD_OUTPUT, Operand.WEIGHT),
    Phase.BWD_WEIGHT: (Operand.INPUT, Operand.GRAD_OUTPUT),
    Phase.PREFILL: (Operand.INPUT, Operand.WEIGHT),
    Phase.DECODE: (Operand.INPUT, Operand.WEIGHT),
}
"""The two tensors each phase's GEMM reads (docs/design.md section 1)."""


def operand_shape(op: Op, operand: Operand) -> tuple[int, ...]:
    """Canonical shape of ``operand`` for ``op``."""
    if operand is Operand.INPUT:
        return op.input_shape
    if operand in (Operand.WEIGHT, Operand.MASTER_WEIGHT):
        return op.weight_shape
    return op.output_shape


OP_KINDS: Registry[type] = Registry("op kind")
OP_KINDS.add(Conv2d.kind, Conv2d)
OP_KINDS.add(Linear.kind, Linear)
OP_KINDS.add(Matmul.kind, Matmul)


@dataclass(frozen=True, slots=True)
class StorageDtype:
    """How tensors are stored on disk: the NumPy dtype handed to safetensors and its header code."""

    name: str
    numpy: np.dtype
    header_code: str


STORAGE_DTYPES: Registry[StorageDtype] = Registry("storage dtype")
STORAGE_DTYPES.add("fp32", StorageDtype("fp32", np.dtype(np.float32), "F32"))
STORAGE_DTYPES.add("fp16", StorageDtype("fp16", np.dtype(np.float16), "F16"))
STORAGE_DTYPES.add("bf16", StorageDtype("bf16", np.dtype(np.uint16), "U16"))  # raw bfloat16 bits


def float32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """Round float32 to bfloat16 (nearest even) and return the 16-bit patterns as uint16."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = u + (np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1)))
    return (rounded >> np.uint32(16)).astype(np.uint16)


def bf16_bits_to_float32(bits: np.ndarray) -> np.ndarray:
    """Widen bfloat16 bit patterns (uint16) to float32, exactly."""
    return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)


def to_storage(x: np.ndarray, dtype: StorageDtype) -> np.ndarray:
    """Convert a real-valued array to its on-disk representation (a new contiguous array)."""
    if dtype.name == "bf16":
        return float32_to_bf16_bits(x)
    with np.errstate(over="ignore"):  # the writer reports the resulting Inf with the tensor's name
        return np.array(x, dtype=dtype.numpy, order="C", copy=True)


def from_storage(x: np.ndarray, dtype: StorageDtype) -> np.ndarray:
    """Convert an on-disk array back to float32."""
    if dtype.name == "bf16":
        return bf16_bits_to_float32(x)
    return np.asarray(x, dtype=np.float32)


def nonfinite(x: np.ndarray) -> str | None:
    """``"NaN"`` or ``"Inf"`` if a float32 array holds one (NaN reported first), else ``None``."""
    if np.isfinite(x).all():
        return None
    return "NaN" if np.isnan(x).any() else "Inf"


def op_params(op: Op) -> dict:
    """The manifest ``params`` of ``op``: every dataclass field except ``name``."""
    return {f.name: getattr(op, f.name) for f in dataclasses.fields(op) if f.name != "name"}


def op_entry(op: Op, *, step: int, time_step: int | None, tensors: Mapping[Operand, str],
             phases: tuple[Phase, ...]) -> dict:
    """One ``ops[i]`` manifest entry."""
    return {"name": op.name, "kind": op.kind, "step": step, "time_step": time_step, "params": op_params(op),
            "tensors": {str(k): v for k, v in tensors.items()}, "phases": [str(p) for p in phases]}


@dataclass(frozen=True, slots=True, kw_only=True)
class OpRecord:
    """One op of a trace: the op's shape, when it ran, which tensors it read and which phases ran."""

    index: int  # position in manifest ops
    op: Op
    step: int  # training (or inference) step
    time_step: int | None  # position in the input sequence; None for non-sequence ops
    tensors: Mapping[Operand, str]
    phases: tuple[Phase, ...]

    @property
    def name(self) -> str:
        return self.op.name


def _int(value, where: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{where}: expected an integer >= {minimum}, got {value!r}")
    return value


def parse_op_entry(entry, index: int, where: str) -> OpRecord:
    """Turn a manifest ``ops[index]`` entry into an :class:`OpRecord`.

    ``where`` names the file (e.g. ``trace/manifest.json``); every error message starts with
    it and the field, e.g. ``trace/manifest.json: ops[3].params: unknown field 'foo'``.
    """
    at = f"{where}: ops[{index}]"
    if not isinstance(entry, dict):
        raise InputError(f"{at}: expected an object, got {type(entry).__name__}")
    unknown = set(entry) - {"name", "kind", "step", "time_step", "params", "tensors", "phases"}
    if unknown:
        raise InputError(f"{at}: unknown field {sorted(unknown)[0]!r}")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise InputError(f"{at}.name: expected a non-empty string, got {name!r}")
    kind = entry.get("kind")
    if not isinstance(kind, str) or kind not in OP_KINDS:
        raise InputError(f"{at}.kind: unknown op kind {kind!r}{suggest(str(kind), OP_KINDS.names())}")
    cls = OP_KINDS.get(kind)
    step = _int(entry.get("step", 0), f"{at}.step")
    time_step = entry.get("time_step")
    if time_step is not None:
        time_step = _int(time_step, f"{at}.time_step")
    params = entry.get("params")
    if not isinstance(params, dict):
        raise InputError(f"{at}.params: expected an object, got {type(params).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "name"}
    for key in params:
        if key not in fields:
            raise InputError(f"{at}.params: unknown field {key!r} for {kind}{suggest(key, fields)}")
    for key, f in fields.items():
        if key not in params and f.default is dataclasses.MISSING:
            raise InputError(f"{at}.params: missing field {key!r} for {kind}")
    try:
        op = cls(name=name, **params)
    except InputError as exc:
        raise InputError(f"{at}.params: {exc}") from None
    tensors = entry.get("tensors")
    if not isinstance(tensors, dict):
        raise InputError(f"{at}.tensors: expected an object, got {type(tensors).__name__}")
    roles: dict[Operand, str] = {}
    for key, value in tensors.items():
        try:
            role = Operand(key)
        except ValueError:
            choices = suggest(key, [str(o) for o in OPERANDS])
            raise InputError(f"{at}.tensors: unknown operand {key!r}{choices}") from None
        if not isinstance(value, str) or not value:
            raise InputError(f"{at}.tensors.{key}: expected a tensor name, got {value!r}")
        roles[role] = value
    phases_raw = entry.get("phases")
    if phases_raw is None:  # default: every phase whose two tensors are named
        phases_raw = [str(p) for p in PHASES if all(o in roles for o in PHASE_OPERANDS[p])]
        if not phases_raw:
            raise InputError(f"{at}.tensors: names no complete pair of tensors for any phase "
                             "(fwd needs input and weight)")
    if not isinstance(phases_raw, list) or not phases_raw:
        raise InputError(f"{at}.phases: expected a non-empty list, got {phases_raw!r}")
    phases = []
    for j, text in enumerate(phases_raw):
        try:
            phase = Phase(text)
        except ValueError:
            choices = suggest(str(text), [str(p) for p in ALL_PHASES])
            raise InputError(f"{at}.phases[{j}]: unknown phase {text!r}{choices}") from None
        for role in PHASE_OPERANDS[phase]:
            if role not in roles:
                raise InputError(f"{at}.tensors: phase {phase} needs tensor {str(role)!r}, which is not named")
        phases.append(phase)
    phases = tuple(p for p in ALL_PHASES if p in phases)  # canonical order, no duplicates
    return OpRecord(index=index, op=op, step=step, time_step=time_step, tensors=roles, phases=phases)
