"""What an LLM inference capture records, and the size it will write: torch-free, shared by
:mod:`.llm` (which checks the settings before anything runs) and the torch halves
:mod:`.inference` and :mod:`.hf` (which record under them).

:class:`InferenceCapture` holds the settings (mode, prompt and generation lengths, the ops
and decode steps recorded, storage dtype, byte budget); :func:`estimate_bytes` computes the
bytes a capture of a decoder shape would store, exact for the tensors of Llama-style models,
and :func:`check_budget` refuses one above ``max_bytes``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sparsesim.core.errors import arg_error
from sparsesim.core.registry import suggest
from sparsesim.workloads.llm_networks import DecoderShape, inference_ops
from sparsesim.workloads.ops import Linear
from sparsesim.workloads.trace.format import STORAGE_DTYPES

LLM_MODES = ("prefill", "decode")
_ELEMENT_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}


@dataclass(frozen=True, slots=True, kw_only=True)
class InferenceCapture:
    """What an LLM inference capture records."""

    mode: str = "decode"  # prefill: the prompt's forward pass; decode: prefill, then gen_len steps
    prompt_len: int = 16
    gen_len: int = 4  # decode steps (0 with mode prefill)
    batch: int = 1
    dtype: str = "fp32"
    seed: int = 0
    layers: str | None = None  # regular expression searched in op names; None records all
    sample_steps: int = 1  # record decode steps t with t % sample_steps == 0
    max_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in LLM_MODES:
            raise arg_error("mode", f"unknown LLM mode {self.mode!r} (choose from {', '.join(LLM_MODES)})")
        for key, low in (("prompt_len", 1), ("gen_len", 0), ("batch", 1), ("sample_steps", 1)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise arg_error(key, f"must be an integer >= {low}, got {value!r}")
        if self.mode == "prefill" and self.gen_len:
            raise arg_error("gen_len", "only in decode mode (prefill records the prompt alone)")
        if self.mode == "decode" and not self.gen_len:
            raise arg_error("gen_len", "decode mode needs at least one decode step")
        if self.dtype not in STORAGE_DTYPES:
            raise arg_error("dtype", f"unknown storage dtype {self.dtype!r}"
                                     f"{suggest(self.dtype, STORAGE_DTYPES.names())}")
        if self.layers is not None:
            try:
                re.compile(self.layers)
            except re.error as exc:
                raise arg_error("layers", f"not a regular expression: {exc}") from None
        if self.max_bytes is not None and (isinstance(self.max_bytes, bool) or self.max_bytes < 1):
            raise arg_error("max_bytes", f"must be a positive number of bytes, got {self.max_bytes!r}")

    def records(self, name: str) -> bool:
        """Whether ops called ``name`` are recorded (``layers``)."""
        return self.layers is None or re.search(self.layers, name) is not None

    def sampled(self, time_step: int | None) -> bool:
        """Whether a pass is recorded: prefill always, decode step ``t`` every ``sample_steps``."""
        return time_step is None or time_step % self.sample_steps == 0

    def settings(self) -> dict:
        return {"mode": self.mode, "prompt_len": self.prompt_len, "gen_len": self.gen_len, "batch": self.batch,
                "dtype": self.dtype, "seed": self.seed, "layers": self.layers, "sample_steps": self.sample_steps}


def estimate_bytes(shape: DecoderShape, spec: InferenceCapture, attention: str) -> int:
    """Bytes of the tensors the capture of ``shape`` would store (safetensors headers aside).

    Every recorded op stores its input; a Linear's weight is stored once per trace; a
    matmul's second operand (the K or V cache) once per op.
    """
    elements, weights = 0, set()
    for item in inference_ops(shape, batch=spec.batch, prompt_len=spec.prompt_len, gen_len=spec.gen_len,
                              attention=attention):
        op = item.op
        if not spec.sampled(item.time_step) or not spec.records(op.name):
            continue
        elements += _size(op.input_shape)
        if isinstance(op, Linear):
            if op.name not in weights:
                weights.add(op.name)
                elements += _size(op.weight_shape)
        else:
            elements += _size(op.weight_shape)
    return elements * _ELEMENT_BYTES[spec.dtype]


def _size(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def check_budget(estimate: int | None, spec: InferenceCapture, what: str) -> None:
    """Refuse a capture whose estimate exceeds ``spec.max_bytes`` (or that cannot be estimated)."""
    if spec.max_bytes is None:
        return
    if estimate is None:
        raise arg_error("max_bytes", f"cannot estimate the size of {what} (not a Llama-style config)")
    if estimate > spec.max_bytes:
        raise arg_error("max_bytes", f"the capture of {what} would write about {estimate:,} bytes "
                                     f"({estimate / 2**30:.2f} GiB) > {spec.max_bytes:,}; record fewer ops (a layers "
                                     "regular expression, sampled decode steps), a shorter prompt or fewer steps, "
                                     "or store fp16")
