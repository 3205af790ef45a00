"""Accelerator presets: YAML files in ``src/sparsesim/hardware/presets/``, loaded by name or by path.

A preset describes hardware only; sparsity features are switched on per run (docs/design.md section 3.1).
A file is YAML or TOML with the keys of :class:`~sparsesim.hardware.config.AccelConfig`, or a SCALE-Sim v3
``.cfg`` (:mod:`sparsesim.hardware.scalesim_config`).
"""

from __future__ import annotations

from pathlib import Path

from sparsesim.hardware.config import AccelConfig, apply_overrides, build, parse_override, read_mapping
from sparsesim.hardware.datafiles import builtin_names, read_builtin
from sparsesim.hardware.scalesim_config import read_scalesim_config
from sparsesim.core.errors import arg_error
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
    """The raw mapping of preset ``spec`` (a name, or a path to a YAML/TOML/SCALE-Sim .cfg file)."""
    path = Path(spec)
    if path.suffix.lower() in FILE_SUFFIXES:
        if not path.exists():
            raise arg_error("accel", f"no such file {spec!r}")
        return read_accel_file(path)
    names = preset_names()
    if spec not in names:  # named as the API's argument; the command line says --accel
        raise arg_error("accel", f"unknown preset {spec!r}{suggest(spec, names)}")
    return read_builtin("presets", spec, read_mapping, field="accel", kind="preset")


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
