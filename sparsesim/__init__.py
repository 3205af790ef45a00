"""sparsesim: the application: CLI, ``simulate()``, sweep runner, plots and reports."""

__version__ = "0.1.0"
