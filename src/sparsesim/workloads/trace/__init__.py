"""Traces: directories of real activation, weight and gradient tensors plus a JSON manifest.

Writing: :class:`TraceWriter`; reading: :func:`load_trace` -> :class:`Trace`; checking:
:func:`validate`; summarising: :func:`sparsesim.workloads.trace.info.describe`. The format is
documented in :mod:`sparsesim.workloads.trace.format`. Nothing here imports torch.
"""

from sparsesim.workloads.trace.format import OPERANDS, SCHEMA_VERSION, Operand, OpRecord
from sparsesim.workloads.trace.reader import Trace, load_trace, validate
from sparsesim.workloads.trace.writer import TraceWriter

__all__ = ["OPERANDS", "SCHEMA_VERSION", "OpRecord", "Operand", "Trace", "TraceWriter", "load_trace", "validate"]
