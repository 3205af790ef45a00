"""Loading and validating a trace directory; tensors are read lazily, never unpickled.

:func:`load_trace` checks everything that needs no tensor data (manifest schema, file sizes,
the form of each recorded SHA-256, safetensors headers, tensor names, dtypes and shapes
against the op parameters), which costs one small read per file. Tensor data are read on
demand through ``safetensors.safe_open`` (memory-mapped). The first read from a file checks
the file's recorded SHA-256 (streamed in 1 MiB chunks, once per file and :class:`Trace`, so a
replay hashes each file once however many of its tensors it reads); every read checks the
tensor for NaN/Inf. ``load_trace(path, verify=False)`` skips the checksum (the replay then
trusts the bytes on disk); a file whose manifest entry records no ``sha256`` (a trace written
with ``TraceWriter(checksums=False)``) cannot be verified: it is read, with one warning per
file on the ``sparsesim`` logger. :func:`validate` with ``full=True`` reads everything once
and checks every recorded SHA-256 whatever ``verify`` says.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open

from sparsesim.core.errors import InputError, arg_error
from sparsesim.workloads.gemm import ALL_PHASES, Phase
from sparsesim.workloads.ops import Workload
from sparsesim.workloads.trace.format import (MANIFEST, METADATA_STORAGE_KEY, PHASE_OPERANDS, SCHEMA_VERSION, STORAGE_DTYPES,
                                    Operand, OpRecord, StorageDtype, from_storage, nonfinite, operand_shape,
                                    parse_op_entry)
from sparsesim.workloads.trace.header import TensorEntry, read_header
from sparsesim.workloads.trace.writer import sha256_file

log = logging.getLogger(__name__)

_SHA256 = re.compile(r"[0-9a-f]{64}")


class Trace:
    """A loaded trace: its ops, capture settings and lazily read tensors.

    Open file handles are cached; use ``with load_trace(p) as trace:`` or :meth:`close` to
    release them early. With ``verify`` (the default) the first read from each file checks
    its SHA-256 against the manifest.
    """

    def __init__(self, path: Path, manifest: dict, ops: tuple[OpRecord, ...], storage: StorageDtype,
                 entries: dict[str, TensorEntry], file_bytes: dict[str, int], verify: bool = True) -> None:
        self.path = path
        self.manifest = manifest
        self.ops = ops
        self.storage = storage
        self.entries = entries
        self.file_bytes = file_bytes
        self.verify = verify
        self._handles: dict[str, object] = {}
        self._verified: set[str] = set()  # files whose checksum was checked (or is not recorded)

    @property
    def capture(self) -> dict:
        """The capture settings recorded in the manifest (model, steps, batch, dtype, seed...)."""
        return self.manifest.get("capture", {})

    @property
    def name(self) -> str:
        return str(self.capture.get("model") or self.path.name)

    @property
    def tensor_names(self) -> list[str]:
        return list(self.entries)

    @property
    def is_sequence(self) -> bool:
        return any(r.time_step is not None for r in self.ops)

    def __enter__(self) -> Trace:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._handles.clear()  # safe_open handles unmap when dropped

    def __getstate__(self) -> dict:
        # Picklable for process-pool sweeps: open file handles are not, and reopen lazily (and
        # are verified again: the receiving process reads the files itself).
        return {**self.__dict__, "_handles": {}, "_verified": set()}

    def tensor(self, name: str) -> np.ndarray:
        """The tensor ``name`` as a float32 array; :class:`InputError` if it holds NaN or Inf."""
        entry = self.entries.get(name)
        if entry is None:
            raise KeyError(name)
        path = self.path / entry.file
        try:
            if self.verify and entry.file not in self._verified:  # once per file, before its first read
                _check_sha256(path, self.manifest["files"][entry.file], warn=True)
                self._verified.add(entry.file)
            handle = self._handles.get(entry.file)
            if handle is None:
                handle = self._handles[entry.file] = safe_open(str(path), framework="numpy")
            raw = handle.get_tensor(name)
        except (SafetensorError, OSError) as exc:
            raise InputError(f"{path}: cannot read tensor {name!r} ({exc})") from None
        x = from_storage(raw, self.storage)
        bad = nonfinite(x)
        if bad:
            raise InputError(f"{path}: tensor {name!r} holds {bad}")
        return x

    def operand(self, record: OpRecord, operand: Operand | str) -> np.ndarray | None:
        """The ``operand`` tensor of ``record`` (None if the record names none)."""
        name = record.tensors.get(Operand(operand))
        return None if name is None else self.tensor(name)

    def op_tensors(self, record: OpRecord) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        """``(input, weight, grad_output)`` of ``record``, each None where not recorded.

        The order of :func:`sparsesim.workloads.lowering.gemm_operands` ``(x, w, dy)``.
        """
        return tuple(self.operand(record, o) for o in (Operand.INPUT, Operand.WEIGHT, Operand.GRAD_OUTPUT))

    def workload(self, phases: tuple[Phase, ...] | None = None, steps: tuple[int, ...] | None = None) -> Workload:
        """The trace's ops (optionally only some ``steps``) as a :class:`~sparsesim.workloads.ops.Workload`.

        ``phases=None`` means the phases recorded: their union over ops, in fwd, bwd_data,
        bwd_weight, prefill, decode order (``meta["phases_by_op"]`` has each op's own, e.g. no ``bwd_data``
        for a first layer whose input needs no gradient). Explicit phases must have their
        tensors recorded for every op. ``time_steps`` is aligned with the ops, and one layer
        keeps its name across time steps (delta replay keys its state by name); op names
        get ``@s<step>`` when several steps are included, so a new step (a new clip or
        batch) is a new layer. ``source`` serves the real tensors; ``meta`` holds ``trace``
        and ``records`` (the :class:`OpRecord` of each op, in order).
        """
        records = tuple(r for r in self.ops if steps is None or r.step in steps)
        if not records:
            raise InputError(f"{self.path}: no ops in steps {list(steps or [])}")
        if phases is None:
            phases = tuple(p for p in ALL_PHASES if any(p in r.phases for r in records))
        else:
            phases = tuple(Phase(p) for p in phases)
            for r in records:
                for phase in phases:
                    missing = [str(o) for o in PHASE_OPERANDS[phase] if o not in r.tensors]
                    if missing:
                        raise InputError(f"{self.path / MANIFEST}: ops[{r.index}].tensors: phase {phase} needs "
                                         f"{' and '.join(missing)}, not recorded (capture in train mode)")
        several_steps = len({r.step for r in records}) > 1
        ops = tuple(dataclasses.replace(r.op, name=f"{r.op.name}@s{r.step}") if several_steps else r.op
                    for r in records)
        phases_by_op = tuple(tuple(p for p in r.phases if p in phases) for r in records)
        unrecorded = [str(p) for p in phases if not any(p in r.phases for r in records)]
        if unrecorded:  # a phase no op has would be dropped without a word
            recorded = [str(p) for p in ALL_PHASES if any(p in r.phases for r in records)]
            raise arg_error("phases", f"{self.path} recorded {', '.join(recorded)}, not {', '.join(unrecorded)}")
        meta = {"trace": self, "records": records, "path": str(self.path), "capture": self.capture,
                "phases_by_op": phases_by_op}
        return Workload(self.name, ops, phases, time_steps=tuple(r.time_step for r in records),
                        source=TraceTensors(self, records), meta=meta)


class TraceTensors:
    """A :class:`~sparsesim.workloads.ops.TensorSource` over a trace: op ``index`` of a workload's records.

    Roles follow :mod:`sparsesim.workloads.lowering`: ``input``, ``weight`` and ``grad`` (the trace's
    ``grad_output``).
    """

    def __init__(self, trace: Trace, records: tuple[OpRecord, ...]) -> None:
        self.trace = trace
        self.records = records

    _ROLES = {"input": Operand.INPUT, "weight": Operand.WEIGHT, "grad": Operand.GRAD_OUTPUT,
              "master_weight": Operand.MASTER_WEIGHT}

    def tensors(self, index: int, roles: frozenset[str] | None = None) -> dict[str, np.ndarray | None]:
        """The tensors of op ``index`` by role; with ``roles``, only those are read (the others
        are None), for a replay that already holds what it needs of a shared weight."""
        record = self.records[index]
        return {role: self.trace.operand(record, operand) if roles is None or role in roles else None
                for role, operand in self._ROLES.items()}

    def tensor_names(self, index: int) -> dict[str, str | None]:
        """The stored name of each role's tensor (None if not recorded): a weight stored once
        per trace has the same name in every op that uses it (every decode step)."""
        record = self.records[index]
        return {role: record.tensors.get(operand) for role, operand in self._ROLES.items()}


def _load_manifest(path: Path) -> dict:
    if not path.exists():
        raise InputError(f"{path}: no such directory")
    if not path.is_dir() or not (path / MANIFEST).is_file():
        raise InputError(f"{path}: not a trace directory (no {MANIFEST})")
    where = path / MANIFEST
    try:
        manifest = json.loads(where.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise InputError(f"{where}: expected a JSON object")
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise InputError(f"{where}: schema_version: unsupported {version!r} (this sparsesim reads {SCHEMA_VERSION})")
    unknown = set(manifest) - {"schema_version", "storage_dtype", "capture", "ops", "files"}
    if unknown:
        raise InputError(f"{where}: unknown field {sorted(unknown)[0]!r}")
    for key, kind in (("capture", dict), ("ops", list), ("files", dict)):
        if not isinstance(manifest.get(key, {} if key == "capture" else None), kind):
            raise InputError(f"{where}: {key}: expected a JSON {'object' if kind is dict else 'array'}")
    return manifest


def _check_file(path: Path, listed: dict, where: str) -> None:
    size_listed = listed.get("bytes") if isinstance(listed, dict) else None
    if isinstance(size_listed, bool) or not isinstance(size_listed, int):
        raise InputError(f"{where}: files.{path.name}.bytes: expected an integer")
    if not path.is_file():
        raise InputError(f"{path}: missing (listed in {MANIFEST} files)")
    size = path.stat().st_size
    if size != listed["bytes"]:
        raise InputError(f"{path}: size {size} bytes, but {MANIFEST} files.{path.name}.bytes says {listed['bytes']}")
    want = listed.get("sha256")
    if want is not None and not (isinstance(want, str) and _SHA256.fullmatch(want)):
        raise InputError(f"{where}: files.{path.name}.sha256: expected 64 lowercase hex digits, got {want!r}")


def _check_sha256(path: Path, listed: dict, warn: bool = False) -> None:
    """Refuse ``path`` if its SHA-256 differs from the manifest's; a file recorded without one
    passes (with a warning if ``warn``: its data cannot be verified)."""
    want = listed.get("sha256")
    if want is None:
        if warn:
            log.warning("%s: %s files.%s records no sha256; its data are read unverified", path, MANIFEST, path.name)
        return
    if sha256_file(path) != want:
        raise InputError(f"{path}: SHA-256 differs from {MANIFEST} files.{path.name}.sha256 (file corrupted or "
                         "changed since it was written)")


def load_trace(path: Path | str, verify: bool = True) -> Trace:
    """Open a trace directory and check its structure; tensors are read later, lazily.

    ``verify``: check each file's recorded SHA-256 on the first read from it (see the module
    docstring); ``False`` trusts the bytes on disk.
    """
    path = Path(path)
    manifest = _load_manifest(path)
    where = str(path / MANIFEST)
    storage_name = manifest.get("storage_dtype", "fp32")
    if storage_name not in STORAGE_DTYPES:
        raise InputError(f"{where}: storage_dtype: unknown {storage_name!r} (choose from fp32, fp16, bf16)")
    storage = STORAGE_DTYPES.get(storage_name)
    entries: dict[str, TensorEntry] = {}
    file_bytes: dict[str, int] = {}
    for fname, listed in manifest["files"].items():
        if Path(fname).name != fname or fname in ("", ".", ".."):
            raise InputError(f"{where}: files: {fname!r} is not a plain file name")
        fpath = path / fname
        if not fpath.is_file():
            raise InputError(f"{fpath}: missing (listed in {MANIFEST} files)")
        found, metadata = read_header(fpath)
        _check_file(fpath, listed, where)
        file_bytes[fname] = listed["bytes"]
        stored_as = metadata.get(METADATA_STORAGE_KEY, storage.name)
        if stored_as != storage.name:
            raise InputError(f"{fpath}: holds {stored_as} tensors but {MANIFEST} says storage_dtype {storage.name}")
        for name, entry in found.items():
            if entry.dtype != storage.header_code:
                raise InputError(f"{fpath}: tensor {name!r} has dtype {entry.dtype}, expected {storage.header_code} "
                                 f"for storage_dtype {storage.name}")
            if name in entries:
                raise InputError(f"{fpath}: tensor {name!r} also in {entries[name].file}")
            entries[name] = entry
    ops = tuple(parse_op_entry(e, i, where) for i, e in enumerate(manifest["ops"]))
    if not ops:
        raise InputError(f"{where}: ops: empty (a trace needs at least one op)")
    for r in ops:
        for role, name in r.tensors.items():
            entry = entries.get(name)
            if entry is None:
                raise InputError(f"{where}: ops[{r.index}].tensors.{role}: names missing tensor {name!r}")
            want = operand_shape(r.op, role)
            if entry.shape != want:
                raise InputError(f"{where}: ops[{r.index}].tensors.{role}: tensor {name!r} in {entry.file} has shape "
                                 f"{list(entry.shape)}, but the op's params give {list(want)}")
    return Trace(path, manifest, ops, storage, entries, file_bytes, verify=verify)


def validate(trace: Trace, full: bool = True) -> None:
    """Re-check the files on disk; with ``full`` also read every tensor (NaN/Inf) and check SHA-256.

    Raises :class:`InputError` naming the file and field of the first problem found.
    """
    where = str(trace.path / MANIFEST)
    for fname, listed in trace.manifest["files"].items():
        fpath = trace.path / fname
        _check_file(fpath, listed, where)
        read_header(fpath)
        if full:
            _check_sha256(fpath, listed)
            trace._verified.add(fname)  # the tensor reads below need not hash it again
    if full:
        for name in trace.entries:
            trace.tensor(name)
