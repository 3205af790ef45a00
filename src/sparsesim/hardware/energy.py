"""Energy and area: per-event counts times a swappable table kept as a data file.

Tables live in ``src/sparsesim/hardware/energy_tables/*.yaml`` and are registered by file name; a path to a YAML
file works too. A file is either this module's form or Accelergy's (an ERT and ART with a section
binding their entries to the components here, :mod:`sparsesim.hardware.ert`). The default is ``horowitz45`` (Horowitz, ISSCC 2014, 45 nm); ``horowitz45_n<node>``
are its derivations at 32, 22, 16, 7 and 5 nm (:mod:`sparsesim.hardware.node_scaling`), which
``energy.node`` selects (:func:`energy_table_name`). SRAM energy per
access depends on the buffer's capacity (log-log interpolation between the table's points),
so growing a buffer costs energy per access as well as area. Leakage is charged over the
run's wall time (cycles / clock). DRAM energy is the memory model's price of the bytes moved
(:meth:`sparsesim.hardware.memory.MemoryModel.energy_pj`). Every result names the table it used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from sparsesim.hardware.config import AccelConfig, read_mapping
from sparsesim.hardware.datafiles import builtin_names, read_builtin
from sparsesim.hardware.ert import from_ert, is_ert
from sparsesim.hardware.memory import DRAM_ENERGY_COLUMNS, memory_model
from sparsesim.hardware.node_scaling import derive_table, derived_table_name
from sparsesim.hardware.schedule import EventCounts
from sparsesim.hardware.sram_fit import SramFit, sram_fit
from sparsesim.core.errors import InputError, field_error
from sparsesim.core.registry import suggest

_REQUIRED = ("name", "source", "mult_pj", "add_pj", "accumulator", "gated_mac_fraction", "sram_pj_per_64b",
             "rf_pj_per_byte", "encode_pj_per_op", "leakage_uw_per_pe", "leakage_uw_per_kib_sram", "mult_um2",
             "add_um2", "pe_overhead_um2", "sram_um2_per_bit")
_OPTIONAL = ("technology_nm", "derivation")


@dataclass(frozen=True, slots=True)
class EnergyTable:
    """Energy per event (pJ), static power (uW) and area (um^2) of one technology."""

    name: str
    source: str
    mult_pj: dict
    add_pj: dict
    accumulator: dict
    gated_mac_fraction: float
    sram_pj_per_64b: tuple  # ((KiB, pJ), ...) ascending
    rf_pj_per_byte: float
    encode_pj_per_op: float
    leakage_uw_per_pe: float
    leakage_uw_per_kib_sram: float
    mult_um2: dict
    add_um2: dict
    pe_overhead_um2: float
    sram_um2_per_bit: float
    technology_nm: int = 0  # 0: the table does not state its node
    derivation: dict | None = None  # a derived table's base, factors and method (node_scaling.derive_table)

    def mac_pj(self, precision: str) -> float:
        """One multiply plus one accumulate at ``precision``."""
        return self.mult_pj[precision] + self.add_pj[self.accumulator[precision]]

    def sram_pj_per_byte(self, size_bytes: int) -> float:
        """Access energy per byte of an SRAM of ``size_bytes`` (log-log interpolation)."""
        pts = self.sram_pj_per_64b
        kib = max(size_bytes / 1024.0, 1e-9)
        if len(pts) == 1:
            return pts[0][1] / 8.0
        i = 0
        while i < len(pts) - 2 and kib > pts[i + 1][0]:
            i += 1
        (x0, y0), (x1, y1) = pts[i], pts[i + 1]
        slope = math.log(y1 / y0) / math.log(x1 / x0)
        return y0 * (kib / x0) ** slope / 8.0


def _load_table(path: Path) -> EnergyTable:
    data = read_mapping(path)
    if is_ert(data):  # Accelergy's form: an ERT and ART with a section binding them (hardware/ert.py)
        return EnergyTable(**from_ert(data, path))
    if not isinstance(data, dict):
        raise field_error(path.name, "expected a mapping of table keys (or an Accelergy ERT)")
    for key in data:
        if key not in _REQUIRED and key not in _OPTIONAL:
            raise field_error(f"{path.name}:{key}", f"unknown key{suggest(key, _REQUIRED + _OPTIONAL)}")
    for key in _REQUIRED:
        if key not in data:
            raise field_error(f"{path.name}:{key}", "missing required key")
    pts = data["sram_pj_per_64b"]
    if not isinstance(pts, list) or not pts or any(
            not isinstance(p, list) or len(p) != 2 or min(p) <= 0 for p in pts):
        raise field_error(f"{path.name}:sram_pj_per_64b", "expected a list of [KiB, pJ] pairs, both positive")
    data["sram_pj_per_64b"] = tuple(sorted((float(a), float(b)) for a, b in pts))
    if "derivation" in data and (not isinstance(data["derivation"], dict) or "base" not in data["derivation"]):
        raise field_error(f"{path.name}:derivation", "expected a mapping naming its base table (base: NAME)")
    for prec, acc in data["accumulator"].items():
        if prec not in data["mult_pj"] or acc not in data["add_pj"]:
            raise field_error(f"{path.name}:accumulator.{prec}", "names a precision missing from mult_pj/add_pj")
    return EnergyTable(**{k: data[k] for k in _REQUIRED + _OPTIONAL if k in data})


def energy_table_names() -> list[str]:
    """Names of the built-in energy tables."""
    return builtin_names("energy_tables")


DERIVED_SEP = "@"
"""``BASE@NODEnm`` names ``BASE`` derived in memory at ``NODE`` nm (:func:`energy_table_name`)."""


@cache
def energy_table(name: str, field: str = "energy_table") -> EnergyTable:
    """The built-in table ``name`` or the table in YAML file ``name``; ``BASE@NODEnm`` is table
    ``BASE`` (either) scaled to ``NODE`` nm in memory by
    :func:`~sparsesim.hardware.node_scaling.derive_table`, as the built-in derived files are.
    ``field``: the config key an unknown name is reported under."""
    base, sep, node = name.rpartition(DERIVED_SEP)
    if sep and node.endswith("nm") and node[:-2].isdigit():
        return _derived(base, int(node[:-2]), field)
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return _load_table(path)
    return read_builtin("energy_tables", name, _load_table, field=field, kind="energy table")


def energy_table_name(cfg: AccelConfig) -> str:
    """The table a config prices with, as :func:`energy_table` takes it: ``energy.table`` (or the
    older ``energy_table``) as given, or, when ``energy.node`` names another node than that
    table's, the built-in table derived from the same 45 nm base at that node
    (:mod:`sparsesim.hardware.node_scaling`; e.g. ``horowitz45`` at 7 nm is ``horowitz45_n7``).
    A table with no derived file (an Accelergy ERT, a user's table) that states its
    ``technology_nm`` is derived in memory by the same rule: ``BASE@NODEnm``."""
    field = "energy.table" if cfg.energy.table else "energy_table"  # the key an unknown name is reported under
    return _table_at_node(cfg.energy.table or cfg.energy_table, cfg.energy.node, field)


@cache
def _table_at_node(name: str, node: int, field: str) -> str:
    table = energy_table(name, field)
    if node in (0, table.technology_nm):
        return name
    _check_movable(table, node)
    root = table.derivation["base"] if table.derivation else name  # a file is named by its path
    if table.derivation and node == energy_table(root).technology_nm:
        return root
    derived = derived_table_name(root, node)
    if derived in energy_table_names():
        return derived
    return f"{root}{DERIVED_SEP}{node}nm"  # no file derived from it: derived in memory, the same way


def _check_movable(table: EnergyTable, node: int) -> None:
    if not table.technology_nm:
        raise field_error("energy.node", f"table {table.name!r} states no technology_nm, so it cannot be moved to "
                                         f"{node} nm")


def _derived(base: str, node: int, field: str) -> EnergyTable:
    """Table ``base`` (as :func:`energy_table` takes it, stating its ``technology_nm``) scaled
    to ``node`` nm, named ``BASE@NODEnm`` and deriving from ``base`` as given (a file by its
    path), so that the name leads back to both tables."""
    table = energy_table(base, field)
    _check_movable(table, node)
    data = {k: getattr(table, k) for k in _REQUIRED + _OPTIONAL}
    data["sram_pj_per_64b"] = [list(p) for p in table.sram_pj_per_64b]
    out = derive_table(data, node)
    out["name"] = f"{base}{DERIVED_SEP}{node}nm"
    out["derivation"] = {**out["derivation"], "base": base}
    out["sram_pj_per_64b"] = tuple(sorted((float(a), float(b)) for a, b in out["sram_pj_per_64b"]))
    return EnergyTable(**out)


def config_energy_table(cfg: AccelConfig) -> EnergyTable:
    """The table of :func:`energy_table_name` for ``cfg``."""
    return energy_table(energy_table_name(cfg))


def config_sram_fit(cfg: AccelConfig) -> SramFit | None:
    """The SRAM fit ``energy.sram`` names, or None (the table's SRAM alone)."""
    return sram_fit(cfg.energy.sram) if cfg.energy.sram else None


def buffer_pj_per_byte(table: EnergyTable, buf, fit: SramFit | None, quantity: str = "read_pj") -> float:
    """Energy per byte of one access of buffer ``buf`` (a ``BufferConfig``): the table's at its
    capacity, scaled by ``fit`` to its word width and banks (``quantity``: read_pj, write_pj,
    or "mix", the mean of the two, for a buffer written as often as read)."""
    pj = table.sram_pj_per_byte(buf.size_bytes)
    if fit is None:
        return pj
    if quantity == "mix":
        return pj * 0.5 * sum(fit.pj_per_byte_factor(q, buf.word_bytes, buf.banks) for q in ("read_pj", "write_pj"))
    return pj * fit.pj_per_byte_factor(quantity, buf.word_bytes, buf.banks)


def check_table_supports(table: EnergyTable, cfg: AccelConfig) -> None:
    """Fail early if the table has no numbers for the configured precision, or ``energy.sram``
    names no readable fit."""
    for key in ("mult_pj", "mult_um2"):
        if cfg.array.precision not in getattr(table, key):
            raise InputError(f"energy_table: {table.name} has no {key} for precision {cfg.array.precision!r}")
    config_sram_fit(cfg)


def energy_breakdown_pj(counts: EventCounts, cfg: AccelConfig, cycles: int,
                        table: EnergyTable, memory: dict | None = None) -> dict[str, float]:
    """Energy of one result row by component, in pJ. ``memory``: the memory model's row columns
    (``OpOutcome.memory``); where they split DRAM energy over events (``DRAM_ENERGY_COLUMNS``),
    ``dram`` is their sum, otherwise the memory model's price of the bytes moved."""
    prec = cfg.array.precision
    mac = table.mac_pj(prec)
    buf = cfg.buffers
    fit = config_sram_fit(cfg)
    a_pj = buffer_pj_per_byte(table, buf.a, fit)  # operands: read far more often than written
    b_pj = buffer_pj_per_byte(table, buf.b, fit)
    out_pj = buffer_pj_per_byte(table, buf.out, fit, "mix")  # partial sums: read-modify-write
    sram_kib = (buf.a.size_bytes + buf.b.size_bytes + buf.out.size_bytes) / 1024.0
    seconds = cycles / cfg.clock_hz
    cores = cfg.chip.cores  # every core leaks while the chip runs the GEMM
    leak_uw = (cores * (table.leakage_uw_per_pe * cfg.array.pes + table.leakage_uw_per_kib_sram * sram_kib)
               + table.leakage_uw_per_kib_sram * cfg.chip.l2.size_bytes / 1024.0)
    chip = {}
    if memory and "l2_bytes" in memory:  # a chip of several cores: its shared L2's traffic
        l2 = cfg.chip.l2
        chip["l2"] = memory["l2_bytes"] * (l2.energy_pj_per_byte or table.sram_pj_per_byte(max(l2.size_bytes, 64)))
    return {
        "mac": counts.macs_performed * mac,
        "mac_gated": counts.macs_gated * mac * table.gated_mac_fraction,
        # operand register reads at operand width; the accumulator's read-modify-write moves
        # a partial sum in and out at accumulator width
        "register_file": ((counts.rf_accesses - counts.accumulator_rmw) * cfg.array.element_bytes
                          + counts.accumulator_rmw * 2 * cfg.array.accumulator_bytes) * table.rf_pj_per_byte,
        "sram_a": counts.sram_a_bytes * a_pj,
        "sram_b": counts.sram_b_bytes * b_pj,
        "sram_out": counts.sram_out_bytes * out_pj,
        "metadata": counts.metadata_a_bytes * a_pj + counts.metadata_b_bytes * b_pj,
        "delta_state": counts.delta_state_bytes * out_pj,
        "delta_encode": counts.encode_ops * table.encode_pj_per_op,
        "nm_pregen": counts.pregen_ops * table.encode_pj_per_op,
        "dram": (sum(memory[c] for c in DRAM_ENERGY_COLUMNS) if memory and DRAM_ENERGY_COLUMNS[0] in memory
                 else memory_model(cfg).energy_pj(counts.dram_read_bytes, counts.dram_write_bytes)),
        **chip,
        "leakage": leak_uw * 1e-6 * seconds * 1e12,
    }


def area_breakdown_um2(cfg: AccelConfig, table: EnergyTable, macs: int | None = None) -> dict[str, float]:
    """Silicon area by component in um^2 (PE array and the three SRAM buffers). ``macs``: MAC
    units of the array (default one per PE, ``rows x cols``; an array kind with several per PE
    says how many, :func:`sparsesim.dataflows.array_kind.area_um2`)."""
    prec = cfg.array.precision
    pe = table.mult_um2[prec] + table.add_um2[table.accumulator[prec]] + table.pe_overhead_um2
    buf = cfg.buffers
    cores = cfg.chip.cores  # every core has its array and buffers
    fit = config_sram_fit(cfg)

    def sram(b) -> float:
        return b.size_bytes * 8 * table.sram_um2_per_bit * (fit.factor("area_um2", b.word_bytes, b.banks) if fit else 1.0)

    area = {
        "pe_array": cores * pe * (cfg.array.pes if macs is None else macs),
        "sram_a": cores * sram(buf.a),
        "sram_b": cores * sram(buf.b),
        "sram_out": cores * sram(buf.out),
    }
    if cfg.chip.l2.size_bytes:
        area["l2"] = cfg.chip.l2.size_bytes * 8 * table.sram_um2_per_bit
    return area
