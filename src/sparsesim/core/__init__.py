"""Shared infrastructure every layer uses: errors, registries, output paths."""
