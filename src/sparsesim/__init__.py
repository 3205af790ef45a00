"""sparsesim: a cycle-level simulator of sparse DNN training and inference accelerators.

The package is the application (CLI, :func:`simulate`, sweeps, plots and reports); the
hardware, dataflows and workloads are its subpackages ``sparsesim.hardware``,
``sparsesim.dataflows`` and ``sparsesim.workloads``. The public Python API lives in
:mod:`sparsesim.api` and is re-exported here; its names load on first use, so ``import
sparsesim`` stays cheap (no pandas, Numba or torch until they are needed).
"""

from sparsesim.core.errors import InputError

__version__ = "0.1.0"

_API = ("simulate", "Result", "gemm", "network", "topology", "trace", "load_trace", "sweep", "capture",
        "accel_config", "codesign")

__all__ = ["InputError", "__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from sparsesim import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
