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

    ``arg`` is set when the message starts with the name of a Python API argument
    (``prompt_len: ...``, see :func:`arg_error`): the command line then names its own flag
    (``--prompt-len: ...``) where the command has one, so each face names what its user typed.
    """

    def __init__(self, message: str, *, arg: str | None = None) -> None:
        super().__init__(message)
        self.arg = arg


def field_error(field: str, message: str) -> InputError:
    """Build an :class:`InputError` whose message starts with the dotted field name."""
    return InputError(f"{field}: {message}")


def arg_error(arg: str, message: str) -> InputError:
    """An :class:`InputError` naming argument ``arg`` of a library function (``prompt_len``,
    ``network.batch``), as the Python API spells it; the command line prints its flag instead."""
    return InputError(f"{arg}: {message}", arg=arg)
