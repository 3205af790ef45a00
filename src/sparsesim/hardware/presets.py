"""Accelerator presets: YAML files in ``src/sparsesim/hardware/presets/``, loaded by name or by path.

A preset describes hardware only; sparsity features are switched on per run (docs/design.md section 3.1).
A file is YAML or TOML with the keys of :class:`~sparsesim.hardware.config.AccelConfig`, or a SCALE-Sim v3
``.cfg`` (:mod:`sparsesim.hardware.scalesim_config`).

A YAML/TOML file may start from another preset: ``extends: NAME`` (a built-in name, or a path relative
to the file) takes that preset's keys, and the file's own keys replace them, section by section
(``dram: {bandwidth_bytes_per_cycle: ...}`` replaces that one key of the base's ``dram``). A variant
of published hardware (the 80 GB A100 beside the 40 GB one) is then its differences alone.
"""

from __future__ import annotations

from pathlib import Path

from sparsesim.hardware.config import AccelConfig, apply_overrides, build, parse_override, read_mapping
from sparsesim.hardware.datafiles import builtin_names, read_builtin
from sparsesim.hardware.scalesim_config import read_scalesim_config
from sparsesim.core.errors import arg_error, field_error
from sparsesim.core.registry import suggest

FILE_SUFFIXES = (".yaml", ".yml", ".toml", ".cfg")
"""Accelerator config files: YAML or TOML with our keys, or a SCALE-Sim ``.cfg``."""


def preset_names() -> list[str]:
    """Names of the built-in presets."""
    return builtin_names("presets")


def read_accel_file(path: Path) -> dict:
    """The raw mapping of an accelerator config file, by its suffix (one of :data:`FILE_SUFFIXES`)."""
    if path.suffix.lower() == ".cfg":
        return read_scalesim_config(path)
    return read_mapping(path)


def preset_mapping(spec: str) -> dict:
    """The raw mapping of preset ``spec`` (a name, or a path to a YAML/TOML/SCALE-Sim .cfg file),
    with its ``extends`` chain resolved (module docstring)."""
    return _resolved(spec, None, ())


def _resolved(spec: str, folder: Path | None, chain: tuple[str, ...]) -> dict:
    """:func:`preset_mapping` of ``spec``; ``folder`` is the extending file's (a relative path's
    base), ``chain`` the presets extending it (a cycle is refused)."""
    path = Path(spec)
    if path.suffix.lower() in FILE_SUFFIXES:
        if folder is not None and not path.is_absolute():
            path = folder / path
        if not path.exists():
            raise (field_error("extends", f"no such file {str(path)!r}") if chain
                   else arg_error("accel", f"no such file {spec!r}"))
        data, key, here = read_accel_file(path), str(path.resolve()), path.parent
    else:
        names = preset_names()
        if spec not in names:  # named as the API's argument; the command line says --accel
            message = f"unknown preset {spec!r}{suggest(spec, names)}"
            raise field_error("extends", message) if chain else arg_error("accel", message)
        data, key, here = read_builtin("presets", spec, read_mapping, field="accel", kind="preset"), spec, None
    if key in chain:  # a file is known by its resolved path, however it was named; shown by its file name
        names = [Path(k).name for k in chain + (key,)]
        raise field_error("extends", f"{names[0]} extends itself: {' -> '.join(names)}")
    if "extends" not in data:
        return data
    base = data.pop("extends")
    if not isinstance(base, str) or not base:
        raise field_error("extends", f"must name a preset or a preset file, got {base!r}")
    return _merged(_resolved(base, here, chain + (key,)), data)


def _merged(base: dict, own: dict) -> dict:
    """``base`` with ``own``'s keys replacing it, sections (mappings) merged key by key."""
    out = dict(base)
    for k, v in own.items():
        out[k] = _merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_accel(spec: str, overrides: list[str] | tuple[str, ...] = (), extra: dict | None = None) -> AccelConfig:
    """Build a validated :class:`AccelConfig` from a preset plus ``--set`` overrides.

    ``extra`` holds already-parsed ``(path, value)`` overrides (e.g. sparsity from the CLI).
    The hardware is validated here; the sparsity features are checked against it where
    features and hardware meet, above this package (:mod:`sparsesim.simulation.assemble`, and
    again by every simulation), so the hardware layer never imports the features.
    """
    data = preset_mapping(spec)
    pairs = [parse_override(o) for o in overrides]
    if extra:
        pairs += list(extra.items())
    data = apply_overrides(data, pairs)
    return build(AccelConfig, data)
