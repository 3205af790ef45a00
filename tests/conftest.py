"""Shared test fixtures."""

from __future__ import annotations

import pytest

from sparsesim.hardware.presets import load_accel


@pytest.fixture
def edge32():
    return load_accel("edge32")


@pytest.fixture
def dc128():
    return load_accel("dc128")
