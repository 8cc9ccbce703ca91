"""Helpers shared by the CLI subcommands: dtype set-up, JSON encoding, run metadata."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from jaxspec._checks import InputError


def setup_dtype(dtype: str) -> None:
    """Enable 64-bit JAX when float64 is requested (must run before any array is made)."""
    if dtype not in ("float32", "float64"):
        raise InputError(f"--dtype must be float32 or float64, got {dtype!r}")
    import jax

    if dtype == "float64":
        jax.config.update("jax_enable_x64", True)


def finite_list(values) -> list[float | None] | None:
    """A JSON-safe list: non-finite entries (``-inf`` for collapsed ranks, NaN) become ``null``."""
    if values is None:
        return None
    return [float(v) if math.isfinite(float(v)) else None for v in np.asarray(values, dtype=float).ravel()]


def runtime_info() -> dict[str, Any]:
    import jax

    return {"backend": jax.default_backend(), "device_count": jax.device_count(), "jax_version": jax.__version__}


def print_json(payload: dict[str, Any]) -> None:
    print(json.dumps(payload, allow_nan=False))
