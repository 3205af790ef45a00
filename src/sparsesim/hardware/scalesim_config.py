"""SCALE-Sim v3 ``.cfg`` files read as accelerator configs (``--accel scale.cfg``).

SCALE-Sim 3.0.0 reads an INI file (Python's :mod:`configparser`: ``key = value`` or
``key: value``, keys case-insensitive, section names case-sensitive, ``#``/``;`` comment
lines). :func:`read_scalesim_config` reads the same syntax and returns the plain mapping
:func:`~sparsesim.hardware.config.build` validates, so ``--set`` overrides apply on top as they do
to a YAML preset. Every key SCALE-Sim 3.0.0 knows is declared in :data:`KEYS`, with what it
becomes here or why it has no counterpart; anything else is refused by name
(``architecture_presets.ArrayHieght: unknown key (did you mean 'ArrayHeight'?)``).

What carries over, and the choices made where the two models differ:

- ``ArrayHeight`` x ``ArrayWidth`` are ``array.rows`` x ``array.cols``.
- SCALE-Sim's word is one byte (hard-coded in 3.0.0), so the array is ``int8`` (one byte an
  element); a ``kB`` is 1024 bytes (SCALE-Sim multiplies by 1024), so ``IfmapSramSzkB``,
  ``FilterSramSzkB`` and ``OfmapSramSzkB`` become ``buffers.a/b/out.size_bytes`` = kB x 1024.
  The sizes stay in bytes under ``--set array.precision=fp16``, so they then hold half the
  elements; the output buffer holds partial sums (4 bytes at int8) where SCALE-Sim's holds
  1-byte outputs.
- SCALE-Sim's SRAM never keeps the array waiting, so each buffer's port is sized to 16 bytes
  a cycle per PE on the array's wider edge (more than any dataflow reads or writes there).
- ``Dataflow`` is part of the architecture in SCALE-Sim: it becomes ``array.dataflows``, so
  ``--dataflow best`` (the default) runs it and another dataflow is refused unless
  ``--set array.dataflows=[]`` lifts the limit.
- ``InterfaceBandwidth = CALC`` (SCALE-Sim works out the bandwidth that never stalls) is
  ``dram.ideal = true``; ``USER`` uses ``Bandwidth`` (words, i.e. bytes, a cycle) as
  ``dram.bandwidth_bytes_per_cycle``. SCALE-Sim 3.0.0 gives each operand its own DRAM port in
  USER mode (ifmap at ``IfmapSRAMBankBandwidth``, filter at ``FilterSRAMBankBandwidth``,
  ofmap at ``Bandwidth``); here one link is shared, so a USER-mode run logs a warning that
  its stalls are not SCALE-Sim's.
- ``run_name`` names the design (the result's ``accel`` field); without it, the file's stem.

What the file does not describe keeps this simulator's defaults (folds overlap, 1 GHz clock,
DRAM latency and bursts, the energy table); SCALE-Sim's cycle counts need
``--set array.fold_overlap=false`` on top (README, "From SCALE-Sim"). SCALE-Sim's own sparsity
(``SparsitySupport = true``) is refused: its N comes from the topology file, and here N:M is
switched on per run (``--sparsity nm:N:M``).
"""

from __future__ import annotations

import configparser
import difflib
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparsesim.core.errors import InputError

log = logging.getLogger(__name__)

WORD_BYTES = 1
"""Bytes of a SCALE-Sim word (3.0.0 hard-codes it); its bandwidths count words a cycle."""

KIB = 1024
"""Bytes of a SCALE-Sim ``kB`` (its memory system multiplies the ``*SramSzkB`` sizes by 1024)."""

PORT_BYTES_PER_EDGE_PE = 16
"""Bytes a cycle each buffer port delivers per PE on the array's wider edge: above what any
dataflow moves there (a partial sum's read-modify-write is 8 bytes a column at int8, plus
drains), so the SRAM never stalls the array, as in SCALE-Sim."""

IDEAL_BANDWIDTH_BYTES_PER_CYCLE = 1e6
"""The nominal bandwidth of a CALC-mode DRAM given no ``Bandwidth`` (the schema's largest)."""

_BOOLEANS = {"true": True, "yes": True, "on": True, "1": True,
             "false": False, "no": False, "off": False, "0": False}  # what configparser's getboolean takes
_INTEGER = re.compile(r"[+-]?\d+")


