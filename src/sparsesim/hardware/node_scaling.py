"""Technology-node scaling of an energy table: Stillmaker & Baas's fitted factors per node.

A. Stillmaker and B. Baas, "Scaling equations for the accurate prediction of CMOS device
performance from 180 nm to 7 nm", Integration, the VLSI Journal 58:74-81 (2017),
doi:10.1016/j.vlsi.2017.02.002. The paper fits, per node, energy per operation as a
polynomial in the supply voltage, ``E(V) = a V^2 + b V + c``, and gives a table of area
factors between nodes. The coefficients below were read from two public implementations of
the paper: UCLA NanoCAD's ``nodeScale.py`` (github.com/wromaszkan/nodeScale, ``depCoeffDict``
and ``areaDict``, which lists the high-performance (HP) and low-power (LP) rows separately) and
Accelergy's ``hwcomponents/scaling/techscaling.py`` (the same numbers; it mixes LP rows at 45
and 32 nm with HP rows below). We use the **HP rows throughout**, so that one device family is
scaled; Horowitz's 45 nm figures are for a general-purpose (high-performance) process.

The factor from node X to node Y at supply ``vdd_v`` is ``E_Y(vdd) / E_X(vdd)`` for energy and
``AREA_FROM_45NM[Y]`` for area. Nodes the fit does not contain:

- 22 nm lies between the paper's 32 and 20 nm rows: the energy polynomial's value and the area
  factor are interpolated linearly in the node's size (22 is 1/6 of the way from 20 to 32).
- 5 nm is beyond the paper (its last node is 7 nm). We take hwcomponents' rule below 7 nm, which
  it bases on IRDS 2016/2017 projections: area scales with the node's size (x 5/7) and energy with
  its square root (x sqrt(5/7)) from the 7 nm figures. It is a projection, not a fit.

Static (leakage) power is scaled by the energy factor, as hwcomponents does (``tech_node_leak``);
the paper's own power fits are for a switching circuit at its nominal clock, not for leakage.
"""

from __future__ import annotations

import math

from sparsesim.core.errors import field_error

SOURCE = ("Stillmaker & Baas, Integration 58:74-81 (2017), HP energy fits and area table, as listed in "
          "github.com/wromaszkan/nodeScale (nodeScale.py) and Accelergy-Project/hwcomponents "
          "(hwcomponents/scaling/techscaling.py)")

ENERGY_FIT_HP = {
    # node nm: (a, b, c) of E(V) = a V^2 + b V + c (nodeScale.py depCoeffDict 'HP<node>', columns 4-6)
    45: (1.018, -0.3107, 0.1539),
    32: (0.8367, -0.4341, 0.1701),
    20: (0.373, -0.1582, 0.04104),
    16: (0.2958, -0.1241, 0.03024),
    7: (0.1776, -0.09097, 0.02447),
}

AREA_FROM_45NM = {
    # area of a circuit at the node over its area at 45 nm (nodeScale.py areaDict['45'];
    # hwcomponents AREA_SCALING row 45 nm)
    45: 1.0, 32: 0.46, 20: 0.21, 16: 0.19, 7: 0.059,
}

NODES_NM = (45, 32, 22, 16, 7, 5)
"""Nodes ``energy.node`` accepts (nm)."""

_INTERPOLATED = {22: (32, 20)}   # node: (larger, smaller) fitted neighbours
_BEYOND = {5: 7}                  # node: the fitted node it is projected from


def _fit_value(node_nm: int, vdd_v: float) -> float:
    """The paper's energy polynomial ``a V^2 + b V + c`` at ``node_nm`` (interpolated at 22 nm)."""
    if node_nm in ENERGY_FIT_HP:
        a, b, c = ENERGY_FIT_HP[node_nm]
        return a * vdd_v * vdd_v + b * vdd_v + c
    if node_nm in _INTERPOLATED:
        big, small = _INTERPOLATED[node_nm]
        w = (node_nm - small) / (big - small)
        return w * _fit_value(big, vdd_v) + (1 - w) * _fit_value(small, vdd_v)
    if node_nm in _BEYOND:
        ref = _BEYOND[node_nm]
        return _fit_value(ref, vdd_v) * math.sqrt(node_nm / ref)
    raise field_error("energy.node", f"{node_nm} nm is not one of {', '.join(map(str, NODES_NM))}")


