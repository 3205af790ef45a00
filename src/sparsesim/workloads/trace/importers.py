"""Importers: traces from other tools' files (``sparsesim trace import FORMAT FILE --out DIR``).

* ``scalesim``: a SCALE-Sim topology CSV (conv or GEMM rows, :mod:`sparsesim.workloads.topology`).
  It holds shapes only, so operands are synthesised (:mod:`sparsesim.workloads.trace.synthetic`), seeded:
  ReLU-like activations (``|N(0, 1)|`` with exactly half the elements zero), dense weights,
  and, with ``training``, output gradients with half their elements zero (the ReLU
  backward mask). Without ``training`` only ``fwd`` is recorded, as SCALE-Sim simulates
  inference.
* ``npz``: a NumPy ``.npz`` of named arrays plus a manifest naming the ops, either an
  array ``__manifest__`` inside the archive holding the JSON text, or ``FILE.json`` /
  ``FILE.yaml`` / ``FILE.yml`` next to ``FILE.npz``. The manifest is
  ``{"ops": [...], "capture": {...}}`` with ``ops`` entries exactly as in a trace manifest
  (:mod:`sparsesim.workloads.trace.format`), their ``tensors`` naming arrays of the archive. Arrays
  need the op's canonical shape (linear and matmul operands may have extra leading
  dimensions, which are flattened). Loaded with ``allow_pickle=False``.

Each importer registers itself in :data:`IMPORTERS`; adding a format is one function.
"""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from sparsesim.core.errors import InputError
from sparsesim.workloads.gemm import PHASES, Phase
from sparsesim.core.registry import Registry
from sparsesim.workloads.trace.synthetic import OperandSparsity, SparsitySpec, synthesize
from sparsesim.workloads.topology import read_topology
from sparsesim.workloads.trace.format import nonfinite, operand_shape, parse_op_entry
from sparsesim.workloads.trace.writer import TraceWriter


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportOptions:
    """Options every importer accepts (each uses those that apply to its format)."""

    seed: int = 0  # for synthesised operands
    dtype: str = "fp32"  # storage dtype
    training: bool = False  # synthesise gradients and record all three phases
    overwrite: bool = False


IMPORTERS: Registry[Callable[[Path, Path, ImportOptions], Path]] = Registry("import format")


def import_trace(fmt: str, file: Path | str, out: Path | str, *, seed: int = 0, dtype: str = "fp32",
                 training: bool = False, overwrite: bool = False) -> Path:
    """Convert ``file`` in format ``fmt`` (see :data:`IMPORTERS`) into a trace at ``out``."""
    importer = IMPORTERS.get(fmt, "FORMAT")
    file = Path(file)
    if not file.is_file():
        raise InputError(f"{file}: no such file")
    options = ImportOptions(seed=seed, dtype=dtype, training=training, overwrite=overwrite)
    return importer(file, Path(out), options)


@IMPORTERS.register("scalesim")
def import_scalesim(file: Path, out: Path, options: ImportOptions) -> Path:
    """SCALE-Sim topology CSV -> trace with synthesised ReLU-like operands."""
    ops = read_topology(file)
    half = OperandSparsity(pattern="uniform", density=0.5)
    spec = SparsitySpec(input=half, grad_output=half, phases=PHASES if options.training else (Phase.FWD,))
    return synthesize(ops, spec, out, seed=options.seed, dtype=options.dtype, name=file.stem,
                      settings={"source": "scalesim", "file": str(file)}, overwrite=options.overwrite)


def _npz_manifest(file: Path, archive) -> tuple[dict, str]:
    """The manifest and a label naming where it came from (for error messages)."""
    if "__manifest__" in archive.files:
        where = f"{file}: __manifest__"
        try:
            text = str(archive["__manifest__"].reshape(-1)[0])
            return json.loads(text), where
        except (ValueError, IndexError) as exc:
            raise InputError(f"{where}: not a JSON string ({exc})") from None
    for suffix in (".json", ".yaml", ".yml"):
        side = file.with_suffix(suffix)
        if side.is_file():
            try:
                data = json.loads(side.read_text()) if suffix == ".json" else yaml.safe_load(side.read_text())
            except (ValueError, yaml.YAMLError) as exc:
                raise InputError(f"{side}: not valid {suffix[1:].upper()} ({' '.join(str(exc).split())})") from None
            return data, str(side)
    raise InputError(f"{file}: no manifest (an array '__manifest__' or {file.with_suffix('.json').name} / "
                     f"{file.with_suffix('.yaml').name} next to it)")


@IMPORTERS.register("npz")
def import_npz(file: Path, out: Path, options: ImportOptions) -> Path:
    """NumPy archive of named arrays plus a manifest of ops -> trace."""
    try:
        archive = np.load(file, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise InputError(f"{file}: not a readable .npz archive ({exc})") from None
    with archive:
        manifest, where = _npz_manifest(file, archive)
        if not isinstance(manifest, dict) or not isinstance(manifest.get("ops"), list):
            raise InputError(f"{where}: expected an object with an 'ops' list")
        records = [parse_op_entry(e, i, where) for i, e in enumerate(manifest["ops"])]
        capture = manifest.get("capture", {})
        if not isinstance(capture, dict):
            raise InputError(f"{where}: capture: expected an object")
        settings = {"model": file.stem, **capture, "source": "npz", "file": str(file)}
        with TraceWriter(out, capture=settings, storage_dtype=options.dtype, overwrite=options.overwrite) as writer:
            for r in records:
                for role, name in r.tensors.items():
                    if writer.has_tensor(name):
                        continue
                    if name not in archive.files:
                        raise InputError(f"{where}: ops[{r.index}].tensors.{role}: names missing array {name!r}")
                    try:
                        arr = archive[name]
                    except ValueError as exc:  # object arrays need pickle, which is refused
                        raise InputError(f"{file}: array {name!r} cannot be loaded without pickle ({exc})") from None
                    want = operand_shape(r.op, role)
                    if arr.shape != want:
                        flattenable = (r.op.kind != "conv2d" and arr.size == math.prod(want) and arr.ndim > len(want)
                                       and arr.shape[-1] == want[-1])
                        if not flattenable:
                            raise InputError(f"{where}: ops[{r.index}].tensors.{role}: array {name!r} has shape "
                                             f"{list(arr.shape)}, but the op's params give {list(want)}")
                        arr = arr.reshape(want)
                    if arr.dtype.kind not in "fiu":
                        raise InputError(f"{file}: array {name!r} has dtype {arr.dtype}, expected real numbers")
                    bad = nonfinite(arr.astype(np.float32))
                    if bad:
                        raise InputError(f"{file}: array {name!r} holds {bad}")
                    writer.add_tensor(name, arr)
                writer.add_op(r.op, tensors=r.tensors, phases=r.phases, step=r.step, time_step=r.time_step)
    return out
