"""``extends:`` in a preset file: the base preset's keys, the file's own keys replacing them
section by section; a bad chain is one line naming ``extends``."""

from __future__ import annotations

import dataclasses

import pytest

from sparsesim.cli.main import main
from sparsesim.core.errors import InputError
from sparsesim.hardware.presets import load_accel, preset_mapping


def test_the_80gb_a100_is_the_40gb_one_with_its_hbm():
    big, small = load_accel("a100_80gb"), load_accel("a100")
    assert big.dram.bandwidth_bytes_per_cycle == pytest.approx(2039e9 / 1.41e9, abs=0.05)
    assert big.dram.latency_cycles == small.dram.latency_cycles  # the rest of dram kept, not replaced
    assert big.dram.capacity_bytes == 80 * 2 ** 30
    same = dataclasses.replace(big, name=small.name, description=small.description,
                               dram=dataclasses.replace(big.dram, bandwidth_bytes_per_cycle=1102.8,
                                                        capacity_bytes=40 * 2 ** 30))
    assert same == small
    assert "extends" not in preset_mapping("a100_80gb")


def test_a_user_file_extends_a_builtin_and_another_file(tmp_path):
    (tmp_path / "mid.yaml").write_text("extends: edge32\nname: mid\narray: {rows: 8}\n")
    (tmp_path / "top.yaml").write_text("extends: mid.yaml\nname: top\narray: {cols: 4}\n")
    cfg, base = load_accel(str(tmp_path / "top.yaml")), load_accel("edge32")
    assert (cfg.name, cfg.array.rows, cfg.array.cols) == ("top", 8, 4)
    assert cfg.buffers == base.buffers and cfg.array.precision == base.array.precision


@pytest.mark.parametrize("text, message", [
    ("extends: nope\n", "extends: unknown preset 'nope'"),
    ("extends: missing.yaml\n", "extends: no such file"),
    ("extends: 3\n", "extends: must name a preset or a preset file, got 3"),
    ("extends: self.yaml\n", "extends: self.yaml extends itself: self.yaml -> self.yaml"),
])
def test_a_bad_chain_is_one_line(tmp_path, text, message):
    (tmp_path / "self.yaml").write_text(text)
    with pytest.raises(InputError) as err:
        load_accel(str(tmp_path / "self.yaml"))
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_a_cycle_through_two_files_is_refused_on_the_command_line(tmp_path, capsys):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    assert main(["run", "--gemm", "8,8,8", "--accel", str(tmp_path / "a.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: extends: a.yaml extends itself: a.yaml -> b.yaml -> a.yaml"
