"""Energy tables in Accelergy's form: an ERT (energy reference table) and ART (area reference table).

Accelergy (Wu, Emer and Sze, ICCAD 2019) prices an architecture with two tables it writes out:
the ERT lists, per component, the energy of each action (pJ per action), and the ART the area
of each component (um^2)::

    ERT:
      version: 0.4
      tables:
        - name: system.PE[0..255].mac
          actions:
            - {name: mac_random, arguments: null, energy: 0.3}
            - {name: mac_gated, arguments: null, energy: 0.015}
    ART:
      version: 0.4
      tables:
        - {name: system.PE[0..255].mac, area: 419.0}

Such a file is an energy table here (``--set energy.table=FILE``) once a ``sparsesim`` section
says which entry prices which of this simulator's components, and the widths its actions move
(Accelergy's tables do not carry the attributes they were computed for)::

    sparsesim:
      name: my_accel_22nm
      source: "Accelergy 0.4, my architecture, 22 nm"
      technology_nm: 22
      mac:           {int8: {table: system.PE[0..255].mac, action: mac_random}}   # one MAC, pJ
      mac_gated:     {int8: {table: system.PE[0..255].mac, action: mac_gated}}    # a gated MAC, pJ
      accumulator:   {int8: int32}
      register_file: {table: system.PE[0..255].reg, action: read, bytes: 1}       # pJ per access of `bytes`
      sram:                      # points of the capacity curve: pJ per access of `bits`
        - {table: system.buf_8k, action: read, bits: 64, capacity_kib: 8}
        - {table: system.glb, action: read, bits: 64, capacity_kib: 1024}
      encode: {table: system.encoder, action: encode}                            # pJ per op
      leakage_uw_per_pe: 2.0     # static power has no action: plain numbers (uW)
      leakage_uw_per_kib_sram: 10.0
      area:
        mac: {int8: system.PE[0..255].mac}        # ART entries, um^2 per MAC unit
        pe_overhead_um2: 200.0
        sram: {table: system.glb, capacity_kib: 1024}   # um^2 per bit from one SRAM's area

Any value of the ``sparsesim`` section may be a number instead of a reference. The result is an
:class:`~sparsesim.hardware.energy.EnergyTable` whose MAC energy is the ERT's MAC action (its
multiply and add are not split: ``add_pj`` is 0), whose gated fraction is ``mac_gated / mac``,
and whose SRAM curve is the listed points, each scaled to 64 bits. ``horowitz45_ert.yaml``
holds ``horowitz45`` in this form; a test checks that both price every event alike.
"""

from __future__ import annotations

from pathlib import Path

from sparsesim.core.errors import field_error
from sparsesim.core.registry import suggest

_SECTION_KEYS = ("name", "source", "technology_nm", "mac", "mac_gated", "accumulator", "register_file", "sram",
                 "encode", "leakage_uw_per_pe", "leakage_uw_per_kib_sram", "area", "derivation")
_AREA_KEYS = ("mac", "pe_overhead_um2", "sram", "sram_um2_per_bit")
_TOP = ("ERT", "ART", "sparsesim")


def is_ert(data: dict) -> bool:
    """Whether a table file's mapping is in Accelergy's form (an ``ERT`` key at its top)."""
    return isinstance(data, dict) and "ERT" in data


def _unknown(where: str, mapping: dict, allowed: tuple) -> None:
    for key in mapping:
        if key not in allowed:
            raise field_error(f"{where}.{key}", f"unknown key{suggest(str(key), allowed)}")


