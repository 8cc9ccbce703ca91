"""Shared test set-up: 64-bit JAX for float64 oracles, four fake CPU devices for sharding tests, keys.

Tests that want float32 pass ``dtype="float32"`` explicitly; enabling x64 only makes float64 *available*.
"""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 4)
jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

# Tolerances by dtype (as neural-tangents / jax-md keep them): (rtol, atol).
TOLERANCES = {"float64": (1e-10, 1e-12), "float32": (2e-4, 2e-5)}


@pytest.fixture
def key():
    return jax.random.key(0)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def zscores(estimate, expected, stderr):
    """z = (estimate - expected) / stderr, elementwise."""
    return (np.asarray(estimate) - np.asarray(expected)) / np.asarray(stderr)