@dataclass(frozen=True, slots=True)
class CfgKey:
    """One key of SCALE-Sim 3.0.0's config: its value type and what it means here."""

    section: str
    name: str
    kind: str  # "int", "bool", "text", "choice" (case-insensitive) or "numbers" (comma-separated)
    meaning: str  # where it goes here, or why it has no counterpart
    required: bool = False
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()


KEYS: tuple[CfgKey, ...] = (
    CfgKey("general", "run_name", "text", "the design's name (the result's accel field)"),
    CfgKey("architecture_presets", "ArrayHeight", "int", "array.rows", required=True, minimum=1, maximum=65536),
    CfgKey("architecture_presets", "ArrayWidth", "int", "array.cols", required=True, minimum=1, maximum=65536),
    CfgKey("architecture_presets", "IfmapSramSzkB", "int", "buffers.a.size_bytes / 1024", required=True,
           minimum=1, maximum=2**26),
    CfgKey("architecture_presets", "FilterSramSzkB", "int", "buffers.b.size_bytes / 1024", required=True,
           minimum=1, maximum=2**26),
    CfgKey("architecture_presets", "OfmapSramSzkB", "int", "buffers.out.size_bytes / 1024", required=True,
           minimum=1, maximum=2**26),
    CfgKey("architecture_presets", "IfmapOffset", "int", "not used: a DRAM address offset of SCALE-Sim's "
           "traces (no address traces here)", minimum=0),
    CfgKey("architecture_presets", "FilterOffset", "int", "not used: a DRAM address offset of SCALE-Sim's traces",
           minimum=0),
    CfgKey("architecture_presets", "OfmapOffset", "int", "not used: a DRAM address offset of SCALE-Sim's traces",
           minimum=0),
    CfgKey("architecture_presets", "Bandwidth", "numbers", "dram.bandwidth_bytes_per_cycle (words of one byte "
           "a cycle; the first value of a list, as 3.0.0 reads it); required in USER mode", maximum=10**6),
    CfgKey("architecture_presets", "Dataflow", "choice", "array.dataflows (the one dataflow the array runs)",
           choices=("os", "ws", "is")),
    CfgKey("architecture_presets", "MemoryBanks", "int", "not used: SCALE-Sim 3.0.0 does not read it", minimum=1),
    CfgKey("architecture_presets", "ReadRequestBuffer", "int", "not used: DRAM read request queue depth "
           "(DRAM here is one link with dram.latency_cycles)", minimum=1),
    CfgKey("architecture_presets", "WriteRequestBuffer", "int", "not used: DRAM write request queue depth",
           minimum=1),
    CfgKey("layout", "IfmapCustomLayout", "bool", "not modelled: SRAM layouts and bank conflicts (warned if true)"),
    CfgKey("layout", "FilterCustomLayout", "bool", "not modelled: SRAM layouts and bank conflicts (warned if true)"),
    CfgKey("layout", "IfmapSRAMBankBandwidth", "int", "not used: USER mode's ifmap DRAM port (one shared link "
           "here)", minimum=1),
    CfgKey("layout", "IfmapSRAMBankNum", "int", "not used: banks of the layout model", minimum=1),
    CfgKey("layout", "IfmapSRAMBankPort", "int", "not used: ports of the layout model", minimum=1),
    CfgKey("layout", "FilterSRAMBankBandwidth", "int", "not used: USER mode's filter DRAM port (one shared "
           "link here)", minimum=1),
    CfgKey("layout", "FilterSRAMBankNum", "int", "not used: banks of the layout model", minimum=1),
    CfgKey("layout", "FilterSRAMBankPort", "int", "not used: ports of the layout model", minimum=1),
    CfgKey("sparsity", "SparsitySupport", "bool", "must be false: N:M is switched on per run (--sparsity nm:N:M)"),
    CfgKey("sparsity", "SparseRep", "choice", "not used (SparsitySupport is false)",
           choices=("csr", "csc", "ellpack_block")),
    CfgKey("sparsity", "OptimizedMapping", "bool", "not used (SparsitySupport is false)"),
    CfgKey("sparsity", "BlockSize", "int", "not used (SparsitySupport is false)", minimum=1),
    CfgKey("sparsity", "RandomNumberGeneratorSeed", "int", "not used: seeds SCALE-Sim's random sparse weights "
           "(the run's seed is the config's seed)", minimum=0),
    CfgKey("run_presets", "InterfaceBandwidth", "choice", "CALC: dram.ideal = true; USER: Bandwidth is the "
           "DRAM bandwidth", required=True, choices=("CALC", "USER")),
    CfgKey("run_presets", "UseRamulatorTrace", "bool", "not modelled: Ramulator latency traces (warned if true)"),
    CfgKey("network_presets", "TopologyCsvLoc", "text", "not used: the workload is given with --topology "
           "(warned)"),
)
"""Every key SCALE-Sim 3.0.0's config reader knows, by section."""

SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(k.section for k in KEYS))


def _close(name: str, choices) -> str:
    """`` (did you mean 'X'?)`` ignoring case, as SCALE-Sim's keys do; else the choices."""
    by_lower = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    if close:
        return f" (did you mean {by_lower[close[0]]!r}?)"
    return f" (choose from {', '.join(choices)})"


def _value(key: CfgKey, text: str, where: str) -> Any:
    """The value of ``key`` from its text, or one-line :class:`InputError` naming ``where``."""
    text = text.strip()
    if key.kind == "text":
        return text
    if key.kind == "bool":
        if text.lower() not in _BOOLEANS:
            raise InputError(f"{where}: expected True or False, got {text!r}")
        return _BOOLEANS[text.lower()]
    if key.kind == "choice":
        by_lower = {c.lower(): c for c in key.choices}
        if text.lower() not in by_lower:
            raise InputError(f"{where}: {text!r} is not one of {', '.join(key.choices)}")
        return by_lower[text.lower()]
    if key.kind == "numbers":
        values = []
        for part in text.split(","):
            try:
                number = float(part)
            except ValueError:
                raise InputError(f"{where}: expected a number of words a cycle (or several, separated by "
                                 f"commas), got {text!r}") from None
            if not math.isfinite(number) or number <= 0:
                raise InputError(f"{where}: must be a positive number of words a cycle, got {part.strip()!r}")
            if key.maximum is not None and number > key.maximum:
                raise InputError(f"{where}: must be <= {key.maximum} words a cycle, got {part.strip()!r}")
            values.append(number)
        return tuple(values)
    if not _INTEGER.fullmatch(text):
        raise InputError(f"{where}: expected an integer, got {text!r}")
    number = int(text)
    if key.minimum is not None and number < key.minimum:
        raise InputError(f"{where}: must be >= {key.minimum}, got {number}")
    if key.maximum is not None and number > key.maximum:
        raise InputError(f"{where}: must be <= {key.maximum}, got {number}")
    return number


