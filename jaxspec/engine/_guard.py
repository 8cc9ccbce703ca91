"""The orthogonality guard: a block that grew the frame beyond half the dtype's digits is never silent."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from jaxspec.engine._reortho import reortho_limits


class OrthogonalityWarning(UserWarning):
    """A re-orthonormalisation block grew a frame so ill-conditioned that the QR lost accuracy
    ([math §4](https://jaxspec.github.io/jaxspec/math/#s4))."""


def run_with_orthogonality_guard(
    run: Callable[[Any], tuple[Any, float | None]],
    config: Any,
    auto: bool,
    *,
    divisor_of: int | None = None,
    stacklevel: int = 3,
) -> tuple[Any, Any]:
    """Run, then apply the orthogonality guard of :func:`reortho_limits` ([math §4](https://jaxspec.github.io/jaxspec/math/#s4)).

    With ``config.reortho_every > 1``, a block whose log condition number exceeded the guard is re-run with a
    smaller ``m`` (``auto``: the ``m`` was chosen by ``reortho_every="auto"``) or reported with an
    :class:`OrthogonalityWarning` (an explicit ``m``: the user's choice is kept).

    Args:
        run: ``run(config) -> (result, spread)``, ``spread`` the largest block log condition number (a float,
            or None when not recorded).
        config: a frozen dataclass with ``reortho_every`` and ``jnp_dtype`` (an :class:`EngineConfig` or
            :class:`jaxspec.networks.JacobianConfig`).
        auto: whether ``m`` was chosen automatically.
        divisor_of: a re-run ``m`` must divide this (per-prefix or windowed rates).
        stacklevel: passed to :func:`warnings.warn`.

    Returns:
        ``(result, config)`` of the accepted run.
    """
    budget, guard = reortho_limits(config.jnp_dtype)
    while True:
        result, spread = run(config)
        m = config.reortho_every
        if m == 1 or spread is None or spread <= guard:
            return result, config
        if not auto:
            dtype = np.dtype(config.jnp_dtype).name
            warnings.warn(
                f"reortho_every={m}: a block grew the frame to log condition {spread:.1f} > {guard:.1f} "
                f"({dtype}); the smallest exponents may be inaccurate (math §4). Use a smaller "
                "reortho_every or reortho_every='auto'.",
                OrthogonalityWarning,
                stacklevel=stacklevel,
            )
            return result, config
        smaller = max(1, min(m // 2, int(m * budget / spread)))
        if divisor_of is not None:
            smaller = max(d for d in range(1, smaller + 1) if divisor_of % d == 0)
        warnings.warn(
            f"reortho_every='auto': m={m} grew a block to log condition {spread:.1f} > "
            f"{guard:.1f}; re-running with m={smaller}.",
            OrthogonalityWarning,
            stacklevel=stacklevel,
        )
        config = dataclasses.replace(config, reortho_every=smaller)
