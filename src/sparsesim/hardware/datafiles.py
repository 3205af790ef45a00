"""Built-in data files (presets, energy tables) shipped as data of the ``sparsesim.hardware`` package (``presets/``, ``energy_tables/``).

Located with :mod:`importlib.resources`, so an installed package finds them; a name that is
not there is refused with a "did you mean".
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import TypeVar

from sparsesim.core.errors import field_error
from sparsesim.core.registry import suggest

T = TypeVar("T")


def builtin_names(folder: str) -> list[str]:
    """Names (file stems) of the YAML files in ``sparsesim/hardware/<folder>``."""
    return sorted(p.name[:-5] for p in (resources.files("sparsesim.hardware") / folder).iterdir() if p.name.endswith(".yaml"))


def read_builtin(folder: str, name: str, reader: Callable[[Path], T], *, field: str, kind: str) -> T:
    """``reader(path)`` of ``sparsesim/hardware/<folder>/<name>.yaml``; an unknown ``name`` names ``field``."""
    names = builtin_names(folder)
    if name not in names:
        raise field_error(field, f"unknown {kind} {name!r}{suggest(name, names)}")
    with resources.as_file(resources.files("sparsesim.hardware") / folder / f"{name}.yaml") as path:
        return reader(Path(path))