def _parse(path: Path) -> dict[tuple[str, str], Any]:
    """``{(section, canonical key): value}`` of the file, every section and key checked."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file") from None
    # Keys keep their spelling (for messages) and are matched ignoring case below; no section
    # is special, so a [DEFAULT] section is refused as unknown like any other.
    parser = configparser.ConfigParser(interpolation=None, default_section="\0")
    parser.optionxform = str
    try:
        parser.read_string(text, source=str(path))
    except configparser.MissingSectionHeaderError as exc:
        raise InputError(f"{path}: line {exc.lineno}: a key before the first [section]") from None
    except configparser.DuplicateSectionError as exc:
        raise InputError(f"{path}: line {exc.lineno}: section [{exc.section}] given twice") from None
    except configparser.DuplicateOptionError as exc:
        raise InputError(f"{path}: line {exc.lineno}: {exc.section}.{exc.option} given twice") from None
    except configparser.ParsingError as exc:
        lineno = exc.errors[0][0]
        line = text.splitlines()[lineno - 1].strip()
        raise InputError(f"{path}: line {lineno}: expected `key = value` or `key: value`, got {line!r}") from None
    except configparser.Error as exc:  # any other syntax error configparser finds
        raise InputError(f"{path}: malformed config: {exc.message.splitlines()[0]}") from None
    known = {(k.section, k.name.lower()): k for k in KEYS}
    values: dict[tuple[str, str], Any] = {}
    for section in parser.sections():
        if section not in SECTIONS:
            raise InputError(f"{path}: [{section}]: unknown section{_close(section, SECTIONS)}")
        names = [k.name for k in KEYS if k.section == section]
        for option, text in parser.items(section):
            key = known.get((section, option.lower()))
            if key is None:
                raise InputError(f"{path}: {section}.{option}: unknown key{_close(option, names)}")
            if (section, key.name) in values:  # configparser told `x` from `X`; SCALE-Sim does not
                raise InputError(f"{path}: {section}.{key.name} given twice (keys ignore case)")
            values[(section, key.name)] = _value(key, text, f"{path}: {section}.{option}")
    for key in KEYS:
        if key.required and (key.section, key.name) not in values:
            raise InputError(f"{path}: {key.section}.{key.name}: missing required key")
    return values


def _port(edge: int) -> dict:
    """``banks`` and ``word_bytes`` of a buffer port that never stalls an array whose wider edge is ``edge``."""
    banks = min(edge, 4096)
    return {"banks": banks, "word_bytes": math.ceil(PORT_BYTES_PER_EDGE_PE * edge / banks)}


def read_scalesim_config(path: str | Path) -> dict:
    """The accelerator mapping of SCALE-Sim config ``path`` (validate it with ``build``).

    Keys with no counterpart here that would change SCALE-Sim's own result (USER bandwidth
    mode, custom layouts, Ramulator traces, a topology path) are logged as warnings.
    """
    path = Path(path)
    values = _parse(path)

    def get(section: str, name: str, default: Any = None) -> Any:
        return values.get((section, name), default)

    if get("sparsity", "SparsitySupport", False):
        raise InputError(f"{path}: sparsity.SparsitySupport: true is not read here (SCALE-Sim takes each "
                         "layer's N from its topology file); set it false and switch N:M on per run with "
                         "--sparsity nm:N:M")
    user = get("run_presets", "InterfaceBandwidth") == "USER"
    bandwidth = get("architecture_presets", "Bandwidth")
    if user and bandwidth is None:
        raise InputError(f"{path}: architecture_presets.Bandwidth: missing required key "
                         "(run_presets.InterfaceBandwidth is USER)")
    if bandwidth is not None and len(bandwidth) > 1:
        log.warning("%s: architecture_presets.Bandwidth: %d values; the first (%g words a cycle) is the DRAM "
                    "bandwidth, as SCALE-Sim 3.0.0 reads it", path, len(bandwidth), bandwidth[0])
    if user:
        log.warning("%s: InterfaceBandwidth USER: ifmap, filter and ofmap share one DRAM link of %g bytes a "
                    "cycle here, where SCALE-Sim 3.0.0 gives each its own port (layout.IfmapSRAMBankBandwidth, "
                    "layout.FilterSRAMBankBandwidth, Bandwidth) and request buffers: stall cycles differ from "
                    "SCALE-Sim's", path, bandwidth[0] * WORD_BYTES)
    for name in ("IfmapCustomLayout", "FilterCustomLayout"):
        if get("layout", name, False):
            log.warning("%s: layout.%s: ignored: SRAM layouts and bank conflicts are not modelled (the "
                        "buffers' ports never stall the array)", path, name)
    if get("run_presets", "UseRamulatorTrace", False):
        log.warning("%s: run_presets.UseRamulatorTrace: ignored: Ramulator latency traces are not read; "
                    "DRAM timing is dram.latency_cycles and dram.bandwidth_bytes_per_cycle", path)
    if get("network_presets", "TopologyCsvLoc") is not None:
        log.warning("%s: network_presets.TopologyCsvLoc: ignored: give the workload as --topology FILE.csv",
                    path)

    rows, cols = get("architecture_presets", "ArrayHeight"), get("architecture_presets", "ArrayWidth")
    port = _port(max(rows, cols))
    dataflow = get("architecture_presets", "Dataflow")
    return {
        "name": get("general", "run_name") or path.stem,
        "description": f"SCALE-Sim config {path.name}",
        "array": {"rows": rows, "cols": cols, "precision": "int8",
                  "dataflows": [dataflow] if dataflow else []},
        "buffers": {
            operand: {"size_bytes": get("architecture_presets", key) * KIB, **port}
            for operand, key in (("a", "IfmapSramSzkB"), ("b", "FilterSramSzkB"), ("out", "OfmapSramSzkB"))
        },
        "dram": {
            "bandwidth_bytes_per_cycle": (bandwidth[0] * WORD_BYTES if bandwidth is not None
                                          else IDEAL_BANDWIDTH_BYTES_PER_CYCLE),
            "ideal": not user,
        },
    }
