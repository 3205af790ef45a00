"""SCALE-Sim topology CSV files -> ops (``sparsesim run --topology``, ``trace import scalesim``).

Two formats, told apart by the header (SCALE-Sim v2/v3 ``topologies/``):

* conv: ``Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels,
  Num Filter, Strides,`` (an optional 9th column is the stride width). The IFMAP sizes
  already include padding, so ``pad = 0``; SCALE-Sim rounds the output size up
  (``ceil((H - R + stride) / stride)``), so convs are built with ``ceil_mode=True`` and their
  M, N, K equal SCALE-Sim's. A layer whose name contains ``DP`` is depthwise, as in
  SCALE-Sim, which runs it as ``Channels`` separate one-channel layers: here one conv with
  ``groups = Channels`` and ``Num Filter`` filters per group.
* GEMM: ``Layer, M, N, K,`` -> ``Out[M x N] = A[M x K] . B[K x N]``.

Rows end with a comma in SCALE-Sim's files (it drops the last field); a trailing empty field
is ignored here, and so are blank lines and lines starting with ``#``. Repeated layer names
get ``#2``, ``#3``... so op names are unique. Errors name the file, line and column.
"""

from __future__ import annotations

import csv
from pathlib import Path

from sparsesim.core.errors import InputError
from sparsesim.workloads.ops import Conv2d, Op, gemm_op

CONV_COLUMNS = ("Layer name", "IFMAP Height", "IFMAP Width", "Filter Height", "Filter Width", "Channels",
                "Num Filter", "Strides", "Stride width")
GEMM_COLUMNS = ("Layer", "M", "N", "K")


def _int(text: str, where: str, column: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InputError(f"{where} ({column}): expected a positive integer, got {text!r}") from None
    if value < 1:
        raise InputError(f"{where} ({column}): expected a positive integer, got {value}")
    return value


def _rows(path: Path):
    """``(line number, stripped fields)`` of every non-blank, non-comment line."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    for lineno, fields in enumerate(csv.reader(text.splitlines()), start=1):
        fields = [f.strip() for f in fields]
        while fields and fields[-1] == "":
            fields.pop()
        if fields and not fields[0].startswith("#"):
            yield lineno, fields


def read_topology(path: Path | str, batch: int = 1) -> list[Op]:
    """Parse a SCALE-Sim topology CSV (conv or GEMM format) into ops; conv rows get ``batch``."""
    path = Path(path)
    rows = _rows(path)
    header = next(rows, None)
    if header is None:
        raise InputError(f"{path}: empty topology file")
    lineno, names = header
    second = names[1].lower() if len(names) > 1 else ""
    if second.startswith("ifmap"):
        gemm = False
    elif second == "m":
        gemm = True
    else:
        raise InputError(f"{path}: line {lineno}: unrecognised header {', '.join(names)!r} (expected "
                         f"'{', '.join(CONV_COLUMNS[:8])}' or '{', '.join(GEMM_COLUMNS)}')")
    columns = GEMM_COLUMNS if gemm else CONV_COLUMNS
    allowed = (4,) if gemm else (8, 9)
    ops: list[Op] = []
    seen: dict[str, int] = {}
    for lineno, fields in rows:
        if len(fields) not in allowed:
            raise InputError(f"{path}: line {lineno}: expected {' or '.join(map(str, allowed))} fields "
                             f"({', '.join(columns[:allowed[-1]])}), got {len(fields)}")
        values = [_int(text, f"{path}: line {lineno}, column {col}", columns[col - 1])
                  for col, text in enumerate(fields[1:], start=2)]
        name = fields[0] or f"layer{len(ops)}"
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f"{name}#{seen[name]}"
        if gemm:
            ops.append(gemm_op(name, *values))
            continue
        h, w, r, s, c, f, stride_h = values[:7]
        stride_w = values[7] if len(values) == 8 else stride_h
        for col, (filt, size) in ((4, (r, h)), (5, (s, w))):
            if filt > size:
                raise InputError(f"{path}: line {lineno}, column {col} ({columns[col - 1]}): filter {filt} is "
                                 f"larger than the IFMAP ({size})")
        depthwise = "DP" in fields[0]  # SCALE-Sim's own convention
        ops.append(Conv2d(name=name, batch=batch, in_channels=c, out_channels=c * f if depthwise else f, in_h=h,
                          in_w=w, kernel_h=r, kernel_w=s, stride_h=stride_h, stride_w=stride_w,
                          groups=c if depthwise else 1, ceil_mode=True))
    if not ops:
        raise InputError(f"{path}: no layers after the header")
    return ops
