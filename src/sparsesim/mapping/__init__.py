"""How a GEMM is tiled and ordered on an array: the mapper's space, cost and search."""
