"""A small name -> object registry, the one mechanism behind every extension point.

Dataflows, sparsity features, presets, energy tables and zoo models each keep one
:class:`Registry`; an implementation registers itself with a decorator in its own file, so
adding one is a new file plus an import in its package's ``__init__``, never an ``if/elif``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from sparsesim.core.errors import InputError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to registered objects; unknown names fail with a "did you mean"."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``; a name may be taken only once."""

        def add(obj: T) -> T:
            if name in self._items:
                raise RuntimeError(f"{self.kind} {name!r} registered twice")
            self._items[name] = obj
            return obj

        return add

    def add(self, name: str, obj: T) -> None:
        """Register ``obj`` under ``name`` (non-decorator form)."""
        self.register(name)(obj)

    def get(self, name: str, field: str | None = None) -> T:
        """Return the object registered as ``name`` or raise :class:`InputError`."""
        try:
            return self._items[name]
        except KeyError:
            raise InputError(
                f"{field or self.kind}: unknown {self.kind} {name!r}{suggest(name, self._items)}"
            ) from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)


def suggest(name: str, choices) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or the list of choices."""
    choices = sorted(str(c) for c in choices)
    close = difflib.get_close_matches(str(name), choices, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (choose from {', '.join(choices)})" if choices else ""
