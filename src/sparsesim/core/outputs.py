"""Checking where an output goes before any work starts: one rule for every command and API call.

A simulation, capture or sweep can take hours; finding out only at the end that ``--out``
names a directory, sits under a file, or lies on a file system we may not write to would
lose that work with a traceback. :func:`check_output_path` answers all of this up front,
with one :class:`~sparsesim.core.errors.InputError` naming the field (``--out`` on the
command line, ``out`` in the API) and the path. Write access is probed by creating (and
removing) a file in the directory that would receive the output: permission bits alone do
not tell, since root writes into a ``0555`` directory and ``/proc`` refuses new files
whatever its mode says.

It also refuses an output that is one of the command's inputs (same file after resolving
symlinks and relative paths), and, for outputs that replace a whole directory, an input that
lies inside it. What may already exist at the path (``--overwrite``, resuming a sweep) is
each writer's own rule.

It lives in ``workloads`` (the bottom of the import graph) so the trace writer can use it too.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from sparsesim.core.atomic import temp_file
from sparsesim.core.errors import field_error

KINDS = ("file", "dir")


def check_output_path(path: Path | str, *, field: str, kind: str, inputs: Iterable[tuple[str, Path | str]] = (),
                      replaces_dir: bool = False, parent_must_exist: bool = False) -> None:
    """Refuse an output ``path`` of ``kind`` (``"file"`` or ``"dir"``) that cannot be written.

    ``inputs`` are ``(field, path)`` pairs of the command's inputs; the output may not be one
    of them, nor (with ``replaces_dir``: the writer replaces the whole directory) contain
    one. ``parent_must_exist``: the writer does not create missing parent directories.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    path = Path(path)
    _check_not_input(path, field, inputs, replaces_dir)
    state = _state(path)
    if state == "broken link":
        raise field_error(field, f"{path} is a broken symbolic link")
    if kind == "file" and state == "dir":
        raise field_error(field, f"{path} is a directory; expected a file name")
    if kind == "dir" and state == "file":
        raise field_error(field, f"{path} exists and is not a directory")
    ancestor = path.parent
    while (found := _state(ancestor)) == "missing" and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if found != "dir":
        raise field_error(field, f"{path}: {ancestor} is not a directory")
    if parent_must_exist and ancestor != path.parent:
        raise field_error(field, f"directory {path.parent} does not exist")
    _probe(ancestor, path, field)
    if state == "dir":  # written into (a sweep) or renamed aside (a replaced trace or report)
        _probe(path, path, field)


def _state(path: Path) -> str:
    """``"missing"``, ``"dir"``, ``"file"`` (anything else that exists) or ``"broken link"``."""
    try:
        is_dir = path.is_dir()
        exists = is_dir or path.exists()
    except OSError:  # e.g. no permission to look: the probe below gives the reason
        return "dir"
    if exists:
        return "dir" if is_dir else "file"
    return "broken link" if path.is_symlink() else "missing"


def _probe(directory: Path, path: Path, field: str) -> None:
    """Create and remove a file in ``directory``: the only reliable test that we may write there."""
    try:
        temp_file(directory / ".sparsesim-write-check", ".probe").unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise field_error(field, f"{path}: cannot create files in {directory} ({reason})") from None


def _check_not_input(path: Path, field: str, inputs: Iterable[tuple[str, Path | str]], replaces_dir: bool) -> None:
    out = Path(os.path.realpath(path))
    for input_field, given in inputs:
        if given is None:
            continue
        source = Path(os.path.realpath(given))
        if out == source or _samefile(path, given):
            raise field_error(field, f"{path} is the input {input_field} {given}; writing there would destroy it")
        if replaces_dir and source.is_relative_to(out):
            raise field_error(field, f"{path} holds the input {input_field} {given}; replacing it would delete it")


def _samefile(a: Path | str, b: Path | str) -> bool:
    """Hard links (and bind mounts) of one file; False when either does not exist."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
