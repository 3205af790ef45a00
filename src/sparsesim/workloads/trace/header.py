"""Reading and checking a safetensors file's header without touching its tensor data.

safetensors layout: an 8-byte little-endian header length ``n``, ``n`` bytes of JSON
(``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}``), then the
data; offsets count from the end of the header. Parsing it ourselves lets the loader name
the problem precisely (truncation, bad offsets) before the safetensors library is asked for
any data, and costs one small read per file.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

from sparsesim.core.errors import InputError

HEADER_LIMIT_BYTES = 100 * 2**20  # the safetensors library's own cap on the JSON header

ITEM_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "U16": 2, "I16": 2, "F16": 2, "BF16": 2, "U32": 4, "I32": 4,
              "F32": 4, "U64": 8, "I64": 8, "F64": 8}


@dataclass(frozen=True, slots=True)
class TensorEntry:
    """Where one tensor lives: its file, dtype code, shape and byte range within the data."""

    name: str
    file: str  # file name inside the trace directory
    dtype: str  # safetensors code, e.g. "F16"
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.begin


def read_header(path: Path) -> tuple[dict[str, TensorEntry], dict[str, str]]:
    """Return the tensor entries and the ``__metadata__`` of a safetensors file.

    Raises :class:`InputError` naming ``path`` if the file is truncated or its header is
    malformed.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise InputError(f"{path}: truncated (header says at least 8 bytes, file has {size})")
        (n,) = struct.unpack("<Q", head)
        if n > HEADER_LIMIT_BYTES:
            raise InputError(f"{path}: not a safetensors file (header length {n} bytes)")
        if 8 + n > size:
            raise InputError(f"{path}: truncated (header says {8 + n} bytes, file has {size})")
        raw = f.read(n)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: bad safetensors header ({exc})") from None
    if not isinstance(header, dict):
        raise InputError(f"{path}: bad safetensors header (not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    entries: dict[str, TensorEntry] = {}
    data_end = 0
    for name, info in header.items():
        where = f"{path}: tensor {name!r}"
        try:
            dtype, shape, (begin, end) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{where}: header entry lacks dtype, shape or data_offsets") from None
        if dtype not in ITEM_BYTES:
            raise InputError(f"{where}: unsupported dtype {dtype!r}")
        if not all(isinstance(d, int) and d >= 0 for d in shape) or not all(
                isinstance(o, int) and o >= 0 for o in (begin, end)):
            raise InputError(f"{where}: bad shape {list(shape)} or data_offsets {[begin, end]}")
        if end - begin != math.prod(shape) * ITEM_BYTES[dtype]:
            raise InputError(f"{where}: data_offsets {[begin, end]} do not fit shape {list(shape)} of {dtype}")
        entries[name] = TensorEntry(name, path.name, dtype, shape, begin, end)
        data_end = max(data_end, end)
    if 8 + n + data_end > size:
        raise InputError(f"{path}: truncated (header says {8 + n + data_end} bytes, file has {size})")
    return entries, {str(k): str(v) for k, v in metadata.items()}
