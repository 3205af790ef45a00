"""The hardware: configs, presets, sparsity features, kernels, SimPy timing, energy and area."""
