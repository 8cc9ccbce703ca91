"""Helpers shared by the CLI subcommands: dtype set-up, JSON encoding, run metadata."""

from __future__ import annotations

import json
import math
from typing import Any

import jax
import numpy as np

from jaxspec._checks import DTYPES, check_choice


def setup_dtype(dtype: str) -> None:
    """Enable 64-bit JAX when float64 is requested (must run before any array is made)."""
    check_choice("--dtype", dtype, DTYPES)
    if dtype == "float64":
        jax.config.update("jax_enable_x64", True)


def finite_list(values) -> list[float | None] | None:
    """A JSON-safe list: non-finite entries (``-inf`` for collapsed ranks, NaN) become ``null``."""
    if values is None:
        return None
    return [float(v) if math.isfinite(float(v)) else None for v in np.asarray(values, dtype=float).ravel()]


def runtime_info() -> dict[str, Any]:
    return {
        "backend": jax.default_backend(),
        "device_count": jax.device_count(),
        "jax_version": jax.__version__,
    }


def print_json(payload: dict[str, Any]) -> None:
    print(json.dumps(payload, allow_nan=False))


def spectrum_table(mean, stderr, theory, theory_se=None) -> str:
    """A readable table: index, simulation, standard error, theory and the z-score."""
    lines = [f"{'i':>4} {'simulated':>12} {'stderr':>10} {'theory':>12} {'z':>7}"]
    for i, m in enumerate(np.asarray(mean)):
        se = float(np.asarray(stderr)[i])
        th = None if theory is None else float(theory[i])
        scale = se if theory_se is None else float(theory_se[i])
        z = (float(m) - th) / scale if th is not None and np.isfinite(th) and scale > 0 else float("nan")
        th_s = "-" if th is None else f"{th:12.6f}"
        lines.append(f"{i + 1:>4} {float(m):12.6f} {se:10.6f} {th_s:>12} {z:7.2f}")
    return "\n".join(lines)
