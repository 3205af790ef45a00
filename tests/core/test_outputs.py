"""The shared output-path check (:mod:`sparsesim.core.outputs`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sparsesim.core import outputs
from sparsesim.core.errors import InputError
from sparsesim.core.outputs import check_output_path


def test_writable_paths_pass_and_leave_nothing_behind(tmp_path):
    check_output_path(tmp_path / "x.csv", field="out", kind="file")
    check_output_path(tmp_path / "a" / "b" / "c", field="out", kind="dir")  # parents are created later
    (tmp_path / "d").mkdir()
    check_output_path(tmp_path / "d", field="out", kind="dir")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"] and not any((tmp_path / "d").iterdir())


def test_a_file_anywhere_above_is_named(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(InputError, match=rf"^out: {tmp_path}/f/a/b/x.csv: {tmp_path}/f is not a directory$"):
        check_output_path(tmp_path / "f" / "a" / "b" / "x.csv", field="out", kind="file")


def test_kind_and_links(tmp_path):
    (tmp_path / "f").write_text("")
    (tmp_path / "d").mkdir()
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(InputError, match="is a directory; expected a file name"):
        check_output_path(tmp_path / "d", field="--out", kind="file")
    with pytest.raises(InputError, match="exists and is not a directory"):
        check_output_path(tmp_path / "f", field="--out", kind="dir")
    with pytest.raises(InputError, match="is a broken symbolic link"):
        check_output_path(tmp_path / "dangling", field="--out", kind="dir")
    with pytest.raises(ValueError):
        check_output_path(tmp_path / "x", field="--out", kind="table")


def test_parent_must_exist(tmp_path):
    with pytest.raises(InputError, match=rf"^--out: directory {tmp_path}/no does not exist$"):
        check_output_path(tmp_path / "no" / "x.csv", field="--out", kind="file", parent_must_exist=True)


def test_write_access_is_probed_not_read_from_mode_bits(tmp_path, monkeypatch):
    """A directory we may not create files in is refused with the system's reason: root ignores
    mode bits, so the check creates a file (here made to fail as a read-only mount would)."""
    def refuse(path, suffix=".tmp"):
        raise OSError(30, os.strerror(30), str(path))

    monkeypatch.setattr(outputs, "temp_file", refuse)
    with pytest.raises(InputError, match=rf"^out: {tmp_path}/x: cannot create files in {tmp_path} "
                                         r"\(Read-only file system\)$"):
        check_output_path(tmp_path / "x", field="out", kind="dir")


def test_proc_refuses_new_files():
    with pytest.raises(InputError, match=r"^out: /proc/sparsesim_out/x: cannot create files in /proc"):
        check_output_path("/proc/sparsesim_out/x", field="out", kind="dir")


def test_an_input_is_never_an_output(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.csv").write_text("")
    (tmp_path / "link.csv").symlink_to("in.csv")
    os.link(tmp_path / "in.csv", tmp_path / "hard.csv")
    for out in ("in.csv", tmp_path / "in.csv", "sub/../link.csv", "hard.csv"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        with pytest.raises(InputError, match=rf"^out: {Path(out)} is the input --topology in.csv; writing there"):
            check_output_path(out, field="out", kind="file", inputs=[("--topology", "in.csv")])
    check_output_path("other.csv", field="out", kind="file", inputs=[("--topology", "in.csv"), ("--trace", None)])


def test_a_replaced_directory_may_not_hold_an_input(tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "in.csv").write_text("")
    inputs = [("FILE", tmp_path / "t" / "in.csv")]
    with pytest.raises(InputError, match=r"holds the input FILE .*in.csv; replacing it would delete it"):
        check_output_path(tmp_path / "t", field="--out", kind="dir", inputs=inputs, replaces_dir=True)
    check_output_path(tmp_path / "t", field="--out", kind="dir", inputs=inputs)  # written into, not replaced
