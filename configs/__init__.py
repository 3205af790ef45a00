"""Data, not code: accelerator presets, energy tables and example sweep specs.

Located at run time with :mod:`importlib.resources` so an installed package finds them.
"""