def _tables(data: dict, kind: str, where: str) -> dict[str, dict]:
    """``{entry name: entry}`` of the ERT's or ART's ``tables`` list."""
    block = data.get(kind)
    if block is None:
        return {}
    if not isinstance(block, dict) or not isinstance(block.get("tables"), list):
        raise field_error(f"{where}:{kind}.tables", "expected a list of tables")
    out = {}
    for i, entry in enumerate(block["tables"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise field_error(f"{where}:{kind}.tables[{i}]", "expected a mapping with a name")
        out[entry["name"]] = entry
    return out


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value < 0:
        raise field_error(where, f"expected a non-negative number, got {value!r}")
    return float(value)


def _action_pj(ert: dict, ref, where: str) -> float:
    """The energy (pJ) that ``ref`` (``{table, action}``, or a number) names in the ERT."""
    if not isinstance(ref, dict):
        return _number(ref, where)
    _unknown(where, ref, ("table", "action", "bytes", "bits", "capacity_kib"))
    name, action = ref.get("table"), ref.get("action")
    if name not in ert:
        raise field_error(f"{where}.table", f"no ERT table {name!r}{suggest(str(name), tuple(ert))}")
    actions = {a.get("name"): a for a in ert[name].get("actions") or [] if isinstance(a, dict)}
    if action not in actions:
        raise field_error(f"{where}.action", f"table {name!r} has no action {action!r} "
                                             f"(it has {', '.join(map(str, actions)) or 'none'})")
    return _number(actions[action].get("energy"), f"{where}: {name}.{action}.energy")


def _area_um2(art: dict, ref, where: str) -> float:
    if not isinstance(ref, str):
        return _number(ref, where)
    if ref not in art:
        raise field_error(where, f"no ART table {ref!r}{suggest(ref, tuple(art))}")
    return _number(art[ref].get("area"), f"{where}: {ref}.area")


def _per_precision(section: dict, key: str, where: str) -> dict:
    value = section.get(key)
    if not isinstance(value, dict) or not value:
        raise field_error(f"{where}.{key}", "expected a mapping from precision (int8, fp16, ...) to its entry")
    return value


def from_ert(data: dict, path: Path) -> dict:
    """The keyword arguments of an ``EnergyTable`` from an Accelergy-form file's mapping."""
    where = path.name
    _unknown(where, data, _TOP)
    section = data.get("sparsesim")
    if not isinstance(section, dict):
        raise field_error(f"{where}:sparsesim", "missing: an ERT needs a sparsesim section that binds its entries "
                                                "to this simulator's components (docs/energy.md)")
    s = f"{where}:sparsesim"
    _unknown(s, section, _SECTION_KEYS)
    for key in ("name", "source", "mac", "accumulator", "register_file", "sram", "area"):
        if key not in section:
            raise field_error(f"{s}.{key}", "missing required key")
    ert, art = _tables(data, "ERT", where), _tables(data, "ART", where)

    mac = {p: _action_pj(ert, ref, f"{s}.mac.{p}") for p, ref in _per_precision(section, "mac", s).items()}
    if any(v <= 0 for v in mac.values()):
        raise field_error(f"{s}.mac", "a MAC's energy must be positive")
    accumulator = _per_precision(section, "accumulator", s)
    for p in mac:
        if p not in accumulator:
            raise field_error(f"{s}.accumulator.{p}", "missing: the accumulator precision of every MAC precision")
    gated = section.get("mac_gated", {})
    fractions = {p: _action_pj(ert, ref, f"{s}.mac_gated.{p}") / mac[p] for p, ref in gated.items() if p in mac}
    if len(set(round(f, 12) for f in fractions.values())) > 1:
        raise field_error(f"{s}.mac_gated", "a gated MAC must cost the same fraction of a MAC at every precision "
                                            "(this simulator keeps one gated_mac_fraction)")
    rf = section["register_file"]
    if not isinstance(rf, dict) or "bytes" not in rf:
        raise field_error(f"{s}.register_file", "expected {table, action, bytes}: the bytes one access moves")
    rf_bytes = _number(rf["bytes"], f"{s}.register_file.bytes")
    points = section["sram"]
    if not isinstance(points, list) or not points:
        raise field_error(f"{s}.sram", "expected a list of {table, action, bits, capacity_kib}")
    curve = []
    for i, ref in enumerate(points):
        w = f"{s}.sram[{i}]"
        if not isinstance(ref, dict) or "bits" not in ref or "capacity_kib" not in ref:
            raise field_error(w, "expected {table, action, bits, capacity_kib}")
        bits, kib = _number(ref["bits"], f"{w}.bits"), _number(ref["capacity_kib"], f"{w}.capacity_kib")
        if bits <= 0 or kib <= 0:
            raise field_error(w, "bits and capacity_kib must be positive")
        curve.append((kib, _action_pj(ert, ref, w) * 64.0 / bits))
    if len({k for k, _ in curve}) != len(curve):
        raise field_error(f"{s}.sram", "two points at one capacity")

    area = section["area"]
    if not isinstance(area, dict):
        raise field_error(f"{s}.area", "expected a mapping")
    _unknown(f"{s}.area", area, _AREA_KEYS)
    mac_area = area.get("mac")
    if not isinstance(mac_area, dict) or set(mac_area) != set(mac):
        raise field_error(f"{s}.area.mac", f"expected the area of a MAC unit at each precision of mac "
                                           f"({', '.join(mac)})")
    if "sram" in area:
        ref = area["sram"]
        if not isinstance(ref, dict) or "table" not in ref or "capacity_kib" not in ref:
            raise field_error(f"{s}.area.sram", "expected {table, capacity_kib}")
        per_bit = _area_um2(art, ref["table"], f"{s}.area.sram.table") / (
            _number(ref["capacity_kib"], f"{s}.area.sram.capacity_kib") * 1024 * 8)
    elif "sram_um2_per_bit" in area:
        per_bit = _number(area["sram_um2_per_bit"], f"{s}.area.sram_um2_per_bit")
    else:
        raise field_error(f"{s}.area.sram", "missing: an SRAM's area (or sram_um2_per_bit)")

    encode = section.get("encode", 0.0)
    out = {
        "name": section["name"], "source": section["source"],
        "mult_pj": mac, "add_pj": {acc: 0.0 for acc in accumulator.values()}, "accumulator": dict(accumulator),
        "gated_mac_fraction": next(iter(fractions.values()), 0.0),
        "sram_pj_per_64b": tuple(sorted(curve)),
        "rf_pj_per_byte": _action_pj(ert, rf, f"{s}.register_file") / rf_bytes,
        "encode_pj_per_op": _action_pj(ert, encode, f"{s}.encode"),
        "leakage_uw_per_pe": _number(section.get("leakage_uw_per_pe", 0.0), f"{s}.leakage_uw_per_pe"),
        "leakage_uw_per_kib_sram": _number(section.get("leakage_uw_per_kib_sram", 0.0),
                                           f"{s}.leakage_uw_per_kib_sram"),
        "mult_um2": {p: _area_um2(art, ref, f"{s}.area.mac.{p}") for p, ref in mac_area.items()},
        "add_um2": {acc: 0.0 for acc in accumulator.values()},
        "pe_overhead_um2": _number(area.get("pe_overhead_um2", 0.0), f"{s}.area.pe_overhead_um2"),
        "sram_um2_per_bit": per_bit,
    }
    if "technology_nm" in section:
        out["technology_nm"] = int(_number(section["technology_nm"], f"{s}.technology_nm"))
    if "derivation" in section:
        out["derivation"] = section["derivation"]
    return out