def energy_factor(to_nm: int, from_nm: int = 45, vdd_v: float = 0.9) -> float:
    """Energy per operation at ``to_nm`` over that at ``from_nm``, both at ``vdd_v`` volts."""
    return _fit_value(to_nm, vdd_v) / _fit_value(from_nm, vdd_v)


def area_factor(to_nm: int, from_nm: int = 45) -> float:
    """Area at ``to_nm`` over area at ``from_nm``."""
    return _area_from_45(to_nm) / _area_from_45(from_nm)


def _area_from_45(node_nm: int) -> float:
    if node_nm in AREA_FROM_45NM:
        return AREA_FROM_45NM[node_nm]
    if node_nm in _INTERPOLATED:
        big, small = _INTERPOLATED[node_nm]
        w = (node_nm - small) / (big - small)
        return w * AREA_FROM_45NM[big] + (1 - w) * AREA_FROM_45NM[small]
    if node_nm in _BEYOND:
        ref = _BEYOND[node_nm]
        return AREA_FROM_45NM[ref] * node_nm / ref
    raise field_error("energy.node", f"{node_nm} nm is not one of {', '.join(map(str, NODES_NM))}")


ENERGY_KEYS = ("mult_pj", "add_pj", "rf_pj_per_byte", "encode_pj_per_op", "leakage_uw_per_pe",
               "leakage_uw_per_kib_sram")
"""Table keys scaled by the energy factor (leakage power too, see the module docstring)."""
AREA_KEYS = ("mult_um2", "add_um2", "pe_overhead_um2", "sram_um2_per_bit")
"""Table keys scaled by the area factor."""
UNSCALED_KEYS = ("accumulator", "gated_mac_fraction")
"""Keys that are not physical quantities (a precision map, a ratio) and stay as they are."""


def _round(x: float) -> float:
    return float(f"{x:.6g}")  # six significant digits: the fit itself is good to a few percent


def derived_table_name(base_name: str, node_nm: int) -> str:
    """File stem of the table derived from ``base_name`` at ``node_nm``, e.g. ``horowitz45_n7``."""
    return f"{base_name}_n{node_nm}"


def derive_table(base: dict, node_nm: int, vdd_v: float = 0.9) -> dict:
    """The mapping of an energy table (as read from YAML) scaled from its ``technology_nm`` to
    ``node_nm`` at ``vdd_v``: energies and leakage times :func:`energy_factor`, areas times
    :func:`area_factor`, SRAM capacities unchanged; values to six significant digits."""
    from_nm = base.get("technology_nm")
    if from_nm not in NODES_NM:
        raise field_error("technology_nm", f"the base table must state a node of {NODES_NM}, got {from_nm!r}")
    ef, af = energy_factor(node_nm, from_nm, vdd_v), area_factor(node_nm, from_nm)

    def scaled(value, f):
        return {k: _round(v * f) for k, v in value.items()} if isinstance(value, dict) else _round(value * f)

    out = {"name": derived_table_name(base["name"], node_nm),
           "source": f"{base['name']} scaled from {from_nm} nm to {node_nm} nm at {vdd_v:g} V "
                     f"(Stillmaker & Baas 2017, HP fits)",
           "technology_nm": node_nm,
           "derivation": {"base": base["name"], "from_nm": from_nm, "to_nm": node_nm, "vdd_v": vdd_v,
                          "family": "HP", "energy_factor": _round(ef), "area_factor": _round(af),
                          "method": "Stillmaker & Baas 2017, doi:10.1016/j.vlsi.2017.02.002"}}
    for key in ENERGY_KEYS:
        out[key] = scaled(base[key], ef)
    for key in UNSCALED_KEYS:
        out[key] = base[key]
    out["sram_pj_per_64b"] = [[kib, _round(pj * ef)] for kib, pj in base["sram_pj_per_64b"]]
    for key in AREA_KEYS:
        out[key] = scaled(base[key], af)
    return out
