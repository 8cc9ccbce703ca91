"""The orthogonality guard: a block that grew the frame beyond half the dtype's digits, or scaled it out of
the dtype's range, is never silent."""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from jaxspec.engine._reortho import reortho_limits


class OrthogonalityWarning(UserWarning):
    """A re-orthonormalisation block grew a frame so ill-conditioned that the QR lost accuracy
    ([math §4](https://jaxspec.github.io/jaxspec/math/#s4))."""


class BlockRangeWarning(OrthogonalityWarning):
    """A re-orthonormalisation block scaled a frame out of the dtype's range: a counted ``log|R_ii|`` was not
    finite (the frame underflowed to zero, overflowed, or became NaN) or came within a few decades of that
    (:func:`jaxspec.engine.range_limits`). A subclass of :class:`OrthogonalityWarning`, so one filter catches
    both."""


def _describe(spread: float, guard: float, dtype: str) -> str:
    if math.isinf(spread):
        return (
            f"a block scaled the frame out of the {dtype} range: a counted log|R_ii| is not finite or beyond "
            "the guard of range_limits (the frame underflowed towards zero, overflowed or became NaN)"
        )
    return f"a block grew the frame to log condition {spread:.1f} > {guard:.1f} ({dtype})"


def run_with_orthogonality_guard(
    run: Callable[[Any], tuple[Any, float | None]],
    config: Any,
    auto: bool,
    *,
    divisor_of: int | None = None,
    stacklevel: int = 3,
) -> tuple[Any, Any]:
    """Run, then apply the orthogonality guard of :func:`reortho_limits` and :func:`range_limits`
    ([math §4](https://jaxspec.github.io/jaxspec/math/#s4)).

    With ``config.reortho_every > 1``, a block whose guard statistic (:func:`block_spread`) exceeded the
    guard is re-run with a smaller ``m`` (``auto``: the ``m`` was chosen by ``reortho_every="auto"``) or
    reported (an explicit ``m``: the user's choice is kept) with an :class:`OrthogonalityWarning`, or a
    :class:`BlockRangeWarning` where the block left the dtype's range or was not finite. A finite statistic
    sets the next ``m`` proportionally (at most half the last); a non-finite one halves ``m``, down to one
    layer per block if need be.

    Args:
        run: ``run(config) -> (result, spread)``, ``spread`` the largest block statistic (a float, ``inf``
            for a non-finite block, or None when not recorded).
        config: a frozen dataclass with ``reortho_every`` and ``jnp_dtype`` (an :class:`EngineConfig` or
            :class:`jaxspec.networks.JacobianConfig`).
        auto: whether ``m`` was chosen automatically.
        divisor_of: a re-run ``m`` must divide this (per-prefix or windowed rates).
        stacklevel: passed to :func:`warnings.warn`.

    Returns:
        ``(result, config)`` of the accepted run.

    Example:
        >>> import jaxspec
        >>> config = jaxspec.engine.make_config(2, max_k=4, reortho_every=8)
        >>> run = lambda c: (c.reortho_every, 0.0 if c.reortho_every <= 2 else float("inf"))
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     run_with_orthogonality_guard(run, config, auto=True)[0]
        2
    """
    budget, guard = reortho_limits(config.jnp_dtype)
    while True:
        result, spread = run(config)
        m = config.reortho_every
        if spread is not None and math.isnan(spread):
            spread = math.inf
        if m == 1 or spread is None or spread <= guard:
            return result, config
        dtype = np.dtype(config.jnp_dtype).name
        category = BlockRangeWarning if math.isinf(spread) else OrthogonalityWarning
        if not auto:
            warnings.warn(
                f"reortho_every={m}: {_describe(spread, guard, dtype)}; the smallest exponents may be "
                "inaccurate or -inf (math §4). Use a smaller reortho_every or reortho_every='auto'.",
                category,
                stacklevel=stacklevel,
            )
            return result, config
        smaller = max(1, m // 2) if math.isinf(spread) else max(1, min(m // 2, int(m * budget / spread)))
        if divisor_of is not None:
            smaller = max(d for d in range(1, smaller + 1) if divisor_of % d == 0)
        warnings.warn(
            f"reortho_every='auto': m={m}: {_describe(spread, guard, dtype)}; re-running with m={smaller}.",
            category,
            stacklevel=stacklevel,
        )
        config = dataclasses.replace(config, reortho_every=smaller)
