"""Atomic writes of files and directories that follow the user's umask: one helper for all writers.

Every output of the tool (result tables, sweep points and metadata, reports, traces) is
written to a hidden temporary sibling and renamed into place, so a reader never sees half a
file and a crash never leaves a complete-looking one. ``tempfile.mkstemp``/``mkdtemp`` create
their files ``0600``/directories ``0700`` whatever the umask, which would make every output
private; here temporary files are created with ``0666`` and directories with ``0777``, minus
the umask, exactly as ``open()``/``mkdir`` would, so outputs get the permissions the user
expects (``-rw-r--r--`` under umask 022, ``-rw-r-----`` under 027).

It lives in ``workloads`` (the bottom of the import graph) so the trace writer can use it too.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

_ATTEMPTS = 100


def _sibling(path: Path, suffix: str) -> Path:
    return path.parent / f".{path.name}.{secrets.token_hex(6)}{suffix}"


def temp_file(path: Path, suffix: str = ".tmp") -> Path:
    """Create an empty, uniquely named hidden file beside ``path`` (mode ``0666 & ~umask``)."""
    for _ in range(_ATTEMPTS):
        tmp = _sibling(path, suffix)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"{path.parent}: no free temporary name for {path.name}")


def temp_dir(path: Path, suffix: str = ".tmp") -> Path:
    """Create an empty, uniquely named hidden directory beside ``path`` (mode ``0777 & ~umask``)."""
    for _ in range(_ATTEMPTS):
        tmp = _sibling(path, suffix)
        try:
            os.mkdir(tmp, 0o777)
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"{path.parent}: no free temporary name for {path.name}")


def default_file_mode(path: Path) -> None:
    """Give ``path`` the mode a new file in its directory gets (``0666 & ~umask``).

    For files written by a library that creates them private (safetensors writes ``0600``).
    The mode is read from a probe file created beside ``path``, which is thread-safe (unlike
    reading the umask with ``os.umask``) and honours a default ACL of the directory.
    """
    probe = temp_file(path, ".probe")
    try:
        mode = stat.S_IMODE(probe.stat().st_mode)
    finally:
        probe.unlink()
    os.chmod(path, mode)


def atomic_write(path: Path | str, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary sibling of ``path``, then rename it over ``path``.

    ``write`` must write the file at the path it is given (truncating it keeps its mode).
    On any error the temporary file is removed and the error propagates.
    """
    path = Path(path)
    tmp = temp_file(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: Path | str, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    atomic_write(path, lambda tmp: tmp.write_text(text))


def replace_dir(tmp: Path, target: Path) -> None:
    """Move the finished directory ``tmp`` to ``target``, replacing an existing ``target``.

    The old directory is first renamed aside, so ``target`` always holds either the old or
    the new content, never a mix; the old content is deleted afterwards.
    """
    if target.exists():
        old = temp_dir(target, ".old")
        os.replace(target, old / target.name)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)
