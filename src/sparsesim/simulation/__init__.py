"""A run assembled: the GEMM engine, dense simulation and sparse replay, result rows."""
