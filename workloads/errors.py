"""The one exception type for bad user input, shared by every package.

It lives in ``workloads`` because that package sits at the bottom of the import graph
(``sparsesim -> dataflows -> accel -> workloads``), so everyone may raise it. The CLI turns
it into exit code 2 and a single ``error: ...`` line; anything else is an internal error.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input from the user: a config, a trace, a CLI argument.

    The message is one line and names the offending field or file, e.g.
    ``array.rows: must be a positive integer, got 0``.
    """


def field_error(field: str, message: str) -> InputError:
    """Build an :class:`InputError` whose message starts with the dotted field name."""
    return InputError(f"{field}: {message}")
