"""``sparsesim list`` imports no torch, and the zoo figures it prints are the real models'."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sparsesim.workloads.capture import MODELS
from sparsesim.workloads.capture.zoo_stats import ZOO_STATS, stat_keys, zoo_stats

LIST_WITHOUT_TORCH = """
import contextlib, io, sys
from sparsesim.cli.main import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = main(["list"])
heavy = sorted(m for m in ("torch", "transformers") if m in sys.modules)
print(code, heavy, "11,173,962 params, 555,422,720 MACs per sample" in out.getvalue())
"""


def test_list_does_not_import_torch():
    # a fresh interpreter: this test process may have imported torch already
    done = subprocess.run([sys.executable, "-c", LIST_WITHOUT_TORCH], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0 [] True"  # exit 0, no torch, and the zoo's figures printed


def test_every_torch_built_zoo_model_has_its_figures_stored():
    assert set(ZOO_STATS) == set(stat_keys())
    for name in MODELS.names():
        entry = MODELS.get(name)
        sizes = [None] + ([224] if "image_size" in entry.options else [])
        assert all(zoo_stats(entry, size) is not None for size in sizes), name


@pytest.mark.parametrize("name, image_size", stat_keys())
def test_stored_figures_equal_the_real_models(name, image_size):
    pytest.importorskip("torch")
    from sparsesim.workloads.capture.stats import model_stats

    entry = MODELS.get(name)
    real = model_stats(entry, **({"image_size": image_size} if image_size else {}))
    assert zoo_stats(entry, image_size) == real, "regenerate src/sparsesim/workloads/capture/zoo_stats.py with tools/zoo_stats.py"
