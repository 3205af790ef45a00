"""The installed distribution: one top-level package, and it works beside a user's own ``configs``.

Builds a wheel from the repository (``pip wheel --no-deps --no-build-isolation``, so nothing
is downloaded), checks that it holds only the ``sparsesim`` package (plus its metadata),
installs it into a fresh virtual environment that sees the test environment's dependencies
but not its editable ``sparsesim``, and runs ``sparsesim run`` in a directory that holds a
user's own ``configs/`` package, which must not shadow the built-in presets.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(argv, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{argv}: {done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    if not (REPO / "pyproject.toml").is_file():
        pytest.skip("not a source checkout")
    out = tmp_path_factory.mktemp("wheel")
    # build from a clean copy of the sources: setuptools leaves build/ behind, and a stale
    # build/lib in the repository would put deleted modules into the wheel
    src = tmp_path_factory.mktemp("src") / "sparsesim"
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(REPO / "src", src / "src", ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", out, src],
         env={**os.environ, "PIP_NO_INDEX": "1"})
    wheels = list(out.glob("sparsesim-*.whl"))
    assert len(wheels) == 1
    return wheels[0]


def test_wheel_holds_only_the_sparsesim_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"sparsesim"}
    for needed in ("sparsesim/hardware/config.py", "sparsesim/dataflows/__init__.py", "sparsesim/workloads/ops.py",
                   "sparsesim/hardware/presets/edge32.yaml", "sparsesim/hardware/energy_tables/horowitz45.yaml",
                   "sparsesim/hardware/dram_standards/HBM3.yaml",
                   "sparsesim/sparsity/nm.py", "sparsesim/sweeps/runner.py"):
        assert needed in names, needed
    dist_info = next(t for t in top if t.endswith(".dist-info"))
    top_level = f"{dist_info}/top_level.txt"
    if top_level in names:
        assert zipfile.ZipFile(wheel).read(top_level).decode().split() == ["sparsesim"]


def test_installed_wheel_runs_beside_a_users_configs_package(wheel, tmp_path):
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    py = venv / "bin" / "python"
    site = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    # the dependencies of the test environment, without its .pth files (so not its editable sparsesim)
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "--no-index", "--quiet", wheel])

    user = tmp_path / "project"
    (user / "configs").mkdir(parents=True)
    (user / "configs" / "__init__.py").write_text("raise ImportError('the user project configs package')\n")
    (user / "configs" / "presets.py").write_text("")
    done = _run([venv / "bin" / "sparsesim", "run", "--gemm", "64,64,64", "--accel", "edge32", "--json"], cwd=user)
    doc = json.loads(done.stdout)
    assert doc["layers"][0]["accel"] == "edge32" and doc["total"]["macs_dense"] == 64**3

    probe = ("import importlib.util as u, sparsesim, json; "
             "print(json.dumps({'file': sparsesim.__file__, "
             "'tops': [n for n in ('accel', 'dataflows', 'workloads', 'configs') if u.find_spec(n)]}))")
    found = json.loads(_run([py, "-c", probe], cwd=tmp_path).stdout)
    assert found["tops"] == []
    assert Path(found["file"]).is_relative_to(venv)  # the installed copy, not the repository's
