"""Writing a trace directory atomically (the format is in :mod:`sparsesim.workloads.trace.format`).

Everything goes into a hidden temporary directory next to the target, and only a complete
trace (tensors flushed, sizes and checksums in the manifest) is renamed into place, so a
crash or Ctrl-C never leaves a half-written trace that looks valid. Files and directories get the user's umask
(:mod:`sparsesim.core.atomic`).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from sparsesim.core.atomic import default_file_mode, replace_dir, temp_dir
from sparsesim.core.errors import InputError
from sparsesim.workloads.gemm import ALL_PHASES, PHASES, Phase
from sparsesim.workloads.ops import Op
from sparsesim.core.outputs import check_output_path
from sparsesim.workloads.trace.format import (MANIFEST, METADATA_STORAGE_KEY, PHASE_OPERANDS, SCHEMA_VERSION, STORAGE_DTYPES,
                                    TENSOR_FILE_SUFFIX, Operand, nonfinite, op_entry, operand_shape, to_storage)

DEFAULT_SHARD_BYTES = 256 * 2**20
"""Tensors are flushed to a new safetensors file whenever this much is buffered."""


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(2**20), b""):
            digest.update(chunk)
    return digest.hexdigest()


_TENSOR_FILE = re.compile(r"tensors-\d{5,}" + re.escape(TENSOR_FILE_SUFFIX))
"""Names of the tensor files :meth:`TraceWriter._flush` writes."""


def written_by_writer(name: str) -> bool:
    """Whether a file named ``name`` in a trace directory is one a :class:`TraceWriter` writes."""
    return name == MANIFEST or _TENSOR_FILE.fullmatch(name) is not None


def check_output_dir(out: Path, overwrite: bool, *, field: str = "out", inputs=()) -> None:
    """Refuse an ``out`` we may not write or replace, before any work.

    The path must be writable and not one of the ``(field, path)`` ``inputs``, nor hold one
    (:func:`~sparsesim.core.outputs.check_output_path`). An existing ``out`` is replaced
    only with ``overwrite``, and only when it is empty or holds a trace and nothing else:
    replacing deletes the directory, so a file no trace writer wrote (a user's notes) is
    refused by name rather than lost. ``field`` names ``out`` in messages (``--out`` on the
    command line).
    """
    check_output_path(out, field=field, kind="dir", inputs=inputs, replaces_dir=True)
    if not out.exists() and not out.is_symlink():
        return
    if not overwrite:
        hint = "--overwrite" if field.startswith("--") else "overwrite=True"
        raise InputError(f"{field}: {out}: already exists (pass {hint} to replace it)")
    names = sorted(p.name for p in out.iterdir())
    if not names:
        return
    if MANIFEST not in names:
        raise InputError(f"{field}: {out}: exists and is not a trace directory; refusing to replace it")
    foreign = [name for name in names if not written_by_writer(name)]
    if foreign:
        raise InputError(f"{field}: {out} holds {foreign[0]!r}, which is not part of a trace; refusing to replace "
                         "the directory (move it out first)")


class TraceWriter:
    """Builds a trace: add tensors, then the ops that name them, then :meth:`close`.

    Use as a context manager: leaving the block normally commits the trace, an exception
    discards it. Tensors are converted to ``storage_dtype`` as they are added and buffered
    until ``shard_bytes`` accumulate, so memory stays bounded for long captures.
    """

    def __init__(self, out: Path | str, *, capture: Mapping | None = None, storage_dtype: str = "fp32",
                 overwrite: bool = False, shard_bytes: int = DEFAULT_SHARD_BYTES, checksums: bool = True) -> None:
        self.out = Path(out)
        self.dtype = STORAGE_DTYPES.get(storage_dtype, "storage_dtype")
        self.capture = dict(capture or {})
        json.dumps(self.capture)  # fail now, not after an hour of capture, if settings are not JSON
        self.overwrite = overwrite
        self.shard_bytes = shard_bytes
        self.checksums = checksums
        check_output_dir(self.out, overwrite)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = temp_dir(self.out)
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._buffer: dict[str, np.ndarray] = {}
        self._buffered_bytes = 0
        self._files: list[str] = []
        self._ops: list[dict] = []
        self._closed = False

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._closed:  # closed or aborted inside the block
            return
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def has_tensor(self, name: str) -> bool:
        return name in self._shapes

    def add_tensor(self, name: str, array: np.ndarray) -> str:
        """Store ``array`` (any real dtype) under ``name``; returns ``name``.

        Raises :class:`InputError` if it holds NaN or Inf, before or after conversion to the
        storage dtype (fp16 overflows beyond +-65504, float64 input beyond float32's range).
        """
        self._check_open()
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise ValueError(f"bad tensor name {name!r}")
        if name in self._shapes:
            raise ValueError(f"tensor {name!r} added twice")
        x = np.asarray(array)
        if x.dtype.kind not in "fiub":
            raise InputError(f"{self.out}: tensor {name!r}: expected real numbers, got dtype {x.dtype}")
        bad = nonfinite(x) if x.dtype.kind == "f" else None
        if bad:
            raise InputError(f"{self.out}: tensor {name!r} holds {bad}")
        stored = to_storage(x, self.dtype)
        if self.dtype.name == "bf16":  # all-ones exponent bits: the rounding overflowed
            overflow = bool(((stored & 0x7F80) == 0x7F80).any())
        else:
            overflow = not np.isfinite(stored).all()
        if overflow:
            raise InputError(f"{self.out}: tensor {name!r} holds Inf after conversion to {self.dtype.name} "
                             "(values beyond its range; store as fp32)")
        self._shapes[name] = tuple(stored.shape)
        self._buffer[name] = stored
        self._buffered_bytes += stored.nbytes
        if self._buffered_bytes >= self.shard_bytes:
            self._flush()
        return name

    def add_op(self, op: Op, *, tensors: Mapping[Operand | str, str], phases: tuple[Phase, ...] = PHASES,
               step: int = 0, time_step: int | None = None) -> None:
        """Record one op; every tensor it names must have been added with the op's shape."""
        self._check_open()
        roles = {Operand(k): v for k, v in tensors.items()}
        for phase in phases:
            for role in PHASE_OPERANDS[Phase(phase)]:
                if role not in roles:
                    raise ValueError(f"{op.name}: phase {phase} needs tensor {role}")
        for role, name in roles.items():
            if name not in self._shapes:
                raise ValueError(f"{op.name}: tensor {name!r} ({role}) was not added")
            if self._shapes[name] != operand_shape(op, role):
                raise ValueError(f"{op.name}: tensor {name!r} ({role}) has shape {self._shapes[name]}, "
                                 f"the op needs {operand_shape(op, role)}")
        phases = tuple(p for p in ALL_PHASES if p in {Phase(q) for q in phases})
        self._ops.append(op_entry(op, step=step, time_step=time_step, tensors=roles, phases=phases))

    def close(self) -> Path:
        """Flush, write the manifest and move the trace into place; returns its path."""
        self._check_open()
        if not self._ops:
            self.abort()
            raise InputError(f"{self.out}: nothing to write (no conv2d, linear or matmul ops were recorded)")
        try:
            self._flush()
            files = {}
            for name in self._files:
                path = self._tmp / name
                files[name] = {"bytes": path.stat().st_size}
                if self.checksums:
                    files[name]["sha256"] = sha256_file(path)
            manifest = {"schema_version": SCHEMA_VERSION, "storage_dtype": self.dtype.name, "capture": self.capture,
                        "ops": self._ops, "files": files}
            (self._tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
            self._commit()
        except BaseException:
            self.abort()
            raise
        self._closed = True
        return self.out

    def abort(self) -> None:
        """Discard everything written so far."""
        self._closed = True
        self._buffer.clear()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def _commit(self) -> None:
        # Re-check: the target may have appeared while we were capturing.
        check_output_dir(self.out, self.overwrite)
        replace_dir(self._tmp, self.out)

    def _flush(self) -> None:
        if not self._buffer:
            return
        name = f"tensors-{len(self._files):05d}{TENSOR_FILE_SUFFIX}"
        save_file(self._buffer, self._tmp / name, metadata={METADATA_STORAGE_KEY: self.dtype.name})
        default_file_mode(self._tmp / name)  # safetensors creates its files 0600
        self._files.append(name)
        self._buffer = {}
        self._buffered_bytes = 0

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"trace writer for {self.out} is closed")
