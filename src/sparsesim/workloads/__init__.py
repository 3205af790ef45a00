"""Ops and their GEMM lowering, traces, capture, importers, synthetic traces and the model zoo."""
